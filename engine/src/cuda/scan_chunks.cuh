// L in chunks for the selective scan (included by scan_kernel.cuh): how a block finds its
// (chunk, batch, channel group) and how a chunk's end state reaches the next chunk.
//
// Why: a launch of one block per channel group leaves SMs idle or doubly loaded whenever the
// groups are not a multiple of the SMs (d_inner 5120: 160 groups on 132 SMs, 28 SMs run two and
// set the time). Cutting L into K chunks gives K times as many equal blocks, run in order: a
// block takes a ticket (so the order does not depend on how the hardware dispatches blocks),
// ticket i is chunk i / (batch · groups) of group i mod (batch · groups), and its predecessor
// (the same group's previous chunk) holds ticket i − batch · groups, taken earlier by a block
// that is running or done: no deadlock. With fewer resident blocks than groups the predecessor
// ran a round earlier, so the wait is short; the state crosses through global memory (p.h, or
// the launch's carry buffer). No extra exponentials: the recurrence still runs once per token.
#pragma once

namespace mambascope::cuda {

__device__ __forceinline__ unsigned ld_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void add_release(unsigned* p, unsigned v) {
  asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// Every thread of the block: the ticket of thread 0, mapped to its work.
__device__ __forceinline__ ScanItem take_chunk_item(const ScanParams& p, const ScanLaunch& k) {
  __shared__ unsigned ticket;
  if (threadIdx.x == 0) ticket = atomicAdd(k.ctr, 1u);
  __syncthreads();
  const int64_t per = int64_t(p.batch) * k.groups;
  const int64_t t = ticket;
  ScanItem it{};
  it.chunk = int(t / per);
  const int r = int(t - it.chunk * per);
  it.b = r / k.groups;
  it.c0 = (r - it.b * k.groups) * k.cb;
  it.tb = it.chunk * k.chunk_len;
  const int64_t left = p.L - it.tb;
  it.len = left < k.chunk_len ? left : k.chunk_len;
  return it;
}

// Where a chunk reads its initial state and writes its end state ({batch, d, N}).
__device__ __forceinline__ float* chunk_state(const ScanParams& p, const ScanLaunch& k) {
  return p.h ? p.h : k.carry;
}
__device__ __forceinline__ unsigned* chunk_ready(const ScanLaunch& k, const ScanItem& it) {
  return k.ready + int64_t(it.b) * k.groups + it.c0 / k.cb;
}

// The hand-over does not lean on a barrier to carry one thread's fence or acquire to the
// others: every scan thread adds 1 to its group's counter with release semantics after writing
// its part of the end state, and every scan thread of the next chunk acquires the counter until
// all kScanWarps · 32 additions of each earlier chunk are in (a release sequence of atomic adds:
// the acquire synchronises with every one of them).
__device__ __forceinline__ void wait_chunk_start(const ScanLaunch& k, const ScanItem& it) {
  const unsigned* flag = chunk_ready(k, it);
  const unsigned want = unsigned(it.chunk) * unsigned(kScanWarps * 32);
  while (ld_acquire(flag) < want) __nanosleep(100);
}
__device__ __forceinline__ void publish_chunk_end(const ScanLaunch& k, const ScanItem& it) {
  add_release(chunk_ready(k, it), 1u);
}

}  // namespace mambascope::cuda
