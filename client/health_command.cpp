// qdm health: grpc.health.v1 Check against a scheduler or worker (what Kubernetes probes ask).
#include <fmt/format.h>

#include "client/remote.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace qdm::cli {

void add_health_command(CLI::App& app) {
  auto remote = std::make_shared<RemoteArgs>();
  auto service = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("health", "Ask a scheduler or worker whether it is serving (exit 0 if so)");
  add_remote_options(cmd, *remote);
  cmd->add_option("--service", *service, "Service name (empty: the whole server)");
  cmd->callback([remote, service] {
    auto stub = grpc::health::v1::Health::NewStub(remote->channel());
    grpc::ClientContext ctx;
    remote->apply(ctx);
    if (remote->timeout <= 0) ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(*service);
    grpc::health::v1::HealthCheckResponse resp;
    check(stub->Check(&ctx, req, &resp));
    const std::string status = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
    fmt::print("{}\n", status);
    if (resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) throw std::runtime_error("not serving");
  });
}

}  // namespace qdm::cli
