// Host side of the selective scan: validates parameters, picks the launch shape and dispatches
// to the per-type instantiations (scan_{bf16,f16,f32}.cu).
#include <cstdint>
#include <string>

#include "cuda/scan_kernel.cuh"

namespace mambascope::cuda {

extern template void launch_selective_scan<__nv_bfloat16, 1>(const ScanParams&, const ScanLaunch&, cudaStream_t);
extern template void launch_selective_scan<__half, 1>(const ScanParams&, const ScanLaunch&, cudaStream_t);
extern template void launch_selective_scan<float, 1>(const ScanParams&, const ScanLaunch&, cudaStream_t);
extern template void launch_selective_scan<__nv_bfloat16, 2>(const ScanParams&, const ScanLaunch&, cudaStream_t);
extern template void launch_selective_scan<__nv_bfloat16, 4>(const ScanParams&, const ScanLaunch&, cudaStream_t);
extern template void launch_selective_scan<__half, 2>(const ScanParams&, const ScanLaunch&, cudaStream_t);
extern template void launch_selective_scan<__half, 4>(const ScanParams&, const ScanLaunch&, cudaStream_t);
extern template void launch_selective_scan<float, 2>(const ScanParams&, const ScanLaunch&, cudaStream_t);
extern template void launch_selective_scan<float, 4>(const ScanParams&, const ScanLaunch&, cudaStream_t);

namespace {

int sm_count() {
  int dev = 0, n = 0;
  MS_CUDA_CHECK(cudaGetDevice(&dev));
  MS_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n;
}

int pow2_at_least(int x) {
  int p = 1;
  while (p < x) p <<= 1;
  return p;
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

ScanLaunch choose(const ScanParams& p, int* spt_out) {
  const int elem = int(dtype_size(p.dtype));
  const int vec = 16 / elem;
  const int sms = sm_count();
  // States per thread: more states per thread amortise the per-step loads and the C·h
  // reduction; fewer give more warps, which the latency-bound recurrence needs more. Measured on
  // H200 at every anchor shape (docs/benchmarks.md): 1 wins up to ~64 warps per SM (batch 1 at
  // any d_inner, batch 8 at 1536), 2 beyond (batch 8 at 4096), 4 never.
  int spt = p.states_per_thread;
  if (spt == 0) {
    const int64_t warps1 = int64_t(p.batch) * p.d * pow2_at_least(p.N) / 32;
    spt = warps1 <= int64_t(64) * sms ? 1 : 2;
  }
  if (spt != 1 && spt != 2 && spt != 4) throw Error("selective_scan: states_per_thread must be 1, 2 or 4");
  // A channel's states must fit in one warp's lanes.
  while (spt < 4 && pow2_at_least((p.N + spt - 1) / spt) > 32) spt *= 2;
  ScanLaunch k{};
  k.tpc = pow2_at_least((p.N + spt - 1) / spt);
  if (k.tpc > 32)
    throw Error("selective_scan: d_state " + std::to_string(p.N) + " is too large (at most " +
                std::to_string(32 * spt) + ")");
  k.np = k.tpc * spt;
  // Channels per block: the largest that still gives every SM a block, within 32..256 threads
  // (a larger block shares the per-tile B, C conversion among more channels).
  int cb = p.channels_per_block;
  if (cb == 0) {
    cb = 8;
    for (int cand : {64, 32, 16}) {
      if (cand * k.tpc > 256) continue;
      if (int64_t(p.batch) * ((p.d + cand - 1) / cand) >= sms) { cb = cand; break; }
    }
  }
  while (cb * k.tpc < 32) cb *= 2;
  if (cb * k.tpc > 256 || cb % 8 != 0 || (cb & (cb - 1)))
    throw Error("selective_scan: bad channels_per_block");
  k.cb = cb;
  k.cb_log2 = 0;
  while ((1 << k.cb_log2) < cb) ++k.cb_log2;
  k.tt = 64;
  while (k.tt > 8 && scan_smem(k, p.N, elem).total > 100 * 1024) k.tt /= 2;

  const bool need_dt = !p.dt_const;
  k.vec_main = p.d % vec == 0 && k.cb % vec == 0 && aligned16(p.u) && aligned16(p.y) &&
               p.ldu % vec == 0 && p.bsu % vec == 0 && p.ldy % vec == 0 && p.bsy % vec == 0 &&
               (!need_dt || (aligned16(p.dt) && p.lddt % vec == 0 && p.bsdt % vec == 0)) &&
               (!p.z || (aligned16(p.z) && p.ldz % vec == 0 && p.bsz % vec == 0));
  k.vec_bc = !p.B_const && p.N % vec == 0 && aligned16(p.B) && aligned16(p.C) &&
             p.ldb % vec == 0 && p.ldc % vec == 0 && p.bsb % vec == 0 && p.bsc % vec == 0;
  *spt_out = spt;
  return k;
}

}  // namespace

ScanConfig scan_config(const ScanParams& p) {
  int spt = 0;
  const ScanLaunch k = choose(p, &spt);
  return {spt, k.cb, k.tpc, k.tt, scan_smem(k, p.N, int(dtype_size(p.dtype))).total};
}

void selective_scan(const ScanParams& p, cudaStream_t stream) {
  if (p.batch < 1 || p.d < 1 || p.N < 1 || p.L < 0)
    throw Error("selective_scan: bad shape (batch " + std::to_string(p.batch) + ", d " +
                std::to_string(p.d) + ", N " + std::to_string(p.N) + ")");
  if (!p.u || !p.y || !p.A || (!p.dt && !p.dt_const) ||
      (!p.B_const && (!p.B || !p.C)) || (p.B_const && !p.C_const))
    throw Error("selective_scan: a required input is missing");
  if (p.n_overrides < 0 || p.n_overrides > ScanParams::kMaxOverrides)
    throw Error("selective_scan: too many Δ overrides in one call");
  if (p.L == 0) return;
  int spt = 0;
  const ScanLaunch k = choose(p, &spt);
  auto go = [&](auto tag) {
    using T = decltype(tag);
    if (spt == 1) launch_selective_scan<T, 1>(p, k, stream);
    else if (spt == 2) launch_selective_scan<T, 2>(p, k, stream);
    else launch_selective_scan<T, 4>(p, k, stream);
  };
  dispatch_dtype(p.dtype, go);
}

}  // namespace mambascope::cuda
