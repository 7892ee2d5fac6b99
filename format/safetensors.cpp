#include "format/safetensors.h"

#include "format/half.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

namespace qdm {
namespace {

struct DTypeRow {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1}, {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

[[noreturn]] void fail(const std::string& what) { throw SafeTensorsError("safetensors: " + what); }

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

TensorInfo parse_entry(const std::string& name, const nlohmann::json& j) {
  const std::string where = "tensor '" + name + "': ";
  if (!j.is_object()) fail(where + "header entry is not an object");
  TensorInfo info;
  info.name = name;
  if (!j.contains("dtype") || !j["dtype"].is_string()) fail(where + "missing string field 'dtype'");
  auto dtype = parse_dtype(j["dtype"].get<std::string>());
  if (!dtype) fail(where + "unknown dtype '" + j["dtype"].get<std::string>() + "'");
  info.dtype = *dtype;
  if (!j.contains("shape") || !j["shape"].is_array()) fail(where + "missing array field 'shape'");
  for (const auto& d : j["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      fail(where + "shape entries must be non-negative integers, got " + d.dump());
    info.shape.push_back(d.get<int64_t>());
  }
  if (!j.contains("data_offsets") || !j["data_offsets"].is_array() || j["data_offsets"].size() != 2)
    fail(where + "'data_offsets' must be an array [begin, end]");
  for (const auto& o : j["data_offsets"])
    if (!o.is_number_unsigned()) fail(where + "data_offsets must be non-negative integers, got " + o.dump());
  info.begin = j["data_offsets"][0].get<uint64_t>();
  info.end = j["data_offsets"][1].get<uint64_t>();
  if (info.end < info.begin)
    fail(where + "data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
         "] end before they begin");
  // numel * dtype_size without overflow.
  uint64_t bytes = dtype_size(info.dtype);
  for (int64_t d : info.shape) {
    if (d != 0 && bytes > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      fail(where + "shape " + shape_str(info.shape) + " is too large");
    bytes *= static_cast<uint64_t>(d);
  }
  if (bytes != info.nbytes())
    fail(where + "shape " + shape_str(info.shape) + " of " + dtype_name(info.dtype) + " needs " +
         std::to_string(bytes) + " bytes but data_offsets span " + std::to_string(info.nbytes()));
  return info;
}

}  // namespace

size_t dtype_size(DType dtype) {
  for (const auto& row : kDTypes)
    if (row.dtype == dtype) return row.size;
  return 0;
}

const char* dtype_name(DType dtype) {
  for (const auto& row : kDTypes)
    if (row.dtype == dtype) return row.name;
  return "?";
}

std::optional<DType> parse_dtype(const std::string& name) {
  for (const auto& row : kDTypes)
    if (name == row.name) return row.dtype;
  return std::nullopt;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafeTensors SafeTensors::parse(std::vector<uint8_t> bytes) {
  SafeTensors st;
  if (bytes.size() < 8)
    fail("file is " + std::to_string(bytes.size()) + " bytes, too short for the 8-byte header length");
  const uint64_t header_len = read_u64_le(bytes.data());
  if (header_len > kMaxHeaderBytes)
    fail("header length " + std::to_string(header_len) + " exceeds the limit of " +
         std::to_string(kMaxHeaderBytes) + " bytes");
  if (header_len > bytes.size() - 8)
    fail("header length " + std::to_string(header_len) + " runs past the end of the file (" +
         std::to_string(bytes.size()) + " bytes): the file is truncated");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<ptrdiff_t>(header_len));
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail("header is not a JSON object");
  st.data_start_ = 8 + header_len;
  const uint64_t data_len = bytes.size() - st.data_start_;

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) fail("'__metadata__' is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) fail("metadata '" + m.key() + "' is not a string");
        st.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    st.tensors_.push_back(parse_entry(it.key(), it.value()));
  }
  std::sort(st.tensors_.begin(), st.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  const TensorInfo* prev = nullptr;
  for (const auto& t : st.tensors_) {
    if (t.end > data_len)
      fail("tensor '" + t.name + "': data_offsets [" + std::to_string(t.begin) + ", " +
           std::to_string(t.end) + "] run past the end of the data section (" +
           std::to_string(data_len) + " bytes): the file is truncated");
    if (t.begin < expected)
      fail("tensor '" + t.name + "' overlaps tensor '" + (prev ? prev->name : "") + "'");
    if (t.begin > expected)
      fail("gap of " + std::to_string(t.begin - expected) + " bytes before tensor '" + t.name + "'");
    expected = t.end;
    prev = &t;
  }
  if (expected != data_len)
    fail(std::to_string(data_len - expected) + " bytes after the last tensor are not described by the header");
  for (size_t i = 0; i < st.tensors_.size(); ++i) st.index_[st.tensors_[i].name] = i;
  st.bytes_ = std::move(bytes);
  return st;
}

SafeTensors SafeTensors::read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw SafeTensorsError("safetensors: cannot open '" + path + "'");
  const auto size = static_cast<size_t>(in.tellg());
  in.seekg(0);
  std::vector<uint8_t> bytes(size);
  if (size && !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    throw SafeTensorsError("safetensors: cannot read '" + path + "'");
  try {
    return parse(std::move(bytes));
  } catch (const SafeTensorsError& e) {
    throw SafeTensorsError(path + ": " + e.what());
  }
}

std::vector<float> SafeTensors::floats(const TensorInfo& info) const {
  const uint8_t* p = data(info);
  std::vector<float> out(static_cast<size_t>(info.numel()));
  auto u16 = [p](size_t i) {
    uint16_t v;
    std::memcpy(&v, p + 2 * i, 2);
    return v;
  };
  switch (info.dtype) {
    case DType::F32:
      if (!out.empty()) std::memcpy(out.data(), p, out.size() * 4);
      break;
    case DType::F16:
      for (size_t i = 0; i < out.size(); ++i) out[i] = half_to_float(u16(i));
      break;
    case DType::BF16:
      for (size_t i = 0; i < out.size(); ++i) out[i] = bf16_to_float(u16(i));
      break;
    case DType::F64:
      for (size_t i = 0; i < out.size(); ++i) {
        double v;
        std::memcpy(&v, p + 8 * i, 8);
        out[i] = static_cast<float>(v);
      }
      break;
    default:
      fail("tensor '" + info.name + "' has dtype " + dtype_name(info.dtype) + "; expected a float type");
  }
  return out;
}

const TensorInfo* SafeTensors::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafeTensors::at(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (!info) fail("missing tensor '" + name + "'");
  return *info;
}

void SafeTensorsWriter::add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                            const void* data, size_t nbytes) {
  for (const auto& e : entries_)
    if (e.info.name == name) fail("duplicate tensor '" + name + "'");
  if (name == "__metadata__") fail("'__metadata__' is reserved");
  Entry e;
  e.info.name = name;
  e.info.dtype = dtype;
  e.info.shape = shape;
  uint64_t expect = dtype_size(dtype) * static_cast<uint64_t>(e.info.numel());
  if (expect != nbytes)
    fail("tensor '" + name + "': shape " + shape_str(shape) + " needs " + std::to_string(expect) +
         " bytes, got " + std::to_string(nbytes));
  const auto* p = static_cast<const uint8_t*>(data);
  e.data.assign(p, p + nbytes);
  entries_.push_back(std::move(e));
}

std::vector<uint8_t> SafeTensorsWriter::serialize() const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const auto& e : entries_) {
    header[e.info.name] = {{"dtype", dtype_name(e.info.dtype)},
                           {"shape", e.info.shape},
                           {"data_offsets", {offset, offset + e.data.size()}}};
    offset += e.data.size();
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');  // align the data section
  std::vector<uint8_t> out(8 + text.size() + offset);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  size_t pos = 8 + text.size();
  for (const auto& e : entries_) {
    if (!e.data.empty()) std::memcpy(out.data() + pos, e.data.data(), e.data.size());
    pos += e.data.size();
  }
  return out;
}

void SafeTensorsWriter::write_file(const std::string& path) const {
  const std::vector<uint8_t> bytes = serialize();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("cannot create '" + tmp + "'");
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      fail("cannot write '" + tmp + "'");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("cannot rename '" + tmp + "' to '" + path + "'");
  }
}

}  // namespace qdm
