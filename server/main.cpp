// qdm-scheduler: accepts quantize jobs and sample requests over gRPC, persists jobs in SQLite,
// stores models and artifacts, and dispatches work to qdm-worker processes.
//
//   qdm-scheduler --data var/qdm --model-root models --listen 0.0.0.0:50051 --metrics 0.0.0.0:9464
//
// Every flag can also come from the environment (QDM_<FLAG>) or a config file (--config).
#include <CLI/CLI.hpp>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "format/job_memory.h"
#include "server/job_store.h"
#include "server/model_store.h"
#include "server/postgres_connection.h"
#include "server/models_service.h"
#include "server/quantize_jobs_service.h"
#include "server/sampling_proxy.h"
#include "server/scheduler_metrics.h"
#include "server/worker_gateway_service.h"
#include "server/worker_directory.h"
#include "server/worker_registry.h"
#include "service/auth.h"
#include "service/health_names.h"
#include "service/reflection_v1.h"
#include "service/rpc_interceptor.h"
#include "service/logging.h"
#include "service/shutdown_signals.h"

namespace {

struct Flags {
  std::string listen = "0.0.0.0:50051";
  std::string metrics = "0.0.0.0:9464";
  std::string data = "var/qdm";
  std::string store;  // empty: sqlite:<data>/qdm.db
  std::string max_job_memory;     // empty: default_job_memory()
  std::string max_sample_memory;  // empty: half of default_job_memory()
  double store_wait_seconds = 60;
  std::vector<std::string> model_roots = {"models"};
  double lease_seconds = 15;
  int max_attempts = 3;
  int max_queued_jobs = 100;
  int max_images = 64;
  int64_t max_upload_bytes = int64_t(2) << 30;
  bool log_json = false;
  std::string log_level = "info";
  qdm::service::TlsFiles tls;
  qdm::service::TlsFiles worker_tls;  // how the scheduler dials workers: ca (their certificates), cert/key (mTLS)
  std::string tokens_file, tokens, worker_token, health_listen;
  qdm::ModelLimits model_limits;
};

// 80% of MemTotal (/proc/meminfo), or no limit where it cannot be read.
int64_t default_job_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  while (in >> key >> kib)
    if (key == "MemTotal:") return kib * 1024 / 5 * 4;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace qdm;
  CLI::App app{"qdm-scheduler: quantize jobs and sampling over gRPC"};
  Flags f;
  app.set_config("--config", "", "TOML/INI file with the same option names");
  app.add_option("--listen", f.listen, "gRPC address (public API and worker protocol)")->envname("QDM_LISTEN")->capture_default_str();
  app.add_option("--metrics", f.metrics, "Prometheus /metrics address")->envname("QDM_METRICS")->capture_default_str();
  app.add_option("--data", f.data, "Folder of the job store (qdm.db), models and artifacts")->envname("QDM_DATA")->capture_default_str();
  app.add_option("--store", f.store,
                 "Job store: sqlite:PATH (default: sqlite:<data>/qdm.db, one scheduler) or a postgresql:// URL (shared by "
                 "scheduler replicas; models and artifacts then belong on storage every replica reads)")
      ->envname("QDM_STORE");
  app.add_option("--store-wait", f.store_wait_seconds,
                 "Seconds to keep retrying a PostgreSQL store that cannot be reached at start (a database starting "
                 "beside the scheduler, a failover); 0 fails at once")
      ->envname("QDM_STORE_WAIT")->capture_default_str()->check(CLI::Range(0.0, 3600.0));
  app.add_option("--model-root", f.model_roots, "Read-only folders of model folders (repeatable)")->envname("QDM_MODEL_ROOT")->capture_default_str();
  app.add_option("--lease-seconds", f.lease_seconds, "A job's lease expires after this long without a heartbeat")->envname("QDM_LEASE_SECONDS")->capture_default_str()->check(CLI::Range(1.0, 3600.0));
  app.add_option("--max-attempts", f.max_attempts, "Leases per job before it fails")->envname("QDM_MAX_ATTEMPTS")->capture_default_str()->check(CLI::Range(1, 100));
  // A byte size flag: what parse_bytes takes, or its message.
  const auto byte_size = [](const std::string& v) {
    try {
      qdm::parse_bytes(v);
      return std::string();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  };
  app.add_option("--max-job-memory", f.max_job_memory,
                 "Memory a quantize job may use at its peak (bytes, or 8Gi, 512Mi, ...), estimated from its options and "
                 "the model before it is queued (Submit answers RESOURCE_EXHAUSTED over it; 0: no limit; default: 80% of "
                 "this machine's memory; the chart sets the workers' memory limit)")
      ->envname("QDM_MAX_JOB_MEMORY")
      ->check(byte_size);
  app.add_option("--max-sample-memory", f.max_sample_memory,
                 "Memory a sample request may use on a worker at its peak (bytes, or 2Gi, ...), estimated from its "
                 "images' number and size and the model before it is queued (Sample answers RESOURCE_EXHAUSTED over it; "
                 "0: no limit; default: 40% of this machine's memory; the chart sets the sampling pods' memory limit)")
      ->envname("QDM_MAX_SAMPLE_MEMORY")
      ->check(byte_size);
  app.add_option("--max-queued-jobs", f.max_queued_jobs, "Queued jobs before Submit answers RESOURCE_EXHAUSTED")->envname("QDM_MAX_QUEUED_JOBS")->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--max-images", f.max_images, "Images per sample request")->envname("QDM_MAX_IMAGES")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--max-upload-bytes", f.max_upload_bytes, "Largest model upload")->envname("QDM_MAX_UPLOAD_BYTES")->capture_default_str();
  app.add_option("--max-model-parameters", f.model_limits.max_parameters, "Largest model (parameters its config implies) uploads and model roots may hold")->envname("QDM_MAX_MODEL_PARAMETERS")->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  app.add_option("--max-model-channels", f.model_limits.max_channels, "Largest channel count in a model config")->envname("QDM_MAX_MODEL_CHANNELS")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--max-model-levels", f.model_limits.max_levels, "Most entries of block_out_channels")->envname("QDM_MAX_MODEL_LEVELS")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--max-model-layers-per-block", f.model_limits.max_layers_per_block, "Largest layers_per_block")->envname("QDM_MAX_MODEL_LAYERS_PER_BLOCK")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--max-model-sample-size", f.model_limits.max_sample_size, "Largest sample_size (pixels per side)")->envname("QDM_MAX_MODEL_SAMPLE_SIZE")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  app.add_flag("--log-json", f.log_json, "One JSON object per log line")->envname("QDM_LOG_JSON");
  app.add_option("--log-level", f.log_level, "trace, debug, info, warn, error")->envname("QDM_LOG_LEVEL")->capture_default_str();
  app.add_option("--tls-cert", f.tls.cert, "PEM certificate chain: TLS on --listen")->envname("QDM_TLS_CERT");
  app.add_option("--tls-key", f.tls.key, "PEM private key of --tls-cert")->envname("QDM_TLS_KEY");
  app.add_option("--tls-client-ca", f.tls.ca, "Require client certificates signed by this CA")->envname("QDM_TLS_CLIENT_CA");
  app.add_option("--tokens-file", f.tokens_file, "Bearer tokens: lines 'TOKEN read|write'")->envname("QDM_TOKENS_FILE");
  app.add_option("--tokens", f.tokens, "Bearer tokens: 'TOKEN:read|write,...'")->envname("QDM_TOKENS");
  app.add_option("--worker-token", f.worker_token, "Token workers and the scheduler share")->envname("QDM_WORKER_TOKEN");
  app.add_option("--worker-ca", f.worker_tls.ca,
                 "CA of the workers' certificates: the scheduler calls workers over TLS and refuses workers without it "
                 "(required with --tls-cert)")->envname("QDM_WORKER_CA");
  app.add_option("--worker-server-name", f.worker_tls.server_name,
                 "Name checked in every worker's certificate (default: the host of its advertised address)")
      ->envname("QDM_WORKER_SERVER_NAME");
  app.add_option("--worker-client-cert", f.worker_tls.cert, "Client certificate for workers that require one (mutual TLS)")
      ->envname("QDM_WORKER_CLIENT_CERT");
  app.add_option("--worker-client-key", f.worker_tls.key, "PEM private key of --worker-client-cert")->envname("QDM_WORKER_CLIENT_KEY");
  app.add_option("--health-listen", f.health_listen, "Plaintext grpc.health.v1 only (probes when --listen has TLS)")->envname("QDM_HEALTH_LISTEN");
  CLI11_PARSE(app, argc, argv);
  service::setup_logging(f.log_json, f.log_level, "scheduler");

  service::ShutdownSignals signals;  // before any thread starts

  try {
    std::filesystem::create_directories(f.data);
    {  // The job store and uploads need a writable state directory: say so before SQLite does.
      const auto probe = std::filesystem::path(f.data) / ".write-test";
      std::ofstream out(probe);
      if (!out || !(out << "x") || !out.flush()) {
        spdlog::error("the state directory {} is read-only or not writable (the job store, uploads and artifacts live "
                      "there); give --data (QDM_DATA) a writable folder or volume",
                      f.data);
        return 1;
      }
      out.close();
      std::filesystem::remove(probe);
    }
    const std::string store_url = f.store.empty() ? "sqlite:" + (std::filesystem::path(f.data) / "qdm.db").string() : f.store;
    std::unique_ptr<server::JobStore> job_store;
    const auto store_deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(f.store_wait_seconds);
    spdlog::info("opening the job store {}", store_url);  // the log formatter redacts its secrets (service/redact.h)
    while (!job_store) {
      try {
        job_store = server::open_job_store(store_url, {f.max_attempts, std::min(2.0, f.lease_seconds / 2), f.max_queued_jobs});
      } catch (const server::pg::Unreachable& e) {
        if (std::chrono::steady_clock::now() >= store_deadline) throw;
        spdlog::warn("{}; retrying (--store-wait {} s)", e.what(), f.store_wait_seconds);
        if (signals.wait_for(std::chrono::seconds(2))) return 0;
      }
    }
    server::JobStore& jobs = *job_store;
    spdlog::info("job store: {}", server::describe_store_url(store_url));
    if (int n = jobs.renew_leases_after_restart(f.lease_seconds))
      spdlog::info("{} leased job(s) from before the restart: waiting {} s for their workers", n, f.lease_seconds);
    server::ModelStore models(f.data, f.model_roots, f.model_limits, store_url.rfind("sqlite:", 0) != 0);
    service::MetricsServer metrics_server(f.metrics, "scheduler");
    server::SchedulerMetrics metrics(metrics_server.registry());
    const service::TokenAuth auth = service::TokenAuth::load(f.tokens_file, f.tokens, f.worker_token);
    // The worker protocol hands out model weights, job leases and sampling traffic: it is open
    // only when nothing else is protected (a development setup on a trusted network).
    const bool protected_api = !auth.api_open() || !f.tls.cert.empty();
    if (f.worker_token.empty() && protected_api) {
      spdlog::error("API tokens or TLS are configured but no worker token: the worker protocol (model weights, job "
                    "leases, the worker registry) would be open to anyone who reaches --listen. Set --worker-token "
                    "(QDM_WORKER_TOKEN) to a shared secret and give the workers the same one");
      return 1;
    }
    // With TLS on the API, the scheduler's calls to workers (which carry the worker token) are
    // encrypted too.
    if (!f.tls.cert.empty() && f.worker_tls.ca.empty()) {
      spdlog::error("--tls-cert is set but no --worker-ca: the scheduler's calls to workers, which carry the worker "
                    "token, would cross the network in plaintext. Give the workers certificates (--tls-cert/--tls-key "
                    "on qdm-worker) and the scheduler their CA with --worker-ca (QDM_WORKER_CA)");
      return 1;
    }
    if (f.worker_tls.cert.empty() != f.worker_tls.key.empty()) {
      spdlog::error("--worker-client-cert and --worker-client-key go together");
      return 1;
    }
    if (f.worker_token.empty())
      spdlog::warn("development mode: no API tokens, no TLS and no worker token; anyone who reaches port {} can "
                   "submit jobs, fetch model weights and register as a worker",
                   f.listen.substr(f.listen.rfind(':') + 1));
    const std::unique_ptr<server::WorkerDirectory> directory = server::open_worker_directory(store_url);
    server::WorkerRegistry workers(std::chrono::milliseconds(static_cast<int64_t>(f.lease_seconds * 1000)),
                                   service::channel_credentials(f.worker_tls), f.worker_token, directory.get(),
                                   f.worker_tls.server_name);
    service::Limits limits;
    limits.max_images = f.max_images;
    limits.max_job_memory = f.max_job_memory.empty() ? default_job_memory() : parse_bytes(f.max_job_memory);
    spdlog::info("quantize jobs may use {} each (--max-job-memory)",
                 limits.max_job_memory > 0 ? "up to " + format_bytes(limits.max_job_memory) : std::string("any memory"));
    limits.max_sample_memory = f.max_sample_memory.empty() ? default_job_memory() / 2 : parse_bytes(f.max_sample_memory);
    spdlog::info("sample requests may use {} each (--max-sample-memory)",
                 limits.max_sample_memory > 0 ? "up to " + format_bytes(limits.max_sample_memory) : std::string("any memory"));
    server::LeaseSettings lease;
    lease.lease_seconds = f.lease_seconds;
    lease.heartbeat_ms = static_cast<int>(std::min(1000.0, f.lease_seconds * 1000 / 4));
    lease.require_worker_tls = !f.worker_tls.ca.empty();

    server::QuantizeJobsService jobs_service(auth, jobs, models, metrics, limits);
    server::ModelsService models_service(auth, models, jobs, metrics, f.max_upload_bytes);
    server::SamplingProxy sampling(auth, models, workers, metrics, limits);
    server::WorkerGatewayService gateway(auth, jobs, models, workers, metrics, lease);

    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(f.listen, service::server_credentials(f.tls), &port);
    service::add_rpc_interceptor(builder, metrics.rpc);  // request metrics and safe statuses, every method
    builder.SetMaxReceiveMessageSize(16 << 20);
    builder.SetMaxSendMessageSize(64 << 20);
    builder.RegisterService(&jobs_service);
    builder.RegisterService(&models_service);
    builder.RegisterService(&sampling);
    builder.RegisterService(&gateway);
    const std::vector<std::string> services = {"qdm.v1.QuantizeJobs", "qdm.v1.Models", "qdm.v1.Sampling",
                                               "qdm.v1.WorkerGateway"};
    std::vector<std::string> listed = services;
    listed.insert(listed.end(), {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                                 "grpc.reflection.v1.ServerReflection"});
    service::ReflectionV1 reflection_v1(listed);
    builder.RegisterService(&reflection_v1);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server || port == 0) {
      spdlog::error("cannot listen on {}", f.listen);
      return 1;
    }
    auto* health = server->GetHealthCheckService();
    health->SetServingStatus(false);
    // Kubernetes' gRPC probes speak plaintext: with TLS on --listen they use this port.
    std::unique_ptr<grpc::Server> health_server;
    if (!f.health_listen.empty()) {
      grpc::ServerBuilder hb;
      hb.AddListeningPort(f.health_listen, grpc::InsecureServerCredentials());
      health_server = hb.BuildAndStart();
      if (!health_server) throw std::runtime_error("cannot listen on " + f.health_listen);
      health_server->GetHealthCheckService()->SetServingStatus(false);
    }
    auto set_serving = [&](bool serving) {
      service::set_serving({health, health_server ? health_server->GetHealthCheckService() : nullptr}, services, serving);
    };
    set_serving(false);  // every name answers NOT_SERVING (not NOT_FOUND) until the store is ready

    // Lease expiry and the store gauges.
    std::atomic<bool> stop{false};
    std::thread maintenance([&] {
      while (!stop) {
        try {
          for (const auto& id : jobs.expire_leases()) spdlog::warn("job {}: lease expired", id);
          const auto counts = jobs.count_by_state();
          for (auto& [state, gauge] : metrics.jobs) {
            auto it = counts.find(state);
            gauge->Set(it == counts.end() ? 0 : static_cast<double>(it->second));
          }
          auto q = counts.find(v1::Job::QUEUED);
          metrics.queue_depth.Set(q == counts.end() ? 0 : static_cast<double>(q->second));
          metrics.workers.Set(workers.connected());
        } catch (const std::exception& e) {
          spdlog::error("maintenance: {}", e.what());
        }
        for (int i = 0; i < 5 && !stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });

    set_serving(true);
    spdlog::info("qdm-scheduler listening on port {}{} (metrics on port {}), data in {}; API tokens {}; workers over {}", port,
                 f.tls.cert.empty() ? "" : " with TLS", metrics_server.port(), f.data,
                 auth.api_open() ? "off" : "required",
                 f.worker_tls.ca.empty() ? "plaintext" : f.worker_tls.cert.empty() ? "TLS" : "mutual TLS");

    const int sig = signals.wait();
    spdlog::info("signal {}: shutting down", sig);
    set_serving(false);
    jobs_service.shutdown();
    gateway.shutdown();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (health_server) health_server->Shutdown();
    stop = true;
    maintenance.join();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
