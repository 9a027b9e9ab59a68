// Sessions on the GPU sample on the device (Backend::decode_on_device), recording probes or not:
// the same greedy tokens, text, stops, snapshots and forks whether the fused step (no probes) or
// the recorded per-layer step runs, and as the CPU and the host-sampling path (more alternatives
// than the device reports); the probes match the CPU's; seeded sampling repeats; cancellation
// stops within one token and leaves the session usable. A session recording probes decodes one
// step ahead of the host: snapshots and stops undo that step, which must change nothing.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_test_util.hpp"
#include "mambascope/model.hpp"
#include "mambascope/session.hpp"

namespace mambascope::test {

namespace {

std::shared_ptr<Model> fixture_model() {
  // The fixture ships no tokenizer: Model::load falls back to the GPT-NeoX one in assets/.
  static std::shared_ptr<Model> m = [] {
    setenv("MAMBASCOPE_ASSETS_DIR", MAMBASCOPE_FIXTURES_DIR "/../../assets", 0);
    return Model::load(MAMBASCOPE_FIXTURES_DIR "/hf/tied_fp32");
  }();
  return m;
}

ProbePolicy recording() {
  ProbePolicy p;
  p.enabled = true;
  p.capture_h = true;
  p.h_layers = {1};
  return p;
}

GenerateRequest greedy(int n) {
  GenerateRequest r;
  for (int i = 0; i < 9; ++i) r.prompt_ids.push_back(int32_t((i * 37 + 11) % 500 + 2));
  r.max_new_tokens = n;
  r.sampling.temperature = 0;
  r.sampling.n_alternatives = 3;
  r.stop_at_eos = false;
  return r;
}

// Sampled: T 0.9, top-p 0.95 over the whole vocabulary, a repetition penalty, a seed.
GenerateRequest seeded(int n, float penalty, uint64_t seed) {
  GenerateRequest r = greedy(n);
  r.sampling.temperature = 0.9f;
  r.sampling.top_k = 0;
  r.sampling.top_p = 0.95f;
  r.sampling.repetition_penalty = penalty;
  r.sampling.seed = seed;
  return r;
}

std::vector<TokenEvent> generate(Session& s, const GenerateRequest& r, GenerateResult* res = nullptr,
                                 const std::atomic<bool>* cancel = nullptr,
                                 std::atomic<bool>* cancel_after = nullptr, int after = 0) {
  std::vector<TokenEvent> ev;
  GenerateResult out = s.generate(r, [&](const TokenEvent& e) {
    if (e.is_prompt) return;
    ev.push_back(e);
    ev.back().probe = nullptr;
    if (cancel_after && int(ev.size()) == after) cancel_after->store(true);
  }, cancel);
  EXPECT_NE(out.reason, StopReason::Error) << out.error;
  if (res) *res = out;
  return ev;
}

void expect_same_events(const std::vector<TokenEvent>& a, const std::vector<TokenEvent>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].position, b[i].position);
    EXPECT_EQ(a[i].id, b[i].id) << "token " << i;
    EXPECT_EQ(a[i].text, b[i].text);
    ASSERT_EQ(a[i].alternatives.size(), b[i].alternatives.size());
    for (size_t j = 0; j < a[i].alternatives.size(); ++j) {
      EXPECT_EQ(a[i].alternatives[j].id, b[i].alternatives[j].id);
      EXPECT_NEAR(a[i].alternatives[j].prob, b[i].alternatives[j].prob, 1e-4);
    }
  }
}

}  // namespace

