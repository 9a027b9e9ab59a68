// Per-token measures and decay arithmetic.
#include "core/measures.h"

#include <QCoreApplication>
#include <algorithm>
#include <cmath>
#include <limits>

namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr double kLn2 = 0.69314718055994530942;

const LayerFrame* layerAt(const QVector<TokenRecord>& tokens, qint64 index, int layer) {
  if (index < 0 || index >= tokens.size() || !tokens[index].probe) return nullptr;
  return tokens[index].probe->layer(layer);
}
}  // namespace

QString measureName(TokenMeasure m) {
  switch (m) {
    case TokenMeasure::DeltaLayer: return QCoreApplication::translate("measures", "mean Δ (layer)");
    case TokenMeasure::DeltaAll: return QCoreApplication::translate("measures", "mean Δ (all layers)");
    case TokenMeasure::NormB: return QCoreApplication::translate("measures", "‖B‖");
    case TokenMeasure::NormC: return QCoreApplication::translate("measures", "‖C‖");
    case TokenMeasure::Gate: return QCoreApplication::translate("measures", "gate SiLU(z)");
    case TokenMeasure::HNormChange: return QCoreApplication::translate("measures", "change of ‖h‖");
    case TokenMeasure::WriteStrength: return QCoreApplication::translate("measures", "write ‖Δ·B·x‖");
  }
  return {};
}

bool measureIsSigned(TokenMeasure m) { return m == TokenMeasure::HNormChange || m == TokenMeasure::Gate; }

float tokenMeasure(const QVector<TokenRecord>& tokens, qint64 index, TokenMeasure m, int layer) {
  if (m == TokenMeasure::DeltaAll) {
    if (index < 0 || index >= tokens.size() || !tokens[index].probe) return kNaN;
    const auto& layers = tokens[index].probe->layers;
    if (layers.empty()) return kNaN;
    double s = 0;
    for (const LayerFrame& f : layers) s += f.meanDelta;
    return float(s / double(layers.size()));
  }
  const LayerFrame* f = layerAt(tokens, index, layer);
  if (!f) return kNaN;
  switch (m) {
    case TokenMeasure::DeltaLayer: return f->meanDelta;
    case TokenMeasure::NormB: return f->normB;
    case TokenMeasure::NormC: return f->readNorm;
    case TokenMeasure::Gate: return f->meanGate;
    case TokenMeasure::WriteStrength: return f->writeStrength;
    case TokenMeasure::HNormChange: {
      const LayerFrame* prev = layerAt(tokens, index - 1, layer);
      return f->normH - (prev ? prev->normH : 0.0f);
    }
    case TokenMeasure::DeltaAll: break;
  }
  return kNaN;
}

namespace decay {

std::vector<float> retention(const std::vector<float>& delta, const std::vector<float>& a, int dState) {
  const size_t dInner = delta.size();
  std::vector<float> out(dInner, kNaN);  // {d_inner}
  if (dState <= 0 || a.size() != dInner * size_t(dState)) return out;
  for (size_t c = 0; c < dInner; ++c) {
    double s = 0;
    for (int n = 0; n < dState; ++n) s += std::exp(double(delta[c]) * a[c * dState + n]);
    out[c] = float(s / dState);
  }
  return out;
}

float halfLife(const std::vector<float>& delta, const std::vector<float>& a, int dState) {
  const size_t dInner = delta.size();
  if (dInner == 0 || dState <= 0 || a.size() != dInner * size_t(dState)) return kNaN;
  // mean over (c, n) of log(Δ_c |A_cn|) = mean_c log Δ_c + mean_{c,n} log |A_cn|
  double logDelta = 0, logA = 0;
  for (float d : delta) logDelta += std::log(std::max(double(d), 1e-30));
  for (float x : a) logA += std::log(std::max(double(std::fabs(x)), 1e-30));
  const double rate = std::exp(logDelta / double(dInner) + logA / double(a.size()));
  return rate > 0 ? float(kLn2 / rate) : std::numeric_limits<float>::infinity();
}

SurvivalTracker::SurvivalTracker(const std::vector<float>& a, int dState, int maxPairs)
    : m_a(a), m_dState(dState) {
  const size_t stride = std::max<size_t>(1, a.size() / size_t(std::max(1, maxPairs)));
  for (size_t i = 0; i < a.size(); i += stride) m_pairs.push_back(i);
  m_exponent.assign(m_pairs.size(), 0.0);
}

float SurvivalTracker::step(const std::vector<float>& delta) {
  if (m_pairs.empty() || m_dState <= 0 || delta.size() * size_t(m_dState) != m_a.size()) return kNaN;
  double s = 0;
  for (size_t k = 0; k < m_pairs.size(); ++k) {
    m_exponent[k] += double(m_a[m_pairs[k]]) * delta[m_pairs[k] / size_t(m_dState)];
    s += std::exp(m_exponent[k]);
  }
  return float(s / double(m_pairs.size()));
}

}  // namespace decay
