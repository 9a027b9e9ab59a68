// Hidden-state tables: h, retention, half-life, survival.
#include "models/hiddenstatemodels.h"

#include <cmath>
#include <limits>

#include "core/sessiondocument.h"

namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

const std::vector<float>* decayOf(const SessionDocument* doc, int layer) {
  const auto& a = doc->model().a;
  return a && layer >= 0 && size_t(layer) < a->size() && !(*a)[size_t(layer)].empty() ? &(*a)[size_t(layer)]
                                                                                        : nullptr;
}

const LayerFrame* frameOf(const SessionDocument* doc, qint64 position, int layer) {
  const TokenRecord* t = doc->token(position);
  return t && t->probe ? t->probe->layer(layer) : nullptr;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
HiddenStateModel::HiddenStateModel(SessionDocument* doc, QObject* parent) : MatrixModel(parent), m_doc(doc) {
  connect(doc, &SessionDocument::modelChanged, this, &HiddenStateModel::reshape);
  auto changed = [this] {
    if (m_rows > 0 && m_columns > 0) Q_EMIT dataChanged(index(0, 0), index(m_rows - 1, m_columns - 1));
    Q_EMIT headerDataChanged(Qt::Horizontal, 0, std::max(0, m_columns - 1));
  };
  connect(doc, &SessionDocument::selectionChanged, this, changed);
  connect(doc, &SessionDocument::layerChanged, this, changed);
  connect(doc, &SessionDocument::currentBranchChanged, this, changed);
  connect(doc, &SessionDocument::branchReset, this, changed);
  reshape();
}

void HiddenStateModel::reshape() {
  beginResetModel();
  m_rows = m_doc->model().dInner;
  m_columns = m_doc->model().dState;
  endResetModel();
}

int HiddenStateModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : m_rows; }
int HiddenStateModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : m_columns; }

const std::vector<float>* HiddenStateModel::hOf() const {
  const LayerFrame* f = frameOf(m_doc, m_doc->selectedPosition(), m_doc->layer());
  return f && f->h.size() == size_t(m_rows) * size_t(m_columns) && !f->h.empty() ? &f->h : nullptr;
}

bool HiddenStateModel::hasData() const { return hOf() != nullptr; }

float HiddenStateModel::value(int row, int column) const {
  const std::vector<float>* h = hOf();
  if (!h || row < 0 || row >= m_rows || column < 0 || column >= m_columns) return kNaN;
  return (*h)[size_t(row) * size_t(m_columns) + size_t(column)];
}

QString HiddenStateModel::title() const {
  const qint64 p = m_doc->selectedPosition();
  const TokenRecord* t = m_doc->token(p);
  QString text = t ? t->text : QString();
  text.replace(QLatin1Char('\n'), QStringLiteral("↵"));
  return tr("h at token #%1 “%2” · layer %3").arg(p).arg(text).arg(m_doc->layer());
}

// ---------------------------------------------------------------------------------------------
RetentionModel::RetentionModel(SessionDocument* doc, QObject* parent) : TokenRowsModel(doc, parent) {}

int RetentionModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : document()->model().dInner;
}

void RetentionModel::computeRow(int row, std::vector<float>& out) const {
  const int layer = document()->layer();
  const LayerFrame* f = frameOf(document(), row, layer);
  const std::vector<float>* a = decayOf(document(), layer);
  if (!f || !a || f->delta.size() != out.size()) return;
  out = decay::retention(f->delta, *a, document()->model().dState);
}

QString RetentionModel::title() const {
  return tr("retention exp(Δ·A), mean over states · layer %1").arg(document()->layer());
}

// ---------------------------------------------------------------------------------------------
HalfLifeModel::HalfLifeModel(SessionDocument* doc, QObject* parent) : TokenRowsModel(doc, parent) {}

int HalfLifeModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : 2; }

void HalfLifeModel::computeRow(int row, std::vector<float>& out) const {
  const SessionDocument* doc = document();
  const int dState = doc->model().dState;
  const int chosen = doc->layer();
  double logSum = 0;
  int layers = 0;
  for (int l = 0; l < doc->model().nLayer; ++l) {
    const LayerFrame* f = frameOf(doc, row, l);
    const std::vector<float>* a = decayOf(doc, l);
    if (!f || !a || f->delta.empty()) continue;
    const float hl = decay::halfLife(f->delta, *a, dState);
    if (l == chosen) out[0] = hl;
    if (std::isfinite(hl) && hl > 0) logSum += std::log(double(hl)), ++layers;
  }
  if (layers) out[1] = float(std::exp(logSum / layers));
}

