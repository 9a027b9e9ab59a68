// Survival curves of a tracked token.
#include "views/survivalview.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>

#include "core/sessiondocument.h"
#include "models/hiddenstatemodels.h"
#include "views/chartview.h"
#include "views/linechartwidget.h"

SurvivalView::SurvivalView(SessionDocument* doc, QWidget* parent)
    : ViewPanel(QStringLiteral("survival"), tr("Survival of a token"), parent),
      m_doc(doc),
      m_model(new SurvivalModel(doc, this)),
      m_chart(new LineChartWidget(this)) {
  m_chart->setObjectName(QStringLiteral("survivalChart"));
  m_chart->setModel(m_model);
  ChartView::follow(m_chart, doc);
  m_label = new QLabel(this);
  auto* track = new QPushButton(tr("Track selected"), this);
  track->setObjectName(QStringLiteral("trackSelected"));
  auto* release = new QPushButton(tr("Follow selection"), this);
  controls()->addWidget(m_label);
  controls()->addWidget(track);
  controls()->addWidget(release);
  setBody(m_chart);
  connect(track, &QPushButton::clicked, this, [this] { m_doc->setTrackedPosition(m_doc->selectedPosition()); });
  connect(release, &QPushButton::clicked, this, [this] { m_doc->setTrackedPosition(-1); });
  connect(m_model, &QAbstractItemModel::modelReset, this, &SurvivalView::syncLabel);
  syncLabel();
}

QList<MatrixModel*> SurvivalView::dataModels() const { return {m_model}; }

void SurvivalView::syncLabel() {
  m_label->setText(m_model->from() < 0 ? tr("no token")
                                       : (m_doc->trackedPosition() >= 0 ? tr("tracking #%1") : tr("selected #%1")).arg(m_model->from()));
}
