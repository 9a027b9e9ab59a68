// The arithmetic behind the views: decay, half-life, survival, token measures, colour scales.
#include <gtest/gtest.h>

#include <cmath>

#include "core/measures.h"
#include "views/colorscale.h"

namespace {
TokenRecord tokenWith(float meanDelta, float normH, int layer = 0) {
  TokenRecord t;
  t.probe = std::make_shared<ProbeFrame>();
  LayerFrame f;
  f.layer = layer;
  f.meanDelta = meanDelta;
  f.normH = normH;
  t.probe->layers.push_back(f);
  return t;
}
}  // namespace

TEST(Decay, RetentionIsTheMeanOverStatesOfExpDeltaTimesA) {
  const std::vector<float> delta{0.5f, 2.0f};            // {d_inner}
  const std::vector<float> a{-1.f, -2.f, -0.1f, -0.2f};  // {d_inner, d_state}
  const std::vector<float> r = decay::retention(delta, a, 2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_NEAR(r[0], (std::exp(-0.5) + std::exp(-1.0)) / 2, 1e-6);
  EXPECT_NEAR(r[1], (std::exp(-0.2) + std::exp(-0.4)) / 2, 1e-6);
}

TEST(Decay, HalfLifeOfAUniformRateIsLn2OverTheRate) {
  const std::vector<float> delta{0.1f, 0.1f, 0.1f};
  const std::vector<float> a(6, -2.f);
  EXPECT_NEAR(decay::halfLife(delta, a, 2), std::log(2.0) / 0.2, 1e-4);
  // A larger Δ forgets faster: a shorter half-life.
  const std::vector<float> bigger{1.f, 1.f, 1.f};
  EXPECT_LT(decay::halfLife(bigger, a, 2), decay::halfLife(delta, a, 2));
}

TEST(Decay, SurvivalMultipliesTheDecayOfEveryLaterToken) {
  const std::vector<float> a{-1.f, -3.f};  // one channel, two states
  decay::SurvivalTracker tracker(a, 2);
  const std::vector<float> d1{0.5f}, d2{0.25f};
  EXPECT_NEAR(tracker.step(d1), (std::exp(-0.5) + std::exp(-1.5)) / 2, 1e-6);
  EXPECT_NEAR(tracker.step(d2), (std::exp(-0.75) + std::exp(-2.25)) / 2, 1e-6);
  EXPECT_TRUE(std::isnan(tracker.step(std::vector<float>{1.f, 2.f})));  // wrong width: no answer
}

TEST(TokenMeasures, ChangeOfHNormIsTheDifferenceFromThePreviousToken) {
  const QVector<TokenRecord> tokens{tokenWith(0.1f, 2.f), tokenWith(0.3f, 5.f)};
  EXPECT_FLOAT_EQ(tokenMeasure(tokens, 1, TokenMeasure::HNormChange, 0), 3.f);
  EXPECT_FLOAT_EQ(tokenMeasure(tokens, 0, TokenMeasure::HNormChange, 0), 2.f);
  EXPECT_FLOAT_EQ(tokenMeasure(tokens, 1, TokenMeasure::DeltaLayer, 0), 0.3f);
  EXPECT_TRUE(std::isnan(tokenMeasure(tokens, 1, TokenMeasure::DeltaLayer, 5)));  // not recorded
  EXPECT_TRUE(std::isnan(tokenMeasure(tokens, 7, TokenMeasure::DeltaLayer, 0)));  // no such token
}

TEST(ColorScales, FitIgnoresOutliersAndNaNAndDivergingIsSymmetric) {
  std::vector<float> v;
  for (int i = 0; i < 1000; ++i) v.push_back(float(i) / 1000.f);
  v.push_back(1e6f);
  v.push_back(std::nanf(""));
  const ColorScale s = ColorScale::fit(v, ColorScale::Kind::Sequential, false);
  EXPECT_LT(s.hi(), 2.f);
  EXPECT_NE(s.map(0.f), s.map(0.99f));
  EXPECT_EQ(s.map(std::nanf("")), ColorScale::noData());
  const ColorScale d = ColorScale::fit({-3.f, 1.f, 2.f}, ColorScale::Kind::Diverging, false);
  EXPECT_FLOAT_EQ(d.lo(), -d.hi());
  const ColorScale log = ColorScale::fit({0.001f, 0.01f, 0.1f, 1.f}, ColorScale::Kind::Sequential, true);
  EXPECT_TRUE(log.isLog());
  EXPECT_NEAR(log.position(0.01f) + log.position(0.1f), 1.0f, 0.05f);  // even steps per decade
}
