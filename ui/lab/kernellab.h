// Modes Lab ▸ Kernel: the selective kernel K[t,s] of a layer (one channel, the mean over
// channels, or the rollout across layers) as an L × L heatmap on a log colour scale, beside the
// LTI kernel of the same layer with Δ, B, C frozen, with both stationarity scores, the check that
// each reproduces the backend's outputs, and the last token's row against the LTI kernel by lag
// (docs/lab.md §3).
#pragma once
#include <memory>

#include "lab/labview.h"

class HeatmapWidget;
#include "lab/labmatrix.h"
class QChart;
class QChartView;
class QComboBox;
class QLabel;
class QLineSeries;
class QSpinBox;
class QValueAxis;
namespace mambascope::lab {
struct KernelResult;
}

class KernelLab : public LabView {
  Q_OBJECT

 public:
  KernelLab(const LabContext& context, QWidget* parent = nullptr);
  ~KernelLab() override;
  QList<MatrixModel*> dataModels() const override { return {m_selective, m_lti}; }
  HeatmapWidget* selectiveHeatmap() const { return m_selectiveMap; }
  HeatmapWidget* ltiHeatmap() const { return m_ltiMap; }
  QComboBox* viewBox() const { return m_view; }
  QString scoresText() const;

 protected:
  void start(const LabText& text) override;

 private:
  void showResult(std::shared_ptr<const mambascope::lab::KernelResult> r, const QStringList& pieces);

  QSpinBox* m_layer;
  QComboBox* m_view;
  QSpinBox* m_channel;
  QComboBox* m_freeze;
  QSpinBox* m_token;
  HeatmapWidget* m_selectiveMap;
  HeatmapWidget* m_ltiMap;
  QLabel* m_scores;
  QChart* m_chart;
  QLineSeries* m_rowSeries;
  QLineSeries* m_ltiSeries;
  QValueAxis* m_lagAxis;
  QValueAxis* m_valueAxis;
  LabMatrix* m_selective;
  LabMatrix* m_lti;
  std::shared_ptr<const mambascope::lab::KernelResult> m_result;
};
