// config.json in both spellings: the numbers each implies (defaults, "auto" ranks, vocabulary
// padding), and the architectures that are refused with their name in the message.
#include <gtest/gtest.h>

#include "mambascope/config.hpp"
#include "mambascope/error.hpp"

namespace mambascope {
namespace {

ModelConfig parse(const std::string& text) { return parse_model_config(text, "config.json"); }

void expect_parse_error(const std::string& text, std::initializer_list<std::string> parts) {
  try {
    parse(text);
    ADD_FAILURE() << "accepted: " << text;
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

// The config.json of state-spaces/mamba-130m-hf, as the hub serves it (both layer-count keys).
const char* kHf130m = R"({
  "architectures": ["MambaForCausalLM"], "bos_token_id": 0, "conv_kernel": 4, "eos_token_id": 0,
  "expand": 2, "hidden_act": "silu", "hidden_size": 768, "initializer_range": 0.1,
  "intermediate_size": 1536, "layer_norm_epsilon": 1e-05, "model_type": "mamba", "n_layer": 24,
  "num_hidden_layers": 24, "pad_token_id": 0, "rescale_prenorm_residual": false,
  "residual_in_fp32": true, "state_size": 16, "time_step_floor": 0.0001,
  "time_step_init_scheme": "random", "time_step_max": 0.1, "time_step_min": 0.001,
  "time_step_rank": 48, "time_step_scale": 1.0, "torch_dtype": "float32",
  "transformers_version": "4.39.0.dev0", "use_bias": false, "use_cache": true,
  "use_conv_bias": true, "vocab_size": 50280})";

TEST(Config, HuggingFaceSpellingOfMamba130m) {
  ModelConfig c = parse(kHf130m);
  EXPECT_EQ(c.naming, "hf");
  EXPECT_EQ(c.d_model, 768);
  EXPECT_EQ(c.n_layer, 24);
  EXPECT_EQ(c.vocab_size, 50280);
  EXPECT_EQ(c.d_state, 16);
  EXPECT_EQ(c.d_conv, 4);
  EXPECT_EQ(c.d_inner, 1536);
  EXPECT_EQ(c.dt_rank, 48);
  EXPECT_EQ(c.x_proj_rows(), 80);
  EXPECT_FALSE(c.use_bias);
  EXPECT_TRUE(c.use_conv_bias);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_TRUE(c.residual_in_fp32);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
  EXPECT_FALSE(c.lti);
}

TEST(Config, AutoTimeStepRankIsCeilOfDModelOver16) {
  EXPECT_EQ(
      parse(
          R"({"hidden_size": 2560, "num_hidden_layers": 1, "vocab_size": 8, "time_step_rank": "auto"})")
          .dt_rank,
      160);
  EXPECT_EQ(parse(R"({"hidden_size": 40, "num_hidden_layers": 1, "vocab_size": 8})").dt_rank, 3);
  EXPECT_EQ(
      parse(R"({"d_model": 33, "n_layer": 1, "vocab_size": 8, "ssm_cfg": {"dt_rank": "auto"}})")
          .dt_rank,
      3);
}

TEST(Config, HuggingFaceDefaultsAreTransformersDefaults) {
  ModelConfig c = parse(R"({"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100})");
  EXPECT_EQ(c.d_state, 16);
  EXPECT_EQ(c.d_conv, 4);
  EXPECT_EQ(c.d_inner, 128);
  EXPECT_TRUE(c.use_bias);  // MambaConfig's default, though every hub checkpoint says false
  EXPECT_TRUE(c.tie_embeddings);
}

TEST(Config, OriginalSpellingPadsTheVocabulary) {
  // state-spaces/mamba-2.8b's config.json.
  ModelConfig c = parse(R"({"d_model": 2560, "n_layer": 64, "vocab_size": 50277, "ssm_cfg": {},
    "rms_norm": true, "residual_in_fp32": true, "fused_add_norm": true, "pad_vocab_size_multiple": 8})");
  EXPECT_EQ(c.naming, "original");
  EXPECT_EQ(c.vocab_size, 50280);
  EXPECT_EQ(c.d_inner, 5120);
  EXPECT_EQ(c.dt_rank, 160);
  EXPECT_EQ(c.d_state, 16);
  EXPECT_FALSE(c.use_bias);
  EXPECT_TRUE(c.use_conv_bias);
  EXPECT_TRUE(c.tie_embeddings);
}

