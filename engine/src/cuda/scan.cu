// Host side of the selective scan: validates parameters, picks the variant and launch shape and
// dispatches to the per-type instantiations (scan_{bf16,f16,f32}.cu).
#include <algorithm>
#include <atomic>
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
// The host path runs before every launch and counts in short scans (L = 512: a few µs of
// ~30), so what does not change is looked up once: SM counts here, launch choices below.
Device current_device() {
  static std::atomic<int> sms[kScanMaxDevices] = {};
  Device dv{};
  MS_CUDA_CHECK(cudaGetDevice(&dv.id));
  if (dv.id < kScanMaxDevices && (dv.sms = sms[dv.id].load(std::memory_order_relaxed)) > 0) return dv;
  MS_CUDA_CHECK(cudaDeviceGetAttribute(&dv.sms, cudaDevAttrMultiProcessorCount, dv.id));
  if (dv.id < kScanMaxDevices) sms[dv.id].store(dv.sms, std::memory_order_relaxed);
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

// The ticket counter, flags and (when p.h is null) the carried state of chunked and span
// launches, one buffer per (device, stream), so that launches on one stream use it in turn.
// Zeroed when allocated; each launch leaves the counter and flags zero again (scan_chunks.cuh),
// so no memset runs before a launch (it cost ~5-10 µs of host and device time per launch).
// Grown when needed. The flags keep a fixed region (flag_bytes) in front of the carried state, so
// that a later launch with more flags never finds the earlier launches' state in them.
struct ChunkWorkspace {
  void* buf = nullptr;
  size_t bytes = 0, flag_bytes = 0;
};
void bind_chunk_workspace(ScanLaunch& k, const ScanParams& p, int dev, cudaStream_t stream) {
  static std::mutex mu;
  static std::map<std::pair<int, cudaStream_t>, ChunkWorkspace> spaces;
  const size_t nflags = size_t(p.batch) * size_t(k.groups);
  const size_t flag_bytes = ((1 + nflags) * sizeof(unsigned) + 15) & ~size_t(15);
  const size_t carry_bytes = p.h ? 0 : sizeof(float) * size_t(p.batch) * p.d * p.N;
  std::lock_guard<std::mutex> lock(mu);
  ChunkWorkspace& w = spaces[{dev, stream}];
  if (w.flag_bytes < flag_bytes || w.bytes < w.flag_bytes + carry_bytes) {
    if (w.buf) {  // an earlier launch on this stream may still use it
      MS_CUDA_CHECK(cudaStreamSynchronize(stream));
      MS_CUDA_CHECK(cudaFree(w.buf));
    }
    const size_t fb = std::max<size_t>({flag_bytes, w.flag_bytes, 4 << 10});
    const size_t bytes = std::max<size_t>(fb + std::max(carry_bytes, w.bytes - w.flag_bytes), 64 << 10);
    w = {};
    MS_CUDA_CHECK(cudaMalloc(&w.buf, bytes));
    MS_CUDA_CHECK(cudaMemsetAsync(w.buf, 0, bytes, stream));
    w.bytes = bytes;
    w.flag_bytes = fb;
  }
  k.ctr = static_cast<unsigned*>(w.buf);
  k.ready = k.ctr + 1;
  k.carry = p.h ? nullptr : reinterpret_cast<float*>(static_cast<char*>(w.buf) + w.flag_bytes);
}

bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  MS_CUDA_CHECK(cudaStreamIsCapturing(stream, &st));
  return st != cudaStreamCaptureStatusNone;
}

int log2_of(int x) {
  int l = 0;
  while ((1 << l) < x) ++l;
  return l;
}

// What the launch choice depends on besides the pointers (which only decide the 16-byte
// copies, checked per call).
struct ChoiceKey {
  int dev, dtype, batch, d, N, tile_len, spt, l_chunks, spans;
  int64_t L;
  bool general, chunkable;
  auto tie() const {
    return std::tie(dev, dtype, batch, d, N, tile_len, spt, l_chunks, spans, L, general, chunkable);
  }
  bool operator<(const ChoiceKey& o) const { return tie() < o.tie(); }
};

Choice pick(const ScanParams& p, const Device& dv, bool general, bool chunkable);


