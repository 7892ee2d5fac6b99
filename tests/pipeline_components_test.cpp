// The text encoder and the VAE against an independent PyTorch implementation
// (tests/reference/pipeline_components_reference.py) on SD 1.x- and 2.x-shaped toy configs, to
// 1e-4 relative; and the tensor lists the descriptions imply against the reference's files.
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/model/autoencoder_kl.h"
#include "engine/model/clip_text_model.h"
#include "engine/model/module_weights.h"
#include "engine/model/unet_2d.h"
#include "engine/kernels/qgemm.h"
#include "engine/runtime/plan/execution_plan.h"
#include "engine/runtime/quantized_weights.h"
#include "format/graph/unet_2d.h"
#include "format/unet_tensors.h"
#include "engine/model_io/tensor_io.h"
#include "format/graph/autoencoder_kl.h"
#include "format/graph/clip_text.h"
#include "format/pipeline_folder.h"
#include "format/safetensors.h"
#include "engine/runtime/folder_weights.h"

namespace qdm {
namespace {

namespace fs = std::filesystem;

std::string case_dir(const std::string& name) { return std::string(QDM_SOURCE_DIR) + "/tests/data/components/" + name; }

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).norm().item<double>() / want.norm().item<double>();
}

std::set<std::string> file_names(const std::string& path) {
  std::set<std::string> out;
  const SafeTensors file = SafeTensors::read_file(path);
  for (const auto& t : file.tensors()) out.insert(t.name);
  return out;
}
std::set<std::string> graph_names(const graph::Graph& g) {
  std::set<std::string> out;
  for (const auto& t : g.tensors) out.insert(t.name);
  return out;
}

class TextEncoderReference : public ::testing::TestWithParam<const char*> {};

