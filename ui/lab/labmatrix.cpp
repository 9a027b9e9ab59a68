// LabMatrix: a MatrixModel over a plain vector.
#include "lab/labmatrix.h"

#include <cmath>

LabMatrix::LabMatrix(Spec spec, QObject* parent) : MatrixModel(parent), m_spec(std::move(spec)) {}

void LabMatrix::setData(int rows, int columns, std::vector<float> values, QStringList rowLabels,
                        QStringList columnLabels) {
  beginResetModel();
  m_rows = rows;
  m_columns = columns;
  m_values = std::move(values);
  m_values.resize(size_t(rows) * size_t(columns), NAN);
  m_rowLabels = std::move(rowLabels);
  m_columnLabels = std::move(columnLabels);
  endResetModel();
}

void LabMatrix::setTitle(const QString& title) {
  m_spec.title = title;
  Q_EMIT headerDataChanged(Qt::Horizontal, 0, std::max(0, m_columns - 1));
}

void LabMatrix::clear() { setData(0, 0, {}); }

int LabMatrix::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : m_rows; }
int LabMatrix::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : m_columns; }

float LabMatrix::value(int row, int column) const {
  if (row < 0 || column < 0 || row >= m_rows || column >= m_columns) return NAN;
  return m_values[size_t(row) * size_t(m_columns) + size_t(column)];
}

QString LabMatrix::rowLabel(int row) const {
  return row >= 0 && row < m_rowLabels.size() ? m_rowLabels[row] : QString::number(row);
}

QString LabMatrix::columnLabel(int column) const {
  return column >= 0 && column < m_columnLabels.size() ? m_columnLabels[column] : QString::number(column);
}
