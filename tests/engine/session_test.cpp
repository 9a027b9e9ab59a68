// Generation sessions on a real model (the tied_fp32 fixture on the CPU backend): seeds fix the
// text, forks continue exactly as the original did, probes follow the policy, cancellation from
// another thread stops within one token. The stop/EOS/streaming logic is pinned down with a
// scripted backend whose next token is known in advance (session_scripted_test.cpp).
#include "mambascope/session.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

#include "mambascope/backend.hpp"
#include "mambascope/error.hpp"
#include "mambascope/model.hpp"

using namespace mambascope;

namespace {

std::shared_ptr<Model> fixture_model() {
  // The fixture ships no tokenizer: Model::load falls back to the GPT-NeoX one in assets/.
  static std::shared_ptr<Model> m = [] {
    setenv("MAMBASCOPE_ASSETS_DIR", MAMBASCOPE_SOURCE_DIR "/assets", 0);
    return Model::load(MAMBASCOPE_FIXTURES_DIR "/hf/tied_fp32");
  }();
  return m;
}

std::shared_ptr<Backend> cpu_backend() {
  return make_cpu_backend(fixture_model()->checkpoint(), 1);
}

std::vector<int32_t> prompt_ids(int n) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(int32_t((i * 37 + 11) % 500 + 2));
  return ids;
}

GenerateRequest sampled(uint64_t seed, int n, std::vector<int32_t> prompt = {}) {
  GenerateRequest r;
  r.prompt_ids = std::move(prompt);
  r.max_new_tokens = n;
  r.sampling.temperature = 1.0f;
  r.sampling.top_k = 0;
  r.sampling.top_p = 1.0f;
  r.sampling.seed = seed;
  r.stop_at_eos = false;
  return r;
}

std::vector<int32_t> generated(const Session& s, const GenerateResult& r) {
  return {s.tokens().end() - r.new_tokens, s.tokens().end()};
}

}  // namespace

TEST(Session, SameSeedGivesSameTokens) {
  Session a(fixture_model(), cpu_backend()), b(fixture_model(), cpu_backend());
  auto ra = a.generate(sampled(7, 24, prompt_ids(10)), {});
  auto rb = b.generate(sampled(7, 24, prompt_ids(10)), {});
  ASSERT_EQ(ra.reason, StopReason::MaxTokens) << ra.error;
  EXPECT_EQ(ra.new_tokens, 24);
  EXPECT_EQ(a.tokens(), b.tokens());
  EXPECT_EQ(ra.text, rb.text);
}

TEST(Session, DifferentSeedGivesDifferentTokens) {
  Session a(fixture_model(), cpu_backend()), b(fixture_model(), cpu_backend());
  auto ra = a.generate(sampled(7, 24, prompt_ids(10)), {});
  auto rb = b.generate(sampled(8, 24, prompt_ids(10)), {});
  EXPECT_NE(generated(a, ra), generated(b, rb));
}

TEST(Session, GreedyTakesTheArgmaxAtEveryStep) {
  Session s(fixture_model(), cpu_backend());
  GenerateRequest r = sampled(0, 16, prompt_ids(24));
  r.sampling.temperature = 0;
  auto res = s.generate(r, {});
  ASSERT_EQ(res.new_tokens, 16) << res.error;
  // Replay from the prompt, feeding the argmax by hand: the session must have chosen the same.
  auto f = s.fork(24);
  for (int i = 0; i < 16; ++i) {
    const auto& l = f->last_logits();
    const int32_t best = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
    EXPECT_EQ(best, s.tokens()[size_t(24 + i)]) << "step " << i;
    f->append({best});
  }
}

TEST(Session, ForkContinuesExactlyAsTheOriginalDid) {
  // Interval 8 with 20 prompt + 30 generated tokens: the fork at 50 restores the snapshot at 48
  // and re-runs two decode steps; its second generation must be the original's, token for token.
  Session a(fixture_model(), cpu_backend(), {}, 8);
  auto r1 = a.generate(sampled(1, 30, prompt_ids(20)), {});
  ASSERT_EQ(r1.new_tokens, 30);
  auto fork = a.fork(50);
  EXPECT_EQ(fork->tokens(), a.tokens());
  EXPECT_EQ(fork->last_logits(), a.last_logits());  // bit for bit
  auto r2 = a.generate(sampled(2, 30), {});
  auto r2f = fork->generate(sampled(2, 30), {});
  EXPECT_EQ(generated(a, r2), generated(*fork, r2f));
  EXPECT_EQ(r2.text, r2f.text);
}

