// Device primitives of the fused decode step (decode_fused.hpp): the weight ring (mbarriers and
// sm_90 bulk copies), the flag-in-data exchange words, the watchdog that turns a wait that can
// never finish into a reported trap instead of a hung GPU, and the compute warps' building
// blocks (reductions, the tile GEMV, the top-8 tournament).
#pragma once
#include <cuda_runtime.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/decode_fused.hpp"

namespace mambascope::cuda::fused {

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// The compute warps synchronise among themselves (named barrier 1); the producer warp never
// joins, so __syncthreads() is not used after the roles split.
__device__ __forceinline__ void consumer_sync() {
  asm volatile("bar.sync 1, %0;" ::"n"(32 * kFusedConsumerWarps) : "memory");
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void mbar_init(uint64_t* b, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(b)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_fence_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive_expect(uint64_t* b, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(b)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* b) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(b)) : "memory");
}
// kCluster: acquire at cluster scope (data stored by other blocks of the cluster, st.async).
template <bool kCluster = false>
__device__ __forceinline__ bool mbar_try_wait(uint64_t* b, uint32_t parity) {
  uint32_t ok;
  if constexpr (kCluster)
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(ok) : "r"(smem_u32(b)), "r"(parity) : "memory");
  else
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(ok) : "r"(smem_u32(b)), "r"(parity) : "memory");
  return ok != 0;
}
// bytes (a multiple of 16) from global src to shared dst, both 16-byte aligned; completion is
// counted on bar's transaction count.
__device__ __forceinline__ void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
          smem_u32(dst)),
      "l"(src), "r"(bytes), "r"(smem_u32(bar))
      : "memory");
}
// The same with an L2 eviction-priority policy (createpolicy) for the lines it reads.
__device__ __forceinline__ void bulk_load_hint(void* dst, const void* src, uint32_t bytes, uint64_t* bar,
                                               uint64_t policy) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;" ::"r"(
          smem_u32(dst)),
      "l"(src), "r"(bytes), "r"(smem_u32(bar)), "l"(policy)
      : "memory");
}
// Thread-block clusters: this block's rank, the cluster's index, and a 4-byte store into the
// shared memory of block `rank` of this cluster (the same offset as `local` there) whose
// completion counts 4 bytes on that block's mbarrier at the offset of `bar`.
__device__ __forceinline__ uint32_t cluster_rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
__device__ __forceinline__ uint32_t cluster_index() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%clusterid.x;" : "=r"(r));
  return r;
}
__device__ __forceinline__ void cluster_sync_all() {  // every thread of every block
  asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
__device__ __forceinline__ void st_async_remote(const void* local, float v, uint64_t* bar, uint32_t rank) {
  uint32_t dst, rbar;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(dst) : "r"(smem_u32(local)), "r"(rank));
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(rbar) : "r"(smem_u32(bar)), "r"(rank));
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];" ::"r"(dst),
               "r"(__float_as_uint(v)), "r"(rbar)
               : "memory");
}
// The same for 4 consecutive floats (local 16-byte aligned): one 16-byte store, 16 bytes counted.
__device__ __forceinline__ void st_async_remote4(const float* local, float4 v, uint64_t* bar, uint32_t rank) {
  uint32_t dst, rbar;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(dst) : "r"(smem_u32(local)), "r"(rank));
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(rbar) : "r"(smem_u32(bar)), "r"(rank));
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.b32 [%0], {%1, %2, %3, %4}, [%5];" ::"r"(dst),
               "r"(__float_as_uint(v.x)), "r"(__float_as_uint(v.y)), "r"(__float_as_uint(v.z)),
               "r"(__float_as_uint(v.w)), "r"(rbar)
               : "memory");
}
// Asks L2 to fetch [p, p + bytes) from DRAM (fire and forget; p and bytes multiples of 16), in
// pieces of 16 KB.
__device__ __forceinline__ void prefetch_l2(const void* p, size_t bytes) {
  constexpr size_t kPiece = 16384;
  const char* c = static_cast<const char*>(p);
  for (size_t o = 0; o < bytes; o += kPiece)
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(c + o),
                 "r"(uint32_t(bytes - o < kPiece ? bytes - o : kPiece))
                 : "memory");
}
#endif

__device__ __forceinline__ uint64_t ld_word(const uint64_t* p) {
  uint64_t v;
  asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void st_word(uint64_t* p, float v, uint32_t epoch) {
  const uint64_t w = (uint64_t(epoch) << 32) | __float_as_uint(v);
  asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(w) : "memory");
}
__device__ __forceinline__ float word_value(uint64_t w) { return __uint_as_float(uint32_t(w)); }
__device__ __forceinline__ bool word_ready(uint64_t w, uint32_t epoch) { return uint32_t(w >> 32) == epoch; }

