// The prep warps of the selective scan (included by scan_kernel.cuh): global -> shared copies of
// each tile, the fp32 operands the scan warps read, and the finished outputs. Everything here is
// per (token, channel) or per (token, state) work, 1/16 of the scan's per-(token, channel, state)
// work, so it runs on other warps and fills the scan warps' issue gaps. Full tiles take
// straight-line paths without bounds checks; the last tile, odd shapes, interventions and probes
// take checked ones. In the two-blocks-per-SM variants of 4 and 8 states per lane a prep thread
// owns two adjacent channels (PrepLanes): their u, dt and z are one 32-bit shared load and their
// outputs one 32-bit store, and one address step serves both.
#pragma once

namespace mambascope::cuda {

// Four consecutive elements (8- or 16-byte aligned) as fp32.
__device__ __forceinline__ float4 load4_f32(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4_f32(const __nv_bfloat16* p) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  return make_float4(__uint_as_float(v.x << 16), __uint_as_float(v.x & 0xffff0000u),
                     __uint_as_float(v.y << 16), __uint_as_float(v.y & 0xffff0000u));
}
__device__ __forceinline__ float4 load4_f32(const __half* p) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&v.x));
  const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&v.y));
  return make_float4(a.x, a.y, b.x, b.y);
}
// Two consecutive elements (4- or 8-byte aligned) as fp32, and two fp32 stored as two elements.
__device__ __forceinline__ float2 load2_f32(const float* p) { return *reinterpret_cast<const float2*>(p); }
__device__ __forceinline__ float2 load2_f32(const __nv_bfloat16* p) {
  const unsigned v = *reinterpret_cast<const unsigned*>(p);
  return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
}
__device__ __forceinline__ float2 load2_f32(const __half* p) {
  return __half22float2(*reinterpret_cast<const __half2*>(p));
}
__device__ __forceinline__ void store2(float* p, float a, float b) {
  *reinterpret_cast<float2*>(p) = make_float2(a, b);
}
__device__ __forceinline__ void store2(__nv_bfloat16* p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);  // one F2FP pack
}
__device__ __forceinline__ void store2(__half* p, float a, float b) {
  *reinterpret_cast<__half2*>(p) = __floats2half2_rn(a, b);
}
// K = 1 or 2 consecutive elements as fp32 / stored from fp32 (a prep thread's channels).
template <int K, typename T>
__device__ __forceinline__ void load_n(const T* p, float (&v)[K]) {
  if constexpr (K == 2) {
    const float2 a = load2_f32(p);
    v[0] = a.x, v[1] = a.y;
  } else {
    v[0] = to_f32(*p);
  }
}
template <int K, typename T>
__device__ __forceinline__ void store_n(T* p, const float (&v)[K]) {
  if constexpr (K == 2) store2(p, v[0], v[1]);
  else *p = from_f32<T>(v[0]);
}

// softplus (torch's, threshold 20) without branches, as max(x, 0) + log1p(e), e = 2^(−|x|·log2 e)
// in (0, 1]: e cannot overflow, so no threshold select is needed (above 20 the log1p term is
// under half an ulp of x and the sum rounds to x, torch's result there). log1p(e) by its series
// e·(1 − e·(1/2 − e/3)) where e < 1e-2 (|x| > ln 100: 1 + e would lose digits and lg2.approx is
// not accurate near 1), else log2(1 + e)·ln 2; max(x, 0) is folded into the last FMA of each.
// Two MUFU ops, 11 instructions (the compiler would turn C++ ternaries into branches around lg2,
// so that a prep thread's steps no longer overlap).
__device__ __forceinline__ float softplus_select(float x) {
  float r;
  asm("{\n\t.reg .f32 a, e, m, s, l;\n\t.reg .pred p;\n\t"
      "abs.ftz.f32 a, %1;\n\t"
      "mul.ftz.f32 e, a, 0fBFB8AA3B;\n\t"
      "ex2.approx.ftz.f32 e, e;\n\t"
      "max.ftz.f32 m, %1, 0f00000000;\n\t"
      "setp.gt.ftz.f32 p, a, 0f40935D8E;\n\t"
      "fma.rn.ftz.f32 s, e, 0f3EAAAAAB, 0fBF000000;\n\t"
      "fma.rn.ftz.f32 s, e, s, 0f3F800000;\n\t"
      "fma.rn.ftz.f32 s, e, s, m;\n\t"
      "add.ftz.f32 l, e, 0f3F800000;\n\t"
      "lg2.approx.ftz.f32 l, l;\n\t"
      "fma.rn.ftz.f32 l, l, 0f3F317218, m;\n\t"
      "selp.f32 %0, s, l, p;\n\t}"
      : "=f"(r)
      : "f"(x));
  return r;
}