Choice choose(const ScanParams& p, cudaStream_t stream) {
  const Device dv = current_device();
  const int elem = int(dtype_size(p.dtype));
  const int vec = 16 / elem;
  if (p.N > 64)
    throw Error("selective_scan: d_state " + std::to_string(p.N) + " is too large (at most 64)");
  if (p.tile_len != 0 && p.tile_len != 16 && p.tile_len != 32 && p.tile_len != 64 &&
      p.tile_len != 128)
    throw Error("selective_scan: tile_len must be 16, 32, 64 or 128");
  if (p.l_chunks < 0) throw Error("selective_scan: l_chunks must be 0 (automatic) or positive");
  if (p.spans < 0) throw Error("selective_scan: spans must be 0 (automatic) or positive");
  if (p.spans > 1 && p.l_chunks > 1)
    throw Error("selective_scan: spans and l_chunks cannot both be asked for");
  if (p.spans > 1 && p.states_per_thread != 0 && p.states_per_thread != 4)
    throw Error("selective_scan: spans run with 4 states per thread (states_per_thread 0 or 4)");

  const bool general = p.N > 16 || p.hnorm_out || p.h_out || p.B_const;
  // Chunks of L index tokens from the chunk's start: not with the probes or interventions,
  // which index the whole call; not under graph capture (the workspace may need allocating).
  const bool chunkable =
      !general && p.n_overrides == 0 && !p.delta_out && !p.ypre_out && !capturing(stream);
  if ((p.l_chunks > 1 || p.spans > 1) && !chunkable)
    throw Error("selective_scan: l_chunks > 1 or spans > 1 needs a plain layer (no probes, Δ "
                "interventions or constant B, C) outside graph capture");
  if (!general && p.states_per_thread != 0 && p.states_per_thread != 1 &&
      p.states_per_thread != 2 && p.states_per_thread != 4 && p.states_per_thread != 8 &&
      p.states_per_thread != 16)
    throw Error("selective_scan: states_per_thread must be 1, 2, 4, 8 or 16");

  static std::mutex mu;
  static std::map<ChoiceKey, Choice> cache;
  const ChoiceKey key{dv.id, int(p.dtype), p.batch, p.d, p.N, p.tile_len, general ? 0 : p.states_per_thread,
                      p.l_chunks, p.spans, p.L, general, chunkable};
  Choice best{};
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) best = it->second;
  }
  if (!best.ops) {
    best = pick(p, dv, general, chunkable);
    std::lock_guard<std::mutex> lock(mu);
    if (cache.size() > 4096) cache.clear();  // a sweep over many shapes: start over
    cache[key] = best;
  }
  if (p.channels_per_block != 0 && p.channels_per_block != best.k.cb)
    throw Error("selective_scan: channels_per_block must be 0 or " + std::to_string(best.k.cb) +
                " for " + std::to_string(best.S) + " states per thread");

  ScanLaunch& k = best.k;
  k.dev = dv.id;
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