__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// The GEMV input vector x {K} in shared memory. For 16-bit weights a lane's 16 bytes of a row
// hold 8 values as 4 pairs (even element in the low half of each word, odd in the high half); the
// GEMV multiplies the 4 low halves with 4 even x values and the 4 high halves with 4 odd ones, so
// 16-bit models keep x split by parity: even elements k at [k / 2], odd ones at [K/2 + k / 2]
// (`half` = K/2; 0 for fp32, whose 4 values per 16 bytes are stored naturally). A lane then reads
// two float4 at a 16-byte stride (conflict-free) and converts each weight with one shift or mask.
__device__ __forceinline__ int xs_index(int k, int half) {
  return half ? (k & 1) * half + (k >> 1) : k;
}
template <typename T> __host__ __device__ constexpr int xs_half(int K) { return sizeof(T) == 2 ? K / 2 : 0; }

// Records where a wait got stuck (FusedTrap) and ends the kernel.
__device__ __forceinline__ void watchdog_trap(FusedTrap* trap, int layer, int phase, uint32_t epoch, uint32_t seen) {
  if (trap) {
    volatile FusedTrap* t = trap;
    t->code = 1;
    t->block = int(blockIdx.x);
    t->layer = layer;
    t->phase = phase;
    t->epoch = epoch;
    t->seen = seen;
    __threadfence_system();
  }
  __trap();
}

// Counts the rounds of one wait; after ~10 s of waiting it records where and traps.
struct Watchdog {
  uint64_t start = 0;
  uint32_t rounds = 0;
  __device__ __forceinline__ void tick(FusedTrap* trap, int layer, int phase, uint32_t epoch,
                                       uint32_t seen) {
    if ((++rounds & 1023u) != 0) return;
    const uint64_t now = global_ns();
    if (start == 0) {
      start = now;
      return;
    }
    if (now - start < 10000000000ull) return;
    watchdog_trap(trap, layer, phase, epoch, seen);
  }
};

// dst[xs_index(i, half)] = value of src[i] for i in [0, n) (half 0: dst[i]), once every word
// carries `epoch`; the calling threads (tid of nthr) share the work. Up to 8 words per thread
// are in flight per round and a round re-reads only the words not ready yet. (Measured slower:
// 16 words per round, fewer rounds for the long vectors but registers spill, 7-14% on every
// shape; waiting on one word at a time with a sleep between rounds for vectors longer than one
// round, to spare L2 while the weight stream needs it, 3% on the 2.8b shape; a sleep between
// the rounds of short vectors, 5-7% on the 130m shape.)
__device__ __forceinline__ void poll_words(const uint64_t* src, int n, float* dst, uint32_t epoch,
                                           int tid, int nthr, FusedTrap* trap, int layer, int phase,
                                           int half = 0) {
  constexpr int B = 8;
  for (int base = 0; base < n; base += B * nthr) {
    uint32_t pending = 0;
#pragma unroll
    for (int j = 0; j < B; ++j)
      if (base + tid + j * nthr < n) pending |= 1u << j;
    Watchdog wd;
    while (pending) {
      uint64_t v[B];
#pragma unroll
      for (int j = 0; j < B; ++j)
        if (pending & (1u << j)) v[j] = ld_word(src + base + tid + j * nthr);
      uint32_t seen = 0;
#pragma unroll
      for (int j = 0; j < B; ++j)
        if (pending & (1u << j)) {
          if (word_ready(v[j], epoch)) {
            pending &= ~(1u << j);
            dst[xs_index(base + tid + j * nthr, half)] = word_value(v[j]);
          } else {
            seen = uint32_t(v[j] >> 32);
          }
        }
      if (pending) wd.tick(trap, layer, phase, epoch, seen);
    }
  }
}

// ---- the compute warps' building blocks -----------------------------------------------------

