// GPU sampling (decode.hpp): repetition penalty, temperature, the top candidates (exact, ties to
// the lower id), softmax over the whole vocabulary, then top-k / top-p / min-p truncation and a
// draw from a counter-based random stream. One block: the vocabulary is ~50k, and the whole step
// must stay inside the decode graph. Up to 8 candidates (greedy with alternatives, small top-k)
// take one pass: each thread keeps its own sorted top 8 and an online softmax sum, and the block
// merges the lists; more candidates take one block-wide arg-max pass each.
#include <cub/block/block_reduce.cuh>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_types.cuh"
#include "cuda/decode.hpp"

namespace mambascope::cuda {
namespace {

constexpr int kThreads = 1024;

struct Cand {
  float v;
  int id;
};
struct CandMax {
  __device__ Cand operator()(const Cand& a, const Cand& b) const {
    if (a.v != b.v) return a.v > b.v ? a : b;
    return a.id < b.id ? a : b;
  }
};

__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27; x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const SampleArgs a) {
  using Reduce = cub::BlockReduce<Cand, kThreads>;
  using FReduce = cub::BlockReduce<float, kThreads>;
  __shared__ union {
    typename Reduce::TempStorage c;
    typename FReduce::TempStorage f;
  } tmp;
  __shared__ Cand sel[kMaxCandidates];
  __shared__ float zsum;
  const int V = a.vocab;
  float* work = a.work;
  const float inv_t = a.temperature > 0.f ? 1.f / a.temperature : 1.f;

  // Penalty (once per distinct id in the window; CTRL style) on a copy; temperature on the fly.
  const bool penalize = a.repetition_penalty != 1.f && a.window > 0;
  const float* src = penalize ? work : a.logits;
  if (penalize) {
    for (int v = threadIdx.x; v < V; v += kThreads) work[v] = a.logits[v];
    __syncthreads();
  }
  if (penalize && threadIdx.x == 0) {
    const int64_t n = a.counters[0] < a.window ? a.counters[0] : a.window;
    for (int64_t i = 0; i < n; ++i) {
      const int id = a.ring[i];
      bool seen = false;
      for (int64_t j = 0; j < i; ++j) seen |= a.ring[j] == id;
      if (seen || id < 0 || id >= V) continue;
      const float l = work[id];
      work[id] = l > 0.f ? l / a.repetition_penalty : l * a.repetition_penalty;
    }
  }
  __syncthreads();

  int K = a.top_k > 0 ? a.top_k : (a.temperature > 0.f ? kMaxCandidates : 1);
  if (K < a.n_alt) K = a.n_alt;
  if (K > kMaxCandidates) K = kMaxCandidates;
  if (K > V) K = V;
  constexpr int kLocal = 8;
  if (K <= kLocal) {
    // One pass: a sorted local top 8 and an online softmax (running max, rescaled sum).
    float lv[kLocal];
    int li[kLocal];
#pragma unroll
    for (int j = 0; j < kLocal; ++j) lv[j] = -INFINITY, li[j] = 0x7fffffff;
    float m = -INFINITY, z = 0.f;
    for (int v = threadIdx.x; v < V; v += kThreads) {
      float x = src[v] * inv_t;
      if (x > m) {
        z = z * __expf(m - x) + 1.f;
        m = x;
      } else {
        z += __expf(x - m);
      }
      if (x > lv[kLocal - 1]) {  // ids rise within a thread: ties keep the earlier id in front
        int xi = v;
#pragma unroll
        for (int j = 0; j < kLocal; ++j)
          if (x > lv[j]) {
            const float tv = lv[j];
            const int ti = li[j];
            lv[j] = x, li[j] = xi;
            x = tv, xi = ti;
          }
      }
    }
    // Merge: K rounds, each thread offering the head of its list; the winner pops it.
    for (int r = 0; r < K; ++r) {
      const Cand b = Reduce(tmp.c).Reduce(Cand{lv[0], li[0]}, CandMax());
      if (threadIdx.x == 0) sel[r] = b;
      __syncthreads();
      if (li[0] == sel[r].id && lv[0] == sel[r].v) {
#pragma unroll
        for (int j = 0; j + 1 < kLocal; ++j) lv[j] = lv[j + 1], li[j] = li[j + 1];
        lv[kLocal - 1] = -INFINITY;
        li[kLocal - 1] = 0x7fffffff;
      }
      __syncthreads();
    }
    const float gm = sel[0].v;
    const float Z = FReduce(tmp.f).Sum(m == -INFINITY ? 0.f : z * __expf(m - gm));
    if (threadIdx.x == 0) zsum = Z;
    __syncthreads();
  } else {
    // The K best, in order: round r takes the best below round r-1's (value, id).
    for (int r = 0; r < K; ++r) {
      Cand best{-INFINITY, 0x7fffffff};
      const Cand prev = r ? sel[r - 1] : Cand{INFINITY, -1};
      for (int v = threadIdx.x; v < V; v += kThreads) {
        const float x = src[v] * inv_t;
        const bool below = x < prev.v || (x == prev.v && v > prev.id);
        if (below && (x > best.v || (x == best.v && v < best.id))) best = Cand{x, v};
      }
      const Cand b = Reduce(tmp.c).Reduce(best, CandMax());
      if (threadIdx.x == 0) sel[r] = b;
      __syncthreads();
    }
    const float gm = sel[0].v;
    float z = 0.f;
    for (int v = threadIdx.x; v < V; v += kThreads) z += __expf(src[v] * inv_t - gm);
    const float Z = FReduce(tmp.f).Sum(z);
    if (threadIdx.x == 0) zsum = Z;
    __syncthreads();
  }
  const float m = sel[0].v;
  if (threadIdx.x != 0) return;

  for (int i = 0; i < a.n_alt && i < K; ++i) {
    a.out[1 + i] = sel[i].id;
    a.out_prob[i] = __expf(sel[i].v - m) / zsum;
  }
  int token = sel[0].id;
  if (a.temperature > 0.f) {
    // Truncate: top-k (K), top-p (smallest prefix reaching top_p), min-p (p >= min_p · p_max).
    float p[kMaxCandidates], kept = 0.f;
    int n = a.top_k > 0 && a.top_k < K ? a.top_k : K;
    float cum = 0.f;
    int keep = 0;
    for (int i = 0; i < n; ++i) {
      p[i] = __expf(sel[i].v - m) / zsum;
      if (a.min_p > 0.f && p[i] < a.min_p * p[0]) break;
      cum += p[i];
      keep = i + 1;
      if (a.top_p < 1.f && cum >= a.top_p) break;
    }
    kept = cum;
    const uint64_t step = uint64_t(a.counters[1]);
    const float u = float(mix64(a.seed ^ mix64(step + 1)) >> 40) * (1.f / 16777216.f) * kept;
    float acc = 0.f;
    token = sel[keep - 1].id;
    for (int i = 0; i < keep; ++i) {
      acc += p[i];
      if (u < acc) {
        token = sel[i].id;
        break;
      }
    }
  }
  a.out[0] = token;
  if (a.window > 0) a.ring[a.counters[0] % a.window] = token;
  a.counters[0] += 1;
  a.counters[1] += 1;
}

}  // namespace

void sample(const SampleArgs& a, cudaStream_t stream) {
  if (a.n_alt > kMaxCandidates) throw Error("at most 64 alternatives can be reported per token");
  sample_kernel<<<1, kThreads, 0, stream>>>(a);
  MS_CUDA_CHECK_LAUNCH();
}

}  // namespace mambascope::cuda
