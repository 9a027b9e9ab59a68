// mambascope-cli's commands doing their jobs on the HF fixtures: reproducible generation,
// logits that match transformers, probe files that match their index, modes that agree, eval
// consistent with score, chat through a pipe, and Ctrl-C stopping a reply but not the program.
#include <cmath>
#include <csignal>
#include <thread>

#include "cli_testing.hpp"
#include "mambascope/npy.hpp"

using namespace cli_testing;

namespace {

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> v;
  std::istringstream in(out);
  std::string l;
  while (std::getline(in, l))
    if (!l.empty()) v.push_back(nlohmann::json::parse(l));
  return v;
}

std::string ids_arg(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + ",";
  return s;
}

const std::string kText =
    "Once upon a time there was a little fox who lived by the river. Every morning the fox ran to "
    "the "
    "water, looked at the fish and thought about breakfast.";

}  // namespace

TEST_F(CliTest, GenerateWithTheSameSeedPrintsTheSameText) {
  const auto model = text_model(tmp / "m").string();
  auto gen = [&](const std::string& seed) {
    return run_cli({"generate", "--model", model, "--prompt", "The fox", "--max-tokens", "24",
                    "--temperature", "1", "--top-k", "0", "--top-p", "1", "--seed", seed});
  };
  auto a = gen("3"), b = gen("3"), c = gen("4");
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
  EXPECT_NE(a.err.find("tok/s"), std::string::npos) << a.err;
}

TEST_F(CliTest, GenerateJsonlReportsEveryTokenAndASummary) {
  auto r = run_cli({"generate", "--model", kFixtures + "tied_fp32", "--ids", "5,6,7",
                    "--max-tokens", "6", "--jsonl", "--alternatives", "3", "--seed", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 7u);
  std::string text;
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(lines[i]["position"].get<int>(), int(3 + i));
    auto alts = lines[i]["alternatives"];
    ASSERT_EQ(alts.size(), 3u);
    EXPECT_GE(alts[0]["prob"].get<double>(), alts[1]["prob"].get<double>());
    text += lines[i]["text"].get<std::string>();
  }
  EXPECT_TRUE(lines[6]["done"].get<bool>());
  EXPECT_EQ(lines[6]["reason"], "max-tokens");
  EXPECT_EQ(lines[6]["new_tokens"], 6);
  EXPECT_EQ(lines[6]["text"].get<std::string>(), text);
}

TEST_F(CliTest, GenerateStopsBeforeTheStopStringAndDoesNotPrintIt) {
  const auto model = text_model(tmp / "m").string();
  std::vector<std::string> base = {
      "generate", "--model", model, "--prompt", "The fox", "--max-tokens", "40", "--temperature",
      "1",        "--top-k", "0",   "--top-p",  "1",       "--seed",       "5"};
  auto full = run_cli(base);
  ASSERT_EQ(full.rc, 0) << full.err;
  const std::string text = full.out.substr(0, full.out.size() - 1);  // the final newline
  // A stop string from the middle of that text: two printable ASCII characters.
  size_t k = 3;
  while (k + 2 < text.size() && !(std::isalnum(static_cast<unsigned char>(text[k])) &&
                                  std::isalnum(static_cast<unsigned char>(text[k + 1]))))
    ++k;
  ASSERT_LT(k + 2, text.size()) << "no ASCII pair in: " << text;
  const std::string stop = text.substr(k, 2);
  auto args = base;
  args.insert(args.end(), {"--stop", stop});
  auto cut = run_cli(args);
  ASSERT_EQ(cut.rc, 0) << cut.err;
  EXPECT_EQ(cut.out, text.substr(0, text.find(stop)) + "\n");
  EXPECT_NE(cut.err.find("stopped: stop-string"), std::string::npos) << cut.err;
}