constexpr int W = kFusedConsumerWarps;
constexpr int CT = kFusedComputeThreads;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float half_sum(float v) {  // over the 16 lanes of a half-warp
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// 16 bytes of weights (8 bf16/fp16 or 4 fp32) times x, added to a lane's two partial sums:
// fp32 values 0-3 with xe (natural layout); 16-bit low halves with xe (even elements) and high
// halves with xo (odd elements, xs_index). bf16 → fp32 is a shift or a mask (exact).
__device__ __forceinline__ void fma16(float, uint4 w, float4 xe, float4, float& e, float& o) {
  e = fmaf(__uint_as_float(w.x), xe.x, e);
  o = fmaf(__uint_as_float(w.y), xe.y, o);
  e = fmaf(__uint_as_float(w.z), xe.z, e);
  o = fmaf(__uint_as_float(w.w), xe.w, o);
}
__device__ __forceinline__ void fma16(__nv_bfloat16, uint4 w, float4 xe, float4 xo, float& e, float& o) {
  e = fmaf(__uint_as_float(w.x << 16), xe.x, e);
  o = fmaf(__uint_as_float(w.x & 0xffff0000u), xo.x, o);
  e = fmaf(__uint_as_float(w.y << 16), xe.y, e);
  o = fmaf(__uint_as_float(w.y & 0xffff0000u), xo.y, o);
  e = fmaf(__uint_as_float(w.z << 16), xe.z, e);
  o = fmaf(__uint_as_float(w.z & 0xffff0000u), xo.z, o);
  e = fmaf(__uint_as_float(w.w << 16), xe.w, e);
  o = fmaf(__uint_as_float(w.w & 0xffff0000u), xo.w, o);
}
__device__ __forceinline__ void fma16(__half, uint4 w, float4 xe, float4 xo, float& e, float& o) {
  auto f = [](uint32_t bits) { return __half2float(__ushort_as_half(static_cast<unsigned short>(bits))); };
  e = fmaf(f(w.x), xe.x, e);
  o = fmaf(f(w.x >> 16), xo.x, o);
  e = fmaf(f(w.y), xe.y, e);
  o = fmaf(f(w.y >> 16), xo.y, o);
  e = fmaf(f(w.z), xe.z, e);
  o = fmaf(f(w.z >> 16), xo.z, o);
  e = fmaf(f(w.w), xe.w, e);
  o = fmaf(f(w.w >> 16), xo.w, o);
}

// acc[0 .. 16 / sizeof(T)) += the 16 bytes of weights w (in memory order) times y.
__device__ __forceinline__ void axpy16(float, uint4 w, float y, float* acc) {
  acc[0] = fmaf(__uint_as_float(w.x), y, acc[0]);
  acc[1] = fmaf(__uint_as_float(w.y), y, acc[1]);
  acc[2] = fmaf(__uint_as_float(w.z), y, acc[2]);
  acc[3] = fmaf(__uint_as_float(w.w), y, acc[3]);
}
__device__ __forceinline__ void axpy16(__nv_bfloat16, uint4 w, float y, float* acc) {
  const uint32_t u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    acc[2 * i] = fmaf(__uint_as_float(u[i] << 16), y, acc[2 * i]);
    acc[2 * i + 1] = fmaf(__uint_as_float(u[i] & 0xffff0000u), y, acc[2 * i + 1]);
  }
}
__device__ __forceinline__ void axpy16(__half, uint4 w, float y, float* acc) {
  const uint32_t u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    acc[2 * i] = fmaf(__half2float(__ushort_as_half(static_cast<unsigned short>(u[i]))), y, acc[2 * i]);
    acc[2 * i + 1] = fmaf(__half2float(__ushort_as_half(static_cast<unsigned short>(u[i] >> 16))), y, acc[2 * i + 1]);
  }
}

// Sum over the compute threads (fixed order: the same bits on every run).
__device__ __forceinline__ float block_sum(float v, float* red, int tid) {
  v = warp_sum(v);
  consumer_sync();
  if ((tid & 31) == 0) red[tid >> 5] = v;
  consumer_sync();
  float s = 0.f;
#pragma unroll
  for (int w = 0; w < W; ++w) s += red[w];
  return s;
}

// The rows gemv_rows takes per round of its warp groups (tiles of rpt rows side by side): a GEMV
// split in two calls at a multiple of this runs the same rounds as one call (gemv_rows' split of
// the warps, below).
__device__ __forceinline__ int gemv_round_rows(int rpt) {
  int lw = 0;
  while ((1 << lw) < W && (2 << lw) < rpt) ++lw;
  return rpt * (W >> lw);
}

