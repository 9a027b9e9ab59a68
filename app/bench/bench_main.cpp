// mambascope-bench: the scan kernel at the anchor shapes, GPU decode/prefill at real model
// shapes with random weights, and the CPU backend; one JSON object per line on stdout.
//   mambascope-bench --scan --models 130m,1.4b,2.8b --cpu [--reps 20] [--decode-tokens 512]
//   [--decode-only]
//   mambascope-bench --explorer --models 130m,2.8b [--decode-tokens N]: decoding as the app and
//   the CLI do it (one recurrent forward per token, the CPU sampler), with and without probes
//   mambascope-bench --ring-stream: the fused decode step's weight-streaming ceiling
#include <cstdio>
#include <cstring>
#include <exception>
#include <sstream>

#include "bench.hpp"

using namespace mambascope::bench;

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--scan") o.scan = true;
      else if (a == "--cpu") o.cpu = true;
      else if (a == "--long-prefill") o.long_prefill = true;
      else if (a == "--decode-only") o.decode_only = true;
      else if (a == "--explorer") o.explorer = true;
      else if (a == "--ring-stream") o.ring_stream = true;
      else if (a == "--reps") o.reps = std::stoi(next());
      else if (a == "--decode-tokens") o.decode_tokens = std::stoi(next());
      else if (a == "--dir") o.dir = next();
      else if (a == "--scan-only") o.scan_only = next(), o.scan = true;
      else if (a == "--scan-probes") o.scan_probes = true, o.scan = true;
      else if (a == "--models") {
        std::stringstream ss(next());
        for (std::string m; std::getline(ss, m, ',');) o.models.push_back(m);
      } else {
        std::fprintf(stderr,
                     "usage: mambascope-bench [--scan] [--models 130m,1.4b,2.8b] [--cpu] "
                     "[--long-prefill] [--decode-only] [--explorer] [--ring-stream] [--scan-only B,D,L,SPT[,TILE[,CHUNKS[,SPANS]]]] "
                     "[--scan-probes] [--reps N] [--decode-tokens N] [--dir PATH]\n");
        return 2;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mambascope-bench: %s\n", e.what());
      return 2;
    }
  }
  if (!o.scan && o.models.empty() && !o.cpu && !o.ring_stream) o.scan = true;
  try {
    if (o.ring_stream) bench_ring_stream(o);
    if (o.scan) bench_scan(o);
    if (o.explorer) bench_explorer(o);
    else if (!o.models.empty() || o.cpu) bench_models(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mambascope-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