TEST(SessionOnGpu, DeviceSamplingMatchesHostSamplingAndTheCpu) {
  SKIP_WITHOUT_GPU();
  auto model = fixture_model();
  std::shared_ptr<Backend> gpu = make_cuda_backend(model->checkpoint());
  std::shared_ptr<Backend> cpu = make_cpu_backend(model->checkpoint(), 2);
  // dev: no probes (the fused step where it runs); host: recording probes (the recorded
  // per-layer step); ref: the CPU, recording, sampling on the host.
  Session dev(model, gpu, {}, 8), host(model, gpu, recording(), 8), ref(model, cpu, recording(), 8);
  GenerateResult rd, rh, rc;
  const auto ed = generate(dev, greedy(30), &rd);
  const auto eh = generate(host, greedy(30), &rh);
  const auto ec = generate(ref, greedy(30), &rc);
  expect_same_events(ed, eh);
  ASSERT_EQ(ed.size(), ec.size());  // the CPU: same tokens and text (alternatives may tie)
  for (size_t i = 0; i < ed.size(); ++i) EXPECT_EQ(ed[i].id, ec[i].id) << "token " << i;
  EXPECT_EQ(rd.text, rh.text);
  EXPECT_EQ(rd.text, rc.text);
  EXPECT_EQ(dev.tokens(), host.tokens());
  EXPECT_LT(rel_error(dev.last_logits(), host.last_logits()), 1e-4);
  EXPECT_LT(rel_error(dev.last_logits(), ref.last_logits()), 1e-4);
  expect_probes_match(host.probes(), ref.probes(), 2e-4);
  EXPECT_EQ(host.probes().tokens().size(), host.tokens().size());

  // More alternatives than the device reports: the host samples, with the same tokens.
  GenerateRequest wide = greedy(30);
  wide.sampling.n_alternatives = 100;
  Session many(model, gpu, {}, 8);
  const auto em = generate(many, wide);
  ASSERT_EQ(em.size(), ed.size());
  for (size_t i = 0; i < em.size(); ++i) {
    EXPECT_EQ(em[i].id, ed[i].id) << "token " << i;
    EXPECT_EQ(em[i].alternatives.size(), 100u);
  }

  // Snapshots taken between device steps let a fork resume exactly: fork inside the generated
  // tokens (after a snapshot at 24), then both go on with the same request.
  auto fd = dev.fork(29), fh = host.fork(29);
  EXPECT_LT(rel_error(fd->last_logits(), fh->last_logits()), 1e-4);
  GenerateRequest more = greedy(12);
  more.prompt_ids.clear();
  expect_same_events(generate(*fd, more), generate(*fh, more));
  // And the original session goes on from its own end.
  expect_same_events(generate(dev, more), generate(host, more));

  // A stop string found in the greedy text ends both at the same place.
  GenerateRequest stop = greedy(30);
  stop.stop_strings = {ed[20].text.empty() ? ed[21].text : ed[20].text};
  if (!stop.stop_strings[0].empty()) {
    Session d2(model, gpu, {}, 8), h2(model, gpu, recording(), 8);
    GenerateResult a, b;
    expect_same_events(generate(d2, stop, &a), generate(h2, stop, &b));
    EXPECT_EQ(a.reason, StopReason::StopString);
    EXPECT_EQ(a.text, b.text);
  }
}

TEST(SessionOnGpu, SeededSamplingRepeatsAndCancellationStopsWithinOneToken) {
  SKIP_WITHOUT_GPU();
  auto model = fixture_model();
  std::shared_ptr<Backend> gpu = make_cuda_backend(model->checkpoint());
  const GenerateRequest r = seeded(25, 1.2f, 77);
  Session a(model, gpu), b(model, gpu);
  const auto ea = generate(a, r), eb = generate(b, r);
  expect_same_events(ea, eb);
  const int64_t vocab = model->config().vocab_size;
  for (const TokenEvent& e : ea) EXPECT_TRUE(e.id >= 0 && e.id < vocab);

  std::atomic<bool> stop{false};
  Session c(model, gpu);
  GenerateResult rc;
  const auto ec = generate(c, r, &rc, &stop, &stop, 5);
  EXPECT_EQ(rc.reason, StopReason::Cancelled);
  EXPECT_EQ(ec.size(), 5u);
  EXPECT_EQ(c.tokens().size(), r.prompt_ids.size() + 5);
  for (size_t i = 0; i < ec.size(); ++i) EXPECT_EQ(ec[i].id, ea[i].id);
  // The session goes on from the fifth token: its state is the history's.
  GenerateRequest more = greedy(4);
  more.prompt_ids.clear();
  Session d(model, gpu);
  d.append(std::vector<int32_t>(c.tokens().begin(), c.tokens().end()));
  expect_same_events(generate(c, more), generate(d, more));
}

