// Device primitives of the fused decode step (decode_fused.hpp): the weight ring (mbarriers and
// sm_90 bulk copies), the flag-in-data exchange words, and the watchdog that turns a wait that
// can never finish into a reported trap instead of a hung GPU.
#pragma once
#include <cuda_runtime.h>

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

}  // namespace mambascope::cuda::fused
