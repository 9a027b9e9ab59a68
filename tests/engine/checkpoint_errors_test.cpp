// What does not load, and what the user is told: each test breaks one thing in an otherwise
// valid folder and checks that Checkpoint::open throws mambascope::Error naming the problem.
#include <gtest/gtest.h>

#include "checkpoint_testing.hpp"
#include "hf_fixture.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/error.hpp"

namespace mambascope {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::TempDir;
using testing::TinySpec;
using Tensors = std::vector<SafetensorsTensor>;

// Opens dir, expecting an Error whose message holds every one of `parts`.
void expect_open_error(const fs::path& dir, std::initializer_list<std::string> parts) {
  try {
    Checkpoint::open(dir);
    ADD_FAILURE() << "opened " << dir << " without complaint";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

void copy_fixture(const std::string& name, const fs::path& to) {
  fs::copy(testing::hf_fixtures_dir() / name, to,
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
}

TEST(CheckpointErrors, MissingFolder) {
  TempDir tmp;
  expect_open_error(tmp / "nope", {"does not exist", "nope"});
}

TEST(CheckpointErrors, FileInsteadOfFolder) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  expect_open_error(tmp / "model.safetensors", {"not a folder"});
}

TEST(CheckpointErrors, MissingConfig) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  fs::remove(tmp / "config.json");
  expect_open_error(tmp.path(), {"no config.json"});
}

TEST(CheckpointErrors, MissingWeights) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  fs::remove(tmp / "model.safetensors");
  expect_open_error(tmp.path(), {"has no weights", "model.safetensors"});
}

TEST(CheckpointErrors, PytorchBinOnlySaysHowToConvert) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  fs::remove(tmp / "model.safetensors");
  testing::write_text(tmp / "pytorch_model.bin", "PK pickle");
  expect_open_error(tmp.path(), {"pytorch_model.bin", "safetensors", "save_file", "torch.load"});
}

TEST(CheckpointErrors, TruncatedFile) {
  TempDir tmp;
  copy_fixture("tied_fp32", tmp.path());
  fs::resize_file(tmp / "model.safetensors", fs::file_size(tmp / "model.safetensors") / 2);
  expect_open_error(tmp.path(), {"model.safetensors", "run past the end", "truncated"});
}

TEST(CheckpointErrors, FileShorterThanTheLengthPrefix) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  testing::write_text(tmp / "model.safetensors", "abc");
  expect_open_error(tmp.path(), {"too short"});
}

TEST(CheckpointErrors, HeaderLengthBeyondTheFile) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  json h = {
      {"backbone.norm_f.weight", {{"dtype", "F32"}, {"shape", {8}}, {"data_offsets", {0, 32}}}}};
  testing::write_raw_safetensors(tmp / "model.safetensors", h, 32, uint64_t(1) << 40);
  expect_open_error(tmp.path(), {"header length", "runs past the end"});
}

TEST(CheckpointErrors, HeaderThatIsNotJson) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  testing::write_text(tmp / "model.safetensors", std::string("\x05\0\0\0\0\0\0\0{oops", 13));
  expect_open_error(tmp.path(), {"not valid JSON"});
}

TEST(CheckpointErrors, OffsetsBeyondTheData) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  json h = {{"a", {{"dtype", "F32"}, {"shape", {8}}, {"data_offsets", {0, 32}}}},
            {"b", {{"dtype", "F32"}, {"shape", {8}}, {"data_offsets", {32, 64}}}}};
  testing::write_raw_safetensors(tmp / "model.safetensors", h, 48);
  expect_open_error(tmp.path(), {"\"b\"", "run past the end of the data"});
}

TEST(CheckpointErrors, SizeThatDisagreesWithShapeAndDtype) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  json h = {{"a", {{"dtype", "BF16"}, {"shape", {4, 4}}, {"data_offsets", {0, 64}}}}};
  testing::write_raw_safetensors(tmp / "model.safetensors", h, 64);
  expect_open_error(tmp.path(), {"\"a\"", "{4, 4}", "BF16", "needs 32 bytes", "cover 64"});
}

