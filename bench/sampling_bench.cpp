// FP32 sampling throughput of a model folder: images/s and time per step at several batch
// sizes, and the process's peak resident memory. Writes a Markdown table.
//
//   build/bin/qdm_sampling_bench --model models/fmnist-ddpm --steps 100 --batches 1,64 \
//       --out bench/results/fp32_sampling.md
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <sstream>

#include "engine/model/model_folder.h"
#include "engine/model/unet_denoiser.h"
#include "engine/sampling/pipeline.h"
#include "engine/util/threads.h"

namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is KiB on Linux
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qdm FP32 sampling benchmark"};
  std::string model_dir = "models/fmnist-ddpm", out;
  std::vector<int> batches = {1, 64};
  int steps = 100;
  app.add_option("--model", model_dir)->capture_default_str();
  app.add_option("--steps", steps)->capture_default_str();
  app.add_option("--batches", batches)->delimiter(',')->capture_default_str();
  app.add_option("--out", out, "Markdown file to write");
  CLI11_PARSE(app, argc, argv);

  qdm::set_compute_threads();
  qdm::DiffusionModel model = qdm::load_model_folder(model_dir);
  const qdm::NoiseSchedule schedule(model.scheduler);
  std::ostringstream table;
  table << "| batch | steps | images/s | ms per step | s per batch | peak RSS MiB |\n"
        << "|---:|---:|---:|---:|---:|---:|\n";
  for (int batch : batches) {
    qdm::SampleRequest req;
    req.num_images = batch;
    req.batch_size = batch;
    req.sampler.steps = steps;
    // One short warm-up so one-time allocations are not timed.
    qdm::SampleRequest warm = req;
    warm.sampler.steps = 2;
    qdm::sample_images(schedule, qdm::unet_denoiser(model.unet), model.config.in_channels, model.config.sample_size, warm);
    const auto start = std::chrono::steady_clock::now();
    qdm::sample_images(schedule, qdm::unet_denoiser(model.unet), model.config.in_channels, model.config.sample_size, req);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    table << "| " << batch << " | " << steps << " | " << batch / secs << " | " << 1000 * secs / steps << " | " << secs
          << " | " << peak_rss_mib() << " |\n";
    spdlog::info("batch {}: {:.3f} images/s, {:.1f} ms/step", batch, batch / secs, 1000 * secs / steps);
  }
  std::ostringstream doc;
  doc << "# FP32 sampling throughput\n\nModel: `" << model_dir << "` (" << model.unet->parameter_count()
      << " parameters), DDIM, " << qdm::compute_threads() << " threads, LibTorch CPU.\n\n"
      << table.str() << "\nReproduce: `build/bin/qdm_sampling_bench --model " << model_dir << " --steps " << steps
      << " --out <file>`\n";
  std::printf("%s", doc.str().c_str());
  if (!out.empty()) std::ofstream(out) << doc.str();
  return 0;
}
