#include "service/reflection_v1.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <set>

namespace qdm::service {
namespace {

namespace pb = google::protobuf;
using grpc::reflection::v1::ServerReflectionRequest;
using grpc::reflection::v1::ServerReflectionResponse;

// The file and every file it imports, each once, dependencies first.
void add_file(const pb::FileDescriptor* file, std::set<std::string>& seen, ServerReflectionResponse& out) {
  if (!file || !seen.insert(file->name()).second) return;
  for (int i = 0; i < file->dependency_count(); ++i) add_file(file->dependency(i), seen, out);
  pb::FileDescriptorProto proto;
  file->CopyTo(&proto);
  proto.SerializeToString(out.mutable_file_descriptor_response()->add_file_descriptor_proto());
}

void not_found(ServerReflectionResponse& out, const std::string& what) {
  out.mutable_error_response()->set_error_code(grpc::StatusCode::NOT_FOUND);
  out.mutable_error_response()->set_error_message(what + " not found");
}

}  // namespace

ReflectionV1::ReflectionV1(std::vector<std::string> services) : services_(std::move(services)) {}

grpc::Status ReflectionV1::ServerReflectionInfo(
    grpc::ServerContext*, grpc::ServerReaderWriter<ServerReflectionResponse, ServerReflectionRequest>* stream) {
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  ServerReflectionRequest req;
  while (stream->Read(&req)) {
    ServerReflectionResponse out;
    out.set_valid_host(req.host());
    *out.mutable_original_request() = req;
    std::set<std::string> seen;
    switch (req.message_request_case()) {
      case ServerReflectionRequest::kListServices:
        for (const auto& s : services_) out.mutable_list_services_response()->add_service()->set_name(s);
        break;
      case ServerReflectionRequest::kFileByFilename:
        if (auto* f = pool->FindFileByName(req.file_by_filename())) add_file(f, seen, out);
        else not_found(out, "file " + req.file_by_filename());
        break;
      case ServerReflectionRequest::kFileContainingSymbol:
        if (auto* f = pool->FindFileContainingSymbol(req.file_containing_symbol())) add_file(f, seen, out);
        else not_found(out, "symbol " + req.file_containing_symbol());
        break;
      case ServerReflectionRequest::kFileContainingExtension: {
        const auto& e = req.file_containing_extension();
        const pb::Descriptor* type = pool->FindMessageTypeByName(e.containing_type());
        const pb::FieldDescriptor* ext = type ? pool->FindExtensionByNumber(type, e.extension_number()) : nullptr;
        if (ext) add_file(ext->file(), seen, out);
        else not_found(out, "extension " + std::to_string(e.extension_number()) + " of " + e.containing_type());
        break;
      }
      case ServerReflectionRequest::kAllExtensionNumbersOfType: {
        const pb::Descriptor* type = pool->FindMessageTypeByName(req.all_extension_numbers_of_type());
        if (!type) {
          not_found(out, "type " + req.all_extension_numbers_of_type());
          break;
        }
        std::vector<const pb::FieldDescriptor*> exts;
        pool->FindAllExtensions(type, &exts);
        auto* r = out.mutable_all_extension_numbers_response();
        r->set_base_type_name(type->full_name());
        for (const auto* x : exts) r->add_extension_number(x->number());
        break;
      }
      default:
        out.mutable_error_response()->set_error_code(grpc::StatusCode::INVALID_ARGUMENT);
        out.mutable_error_response()->set_error_message("empty reflection request");
    }
    if (!stream->Write(out)) break;
  }
  return grpc::Status::OK;
}

}  // namespace qdm::service
