// A 60-line model of the selective scan's tile hand-over (scan_kernel.cuh, scan_prep.cuh): four
// "prep" warps fill a two-stage shared buffer and `bar.arrive` at one "stage full" barrier per
// consumer warp; each "scan" warp `bar.sync`s on its own barrier, reads the stage, writes a
// partial and `bar.arrive`s at the stage's "tile done" barrier, which the prep warps `bar.sync`
// on before they read the partials and refill the stage. It exists so that compute-sanitizer's
// racecheck can be asked about exactly this pattern, in a kernel small enough to read whole, and
// about the same hand-overs with `bar.sync` on both sides (scripts/gpu-check-on-device.sh
// racecheck runs both; docs/cuda.md has the verdict).
#include <cuda_runtime.h>

#include "barrier_handover.hpp"

namespace mambascope::test {

namespace {

constexpr int kWarps = 4;         // per role, as in the scan
constexpr int kPer = 8;           // values per consumer lane and tile
constexpr int kStage = kWarps * 32 * kPer;

__device__ __forceinline__ void bar_sync(int id, int n) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void bar_arrive(int id, int n) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(n) : "memory");
}
// Barrier ids as in the scan: 2 + stage "tile done" (all 256 threads), 4 + 4·stage + warp
// "stage full" (one consumer warp + the 128 prep threads).
__device__ __forceinline__ int full_id(int st, int w) { return 4 + kWarps * st + w; }

// The writer's side of a hand-over: `bar.arrive` (the scan's way: the writer goes on), or
// `bar.sync` (the writer waits for the reader too), for comparing racecheck's reports.
template <bool kWriterSyncs>
__device__ __forceinline__ void bar_release(int id, int n) {
  if constexpr (kWriterSyncs) bar_sync(id, n);
  else bar_arrive(id, n);
}

// in {tiles, kStage}; out {tiles, kWarps * 32}: per tile, each consumer lane's sum of its values
// times (tile + 1), collected by the prep threads.
template <bool kWriterSyncs>
__global__ void __launch_bounds__(256) handover_kernel(const float* in, float* out, int tiles) {
  __shared__ float stage[2][kStage];
  __shared__ float part[2][kWarps * 32];
  const int warp = int(threadIdx.x) >> 5;
  if (warp < kWarps) {  // consumer ("scan") warp
    const int lane = int(threadIdx.x);
    for (int kt = 0; kt < tiles; ++kt) {
      const int st = kt & 1;
      bar_sync(full_id(st, warp), 32 + 128);
      float s = 0.f;
      for (int j = 0; j < kPer; ++j) s += stage[st][lane * kPer + j];
      part[st][lane] = s * float(kt + 1);
      bar_release<kWriterSyncs>(2 + st, 256);
    }
    return;
  }
  const int p = int(threadIdx.x) - 32 * kWarps;  // producer ("prep") thread 0..127
  auto fill = [&](int kt, int st) {
    for (int i = p; i < kStage; i += 128) stage[st][i] = in[int64_t(kt) * kStage + i];
    for (int w = 0; w < kWarps; ++w) bar_release<kWriterSyncs>(full_id(st, w), 32 + 128);
  };
  // With bar.arrive the prep side fills a tile ahead, as the scan does; with bar.sync on both
  // sides that would deadlock (each side would wait for the other's next tile), so it fills
  // each tile just before its consumers read it.
  if (!kWriterSyncs) fill(0, 0);
  for (int kt = 0; kt < tiles; ++kt) {
    const int st = kt & 1;
    if (kWriterSyncs) fill(kt, st);
    else if (kt + 1 < tiles) fill(kt + 1, st ^ 1);  // its stage's reader (tile kt - 1) is done
    bar_sync(2 + st, 256);
    out[int64_t(kt) * kWarps * 32 + p] = part[st][p];
  }
}

}  // namespace

int handover_stage_values() { return kStage; }
int handover_lanes() { return kWarps * 32; }
int handover_values_per_lane() { return kPer; }

std::string run_handover(const std::vector<float>& in, int tiles, bool writer_syncs,
                         std::vector<float>& out) {
  float *din = nullptr, *dout = nullptr;
  const size_t nin = size_t(tiles) * kStage, nout = size_t(tiles) * kWarps * 32;
  if (in.size() != nin) return "input size";
  cudaError_t e = cudaMalloc(&din, nin * sizeof(float));
  if (e == cudaSuccess) e = cudaMalloc(&dout, nout * sizeof(float));
  if (e == cudaSuccess) e = cudaMemcpy(din, in.data(), nin * sizeof(float), cudaMemcpyHostToDevice);
  if (e == cudaSuccess) {
    if (writer_syncs) handover_kernel<true><<<1, 256>>>(din, dout, tiles);
    else handover_kernel<false><<<1, 256>>>(din, dout, tiles);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  out.assign(nout, 0.f);
  if (e == cudaSuccess) e = cudaMemcpy(out.data(), dout, nout * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(din);
  cudaFree(dout);
  return e == cudaSuccess ? "" : cudaGetErrorString(e);
}

}  // namespace mambascope::test