// Issues the copies of one tile (tokens [t0, t0 + nt)) into a raw stage. Rows past nt and
// channels past d are left alone: prep never reads them. The 16-byte copy loops are not
// unrolled: the prep warps' code per tile does not fit the instruction cache (ncu, session 8: 15%
// of a 4096 x 2048 scan's warp samples stall for instructions), and rolled copy loops (15-17%
// fewer instructions in those kernels) made the variants with two blocks per SM 2-5% faster
// (H200: 1536 x 2048 56.6 -> 54.9 us, 8 x 1536 x 2048 209 -> 200, 8 x 4096 x 8192 1811 -> 1780,
// queued). So do the one-block-per-SM variants' since session 9, together with fewer step
// quads in flight (prep_warps; H200: 4096 × 8192 -2.3%, 4096 × 131072 -2.8%, 5120 × 131072
// -0.6%; either alone had lost 2-5%), and the general variants' (probes) since session 10
// (`mambascope-bench --scan-probes`, below in docs/benchmarks.md).
template <typename T, int CB, int PT>
__device__ __forceinline__ void load_raw_tile(const ScanParams& p, const ScanLaunch& k,
                                              const ScanSmem& lay, unsigned char* stage, int pt,
                                              int64_t t0, int nt, int c0, const T* gu, const T* gdt,
                                              const T* gB, const T* gC) {
  constexpr int VEC = 16 / int(sizeof(T));
  const int d = p.d;
  T* su = reinterpret_cast<T*>(stage + lay.raw_u);
  T* sdt = reinterpret_cast<T*>(stage + lay.raw_dt);
  if (k.vec_main) {
    // A power of two of 16-byte chunks per row, dividing PT: each thread keeps one
    // column of chunks and walks rows.
    constexpr int kVpr = CB / VEC, kRowStep = PT / kVpr;
    const int v = pt % kVpr, cc = c0 + v * VEC;
    if (cc < d) {
      int t = pt / kVpr;
      const T* pu = gu + (t0 + t) * p.ldu + cc;
      const T* pdt = gdt ? gdt + (t0 + t) * p.lddt + cc : nullptr;
#pragma unroll 1
      for (; t < nt; t += kRowStep) {
        const int o = t * CB + v * VEC;
        cp_async16(su + o, pu);
        pu += kRowStep * p.ldu;
        if (pdt) cp_async16(sdt + o, pdt), pdt += kRowStep * p.lddt;
      }
    }
  } else {
    for (int i = pt; i < nt * CB; i += PT) {
      const int t = i / CB, cc = c0 + i % CB;
      if (cc >= d) continue;
      const int64_t tg = t0 + t;
      su[i] = gu[tg * p.ldu + cc];
      if (gdt) sdt[i] = gdt[tg * p.lddt + cc];
    }
  }
  if (gB) {
    const int N = p.N;
    T* sB = reinterpret_cast<T*>(stage + lay.raw_B);
    T* sC = reinterpret_cast<T*>(stage + lay.raw_C);
    if (k.vec_bc) {
      const int vpr = N / VEC;
#pragma unroll 1
      for (int i = pt; i < nt * vpr; i += PT) {
        const int t = i / vpr, n = (i - t * vpr) * VEC;
        const int64_t tg = t0 + t;
        cp_async16(sB + t * N + n, gB + tg * p.ldb + n);
        cp_async16(sC + t * N + n, gC + tg * p.ldc + n);
      }
    } else {
      for (int i = pt; i < nt * N; i += PT) {
        const int t = i / N, n = i - t * N;
        const int64_t tg = t0 + t;
        sB[i] = gB[tg * p.ldb + n];
        sC[i] = gC[tg * p.ldc + n];
      }
    }
  }
  cp_async_commit();
}

