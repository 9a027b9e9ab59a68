// Modes Lab ▸ Layer lens: norm_f + lm_head applied to the residual stream after every layer; a
// table of each layer's top next-token prediction at each position, shaded by its probability,
// the top 3 on hover (docs/lab.md §6).
#pragma once
#include <memory>

#include "lab/labview.h"

#include "lab/labmatrix.h"
class QTableWidget;

class LensLab : public LabView {
  Q_OBJECT

 public:
  LensLab(const LabContext& context, QWidget* parent = nullptr);
  ~LensLab() override;
  QList<MatrixModel*> dataModels() const override { return {m_probs, m_ids}; }
  QTableWidget* table() const { return m_table; }

 protected:
  void start(const LabText& text) override;

 private:
  struct Shown;
  void showResult(std::shared_ptr<const Shown> r);

  QTableWidget* m_table;
  LabMatrix* m_probs;
  LabMatrix* m_ids;
};
