// Sampling controls in a compact grid.
#include "window/samplingpanel.h"

#include <QCheckBox>
#include <QDoubleSpinBox>
#include <QGridLayout>
#include <QLabel>
#include <QSpinBox>
#include <limits>

namespace {
QDoubleSpinBox* doubleBox(QWidget* parent, double lo, double hi, double step, int decimals, const QString& tip) {
  auto* b = new QDoubleSpinBox(parent);
  b->setRange(lo, hi);
  b->setSingleStep(step);
  b->setDecimals(decimals);
  b->setToolTip(tip);
  return b;
}
}  // namespace

SamplingPanel::SamplingPanel(QWidget* parent) : QWidget(parent) {
  m_temperature = doubleBox(this, 0, 2, 0.05, 2, tr("0 = greedy: always the most probable token"));
  m_topK = new QSpinBox(this);
  m_topK->setRange(0, 100000);
  m_topK->setToolTip(tr("Keep only the k most probable tokens (0 = off)"));
  m_topP = doubleBox(this, 0, 1, 0.01, 2, tr("Keep the smallest set of tokens whose probabilities add up to p (1 = off)"));
  m_minP = doubleBox(this, 0, 1, 0.01, 2, tr("Drop tokens less probable than min-p × the most probable one (0 = off)"));
  m_repetition = doubleBox(this, 1, 3, 0.05, 2, tr("Penalise tokens seen recently (1 = off)"));
  m_seed = new QSpinBox(this);
  m_seed->setRange(0, std::numeric_limits<int>::max());
  m_seed->setToolTip(tr("The same seed gives the same text"));
  m_maxTokens = new QSpinBox(this);
  m_maxTokens->setObjectName(QStringLiteral("maxTokens"));
  m_maxTokens->setRange(1, 1000000);
  m_maxTokens->setToolTip(tr("Stop after this many new tokens"));
  m_stopAtEos = new QCheckBox(tr("stop at end of text"), this);

  auto* grid = new QGridLayout(this);
  grid->setContentsMargins(0, 0, 0, 0);
  grid->setHorizontalSpacing(6);
  grid->setVerticalSpacing(2);
  const auto add = [&](int row, int col, const QString& label, QWidget* w) {
    grid->addWidget(new QLabel(label, this), row, 2 * col);
    grid->addWidget(w, row, 2 * col + 1);
  };
  add(0, 0, tr("temperature"), m_temperature);
  add(0, 1, tr("top-k"), m_topK);
  add(0, 2, tr("top-p"), m_topP);
  add(1, 0, tr("min-p"), m_minP);
  add(1, 1, tr("repetition"), m_repetition);
  add(1, 2, tr("seed"), m_seed);
  add(2, 0, tr("max tokens"), m_maxTokens);
  grid->addWidget(m_stopAtEos, 2, 2, 1, 4);
  setSettings(SamplingSettings{});
}

SamplingSettings SamplingPanel::settings() const {
  SamplingSettings s;
  s.temperature = m_temperature->value();
  s.topK = m_topK->value();
  s.topP = m_topP->value();
  s.minP = m_minP->value();
  s.repetitionPenalty = m_repetition->value();
  s.seed = quint64(m_seed->value());
  s.maxTokens = m_maxTokens->value();
  s.stopAtEos = m_stopAtEos->isChecked();
  return s;
}

void SamplingPanel::setSettings(const SamplingSettings& s) {
  m_temperature->setValue(s.temperature);
  m_topK->setValue(s.topK);
  m_topP->setValue(s.topP);
  m_minP->setValue(s.minP);
  m_repetition->setValue(s.repetitionPenalty);
  m_seed->setValue(int(std::min<quint64>(s.seed, quint64(std::numeric_limits<int>::max()))));
  m_maxTokens->setValue(s.maxTokens);
  m_stopAtEos->setChecked(s.stopAtEos);
}