TEST(CheckpointErrors, OverlappingTensors) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  json h = {{"a", {{"dtype", "F32"}, {"shape", {8}}, {"data_offsets", {0, 32}}}},
            {"b", {{"dtype", "F32"}, {"shape", {8}}, {"data_offsets", {16, 48}}}}};
  testing::write_raw_safetensors(tmp / "model.safetensors", h, 48);
  expect_open_error(tmp.path(), {"\"a\"", "\"b\"", "overlap"});
}

TEST(CheckpointErrors, UnknownDtypeIsNamed) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  json h = {{"a", {{"dtype", "Q4_K"}, {"shape", {8}}, {"data_offsets", {0, 8}}}}};
  testing::write_raw_safetensors(tmp / "model.safetensors", h, 8);
  expect_open_error(tmp.path(), {"unknown dtype", "Q4_K", "\"a\""});
}

TEST(CheckpointErrors, KnownButUnsupportedDtypeIsNamed) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  json h = {{"a", {{"dtype", "F64"}, {"shape", {2}}, {"data_offsets", {0, 16}}}}};
  testing::write_raw_safetensors(tmp / "model.safetensors", h, 16);
  expect_open_error(tmp.path(), {"F64", "cannot read", "F32, F16, BF16"});
}

TEST(CheckpointErrors, ShapeThatDoesNotMatchTheConfig) {
  TempDir tmp;
  TinySpec s;
  testing::write_tiny_checkpoint(tmp.path(), s);
  json c = testing::tiny_config(s);
  c["state_size"] = 8;  // the tensors were written for d_state 4
  testing::write_text(tmp / "config.json", c.dump());
  expect_open_error(tmp.path(),
                    {"backbone.layers.0.mixer.x_proj.weight", "{9, 16}", "{17, 16}", "d_state 8"});
}

TEST(CheckpointErrors, ShapeMismatchNamesTensorAndBothShapes) {
  TempDir tmp;
  TinySpec s;
  testing::write_tiny_checkpoint(tmp.path(), s, [](Tensors& t) {
    for (auto& x : t)
      if (x.name == "backbone.layers.1.mixer.A_log") x.shape = {16, 8};
  });
  expect_open_error(tmp.path(),
                    {"backbone.layers.1.mixer.A_log", "{16, 8}", "{16, 4}", "{d_inner, d_state}"});
}

TEST(CheckpointErrors, MissingTensorIsNamed) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{}, [](Tensors& t) {
    std::erase_if(t,
                  [](const SafetensorsTensor& x) { return x.name == "backbone.layers.1.mixer.D"; });
  });
  expect_open_error(tmp.path(), {"lack backbone.layers.1.mixer.D"});
}

TEST(CheckpointErrors, BiasMissingWhenConfigAsksForIt) {
  TempDir tmp;
  TinySpec s;
  testing::write_tiny_checkpoint(tmp.path(), s);
  json c = testing::tiny_config(s);
  c.erase("use_bias");  // transformers' default is true
  testing::write_text(tmp / "config.json", c.dump());
  expect_open_error(tmp.path(), {"in_proj.bias", "use_bias"});
}

TEST(CheckpointErrors, MoreLayersThanTheConfigSays) {
  TempDir tmp;
  TinySpec s;
  s.n_layer = 3;
  testing::write_tiny_checkpoint(tmp.path(), s);
  json c = testing::tiny_config(s);
  c["num_hidden_layers"] = 2;
  testing::write_text(tmp / "config.json", c.dump());
  expect_open_error(tmp.path(), {"backbone.layers.2.", "says 2 layers"});
}

TEST(CheckpointErrors, VocabularyThatDisagreesWithTheEmbedding) {
  TempDir tmp;
  TinySpec s;
  testing::write_tiny_checkpoint(tmp.path(), s);
  json c = testing::tiny_config(s);
  c["vocab_size"] = 24;
  testing::write_text(tmp / "config.json", c.dump());
  expect_open_error(tmp.path(), {"16 rows", "vocab_size 24"});
}

