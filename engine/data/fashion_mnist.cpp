#include "engine/data/fashion_mnist.h"

#ifdef QDM_HAVE_ZLIB
#include <zlib.h>
#endif

#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace qdm {
namespace {

#ifdef QDM_HAVE_ZLIB
std::vector<uint8_t> read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f)
    throw std::runtime_error("cannot open '" + path +
                             "' (install Debian's dataset-fashion-mnist or set QDM_FASHION_MNIST)");
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  int n;
  while ((n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()))) > 0) out.insert(out.end(), buf.begin(), buf.begin() + n);
  const bool failed = n < 0;
  gzclose(f);
  if (failed) throw std::runtime_error("'" + path + "' is not a readable gzip file");
  return out;
}
#else  // an engine-only build without zlib (bench/gpu_check.sh on a bare machine)
std::vector<uint8_t> read_gz(const std::string& path) {
  throw std::runtime_error("cannot read '" + path + "': this build has no zlib (an engine-only build without zlib1g-dev)");
}
#endif

uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
}

}  // namespace

FashionMnist FashionMnist::load(const std::string& dir, const std::string& split) {
  if (split != "train" && split != "test") throw std::invalid_argument("split must be train or test");
  const std::string prefix = dir + "/" + (split == "train" ? "train" : "t10k");
  const auto img = read_gz(prefix + "-images-idx3-ubyte.gz");
  const auto lab = read_gz(prefix + "-labels-idx1-ubyte.gz");
  if (img.size() < 16 || be32(img, 0) != 0x803)
    throw std::runtime_error(prefix + "-images-idx3-ubyte.gz: not an idx3 image file");
  if (lab.size() < 8 || be32(lab, 0) != 0x801)
    throw std::runtime_error(prefix + "-labels-idx1-ubyte.gz: not an idx1 label file");
  const int64_t n = be32(img, 4), rows = be32(img, 8), cols = be32(img, 12);
  if (rows != 28 || cols != 28 || img.size() != static_cast<size_t>(16 + n * rows * cols))
    throw std::runtime_error(prefix + "-images-idx3-ubyte.gz: unexpected size");
  if (be32(lab, 4) != n || lab.size() != static_cast<size_t>(8 + n))
    throw std::runtime_error(prefix + "-labels-idx1-ubyte.gz: label count does not match the images");
  FashionMnist d;
  d.images = at::empty({n, 1, rows, cols}, at::kByte);
  std::memcpy(d.images.data_ptr(), img.data() + 16, static_cast<size_t>(n * rows * cols));
  at::Tensor labels = at::empty({n}, at::kByte);
  std::memcpy(labels.data_ptr(), lab.data() + 8, static_cast<size_t>(n));
  d.labels = labels.to(at::kLong);
  return d;
}

std::string default_fashion_mnist_dir() {
  const char* env = std::getenv("QDM_FASHION_MNIST");
  return env && *env ? env : "/usr/share/datasets/fashion-mnist";
}

const char* fashion_mnist_class_name(int label) {
  static const char* kNames[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return label >= 0 && label < kFashionMnistClasses ? kNames[label] : "?";
}

at::Tensor to_model_range(const at::Tensor& images, int size) {
  at::Tensor x = images.to(at::kFloat) / 127.5 - 1.0;
  const int64_t pad = size - x.size(-1);
  if (pad < 0) throw std::invalid_argument("to_model_range: size smaller than the images");
  const int64_t before = pad / 2, after = pad - before;
  return at::constant_pad_nd(x, {before, after, before, after}, -1.0);
}

}  // namespace qdm
