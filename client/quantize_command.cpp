// qdm quantize: post-training quantization of a model folder into a packed artifact, with a
// quality report against the fp32 model on the same seeds.
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "client/commands.h"
#include "client/progress_bar.h"
#include "engine/job/quantize_job.h"
#include "engine/util/threads.h"
#include "format/recipes.h"

namespace qdm::cli {
namespace {

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

}  // namespace

void add_quantize_command(CLI::App& app) {
  struct Args {
    std::string model, out, classifier = "models/fmnist-classifier", reference_cache, cache_dir;
    RecipeOptions recipe;
    int abits = QuantSpec{}.act_bits, report_samples = QuantizeJobOptions{}.report_samples;
    std::vector<std::string> keep_fp;
    bool keep_none = false;
    bool fp32_none = false;
    SamplerArgs sampler;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("quantize", "Quantize a model folder into a packed artifact");
  cmd->add_option("--model", a->model, "diffusers model folder")->required();
  cmd->add_option("--recipe", a->recipe.recipe, "Recipe: " + recipe_list())->capture_default_str()->check(CLI::IsMember(recipe_names()));
  cmd->add_option("--wbits", a->recipe.spec.weight_bits, "Weight bits (2-8)")->capture_default_str()->check(CLI::Range(2, 8));
  cmd->add_option("--abits", a->abits, "Activation bits (4-8, or 32 for fp32 activations)")->capture_default_str();
  add_sampler_options(cmd, a->sampler);
  cmd->add_option("--calib-samples", a->recipe.calib_samples, "Calibration trajectories")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--calib-seed", a->recipe.calib_seed, "Seed of the calibration noise")->capture_default_str();
  cmd->add_option("--iters", a->recipe.recon.iters, "AdaRound iterations per block (and for TIAR)")->capture_default_str()->check(CLI::Range(0, 1000000));
  cmd->add_option("--act-iters", a->recipe.recon.act_iters, "LSQ iterations per block (qdiffusion)")->capture_default_str()->check(CLI::Range(0, 1000000));
  cmd->add_option("--recon-batch", a->recipe.recon.batch, "Reconstruction batch size")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--recon-stride", a->recipe.recon_step_stride, "Use every k-th step's samples for reconstruction")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--bias-samples", a->recipe.bias_samples,
                  "Eps bias correction: fp32 trajectories to measure the mean noise-prediction error per step on (0: none)")
      ->capture_default_str()->check(CLI::Range(0, 100000));
  add_finetune_options(cmd, a->recipe.finetune);
  cmd->add_option("--calib-prompt", a->recipe.prompts,
                  "Text-to-image pipelines: a calibration prompt (repeat it; default: the folder's calibration_prompts.txt)");
  cmd->add_option("--components", a->recipe.components,
                  "Text-to-image pipelines: what to quantize, unet plus text_encoder and vae_decoder (W8A8) where listed")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--keep-fp", a->keep_fp, "Layer-name substrings kept in fp32 (default: TFMQ-DM's choice)");
  cmd->add_flag("--keep-fp-none", a->keep_none, "Quantize every layer, conv_in and conv_out included");
  cmd->add_option("--keep-bits", a->recipe.spec.keep_bits, "Weight bits of the --keep-fp layers (0: fp32 weights, as TFMQ-DM's code)")
      ->capture_default_str();
  auto* fp32 = cmd->add_option("--fp32-layers", a->recipe.spec.fp32_layers, "Layer-name substrings left entirely in fp32, weights and input")
      ->capture_default_str();
  cmd->add_flag("--fp32-layers-none", a->fp32_none, "Quantize the output conv's weights too (at --keep-bits)")->excludes(fp32);
  cmd->add_option("--report-samples", a->report_samples, "Images for the quality report (0: none)")->capture_default_str();
  cmd->add_option("--reference-cache", a->reference_cache, "Keep the report's fp32 images here for later runs on the same model and sampler");
  cmd->add_option("--classifier", a->classifier, "Feature classifier for FID-FMNIST in the report (skipped if absent)");
  cmd->add_option("--out", a->out, "Artifact file to write")->required();
  // tmpq (TMPQ-DM): --steps is the searched schedule's length; the rest shape the search.
  auto& s = a->recipe.search;
  cmd->add_option("--base-steps", s.base_steps, "tmpq: candidate timesteps come from this DDIM schedule")->capture_default_str();
  cmd->add_option("--group-power", s.group_power, "tmpq: timestep groups' layout, 2 the paper's (dense near t = 0), 1 even")
      ->capture_default_str()->check(CLI::Range(1.0, 4.0));
  cmd->add_option("--search-wbits", s.weight_bits, "tmpq: weight bit widths to search")->delimiter(',')->capture_default_str();
  cmd->add_option("--search-abits", s.act_bits, "tmpq: activation bit widths to search")->delimiter(',')->capture_default_str();
  cmd->add_option("--population", s.population, "tmpq: candidates per generation")->capture_default_str();
  cmd->add_option("--top", s.top, "tmpq: candidates kept per generation")->capture_default_str();
  cmd->add_option("--mutations", s.mutations, "tmpq: mutants per generation")->capture_default_str();
  cmd->add_option("--crossovers", s.crossovers, "tmpq: crossovers per generation")->capture_default_str();
  cmd->add_option("--mutation-prob", s.mutation_prob, "tmpq: per-gene mutation probability")->capture_default_str();
  cmd->add_option("--generations", s.generations, "tmpq: generations")->capture_default_str();
  cmd->add_option("--search-seed", s.seed, "tmpq: the search's random seed")->capture_default_str();
  cmd->add_option("--fitness-images", s.fitness_images, "tmpq: images per candidate (MSE to the fp32 model's)")->capture_default_str();
  cmd->add_option("--final-candidates", s.final_candidates, "tmpq: the best by MSE re-ranked by FID")->capture_default_str();
  cmd->add_option("--final-images", s.final_images, "tmpq: images for that FID (0: MSE decides)")->capture_default_str();
  cmd->add_option("--bitops-cap", s.bitops_cap, "tmpq: BitOPs at most this times the all-6-bit model's")->capture_default_str();
  cmd->add_option("--ms-cap", s.ms_cap, "tmpq: measured ms per image (all steps, batch 1) at most this (0: none)")->capture_default_str();
  cmd->add_option("--search-state", s.state_dir, "tmpq: save each generation here; a rerun resumes");
  // vq (VQDM): additive vector quantization of the weights.
  VqOptions& v = a->recipe.vq;
  cmd->add_option("--codebooks", v.codebooks, "vq: codebooks M per group (about M * B / group bits per weight)")->capture_default_str();
  cmd->add_option("--codebook-bits", v.codebook_bits, "vq: B, each codebook has 2^B vectors")->capture_default_str();
  cmd->add_option("--group", v.group, "vq: input values per group (input channels at one kernel position)")->capture_default_str();
  cmd->add_option("--beam", v.beam, "vq: beam width of the code search")->capture_default_str();
  cmd->add_option("--vq-rounds", v.max_rounds, "vq: beam search + Adam rounds per layer at most")->capture_default_str();
  cmd->add_option("--vq-adam-steps", v.adam_steps, "vq: Adam steps on codebooks and scales per round")->capture_default_str();
  cmd->add_option("--vq-stride", v.step_stride, "vq: X^T X from every k-th calibration step")->capture_default_str();
  cmd->add_option("--cache-dir", a->cache_dir, "Kernel latency tables and search reference images kept between runs");
  cmd->callback([a] {
    set_compute_threads();
    if (a->abits != 32 && (a->abits < 4 || a->abits > 8))
      throw CLI::ValidationError("--abits", "must be 4-8, or 32 for fp32 activations");
    a->recipe.spec.act_bits = a->abits == 32 ? 0 : a->abits;
    if (!a->keep_fp.empty()) a->recipe.spec.keep_fp = a->keep_fp;
    if (a->keep_none) a->recipe.spec.keep_fp.clear(), a->recipe.spec.keep_fp_input.clear();
    if (a->fp32_none || a->keep_none) a->recipe.spec.fp32_layers.clear();
    a->recipe.sampler = a->sampler.resolve(SamplerOptions{});
    if (recipe_info(a->recipe.recipe).searches_schedule()) {  // --steps: the searched schedule; candidates from --base-steps
      a->recipe.search.steps = a->sampler.steps.value_or(a->recipe.search.steps);
      a->recipe.sampler.steps = a->recipe.search.base_steps;
    }
    a->recipe.spec.validate();
    const auto out_dir = std::filesystem::path(a->out).parent_path();
    if (!out_dir.empty() && !std::filesystem::is_directory(out_dir))
      throw CLI::ValidationError("--out", "folder '" + out_dir.string() + "' does not exist");

    DiffusionModel model = load_model_folder(a->model);
    QuantizeJobOptions job;
    job.recipe = a->recipe;
    job.report_samples = a->report_samples;
    job.classifier_dir = a->classifier;
    job.reference_cache_dir = a->reference_cache;
    job.cache_dir = a->cache_dir;
    job.recipe.validate();
    std::signal(SIGINT, on_sigint);
    std::string stage;
    std::unique_ptr<ProgressBar> bar;
    const QuantizeJobResult result = quantize_to_artifact(model, job, a->out, [&](const QuantizeJobProgress& p) {
      if (p.stage != stage) {
        if (bar) bar->finish();
        stage = p.stage;
        bar = std::make_unique<ProgressBar>(stage);
        spdlog::info("stage: {}", stage);
      }
      bar->update(p.total ? double(p.done) / p.total : 0, p.loss > 0 ? fmt::format("loss {:.4g}", p.loss) : "");
      return !g_interrupted.load();
    });
    if (bar) bar->finish();
    std::signal(SIGINT, SIG_DFL);
    spdlog::info("report: {}", result.report.dump());
    if (!result.figure_png.empty()) {
      std::ofstream(a->out + ".search.png", std::ios::binary)
          .write(reinterpret_cast<const char*>(result.figure_png.data()), static_cast<std::streamsize>(result.figure_png.size()));
      spdlog::info("search figure: {}.search.png", a->out);
    }
    spdlog::info("wrote {} ({} bytes) in {:.1f} s", a->out, std::filesystem::file_size(a->out), result.seconds);
  });
}

}  // namespace qdm::cli
