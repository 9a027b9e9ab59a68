// The tables of the hidden-state views: h itself at the selected token (channels × d_state),
// the retention exp(Δ·A) per token and channel, the typical half-life per token, and the
// survival of a tracked token's contribution at every later token, per layer.
#pragma once
#include <memory>
#include <vector>

#include "core/measures.h"
#include "models/matrixmodel.h"

// channels × d_state: h_t of the chosen layer at the selected token.
class HiddenStateModel : public MatrixModel {
  Q_OBJECT

 public:
  explicit HiddenStateModel(SessionDocument* doc, QObject* parent = nullptr);
  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  float value(int row, int column) const override;
  QString title() const override;
  QString valueName() const override { return tr("h"); }
  QString rowAxis() const override { return tr("channel"); }
  QString columnAxis() const override { return tr("state n"); }
  bool signedValues() const override { return true; }
  bool hasData() const;  // h was captured at this token and layer

 private:
  const std::vector<float>* hOf() const;
  void reshape();
  SessionDocument* m_doc;
  int m_rows = 0, m_columns = 0;
};

// tokens × channels: exp(Δ_c · A_cn) averaged over n, the fraction of the state kept.
class RetentionModel : public TokenRowsModel {
  Q_OBJECT

 public:
  explicit RetentionModel(SessionDocument* doc, QObject* parent = nullptr);
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  float value(int row, int column) const override { return cachedValue(row, column); }
  void rowValues(int row, float* out) const override { cachedRow(row, out); }
  QString title() const override;
  QString valueName() const override { return tr("retention exp(Δ·A)"); }
  QString columnAxis() const override { return tr("channel"); }

 protected:
  void computeRow(int row, std::vector<float>& out) const override;
};

// tokens × {half-life of the chosen layer, geometric mean over layers}, in tokens.
class HalfLifeModel : public TokenRowsModel {
  Q_OBJECT

 public:
  explicit HalfLifeModel(SessionDocument* doc, QObject* parent = nullptr);
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  float value(int row, int column) const override { return cachedValue(row, column); }
  void rowValues(int row, float* out) const override { cachedRow(row, out); }
  QString title() const override;
  QString valueName() const override { return tr("half-life (tokens)"); }
  QString columnAxis() const override { return tr("series"); }
  QString columnLabel(int column) const override;
  bool logScale() const override { return true; }

 protected:
  void computeRow(int row, std::vector<float>& out) const override;
};

// tokens from the tracked one on × layers: how much of its contribution survives.
class SurvivalModel : public MatrixModel {
  Q_OBJECT

 public:
  explicit SurvivalModel(SessionDocument* doc, QObject* parent = nullptr);
  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  float value(int row, int column) const override;
  QString title() const override;
  QString valueName() const override { return tr("surviving fraction"); }
  QString columnAxis() const override { return tr("layer"); }
  QString rowLabel(int row) const override;
  QString columnLabel(int column) const override;
  qint64 rowPosition(int row) const override { return m_from + row; }
  int rowForPosition(qint64 position) const override;
  bool logScale() const override { return true; }
  qint64 from() const { return m_from; }

  static constexpr int kHorizon = 2048;  // tokens followed after the tracked one

 private:
  void restart();
  void extend();
  SessionDocument* m_doc;
  qint64 m_from = -1;
  std::shared_ptr<const std::vector<std::vector<float>>> m_a;
  std::vector<std::unique_ptr<decay::SurvivalTracker>> m_trackers;  // per layer
  std::vector<std::vector<float>> m_values;  // {rows}{layers}
  bool m_stopped = false;  // a token without Δ ended the curve
};
