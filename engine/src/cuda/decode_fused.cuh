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
__device__ __forceinline__ bool mbar_try_wait(uint64_t* b, uint32_t parity) {
  uint32_t ok;
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
      "selp.u32 %0, 1, 0, p;\n\t}"
      : "=r"(ok)
      : "r"(smem_u32(b)), "r"(parity)
      : "memory");
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
};

// dst[i] = value of src[i] for i in [0, n), once every word carries `epoch`; the calling
// threads (tid of nthr) share the work. Up to 8 words per thread are in flight per round and a
// round re-reads only the words not ready yet. Vectors longer than one round (the 2.8b shape's
// y) wait on one word at a time between rounds, so that 132 waiting blocks do not flood L2
// while the weight stream needs it; short ones (the latency-bound small models) re-read all.
__device__ __forceinline__ void poll_words(const uint64_t* src, int n, float* dst, uint32_t epoch,
                                           int tid, int nthr, FusedTrap* trap, int layer, int phase) {
  constexpr int B = 8;
  const bool light = n > B * nthr;
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
      int first = -1;
#pragma unroll
      for (int j = 0; j < B; ++j)
        if (pending & (1u << j)) {
          if (word_ready(v[j], epoch)) {
            pending &= ~(1u << j);
            dst[base + tid + j * nthr] = word_value(v[j]);
          } else {
            seen = uint32_t(v[j] >> 32);
            if (first < 0) first = j;
          }
        }
      if (!pending) break;
      wd.tick(trap, layer, phase, epoch, seen);
      if (light) {
        const uint64_t* w = src + base + tid + first * nthr;
        while (!word_ready(ld_word(w), epoch)) {
          __nanosleep(64);
          wd.tick(trap, layer, phase, epoch, seen);
        }
      }
    }
  }
}


// ---- the compute warps' building blocks -----------------------------------------------------

constexpr int W = kFusedConsumerWarps;
constexpr int CT = 32 * W;  // compute threads

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

// 16 bytes of weights (8 bf16/fp16 or 4 fp32) dotted with x (16-byte aligned, fp32).
__device__ __forceinline__ float dot16(float, uint4 w, const float* x) {
  const float4 a = *reinterpret_cast<const float4*>(x);
  return (__uint_as_float(w.x) * a.x + __uint_as_float(w.z) * a.z) +
         (__uint_as_float(w.y) * a.y + __uint_as_float(w.w) * a.w);
}
template <typename P, typename F2>
__device__ __forceinline__ float dot16_pairs(uint4 w, const float* x, F2 to2) {
  const float4 a = reinterpret_cast<const float4*>(x)[0], b = reinterpret_cast<const float4*>(x)[1];
  P p[4];
  memcpy(p, &w, 16);
  const float2 f0 = to2(p[0]), f1 = to2(p[1]), f2 = to2(p[2]), f3 = to2(p[3]);
  return (f0.x * a.x + f1.x * a.z + f2.x * b.x + f3.x * b.z) + (f0.y * a.y + f1.y * a.w + f2.y * b.y + f3.y * b.w);
}
__device__ __forceinline__ float dot16(__nv_bfloat16, uint4 w, const float* x) {
  return dot16_pairs<__nv_bfloat162>(w, x, [](__nv_bfloat162 p) { return __bfloat1622float2(p); });
}
__device__ __forceinline__ float dot16(__half, uint4 w, const float* x) {
  return dot16_pairs<__half2>(w, x, [](__half2 p) { return __half22float2(p); });
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

// (value, id) better: higher value, then lower id.
__device__ __forceinline__ bool better(float va, int ia, float vb, int ib) {
  return va > vb || (va == vb && ia < ib);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900


// The compute warps' view of the weight ring.
struct Ring {
  const char* base;
  uint64_t *full, *empty;
  int slot, n;
  unsigned long long* ring_cycles;  // block 0 thread 0 when profiling, else null
  __device__ const char* wait(uint32_t i) const {
    const uint32_t s = i % uint32_t(n), parity = (i / uint32_t(n)) & 1u;
    const long long t0 = ring_cycles ? clock64() : 0;
    while (!mbar_try_wait(&full[s], parity)) {
    }
    if (ring_cycles) *ring_cycles += clock64() - t0;
    return base + size_t(s) * slot;
  }
  __device__ void release(uint32_t i, int lane) const {
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[i % uint32_t(n)]);
  }
};

// One tile of R <= 16 rows (K values each, contiguous) dotted with xs {K}. With R >= 8 each
// warp takes whole rows (w, w + 8), loads each slice of x once for both, and finishes them
// itself: no barrier. With R < 8, S = 8 / R warps share a row, each taking every S-th 32-chunk
// stretch of it, and the row's S partial sums meet in `part` behind one barrier. done(r, v)
// runs on one thread per row, the "owner" (lane 0 of the warp, or thread r when split).
template <typename T, typename F>
__device__ __forceinline__ void gemv_tile(const char* tile, int R, int K, const float* xs, float* part,
                                          const Ring& ring, uint32_t t, int tid, F&& done) {
  constexpr int VEC = 16 / sizeof(T);
  const int nv = K / VEC, lane = tid & 31, warp = tid >> 5;
  const int S = R >= W ? 1 : W / R;  // warps per row (R < 8: 2, 4 or 8)
  const int seg = warp % S, r0 = warp / S, rstep = W / S;
  const uint4* w = reinterpret_cast<const uint4*>(tile);
  float acc0 = 0.f, acc1 = 0.f;  // rows r0 and r0 + rstep (the second only when R > 8)
  const bool two = r0 + rstep < R;
  if (r0 < R) {
    const uint4* w0 = w + size_t(r0) * nv;
    const uint4* w1 = w + size_t(two ? r0 + rstep : r0) * nv;
    int c = seg * 32 + lane;
    for (; c + 32 * S < nv; c += 64 * S) {  // two stretches in flight
      const int c2 = c + 32 * S;
      const uint4 a0 = w0[c], a1 = w0[c2], b0 = w1[c], b1 = w1[c2];
      acc0 += dot16(T{}, a0, xs + c * VEC) + dot16(T{}, a1, xs + c2 * VEC);
      if (two) acc1 += dot16(T{}, b0, xs + c * VEC) + dot16(T{}, b1, xs + c2 * VEC);
    }
    if (c < nv) {
      acc0 += dot16(T{}, w0[c], xs + c * VEC);
      if (two) acc1 += dot16(T{}, w1[c], xs + c * VEC);
    }
  }
  ring.release(t, lane);
  acc0 = warp_sum(acc0);
  if (two) acc1 = warp_sum(acc1);
  if (S == 1) {
    if (lane == 0 && r0 < R) {
      done(r0, acc0);
      if (two) done(r0 + rstep, acc1);
    }
    return;
  }
  float* pb = part + (t & 1u) * (W * 2);  // [row][segment], R * S <= 8
  if (lane == 0 && r0 < R) pb[r0 * S + seg] = acc0;
  consumer_sync();
  if (tid < R) {
    float v = 0.f;
    for (int q = 0; q < S; ++q) v += pb[tid * S + q];
    done(tid, v);
  }
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
