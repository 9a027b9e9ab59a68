// What loads: every transformers fixture (both naming schemes, F32/F16/BF16, tied and untied,
// sharded), every shape of the public Mamba family (as sparse full-size files), the LTI variant,
// and the fp32 views the CPU backend reads (in place for fp32, converted once otherwise).
#include <gtest/gtest.h>

#include "checkpoint_testing.hpp"
#include "hf_fixture.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/weights.hpp"

namespace mambascope {
namespace {

using testing::TempDir;
using testing::TinySpec;

TEST(CheckpointLoad, EveryTransformersFixtureOpensWithItsConfig) {
  struct Want {
    const char* name;
    int64_t d_model, vocab, d_state, d_conv, dt_rank;
    DType dtype;
    const char* naming;
    bool tied;
  };
  const Want wants[] = {
      {"tied_fp32", 64, 512, 16, 4, 4, DType::F32, "hf", true},
      {"bf16", 48, 384, 16, 4, 3, DType::BF16, "hf", true},
      {"original_names", 32, 304, 16, 4, 2, DType::F16, "original", true},
      {"untied_bias_noconvbias", 40, 320, 16, 4, 3, DType::F32, "hf", false},
      {"dstate_8", 32, 256, 8, 4, 2, DType::F32, "hf", true},
      {"conv_kernel_3", 32, 288, 16, 3, 5, DType::F32, "hf", true},
      {"long_500", 32, 256, 16, 4, 2, DType::F32, "hf", true},
      {"sharded", 48, 400, 16, 4, 3, DType::F32, "hf", true},
  };
  ASSERT_EQ(std::size(wants), testing::hf_fixture_cases().size());
  for (const Want& w : wants) {
    SCOPED_TRACE(w.name);
    auto ck = Checkpoint::open(testing::hf_fixtures_dir() / w.name);
    const ModelConfig& c = ck->config();
    EXPECT_EQ(c.d_model, w.d_model);
    EXPECT_EQ(c.n_layer, 2);
    EXPECT_EQ(c.vocab_size, w.vocab);
    EXPECT_EQ(c.d_state, w.d_state);
    EXPECT_EQ(c.d_conv, w.d_conv);
    EXPECT_EQ(c.dt_rank, w.dt_rank);
    EXPECT_EQ(c.d_inner, 2 * w.d_model);
    EXPECT_EQ(c.naming, w.naming);
    EXPECT_EQ(c.tie_embeddings, w.tied);
    EXPECT_EQ(ck->storage_dtype(), w.dtype);
    // The fixture's logits have one column per embedding row.
    EXPECT_EQ(testing::load_hf_fixture(w.name).vocab, c.vocab_size);
  }
}

TEST(CheckpointLoad, OriginalNamesAreServedUnderTheHfNames) {
  auto ck = Checkpoint::open(testing::hf_fixtures_dir() / "original_names");
  const TensorView* emb = ck->find("backbone.embeddings.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{304, 32}));  // 300 padded to a multiple of 8
  EXPECT_EQ(ck->find("backbone.embedding.weight"), nullptr);
  // The file stores lm_head.weight too (equal: tied); it is served as the embedding, counted once.
  EXPECT_EQ(ck->find("lm_head.weight"), emb);
  for (const TensorView& t : ck->tensors()) EXPECT_NE(t.name, "lm_head.weight");
}

TEST(CheckpointLoad, TiedHeadIsTheEmbeddingAndUntiedHeadIsItsOwn) {
  auto tied = Checkpoint::open(testing::hf_fixtures_dir() / "tied_fp32");
  EXPECT_EQ(tied->find("lm_head.weight"), tied->find("backbone.embeddings.weight"));
  auto untied = Checkpoint::open(testing::hf_fixtures_dir() / "untied_bias_noconvbias");
  const TensorView& head = untied->get("lm_head.weight");
  EXPECT_EQ(head.name, "lm_head.weight");
  EXPECT_NE(head.data, untied->get("backbone.embeddings.weight").data);
  EXPECT_NE(untied->find("backbone.layers.1.mixer.out_proj.bias"), nullptr);
  EXPECT_EQ(untied->find("backbone.layers.1.mixer.conv1d.bias"), nullptr);
}

TEST(CheckpointLoad, ShardedCheckpointMapsBothShards) {
  auto ck = Checkpoint::open(testing::hf_fixtures_dir() / "sharded");
  auto dir = testing::hf_fixtures_dir() / "sharded";
  size_t both = std::filesystem::file_size(dir / "model-00001-of-00002.safetensors") +
                std::filesystem::file_size(dir / "model-00002-of-00002.safetensors");
  EXPECT_EQ(ck->mapped_bytes(), both);
  EXPECT_NE(ck->find("backbone.layers.0.mixer.A_log"), nullptr);  // shard 1
  EXPECT_NE(ck->find("backbone.layers.1.mixer.A_log"), nullptr);  // shard 2
  EXPECT_NE(ck->find("backbone.norm_f.weight"), nullptr);
}

TEST(CheckpointLoad, ParameterCountCountsTiedHeadOnce) {
  // tied_fp32: V 512, d 64, d_inner 128, N 16, k 4, r 4, 2 layers.
  const int64_t d = 64, di = 128, n = 16, r = 4, k = 4;
  const int64_t layer =
      d + 2 * di * d + di * k + di + (r + 2 * n) * di + di * r + di + di * n + di + d * di;
  auto ck = Checkpoint::open(testing::hf_fixtures_dir() / "tied_fp32");
  EXPECT_EQ(ck->parameter_count(), 512 * d + d + 2 * layer);
}

// The public family, at full size: the safetensors header is real, the data is a hole.
struct FamilyMember {
  const char* name;
  int64_t d_model, n_layer, params;
  DType dtype;
  bool original;
};

TEST(CheckpointLoad, EveryShapeOfThePublicFamilyLoads) {
  const FamilyMember family[] = {
      {"mamba-130m", 768, 24, 129'135'360, DType::F32, false},
      {"mamba-370m", 1024, 48, 371'516'416, DType::F16, false},
      {"mamba-790m", 1536, 48, 793'204'224, DType::BF16, true},
      {"mamba-1.4b", 2048, 48, 1'372'178'432, DType::BF16, false},
      {"mamba-2.8b", 2560, 64, 2'768'345'600, DType::BF16, true},
  };
  for (const FamilyMember& m : family) {
    SCOPED_TRACE(m.name);
    TempDir tmp;
    TinySpec s;
    s.d_model = m.d_model;
    s.n_layer = m.n_layer;
    s.d_state = 16;
    s.dtype = m.dtype;
    s.original = m.original;
    s.vocab = m.original ? 50277 : 50280;  // state-spaces configs say 50277 and pad to 50280
    s.holes = true;
    testing::write_tiny_checkpoint(tmp.path(), s);
    auto ck = Checkpoint::open(tmp.path());
    EXPECT_EQ(ck->config().vocab_size, 50280);
    EXPECT_EQ(ck->config().dt_rank, (m.d_model + 15) / 16);
    EXPECT_EQ(ck->parameter_count(), m.params);
    EXPECT_EQ(ck->storage_dtype(), m.dtype);
    EXPECT_GE(ck->mapped_bytes(), size_t(m.params) * dtype_size(m.dtype));
  }
}

TEST(CheckpointLoad, MambaScopeLtiModelHasNoSelectionProjections) {
  TempDir tmp;
  TinySpec s;
  s.lti = true;
  testing::write_tiny_checkpoint(tmp.path(), s);
  auto ck = Checkpoint::open(tmp.path());
  EXPECT_TRUE(ck->config().lti);
  EXPECT_NE(ck->find("backbone.layers.0.mixer.B_lti"), nullptr);
  EXPECT_EQ(ck->find("backbone.layers.0.mixer.x_proj.weight"), nullptr);
  ModelWeightsF32 w = load_weights_f32(*ck);
  EXPECT_NE(w.layers[1].C_lti, nullptr);
  EXPECT_EQ(w.layers[1].x_proj, nullptr);
  EXPECT_EQ(w.layers[1].dt_bias, nullptr);
}

TEST(Weights, Fp32TensorsAreUsedInPlace) {
  auto ck = Checkpoint::open(testing::hf_fixtures_dir() / "tied_fp32");
  ModelWeightsF32 w = load_weights_f32(*ck);
  EXPECT_TRUE(w.owned.empty());
  EXPECT_EQ(static_cast<const void*>(w.embedding), ck->get("backbone.embeddings.weight").data);
  EXPECT_EQ(w.lm_head, w.embedding);
  EXPECT_EQ(static_cast<const void*>(w.layers[1].A_log),
            ck->get("backbone.layers.1.mixer.A_log").data);
  EXPECT_EQ(w.layers[0].in_proj_bias, nullptr);
  EXPECT_NE(w.layers[0].conv_b, nullptr);
}

TEST(Weights, HalfTensorsAreConvertedOnceAndExactly) {
  for (DType dt : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    TempDir tmp;
    TinySpec s;
    s.dtype = dt;
    s.tied = false;
    testing::write_tiny_checkpoint(tmp.path(), s);
    auto ck = Checkpoint::open(tmp.path());
    ModelWeightsF32 w = load_weights_f32(*ck);
    EXPECT_EQ(w.owned.size(), ck->tensors().size());  // every tensor converted, none twice
    // tiny_value() is exact in both half formats: tensor k of the spec holds tiny_value(k, i).
    const auto specs = testing::tiny_tensor_specs(s);
    size_t k_dt = 0;
    while (specs[k_dt].name != "backbone.layers.1.mixer.dt_proj.bias") ++k_dt;
    for (size_t i = 0; i < 16; ++i) EXPECT_EQ(w.layers[1].dt_bias[i], testing::tiny_value(k_dt, i));
    EXPECT_NE(w.lm_head, w.embedding);
  }
}

TEST(Weights, TiedHalfHeadSharesTheConvertedEmbedding) {
  auto ck = Checkpoint::open(testing::hf_fixtures_dir() / "bf16");
  ModelWeightsF32 w = load_weights_f32(*ck);
  EXPECT_EQ(w.lm_head, w.embedding);
  EXPECT_EQ(w.owned.size(), ck->tensors().size());
  uint16_t first;
  std::memcpy(&first, ck->get("backbone.embeddings.weight").data, 2);
  EXPECT_EQ(w.embedding[0], bf16_to_f32(first));
}

}  // namespace
}  // namespace mambascope
