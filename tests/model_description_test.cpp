// One description per architecture, three derivations that must agree, for every supported
// config: the torch-free tensor list (uploads are checked against it), the LibTorch modules
// (named parameters and buffers, and their forward), and the execution plan (its output
// against LibTorch's to float rounding, on fp32 weights).
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <map>

#include "engine/model/unet_2d.h"
#include "engine/kernels/qgemm.h"
#include "engine/runtime/plan/execution_plan.h"
#include "engine/runtime/quantized_weights.h"
#include "format/graph/unet_2d.h"
#include "format/unet_tensors.h"
#include "tests/test_models.h"

namespace qdm {
namespace {

std::vector<std::pair<std::string, UNetConfig>> variants() {
  std::vector<std::pair<std::string, UNetConfig>> out = {
      {"tiny", testing::tiny_config()},
      {"ddpm-cifar10", UNetConfig::from_json(testing::ddpm_cifar10_config_json())},
      {"ddpm-128", UNetConfig::from_json(testing::ddpm_128_config_json())}};
  auto add = [&](const std::string& name, auto edit) {
    UNetConfig c = testing::tiny_config();
    edit(c);
    c.validate();
    out.emplace_back(name, c);
  };
  add("fourier", [](UNetConfig& c) { c.time_embedding_type = "fourier"; });
  add("learned", [](UNetConfig& c) {
    c.time_embedding_type = "learned";
    c.num_train_timesteps = 1000;
  });
  add("scale_shift", [](UNetConfig& c) { c.resnet_time_scale_shift = "scale_shift"; });
  add("scale_shift+attn_groups", [](UNetConfig& c) {
    c.resnet_time_scale_shift = "scale_shift";
    c.attn_norm_num_groups = 2;
  });
  add("class table", [](UNetConfig& c) { c.num_class_embeds = 11; });
  add("class timestep", [](UNetConfig& c) { c.class_embed_type = "timestep"; });
  add("class identity", [](UNetConfig& c) { c.class_embed_type = "identity"; });
  add("no mid block", [](UNetConfig& c) {
    c.has_mid_block = false;
    c.layers_per_block = 3;
    c.time_embedding_dim = 24;
  });
  add("center input, downsample_padding 0", [](UNetConfig& c) {
    c.center_input_sample = true;
    c.downsample_padding = 0;
  });
  add("mid scale, flip, shift", [](UNetConfig& c) {
    c.mid_block_scale_factor = 1.5;
    c.flip_sin_to_cos = false;
    c.freq_shift = 1;
    c.attention_head_dim = std::nullopt;
  });
  add("attention in the last up block", [](UNetConfig& c) {
    c.down_block_types = {"AttnDownBlock2D", "DownBlock2D"};
    c.up_block_types = {"UpBlock2D", "AttnUpBlock2D"};
    c.layers_per_block = 2;
  });
  add("three levels", [](UNetConfig& c) {
    c.block_out_channels = {8, 16, 16};
    c.down_block_types = {"DownBlock2D", "AttnDownBlock2D", "DownBlock2D"};
    c.up_block_types = {"UpBlock2D", "AttnUpBlock2D", "UpBlock2D"};
    c.layers_per_block = 2;
  });
  return out;
}

TEST(ModelDescription, TensorListAndModulesAgreeForEveryConfig) {
  for (const auto& [name, c] : variants()) {
    UNet2DModel m(c);
    std::map<std::string, std::vector<int64_t>> built, listed;
    for (const auto& p : m->named_parameters()) built[p.key()] = p.value().sizes().vec();
    for (const auto& b : m->named_buffers()) built[b.key()] = b.value().sizes().vec();
    for (const auto& t : expected_unet_tensors(c)) EXPECT_TRUE(listed.emplace(t.name, t.shape).second) << name << ": " << t.name;
    EXPECT_EQ(listed, built) << name;
    // The graph's blocks and layers are the modules the quantization code reaches by name.
    const graph::Graph g = graph::describe_unet_2d(c);
    for (int n : g.layers()) {
      const auto& node = g.nodes[static_cast<size_t>(n)];
      EXPECT_TRUE(node.op == graph::Op::kConv2d ? m->conv(node.name) != nullptr : m->linear(node.name) != nullptr) << node.name;
    }
    EXPECT_EQ(m->temporal_feature_layers().size(), g.temporal_features().size()) << name;
  }
}

// The plan on fp32 weights against LibTorch's forward, for every config it supports; for the
// others, unsupported() names what it lacks.
TEST(ModelDescription, Fp32PlanMatchesLibTorchForEverySupportedConfig) {
  torch::NoGradGuard no_grad;
  int supported = 0;
  for (const auto& [name, c] : variants()) {
    if (c.sample_size > 32 || c.block_out_channels.back() > 64) continue;  // the big published configs: shapes only
    torch::manual_seed(3);
    UNet2DModel m(c);
    for (auto& p : m->parameters()) p.normal_(0.0, 0.2);  // not the near-identity default init
    const std::string why = ExecutionPlan::unsupported(m->graph(), ModuleWeights(m));
    if (!why.empty()) {  // only "identity" class embeddings, given as an input, are not lowered
      EXPECT_EQ(c.class_embed_type.value_or(""), "identity") << name << ": " << why;
      continue;
    }
    ++supported;
    const int n = 3;
    const at::Tensor x = torch::randn({n, c.in_channels, c.sample_size, c.sample_size});
    const at::Tensor labels = torch::tensor({0, 5, 2}, at::kLong);  // also valid timestep-projected labels
    const bool conditional = c.conditional();
    for (QGemmIsa isa : supported_isas()) {
      auto plan = make_plan(m, isa, 2);
      for (int t : {c.time_embedding_type == "fourier" ? 1 : 0, 371, 999}) {  // Fourier projections take log(t)
        const at::Tensor want = m->forward(x, torch::full({n}, static_cast<float>(t)), conditional ? labels : at::Tensor());
        at::Tensor got = torch::empty(want.sizes());
        plan->run(x.data_ptr<float>(), n, t, 0, conditional ? labels.data_ptr<int64_t>() : nullptr, got.data_ptr<float>());
        const double err = (got - want).abs().max().item<double>() / want.abs().max().item<double>();
        EXPECT_LT(err, 1e-4) << name << " " << isa_name(isa) << " t=" << t;
      }
    }
  }
  EXPECT_GE(supported, 12);
}

}  // namespace
}  // namespace qdm
