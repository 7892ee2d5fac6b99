// Text-to-image pipelines end to end on a tiny random pipeline folder: the folder round trip,
// prompts through the sampling pipeline (determinism, per-image prompts, guidance, refusals),
// the tokenizer learned from captions, and the shared training loop's exact resume.
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/artifact/artifact.h"
#include "engine/data/captions.h"
#include "engine/job/quantize_job.h"
#include "engine/quant/finetune.h"
#include "engine/runtime/artifact_weights.h"
#include "engine/runtime/component_weights.h"
#include "engine/runtime/folder_weights.h"
#include "engine/runtime/loaded_model.h"
#include "engine/runtime/plan/execution_plan.h"
#include "engine/runtime/quantized_weights.h"
#include "engine/model/pipeline_folder.h"
#include "engine/runtime/served_model.h"
#include "engine/runtime/text_pipeline.h"
#include "engine/sampling/text_to_image.h"
#include "format/artifact_pipeline.h"
#include "format/graph/autoencoder_kl.h"
#include "format/graph/clip_text.h"
#include "format/graph/unet_2d.h"
#include "format/prompts.h"
#include "format/quantized_component.h"
#include "format/safetensors.h"
#include "engine/train/bpe_learner.h"
#include "engine/train/text_encoder_trainer.h"
#include "engine/train/text_to_image_trainer.h"
#include "engine/model_io/tensor_io.h"
#include "tests/test_models.h"

namespace qdm {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> training_corpus() {
  std::vector<std::string> corpus;
  for (int label = 0; label < 10; ++label)
    for (auto& c : all_captions(label)) corpus.push_back(std::move(c));
  return corpus;
}

// A pipeline folder with random weights: 1-channel 16x16 images, 2 latent channels at 8x8.
std::string tiny_pipeline() {
  const std::string dir = testing::temp_dir("t2i");
  torch::manual_seed(11);
  write_clip_tokenizer(dir + "/tokenizer", learn_bpe_merges(training_corpus(), 60), 12);
  const ClipTokenizer tok = ClipTokenizer::load(dir + "/tokenizer");
  ClipTextConfig tc;
  tc.vocab_size = static_cast<int>(tok.vocab_size());
  tc.hidden_size = 16;
  tc.intermediate_size = 32;
  tc.num_hidden_layers = 1;
  tc.num_attention_heads = 2;
  tc.max_position_embeddings = 12;
  ClipTextModel text(tc);
  save_text_encoder(dir + "/text_encoder", *text);
  AutoencoderKLConfig vc;
  vc.in_channels = vc.out_channels = 1;
  vc.block_out_channels = {8, 8};
  vc.norm_num_groups = 4;
  vc.latent_channels = 2;
  vc.sample_size = 16;
  vc.scaling_factor = 0.7;
  AutoencoderKL vae(vc);
  save_vae(dir + "/vae", *vae);
  UNetConfig uc = fmnist_text_unet_config(2, 8, 16);
  uc.block_out_channels = {8, 16};
  uc.norm_num_groups = 4;
  uc.heads_per_block = {2, 2};
  UNet2DModel unet(uc);
  fs::create_directories(dir + "/unet");
  fs::create_directories(dir + "/scheduler");
  TensorMap w;
  for (const auto& p : unet->named_parameters()) w[p.key()] = p.value();
  save_tensors(dir + "/unet/diffusion_pytorch_model.safetensors", w);
  std::ofstream(dir + "/unet/config.json") << uc.to_json().dump();
  std::ofstream(dir + "/scheduler/scheduler_config.json") << stable_diffusion_scheduler().to_json().dump();
  write_model_index(dir);
  return dir;
}

// A copy of artifact `from` at `to` with its embedded file `name` replaced by `bytes`.
void replace_embedded(const std::string& from, const std::string& name, const std::vector<uint8_t>& bytes, const std::string& to) {
  const SafeTensors a = SafeTensors::read_file(from);
  SafeTensorsWriter w;
  const std::string tensor = kPipelineTensorPrefix + name;
  ASSERT_NE(a.find(tensor), nullptr) << tensor;
  for (const TensorInfo& t : a.tensors()) {
    if (t.name == tensor)
      w.add(t.name, DType::U8, {static_cast<int64_t>(bytes.size())}, bytes.data(), bytes.size());
    else
      w.add(t.name, t.dtype, t.shape, a.data(t), t.nbytes());
  }
  for (const auto& [key, value] : a.metadata()) w.set_metadata(key, value);
  w.write_file(to);
}

class TinyPipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new std::string(tiny_pipeline()); }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  PromptRequest request(std::vector<std::string> prompts, int n, double guidance = 3.0) {
    PromptRequest r;
    r.prompts = std::move(prompts);
    r.guidance_scale = guidance;
    r.base.num_images = n;
    r.base.seed = 5;
    r.base.sampler.steps = 3;
    return r;
  }
  static std::string* dir_;
};
std::string* TinyPipeline::dir_ = nullptr;