QString HalfLifeModel::title() const {
  return tr("half-life ln2 / (Δ·|A|) per token · layer %1").arg(document()->layer());
}

QString HalfLifeModel::columnLabel(int column) const {
  return column == 0 ? tr("layer %1").arg(document()->layer()) : tr("all layers (geometric mean)");
}

// ---------------------------------------------------------------------------------------------
SurvivalModel::SurvivalModel(SessionDocument* doc, QObject* parent) : MatrixModel(parent), m_doc(doc) {
  auto again = [this] { restart(); };
  connect(doc, &SessionDocument::modelChanged, this, again);
  connect(doc, &SessionDocument::currentBranchChanged, this, again);
  connect(doc, &SessionDocument::trackedChanged, this, again);
  connect(doc, &SessionDocument::branchReset, this, again);
  connect(doc, &SessionDocument::selectionChanged, this, [this] {
    if (m_doc->trackedPosition() < 0 && m_doc->selectedPosition() != m_from) restart();
  });
  connect(doc, &SessionDocument::tokensAppended, this, [this](int branch) {
    if (branch == m_doc->currentBranchId()) extend();
  });
  restart();
}

void SurvivalModel::restart() {
  beginResetModel();
  m_values.clear();
  m_trackers.clear();
  m_stopped = false;
  m_a = m_doc->model().a;
  // Without an explicitly tracked token, follow the selection.
  m_from = m_doc->trackedPosition() >= 0 ? m_doc->trackedPosition() : m_doc->selectedPosition();
  if (m_a && m_from >= 0 && m_from < m_doc->tokenCount()) {
    for (int l = 0; l < m_doc->model().nLayer; ++l)
      m_trackers.push_back(size_t(l) < m_a->size() && !(*m_a)[size_t(l)].empty()
                               ? std::make_unique<decay::SurvivalTracker>((*m_a)[size_t(l)], m_doc->model().dState)
                               : nullptr);
    m_values.push_back(std::vector<float>(m_trackers.size(), 1.0f));
  }
  endResetModel();
  extend();
}

void SurvivalModel::extend() {
  if (m_values.empty() || m_stopped) return;
  const qint64 end = std::min<qint64>(m_doc->tokenCount(), m_from + kHorizon);
  const int first = int(m_values.size());
  std::vector<std::vector<float>> added;
  for (qint64 t = m_from + qint64(m_values.size()); t < end; ++t) {
    std::vector<float> row(m_trackers.size(), kNaN);
    bool any = false;
    for (size_t l = 0; l < m_trackers.size(); ++l) {
      const LayerFrame* f = frameOf(m_doc, t, int(l));
      if (m_trackers[l] && f && !f->delta.empty()) {
        row[l] = m_trackers[l]->step(f->delta);
        any = true;
      }
    }
    if (!any) {  // Δ no longer held: the curve cannot go on
      m_stopped = true;
      break;
    }
    added.push_back(std::move(row));
  }
  if (added.empty()) return;
  beginInsertRows(QModelIndex(), first, first + int(added.size()) - 1);
  for (auto& r : added) m_values.push_back(std::move(r));
  endInsertRows();
}

int SurvivalModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : int(m_values.size()); }
int SurvivalModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : int(m_trackers.size());
}

float SurvivalModel::value(int row, int column) const {
  if (row < 0 || size_t(row) >= m_values.size() || column < 0 || size_t(column) >= m_trackers.size()) return kNaN;
  return m_values[size_t(row)][size_t(column)];
}

int SurvivalModel::rowForPosition(qint64 position) const {
  const qint64 r = position - m_from;
  return m_from >= 0 && r >= 0 && r < qint64(m_values.size()) ? int(r) : -1;
}

QString SurvivalModel::rowLabel(int row) const {
  const TokenRecord* t = m_doc->token(m_from + row);
  return t ? t->text : QString();
}

QString SurvivalModel::columnLabel(int column) const { return QString::number(column); }

QString SurvivalModel::title() const {
  if (m_from < 0) return tr("survival: select a token");
  const TokenRecord* t = m_doc->token(m_from);
  QString text = t ? t->text : QString();
  text.replace(QLatin1Char('\n'), QStringLiteral("↵"));
  return tr("what survives of token #%1 “%2” at each later token").arg(m_from).arg(text);
}
