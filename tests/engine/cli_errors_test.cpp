// Every kind of bad input to mambascope-cli ends with one "mambascope-cli: error: ..." line on
// stderr and exit code 1 (2 for a bad command line), never a crash. The broken files are made
// in a temp folder from the HF fixtures at test time.
#include <cstdint>
#include <cstring>

#include "cli_testing.hpp"

using namespace cli_testing;

namespace {

// One error line, the given exit code, and the line mentions `needle`.
void expect_one_error(const Run& r, int rc, const std::string& needle) {
  EXPECT_EQ(r.rc, rc) << r.err;
  const auto lines = r.error_lines();
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_EQ(lines[0].rfind("mambascope-cli: error: ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(needle), std::string::npos)
      << "expected '" << needle << "' in: " << lines[0];
}

struct Safetensors {
  nlohmann::json header;
  std::string data;
};

Safetensors read_st(const fs::path& p) {
  const std::string b = slurp(p);
  uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  return {nlohmann::json::parse(b.substr(8, n)), b.substr(8 + n)};
}

void write_st(const fs::path& p, const Safetensors& st) {
  const std::string h = st.header.dump();
  const uint64_t n = h.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  write_file(p, out + h + st.data);
}

std::string first_tensor(const nlohmann::json& header) {
  for (auto& [k, v] : header.items())
    if (k != "__metadata__") return k;
  return {};
}

const std::vector<std::string> kIds = {"--ids", "5,6,7"};

std::vector<std::string> args(std::vector<std::string> a,
                              const std::vector<std::string>& more = kIds) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

}  // namespace

TEST_F(CliTest, NoArgumentsPrintsUsageAndExits2) {
  auto r = run_cli({});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("usage: mambascope-cli"), std::string::npos);
}

TEST_F(CliTest, UnknownCommandIsAUsageError) {
  expect_one_error(run_cli({"generat"}), 2, "unknown command 'generat'");
}

TEST_F(CliTest, UnknownFlagIsAUsageError) {
  expect_one_error(run_cli({"generate", "--model", kFixtures + "tied_fp32", "--bogus", "1"}), 2,
                   "unknown option '--bogus'");
}

TEST_F(CliTest, MissingValueIsAUsageError) {
  expect_one_error(run_cli({"generate", "--model", kFixtures + "tied_fp32", "--max-tokens"}), 2,
                   "--max-tokens needs a value");
}

TEST_F(CliTest, BadNumbersAreUsageErrors) {
  const std::string m = kFixtures + "tied_fp32";
  expect_one_error(run_cli(args({"generate", "--model", m, "--max-tokens", "12abc"})), 2,
                   "expects an integer");
  expect_one_error(run_cli(args({"generate", "--model", m, "--temperature", "hot"})), 2,
                   "expects a number");
  expect_one_error(run_cli(args({"generate", "--model", m, "--top-p", "1.5"})), 2, "--top-p");
  expect_one_error(run_cli(args({"generate", "--model", m, "--temperature", "-1"})), 2,
                   "--temperature");
  expect_one_error(
      run_cli(args({"generate", "--model", m, "--max-tokens", "99999999999999999999"})), 2,
      "--max-tokens");
  expect_one_error(run_cli(args({"score", "--model", m}, {"--ids", "1,x,3"})), 2,
                   "'x' is not an integer");
}

TEST_F(CliTest, BadChoicesAreUsageErrors) {
  const std::string m = kFixtures + "tied_fp32";
  expect_one_error(run_cli(args({"generate", "--model", m, "--mode", "fast"})), 2,
                   "--mode must be");
  expect_one_error(run_cli(args({"generate", "--model", m, "--backend", "tpu"})), 2,
                   "--backend must be");
  expect_one_error(
      run_cli(args({"probe", "--model", m, "--out", (tmp / "p").string(), "--layers", "7"})), 2,
      "layer 7 does not exist");
  expect_one_error(run_cli({"score", "--model", m, "--text", "a", "--ids", "1,2"}), 2,
                   "give only one of");
}

TEST_F(CliTest, MissingModelOptionIsAUsageError) {
  expect_one_error(run_cli({"info"}), 2, "missing required option --model");
}

TEST_F(CliTest, MissingModelFolderIsAnError) {
  const std::string dir = (tmp / "nowhere").string();
  expect_one_error(run_cli({"info", "--model", dir}), 1, "nowhere");
}

TEST_F(CliTest, FolderWithoutConfigIsAnError) {
  fs::create_directories(tmp / "empty");
  expect_one_error(run_cli({"info", "--model", (tmp / "empty").string()}), 1, "config.json");
}

TEST_F(CliTest, ConfigThatIsNotJsonIsAnError) {
  auto dir = copy_fixture("tied_fp32", tmp / "m");
  write_file(dir / "config.json", "{\"hidden_size\": 64,");
  expect_one_error(run_cli({"info", "--model", dir.string()}), 1, "config.json");
}

TEST_F(CliTest, UnknownArchitectureIsAnError) {
  auto dir = copy_fixture("tied_fp32", tmp / "m");
  auto cfg = nlohmann::json::parse(slurp(dir / "config.json"));
  cfg["architectures"] = {"LlamaForCausalLM"};
  cfg["model_type"] = "llama";
  write_file(dir / "config.json", cfg.dump());
  expect_one_error(run_cli({"info", "--model", dir.string()}), 1, "llama");
}

TEST_F(CliTest, WeightsOfTheWrongShapeAreAnError) {
  auto dir = copy_fixture("tied_fp32", tmp / "m");
  auto cfg = nlohmann::json::parse(slurp(dir / "config.json"));
  cfg["state_size"] = 8;  // the checkpoint's A_log, x_proj are for 16
  write_file(dir / "config.json", cfg.dump());
  expect_one_error(run_cli(args({"generate", "--model", dir.string()})), 1, "shape");
}

TEST_F(CliTest, MissingWeightsFileIsAnError) {
  auto dir = copy_fixture("tied_fp32", tmp / "m");
  fs::remove(dir / "model.safetensors");
  expect_one_error(run_cli({"info", "--model", dir.string()}), 1, "safetensors");
}

TEST_F(CliTest, TruncatedWeightsFileIsAnError) {
  auto dir = copy_fixture("tied_fp32", tmp / "m");
  const std::string b = slurp(dir / "model.safetensors");
  write_file(dir / "model.safetensors", b.substr(0, b.size() / 2));
  expect_one_error(run_cli(args({"generate", "--model", dir.string()})), 1, "model.safetensors");
}

TEST_F(CliTest, WeightsFileShorterThanItsHeaderIsAnError) {
  auto dir = copy_fixture("tied_fp32", tmp / "m");
  write_file(dir / "model.safetensors", std::string("\x10\x00\x00\x00", 4));
  expect_one_error(run_cli({"info", "--model", dir.string()}), 1, "model.safetensors");
}

TEST_F(CliTest, HeaderLengthBeyondTheFileIsAnError) {
  auto dir = copy_fixture("tied_fp32", tmp / "m");
  std::string b = slurp(dir / "model.safetensors");
  const uint64_t huge = uint64_t(1) << 40;
  std::memcpy(b.data(), &huge, 8);
  write_file(dir / "model.safetensors", b);
  expect_one_error(run_cli({"info", "--model", dir.string()}), 1, "model.safetensors");
}

TEST_F(CliTest, HeaderLyingAboutOffsetsIsAnError) {
  auto dir = copy_fixture("tied_fp32", tmp / "m");
  auto st = read_st(dir / "model.safetensors");
  const std::string t = first_tensor(st.header);
  st.header[t]["data_offsets"][1] = st.data.size() + 4096;
  write_st(dir / "model.safetensors", st);
  expect_one_error(run_cli({"info", "--model", dir.string()}), 1, "model.safetensors");
}

TEST_F(CliTest, HeaderLyingAboutSizesIsAnError) {
  auto dir = copy_fixture("tied_fp32", tmp / "m");
  auto st = read_st(dir / "model.safetensors");
  const std::string t = first_tensor(st.header);
  auto shape = st.header[t]["shape"];
  shape[0] = shape[0].get<int64_t>() * 2;  // twice the elements its offsets hold
  st.header[t]["shape"] = shape;
  write_st(dir / "model.safetensors", st);
  expect_one_error(run_cli({"info", "--model", dir.string()}), 1, "model.safetensors");
}

TEST_F(CliTest, ShardIndexNamingAMissingShardIsAnError) {
  auto dir = copy_fixture("sharded", tmp / "m");  // with model.safetensors.index.json
  fs::remove(dir / "model-00002-of-00002.safetensors");
  expect_one_error(run_cli({"info", "--model", dir.string()}), 1,
                   "model-00002-of-00002.safetensors");
}

TEST_F(CliTest, NonUtf8PromptFileIsAnError) {
  write_file(tmp / "p.txt", "abc\xff\xfe def");
  expect_one_error(run_cli({"generate", "--model", kFixtures + "tied_fp32", "--prompt-file",
                            (tmp / "p.txt").string()}),
                   1, "not valid UTF-8 (byte 0xFF at offset 3)");
}

TEST_F(CliTest, NonUtf8PromptArgumentIsAnError) {
  expect_one_error(run_cli({"generate", "--model", kFixtures + "tied_fp32", "--prompt", "ok \xC3("}), 1,
                   "not valid UTF-8 (byte 0xC3 at offset 3)");
}

TEST_F(CliTest, CorruptTokenizerIsAnError) {
  auto dir = copy_fixture("tied_fp32", tmp / "m");
  write_file(dir / "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": 7");
  expect_one_error(run_cli({"info", "--model", dir.string()}), 1, "tokenizer.json");
}

TEST_F(CliTest, MissingPromptFileIsAnError) {
  expect_one_error(run_cli({"generate", "--model", kFixtures + "tied_fp32", "--prompt-file",
                            (tmp / "no.txt").string()}),
                   1, "does not exist");
}

TEST_F(CliTest, FolderAsPromptFileIsAnError) {
  expect_one_error(run_cli({"generate", "--model", kFixtures + "tied_fp32", "--prompt-file",
                            tmp.path().string()}),
                   1, "is a folder");
}

TEST_F(CliTest, TokenIdsOutsideTheVocabularyAreAnError) {
  expect_one_error(run_cli({"score", "--model", kFixtures + "tied_fp32", "--ids", "1,512"}), 1,
                   "outside the model's vocabulary");
}

TEST_F(CliTest, TextTheModelCannotReadIsAnError) {
  // The fixture has 512 embedding rows but the GPT-NeoX tokenizer: "Hello" is id 12092.
  expect_one_error(run_cli({"generate", "--model", kFixtures + "tied_fp32", "--prompt", "Hello"}),
                   1, "outside the model's vocabulary");
}

TEST_F(CliTest, LogitsBeyondTheMemoryLimitAreRefused) {
  std::string ids;
  for (int i = 0; i < 600; ++i) ids += std::to_string(2 + i % 500) + ",";
  expect_one_error(run_cli({"score", "--model", kFixtures + "tied_fp32", "--ids", ids, "--logits",
                            (tmp / "l.npy").string(), "--max-logits-gb", "0.001"}),
                   1, "above the limit");
  EXPECT_FALSE(fs::exists(tmp / "l.npy"));
  expect_one_error(run_cli({"modes", "--model", kFixtures + "tied_fp32", "--ids", ids,
                            "--max-logits-gb", "0.001"}),
                   1, "above the limit");
}

TEST_F(CliTest, UnwritableOutputIsAnError) {
  write_file(tmp / "file", "x");
  expect_one_error(run_cli({"probe", "--model", kFixtures + "tied_fp32", "--ids", "5,6", "--out",
                            (tmp / "file").string()}),
                   1, "file");
  expect_one_error(run_cli({"score", "--model", kFixtures + "tied_fp32", "--ids", "5,6", "--logits",
                            (tmp / "no" / "such" / "l.npy").string()}),
                   1, "l.npy");
}

TEST_F(CliTest, BadTaskFileLinesAreErrors) {
  write_file(tmp / "t.jsonl",
             "{\"prompt_ids\": [5, 6], \"target_ids\": [7]}\n{\"prompt\": \"x\"}\n");
  expect_one_error(
      run_cli({"eval", "--model", kFixtures + "tied_fp32", "--task", (tmp / "t.jsonl").string()}),
      1, "t.jsonl line 2");
  write_file(tmp / "u.jsonl", "{\"prompt_ids\": [5, 6], \"target_ids\": [9999]}\n");
  expect_one_error(
      run_cli({"eval", "--model", kFixtures + "tied_fp32", "--task", (tmp / "u.jsonl").string()}),
      1, "u.jsonl line 1");
}

TEST_F(CliTest, EveryCommandHasHelp) {
  for (const char* cmd :
       {"generate", "chat", "info", "tokenize", "score", "probe", "modes", "eval"}) {
    auto r = run_cli({cmd, "--help"});
    EXPECT_EQ(r.rc, 0) << cmd;
    EXPECT_NE(r.out.find(std::string("usage: mambascope-cli ") + cmd), std::string::npos) << cmd;
    EXPECT_NE(r.out.find("options:"), std::string::npos) << cmd;
  }
}
