#include "engine/model_io/tensor_io.h"

#include <cstring>

namespace qdm {
namespace {

at::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::F64: return at::kDouble;
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
    case DType::I16: return at::kShort;
    case DType::I8: return at::kChar;
    case DType::U8: return at::kByte;
    case DType::BOOL: return at::kBool;
  }
  return at::kFloat;
}

DType to_dtype(at::ScalarType type) {
  switch (type) {
    case at::kDouble: return DType::F64;
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    case at::kLong: return DType::I64;
    case at::kInt: return DType::I32;
    case at::kShort: return DType::I16;
    case at::kChar: return DType::I8;
    case at::kByte: return DType::U8;
    case at::kBool: return DType::BOOL;
    default: throw SafeTensorsError(std::string("safetensors: cannot store dtype ") + c10::toString(type));
  }
}

}  // namespace

at::Tensor to_tensor(const SafeTensors& file, const TensorInfo& info) {
  at::Tensor t = at::empty(info.shape, at::TensorOptions().dtype(to_scalar_type(info.dtype)));
  if (info.nbytes()) std::memcpy(t.data_ptr(), file.data(info), info.nbytes());
  return t;
}

TensorMap load_tensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  const SafeTensors file = SafeTensors::read_file(path);
  TensorMap out;
  for (const auto& info : file.tensors()) out[info.name] = to_tensor(file, info);
  if (metadata) *metadata = file.metadata();
  return out;
}

void add_tensor(SafeTensorsWriter& writer, const std::string& name, const at::Tensor& tensor) {
  const at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  writer.add(name, to_dtype(t.scalar_type()), t.sizes().vec(), t.data_ptr(),
             static_cast<size_t>(t.numel()) * t.element_size());
}

void save_tensors(const std::string& path, const TensorMap& tensors,
                  const std::map<std::string, std::string>& metadata) {
  SafeTensorsWriter writer;
  for (const auto& [name, t] : tensors) add_tensor(writer, name, t);
  for (const auto& [k, v] : metadata) writer.set_metadata(k, v);
  writer.write_file(path);
}

}  // namespace qdm