TEST_P(TextEncoderReference, MatchesToFloatRounding) {
  const std::string dir = case_dir(GetParam());
  const ClipTextConfig config = ClipTextConfig::from_file(dir + "/config.json");
  EXPECT_EQ(graph_names(graph::describe_clip_text(config)), file_names(dir + "/weights.safetensors"));
  ClipTextModel model(config);
  load_module_weights(*model, SafeTensors::read_file(dir + "/weights.safetensors"), "config.json");
  TensorMap io = load_tensors(dir + "/io.safetensors");
  torch::NoGradGuard no_grad;
  const at::Tensor out = model->forward(io.at("input_ids"));
  ASSERT_EQ(out.sizes(), io.at("out").sizes());
  EXPECT_LT(relative_error(out, io.at("out")), 1e-4);
  // A prefix of the tokens gives the prefix of the states (causal attention).
  const at::Tensor prefix = model->forward(io.at("input_ids").narrow(1, 0, 5));
  EXPECT_LT(relative_error(prefix, io.at("out").narrow(1, 0, 5)), 1e-4);
  // The torch-free execution plan on the stored weights: token ids in, the same states out.
  const at::Tensor ids = io.at("input_ids").contiguous();
  const graph::Graph g = graph::describe_clip_text(config, static_cast<int>(ids.size(1)));
  const FolderWeights weights(std::make_shared<const SafeTensors>(SafeTensors::read_file(dir + "/weights.safetensors")), g,
                              "config.json", ignored_text_encoder_tensor);
  for (QGemmIsa isa : supported_isas()) {
    ExecutionPlan plan(g, weights, isa, 2);
    ASSERT_EQ(plan.token_length(), ids.size(1));
    at::Tensor got = torch::empty(io.at("out").sizes());
    plan.run_tokens(ids.data_ptr<int64_t>(), static_cast<int>(ids.size(0)), got.data_ptr<float>());
    EXPECT_LT(relative_error(got, io.at("out")), 1e-5) << isa_name(isa);
    EXPECT_THROW(plan.run(got.data_ptr<float>(), 1, 0, 0, nullptr, got.data_ptr<float>()), std::invalid_argument);
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, TextEncoderReference, ::testing::Values("clip_sd1", "clip_sd2"));

class VaeReference : public ::testing::TestWithParam<const char*> {};

TEST_P(VaeReference, EncoderAndDecoderMatchToFloatRounding) {
  const std::string dir = case_dir(GetParam());
  const AutoencoderKLConfig config = AutoencoderKLConfig::from_file(dir + "/config.json");
  EXPECT_EQ(graph_names(graph::describe_autoencoder_kl(config)), file_names(dir + "/weights.safetensors"));
  // The halves declare the file's tensors between them.
  std::set<std::string> halves = graph_names(graph::describe_vae_encoder(config));
  for (const auto& n : graph_names(graph::describe_vae_decoder(config))) halves.insert(n);
  EXPECT_EQ(halves, file_names(dir + "/weights.safetensors"));
  AutoencoderKL model(config);
  load_module_weights(*model, SafeTensors::read_file(dir + "/weights.safetensors"), "config.json");
  TensorMap io = load_tensors(dir + "/io.safetensors");
  torch::NoGradGuard no_grad;
  const at::Tensor mean = model->encode_mean(io.at("sample"));  // a non-square image
  ASSERT_EQ(mean.sizes(), io.at("mean").sizes());
  EXPECT_LT(relative_error(mean, io.at("mean")), 1e-4);
  const at::Tensor decoded = model->decode(io.at("latent"));
  ASSERT_EQ(decoded.sizes(), io.at("decoded").sizes());
  EXPECT_LT(relative_error(decoded, io.at("decoded")), 1e-4);
  // The torch-free execution plan on the stored weights: the decoder from the latent, the
  // encoder's posterior mean from the (non-square) image.
  auto file = std::make_shared<const SafeTensors>(SafeTensors::read_file(dir + "/weights.safetensors"));
  const at::Tensor latent = io.at("latent").contiguous(), sample = io.at("sample").contiguous();
  const graph::Graph dec = graph::describe_vae_decoder(config, static_cast<int>(latent.size(2)), static_cast<int>(latent.size(3)));
  const graph::Graph enc = graph::describe_vae_encoder(config, static_cast<int>(sample.size(2)), static_cast<int>(sample.size(3)));
  const FolderWeights weights(file, graph::describe_autoencoder_kl(config), "config.json");  // the whole file checked
  for (QGemmIsa isa : supported_isas()) {
    ExecutionPlan d(dec, weights, isa, 2), e(enc, weights, isa, 2);
    at::Tensor got = torch::empty(io.at("decoded").sizes());
    d.run(latent.data_ptr<float>(), static_cast<int>(latent.size(0)), 0, 0, nullptr, got.data_ptr<float>());
    EXPECT_LT(relative_error(got, io.at("decoded")), 1e-5) << isa_name(isa);
    at::Tensor got_mean = torch::empty(io.at("mean").sizes());
    e.run(sample.data_ptr<float>(), static_cast<int>(sample.size(0)), 0, 0, nullptr, got_mean.data_ptr<float>());
    EXPECT_LT(relative_error(got_mean, io.at("mean")), 1e-5) << isa_name(isa);
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, VaeReference, ::testing::Values("vae_sd", "vae_plain"));

class TextUNetReference : public ::testing::TestWithParam<const char*> {};

TEST_P(TextUNetReference, MatchesToFloatRounding) {
  const std::string dir = case_dir(GetParam());
  const UNetConfig config = UNetConfig::from_file(dir + "/config.json");
  ASSERT_TRUE(config.text_conditioned());
  EXPECT_EQ(graph_names(graph::describe_unet_2d(config)), file_names(dir + "/weights.safetensors"));
  // The torch-free check uploads get accepts the reference's file.
  EXPECT_NO_THROW(check_unet_weights(config, SafeTensors::read_file(dir + "/weights.safetensors")));
  UNet2DModel model(config);
  load_module_weights(*model, SafeTensors::read_file(dir + "/weights.safetensors"), "config.json");
  TensorMap io = load_tensors(dir + "/io.safetensors");
  torch::NoGradGuard no_grad;
  const at::Tensor out = model->forward(io.at("sample"), io.at("timestep"), {}, io.at("encoder_hidden_states"));
  ASSERT_EQ(out.sizes(), io.at("out").sizes());
  EXPECT_LT(relative_error(out, io.at("out")), 1e-4);
  // The text matters, and the model refuses to run without it.
  EXPECT_GT(relative_error(model->forward(io.at("sample"), io.at("timestep"), {}, torch::zeros_like(io.at("encoder_hidden_states"))),
                           io.at("out")),
            1e-3);
  EXPECT_THROW(model->forward(io.at("sample"), io.at("timestep")), std::invalid_argument);
  // The FP32 execution plan (torch-free runtime) against LibTorch on the reference config, with
  // random weights (not near-identity), cross-attention in the last up block, each image's text
  // states picked by its label from the plan's per-request table.
  const at::Tensor ctx = io.at("encoder_hidden_states");
  const at::Tensor x = io.at("sample");
  const int n = static_cast<int>(x.size(0));
  const std::vector<float> table(ctx.data_ptr<float>(), ctx.data_ptr<float>() + ctx.numel());
  const std::vector<int64_t> entries{1, 0};  // image 0 reads states 1
  torch::manual_seed(1);
  UNet2DModel m2(config);
  for (auto& p : m2->parameters()) p.normal_(0.0, 0.2);
  for (QGemmIsa isa : supported_isas()) {
    ExecutionPlan plan(graph::describe_unet_2d(config, static_cast<int>(x.size(2)), static_cast<int>(x.size(3)),
                                               static_cast<int>(ctx.size(1))),
                       ModuleWeights(m2), isa, 2);
    ASSERT_TRUE(plan.takes_text());
    plan.set_text_states(table.data(), n);
    for (int t : {10, 700}) {
      // (LibTorch's output may carry channels-last strides from to_image: compared through ATen.)
      const at::Tensor want = m2->forward(x, torch::full({n}, static_cast<float>(t)), {}, ctx.index_select(0, torch::tensor(entries)));
      at::Tensor got = torch::empty(want.sizes());
      plan.run(x.data_ptr<float>(), n, t, 0, entries.data(), got.data_ptr<float>());
      EXPECT_LT(relative_error(got, want), 1e-5) << isa_name(isa) << " t=" << t;
    }
  }
  // The config round-trips through to_json.
  EXPECT_EQ(graph_names(graph::describe_unet_2d(UNetConfig::from_json(config.to_json()))), file_names(dir + "/weights.safetensors"));
}

INSTANTIATE_TEST_SUITE_P(Configs, TextUNetReference, ::testing::Values("unet_sd1", "unet_sd2"));

TEST(PipelineComponents, SaveLoadRoundTripsAndRefusesMismatchedWeights) {
  const std::string tmp = (fs::temp_directory_path() / ("qdm_components_" + std::to_string(::getpid()))).string();
  const AutoencoderKLConfig vc = AutoencoderKLConfig::from_file(case_dir("vae_plain") + "/config.json");
  AutoencoderKL vae(vc);
  save_vae(tmp + "/vae", *vae);
  LoadedVae loaded = load_vae(tmp + "/vae");
  torch::NoGradGuard no_grad;
  const at::Tensor z = torch::randn({1, vc.latent_channels, 2, 3});
  EXPECT_TRUE(torch::equal(loaded.model->decode(z), vae->decode(z)));
  EXPECT_EQ(loaded.weights_dtype, "F32");

  const ClipTextConfig tc = ClipTextConfig::from_file(case_dir("clip_sd1") + "/config.json");
  ClipTextModel text(tc);
  save_text_encoder(tmp + "/text_encoder", *text);
  LoadedTextEncoder lt = load_text_encoder(tmp + "/text_encoder");
  const at::Tensor ids = torch::randint(0, tc.vocab_size, {2, 7});
  EXPECT_TRUE(torch::equal(lt.model->forward(ids), text->forward(ids)));
  EXPECT_THROW(lt.model->forward(torch::full({1, 3}, tc.vocab_size)), std::invalid_argument);

  // Another config's weights: refused naming a tensor.
  fs::copy_file(case_dir("clip_sd2") + "/weights.safetensors", tmp + "/text_encoder/model.safetensors",
                fs::copy_options::overwrite_existing);
  try {
    load_text_encoder(tmp + "/text_encoder");
    FAIL() << "loaded another config's weights";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("tensor '"), std::string::npos) << e.what();
  }
  fs::remove_all(tmp);
}

TEST(PipelineComponents, RefusesUnsupportedSettingsNamingTheField) {
  auto error = [](auto fn) {
    try {
      fn();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error([] { ClipTextConfig::from_json({{"hidden_act", "relu"}}); }).find("field 'hidden_act'"), std::string::npos);
  EXPECT_NE(error([] { ClipTextConfig::from_json({{"hidden_size", 30}, {"num_attention_heads", 4}}); }).find("num_attention_heads"),
            std::string::npos);
  EXPECT_NE(error([] { ClipTextConfig::from_json({{"architectures", {"T5EncoderModel"}}}); }).find("architectures"), std::string::npos);
  EXPECT_NE(error([] { AutoencoderKLConfig::from_json({{"_class_name", "AutoencoderTiny"}}); }).find("_class_name"), std::string::npos);
  const nlohmann::json text_unet = {{"_class_name", "UNet2DConditionModel"}, {"block_out_channels", {32, 64}},
                                    {"down_block_types", {"CrossAttnDownBlock2D", "DownBlock2D"}},
                                    {"up_block_types", {"UpBlock2D", "CrossAttnUpBlock2D"}}, {"cross_attention_dim", 16}};
  EXPECT_NO_THROW(UNetConfig::from_json(text_unet));
  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json j = text_unet;
    j[key] = std::move(value);
    return j;
  };
  EXPECT_NE(error([&] { UNetConfig::from_json(with("addition_embed_type", "text_time")); }).find("addition_embed_type"), std::string::npos);
  EXPECT_NE(error([&] { UNetConfig::from_json(with("num_attention_heads", 8)); }).find("num_attention_heads"), std::string::npos);
  EXPECT_NE(error([&] { UNetConfig::from_json(with("attention_head_dim", {8, 8, 8})); }).find("attention_head_dim"), std::string::npos);
  EXPECT_NE(error([&] { UNetConfig::from_json(with("cross_attention_dim", {16, 16})); }).find("cross_attention_dim"), std::string::npos);
  EXPECT_NE(error([&] { UNetConfig::from_json(with("only_cross_attention", true)); }).find("only_cross_attention"), std::string::npos);
  EXPECT_NE(error([&] { UNetConfig::from_json(with("down_block_types", {"AttnDownBlock2D", "DownBlock2D"})); }).find("down_block_types"),
            std::string::npos);
  EXPECT_NE(error([] { AutoencoderKLConfig::from_json({{"act_fn", "gelu"}}); }).find("act_fn"), std::string::npos);
  EXPECT_NE(error([] { AutoencoderKLConfig::from_json({{"block_out_channels", {32, 64}}, {"down_block_types", {"DownEncoderBlock2D"}}}); })
                .find("down_block_types"),
            std::string::npos);
}

}  // namespace
}  // namespace qdm