TEST(CheckpointErrors, TiedHeadThatDiffersFromTheEmbedding) {
  TempDir tmp;
  TinySpec s;
  s.tied = false;  // writes a separate (different) lm_head ...
  testing::write_tiny_checkpoint(tmp.path(), s);
  json c = testing::tiny_config(s);
  c["tie_word_embeddings"] = true;  // ... which the config then claims is tied
  testing::write_text(tmp / "config.json", c.dump());
  expect_open_error(tmp.path(), {"lm_head.weight differs", "tie_word_embeddings"});
}

TEST(CheckpointErrors, UntiedHeadMissing) {
  TempDir tmp;
  TinySpec s;
  testing::write_tiny_checkpoint(tmp.path(), s);
  json c = testing::tiny_config(s);
  c["tie_word_embeddings"] = false;
  testing::write_text(tmp / "config.json", c.dump());
  expect_open_error(tmp.path(), {"lm_head.weight", "tie_word_embeddings false"});
}

TEST(CheckpointErrors, UnknownArchitecture) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  testing::write_text(tmp / "config.json", R"({"model_type": "llama", "hidden_size": 8})");
  expect_open_error(tmp.path(), {"\"llama\"", "not a Mamba-1 model"});
}

TEST(CheckpointErrors, Mamba2IsRefusedByName) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{});
  testing::write_text(
      tmp / "config.json",
      R"({"d_model": 8, "n_layer": 2, "vocab_size": 16, "ssm_cfg": {"layer": "Mamba2"}})");
  expect_open_error(tmp.path(), {"Mamba-2", "Mamba2"});
}

TEST(CheckpointErrors, ForeignTensorIsNamed) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{}, [](Tensors& t) {
    t.push_back({"model.layers.0.self_attn.q_proj.weight", DType::F32, {8, 8}, nullptr});
  });
  expect_open_error(tmp.path(), {"unexpected tensor", "self_attn.q_proj"});
}

TEST(CheckpointErrors, BothEmbeddingNamesAtOnce) {
  TempDir tmp;
  testing::write_tiny_checkpoint(tmp.path(), TinySpec{}, [](Tensors& t) {
    t.push_back({"backbone.embedding.weight", DType::F32, {16, 8}, nullptr});
  });
  expect_open_error(tmp.path(),
                    {"backbone.embedding.weight", "backbone.embeddings.weight", "once"});
}

// A sharded copy of the tiny checkpoint: tensors split between two shards by an index.
void write_sharded(const fs::path& dir, const json& weight_map) {
  testing::write_text(dir / "model.safetensors.index.json",
                      json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump());
}

TEST(CheckpointErrors, IndexPointingAtAMissingShard) {
  TempDir tmp;
  copy_fixture("sharded", tmp.path());
  fs::remove(tmp / "model-00002-of-00002.safetensors");
  expect_open_error(tmp.path(),
                    {"model-00002-of-00002.safetensors", "is missing", "download every shard"});
}

TEST(CheckpointErrors, IndexThatDisagreesWithTheShards) {
  TempDir tmp;
  copy_fixture("sharded", tmp.path());
  json idx = json::parse(testing::read_text(tmp / "model.safetensors.index.json"));
  idx["weight_map"]["backbone.norm_f.weight"] = "model-00001-of-00002.safetensors";
  write_sharded(tmp.path(), idx["weight_map"]);
  expect_open_error(tmp.path(), {"backbone.norm_f.weight", "does not hold it"});
}

TEST(CheckpointErrors, IndexShardNameThatEscapesTheFolder) {
  TempDir tmp;
  copy_fixture("sharded", tmp.path());
  write_sharded(tmp.path(), {{"backbone.norm_f.weight", "../elsewhere.safetensors"}});
  expect_open_error(tmp.path(), {"plain file name"});
}

TEST(CheckpointErrors, SeveralSafetensorsWithoutAnIndex) {
  TempDir tmp;
  copy_fixture("sharded", tmp.path());
  fs::remove(tmp / "model.safetensors.index.json");
  expect_open_error(tmp.path(), {"2 .safetensors files", "index"});
}

}  // namespace
}  // namespace mambascope