TEST(Session, ForkAtEveryGeneratedPositionRestoresThatPositionsLogits) {
  Session a(fixture_model(), cpu_backend(), {}, 5);
  std::vector<std::vector<float>> after;  // logits after each generated token
  std::vector<int64_t> positions;
  auto r = a.generate(sampled(3, 17, prompt_ids(9)), [&](const TokenEvent& ev) {
    if (ev.is_prompt) return;
    after.push_back(a.last_logits());
    positions.push_back(ev.position);
  });
  ASSERT_EQ(r.new_tokens, 17);
  for (size_t i = 0; i < after.size(); ++i) {
    auto f = a.fork(positions[i] + 1);
    EXPECT_EQ(f->tokens().size(), size_t(positions[i] + 1));
    EXPECT_EQ(f->last_logits(), after[i]) << "fork at " << positions[i] + 1;
    EXPECT_EQ(f->state().position(), positions[i] + 1);
  }
}

TEST(Session, ForkInsideThePromptEqualsAFreshPrefill) {
  // Prompts are prefilled in calls ending at multiples of the interval, so a fork at 13 replays
  // [8, 13) exactly as a fresh session given the first 13 tokens runs it.
  const auto p = prompt_ids(30);
  Session a(fixture_model(), cpu_backend(), {}, 8);
  a.generate(sampled(0, 0, p), {});
  auto f = a.fork(13);
  Session fresh(fixture_model(), cpu_backend(), {}, 8);
  fresh.generate(sampled(0, 0, {p.begin(), p.begin() + 13}), {});
  EXPECT_EQ(f->last_logits(), fresh.last_logits());
  auto rf = f->generate(sampled(9, 12), {});
  auto rr = fresh.generate(sampled(9, 12), {});
  EXPECT_EQ(generated(*f, rf), generated(fresh, rr));
}

TEST(Session, RewindThenRegenerateRepeatsTheSameTokens) {
  Session a(fixture_model(), cpu_backend(), {}, 4);
  a.generate(sampled(0, 0, prompt_ids(6)), {});
  auto r1 = a.generate(sampled(5, 10), {});
  auto first = generated(a, r1);
  a.rewind(6);
  EXPECT_EQ(a.tokens().size(), 6u);
  auto r2 = a.generate(sampled(5, 10), {});
  EXPECT_EQ(generated(a, r2), first);
}

TEST(Session, ForkOutsideTheHistoryIsAnError) {
  Session a(fixture_model(), cpu_backend());
  a.generate(sampled(0, 2, prompt_ids(3)), {});
  EXPECT_THROW(a.fork(6), Error);
  EXPECT_THROW(a.fork(-1), Error);
  EXPECT_NO_THROW(a.fork(0));
  EXPECT_NO_THROW(a.fork(5));
}

TEST(Session, SnapshotBudgetThinsSnapshotsAndForksStayExact) {
  Session a(fixture_model(), cpu_backend(), {}, 2);
  const size_t one =
      a.state().bytes() + size_t(fixture_model()->config().vocab_size) * sizeof(float);
  a.set_snapshot_budget(6 * one);
  std::vector<std::vector<float>> after;
  auto r = a.generate(sampled(4, 40, prompt_ids(4)), [&](const TokenEvent& ev) {
    if (!ev.is_prompt) after.push_back(a.last_logits());
  });
  ASSERT_EQ(r.new_tokens, 40);
  EXPECT_LE(a.snapshot_bytes(), 6 * one);
  EXPECT_GE(a.snapshot_count(), 2u);
  auto f = a.fork(4 + 11);  // far from any kept snapshot: a longer replay, same numbers
  EXPECT_EQ(f->last_logits(), after[10]);
}

