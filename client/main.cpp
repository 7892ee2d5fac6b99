// qdm: the command line for the quantization engine and the qdm service.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "client/commands.h"
#include "client/remote.h"
#include "engine/runtime/device.h"
#include "engine/util/allocator.h"
#include "engine/util/threads.h"

int main(int argc, char** argv) {
  qdm::ensure_passive_omp_wait(argv);
  qdm::keep_freed_tensor_memory();
  CLI::App app{"qdm: post-training quantization and sampling of diffusion models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "qdm 0.1.0 (devices: " + qdm::available_devices() + ")");
  qdm::cli::add_sample_command(app);
  qdm::cli::add_forward_command(app);
  qdm::cli::add_eval_command(app);
  qdm::cli::add_quantize_command(app);
  qdm::cli::add_bias_correct_command(app);
  qdm::cli::add_finetune_command(app);
  qdm::cli::add_inspect_command(app);
  qdm::cli::add_train_command(app);
  qdm::cli::add_train_vae_command(app);
  qdm::cli::add_train_text_encoder_command(app);
  qdm::cli::add_tokenize_command(app);
  qdm::cli::add_train_text_to_image_command(app);
  qdm::cli::add_train_classifier_command(app);
  qdm::cli::add_submit_command(app);
  qdm::cli::add_jobs_command(app);
  qdm::cli::add_generate_command(app);
  qdm::cli::add_models_command(app);
  qdm::cli::add_health_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const qdm::cli::RpcError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
