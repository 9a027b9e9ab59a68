// Selectivity tables read straight from the probe copies of the current branch.
#include "models/selectivitymodels.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/sessiondocument.h"

namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int kClusters = 8;
constexpr int kClusterIterations = 12;
constexpr int kMaxProfileTokens = 512;

const LayerFrame* frameOf(const SessionDocument* doc, int row, int layer) {
  const TokenRecord* t = doc->token(row);
  return t && t->probe ? t->probe->layer(layer) : nullptr;
}

// Orders channels into k-means clusters of their (standardised) profiles over the tokens: the
// clusters by their mean value, channels inside a cluster by theirs. profiles {channels, tokens}.
std::vector<int> clusterOrder(const std::vector<std::vector<float>>& profiles) {
  const int n = int(profiles.size());
  const int dims = n ? int(profiles[0].size()) : 0;
  std::vector<double> means(size_t(n), 0.0);
  std::vector<std::vector<float>> z(size_t(n), std::vector<float>(size_t(dims), 0.f));
  for (int c = 0; c < n; ++c) {
    double s = 0, s2 = 0;
    for (float v : profiles[c]) s += v, s2 += double(v) * v;
    const double m = dims ? s / dims : 0, sd = dims ? std::sqrt(std::max(0.0, s2 / dims - m * m)) : 0;
    means[c] = m;
    for (int d = 0; d < dims; ++d) z[c][d] = sd > 0 ? float((profiles[c][d] - m) / sd) : 0.f;
  }
  const int k = std::min(kClusters, n);
  std::vector<int> assign(size_t(n), 0);
  std::vector<std::vector<float>> centroids(static_cast<size_t>(k));
  for (int j = 0; j < k; ++j) centroids[j] = z[size_t(j * n / std::max(k, 1))];  // deterministic seeds
  for (int it = 0; it < kClusterIterations && k > 0; ++it) {
    for (int c = 0; c < n; ++c) {
      double best = 1e300;
      for (int j = 0; j < k; ++j) {
        double d2 = 0;
        for (int d = 0; d < dims; ++d) d2 += double(z[c][d] - centroids[j][d]) * (z[c][d] - centroids[j][d]);
        if (d2 < best) best = d2, assign[c] = j;
      }
    }
    for (int j = 0; j < k; ++j) {
      std::vector<double> sum(size_t(dims), 0.0);
      int count = 0;
      for (int c = 0; c < n; ++c)
        if (assign[c] == j) {
          ++count;
          for (int d = 0; d < dims; ++d) sum[d] += z[c][d];
        }
      if (count)
        for (int d = 0; d < dims; ++d) centroids[j][d] = float(sum[d] / count);
    }
  }
  std::vector<double> clusterMean(size_t(k), 0.0);
  std::vector<int> clusterSize(size_t(k), 0);
  for (int c = 0; c < n; ++c) clusterMean[assign[c]] += means[c], ++clusterSize[assign[c]];
  for (int j = 0; j < k; ++j) clusterMean[j] = clusterSize[j] ? clusterMean[j] / clusterSize[j] : 0;
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    if (assign[a] != assign[b]) return clusterMean[assign[a]] > clusterMean[assign[b]];
    return means[a] > means[b];
  });
  return order;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
ChannelModel::ChannelModel(SessionDocument* doc, Field field, QObject* parent)
    : TokenRowsModel(doc, parent), m_field(field) {}

void ChannelModel::setOrder(Order order) {
  m_order = order;
  refreshOrder();
}

void ChannelModel::refreshOrder() {
  beginResetModel();
  m_permutation.clear();
  const int channels = columnCount();
  const int rows = rowCount();
  if (m_order != Order::Natural && channels > 0 && rows > 0) {
    // Profiles over at most kMaxProfileTokens tokens, evenly spaced.
    const int step = std::max(1, rows / kMaxProfileTokens);
    std::vector<std::vector<float>> profiles(static_cast<size_t>(channels));
    for (int r = 0; r < rows; r += step) {
      const std::vector<float>* v = fieldOf(r);
      if (!v || int(v->size()) != channels) continue;
      for (int c = 0; c < channels; ++c) profiles[c].push_back((*v)[c]);
    }
    if (!profiles[0].empty()) {
      if (m_order == Order::Clustered) {
        m_permutation = clusterOrder(profiles);
      } else {
        std::vector<double> mean(static_cast<size_t>(channels));
        for (int c = 0; c < channels; ++c)
          mean[c] = std::accumulate(profiles[c].begin(), profiles[c].end(), 0.0) / double(profiles[c].size());
        m_permutation.resize(size_t(channels));
        std::iota(m_permutation.begin(), m_permutation.end(), 0);
        std::stable_sort(m_permutation.begin(), m_permutation.end(), [&](int a, int b) { return mean[a] > mean[b]; });
      }
    }
  }
  endResetModel();
}

