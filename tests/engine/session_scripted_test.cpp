// Session logic with a scripted backend: its logits make one known token certain at every
// position, so stop strings, EOS, streaming UTF-8, cancellation and failures can be checked
// exactly. The tokenizer is the real one of the tied_fp32 fixture (GPT-NeoX byte-level BPE);
// text is spelled with its single-byte tokens.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include "mambascope/backend.hpp"
#include "mambascope/error.hpp"
#include "mambascope/model.hpp"
#include "mambascope/session.hpp"

using namespace mambascope;

namespace {

class ScriptedState : public BackendState {
 public:
  int64_t pos = 0;
  std::unique_ptr<BackendState> clone() const override {
    return std::make_unique<ScriptedState>(*this);
  }
  HostState to_host() const override {
    HostState h;
    h.position = pos;
    return h;
  }
  void from_host(const HostState& h) override { pos = h.position; }
  int64_t position() const override { return pos; }
  size_t bytes() const override { return sizeof pos; }
};

// next(p): the token made certain after p tokens have been consumed.
class ScriptedBackend : public Backend {
 public:
  ScriptedBackend(int64_t vocab, std::function<int32_t(int64_t)> next)
      : vocab_(vocab), next_(std::move(next)) {}
  std::string name() const override { return "scripted"; }
  DeviceInfo device() const override { return {"cpu", "scripted", 0, 0, 1}; }
  bool supports(ScanMode mode, std::string* why_not) const override {
    if (mode != ScanMode::Convolution) return true;
    if (why_not) *why_not = "the scripted backend has no convolution";
    return false;
  }
  std::unique_ptr<BackendState> new_state() const override {
    return std::make_unique<ScriptedState>();
  }
  void forward(std::span<const int32_t> tokens, BackendState& state, const ForwardOptions& opts,
               std::vector<float>& logits) override {
    auto& st = static_cast<ScriptedState&>(state);
    ++forwards;
    if (fail_at >= 0 && st.pos + int64_t(tokens.size()) > fail_at) {
      st.pos += 1000;  // a failure part way through leaves a broken state behind
      throw Error("scripted failure");
    }
    st.pos += int64_t(tokens.size());
    const int64_t rows = opts.all_logits ? int64_t(tokens.size()) : 1;
    logits.assign(size_t(rows * vocab_), 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t after = st.pos - rows + r + 1;
      logits[size_t(r * vocab_ + next_(after))] = 30.0f;
      if (nan_at == after) logits[0] = std::numeric_limits<float>::quiet_NaN();
    }
  }
  int64_t fail_at = -1;
  int64_t nan_at = -1;
  int forwards = 0;

