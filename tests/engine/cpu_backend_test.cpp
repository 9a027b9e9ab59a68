#include "mambascope/error.hpp"
// The CPU backend against Hugging Face transformers (golden logits of random-weight models made
// by tests/fixtures/make_hf_fixtures.py), and against itself across modes and state splits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mambascope/backend.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/npy.hpp"

using namespace mambascope;

namespace {

const std::string kFixtures = MAMBASCOPE_FIXTURES_DIR "/hf/";
const char* kCases[] = {"tied_fp32", "bf16", "original_names", "untied_bias_noconvbias",
                        "dstate_8", "conv_kernel_3", "long_500", "sharded"};

std::vector<int32_t> prompt_of(const std::string& c) {
  return read_npy(kFixtures + c + "/input_ids.npy").i32;
}

std::vector<float> run(Backend& be, std::span<const int32_t> ids, ScanMode mode,
                       std::vector<float>* ssm_out = nullptr) {
  auto st = be.new_state();
  ForwardOptions o;
  o.mode = mode;
  o.all_logits = true;
  o.ssm_outputs = ssm_out;
  std::vector<float> logits;
  be.forward(ids, *st, o, logits);
  return logits;
}

// Token-by-token forward calls: the decode path.
std::vector<float> run_stepwise(Backend& be, std::span<const int32_t> ids, int64_t vocab) {
  auto st = be.new_state();
  ForwardOptions o;
  o.mode = ScanMode::Recurrent;
  std::vector<float> all, step;
  for (int32_t id : ids) {
    be.forward(std::span<const int32_t>(&id, 1), *st, o, step);
    EXPECT_EQ(int64_t(step.size()), vocab);
    all.insert(all.end(), step.begin(), step.end());
  }
  return all;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

double range_of(const std::vector<float>& v) {
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return double(*hi - *lo);
}

double max_abs(const std::vector<float>& v) {
  double m = 1e-12;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

}  // namespace

class HfGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(HfGolden, LogitsMatchTransformersInEveryMode) {
  const std::string c = GetParam();
  auto ckpt = Checkpoint::open(kFixtures + c);
  auto be = make_cpu_backend(*ckpt, 2);
  const auto ids = prompt_of(c);
  const NpyArray golden = read_npy(kFixtures + c + "/logits.npy");
  const int64_t V = ckpt->config().vocab_size;
  ASSERT_EQ(golden.shape, (std::vector<int64_t>{int64_t(ids.size()), V}));
  const double tol = 1e-3 * range_of(golden.f32);
  EXPECT_LE(max_abs_diff(run(*be, ids, ScanMode::Scan), golden.f32), tol) << "scan";
  EXPECT_LE(max_abs_diff(run_stepwise(*be, ids, V), golden.f32), tol) << "recurrent, token by token";
  EXPECT_LE(max_abs_diff(run(*be, ids, ScanMode::Recurrent), golden.f32), tol) << "recurrent";
  EXPECT_LE(max_abs_diff(run(*be, ids, ScanMode::Convolution), golden.f32), tol) << "convolution";
}

TEST_P(HfGolden, GreedyContinuationMatchesTransformers) {
  const std::string c = GetParam();
  std::ifstream in(kFixtures + c + "/greedy.json");
  const auto greedy = nlohmann::json::parse(in);
  auto ckpt = Checkpoint::open(kFixtures + c);
  auto be = make_cpu_backend(*ckpt, 2);
  auto ids = prompt_of(c);
  auto st = be->new_state();
  ForwardOptions o;
  std::vector<float> logits;
  be->forward(ids, *st, o, logits);
  o.mode = ScanMode::Recurrent;
  std::vector<int32_t> produced;
  for (size_t i = 0; i < greedy["tokens"].size(); ++i) {
    int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    produced.push_back(next);
    be->forward(std::span<const int32_t>(&next, 1), *st, o, logits);
  }
  EXPECT_EQ(produced, greedy["tokens"].get<std::vector<int32_t>>());
}

INSTANTIATE_TEST_SUITE_P(Cases, HfGolden, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param); });