void ChannelModel::reset() {
  TokenRowsModel::reset();
  if (m_order != Order::Natural) refreshOrder();
}

int ChannelModel::channelAt(int column) const {
  return m_permutation.empty() ? column : m_permutation[size_t(column)];
}

int ChannelModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : document()->model().dInner;
}

const std::vector<float>* ChannelModel::fieldOf(int row) const {
  const LayerFrame* f = frameOf(document(), row, document()->layer());
  if (!f) return nullptr;
  switch (m_field) {
    case Field::Delta: return &f->delta;
    case Field::Gate: return &f->gate;
    case Field::HNorm: return &f->hNorm;
  }
  return nullptr;
}

float ChannelModel::value(int row, int column) const {
  const std::vector<float>* v = fieldOf(row);
  const int c = column >= 0 && column < columnCount() ? channelAt(column) : -1;
  return v && c >= 0 && size_t(c) < v->size() ? (*v)[size_t(c)] : kNaN;
}

void ChannelModel::rowValues(int row, float* out) const {
  const std::vector<float>* v = fieldOf(row);
  const int n = columnCount();
  if (!v || int(v->size()) != n) {
    std::fill(out, out + n, kNaN);
    return;
  }
  for (int c = 0; c < n; ++c) out[c] = (*v)[size_t(channelAt(c))];
}

QString ChannelModel::valueName() const {
  switch (m_field) {
    case Field::Delta: return tr("Δ");
    case Field::Gate: return tr("gate");
    case Field::HNorm: return tr("‖h‖");
  }
  return {};
}

QString ChannelModel::title() const {
  static const char* orders[] = {"", " · sorted by mean", " · clustered"};
  return tr("%1 per channel · layer %2%3").arg(valueName()).arg(document()->layer()).arg(QLatin1String(orders[int(m_order)]));
}

QString ChannelModel::columnAxis() const { return m_order == Order::Natural ? tr("channel") : tr("channel (reordered)"); }
QString ChannelModel::columnLabel(int column) const { return QString::number(channelAt(column)); }

// ---------------------------------------------------------------------------------------------
StateModel::StateModel(SessionDocument* doc, Field field, QObject* parent)
    : TokenRowsModel(doc, parent), m_field(field) {}

int StateModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : document()->model().dState;
}

float StateModel::value(int row, int column) const {
  const LayerFrame* f = frameOf(document(), row, document()->layer());
  if (!f) return kNaN;
  const std::vector<float>& v = m_field == Field::B ? f->b : f->c;
  return column >= 0 && size_t(column) < v.size() ? v[size_t(column)] : kNaN;
}

QString StateModel::valueName() const { return m_field == Field::B ? tr("B") : tr("C"); }
QString StateModel::title() const {
  return tr("%1 (%2) · layer %3")
      .arg(valueName(), m_field == Field::B ? tr("what is written") : tr("what is read"))
      .arg(document()->layer());
}

// ---------------------------------------------------------------------------------------------
LayerModel::LayerModel(SessionDocument* doc, Field field, QObject* parent)
    : TokenRowsModel(doc, parent), m_field(field) {}

int LayerModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : document()->model().nLayer;
}

float LayerModel::value(int row, int column) const {
  const LayerFrame* f = frameOf(document(), row, column);
  if (!f) return kNaN;
  return m_field == Field::MeanDelta ? f->meanDelta : f->normH;
}

QString LayerModel::valueName() const { return m_field == Field::MeanDelta ? tr("mean Δ") : tr("‖h‖"); }
QString LayerModel::title() const { return tr("%1 per layer").arg(valueName()); }
QString LayerModel::columnLabel(int column) const { return QString::number(column); }

// ---------------------------------------------------------------------------------------------
WriteReadModel::WriteReadModel(SessionDocument* doc, QObject* parent) : TokenRowsModel(doc, parent) {}

int WriteReadModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : 2; }

float WriteReadModel::value(int row, int column) const {
  const LayerFrame* f = frameOf(document(), row, document()->layer());
  if (!f) return kNaN;
  return column == 0 ? f->writeStrength : f->readNorm;
}

QString WriteReadModel::title() const { return tr("write and read strength · layer %1").arg(document()->layer()); }
QString WriteReadModel::columnLabel(int column) const {
  return column == 0 ? tr("write ‖Δ·B·x‖") : tr("read ‖C‖");
}

// ---------------------------------------------------------------------------------------------
TokenMeasuresModel::TokenMeasuresModel(SessionDocument* doc, QObject* parent) : TokenRowsModel(doc, parent) {}

int TokenMeasuresModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kTokenMeasureCount;
}

float TokenMeasuresModel::value(int row, int column) const {
  return tokenMeasure(document()->tokens(), row, TokenMeasure(column), document()->layer());
}

QString TokenMeasuresModel::title() const { return tr("token measures · layer %1").arg(document()->layer()); }
QString TokenMeasuresModel::columnLabel(int column) const { return measureName(TokenMeasure(column)); }
