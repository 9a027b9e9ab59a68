// The numbers behind the "what selectivity buys" view (engine/src/lab/selectivity.cpp): the
// selective variant scores the text exactly as the model does, its greedy continuation is the
// model's (transformers' golden tokens), and freezing Δ, B, C changes the scores.
#include <gtest/gtest.h>

#include <cmath>

#include "hf_fixture.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/lab.hpp"

using namespace mambascope;

namespace {

TEST(LabSelectivity, SelectiveVariantScoresAndContinuesAsTheModel) {
  const auto fx = mambascope::testing::load_hf_fixture("tied_fp32");
  auto ckpt = Checkpoint::open(fx.dir);
  auto be = make_cpu_backend(*ckpt, 2);
  std::vector<int32_t> text = fx.input_ids;
  text.insert(text.end(), fx.greedy.begin(), fx.greedy.end());
  const int64_t P = int64_t(fx.input_ids.size());
  std::vector<lab::Variant> vs = {{"selective", be.get(), Freeze::Kind::None, 0},
                                  {"frozen", be.get(), Freeze::Kind::MeanOverInput, 0},
                                  {"frozen at 2", be.get(), Freeze::Kind::AtToken, 2}};
  lab::SelectivityOptions o;
  o.prompt_len = P;
  o.score_from = 1;
  o.n_continue = int(fx.greedy.size());
  const auto r = lab::compare_selectivity(vs, text, o);
  ASSERT_EQ(r.size(), 3u);
  // Teacher-forced log-probabilities over the prompt equal transformers' logits' log-softmax.
  const int64_t V = fx.vocab;
  double nll = 0;
  for (int64_t t = 1; t < P; ++t) {
    const float* row = fx.logits_row(size_t(t - 1));
    double m = row[0], s = 0;
    for (int64_t v = 0; v < V; ++v) m = std::max(m, double(row[v]));
    for (int64_t v = 0; v < V; ++v) s += std::exp(row[v] - m);
    const double lp = row[text[size_t(t)]] - m - std::log(s);
    EXPECT_NEAR(r[0].logprob[size_t(t)], lp, 1e-3);
    nll -= r[0].logprob[size_t(t)];
  }
  EXPECT_EQ(r[0].scored, int64_t(text.size()) - 1);
  EXPECT_EQ(r[0].continuation, fx.greedy);
  EXPECT_EQ(r[0].continuation_matches, int64_t(fx.greedy.size()));
  // The greedy tokens are the selective model's argmax, so it predicts them all.
  for (size_t i = 0; i < fx.greedy.size(); ++i) EXPECT_EQ(r[0].predicted[size_t(P) + i], fx.greedy[i]);
  EXPECT_NEAR(r[0].perplexity, std::exp(r[0].nll), 1e-9);
  // Freezing changes the model.
  EXPECT_GT(std::fabs(r[1].nll - r[0].nll), 1e-3);
  EXPECT_GT(std::fabs(r[2].nll - r[0].nll), 1e-3);
  EXPECT_NE(r[1].freeze_text, r[0].freeze_text);
}

TEST(LabSelectivity, FreezeTokenOutsideThePromptIsAnError) {
  const auto fx = mambascope::testing::load_hf_fixture("dstate_8");
  auto ckpt = Checkpoint::open(fx.dir);
  auto be = make_cpu_backend(*ckpt, 2);
  std::vector<lab::Variant> vs = {{"frozen", be.get(), Freeze::Kind::AtToken, 1000}};
  lab::SelectivityOptions o;
  EXPECT_THROW(lab::compare_selectivity(vs, fx.input_ids, o), Error);
}

}  // namespace
