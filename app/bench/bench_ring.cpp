// mambascope-bench --ring-stream: the fused decode step's weight-streaming ceiling. The bytes of
// the 2.8b shape's weights (5.54 GB) streamed through the ring as the step streams them (one
// block per SM, bulk copies into shared-memory slots, compute warps waiting for each tile) but
// with no arithmetic and no exchanges, at the grid sizes the step uses (96 for 130m, 112 for
// 1.4b and 2.8b) and at every SM; and by plain loads from every SM.
#include "bench.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include "cuda/ring_stream_probe.hpp"

namespace mambascope::bench {

void bench_ring_stream(const Options&) {
  const size_t bytes = size_t(5540) << 20;
  const cuda::RingStreamBuffer buf(bytes);
  const cuda::RingStreamResult plain = cuda::plain_stream(buf);
  emit({{"bench", "ring_stream"}, {"kind", "plain 16-byte loads, every SM"}, {"bytes", bytes},
        {"ms", plain.ms}, {"gbps", plain.gbps}});
  for (int blocks : {96, 112, 128, 132})
    for (int slot : {8192, 16384, 20480, 32768})
      for (bool touch : {false, true}) {
        const int n_slots = std::min(200 * 1024 / slot, 24);  // ~200 KB, as the step's ring
        const cuda::RingStreamResult r = cuda::ring_stream(buf, blocks, slot, n_slots, touch);
        emit({{"bench", "ring_stream"}, {"kind", "bulk copies into a ring"}, {"blocks", blocks},
              {"slot_bytes", slot}, {"slots", n_slots}, {"compute_warps_read", touch}, {"bytes", bytes},
              {"ms", r.ms}, {"gbps", r.gbps}});
      }
}

}  // namespace mambascope::bench

#else
#include <stdexcept>
namespace mambascope::bench {
void bench_ring_stream(const Options&) { throw std::runtime_error("this build has no CUDA backend"); }
}  // namespace mambascope::bench
#endif
