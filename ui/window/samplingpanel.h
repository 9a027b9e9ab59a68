// The sampling controls: temperature, top-k, top-p, min-p, repetition penalty, seed, the token
// limit and whether to stop at the end-of-text token.
#pragma once
#include <QWidget>

#include "core/generationjob.h"

class QDoubleSpinBox;
class QSpinBox;
class QCheckBox;

class SamplingPanel : public QWidget {
  Q_OBJECT

 public:
  explicit SamplingPanel(QWidget* parent = nullptr);
  SamplingSettings settings() const;
  void setSettings(const SamplingSettings& s);
  QSpinBox* maxTokensBox() const { return m_maxTokens; }

 private:
  QDoubleSpinBox* m_temperature;
  QSpinBox* m_topK;
  QDoubleSpinBox* m_topP;
  QDoubleSpinBox* m_minP;
  QDoubleSpinBox* m_repetition;
  QSpinBox* m_seed;
  QSpinBox* m_maxTokens;
  QCheckBox* m_stopAtEos;
};