 private:
  int64_t vocab_;
  std::function<int32_t(int64_t)> next_;
};

std::shared_ptr<Model> fixture_model() {
  // The fixture ships no tokenizer: Model::load falls back to the GPT-NeoX one in assets/.
  static std::shared_ptr<Model> m = [] {
    setenv("MAMBASCOPE_ASSETS_DIR", MAMBASCOPE_SOURCE_DIR "/assets", 0);
    return Model::load(MAMBASCOPE_FIXTURES_DIR "/hf/tied_fp32");
  }();
  return m;
}

// Single-byte tokens of the tokenizer that the 512-row fixture embedding can take.
const std::map<unsigned char, int32_t>& byte_ids() {
  static std::map<unsigned char, int32_t> ids = [] {
    std::map<unsigned char, int32_t> out;
    const auto& m = *fixture_model();
    for (int32_t id = 0; id < int32_t(m.config().vocab_size); ++id) {
      const std::string b = m.tokenizer().token_bytes(id);
      if (b.size() == 1 && !out.count(static_cast<unsigned char>(b[0])))
        out[static_cast<unsigned char>(b[0])] = id;
    }
    return out;
  }();
  return ids;
}

std::vector<int32_t> spell(const std::string& text) {
  std::vector<int32_t> ids;
  for (unsigned char c : text) {
    auto it = byte_ids().find(c);
    if (it == byte_ids().end())
      throw std::runtime_error("no single-byte token for a byte of the test text");
    ids.push_back(it->second);
  }
  return ids;
}

int32_t eos_id() {
  auto e = fixture_model()->tokenizer().eos_id();
  return e ? *e : int32_t(fixture_model()->config().eos_token_id);
}

// A session whose generated tokens, after a prompt of prompt_len tokens, are `script`
// (then the script's last token forever).
struct Scripted {
  std::shared_ptr<ScriptedBackend> backend;
  std::unique_ptr<Session> session;
  Scripted(size_t prompt_len, std::vector<int32_t> script, int snapshot_interval = 64) {
    backend =
        std::make_shared<ScriptedBackend>(fixture_model()->config().vocab_size, [=](int64_t after) {
          const int64_t i = std::max<int64_t>(0, after - int64_t(prompt_len));
          return script[size_t(std::min<int64_t>(i, int64_t(script.size()) - 1))];
        });
    session = std::make_unique<Session>(fixture_model(), backend, ProbePolicy{}, snapshot_interval);
  }
};

GenerateRequest greedy(std::vector<int32_t> prompt, int max_new,
                       std::vector<std::string> stops = {}) {
  GenerateRequest r;
  r.prompt_ids = std::move(prompt);
  r.max_new_tokens = max_new;
  r.sampling.temperature = 0;
  r.stop_strings = std::move(stops);
  return r;
}

struct Collected {
  std::string prompt_text, generated_text;
  std::vector<TokenEvent> events;
  TokenCallback callback() {
    return [this](const TokenEvent& ev) {
      (ev.is_prompt ? prompt_text : generated_text) += ev.text;
      events.push_back(ev);
      events.back().probe = nullptr;
    };
  }
};

}  // namespace

TEST(SessionScripted, StopStringEndsGenerationAndIsNotEmitted) {
  Scripted s(2, spell("Hello\nUser: more"));
  Collected c;
  auto r = s.session->generate(greedy(spell("Q:"), 50, {"\nUser:"}), c.callback());
  EXPECT_EQ(r.reason, StopReason::StopString) << r.error;
  EXPECT_EQ(r.text, "Hello");
  EXPECT_EQ(c.generated_text, "Hello");
  EXPECT_EQ(r.new_tokens, 11);  // "Hello" + the six tokens of "\nUser:"
  EXPECT_EQ(c.prompt_text, "Q:");
}

TEST(SessionScripted, TextThatOnlyStartsLikeAStopStringIsReleased) {
  Scripted s(1, spell("a\nUx\nUser:"));
  Collected c;
  auto r = s.session->generate(greedy(spell("Q"), 50, {"\nUser:"}), c.callback());
  EXPECT_EQ(r.reason, StopReason::StopString);
  EXPECT_EQ(r.text, "a\nUx");
  EXPECT_EQ(c.generated_text, "a\nUx");
}

TEST(SessionScripted, TheEarliestOfSeveralStopStringsWins) {
  Scripted s(1, spell("one two three"));
  auto r = s.session->generate(greedy(spell("Q"), 50, {"three", " two"}), {});
  EXPECT_EQ(r.reason, StopReason::StopString);
  EXPECT_EQ(r.text, "one");
}

TEST(SessionScripted, HeldBackTextIsReleasedWhenTheTokenLimitIsReached) {
  Scripted s(1, spell("ab\nUs"));
  Collected c;
  auto r = s.session->generate(greedy(spell("Q"), 5, {"\nUser:"}), c.callback());
  EXPECT_EQ(r.reason, StopReason::MaxTokens);
  EXPECT_EQ(r.text, "ab\nUs");
  EXPECT_EQ(c.generated_text, "ab\nUs");
}

TEST(SessionScripted, EosStopsAndItsTextIsNotEmitted) {
  auto script = spell("hi");
  script.push_back(eos_id());
  script.push_back(byte_ids().at('x'));
  Scripted s(1, script);
  auto r = s.session->generate(greedy(spell("Q"), 50), {});
  EXPECT_EQ(r.reason, StopReason::Eos);
  EXPECT_EQ(r.text, "hi");
  EXPECT_EQ(r.new_tokens, 3);
  EXPECT_EQ(s.session->tokens().back(), eos_id());
  EXPECT_EQ(s.session->state().position(), int64_t(s.session->tokens().size()));
}