TEST(Session, CancelFromAnotherThreadStopsWithinOneToken) {
  Session s(fixture_model(), cpu_backend());
  std::atomic<bool> cancel{false};
  std::atomic<int> seen{0};
  int seen_when_cancelled = -1;
  std::thread canceller([&] {
    while (seen.load() < 5) std::this_thread::yield();
    cancel.store(true);
    seen_when_cancelled = seen.load();
  });
  auto r = s.generate(
      sampled(1, 1 << 20, prompt_ids(4)),
      [&](const TokenEvent& ev) {
        if (!ev.is_prompt) seen.fetch_add(1);
      },
      &cancel);
  canceller.join();
  EXPECT_EQ(r.reason, StopReason::Cancelled);
  EXPECT_LE(r.new_tokens, seen_when_cancelled + 1);
  EXPECT_GE(r.new_tokens, 5);
}

TEST(Session, ProbesFollowThePolicyAndAreTruncatedOnFork) {
  ProbePolicy pol;
  pol.enabled = true;
  pol.layers = {1};
  Session s(fixture_model(), cpu_backend(), pol, 4);
  int with_probe = 0;
  auto r = s.generate(sampled(2, 6, prompt_ids(5)), [&](const TokenEvent& ev) {
    ASSERT_NE(ev.probe, nullptr);
    EXPECT_EQ(ev.probe->position, ev.position);
    ASSERT_EQ(ev.probe->layers.size(), 1u);
    EXPECT_EQ(ev.probe->layers[0].layer, 1);
    EXPECT_EQ(int64_t(ev.probe->layers[0].delta.size()), fixture_model()->config().d_inner);
    ++with_probe;
  });
  EXPECT_EQ(with_probe, 11);
  EXPECT_EQ(s.probes().tokens().size(), 11u);
  auto f = s.fork(7);
  ASSERT_FALSE(f->probes().tokens().empty());
  EXPECT_EQ(f->probes().tokens().back().position, 6);
  f->generate(sampled(3, 2), {});
  EXPECT_EQ(f->probes().tokens().back().position, 8);
  EXPECT_EQ(f->probes().tokens().size(), 9u);
}

TEST(Session, WithProbesOffNothingIsRecorded) {
  Session s(fixture_model(), cpu_backend());
  s.generate(sampled(2, 4, prompt_ids(3)),
             [&](const TokenEvent& ev) { EXPECT_EQ(ev.probe, nullptr); });
  EXPECT_TRUE(s.probes().tokens().empty());
}

TEST(Session, BadPromptIdIsReportedAndTheSessionStaysUsable) {
  Session s(fixture_model(), cpu_backend());
  s.generate(sampled(0, 0, prompt_ids(3)), {});
  auto r = s.generate(sampled(0, 3, {1, 100000}), {});
  EXPECT_EQ(r.reason, StopReason::Error);
  EXPECT_NE(r.error.find("100000"), std::string::npos) << r.error;
  EXPECT_EQ(s.tokens().size(), 3u);
  auto ok = s.generate(sampled(0, 3), {});
  EXPECT_EQ(ok.reason, StopReason::MaxTokens) << ok.error;
  EXPECT_EQ(s.tokens().size(), 6u);
}

TEST(Session, EmptyHistoryAndPromptStartsFromBos) {
  Session s(fixture_model(), cpu_backend());
  auto r = s.generate(sampled(0, 2), {});
  ASSERT_EQ(r.reason, StopReason::MaxTokens) << r.error;
  EXPECT_EQ(r.prompt_tokens, 1);
  EXPECT_EQ(s.tokens().size(), 3u);
}

TEST(Session, EveryModeCanPrefillAndTheContinuationsAgree) {
  std::vector<std::vector<int32_t>> outs;
  for (ScanMode m : {ScanMode::Recurrent, ScanMode::Scan, ScanMode::Convolution}) {
    Session s(fixture_model(), cpu_backend());
    GenerateRequest r = sampled(0, 8, prompt_ids(12));
    r.sampling.temperature = 0;
    r.prefill_mode = m;
    auto res = s.generate(r, {});
    ASSERT_EQ(res.reason, StopReason::MaxTokens) << mode_name(m) << ": " << res.error;
    outs.push_back(generated(s, res));
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(outs[0], outs[2]);
}
