// The hidden state at the selected token, with play-back over the tokens.
#include "views/hiddenstateview.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QSignalBlocker>
#include <QSlider>
#include <QToolButton>

#include "core/sessiondocument.h"
#include "models/hiddenstatemodels.h"
#include "views/heatmapview.h"
#include "views/heatmapwidget.h"

HiddenStateView::HiddenStateView(SessionDocument* doc, QWidget* parent)
    : ViewPanel(QStringLiteral("hidden_state"), tr("Hidden state h"), parent),
      m_doc(doc),
      m_model(new HiddenStateModel(doc, this)),
      m_heatmap(new HeatmapWidget(this)) {
  m_heatmap->setObjectName(QStringLiteral("hiddenStateHeatmap"));
  m_heatmap->setModel(m_model);
  m_heatmap->setEmptyText(
      tr("h is not held at this token for this layer. The engine keeps h for the layer chosen in the "
         "toolbar while the tokens are generated, and for the most recent tokens within the memory budget."));
  HeatmapView::follow(m_heatmap, doc);

  m_play = new QToolButton(this);
  m_play->setObjectName(QStringLiteral("playButton"));
  m_play->setText(tr("▶ Play"));
  m_play->setCheckable(true);
  m_slider = new QSlider(Qt::Horizontal, this);
  m_slider->setObjectName(QStringLiteral("tokenSlider"));
  m_slider->setMinimumWidth(160);
  m_position = new QLabel(this);
  controls()->addWidget(m_play);
  controls()->addWidget(m_slider, 1);
  controls()->addWidget(m_position);
  setBody(m_heatmap);

  m_timer.setInterval(125);  // 8 tokens a second
  connect(&m_timer, &QTimer::timeout, this, &HiddenStateView::step);
  connect(m_play, &QToolButton::toggled, this, &HiddenStateView::setPlaying);
  connect(m_slider, &QSlider::valueChanged, doc, [this](int v) { m_doc->selectPosition(v); });
  connect(doc, &SessionDocument::selectionChanged, this, &HiddenStateView::syncSlider);
  connect(doc, &SessionDocument::tokensAppended, this, &HiddenStateView::syncSlider);
  connect(doc, &SessionDocument::currentBranchChanged, this, &HiddenStateView::syncSlider);
  syncSlider();
}

QList<MatrixModel*> HiddenStateView::dataModels() const { return {m_model}; }

void HiddenStateView::syncSlider() {
  const QSignalBlocker block(m_slider);
  m_slider->setRange(0, std::max(0, m_doc->tokenCount() - 1));
  m_slider->setValue(int(std::max<qint64>(0, m_doc->selectedPosition())));
  m_position->setText(tr("#%1 / %2").arg(m_doc->selectedPosition()).arg(m_doc->tokenCount()));
}

void HiddenStateView::setPlaying(bool playing) {
  if (playing == m_timer.isActive()) return;
  if (playing) {
    if (m_doc->tokenCount() == 0) {
      m_play->setChecked(false);
      return;
    }
    if (m_doc->selectedPosition() >= m_doc->tokenCount() - 1) m_doc->selectPosition(0);
    m_timer.start();
  } else {
    m_timer.stop();
  }
  const QSignalBlocker block(m_play);
  m_play->setChecked(playing);
  m_play->setText(playing ? tr("⏸ Pause") : tr("▶ Play"));
}

void HiddenStateView::step() {
  const qint64 next = m_doc->selectedPosition() + 1;
  if (next >= m_doc->tokenCount()) {
    setPlaying(false);
    return;
  }
  m_doc->selectPosition(next);
}