TEST(SessionScripted, IgnoringEosGoesOnToTheTokenLimit) {
  auto script = spell("hi");
  script.push_back(eos_id());
  script.push_back(byte_ids().at('x'));
  Scripted s(1, script);
  auto req = greedy(spell("Q"), 6);
  req.stop_at_eos = false;
  auto r = s.session->generate(req, {});
  EXPECT_EQ(r.reason, StopReason::MaxTokens);
  EXPECT_EQ(r.new_tokens, 6);
}

TEST(SessionScripted, StreamedTextIsWholeUtf8AndConcatenatesToTheDecodedIds) {
  const std::string prompt = "n\xC3\xA9\xF0\x9F\x98\x80!";  // "né😀!" one byte per token
  const std::string reply = "\xC3\xBC\xE2\x82\xAC.";        // "ü€."
  Scripted s(prompt.size(), spell(reply));
  Collected c;
  auto r = s.session->generate(greedy(spell(prompt), int(reply.size())), c.callback());
  ASSERT_EQ(r.reason, StopReason::MaxTokens) << r.error;
  EXPECT_EQ(c.prompt_text, prompt);
  EXPECT_EQ(c.generated_text, reply);
  EXPECT_EQ(c.prompt_text + c.generated_text,
            fixture_model()->tokenizer().decode(s.session->tokens()));
  // The emoji is released by its fourth byte's token, not before.
  ASSERT_EQ(c.events.size(), prompt.size() + reply.size());
  EXPECT_EQ(c.events[3].text, "");
  EXPECT_EQ(c.events[5].text, "");
  EXPECT_EQ(c.events[6].text, "\xF0\x9F\x98\x80");
  for (const auto& ev : c.events) EXPECT_TRUE(is_valid_utf8(ev.text));
}

TEST(SessionScripted, EventsNumberPositionsAndReportAlternativesForGeneratedTokensOnly) {
  Scripted s(3, spell("xyz"));
  Collected c;
  auto req = greedy(spell("abc"), 3);
  req.sampling.n_alternatives = 4;
  s.session->generate(req, c.callback());
  ASSERT_EQ(c.events.size(), 6u);
  for (size_t i = 0; i < c.events.size(); ++i) {
    EXPECT_EQ(c.events[i].position, int64_t(i));
    EXPECT_EQ(c.events[i].is_prompt, i < 3);
    if (i < 3) {
      EXPECT_TRUE(c.events[i].alternatives.empty());
    } else {
      ASSERT_EQ(c.events[i].alternatives.size(), 4u);
      EXPECT_EQ(c.events[i].alternatives[0].id, c.events[i].id);
    }
  }
}

TEST(SessionScripted, CancelDuringATokenStopsBeforeTheNextOne) {
  Scripted s(1, spell("abcdefghijklmnop"));
  std::atomic<bool> cancel{false};
  std::mutex mu;
  std::condition_variable cv;
  bool asked = false, done = false;
  std::thread other([&] {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return asked; });
    cancel.store(true);  // from another thread, while the session waits inside token 3
    done = true;
    cv.notify_all();
  });
  int generated = 0;
  auto r = s.session->generate(
      greedy(spell("Q"), 100),
      [&](const TokenEvent& ev) {
        if (ev.is_prompt || ++generated != 3) return;
        std::unique_lock lock(mu);
        asked = true;
        cv.notify_all();
        cv.wait(lock, [&] { return done; });
      },
      &cancel);
  other.join();
  EXPECT_EQ(r.reason, StopReason::Cancelled);
  EXPECT_EQ(r.new_tokens, 3);
  EXPECT_EQ(r.text, "abc");
}

