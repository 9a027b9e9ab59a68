// The fused selective-scan kernel, included once per storage type by scan_{bf16,f16,f32}.cu.
//
// Design (docs/cuda.md has the measurements behind it):
// - A thread owns one channel and S consecutive states of it; the states live in registers for
//   the whole sequence, so nothing of size L·d·N is ever stored. The TPC = N/S threads of a
//   channel are neighbouring lanes of one warp.
// - Time is walked in tiles of TT tokens. The block copies a tile's u, dt, z, B, C global ->
//   shared with 16-byte cp.async one tile ahead. Then, per tile:
//   * prep: the block turns B and C into fp32 rows per state (Bt {n, t}); the TPC lanes of a
//     channel split its steps for Δ = softplus(dt + bias) and Δ·u, stored per channel
//     (du {c, t}). Both layouts make a step group's operands contiguous: 16-byte loads with
//     constant offsets, no index arithmetic in the loop;
//   * scan: groups of kG = 8 steps; the loads and exp2 of a group do not depend on h, so only
//     the FMAs form the serial chain; exp(Δ·A) = exp2(Δ · A·log2 e) with A·log2 e folded once;
//   * C·h is summed over the TPC lanes by a reduce-scatter over the 8 steps (7 shuffles per
//     group, not 8·log2 TPC), which leaves each lane holding whole outputs: it adds D·u, gates
//     with SiLU(z) and stores them.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_types.cuh"
#include "cuda/scan.hpp"