// The cost model: the variant, tile length and chunks of L for one shape.
Choice pick(const ScanParams& p, const Device& dv, bool general, bool chunkable) {
  const ScanVariantTable& tab = variant_table(p.dtype);
  // Candidates: the fast variants for d_state <= 16; the general one where probes or constant
  // B, C are asked for, or the state is larger.
  // The wide-register 4-state variant (one block per SM) costs ~3% less per state than the
  // plain one (H200: 4096 × 8192 0.317 -> 0.307 ms); it is a candidate where one wave (or one
  // round of chunks) holds every block: over several waves the plain one's co-resident 64-token
  // tiles measured better (8 × 1536 × 2048: 0.233 against 0.241 ms).
  struct Cand {
    const ScanKernelOps* ops;
    int S, tpc;
    double factor;
    bool spans = false;  // the span-only instantiation
  };
  Cand cands[7];
  int ncand = 0;
  if (general) {
    cands[ncand++] = p.N > 16 ? Cand{&tab.general64, 16, 4, 1.0} : Cand{&tab.general16, 4, 4, 1.0};
  } else {
    const Cand all[7] = {{&tab.s1, 1, 16, 1.0},          {&tab.s2, 2, 8, 1.0},
                         {&tab.s4, 4, 4, 1.0},           {&tab.s4wide, 4, 4, 0.97},
                         {&tab.s4spans, 4, 4, 0.97, true}, {&tab.s8, 8, 2, 1.0},
                         {&tab.s16, 16, 1, 1.0}};
    for (const Cand& c : all)
      if (p.states_per_thread == 0 || p.states_per_thread == c.S) cands[ncand++] = c;
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
  //
  // Chunks of L (scan_chunks.cuh) cost the same per token plus a pipeline fill and drain per
  // chunk (~2 tiles), in waves of chunk blocks instead of whole-sequence ones; automatically
  // only where each wave holds distinct channel groups (so that a chunk's predecessor ran a
  // wave earlier) and where the model expects at least 10% off (H200: d_inner 5120 from
  // L = 8192, 4 chunks of 128-token tiles per group, 22-32% off; at 5120 × 2048 chunks lost).
  // Balanced spans (the wide 4-state variant's span instantiation) cost the same per token over
  // one block per SM with equal work, plus a chunk's fill and drain per piece; automatically
  // only where the groups need more than one block per SM and with the same 10% margin (H200:
  // d_inner 5120, 132 spans: 5120 × 2048 0.146 -> 0.131 ms, 5120 × 8192 0.408 (4 chunks) ->
  // 0.398, session 5; with the span-only instantiation 0.106 and 0.334, session 9).
  const int64_t Lr = (p.L + 15) / 16 * 16;
  Choice best{};
  double best_cost = -1;
  auto waves_of = [&](int64_t blocks, int occ) {
    double waves = 0;  // sum over waves of (blocks on the busiest SM) × co-residency factor
    for (int64_t left = blocks; left > 0; left -= int64_t(occ) * dv.sms) {
      const int64_t r = std::min<int64_t>(occ, (left + dv.sms - 1) / dv.sms);
      waves += double(r) * (r > 1 ? 0.7 : 1.0);
    }
    return waves;
  };
  for (int ci = 0; ci < ncand; ++ci) {
    const Cand& cd = cands[ci];
    ScanLaunch k{};
    k.dev = dv.id;
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
      const double per_token = cd.S * s_factor * cd.factor * (1.0 + 48.0 / tt) / double(Lr);
      auto consider = [&](int64_t len, double cost, int64_t span = 0) {
        if (best_cost >= 0 && cost >= best_cost * 0.999) return;
        best = Choice{cd.ops, k, cd.S, cd.tpc, general};
        best.k.chunks = len ? int((p.L + len - 1) / len) : 1;
        best.k.chunk_len = len;
        best.k.span_len = span;
        best_cost = cost;
      };
      // Balanced spans: nb blocks of span = ceil(blocks · L / nb) tokens each, where the groups
      // need more than one round of nb (r blocks per SM); each block runs at most
      // ceil(span / L) + 1 pieces, each with the fill and drain of a chunk (~2 tiles).
      if (p.spans > 1 && !cd.spans) continue;
      if (cd.spans) {  // the span instantiation runs spans only
        if (!chunkable || p.l_chunks > 1 || p.spans == 1) continue;
        const int64_t total = blocks * p.L;
        auto span_cost = [&](int64_t nb) {
          int64_t span = (total + nb - 1) / nb;
          // Where L is whole tiles, spans of whole tiles cut groups on tile boundaries only. A
          // cut inside a tile costs each of its two pieces a partial last tile: the checked prep
          // and finish, and a whole tile's scan steps (H200 trace, session 9: a 16-token piece
          // took 8.6 µs, a whole 128-token tile 3.9).
          if (p.L % tt == 0) span = (span + tt - 1) / tt * tt;
          nb = (total + span - 1) / span;
          const int64_t r = (nb + dv.sms - 1) / dv.sms;
          const int64_t pieces = (span + p.L - 1) / p.L + 1;
          consider(0, per_token * double(r) * double(span + tt + 2 * tt * (pieces - 1)) *
                          (p.spans > 1 ? 1.0 : 1.0 / 0.9), span);
        };
        if (p.spans > 1)
          span_cost(std::min<int64_t>(p.spans, blocks));
        else if (blocks > dv.sms)
          span_cost(dv.sms);  // one block per SM
        continue;
      }
      auto chunk_len = [&](int K) { return ((p.L + K - 1) / K + tt - 1) / tt * tt; };
      // A forced chunk count that leaves one chunk (a short L) is the plain launch.
      const bool forced = p.l_chunks > 1 && (p.L + chunk_len(p.l_chunks) - 1) / chunk_len(p.l_chunks) > 1;
      const bool wide_ok = cd.factor == 1.0 || blocks <= dv.sms;
      if (!forced && wide_ok) consider(0, per_token * waves_of(blocks, occ) * double(Lr + tt));
      if (!chunkable || p.l_chunks == 1 || (p.l_chunks == 0 && int64_t(occ) * dv.sms > blocks))
        continue;
      for (int K = forced ? p.l_chunks : 2; K <= (forced ? p.l_chunks : 16); ++K) {
        const int64_t len = chunk_len(K);
        const int64_t kk = (p.L + len - 1) / len;  // chunks actually needed
        if (kk < 2 || (!forced && len < 2 * tt)) continue;
        consider(len, per_token * waves_of(blocks * kk, occ) * double(len + 2 * tt) *
                          (forced ? 1.0 : 1.0 / 0.9));
      }
    }
  }
  if (best_cost < 0)
    throw Error("selective_scan: no launch shape fits this GPU's shared memory (tile_len " +
                std::to_string(p.tile_len) + ")");
  best.k.groups = (p.d + best.k.cb - 1) / best.k.cb;
  return best;
}

}  // namespace

ScanConfig scan_config(const ScanParams& p) {
  const Choice c = choose(p, nullptr);
  const int spans = c.k.span_len > 0 ? int((int64_t(p.batch) * c.k.groups * p.L + c.k.span_len - 1) /
                                              c.k.span_len)
                                      : 0;
  return {c.S, c.k.cb, c.tpc, c.k.tt, c.ops->smem_bytes(p, c.k), c.general, c.k.chunks, spans};
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
  Choice c = choose(p, stream);
  if (c.k.chunks > 1 || c.k.span_len > 0) bind_chunk_workspace(c.k, p, c.k.dev, stream);
  c.ops->launch(p, c.k, stream);
}

}  // namespace mambascope::cuda
