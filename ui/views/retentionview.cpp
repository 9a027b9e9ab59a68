// Retention heatmap over half-life chart.
#include "views/retentionview.h"

#include <QSplitter>

#include "models/hiddenstatemodels.h"
#include "views/chartview.h"
#include "views/heatmapview.h"
#include "views/heatmapwidget.h"
#include "views/linechartwidget.h"

RetentionView::RetentionView(SessionDocument* doc, QWidget* parent)
    : ViewPanel(QStringLiteral("retention"), tr("Retention and half-life"), parent),
      m_retention(new RetentionModel(doc, this)),
      m_halfLife(new HalfLifeModel(doc, this)) {
  auto* split = new QSplitter(Qt::Horizontal, this);  // docks below the strip are wide and short
  m_heatmap = new HeatmapWidget(split);
  m_heatmap->setObjectName(QStringLiteral("retentionHeatmap"));
  m_heatmap->setModel(m_retention);
  HeatmapView::follow(m_heatmap, doc);
  m_chart = new LineChartWidget(split);
  m_chart->setObjectName(QStringLiteral("halfLifeChart"));
  m_chart->setModel(m_halfLife);
  ChartView::follow(m_chart, doc);
  split->addWidget(m_heatmap);
  split->addWidget(m_chart);
  split->setStretchFactor(0, 1);
  split->setStretchFactor(1, 1);
  setBody(split);
}

QList<MatrixModel*> RetentionView::dataModels() const { return {m_retention, m_halfLife}; }
