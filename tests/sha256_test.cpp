// SHA-256: the build's digest (OpenSSL, or the portable one in builds without it) and the portable
// implementation against FIPS 180-4's examples, and against each other at awkward lengths and
// split points.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include "format/sha256.h"
#include "format/sha256_portable.h"

namespace qdm {
namespace {

std::string portable_hex(const std::string& s, size_t split = std::string::npos) {
  Sha256Portable sha;
  if (split == std::string::npos || split > s.size()) {
    sha.update(s.data(), s.size());
  } else {
    sha.update(s.data(), split);
    sha.update(s.data() + split, s.size() - split);
  }
  const auto d = sha.finish();
  std::string out;
  char buf[3];
  for (uint8_t b : d) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    out += buf;
  }
  return out;
}

TEST(Sha256, StandardVectors) {
  const std::pair<std::string, const char*> vectors[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {std::string(1000000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"}};
  for (const auto& [message, digest] : vectors) {
    EXPECT_EQ(sha256_hex(message.data(), message.size()), digest) << sha256_backend() << ", " << message.size() << " bytes";
    EXPECT_EQ(portable_hex(message), digest) << message.size() << " bytes";
  }
}

TEST(Sha256, PortableAgreesAtEveryBlockBoundaryAndSplit) {
  std::mt19937 rng(3);
  for (size_t len = 0; len <= 200; ++len) {
    std::string s(len, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    const std::string want = sha256_hex(s.data(), s.size());
    ASSERT_EQ(portable_hex(s), want) << len;
    for (size_t split : {size_t{1}, size_t{55}, size_t{56}, size_t{63}, size_t{64}, size_t{65}, len / 2})
      ASSERT_EQ(portable_hex(s, split), want) << len << " split at " << split;
  }
}

TEST(Sha256, FileDigestEqualsTheBytes) {
  const std::string path = testing::TempDir() + "/sha256_test.bin";
  std::string bytes(3 << 20, 'x');  // more than the 1 MiB read buffer
  for (size_t i = 0; i < bytes.size(); i += 4097) bytes[i] = static_cast<char>(i);
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_EQ(sha256_file(path), sha256_hex(bytes.data(), bytes.size()));
  EXPECT_THROW(sha256_file(path + ".missing"), std::runtime_error);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace qdm
