// What the SSM selected, recorded per token and layer while the model runs: Δ, B, C, the gate,
// ‖h‖ per channel and, for chosen layers, h itself. A ProbePolicy bounds the memory: which
// layers, whether h is kept, and how many of the most recent tokens are retained.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace mambascope {

struct ProbePolicy {
  bool enabled = false;
  std::vector<int> layers;     // layers to record; empty = all
  bool capture_h = false;      // keep h (d_inner × d_state) ...
  std::vector<int> h_layers;   // ... for these layers; empty = every recorded layer
  int64_t max_tokens = 4096;   // ring: the oldest token is dropped beyond this

  bool records_layer(int layer) const;
  bool records_h(int layer) const;
};

// How many tokens of frames (every layer; h of n_h_layers layers) fit in budget_bytes, within
// [256, 65536]: the bound the app puts on the engine's ring (and the benchmark with it).
int64_t probe_ring_tokens(int64_t n_layer, int64_t d_inner, int64_t d_state, int64_t n_h_layers,
                          double budget_bytes);

struct LayerProbe {  // (a new field must also be reset in ProbeRecorder::drop)
  int layer = -1;
  std::vector<float> delta;   // Δ {d_inner} (after softplus)
  std::vector<float> B;       // {d_state} (LTI: mean over channels)
  std::vector<float> C;       // {d_state} (LTI: mean over channels)
  std::vector<float> gate;    // SiLU(z) {d_inner}
  std::vector<float> h_norm;  // ‖h_t‖ over d_state {d_inner}
  std::vector<float> h;       // h_t {d_inner, d_state}; empty unless captured
  float write_strength = 0;   // ‖Δ·B·x‖ over (d_inner, d_state): how hard this token writes
  float read_norm = 0;        // ‖C‖: how strongly the state is read
};

struct TokenProbe {
  int64_t position = 0;            // absolute position in the session
  std::vector<LayerProbe> layers;  // only recorded layers, ascending
  const LayerProbe* layer(int l) const;
};

class FrameReserve;

// Filled by a backend during forward(); read by the session, the CLI and the UI.
class ProbeRecorder {
 public:
  explicit ProbeRecorder(ProbePolicy policy = {});
  ~ProbeRecorder();
  // A copy holds the same tokens (a forked session's history); it makes its own reserve.
  ProbeRecorder(const ProbeRecorder& other);
  ProbeRecorder& operator=(const ProbeRecorder& other);
  ProbeRecorder(ProbeRecorder&&) noexcept;
  ProbeRecorder& operator=(ProbeRecorder&&) noexcept;
  const ProbePolicy& policy() const { return policy_; }
  bool enabled() const { return policy_.enabled; }

  // Backends call this once per (token, recorded layer). Tokens must arrive in position order.
  // The frame comes back empty (every vector cleared), ready to be filled.
  LayerProbe& slot(int64_t position, int layer);
  const std::deque<TokenProbe>& tokens() const { return tokens_; }
  const TokenProbe* at(int64_t position) const;  // null if not (or no longer) held
  void truncate(int64_t first_dropped_position);  // forget positions >= this (after a fork)
  void clear();

 private:
  void drop(TokenProbe&& t);  // keeps its frames' buffers for the next token
  void plan_reserve(const TokenProbe& last);  // before a new token: frames ahead of its shape

  ProbePolicy policy_;
  std::deque<TokenProbe> tokens_;
  // The frames of the last dropped token, cleared but with their buffers: a long generation
  // drops one token per new one, whose frames then reuse these instead of fresh memory (a
  // 2.8b token's frames are ~4 MB; fresh pages cost more than the copies that fill them).
  std::vector<LayerProbe> spare_;
  // Until the ring is full: the next tokens' frames, made on a thread of their own in the shape
  // of the last token (frame_reserve.hpp: first touching fresh memory cost ~10x the copies).
  std::unique_ptr<FrameReserve> reserve_;
};

}  // namespace mambascope
