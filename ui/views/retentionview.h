// "How long will this token be remembered": the retention exp(Δ·A) per token and channel as a
// heatmap, and beside it the typical half-life ln2/(Δ·|A|) per token as a chart.
#pragma once
#include "views/viewpanel.h"

class HeatmapWidget;
class LineChartWidget;
class RetentionModel;
class HalfLifeModel;
class SessionDocument;

class RetentionView : public ViewPanel {
  Q_OBJECT

 public:
  explicit RetentionView(SessionDocument* doc, QWidget* parent = nullptr);
  QList<MatrixModel*> dataModels() const override;
  HeatmapWidget* heatmap() const { return m_heatmap; }
  LineChartWidget* chart() const { return m_chart; }

 private:
  RetentionModel* m_retention;
  HalfLifeModel* m_halfLife;
  HeatmapWidget* m_heatmap;
  LineChartWidget* m_chart;
};
