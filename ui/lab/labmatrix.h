// A dense grid of floats with labels, filled at once from a lab result: what the Modes Lab's
// heatmaps draw and what Export writes as CSV / .npy.
#pragma once
#include <QStringList>
#include <vector>

#include "models/matrixmodel.h"

class LabMatrix : public MatrixModel {
  Q_OBJECT

 public:
  struct Spec {
    QString title, valueName, rowAxis, columnAxis;
    bool log = false, signedValues = false;
  };
  explicit LabMatrix(Spec spec, QObject* parent = nullptr);

  // values {rows, columns}; labels may be empty (then the index is shown).
  void setData(int rows, int columns, std::vector<float> values, QStringList rowLabels = {},
               QStringList columnLabels = {});
  void setTitle(const QString& title);
  void clear();

  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  float value(int row, int column) const override;
  QString title() const override { return m_spec.title; }
  QString valueName() const override { return m_spec.valueName; }
  QString rowAxis() const override { return m_spec.rowAxis; }
  QString columnAxis() const override { return m_spec.columnAxis; }
  QString rowLabel(int row) const override;
  QString columnLabel(int column) const override;
  bool logScale() const override { return m_spec.log; }
  bool signedValues() const override { return m_spec.signedValues; }

 private:
  Spec m_spec;
  int m_rows = 0, m_columns = 0;
  std::vector<float> m_values;  // {rows, columns}
  QStringList m_rowLabels, m_columnLabels;
};
