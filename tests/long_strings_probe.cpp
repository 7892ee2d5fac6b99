// qdm_long_strings_probe: every method of the public API and the worker protocol called with
// every string field of its request (nested, repeated, map keys and values, each alternative
// of a oneof in turn) set to a long string, through a generic stub from the protocol's own
// descriptors, so a field or method added later is covered without touching this file. Each
// answer is checked: its status message is bounded (status_message.h's limit), echoes no long
// run of the input and names none of the --forbid paths (the server's folders); an OK answer's
// response carries no long run either. Prints one line per call and exits 1 on any finding.
//
//   qdm_long_strings_probe --server 127.0.0.1:50051 [--token T] [--worker-token W] \
//       [--length 10000] [--forbid /path/of/the/server ...]
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "qdm/v1/jobs.grpc.pb.h"
#include "qdm/v1/models.grpc.pb.h"
#include "qdm/v1/sampling.grpc.pb.h"
#include "qdm/v1/worker.grpc.pb.h"

namespace {

namespace pb = google::protobuf;

constexpr size_t kMaxMessage = 1024 + 64;  // service::kMaxStatusMessage, with room for its "cut" note
constexpr size_t kLongRun = 200;           // an echo of this many fill characters is unbounded echo

// Fills every string field of `m` with `fill`, recursing into messages; in a oneof only the
// alternative `choice[oneof]` (an index among its fields) is set.
void fill_strings(pb::Message& m, const std::string& fill, int depth = 0) {
  if (depth > 6) return;
  const pb::Descriptor* d = m.GetDescriptor();
  const pb::Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (f->containing_oneof() && !f->containing_oneof()->is_synthetic()) continue;  // filled by variants()
    if (f->is_map()) {
      pb::Message* entry = r->AddMessage(&m, f);
      fill_strings(*entry, fill, depth + 1);
      continue;
    }
    if (f->type() == pb::FieldDescriptor::TYPE_STRING) {
      if (f->is_repeated()) r->AddString(&m, f, fill);
      else r->SetString(&m, f, fill);
    } else if (f->type() == pb::FieldDescriptor::TYPE_MESSAGE) {
      pb::Message* sub = f->is_repeated() ? r->AddMessage(&m, f) : r->MutableMessage(&m, f);
      fill_strings(*sub, fill, depth + 1);
    }
  }
}

// The requests to send for a method: one per alternative of each (non-synthetic) oneof of the
// request and of its nested messages' first level, every string field filled.
std::vector<std::unique_ptr<pb::Message>> variants(const pb::Descriptor* type, const std::string& fill,
                                                   pb::DynamicMessageFactory& factory) {
  std::vector<std::unique_ptr<pb::Message>> out;
  auto base = [&] {
    std::unique_ptr<pb::Message> m(factory.GetPrototype(type)->New());
    fill_strings(*m, fill);
    return m;
  };
  bool any_oneof = false;
  for (int o = 0; o < type->oneof_decl_count(); ++o) {
    const pb::OneofDescriptor* oneof = type->oneof_decl(o);
    if (oneof->is_synthetic()) continue;
    any_oneof = true;
    for (int k = 0; k < oneof->field_count(); ++k) {
      auto m = base();
      const pb::FieldDescriptor* f = oneof->field(k);
      const pb::Reflection* r = m->GetReflection();
      if (f->type() == pb::FieldDescriptor::TYPE_STRING) r->SetString(m.get(), f, fill);
      else if (f->type() == pb::FieldDescriptor::TYPE_MESSAGE) fill_strings(*r->MutableMessage(m.get(), f), fill, 1);
      else continue;
      out.push_back(std::move(m));
    }
  }
  if (!any_oneof) out.push_back(base());
  return out;
}

bool has_long_run(const std::string& s, char c) {
  size_t run = 0;
  for (char x : s) {
    run = x == c ? run + 1 : 0;
    if (run >= kLongRun) return true;
  }
  return false;
}

struct Answer {
  grpc::Status status;
  std::vector<std::string> responses;  // serialized
};

