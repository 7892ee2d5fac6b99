// qdm_rpc_probe: one call of the public API or the worker protocol with a request written as
// JSON (protobuf's JSON mapping, so "NaN" and "Infinity" reach double fields), printing the
// status as "CODE message" and, when OK, the response as JSON. The service tests use it for
// requests the qdm client never sends (grpcurl is not a Debian package).
//
//   qdm_rpc_probe --server 127.0.0.1:50051 [--token T] QuantizeJobs/Submit '{"model": "../etc"}'
#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "qdm/v1/jobs.grpc.pb.h"
#include "qdm/v1/models.grpc.pb.h"
#include "qdm/v1/sampling.grpc.pb.h"
#include "qdm/v1/worker.grpc.pb.h"

namespace {

namespace pbu = google::protobuf::util;

const char* code_name(grpc::StatusCode c) {
  static const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                "UNAUTHENTICATED"};
  return c >= 0 && c <= 16 ? names[c] : "?";
}

template <typename Msg>
Msg parse(const std::string& json) {
  Msg m;
  if (!pbu::JsonStringToMessage(json, &m).ok()) throw std::runtime_error("request JSON does not parse as " + Msg::descriptor()->full_name());
  return m;
}

std::string to_json(const google::protobuf::Message& m) {
  std::string out;
  (void)pbu::MessageToJsonString(m, &out);
  return out;
}

int finish(const grpc::Status& s, const std::vector<std::string>& responses) {
  std::printf("%s %s\n", code_name(s.error_code()), s.error_message().c_str());
  if (s.ok())
    for (const auto& r : responses) std::printf("%s\n", r.c_str());
  return 0;
}

template <typename Stub, typename Req, typename Resp>
int unary(std::shared_ptr<grpc::Channel> ch, grpc::ClientContext& ctx, const std::string& json,
          grpc::Status (Stub::*call)(grpc::ClientContext*, const Req&, Resp*)) {
  auto stub = std::make_unique<Stub>(ch);
  Resp resp;
  const grpc::Status s = ((*stub).*call)(&ctx, parse<Req>(json), &resp);
  return finish(s, {to_json(resp)});
}

template <typename Resp, typename MakeReader>
int server_stream(MakeReader make) {
  auto reader = make();
  std::vector<std::string> out;
  Resp r;
  while (reader->Read(&r)) out.push_back(to_json(r));
  return finish(reader->Finish(), out);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"One gRPC call with a JSON request; prints the status and the response"};
  std::string server = "127.0.0.1:50051", token, method, json = "{}";
  double timeout = 30;
  app.add_option("--server", server);
  app.add_option("--token", token);
  app.add_option("--timeout", timeout);
  app.add_option("method", method)->required();
  app.add_option("json", json);
  CLI11_PARSE(app, argc, argv);
  if (!json.empty() && json[0] == '@') {  // @FILE: the request from a file (for huge fields)
    std::ifstream in(json.substr(1));
    json.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto ch = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000)));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  using namespace qdm::v1;
  try {
    if (method == "QuantizeJobs/Submit") return unary(ch, ctx, json, &QuantizeJobs::Stub::Submit);
    if (method == "QuantizeJobs/Get") return unary(ch, ctx, json, &QuantizeJobs::Stub::Get);
    if (method == "QuantizeJobs/Cancel") return unary(ch, ctx, json, &QuantizeJobs::Stub::Cancel);
    if (method == "QuantizeJobs/List") return unary(ch, ctx, json, &QuantizeJobs::Stub::List);
    if (method == "QuantizeJobs/Watch") {
      QuantizeJobs::Stub stub(ch);
      return server_stream<Job>([&] { return stub.Watch(&ctx, parse<WatchJobRequest>(json)); });
    }
    if (method == "Sampling/Sample") return unary(ch, ctx, json, &Sampling::Stub::Sample);
    if (method == "Sampling/SampleStream") {
      Sampling::Stub stub(ch);
      return server_stream<SampleEvent>([&] { return stub.SampleStream(&ctx, parse<SampleRequest>(json)); });
    }
    if (method == "Models/Describe") return unary(ch, ctx, json, &Models::Stub::Describe);
    if (method == "Models/Delete") return unary(ch, ctx, json, &Models::Stub::Delete);
    if (method == "Models/List") return unary(ch, ctx, json, &Models::Stub::List);
    if (method == "WorkerGateway/Heartbeat") return unary(ch, ctx, json, &WorkerGateway::Stub::Heartbeat);
    if (method == "WorkerGateway/FetchModel") {
      WorkerGateway::Stub stub(ch);
      return server_stream<UploadChunk>([&] { return stub.FetchModel(&ctx, parse<FetchModelRequest>(json)); });
    }
    if (method == "Health/Check") return unary(ch, ctx, json, &grpc::health::v1::Health::Stub::Check);
    if (method == "ReflectionV1") {  // json: one ServerReflectionRequest
      grpc::reflection::v1::ServerReflection::Stub stub(ch);
      auto rw = stub.ServerReflectionInfo(&ctx);
      rw->Write(parse<grpc::reflection::v1::ServerReflectionRequest>(json));
      rw->WritesDone();
      std::vector<std::string> out;
      grpc::reflection::v1::ServerReflectionResponse r;
      while (rw->Read(&r)) {
        r.clear_original_request();
        if (r.has_file_descriptor_response()) {  // names of the files instead of their bytes
          std::string names;
          for (const auto& bytes : r.file_descriptor_response().file_descriptor_proto()) {
            google::protobuf::FileDescriptorProto f;
            f.ParseFromString(bytes);
            names += f.name() + " ";
          }
          out.push_back("files: " + names);
        } else {
          out.push_back(to_json(r));
        }
      }
      return finish(rw->Finish(), out);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "unknown method %s\n", method.c_str());
  return 2;
}
