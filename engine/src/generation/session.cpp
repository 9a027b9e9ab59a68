// Session: prefill, token-by-token decode with sampling, stop conditions, cancellation, and
// forks from snapshots. The history, the per-token run record and the snapshots are kept in
// step so that any position can be restored exactly (see the comment atop session.hpp).
#include "mambascope/session.hpp"

#include <chrono>
#include <new>
#include <utility>

#include "generation/stop_strings.hpp"
#include "mambascope/error.hpp"

namespace mambascope {

namespace {

constexpr uint8_t kModeMask = 0x3;   // ScanMode fits in two bits
constexpr uint8_t kCallStart = 0x4;  // a forward call started at this token
static_assert(int(ScanMode::LtiFft) <= kModeMask);

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

size_t Session::Snapshot::bytes() const { return state->bytes() + logits->size() * sizeof(float); }

Session::Session(std::shared_ptr<const Model> model, std::shared_ptr<Backend> backend,
                 ProbePolicy probes, int snapshot_interval)
    : model_(std::move(model)),
      backend_(std::move(backend)),
      probes_(std::move(probes)),
      snapshot_interval_(snapshot_interval) {
  if (!model_ || !backend_) throw Error("a generation session needs a model and a backend");
  state_ = backend_->new_state();
  decoder_ = std::make_unique<Utf8StreamDecoder>(model_->tokenizer());
  take_snapshot();  // position 0: a fork can always start over from here
}

void Session::check_ids(std::span<const int32_t> ids) const {
  const int64_t vocab = model_->config().vocab_size;
  for (int32_t id : ids)
    if (id < 0 || id >= vocab)
      throw Error("token id " + std::to_string(id) + " is outside the model's vocabulary (0.." +
                  std::to_string(vocab - 1) + ")");
}

void Session::run(std::span<const int32_t> ids, ScanMode mode, bool record_probes,
                  std::vector<std::string>* texts) {
  ForwardOptions opts;
  opts.mode = mode;
  opts.probes = record_probes && probes_.enabled() ? &probes_ : nullptr;  // off: no probe work
  state_broken_ = true;  // until the forward returns: it may fail part way through
  backend_->forward(ids, *state_, opts, last_logits_);  // last_logits_ {1, vocab}
  commit(ids, mode, texts);
}

void Session::commit(std::span<const int32_t> ids, ScanMode mode, std::vector<std::string>* texts) {
  for (size_t i = 0; i < ids.size(); ++i) {
    tokens_.push_back(ids[i]);
    runs_.push_back(uint8_t(uint8_t(mode) | (i == 0 ? kCallStart : 0)));
    std::string text = decoder_->push(ids[i]);
    if (texts) texts->push_back(std::move(text));
  }
  state_broken_ = false;
  if (snapshot_due(0)) take_snapshot();
}

bool Session::snapshot_due(size_t more) const {
  return snapshot_interval_ > 0 && (tokens_.size() + more) % size_t(snapshot_interval_) == 0;
}

bool Session::prefill(std::span<const int32_t> ids, ScanMode mode, const TokenCallback& on_token,
                      const std::atomic<bool>* cancel) {
  std::vector<std::string> texts;
  size_t i = 0;
  while (i < ids.size()) {
    if (cancel && cancel->load(std::memory_order_relaxed)) return false;
    size_t n = ids.size() - i;
    // Calls end on snapshot positions, so a fork re-runs at most one interval. LtiFft freezes
    // to the mean over its call: splitting would change its numbers, so it runs whole.
    if (snapshot_interval_ > 0 && mode != ScanMode::LtiFft) {
      const size_t k = size_t(snapshot_interval_);
      n = std::min(n, k - tokens_.size() % k);
    }
    const int64_t first = int64_t(tokens_.size());
    texts.clear();
    run(ids.subspan(i, n), mode, true, &texts);
    if (on_token) {
      for (size_t j = 0; j < n; ++j) {
        TokenEvent ev;
        ev.position = first + int64_t(j);
        ev.id = ids[i + j];
        ev.text = std::move(texts[j]);
        ev.is_prompt = true;
        ev.probe = probes_.enabled() ? probes_.at(ev.position) : nullptr;
        on_token(ev);
      }
    }
    i += n;
  }
  return true;
}

GenerateResult Session::generate(const GenerateRequest& req, const TokenCallback& on_token,
                                 const std::atomic<bool>* cancel) {
  GenerateResult res;
  const auto t_start = Clock::now();
  auto t_decode = t_start;
  bool decoding = false;
  auto fail = [&](const std::string& message) {
    res.reason = StopReason::Error;
    res.error = message;
    try {
      recover();
    } catch (const std::exception& e) {
      res.error += std::string(" (and the session could not be restored: ") + e.what() + ")";
    }
  };
  try {
    if (state_broken_) recover();
    for (ScanMode m : {req.prefill_mode, req.decode_mode}) {
      std::string why;
      if (!backend_->supports(m, &why))
        throw Error("the " + backend_->name() + " backend cannot run mode " + mode_name(m) +
                    (why.empty() ? "" : ": " + why));
    }
    Sampler sampler(req.sampling);
    const Tokenizer& tok = model_->tokenizer();
    std::vector<int32_t> prompt = req.prompt_ids;
    if (prompt.empty() && !req.prompt.empty()) prompt = tok.encode(req.prompt);
    if (prompt.empty() && tokens_.empty()) {
      // Nothing to condition on: start from BOS, as unconditional sampling does.
      prompt.push_back(tok.bos_id() ? *tok.bos_id() : int32_t(model_->config().bos_token_id));
    }
    check_ids(prompt);
    res.prompt_tokens = int(prompt.size());
    const bool finished_prefill = prefill(prompt, req.prefill_mode, on_token, cancel);
    res.prefill_seconds = seconds_since(t_start);
    if (!finished_prefill) {
      res.reason = StopReason::Cancelled;
      return res;
    }

    const int32_t eos = tok.eos_id() ? *tok.eos_id() : int32_t(model_->config().eos_token_id);
    StopMatcher stops(req.stop_strings);
    std::vector<Alternative> alts;
    std::vector<std::string> texts;
    const bool want_alts = req.sampling.n_alternatives > 0;
    t_decode = Clock::now();
    decoding = true;
    res.reason = StopReason::MaxTokens;
    // A token the state has consumed, reported: the stop conditions decide whether it is the last.
    int n = 0;
    auto report = [&](int32_t id, std::string text, const std::vector<Alternative>& id_alts) {
      res.new_tokens = ++n;
      TokenEvent ev;
      ev.position = int64_t(tokens_.size()) - 1;
      ev.id = id;
      bool last = true;
      if (req.stop_at_eos && id == eos) {
        res.reason = StopReason::Eos;
        ev.text = stops.flush();
      } else {
        ev.text = stops.feed(text);
        if (stops.matched()) {
          res.reason = StopReason::StopString;
        } else if (n == req.max_new_tokens) {
          res.reason = StopReason::MaxTokens;
          ev.text += stops.flush();
        } else {
          last = false;
        }
      }
      if (want_alts) ev.alternatives = id_alts;
      ev.probe = probes_.enabled() ? probes_.at(ev.position) : nullptr;
      res.text += ev.text;
      if (on_token) on_token(ev);
      return last;
    };
    auto cancelled = [&] {
      if (!cancel || !cancel->load(std::memory_order_relaxed)) return false;
      res.reason = StopReason::Cancelled;
      return true;
    };
    // A backend that samples on the device runs the steps after the first (whose logits are
    // here already) there: the token, its alternatives and the probes come back, not the logits.
    bool device = req.decode_mode == ScanMode::Recurrent;
    while (n < req.max_new_tokens && !cancelled()) {
      const int32_t id = sampler.sample(last_logits_, tokens_, want_alts ? &alts : nullptr);
      texts.clear();
      if (device) {
        int32_t fed = id;
        std::vector<Alternative> fed_alts = alts;
        const std::vector<int32_t> history = tokens_;  // tokens_ grows during the call
        state_broken_ = true;
        const bool ran = backend_->decode_on_device(
            *state_, id, req.max_new_tokens - n, req.sampling, history,
            probes_.enabled() ? &probes_ : nullptr, [&](const DeviceStep& step) {
              if (snapshot_due(1)) step.logits(last_logits_);
              texts.clear();
              commit(std::span<const int32_t>(&fed, 1), req.decode_mode, &texts);
              if (report(fed, texts[0], fed_alts) || cancelled()) return false;
              fed = step.next;
              fed_alts.assign(step.alternatives.begin(), step.alternatives.end());
              state_broken_ = true;
              return true;
            },
            last_logits_);
        state_broken_ = false;
        if (ran) break;
        device = false;  // not offered for these parameters: sample on the host
      }
      // The sampled token is run at once, so the state always covers the whole history (the
      // session can go on after any stop) and the token's own probe is in its event.
      run(std::span<const int32_t>(&id, 1), req.decode_mode, true, &texts);
      if (report(id, texts[0], alts)) break;
    }
  } catch (const Error& e) {
    fail(e.what());
  } catch (const std::bad_alloc&) {
    fail(
        "out of memory: the prompt or the model does not fit; try a shorter prompt or a smaller "
        "model");
  } catch (const std::exception& e) {
    fail(e.what());
  }
  if (decoding) res.decode_seconds = seconds_since(t_decode);
  return res;
}

void Session::recover() {
  // A failed forward may have advanced the state part way (and recorded probes for tokens that
  // never joined the history): go back to the last whole token.
  probes_.truncate(int64_t(tokens_.size()));
  if (std::exchange(state_broken_, false)) restore(int64_t(tokens_.size()));
}

void Session::append(const std::vector<int32_t>& ids, const TokenCallback& on_token) {
  check_ids(ids);
  if (state_broken_) recover();
  // One token is a decode step; more are a prompt. Either way the run record keeps the mode.
  try {
    prefill(ids, ids.size() == 1 ? ScanMode::Recurrent : ScanMode::Scan, on_token, nullptr);
  } catch (...) {
    recover();
    throw;
  }
}

void Session::take_snapshot() {
  Snapshot s;
  s.state = state_->clone();
  s.decoder = std::make_shared<const Utf8StreamDecoder>(*decoder_);
  s.logits = std::make_shared<const std::vector<float>>(last_logits_);
  snapshots_[int64_t(tokens_.size())] = std::move(s);
  if (snapshot_bytes() > snapshot_budget_) thin_snapshots();
}

size_t Session::snapshot_bytes() const {
  size_t total = 0;
  for (const auto& [pos, s] : snapshots_) total += s.bytes();
  return total;
}

void Session::set_snapshot_budget(size_t bytes) {
  snapshot_budget_ = bytes;
  if (snapshot_bytes() > snapshot_budget_) thin_snapshots();
}

void Session::thin_snapshots() {
  // Keep position 0 and the newest; drop every other one in between, so older history gets
  // sparser (each thinning doubles the re-run a fork there may need) while the memory halves.
  while (snapshots_.size() > 2 && snapshot_bytes() > snapshot_budget_) {
    auto it = std::next(snapshots_.begin());
    const auto newest = std::prev(snapshots_.end());
    bool drop = true;
    while (it != newest) {
      it = drop ? snapshots_.erase(it) : std::next(it);
      drop = !drop;
    }
  }
}

void Session::restore(int64_t position) {
  auto it = std::prev(snapshots_.upper_bound(position));  // position 0 is always held
  const int64_t from = it->first;
  const Snapshot& snap = it->second;
  std::vector<int32_t> replay(tokens_.begin() + from, tokens_.begin() + position);
  std::vector<uint8_t> replay_runs(runs_.begin() + from, runs_.begin() + position);
  tokens_.resize(size_t(from));
  runs_.resize(size_t(from));
  state_ = snap.state->clone();
  decoder_ = std::make_unique<Utf8StreamDecoder>(*snap.decoder);
  last_logits_ = *snap.logits;
  snapshots_.erase(std::next(it), snapshots_.end());
  // Re-run in the original calls (a snapshot is always at a call boundary), the last one cut
  // at `position`: the same calls a fresh session given this prefix would make.
  for (size_t i = 0; i < replay.size();) {
    size_t j = i + 1;
    while (j < replay.size() && !(replay_runs[j] & kCallStart)) ++j;
    run(std::span<const int32_t>(replay).subspan(i, j - i), ScanMode(replay_runs[i] & kModeMask),
        false, nullptr);
    i = j;
  }
}

std::unique_ptr<Session> Session::fork(int64_t position) const {
  if (position < 0 || position > int64_t(tokens_.size()))
    throw Error("cannot fork at position " + std::to_string(position) + ": the session holds " +
                std::to_string(tokens_.size()) + " tokens");
  auto s = std::make_unique<Session>(model_, backend_, probes_.policy(), snapshot_interval_);
  s->snapshot_budget_ = snapshot_budget_;
  s->tokens_.assign(tokens_.begin(), tokens_.begin() + position);
  s->runs_.assign(runs_.begin(), runs_.begin() + position);
  // Snapshots are immutable and shared: the fork copies pointers, not states.
  s->snapshots_.clear();
  for (const auto& [pos, snap] : snapshots_)
    if (pos <= position) s->snapshots_.emplace(pos, snap);
  s->probes_ = probes_;
  s->probes_.truncate(position);
  s->restore(position);
  return s;
}

void Session::rewind(int64_t position) {
  if (position < 0 || position > int64_t(tokens_.size()))
    throw Error("cannot rewind to position " + std::to_string(position) + ": the session holds " +
                std::to_string(tokens_.size()) + " tokens");
  probes_.truncate(position);
  restore(position);
}

void Session::reset() {
  tokens_.clear();
  runs_.clear();
  last_logits_.clear();
  probes_.clear();
  snapshots_.clear();
  state_ = backend_->new_state();
  decoder_ = std::make_unique<Utf8StreamDecoder>(model_->tokenizer());
  take_snapshot();
}

}  // namespace mambascope
