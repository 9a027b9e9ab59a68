// The fused decode step's plan and launch (decode_fused.hpp), on the host: the grid, the
// clusters, out_proj by columns and the ring's slots for a shape and device, checked against the
// kernels' attributes and occupancy (decode_fused.cu holds the kernels).
#include <algorithm>
#include <string>

#include "cuda/cuda_check.hpp"
#include "cuda/decode_fused.hpp"

namespace mambascope::cuda {
namespace {

// The launch of one step: cooperative (every block resident) without clusters; with clusters,
// residency is checked once in fused_plan (cudaOccupancyMaxActiveClusters), as a cooperative
// launch does not take a cluster size.
struct FusedLaunch {
  cudaLaunchConfig_t cfg{};
  cudaLaunchAttribute attr[1];
  FusedLaunch(const FusedArgs& a, cudaStream_t stream) {
    cfg.gridDim = dim3(unsigned(a.G));
    cfg.blockDim = dim3(kFusedThreads);
    cfg.dynamicSmemBytes = size_t(fused_smem(a).total);
    cfg.stream = stream;
    if (a.cluster > 1) {
      attr[0].id = cudaLaunchAttributeClusterDimension;
      attr[0].val.clusterDim.x = unsigned(a.cluster);
      attr[0].val.clusterDim.y = 1;
      attr[0].val.clusterDim.z = 1;
    } else {
      attr[0].id = cudaLaunchAttributeCooperative;
      attr[0].val.cooperative = 1;
    }
    cfg.attrs = attr;
    cfg.numAttrs = 1;
  }
};

// With clusters (small layers, latency-bound): the fewest blocks, in whole clusters, that leave
// each block as few in_proj tiles as a.G blocks do. Fewer blocks make every exchange wait for
// fewer writers and fold fewer partials; more channels per block cost nothing while the tile
// count stays. H200, same run: 130m 96 blocks (16 channels, 2 tiles each) 4002 tok/s against
// 3933 at 112 (13-14 channels, also 2 tiles) and 3340 at 80 (3 tiles).
int fewest_cluster_blocks(const FusedArgs& a, int es) {
  if (a.cluster <= 1) return a.G;
  const int rpt = std::min(kFusedTileRows, a.slot_bytes / (a.dm * es));
  auto tiles = [&](int G) { return (2 * fused_ncmax(a.D, G) + rpt - 1) / rpt; };
  for (int g = a.cluster; g < a.G; g += a.cluster)
    if (tiles(g) <= tiles(a.G)) return g;
  return a.G;
}

// out_proj by columns (FusedArgs::outcol) for this shape: the row groups per block (powers of two
// up to 4 while d_model's 16-byte chunks leave threads idle), or 0 where it cannot run: no
// clusters, a cluster's slice of d_model not a multiple of 4 outputs, more than
// kFusedOutcolAcc outputs per thread or kFusedOutcolParts clusters (G only shrinks after this).
int outcol_groups(const FusedArgs& a, int es) {
  const int nv = a.dm * es / 16;
  if (a.cluster <= 1 || a.dm % (4 * a.cluster) || a.dm > kFusedOutcolAcc * kFusedComputeThreads) return 0;
  if (a.G / a.cluster > kFusedOutcolParts) return 0;
  int ng = 1;
  while (ng < 4 && 2 * ng * nv <= kFusedComputeThreads) ng *= 2;
  return ng;
}

// The weight stream's L2 priority (FusedArgs::l2; the by-rows kernels): evict_first for the
// projections and the lm_head. H200, same call, QUICK decode, 2 rounds: 130m 4282-4294 tok/s
// with none, 4346-4368 with both (the residual wait 18.3 -> 15.2 µs per token, the lm_head 22.0
// -> 20.3); the projections alone 4283-4293, within the spread. Marking the state and the
// per-channel records evict_last as well measured the same as without.
constexpr int kFusedL2Default = kFusedL2MatFirst | kFusedL2HeadFirst;

// The geometry for `cluster` blocks per cluster (1: none); "" or why it cannot run.
std::string plan_geometry(FusedArgs& a, DType dt, const cudaDeviceProp& prop, const FusedRequest& req, int cluster) {
  const int es = int(dtype_size(dt));
  a.G = std::min(prop.multiProcessorCount, 256);
  if (req.blocks > 0) a.G = std::min(a.G, req.blocks);
  a.cluster = std::max(1, cluster);
  if (a.cluster > 16) return "clusters of at most 16 blocks";
  if (a.G < a.cluster) return "fewer blocks than one cluster";
  a.G -= a.G % a.cluster;
  a.fold_x = req.fold > 0 || a.cluster > 1;  // always with clusters: their by-rows kernels have no X phase
  a.prefetch = req.prefetch > 0 ? req.prefetch : 0;
  a.outcol = req.outcol > 0 ? outcol_groups(a, es) : 0;
  const int c_ahead = a.outcol == 0 ? 0 : req.c_ahead >= 0 ? req.c_ahead : kFusedCAhead;
  a.l2 = req.l2 >= 0 ? req.l2 : kFusedL2Default;
  if (a.dm % 8 || a.D % 8) return "d_model and d_inner must be multiples of 8";
  if (a.N % 4 || a.N < 1) return "d_state must be a multiple of 4";
  if (a.k < 1 || a.k > kFusedMaxConv) return "d_conv must be 1..8";
  if (a.xr > kFusedMaxXr) return "dt_rank + 2 d_state must be <= 512";
  const int recA = fused_recA_bytes(a.k, a.xr, es), recB = fused_recB_bytes(a.N, a.R, es);
  int base = std::max({a.dm * es, a.D * es, recA, recB, 4 * a.N, 4 * a.dm});
  base = fused_round16(base);
  a.slot_bytes = base * std::max(1, std::min(kFusedTileRows, 24576 / base));
  // The plain and the recording kernel share the geometry: it must suit both.
  cudaFuncAttributes attr{};
  cudaError_t err = cudaSuccess;
  for (const bool pr : {false, true}) {
    cudaFuncAttributes k_attr{};
    if (err == cudaSuccess) err = cudaFuncGetAttributes(&k_attr, fused_step_kernel_for(dt, a.cluster > 1, a.outcol > 0, pr));
    if (err == cudaSuccess && (!pr || k_attr.sharedSizeBytes > attr.sharedSizeBytes)) attr = k_attr;
    if (err == cudaSuccess && k_attr.binaryVersion < 90) err = cudaErrorInvalidDeviceFunction;
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    return std::string("the fused decode kernel is not built for this GPU: ") + cudaGetErrorString(err);
  }
  const int budget = int(prop.sharedMemPerBlockOptin) - int(attr.sharedSizeBytes);
  // Ring slots for this G, then what runs at once: blocks per SM, or whole clusters; fewer
  // clusters than G needs shrink G, and so does fewest_cluster_blocks (the slots are fitted
  // again after each).
  bool trimmed = false;
  for (int round = 0; round < 3; ++round) {
    if (fused_ncmax(a.D, a.G) > kFusedComputeThreads)
      return "d_inner / blocks exceeds " + std::to_string(kFusedComputeThreads) + " channels per block (" +
             std::to_string(a.G) + " blocks)";
    const int max_slots = req.slots >= 3 ? std::min(req.slots, 16) : a.outcol ? 16 : kFusedRowsSlots;
    for (a.n_slots = max_slots; a.n_slots >= 3 && fused_smem(a).total > budget; --a.n_slots) {
    }
    if (a.n_slots < 3) return "the model's rows do not fit three shared-memory slots";
    a.c_ahead = c_ahead < a.n_slots ? c_ahead : 0;  // a whole ring ahead or more: no limit
    const int smem = fused_smem(a).total;
    int fit = 1 << 30;  // the smaller of the two kernels'
    for (const bool pr : {false, true}) {
      if (err != cudaSuccess) break;
      const void* k = fused_step_kernel_for(dt, a.cluster > 1, a.outcol > 0, pr);
      int k_fit = 0;
      err = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      if (err == cudaSuccess && a.cluster > 8) err = cudaFuncSetAttribute(k, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
      if (err != cudaSuccess) break;
      if (a.cluster == 1) {
        err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&k_fit, k, kFusedThreads, smem);
      } else {
        const FusedLaunch launch(a, nullptr);
        err = cudaOccupancyMaxActiveClusters(&k_fit, k, &launch.cfg);
      }
      fit = std::min(fit, k_fit);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      return std::string("the fused decode kernel is not usable here: ") + cudaGetErrorString(err);
    }
    if (fit < 1) return "the fused decode kernel does not fit on an SM";
    if (a.cluster == 1 || fit * a.cluster >= a.G) {
      const int g = req.blocks > 0 || trimmed ? a.G : fewest_cluster_blocks(a, es);
      if (g == a.G) return "";
      a.G = g, trimmed = true;  // fewer blocks: fit the slots again
      continue;
    }
    a.G = fit * a.cluster;  // the clusters that are resident at once
  }
  return "the fused decode kernel's clusters cannot all be resident";
}

}  // namespace

// Clusters by shape (H200, same run against none): 16 blocks per cluster made the 130m shape
// (7 MB of in_proj + out_proj per layer) 6.5% faster (session 4: 3039 against 2853 tok/s: no X
// exchange). With session 5's faster tile GEMV the exchanges weigh more: 1.4b (50 MB) gained
// 5.5% with 16 (839 against 796 tok/s; it had lost 5% with 8 before), lost 13% with 2; 2.8b
// (79 MB) gained 6.5% with 16 (476 against 447; 452 with 8, 397 with 2; it had lost 5-9% with 4,
// 8 or 16 in session 4). Larger layers (7b-class, 200 MB) are not measured: none there.
constexpr double kFusedClusterLayerBytes = 100e6;  // clusters of 16 below this
// out_proj by columns by shape (H200, session 7, same run against by rows, bf16 greedy): 1.4b
// (50 MB per layer) 1014 against 848-857 tok/s, 2.8b (79 MB) 541 against 478-479; the 130m
// shape (7 MB) lost, 3641-3652 against 4001-4038. Between 7 and 50 MB it is not measured.
constexpr double kFusedOutcolLayerBytes = 16e6;  // by columns from this size on (with clusters)
std::string fused_plan(FusedArgs& a, DType dt, int device, const FusedRequest& request) {
  FusedRequest req = request;
  cudaDeviceProp prop{};
  MS_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  if (prop.major < 9) return "the fused decode step needs sm_90 (Hopper) or newer";
  if (!prop.cooperativeLaunch) return "the device cannot launch cooperative kernels";
  const double layer_bytes = 3.0 * a.dm * a.D * double(dtype_size(dt));
  if (req.outcol < 0) req.outcol = layer_bytes >= kFusedOutcolLayerBytes ? 1 : 0;
  const bool chosen = req.cluster <= 0 && req.blocks <= 0;
  const int cluster = req.cluster > 0 ? req.cluster : (chosen && layer_bytes < kFusedClusterLayerBytes ? 16 : 1);
  std::string why = plan_geometry(a, dt, prop, req, cluster);
  if (!why.empty() && chosen && cluster > 1) why = plan_geometry(a, dt, prop, req, 1);
  return why;
}

void launch_fused(const FusedArgs& a, DType dt, cudaStream_t stream) {
  // The by-rows cluster kernels leave the X phase out: with clusters, B must fold the partials.
  if (a.cluster > 1 && !a.fold_x) throw Error("fused decode step: clusters need fold_x (a plan bug)");
  const FusedLaunch launch(a, stream);
  void* args[] = {const_cast<FusedArgs*>(&a)};
  MS_CUDA_CHECK(cudaLaunchKernelExC(&launch.cfg, fused_step_kernel_for(dt, a.cluster > 1, a.outcol > 0,
                                                                       a.probes.base != nullptr),
                                    args));
}

}  // namespace mambascope::cuda
