// mambascope-bench: shared pieces of the benchmark program (JSON-lines output, options, timing).
#pragma once
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "mambascope/checkpoint.hpp"

namespace mambascope::bench {

struct Options {
  bool scan = false;              // the scan kernel at the anchor shapes
  std::vector<std::string> models;  // "130m", "1.4b", "2.8b": GPU decode and prefill
  bool cpu = false;               // the CPU backend on the 130m shape
  int reps = 20;                  // timed repetitions (the median is reported)
  int decode_tokens = 512;
  bool long_prefill = false;      // also a 131072-token prefill of the largest model given
  bool decode_only = false;       // --models: decode only (no prefill timings)
  std::string dir = "/tmp/mambascope-bench";  // where random checkpoints are written
  std::string scan_only;          // "batch,d_inner,L,states_per_thread": one shape (profiling)
  bool explorer = false;          // --models: the app's decode path, with and without probes
  bool ring_stream = false;       // the fused decode step's weight-streaming ceiling
  bool scan_probes = false;       // the scan also writes ‖h‖ per (token, channel), as the explorer records
};

inline void emit(const nlohmann::json& j) {
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

void bench_scan(const Options& o);      // bench_scan.cpp (CUDA builds)
void bench_models(const Options& o);    // bench_models.cpp
void bench_explorer(const Options& o);  // bench_explorer.cpp (CUDA builds)
void bench_ring_stream(const Options& o);  // bench_ring.cpp (CUDA builds)
// The random bf16 checkpoint of a named shape ("130m", "1.4b", "2.8b") under o.dir, written on
// first use (bench_models.cpp).
std::unique_ptr<Checkpoint> checkpoint_for(const Options& o, const std::string& name);

}  // namespace mambascope::bench