namespace {

// Snapshots at every token, a fork from one and a cancel change nothing: with probes each of them
// undoes the step run ahead of the host; without, the same holds for the plain step.
void expect_run_ahead_changes_nothing(const std::shared_ptr<Model>& model, const std::shared_ptr<Backend>& gpu,
                                      const ProbePolicy& policy, const GenerateRequest& r) {
  // Snapshots every token (with probes each one undoes the step run ahead and runs it again,
  // from the same sampler counters and repetition ring) against none during the generation. The sampled
  // tokens must be the same; the values agree to rounding (a snapshot interval of 1 also runs
  // the prompt token by token rather than as one scan).
  Session every(model, gpu, policy, 1), none(model, gpu, policy, 1000);
  GenerateResult re, rn;
  const auto ee = generate(every, r, &re), en = generate(none, r, &rn);
  expect_same_events(ee, en);
  EXPECT_EQ(every.tokens(), none.tokens());
  EXPECT_LT(rel_error(every.last_logits(), none.last_logits()), 1e-5);
  if (policy.enabled) {
    EXPECT_EQ(every.probes().tokens().size(), every.tokens().size());
    expect_probes_match(every.probes(), none.probes(), 1e-5);
  }
  // The snapshot of every generated token resumes exactly: a fork from the middle goes on as the
  // session did.
  const int64_t mid = int64_t(r.prompt_ids.size()) + 10;
  auto f = every.fork(mid);
  ASSERT_EQ(f->tokens().size(), size_t(mid));
  Session ref(model, gpu, policy, 1000);
  ref.append(std::vector<int32_t>(every.tokens().begin(), every.tokens().begin() + mid));
  EXPECT_LT(rel_error(f->last_logits(), ref.last_logits()), 1e-4);
  GenerateRequest more = greedy(6);
  more.prompt_ids.clear();
  expect_same_events(generate(*f, more), generate(ref, more));

  // Cancelled after 5 tokens with a step already run ahead: the state is the history's, so the
  // session goes on as a fresh one fed the same tokens.
  std::atomic<bool> stop{false};
  Session c(model, gpu, policy, 1000);
  GenerateResult rc;
  const auto ec = generate(c, r, &rc, &stop, &stop, 5);
  EXPECT_EQ(rc.reason, StopReason::Cancelled);
  ASSERT_EQ(ec.size(), 5u);
  for (size_t i = 0; i < ec.size(); ++i) EXPECT_EQ(ec[i].id, en[i].id);
  if (policy.enabled) EXPECT_EQ(c.probes().tokens().size(), c.tokens().size());
  Session d(model, gpu, policy, 1000);
  d.append(std::vector<int32_t>(c.tokens().begin(), c.tokens().end()));
  EXPECT_LT(rel_error(c.last_logits(), d.last_logits()), 1e-4);
  expect_same_events(generate(c, more), generate(d, more));
}

}  // namespace

TEST(SessionOnGpu, SnapshotsAndStopsChangeNothingWithOrWithoutRunAhead) {
  SKIP_WITHOUT_GPU();
  auto model = fixture_model();
  std::shared_ptr<Backend> gpu = make_cuda_backend(model->checkpoint());
  GenerateRequest sampled = seeded(24, 1.3f, 5);
  sampled.sampling.repetition_window = 16;
  // Greedy with a penalty: the fused step samples inside the kernel, with the ring.
  GenerateRequest penalised = greedy(24);
  penalised.sampling.repetition_penalty = 1.3f;
  penalised.sampling.repetition_window = 16;
  for (const bool rec : {true, false})
    for (const GenerateRequest* r : {&sampled, &penalised}) {
      SCOPED_TRACE(std::string(rec ? "recording probes, " : "no probes, ") +
                   (r == &sampled ? "sampled" : "greedy with a penalty"));
      expect_run_ahead_changes_nothing(model, gpu, rec ? recording() : ProbePolicy{}, *r);
    }
}

}  // namespace mambascope::test
