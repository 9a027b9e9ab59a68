// The fused selective-scan kernel, included once per storage type by scan_{bf16,f16,f32}.cu.
//
// Design (docs/benchmarks.md has the measurements behind it). The recurrence needs one exp per
// (token, channel, state): the SFU's 16 exps per clock per SM are the ceiling, so everything else
// is arranged to stay out of the scan's way.
// - A block has 4 scan warps (one per SM sub-partition) and 4 prep warps (8 in the
//   one-block-per-SM variant), specialised:
//   * prep warps (scan_prep.cuh) copy each tile of TT tokens of u, dt, B, C global -> shared
//     with 16-byte cp.async (three raw stages), turn it into fp32 operands (Δ = softplus(dt +
//     bias) and Δ·u per channel, B and C per state; two stages) a tile ahead, and finish the
//     outputs a tile behind (C·h + D·u, · SiLU(z) with z read from global, store);
//   * scan warps (scan_warps.cuh) hold the state in registers: a lane owns S states of one
//     channel (TPC = 16 / S lanes per channel) and does only the arithmetic: per state and step
//     one ex2 (A is folded with log2 e once), two FMULs and two FFMAs, plus its share of 16-byte
//     shared loads; per register block of U steps, the channel's lanes add up their C·h with a
//     reduce-scatter of shuffles and each stores one whole sum (small output stages, so that
//     128-token tiles, or two blocks per SM at 64, fit in shared memory); with two lanes per
//     channel each lane stores its own partial sums instead (V::kParts), into the tile's
//     consumed (Δ, Δu) row, and the prep warps' finish adds the two.
//   Named barriers ("prep stage full", "tile done", per stage) hand tiles between the roles.
// - Code size matters as much as instruction count: the per-tile path of both roles must stay
//   in the instruction cache, so stages are runtime values and the rare paths (last tile,
//   interventions, probes, no gate) are out of line.
// - Where the channel groups do not fill the SMs evenly (d_inner 5120), one block per SM takes an
//   equal span of the (group, token) work, a group cut between two spans passing its state on
//   through global memory; or L is cut into chunks run by one block each in ticket order
//   (scan_chunks.cuh).
// - Nothing of size L·d·N is stored. Steps past L in the last tile run with Δ = 0 (h unchanged)
//   so the scan loop has no bounds checks.
// - The general variant (per-step probes ‖h_t‖ and h_t, constant LTI B and C, d_state up to 64)
//   is the same kernel with those paths compiled in.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_types.cuh"
#include "cuda/scan.hpp"

