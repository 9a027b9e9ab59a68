// Modes Lab ▸ Equivalence: the text through recurrent, scan, convolution and lti-fft on each
// available backend; per mode a layers × tokens heatmap of the largest relative difference of y
// (red above the tolerance) and a table of the y and logits differences, argmax agreement, time
// and peak memory (docs/lab.md §1).
#pragma once
#include <memory>

#include "lab/labview.h"

class FlagHeatmap;
#include "lab/labmatrix.h"
class QCheckBox;
class QComboBox;
class QTableWidget;
namespace mambascope::lab {
struct EquivalenceReport;
}

class EquivalenceLab : public LabView {
  Q_OBJECT

 public:
  EquivalenceLab(const LabContext& context, QWidget* parent = nullptr);
  ~EquivalenceLab() override;
  QList<MatrixModel*> dataModels() const override;
  QTableWidget* table() const { return m_table; }
  FlagHeatmap* heatmap() const { return m_heatmap; }

 protected:
  void start(const LabText& text) override;

 private:
  struct Shown;
  struct OtherBackend;
  void showResult(std::shared_ptr<const Shown> result);
  void showHeatmap(int index);

  QCheckBox* m_other;
  QComboBox* m_which;
  FlagHeatmap* m_heatmap;
  QTableWidget* m_table;
  LabMatrix* m_summary;
  LabMatrix* m_cells;
  std::shared_ptr<const Shown> m_shown;
  std::shared_ptr<OtherBackend> m_otherBackend;  // used on the engine thread only
};
