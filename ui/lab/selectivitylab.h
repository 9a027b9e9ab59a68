// Modes Lab ▸ Selectivity: what selectivity buys. The same text scored and continued by the
// model as it is, by the model with Δ, B, C frozen, and optionally by another model (the LTI demo
// beside the selective one): perplexity, accuracy over the answer, the continuations, and a token
// strip marking each scored prediction right or wrong (docs/lab.md §4).
#pragma once
#include <memory>

#include "lab/labview.h"

#include "lab/labmatrix.h"
class QComboBox;
class QLineEdit;
class QSpinBox;
class QTableWidget;

class SelectivityLab : public LabView {
  Q_OBJECT

 public:
  SelectivityLab(const LabContext& context, QWidget* parent = nullptr);
  ~SelectivityLab() override;
  QList<MatrixModel*> dataModels() const override { return {m_logprobs, m_predicted}; }
  QTableWidget* summary() const { return m_summary; }
  QTableWidget* strip() const { return m_strip; }
  QLineEdit* compareEdit() const { return m_compare; }
  QLineEdit* answerEdit() const { return m_answer; }

 protected:
  void start(const LabText& text) override;

 private:
  struct Shown;
  struct Other;
  void showResult(std::shared_ptr<const Shown> r);
  void suggestComparison();

  QLineEdit* m_answer;
  QComboBox* m_freeze;
  QSpinBox* m_token;
  QLineEdit* m_compare;
  QSpinBox* m_continue;
  QTableWidget* m_summary;
  QTableWidget* m_strip;
  LabMatrix* m_logprobs;
  LabMatrix* m_predicted;
  std::shared_ptr<Other> m_other;  // engine thread only
};
