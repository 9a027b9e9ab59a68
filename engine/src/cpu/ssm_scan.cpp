// The selective scan on the CPU, two ways that must agree: the recurrence one token at a time
// (decode), and a chunked scan (prefill). Channels are independent, so both parallelise over
// channels; the chunked scan also splits the sequence into chunks that are solved from a zero
// state independently and then stitched by carrying each chunk's final state forward.
#include <cmath>
#include <vector>

#include "cpu/cpu_ops.hpp"
#include "cpu/parallel_for.hpp"

namespace mambascope::cpu {

// for i in range(seq_len):
//     ssm_state = discrete_A[:, :, i, :] * ssm_state + deltaB_u[:, :, i, :]
//     scan_output = ssm_state @ C[:, i, :]
// scan_output = scan_output + hidden_states * D
void ssm_scan_recurrent(const SsmArgs& a) {
  const int64_t L = a.L, d = a.d, N = a.N;
  parallel_for(d, channel_grain(L, N), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      float* h = a.h + c * N;    // h {N}
      const float* A = a.A + c * N;
      for (int64_t t = 0; t < L; ++t) {
        const float dt = a.delta[t * d + c], u = a.u[t * d + c];
        const float* B = a.B + t * a.ldb;
        const float* C = a.C + t * a.ldc;
        float y = 0;
        for (int64_t n = 0; n < N; ++n) {
          h[n] = std::exp(dt * A[n]) * h[n] + dt * B[n] * u;
          y += C[n] * h[n];
        }
        a.y[t * d + c] = y + a.D[c] * u;
        if (a.h_all) std::copy(h, h + N, a.h_all + (t * d + c) * N);
      }
    }
  });
}

// Per channel: (1) each chunk is solved from h = 0, keeping its running log-decay
// S_t = Σ_{k≤t in chunk} Δ_k A; (2) chunk-start states are carried across chunks:
// h_start(j+1) = exp(S_end(j)) h_start(j) + h_local_end(j); (3) y_t += C_t · (exp(S_t) h_start).
// Step (1) is independent per chunk; only step (2) is sequential, over L / chunk items.
void ssm_scan_chunked(const SsmArgs& a, int64_t chunk) {
  const int64_t L = a.L, d = a.d, N = a.N;
  if (chunk <= 0) chunk = 64;
  const int64_t n_chunks = (L + chunk - 1) / chunk;
  parallel_for(d, channel_grain(L, N), [&](int64_t c0, int64_t c1) {
    std::vector<float> S(static_cast<size_t>(L * N));            // S {L, N}: log-decay within the chunk
    std::vector<float> h_end(static_cast<size_t>(n_chunks * N));  // h_end {n_chunks, N}: local final states
    std::vector<float> h_start(static_cast<size_t>(N));
    std::vector<float> h_loc(static_cast<size_t>(N));
    for (int64_t c = c0; c < c1; ++c) {
      const float* A = a.A + c * N;
      // (1) local solves
      for (int64_t j = 0; j < n_chunks; ++j) {
        std::fill(h_loc.begin(), h_loc.end(), 0.0f);
        std::vector<float> s(static_cast<size_t>(N), 0.0f);
        for (int64_t t = j * chunk; t < std::min(L, (j + 1) * chunk); ++t) {
          const float dt = a.delta[t * d + c], u = a.u[t * d + c];
          const float* B = a.B + t * a.ldb;
          const float* C = a.C + t * a.ldc;
          float y = 0;
          for (int64_t n = 0; n < N; ++n) {
            s[n] += dt * A[n];
            h_loc[n] = std::exp(dt * A[n]) * h_loc[n] + dt * B[n] * u;
            y += C[n] * h_loc[n];
            S[t * N + n] = s[n];
          }
          a.y[t * d + c] = y + a.D[c] * u;
          if (a.h_all) std::copy(h_loc.begin(), h_loc.end(), a.h_all + (t * d + c) * N);
        }
        std::copy(h_loc.begin(), h_loc.end(), h_end.begin() + j * N);
      }
      // (2) + (3): carry chunk-start states forward and add their contribution
      float* h = a.h + c * N;
      std::copy(h, h + N, h_start.begin());
      for (int64_t j = 0; j < n_chunks; ++j) {
        const int64_t t_end = std::min(L, (j + 1) * chunk);
        for (int64_t t = j * chunk; t < t_end; ++t) {
          const float* C = a.C + t * a.ldc;
          float y = 0;
          for (int64_t n = 0; n < N; ++n) {
            float carried = std::exp(S[t * N + n]) * h_start[n];
            y += C[n] * carried;
            if (a.h_all) a.h_all[(t * d + c) * N + n] += carried;
          }
          a.y[t * d + c] += y;
        }
        for (int64_t n = 0; n < N; ++n)
          h_start[n] = std::exp(S[(t_end - 1) * N + n]) * h_start[n] + h_end[j * N + n];
      }
      std::copy(h_start.begin(), h_start.end(), h);
    }
  });
}

}  // namespace mambascope::cpu