namespace mambascope::cuda {

constexpr int kScanWarps = 4;  // one per SM sub-partition (prep warps: per variant)

// A compiled variant: S states per lane, TPC lanes per channel (NP = S·TPC states, padded),
// compiled for MinBlocks resident blocks per SM (the register budget: 128 per thread at 2);
// Spans: launched only for balanced spans (below).
template <int S_, int TPC_, bool General_, int MinBlocks_ = General_ ? 1 : 2, bool Spans_ = false>
struct ScanVariant {
  // C·h per (token, channel) as the scan lanes store it (scan_warps.cuh): 1 = whole sums (the
  // lanes' reduce-scatter), 2 = each of two lanes' partial sums, added by the prep warps'
  // finish. Partials pay only with two lanes per channel (8 states per lane: 8 × 4096 × 8192
  // 4% faster on the H200, session 7); with 4 or 8 lanes per channel (2 or 4 partials) the
  // finish's extra loads and adds cost more than the scan's shuffles save (the batch-1 anchors
  // 1-9% slower, 8 × 1536 × 2048 3-17%): there the prep warps, not the scan loop, set the pace.
  static constexpr int kParts = !General_ && TPC_ == 2 ? 2 : 1;
  static constexpr int S = S_, TPC = TPC_, NP = S_ * TPC_, CW = 32 / TPC_;
  static constexpr bool kGeneral = General_;
  // B and C in shared memory as one row per state ({NP, TT}) when a lane reads fewer than four
  // states per step, else one row per step ({TT, NP}): a lane's operands are 16-byte loads.
  static constexpr bool kStateRows = S_ < 4;
  // Steps per register block (U·S exps in flight) and the blocks per SM to fit registers for.
  static constexpr int U = S_ <= 4 ? 4 : 16 / S_;
  static constexpr int kMinBlocks = MinBlocks_;
  // Balanced spans (one block per SM) run in an instantiation of their own (kSpansOnly), with
  // code for nothing else: the copies of the pipeline that the piece loop and the plain launch
  // inline made a kernel of 16 K instructions, whose pieces stalled on instruction fetch (ncu,
  // session 8); alone, 5120 × 2048 runs 9% faster (H200, session 9). The plain fast
  // one-block-per-SM variant still compiles the loop in (kSpans), never taken: without it ptxas
  // schedules the scan loop differently (addresses in uniform registers), and the plain launch
  // at 4096 channels measured 2.6-10% slower. The piece loop costs registers, which the
  // two-blocks-per-SM variants would spill.
  static constexpr bool kSpans = !General_ && MinBlocks_ == 1;
  static constexpr bool kSpansOnly = Spans_;
  static_assert(!Spans_ || kSpans, "spans: the fast one-block-per-SM form");
  // Prep warps: two per sub-partition with one block per SM (registers allow 168 per thread),
  // where the prep bounds the scan; one in the others.
  static constexpr int kPrepWarps = kSpans ? 8 : 4;
  static constexpr int kPrepThreads = kPrepWarps * 32;
  static constexpr int kThreads = (kScanWarps + kPrepWarps) * 32;
};

constexpr int kScanMaxDevices = 16;  // host-side caches per device id

// The launch shape, chosen on the host (scan.cu) and read by the kernel.
struct ScanLaunch {
  int cb, cb_log2;        // channels per block (kScanWarps · CW)
  int tt;                 // tokens per tile, a multiple of 16
  bool vec_main, vec_bc, vec_z;  // 16-byte copies usable (alignment and divisibility checked)
  int dev = 0;                   // the device it was chosen for
  // L in chunks (scan_chunks.cuh): chunks > 1 runs one block per (chunk, batch, channel group)
  // in ticket order, each chunk starting from the state its predecessor published.
  int chunks = 1;
  int groups = 0;          // channel groups per batch entry: ceil(d / cb)
  int64_t chunk_len = 0;   // tokens per chunk, a multiple of tt (the last may be shorter)
  // Balanced spans (scan_chunks.cuh): span_len > 0 runs one block per span_len consecutive
  // tokens of the (batch entry, channel group, token) order, in ticket order; span_len >= L.
  int64_t span_len = 0;
  // The ticket counter and ready flags are zero between launches: the block that takes the
  // last ticket resets the counter, and a group's last waiter its flag (scan_chunks.cuh).
  unsigned* ctr = nullptr;    // {1}: tickets taken
  unsigned* ready = nullptr;  // {batch · groups}: scan threads done handing on a chunk's state
  float* carry = nullptr;     // {batch, d, N}: the carried state when p.h is null
};

// What one block works on: a batch entry, a channel group and a stretch of the sequence.
struct ScanItem {
  int b, c0, chunk;
  int64_t tb, len;  // first token and length of the stretch
  bool wait_prev;   // starts from the state that the group's previous stretch hands on
  bool pass_on;     // hands its end state on to the group's next stretch
};

// Shared-memory layout, computed identically on host and device: three raw stages (u, dt, B,
// C), one z stage (z is needed only by the finishing pass, a tile behind: it is copied while
// the prep warps work on the next tile), two prep stages, two output stages (none with
// partials, which go to the (Δ, Δu) rows). Offsets in bytes, row strides in floats.
struct ScanSmem {
  int raw_u, raw_dt, raw_B, raw_C, raw_stage;
  int du, bc_B, bc_C, prep_stage;
  int part_stage;
  int raw0, z0, prep0, part0, total;
  int rsd;  // du {cb, rsd}: (Δ, Δ·u) pairs per channel
  int rsb;  // B/C {NP, rsb} per state, or {tt + 4, NP} per step
  int rsp;  // C·h {cb, rsp}: whole sums (the scan warps add up a channel's lanes)
};
__host__ __device__ inline int align16(int x) { return (x + 15) & ~15; }
__host__ __device__ inline ScanSmem scan_smem(const ScanLaunch& k, int N, int elem, int np,
                                              bool state_rows, int parts) {
  ScanSmem s{};
  const int tt = k.tt, cb = k.cb;
  s.raw_u = 0;                                       // T {tt, cb}
  s.raw_dt = s.raw_u + align16(tt * cb * elem);      // T {tt, cb}
  s.raw_B = s.raw_dt + align16(tt * cb * elem);      // T {tt, N}
  s.raw_C = s.raw_B + align16(tt * N * elem);        // T {tt, N}
  s.raw_stage = s.raw_C + align16(tt * N * elem);
  // Rows padded to an odd number of 16-byte units (8 rows -> 8 distinct bank quads) and past
  // the tile by one register block, which the scan prefetches and ignores.
  s.rsd = 2 * tt + 8;
  if ((s.rsd / 4) % 2 == 0) s.rsd += 4;
  s.rsb = state_rows ? tt + 4 : np;
  const int bc_bytes = state_rows ? np * s.rsb * 4 : (tt + 4) * np * 4;
  s.du = 0;                                          // float {cb, rsd}
  s.bc_B = s.du + cb * s.rsd * 4;                    // float {NP, rsb} or {tt + 4, NP}
  s.bc_C = s.bc_B + bc_bytes;
  s.prep_stage = s.bc_C + bc_bytes;
  // rsp = 4 (mod 32): a scan warp's stores (U consecutive steps of each of its channels) and a
  // prep quarter warp's 16-byte reads (8 channels) hit distinct banks.
  s.rsp = 32 * ((tt + 31) / 32) + 4;
  s.part_stage = parts == 1 ? cb * s.rsp * 4 : 0;    // float {cb, rsp}
  s.raw0 = 0;
  s.z0 = 3 * s.raw_stage;                            // T {tt, cb}: one stage of z
  s.prep0 = s.z0 + align16(tt * cb * elem);
  s.part0 = s.prep0 + 2 * s.prep_stage;
  s.total = s.part0 + 2 * s.part_stage;
  return s;
}

__device__ __forceinline__ float ex2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
// Named barriers: 0 is __syncthreads (chunk tickets and span pieces only), 1 the prep warps
// among themselves, 2 + stage "tile done" (scan -> prep: partials written, prep stage read),
// 4 + 4·stage + warp "prep stage full" (prep -> scan), 12 the scan warps among themselves
// (a chunk's hand-over).
__device__ __forceinline__ void named_sync_id(int id, int n) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void named_arrive_id(int id, int n) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ float4 lds4(const float* p) { return *reinterpret_cast<const float4*>(p); }
enum : int { kBarPrep = 1, kBarDone = 2, kBarFull = 4, kBarScan = 12 };

// "Prep stage full": one barrier per stage and scan warp (4 + 4·stage + warp) that the prep
// warps arrive at, so that a scan warp waits for the prep warps but not for the other scan
// warps (each runs on its own sub-partition and drifts a little; H200: 1-3% at d_inner 4096
// and 5120). "Tile done" stays one barrier per stage: the prep warps need every scan warp.
template <class V>
__device__ __forceinline__ void wait_stage_full(int st, int warp) {
  named_sync_id(kBarFull + kScanWarps * st + warp, 32 + V::kPrepThreads);
}
template <class V>
__device__ __forceinline__ void signal_stage_full(int st) {
#pragma unroll
  for (int w = 0; w < kScanWarps; ++w)
    named_arrive_id(kBarFull + kScanWarps * st + w, 32 + V::kPrepThreads);
}

}  // namespace mambascope::cuda

