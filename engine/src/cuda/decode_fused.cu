// The fused decode step's kernels (decode_fused.hpp; decode_fused_plan.cpp plans and launches
// them). One block per SM; warp 8 is the producer (lane 0 issues every bulk copy of the block's
// weight slices, in the order the compute warps will use them), warps 0-7 compute. Every block
// runs the same phases for every layer; what block b owns: channels [c0, c0 + nc) of d_inner
// (in_proj rows, conv, x_proj partial sums, SSM update), rows [m0, m0 + mc) of out_proj (outcol:
// the columns of its channels) and [v0, v0 + vc) of the lm_head. Three kernels per dtype (each
// also in a recording form): without clusters (cooperative launch), with (cluster_partials), and
// with clusters and out_proj by columns (out_columns, gather_residual).
#include "cuda/cuda_check.hpp"
#include "cuda/cuda_types.cuh"
#include "cuda/decode_fused.cuh"

namespace mambascope::cuda {
namespace {

using namespace fused;

__host__ __device__ inline int share(int n, int G, int b) { return int((int64_t(n) * b) / G); }

// Block b's slices and the tile sizes; the producer and the compute warps walk the same tiles.
struct Slices {
  int c0, nc, m0, mc, v0, vc;
  int es, in_row, out_row, rpt_in, rpt_out, recA, recB, cptA, cptB, ra;
  __device__ Slices(const FusedArgs& a, int es_) : es(es_) {
    const int b = int(blockIdx.x), G = a.G;
    c0 = share(a.D, G, b), nc = share(a.D, G, b + 1) - c0;
    m0 = share(a.dm, G, b), mc = share(a.dm, G, b + 1) - m0;
    v0 = share(a.V, G, b), vc = share(a.V, G, b + 1) - v0;
    in_row = a.dm * es, out_row = a.D * es;
    rpt_in = min(kFusedTileRows, a.slot_bytes / in_row), rpt_out = min(kFusedTileRows, a.slot_bytes / out_row);
    recA = fused_recA_bytes(a.k, a.xr, es), recB = fused_recB_bytes(a.N, a.R, es);
    cptA = a.slot_bytes / recA;
    cptB = min(a.slot_bytes / recB, a.slot_bytes / (4 * a.N));
    // Phase A's in_proj rows: the x rows, rounded up to whole rounds of gemv_rows' warp groups
    // (z's first rows fill the last one), so that the two passes run the rounds of one (the
    // by-columns kernels; gemv_ksplit's rounds are tiles of rpt_in rows, which divide them).
    const int rr = gemv_round_rows(rpt_in);
    ra = min(2 * nc, (nc + rr - 1) / rr * rr);
  }
};

// Exchange regions of layer l (words): R (its input residual; kOc: the clusters' partial sums of
// it, fused_r_words), P (x_proj partials, [xr][G]),
// XD (x_proj outputs), Y (gated y); R of layer n_layer is the final residual.
template <bool kOc> struct Words {
  uint64_t *R, *P, *XD, *Y;
  __device__ Words(const FusedArgs& a, int l) {
    const int64_t rw = kOc ? int64_t(a.dm) * (a.G / a.cluster) : a.dm;  // fused_r_words
    R = a.ll + int64_t(l) * (rw + int64_t(a.xr) * a.G + a.xr + a.D);
    P = R + rw;
    XD = P + int64_t(a.xr) * a.G;
    Y = XD + a.xr;
  }
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// Producer: every tile the compute warps will wait for, in their order. (Asking L2 for tiles
// ahead of the ring with cp.async.bulk.prefetch.L2 measured no faster: 4-8 tiles ahead ±1% in
// session 3; in session 10, once the GEMVs waited for DRAM, 5-30% slower on 2.8b, 4-32 tiles
// ahead: the traffic lengthens the exchanges.)
// With a.prefetch, it also asks L2 for slices of later matrices at fixed points of its stream
// (FusedArgs::prefetch), where the ring alone would leave DRAM idle.
// kOc: with out_proj by columns, B's state and record tiles and C's tiles go at most a.c_ahead
// tiles ahead of the compute warps (FusedArgs::c_ahead).
// (FusedArgs::fault, a test hook: 1 leaves out the lm_head's tiles; 2 waits for the compute
// warps to release the lm_head's first tile before sending it. The watchdog warp must catch both.)
template <bool kOc>
__device__ void produce(const FusedArgs& a, const Slices& s, char* ring, uint64_t* full, uint64_t* empty) {
  uint32_t t = 0;
  auto in_rows = [&](int l, bool z) {  // prefetch this block's x or z rows of layer l's in_proj
    if (l < a.n_layer)
      prefetch_l2(static_cast<const char*>(a.layers[l].in_proj) + size_t(z ? a.D + s.c0 : s.c0) * s.in_row,
                  size_t(s.nc) * s.in_row);
  };
  // The by-rows kernels give every copy an L2 eviction priority (FusedArgs::l2); the by-columns
  // ones (kOc) plain copies: there the priorities measured within the spread (1.4b, 2.8b), and
  // any change to this function moves ptxas's schedule of their whole step.
  uint64_t pol_normal = 0, pol_first = 0;
  if constexpr (!kOc) {
    asm volatile("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;" : "=l"(pol_normal));
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol_first));
  }
  const uint64_t h_mat = (a.l2 & kFusedL2MatFirst) ? pol_first : pol_normal;
  const uint64_t h_head = (a.l2 & kFusedL2HeadFirst) ? pol_first : pol_normal;
  uint64_t hint = pol_normal;  // norm weights, records and the state: evict_normal
  // ahead > 0: first waits until the compute warps have released tile t - ahead (its slot's
  // phase (t - ahead) / n_slots; no later phase of that slot can have completed, since tile
  // t - ahead + n_slots is not emitted yet).
  auto emit = [&](const void* s1, int b1, const void* s2 = nullptr, int b2 = 0, uint32_t ahead = 0) {
    if constexpr (kOc) {
      if (ahead > 0 && t >= ahead) {
        const uint32_t u = t - ahead;
        while (!mbar_try_wait(&empty[u % uint32_t(a.n_slots)], (u / uint32_t(a.n_slots)) & 1u)) {
        }
      }
    }
    const uint32_t slot = t % uint32_t(a.n_slots);
    while (!mbar_try_wait(&empty[slot], ((t / uint32_t(a.n_slots)) & 1u) ^ 1u)) {
    }
    mbar_arrive_expect(&full[slot], uint32_t(b1 + b2));
    char* dst = ring + size_t(slot) * a.slot_bytes;
    if constexpr (kOc) {
      bulk_load(dst, s1, uint32_t(b1), &full[slot]);
      if (b2) bulk_load(dst + b1, s2, uint32_t(b2), &full[slot]);
    } else {
      bulk_load_hint(dst, s1, uint32_t(b1), &full[slot], hint);
      if (b2) bulk_load_hint(dst + b1, s2, uint32_t(b2), &full[slot], hint);
    }
    ++t;
  };
  // B waits for a state tile and its record tile together before releasing either, so its
  // tiles are held back only from 2 ahead (1 would wait for a release that waits for it).
  const uint32_t b_ahead = a.c_ahead > 1 ? uint32_t(a.c_ahead) : 0u;
  for (int l = 0; l < a.n_layer; ++l) {
    const FusedLayer L = a.layers[l];
    if (a.prefetch & 8)
      prefetch_l2(static_cast<const char*>(L.out_proj) + size_t(s.m0) * s.out_row, size_t(s.mc) * s.out_row);
    if (a.prefetch & 2) in_rows(l, true);
    if (a.prefetch & 4) in_rows(l, false);
    hint = pol_normal;
    emit(L.norm_w, 4 * a.dm);
    hint = h_mat;
    // in_proj's rows of this block's channels, x then z, in the compute warps' two passes (rows
    // [0, s.ra), then the rest of z after conv and x_proj's partials).
    const char* in = static_cast<const char*>(L.in_proj);
    auto in_tiles = [&](int i_begin, int i_end) {
      for (int i0 = i_begin; i0 < i_end; i0 += s.rpt_in) {
        const int i1 = min(i0 + s.rpt_in, i_end);
        auto row = [&](int i) { return in + size_t(i < s.nc ? s.c0 + i : a.D + s.c0 + i - s.nc) * s.in_row; };
        if (i1 <= s.nc || i0 >= s.nc) emit(row(i0), (i1 - i0) * s.in_row);
        else emit(row(i0), (s.nc - i0) * s.in_row, row(s.nc), (i1 - s.nc) * s.in_row);
      }
    };
    in_tiles(0, s.ra);
    hint = pol_normal;
    for (int c = 0; c < s.nc; c += s.cptA)
      emit(static_cast<const char*>(L.recA) + size_t(s.c0 + c) * s.recA, min(s.cptA, s.nc - c) * s.recA);
    hint = h_mat;
    in_tiles(s.ra, 2 * s.nc);
    hint = pol_normal;
    for (int c = 0; c < s.nc; c += s.cptB) {
      const int n = min(s.cptB, s.nc - c);
      emit(a.ssm_state + (size_t(l) * a.D + s.c0 + c) * a.N, n * 4 * a.N, nullptr, 0, b_ahead);
      emit(static_cast<const char*>(L.recB) + size_t(s.c0 + c) * s.recB, n * s.recB, nullptr, 0, b_ahead);
    }
    hint = h_mat;
    if (a.prefetch & 1) in_rows(l + 1, true);
    if (a.prefetch & 16) in_rows(l + 1, false);
    if (a.outcol) {  // this block's channels' out_proj columns: rows of the transposed copy
      for (int r = 0; r < s.nc; r += s.rpt_in)
        emit(static_cast<const char*>(a.out_cols) + (size_t(l) * a.D + s.c0 + r) * s.in_row,
             min(s.rpt_in, s.nc - r) * s.in_row, nullptr, 0,
             uint32_t(a.c_ahead));
      continue;
    }
    for (int r = 0; r < s.mc; r += s.rpt_out)
      emit(static_cast<const char*>(L.out_proj) + size_t(s.m0 + r) * s.out_row,
           min(s.rpt_out, s.mc - r) * s.out_row);
  }
  if (a.fault == 2) {  // first tile t - n_slots's release (as emit waits), then tile t's, never sent:
    // without the first wait a short ring kept full leaves the slot one phase behind, and the
    // parity of tile t's release is then an earlier, complete phase's
    const uint32_t slot = t % uint32_t(a.n_slots), ph = (t / uint32_t(a.n_slots)) & 1u;
    while (!mbar_try_wait(&empty[slot], ph ^ 1u)) {
    }
    while (!mbar_try_wait(&empty[slot], ph)) {
    }
  }
  if (a.fault == 1) return;
  hint = pol_normal;
  emit(a.norm_f, 4 * a.dm);
  hint = h_head;
  for (int r = 0; r < s.vc; r += s.rpt_in)
    emit(static_cast<const char*>(a.lm_head) + size_t(s.v0 + r) * s.in_row, min(s.rpt_in, s.vc - r) * s.in_row);
}

// The watchdog warp (one lane). The weight ring's waits, on both sides, have no watchdog of their
// own: they are many, inlined and on the critical path (one in the producer's slot waits, a
// round counter or sleeping waits, cost 1-3.5% on 1.4b and 2.8b). This lane covers them and
// every other wait of the block: if the compute warps have not all arrived on `done` within
// 2 · watchdog_ns, it records the block and traps, instead of leaving the GPU hung (the plan bug
// of a9b3ba7 did). It waits in the
// hardware's mbarrier wait, which suspends it and wakes it at the phase's completion (on the
// H200 within noise of no watchdog at all; a test_wait + nanosleep(500) loop measured the same
// or 0.4% slower on 2.8b), and looks at the clock every 256 rounds.
__device__ void watch(const FusedArgs& a, uint64_t* done) {
  const uint64_t start = global_ns(), limit = 2 * a.watchdog_ns;
  uint32_t rounds = 0;
  while (!mbar_try_wait(done, 0))
    if ((++rounds & 255u) == 0 && global_ns() - start >= limit) watchdog_trap(a.trap, -1, kFusedPhaseStuck, 0, 0);
}

// Residual from exchange words (or the embedding row for layer 0) → RMS-normalised with the
// weights of the next tile → xs. Returns after xs is complete. np > 0 (outcol): R holds np
// clusters' partials, added to the previous residual in resid (gather_residual, on rbar); `rec`
// (or null) then gets a copy of the new residual (the recording kernel's previous layer).
template <typename T>
__device__ void load_and_norm(const FusedArgs& a, const uint64_t* R, bool embed, float* resid, float* xs,
                              float* red, const Ring& ring, uint32_t& t, uint32_t e, int tid, int lane,
                              int layer, unsigned long long* wait_cycles, int np = 0, float* rec = nullptr,
                              uint64_t* rbar = nullptr) {
  const long long t0 = wait_cycles ? clock64() : 0;
  if (embed) {
    const T* row = static_cast<const T*>(a.embedding) + size_t(a.ids[0]) * a.dm;
    for (int m = tid; m < a.dm; m += CT) resid[m] = to_f32(row[m]);
  } else if (np > 0) {
    gather_residual(a, R, np, resid, rbar, layer, e, tid);
    if (rec)
      for (int m = tid; m < a.dm; m += CT) rec[m] = resid[m];
  } else {
    poll_words(R, a.dm, resid, e, tid, CT, a.trap, layer, 0);
  }
  if (wait_cycles) *wait_cycles += clock64() - t0;
  float sq = 0.f;
  for (int m = tid; m < a.dm; m += CT) sq += resid[m] * resid[m];  // this thread's own words
  const float inv = rsqrtf(block_sum(sq, red, tid) / float(a.dm) + a.eps);
  const float* nw = reinterpret_cast<const float*>(ring.wait(t));
  const int half = xs_half<T>(a.dm);
  for (int m = tid; m < a.dm; m += CT) xs[xs_index(m, half)] = resid[m] * inv * nw[m];
  ring.release(t++, lane);
  consumer_sync();
}

// Clusters: this block's x_proj partials (rows tid, tid + CT) go to its cluster's first block
// (st.async into cpart[rank], counted on that block's cbar); the first block waits for all of
// them, sums them in rank order and publishes them as partial `cluster index` of P {xr, G /
// cluster}. The first block's wait for layer l completes the barrier's phase l; no block can
// store layer l + 1's partials before that (they need layer l + 1's residual, which needs every
// block's B of layer l, which needs the first blocks' sums), so one buffer and one barrier do.
__device__ __forceinline__ void cluster_partials(int C, int xr, int np, FusedTrap* trap, uint64_t* P, float* cpart,
                                              uint64_t* cbar, int l, float part0, float part1, int tid, uint32_t e) {
  const uint32_t rank = cluster_rank();
  if (rank == 0 && tid == 0) mbar_arrive_expect(cbar, uint32_t(4 * C * xr));
  if (tid < xr) st_async_remote(cpart + rank * xr + tid, part0, cbar, 0);
  if (tid + CT < xr) st_async_remote(cpart + rank * xr + tid + CT, part1, cbar, 0);
  if (rank != 0) return;
  Watchdog wd;
  while (!mbar_try_wait<true>(cbar, uint32_t(l) & 1u)) wd.tick(trap, l, 5, e, 0);
  const int ci = int(cluster_index());
  for (int j = tid; j < xr; j += CT) {
    float sum = 0.f;
    for (int r = 0; r < C; ++r) sum += cpart[r * xr + j];
    st_word(P + size_t(j) * np + ci, sum, e);
  }
}

// A's x_proj partial sums (~40 channels per block by columns, 16 by rows on 130m): the channels
// four at a time, their loads first and four sums, so that the FMA chain is a quarter as long;
// advances cc past the channels taken (the caller finishes the rest one by one).
template <typename T>
__device__ __forceinline__ void x_proj_partials4(const char* tile, int recA, int wx_at, const float* xv, int n,
                                                 int xr, int tid, int& cc, float& part0, float& part1) {
  if (cc + 4 > n) return;
  float p0[4] = {}, p1[4] = {};
  for (; cc + 4 <= n; cc += 4) {
    float w0[4], w1[4], x[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const T* wx = reinterpret_cast<const T*>(tile + size_t(cc + u) * recA + wx_at);
      x[u] = xv[cc + u];
      w0[u] = tid < xr ? to_f32(wx[tid]) : 0.f;
      w1[u] = tid + CT < xr ? to_f32(wx[tid + CT]) : 0.f;
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) p0[u] = fmaf(w0[u], x[u], p0[u]), p1[u] = fmaf(w1[u], x[u], p1[u]);
  }
  part0 += (p0[0] + p0[1]) + (p0[2] + p0[3]);
  part1 += (p1[0] + p1[1]) + (p1[2] + p1[3]);
}

// B for the by-columns kernels (large layers: 2-3 rounds of 16 channels per block): a
// half-warp's channel rounds interleaved, so that their dt_proj dots, reductions and state
// updates overlap instead of running one round after another. Writes the gated y of the
// block's channels into zs (C's input) and the new state.
constexpr int kBRounds = 3;
template <typename T>
__device__ __forceinline__ void b_rounds(const FusedArgs& a, const Slices& s, const float* h, const char* recs, int n,
                                         int c, int l, const float* xd, const float* xch, float* zs, int warp,
                                         int lane) {
  const int l16 = lane & 15, wpos = 2 * warp + (lane >> 4), dtw_at = 16 + 4 * fused_round4(a.N);
  for (int base = 0; base < n; base += 2 * W * kBRounds) {
    int cc[kBRounds];
    const char* rec[kBRounds];
    float dt[kBRounds];
#pragma unroll
    for (int k = 0; k < kBRounds; ++k) {
      cc[k] = base + 2 * W * k + wpos;
      rec[k] = recs + size_t(cc[k] < n ? cc[k] : 0) * s.recB;
      dt[k] = 0.f;
    }
    for (int r = l16; r < a.R; r += 16) {
      const float xv = xd[r];
#pragma unroll
      for (int k = 0; k < kBRounds; ++k)
        if (cc[k] < n) dt[k] = fmaf(to_f32(reinterpret_cast<const T*>(rec[k] + dtw_at)[r]), xv, dt[k]);
    }
#pragma unroll
    for (int k = 0; k < kBRounds; ++k) dt[k] = half_sum(dt[k]);
    float yp[kBRounds];
#pragma unroll
    for (int k = 0; k < kBRounds; ++k) {
      yp[k] = 0.f;
      if (cc[k] >= n) continue;
      const float* rf = reinterpret_cast<const float*>(rec[k]);
      const float delta = softplus(dt[k] + rf[0]), u = xch[c + cc[k]];
      const float* A = rf + 4;
      float* hg = a.ssm_state + (size_t(l) * a.D + s.c0 + c + cc[k]) * a.N;
      for (int q = l16; q < a.N; q += 16) {
        const float hv = fmaf(__expf(delta * A[q]), h[size_t(cc[k]) * a.N + q], delta * xd[a.R + q] * u);
        hg[q] = hv;
        yp[k] = fmaf(xd[a.R + a.N + q], hv, yp[k]);
      }
    }
#pragma unroll
    for (int k = 0; k < kBRounds; ++k) yp[k] = half_sum(yp[k]);
#pragma unroll
    for (int k = 0; k < kBRounds; ++k)
      if (cc[k] < n && l16 == 0) {
        const float* rf = reinterpret_cast<const float*>(rec[k]);
        const float y = fmaf(rf[1], xch[c + cc[k]], yp[k]);
        zs[c + cc[k]] = y * silu(zs[c + cc[k]]);
      }
  }
}

// kCl: the kernel for thread-block clusters (a.cluster > 1); the other one has no cluster code.
// kPr: the kernel that also records the explorer's probes (FusedProbes) for the layers that have
// a slot: z and u in A, x_proj's outputs (block 0), Δ, ‖h‖, y before the gate and h in B, the
// residual in C; the plain kernel has none of that code. kOc: C by columns (a.outcol, clusters
// only), its own instantiation so that the other kernels keep their registers (it spills where
// they do not).
template <typename T, bool kCl, bool kPr, bool kOc>
__device__ void compute(const FusedArgs& a, const Slices& s, char* smem, const FusedSmem& L, const Ring& ring,
                        uint32_t e, uint64_t* cbar, uint64_t* obar, uint64_t* rbar) {
  const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31, b = int(blockIdx.x);
  float* resid = reinterpret_cast<float*>(smem + L.resid);
  float* xs = reinterpret_cast<float*>(smem + L.xs);
  float* acc = reinterpret_cast<float*>(smem + L.acc);
  float* xch = reinterpret_cast<float*>(smem + L.xch);
  float* zs = reinterpret_cast<float*>(smem + L.zs);
  float* xd = reinterpret_cast<float*>(smem + L.xd);
  float* red = reinterpret_cast<float*>(smem + L.red);
  float* kred = reinterpret_cast<float*>(smem + L.kred);  // by rows: gemv_ksplit's partials
  const bool prof = a.prof && b == 0 && tid == 0;
  long long clk[kProfSlots] = {};
  long long tp = prof ? clock64() : 0;
  auto mark = [&](int slot) {  // closes the phase that started at tp
    if (!prof) return;
    const long long now = clock64();
    clk[slot] += now - tp;
    tp = now;
  };
#ifdef MAMBASCOPE_FUSED_TRACE
  // A diagnostic build only (docs/cuda.md, "The step's timeline"): every block's thread 0 stamps
  // (clock64, globaltimer) at fixed points of each layer, into a.prof past the profile slots.
  auto stamp = [&](int layer, int k) {
    if (!a.prof || tid != 0) return;
    unsigned long long* tr = a.prof + kProfSlots + (size_t(b) * (a.n_layer + 1) + layer) * 2 * kFusedTraceStamps;
    tr[2 * k] = clock64();
    tr[2 * k + 1] = global_ns();
  };
#else
  auto stamp = [](int, int) {};
#endif
  // Waits for n exchange words into dst (xs_index layout with `half`); block 0 thread 0 books
  // the time when profiling.
  auto timed_poll = [&](const uint64_t* src, int n, float* dst, int layer, int phase, int slot, int half) {
    const long long t0 = prof ? clock64() : 0;
    poll_words(src, n, dst, e, tid, CT, a.trap, layer, phase, half);
    if (prof) clk[slot] += clock64() - t0;
  };
  unsigned long long wait_acc = 0;
  unsigned long long* wacc = prof ? &wait_acc : nullptr;
  const int km1 = a.k - 1, kp = fused_round4(a.k);
  uint32_t t = 0;
  // outcol: C by columns; the residual words are then G / cluster partials per output, and the
  // recording kernel's residual of a layer is kept when the next one has summed them.
  constexpr bool by_cols = kOc;
  const int r_np = by_cols ? a.G / a.cluster : 0;
  float* rec_resid = nullptr;

  for (int l = 0; l < a.n_layer; ++l) {
    const Words<kOc> w(a, l), next(a, l + 1);
    const float* in_bias = a.layers[l].in_bias;
    const float* out_bias = a.layers[l].out_bias;
    float* conv = a.conv_state + (size_t(l) * a.D + s.c0) * km1;
    float *pe = nullptr, *ph = nullptr;  // this layer's probe slots (kPr), or null
    if constexpr (kPr) {
      const FusedProbes& P = a.probes;
      if (P.slot[l] >= 0) pe = P.base + int64_t(P.slot[l]) * P.small_floats;
      if (P.h_slot[l] >= 0) ph = P.base + P.h_base + int64_t(P.h_slot[l]) * a.D * a.N;
    }
    // ---- A: norm + in_proj + conv + SiLU + x_proj partial sums -------------------------------
    float cs[kFusedMaxConv];  // this thread's channel's conv window, loaded under the wait
#pragma unroll
    for (int j = 0; j < kFusedMaxConv; ++j) cs[j] = (j < km1 && tid < s.nc) ? conv[size_t(tid) * km1 + j] : 0.f;
    stamp(l, 0);
    consumer_sync();
    wait_acc = 0;
    load_and_norm<T>(a, w.R, l == 0, resid, xs, red, ring, t, e, tid, lane, l, wacc, r_np, rec_resid, rbar);
    if (prof) clk[kProfWaitA] += wait_acc;
    stamp(l, 1);
    mark(kProfANorm);
    auto x_rows = [&](int r, float v) {  // x rows (+ z's first)
      if (r < s.nc) acc[r] = v;
      else zs[r - s.nc] = v;
    };
    if constexpr (kOc) gemv_rows<T>(ring, t, s.ra, s.rpt_in, a.dm, xs, tid, x_rows);
    else gemv_ksplit<T>(ring, t, s.ra, s.rpt_in, a.dm, xs, kred, tid, x_rows);
    consumer_sync();
    stamp(l, 2);
    mark(kProfAGemv);
    float part0 = 0.f, part1 = 0.f;  // x_proj rows tid and tid + CT (xr <= 2 CT)
    for (int c = 0; c < s.nc; c += s.cptA) {
      const char* tile = ring.wait(t);
      const int n = min(s.cptA, s.nc - c);
      if (tid >= c && tid < c + n) {
        const float* rec = reinterpret_cast<const float*>(tile + size_t(tid - c) * s.recA);
        const float* cw = rec + 4;
        const float xv = acc[tid] + (in_bias ? in_bias[s.c0 + tid] : 0.f);
        float sum = rec[0];
#pragma unroll
        for (int j = 0; j < kFusedMaxConv; ++j)
          if (j < km1) sum = fmaf(cw[j], cs[j], sum);
        sum = fmaf(cw[km1], xv, sum);
        float* st = conv + size_t(tid) * km1;
#pragma unroll
        for (int j = 0; j < kFusedMaxConv; ++j)
          if (j < km1) st[j] = j + 1 < km1 ? cs[j + 1 < kFusedMaxConv ? j + 1 : j] : xv;
        xch[tid] = silu(sum);
        if constexpr (kPr) {
          if (pe) pe[3 * a.D + s.c0 + tid] = xch[tid];
        }
      }
      consumer_sync();
      int cc = 0;
      x_proj_partials4<T>(tile, s.recA, 16 + 4 * kp, xch + c, n, a.xr, tid, cc, part0, part1);
      for (; cc < n; ++cc) {
        const T* wx = reinterpret_cast<const T*>(tile + size_t(cc) * s.recA + 16 + 4 * kp);
        const float xv = xch[c + cc];
        if (tid < a.xr) part0 = fmaf(to_f32(wx[tid]), xv, part0);
        if (tid + CT < a.xr) part1 = fmaf(to_f32(wx[tid + CT]), xv, part1);
      }
      ring.release(t++, lane);
    }
    stamp(l, 3);
    if constexpr (!kCl) {
      if (tid < a.xr) st_word(w.P + size_t(tid) * a.G + b, part0, e);
      if (tid + CT < a.xr) st_word(w.P + size_t(tid + CT) * a.G + b, part1, e);
    } else {
      cluster_partials(a.cluster, a.xr, a.G / a.cluster, a.trap, w.P, reinterpret_cast<float*>(smem + L.cpart), cbar,
                       l, part0, part1, tid, e);
    }
    stamp(l, 4);
    mark(kProfA);
    // ---- X: x_proj outputs j = b + G·warp (+ G·W ...), summed over the blocks' partials ----
    // Only without fold_x, which is always on with clusters (fused_plan): the by-rows cluster
    // kernels leave this phase's code out (328 instructions; 130m +0.9%, session 19), the
    // by-columns ones keep their code as it was.
    constexpr bool kAlwaysFold = kCl && !kOc;
    if constexpr (!kAlwaysFold) {
      for (int j = b + a.G * warp; !a.fold_x && j < a.xr; j += a.G * W) {
        const uint64_t* src = w.P + size_t(j) * a.G;
        float v[8];
        uint32_t pending = 0;
#pragma unroll
        for (int q = 0; q < 8; ++q)
          if (lane + 32 * q < a.G) pending |= 1u << q;
        Watchdog wd;
        while (pending) {
          uint32_t seen = 0;
#pragma unroll
          for (int q = 0; q < 8; ++q)
            if (pending & (1u << q)) {
              const uint64_t x = ld_word(src + lane + 32 * q);
              if (word_ready(x, e)) v[q] = word_value(x), pending &= ~(1u << q);
              else seen = uint32_t(x >> 32);
            }
          if (pending) wd.tick(a.trap, l, 1, e, seen);
        }
        float sum = 0.f;
#pragma unroll
        for (int q = 0; q < 8; ++q)
          if (lane + 32 * q < a.G) sum += v[q];
        sum = warp_sum(sum);
        if (lane == 0) st_word(w.XD + j, sum, e);
      }
    }
    mark(kProfX);
    // ---- A': the rest of in_proj's z rows, while the x_proj partials travel: only B's gate needs
    // them, so they are off the path from the residual to the exchange (xs still holds the normed
    // input).
    auto z_rows = [&](int r, float v) { zs[s.ra - s.nc + r] = v; };
    if constexpr (kOc) gemv_rows<T>(ring, t, 2 * s.nc - s.ra, s.rpt_in, a.dm, xs, tid, z_rows);
    else gemv_ksplit<T>(ring, t, 2 * s.nc - s.ra, s.rpt_in, a.dm, xs, kred, tid, z_rows);
    consumer_sync();
    if (tid < s.nc) {
      zs[tid] += in_bias ? in_bias[a.D + s.c0 + tid] : 0.f;
      if constexpr (kPr) {
        if (pe) pe[2 * a.D + s.c0 + tid] = zs[tid];
      }
    }
    stamp(l, 5);
    mark(kProfAGemv);
    // ---- B: dt_proj + softplus + state update + D + gate ----------------------------------------
    // fold_x: every partial {xr, G} of this layer (into xs, free between A and C: the z GEMV
    // above has read it by then), then the sums in a fixed order.
    float* part = xs;
    const int np = kCl ? a.G / a.cluster : a.G;  // partials per x_proj output
    if constexpr (kAlwaysFold) timed_poll(w.P, a.xr * np, part, l, 2, kProfWaitB, 0);
    else timed_poll(a.fold_x ? w.P : w.XD, a.fold_x ? a.xr * np : a.xr, a.fold_x ? part : xd, l, 2, kProfWaitB, 0);
    consumer_sync();
    stamp(l, 6);
    if (a.fold_x) {
      for (int j = tid; j < a.xr; j += CT) {  // 8 loads at a time, then their sum in order
        float sum = 0.f;
#pragma unroll 1
        for (int g0 = 0; g0 < np; g0 += 8) {
          float v[8];
#pragma unroll
          for (int g = 0; g < 8; ++g) v[g] = g0 + g < np ? part[j * np + g0 + g] : 0.f;
#pragma unroll
          for (int g = 0; g < 8; ++g)
            if (g0 + g < np) sum += v[g];
        }
        xd[j] = sum;
      }
      consumer_sync();
    }
    if constexpr (kPr) {
      if (pe && b == 0)
        for (int j = tid; j < a.xr; j += CT) pe[4 * a.D + j] = xd[j];
    }
    for (int c = 0; c < s.nc; c += s.cptB) {
      const float* h = reinterpret_cast<const float*>(ring.wait(t));
      const char* recs = ring.wait(t + 1);
      const int n = min(s.cptB, s.nc - c);
      const int l16 = lane & 15;
      if constexpr (kOc && !kPr) b_rounds<T>(a, s, h, recs, n, c, l, xd, xch, zs, warp, lane);
      for (int base = 0; !(kOc && !kPr) && base < n; base += 2 * W) {
        const int cc = base + 2 * warp + (lane >> 4);
        const bool on = cc < n;
        const char* rec = recs + size_t(on ? cc : 0) * s.recB;
        const float* A = reinterpret_cast<const float*>(rec + 16);
        const T* dtw = reinterpret_cast<const T*>(rec + 16 + 4 * fused_round4(a.N));
        float dt = 0.f;
        if (on)
          for (int r = l16; r < a.R; r += 16) dt = fmaf(to_f32(dtw[r]), xd[r], dt);
        dt = half_sum(dt);
        // The gate, D and C are read before the state's global stores, which the compiler must
        // otherwise keep them behind (it cannot tell the pointers apart): off the chain to y.
        const float gate = on ? silu(zs[c + cc]) : 0.f, Dv = reinterpret_cast<const float*>(rec)[1];
        const float delta = softplus(dt + reinterpret_cast<const float*>(rec)[0]);
        const float u = on ? xch[c + cc] : 0.f;
        float yp = 0.f, sq = 0.f;
        if (on) {
          float* hg = a.ssm_state + (size_t(l) * a.D + s.c0 + c + cc) * a.N;
          for (int q = l16; q < a.N; q += 16) {
            const float Cq = xd[a.R + a.N + q];
            const float hv = fmaf(__expf(delta * A[q]), h[size_t(cc) * a.N + q], delta * xd[a.R + q] * u);
            hg[q] = hv;
            yp = fmaf(Cq, hv, yp);
            if constexpr (kPr) {
              sq = fmaf(hv, hv, sq);
              if (ph) ph[size_t(s.c0 + c + cc) * a.N + q] = hv;
            }
          }
        }
        yp = half_sum(yp);
        if constexpr (kPr) sq = half_sum(sq);
        if (on && l16 == 0) {
          const float y = fmaf(Dv, u, yp);
          const float yg = y * gate;
          if (by_cols) zs[c + cc] = yg;  // C's input: this block's channels only
          else st_word(w.Y + s.c0 + c + cc, yg, e);
          if constexpr (kPr) {
            if (pe) {
              const int cg = s.c0 + c + cc;
              pe[cg] = delta;
              pe[a.D + cg] = sqrtf(sq);
              if (a.probes.ypre_at >= 0) pe[a.probes.ypre_at + cg] = y;
            }
          }
        }
      }
      ring.release(t, lane);
      ring.release(t + 1, lane);
      t += 2;
    }
    stamp(l, 7);
    mark(kProfB);
    // ---- C: out_proj + residual --------------------------------------------------------------
    if (by_cols) {
      consumer_sync();  // every channel's gated y in zs
      wait_acc = 0;
      out_columns<T>(a, ring, t, s.nc, s.rpt_in, zs, reinterpret_cast<float*>(smem + L.ored),
                     reinterpret_cast<float*>(smem + L.orecv), obar, next.R, out_bias, l, e, tid, wacc);
      if constexpr (kPr) {
        rec_resid = pe && b == 0 && a.probes.resid_at >= 0 ? pe + a.probes.resid_at : nullptr;
      }
      if (prof) clk[kProfWaitC] += wait_acc;
      mark(kProfC);
      continue;
    }
    timed_poll(w.Y, a.D, xs, l, 3, kProfWaitC, xs_half<T>(a.D));  // the out_proj GEMV's x
    consumer_sync();
    stamp(l, 8);
    gemv_ksplit<T>(ring, t, s.mc, s.rpt_out, a.D, xs, kred, tid, [&](int r, float v) {
      const int m = s.m0 + r;
      const float nr = resid[m] + v + (out_bias ? out_bias[m] : 0.f);
      st_word(next.R + m, nr, e);
      if constexpr (kPr) {
        if (pe && a.probes.resid_at >= 0) pe[a.probes.resid_at + m] = nr;
      }
    });
    stamp(l, 9);
    mark(kProfC);
  }

  // ---- F: final norm, lm_head, greedy sampling ------------------------------------------------
  uint32_t* pen = reinterpret_cast<uint32_t*>(smem + L.pen);
  const bool penal = a.sample && a.rep_penalty != 1.f && a.window > 0;
  if (penal) {
    const int64_t nr = a.counters[0] < a.window ? a.counters[0] : a.window;
    for (int i = tid; i < nr; i += CT) {
      const int id = a.ring[i] - s.v0;
      if (id >= 0 && id < s.vc) atomicOr(&pen[id >> 5], 1u << (id & 31));
    }
  }
  stamp(a.n_layer, 0);
  consumer_sync();
  wait_acc = 0;
  load_and_norm<T>(a, Words<kOc>(a, a.n_layer).R, a.n_layer == 0, resid, xs, red, ring, t, e, tid, lane,
                   a.n_layer, wacc, r_np, rec_resid, rbar);
  if (prof) clk[kProfWaitF] += wait_acc;
  stamp(a.n_layer, 1);
  float lv[kFusedMaxAlt];  // a row owner's (lane 0 or 16) top 8 and online softmax over its rows (ascending ids)
  int li[kFusedMaxAlt];
#pragma unroll
  for (int j = 0; j < kFusedMaxAlt; ++j) lv[j] = -INFINITY, li[j] = 0x7fffffff;
  float wm = -INFINITY, wz = 0.f;
  gemv_rows<T, !kOc, !kOc>(ring, t, s.vc, s.rpt_in, a.dm, xs, tid, [&](int row, float v) {
    a.logits[s.v0 + row] = v;
    if (!a.sample) return;
    if (penal && (pen[row >> 5] >> (row & 31) & 1u)) v = v > 0.f ? v / a.rep_penalty : v * a.rep_penalty;
    if (v == -INFINITY) return;
    if (v > wm) wz = wz * __expf(wm - v) + 1.f, wm = v;
    else wz += __expf(v - wm);
    if (v > lv[kFusedMaxAlt - 1]) {  // ties keep the lower id first
      float x = v;
      int xi = s.v0 + row;
#pragma unroll
      for (int j = 0; j < kFusedMaxAlt; ++j)
        if (x > lv[j]) {
          const float tv = lv[j];
          const int ti = li[j];
          lv[j] = x, li[j] = xi, x = tv, xi = ti;
        }
    }
  });
  stamp(a.n_layer, 2);
  mark(kProfF);
  if (a.sample) {
    // Row owners (lanes 0 and 16 of each warp: gemv_rows) publish their lists; warp 0 merges
    // them into this block's top 8 and (max, sum), which go out as exchange words.
    float* cv = reinterpret_cast<float*>(smem + L.cand);  // [owner][8 values, 8 ids, max, sum]
    constexpr int CW = kFusedFinalWords, NO = 2 * W;
    static_assert(NO <= W + kFusedTileRows && NO <= 32, "owner lists fit the cand area and one warp");
    if ((lane & 15) == 0) {
      float* o = cv + (2 * warp + (lane >> 4)) * CW;
#pragma unroll
      for (int j = 0; j < kFusedMaxAlt; ++j) o[j] = lv[j], o[kFusedMaxAlt + j] = __int_as_float(li[j]);
      o[2 * kFusedMaxAlt] = wm;
      o[2 * kFusedMaxAlt + 1] = wz;
    }
    consumer_sync();
    uint64_t* fin = a.ll + int64_t(a.n_layer + 1) * fused_ll_layer_words(a);
    float* top_v = red;                               // [8]
    int* top_i = reinterpret_cast<int*>(red + 16);    // [8]
    if (warp == 0) {
      merge_top(cv, NO, CW, kFusedMaxAlt, lane, top_v, top_i);
      float m = lane < NO ? cv[lane * CW + 2 * kFusedMaxAlt] : -INFINITY;
      float M = m;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
      const float z = (lane < NO && m != -INFINITY) ? cv[lane * CW + 2 * kFusedMaxAlt + 1] * __expf(m - M) : 0.f;
      const float Z = warp_sum(z);
      __syncwarp();
      uint64_t* mine = fin + size_t(b) * kFusedFinalWords;
      if (lane < kFusedMaxAlt) {
        st_word(mine + lane, top_v[lane], e);
        st_word(mine + kFusedMaxAlt + lane, __int_as_float(top_i[lane]), e);
      }
      if (lane == 0) st_word(mine + 2 * kFusedMaxAlt, M, e), st_word(mine + 2 * kFusedMaxAlt + 1, Z, e);
    }
    if (b == 0) {
      // Block 0 merges the blocks' lists the same way.
      float* all = reinterpret_cast<float*>(smem + L.ring);  // the ring is drained by now
      poll_words(fin, a.G * kFusedFinalWords, all, e, tid, CT, a.trap, a.n_layer, 4);
      consumer_sync();
      if (warp == 0) {
        const int k = a.n_alt > 1 ? a.n_alt : 1;
        merge_top(all, a.G, kFusedFinalWords, k, lane, top_v, top_i);
        float M = -INFINITY;
        for (int bb = lane; bb < a.G; bb += 32) M = fmaxf(M, all[bb * kFusedFinalWords + 2 * kFusedMaxAlt]);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
        float Z = 0.f;
        for (int bb = lane; bb < a.G; bb += 32) {
          const float mb = all[bb * kFusedFinalWords + 2 * kFusedMaxAlt];
          if (mb != -INFINITY) Z += all[bb * kFusedFinalWords + 2 * kFusedMaxAlt + 1] * __expf(mb - M);
        }
        Z = warp_sum(Z);
        __syncwarp();
        if (lane < a.n_alt) {
          a.host->ids[1 + lane] = top_i[lane];
          a.host->prob[lane] = __expf(top_v[lane] - M) / Z;
        }
        if (lane == 0) {
          // Z >= 1 where the logits are finite (the largest one's term is 1); a NaN logit makes
          // its block's sum, and so Z, NaN; +inf makes M infinite; no logit above -inf leaves
          // Z at 0 (and the lists empty). Then the host gets the marker, and the next input is
          // a valid id.
          const bool finite = Z >= 1.f && M < INFINITY;
          const int token = finite ? top_i[0] : 0;
          a.host->ids[0] = finite ? token : kNonFiniteToken;
          a.out[0] = token;
          if (a.window > 0) a.ring[a.counters[0] % a.window] = token;
          a.counters[0] += 1;
          a.counters[1] += 1;
        }
      }
    }
    stamp(a.n_layer, 3);
    mark(kProfMerge);
  }
  if (prof) {
    for (int q = 0; q < kProfRing; ++q) a.prof[q] += (unsigned long long)clk[q];
  }
}

#endif  // __CUDA_ARCH__ >= 900

template <typename T, bool kCl, bool kPr, bool kOc>
__global__ void __launch_bounds__(kFusedThreads, 1) fused_step_kernel(const FusedArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) char smem[];
  const FusedSmem L = fused_smem_layout(a, kOc);
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + L.bars);
  uint64_t* empty = full + a.n_slots;
  uint64_t* cbar = empty + a.n_slots;  // clusters: the partials' barrier (first block)
  uint64_t* obar = cbar + 1;           // outcol: this block's slice of the residual partials
  uint64_t* rbar = cbar + 2;           // outcol: the residual from the blocks of the cluster
  __shared__ uint32_t epoch_s;
  __shared__ uint64_t done;  // the compute warps' end of the step (the watchdog warp's)
  __shared__ unsigned long long ring_cycles, t_start, ns_start;
  const int tid = int(threadIdx.x);
  if (tid == 0) {
    for (int i = 0; i < a.n_slots; ++i) {
      mbar_init(&full[i], 1);
      mbar_init(&empty[i], W);
    }
    mbar_init(cbar, 1);
    mbar_init(&done, W);
    if (kOc) mbar_init(obar, 1), mbar_init(rbar, 1);
    mbar_fence_init();
    epoch_s = *reinterpret_cast<volatile uint32_t*>(a.sync) + 1u;
    ring_cycles = 0;
    t_start = clock64();
    ns_start = global_ns();
  }
  const int vc = (a.V + a.G - 1) / a.G;
  for (int i = tid; i < (vc + 31) / 32; i += blockDim.x) reinterpret_cast<uint32_t*>(smem + L.pen)[i] = 0;
  __syncthreads();
  if constexpr (kCl) cluster_sync_all();  // the first block's cbar is initialised for every block
  const Slices s(a, int(sizeof(T)));
  if (tid >= CT) {
    if (tid == CT) produce<kOc>(a, s, smem + L.ring, full, empty);
    if (tid == CT + 32) watch(a, &done);
    return;
  }
  const bool prof = a.prof && blockIdx.x == 0 && tid == 0;
  const Ring ring{smem + L.ring, full, empty, a.slot_bytes, a.n_slots, Ring::magic_for(a.n_slots),
                  prof ? &ring_cycles : nullptr};
  compute<T, kCl, kPr, kOc>(a, s, smem, L, ring, epoch_s, cbar, obar, rbar);
  if ((tid & 31) == 0) mbar_arrive(&done);
  if (tid == 0) {
    if (prof) {
      a.prof[kProfRing] += ring_cycles;
      a.prof[kProfStep] += clock64() - t_start;
      a.prof[kProfNs] += global_ns() - ns_start;
      a.prof[kProfSteps] += 1;
    }
    // The last block to finish publishes the epoch: every block has read it by then.
    if (atomicAdd(&a.sync[1], 1u) == unsigned(a.G) - 1u) {
      a.sync[1] = 0;
      a.sync[0] = epoch_s;
    }
  }
#else
  __trap();  // fused_plan() never launches this below sm_90
#endif
}

}  // namespace

// The kernels for the host side (decode_fused_plan.cpp): its attributes, occupancy and launch.
const void* fused_step_kernel_for(DType dt, bool cluster, bool outcol, bool probes) {
  const void* k = nullptr;
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    if (cluster && outcol)
      k = probes ? reinterpret_cast<const void*>(fused_step_kernel<T, true, true, true>)
                 : reinterpret_cast<const void*>(fused_step_kernel<T, true, false, true>);
    else if (cluster)
      k = probes ? reinterpret_cast<const void*>(fused_step_kernel<T, true, true, false>)
                 : reinterpret_cast<const void*>(fused_step_kernel<T, true, false, false>);
    else
      k = probes ? reinterpret_cast<const void*>(fused_step_kernel<T, false, true, false>)
                 : reinterpret_cast<const void*>(fused_step_kernel<T, false, false, false>);
  });
  return k;
}

}  // namespace mambascope::cuda