// Any method through one generic bidirectional stream: the request, then half-close, then
// every response until the status (unary, client- and server-streaming alike on the wire).
Answer call(grpc::GenericStub& stub, const std::string& method, const pb::Message& request, const std::string& token,
            double timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000)));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  grpc::CompletionQueue cq;
  void* tag;
  bool ok;
  auto wait = [&] { return cq.Next(&tag, &ok) && ok; };
  auto rw = stub.PrepareCall(&ctx, method, &cq);
  rw->StartCall(reinterpret_cast<void*>(1));
  Answer a;
  if (wait()) {
    std::string bytes;
    request.SerializeToString(&bytes);
    grpc::Slice slice(bytes);
    grpc::ByteBuffer buffer(&slice, 1);
    rw->Write(buffer, reinterpret_cast<void*>(2));
    if (wait()) {
      rw->WritesDone(reinterpret_cast<void*>(3));
      wait();
    }
    for (;;) {
      grpc::ByteBuffer in;
      rw->Read(&in, reinterpret_cast<void*>(4));
      if (!wait()) break;
      std::vector<grpc::Slice> slices;
      (void)in.Dump(&slices);
      std::string s;
      for (const auto& sl : slices) s.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
      a.responses.push_back(std::move(s));
    }
  }
  rw->Finish(&a.status, reinterpret_cast<void*>(5));
  while (cq.Next(&tag, &ok) && tag != reinterpret_cast<void*>(5)) {
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Every RPC with every string field long; checks the answers are bounded"};
  std::string server = "127.0.0.1:50051", token, worker_token;
  size_t length = 10000;
  double timeout = 20;
  std::vector<std::string> forbid;
  std::vector<std::string> services = {"qdm.v1.QuantizeJobs", "qdm.v1.Models", "qdm.v1.Sampling", "qdm.v1.WorkerGateway"};
  app.add_option("--server", server);
  app.add_option("--token", token, "Bearer token for the public API");
  app.add_option("--worker-token", worker_token, "Bearer token for the worker protocol");
  app.add_option("--length", length);
  app.add_option("--timeout", timeout);
  app.add_option("--forbid", forbid, "Server paths no answer may name");
  app.add_option("--services", services, "Services to call (a worker serves qdm.v1.Sampling only)")->delimiter(',');
  CLI11_PARSE(app, argc, argv);

  // The services' files, built into the generated pool through a message of each.
  (void)qdm::v1::SubmitJobRequest::descriptor();
  (void)qdm::v1::ListModelsRequest::descriptor();
  (void)qdm::v1::SampleRequest::descriptor();
  (void)qdm::v1::HeartbeatRequest::descriptor();
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  pb::DynamicMessageFactory factory(pool);
  grpc::GenericStub stub(grpc::CreateChannel(server, grpc::InsecureChannelCredentials()));
  const std::string fill(length, 'x');
  int calls = 0, findings = 0;
  for (const std::string& name : services) {
    const pb::ServiceDescriptor* service = pool->FindServiceByName(name);
    if (!service) {
      std::fprintf(stderr, "no descriptor for %s\n", name.c_str());
      return 2;
    }
    const bool worker = name == "qdm.v1.WorkerGateway";
    for (int i = 0; i < service->method_count(); ++i) {
      const pb::MethodDescriptor* m = service->method(i);
      const std::string path = "/" + service->full_name() + "/" + m->name();
      int variant = 0;
      for (const auto& request : variants(m->input_type(), fill, factory)) {
        const Answer a = call(stub, path, *request, worker ? worker_token : token, timeout);
        ++calls;
        const std::string& msg = a.status.error_message();
        std::vector<std::string> problems;
        if (msg.size() > kMaxMessage) problems.push_back("message of " + std::to_string(msg.size()) + " bytes");
        if (has_long_run(msg, 'x')) problems.push_back("echoes the long input");
        for (const auto& p : forbid)
          if (!p.empty() && msg.find(p) != std::string::npos) problems.push_back("names the server path " + p);
        for (const auto& r : a.responses)
          if (has_long_run(r, 'x')) problems.push_back("a response echoes the long input");
        if (a.status.error_code() == grpc::UNKNOWN || a.status.error_code() == grpc::INTERNAL)
          problems.push_back("answered " + std::to_string(a.status.error_code()) + " (a crash or an unchecked input?)");
        std::printf("%s #%d: %d (%zu bytes) %.160s%s\n", path.c_str(), variant, static_cast<int>(a.status.error_code()),
                    msg.size(), msg.c_str(), problems.empty() ? "" : "  <-- FINDING");
        for (const auto& p : problems) std::printf("    %s\n", p.c_str());
        findings += problems.empty() ? 0 : 1;
        ++variant;
      }
    }
  }
  std::printf("%d calls, %d with findings\n", calls, findings);
  return findings ? 1 : 0;
}