TEST(CpuBackendModes, SsmOutputsOfEveryLayerAgreeWithinTolerance) {
  auto ckpt = Checkpoint::open(kFixtures + "long_500");
  auto be = make_cpu_backend(*ckpt, 2);
  const auto ids = prompt_of("long_500");
  std::vector<float> y_rec, y_scan, y_conv;
  run(*be, ids, ScanMode::Recurrent, &y_rec);
  run(*be, ids, ScanMode::Scan, &y_scan);
  run(*be, ids, ScanMode::Convolution, &y_conv);
  const auto& cfg = ckpt->config();
  ASSERT_EQ(int64_t(y_rec.size()), cfg.n_layer * int64_t(ids.size()) * cfg.d_inner);
  EXPECT_LE(max_abs_diff(y_scan, y_rec) / max_abs(y_rec), 1e-4);
  EXPECT_LE(max_abs_diff(y_conv, y_rec) / max_abs(y_rec), 1e-4);
}

TEST(CpuBackendState, PrefillInPiecesEqualsPrefillAtOnce) {
  auto ckpt = Checkpoint::open(kFixtures + "tied_fp32");
  auto be = make_cpu_backend(*ckpt, 2);
  const auto ids = prompt_of("tied_fp32");
  const auto whole = run(*be, ids, ScanMode::Scan);
  auto st = be->new_state();
  ForwardOptions o;
  o.all_logits = true;
  std::vector<float> a, b;
  const size_t cut = ids.size() / 3;
  be->forward(std::span(ids).first(cut), *st, o, a);
  o.mode = ScanMode::Convolution;  // the second piece in another mode, from the carried state
  be->forward(std::span(ids).subspan(cut), *st, o, b);
  a.insert(a.end(), b.begin(), b.end());
  EXPECT_LE(max_abs_diff(a, whole), 1e-4 * max_abs(whole));
  EXPECT_EQ(st->position(), int64_t(ids.size()));
}

TEST(CpuBackendState, ClonedStateContinuesIdentically) {
  auto ckpt = Checkpoint::open(kFixtures + "dstate_8");
  auto be = make_cpu_backend(*ckpt, 2);
  const auto ids = prompt_of("dstate_8");
  auto st = be->new_state();
  ForwardOptions o;
  std::vector<float> la, lb;
  be->forward(std::span(ids).first(10), *st, o, la);
  auto copy = st->clone();
  be->forward(std::span(ids).subspan(10), *st, o, la);
  be->forward(std::span(ids).subspan(10), *copy, o, lb);
  EXPECT_EQ(la, lb);  // bit-identical
}

TEST(CpuBackendLti, FrozenMeanRunsTheSameInEveryMode) {
  auto ckpt = Checkpoint::open(kFixtures + "long_500");
  auto be = make_cpu_backend(*ckpt, 2);
  const auto ids = prompt_of("long_500");
  auto frozen_run = [&](ScanMode m, FrozenSsm* out, std::shared_ptr<const FrozenSsm> given) {
    auto st = be->new_state();
    ForwardOptions o;
    o.mode = m;
    o.all_logits = true;
    o.freeze.kind = given ? Freeze::Kind::Given : Freeze::Kind::MeanOverInput;
    o.freeze.values = given;
    o.frozen_out = out;
    std::vector<float> logits;
    be->forward(ids, *st, o, logits);
    return logits;
  };
  FrozenSsm mean;
  const auto fft = frozen_run(ScanMode::LtiFft, &mean, nullptr);
  // Layer 1's frozen values depend on layer 0's output, so compare with the same values given.
  auto given = std::make_shared<FrozenSsm>(mean);
  const auto rnn = frozen_run(ScanMode::Recurrent, nullptr, given);
  const auto toeplitz = frozen_run(ScanMode::Convolution, nullptr, given);
  const auto fft_given = frozen_run(ScanMode::LtiFft, nullptr, given);
  EXPECT_EQ(fft, fft_given);
  EXPECT_LE(max_abs_diff(fft, rnn), 1e-4 * max_abs(rnn));
  EXPECT_LE(max_abs_diff(toeplitz, rnn), 1e-4 * max_abs(rnn));
  // ... and freezing changes the model: selectivity matters.
  const auto selective = run(*be, ids, ScanMode::Scan);
  EXPECT_GT(max_abs_diff(selective, rnn), 1e-2 * max_abs(selective));
}

