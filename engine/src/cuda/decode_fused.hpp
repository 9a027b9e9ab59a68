// The fused decode step (decode_fused.cu): one persistent kernel per token, one block per SM
// (layers under 100 MB, 130m to 2.8b: clusters of 16 blocks, G at most the clusters resident
// at once × 16, fewer where that leaves each block as few in_proj tiles: fused_plan).
// Each block owns a slice of every matrix (in_proj rows of its channels, out_proj and lm_head
// rows); a producer warp streams the block's slices, layer after layer, into a ring of shared
// memory slots with bulk copies (sm_90 `cp.async.bulk`), regardless of where the compute warps
// are, so that weight traffic runs ahead under every synchronisation. Blocks exchange the small
// activation vectors (residual, x_proj partial sums, x_proj outputs, gated y) through
// "flag-in-data" words: 32 bits of value and the step's 32-bit epoch in one 64-bit store, so a
// reader waits for exactly the values it needs, with no grid barrier and no fence.
//
// Per layer: A (norm + in_proj + conv + SiLU + this block's x_proj partial sums) → X (x_proj
// sums, one output per warp) → B (dt_proj + softplus + state update + D + gate) → C (out_proj +
// residual); then the final norm, the lm_head and greedy sampling (top-8 per block, merged by
// block 0). With `fold_x`, X is skipped: every block reads all partial sums of every x_proj
// output itself at the start of B (one exchange per layer fewer). Plain, that is xr·G words per
// block (measured slower); with thread-block clusters (FusedArgs::cluster, chosen for small
// layers) the blocks of a cluster first sum their partials in the first block's shared memory,
// leaving xr·G/cluster words. G, the fold and the clusters are fused_plan's choice (FusedRequest
// overrides them for measurements). With `outcol` (clusters only) C computes out_proj by
// columns instead of rows: each block multiplies the gated y of its own channels with those
// channels' out_proj columns (a transposed copy, FusedArgs::out_cols) into a partial residual
// for all d_model outputs; the cluster reduce-scatters the partials in distributed shared memory
// and each block publishes its slice of the cluster's sum; the next layer's residual poll adds
// the G / cluster sums. The Y exchange disappears (two exchanges per layer instead of three).
// The residual itself is then summed per slice: block rank r of every cluster adds the partials
// of slice r only and hands it to the other blocks of its cluster (distributed shared memory).
// Layouts that the host builds and the kernel reads are defined here once.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "cuda/decode.hpp"

