#include "client/remote.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "service/auth.h"
#include "service/metrics.h"

namespace qdm::cli {

std::shared_ptr<grpc::Channel> RemoteArgs::channel() const {
  const service::TlsFiles tls{tls_cert, tls_key, tls_ca, tls_server_name};
  return grpc::CreateCustomChannel(server, service::channel_credentials(tls), service::channel_arguments(tls, 256 << 20));
}

void RemoteArgs::apply(grpc::ClientContext& ctx) const {
  service::add_bearer(ctx, token);
  if (timeout > 0)
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000)));
}

void add_remote_options(CLI::App* cmd, RemoteArgs& args) {
  cmd->add_option("--server", args.server, "qdm-scheduler address")->envname("QDM_SERVER")->capture_default_str();
  cmd->add_option("--timeout", args.timeout, "Deadline of the call in seconds (0: none)")->capture_default_str();
  cmd->add_option("--token", args.token, "Bearer token")->envname("QDM_TOKEN");
  cmd->add_option("--tls-ca", args.tls_ca, "CA of the server certificate: connect with TLS")->envname("QDM_TLS_CA");
  cmd->add_option("--tls-cert", args.tls_cert, "Client certificate (PEM) for servers that require one")->envname("QDM_TLS_CERT");
  cmd->add_option("--tls-key", args.tls_key, "Key of --tls-cert")->envname("QDM_TLS_KEY");
  cmd->add_option("--tls-server-name", args.tls_server_name, "Name to check in the server certificate")->envname("QDM_TLS_SERVER_NAME");
}

RpcError::RpcError(const grpc::Status& status)
    : std::runtime_error(std::string(service::status_code_name(status.error_code())) + ": " + status.error_message()),
      code(status.error_code()) {}

void check(const grpc::Status& status) {
  if (!status.ok()) throw RpcError(status);
}

}  // namespace qdm::cli
