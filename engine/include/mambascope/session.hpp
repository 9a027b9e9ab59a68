// A generation session: owns a backend state and the token history; streams tokens through a
// callback, can be cancelled from another thread within one token, and forks from any earlier
// position by copying a state snapshot (never re-running the prefix when a snapshot is held;
// snapshots are kept every `snapshot_interval` tokens, so at most that many are re-run).
//
// Replays are exact: every token remembers the mode and the forward call it was run in, and a
// fork re-runs the tokens after its snapshot in the same calls (prompts are prefilled in calls
// that end at multiples of snapshot_interval), so a fork continues bit for bit as the original
// did. The one exception is a prompt prefilled in LtiFft mode with the mean freeze: it runs as a
// single call (the mean is over that call), so a fork inside it re-runs with a shorter mean.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mambascope/backend.hpp"
#include "mambascope/model.hpp"
#include "mambascope/sampler.hpp"

namespace mambascope {

struct GenerateRequest {
  std::string prompt;               // appended to the session's history, then generated from
  std::vector<int32_t> prompt_ids;  // used instead of prompt when non-empty
  int max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop_strings;
  bool stop_at_eos = true;
  ScanMode prefill_mode = ScanMode::Scan;
  ScanMode decode_mode = ScanMode::Recurrent;
};

struct TokenEvent {
  int64_t position = 0;  // index of this token in the history
  int32_t id = 0;
  std::string text;  // whole UTF-8 characters released by this token (may be empty)
  std::vector<Alternative> alternatives;
  bool is_prompt = false;             // prompt tokens are reported too (with no alternatives)
  const TokenProbe* probe = nullptr;  // valid during the callback only
};

enum class StopReason { MaxTokens, Eos, StopString, Cancelled, Error };
const char* stop_reason_name(StopReason r);

struct GenerateResult {
  StopReason reason = StopReason::MaxTokens;
  std::string text;  // generated text
  int prompt_tokens = 0, new_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  std::string error;  // when reason == Error
};
// GenerateResult::text is exactly the concatenation of the generated tokens' TokenEvent::text:
// the stop string and anything after it are not in it, nor the EOS token's text. Text held back
// because it might have been the start of a stop string is released at the end, except when the
// run is cancelled.

using TokenCallback = std::function<void(const TokenEvent&)>;

class Session {
 public:
  Session(std::shared_ptr<const Model> model, std::shared_ptr<Backend> backend,
          ProbePolicy probes = {}, int snapshot_interval = 64);

  // Never throws for a bad request or a backend failure: the result says Error and why, and the
  // session stays usable at the last complete token. An empty history with an empty prompt
  // starts from the BOS token. Prompt tokens are reported to on_token as they are prefilled.
  GenerateResult generate(const GenerateRequest& req, const TokenCallback& on_token,
                          const std::atomic<bool>* cancel = nullptr);
  // Feeds ids without sampling (e.g. a chosen alternative); reports them with is_prompt = true.
  // Throws mambascope::Error (bad id, backend failure); the session then stays as it was.
  void append(const std::vector<int32_t>& ids, const TokenCallback& on_token = {});

  // A new session whose history is this one's first `position` tokens (state copied).
  // Throws mambascope::Error if position is outside [0, tokens().size()].
  std::unique_ptr<Session> fork(int64_t position) const;
  // Like fork, in place: forget every token from `position` on.
  void rewind(int64_t position);
  void reset();

  // Snapshots are thinned (every other one dropped, so the interval doubles) when they would
  // hold more than this many bytes. Default 1 GiB.
  void set_snapshot_budget(size_t bytes);
  size_t snapshot_bytes() const;
  size_t snapshot_count() const { return snapshots_.size(); }
  int64_t snapshot_interval() const { return snapshot_interval_; }

  const std::vector<int32_t>& tokens() const { return tokens_; }
  const ProbeRecorder& probes() const { return probes_; }
  ProbeRecorder& probes() { return probes_; }
  const Model& model() const { return *model_; }
  Backend& backend() const { return *backend_; }
  const BackendState& state() const { return *state_; }
  // Logits after the last token {vocab} (empty before the first token).
  const std::vector<float>& last_logits() const { return last_logits_; }

 private:
  // What a fork needs to resume at a position without re-running what came before it.
  struct Snapshot {
    std::shared_ptr<const BackendState> state;
    std::shared_ptr<const Utf8StreamDecoder> decoder;  // streaming text state at that position
    std::shared_ptr<const std::vector<float>> logits;  // {vocab}, empty at position 0
    size_t bytes() const;
  };
  // One forward call over ids, appended to the history: texts gets the text each token
  // releases. Takes a snapshot if the call ends on a multiple of the interval.
  void run(std::span<const int32_t> ids, ScanMode mode, bool record_probes,
           std::vector<std::string>* texts);
  // Appends ids, which the state has consumed, to the history (run's second half; also the
  // steps of Backend::decode_on_device). last_logits_ must be the logits after them.
  void commit(std::span<const int32_t> ids, ScanMode mode, std::vector<std::string>* texts);
  // Whether the history reaches a snapshot position after `more` further tokens.
  bool snapshot_due(size_t more) const;
  // Splits a prompt into calls ending at multiples of the interval, reporting each call's tokens.
  bool prefill(std::span<const int32_t> ids, ScanMode mode, const TokenCallback& on_token,
               const std::atomic<bool>* cancel);
  void take_snapshot();
  void thin_snapshots();
  // State, decoder and logits at position, from the nearest snapshot plus a replay.
  void restore(int64_t position);
  void recover();  // after a failed forward: back to the last whole token
  void check_ids(std::span<const int32_t> ids) const;

  std::shared_ptr<const Model> model_;
  std::shared_ptr<Backend> backend_;
  std::unique_ptr<BackendState> state_;
  ProbeRecorder probes_;
  int snapshot_interval_;
  size_t snapshot_budget_ = size_t(1) << 30;
  std::vector<int32_t> tokens_;
  // Per token: the mode it ran in (low bits) and whether a forward call started at it (kCallStart).
  std::vector<uint8_t> runs_;
  std::vector<float> last_logits_;
  bool state_broken_ = false;  // a forward failed part way: restore before going on
  std::unique_ptr<Utf8StreamDecoder> decoder_;
  std::map<int64_t, Snapshot> snapshots_;  // position -> what a fork resumes from
};

}  // namespace mambascope
