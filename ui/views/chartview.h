// A view that is one line chart of one MatrixModel's columns, following the selection: write
// and read strength, ‖h‖ per layer, and the building block of the retention and survival views.
#pragma once
#include "views/viewpanel.h"

class LineChartWidget;
class SessionDocument;

class ChartView : public ViewPanel {
  Q_OBJECT

 public:
  ChartView(const QString& viewId, const QString& title, SessionDocument* doc, MatrixModel* model,
            QWidget* parent = nullptr);
  LineChartWidget* chart() const { return m_chart; }
  QList<MatrixModel*> dataModels() const override;

  static void follow(LineChartWidget* chart, SessionDocument* doc);

 private:
  LineChartWidget* m_chart;
};
