// How fast the fused decode step's weight ring can stream at all: G blocks (one per SM), each a
// producer warp issuing cp.async.bulk tiles into a ring of shared-memory slots and 8 compute
// warps that wait for each tile (optionally reading it) and release it, each block streaming
// its own contiguous slice, as decode_fused.cu does, but with no arithmetic and no exchanges.
// The benchmark (mambascope-bench --ring-stream) sets the fused step's measured weight traffic
// beside this ceiling.
#pragma once
#include <cstddef>

namespace mambascope::cuda {

struct RingStreamResult {
  double ms = 0;    // median of 5 timed passes over the bytes
  double gbps = 0;  // bytes read / time
};
// The bytes streamed, filled once (not with zeros) and shared by every measurement.
class RingStreamBuffer {
 public:
  explicit RingStreamBuffer(size_t bytes);
  ~RingStreamBuffer();
  RingStreamBuffer(const RingStreamBuffer&) = delete;
  RingStreamBuffer& operator=(const RingStreamBuffer&) = delete;
  const char* data() const { return src_; }
  size_t bytes() const { return bytes_; }
  float* sink() const { return sink_; }

 private:
  char* src_ = nullptr;
  float* sink_ = nullptr;
  size_t bytes_ = 0;
};
// blocks <= the SM count; slot_bytes a multiple of 16; touch: compute warps read each tile once.
RingStreamResult ring_stream(const RingStreamBuffer& buf, int blocks, int slot_bytes, int n_slots, bool touch);
// The same bytes read by plain 16-byte loads from every SM (8 blocks of 256 threads per SM).
RingStreamResult plain_stream(const RingStreamBuffer& buf);

}  // namespace mambascope::cuda
