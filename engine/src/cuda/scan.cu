// Host side of the selective scan: validates parameters, picks the variant and launch shape and
// dispatches to the per-type instantiations (scan_{bf16,f16,f32}.cu).
#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "cuda/scan_kernel.cuh"

namespace mambascope::cuda {

namespace {

struct Device {
  int id, sms;
};
Device current_device() {
  Device dv{};
  MS_CUDA_CHECK(cudaGetDevice(&dv.id));
  MS_CUDA_CHECK(cudaDeviceGetAttribute(&dv.sms, cudaDevAttrMultiProcessorCount, dv.id));
  return dv;
}

const ScanVariantTable& variant_table(DType dt) {
  static const ScanVariantTable bf16 = scan_variant_table<__nv_bfloat16>();
  static const ScanVariantTable f16 = scan_variant_table<__half>();
  static const ScanVariantTable f32 = scan_variant_table<float>();
  return dt == DType::BF16 ? bf16 : dt == DType::F16 ? f16 : f32;
}

// Resident blocks per SM of one variant at one shared-memory size (the occupancy query is a
// driver call: remembered per device).
int blocks_per_sm(const ScanKernelOps& ops, const ScanParams& p, const ScanLaunch& k, int dev) {
  static std::mutex mu;
  static std::map<std::tuple<const void*, int, int>, int> cache;
  const int smem = ops.smem_bytes(p, k);
  const auto key = std::make_tuple(reinterpret_cast<const void*>(ops.launch), smem, dev);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  int optin = 0;
  MS_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  const int n = smem > optin ? 0 : ops.blocks_per_sm(p, k);
  std::lock_guard<std::mutex> lock(mu);
  cache[key] = n;
  return n;
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

struct Choice {
  const ScanKernelOps* ops;
  ScanLaunch k;
  int S, tpc;
  bool general;
};

int log2_of(int x) {
  int l = 0;
  while ((1 << l) < x) ++l;
  return l;
}

Choice choose(const ScanParams& p) {
  const ScanVariantTable& tab = variant_table(p.dtype);
  const Device dv = current_device();
  const int elem = int(dtype_size(p.dtype));
  const int vec = 16 / elem;
  if (p.N > 64)
    throw Error("selective_scan: d_state " + std::to_string(p.N) + " is too large (at most 64)");
  if (p.tile_len != 0 && p.tile_len != 16 && p.tile_len != 32 && p.tile_len != 64 &&
      p.tile_len != 128)
    throw Error("selective_scan: tile_len must be 16, 32, 64 or 128");

  // Candidates: the fast variants for d_state <= 16; the general one where probes or constant
  // B, C are asked for, or the state is larger.
  struct Cand {
    const ScanKernelOps* ops;
    int S, tpc;
  };
  Cand cands[5];
  int ncand = 0;
  const bool general = p.N > 16 || p.hnorm_out || p.h_out || p.B_const;
  if (general) {
    cands[ncand++] = p.N > 16 ? Cand{&tab.general64, 16, 4} : Cand{&tab.general16, 4, 4};
  } else {
    const Cand all[5] = {{&tab.s1, 1, 16}, {&tab.s2, 2, 8}, {&tab.s4, 4, 4}, {&tab.s8, 8, 2}, {&tab.s16, 16, 1}};
    for (const Cand& c : all)
      if (p.states_per_thread == 0 || p.states_per_thread == c.S) cands[ncand++] = c;
    if (ncand == 0) throw Error("selective_scan: states_per_thread must be 1, 2, 4, 8 or 16");
  }

  // Per candidate and tile length, a cost in units of one scan warp's state-steps: waves of
  // blocks, each costing S times the blocks sharing an SM (a block puts one scan warp on each
  // sub-partition), with factors fitted to H200 measurements of every variant at the anchor
  // shapes (docs/benchmarks.md; the fit picks the fastest measured variant at every anchor):
  // co-resident blocks hide each other's latency (0.7), each tile costs ~48 steps of
  // hand-over, fewer states per lane cost more per state (shuffles, loads), and 16 states per
  // lane (no shuffles at all) win once there are blocks enough for four waves of the 4-state
  // variant. Shorter tiles need less shared memory, so more blocks fit; longer ones take longer
  // to fill the pipeline (one tile of prep before the first step). Ties go to the longer tile.
  const int64_t Lr = (p.L + 15) / 16 * 16;
  Choice best{};
  double best_cost = -1;
  for (int ci = 0; ci < ncand; ++ci) {
    const Cand& cd = cands[ci];
    ScanLaunch k{};
    k.cb = kScanWarps * 32 / cd.tpc;
    k.cb_log2 = log2_of(k.cb);
    const int64_t blocks = int64_t(p.batch) * ((p.d + k.cb - 1) / k.cb);
    const bool plenty = int64_t(p.batch) * ((p.d + 31) / 32) >= 4 * int64_t(dv.sms);
    const double s_factor = cd.S == 1   ? 2.2
                            : cd.S == 2 ? 1.25
                            : cd.S == 4 ? 1.0
                            : cd.S == 8 ? 0.7
                                        : (plenty ? 0.55 : 0.9);
    for (int tt : {128, 64, 32, 16}) {
      if (p.tile_len ? tt != p.tile_len : tt > 16 && tt > Lr) continue;
      k.tt = tt;
      const int occ = blocks_per_sm(*cd.ops, p, k, dv.id);
      if (occ == 0) continue;
      double waves = 0;  // sum over waves of (blocks on the busiest SM) × co-residency factor
      for (int64_t left = blocks; left > 0; left -= int64_t(occ) * dv.sms) {
        const int64_t r = std::min<int64_t>(occ, (left + dv.sms - 1) / dv.sms);
        waves += double(r) * (r > 1 ? 0.7 : 1.0);
      }
      const double fill = double(Lr + tt) / double(Lr);
      const double cost = cd.S * waves * s_factor * (1.0 + 48.0 / tt) * fill;
      if (best_cost < 0 || cost < best_cost * 0.999) {
        best = Choice{cd.ops, k, cd.S, cd.tpc, general};
        best_cost = cost;
      }
    }
  }
  if (best_cost < 0)
    throw Error("selective_scan: no launch shape fits this GPU's shared memory (tile_len " +
                std::to_string(p.tile_len) + ")");
  if (p.channels_per_block != 0 && p.channels_per_block != best.k.cb)
    throw Error("selective_scan: channels_per_block must be 0 or " + std::to_string(best.k.cb) +
                " for " + std::to_string(best.S) + " states per thread");

  ScanLaunch& k = best.k;
  const bool need_dt = !p.dt_const;
  k.vec_main = p.d % vec == 0 && k.cb % vec == 0 && aligned16(p.u) &&
               p.ldu % vec == 0 && p.bsu % vec == 0 &&
               (!need_dt || (aligned16(p.dt) && p.lddt % vec == 0 && p.bsdt % vec == 0));
  k.vec_z = p.z && p.d % vec == 0 && k.cb % vec == 0 && aligned16(p.z) && p.ldz % vec == 0 &&
            p.bsz % vec == 0;
  k.vec_bc = !p.B_const && p.N % vec == 0 && aligned16(p.B) && aligned16(p.C) &&
             p.ldb % vec == 0 && p.ldc % vec == 0 && p.bsb % vec == 0 && p.bsc % vec == 0;
  return best;
}

}  // namespace

ScanConfig scan_config(const ScanParams& p) {
  const Choice c = choose(p);
  return {c.S, c.k.cb, c.tpc, c.k.tt, c.ops->smem_bytes(p, c.k), c.general};
}

void selective_scan(const ScanParams& p, cudaStream_t stream) {
  if (p.batch < 1 || p.d < 1 || p.N < 1 || p.L < 0)
    throw Error("selective_scan: bad shape (batch " + std::to_string(p.batch) + ", d " +
                std::to_string(p.d) + ", N " + std::to_string(p.N) + ")");
  if (!p.u || !p.y || !p.A || (!p.dt && !p.dt_const) ||
      (!p.B_const && (!p.B || !p.C)) || (p.B_const && !p.C_const))
    throw Error("selective_scan: a required input is missing");
  if (p.n_overrides < 0 || p.n_overrides > ScanParams::kMaxOverrides)
    throw Error("selective_scan: too many Δ overrides in one call");
  if (p.L == 0) return;
  const Choice c = choose(p);
  c.ops->launch(p, c.k, stream);
}

}  // namespace mambascope::cuda
