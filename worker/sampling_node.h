// What qdm-worker and qdm-sampler share: the flags of a node that serves qdm.v1.Sampling for a
// scheduler (addresses, worker token, TLS both ways, batching, model cache) and running one
// until SIGTERM: metrics, the model cache and batcher, the Sampling server (TLS, plaintext
// health port, reflection), the scheduler link, and the drain. The two programs differ only in
// their NodeRole: how models load and whether quantize jobs run.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "qdm/v1/worker.grpc.pb.h"
#include "service/auth.h"
#include "service/shutdown_signals.h"
#include "worker/lease_holder.h"
#include "worker/model_cache.h"
#include "worker/model_fetcher.h"
#include "worker/sample_batcher.h"
#include "worker/worker_metrics.h"

namespace CLI {
class App;
}

namespace qdm::worker {

struct NodeOptions {
  std::string scheduler = "localhost:50051", listen = "0.0.0.0:50052", advertise, id, metrics = "0.0.0.0:9465";
  std::string cache_dir = "var/qdm-worker", log_level = "info";
  int max_models = 2, max_images = 64, drain_seconds = 600;
  bool log_json = false;
  std::string worker_token, health_listen;
  service::TlsFiles scheduler_tls;  // to the scheduler: its CA, this node's client certificate (mTLS)
  service::TlsFiles tls;            // this node's Sampling port: certificate, key, client CA (mTLS)
  BatchingOptions batching;
  int max_delay_ms = 10;
};
// The shared flags (each also from QDM_<FLAG> or --config).
void add_node_options(CLI::App& app, NodeOptions& options);
// Flag combinations a protected deployment refuses; empty when the options are consistent.
std::string node_options_error(const NodeOptions& options);

struct NodeRole {
  std::string program;         // "qdm-worker", "qdm-sampler": logs and metrics
  std::string device = "cpu";  // where it samples
  ModelLoader loader = load_on_plan;
  int job_slots = 0;
  // The node's quantize-job runner; null: a sampling-only node (registers so, never leased a job).
  std::function<std::unique_ptr<LeaseHolder>(ModelFetcher&, v1::WorkerGateway::StubInterface&, WorkerMetrics&)> jobs;
};

// Serves until a signal, then drains (running jobs get up to --drain-seconds). Returns the exit
// status; logs why it failed.
int run_node(NodeOptions options, const NodeRole& role, service::ShutdownSignals& signals);

}  // namespace qdm::worker
