// qdm-worker: runs quantize jobs leased from the scheduler and serves sampling (fp32 models and
// quantized artifacts on the integer kernels) with dynamic batching, on the CPU or a CUDA GPU
// (--device; quantize jobs always run on the CPU). qdm-sampler (sampler_main.cpp) is the same
// node without LibTorch and without quantize jobs.
//
//   qdm-worker --scheduler localhost:50051 --listen 0.0.0.0:50052 --advertise localhost:50052
//
// SIGTERM drains: the worker stops taking work, finishes its jobs (up to --drain-seconds) and
// exits. Every flag can also come from the environment (QDM_<FLAG>) or a config file (--config).
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "engine/runtime/device.h"
#include "engine/runtime/loaded_model.h"
#include "engine/util/allocator.h"
#include "engine/util/threads.h"
#include "service/logging.h"
#include "service/shutdown_signals.h"
#include "worker/job_runner.h"
#include "worker/sampling_node.h"

int main(int argc, char** argv) {
  using namespace qdm;
  ensure_passive_omp_wait(argv);
  keep_freed_tensor_memory();
  CLI::App app{"qdm-worker: quantize jobs and sampling for a qdm-scheduler"};
  worker::NodeOptions options;
  std::string device_option = "auto", classifier = "models/fmnist-classifier";
  int job_slots = 1;
  worker::add_node_options(app, options);
  app.add_option("--device", device_option, "Where sampling runs: cpu, cuda, cuda:N, or auto (a GPU when this build and node have one)")
      ->envname("QDM_DEVICE")->capture_default_str();
  app.add_option("--classifier", classifier, "Fashion-MNIST classifier for FID in job reports")->envname("QDM_CLASSIFIER")->capture_default_str();
  app.add_option("--job-slots", job_slots, "Quantize jobs run at once (0: sampling only)")->envname("QDM_JOB_SLOTS")->capture_default_str()->check(CLI::Range(0, 16));
  CLI11_PARSE(app, argc, argv);
  service::setup_logging(options.log_json, options.log_level, "worker");
  service::ShutdownSignals signals;  // before any thread starts
  try {
    const c10::Device device = parse_device(device_option);  // refuses a device this build or node lacks
    set_compute_threads();
    worker::NodeRole role;
    role.program = "qdm-worker";
    role.device = device.str();
    role.job_slots = job_slots;
    // On the CPU, what the execution plan runs is read straight into it; sim, CUDA and the rest
    // on LibTorch (loaded_model.h).
    role.loader = [device](const std::string& path, bool artifact, KernelMode kernels) -> std::shared_ptr<ServedModel> {
      return std::make_shared<LoadedModel>(artifact ? LoadedModel::from_artifact(path, kernels, device)
                                                    : LoadedModel::from_folder(path, device));
    };
    if (job_slots > 0)
      role.jobs = [&](worker::ModelFetcher& fetcher, v1::WorkerGateway::StubInterface& gateway, worker::WorkerMetrics& metrics) {
        return std::make_unique<worker::JobRunner>(fetcher, gateway, options.cache_dir + "/jobs", options.cache_dir + "/references",
                                                   classifier, metrics, job_slots, options.worker_token);
      };
    return worker::run_node(options, role, signals);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