// (value, id) better: higher value, then lower id.
__device__ __forceinline__ bool better(float va, int ia, float vb, int ib) {
  return va > vb || (va == vb && ia < ib);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900


// The compute warps' view of the weight ring. Tile i sits in slot i % n with parity (i / n) & 1;
// the quotient comes from a multiply by magic = ceil(2^32 / n) (exact for i < 2^28), since a
// division by the run-time n cost ~30 instructions per tile.
struct Ring {
  const char* base;
  uint64_t *full, *empty;
  int slot, n;
  uint32_t magic;
  unsigned long long* ring_cycles;  // block 0 thread 0 when profiling, else null
  __host__ __device__ static uint32_t magic_for(int n) { return 0xffffffffu / uint32_t(n) + 1u; }
  __device__ uint32_t lap(uint32_t i) const { return __umulhi(i, magic); }
  __device__ const char* wait(uint32_t i) const {
    const uint32_t q = lap(i), s = i - q * uint32_t(n), parity = q & 1u;
    const long long t0 = ring_cycles ? clock64() : 0;
    while (!mbar_try_wait(&full[s], parity)) {
    }
    if (ring_cycles) *ring_cycles += clock64() - t0;
    return base + size_t(s) * slot;
  }
  // Every warp waits for every tile in ring order and releases it (a slot is free again after
  // W arrivals). Both halves matter: bulk copies complete out of order, so a warp that skipped
  // the wait for tile i - n could take the still-pending phase of tile i - n for tile i's (the
  // parity wait cannot tell them apart); and a warp that skipped the arrival would let the
  // producer refill a slot before that warp's wait for it.
  __device__ void release(uint32_t i, int lane) const {
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[i - lap(i) * uint32_t(n)]);
  }
  // A tile this warp does not read.
  __device__ void skip(uint32_t i, int lane) const {
    wait(i);
    release(i, lane);
  }
};

// One lane's share of two rows (nv 16-byte chunks each, w0 and w1) dotted with x {K} (xs_index
// layout, `half` = xs_half): chunks lane, lane + 32, ...; four at a time while all four exist
// (warp-uniform when nv is a multiple of 32, as in every real model), then one at a time. Each
// row keeps two partial sums (even / odd products) so that the FMA chains are half as long.
constexpr int kGemvUnroll = 4;
template <typename T>
__device__ __forceinline__ void dot_rows(const uint4* w0, const uint4* w1, int nv, const float* xs, int half,
                                         int lane, float& r0, float& r1) {
  float e0 = 0.f, o0 = 0.f, e1 = 0.f, o1 = 0.f;
  auto step = [&](uint4 a, uint4 b, int c) {
    const float4 xe = *reinterpret_cast<const float4*>(xs + 4 * c);
    float4 xo = xe;
    if constexpr (sizeof(T) == 2) xo = *reinterpret_cast<const float4*>(xs + half + 4 * c);
    fma16(T{}, a, xe, xo, e0, o0);
    fma16(T{}, b, xe, xo, e1, o1);
  };
  int c = lane;
  for (; c + 32 * (kGemvUnroll - 1) < nv; c += 32 * kGemvUnroll) {
    uint4 a[kGemvUnroll], b[kGemvUnroll];
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u) a[u] = w0[c + 32 * u], b[u] = w1[c + 32 * u];
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u) step(a[u], b[u], c + 32 * u);
  }
  for (; c < nv; c += 32) step(w0[c], w1[c], c);
  r0 = e0 + o0;
  r1 = e1 + o1;
}

// Both rows' sums over the warp in 5 shuffles (not 10): lanes 0-15 carry row 0 and lanes 16-31
// row 1 after the first exchange. Fixed order: the same bits on every run. Returns row 0's sum
// on lane 0 and row 1's on lane 16.
__device__ __forceinline__ float warp_sum2(float r0, float r1, int lane) {
  const bool up = lane & 16;
  float v = up ? r1 : r0;
  v += __shfl_xor_sync(0xffffffffu, up ? r0 : r1, 16);
  return half_sum(v);
}

// dot_rows for two pairs of rows at once (one loop: four independent FMA chains per chunk of x).
template <typename T>
__device__ __forceinline__ void dot_rows4(const uint4* a0, const uint4* a1, const uint4* b0, const uint4* b1, int nv,
                                          const float* xs, int half, int lane, float (&r)[4]) {
  float e[4] = {0.f, 0.f, 0.f, 0.f}, o[4] = {0.f, 0.f, 0.f, 0.f};
  for (int c = lane; c < nv; c += 32) {
    const uint4 w[4] = {a0[c], a1[c], b0[c], b1[c]};
    const float4 xe = *reinterpret_cast<const float4*>(xs + 4 * c);
    float4 xo = xe;
    if constexpr (sizeof(T) == 2) xo = *reinterpret_cast<const float4*>(xs + half + 4 * c);
#pragma unroll
    for (int i = 0; i < 4; ++i) fma16(T{}, w[i], xe, xo, e[i], o[i]);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) r[i] = e[i] + o[i];
}

