// The numbers the views plot, computed from the probe copies: per-token measures for the token
// strip, and the decay arithmetic behind retention, half-life and survival (A = -exp(A_log)).
// Missing data (a layer not recorded, details dropped by the memory bound) is NaN.
#pragma once
#include <QString>
#include <QVector>
#include <vector>

#include "core/tokendata.h"

enum class TokenMeasure {
  DeltaLayer,     // mean Δ over channels of the chosen layer
  DeltaAll,       // mean Δ over channels and layers
  NormB,          // ‖B‖ of the chosen layer
  NormC,          // ‖C‖ (read strength)
  Gate,           // mean SiLU(z)
  HNormChange,    // ‖h_t‖ − ‖h_{t−1}‖ of the chosen layer
  WriteStrength,  // ‖Δ·B·x‖
};
constexpr int kTokenMeasureCount = 7;
QString measureName(TokenMeasure m);
bool measureIsSigned(TokenMeasure m);

float tokenMeasure(const QVector<TokenRecord>& tokens, qint64 index, TokenMeasure m, int layer);

namespace decay {
// exp(Δ_c · A_cn) averaged over n: the fraction of channel c's state kept across this token.
// delta {d_inner}, a {d_inner, d_state}; returns {d_inner}.
std::vector<float> retention(const std::vector<float>& delta, const std::vector<float>& a, int dState);
// A typical half-life in tokens, ln2 / rate, with the rate Δ_c·|A_cn| averaged geometrically over
// (c, n) so that neither a few fast nor a few slow channels dominate.
float halfLife(const std::vector<float>& delta, const std::vector<float>& a, int dState);
// How much of one token's contribution to the state survives at each later token: the mean
// over (c, n) of exp(A_cn · Σ_{k=from+1..t} Δ_kc), 1 at the token itself. Fed one token at a time
// so that a streaming view extends its curve instead of recomputing it. A strided subset of the
// (c, n) pairs (at most maxPairs) keeps it interactive for large models.
class SurvivalTracker {
 public:
  SurvivalTracker(const std::vector<float>& a, int dState, int maxPairs = 1024);  // a {d_inner, d_state}
  // Δ {d_inner} of the next token; returns the surviving fraction after it (NaN if Δ is unusable).
  float step(const std::vector<float>& delta);

 private:
  const std::vector<float>& m_a;
  int m_dState;
  std::vector<size_t> m_pairs;    // indices into a
  std::vector<double> m_exponent; // A_cn · Σ Δ_kc so far, per picked pair
};
}  // namespace decay
