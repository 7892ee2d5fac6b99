// qdm generate: images from a model or artifact on the service, written as PNGs
// (<out>/<index>.png, generation parameters in their tEXt chunks). SampleStream with a progress
// bar by default; --unary uses Sample.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "client/progress_bar.h"
#include "client/remote.h"
#include "qdm/v1/sampling.grpc.pb.h"
#include "service/convert.h"

namespace qdm::cli {
namespace {

void write_png(const std::string& dir, const v1::GeneratedImage& img) {
  const auto path = std::filesystem::path(dir) / fmt::format("{:05d}.png", img.index());
  std::ofstream out(path, std::ios::binary);
  out.write(img.png().data(), static_cast<std::streamsize>(img.png().size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
  if (img.prompt_truncated())
    fmt::print(stderr, "image {}: its prompt is longer than the model's tokenizer limit and was truncated\n", img.index());
}

}  // namespace

void add_generate_command(CLI::App& app) {
  struct Args {
    RemoteArgs remote;
    std::string model, artifact, out = "out/generated", sampler, spacing, kernels;
    int num = 4, steps = 0;
    uint64_t seed = 0;
    double eta = 0;
    std::optional<double> guidance;
    std::vector<std::string> labels, prompts;
    std::string negative_prompt;
    int height = 0, width = 0;
    bool unary = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("generate", "Generate images on the service");
  add_remote_options(cmd, a->remote);
  auto* m = cmd->add_option("--model", a->model, "fp32 model name");
  auto* art = cmd->add_option("--artifact", a->artifact, "Quantized artifact name");
  m->excludes(art);
  cmd->add_option("--num", a->num, "Images")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Image i uses seed + i")->capture_default_str();
  cmd->add_option("--steps", a->steps, "Sampler steps (0: the model's default)")->capture_default_str();
  cmd->add_option("--sampler", a->sampler, "ddim, ddpm or dpmpp2m (default: the model's)")
      ->check(CLI::IsMember(sampler_names()));
  cmd->add_option("--eta", a->eta, "DDIM eta")->capture_default_str();
  cmd->add_option("--spacing", a->spacing, "leading, trailing, uniform, quad");
  cmd->add_option("--kernels", a->kernels, "Artifacts: int (default) or sim");
  cmd->add_option("--class-label", a->labels,
                  "Class-conditional models: a label (index or name) for every image, one per image, or all");
  cmd->add_option("--prompt", a->prompts,
                  "Text-to-image pipelines: one prompt for every image, or one per image (\"\" samples unconditionally)");
  cmd->add_option("--negative-prompt", a->negative_prompt, "What guidance steers away from (default: the empty prompt)");
  cmd->add_option("--height", a->height, "Pipelines: image height in pixels (default: the model's)");
  cmd->add_option("--width", a->width, "Pipelines: image width in pixels (default: the model's)");
  cmd->add_option("--guidance", a->guidance, "Classifier-free guidance scale (default 1: none)");
  cmd->add_option("--out", a->out, "Folder for the PNGs")->capture_default_str();
  cmd->add_flag("--unary", a->unary, "One Sample call instead of a stream");
  cmd->callback([a] {
    if (a->model.empty() == a->artifact.empty()) throw CLI::ValidationError("--model/--artifact", "give exactly one");
    v1::SampleRequest req;
    if (!a->model.empty()) req.set_model(a->model);
    else req.set_artifact(a->artifact);
    req.set_num_images(a->num);
    req.set_seed(a->seed);
    auto* s = req.mutable_sampler();
    s->set_steps(a->steps);
    s->set_eta(a->eta);
    s->set_spacing(a->spacing);
    if (!a->sampler.empty()) s->set_kind(service::to_proto(parse_sampler(a->sampler)));
    if (a->kernels == "int") req.set_kernels(v1::SampleRequest::INT);
    else if (a->kernels == "sim") req.set_kernels(v1::SampleRequest::SIM);
    else if (!a->kernels.empty()) throw CLI::ValidationError("--kernels", "use int or sim");
    for (const auto& l : a->labels) req.add_class_labels(l);
    if (a->guidance) req.set_guidance_scale(*a->guidance);
    for (const auto& p : a->prompts) req.add_prompt(p);
    req.set_negative_prompt(a->negative_prompt);
    req.set_height(a->height);
    req.set_width(a->width);
    std::filesystem::create_directories(a->out);
    auto stub = v1::Sampling::NewStub(a->remote.channel());
    grpc::ClientContext ctx;
    a->remote.apply(ctx);
    v1::SampleResponse summary;
    int written = 0;
    if (a->unary) {
      check(stub->Sample(&ctx, req, &summary));
      for (const auto& img : summary.images()) write_png(a->out, img), ++written;
    } else {
      auto reader = stub->SampleStream(&ctx, req);
      ProgressBar bar("generate", true);
      v1::SampleEvent e;
      while (reader->Read(&e)) {
        if (e.has_progress())
          bar.update(e.progress().steps() ? double(e.progress().step()) / e.progress().steps() : 0,
                     fmt::format("step {}/{}", e.progress().step(), e.progress().steps()));
        if (e.has_image()) write_png(a->out, e.image()), ++written;
        if (e.has_done()) summary = e.done();
      }
      bar.finish();
      check(reader->Finish());
    }
    fmt::print("wrote {} images to {} (queued {:.2f} s, computed {:.2f} s, batch of {})\n", written, a->out,
               summary.queue_seconds(), summary.compute_seconds(), summary.batch_size());
  });
}

}  // namespace qdm::cli