// Four rows' sums over the warp in 7 shuffles (two warp_sum2: 10): a reduce-scatter leaves row
// i's sum on lane 8i, then rows 1 and 3 move to lanes 0 and 16. Fixed order: the same bits on
// every run. Returns (row 0, row 1) on lane 0 and (row 2, row 3) on lane 16.
__device__ __forceinline__ float2 warp_sum4(const float (&r)[4], int lane) {
  const bool up = lane & 16, mid = lane & 8;
  float p = up ? r[2] : r[0], q = up ? r[3] : r[1];
  p += __shfl_xor_sync(0xffffffffu, up ? r[0] : r[2], 16);
  q += __shfl_xor_sync(0xffffffffu, up ? r[1] : r[3], 16);
  float v = mid ? q : p;
  v += __shfl_xor_sync(0xffffffffu, mid ? p : q, 8);
#pragma unroll
  for (int o = 4; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return make_float2(v, __shfl_down_sync(0xffffffffu, v, 8));
}

// Rows [0, rows) of a matrix that the producer streams through the ring in tiles of rpt rows
// (K values each, contiguous), dotted with xs {K} (xs_index layout). Every warp owns whole rows,
// two at a time (x read once for both), so no barrier is needed: a tile's rows go to wpt warps
// (rows r0 and r0 + wpt; wpt the power of two >= rpt / 2), and the W / wpt groups of warps take
// consecutive tiles (rpt 16: all warps on each tile, rows w and w + 8; rpt 4: warps 2g, 2g + 1
// on tile g of each four; rpt 2: one tile per warp); a warp skips the group's other tiles
// (Ring). A warp with one row in a tile computes it twice (no branches in the inner loop).
// done(r, v) runs on lane 0 for a warp's first row of a tile and on lane 16 for its second, both
// at once (callers that keep state per row owner, the lm_head's top 8, have two owners per warp);
// each lane sees ascending r. Advances t past the tiles.
static_assert((W & (W - 1)) == 0 && 2 * W >= kFusedTileRows, "one pair of rows per warp and tile");
// kClosedForm: log2(wpt) by a count of leading zeros instead of the loop (the same value); only
// the by-rows kernels take it (since session 18 for their lm_head alone: their in_proj and
// out_proj go through gemv_ksplit): the by-columns kernels measured 0.4-1.4% slower with it
// (ptxas schedules their whole step differently), the by-rows ones ~1% faster.
// kPairTiles: where every warp works on every tile (wpt = W), two tiles at a time: four rows per
// warp in one loop and one reduction (the lm_head of the by-rows kernels, whose per-tile latency,
// not the weight stream, set its pace: 130m's lm_head took 28 µs with its products, 16 without).
// Lane 0 then owns the first tile's two rows and lane 16 the second's, each in ascending order.
template <typename T, bool kClosedForm = false, bool kPairTiles = false, typename F>
__device__ __forceinline__ void gemv_rows(const Ring& ring, uint32_t& t, int rows, int rpt, int K,
                                          const float* xs, int tid, F&& done) {
  constexpr int VEC = 16 / sizeof(T);
  const int nv = K / VEC, lane = tid & 31, warp = tid >> 5, half = xs_half<T>(K);
  int lw = 0;  // log2(wpt): shifts, not divisions
  if constexpr (kClosedForm) {
    constexpr int kLog2W = W >= 16 ? 4 : W >= 8 ? 3 : W >= 4 ? 2 : W >= 2 ? 1 : 0;
    static_assert((1 << kLog2W) == W, "W is a power of two");
    lw = min(kLog2W, max(0, 31 - __clz(rpt - 1)));  // ceil(log2 rpt) - 1, clamped to [0, log2 W]
  } else {
    while ((1 << lw) < W && (2 << lw) < rpt) ++lw;
  }
  const int wpt = 1 << lw, tpg = W >> lw;  // warps per tile, tiles per group
  const int sub = warp >> lw, r0 = warp & (wpt - 1);
  const int ntiles = (rows + rpt - 1) / rpt;
  int g = 0;
  if constexpr (kPairTiles) {
    for (; tpg == 1 && g + 1 < ntiles; g += 2) {
      const int Ra = rpt, Rb = min(rpt, rows - (g + 1) * rpt);  // only the pair's second tile can be short
      const bool two_a = r0 + wpt < Ra, one_b = r0 < Rb, two_b = r0 + wpt < Rb;  // warp-uniform
      const uint4* wa = reinterpret_cast<const uint4*>(ring.wait(t));
      const uint4* wb = reinterpret_cast<const uint4*>(ring.wait(t + 1u));
      const int rb0 = one_b ? r0 : 0, rb1 = two_b ? r0 + wpt : rb0;
      float r[4];
      dot_rows4<T>(wa + size_t(r0) * nv, wa + size_t(two_a ? r0 + wpt : r0) * nv, wb + size_t(rb0) * nv,
                   wb + size_t(rb1) * nv, nv, xs, half, lane, r);
      ring.release(t, lane);
      ring.release(t + 1u, lane);
      t += 2u;
      const float2 v = warp_sum4(r, lane);
      if (lane == 0 || (lane == 16 && one_b)) {  // one branch: the two owners' callbacks run at once
        const bool up = lane == 16;
        const int row = (g + int(up)) * rpt + r0;
        done(row, v.x);
        if (up ? two_b : two_a) done(row + wpt, v.y);
      }
    }
  }
  for (; g < ntiles; g += tpg) {
    const int ti = g + sub, ng = min(tpg, ntiles - g);
    for (int q = 0; q < sub && q < ng; ++q) ring.skip(t + uint32_t(q), lane);
    if (ti < ntiles) {
      const int R = min(rpt, rows - ti * rpt);
      const bool one = r0 < R, two = r0 + wpt < R;  // warp-uniform
      const uint4* w = reinterpret_cast<const uint4*>(ring.wait(t + uint32_t(sub)));
      float acc0 = 0.f, acc1 = 0.f;
      if (one)
        dot_rows<T>(w + size_t(r0) * nv, w + size_t(two ? r0 + wpt : r0) * nv, nv, xs, half, lane, acc0, acc1);
      ring.release(t + uint32_t(sub), lane);
      for (int q = sub + 1; q < ng; ++q) ring.skip(t + uint32_t(q), lane);
      if (one) {
        const float v = warp_sum2(acc0, acc1, lane);
        if (lane == 0 || (two && lane == 16)) done(ti * rpt + r0 + (lane >> 4) * wpt, v);
      }
    }
    t += uint32_t(ng);
  }
}

// Rows [0, rows) of a matrix streamed through the ring in tiles of rpt <= 16 rows (K values
// each, contiguous), dotted with xs {K} (xs_index layout), with K split over the W warps instead
// of the rows (gemv_rows): each warp reads only its slice of x, so a tile costs shared memory its
// weights plus x once (gemv_rows reads the whole x in every warp: twice the tile's bytes on
// 130m's in_proj). Lane 4 g + q takes rows g and g + 8 and every fourth 16-byte chunk of the
// warp's slice from q; odd g start one step later in the chunk cycle, so that the two rows of a
// quarter-warp (rows a multiple of 128 bytes apart) read other banks. A row's partials: over the
// lane's chunks, then the 4 lanes (2 shuffles), then the warps in order in red (two buffers of W
// x 16, by tile parity: one barrier per tile): the same bits on every run. done(r, v) runs on
// thread r (< the tile's rows).
template <typename T, typename F>
__device__ __forceinline__ void gemv_ksplit(const Ring& ring, uint32_t& t, int rows, int rpt, int K, const float* xs,
                                            float* red, int tid, F&& done) {
  constexpr int VEC = 16 / sizeof(T);
  const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, q = lane & 3, half = xs_half<T>(K);
  const int nv = K / VEC, per = (nv + W - 1) / W;
  const int c_begin = min(nv, warp * per), c_end = min(nv, c_begin + per);
  const int nk = (per + 3) >> 2, shift = g & 1;  // chunk steps of 4; odd rows start one step on
  const int ntiles = (rows + rpt - 1) / rpt;
  for (int i = 0; i < ntiles; ++i) {
    const int R = min(rpt, rows - i * rpt);
    const uint4* tile = reinterpret_cast<const uint4*>(ring.wait(t));
    const uint4* w0 = tile + size_t(min(g, R - 1)) * nv;
    const uint4* w1 = tile + size_t(min(g + 8, R - 1)) * nv;
    const bool two = R > 8;  // warp-uniform: a second group of 8 rows
    float e0 = 0.f, o0 = 0.f, e1 = 0.f, o1 = 0.f;
    for (int k = 0; k < nk; ++k) {
      int kk = k + shift;
      if (kk >= nk) kk -= nk;
      const int c = c_begin + 4 * kk + q;
      if (c < c_end) {
        const float4 xe = *reinterpret_cast<const float4*>(xs + 4 * c);
        float4 xo = xe;
        if constexpr (sizeof(T) == 2) xo = *reinterpret_cast<const float4*>(xs + half + 4 * c);
        fma16(T{}, w0[c], xe, xo, e0, o0);
        if (two) fma16(T{}, w1[c], xe, xo, e1, o1);
      }
    }
    ring.release(t++, lane);
    float r0 = e0 + o0, r1 = e1 + o1;
    r0 += __shfl_xor_sync(0xffffffffu, r0, 1);
    r1 += __shfl_xor_sync(0xffffffffu, r1, 1);
    r0 += __shfl_xor_sync(0xffffffffu, r0, 2);
    r1 += __shfl_xor_sync(0xffffffffu, r1, 2);
    float* buf = red + (i & 1) * (W * kFusedTileRows) + warp * kFusedTileRows;
    if (q == 0) buf[g] = r0, buf[g + 8] = r1;
    consumer_sync();
    if (tid < R) {
      const float* col = red + (i & 1) * (W * kFusedTileRows) + tid;
      float sum = 0.f;
#pragma unroll
      for (int w = 0; w < W; ++w) sum += col[w * kFusedTileRows];
      done(i * rpt + tid, sum);
    }
  }
}

// C by columns (FusedArgs::outcol): the block's gated y ys {nc} times its channels' rows of
// out_proj transposed (tiles of rpt rows of dm values from the ring) → a partial residual for all
// dm outputs. A compute thread owns 16-byte column chunks (chunk q: outputs q·VEC ..), the
// a.outcol row groups of threads split the rows and are added in group order; the block then
// sends output m's partial to rank m / seg of its cluster (seg = dm / cluster, st.async into
// orecv {cluster, seg} there, counted on obar), waits for its own slice from every rank, adds
// them in rank order (cluster 0 also the bias) and publishes them as words of R {G / cluster,
// dm}. Layer l's bytes complete obar's phase l; no block sends layer l + 1's before every slice
// of layer l is read (they need layer l + 1's residual), so one buffer and one barrier do.
template <typename T>
__device__ __forceinline__ void out_columns(const FusedArgs& a, const Ring& ring, uint32_t& t, int nc, int rpt,
                                            const float* ys, float* ored, float* orecv, uint64_t* obar, uint64_t* R,
                                            const float* bias, int l, uint32_t e, int tid,
                                            unsigned long long* wait_cycles) {
  constexpr int VEC = 16 / int(sizeof(T)), KI = kFusedOutcolAcc / VEC;  // 16-byte chunks per thread
  const int dm = a.dm, nv = dm / VEC, ng = a.outcol, gs = CT / ng, g = tid / gs, qi = tid - g * gs;
  const int C = a.cluster, seg = dm / C, lane = tid & 31;
  const uint32_t rank = cluster_rank();
  if (tid == 0) mbar_arrive_expect(obar, uint32_t(4 * dm));
  float acc[KI][VEC];
#pragma unroll
  for (int k = 0; k < KI; ++k)
#pragma unroll
    for (int v = 0; v < VEC; ++v) acc[k][v] = 0.f;
  const size_t row_bytes = size_t(dm) * sizeof(T);
  for (int c = 0; c < nc; c += rpt) {
    const char* tile = ring.wait(t);
    const int n = min(rpt, nc - c);
    for (int r = g; r < n; r += ng) {
      const float y = ys[c + r];
      const uint4* row = reinterpret_cast<const uint4*>(tile + size_t(r) * row_bytes);
#pragma unroll
      for (int k = 0; k < KI; ++k)
        if (qi + k * gs < nv) axpy16(T{}, row[qi + k * gs], y, acc[k]);
    }
    ring.release(t++, lane);
  }
  if (ng > 1) {  // one chunk per thread here (ng > 1 only where nv <= CT / ng)
    if (g > 0 && qi < nv)
#pragma unroll
      for (int v = 0; v < VEC; ++v) ored[(g - 1) * dm + qi * VEC + v] = acc[0][v];
    consumer_sync();
    if (g == 0 && qi < nv)
      for (int gg = 1; gg < ng; ++gg)
#pragma unroll
        for (int v = 0; v < VEC; ++v) acc[0][v] += ored[(gg - 1) * dm + qi * VEC + v];
  }
  if (g == 0) {
#pragma unroll
    for (int k = 0; k < KI; ++k) {
      const int q = qi + k * gs;
      if (q >= nv) continue;
#pragma unroll
      for (int h = 0; h < VEC; h += 4) {
        const int m = q * VEC + h, to = m / seg;  // seg is a multiple of 4: a quad has one owner
        st_async_remote4(orecv + int(rank) * seg + (m - to * seg),
                         make_float4(acc[k][h], acc[k][h + 1], acc[k][h + 2], acc[k][h + 3]), obar, uint32_t(to));
      }
    }
  }
  const long long t0 = wait_cycles ? clock64() : 0;
  if (tid < seg) {
    Watchdog wd;
    while (!mbar_try_wait<true>(obar, uint32_t(l) & 1u)) wd.tick(a.trap, l, 6, e, 0);
  }
  if (wait_cycles) *wait_cycles += clock64() - t0;
  const int ci = int(cluster_index());
  for (int j = tid; j < seg; j += CT) {
    const int m = int(rank) * seg + j;
    float sum = ci == 0 && bias ? bias[m] : 0.f;
    for (int r = 0; r < C; ++r) sum += orecv[r * seg + j];
    st_word(R + size_t(ci) * dm + m, sum, e);
  }
}

// outcol: the residual at the start of a layer (or before the lm_head). This block (rank r of its
// cluster) sums slice r only: resid[m] (the previous residual, the same in every block) plus the
// np clusters' partials R[g·dm + m] in order g = 0, 1, .. (np <= kFusedOutcolParts words in
// flight per thread); it sends the sums to every block of its cluster (st.async into their resid, counted
// on rbar) and waits until its own resid is whole. The gather for the residual of layer l
// (n_layer: the final one) completes rbar's phase l - 1; no block sends the next one before
// every block has used this one (it needs this layer's out_proj partials from all of them).
__device__ __forceinline__ void gather_residual(const FusedArgs& a, const uint64_t* R, int np, float* resid,
                                                uint64_t* rbar, int layer, uint32_t e, int tid) {
  constexpr int M = kFusedOutcolParts;
  const int C = a.cluster, seg = a.dm / C, dm = a.dm;
  const uint32_t rank = cluster_rank();
  if (tid == 0) mbar_arrive_expect(rbar, uint32_t(4 * dm));
  for (int j = tid; j < seg; j += CT) {
    const int m = int(rank) * seg + j;
    uint64_t v[M];
    uint32_t pending = (1u << np) - 1u;
    Watchdog wd;
    while (pending) {
#pragma unroll
      for (int q = 0; q < M; ++q)
        if (pending & (1u << q)) v[q] = ld_word(R + size_t(q) * dm + m);
      uint32_t seen = 0;
#pragma unroll
      for (int q = 0; q < M; ++q)
        if (pending & (1u << q)) {
          if (word_ready(v[q], e)) pending &= ~(1u << q);
          else seen = uint32_t(v[q] >> 32);
        }
      if (pending) wd.tick(a.trap, layer, 0, e, seen);
    }
    float sum = resid[m];
#pragma unroll
    for (int q = 0; q < M; ++q)
      if (q < np) sum += word_value(v[q]);
    for (int r = 0; r < C; ++r) st_async_remote(resid + m, sum, rbar, uint32_t(r));
  }
  Watchdog wd;
  while (!mbar_try_wait<true>(rbar, uint32_t(layer - 1) & 1u)) wd.tick(a.trap, layer, 7, e, 0);
}

// Tournament over n sorted lists of 8 (value, id) pairs (list i at val + i * stride, ids at
// val + i * stride + 8 as int bits) in one warp: the k best, ties to the lower id. Lane j keeps
// the heads of lists j, j + 32, ... (n <= 256). Returns in out_v / out_i (lane 0 writes).
__device__ __forceinline__ void merge_top(const float* val, int n, int stride, int k, int lane, float* out_v,
                                          int* out_i) {
  constexpr int HB = 8;
  int head[HB];
#pragma unroll
  for (int q = 0; q < HB; ++q) head[q] = 0;
  for (int r = 0; r < k; ++r) {
    float bv = -INFINITY;
    int bi = 0x7fffffff, bq = -1;
#pragma unroll
    for (int q = 0; q < HB; ++q) {
      const int l = lane + 32 * q;
      if (l < n && head[q] < kFusedMaxAlt) {
        const float v = val[l * stride + head[q]];
        const int id = __float_as_int(val[l * stride + kFusedMaxAlt + head[q]]);
        if (bq < 0 || better(v, id, bv, bi)) bv = v, bi = id, bq = q;
      }
    }
    int wl = bq < 0 ? 32 : lane;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      const int ol = __shfl_xor_sync(0xffffffffu, wl, o);
      if (better(ov, oi, bv, bi) || (ov == bv && oi == bi && ol < wl)) bv = ov, bi = oi, wl = ol;
    }
#pragma unroll
    for (int q = 0; q < HB; ++q)
      if (lane == wl && q == bq) ++head[q];
    if (lane == 0) out_v[r] = bv, out_i[r] = bi;
  }
}

#endif  // __CUDA_ARCH__ >= 900
}  // namespace mambascope::cuda::fused
