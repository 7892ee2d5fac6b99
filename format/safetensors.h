// safetensors reader and writer (https://github.com/huggingface/safetensors format).
//
// Layout: u64 little-endian header length N | N bytes of JSON header | data section.
// The header maps tensor names to {dtype, shape, data_offsets=[begin,end)} relative to the
// data section, plus an optional "__metadata__" object of string->string.
//
// This file is torch-free on purpose: parsing and validation are plain byte work, tested by
// the fuzz-style test without LibTorch. tensor_io.h converts to and from at::Tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace qdm {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
std::optional<DType> parse_dtype(const std::string& name);

class SafeTensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section, [begin, end)
  uint64_t end = 0;

  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// A parsed, validated file held in memory. Every TensorInfo is guaranteed to lie inside the
// data section, tensors neither overlap nor leave holes, and sizes match shapes.
class SafeTensors {
 public:
  // Largest header accepted (the reference implementation uses the same bound).
  static constexpr uint64_t kMaxHeaderBytes = 100u * 1024u * 1024u;

  static SafeTensors parse(std::vector<uint8_t> bytes);
  static SafeTensors read_file(const std::string& path);

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;
  const TensorInfo& at(const std::string& name) const;  // throws naming the tensor
  const uint8_t* data(const TensorInfo& info) const { return bytes_.data() + data_start_ + info.begin; }
  // A float tensor's values (F32, F16, BF16 or F64) as fp32, exactly where the type is narrower;
  // throws naming the tensor for any other dtype.
  std::vector<float> floats(const TensorInfo& info) const;
  size_t file_bytes() const { return bytes_.size(); }
  const std::vector<uint8_t>& file_contents() const { return bytes_; }  // the whole file, as read

 private:
  std::vector<uint8_t> bytes_;
  size_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;  // sorted by offset
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

class SafeTensorsWriter {
 public:
  void add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
           const void* data, size_t nbytes);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  std::vector<uint8_t> serialize() const;
  // Writes to path + ".tmp" and renames, so a reader never sees a half-written file.
  void write_file(const std::string& path) const;

 private:
  struct Entry {
    TensorInfo info;
    std::vector<uint8_t> data;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace qdm
