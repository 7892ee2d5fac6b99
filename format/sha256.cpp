#include "format/sha256.h"

#ifdef QDM_HAVE_OPENSSL
#include <openssl/evp.h>
#endif

#include <fstream>
#include <memory>
#include <stdexcept>
#include <vector>

#include "format/sha256_portable.h"

namespace qdm {
namespace {

std::string to_hex(const unsigned char* d, size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[d[i] >> 4]);
    out.push_back(kHex[d[i] & 15]);
  }
  return out;
}

#ifdef QDM_HAVE_OPENSSL
class Digest {
 public:
  Digest() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void update(const void* data, size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &len);
    return to_hex(digest, len);
  }

 private:
  struct Free {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
};
#else
class Digest {
 public:
  void update(const void* data, size_t size) { sha_.update(data, size); }
  std::string hex() {
    const auto d = sha_.finish();
    return to_hex(d.data(), d.size());
  }

 private:
  Sha256Portable sha_;
};
#endif

}  // namespace

const char* sha256_backend() {
#ifdef QDM_HAVE_OPENSSL
  return "openssl";
#else
  return "portable";
#endif
}

std::string sha256_hex(const void* data, size_t size) {
  Digest d;
  d.update(data, size);
  return d.hex();
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open '" + path + "'");
  Digest d;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) d.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return d.hex();
}

}  // namespace qdm