TEST_F(CliTest, ScoreLogitsMatchTransformers) {
  const std::string fx = kFixtures + "tied_fp32/";
  const auto ids = mambascope::read_npy(fx + "input_ids.npy").i32;
  const auto want = mambascope::read_npy(fx + "logits.npy");
  auto r = run_cli({"score", "--model", fx, "--ids", ids_arg(ids), "--logits",
                    (tmp / "l.npy").string(), "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto got = mambascope::read_npy(tmp / "l.npy");
  ASSERT_EQ(got.shape, want.shape);
  float lo = want.f32[0], hi = want.f32[0];
  double worst = 0;
  for (size_t i = 0; i < want.f32.size(); ++i) {
    lo = std::min(lo, want.f32[i]);
    hi = std::max(hi, want.f32[i]);
    worst = std::max(worst, double(std::fabs(got.f32[i] - want.f32[i])));
  }
  EXPECT_LE(worst, 1e-3 * (hi - lo));
  // The reported perplexity is exp(mean NLL) of the reported log-probabilities.
  auto j = nlohmann::json::parse(r.out);
  double nll = 0;
  for (size_t t = 1; t < ids.size(); ++t) nll -= j["tokens"][t]["logprob"].get<double>();
  EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(nll / double(ids.size() - 1)), 1e-3);
  EXPECT_TRUE(j["tokens"][0]["logprob"].is_null());
}

TEST_F(CliTest, ProbeFilesMatchTheirIndex) {
  auto r = run_cli({"probe", "--model", kFixtures + "tied_fp32", "--ids", "5,6,7,8", "--out",
                    (tmp / "p").string(), "--h-layers", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto index = nlohmann::json::parse(slurp(tmp / "p" / "index.json"));
  EXPECT_EQ(index["tokens"], nlohmann::json({5, 6, 7, 8}));
  EXPECT_EQ(index["layers"], nlohmann::json({0, 1}));
  for (const char* key :
       {"delta", "B", "C", "gate", "h_norm", "write_strength", "read_norm", "h_layer1", "tokens"}) {
    ASSERT_TRUE(index["files"].contains(key)) << key;
    const auto f = index["files"][key];
    const auto a = mambascope::read_npy(tmp / "p" / f["file"].get<std::string>());
    EXPECT_EQ(a.shape, f["shape"].get<std::vector<int64_t>>()) << key;
    EXPECT_EQ(a.shape.size(), f["axes"].size()) << key;
  }
  const auto delta = mambascope::read_npy(tmp / "p" / "delta.npy");
  EXPECT_EQ(delta.shape, (std::vector<int64_t>{4, 2, 128}));
  for (float v : delta.f32) EXPECT_GT(v, 0.0f);  // softplus
}

TEST_F(CliTest, ModesAgreeWithinTolerance) {
  std::string ids;
  for (int i = 0; i < 200; ++i) ids += std::to_string(2 + (i * 13) % 250) + ",";
  auto r = run_cli({"modes", "--model", kFixtures + "long_500", "--ids", ids, "--json"});
  ASSERT_EQ(r.rc, 0) << r.err << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["ok"].get<bool>());
  ASSERT_EQ(j["modes"].size(), 4u);
  for (const auto& m : j["modes"])
    if (m.contains("y_rel")) EXPECT_LE(m["y_rel"].get<double>(), 1e-4) << m["mode"];
}

TEST_F(CliTest, ModesFailsWhenTheToleranceIsTooTight) {
  auto r = run_cli({"modes", "--model", kFixtures + "tied_fp32", "--ids", "5,6,7,8,9,10", "--modes",
                    "convolution", "--tolerance", "0"});
  // The convolution is computed in log space: not bit-identical to the recurrence.
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("convolution differs from recurrent"), std::string::npos) << r.err;
}

TEST_F(CliTest, InfoJsonDescribesTheModel) {
  auto r = run_cli({"info", "--model", kFixtures + "tied_fp32", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["config"]["d_model"], 64);
  EXPECT_EQ(j["config"]["n_layer"], 2);
  EXPECT_EQ(j["storage_dtype"], "F32");
  EXPECT_EQ(j["backend"]["name"], "cpu");
  // conv {2, 128, 3} + h {2, 128, 16} floats
  EXPECT_EQ(j["state_bytes"].get<int64_t>(), (2 * 128 * 3 + 2 * 128 * 16) * 4);
  EXPECT_GT(j["parameters"].get<int64_t>(), 0);
  auto bf = run_cli({"info", "--model", kFixtures + "bf16", "--json"});
  ASSERT_EQ(bf.rc, 0) << bf.err;
  EXPECT_EQ(nlohmann::json::parse(bf.out)["storage_dtype"], "BF16");
}

TEST_F(CliTest, TokenizeAndDecodeRoundTrip) {
  const std::string tok = MAMBASCOPE_SOURCE_DIR "/assets/tokenizers/gpt-neox-20b/tokenizer.json";
  const std::string text = "Hello, w\xC3\xB6rld \xF0\x9F\x98\x80\tcode();";
  auto enc = run_cli({"tokenize", "--tokenizer", tok, "--text", text, "--json"});
  ASSERT_EQ(enc.rc, 0) << enc.err;
  auto j = nlohmann::json::parse(enc.out);
  ASSERT_GT(j["ids"].size(), 3u);
  EXPECT_EQ(j["ids"].size(), j["pieces"].size());
  auto dec = run_cli({"tokenize", "--tokenizer", tok, "--decode",
                      ids_arg(j["ids"].get<std::vector<int32_t>>()), "--json"});
  ASSERT_EQ(dec.rc, 0) << dec.err;
  EXPECT_EQ(nlohmann::json::parse(dec.out)["text"], text);
}

TEST_F(CliTest, EvalPerplexityOfAWholeTextEqualsScore) {
  const auto model = text_model(tmp / "m").string();
  write_file(tmp / "t.txt", kText);
  auto e = run_cli(
      {"eval", "--model", model, "--text", (tmp / "t.txt").string(), "--json", "--chunk", "7"});
  auto s = run_cli({"score", "--model", model, "--file", (tmp / "t.txt").string(), "--json"});
  ASSERT_EQ(e.rc, 0) << e.err;
  ASSERT_EQ(s.rc, 0) << s.err;
  const double pe = nlohmann::json::parse(e.out)["text"]["perplexity"].get<double>();
  const double ps = nlohmann::json::parse(s.out)["perplexity"].get<double>();
  EXPECT_NEAR(pe, ps, 1e-4 * ps);
  const int64_t scored = nlohmann::json::parse(e.out)["text"]["scored_tokens"].get<int64_t>();
  // Windows of 8 from a fresh state: each window's first token is context only, so disjoint
  // windows (stride 8) leave the tokens at 8, 16, ... unscored; stride 7 scores every token.
  auto w8 = run_cli(
      {"eval", "--model", model, "--text", (tmp / "t.txt").string(), "--json", "--window", "8"});
  auto w7 = run_cli({"eval", "--model", model, "--text", (tmp / "t.txt").string(), "--json",
                     "--window", "8", "--stride", "7"});
  ASSERT_EQ(w8.rc, 0) << w8.err;
  ASSERT_EQ(w7.rc, 0) << w7.err;
  const auto j8 = nlohmann::json::parse(w8.out)["text"], j7 = nlohmann::json::parse(w7.out)["text"];
  EXPECT_EQ(j8["scored_tokens"].get<int64_t>(), scored - scored / 8);
  EXPECT_EQ(j7["scored_tokens"].get<int64_t>(), scored);
  EXPECT_NE(j7["perplexity"].get<double>(), pe);  // less context than the whole text
}

TEST_F(CliTest, EvalTaskAccuracyCountsGreedyMatches) {
  // Targets taken from the model's own greedy continuation match; shuffled ones do not.
  auto g = run_cli({"generate", "--model", kFixtures + "tied_fp32", "--ids", "5,6,7",
                    "--max-tokens", "4", "--temperature", "0", "--ignore-eos", "--jsonl"});
  ASSERT_EQ(g.rc, 0) << g.err;
  std::vector<int32_t> target;
  for (const auto& l : json_lines(g.out))
    if (l.contains("id")) target.push_back(l["id"].get<int32_t>());
  ASSERT_EQ(target.size(), 4u);
  std::vector<int32_t> wrong = target;
  wrong[3] = (wrong[3] + 1) % 512;
  write_file(tmp / "t.jsonl",
             nlohmann::json{{"prompt_ids", {5, 6, 7}}, {"target_ids", target}}.dump() + "\n" +
                 nlohmann::json{{"prompt_ids", {5, 6, 7}}, {"target_ids", wrong}}.dump() + "\n");
  auto r = run_cli(
      {"eval", "--model", kFixtures + "tied_fp32", "--task", (tmp / "t.jsonl").string(), "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto t = nlohmann::json::parse(r.out)["task"];
  EXPECT_EQ(t["examples"], 2);
  EXPECT_DOUBLE_EQ(t["exact_match"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(t["token_accuracy"].get<double>(), 7.0 / 8.0);
}

TEST_F(CliTest, ChatThroughAPipeAnswersResetsAndQuits) {
  const auto model = text_model(tmp / "m").string();
  auto r = run_cli({"chat", "--model", model, "--max-tokens", "8", "--seed", "2"},
                   "hi there\n/reset\nhello\n/quit\nnever read\n");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("(conversation cleared)"), std::string::npos) << r.err;
  EXPECT_TRUE(r.error_lines().size() == 1) << r.err;  // only the reset note
  EXPECT_FALSE(r.out.empty());
}

TEST_F(CliTest, CtrlCStopsTheReplyNotTheChat) {
  const auto model = text_model(tmp / "m").string();
  TempDir io;
  Child c(
      {"chat", "--model", model, "--max-tokens", "100000000", "--temperature", "1", "--top-k", "0"},
      io.path(), "hi\n");
  ASSERT_GT(c.pid(), 0);
  // Wait (no clock) until the reply has started streaming, then press Ctrl-C.
  while (c.stdout_so_far().empty()) {
    int status = 0;
    ASSERT_EQ(waitpid(c.pid(), &status, WNOHANG), 0) << "chat ended before replying";
    std::this_thread::yield();
  }
  kill(c.pid(), SIGINT);
  auto r = c.wait();
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("(reply stopped)"), std::string::npos) << r.err;
}

TEST_F(CliTest, CtrlCEndsGenerateWithItsSummary) {
  TempDir io;
  Child c({"generate", "--model", kFixtures + "tied_fp32", "--ids", "5,6", "--max-tokens",
           "100000000", "--ignore-eos"},
          io.path());
  ASSERT_GT(c.pid(), 0);
  while (c.stdout_so_far().empty()) {
    int status = 0;
    ASSERT_EQ(waitpid(c.pid(), &status, WNOHANG), 0) << "generate ended early";
    std::this_thread::yield();
  }
  kill(c.pid(), SIGINT);
  auto r = c.wait();
  EXPECT_EQ(r.rc, 130) << r.err;
  EXPECT_NE(r.err.find("stopped: cancelled"), std::string::npos) << r.err;
}
