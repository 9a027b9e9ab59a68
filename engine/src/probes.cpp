// ProbeRecorder: a bounded, position-ordered store of per-token, per-layer probe frames.
#include "mambascope/probes.hpp"

#include <algorithm>

#include "frame_reserve.hpp"

namespace mambascope {

bool ProbePolicy::records_layer(int layer) const {
  return enabled && (layers.empty() || std::find(layers.begin(), layers.end(), layer) != layers.end());
}

bool ProbePolicy::records_h(int layer) const {
  if (!capture_h || !records_layer(layer)) return false;
  return h_layers.empty() || std::find(h_layers.begin(), h_layers.end(), layer) != h_layers.end();
}

int64_t probe_ring_tokens(int64_t n_layer, int64_t d_inner, int64_t d_state, int64_t n_h_layers,
                          double budget_bytes) {
  // Δ, the gate and ‖h‖ per channel, B and C per layer; h per kept layer (fp32).
  const double per_token = 4.0 * (double(n_layer) * (3.0 * double(d_inner) + 2.0 * double(d_state)) +
                                  double(n_h_layers) * double(d_inner) * double(d_state));
  return std::clamp<int64_t>(int64_t(budget_bytes / std::max(per_token, 1.0)), 256, 65536);
}

const LayerProbe* TokenProbe::layer(int l) const {
  for (const auto& p : layers)
    if (p.layer == l) return &p;
  return nullptr;
}

ProbeRecorder::ProbeRecorder(ProbePolicy policy) : policy_(std::move(policy)) {}
ProbeRecorder::~ProbeRecorder() = default;
ProbeRecorder::ProbeRecorder(const ProbeRecorder& other) : policy_(other.policy_), tokens_(other.tokens_) {}
ProbeRecorder& ProbeRecorder::operator=(const ProbeRecorder& other) {
  if (this != &other) {
    reserve_.reset();
    spare_.clear();
    policy_ = other.policy_;
    tokens_ = other.tokens_;
  }
  return *this;
}
ProbeRecorder::ProbeRecorder(ProbeRecorder&&) noexcept = default;
ProbeRecorder& ProbeRecorder::operator=(ProbeRecorder&&) noexcept = default;

void ProbeRecorder::plan_reserve(const TokenProbe& last) {
  // Tokens that will still need fresh frames: the new one and those until the ring is full.
  const int64_t need = policy_.max_tokens - int64_t(tokens_.size());
  if (policy_.max_tokens <= 0 || need <= 0 || last.layers.empty()) return;
  if (reserve_ && !reserve_->exhausted() && reserve_->shape().matches(last)) return;
  FrameShape shape = FrameShape::of(last);
  // Ahead by at most ~32 MiB of frames (130m with the app's policy: 60 tokens; 2.8b: 8).
  const int64_t ahead = std::clamp<int64_t>(int64_t((32u << 20) / std::max<size_t>(shape.bytes(), 1)), 2, 64);
  reserve_.reset();  // joins the old thread before a new one starts
  reserve_ = std::make_unique<FrameReserve>(std::move(shape), need, ahead);
}

LayerProbe& ProbeRecorder::slot(int64_t position, int layer) {
  static thread_local LayerProbe discarded;  // a token already dropped by the ring bound
  if (tokens_.empty() || position > tokens_.back().position) {
    // Positions index the ring contiguously: after a gap the held tokens cannot stay.
    if (!tokens_.empty() && position > tokens_.back().position + 1) clear();
    if (!tokens_.empty()) plan_reserve(tokens_.back());
    tokens_.push_back(TokenProbe{position, {}});
    while (policy_.max_tokens > 0 && int64_t(tokens_.size()) > policy_.max_tokens) {
      drop(std::move(tokens_.front()));
      tokens_.pop_front();
    }
    if (spare_.empty() && reserve_) reserve_->take(spare_);
  }
  if (position < tokens_.front().position) {
    discarded = LayerProbe{};
    return discarded;
  }
  TokenProbe& tok = tokens_[size_t(position - tokens_.front().position)];
  for (auto& p : tok.layers)
    if (p.layer == layer) return p;
  // A spare frame of the same layer has buffers of the right sizes (h only where it is kept).
  auto it = std::find_if(spare_.begin(), spare_.end(), [&](const LayerProbe& p) { return p.layer == layer; });
  if (it == spare_.end() && !spare_.empty()) it = spare_.end() - 1;
  if (it != spare_.end()) {
    tok.layers.push_back(std::move(*it));
    if (it != spare_.end() - 1) *it = std::move(spare_.back());
    spare_.pop_back();
  } else {
    tok.layers.push_back(LayerProbe{});
  }
  LayerProbe& p = tok.layers.back();
  p.layer = layer;
  return p;
}

void ProbeRecorder::drop(TokenProbe&& t) {
  spare_ = std::move(t.layers);
  for (LayerProbe& p : spare_) {
    for (std::vector<float>* v : {&p.delta, &p.B, &p.C, &p.gate, &p.h_norm, &p.h}) v->clear();
    p.write_strength = p.read_norm = 0;
  }
}

void ProbeRecorder::clear() {
  if (!tokens_.empty()) drop(std::move(tokens_.back()));
  tokens_.clear();
}

const TokenProbe* ProbeRecorder::at(int64_t position) const {
  if (tokens_.empty() || position < tokens_.front().position || position > tokens_.back().position)
    return nullptr;
  return &tokens_[size_t(position - tokens_.front().position)];
}

void ProbeRecorder::truncate(int64_t first_dropped_position) {
  while (!tokens_.empty() && tokens_.back().position >= first_dropped_position) {
    drop(std::move(tokens_.back()));
    tokens_.pop_back();
  }
}

}  // namespace mambascope