#include "cuda/scan_chunks.cuh"
#include "cuda/scan_warps.cuh"
#include "cuda/scan_prep.cuh"

namespace mambascope::cuda {

template <typename T, class V>
__global__ void __launch_bounds__(V::kThreads, V::kMinBlocks)
    selective_scan_kernel(const __grid_constant__ ScanParams p, const ScanLaunch k) {
  extern __shared__ __align__(16) unsigned char smem[];
  const ScanSmem lay = scan_smem(k, p.N, int(sizeof(T)), V::NP, V::kStateRows, V::kParts);
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
  auto run = [&](const ScanItem& it) {
    const int64_t ntiles = (it.len + k.tt - 1) / k.tt;
    if (warp < kScanWarps)
      scan_warps<T, V>(p, k, lay, smem, warp, lane, it, ntiles);
    else
      prep_warps<T, V>(p, k, lay, smem, int(threadIdx.x) - kScanWarps * 32, it, ntiles);
  };
  if constexpr (V::kSpans) {
    if (V::kSpansOnly || k.span_len > 0) {
      // Balanced spans run their pieces last to first (scan_chunks.cuh). The cursor lives in
      // shared memory so that nothing stays in registers across the pieces.
      __shared__ int64_t span_cursor[2];  // {first token, end of what is left} of the span
      const unsigned ticket = take_ticket(k, unsigned(gridDim.x));
      if (threadIdx.x == 0) {
        const int64_t lo = int64_t(ticket) * k.span_len;
        const int64_t total = int64_t(p.batch) * k.groups * p.L;
        span_cursor[0] = lo;
        span_cursor[1] = lo + k.span_len < total ? lo + k.span_len : total;
      }
      for (;;) {
        __syncthreads();  // the cursor written; the last piece done by every warp
        const int64_t lo = span_cursor[0], e = span_cursor[1];
        if (e <= lo) return;
        const ScanItem it = span_piece(p, k, lo, e);
        __syncthreads();  // every thread has read the cursor
        if (threadIdx.x == 0) span_cursor[1] = e - it.len;
        run(it);
      }
    }
  }
  if constexpr (!V::kSpansOnly)
    run(k.chunks > 1 ? take_chunk_item(p, k)
                     : ScanItem{int(blockIdx.y), int(blockIdx.x) * k.cb, 0, 0, p.L, false, false});
}

// The per-variant entry points scan.cu dispatches to (instantiated in scan_{bf16,f16,f32}.cu).
struct ScanKernelOps {
  void (*launch)(const ScanParams&, const ScanLaunch&, cudaStream_t);
  int (*blocks_per_sm)(const ScanParams&, const ScanLaunch&);  // resident blocks per SM
  int (*smem_bytes)(const ScanParams&, const ScanLaunch&);
};

template <typename T, class V>
int scan_smem_bytes(const ScanParams& p, const ScanLaunch& k) {
  return scan_smem(k, p.N, int(sizeof(T)), V::NP, V::kStateRows, V::kParts).total;
}

// The kernel's dynamic shared-memory limit is a driver call: raised once per device to the
// largest size asked for (by launches and occupancy queries alike), never lowered.
template <typename T, class V>
void raise_smem_limit(int dev, int smem) {
  static std::atomic<int> raised[kScanMaxDevices] = {};
  if (dev < kScanMaxDevices && raised[dev].load(std::memory_order_relaxed) >= smem) return;
  MS_CUDA_CHECK(cudaFuncSetAttribute(selective_scan_kernel<T, V>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  if (dev >= kScanMaxDevices) return;
  int cur = raised[dev].load(std::memory_order_relaxed);
  while (cur < smem && !raised[dev].compare_exchange_weak(cur, smem)) {
  }
}

template <typename T, class V>
int scan_blocks_per_sm(const ScanParams& p, const ScanLaunch& k) {
  const int smem = scan_smem_bytes<T, V>(p, k);
  auto kernel = selective_scan_kernel<T, V>;
  // The opt-in limit covers the kernel's static shared memory too (the span cursor): a dynamic
  // size within 32 bytes of the limit does not fit (the driver would refuse the attribute).
  cudaFuncAttributes fa{};
  MS_CUDA_CHECK(cudaFuncGetAttributes(&fa, kernel));
  int optin = 0;
  MS_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, k.dev));
  if (smem + int(fa.sharedSizeBytes) > optin) return 0;
  raise_smem_limit<T, V>(k.dev, smem);
  int n = 0;
  MS_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, V::kThreads, smem));
  return n;
}