// Issues the copies of z for one tile (tokens [t0, t0 + nt)) into the z stage and commits them
// (an empty group without a gate). Rolled loops, as load_raw_tile's.
template <typename T, int CB, int PT>
__device__ __forceinline__ void load_z_tile(const ScanParams& p, const ScanLaunch& k, T* sz,
                                            int pt, int64_t t0, int nt, int c0, const T* gz) {
  constexpr int VEC = 16 / int(sizeof(T));
  const int d = p.d;
  if (!gz) {
  } else if (k.vec_z) {
    constexpr int kVpr = CB / VEC, kRowStep = PT / kVpr;
    const int v = pt % kVpr, cc = c0 + v * VEC;
    if (cc < d) {
      int t = pt / kVpr;
      const T* pz = gz + (t0 + t) * p.ldz + cc;
#pragma unroll 1
      for (; t < nt; t += kRowStep, pz += kRowStep * p.ldz) cp_async16(sz + t * CB + v * VEC, pz);
    }
  } else {
    for (int i = pt; i < nt * CB; i += PT) {
      const int t = i / CB, cc = c0 + i % CB;
      if (cc < d) sz[i] = gz[(t0 + t) * p.ldz + cc];
    }
  }
  cp_async_commit();
}

// B and C of one tile -> fp32 in the scan's layout, zero past nt and past N.
template <typename T, class V>
__device__ __forceinline__ void prep_bc(const ScanSmem& lay, const unsigned char* raw,
                                        unsigned char* prep, int pt, int N, int nt, int tt) {
  constexpr int S = V::S, TPC = V::TPC, NP = V::NP;
  const T* rB = reinterpret_cast<const T*>(raw + lay.raw_B);
  const T* rC = reinterpret_cast<const T*>(raw + lay.raw_C);
  float* B = reinterpret_cast<float*>(prep + lay.bc_B);
  float* C = reinterpret_cast<float*>(prep + lay.bc_C);
  const bool full = nt == tt && N == NP;
  if constexpr (V::kStateRows) {
    // Item (n, four steps) -> one 16-byte store into state n's row (row s·TPC + g for the lane
    // g that owns n as its state s).
    for (int i = pt; i < NP * (tt / 4); i += V::kPrepThreads) {
      const int n = i % NP, tq = i / NP, row = (n % S) * TPC + n / S;
      float vb[4], vc[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int t = 4 * tq + j;
        const bool ok = full || (n < N && t < nt);
        vb[j] = ok ? to_f32(rB[t * N + n]) : 0.f;
        vc[j] = ok ? to_f32(rC[t * N + n]) : 0.f;
      }
      *reinterpret_cast<float4*>(B + row * lay.rsb + 4 * tq) = make_float4(vb[0], vb[1], vb[2], vb[3]);
      *reinterpret_cast<float4*>(C + row * lay.rsb + 4 * tq) = make_float4(vc[0], vc[1], vc[2], vc[3]);
    }
  } else if (full) {
    // Item (step, four states): one 8- or 16-byte load, one 16-byte store.
    for (int i = pt; i < (NP / 4) * tt; i += V::kPrepThreads) {
      const int o = 4 * i;  // = t·NP + 4q
      *reinterpret_cast<float4*>(B + o) = load4_f32(rB + o);
      *reinterpret_cast<float4*>(C + o) = load4_f32(rC + o);
    }
  } else {
    for (int i = pt; i < (NP / 4) * tt; i += V::kPrepThreads) {
      const int q = i % (NP / 4), t = i / (NP / 4);
      float vb[4], vc[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int n = 4 * q + j;
        const bool ok = n < N && t < nt;
        vb[j] = ok ? to_f32(rB[t * N + n]) : 0.f;
        vc[j] = ok ? to_f32(rC[t * N + n]) : 0.f;
      }
      *reinterpret_cast<float4*>(B + t * NP + 4 * q) = make_float4(vb[0], vb[1], vb[2], vb[3]);
      *reinterpret_cast<float4*>(C + t * NP + 4 * q) = make_float4(vc[0], vc[1], vc[2], vc[3]);
    }
  }
}

