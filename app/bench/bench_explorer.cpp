// Decoding as the app and the CLI run it: a Session generates greedily from a prompt, without
// probes (the CLI's generate and chat) and with the app's probe policy (every layer, h of one
// layer); on the GPU the steps after the first sample on the device either way. The tokens/s are the Session's own decode timing, on a
// random bf16 checkpoint with the GPT-NeoX tokenizer from assets/, beside `--models`' rates.
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "bench.hpp"
#include "mambascope/backend.hpp"
#include "mambascope/model.hpp"
#include "mambascope/probes.hpp"
#include "mambascope/session.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include "cpu/parallel_for.hpp"
#include "cuda/cuda_backend.hpp"
#endif

namespace mambascope::bench {

using Clock = std::chrono::steady_clock;

void bench_explorer(const Options& o) {
#if MAMBASCOPE_HAVE_CUDA
  const int n = std::min(o.decode_tokens, 256);
  // The host's worker threads, which fill the probe frames (MAMBASCOPE_BENCH_THREADS=<n>: a
  // measurement of how that scales; default all cores, as in the app).
  if (const char* t = std::getenv("MAMBASCOPE_BENCH_THREADS")) cpu::set_num_threads(std::atoi(t));
  for (const std::string& name : o.models) {
    const auto dir = checkpoint_for(o, name)->dir();
    std::shared_ptr<const Model> model = Model::load(dir);  // tokenizer: assets/ (none beside it)
    std::shared_ptr<Backend> be = make_cuda_backend(model->checkpoint());
    for (bool probes : {false, true}) {
      ProbePolicy pol;  // the app's (ui/core/engineworker.cpp: a 256 MiB ring)
      pol.enabled = probes;
      pol.capture_h = true;
      pol.h_layers = {0};
      const ModelConfig& c = model->config();
      pol.max_tokens = probe_ring_tokens(c.n_layer, c.d_inner, c.d_state, 1, 256.0 * 1024 * 1024);
      Session session(model, be, pol);
      GenerateRequest r;
      for (int i = 0; i < 16; ++i) r.prompt_ids.push_back(int32_t((i * 7919) % 50000));
      r.max_new_tokens = 8;  // warm-up: graph capture, staging buffers
      r.sampling.temperature = 0;
      r.sampling.n_alternatives = 5;
      r.stop_at_eos = false;
      session.generate(r, {});
      r.prompt_ids.clear();
      r.max_new_tokens = n;
      // Three sessions' worth of n tokens, timed by the session; with probes, the host's share
      // of a recorded token too (waiting for its slots, turning them into frames, the Session's
      // own work). Measured twice: while the recorder's ring fills (every frame fresh memory, as
      // at the start of the app's session) and once it is full (frames reuse dropped ones).
      auto measure = [&](nlohmann::json& j, const char* suffix) {
        std::vector<double> rates, gaps;  // gaps: µs between consecutive tokens' events
        const cuda::RecordedDecodeStats s0 = cuda::recorded_decode_stats(*be);
        for (int rep = 0; rep < 3; ++rep) {
          Clock::time_point last{};
          const GenerateResult res = session.generate(r, [&](const TokenEvent&) {
            const auto now = Clock::now();
            if (last != Clock::time_point{}) gaps.push_back(1e6 * std::chrono::duration<double>(now - last).count());
            last = now;
          });
          if (res.reason == StopReason::Error) throw std::runtime_error(res.error);
          rates.push_back(res.new_tokens / res.decode_seconds);
        }
        const std::string sf = suffix;
        const double tps = median(rates);
        j["tok_per_s" + sf] = tps;
        j["us_per_token" + sf] = 1e6 / tps;
        // Where a session's token time goes beyond the step: the typical gap between two tokens'
        // events and the time in gaps of more than twice it (snapshots, the first token's host
        // sampling), per token.
        if (!gaps.empty()) {
          const double med = median(gaps);
          double excess = 0;
          for (double g : gaps)
            if (g > 2 * med) excess += g - med;
          j["token_gap_median_us" + sf] = med;
          j["token_gap_excess_us_per_token" + sf] = excess / double(gaps.size());
        }
        const cuda::RecordedDecodeStats s1 = cuda::recorded_decode_stats(*be);
        if (const int64_t k = s1.steps - s0.steps; k > 0) {
          j["host_wait_us" + sf] = 1e6 * (s1.wait_s - s0.wait_s) / double(k);
          j["host_record_us" + sf] = 1e6 * (s1.record_s - s0.record_s) / double(k);
          j["host_session_us" + sf] = 1e6 * (s1.caller_s - s0.caller_s) / double(k);
        }
      };
      nlohmann::json j = {{"bench", "explorer_decode"}, {"model", name}, {"backend", "cuda"},
                          {"probes", probes ? "every layer, h of layer 0" : "off"}, {"tokens", n},
                          {"probe_ring_tokens", pol.max_tokens},
                          {"path", probes ? "Session: recorded step (" + cuda::decode_path(*be) +
                                                ") + device sampling, one graph per token, one step ahead"
                                          : "Session: " + cuda::decode_path(*be) +
                                                " step + device sampling after the first token"}};
      measure(j, "");
      if (!probes) {
        // What the snapshots cost (one every 64 tokens): the same decode in a session that
        // keeps none, and one state clone (the snapshot's device part) on its own.
        Session bare(model, be, pol, 0);
        GenerateRequest w = r;
        w.prompt_ids.assign(16, 1);
        w.max_new_tokens = 8;
        bare.generate(w, {});
        std::vector<double> rates;
        for (int rep = 0; rep < 3; ++rep) {
          const GenerateResult res = bare.generate(r, {});
          if (res.reason == StopReason::Error) throw std::runtime_error(res.error);
          rates.push_back(res.new_tokens / res.decode_seconds);
        }
        j["tok_per_s_no_snapshots"] = median(rates);
        auto st = be->new_state();
        std::vector<std::unique_ptr<BackendState>> kept;
        const auto t0 = Clock::now();
        for (int i = 0; i < 16; ++i) kept.push_back(st->clone());
        j["state_clone_us"] = 1e6 * std::chrono::duration<double>(Clock::now() - t0).count() / 16;
      }
      if (probes) {
        const int64_t held = int64_t(session.probes().tokens().size());
        if (held < pol.max_tokens) {  // fill the ring
          GenerateRequest fill = r;
          fill.max_new_tokens = int(pol.max_tokens - held + 1);
          session.generate(fill, {});
        }
        measure(j, "_ring_full");
      }
      emit(j);
    }
  }
#else
  (void)o;
  throw std::runtime_error("--explorer needs a CUDA build");
#endif
}

}  // namespace mambascope::bench
