// How much of a chosen token's contribution to the state survives at each later token, one
// curve per layer: the tracked token (right-click a token: "Track"), or the selected one.
#pragma once
#include "views/viewpanel.h"

class LineChartWidget;
class SurvivalModel;
class SessionDocument;
class QLabel;

class SurvivalView : public ViewPanel {
  Q_OBJECT

 public:
  explicit SurvivalView(SessionDocument* doc, QWidget* parent = nullptr);
  QList<MatrixModel*> dataModels() const override;
  LineChartWidget* chart() const { return m_chart; }
  SurvivalModel* model() const { return m_model; }

 private:
  void syncLabel();
  SessionDocument* m_doc;
  SurvivalModel* m_model;
  LineChartWidget* m_chart;
  QLabel* m_label;
};
