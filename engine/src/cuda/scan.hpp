// The fused selective scan (prefill): the CUDA twin of cpu::softplus_bias + cpu::ssm_scan_* +
// cpu::gate_silu in one pass over the sequence. Host-side parameters and the launcher.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "mambascope/dtype.hpp"

namespace mambascope::cuda {

// Every activation is token-major: element (b, t, c) of x lives at x + b*bs + t*ld + c.
// u, dt, z, B, C and y share `dtype`; A, D, the Δ bias, the state and the probes are fp32.
struct ScanParams {
  DType dtype = DType::BF16;
  int batch = 1;
  int64_t L = 0;
  int d = 0, N = 0;
  const void* u = nullptr;  int64_t ldu = 0, bsu = 0;    // {batch, L, d}
  const void* dt = nullptr; int64_t lddt = 0, bsdt = 0;  // {batch, L, d}: Δ before softplus
  const void* z = nullptr;  int64_t ldz = 0, bsz = 0;    // {batch, L, d}; null: no SiLU gate
  const void* B = nullptr;  int64_t ldb = 0, bsb = 0;    // {batch, L, N}
  const void* C = nullptr;  int64_t ldc = 0, bsc = 0;    // {batch, L, N}
  // LTI layers: Δ (before softplus) {d}, B and C {d, N} are parameters, fixed over time. When
  // set they replace dt / B / C above.
  const float* dt_const = nullptr;
  const float* B_const = nullptr;
  const float* C_const = nullptr;
  const float* A = nullptr;        // {d, N}: A = -exp(A_log)
  const float* D = nullptr;        // {d} or null
  const float* dt_bias = nullptr;  // {d} or null
  bool dt_softplus = true;
  float* h = nullptr;  // {batch, d, N}: initial state in, final state out; null: zero, not returned
  void* y = nullptr;   int64_t ldy = 0, bsy = 0;  // {batch, L, d}; may alias u
  // Probe outputs (fp32, each optional, batch-major like the inputs with ld = d):
  float* delta_out = nullptr;  // {batch, L, d}: Δ after softplus
  float* ypre_out = nullptr;   // {batch, L, d}: C·h + D·u, before the gate
  float* hnorm_out = nullptr;  // {batch, L, d}: ‖h_t‖ over the states
  float* h_out = nullptr;      // {batch, L - h_out_from, d, N}: h_t for t >= h_out_from
  int64_t h_out_from = 0;
  // Δ interventions: at token t (index within this call) Δ = value for every channel.
  static constexpr int kMaxOverrides = 8;
  int n_overrides = 0;
  int64_t override_t[kMaxOverrides] = {};
  float override_value[kMaxOverrides] = {};
  // Tuning (0 = automatic). states_per_thread: 1, 2, 4, 8 or 16 for d_state <= 16 (a channel's
  // 16 states are split over 16 / S lanes); larger d_state always runs 16 states per lane.
  // channels_per_block: must be 0 or what the states per thread give (4 scan warps of 32·S / 16
  // channels each). tile_len: tokens per shared-memory tile (16, 32, 64 or 128).
  int states_per_thread = 0;
  int channels_per_block = 0;
  int tile_len = 0;
  // L in chunks (0 = automatic, 1 = none, K = at most K chunks of whole tiles): blocks of one
  // chunk per channel group run in sequence, the state carried through global memory, so that
  // every SM gets equal work. Only for the usual layer (no probes, interventions or LTI).
  int l_chunks = 0;
  // Balanced spans (0 = automatic, 1 = none, K >= 2: K blocks, at most batch × channel groups):
  // blocks take equal shares of the (batch entry, channel group, token) work, a group cut
  // between two of them handing its state on as chunks do, so that every SM gets equal work
  // where the groups alone would load SMs unevenly (d_inner 5120: 160 groups on 132 SMs). Only
  // for the usual layer, like l_chunks, and not with l_chunks > 1.
  int spans = 0;
};

// Checks the parameters (throws mambascope::Error on a bad shape) and launches on `stream`.
void selective_scan(const ScanParams& p, cudaStream_t stream);

// What the automatic choice would be for these shapes (for the benchmark's report).
struct ScanConfig {
  int states_per_thread, channels_per_block, threads_per_channel, tile_len, smem_bytes;
  bool general;  // the variant with per-step probes / constant B, C (slower)
  int l_chunks;  // chunks of L (1: one block per channel group)
  int spans;     // blocks of balanced spans (0: none)
};
ScanConfig scan_config(const ScanParams& p);

}  // namespace mambascope::cuda