TEST_F(TinyPipeline, LoadsAndSamplesPromptsDeterministically) {
  TextToImagePipeline pipe = load_pipeline(*dir_);
  EXPECT_EQ(pipe.default_size(), 16);
  const PromptImages a = sample_from_prompts(pipe, request({"a photo of a sneaker"}, 2));
  ASSERT_EQ(a.images.sizes(), (std::vector<int64_t>{2, 1, 16, 16}));
  EXPECT_LE(a.images.abs().max().item<float>(), 1.0f);
  const PromptImages again = sample_from_prompts(pipe, request({"a photo of a sneaker"}, 2));
  EXPECT_TRUE(torch::equal(a.images, again.images));
  // Another prompt, another image from the same seed; per-image prompts give each image its own.
  const PromptImages b = sample_from_prompts(pipe, request({"a photo of a coat"}, 2));
  EXPECT_FALSE(torch::allclose(a.images, b.images));
  const PromptImages mixed = sample_from_prompts(pipe, request({"a photo of a sneaker", "a photo of a coat"}, 2));
  EXPECT_TRUE(torch::allclose(mixed.images[0], a.images[0], 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(mixed.images[1], b.images[1], 1e-5, 1e-5));
  // Guidance 1 is the prompt alone: the negative prompt then does not matter.
  PromptRequest plain = request({"a photo of a sneaker"}, 1, 1.0);
  PromptRequest plain_neg = plain;
  plain_neg.negative_prompt = "a bag";
  EXPECT_TRUE(torch::equal(sample_from_prompts(pipe, plain).images, sample_from_prompts(pipe, plain_neg).images));
  PromptRequest guided_neg = request({"a photo of a sneaker"}, 2);
  guided_neg.negative_prompt = "a bag";
  EXPECT_FALSE(torch::allclose(sample_from_prompts(pipe, guided_neg).images, a.images));
  // A non-square size in multiples of the VAE and UNet factors.
  PromptRequest wide = request({""}, 1);
  wide.width = 32;
  EXPECT_EQ(sample_from_prompts(pipe, wide).images.sizes(), (std::vector<int64_t>{1, 1, 16, 32}));
}

// The torch-free served model (tokenizer, text encoder, UNet and VAE decoder on execution plans)
// gives LibTorch's images for the same requests: one noise generator, the same prompt table.
TEST_F(TinyPipeline, ServedTorchFreeMatchesLibTorch) {
  TextToImagePipeline pipe = load_pipeline(*dir_);
  const ServedModel served = ServedModel::from_folder(*dir_);
  ASSERT_TRUE(served.takes_prompts());
  EXPECT_NE(served.kernels().find("fp32 plan"), std::string::npos);
  auto served_request = [](const PromptRequest& r) {
    SampleRequest q = r.base;
    q.prompts = r.prompts;
    q.negative_prompt = r.negative_prompt;
    q.guidance_scale = r.guidance_scale;
    q.height = r.height;
    q.width = r.width;
    return q;
  };
  std::vector<PromptRequest> cases = {request({"a photo of a sneaker", "a photo of a coat", ""}, 3), request({"a bag"}, 2, 1.0)};
  cases.push_back(request({"a photo of a sneaker"}, 2));
  cases.back().negative_prompt = "a bag";
  cases.push_back(request({"two shirts"}, 1));
  cases.back().width = 32;  // another size: plans built on first use
  for (const PromptRequest& r : cases) {
    const SampleRequest q = served_request(r);
    const auto shape = served.image_shape(q);
    const std::vector<float> got = served.generate(q);
    const at::Tensor want = sample_from_prompts(pipe, r).images;
    ASSERT_EQ((std::vector<int64_t>{want.size(1), want.size(2), want.size(3)}),
              (std::vector<int64_t>{shape.channels, shape.height, shape.width}));
    const at::Tensor g = torch::from_blob(const_cast<float*>(got.data()), want.sizes()).clone();
    EXPECT_LT((g - want).abs().max().item<double>(), 1e-3) << r.prompts[0];
  }
  // The image's PNG text names its prompt and says when the tokenizer cut it.
  SampleRequest q = served_request(request({"a sneaker", "a very very very very long sneaker caption here"}, 2));
  const PngText text = served.png_text(q, 1);
  EXPECT_NE(std::find(text.begin(), text.end(), std::make_pair(std::string("qdm:prompt"), q.prompts[1])), text.end());
  EXPECT_NE(std::find(text.begin(), text.end(), std::make_pair(std::string("qdm:prompt_truncated"), std::string("true"))), text.end());
  EXPECT_FALSE(served.prompt_truncated("a sneaker"));
  // Refusals naming the fix: class labels, a count that fits neither rule, an odd size.
  auto error = [&](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error([&] { served.check_conditioning({1}, 3.0); }).find("takes prompts, not class labels"), std::string::npos);
  SampleRequest bad = served_request(request({"a", "b", "c"}, 2));
  EXPECT_NE(error([&] { served.check_prompts(bad); }).find("one prompt for every image or one per image"), std::string::npos);
  bad = served_request(request({"a"}, 1));
  bad.height = 18;
  EXPECT_NE(error([&] { served.check_prompts(bad); }).find("multiples of 4"), std::string::npos);
  // Prompts on a model without a text encoder.
  EXPECT_NE(error([&] { check_prompts(testing::tiny_config(), {"a sneaker"}, "", 1, 0, 0); }).find("no text encoder"), std::string::npos);
  EXPECT_NO_THROW(check_prompts(testing::tiny_config(), {}, "", 1, 0, 0));
}

TEST_F(TinyPipeline, TruncatesLongPromptsAndSaysSo) {
  TextToImagePipeline pipe = load_pipeline(*dir_);
  const PromptImages out = sample_from_prompts(pipe, request({"a sneaker", "a very very very very long sneaker caption here"}, 2));
  EXPECT_EQ(out.truncated, (std::vector<bool>{false, true}));
}

TEST_F(TinyPipeline, RefusesBadRequestsNamingTheFix) {
  TextToImagePipeline pipe = load_pipeline(*dir_);
  auto error = [&](const PromptRequest& r) {
    try {
      sample_from_prompts(pipe, r);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error(request({"a", "b", "c"}, 2)).find("one prompt for all images or one per image"), std::string::npos);
  PromptRequest odd = request({"a"}, 1);
  odd.height = 18;
  EXPECT_NE(error(odd).find("multiples of 4"), std::string::npos);
  EXPECT_NE(error(request({}, 1)).find("give a prompt"), std::string::npos);
}

TEST_F(TinyPipeline, RefusesMismatchedComponentsNamingTheField) {
  const std::string dir = testing::temp_dir("t2i_bad");
  fs::copy(*dir_, dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(dir + "/unet/config.json"));
  cfg["cross_attention_dim"] = 24;
  std::ofstream(dir + "/unet/config.json") << cfg.dump();
  try {
    load_pipeline(dir);
    FAIL() << "loaded a UNet that cannot read the text encoder's states";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("cross_attention_dim"), std::string::npos) << e.what();
  }
  nlohmann::json index = nlohmann::json::parse(std::ifstream(dir + "/model_index.json"));
  index["_class_name"] = "StableDiffusionXLPipeline";
  std::ofstream(dir + "/model_index.json") << index.dump();
  try {
    load_pipeline(dir);
    FAIL() << "loaded an SDXL index";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("_class_name"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// Quantization of a pipeline: every recipe runs on the text UNet by label (rows of a prompt
// table of the calibration prompts and the empty one); the artifact carries the text encoder,
// VAE and tokenizer and samples from prompts on the integer plan with the source folder gone;
// the plan's integer UNet (cross-attention over the text tokens included) matches the
// simulation step by step on every kernel path.
RecipeOptions tiny_recipe(const std::string& recipe) {
  RecipeOptions o;
  o.recipe = recipe;
  o.spec.weight_bits = 8;
  o.sampler.steps = 4;
  o.calib_samples = 3;
  o.batch = 3;
  o.recon.iters = 3;
  o.recon.act_iters = 2;
  o.recon.batch = 2;
  o.recon_step_stride = 2;
  o.prompts = {"a photo of a sneaker", "a coat"};
  if (recipe == "tmpq") {
    o.search.steps = 4;
    o.search.base_steps = 8;
    o.search.population = 3;
    o.search.top = 2;
    o.search.final_candidates = 1;
    o.search.mutations = 1;
    o.search.crossovers = 1;
    o.search.generations = 1;
    o.search.fitness_images = 2;
    o.search.final_images = 0;
    o.search.weight_bits = {4, 6, 8};
    o.search.act_bits = {6, 8};
  }
  if (recipe_info(recipe).section == RecipeSection::kVq) {
    o.vq.codebooks = 2;
    o.vq.codebook_bits = 4;
    o.vq.max_rounds = 1;
    o.vq.adam_steps = 4;
    o.finetune.iters = 0;
  }
  return o;
}

// Two images, each its own prompt, guided, on the artifact's schedule.
SampleRequest two_prompts(const ServedModel& served) {
  SampleRequest q;
  q.num_images = 2;
  q.seed = 3;
  q.sampler = served.default_sampler();
  q.prompts = {"a photo of a sneaker", "a bag"};
  q.guidance_scale = 2.0;
  return q;
}

TEST_F(TinyPipeline, EveryRecipeQuantizesThePipelineAndItsArtifactSamplesFromPrompts) {
  // A copy of the folder, removed once quantized: the artifact must not need it.
  const std::string work = testing::temp_dir("t2i-quant");
  fs::copy(*dir_, work + "/pipe", fs::copy_options::recursive);
  const DiffusionModel model = load_model_folder(work + "/pipe");
  ASSERT_TRUE(model.pipeline);
  const std::string unet_sha = model.weights_sha256;
  for (const std::string recipe : {"rtn", "qdiffusion", "tfmq", "tfmq+cache", "vq", "vq+cache", "tmpq"}) {
    SCOPED_TRACE(recipe);
    QuantizeJobOptions o;
    o.recipe = tiny_recipe(recipe);
    o.report_samples = 2;
    const std::string path = work + "/" + recipe + ".safetensors";
    const QuantizeJobResult r = quantize_to_artifact(model, o, path);
    // The report compares decoded images (16x16, one channel), not latents.
    EXPECT_GT(r.report.value("psnr_vs_fp", 0.0), 5.0);
    const ArtifactInfo info = read_artifact_info(SafeTensors::read_file(path));
    ASSERT_TRUE(info.text_to_image());
    EXPECT_EQ(info.pipeline_sha256.at("unet"), unet_sha);
    EXPECT_EQ(info.recipe["prompts"].size(), 2u);
    // Cross-attention's key and value projections read the text states: kept fp32.
    for (const auto& l : info.layers) EXPECT_EQ(l.name.find("attn2.to_k"), std::string::npos) << l.name;
  }
  fs::remove_all(work + "/pipe");

  for (const std::string recipe : {"rtn", "tfmq+cache", "vq", "vq+cache", "tmpq"}) {
    SCOPED_TRACE(recipe);
    const ServedModel served = ServedModel::from_artifact(work + "/" + recipe + ".safetensors");
    ASSERT_TRUE(served.takes_prompts());
    EXPECT_NE(served.kernels().find("int plan"), std::string::npos);
    const SampleRequest q = two_prompts(served);
    const std::vector<float> images = served.generate(q);
    ASSERT_EQ(images.size(), 2u * 16 * 16);
    const at::Tensor t = torch::from_blob(const_cast<float*>(images.data()), {2, 16 * 16}).clone();
    EXPECT_LE(t.abs().max().item<float>(), 1.0f);
    EXPECT_FALSE(torch::allclose(t[0], t[1]));  // each image its prompt
    EXPECT_EQ(served.generate(q), images);      // deterministic
    const PngText text = served.png_text(q, 1);
    EXPECT_NE(std::find(text.begin(), text.end(), std::make_pair(std::string("qdm:prompt"), std::string("a bag"))), text.end());
  }

  // The artifact embeds the VAE's decoder only (sampling never reads the encoder). An artifact
  // embedding the whole VAE, as artifacts did before, loads and draws the same images; one
  // holding part of the encoder is refused, naming a missing encoder tensor.
  {
    const std::string path = work + "/rtn.safetensors";
    const std::string vae_name = "vae/diffusion_pytorch_model.safetensors";
    const SafeTensors a = SafeTensors::read_file(path);
    const TensorInfo& stored = a.at(kPipelineTensorPrefix + vae_name);
    const SafeTensors embedded = SafeTensors::parse(std::vector<uint8_t>(a.data(stored), a.data(stored) + stored.nbytes()));
    const SafeTensors full = SafeTensors::read_file(*dir_ + "/" + vae_name);
    size_t decoder_tensors = 0, encoder_tensors = 0;
    std::string an_encoder_tensor;
    for (const TensorInfo& t : full.tensors()) {
      const bool encoder = graph::vae_encoder_tensor(t.name);
      EXPECT_EQ(embedded.find(t.name) != nullptr, !encoder) << t.name;
      if (!encoder) {
        ++decoder_tensors;
        const TensorInfo& e = embedded.at(t.name);
        EXPECT_EQ(e.shape, t.shape);
        EXPECT_EQ(std::vector<uint8_t>(embedded.data(e), embedded.data(e) + e.nbytes()),
                  std::vector<uint8_t>(full.data(t), full.data(t) + t.nbytes())) << t.name;
      } else if (++encoder_tensors == 1) {
        an_encoder_tensor = t.name;
      }
    }
    EXPECT_GT(encoder_tensors, 10u);
    EXPECT_EQ(embedded.tensors().size(), decoder_tensors);

    replace_embedded(path, vae_name, full.file_contents(), work + "/rtn_whole_vae.safetensors");
    const ServedModel slim = ServedModel::from_artifact(path), whole = ServedModel::from_artifact(work + "/rtn_whole_vae.safetensors");
    const SampleRequest q = two_prompts(slim);
    EXPECT_EQ(slim.generate(q), whole.generate(q));
    EXPECT_LT(fs::file_size(path) + full.file_bytes() - embedded.file_bytes(), fs::file_size(work + "/rtn_whole_vae.safetensors") + 64);

    SafeTensorsWriter partial;  // the decoder and one encoder tensor
    for (const TensorInfo& t : embedded.tensors()) partial.add(t.name, t.dtype, t.shape, embedded.data(t), t.nbytes());
    const TensorInfo& extra = full.at(an_encoder_tensor);
    partial.add(extra.name, extra.dtype, extra.shape, full.data(extra), extra.nbytes());
    replace_embedded(path, vae_name, partial.serialize(), work + "/rtn_partial_vae.safetensors");
    try {
      ServedModel::from_artifact(work + "/rtn_partial_vae.safetensors");
      ADD_FAILURE() << "an artifact whose VAE holds part of the encoder loaded";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("encoder."), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("vae/"), std::string::npos) << e.what();
    }
  }

  // The same artifact off the plan (kernels sim: LibTorch's UNet, the plans' text encoder and
  // VAE) draws the same images to the simulation's rounding; a W4A32 artifact samples from
  // prompts on the plan (fp32 inputs to its integer weights), the simulation's images too.
  {
    const ServedModel served = ServedModel::from_artifact(work + "/rtn.safetensors");
    const LoadedModel sim = LoadedModel::from_artifact(work + "/rtn.safetensors", KernelMode::kSim);
    ASSERT_TRUE(sim.takes_prompts());
    EXPECT_EQ(sim.kernels(), "sim");
    const SampleRequest q = two_prompts(served);
    const std::vector<float> a = served.generate(q), b = sim.generate(q);
    ASSERT_EQ(a.size(), b.size());
    double diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff += std::abs(a[i] - b[i]);
    EXPECT_LT(diff / a.size(), 2e-2);
    QuantizeJobOptions o;
    o.recipe = tiny_recipe("rtn");
    o.recipe.spec.weight_bits = 4;
    o.recipe.spec.act_bits = 0;
    o.report_samples = 0;
    fs::copy(*dir_, work + "/pipe", fs::copy_options::recursive);
    quantize_to_artifact(load_model_folder(work + "/pipe"), o, work + "/w4a32.safetensors");
    fs::remove_all(work + "/pipe");
    const LoadedModel w4a32 = LoadedModel::from_artifact(work + "/w4a32.safetensors");
    ASSERT_TRUE(w4a32.takes_prompts());
    EXPECT_NE(w4a32.kernels().find("int plan"), std::string::npos) << w4a32.kernels();
    const std::vector<float> images = w4a32.generate(q);
    ASSERT_EQ(images.size(), 2u * 16 * 16);
    for (float v : images) ASSERT_TRUE(std::isfinite(v) && std::abs(v) <= 1.0f);
    const std::vector<float> simulated = LoadedModel::from_artifact(work + "/w4a32.safetensors", KernelMode::kSim).generate(q);
    double w_diff = 0;
    for (size_t i = 0; i < images.size(); ++i) w_diff += std::abs(images[i] - simulated[i]);
    EXPECT_LT(w_diff / images.size(), 1e-3) << "nothing is quantized at run time: only float rounding differs";
  }

  // Fine-tuning a pipeline's artifact against its source runs by label over the recorded
  // calibration prompts, and keeps the embedded files.
  {
    FinetuneOptions f;
    f.iters = 2;
    f.samples = 2;
    f.holdout = 1;
    f.batch = 1;
    f.evals = 1;
    finetune_artifact(load_model_folder(*dir_), work + "/rtn.safetensors", work + "/rtn_ft.safetensors", f, 2);
    const ServedModel tuned = ServedModel::from_artifact(work + "/rtn_ft.safetensors");
    EXPECT_TRUE(tuned.takes_prompts());
  }

  // The integer plan against the simulation, one UNet call per step, on every kernel path (the
  // feature cache's single row read for every prompt entry).
  TextToImagePipeline pipe = load_pipeline(*dir_);
  const at::Tensor states = encode_prompts(pipe, {"a photo of a sneaker", "a coat", ""});
  for (const std::string recipe : {"tfmq", "tfmq+cache"}) {
    LoadedArtifact a = load_artifact(work + "/" + recipe + ".safetensors");
    ASSERT_EQ(a.pipeline_files.size(), read_artifact_info(SafeTensors::read_file(work + "/" + recipe + ".safetensors")).pipeline_files.size());
    a.model->unet->set_prompt_states(states, 2);
    torch::NoGradGuard g;
    torch::manual_seed(17);
    const at::Tensor x = torch::randn({3, 2, 8, 8});
    const at::Tensor labels = torch::tensor({0, 1, 2}, at::kLong);
    for (QGemmIsa isa : supported_isas()) {
      auto plan = make_plan(*a.model, isa);
      plan->set_text_states(states.data_ptr<float>(), 3);
      int exact = 0;
      std::string errors;  // each step's relative error, for the message
      for (int step = 0; step < static_cast<int>(a.info.timesteps.size()); ++step) {
        const int t = a.info.timesteps[static_cast<size_t>(step)];
        const at::Tensor sim = a.model->forward(x, t, step, labels);
        at::Tensor out = torch::empty(x.sizes());
        plan->run(x.data_ptr<float>(), 3, t, step, labels.data_ptr<int64_t>(), out.data_ptr<float>());
        const double e = (out - sim).abs().max().item<double>() / sim.abs().max().item<double>();
        EXPECT_LT(e, 5e-2) << recipe << " " << isa_name(isa) << " step " << step;
        exact += e < 1e-4;
        errors += " " + std::to_string(e);
      }
      // Four steps only: one activation code flipped at a rounding boundary (the plan's float sums
      // against LibTorch's, which differ by CPU: on an Intel Xeon tfmq+cache's calibration put
      // three of the four steps 1-2% apart) moves a step by ~1/255 of a layer's range, so one
      // exact step on every path, every step within 5%; PlanVsSim holds the stricter test.
      EXPECT_GE(exact, 1) << recipe << " " << isa_name(isa) << ": a step should agree to float rounding; relative errors" << errors;
    }
  }
  fs::remove_all(work);
}

TEST_F(TinyPipeline, CalibrationPromptsComeFromTheRequestOrTheFolder) {
  const std::string work = testing::temp_dir("t2i-prompts");
  fs::copy(*dir_, work + "/pipe", fs::copy_options::recursive);
  const DiffusionModel model = load_model_folder(work + "/pipe");
  QuantizeJobOptions o;
  o.recipe = tiny_recipe("rtn");
  o.recipe.prompts.clear();
  o.report_samples = 0;
  try {
    quantize_to_artifact(model, o, work + "/a.safetensors");
    ADD_FAILURE() << "quantized a pipeline without calibration prompts";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("calibration_prompts.txt"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(work + "/a.safetensors"));
  std::ofstream(work + "/pipe/calibration_prompts.txt") << "# comment\na sneaker\n\ntwo coats\r\n";
  EXPECT_EQ(folder_calibration_prompts(work + "/pipe"), (std::vector<std::string>{"a sneaker", "two coats"}));
  quantize_to_artifact(model, o, work + "/a.safetensors");
  EXPECT_EQ(read_artifact_info(SafeTensors::read_file(work + "/a.safetensors")).recipe.count("prompts"), 0u);
  // A model without a text encoder refuses them.
  const DiffusionModel plain = testing::tiny_conditional_model(work + "/plain", testing::tiny_config());
  o.recipe.prompts = {"a sneaker"};
  try {
    quantize_to_artifact(plain, o, work + "/b.safetensors");
    ADD_FAILURE() << "took calibration prompts for a UNet2DModel";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no text encoder"), std::string::npos) << e.what();
  }
  fs::remove_all(work);
}

// qdm quantize --components unet,text_encoder,vae_decoder: the text encoder and the VAE decoder
// at W8A8 beside the UNet, carried in the artifact (quantized/<component>.safetensors) and run on
// the integer plan from it with the source folder gone: close to the fp32 components, not equal
// to them, and as close as the LibTorch simulation the job measured.
TEST_F(TinyPipeline, ComponentsQuantizedBesideTheUNetServeFromTheArtifact) {
  const std::string work = testing::temp_dir("t2i-components");
  fs::copy(*dir_, work + "/pipe", fs::copy_options::recursive);
  const DiffusionModel model = load_model_folder(work + "/pipe");
  QuantizeJobOptions o;
  o.recipe = tiny_recipe("rtn");
  o.recipe.components = {"unet", "text_encoder", "vae_decoder"};
  o.report_samples = 0;
  const std::string path = work + "/a.safetensors";
  const QuantizeJobResult r = quantize_to_artifact(model, o, path);
  const nlohmann::json& c = r.report.at("components");
  const double sim_text_error = c.at("text_encoder").at("relative_error_vs_fp").get<double>();
  EXPECT_GT(sim_text_error, 0.0);
  EXPECT_LT(sim_text_error, 0.05);
  EXPECT_GT(c.at("vae_decoder").at("psnr_vs_fp").get<double>(), 30.0);
  const ArtifactInfo info = read_artifact_info(SafeTensors::read_file(path));
  for (const char* f : {"quantized/text_encoder.safetensors", "quantized/vae_decoder.safetensors"})
    EXPECT_NE(std::find(info.pipeline_files.begin(), info.pipeline_files.end(), f), info.pipeline_files.end()) << f;
  EXPECT_EQ(info.recipe.at("components"), nlohmann::json({"unet", "text_encoder", "vae_decoder"}));
  // The embedded fp32 weights leave out every weight the codes replace, and keep the biases.
  {
    const SafeTensors a = SafeTensors::read_file(path);
    const ArtifactPipelineSource source(std::make_shared<const SafeTensors>(SafeTensors::read_file(path)), info.pipeline_files);
    for (const auto& [component, fp32] : {std::pair<std::string, std::string>{"text_encoder", text_encoder_weights_name(source)},
                                          {"vae_decoder", "vae/diffusion_pytorch_model.safetensors"}}) {
      const QuantizedComponentInfo q = QuantizedComponentInfo::from_file(*source.weights(quantized_component_file(component)));
      const auto embedded = source.weights(fp32);
      const SafeTensors whole = SafeTensors::read_file(*dir_ + "/" + fp32);
      ASSERT_FALSE(q.layers.empty());
      for (const QuantizedComponentLayer& l : q.layers) {
        EXPECT_EQ(embedded->find(l.name + ".weight"), nullptr) << l.name;
        EXPECT_NE(whole.find(l.name + ".weight"), nullptr) << l.name;
        if (whole.find(l.name + ".bias")) EXPECT_NE(embedded->find(l.name + ".bias"), nullptr) << l.name;
      }
    }
  }
  fs::remove_all(work + "/pipe");

  // Torch-free, from the artifact alone: both components quantized, on the integer plan.
  auto file = std::make_shared<const SafeTensors>(SafeTensors::read_file(path));
  auto weights = std::make_shared<const ArtifactWeights>(file, info, graph::describe_unet_2d(info.config));
  const auto quantized = TextPipeline::from_artifact(file, weights, best_isa());
  ASSERT_EQ(quantized->quantized_components().size(), 2u);
  const auto fp = TextPipeline::load(*dir_, best_isa());
  const std::vector<std::string> prompts = {"a photo of a sneaker", "a coat", ""};
  const std::vector<float> q_states = quantized->encode(prompts), fp_states = fp->encode(prompts);
  double num = 0, den = 0;
  for (size_t i = 0; i < fp_states.size(); ++i) {
    num += (q_states[i] - fp_states[i]) * (q_states[i] - fp_states[i]);
    den += fp_states[i] * fp_states[i];
  }
  const double plan_text_error = std::sqrt(num / den);
  EXPECT_GT(plan_text_error, 0.0);
  EXPECT_LT(plan_text_error, 2 * sim_text_error + 1e-3) << "the simulation measured " << sim_text_error;
  torch::manual_seed(3);
  const at::Tensor z = torch::randn({2, 2, 8, 8});
  const std::vector<float> latents(z.data_ptr<float>(), z.data_ptr<float>() + z.numel());
  const std::vector<float> q_img = quantized->decode(latents, 2, 8, 8), fp_img = fp->decode(latents, 2, 8, 8);
  double mse = 0;
  for (size_t i = 0; i < fp_img.size(); ++i) mse += (q_img[i] - fp_img[i]) * (q_img[i] - fp_img[i]);
  mse /= fp_img.size();
  EXPECT_GT(mse, 0.0);
  EXPECT_GT(10 * std::log10(4.0 / mse), 30.0);

  // Served from prompts, on the plan and with the UNet simulated.
  const ServedModel served = ServedModel::from_artifact(path);
  const SampleRequest q = two_prompts(served);
  const std::vector<float> images = served.generate(q);
  ASSERT_EQ(images.size(), 2u * 16 * 16);
  for (float v : images) ASSERT_TRUE(std::isfinite(v) && std::abs(v) <= 1.0f);
  EXPECT_EQ(served.generate(q), images);
  const LoadedModel sim = LoadedModel::from_artifact(path, KernelMode::kSim);
  const std::vector<float> b = sim.generate(q);
  double diff = 0;
  for (size_t i = 0; i < images.size(); ++i) diff += std::abs(images[i] - b[i]);
  EXPECT_LT(diff / images.size(), 2e-2);
  // An artifact embedding the components' fp32 files whole (as artifacts did before) draws the
  // same images, and is larger by at least the replaced weights.
  {
    const std::string text_name = text_encoder_weights_name(FolderSource(*dir_));
    const auto whole = [&](const std::string& name) { return SafeTensors::read_file(*dir_ + "/" + name).file_contents(); };
    replace_embedded(path, text_name, whole(text_name), work + "/whole_text.safetensors");
    replace_embedded(work + "/whole_text.safetensors", "vae/diffusion_pytorch_model.safetensors",
                     whole("vae/diffusion_pytorch_model.safetensors"), work + "/whole.safetensors");
    EXPECT_EQ(ServedModel::from_artifact(work + "/whole.safetensors").generate(q), images);
    EXPECT_LT(fs::file_size(path), fs::file_size(work + "/whole.safetensors"));
  }

  // Refusals: an unknown component, a list without the UNet, components of a UNet model.
  for (const std::vector<std::string>& bad : {std::vector<std::string>{"unet", "vae"}, std::vector<std::string>{"text_encoder"}}) {
    o.recipe.components = bad;
    EXPECT_THROW(o.recipe.validate(), std::invalid_argument);
  }
  o.recipe.components = {"unet", "vae_decoder"};
  o.recipe.prompts.clear();
  const DiffusionModel plain = testing::tiny_conditional_model(work + "/plain", testing::tiny_config());
  try {
    quantize_to_artifact(plain, o, work + "/b.safetensors");
    ADD_FAILURE() << "quantized a VAE decoder of a UNet2DModel";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("quantize only its unet"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(work + "/b.safetensors"));

  // A quantized component listing a layer its config does not have is refused, naming it.
  {
    const PipelineFiles files = check_pipeline_folder(*dir_, {}, /*keep_files=*/true);
    const graph::Graph text = graph::describe_clip_text(files.text_encoder, fp->text_length());
    const FolderWeights fp32(files.text_encoder_file, text, "text_encoder/config.json", ignored_text_encoder_tensor);
    SafeTensorsWriter w;
    QuantizedComponentInfo bogus;
    bogus.component = "text_encoder";
    bogus.layers.push_back({"text_model.encoder.layers.9.mlp.fc1", 8, 8});
    w.set_metadata("qdm", bogus.to_json());
    auto bad = std::make_shared<const SafeTensors>(SafeTensors::parse(w.serialize()));
    try {
      ComponentWeights cw(bad, fp32, text);
      ADD_FAILURE() << "took a layer the text encoder does not have";
    } catch (const ArtifactError& e) {
      EXPECT_NE(std::string(e.what()).find("layers.9.mlp.fc1"), std::string::npos) << e.what();
    }
    // Codes above a layer's bits, and a scale that is not positive, are refused naming the tensor.
    const ArtifactPipelineSource source(std::make_shared<const SafeTensors>(SafeTensors::read_file(path)), info.pipeline_files);
    const auto real = source.weights(quantized_component_file("text_encoder"));
    const QuantizedComponentInfo q = QuantizedComponentInfo::from_file(*real);
    const std::string layer = q.layers.at(0).name;
    auto rewrite = [&](const QuantizedComponentInfo& meta, const std::string& zeroed) {
      SafeTensorsWriter rw;
      for (const TensorInfo& t : real->tensors()) {
        std::vector<uint8_t> bytes(real->data(t), real->data(t) + t.nbytes());
        if (t.name == zeroed) std::fill(bytes.begin(), bytes.end(), 0);
        rw.add(t.name, t.dtype, t.shape, bytes.data(), bytes.size());
      }
      rw.set_metadata("qdm", meta.to_json());
      return std::make_shared<const SafeTensors>(SafeTensors::parse(rw.serialize()));
    };
    ComponentWeights ok(rewrite(q, ""), fp32, text);  // the file as written loads
    QuantizedComponentInfo four = q;
    four.layers[0].weight_bits = 4;
    for (const auto& [file, message] : {std::make_pair(rewrite(four, ""), "'" + layer + ".qweight' holds codes above 15"),
                                        std::make_pair(rewrite(q, layer + ".wscale"), "'" + layer + ".wscale' holds a scale that is not positive")}) {
      try {
        ComponentWeights cw(file, fp32, text);
        ADD_FAILURE() << "took " << message;
      } catch (const ArtifactError& e) {
        EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).rfind("quantized text_encoder: ", 0), 0u) << e.what();
      }
    }
  }
  fs::remove_all(work);
}

// qdm train-text-to-image --init: training starts from another pipeline's UNet (its config, none
// being given): one step at learning rate 0 writes its weights back; without --init the same run
// writes a fresh UNet. The latent cache beside the checkpoint stands in for the dataset.
TEST_F(TinyPipeline, TextToImageTrainingWarmStartsFromAPipeline) {
  const std::string work = testing::temp_dir("t2i-init");
  const TextToImagePipeline source = load_pipeline(*dir_);
  const int channels = source.vae->config().latent_channels, size = source.unet->config().sample_size;
  auto train = [&](const std::string& out, const std::string& init) {
    fs::copy(*dir_, out, fs::copy_options::recursive);
    save_tensors(out + "/unet/latents.safetensors",
                 {{"latents", torch::randn({8, channels, size, size})}, {"labels", torch::arange(8, at::kLong)}});
    TextToImageTrainOptions o;
    o.loop.out_dir = out;
    o.loop.iterations = 1;
    o.loop.lr = 0;
    o.loop.min_lr = 0;
    o.loop.warmup = 0;
    o.loop.checkpoint_every = 1;
    o.batch_size = 2;
    o.scheduler = stable_diffusion_scheduler();
    o.init_from = init;
    if (init.empty()) {  // from scratch: the tiny pipeline's own shape
      o.config = source.unet->config();
      o.default_config = false;
    }
    EXPECT_EQ(train_text_to_image(o), 1);
    return load_pipeline(out);
  };
  const TextToImagePipeline warm = train(work + "/warm", *dir_), cold = train(work + "/cold", "");
  const auto expected = source.unet->named_parameters();
  double warm_diff = 0, cold_diff = 0;
  for (const auto& p : warm.unet->named_parameters()) warm_diff = std::max(warm_diff, (p.value() - expected[p.key()]).abs().max().item<double>());
  for (const auto& p : cold.unet->named_parameters()) cold_diff = std::max(cold_diff, (p.value() - expected[p.key()]).abs().max().item<double>());
  EXPECT_LT(warm_diff, 1e-6);
  EXPECT_GT(cold_diff, 1e-3);
  // A config that differs from the init's is refused, naming the flag.
  TextToImageTrainOptions bad;
  bad.loop.out_dir = work + "/warm";
  bad.init_from = *dir_;
  bad.config = source.unet->config();
  bad.config.layers_per_block += 1;
  bad.default_config = false;
  try {
    train_text_to_image(bad);
    ADD_FAILURE() << "trained from an init of another shape";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--init"), std::string::npos) << e.what();
  }
  fs::remove_all(work);
}

TEST(Captions, LearnedTokenizerCoversEveryCaptionWithoutUnknowns) {
  const std::string dir = testing::temp_dir("bpe");
  write_clip_tokenizer(dir, learn_bpe_merges(training_corpus(), 200), 32);
  const ClipTokenizer tok = ClipTokenizer::load(dir);
  EXPECT_EQ(tok.vocab_size(), 512u + 200u + 2u);
  // Frequent words became single tokens; held-out phrasing still encodes (from byte symbols).
  EXPECT_EQ(tok.encode("sneaker").size(), 1u);
  for (const auto& c : all_captions(7, CaptionSet::kHeldOut)) {
    if (c.find(',') == std::string::npos) EXPECT_EQ(tok.decode(tok.encode(c)), c);
    EXPECT_FALSE(tok.encode_padded(c).truncated) << c;
  }
  EXPECT_EQ(tok.decode(tok.encode("an ankle boot on white")), "an ankle boot on white");
  fs::remove_all(dir);
  // Held-out phrasings never occur among the training captions.
  const auto training = training_corpus();
  for (int label = 0; label < 10; ++label)
    for (const auto& c : all_captions(label, CaptionSet::kHeldOut))
      EXPECT_EQ(std::find(training.begin(), training.end(), c), training.end()) << c;
}

TEST(TrainingLoop, TextEncoderResumesExactly) {
  // stop_at: end the run after that step's checkpoint, as an interrupted run does (the schedule
  // still spans all 8 steps).
  auto run = [](const std::string& dir, int stop_at) {
    TextEncoderTrainOptions o;
    o.loop.out_dir = dir;
    o.loop.iterations = 8;
    o.loop.checkpoint_every = 4;
    o.loop.log_every = 4;
    o.loop.warmup = 2;
    o.merges = 40;
    o.max_length = 16;
    o.batch_size = 8;
    train_text_encoder(o, [stop_at](const TrainingStep& s) { return s.step < stop_at; });
  };
  const std::string a = testing::temp_dir("te_a"), b = testing::temp_dir("te_b");
  run(a, 8);
  run(b, 4);
  run(b, 8);  // resumes from step 4
  const TensorMap wa = load_tensors(a + "/text_encoder/model.safetensors"), wb = load_tensors(b + "/text_encoder/model.safetensors");
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) EXPECT_TRUE(torch::equal(t, wb.at(name))) << name;
  EXPECT_TRUE(fs::exists(a + "/text_encoder/report.json"));
  fs::remove_all(a);
  fs::remove_all(b);
}

}  // namespace
}  // namespace qdm
