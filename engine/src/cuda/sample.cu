// GPU sampling (decode.hpp) with the CPU Sampler's semantics over the whole vocabulary, in one
// block (the step must stay inside the decode graph). Every token is ordered by a 64-bit key,
// (scaled logit, then lower id), so every truncation the Sampler makes — top-k, top-p, the
// alternatives — keeps the keys above one threshold. Thresholds come from a radix select over
// the key bytes (8 passes at most, usually 2-3: a pass stops as soon as the boundary is pinned),
// weighing tokens by count (top-k) or by probability in 2^-40 fixed point (top-p: integer sums,
// so the cut is the same on every run). A top-k of at most 64 is gathered, sorted and finished
// like the CPU does it; otherwise the draw is an inverse CDF over the kept tokens in id order
// (a block-wide prefix sum). Greedy takes the arg-max; its alternatives are at temperature 1.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cuda/functional>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_types.cuh"
#include "cuda/decode.hpp"

namespace mambascope::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kListMax = kMaxCandidates;  // top-k up to this is finished on a sorted list
constexpr double kFix = 1099511627776.0;  // 2^40: probability fixed point for top-p

__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27; x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Larger key = earlier in the Sampler's order: higher value, then lower id.
__device__ __forceinline__ uint64_t key_of(float s, int v) {
  const uint32_t f = __float_as_uint(s);
  const uint32_t k = (f & 0x80000000u) ? ~f : (f | 0x80000000u);
  return (uint64_t(k) << 32) | (0xffffffffu - uint32_t(v));
}
__device__ __forceinline__ int id_of(uint64_t key) { return int(0xffffffffu - uint32_t(key)); }
__device__ __forceinline__ uint64_t fixed_mass(float s, float m) {
  return uint64_t(double(__expf(s - m)) * kFix);
}

struct Entry {
  uint64_t key;
  float s;
};

struct Shared {
  unsigned long long hist_n[256], hist_w[256];
  Entry list[kListMax], sorted[kListMax];
  int count, found;
  int sel_digit;
  unsigned long long sel_above, sel_bin_n;
  bool sel_none;
  union {
    cub::BlockReduce<unsigned long long, kThreads>::TempStorage u64;
    cub::BlockReduce<double, kThreads>::TempStorage f64;
    cub::BlockReduce<int, kThreads>::TempStorage i32;
    cub::BlockScan<double, kThreads>::TempStorage scan;
  } cub;
  unsigned long long bcast_u64;
  double bcast_f64;
};

struct View {
  const float* src;
  int V;
  float inv_t;
  __device__ float s(int v) const { return src[v] * inv_t; }
};

// The largest key threshold T >= lo such that the tokens with key >= T weigh at least `need`
// (a count, or fixed-point mass when `mass`); lo if the keys >= lo weigh less.
__device__ uint64_t select(const View& x, float m, uint64_t lo, uint64_t need, bool mass, Shared& sh) {
  const int tid = int(threadIdx.x), lane = tid & 31;
  uint64_t prefix = 0;
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += kThreads) sh.hist_n[i] = 0, sh.hist_w[i] = 0;
    __syncthreads();
    const uint64_t hi = shift == 56 ? 0 : ~0ull << (shift + 8);
    for (int base = 0; base < x.V; base += kThreads) {
      const int v = base + tid;
      uint64_t k = 0;
      float s = 0.f;
      bool in = v < x.V;
      if (in) {
        s = x.s(v);
        k = key_of(s, v);
        in = k >= lo && (k & hi) == prefix;
      }
      const unsigned act = __ballot_sync(0xffffffffu, in);
      if (!in) continue;
      // Lanes with the same digit add once (the first pass puts most tokens in a few bins).
      const unsigned d = unsigned(k >> shift) & 255u;
      const unsigned peers = __match_any_sync(act, d);
      const bool leader = lane == __ffs(peers) - 1;
      if (leader) atomicAdd(&sh.hist_n[d], (unsigned long long)__popc(peers));
      if (mass) {
        const uint64_t w = fixed_mass(s, m);  // < 2^41: two 20-bit halves and the rest
        const unsigned w0 = __reduce_add_sync(peers, unsigned(w & 0xfffffu));
        const unsigned w1 = __reduce_add_sync(peers, unsigned((w >> 20) & 0xfffffu));
        const unsigned w2 = __reduce_add_sync(peers, unsigned(w >> 40));
        if (leader)
          atomicAdd(&sh.hist_w[d], (unsigned long long)w0 + ((unsigned long long)w1 << 20) +
                                       ((unsigned long long)w2 << 40));
      }
    }
    __syncthreads();
    if (tid < 32) {
      // Lane i holds bins 8i..8i+7; find the largest digit d with weight(digits >= d) >= need.
      uint64_t w[8], tot = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) tot += (w[j] = mass ? sh.hist_w[8 * lane + j] : sh.hist_n[8 * lane + j]);
      uint64_t incl = tot;  // Σ over lanes >= this one
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const uint64_t y = __shfl_down_sync(0xffffffffu, incl, o);
        if (lane + o < 32) incl += y;
      }
      uint64_t S = incl - tot, above = 0;
      int best = -1;