namespace mambascope::cuda {

// The launch shape, chosen on the host (scan.cu) and read by the kernel.
struct ScanLaunch {
  int cb;       // channels per block (power of two)
  int cb_log2;
  int tpc;      // threads per channel (power of two, <= 32)
  int tt;       // tokens per tile (multiple of 8)
  int np;       // states padded to tpc * S
  bool vec_main, vec_bc;  // 16-byte copies usable (alignment and divisibility checked)
};

// Shared-memory layout, computed identically on host and device. Offsets in bytes.
struct ScanSmem {
  int stage_bytes, u, dt, z, B, C, du, Bt, Ct, total;
  int du_stride, bt_stride;  // row strides in float2 / float
};
__host__ __device__ inline int align16(int x) { return (x + 15) & ~15; }
__host__ __device__ inline ScanSmem scan_smem(const ScanLaunch& k, int N, int elem) {
  ScanSmem s{};
  s.u = 0;                                         // T {tt, cb}
  s.dt = s.u + align16(k.tt * k.cb * elem);        // T {tt, cb}
  s.z = s.dt + align16(k.tt * k.cb * elem);        // T {tt, cb}
  s.B = s.z + align16(k.tt * k.cb * elem);         // T {tt, N}
  s.C = s.B + align16(k.tt * N * elem);            // T {tt, N}
  s.stage_bytes = s.C + align16(k.tt * N * elem);
  // Row strides padded (still 16-byte multiples) so that column writes spread over banks.
  s.du_stride = k.tt + 2;
  s.bt_stride = k.tt + 4;
  s.du = 2 * s.stage_bytes;                        // float2 {cb, tt}: (Δ, Δ·u) per channel
  s.Bt = s.du + k.cb * s.du_stride * 8;            // float {np, tt}: B per state
  s.Ct = s.Bt + k.np * s.bt_stride * 4;            // float {np, tt}: C per state
  s.total = s.Ct + k.np * s.bt_stride * 4;
  return s;
}

template <typename T, int S>
__global__ void __launch_bounds__(256) selective_scan_kernel(const ScanParams p, const ScanLaunch k) {
  constexpr int VEC = 16 / sizeof(T);
  constexpr int kG = 8;
  constexpr float kLog2e = 1.4426950408889634f;
  const int CB = k.cb, TPC = k.tpc, TT = k.tt, NP = k.np, N = p.N, d = p.d;
  const int64_t L = p.L;
  const int b = blockIdx.y, c0 = blockIdx.x * CB;
  const int tid = threadIdx.x, nthr = blockDim.x;
  const int cl = tid / TPC, g = tid - cl * TPC, c = c0 + cl;
  const bool cvalid = c < d;

  extern __shared__ __align__(16) unsigned char smem[];
  const ScanSmem lay = scan_smem(k, N, sizeof(T));
  const int DS = lay.du_stride, BS = lay.bt_stride;
  auto stage_ptr = [&](int stage, int off) {
    return reinterpret_cast<T*>(smem + stage * lay.stage_bytes + off);
  };
  float2* du = reinterpret_cast<float2*>(smem + lay.du);  // {CB, DS}
  float* Bt = reinterpret_cast<float*>(smem + lay.Bt);     // {NP, BS}
  float* Ct = reinterpret_cast<float*>(smem + lay.Ct);     // {NP, BS}

  const T* gu = static_cast<const T*>(p.u) + b * p.bsu;
  const T* gdt = p.dt_const ? nullptr : static_cast<const T*>(p.dt) + b * p.bsdt;
  const T* gz = p.z ? static_cast<const T*>(p.z) + b * p.bsz : nullptr;
  const T* gB = p.B_const ? nullptr : static_cast<const T*>(p.B) + b * p.bsb;
  const T* gC = p.B_const ? nullptr : static_cast<const T*>(p.C) + b * p.bsc;
  T* gy = static_cast<T*>(p.y) + b * p.bsy;

  // Padded states (n >= N) keep B = C = 0: their rows are zeroed once and never written.
  for (int i = tid; i < (NP - N) * BS; i += nthr) Bt[N * BS + i] = Ct[N * BS + i] = 0.f;

  // Issues the copies of tile `tile` into `stage` (one cp.async group per tile).
  auto load_tile = [&](int64_t tile, int stage) {
    const int64_t t0 = tile * TT;
    const int nt = int(L - t0 < TT ? L - t0 : TT);
    T* su = stage_ptr(stage, lay.u);
    T* sdt = stage_ptr(stage, lay.dt);
    T* sz = stage_ptr(stage, lay.z);
    // 64-bit arithmetic once per tile; offsets inside a tile fit in 32 bits.
    const T* tu = gu + t0 * p.ldu;
    const T* tdt = gdt ? gdt + t0 * p.lddt : nullptr;
    const T* tz = gz ? gz + t0 * p.ldz : nullptr;
    const int ldu = int(p.ldu), lddt = int(p.lddt), ldz = int(p.ldz);
    if (k.vec_main) {
      const int vpr_log2 = k.cb_log2 - (VEC == 8 ? 3 : 2), vpr = 1 << vpr_log2;
      for (int i = tid; i < nt * vpr; i += nthr) {
        const int t = i >> vpr_log2, cc = c0 + (i - (t << vpr_log2)) * VEC, o = t * CB + (cc - c0);
        if (cc >= d) continue;
        cp_async16(su + o, tu + t * ldu + cc);
        if (tdt) cp_async16(sdt + o, tdt + t * lddt + cc);
        if (tz) cp_async16(sz + o, tz + t * ldz + cc);
      }
    } else {
      for (int i = tid; i < nt * CB; i += nthr) {
        const int t = i >> k.cb_log2, cc = c0 + (i - (t << k.cb_log2));
        if (cc >= d) continue;
        su[i] = tu[t * ldu + cc];
        if (tdt) sdt[i] = tdt[t * lddt + cc];
        if (tz) sz[i] = tz[t * ldz + cc];
      }
    }
    if (gB) {
      T* sB = stage_ptr(stage, lay.B);
      T* sC = stage_ptr(stage, lay.C);
      const T* tB = gB + t0 * p.ldb;
      const T* tC = gC + t0 * p.ldc;
      const int ldb = int(p.ldb), ldc = int(p.ldc);
      if (k.vec_bc) {
        const int vpr = N / VEC;
        for (int i = tid; i < nt * vpr; i += nthr) {
          const int t = i / vpr, n = (i - t * vpr) * VEC;
          cp_async16(sB + t * N + n, tB + t * ldb + n);
          cp_async16(sC + t * N + n, tC + t * ldc + n);
        }
      } else {
        for (int i = tid; i < nt * N; i += nthr) {
          const int t = i / N, n = i - t * N;
          sB[i] = tB[t * ldb + n];
          sC[i] = tC[t * ldc + n];
        }
      }
    }
    cp_async_commit();
  };

  // Per-thread constants and state: S states of channel c, A folded with log2 e; padded states
  // have A = 0 and B = C = 0 and so stay 0.
  float A2[S], hs[S], bconst[S], cconst[S];
#pragma unroll
  for (int s = 0; s < S; ++s) {
    const int n = g * S + s;
    const bool ok = cvalid && n < N;
    A2[s] = ok ? p.A[int64_t(c) * N + n] * kLog2e : 0.f;
    hs[s] = (ok && p.h) ? p.h[(int64_t(b) * d + c) * N + n] : 0.f;
    bconst[s] = (ok && p.B_const) ? p.B_const[int64_t(c) * N + n] : 0.f;
    cconst[s] = (ok && p.B_const) ? p.C_const[int64_t(c) * N + n] : 0.f;
  }
  const float bias_c = (cvalid && p.dt_bias) ? p.dt_bias[c] : 0.f;
  const float dtk_c = (cvalid && p.dt_const) ? p.dt_const[c] : 0.f;
  const float D_c = (cvalid && p.D) ? p.D[c] : 0.f;

  const bool probes = p.hnorm_out || p.h_out;
  const int64_t ntiles = (L + TT - 1) / TT;
  load_tile(0, 0);
  for (int64_t tile = 0; tile < ntiles; ++tile) {
    const int st = int(tile & 1);
    cp_async_wait<0>();
    // Tile `tile` has landed for every thread, and every thread is done with tile - 1, whose
    // stage the next copies overwrite.
    __syncthreads();
    if (tile + 1 < ntiles) load_tile(tile + 1, st ^ 1);

    const int64_t t0 = tile * TT;
    const int nt = int(L - t0 < TT ? L - t0 : TT);
    const int ntp = (nt + kG - 1) / kG * kG;  // padded steps have Δ = 0: h passes unchanged
    const T* su = stage_ptr(st, lay.u);
    const T* sdt = stage_ptr(st, lay.dt);
    const T* sz = stage_ptr(st, lay.z);
    const T* sB = stage_ptr(st, lay.B);
    const T* sC = stage_ptr(st, lay.C);
    // prep. B, C -> fp32 rows per state (block-wide; steps past nt get 0 so that the padded
    // steps, run with Δ = 0, stay finite).
    if (gB) {
      for (int i = tid; i < ntp * N; i += nthr) {
        const int t = i / N, n = i - t * N;
        Bt[n * BS + t] = t < nt ? to_f32(sB[i]) : 0.f;
        Ct[n * BS + t] = t < nt ? to_f32(sC[i]) : 0.f;
      }
    }
    // Δ and Δ·u per channel; the channel's lanes split the steps. Padded steps: Δ = 0.
    float2* du_c = du + cl * DS;
    for (int t = g; t < ntp; t += TPC) {
      float2 v = make_float2(0.f, 0.f);
      if (t < nt && cvalid) {
        const float x = (p.dt_const ? dtk_c : to_f32(sdt[t * CB + cl])) + bias_c;
        const float delta = p.dt_softplus ? softplus(x) : x;
        v = make_float2(delta, delta * to_f32(su[t * CB + cl]));
      }
      du_c[t] = v;
    }
    // Interventions and the Δ probe are rare: kept out of the loop above.
    __syncwarp();
    if (p.n_overrides && g == 0 && cvalid) {
      for (int o = 0; o < p.n_overrides; ++o) {
        const int64_t t = p.override_t[o] - t0;
        if (t >= 0 && t < nt)
          du_c[t] = make_float2(p.override_value[o], p.override_value[o] * to_f32(su[t * CB + cl]));
      }
    }
    __syncthreads();
    if (p.delta_out && cvalid)
      for (int t = g; t < nt; t += TPC) p.delta_out[(int64_t(b) * L + t0 + t) * d + c] = du_c[t].x;

    // The D skip and the gate for one finished output, then the store.
    T* ty = gy + t0 * p.ldy + c;  // this tile's outputs of channel c: ty[t * ldy]
    float* typre = p.ypre_out ? p.ypre_out + (int64_t(b) * L + t0) * d + c : nullptr;
    const int ldy = int(p.ldy);
    auto finish = [&](int t, float yv) {
      if (t >= nt || !cvalid) return;
      yv = fmaf(D_c, to_f32(su[t * CB + cl]), yv);
      if (typre) typre[t * d] = yv;
      if (gz) yv *= silu(to_f32(sz[t * CB + cl]));
      ty[t * ldy] = from_f32<T>(yv);
    };

    auto scan_tile = [&](auto probes_tag, auto const_bc_tag) {
      constexpr bool kProbes = decltype(probes_tag)::value;
      constexpr bool kConstBC = decltype(const_bc_tag)::value;
      for (int tb = 0; tb < ntp; tb += kG) {
        float2 dd[kG];
        float bv[kG][S], cv[kG][S], a[kG][S], y[kG];
        {
          const float4* q = reinterpret_cast<const float4*>(du_c + tb);
#pragma unroll
          for (int j = 0; j < kG / 2; ++j) {
            const float4 v = q[j];
            dd[2 * j] = make_float2(v.x, v.y);
            dd[2 * j + 1] = make_float2(v.z, v.w);
          }
        }
        if constexpr (kConstBC) {
#pragma unroll
          for (int j = 0; j < kG; ++j)
#pragma unroll
            for (int s = 0; s < S; ++s) bv[j][s] = bconst[s], cv[j][s] = cconst[s];
        } else {
#pragma unroll
          for (int s = 0; s < S; ++s) {
            const float4* qb = reinterpret_cast<const float4*>(Bt + (g * S + s) * BS + tb);
            const float4* qc = reinterpret_cast<const float4*>(Ct + (g * S + s) * BS + tb);
#pragma unroll
            for (int h4 = 0; h4 < 2; ++h4) {
              const float4 vb = qb[h4], vc = qc[h4];
              bv[4 * h4 + 0][s] = vb.x; bv[4 * h4 + 1][s] = vb.y; bv[4 * h4 + 2][s] = vb.z; bv[4 * h4 + 3][s] = vb.w;
              cv[4 * h4 + 0][s] = vc.x; cv[4 * h4 + 1][s] = vc.y; cv[4 * h4 + 2][s] = vc.z; cv[4 * h4 + 3][s] = vc.w;
            }
          }
        }
#pragma unroll
        for (int j = 0; j < kG; ++j)
#pragma unroll
          for (int s = 0; s < S; ++s) a[j][s] = exp2f(dd[j].x * A2[s]);
#pragma unroll
        for (int j = 0; j < kG; ++j) {
          y[j] = 0.f;
#pragma unroll
          for (int s = 0; s < S; ++s) {
            hs[s] = fmaf(a[j][s], hs[s], bv[j][s] * dd[j].y);
            y[j] = fmaf(cv[j][s], hs[s], y[j]);
          }
          if constexpr (kProbes) {
            const int64_t tg = t0 + tb + j;
            if (p.hnorm_out) {
              float sq = 0.f;
#pragma unroll
              for (int s = 0; s < S; ++s) sq = fmaf(hs[s], hs[s], sq);
              for (int o = TPC >> 1; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
              if (g == 0 && cvalid && tb + j < nt) p.hnorm_out[(int64_t(b) * L + tg) * d + c] = sqrtf(sq);
            }
            if (p.h_out && tg >= p.h_out_from && cvalid && tb + j < nt) {
              float* dst = p.h_out + ((int64_t(b) * (L - p.h_out_from) + (tg - p.h_out_from)) * d + c) * N;
#pragma unroll
              for (int s = 0; s < S; ++s)
                if (g * S + s < N) dst[g * S + s] = hs[s];
            }
          }
        }
        // Reduce-scatter of the TPC partial sums over the 8 steps: after round r a lane holds
        // 8 >> r steps, summed over 2^r lanes.
        const int b0 = g & 1, b1 = (g >> 1) & 1, b2 = (g >> 2) & 1;
        if (TPC >= 2) {
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const float send = b0 ? y[j] : y[j + 4], keep = b0 ? y[j + 4] : y[j];
            y[j] = keep + __shfl_xor_sync(0xffffffffu, send, 1);
          }
        }
        if (TPC >= 4) {
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            const float send = b1 ? y[j] : y[j + 2], keep = b1 ? y[j + 2] : y[j];
            y[j] = keep + __shfl_xor_sync(0xffffffffu, send, 2);
          }
        }
        if (TPC >= 8) {
          const float send = b2 ? y[0] : y[1], keep = b2 ? y[1] : y[0];
          y[0] = keep + __shfl_xor_sync(0xffffffffu, send, 4);
        }
        if (TPC >= 16) y[0] += __shfl_xor_sync(0xffffffffu, y[0], 8);
        if (TPC >= 32) y[0] += __shfl_xor_sync(0xffffffffu, y[0], 16);
        if (TPC == 1) {
#pragma unroll
          for (int j = 0; j < 8; ++j) finish(tb + j, y[j]);
        } else if (TPC == 2) {
#pragma unroll
          for (int j = 0; j < 4; ++j) finish(tb + b0 * 4 + j, y[j]);
        } else if (TPC == 4) {
#pragma unroll
          for (int j = 0; j < 2; ++j) finish(tb + b0 * 4 + b1 * 2 + j, y[j]);
        } else if (g < 8) {
          finish(tb + b0 * 4 + b1 * 2 + b2, y[0]);
        }
      }
    };
    using F = std::false_type;
    using Tr = std::true_type;
    if (gB) {
      if (probes) scan_tile(Tr{}, F{}); else scan_tile(F{}, F{});
    } else {
      if (probes) scan_tile(Tr{}, Tr{}); else scan_tile(F{}, Tr{});
    }
  }

  if (p.h) {
#pragma unroll
    for (int s = 0; s < S; ++s) {
      const int n = g * S + s;
      if (cvalid && n < N) p.h[(int64_t(b) * d + c) * N + n] = hs[s];
    }
  }
}

template <typename T, int S>
void launch_selective_scan(const ScanParams& p, const ScanLaunch& k, cudaStream_t stream) {
  const int smem = scan_smem(k, p.N, sizeof(T)).total;
  auto kernel = selective_scan_kernel<T, S>;
  if (smem > 48 * 1024)
    MS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const dim3 grid((p.d + k.cb - 1) / k.cb, p.batch);
  kernel<<<grid, k.cb * k.tpc, smem, stream>>>(p, k);
  MS_CUDA_CHECK_LAUNCH();
}

}  // namespace mambascope::cuda