// Where prep threads sit: a thread owns CPT adjacent channels c, .., c + CPT - 1 (c = CPT·(pt mod
// CB/CPT)) and walks the step quads tq0, tq0 + kStep, ... (kStep threads per channel group).
// Two channels per thread cut the fast paths' instructions per (token, channel) from ~18 to ~16
// (Δ) and ~16 to ~11 (finish), but paid only where two blocks share an SM (H200, session 6:
// 8 × 1536 × 2048 and 8 × 4096 × 8192 3-6% faster); with one block per SM (the wide 4-state
// variant, and 2 states per lane at 1536 × 2048) the same change was 1-12% slower, so those,
// and the variants not measured, keep one channel per thread.
template <class V>
struct PrepLanes {
  static constexpr int CB = kScanWarps * V::CW;  // channels per block
  static constexpr int CPT = V::kMinBlocks == 2 && (V::S == 4 || V::S == 8) ? 2 : 1;
  static constexpr int kGroups = CB / CPT;                 // channel groups per block
  static constexpr int kStep = V::kPrepThreads / kGroups;  // threads per group: the quad stride
};

// A prep thread's fixed view of one of its two channels: items are (channel, four steps).
template <typename T>
struct PrepCtx {
  T* gy;        // this batch's y
  const T* gz;  // this batch's z, or null (no gate)
  int b, gc, tq0, d;
  bool cvalid;
  float bias, Dc, dconst;  // Δ bias, D, and Δ of constant-Δ (LTI) layers
};

// Checked Δ prep of one channel for every other case (last tile, channels past d, constant or
// plain Δ, interventions, the Δ probe): kept out of line so that the hot path stays small in
// the instruction cache. Padded steps and channels get Δ = 0 (h passes unchanged).
template <typename T, class V>
__device__ __noinline__ void prep_du_checked(const ScanParams& p, const PrepCtx<T>& x,
                                             const T* ru, const T* rdt, float* du, int64_t t0,
                                             int nt, int tt) {
  constexpr int CB = PrepLanes<V>::CB, kStep = PrepLanes<V>::kStep;
  const bool have_dt = p.dt_const == nullptr;
  for (int tq = x.tq0; tq < tt / 4; tq += kStep) {
    float dl[4], dx[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int t = 4 * tq + j;
      dl[j] = dx[j] = 0.f;
      if (x.cvalid && t < nt) {
        float delta = x.dconst;
        if (have_dt) {
          const float v = to_f32(rdt[t * CB]) + x.bias;
          delta = p.dt_softplus ? softplus_select(v) : v;
        }
        for (int o = 0; o < p.n_overrides; ++o)
          if (p.override_t[o] == t0 + t) delta = p.override_value[o];
        dl[j] = delta;
        dx[j] = delta * to_f32(ru[t * CB]);
        if (p.delta_out) p.delta_out[(int64_t(x.b) * p.L + t0 + t) * x.d + x.gc] = delta;
      }
    }
    *reinterpret_cast<float4*>(du + 8 * tq) = make_float4(dl[0], dx[0], dl[1], dx[1]);
    *reinterpret_cast<float4*>(du + 8 * tq + 4) = make_float4(dl[2], dx[2], dl[3], dx[3]);
  }
}