namespace mambascope::cuda {

constexpr int kFusedConsumerWarps = 8;  // 16 measured slower (130m 406 µs/token: registers spill)
constexpr int kFusedComputeThreads = 32 * kFusedConsumerWarps;
constexpr int kFusedThreads = kFusedComputeThreads + 64;  // + the producer warp and the watchdog warp
constexpr int kFusedMaxConv = 8;                                // d_conv
constexpr int kFusedMaxXr = 512;                                // dt_rank + 2 d_state
constexpr int kFusedFinalWords = 2 * kFusedMaxAlt + 2;          // per block: top 8 + (max, sum)
constexpr int kFusedTileRows = 16;                              // matrix rows per weight tile
constexpr int kFusedOutcolAcc = 16;  // outcol: a compute thread's column sums (d_model <= 16 · 256)
constexpr int kFusedOutcolParts = 8;  // outcol: clusters (G / cluster) at most: a thread's words in flight
// Ring slots of the by-rows kernels (small layers; fused_plan): with the weight stream
// evict_first, a short ring runs ahead far enough. H200, same call, 130m QUICK decode, 3 rounds
// (session 15, the GEMV by rows): 8 slots (what shared memory holds) 4356-4367 tok/s, 7
// 4332-4395, 6 4311-4380, 5 4388-4404, 4 4107-4148. With the K-split GEMV (session 18, 6 rounds
// over two calls): 6 slots 4474-4496, 5 4446-4453, 7 4379-4387, 4 4255-4261.
constexpr int kFusedRowsSlots = 6;
constexpr int kFusedCAhead = 6;  // outcol: C's tiles ahead of the compute warps by default (FusedArgs::c_ahead)

__host__ __device__ constexpr int fused_round16(int b) { return (b + 15) & ~15; }
__host__ __device__ constexpr int fused_round4(int n) { return (n + 3) & ~3; }
// recA[c] (bytes): conv bias (f32) + 3 pad | conv weights (f32, d_conv padded to 4) | x_proj
// column c (dtype, xr values, padded to 16 bytes).
__host__ __device__ constexpr int fused_recA_bytes(int d_conv, int xr, int es) {
  return 16 + 4 * fused_round4(d_conv) + fused_round16(xr * es);
}
// recB[c] (bytes): dt bias, D (f32) + 2 pad | A row (f32, N padded to 4) | dt_proj row c (dtype).
__host__ __device__ constexpr int fused_recB_bytes(int N, int R, int es) {
  return 16 + 4 * fused_round4(N) + fused_round16(R * es);
}

// One layer's weights as the fused step reads them (device array).
struct FusedLayer {
  const void* in_proj;     // {2 d_inner, d_model}
  const void* out_proj;    // {d_model, d_inner}
  const void* recA;        // {d_inner} records
  const void* recB;        // {d_inner} records
  const float* norm_w;     // {d_model}
  const float* in_bias;    // {2 d_inner} or null
  const float* out_bias;   // {d_model} or null
};

// Where a stuck wait is reported (mapped pinned memory): the kernel traps after ~10 s of
// waiting for other blocks' words, or when a block has not finished its step after
// 2 · FusedArgs::watchdog_ns (the watchdog warp: a weight-ring wait that cannot end). Phases: 0
// the residual's words, 1 the x_proj partials, 2 B's x_proj sums, 3 the gated y, 4 the lm_head's
// lists, 5 the cluster's partials, 6 the cluster's residual slices, 7 the gathered residual, 8
// the block's step (the watchdog warp).
struct FusedTrap {
  int code, block, layer, phase;
  unsigned epoch, seen;
};
constexpr int kFusedPhaseStuck = 8;

// Profile slots (clock64 cycles of block 0, summed over steps): per phase the time spent
// waiting for other blocks' words and the phase's whole time; weight-ring waits; the step.
enum FusedProf {
  kProfWaitA, kProfANorm, kProfAGemv, kProfA, kProfWaitX, kProfX, kProfWaitB, kProfB, kProfWaitC,
  kProfC, kProfWaitF, kProfF, kProfMerge, kProfRing, kProfStep, kProfNs, kProfSteps, kProfSlots
};
// A diagnostic build (-DMAMBASCOPE_FUSED_TRACE, scripts/fused_trace.py) also stamps every block's
// phases of every layer past the profile slots: {G, n_layer + 1, kFusedTraceStamps, (clock64,
// globaltimer)}; layer n_layer is the lm_head. Stamps: 0 layer start, 1 residual normed, 2 x rows
// of in_proj, 3 x_proj partials, 4 partials sent (cluster first blocks: summed and published),
// 5 z rows, 6 B's x_proj sums in, 7 B done, 8 C's y in, 9 C done (by rows); lm_head: 0, 1, 2 its
// GEMV done, 3 the lists merged (block 0) or sent.
constexpr int kFusedTraceStamps = 10;
__host__ __device__ inline size_t fused_trace_words(int G, int n_layer) {
  return size_t(G) * (n_layer + 1) * 2 * kFusedTraceStamps;
}

// What the step records for the explorer (the recorded step, cuda_decode_extras.cpp), in the
// layout of its ExtrasPlan: per layer a small slot {delta, hnorm, z, x (d_inner each), xdbl
// (xr)[, ypre (d_inner)][, resid (d_model)]} and, for the h layers, an h slot {d_inner, N}. The
// recording kernel is a separate instantiation, so the plain step's code is untouched.
struct FusedProbes {
  float* base = nullptr;         // the slots; null: nothing recorded
  const int* slot = nullptr;     // {n_layer}: the layer's small slot, or -1
  const int* h_slot = nullptr;   // {n_layer}: the layer's h slot, or -1
  int64_t small_floats = 0;      // one small slot
  int64_t h_base = 0;            // floats before the first h slot
  int ypre_at = -1, resid_at = -1;  // offsets in a small slot, or -1
};

struct FusedArgs {
  int n_layer = 0, dm = 0, D = 0, N = 0, R = 0, xr = 0, k = 0, V = 0;
  float eps = 0.f;
  int G = 0, slot_bytes = 0, n_slots = 0;
  bool fold_x = false;                 // B sums the x_proj partials itself (no X phase)
  // Blocks per thread-block cluster (1: none). With clusters, the blocks of a cluster hand their
  // x_proj partials to its first block through distributed shared memory, which sums them and
  // publishes one partial per cluster; fold_x is on and reads G / cluster partials per output.
  int cluster = 1;
  // L2 prefetches by the producer, to keep DRAM busy while the blocks wait for each other and
  // the ring is full: values 1 (16) the next layer's in_proj z rows (x rows) before this
  // layer's out_proj tiles; 2 (4) this layer's in_proj z rows (x rows) and 8 its out_proj
  // slice before the layer's first tile.
  int prefetch = 0;
  // out_proj by columns (clusters only): the row groups that share a block's channels in C (1, 2
  // or 4, so that d_model's 16-byte chunks keep the compute threads busy); 0: by rows.
  int outcol = 0;
  const FusedLayer* layers = nullptr;  // {n_layer}
  const void* out_cols = nullptr;      // outcol: every layer's out_proj transposed {n_layer, D, dm}
  const void* embedding = nullptr;     // {V, dm}
  const void* lm_head = nullptr;       // {V, dm}
  const float* norm_f = nullptr;       // {dm}
  float* conv_state = nullptr;         // {n_layer, D, k - 1}
  float* ssm_state = nullptr;          // {n_layer, D, N}
  const int32_t* ids = nullptr;        // [0]: the input token
  uint64_t* ll = nullptr;              // exchange words (fused_ll_words)
  uint32_t* sync = nullptr;            // {epoch, blocks finished}
  float* logits = nullptr;             // {V}
  // Greedy sampling inside the step (fused_can_sample); off: logits only.
  bool sample = false;
  int n_alt = 0;
  float rep_penalty = 1.f;
  int window = 0;
  int32_t* ring = nullptr;
  int64_t* counters = nullptr;
  int32_t* out = nullptr;
  SampleOut* host = nullptr;
  unsigned long long* prof = nullptr;  // {kProfSlots} or null
  FusedTrap* trap = nullptr;
  // A block that has not finished its step after twice this traps (MAMBASCOPE_FUSED_WATCHDOG_MS;
  // default 10 s, as the exchange waits, which then report first).
  unsigned long long watchdog_ns = 10000000000ull;
  // Test hook (MAMBASCOPE_FUSED_FAULT): 1, the producer leaves out the lm_head's tiles, so the
  // compute warps wait for a tile that never comes; 2, it waits for the compute warps to release
  // the lm_head's first tile before sending it (a deadlock, as the plan bug of a9b3ba7 made).
  // The watchdog warp must report either.
  int fault = 0;
  FusedProbes probes;                  // base null: the plain step
  // outcol: C's out_proj column tiles go at most this many tiles ahead of the compute warps (0:
  // as far as the ring allows). Streaming them while B waits for the x_proj partials slows that
  // exchange more than the prefetched tiles save in C (H200, session 10: 2.8b 561 -> 585 tok/s
  // at 6 of 8 slots, 1.4b +1% at 6 of 7; 7 and fewer than 6 measured slower; session 11, 2.8b
  // with 9 slots: 5 / 6 / 7 / 8 ahead 578 / 587 / 587 / 573). B's state and record tiles are
  // held the same way from 2 on (session 11: 2.8b +0.2%; +0.5% in session 10). fused_plan sets
  // it below n_slots (0 where it asks a whole ring or more). Last in the struct so that the
  // other kernels' parameter offsets stay as they were.
  int c_ahead = 0;
  // L2 eviction priorities of the weights the producer streams (kFusedL2* bits; 0: every copy
  // evict_normal), in the by-rows kernels only. A step reads each weight once, while the exchange
  // words, the state and the per-channel records are read again within the step or at the next
  // token: a weight stream marked evict_first leaves those in L2 (fused_plan chooses;
  // MAMBASCOPE_FUSED_L2 overrides). Last in the struct, as c_ahead.
  int l2 = 0;
};
enum : int {
  kFusedL2MatFirst = 1,   // in_proj and out_proj rows: evict_first
  kFusedL2HeadFirst = 2,  // the lm_head: evict_first
};

// Exchange words per layer and in total. A layer's residual region holds the residual, or with
// outcol the G / cluster clusters' partial sums {G / cluster, dm}.
__host__ __device__ inline int64_t fused_r_words(const FusedArgs& a) {
  return int64_t(a.dm) * (a.outcol ? a.G / a.cluster : 1);
}
__host__ __device__ inline int64_t fused_ll_layer_words(const FusedArgs& a) {
  return fused_r_words(a) + int64_t(a.xr) * a.G + a.xr + a.D;
}
__host__ __device__ inline int64_t fused_ll_words(const FusedArgs& a) {
  return (a.n_layer + 1) * fused_ll_layer_words(a) + int64_t(a.G) * kFusedFinalWords;
}

// Shared memory of one block, in bytes from the dynamic base (same on host and device).
struct FusedSmem {
  int resid, xs, acc, xch, zs, xd, cpart, ored, orecv, red, pen, cand, kred, bars, ring, total;
};
__host__ __device__ inline int fused_ncmax(int D, int G) { return (D + G - 1) / G; }
// by_cols: the layout of the out_proj-by-columns kernels (a.outcol), whose xs never holds the
// gated y {d_inner}: only the normed input {d_model} and the folded partials. The kernels pass
// their compile-time flag, so that the others compute the layout exactly as before. (On the 2.8b
// shape the 10 KB saved make a 9th ring slot.)
__host__ __device__ inline FusedSmem fused_smem_layout(const FusedArgs& a, bool by_cols) {
  FusedSmem s{};
  const int nc = fused_ncmax(a.D, a.G), vc = (a.V + a.G - 1) / a.G;
  int o = 0;
  auto take = [&](int bytes) { const int at = o; o += fused_round16(bytes); return at; };
  s.resid = take(4 * a.dm);
  const int fold = a.fold_x ? a.xr * (a.G / a.cluster) : 0;  // fold_x: B's partials {xr, G / cluster}
  const int xs_n = by_cols || a.dm > a.D ? a.dm : a.D;
  s.xs = take(4 * (xs_n > fold ? xs_n : fold));
  s.acc = take(8 * nc);
  s.xch = take(4 * nc);
  s.zs = take(4 * nc);
  s.xd = take(4 * a.xr);
  s.cpart = take(a.cluster > 1 ? 4 * a.cluster * a.xr : 0);  // first block of a cluster: {cluster, xr}
  s.ored = take(a.outcol ? 4 * (a.outcol - 1) * a.dm : 0);   // outcol: row groups 1.. {outcol - 1, dm}
  s.orecv = take(a.outcol ? 4 * a.dm : 0);  // outcol: this block's slice from every block {cluster, dm / cluster}
  s.red = take(4 * 64);
  s.pen = take(4 * ((vc + 31) / 32));
  s.cand = take(4 * (kFusedConsumerWarps + kFusedTileRows) * kFusedFinalWords);
  // By rows: gemv_ksplit's partial sums {2, W, 16} (set without take() where unused, which
  // leaves the by-columns kernels' code as it was).
  s.kred = o;
  if (!by_cols) o += 4 * 2 * kFusedConsumerWarps * kFusedTileRows;
  // full, empty per slot; the cluster partials' barrier; outcol: the partials' and the residual's
  s.bars = take(16 * a.n_slots + (a.outcol ? 32 : 16));
  o = (o + 127) & ~127;
  s.ring = o;
  s.total = o + a.n_slots * a.slot_bytes;
  return s;
}
__host__ inline FusedSmem fused_smem(const FusedArgs& a) { return fused_smem_layout(a, a.outcol > 0); }

// What the caller asks of fused_plan: 0 / -1 leave the choice to it (environment variables
// MAMBASCOPE_FUSED_BLOCKS and MAMBASCOPE_FUSED_FOLD in the driver, for measurements and tests).
struct FusedRequest {
  int blocks = 0;  // grid size G; 0: chosen by shape
  int fold = -1;   // fold_x: 0 off, 1 on, -1 chosen by shape
  int prefetch = -1;  // FusedArgs::prefetch bits; -1 chosen by shape
  int cluster = 0;    // blocks per cluster (1: none); 0 chosen by shape where blocks is 0
  int outcol = -1;    // out_proj by columns: 0 off, 1 on where clusters allow it, -1 chosen by shape
  int slots = 0;      // at most this many ring slots (up to 16); 0: by rows kFusedRowsSlots, by columns as many as fit
  int c_ahead = -1;   // FusedArgs::c_ahead; -1 chosen by shape
  int l2 = -1;        // FusedArgs::l2 bits; -1 chosen by shape
};
// Fills the geometry (G, fold_x, slot size and count) for this device and shape; returns why
// the fused step cannot run it, or "" if it can.
std::string fused_plan(FusedArgs& a, DType dt, int device, const FusedRequest& req = {});
void launch_fused(const FusedArgs& a, DType dt, cudaStream_t stream);
// The step kernel for this dtype, with or without clusters and out_proj by columns, plain or
// recording probes (decode_fused.cu; fused_plan and launch_fused use it).
const void* fused_step_kernel_for(DType dt, bool cluster, bool outcol, bool probes);

}  // namespace mambascope::cuda
