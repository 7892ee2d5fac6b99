#include "worker/sampling_node.h"

#include <CLI/CLI.hpp>
#include <grpcpp/create_channel.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "service/health_names.h"
#include "service/limits.h"
#include "service/metrics.h"
#include "service/reflection_v1.h"
#include "service/rpc_interceptor.h"
#include "service/scheduler_target.h"
#include "worker/sampling_service.h"
#include "worker/scheduler_link.h"

namespace qdm::worker {

void add_node_options(CLI::App& app, NodeOptions& o) {
  app.set_config("--config", "", "TOML/INI file with the same option names");
  app.add_option("--scheduler", o.scheduler,
                 "Scheduler address: host:port, a gRPC target (dns:///name:port), or IP:port,IP:port,... of "
                 "replicas on a shared PostgreSQL store (fails over between them)")->envname("QDM_SCHEDULER")->capture_default_str();
  app.add_option("--listen", o.listen, "Address of this node's Sampling service")->envname("QDM_LISTEN")->capture_default_str();
  app.add_option("--advertise", o.advertise, "Address the scheduler reaches this node at (default: hostname:port)")->envname("QDM_ADVERTISE");
  app.add_option("--id", o.id, "Stable node id (default: the advertised address)")->envname("QDM_WORKER_ID");
  app.add_option("--metrics", o.metrics, "Prometheus /metrics address")->envname("QDM_METRICS")->capture_default_str();
  app.add_option("--cache-dir", o.cache_dir, "Local copies of models and artifacts (and a worker's job scratch space and fp32 report images)")
      ->envname("QDM_CACHE_DIR")->capture_default_str();
  app.add_option("--max-loaded-models", o.max_models, "Models kept loaded")->envname("QDM_MAX_LOADED_MODELS")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--max-images", o.max_images, "Images per sample request")->envname("QDM_MAX_IMAGES")->capture_default_str();
  app.add_option("--max-batch", o.batching.max_batch, "Images per UNet batch")->envname("QDM_MAX_BATCH")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--max-queue-delay-ms", o.max_delay_ms, "How long the batcher waits for company")->envname("QDM_MAX_QUEUE_DELAY_MS")->capture_default_str()->check(CLI::Range(0, 60000));
  app.add_option("--max-queued-images", o.batching.max_queued_images, "Sampling queue bound (RESOURCE_EXHAUSTED beyond)")->envname("QDM_MAX_QUEUED_IMAGES")->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--batching", o.batching.enabled, "Merge compatible sample requests into one batch")->envname("QDM_BATCHING")->capture_default_str();
  app.add_option("--drain-seconds", o.drain_seconds, "On SIGTERM, wait this long for running jobs")->envname("QDM_DRAIN_SECONDS")->capture_default_str();
  app.add_flag("--log-json", o.log_json, "One JSON object per log line")->envname("QDM_LOG_JSON");
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")->envname("QDM_LOG_LEVEL")->capture_default_str();
  app.add_option("--worker-token", o.worker_token, "Token shared with the scheduler")->envname("QDM_WORKER_TOKEN");
  app.add_option("--scheduler-ca", o.scheduler_tls.ca, "CA of the scheduler's TLS certificate (TLS to the scheduler)")->envname("QDM_SCHEDULER_CA");
  app.add_option("--scheduler-server-name", o.scheduler_tls.server_name, "Name to check in the scheduler's certificate")->envname("QDM_SCHEDULER_SERVER_NAME");
  app.add_option("--scheduler-client-cert", o.scheduler_tls.cert, "Client certificate for a scheduler that requires one (its --tls-client-ca)")
      ->envname("QDM_SCHEDULER_CLIENT_CERT");
  app.add_option("--scheduler-client-key", o.scheduler_tls.key, "PEM private key of --scheduler-client-cert")->envname("QDM_SCHEDULER_CLIENT_KEY");
  app.add_option("--tls-cert", o.tls.cert, "PEM certificate chain: TLS on --listen (required when the scheduler is reached over TLS)")
      ->envname("QDM_TLS_CERT");
  app.add_option("--tls-key", o.tls.key, "PEM private key of --tls-cert")->envname("QDM_TLS_KEY");
  app.add_option("--health-listen", o.health_listen, "Plaintext grpc.health.v1 only (probes when --listen has TLS)")
      ->envname("QDM_HEALTH_LISTEN");
  app.add_option("--tls-client-ca", o.tls.ca, "Require the scheduler's client certificate, signed by this CA (mutual TLS)")
      ->envname("QDM_TLS_CLIENT_CA");
}

std::string node_options_error(const NodeOptions& o) {
  // The Sampling port serves the scheduler only: closed by the worker token unless the whole
  // deployment is open (no token, no TLS to the scheduler: a development setup).
  if (o.worker_token.empty() && !o.scheduler_tls.ca.empty())
    return "--scheduler-ca is set but no worker token: this node's Sampling port and its calls to the scheduler would be "
           "unauthenticated. Set --worker-token (QDM_WORKER_TOKEN) to the scheduler's";
  // TLS to the scheduler means a protected deployment: the scheduler's calls to this node,
  // which carry the worker token, must not come back in plaintext.
  if (!o.scheduler_tls.ca.empty() && o.tls.cert.empty())
    return "--scheduler-ca is set but this node's Sampling port has no TLS: the scheduler's calls, which carry the worker "
           "token, would cross the network in plaintext. Set --tls-cert and --tls-key (QDM_TLS_CERT, QDM_TLS_KEY) and give "
           "the scheduler their CA (--worker-ca)";
  if (o.scheduler_tls.cert.empty() != o.scheduler_tls.key.empty())
    return "--scheduler-client-cert and --scheduler-client-key go together";
  return "";
}

int run_node(NodeOptions o, const NodeRole& role, service::ShutdownSignals& signals) {
  o.batching.max_delay = std::chrono::milliseconds(o.max_delay_ms);
  if (const std::string error = node_options_error(o); !error.empty()) {
    spdlog::error("{}", error);
    return 1;
  }
  if (o.worker_token.empty())
    spdlog::warn("development mode: no worker token; anyone who reaches this node's Sampling port ({}) can "
                 "sample from the models it has loaded",
                 o.listen);
  service::MetricsServer metrics_server(o.metrics, role.program == "qdm-sampler" ? "sampler" : "worker");
  WorkerMetrics metrics(metrics_server.registry(), role.device);
  const service::TokenAuth auth = service::TokenAuth::load("", "", o.worker_token);
  auto channel = grpc::CreateCustomChannel(service::scheduler_target(o.scheduler), service::channel_credentials(o.scheduler_tls),
                                           service::channel_arguments(o.scheduler_tls, 64 << 20));
  auto gateway = v1::WorkerGateway::NewStub(channel);
  ModelFetcher fetcher(o.cache_dir + "/files", *gateway, o.worker_token);
  ModelCache cache(fetcher, static_cast<size_t>(o.max_models), metrics, role.loader);
  SampleBatcher batcher(cache, o.batching, metrics);
  service::Limits limits;
  limits.max_images = o.max_images;
  SamplingService sampling(auth, batcher, metrics, limits);
  std::unique_ptr<LeaseHolder> jobs = role.jobs ? role.jobs(fetcher, *gateway, metrics) : nullptr;

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(o.listen, service::server_credentials(o.tls), &port);
  service::add_rpc_interceptor(builder, metrics.rpc);  // request metrics and safe statuses, every method
  builder.SetMaxSendMessageSize(64 << 20);
  builder.RegisterService(&sampling);
  const std::vector<std::string> services = {"qdm.v1.Sampling"};
  service::ReflectionV1 reflection_v1({"qdm.v1.Sampling", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                                       "grpc.reflection.v1.ServerReflection"});
  builder.RegisterService(&reflection_v1);
  auto server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::error("cannot listen on {}", o.listen);
    return 1;
  }
  auto* health = server->GetHealthCheckService();
  // Kubernetes' gRPC probes speak plaintext: with TLS on --listen they use this port.
  std::unique_ptr<grpc::Server> health_server;
  if (!o.health_listen.empty()) {
    grpc::ServerBuilder hb;
    hb.AddListeningPort(o.health_listen, grpc::InsecureServerCredentials());
    health_server = hb.BuildAndStart();
    if (!health_server) {
      spdlog::error("cannot listen on {}", o.health_listen);
      return 1;
    }
  }
  const std::vector<grpc::HealthCheckServiceInterface*> healths = {health,
                                                                   health_server ? health_server->GetHealthCheckService() : nullptr};
  service::set_serving(healths, services, false);  // until the scheduler has heard from us
  if (o.advertise.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    o.advertise = std::string(host) + ":" + std::to_string(port);
  }
  v1::WorkerInfo info;
  info.set_id(o.id.empty() ? o.advertise : o.id);
  info.set_address(o.advertise);
  info.set_version(QDM_VERSION);
  info.set_job_slots(jobs ? role.job_slots : 0);
  info.set_sampling_only(jobs == nullptr);
  info.set_max_batch(o.batching.max_batch);
  info.set_device(role.device);
  info.set_tls(!o.tls.cert.empty());
  std::atomic<bool> serving{false};
  SchedulerLink link(*gateway, info, jobs.get(), cache, batcher, o.worker_token, [&](bool ok) {
    if (ok && !serving.exchange(true)) service::set_serving(healths, services, true);
  });
  spdlog::info("{} {} listening on port {}{} (metrics on port {}), scheduler {}, sampling on {}{}", role.program, info.id(), port,
               o.tls.cert.empty() ? "" : o.tls.ca.empty() ? " with TLS" : " with mutual TLS", metrics_server.port(), o.scheduler,
               info.device(), jobs ? "" : ", sampling only");

  const int sig = signals.wait();
  spdlog::info("signal {}: draining{}", sig, jobs ? " (up to " + std::to_string(o.drain_seconds) + " s for running jobs)" : "");
  link.set_draining();
  service::set_serving(healths, services, false);
  if (jobs) jobs->drain(std::chrono::seconds(o.drain_seconds));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (health_server) health_server->Shutdown();
  batcher.stop();
  link.stop();
  spdlog::info("drained; bye");
  return 0;
}

}  // namespace qdm::worker
