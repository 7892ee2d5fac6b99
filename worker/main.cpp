// qdm-worker: runs quantize jobs leased from the scheduler and serves sampling (fp32 models and
// quantized artifacts on the integer kernels) with dynamic batching, on the CPU or a CUDA GPU
// (--device; quantize jobs always run on the CPU).
//
//   qdm-worker --scheduler localhost:50051 --listen 0.0.0.0:50052 --advertise localhost:50052
//
// SIGTERM drains: the worker stops taking work, finishes its jobs (up to --drain-seconds) and
// exits. Every flag can also come from the environment (QDM_<FLAG>) or a config file (--config).
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


#include "engine/runtime/device.h"
#include "engine/util/allocator.h"
#include "engine/util/threads.h"
#include "service/auth.h"
#include "service/health_names.h"
#include "service/reflection_v1.h"
#include "service/rpc_interceptor.h"
#include "service/scheduler_target.h"
#include "service/logging.h"
#include "service/shutdown_signals.h"
#include "worker/job_runner.h"
#include "worker/model_cache.h"
#include "worker/sample_batcher.h"
#include "worker/sampling_service.h"
#include "worker/scheduler_link.h"
#include "worker/worker_metrics.h"

int main(int argc, char** argv) {
  using namespace qdm;
  ensure_passive_omp_wait(argv);
  keep_freed_tensor_memory();
  CLI::App app{"qdm-worker: quantize jobs and sampling for a qdm-scheduler"};
  std::string scheduler = "localhost:50051", listen = "0.0.0.0:50052", advertise, id, metrics_addr = "0.0.0.0:9465";
  std::string device_option = "auto";
  std::string cache_dir = "var/qdm-worker", classifier = "models/fmnist-classifier", log_level = "info";
  int max_models = 2, job_slots = 1, max_images = 64, drain_seconds = 600;
  bool log_json = false;
  std::string worker_token, health_listen;
  service::TlsFiles scheduler_tls;  // to the scheduler: its CA, this worker's client certificate (mTLS)
  service::TlsFiles tls;            // this worker's Sampling port: certificate, key, client CA (mTLS)
  worker::BatchingOptions batching;
  int max_delay_ms = 10;
  app.set_config("--config", "", "TOML/INI file with the same option names");
  app.add_option("--scheduler", scheduler,
                 "Scheduler address: host:port, a gRPC target (dns:///name:port), or IP:port,IP:port,... of "
                 "replicas on a shared PostgreSQL store (fails over between them)")->envname("QDM_SCHEDULER")->capture_default_str();
  app.add_option("--listen", listen, "Address of this worker's Sampling service")->envname("QDM_LISTEN")->capture_default_str();
  app.add_option("--advertise", advertise, "Address the scheduler reaches this worker at (default: hostname:port)")->envname("QDM_ADVERTISE");
  app.add_option("--id", id, "Stable worker id (default: the advertised address)")->envname("QDM_WORKER_ID");
  app.add_option("--metrics", metrics_addr, "Prometheus /metrics address")->envname("QDM_METRICS")->capture_default_str();
  app.add_option("--device", device_option, "Where sampling runs: cpu, cuda, cuda:N, or auto (a GPU when this build and node have one)")
      ->envname("QDM_DEVICE")->capture_default_str();
  app.add_option("--cache-dir", cache_dir, "Local copies of models and artifacts, job scratch space, fp32 report images")->envname("QDM_CACHE_DIR")->capture_default_str();
  app.add_option("--classifier", classifier, "Fashion-MNIST classifier for FID in job reports")->envname("QDM_CLASSIFIER")->capture_default_str();
  app.add_option("--max-loaded-models", max_models, "Models kept loaded")->envname("QDM_MAX_LOADED_MODELS")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--job-slots", job_slots, "Quantize jobs run at once (0: sampling only)")->envname("QDM_JOB_SLOTS")->capture_default_str()->check(CLI::Range(0, 16));
  app.add_option("--max-images", max_images, "Images per sample request")->envname("QDM_MAX_IMAGES")->capture_default_str();
  app.add_option("--max-batch", batching.max_batch, "Images per UNet batch")->envname("QDM_MAX_BATCH")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--max-queue-delay-ms", max_delay_ms, "How long the batcher waits for company")->envname("QDM_MAX_QUEUE_DELAY_MS")->capture_default_str()->check(CLI::Range(0, 60000));
  app.add_option("--max-queued-images", batching.max_queued_images, "Sampling queue bound (RESOURCE_EXHAUSTED beyond)")->envname("QDM_MAX_QUEUED_IMAGES")->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--batching", batching.enabled, "Merge compatible sample requests into one batch")->envname("QDM_BATCHING")->capture_default_str();
  app.add_option("--drain-seconds", drain_seconds, "On SIGTERM, wait this long for running jobs")->envname("QDM_DRAIN_SECONDS")->capture_default_str();
  app.add_flag("--log-json", log_json, "One JSON object per log line")->envname("QDM_LOG_JSON");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->envname("QDM_LOG_LEVEL")->capture_default_str();
  app.add_option("--worker-token", worker_token, "Token shared with the scheduler")->envname("QDM_WORKER_TOKEN");
  app.add_option("--scheduler-ca", scheduler_tls.ca, "CA of the scheduler's TLS certificate (TLS to the scheduler)")->envname("QDM_SCHEDULER_CA");
  app.add_option("--scheduler-server-name", scheduler_tls.server_name, "Name to check in the scheduler's certificate")->envname("QDM_SCHEDULER_SERVER_NAME");
  app.add_option("--scheduler-client-cert", scheduler_tls.cert, "Client certificate for a scheduler that requires one (its --tls-client-ca)")
      ->envname("QDM_SCHEDULER_CLIENT_CERT");
  app.add_option("--scheduler-client-key", scheduler_tls.key, "PEM private key of --scheduler-client-cert")->envname("QDM_SCHEDULER_CLIENT_KEY");
  app.add_option("--tls-cert", tls.cert, "PEM certificate chain: TLS on --listen (required when the scheduler is reached over TLS)")
      ->envname("QDM_TLS_CERT");
  app.add_option("--tls-key", tls.key, "PEM private key of --tls-cert")->envname("QDM_TLS_KEY");
  app.add_option("--health-listen", health_listen, "Plaintext grpc.health.v1 only (probes when --listen has TLS)")
      ->envname("QDM_HEALTH_LISTEN");
  app.add_option("--tls-client-ca", tls.ca, "Require the scheduler's client certificate, signed by this CA (mutual TLS)")
      ->envname("QDM_TLS_CLIENT_CA");
  CLI11_PARSE(app, argc, argv);
  service::setup_logging(log_json, log_level, "worker");
  batching.max_delay = std::chrono::milliseconds(max_delay_ms);

  service::ShutdownSignals signals;  // before any thread starts

  try {
    // The Sampling port serves the scheduler only: closed by the worker token unless the whole
    // deployment is open (no token, no TLS to the scheduler: a development setup).
    if (worker_token.empty() && !scheduler_tls.ca.empty()) {
      spdlog::error("--scheduler-ca is set but no worker token: this worker's Sampling port and its calls to the "
                    "scheduler would be unauthenticated. Set --worker-token (QDM_WORKER_TOKEN) to the scheduler's");
      return 1;
    }
    // TLS to the scheduler means a protected deployment: the scheduler's calls to this worker,
    // which carry the worker token, must not come back in plaintext.
    if (!scheduler_tls.ca.empty() && tls.cert.empty()) {
      spdlog::error("--scheduler-ca is set but this worker's Sampling port has no TLS: the scheduler's calls, which carry "
                    "the worker token, would cross the network in plaintext. Set --tls-cert and --tls-key "
                    "(QDM_TLS_CERT, QDM_TLS_KEY) and give the scheduler their CA (--worker-ca)");
      return 1;
    }
    if (scheduler_tls.cert.empty() != scheduler_tls.key.empty()) {
      spdlog::error("--scheduler-client-cert and --scheduler-client-key go together");
      return 1;
    }
    if (worker_token.empty())
      spdlog::warn("development mode: no worker token; anyone who reaches this worker's Sampling port ({}) can "
                   "sample from the models it has loaded",
                   listen);
    const c10::Device device = parse_device(device_option);  // refuses a device this build or node lacks
    service::MetricsServer metrics_server(metrics_addr, "worker");
    set_compute_threads();
    worker::WorkerMetrics metrics(metrics_server.registry(), device.str());
    const service::TokenAuth auth = service::TokenAuth::load("", "", worker_token);
    auto channel = grpc::CreateCustomChannel(service::scheduler_target(scheduler), service::channel_credentials(scheduler_tls),
                                             service::channel_arguments(scheduler_tls, 64 << 20));
    auto gateway = v1::WorkerGateway::NewStub(channel);
    worker::ModelFetcher fetcher(cache_dir + "/files", *gateway, worker_token);
    worker::ModelCache cache(fetcher, static_cast<size_t>(max_models), metrics, device);
    worker::SampleBatcher batcher(cache, batching, metrics);
    service::Limits limits;
    limits.max_images = max_images;
    worker::SamplingService sampling(auth, batcher, metrics, limits);
    worker::JobRunner jobs(fetcher, *gateway, cache_dir + "/jobs", cache_dir + "/references", classifier, metrics,
                           job_slots, worker_token);

    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(listen, service::server_credentials(tls), &port);
    service::add_rpc_interceptor(builder, metrics.rpc);  // request metrics and safe statuses, every method
    builder.SetMaxSendMessageSize(64 << 20);
    builder.RegisterService(&sampling);
    const std::vector<std::string> services = {"qdm.v1.Sampling"};
    service::ReflectionV1 reflection_v1({"qdm.v1.Sampling", "grpc.health.v1.Health",
                                         "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"});
    builder.RegisterService(&reflection_v1);
    auto server = builder.BuildAndStart();
    if (!server || port == 0) {
      spdlog::error("cannot listen on {}", listen);
      return 1;
    }
    auto* health = server->GetHealthCheckService();
    // Kubernetes' gRPC probes speak plaintext: with TLS on --listen they use this port.
    std::unique_ptr<grpc::Server> health_server;
    if (!health_listen.empty()) {
      grpc::ServerBuilder hb;
      hb.AddListeningPort(health_listen, grpc::InsecureServerCredentials());
      health_server = hb.BuildAndStart();
      if (!health_server) throw std::runtime_error("cannot listen on " + health_listen);
    }
    const std::vector<grpc::HealthCheckServiceInterface*> healths = {
        health, health_server ? health_server->GetHealthCheckService() : nullptr};
    service::set_serving(healths, services, false);  // until the scheduler has heard from us
    if (advertise.empty()) {
      char host[256] = {0};
      gethostname(host, sizeof host - 1);
      advertise = std::string(host) + ":" + std::to_string(port);
    }
    v1::WorkerInfo info;
    info.set_id(id.empty() ? advertise : id);
    info.set_address(advertise);
    info.set_version(QDM_VERSION);
    info.set_job_slots(job_slots);
    info.set_max_batch(batching.max_batch);
    info.set_device(device.str());
    info.set_tls(!tls.cert.empty());
    std::atomic<bool> serving{false};
    worker::SchedulerLink link(*gateway, info, jobs, cache, batcher, worker_token, [&](bool ok) {
      if (ok && !serving.exchange(true)) service::set_serving(healths, services, true);
    });
    spdlog::info("qdm-worker {} listening on port {}{} (metrics on port {}), scheduler {}, sampling on {}", info.id(), port,
                 tls.cert.empty() ? "" : tls.ca.empty() ? " with TLS" : " with mutual TLS", metrics_server.port(), scheduler,
                 info.device());

    const int sig = signals.wait();
    spdlog::info("signal {}: draining (up to {} s for running jobs)", sig, drain_seconds);
    link.set_draining();
    service::set_serving(healths, services, false);
    jobs.drain(std::chrono::seconds(drain_seconds));
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (health_server) health_server->Shutdown();
    batcher.stop();
    link.stop();
    spdlog::info("drained; bye");
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
