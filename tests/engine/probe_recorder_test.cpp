// ProbeRecorder: the ring bound on tokens, and frames that reuse a dropped token's buffers yet
// come back empty (no value of an older token may show through in a newer one).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "frame_reserve.hpp"
#include "mambascope/probes.hpp"

namespace mambascope {
namespace {

ProbePolicy ring_of(int64_t tokens) {
  ProbePolicy p;
  p.enabled = true;
  p.capture_h = true;
  p.max_tokens = tokens;
  return p;
}

// Fills a frame with values that name their token and layer.
void fill(LayerProbe& p, int64_t position, int layer, bool with_h) {
  const float tag = float(position * 100 + layer);
  p.delta.assign(8, tag);
  p.gate.assign(8, tag + 0.25f);
  p.h_norm.assign(8, tag + 0.5f);
  p.B.assign(4, tag + 0.75f);
  p.C.assign(4, -tag);
  if (with_h) p.h.assign(32, tag);
  p.write_strength = tag;
  p.read_norm = tag;
}

TEST(ProbeRecorder, TheRingKeepsTheLastTokensWithTheirOwnValues) {
  ProbeRecorder rec(ring_of(3));
  for (int64_t t = 0; t < 7; ++t)
    for (int l : {0, 2, 5}) fill(rec.slot(t, l), t, l, l == 0);
  ASSERT_EQ(rec.tokens().size(), 3u);
  for (int64_t t = 4; t < 7; ++t) {
    const TokenProbe* tok = rec.at(t);
    ASSERT_NE(tok, nullptr) << t;
    ASSERT_EQ(tok->layers.size(), 3u);
    for (int l : {0, 2, 5}) {
      const LayerProbe* p = tok->layer(l);
      ASSERT_NE(p, nullptr);
      const float tag = float(t * 100 + l);
      EXPECT_EQ(p->delta, std::vector<float>(8, tag));
      EXPECT_EQ(p->C, std::vector<float>(4, -tag));
      EXPECT_EQ(p->h.size(), l == 0 ? 32u : 0u);
      EXPECT_EQ(p->write_strength, tag);
    }
  }
  EXPECT_EQ(rec.at(3), nullptr);
}

TEST(ProbeRecorder, AFrameMadeFromADroppedTokensBuffersComesBackEmpty) {
  ProbeRecorder rec(ring_of(1));
  fill(rec.slot(0, 0), 0, 0, true);
  fill(rec.slot(0, 1), 0, 1, false);
  // Token 1 drops token 0; its layer 1 frame records nothing but Δ; layer 7 is new to the ring.
  LayerProbe& a = rec.slot(1, 1);
  EXPECT_EQ(a.layer, 1);
  EXPECT_TRUE(a.delta.empty() && a.gate.empty() && a.h_norm.empty() && a.B.empty() && a.C.empty() && a.h.empty());
  EXPECT_EQ(a.write_strength, 0.f);
  EXPECT_EQ(a.read_norm, 0.f);
  EXPECT_GE(a.delta.capacity(), 8u);  // the dropped token's buffer, not fresh memory
  a.delta.assign(8, 1.f);
  LayerProbe& b = rec.slot(1, 7);
  EXPECT_EQ(b.layer, 7);
  EXPECT_TRUE(b.delta.empty() && b.h.empty());
  EXPECT_EQ(b.write_strength, 0.f);
  LayerProbe& c = rec.slot(1, 9);  // no spare left: a new frame
  EXPECT_EQ(c.layer, 9);
  EXPECT_TRUE(c.delta.empty());
  const TokenProbe* tok = rec.at(1);
  ASSERT_NE(tok, nullptr);
  ASSERT_EQ(tok->layers.size(), 3u);
  EXPECT_EQ(tok->layer(1)->delta, std::vector<float>(8, 1.f));
  EXPECT_EQ(rec.at(0), nullptr);
}

TEST(ProbeRecorder, TruncatedAndClearedTokensLeaveNoValuesBehind) {
  ProbeRecorder rec(ring_of(16));
  for (int64_t t = 0; t < 4; ++t) fill(rec.slot(t, 0), t, 0, true);
  rec.truncate(2);  // a fork back to position 2
  ASSERT_EQ(rec.tokens().size(), 2u);
  LayerProbe& again = rec.slot(2, 0);
  EXPECT_TRUE(again.delta.empty() && again.h.empty());
  fill(again, 2, 0, false);
  EXPECT_EQ(rec.at(2)->layer(0)->delta, std::vector<float>(8, 200.f));
  rec.clear();
  EXPECT_TRUE(rec.tokens().empty());
  LayerProbe& fresh = rec.slot(10, 0);
  EXPECT_TRUE(fresh.delta.empty() && fresh.h.empty() && fresh.B.empty());
  EXPECT_EQ(rec.tokens().front().position, 10);
}

TEST(ProbeRecorder, APositionBeforeTheRingIsNotStored) {
  ProbeRecorder rec(ring_of(2));
  for (int64_t t = 5; t < 8; ++t) fill(rec.slot(t, 0), t, 0, false);
  LayerProbe& old = rec.slot(5, 0);  // dropped already
  fill(old, 5, 0, false);
  EXPECT_EQ(rec.at(5), nullptr);
  EXPECT_EQ(rec.tokens().size(), 2u);
  EXPECT_EQ(rec.at(6)->layer(0)->delta, std::vector<float>(8, 600.f));
}

TEST(ProbeRecorder, APositionPastAGapStartsTheRingAgain) {
  ProbeRecorder rec(ring_of(8));
  for (int64_t t = 0; t < 4; ++t) fill(rec.slot(t, 0), t, 0, false);
  rec.truncate(2);
  fill(rec.slot(6, 0), 6, 0, false);  // positions 2-5 never came: the ring holds only 6 now
  ASSERT_EQ(rec.tokens().size(), 1u);
  EXPECT_EQ(rec.at(1), nullptr);
  EXPECT_EQ(rec.at(6)->layer(0)->delta, std::vector<float>(8, 600.f));
  fill(rec.slot(7, 0), 7, 0, false);
  EXPECT_EQ(rec.at(7)->layer(0)->delta, std::vector<float>(8, 700.f));
}

TEST(ProbeRecorder, TheAppsRingHoldsAFixedBudgetOfFrames) {
  constexpr double kMiB = 1024.0 * 1024.0;
  // 130m: 24 layers × (3 × 1536 + 2 × 16) floats + h of one layer (1536 × 16): 531 KiB a token.
  EXPECT_EQ(probe_ring_tokens(24, 1536, 16, 1, 256 * kMiB), 493);
  EXPECT_EQ(probe_ring_tokens(48, 4096, 16, 1, 256 * kMiB), 256);                     // 1.4b: the floor
  EXPECT_EQ(probe_ring_tokens(64, 5120, 16, 1, 256 * kMiB), 256);                     // 2.8b: the floor
  EXPECT_EQ(probe_ring_tokens(2, 64, 4, 1, 256 * kMiB), 65536);                       // tiny: the ceiling
  EXPECT_EQ(probe_ring_tokens(24, 1536, 16, 1, 512 * kMiB), 987);
}

// The reserve makes exactly the tokens it was asked for, in the shape it was given, each frame
// empty with its buffers allocated (the recording thread then copies into them).
TEST(FrameReserve, MakesTheAskedTokensInTheGivenShapeThenStops) {
  TokenProbe shape_of;
  for (int l : {0, 3}) {
    LayerProbe& p = shape_of.layers.emplace_back();
    fill(p, 0, l, l == 3);
    p.layer = l;
  }
  const FrameShape shape = FrameShape::of(shape_of);
  EXPECT_TRUE(shape.matches(shape_of));
  EXPECT_EQ(shape.bytes(), sizeof(float) * (2 * (3 * 8 + 2 * 4) + 32));
  FrameReserve reserve(shape, 5, 2);
  int taken = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (taken < 5 && std::chrono::steady_clock::now() < deadline) {
    std::vector<LayerProbe> frames;
    if (!reserve.take(frames)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    ++taken;
    ASSERT_EQ(frames.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      const LayerProbe& p = frames[i];
      EXPECT_EQ(p.layer, i == 0 ? 0 : 3);
      EXPECT_TRUE(p.delta.empty() && p.gate.empty() && p.h_norm.empty() && p.B.empty() && p.C.empty() && p.h.empty());
      EXPECT_GE(p.delta.capacity(), 8u);
      EXPECT_GE(p.C.capacity(), 4u);
      EXPECT_GE(p.h.capacity(), i == 0 ? 0u : 32u);
    }
  }
  EXPECT_EQ(taken, 5);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::vector<LayerProbe> more;
  EXPECT_FALSE(reserve.take(more));  // five, no more
  EXPECT_TRUE(reserve.exhausted());
  TokenProbe other = shape_of;
  other.layers[1].h.clear();
  EXPECT_FALSE(shape.matches(other));
}

TEST(FrameReserve, StopsWhileTokensAreLeftToMake) {
  TokenProbe t;
  fill(t.layers.emplace_back(), 0, 0, true);
  t.layers.back().layer = 0;
  // Destroyed at once and after the first token: both join the thread (a hang here is a failure).
  { FrameReserve r(FrameShape::of(t), 1000, 4); }
  FrameReserve r(FrameShape::of(t), 1000, 1);
  std::vector<LayerProbe> f;
  while (!r.take(f)) std::this_thread::yield();
  EXPECT_EQ(f.size(), 1u);
  EXPECT_FALSE(r.exhausted());
}

// Recording in decode order past the ring bound, with the reserve making frames ahead: every
// token keeps its own values, also in a copy taken halfway (a forked session) and after a
// truncation, and a frame never shows an older token's values.
TEST(ProbeRecorder, DecodeOrderWithFramesMadeAheadKeepsEveryTokensValues) {
  ProbeRecorder rec(ring_of(40));
  auto record = [](ProbeRecorder& r, int64_t t) {
    for (int l : {0, 1, 2}) {
      LayerProbe& p = r.slot(t, l);
      EXPECT_TRUE(p.delta.empty() && p.h.empty() && p.C.empty()) << t << " " << l;
      EXPECT_EQ(p.layer, l);
      fill(p, t, l, l == 1);
    }
  };
  auto check = [](const ProbeRecorder& r, int64_t first, int64_t last) {
    for (int64_t t = first; t <= last; ++t) {
      const TokenProbe* tok = r.at(t);
      ASSERT_NE(tok, nullptr) << t;
      ASSERT_EQ(tok->layers.size(), 3u);
      for (int l : {0, 1, 2}) {
        const float tag = float(t * 100 + l);
        EXPECT_EQ(tok->layer(l)->delta, std::vector<float>(8, tag)) << t;
        EXPECT_EQ(tok->layer(l)->h.size(), l == 1 ? 32u : 0u);
      }
    }
  };
  for (int64_t t = 0; t < 30; ++t) {
    record(rec, t);
    if (t % 7 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let the reserve run ahead
  }
  ProbeRecorder fork = rec;
  for (int64_t t = 30; t < 100; ++t) record(rec, t);
  check(rec, 60, 99);
  EXPECT_EQ(rec.at(59), nullptr);
  check(fork, 0, 29);
  for (int64_t t = 30; t < 45; ++t) record(fork, t);
  check(fork, 5, 44);
  rec.truncate(90);
  for (int64_t t = 90; t < 120; ++t) record(rec, t);
  check(rec, 80, 119);
  ProbeRecorder moved = std::move(rec);
  record(moved, 120);
  check(moved, 81, 120);
}

}  // namespace
}  // namespace mambascope