TEST(CpuBackendProbes, RecordDeltaGateAndStateNormsPerToken) {
  auto ckpt = Checkpoint::open(kFixtures + "tied_fp32");
  auto be = make_cpu_backend(*ckpt, 2);
  const auto ids = prompt_of("tied_fp32");
  const auto& cfg = ckpt->config();
  ProbePolicy pol;
  pol.enabled = true;
  pol.capture_h = true;
  pol.h_layers = {1};
  ProbeRecorder rec(pol);
  auto st = be->new_state();
  ForwardOptions o;
  o.probes = &rec;
  std::vector<float> logits, logits_plain;
  be->forward(ids, *st, o, logits);
  ASSERT_EQ(rec.tokens().size(), ids.size());
  for (const TokenProbe& t : rec.tokens()) {
    ASSERT_EQ(int64_t(t.layers.size()), cfg.n_layer);
    const LayerProbe* l0 = t.layer(0);
    const LayerProbe* l1 = t.layer(1);
    ASSERT_TRUE(l0 && l1);
    EXPECT_EQ(int64_t(l0->delta.size()), cfg.d_inner);
    EXPECT_EQ(int64_t(l0->B.size()), cfg.d_state);
    EXPECT_TRUE(l0->h.empty());
    ASSERT_EQ(int64_t(l1->h.size()), cfg.d_inner * cfg.d_state);
    for (float v : l0->delta) EXPECT_GT(v, 0.0f);  // softplus
    double hn = 0;
    for (int64_t n = 0; n < cfg.d_state; ++n) hn += double(l1->h[n]) * l1->h[n];
    EXPECT_NEAR(std::sqrt(hn), l1->h_norm[0], 1e-5 + 1e-5 * l1->h_norm[0]);
  }
  // The final h of the probes is the state the backend carries.
  const HostState hs = st->to_host();
  const auto& last_h = rec.tokens().back().layer(1)->h;
  for (int64_t i = 0; i < cfg.d_inner * cfg.d_state; ++i)
    EXPECT_NEAR(last_h[i], hs.ssm[cfg.d_inner * cfg.d_state + i], 1e-5);
  // Probes change nothing in the numbers.
  auto st2 = be->new_state();
  be->forward(ids, *st2, ForwardOptions{}, logits_plain);
  EXPECT_EQ(logits, logits_plain);
}

TEST(CpuBackendInterventions, DeltaZeroMakesATokenInvisibleToTheState) {
  auto ckpt = Checkpoint::open(kFixtures + "tied_fp32");
  auto be = make_cpu_backend(*ckpt, 2);
  const auto ids = prompt_of("tied_fp32");
  ForwardOptions o;
  o.all_logits = true;
  auto st = be->new_state();
  std::vector<float> base, same, changed;
  be->forward(ids, *st, o, base);
  // An override outside the run changes nothing, bit for bit.
  o.delta_overrides = {{-1, 1000, 0.0f}};
  st = be->new_state();
  be->forward(ids, *st, o, same);
  EXPECT_EQ(base, same);
  // Δ = 0 at token 5 in every layer: the logits before it are untouched, after it they move.
  o.delta_overrides = {{-1, 5, 0.0f}};
  st = be->new_state();
  be->forward(ids, *st, o, changed);
  const int64_t V = ckpt->config().vocab_size;
  for (int64_t i = 0; i < 5 * V; ++i) ASSERT_EQ(base[i], changed[i]);
  double after = 0;
  for (size_t i = size_t(6 * V); i < base.size(); ++i) after = std::max(after, double(std::fabs(base[i] - changed[i])));
  EXPECT_GT(after, 1e-4);
}

TEST(CpuBackendErrors, TokenOutsideVocabularyIsAnErrorNotACrash) {
  auto ckpt = Checkpoint::open(kFixtures + "tied_fp32");
  auto be = make_cpu_backend(*ckpt, 1);
  auto st = be->new_state();
  std::vector<int32_t> ids = {1, 2, int32_t(ckpt->config().vocab_size)};
  std::vector<float> logits;
  EXPECT_THROW(be->forward(ids, *st, ForwardOptions{}, logits), Error);
  std::vector<int32_t> none;
  EXPECT_THROW(be->forward(none, *st, ForwardOptions{}, logits), Error);
}
