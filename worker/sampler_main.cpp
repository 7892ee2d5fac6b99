// qdm-sampler: a sampling-only node without LibTorch. It serves qdm.v1.Sampling (Sample and
// SampleStream) for fp32 models and quantized artifacts on the execution plan's kernels, read
// straight from the files (engine/runtime/served_model.h), with the worker's batching, flags,
// token, TLS and metrics. It registers with the scheduler as sampling-only and is never leased
// a quantize job. Kernels sim (the LibTorch simulation) is refused: a qdm-worker serves it.
//
//   qdm-sampler --scheduler localhost:50051 --listen 0.0.0.0:50053 --advertise localhost:50053
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "engine/runtime/thread_pool.h"
#include "engine/util/allocator.h"
#include "engine/util/omp_wait.h"
#include "service/logging.h"
#include "service/shutdown_signals.h"
#include "worker/sampling_node.h"

int main(int argc, char** argv) {
  using namespace qdm;
  ensure_passive_omp_wait(argv);
  keep_freed_tensor_memory();
  CLI::App app{"qdm-sampler: sampling for a qdm-scheduler, without LibTorch (no quantize jobs)"};
  worker::NodeOptions options;
  options.listen = "0.0.0.0:50053";
  options.cache_dir = "var/qdm-sampler";
  int threads = 0;
  worker::add_node_options(app, options);
  app.add_option("--threads", threads, "Kernel threads (0: $QDM_THREADS, else every hardware thread)")
      ->envname("QDM_THREADS")->capture_default_str()->check(CLI::Range(0, 1024));
  CLI11_PARSE(app, argc, argv);
  service::setup_logging(options.log_json, options.log_level, "sampler");
  service::ShutdownSignals signals;  // before any thread starts
  try {
    set_pool_threads(threads);
    worker::NodeRole role;
    role.program = "qdm-sampler";
    role.loader = worker::load_on_plan;
    return worker::run_node(options, role, signals);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
