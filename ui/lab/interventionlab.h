// Modes Lab ▸ Interventions: override Δ at chosen tokens and layers (ignore: Δ = 0; reset: a
// large Δ; or a value), re-run, and see beside the original run how the next-token predictions,
// each layer's SSM output, the hidden state and the continuation change (docs/lab.md §5).
#pragma once
#include <memory>
#include <vector>

#include "lab/labview.h"
#include "mambascope/backend.hpp"

class HeatmapWidget;
#include "lab/labmatrix.h"
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QSpinBox;
class QTableWidget;

class InterventionLab : public LabView {
  Q_OBJECT

 public:
  InterventionLab(const LabContext& context, QWidget* parent = nullptr);
  ~InterventionLab() override;
  QList<MatrixModel*> dataModels() const override { return {m_perToken, m_yChange}; }
  // What the Add button does.
  void addOverride(int layer, qint64 position, float value);
  void clearOverrides();
  QTableWidget* table() const { return m_table; }
  HeatmapWidget* heatmap() const { return m_heatmap; }
  QString continuationsText() const;

 protected:
  void start(const LabText& text) override;

 private:
  struct Shown;
  void showResult(std::shared_ptr<const Shown> r);
  void showOverrides();

  std::vector<mambascope::DeltaOverride> m_overrides;
  QSpinBox* m_position;
  QComboBox* m_layer;
  QComboBox* m_value;
  QDoubleSpinBox* m_custom;
  QLabel* m_list;
  QSpinBox* m_hLayer;
  QSpinBox* m_continue;
  QTableWidget* m_table;
  HeatmapWidget* m_heatmap;
  QLabel* m_continuations;
  LabMatrix* m_perToken;
  LabMatrix* m_yChange;
};
