// Properties of the sampler: each filter keeps exactly the set it promises, the seed fixes the
// draws, the penalty lowers repeated tokens, alternatives are a sorted piece of the distribution.
// Draw counts are fixed and the seeds are fixed, so these tests are deterministic.
#include "mambascope/sampler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "mambascope/error.hpp"

using namespace mambascope;

namespace {

std::vector<float> random_logits(int n, uint64_t seed, float scale = 3.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> v;
  for (double p : probs) v.push_back(float(std::log(p)));
  return v;
}

SamplingParams plain(float temperature = 1.0f) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repetition_penalty = 1.0f;
  p.seed = 1234;
  return p;
}

std::set<int32_t> drawn(Sampler& s, const std::vector<float>& logits, int draws) {
  std::set<int32_t> out;
  for (int i = 0; i < draws; ++i) out.insert(s.sample(logits, {}));
  return out;
}

}  // namespace

TEST(Sampler, GreedyIsArgmaxOfLogits) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto l = random_logits(5000, seed);
    Sampler s(plain(0.0f));
    int32_t expect = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
    EXPECT_EQ(s.sample(l, {}), expect);
  }
}

TEST(Sampler, GreedyBreaksTiesTowardsLowerId) {
  std::vector<float> l = {0.0f, 5.0f, 1.0f, 5.0f};
  Sampler s(plain(0.0f));
  EXPECT_EQ(s.sample(l, {}), 1);
}

TEST(Sampler, TopKNeverLeavesTheKBest) {
  auto l = random_logits(5000, 7, 1.0f);
  std::vector<int32_t> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return l[size_t(a)] > l[size_t(b)]; });
  for (int k : {1, 5, 40}) {
    SamplingParams p = plain(2.0f);  // flatten so the tail would be drawn without top-k
    p.top_k = k;
    Sampler s(p);
    std::set<int32_t> best(order.begin(), order.begin() + k);
    auto got = drawn(s, l, 2000);
    for (int32_t id : got) EXPECT_TRUE(best.count(id)) << "k=" << k << " drew " << id;
    if (k == 5) {
      EXPECT_EQ(got.size(), 5u);  // and every one of the five is reachable
    }
  }
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  auto l = logits_of({0.5, 0.3, 0.15, 0.05});
  SamplingParams p = plain();
  p.top_p = 0.75f;  // 0.5 < 0.75 <= 0.8: {0, 1}
  Sampler a(p);
  EXPECT_EQ(drawn(a, l, 2000), (std::set<int32_t>{0, 1}));
  p.top_p = 0.85f;  // 0.8 < 0.85 <= 0.95: {0, 1, 2}
  Sampler b(p);
  EXPECT_EQ(drawn(b, l, 2000), (std::set<int32_t>{0, 1, 2}));
  p.top_p = 0.4f;  // the most probable token alone already reaches it
  Sampler c(p);
  EXPECT_EQ(drawn(c, l, 200), (std::set<int32_t>{0}));
}

TEST(Sampler, TopPOnALargeVocabularyWithoutTopKMatchesAFullSort) {
  // A long tail forces the nucleus past the first sorted block.
  auto l = random_logits(20000, 11, 0.5f);
  SamplingParams p = plain();
  p.top_p = 0.9f;
  std::vector<int32_t> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return l[size_t(a)] > l[size_t(b)] || (l[size_t(a)] == l[size_t(b)] && a < b);
  });
  double z = 0;
  for (float v : l) z += std::exp(double(v));
  std::set<int32_t> nucleus;
  double cum = 0;
  for (int32_t id : order) {
    nucleus.insert(id);
    cum += std::exp(double(l[size_t(id)])) / z;
    if (cum >= 0.9) break;
  }
  ASSERT_GT(nucleus.size(), 1000u);
  Sampler s(p);
  int outside = 0;
  for (int i = 0; i < 100; ++i) outside += nucleus.count(s.sample(l, {})) ? 0 : 1;
  EXPECT_EQ(outside, 0);
}

