// The CPU backend: the fp32 reference implementation of the whole model. Residual stream in
// fp32; RMSNorm → mixer → residual add per layer; then norm_f and lm_head.
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "cpu/cpu_mixer.hpp"
#include "cpu/cpu_ops.hpp"
#include "cpu/parallel_for.hpp"
#include "mambascope/backend.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/error.hpp"
#include "mambascope/weights.hpp"

namespace mambascope {
namespace {

class CpuState final : public BackendState {
 public:
  explicit CpuState(HostState s) : s_(std::move(s)) {}
  std::unique_ptr<BackendState> clone() const override { return std::make_unique<CpuState>(s_); }
  HostState to_host() const override { return s_; }
  void from_host(const HostState& s) override {
    if (s.conv.size() != s_.conv.size() || s.ssm.size() != s_.ssm.size())
      throw Error("state does not match this model's shape");
    s_ = s;
  }
  int64_t position() const override { return s_.position; }
  size_t bytes() const override { return (s_.conv.size() + s_.ssm.size()) * sizeof(float); }
  HostState& host() { return s_; }

 private:
  HostState s_;
};

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      if (p != std::string::npos) return line.substr(p + 2);
    }
  return "CPU";
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(const Checkpoint& ckpt, int threads)
      : cfg_(ckpt.config()), w_(load_weights_f32(ckpt)), threads_(threads) {
    cpu::set_num_threads(threads);
  }

  std::string name() const override { return "cpu"; }

  DeviceInfo device() const override {
    DeviceInfo d;
    d.kind = "cpu";
    d.name = cpu_model_name();
    d.threads = cpu::num_threads();
    return d;
  }

  bool supports(ScanMode mode, std::string* why_not) const override {
    (void)mode;
    (void)why_not;
    return true;
  }

  std::unique_ptr<BackendState> new_state() const override {
    HostState s;
    s.conv.assign(size_t(cfg_.n_layer * cfg_.d_inner * (cfg_.d_conv - 1)), 0.0f);
    s.ssm.assign(size_t(cfg_.n_layer * cfg_.d_inner * cfg_.d_state), 0.0f);
    return std::make_unique<CpuState>(std::move(s));
  }

  void forward(std::span<const int32_t> tokens, BackendState& state_base, const ForwardOptions& opts,
               std::vector<float>& logits) override {
    auto* state = dynamic_cast<CpuState*>(&state_base);
    if (!state) throw Error("the state was made by another backend");
    const int64_t L = int64_t(tokens.size()), D = cfg_.d_model, V = cfg_.vocab_size;
    if (L == 0) throw Error("forward() needs at least one token");
    for (int32_t id : tokens)
      if (id < 0 || id >= V)
        throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                    std::to_string(V - 1) + ")");
    check_memory(L, opts);

    HostState& hs = state->host();
    std::vector<float> resid(static_cast<size_t>(L * D)), xn(static_cast<size_t>(L * D)), out(static_cast<size_t>(L * D));
    // hidden_states = self.embeddings(input_ids)        -> resid {L, d_model}
    cpu::embedding(tokens.data(), w_.embedding, L, D, resid.data());
    if (opts.ssm_outputs) opts.ssm_outputs->assign(size_t(cfg_.n_layer * L * cfg_.d_inner), 0.0f);
    if (opts.residuals) opts.residuals->assign(size_t(cfg_.n_layer * L * D), 0.0f);
    if (opts.frozen_out) {
      FrozenSsm& f = *opts.frozen_out;
      f.n_layer = cfg_.n_layer;
      f.d_inner = cfg_.d_inner;
      f.d_state = cfg_.d_state;
      f.delta.assign(size_t(cfg_.n_layer * cfg_.d_inner), 0.0f);
      f.B.assign(size_t(cfg_.n_layer * cfg_.d_inner * cfg_.d_state), 0.0f);
      f.C.assign(f.B.size(), 0.0f);
    }
    const int64_t conv_stride = cfg_.d_inner * (cfg_.d_conv - 1);
    const int64_t ssm_stride = cfg_.d_inner * cfg_.d_state;
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
      const LayerWeightsF32& lw = w_.layers[size_t(l)];
      // hidden_states = self.norm(residual)
      cpu::rms_norm(resid.data(), lw.norm, float(cfg_.norm_eps), L, D, xn.data());
      cpu::MixerCall call{&cfg_, &lw, int(l), xn.data(), L, hs.position,
                          hs.conv.data() + l * conv_stride, hs.ssm.data() + l * ssm_stride, &opts,
                          out.data()};
      cpu::run_mixer(call, scratch_);
      // hidden_states = residual + hidden_states
      for (int64_t i = 0; i < L * D; ++i) resid[i] += out[i];
      if (opts.residuals) std::copy(resid.begin(), resid.end(), opts.residuals->begin() + l * L * D);
    }
    // logits = lm_head(norm_f(hidden_states)), for the last token or all of them
    const int64_t n_out = opts.all_logits ? L : 1;
    const float* last = resid.data() + (L - n_out) * D;
    cpu::rms_norm(last, w_.norm_f, float(cfg_.norm_eps), n_out, D, xn.data());
    logits.resize(size_t(n_out * V));
    cpu::linear(xn.data(), w_.lm_head, nullptr, n_out, D, V, logits.data());
    hs.position += L;
  }

 private:
  // A prompt longer than memory allows fails here with a message, not in the allocator.
  void check_memory(int64_t L, const ForwardOptions& opts) const {
    const double per_token = double(cfg_.d_model) * 3 + double(cfg_.d_inner) * 6 + cfg_.x_proj_rows() +
                             (opts.all_logits ? double(cfg_.vocab_size) : 0) +
                             (opts.ssm_outputs ? double(cfg_.n_layer * cfg_.d_inner) : 0) +
                             (opts.residuals ? double(cfg_.n_layer * cfg_.d_model) : 0);
    const double bytes = per_token * double(L) * sizeof(float);
    const double limit = 16.0 * (1ull << 30);
    if (bytes > limit)
      throw Error("a forward pass over " + std::to_string(L) + " tokens would need " +
                  std::to_string(int64_t(bytes / (1 << 20))) +
                  " MiB of activations on the CPU (limit 16 GiB); split the text or ask for fewer outputs");
  }

  ModelConfig cfg_;
  ModelWeightsF32 w_;
  int threads_;
  cpu::MixerScratch scratch_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const Checkpoint& ckpt, int threads) {
  return std::make_unique<CpuBackend>(ckpt, threads);
}

}  // namespace mambascope
