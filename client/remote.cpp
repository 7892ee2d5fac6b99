#include "client/remote.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "service/metrics.h"

namespace qdm::cli {

std::shared_ptr<grpc::Channel> RemoteArgs::channel() const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  return grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args);
}

void RemoteArgs::apply(grpc::ClientContext& ctx) const {
  if (timeout > 0)
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000)));
}

void add_remote_options(CLI::App* cmd, RemoteArgs& args) {
  cmd->add_option("--server", args.server, "qdm-scheduler address")->envname("QDM_SERVER")->capture_default_str();
  cmd->add_option("--timeout", args.timeout, "Deadline of the call in seconds (0: none)")->capture_default_str();
}

RpcError::RpcError(const grpc::Status& status)
    : std::runtime_error(std::string(service::status_code_name(status.error_code())) + ": " + status.error_message()),
      code(status.error_code()) {}

void check(const grpc::Status& status) {
  if (!status.ok()) throw RpcError(status);
}

}  // namespace qdm::cli
