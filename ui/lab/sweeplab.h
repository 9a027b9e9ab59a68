// Modes Lab ▸ Complexity: times recurrent (token by token), the parallel scan, the selective
// kernel convolution and the LTI FFT over growing L, live on log-log axes with fitted slopes,
// an optional attention reference curve (reference data from docs/benchmarks.md, labelled as
// such), and the S4 paper's table filled with the measured numbers (docs/lab.md §2).
#pragma once
#include <QMap>
#include <optional>

#include "lab/labview.h"
#include "mambascope/lab.hpp"

#include "lab/labmatrix.h"
class QCheckBox;
class QChart;
class QChartView;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QLineSeries;
class QLogValueAxis;
class QSpinBox;
class QTableWidget;

class SweepLab : public LabView {
  Q_OBJECT

 public:
  SweepLab(const LabContext& context, QWidget* parent = nullptr);
  QList<MatrixModel*> dataModels() const override { return {m_points}; }
  QChartView* chartView() const { return m_chartView; }
  QTableWidget* s4Table() const { return m_table; }
  QLineEdit* lengthsEdit() const { return m_lengths; }
  QDoubleSpinBox* budgetBox() const { return m_budget; }
  int pointCount() const;
  // The attention reference found beside the program or in the source tree (docs/benchmarks.md).
  static std::optional<mambascope::lab::ReferenceCurve> findReference(QString* where = nullptr);

 protected:
  void start(const LabText& text) override;

 private:
  void clearChart();
  void addPoint(const mambascope::lab::SweepSeries& series, const mambascope::lab::SweepPoint& point);
  void showResult(const mambascope::lab::SweepResult& r);
  void fitAxes();
  void addReference();

  QComboBox* m_scope;
  QSpinBox* m_layer;
  QLineEdit* m_lengths;
  QDoubleSpinBox* m_budget;
  QDoubleSpinBox* m_memory;
  QCheckBox* m_reference;
  QChart* m_chart;
  QChartView* m_chartView;
  QLogValueAxis* m_x;
  QLogValueAxis* m_y;
  QMap<int, QLineSeries*> m_series;  // by ScanMode
  QLineSeries* m_referenceSeries = nullptr;
  QLabel* m_notes;
  QTableWidget* m_table;
  LabMatrix* m_points;
};
