// Line-chart views bound to the document's selection.
#include "views/chartview.h"

#include "core/sessiondocument.h"
#include "models/matrixmodel.h"
#include "views/linechartwidget.h"

ChartView::ChartView(const QString& viewId, const QString& title, SessionDocument* doc, MatrixModel* model,
                     QWidget* parent)
    : ViewPanel(viewId, title, parent), m_chart(new LineChartWidget(this)) {
  m_chart->setObjectName(viewId + QStringLiteral("Chart"));
  m_chart->setModel(model);
  follow(m_chart, doc);
  if (!model->parent()) model->setParent(this);
  setBody(m_chart);
}

QList<MatrixModel*> ChartView::dataModels() const { return {m_chart->model()}; }

void ChartView::follow(LineChartWidget* chart, SessionDocument* doc) {
  QObject::connect(doc, &SessionDocument::selectionChanged, chart, &LineChartWidget::setSelectedPosition);
  QObject::connect(chart, &LineChartWidget::positionClicked, doc, &SessionDocument::selectPosition);
  chart->setSelectedPosition(doc->selectedPosition());
}