TEST(SessionScripted, CancelledBeforeStartingRunsNothing) {
  Scripted s(1, spell("abc"));
  std::atomic<bool> cancel{true};
  auto r = s.session->generate(greedy(spell("Q"), 10), {}, &cancel);
  EXPECT_EQ(r.reason, StopReason::Cancelled);
  EXPECT_TRUE(s.session->tokens().empty());
}

TEST(SessionScripted, ZeroMaxTokensOnlyPrefills) {
  Scripted s(2, spell("abc"));
  auto r = s.session->generate(greedy(spell("Qx"), 0), {});
  EXPECT_EQ(r.reason, StopReason::MaxTokens);
  EXPECT_EQ(r.new_tokens, 0);
  EXPECT_EQ(s.session->tokens().size(), 2u);
}

TEST(SessionScripted, AnUnsupportedModeIsAnErrorResult) {
  Scripted s(1, spell("abc"));
  auto req = greedy(spell("Q"), 3);
  req.prefill_mode = ScanMode::Convolution;
  auto r = s.session->generate(req, {});
  EXPECT_EQ(r.reason, StopReason::Error);
  EXPECT_NE(r.error.find("convolution"), std::string::npos) << r.error;
  EXPECT_TRUE(s.session->tokens().empty());
}

TEST(SessionScripted, ABackendFailureLeavesTheSessionAtItsLastWholeToken) {
  Scripted s(2, spell("abcdefgh"), 4);
  s.backend->fail_at = 6;
  auto r = s.session->generate(greedy(spell("Qx"), 10), {});
  EXPECT_EQ(r.reason, StopReason::Error);
  EXPECT_NE(r.error.find("scripted failure"), std::string::npos);
  // "Qx" + "abcd" ran; running the fifth token ('e') failed and left the state broken.
  EXPECT_EQ(s.session->tokens().size(), 6u);
  EXPECT_EQ(s.session->state().position(), 6);  // restored, not the broken +1000
  s.backend->fail_at = -1;
  auto ok = s.session->generate(greedy({}, 2), {});
  EXPECT_EQ(ok.reason, StopReason::MaxTokens) << ok.error;
  EXPECT_EQ(ok.text, "ef");
}

TEST(SessionScripted, NonFiniteLogitsAreAnErrorResult) {
  Scripted s(1, spell("abcdef"));
  s.backend->nan_at = 3;
  auto r = s.session->generate(greedy(spell("Q"), 10), {});
  EXPECT_EQ(r.reason, StopReason::Error);
  EXPECT_NE(r.error.find("NaN"), std::string::npos) << r.error;
  EXPECT_EQ(r.new_tokens, 2);
}

TEST(SessionScripted, ChatStyleRewindKeepsThePromptAndDropsTheReply) {
  Scripted s(2, spell("reply"), 4);
  auto r = s.session->generate(greedy(spell("Q:"), 5), {});
  ASSERT_EQ(r.new_tokens, 5);
  s.session->rewind(2);
  EXPECT_EQ(s.session->tokens(), spell("Q:"));
  EXPECT_EQ(s.session->state().position(), 2);
}

TEST(SessionScripted, ARequestRefusedBeforeRunningReplaysNothing) {
  Scripted s(2, spell("abc"), 64);
  s.session->generate(greedy(spell("Qx"), 2), {});
  const int before = s.backend->forwards;
  auto req = greedy({}, 2);
  req.decode_mode = ScanMode::Convolution;  // unsupported: refused up front
  EXPECT_EQ(s.session->generate(req, {}).reason, StopReason::Error);
  EXPECT_EQ(s.backend->forwards, before);
}

TEST(SessionScripted, AFailedAppendLeavesTheSessionAsItWas) {
  Scripted s(2, spell("abcdef"), 4);
  s.session->generate(greedy(spell("Qx"), 3), {});
  s.backend->fail_at = 6;
  EXPECT_THROW(s.session->append(spell("zz")), Error);
  EXPECT_EQ(s.session->tokens().size(), 5u);
  EXPECT_EQ(s.session->state().position(), 5);
  s.backend->fail_at = -1;
  auto r = s.session->generate(greedy({}, 1), {});
  EXPECT_EQ(r.text, "d");
}