TEST(Config, OriginalSsmCfgOverridesTheDefaults) {
  ModelConfig c =
      parse(R"({"d_model": 32, "n_layer": 2, "vocab_size": 300, "pad_vocab_size_multiple": 16,
    "ssm_cfg": {"d_state": 8, "d_conv": 3, "expand": 3, "dt_rank": 5, "bias": true, "conv_bias": false},
    "tie_embeddings": false})");
  EXPECT_EQ(c.vocab_size, 304);
  EXPECT_EQ(c.d_state, 8);
  EXPECT_EQ(c.d_conv, 3);
  EXPECT_EQ(c.d_inner, 96);
  EXPECT_EQ(c.dt_rank, 5);
  EXPECT_TRUE(c.use_bias);
  EXPECT_FALSE(c.use_conv_bias);
  EXPECT_FALSE(c.tie_embeddings);
}

TEST(Config, MambaScopeLtiKey) {
  EXPECT_TRUE(
      parse(
          R"({"hidden_size": 16, "num_hidden_layers": 1, "vocab_size": 8, "mambascope_lti": true})")
          .lti);
  expect_parse_error(
      R"({"hidden_size": 16, "num_hidden_layers": 1, "vocab_size": 8, "mambascope_lti": "yes"})",
      {"mambascope_lti", "true or false"});
}

TEST(Config, Mamba2IsRefusedWhicheverSpelling) {
  expect_parse_error(R"({"model_type": "mamba2", "hidden_size": 768})", {"Mamba-2", "mamba2"});
  expect_parse_error(R"({"architectures": ["Mamba2ForCausalLM"], "hidden_size": 768})",
                     {"Mamba2ForCausalLM", "Mamba-2"});
  expect_parse_error(
      R"({"d_model": 768, "n_layer": 2, "vocab_size": 8, "ssm_cfg": {"layer": "Mamba2"}})",
      {"Mamba-2"});
}

TEST(Config, OtherArchitecturesAreRefusedByName) {
  expect_parse_error(R"({"model_type": "falcon_mamba", "hidden_size": 8})", {"falcon_mamba"});
  expect_parse_error(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 8})",
                     {"LlamaForCausalLM"});
  expect_parse_error(R"({"d_model": 8, "n_layer": 2, "vocab_size": 8, "attn_layer_idx": [1]})",
                     {"attn_layer_idx"});
  expect_parse_error(R"({"d_model": 8, "n_layer": 2, "vocab_size": 8, "d_intermediate": 32})",
                     {"d_intermediate"});
  expect_parse_error(R"({"d_model": 8, "n_layer": 2, "vocab_size": 8, "rms_norm": false})",
                     {"LayerNorm"});
  expect_parse_error(R"({"vocab_size": 8, "n_embd": 8})", {"hidden_size", "d_model"});
}

TEST(Config, MalformedValuesAreNamed) {
  expect_parse_error("{not json", {"config.json", "not valid JSON"});
  expect_parse_error("[1, 2]", {"JSON object"});
  expect_parse_error(R"({"hidden_size": "big", "num_hidden_layers": 1, "vocab_size": 8})",
                     {"hidden_size", "integer"});
  expect_parse_error(R"({"hidden_size": 8, "vocab_size": 8})", {"n_layer"});
  expect_parse_error(
      R"({"hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 8, "state_size": 0})",
      {"d_state", "0"});
  expect_parse_error(R"({"hidden_size": 8, "num_hidden_layers": -2, "vocab_size": 8})",
                     {"layer count", "-2"});
}

TEST(Config, ValidateRejectsARankWiderThanTheInnerDimension) {
  ModelConfig c = parse(R"({"hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 8})");
  c.dt_rank = c.d_inner + 1;
  EXPECT_THROW(c.validate(), Error);
}

}  // namespace
}  // namespace mambascope