// C·h of steps 4tq .. 4tq + 3 of one channel, from its row `ch`: whole sums in the output
// stage (V::kParts == 1), or two scan lanes' partials in the channel's (Δ, Δu) row of the prep
// stage (scan_warps.cuh, store_parts: lane g's U steps of a block at 2U·block + g·U).
template <class V>
__device__ __forceinline__ float4 gather_ch(const float* ch, int tq) {
  if constexpr (V::kParts == 1) {
    return lds4(ch + 4 * tq);
  } else {
    constexpr int U = V::U;
    const float4 a = lds4(ch + 8 * tq), b = lds4(ch + 8 * tq + 4);
    const float f[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    float y[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) y[j] = f[2 * U * (j / U) + j % U] + f[2 * U * (j / U) + U + j % U];
    return make_float4(y[0], y[1], y[2], y[3]);
  }
}

// Checked output finish of one valid channel (last tile, no gate, the y-before-gate probe, a
// pair straddling d or a y that 32-bit stores cannot take), out of line.
template <typename T, class V>
__device__ __noinline__ void finish_checked(const ScanParams& p, const PrepCtx<T>& x,
                                            const T* ru, const T* rz, const float* ch,
                                            int64_t t0, int nt) {
  constexpr int CB = PrepLanes<V>::CB, kStep = PrepLanes<V>::kStep;
  T* ty = x.gy + t0 * p.ldy + x.gc;
  float* typre = p.ypre_out ? p.ypre_out + (int64_t(x.b) * p.L + t0) * x.d + x.gc : nullptr;
  for (int tq = x.tq0; 4 * tq < nt; tq += kStep) {
    const float4 acc = gather_ch<V>(ch, tq);
    const float y4[4] = {acc.x, acc.y, acc.z, acc.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int t = 4 * tq + j;
      if (t >= nt) break;
      float yv = fmaf(x.Dc, to_f32(ru[t * CB]), y4[j]);
      if (typre) typre[int64_t(t) * x.d] = yv;
      if (x.gz) yv *= silu_stored_as<T>(to_f32(rz[t * CB]));
      ty[int64_t(t) * p.ldy] = from_f32<T>(yv);
    }
  }
}

// The prep warps: copies two tiles ahead, operands one tile ahead, outputs one tile behind.
// Stages are runtime values here (one copy of the code); full tiles of the usual layer (Δ with
// softplus, a gate, no probes) take the inline fast paths, CPT channels at a time.
template <typename T, class V>
__device__ __forceinline__ void prep_warps(const ScanParams& p, const ScanLaunch& k,
                                           const ScanSmem& lay, unsigned char* smem, int pt,
                                           const ScanItem& it, int64_t ntiles) {
  using Lanes = PrepLanes<V>;
  constexpr int CB = Lanes::CB, CPT = Lanes::CPT, kStep = Lanes::kStep;
  // Step quads of a channel group in flight per prep thread: two in the fast variants (less
  // code), also where one block per SM would leave registers for four (H200, session 9: with
  // rolled copy loops, 4096 × 131072 2.8% faster with two than with four, three between); one
  // in the span variant (5120 × 131072 1.2% faster than with two; the plain launches 0.3-3.8%
  // slower with one); the general variants (probes), not measured, keep four.
  constexpr int kQuads = V::kGeneral ? 4 / CPT : V::kSpansOnly ? 1 : 2 / CPT;
  const int d = p.d, tt = k.tt, rsd = lay.rsd, b = it.b, c0 = it.c0;
  // Pointers start at the block's first token (it.tb > 0 only for chunks of L, which take no
  // probes or interventions: those index by the whole call's token).
  const int64_t tb = it.tb;
  const T* gu = static_cast<const T*>(p.u) + b * p.bsu + tb * p.ldu;
  const T* gdt = p.dt_const ? nullptr : static_cast<const T*>(p.dt) + b * p.bsdt + tb * p.lddt;
  const T* gz = p.z ? static_cast<const T*>(p.z) + b * p.bsz + tb * p.ldz : nullptr;
  const T* gB = p.B_const ? nullptr : static_cast<const T*>(p.B) + b * p.bsb + tb * p.ldb;
  const T* gC = p.B_const ? nullptr : static_cast<const T*>(p.C) + b * p.bsc + tb * p.ldc;
  // The thread's first channel and first step quad.
  const int c = CPT * (pt % Lanes::kGroups), tq0 = pt / Lanes::kGroups;
  T* gy = static_cast<T*>(p.y) + b * p.bsy + tb * p.ldy;
  PrepCtx<T> x[CPT];
  float bias[CPT], Dc[CPT];
#pragma unroll
  for (int i = 0; i < CPT; ++i) {
    x[i].gy = gy;
    x[i].gz = gz;
    x[i].b = b;
    x[i].gc = c0 + c + i;
    x[i].tq0 = tq0;
    x[i].d = d;
    x[i].cvalid = x[i].gc < d;
    x[i].bias = bias[i] = x[i].cvalid && p.dt_bias ? p.dt_bias[x[i].gc] : 0.f;
    x[i].Dc = Dc[i] = x[i].cvalid && p.D ? p.D[x[i].gc] : 0.f;
    const float xk = (x[i].cvalid && p.dt_const ? p.dt_const[x[i].gc] : 0.f) + bias[i];  // constant Δ
    x[i].dconst = p.dt_softplus ? softplus(xk) : xk;
  }
  const bool all_valid = x[CPT - 1].cvalid;
  // The usual layer takes the fast paths on full tiles where all the thread's channels are
  // real; the finish also needs y rows that take CPT-element stores (even strides, aligned base)
  // and a row stride that fits 32 bits (a row step is then one IMAD.WIDE).
  const bool fast_prep = all_valid && gdt && p.dt_softplus && !p.n_overrides && !p.delta_out;
  const bool y_rows = CPT == 1 || (reinterpret_cast<uintptr_t>(p.y) % (CPT * sizeof(T)) == 0 &&
                                   p.ldy % CPT == 0 && p.bsy % CPT == 0);
  const bool fast_finish = all_valid && gz && !p.ypre_out && y_rows && p.ldy <= 0x7fffffff;
  // The channels' rows of C·h sums in an output stage.
  const int prow = c * lay.rsp, rsp = lay.rsp;
  const int ldy = int(p.ldy);  // (fast finish only)
  T* zst = reinterpret_cast<T*>(smem + lay.z0);  // z of the tile being finished

  auto raw_stage = [&](int64_t tile) { return smem + lay.raw0 + int(tile % 3) * lay.raw_stage; };
  auto tile_len = [&](int64_t tile) {
    const int64_t left = it.len - tile * tt;
    return int(left < tt ? left : tt);
  };
  auto load = [&](int64_t tile) {
    if (tile < ntiles)
      load_raw_tile<T, CB, V::kPrepThreads>(
          p, k, lay, raw_stage(tile), pt, tile * tt, tile_len(tile), c0, gu, gdt, gB, gC);
    else
      cp_async_commit();  // an empty group keeps the wait counts uniform
  };
  auto load_z = [&](int64_t tile) {
    if (tile < ntiles)
      load_z_tile<T, CB, V::kPrepThreads>(
          p, k, zst, pt, tile * tt, tile_len(tile), c0, gz);
    else
      cp_async_commit();
  };

  // Δ = softplus(dt + bias) and Δ·u per (channel, step) -> du {c, (Δ, Δu) per step}; B, C.
  auto prep = [&](int64_t tile, int st) {
    const unsigned char* raw = raw_stage(tile);
    unsigned char* prep = smem + lay.prep0 + st * lay.prep_stage;
    const T* ru = reinterpret_cast<const T*>(raw + lay.raw_u) + c;
    const T* rdt = reinterpret_cast<const T*>(raw + lay.raw_dt) + c;
    float* du = reinterpret_cast<float*>(prep + lay.du) + c * rsd;  // rows c .. c + CPT - 1
    const int nt = tile_len(tile);
    if (fast_prep && nt == tt) {
#pragma unroll kQuads
      for (int tq = tq0; tq < tt / 4; tq += kStep) {
        float dl[CPT][4], dx[CPT][4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int t = 4 * tq + j;
          float dv[CPT], uv[CPT];
          load_n<CPT>(rdt + t * CB, dv);
          load_n<CPT>(ru + t * CB, uv);
#pragma unroll
          for (int i = 0; i < CPT; ++i) {
            dl[i][j] = softplus_select(dv[i] + bias[i]);
            dx[i][j] = dl[i][j] * uv[i];
          }
        }
#pragma unroll
        for (int i = 0; i < CPT; ++i) {
          float* dq = du + i * rsd + 8 * tq;
          *reinterpret_cast<float4*>(dq) = make_float4(dl[i][0], dx[i][0], dl[i][1], dx[i][1]);
          *reinterpret_cast<float4*>(dq + 4) = make_float4(dl[i][2], dx[i][2], dl[i][3], dx[i][3]);
        }
      }
    } else {
#pragma unroll
      for (int i = 0; i < CPT; ++i)
        prep_du_checked<T, V>(p, x[i], ru + i, rdt + i, du + i * rsd, tile * tt, nt, tt);
    }
    if (gB) prep_bc<T, V>(lay, raw, prep, pt, p.N, nt, tt);
  };

  // C·h + D·u, · SiLU(z), stored.
  auto finish = [&](int64_t tile, int st) {
    if (!x[0].cvalid) return;
    const unsigned char* raw = raw_stage(tile);
    const T* ru = reinterpret_cast<const T*>(raw + lay.raw_u) + c;
    const T* rz = zst + c;
    // The C·h row of channel c + i (gather_ch): pq0 advanced by i rows.
    const float* pq0 =
        V::kParts == 1
            ? reinterpret_cast<const float*>(smem + lay.part0 + st * lay.part_stage) + prow
            : reinterpret_cast<const float*>(smem + lay.prep0 + st * lay.prep_stage + lay.du) + c * rsd;
    const int prs = V::kParts == 1 ? rsp : rsd;
    const int64_t t0 = tile * tt;
    const int nt = tile_len(tile);
    if (!(fast_finish && nt == tt)) {
#pragma unroll
      for (int i = 0; i < CPT; ++i)
        if (x[i].cvalid) finish_checked<T, V>(p, x[i], ru + i, rz + i, pq0 + i * prs, t0, nt);
      return;
    }
    T* ty = gy + t0 * p.ldy + x[0].gc;
#pragma unroll kQuads
    for (int tq = tq0; tq < tt / 4; tq += kStep) {
      float acc[CPT][4];
#pragma unroll
      for (int i = 0; i < CPT; ++i) {
        const float4 a = gather_ch<V>(pq0 + i * prs, tq);
        acc[i][0] = a.x, acc[i][1] = a.y, acc[i][2] = a.z, acc[i][3] = a.w;
      }
      T* yq = ty + int64_t(4 * tq) * ldy;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int t = 4 * tq + j;
        float uv[CPT], zv[CPT], yv[CPT];
        load_n<CPT>(ru + t * CB, uv);
        load_n<CPT>(rz + t * CB, zv);
#pragma unroll
        for (int i = 0; i < CPT; ++i) yv[i] = fmaf(Dc[i], uv[i], acc[i][j]) * silu_stored_as<T>(zv[i]);
        store_n<CPT>(yq, yv);
        yq += ldy;
      }
    }
  };

  // Copy groups are committed in the order raw 0, raw 1, z 0, raw 2, then per tile kt
  // (z kt + 1, raw kt + 3): z of tile kt lands while the prep warps work on tile kt + 1 and wait
  // for the scan, off the path that the scan waits on.
  load(0);
  load(1);
  load_z(0);
  load(2);
  cp_async_wait<3>();
  named_sync_id(kBarPrep, V::kPrepThreads);
  prep(0, 0);
  signal_stage_full<V>(0);
  // One step of the pipeline: operands of tile kt + 1, outputs of tile kt, copies of kt + 3.
  for (int64_t kt = 0; kt < ntiles; ++kt) {
    const int st = int(kt & 1);
    if (kt + 1 < ntiles) {
      cp_async_wait<2>();  // pending: raw kt + 1, z kt, raw kt + 2
      named_sync_id(kBarPrep, V::kPrepThreads);  // tile kt + 1 has landed for every prep thread
      // Its prep stage was last read by tile kt - 1, whose "done" was waited for below.
      prep(kt + 1, st ^ 1);
      signal_stage_full<V>(st ^ 1);
    }
    cp_async_wait<1>();  // z of tile kt (raw kt + 2 may still be in flight)
    named_sync_id(kBarDone + st, V::kThreads);  // (also makes every thread's z copies visible)
    finish(kt, st);
    named_sync_id(kBarPrep, V::kPrepThreads);  // every prep thread is done with raw tile kt and z
    load_z(kt + 1);
    load(kt + 3);
  }
}

}  // namespace mambascope::cuda
