// The CPU reference ops (fp32, OpenBLAS for the projections). Each op names the PyTorch line of
// transformers' MambaMixer.slow_forward / MambaRMSNorm that it implements.
#include "cpu/cpu_ops.hpp"

#include <cblas.h>

#include <cmath>
#include <vector>

#include "cpu/parallel_for.hpp"

namespace mambascope::cpu {
namespace {

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

}  // namespace

// variance = x.pow(2).mean(-1); x * rsqrt(variance + eps) * weight
void rms_norm(const float* x, const float* w, float eps, int64_t n, int64_t d, float* out) {
  parallel_for(n, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float* xi = x + i * d;
      double ss = 0;
      for (int64_t j = 0; j < d; ++j) ss += double(xi[j]) * xi[j];
      float r = 1.0f / std::sqrt(float(ss / double(d)) + eps);
      float* oi = out + i * d;
      for (int64_t j = 0; j < d; ++j) oi[j] = xi[j] * r * w[j];
    }
  });
}

// residual = residual + hidden_states; hidden_states = norm(residual)
void add_rms_norm(float* residual, const float* x, const float* w, float eps, int64_t n, int64_t d,
                  float* out) {
  if (x) {
    for (int64_t i = 0; i < n * d; ++i) residual[i] += x[i];
  }
  rms_norm(residual, w, eps, n, d, out);
}

// self.embeddings(input_ids)
void embedding(const int32_t* ids, const float* table, int64_t n, int64_t d, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float* row = table + int64_t(ids[i]) * d;
    std::copy(row, row + d, out + i * d);
  }
}

// nn.Linear: y = x @ W.T + b
void linear(const float* x, const float* W, const float* bias, int64_t n, int64_t in_f,
            int64_t out_f, float* y, int64_t ldx, int64_t ldy) {
  if (ldx == 0) ldx = in_f;
  if (ldy == 0) ldy = out_f;
  if (n == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, blasint(out_f), blasint(in_f), 1.0f, W, blasint(in_f),
                x, 1, 0.0f, y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(n), blasint(out_f), blasint(in_f),
                1.0f, x, blasint(ldx), W, blasint(in_f), 0.0f, y, blasint(ldy));
  }
  if (bias) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < out_f; ++j) y[i * ldy + j] += bias[j];
  }
}

// hidden_states = act(conv1d(hidden_states)[..., :seq_len]), continuing from conv_state
void conv1d_causal_silu(const float* x, int64_t ldx, float* conv_state, const float* w,
                        const float* b, int64_t L, int64_t d, int64_t k, float* out) {
  parallel_for(d, channel_grain(L, k), [&](int64_t c0, int64_t c1) {
    std::vector<float> window(static_cast<size_t>(k - 1 + L));  // window {k-1+L}: state then new inputs
    for (int64_t c = c0; c < c1; ++c) {
      float* st = conv_state + c * (k - 1);
      for (int64_t j = 0; j < k - 1; ++j) window[j] = st[j];
      for (int64_t t = 0; t < L; ++t) window[k - 1 + t] = x[t * ldx + c];
      const float* wc = w + c * k;
      for (int64_t t = 0; t < L; ++t) {
        float acc = b ? b[c] : 0.0f;
        for (int64_t j = 0; j < k; ++j) acc += wc[j] * window[t + j];
        out[t * d + c] = silu(acc);
      }
      for (int64_t j = 0; j < k - 1; ++j) st[j] = window[L + j];
    }
  });
}

// discrete_time_step = softplus(dt_proj(time_step))  (the bias part of dt_proj, then softplus)
void softplus_bias(const float* dt, const float* bias, int64_t L, int64_t d, float* delta) {
  for (int64_t t = 0; t < L; ++t)
    for (int64_t c = 0; c < d; ++c) delta[t * d + c] = softplus(dt[t * d + c] + (bias ? bias[c] : 0.0f));
}

// scan_output = scan_output * act(gate)
void gate_silu(float* y, const float* z, int64_t ldz, int64_t L, int64_t d) {
  for (int64_t t = 0; t < L; ++t)
    for (int64_t c = 0; c < d; ++c) y[t * d + c] *= silu(z[t * ldz + c]);
}

}  // namespace mambascope::cpu
