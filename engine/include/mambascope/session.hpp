// A generation session: owns a backend state and the token history; streams tokens through a
// callback, can be cancelled from another thread within one token, and forks from any earlier
// position by copying a state snapshot (never re-running the prefix when a snapshot is held;
// snapshots are kept every `snapshot_interval` tokens, so at most that many are re-run).
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
  std::string prompt;                  // appended to the session's history, then generated from
  std::vector<int32_t> prompt_ids;     // used instead of prompt when non-empty
  int max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop_strings;
  bool stop_at_eos = true;
  ScanMode prefill_mode = ScanMode::Scan;
  ScanMode decode_mode = ScanMode::Recurrent;
};

struct TokenEvent {
  int64_t position = 0;      // index of this token in the history
  int32_t id = 0;
  std::string text;          // whole UTF-8 characters released by this token (may be empty)
  std::vector<Alternative> alternatives;
  bool is_prompt = false;    // prompt tokens are reported too (with no alternatives)
  const TokenProbe* probe = nullptr;  // valid during the callback only
};

enum class StopReason { MaxTokens, Eos, StopString, Cancelled, Error };
const char* stop_reason_name(StopReason r);

struct GenerateResult {
  StopReason reason = StopReason::MaxTokens;
  std::string text;            // generated text
  int prompt_tokens = 0, new_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  std::string error;           // when reason == Error
};

using TokenCallback = std::function<void(const TokenEvent&)>;

class Session {
 public:
  Session(std::shared_ptr<const Model> model, std::shared_ptr<Backend> backend,
          ProbePolicy probes = {}, int snapshot_interval = 64);

  GenerateResult generate(const GenerateRequest& req, const TokenCallback& on_token,
                          const std::atomic<bool>* cancel = nullptr);
  // Feeds ids without sampling (e.g. a chosen alternative); reports them with is_prompt = true.
  void append(const std::vector<int32_t>& ids, const TokenCallback& on_token = {});

  // A new session whose history is this one's first `position` tokens (state copied).
  std::unique_ptr<Session> fork(int64_t position) const;
  void reset();

  const std::vector<int32_t>& tokens() const { return tokens_; }
  const ProbeRecorder& probes() const { return probes_; }
  ProbeRecorder& probes() { return probes_; }
  const Model& model() const { return *model_; }
  Backend& backend() const { return *backend_; }
  const BackendState& state() const { return *state_; }
  // Logits after the last token {vocab} (empty before the first token).
  const std::vector<float>& last_logits() const { return last_logits_; }

 private:
  void run(std::span<const int32_t> ids, ScanMode mode);  // forward + snapshots
  std::shared_ptr<const Model> model_;
  std::shared_ptr<Backend> backend_;
  std::unique_ptr<BackendState> state_;
  ProbeRecorder probes_;
  int snapshot_interval_;
  std::vector<int32_t> tokens_;
  std::vector<float> last_logits_;
  std::map<int64_t, std::shared_ptr<const BackendState>> snapshots_;  // position -> state
};

}  // namespace mambascope
