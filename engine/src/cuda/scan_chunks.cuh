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

// Every thread of the block: the ticket of thread 0. The block that takes the last of the
// launch's `blocks` tickets sets the counter back to zero for the next launch (every other
// block has taken its ticket), so no memset runs before each launch.
__device__ __forceinline__ unsigned take_ticket(const ScanLaunch& k, unsigned blocks) {
  __shared__ unsigned ticket;
  if (threadIdx.x == 0) {
    ticket = atomicAdd(k.ctr, 1u);
    if (ticket + 1 == blocks) atomicExch(k.ctr, 0u);
  }
  __syncthreads();
  return ticket;
}

// A block's chunk, from its ticket.
__device__ __forceinline__ ScanItem take_chunk_item(const ScanParams& p, const ScanLaunch& k) {
  const int64_t per = int64_t(p.batch) * k.groups;
  const int64_t t = take_ticket(k, unsigned(gridDim.x));
  ScanItem it{};
  it.chunk = int(t / per);
  const int r = int(t - it.chunk * per);
  it.b = r / k.groups;
  it.c0 = (r - it.b * k.groups) * k.cb;
  it.tb = it.chunk * k.chunk_len;
  const int64_t left = p.L - it.tb;
  it.len = left < k.chunk_len ? left : k.chunk_len;
  it.wait_prev = it.chunk > 0;
  it.pass_on = it.chunk + 1 < k.chunks;
  return it;
}

// Balanced spans: the same hand-over for shapes whose channel groups leave SMs unevenly loaded,
// without chunks' per-chunk fill and drain. Blocks (one round: at most one per SM slot) take
// equal spans of span_len >= L tokens of the (batch entry, group, token) order, so a group is
// cut at most once: its head ends one span, its tail starts the next. A span runs its pieces
// last to first: its last piece starts a group, so its first wait is for a head that the
// previous ticket's block ran first. The tail of a group is "chunk 1" of the hand-over.
// The piece of [lo, e) that ends at e (e > lo).
__device__ __forceinline__ ScanItem span_piece(const ScanParams& p, const ScanLaunch& k,
                                               int64_t lo, int64_t e) {
  const int64_t gi = (e - 1) / p.L;  // (batch entry, group), flattened
  const int64_t g0 = gi * p.L;       // where that group starts
  const int64_t s = lo > g0 ? lo : g0;
  ScanItem it{};
  it.b = int(gi / k.groups);
  it.c0 = int(gi - int64_t(it.b) * k.groups) * k.cb;
  it.tb = s - g0;
  it.len = e - s;
  it.chunk = it.tb > 0 ? 1 : 0;
  it.wait_prev = it.tb > 0;
  it.pass_on = e < g0 + p.L;
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
// The group's last waiter (the last chunk, or a span's tail) sets the flag back to zero for the
// next launch once all its scan threads have seen it complete (no further additions come).
__device__ __forceinline__ void wait_chunk_start(const ScanLaunch& k, const ScanItem& it) {
  unsigned* flag = chunk_ready(k, it);
  const unsigned want = unsigned(it.chunk) * unsigned(kScanWarps * 32);
  while (ld_acquire(flag) < want) __nanosleep(100);
  if (k.span_len > 0 || it.chunk + 1 == k.chunks) {
    named_sync_id(kBarScan, kScanWarps * 32);
    if (threadIdx.x == 0) *flag = 0u;
  }
}
__device__ __forceinline__ void publish_chunk_end(const ScanLaunch& k, const ScanItem& it) {
  add_release(chunk_ready(k, it), 1u);
}

}  // namespace mambascope::cuda