TEST(Sampler, MinPDropsTokensBelowTheFractionOfTheBest) {
  auto l = logits_of({0.4, 0.3, 0.2, 0.1});
  SamplingParams p = plain();
  p.min_p = 0.45f;  // keep p >= 0.18: {0, 1, 2}
  Sampler s(p);
  EXPECT_EQ(drawn(s, l, 3000), (std::set<int32_t>{0, 1, 2}));
  p.min_p = 1.0f;  // only the best
  Sampler t(p);
  EXPECT_EQ(drawn(t, l, 300), (std::set<int32_t>{0}));
}

TEST(Sampler, DrawFrequenciesFollowTheDistribution) {
  auto l = logits_of({0.5, 0.3, 0.2});
  Sampler s(plain());
  int count[3] = {0, 0, 0};
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++count[s.sample(l, {})];
  EXPECT_NEAR(count[0] / double(n), 0.5, 0.02);
  EXPECT_NEAR(count[1] / double(n), 0.3, 0.02);
  EXPECT_NEAR(count[2] / double(n), 0.2, 0.02);
}

TEST(Sampler, LowTemperatureConcentratesOnTheBest) {
  auto l = logits_of({0.4, 0.35, 0.25});
  Sampler hot(plain(1.0f)), cold(plain(0.02f));  // (8/7)^50: p(best) > 0.998
  int hot_best = 0, cold_best = 0;
  for (int i = 0; i < 2000; ++i) {
    hot_best += hot.sample(l, {}) == 0;
    cold_best += cold.sample(l, {}) == 0;
  }
  EXPECT_LT(hot_best, 1000);
  EXPECT_GT(cold_best, 1900);
}

TEST(Sampler, SameSeedGivesSameDraws) {
  std::vector<float> flat(1000, 0.0f);
  SamplingParams p = plain();
  p.seed = 42;
  Sampler a(p), b(p);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(a.sample(flat, {}), b.sample(flat, {}));
}

TEST(Sampler, DifferentSeedDiffersOnAFlatDistribution) {
  std::vector<float> flat(1000, 0.0f);
  SamplingParams p = plain();
  p.seed = 1;
  Sampler a(p);
  p.seed = 2;
  Sampler b(p);
  std::vector<int32_t> da, db;
  for (int i = 0; i < 50; ++i) {
    da.push_back(a.sample(flat, {}));
    db.push_back(b.sample(flat, {}));
  }
  EXPECT_NE(da, db);
}

TEST(Sampler, ReseedRestartsTheSequence) {
  std::vector<float> flat(1000, 0.0f);
  Sampler s(plain());
  std::vector<int32_t> first, again;
  for (int i = 0; i < 20; ++i) first.push_back(s.sample(flat, {}));
  s.reseed(1234);
  for (int i = 0; i < 20; ++i) again.push_back(s.sample(flat, {}));
  EXPECT_EQ(first, again);
}

TEST(Sampler, RepetitionPenaltyLowersRepeatedTokens) {
  // Token 0 (positive logit) and token 2 (negative logit) were seen; 1 and 3 are their twins.
  std::vector<float> l = {2.0f, 2.0f, -1.0f, -1.0f, 0.0f};
  std::vector<int32_t> history = {0, 2, 0};
  SamplingParams p = plain(0.0f);
  p.repetition_penalty = 1.5f;
  p.n_alternatives = 5;
  Sampler s(p);
  std::vector<Alternative> alts;
  EXPECT_EQ(s.sample(l, history, &alts), 1);  // greedy moves off the repeated token
  auto prob = [&](int32_t id) {
    for (auto& a : alts)
      if (a.id == id) return a.prob;
    return -1.0f;
  };
  EXPECT_LT(prob(0), prob(1));
  EXPECT_LT(prob(2), prob(3));
  // Applied once per distinct token however often it repeats: 2/1.5, not 2/1.5².
  EXPECT_NEAR(std::log(prob(0) / prob(1)), 2.0 / 1.5 - 2.0, 1e-5);
}

TEST(Sampler, RepetitionPenaltyOnlyLooksAtTheWindow) {
  std::vector<float> l = {2.0f, 1.9f, 0.0f};
  std::vector<int32_t> history = {0, 2, 2, 2};  // token 0 is outside a window of 3
  SamplingParams p = plain(0.0f);
  p.repetition_penalty = 2.0f;
  p.repetition_window = 3;
  Sampler s(p);
  EXPECT_EQ(s.sample(l, history), 0);
  p.repetition_window = 4;
  Sampler t(p);
  EXPECT_EQ(t.sample(l, history), 1);
}

