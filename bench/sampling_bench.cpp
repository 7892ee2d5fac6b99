// Sampling throughput of a model folder (FP32) or a quantized artifact (integer kernels or
// simulation): images/s and time per step at several batch sizes, resident weight bytes and
// the process's peak resident memory. Writes a Markdown table (one process per
// configuration, so peak RSS belongs to it alone).
//
//   build/bin/qdm_sampling_bench --model models/fmnist-ddpm --steps 100 --batches 1,64 \
//       --out bench/results/fp32_sampling.md
//   build/bin/qdm_sampling_bench --artifact A.safetensors --kernels int --steps 100 --batches 1,64
//   build/bin/qdm_sampling_bench --artifact A.safetensors --device cuda ...   (a GPU worker's path;
//       the images come back to the host inside the timed call, so GPU time is fully counted)
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <sstream>

#include "engine/runtime/device.h"
#include "engine/runtime/loaded_model.h"
#include "engine/util/allocator.h"
#include "engine/util/threads.h"

namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is KiB on Linux
}

}  // namespace

int main(int argc, char** argv) {
  qdm::ensure_passive_omp_wait(argv);
  qdm::keep_freed_tensor_memory();
  CLI::App app{"qdm FP32 sampling benchmark"};
  std::string model_dir, artifact, kernels = "int", out, device_name = "cpu";
  std::vector<int> batches = {1, 64};
  int steps = 100;
  app.add_option("--model", model_dir, "diffusers model folder (FP32)");
  app.add_option("--artifact", artifact, "quantized artifact");
  app.add_option("--kernels", kernels, "int or sim (artifacts)")->capture_default_str();
  app.add_option("--device", device_name, "cpu, cuda, cuda:N")->capture_default_str();
  app.add_option("--steps", steps)->capture_default_str();
  app.add_option("--batches", batches)->delimiter(',')->capture_default_str();
  app.add_option("--out", out, "Markdown file to write");
  CLI11_PARSE(app, argc, argv);

  qdm::set_compute_threads();
  if (model_dir.empty() == artifact.empty()) {
    std::fprintf(stderr, "give exactly one of --model or --artifact\n");
    return 2;
  }
  c10::Device device = c10::kCPU;
  try {
    device = qdm::parse_device(device_name);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "--device: %s\n", e.what());
    return 2;
  }
  qdm::LoadedModel model = artifact.empty() ? qdm::LoadedModel::from_folder(model_dir, device)
                                            : qdm::LoadedModel::from_artifact(artifact, qdm::parse_kernel_mode(kernels), device);
  const std::string what = (artifact.empty() ? model_dir + " (fp32" : artifact + " (" + model.kernels()) + ", " + device.str() + ")";
  const qdm::SamplerOptions sampler = model.default_sampler();  // an artifact's own (DDIM for fp32 models)
  std::ostringstream table;
  table << "| model | batch | steps | images/s | ms per step | s per batch | weight bytes | peak RSS MiB |\n"
        << "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (int batch : batches) {
    qdm::SampleRequest req;
    req.num_images = batch;
    req.batch_size = batch;
    req.sampler = sampler;
    req.sampler.steps = steps;
    qdm::SampleRequest warm = req;
    warm.num_images = warm.batch_size = 1;
    model.sample(warm);  // one-time allocations are not timed
    const auto start = std::chrono::steady_clock::now();
    model.sample(req);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    table << "| " << what << " | " << batch << " | " << steps << " | " << batch / secs << " | " << 1000 * secs / steps << " | " << secs
          << " | " << model.weight_bytes() << " | " << peak_rss_mib() << " |\n";
    spdlog::info("batch {}: {:.3f} images/s, {:.1f} ms/step", batch, batch / secs, 1000 * secs / steps);
  }
  std::ostringstream doc;
  doc << "# Sampling throughput\n\n" << what << ", " << qdm::sampler_name(sampler.kind) << ", " << qdm::compute_threads() << " threads.\n\n" << table.str()
      << "\nReproduce: `build/bin/qdm_sampling_bench " << (artifact.empty() ? "--model " + model_dir : "--artifact " + artifact + " --kernels " + kernels)
      << " --device " << device.str() << " --steps " << steps << " --out <file>`\n";
  std::printf("%s", doc.str().c_str());
  if (!out.empty()) std::ofstream(out) << doc.str();
  return 0;
}
