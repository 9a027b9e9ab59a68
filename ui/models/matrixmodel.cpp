// MatrixModel's item-model face, and the token-rows base that follows the document.
#include "models/matrixmodel.h"

#include <algorithm>
#include <cmath>

#include "core/sessiondocument.h"

void MatrixModel::rowValues(int row, float* out) const {
  const int n = columnCount();
  for (int c = 0; c < n; ++c) out[c] = value(row, c);
}

QVariant MatrixModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || (role != Qt::DisplayRole && role != Qt::EditRole)) return {};
  const float v = value(index.row(), index.column());
  return std::isnan(v) ? QVariant() : QVariant(double(v));
}

QVariant MatrixModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole) return {};
  return orientation == Qt::Horizontal ? columnLabel(section) : rowLabel(section);
}

TokenRowsModel::TokenRowsModel(SessionDocument* doc, QObject* parent) : MatrixModel(parent), m_doc(doc) {
  auto again = [this] { reset(); };
  connect(doc, &SessionDocument::modelChanged, this, again);
  connect(doc, &SessionDocument::currentBranchChanged, this, again);
  connect(doc, &SessionDocument::layerChanged, this, again);
  connect(doc, &SessionDocument::branchReset, this, [this](int id) {
    if (id == m_doc->currentBranchId()) reset();
  });
  connect(doc, &SessionDocument::tokensAppended, this, &TokenRowsModel::onAppended);
  m_rows = doc->tokenCount();
}

int TokenRowsModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : m_rows; }

QString TokenRowsModel::rowLabel(int row) const {
  const TokenRecord* t = m_doc->token(row);
  return t ? t->text : QString();
}

int TokenRowsModel::rowForPosition(qint64 position) const {
  return position >= 0 && position < m_rows ? int(position) : -1;
}

void TokenRowsModel::reset() {
  beginResetModel();
  m_cache.clear();
  m_rows = m_doc->tokenCount();
  endResetModel();
}

void TokenRowsModel::onAppended(int branchId, int first, int count) {
  if (branchId != m_doc->currentBranchId() || count <= 0) return;
  if (first != m_rows) {  // out of step (e.g. a batch arrived during a reset): start over
    reset();
    return;
  }
  beginInsertRows(QModelIndex(), first, first + count - 1);
  m_rows = first + count;
  endInsertRows();
}

const std::vector<float>& TokenRowsModel::rowCache(int row) const {
  if (m_cache.size() < size_t(m_rows)) m_cache.resize(size_t(m_rows));
  std::vector<float>& r = m_cache[size_t(row)];
  if (r.empty()) {
    r.assign(size_t(columnCount()), std::nanf(""));
    computeRow(row, r);
  }
  return r;
}

float TokenRowsModel::cachedValue(int row, int column) const {
  if (row < 0 || row >= m_rows || column < 0 || column >= columnCount()) return std::nanf("");
  return rowCache(row)[size_t(column)];
}

void TokenRowsModel::cachedRow(int row, float* out) const {
  if (row < 0 || row >= m_rows) {
    std::fill(out, out + columnCount(), std::nanf(""));
    return;
  }
  const auto& r = rowCache(row);
  std::copy(r.begin(), r.end(), out);
}