TEST(Sampler, AlternativesAreSortedMatchSoftmaxAndSumAtMostOne) {
  auto l = random_logits(50000, 3);
  SamplingParams p = plain(0.7f);
  p.top_k = 3;  // truncation must not change the reported probabilities
  p.n_alternatives = 8;
  Sampler s(p);
  std::vector<Alternative> alts;
  s.sample(l, {}, &alts);
  ASSERT_EQ(alts.size(), 8u);
  double m = *std::max_element(l.begin(), l.end()) / 0.7, z = 0;
  for (float v : l) z += std::exp(v / 0.7 - m);
  double sum = 0;
  for (size_t i = 0; i < alts.size(); ++i) {
    if (i > 0) {
      EXPECT_GE(alts[i - 1].prob, alts[i].prob);
    }
    EXPECT_NEAR(alts[i].prob, std::exp(l[size_t(alts[i].id)] / 0.7 - m) / z, 1e-6);
    sum += alts[i].prob;
  }
  EXPECT_LE(sum, 1.0 + 1e-6);
  EXPECT_GT(sum, 0.0);
}

TEST(Sampler, AlternativesOfATinyVocabularySumToOne) {
  std::vector<float> l = {0.1f, 0.2f, 0.3f};
  SamplingParams p = plain();
  p.n_alternatives = 10;
  Sampler s(p);
  std::vector<Alternative> alts;
  s.sample(l, {}, &alts);
  ASSERT_EQ(alts.size(), 3u);
  EXPECT_EQ(alts[0].id, 2);
  EXPECT_NEAR(alts[0].prob + alts[1].prob + alts[2].prob, 1.0, 1e-6);
}

TEST(Sampler, NonFiniteLogitsAreAnError) {
  Sampler s(plain());
  std::vector<float> l = {0.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f};
  EXPECT_THROW(s.sample(l, {}), Error);
  l[1] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(s.sample(l, {}), Error);
  std::vector<float> all_masked(4, -std::numeric_limits<float>::infinity());
  EXPECT_THROW(s.sample(all_masked, {}), Error);
  EXPECT_THROW(s.sample(std::vector<float>{}, {}), Error);
  try {
    l[1] = std::numeric_limits<float>::quiet_NaN();
    s.sample(l, {});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
}

TEST(Sampler, MaskedTokensAreNeverDrawn) {
  std::vector<float> l = {0.0f, -std::numeric_limits<float>::infinity(), 0.0f};
  Sampler s(plain(1.5f));
  EXPECT_EQ(drawn(s, l, 1000), (std::set<int32_t>{0, 2}));
}

TEST(Sampler, OutOfRangeParametersAreRejected) {
  auto with = [](auto edit) {
    SamplingParams p;
    edit(p);
    return p;
  };
  EXPECT_THROW(Sampler(with([](SamplingParams& p) { p.temperature = -1; })), Error);
  EXPECT_THROW(Sampler(with([](SamplingParams& p) { p.top_k = -3; })), Error);
  EXPECT_THROW(Sampler(with([](SamplingParams& p) { p.top_p = 0; })), Error);
  EXPECT_THROW(Sampler(with([](SamplingParams& p) { p.top_p = 1.5f; })), Error);
  EXPECT_THROW(Sampler(with([](SamplingParams& p) { p.min_p = 2; })), Error);
  EXPECT_THROW(Sampler(with([](SamplingParams& p) { p.repetition_penalty = 0; })), Error);
  EXPECT_NO_THROW(Sampler(SamplingParams{}));
}

TEST(LogSoftmax, MatchesTheDefinitionAndExponentiatesToOne) {
  std::vector<float> l = {1.0f, 2.0f, 3.0f, -100.0f};
  std::vector<float> out;
  log_softmax(l, out);
  double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + std::exp(-100.0);
  EXPECT_NEAR(out[2], 3.0 - std::log(z), 1e-6);
  double s = 0;
  for (float v : out) s += std::exp(double(v));
  EXPECT_NEAR(s, 1.0, 1e-6);
}
