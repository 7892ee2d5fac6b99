// What the service commands (submit, jobs, generate, models) share: the --server option, the
// channel, and turning a failed call into an error that names the status code and the
// server's message (the process exits 1 with "error: CODE: message").
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <stdexcept>
#include <string>

namespace qdm::cli {

struct RemoteArgs {
  std::string server = "localhost:50051";
  double timeout = 0;  // seconds; 0: none
  std::string token;   // bearer token
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
  std::shared_ptr<grpc::Channel> channel() const;
  void apply(grpc::ClientContext& ctx) const;  // deadline and token
};
void add_remote_options(CLI::App* cmd, RemoteArgs& args);

class RpcError : public std::runtime_error {
 public:
  explicit RpcError(const grpc::Status& status);
  grpc::StatusCode code;
};
// Throws RpcError for a non-OK status.
void check(const grpc::Status& status);

void add_submit_command(CLI::App& app);
void add_jobs_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_models_command(CLI::App& app);
void add_health_command(CLI::App& app);

}  // namespace qdm::cli
