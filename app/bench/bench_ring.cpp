// mambascope-bench --ring-stream: the fused decode step's weight-streaming ceiling. The bytes of
// the 2.8b shape's weights (5.54 GB) streamed through the ring as the step streams them (one
// block per SM, bulk copies into shared-memory slots, compute warps waiting for each tile) but
// with no arithmetic and no exchanges, at the grid sizes the step uses (96 for 130m, 112 for
// 1.4b and 2.8b) and at every SM; and by plain loads from every SM. Also at 16-64 blocks: how
// much a step confined to one cluster or a few (every exchange in distributed shared memory)
// could stream at most (session 19: 16 SMs are far too few for 130m's 258 MB a token).
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
  // Fewer SMs: the 130m step's ring (6 slots of 24 KB) and a ring as deep as shared memory
  // allows (9 of 24 KB), compute warps reading each tile.
  for (int blocks : {16, 32, 48, 64})
    for (int n_slots : {6, 9}) {
      const int slot = 24576;
      const cuda::RingStreamResult r = cuda::ring_stream(buf, blocks, slot, n_slots, true);
      emit({{"bench", "ring_stream"}, {"kind", "bulk copies into a ring, fewer SMs"}, {"blocks", blocks},
            {"slot_bytes", slot}, {"slots", n_slots}, {"compute_warps_read", true}, {"bytes", bytes},
            {"ms", r.ms}, {"gbps", r.gbps}, {"gbps_per_sm", r.gbps / blocks}});
    }
}

}  // namespace mambascope::bench

#else
#include <stdexcept>
namespace mambascope::bench {
void bench_ring_stream(const Options&) { throw std::runtime_error("this build has no CUDA backend"); }
}  // namespace mambascope::bench
#endif