#pragma unroll
      for (int j = 7; j >= 0; --j) {
        const uint64_t Sj = S + w[j];
        if (best < 0 && Sj >= need) best = 8 * lane + j, above = S;
        S = Sj;
      }
      const unsigned bal = __ballot_sync(0xffffffffu, best >= 0);
      if (lane == 0) sh.sel_none = bal == 0;
      if (bal) {
        const int srcl = 31 - __clz(int(bal));
        const int d = __shfl_sync(0xffffffffu, best, srcl);
        const uint64_t ab = __shfl_sync(0xffffffffu, above, srcl);
        if (lane == 0) sh.sel_digit = d, sh.sel_above = ab, sh.sel_bin_n = sh.hist_n[d];
      }
    }
    __syncthreads();
    if (sh.sel_none) return lo;  // only in the first pass: everything >= lo is kept
    prefix |= uint64_t(sh.sel_digit) << shift;
    need -= sh.sel_above;
    const uint64_t bin_n = sh.sel_bin_n;
    __syncthreads();
    // The whole bin is kept, or one token decides it: the bin's lowest key is the threshold.
    if (bin_n == 1 || (!mass && bin_n == need)) return prefix > lo ? prefix : lo;
  }
  return prefix;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const SampleArgs a) {
  __shared__ Shared sh;
  const int tid = int(threadIdx.x), V = a.vocab;
  // Repetition penalty (CTRL: once per distinct id of the window) on a copy.
  const bool penalize = a.repetition_penalty != 1.f && a.window > 0;
  if (penalize) {
    for (int v = tid; v < V; v += kThreads) a.work[v] = a.logits[v];
    __syncthreads();
    const int64_t n = a.counters[0] < a.window ? a.counters[0] : a.window;
    for (int64_t i = tid; i < n; i += kThreads) {
      const int id = a.ring[i];
      bool dup = false;
      for (int64_t j = 0; j < i && !dup; ++j) dup = a.ring[j] == id;
      if (dup || id < 0 || id >= V) continue;
      const float l = a.work[id];
      a.work[id] = l > 0.f ? l / a.repetition_penalty : l * a.repetition_penalty;
    }
    __syncthreads();
  }
  const bool greedy = !(a.temperature > 0.f);
  const View x{penalize ? a.work : a.logits, V, greedy ? 1.f : 1.f / a.temperature};

  // The arg-max (ties to the lower id) and the normaliser of the whole distribution.
  unsigned long long best = 0;
  for (int v = tid; v < V; v += kThreads) best = max(best, (unsigned long long)key_of(x.s(v), v));
  best = cub::BlockReduce<unsigned long long, kThreads>(sh.cub.u64).Reduce(best, ::cuda::maximum<>{});
  if (tid == 0) sh.bcast_u64 = best;
  __syncthreads();
  const int arg = id_of(sh.bcast_u64);
  const float m = x.s(arg);
  double z = 0.0;
  for (int v = tid; v < V; v += kThreads) z += double(__expf(x.s(v) - m));
  z = cub::BlockReduce<double, kThreads>(sh.cub.f64).Sum(z);
  if (tid == 0) sh.bcast_f64 = z;
  __syncthreads();
  const double Z = sh.bcast_f64;

  // The alternatives and a top-k of at most 64: the best K tokens, sorted.
  const bool topk_list = !greedy && a.top_k > 0 && a.top_k <= kListMax && a.top_k < V;
  int K = a.n_alt > (topk_list ? a.top_k : 0) ? a.n_alt : (topk_list ? a.top_k : 0);
  if (K > V) K = V;
  if (K > 0) {
    const uint64_t T = select(x, m, 0, uint64_t(K), false, sh);
    if (tid == 0) sh.count = 0;
    __syncthreads();
    for (int v = tid; v < V; v += kThreads) {
      const float s = x.s(v);
      const uint64_t k = key_of(s, v);
      if (k >= T) {
        const int i = atomicAdd(&sh.count, 1);
        if (i < kListMax) sh.list[i] = Entry{k, s};
      }
    }
    __syncthreads();
    const int n = sh.count < kListMax ? sh.count : kListMax;
    if (tid < n) {
      int rank = 0;
      for (int j = 0; j < n; ++j) rank += sh.list[j].key > sh.list[tid].key;
      sh.sorted[rank] = sh.list[tid];
    }
    __syncthreads();
  }
  if (tid == 0) {
    for (int i = 0; i < a.n_alt && i < K; ++i) {
      a.host->ids[1 + i] = id_of(sh.sorted[i].key);
      a.host->prob[i] = float(exp(double(sh.sorted[i].s) - double(m)) / Z);
    }
  }

  int token = arg;
  const uint64_t step = uint64_t(a.counters[1]);
  const double u = double(mix64(a.seed ^ mix64(step + 1)) >> 11) * 0x1.0p-53;
  if (!greedy && topk_list) {
    if (tid == 0) {  // the Sampler's own steps on the sorted top-k
      int n = a.top_k;
      if (a.top_p < 1.f) {
        double zc = 0, cum = 0;
        for (int i = 0; i < n; ++i) zc += exp(double(sh.sorted[i].s) - double(m));
        for (int i = 0; i < n; ++i) {
          cum += exp(double(sh.sorted[i].s) - double(m)) / zc;
          if (cum >= a.top_p) {
            n = i + 1;
            break;
          }
        }
      }
      if (a.min_p > 0.f) {
        const double thr = double(m) + log(double(a.min_p));
        int keep = 0;
        while (keep < n && double(sh.sorted[keep].s) >= thr) ++keep;
        n = keep;
      }
      double zf = 0;
      for (int i = 0; i < n; ++i) zf += exp(double(sh.sorted[i].s) - double(m));
      const double r = u * zf;
      double acc = 0;
      token = -1;
      for (int i = 0; i < n && token < 0; ++i) {
        acc += exp(double(sh.sorted[i].s) - double(m));
        if (r < acc) token = id_of(sh.sorted[i].key);
      }
      for (int i = n - 1; i >= 0 && token < 0; --i)
        if (sh.sorted[i].s > -INFINITY) token = id_of(sh.sorted[i].key);
      if (token < 0) token = arg;
    }
  } else if (!greedy) {
    // Thresholds over the whole vocabulary, then an inverse-CDF draw in id order.
    uint64_t T = 0;
    if (a.top_k > 0 && a.top_k < V) T = select(x, m, 0, uint64_t(a.top_k), false, sh);
    if (a.top_p < 1.f) {
      unsigned long long zc = 0;
      for (int v = tid; v < V; v += kThreads) {
        const float s = x.s(v);
        if (key_of(s, v) >= T) zc += fixed_mass(s, m);
      }
      zc = cub::BlockReduce<unsigned long long, kThreads>(sh.cub.u64).Sum(zc);
      if (tid == 0) sh.bcast_u64 = zc;
      __syncthreads();
      uint64_t need = uint64_t(ceil(double(a.top_p) * double(sh.bcast_u64)));
      if (need == 0) need = 1;
      __syncthreads();
      T = select(x, m, T, need, true, sh);
    }
    const float thr = a.min_p > 0.f ? m + __logf(a.min_p) : -INFINITY;
    const int chunk = (V + kThreads - 1) / kThreads, v0 = tid * chunk, v1 = min(V, v0 + chunk);
    auto kept = [&](int v, float s) { return key_of(s, v) >= T && s >= thr; };
    double local = 0;
    for (int v = v0; v < v1; ++v) {
      const float s = x.s(v);
      if (kept(v, s)) local += double(__expf(s - m));
    }
    double prefix = 0, total = 0;
    cub::BlockScan<double, kThreads>(sh.cub.scan).ExclusiveSum(local, prefix, total);
    if (tid == 0) sh.found = -1;
    __syncthreads();
    const double r = u * total;
    if (local > 0 && prefix <= r && r < prefix + local) {
      double acc = prefix;
      int pick = -1, last = -1;
      for (int v = v0; v < v1 && pick < 0; ++v) {
        const float s = x.s(v);
        if (!kept(v, s)) continue;
        const double w = double(__expf(s - m));
        if (w > 0) last = v;
        acc += w;
        if (r < acc) pick = v;
      }
      sh.found = pick >= 0 ? pick : last;
    }
    __syncthreads();
    if (sh.found < 0) {  // rounding left r at the total: the last kept token with weight
      int lastv = -1;
      for (int v = v0; v < v1; ++v) {
        const float s = x.s(v);
        if (kept(v, s) && __expf(s - m) > 0.f) lastv = v;
      }
      lastv = cub::BlockReduce<int, kThreads>(sh.cub.i32).Reduce(lastv, ::cuda::maximum<>{});
      if (tid == 0) sh.found = lastv >= 0 ? lastv : arg;
      __syncthreads();
    }
    token = sh.found;
  }
  if (tid == 0) {
    // Z >= 1 whenever the arg-max is finite (its own term is 1); a NaN anywhere makes Z NaN.
    if (!(Z >= 1.0) || !(m < INFINITY)) token = -1;
    a.out[0] = token < 0 ? 0 : token;
    a.host->ids[0] = token < 0 ? kNonFiniteToken : token;
    if (a.window > 0) a.ring[a.counters[0] % a.window] = token;
    a.counters[0] += 1;
    a.counters[1] += 1;
  }
}

}  // namespace

void sample(const SampleArgs& a, cudaStream_t stream) {
  if (a.n_alt > kMaxCandidates) throw Error("at most 64 alternatives can be reported per token");
  sample_kernel<<<1, kThreads, 0, stream>>>(a);
  MS_CUDA_CHECK_LAUNCH();
}

}  // namespace mambascope::cuda
