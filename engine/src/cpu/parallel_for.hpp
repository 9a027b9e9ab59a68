// A small persistent worker pool for the CPU backend's element-wise and scan loops (the
// projections use OpenBLAS's own threads). Persistent because decode calls it ~100 times per
// token and spawning threads each time would cost more than the work.
#pragma once
#include <cstdint>
#include <functional>

namespace mambascope::cpu {

// Sets the number of threads used by parallel_for and by OpenBLAS (0 = all cores).
void set_num_threads(int n);
int num_threads();
// Calls fn(begin, end) on disjoint ranges covering [0, n), in parallel; returns when all are done.
// Ranges are at least `grain` long so that tiny loops stay on the calling thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
// Channels per task so that each task does at least ~32K inner steps: a decode step (L = 1)
// then runs on the calling thread instead of paying a hand-off for microseconds of work.
inline int64_t channel_grain(int64_t L, int64_t steps_per_token) {
  const int64_t per_channel = L * steps_per_token;
  return per_channel >= 32768 ? 1 : 32768 / per_channel;
}

}  // namespace mambascope::cpu