template <typename T, class V>
void launch_scan(const ScanParams& p, const ScanLaunch& k, cudaStream_t stream) {
  if (V::kSpansOnly != (k.span_len > 0))
    throw Error("selective_scan: internal error: spans are launched with the span variant only");
  const int smem = scan_smem_bytes<T, V>(p, k);
  auto kernel = selective_scan_kernel<T, V>;
  raise_smem_limit<T, V>(k.dev, smem);
  const int64_t spans =
      k.span_len > 0 ? (int64_t(p.batch) * k.groups * p.L + k.span_len - 1) / k.span_len : 0;
  const dim3 grid = spans > 0      ? dim3(unsigned(spans))
                    : k.chunks > 1 ? dim3(unsigned(int64_t(p.batch) * k.groups * k.chunks))
                                   : dim3((p.d + k.cb - 1) / k.cb, p.batch);
  kernel<<<grid, V::kThreads, smem, stream>>>(p, k);
  MS_CUDA_CHECK_LAUNCH();
}

template <typename T, class V>
ScanKernelOps scan_kernel_ops() {
  return {launch_scan<T, V>, scan_blocks_per_sm<T, V>, scan_smem_bytes<T, V>};
}

// The compiled variants: the fast path for d_state <= 16 at every states-per-thread, and the
// general one for probes / LTI (d_state <= 16) and for d_state <= 64.
using ScanS1 = ScanVariant<1, 16, false>;
using ScanS2 = ScanVariant<2, 8, false>;
using ScanS4 = ScanVariant<4, 4, false>;
// The 4-state variant with the registers of one block per SM (where 128-token tiles allow only
// one anyway): at two blocks' budget it sits at exactly 128 registers. Plain (one launch of
// whole groups, or chunks of L) and balanced spans.
using ScanS4Wide = ScanVariant<4, 4, false, 1>;
using ScanS4Spans = ScanVariant<4, 4, false, 1, true>;
using ScanS8 = ScanVariant<8, 2, false>;
using ScanS16 = ScanVariant<16, 1, false>;
using ScanGeneral16 = ScanVariant<4, 4, true>;
using ScanGeneral64 = ScanVariant<16, 4, true>;

// Every variant of one storage type, in the order scan.cu indexes them.
struct ScanVariantTable {
  ScanKernelOps s1, s2, s4, s4wide, s4spans, s8, s16, general16, general64;
};
template <typename T>
ScanVariantTable scan_variant_table();  // scan_{bf16,f16,f32}.cu

template <typename T>
ScanVariantTable make_scan_variant_table() {
  return {scan_kernel_ops<T, ScanS1>(),        scan_kernel_ops<T, ScanS2>(),
          scan_kernel_ops<T, ScanS4>(),        scan_kernel_ops<T, ScanS4Wide>(),
          scan_kernel_ops<T, ScanS4Spans>(),   scan_kernel_ops<T, ScanS8>(),
          scan_kernel_ops<T, ScanS16>(),       scan_kernel_ops<T, ScanGeneral16>(),
          scan_kernel_ops<T, ScanGeneral64>()};
}

}  // namespace mambascope::cuda
