// Decoding as the app and the CLI run it: a Session feeds one sampled token per recurrent
// forward call, brings the logits to the host and picks the next token with the CPU Sampler;
// the app also records probes (every layer, h of one layer). Measured here with the same calls
// on a random bf16 checkpoint, without and with that probe policy, so that the explorer's
// tokens/s sit beside the GPU-sampling decode rate of `--models`.
#include <chrono>
#include <stdexcept>
#include <vector>

#include "bench.hpp"
#include "mambascope/backend.hpp"
#include "mambascope/probes.hpp"
#include "mambascope/sampler.hpp"

namespace mambascope::bench {

void bench_explorer(const Options& o) {
#if MAMBASCOPE_HAVE_CUDA
  using Clock = std::chrono::steady_clock;
  const int n = std::min(o.decode_tokens, 256);
  for (const std::string& name : o.models) {
    auto ck = checkpoint_for(o, name);
    const ModelConfig& c = ck->config();
    auto be = make_cuda_backend(*ck);
    for (bool probes : {false, true}) {
      ProbePolicy pol;  // the app's (ui/core/engineworker.cpp)
      pol.enabled = probes;
      pol.capture_h = true;
      pol.h_layers = {0};
      ProbeRecorder rec(pol);
      SamplingParams sp;
      sp.temperature = 0;
      sp.n_alternatives = 5;
      Sampler sampler(sp);
      std::vector<Alternative> alts;
      auto st = be->new_state();
      std::vector<int32_t> history;
      for (int i = 0; i < 16; ++i) history.push_back(int32_t((i * 7919) % c.vocab_size));
      std::vector<float> logits;
      ForwardOptions prefill;
      be->forward(history, *st, prefill, logits);
      ForwardOptions step;
      step.mode = ScanMode::Recurrent;
      step.probes = probes ? &rec : nullptr;
      auto decode = [&](int tokens) {
        for (int i = 0; i < tokens; ++i) {
          const int32_t id = sampler.sample(logits, history, &alts);
          history.push_back(id);
          be->forward(std::span<const int32_t>(&id, 1), *st, step, logits);
        }
      };
      decode(8);  // warm-up: graph capture, staging buffers
      std::vector<double> rates;
      for (int r = 0; r < 3; ++r) {
        const auto t0 = Clock::now();
        decode(n);
        rates.push_back(n / std::chrono::duration<double>(Clock::now() - t0).count());
      }
      const double tps = median(rates);
      emit({{"bench", "explorer_decode"}, {"model", name}, {"backend", "cuda"},
            {"probes", probes ? "every layer, h of layer 0" : "off"}, {"tokens", n},
            {"tok_per_s", tps}, {"us_per_token", 1e6 / tps},
            {"path", "Session-style: recurrent forward per token, logits to host, CPU greedy sampler"}});
    }
  }
#else
  (void)o;
  throw std::runtime_error("--explorer needs a CUDA build");
#endif
}

}  // namespace mambascope::bench
