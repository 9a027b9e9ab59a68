// Token strip panel: measure, legend, branch chooser, scrolling.
#include "views/tokenstripview.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QVBoxLayout>
#include <QLabel>
#include <QScrollArea>
#include <QScrollBar>
#include <QSignalBlocker>

#include "core/measures.h"
#include "core/sessiondocument.h"
#include "models/branchlistmodel.h"
#include "models/selectivitymodels.h"
#include "views/colorscale.h"
#include "views/tokenstripwidget.h"

TokenStripView::TokenStripView(SessionDocument* doc, QWidget* parent)
    : ViewPanel(QStringLiteral("token_strip"), tr("Tokens"), parent),
      m_doc(doc),
      m_model(new TokenMeasuresModel(doc, this)),
      m_branches(new BranchListModel(doc, this)) {
  m_strip = new TokenStripWidget(doc, m_model, this);
  m_strip->setObjectName(QStringLiteral("tokenStrip"));
  m_scroll = new QScrollArea(this);
  m_scroll->setWidgetResizable(true);
  m_scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  m_scroll->setWidget(m_strip);

  m_measure = new QComboBox(this);
  m_measure->setObjectName(QStringLiteral("measureBox"));
  for (int i = 0; i < kTokenMeasureCount; ++i) m_measure->addItem(measureName(TokenMeasure(i)));
  m_legend = new ColorLegend(this);
  m_branch = new QComboBox(this);
  m_branch->setObjectName(QStringLiteral("branchBox"));
  m_branch->setModel(m_branches);
  m_branch->setSizeAdjustPolicy(QComboBox::AdjustToContents);
  controls()->addWidget(new QLabel(tr("Colour by"), this));
  controls()->addWidget(m_measure);
  controls()->addWidget(m_branch);
  // The legend gets a row of its own above the tokens, so that its numbers are never squeezed.
  auto* body = new QWidget(this);
  auto* column = new QVBoxLayout(body);
  column->setContentsMargins(0, 0, 0, 0);
  column->setSpacing(2);
  column->addWidget(m_legend);
  column->addWidget(m_scroll, 1);
  setBody(body);
  m_branch->setToolTip(tr("The branch shown: the main run, other runs and the forks made from alternatives"));

  connect(m_measure, &QComboBox::currentIndexChanged, m_strip, &TokenStripWidget::setMeasure);
  connect(m_strip, &TokenStripWidget::scaleChanged, this, [this] {
    m_legend->setScale(m_strip->scale(), m_measure->currentText());
  });
  connect(m_strip, &TokenStripWidget::positionClicked, doc, &SessionDocument::selectPosition);
  connect(m_strip, &TokenStripWidget::trackRequested, doc, &SessionDocument::setTrackedPosition);
  connect(m_strip, &TokenStripWidget::forkRequested, this, &TokenStripView::forkRequested);
  connect(m_branch, &QComboBox::activated, this, [this](int row) { m_doc->setCurrentBranch(m_branches->branchAt(row)); });
  connect(doc, &SessionDocument::currentBranchChanged, this, &TokenStripView::syncBranch);
  connect(doc, &SessionDocument::branchesChanged, this, &TokenStripView::syncBranch);
  connect(doc, &SessionDocument::selectionChanged, this, &TokenStripView::keepInView, Qt::QueuedConnection);
  m_legend->setScale(m_strip->scale(), m_measure->currentText());
}

QList<MatrixModel*> TokenStripView::dataModels() const { return {m_model}; }
QWidget* TokenStripView::renderTarget() { return m_strip; }

void TokenStripView::syncBranch() {
  const QSignalBlocker block(m_branch);
  m_branch->setCurrentIndex(m_branches->rowOf(m_doc->currentBranchId()));
}

void TokenStripView::keepInView() {
  const QRect r = m_strip->tokenRect(m_doc->selectedPosition());
  if (!r.isNull()) m_scroll->ensureVisible(r.center().x(), r.center().y(), 20, r.height());
}
