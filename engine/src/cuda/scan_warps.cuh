// The scan warps of the selective scan (included by scan_kernel.cuh): the recurrence itself.
// A lane owns S states of one channel in registers for the whole sequence. Per step and state:
// one ex2 (the SFU), FMUL Δ·A, FMUL B·Δu, FFMA h, FFMA C·h. With one or two scan warps per SM
// sub-partition, in-order issue decides the speed: the exps of step t + 1 are issued inside the
// FMA chain of step t (so the SFU is fed while the chain runs, instead of in bursts that stall
// the warp), operands are loaded a register block ahead, and the pipeline runs across tile
// boundaries without draining.
#pragma once

namespace mambascope::cuda {

// Where a scan lane sits. A warp's 16-byte shared loads return in 2 wavefronts instead of 4 when
// lanes n and n ^ 1, or lanes n and n ^ 2, read the same address (the return path packs such
// pairs). B and C are the same for every channel, (Δ, Δu) the same for a channel's lanes. With a
// channel's TPC lanes adjacent, lanes n ^ 1 and n ^ 2 hold other states of the same channel, so
// for TPC >= 4 the B/C loads took 4 wavefronts (H200 ncu, 4096 x 8192: 58% of the kernel's
// shared wavefronts, L1 77% busy). There lane bit 0 picks one of a pair of channels and the bits
// above it the lane's state group g (then the remaining channel bits): lanes n and n ^ 1 (two
// channels, the same states) share B/C, lanes n and n ^ 2 (one channel) share (Δ, Δu). TPC = 2
// already pairs lanes n and n ^ 2 on B/C and keeps adjacent lanes. kGStride: the lane distance
// between a channel's consecutive state groups, the shuffle distance of its C·h sum.
template <class V>
struct ScanLanes {
  static constexpr bool kPaired = V::TPC >= 4;
  static constexpr int kGStride = kPaired ? 2 : 1;
  static constexpr int kLog2Tpc = V::TPC >= 16 ? 4 : V::TPC >= 8 ? 3 : V::TPC >= 4 ? 2 : V::TPC >= 2 ? 1 : 0;
  // The lane's state group among its channel's TPC lanes.
  static __device__ __forceinline__ int group(int lane) {
    return kPaired ? (lane >> 1) & (V::TPC - 1) : lane & (V::TPC - 1);
  }
  // The lane's channel among the warp's CW.
  static __device__ __forceinline__ int channel(int lane) {
    return kPaired ? (lane & 1) | ((lane >> (kLog2Tpc + 1)) << 1) : lane >> kLog2Tpc;
  }
};

// Operands of one register block of U steps of a scan lane.
template <class V>
struct ScanOps {
  float dl[V::U], dx[V::U];            // Δ, Δ·u
  float b[V::U][V::S], c[V::U][V::S];  // B, C of the lane's states
};

// Where a scan lane reads one prep stage.
struct ScanSrc {
  const float* du;  // (Δ, Δu) pairs of the lane's channel
  const float* B;   // the lane's first state (state rows) or states (step rows)
  const float* C;
};

// What a scan lane needs to write the per-step probes (general variant only).
struct ScanProbe {
  float* hnorm;  // at (t, channel): hnorm[t * d]; null: off
  float* hout;   // at (t, channel, state 0): hout[t * d * N]; null: off
  int64_t hout_first;  // first in-tile step that h_out records (may be negative or >= tt)
  int nt, d, N, g;
  bool valid;
};

template <class V, bool kConstBC>
__device__ __forceinline__ void load_ops(ScanOps<V>& o, const ScanSrc& src, int t, int rs_state,
                                         const float (&bk)[V::S], const float (&ck)[V::S]) {
  constexpr int U = V::U, S = V::S;
  const float* du = src.du + 2 * t;
  if constexpr (U == 4) {
    const float4 v0 = lds4(du), v1 = lds4(du + 4);
    o.dl[0] = v0.x; o.dx[0] = v0.y; o.dl[1] = v0.z; o.dx[1] = v0.w;
    o.dl[2] = v1.x; o.dx[2] = v1.y; o.dl[3] = v1.z; o.dx[3] = v1.w;
  } else if constexpr (U == 2) {
    const float4 v = lds4(du);
    o.dl[0] = v.x; o.dx[0] = v.y; o.dl[1] = v.z; o.dx[1] = v.w;
  } else {
    const float2 v = *reinterpret_cast<const float2*>(du);
    o.dl[0] = v.x; o.dx[0] = v.y;
  }
  if constexpr (kConstBC) {
#pragma unroll
    for (int j = 0; j < U; ++j)
#pragma unroll
      for (int s = 0; s < S; ++s) o.b[j][s] = bk[s], o.c[j][s] = ck[s];
  } else if constexpr (V::kStateRows) {  // U == 4: one 16-byte load per state covers the block
#pragma unroll
    for (int s = 0; s < S; ++s) {
      const float4 vb = lds4(src.B + s * rs_state + t), vc = lds4(src.C + s * rs_state + t);
      o.b[0][s] = vb.x; o.b[1][s] = vb.y; o.b[2][s] = vb.z; o.b[3][s] = vb.w;
      o.c[0][s] = vc.x; o.c[1][s] = vc.y; o.c[2][s] = vc.z; o.c[3][s] = vc.w;
    }
  } else {  // one row per step, the lane's S states contiguous
#pragma unroll
    for (int j = 0; j < U; ++j)
#pragma unroll
      for (int q = 0; q < S / 4; ++q) {
        const float4 vb = lds4(src.B + (t + j) * V::NP + 4 * q);
        const float4 vc = lds4(src.C + (t + j) * V::NP + 4 * q);
        o.b[j][4 * q] = vb.x; o.b[j][4 * q + 1] = vb.y; o.b[j][4 * q + 2] = vb.z; o.b[j][4 * q + 3] = vb.w;
        o.c[j][4 * q] = vc.x; o.c[j][4 * q + 1] = vc.y; o.c[j][4 * q + 2] = vc.z; o.c[j][4 * q + 3] = vc.w;
      }
  }
}

// The channel's TPC lanes add up their C·h of one register block (steps t .. t + U - 1): a
// reduce-scatter over the U steps (lane g ends with step g mod U; TPC >= U in every variant),
// then a sum over the remaining lanes. Lanes g < U store one whole sum each: 4 consecutive
// floats per channel for U = 4. Called one block late (after the next block's steps), so that
// the shuffles' latency hides behind that block's arithmetic instead of stalling the warp at
// the loop's back edge.
template <class V>
__device__ __forceinline__ void reduce_scatter(float (&y)[V::U], int g) {
  constexpr int U = V::U;
  constexpr int kG = ScanLanes<V>::kGStride;
#pragma unroll
  for (int half = U / 2; half >= 1; half /= 2) {
    const bool up = (g & half) != 0;
#pragma unroll
    for (int i = 0; i < half; ++i) {
      const float send = up ? y[i] : y[i + half];
      const float keep = up ? y[i + half] : y[i];
      y[i] = keep + __shfl_xor_sync(0xffffffffu, send, half * kG);
    }
  }
#pragma unroll
  for (int o = U; o < V::TPC; o *= 2) y[0] += __shfl_xor_sync(0xffffffffu, y[0], o * kG);
}
template <class V>
__device__ __forceinline__ void reduce_store(float (&y)[V::U], float* part, int t) {
  const int g = ScanLanes<V>::group(int(threadIdx.x) & 31);
  reduce_scatter<V>(y, g);
  if (g < V::U) part[t + g] = y[0];
}

// One register block: the chain of U steps on `cur`, with the exps of each next step (the
// block's own, or the first of `nxt`) issued inside the step before. `a` holds the exps of
// cur's first step on entry and of nxt's first step on return; y gets the lane's share of C·h
// per step.
template <class V>
__device__ __forceinline__ void run_steps(const ScanOps<V>& cur, const ScanOps<V>& nxt,
                                          float (&a)[V::S], float (&h)[V::S],
                                          const float (&A2)[V::S], float (&y)[V::U], int t,
                                          const ScanProbe* probe) {
  constexpr int U = V::U, S = V::S;
  [[maybe_unused]] float sq[U];  // ‖h‖² of the lane's states per step (general variant, probes)
#pragma unroll
  for (int j = 0; j < U; ++j) {
    float aj[S];
#pragma unroll
    for (int s = 0; s < S; ++s) aj[s] = a[s];
    const float dn = j + 1 < U ? cur.dl[j + 1 < U ? j + 1 : 0] : nxt.dl[0];
#pragma unroll
    for (int s = 0; s < S; ++s) a[s] = ex2_approx(dn * A2[s]);
    float acc = 0.f;
#pragma unroll
    for (int s = 0; s < S; ++s) {
      h[s] = fmaf(aj[s], h[s], cur.b[j][s] * cur.dx[j]);
      acc = s == 0 ? cur.c[j][s] * h[s] : fmaf(cur.c[j][s], h[s], acc);
    }
    y[j] = acc;
    if constexpr (V::kGeneral) {
      const int tj = t + j;
      if (probe->hnorm) {
        float q = 0.f;
#pragma unroll
        for (int s = 0; s < S; ++s) q = fmaf(h[s], h[s], q);
        sq[j] = q;
      }
      if (probe->hout && probe->valid && tj < probe->nt && tj >= probe->hout_first) {
        float* dst = probe->hout + (tj - probe->hout_first) * int64_t(probe->d) * probe->N;
#pragma unroll
        for (int s = 0; s < S; ++s)
          if (probe->g * S + s < probe->N) dst[probe->g * S + s] = h[s];
      }
    }
  }
  if constexpr (V::kGeneral) {
    // ‖h‖ of the block's U steps: the squares summed over the channel's TPC lanes as C·h is
    // (lane g < U ends with step g's), then one root and one store per lane, instead of a
    // shuffle chain and a store per step.
    if (probe->hnorm) {
      reduce_scatter<V>(sq, probe->g);
      if (probe->g < U && probe->valid && t + probe->g < probe->nt)
        probe->hnorm[int64_t(t + probe->g) * probe->d] = sqrtf(sq[0]);
    }
  }
}

// One lane's partial C·h of one register block (steps t .. t + U - 1) with two lanes per
// channel (V::kParts == 2), one shared store into `row`: the channel's (Δ, Δu) row of the
// tile's prep stage, offset by g·U. The block's 2U floats there were read by the whole warp a
// block earlier, and the finish reads the partials before the prep warps write that stage again
// (scan_prep.cuh, gather_ch).
template <class V>
__device__ __forceinline__ void store_parts(const float (&y)[V::U], float* row, int t) {
  constexpr int U = V::U;
  float* q = row + 2 * t;
  if constexpr (U == 4) *reinterpret_cast<float4*>(q) = make_float4(y[0], y[1], y[2], y[3]);
  else if constexpr (U == 2) *reinterpret_cast<float2*>(q) = make_float2(y[0], y[1]);
  else *q = y[0];
}

// The scan warps: state in registers for the whole sequence; C·h of each step goes to shared
// memory (whole sums, or two lanes' partials) for the prep warps' finish.
template <typename T, class V>
__device__ __forceinline__ void scan_warps(const ScanParams& p, const ScanLaunch& k,
                                           const ScanSmem& lay, unsigned char* smem, int warp,
                                           int lane, const ScanItem& it, int64_t ntiles) {
  constexpr int S = V::S, TPC = V::TPC, U = V::U;
  static_assert(TPC >= U, "the reduce-scatter of C·h needs a lane per step of a block");
  constexpr float kLog2e = 1.4426950408889634f;
  const int N = p.N, d = p.d, tt = k.tt, b = it.b;
  const int g = ScanLanes<V>::group(lane), c = warp * V::CW + ScanLanes<V>::channel(lane);
  const int gc = it.c0 + c;
  const bool cvalid = gc < d;
  // A chunk or span piece after a group's first starts from the state its predecessor
  // published (scan_chunks.cuh).
  if (it.wait_prev) wait_chunk_start(k, it);
  const float* h_in = it.wait_prev ? chunk_state(p, k) : p.h;
  // Padded states (n >= N) and channels (>= d) have A = 0 and B = C = 0 (or Δ = 0): they stay 0.
  float A2[S], h[S], bk[S], ck[S];
#pragma unroll
  for (int s = 0; s < S; ++s) {
    const int n = g * S + s;
    const bool ok = cvalid && n < N;
    const int64_t cn = int64_t(gc) * N + n;
    A2[s] = ok ? p.A[cn] * kLog2e : 0.f;
    h[s] = ok && h_in ? __ldcg(h_in + (int64_t(b) * d + gc) * N + n) : 0.f;
    bk[s] = ok && p.B_const ? p.B_const[cn] : 0.f;
    ck[s] = ok && p.B_const ? p.C_const[cn] : 0.f;
  }
  const int rs_state = TPC * lay.rsb;  // rows of a lane's consecutive states (state rows)
  auto src_of = [&](int st) {
    const unsigned char* prep = smem + lay.prep0 + st * lay.prep_stage;
    const int b_off = V::kStateRows ? g * lay.rsb : g * S;
    return ScanSrc{reinterpret_cast<const float*>(prep + lay.du) + c * lay.rsd,
                   reinterpret_cast<const float*>(prep + lay.bc_B) + b_off,
                   reinterpret_cast<const float*>(prep + lay.bc_C) + b_off};
  };
  const int p_off = c * lay.rsp;
  // Where this lane's C·h of a tile in stage st goes: the output stage's row of its channel
  // (whole sums), or its (Δ, Δu) row (partials).
  auto part_of = [&](int st) {
    if (V::kParts == 1) return reinterpret_cast<float*>(smem + lay.part0 + st * lay.part_stage) + p_off;
    return reinterpret_cast<float*>(smem + lay.prep0 + st * lay.prep_stage + lay.du) + c * lay.rsd + g * U;
  };
  auto put = [&](float (&y)[U], float* part, int t) {
    if constexpr (V::kParts == 1) reduce_store<V>(y, part, t);
    else store_parts<V>(y, part, t);
  };

  // The whole sequence with constant or per-step B, C. Two operand buffers alternate (no
  // register moves); tiles alternate between the two stages. tt / U is even.
  auto run = [&](auto const_bc) {
    constexpr bool kConstBC = decltype(const_bc)::value;
    ScanOps<V> opA, opB;
    float a[S];
    [[maybe_unused]] ScanProbe probe{};
    wait_stage_full<V>(0, warp);
    load_ops<V, kConstBC>(opA, src_of(0), 0, rs_state, bk, ck);
#pragma unroll
    for (int s = 0; s < S; ++s) a[s] = ex2_approx(opA.dl[0] * A2[s]);
    for (int64_t kt = 0; kt < ntiles; ++kt) {
      const int st = int(kt & 1);
      const ScanSrc src = src_of(st);
      float* part = part_of(st);
      const ScanProbe* pr = nullptr;
      if constexpr (V::kGeneral) {
        const int64_t t0 = kt * tt;
        probe.nt = int(p.L - t0 < tt ? p.L - t0 : tt);
        probe.d = d;
        probe.N = N;
        probe.g = g;
        probe.valid = cvalid;
        probe.hnorm = p.hnorm_out ? p.hnorm_out + (int64_t(b) * p.L + t0) * d + gc : nullptr;
        probe.hout_first = p.h_out_from - t0;
        probe.hout = p.h_out ? p.h_out + (int64_t(b) * (p.L - p.h_out_from) * d + gc) * N : nullptr;
        pr = &probe;
      }
      // Blocks alternate between opA (even) and opB (odd); tt / U is even and >= 4. Each
      // block's C·h sums are reduced and stored after the next block's steps.
      float yA[U], yB[U];
      load_ops<V, kConstBC>(opB, src, U, rs_state, bk, ck);
      run_steps<V>(opA, opB, a, h, A2, yA, 0, pr);
      int t = U;
      for (; t < tt - U; t += 2 * U) {
        load_ops<V, kConstBC>(opA, src, t + U, rs_state, bk, ck);
        run_steps<V>(opB, opA, a, h, A2, yB, t, pr);
        put(yA, part, t - U);
        load_ops<V, kConstBC>(opB, src, t + 2 * U, rs_state, bk, ck);
        run_steps<V>(opA, opB, a, h, A2, yA, t + U, pr);
        put(yB, part, t);
      }
      // The next tile's first block is loaded before this tile's last one runs (its prep
      // stage is full long before: the prep warps run a tile ahead). After the last tile opA
      // keeps stale but finite operands whose exps are never used.
      if (kt + 1 < ntiles) {
        wait_stage_full<V>(st ^ 1, warp);
        load_ops<V, kConstBC>(opA, src_of(st ^ 1), 0, rs_state, bk, ck);
      }
      run_steps<V>(opB, opA, a, h, A2, yB, t, pr);
      put(yA, part, t - U);
      put(yB, part, t);
      named_arrive_id(kBarDone + st, V::kThreads);
    }
  };
  if constexpr (V::kGeneral) {
    if (p.B_const) run(std::true_type{});
    else run(std::false_type{});
  } else {
    run(std::false_type{});
  }

  const bool pass_on = it.pass_on;
  float* h_end = pass_on ? chunk_state(p, k) : p.h;
  if (h_end) {
#pragma unroll
    for (int s = 0; s < S; ++s) {
      const int n = g * S + s;
      if (cvalid && n < N) h_end[(int64_t(b) * d + gc) * N + n] = h[s];
    }
  }
  if (pass_on) publish_chunk_end(k, it);
}

}  // namespace mambascope::cuda
