// The tables of the selectivity views, one row per token: per-channel fields of a layer (Δ, the
// gate, ‖h‖), per-state fields (B, C), per-layer summaries (mean Δ, ‖h‖), per-token series
// (write strength and read strength), and the token strip's measures.
#pragma once
#include <vector>

#include "core/measures.h"
#include "models/matrixmodel.h"

// tokens × channels of one layer, channels optionally reordered.
class ChannelModel : public TokenRowsModel {
  Q_OBJECT

 public:
  enum class Field { Delta, Gate, HNorm };
  enum class Order { Natural, MeanDescending, Clustered };
  ChannelModel(SessionDocument* doc, Field field, QObject* parent = nullptr);

  void setOrder(Order order);
  Order order() const { return m_order; }
  void refreshOrder();  // recompute the order from the data now held
  int channelAt(int column) const;

  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  float value(int row, int column) const override;
  void rowValues(int row, float* out) const override;
  QString title() const override;
  QString valueName() const override;
  QString columnAxis() const override;
  QString columnLabel(int column) const override;
  bool logScale() const override { return m_field == Field::Delta; }

 protected:
  void reset() override;

 private:
  const std::vector<float>* fieldOf(int row) const;
  Field m_field;
  Order m_order = Order::Natural;
  std::vector<int> m_permutation;  // column -> channel; empty = identity
};

// tokens × d_state of one layer: B or C.
class StateModel : public TokenRowsModel {
  Q_OBJECT

 public:
  enum class Field { B, C };
  StateModel(SessionDocument* doc, Field field, QObject* parent = nullptr);
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  float value(int row, int column) const override;
  QString title() const override;
  QString valueName() const override;
  QString columnAxis() const override { return tr("state n"); }
  bool signedValues() const override { return true; }

 private:
  Field m_field;
};

// tokens × layers: a summary of every layer.
class LayerModel : public TokenRowsModel {
  Q_OBJECT

 public:
  enum class Field { MeanDelta, NormH };
  LayerModel(SessionDocument* doc, Field field, QObject* parent = nullptr);
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  float value(int row, int column) const override;
  QString title() const override;
  QString valueName() const override;
  QString columnAxis() const override { return tr("layer"); }
  QString columnLabel(int column) const override;
  bool logScale() const override { return m_field == Field::MeanDelta; }

 private:
  Field m_field;
};

// tokens × {write strength ‖Δ·B·x‖, read strength ‖C‖} of one layer.
class WriteReadModel : public TokenRowsModel {
  Q_OBJECT

 public:
  explicit WriteReadModel(SessionDocument* doc, QObject* parent = nullptr);
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  float value(int row, int column) const override;
  QString title() const override;
  QString valueName() const override { return tr("norm"); }
  QString columnAxis() const override { return tr("series"); }
  QString columnLabel(int column) const override;
};

// tokens × the token strip's measures (TokenMeasure order).
class TokenMeasuresModel : public TokenRowsModel {
  Q_OBJECT

 public:
  explicit TokenMeasuresModel(SessionDocument* doc, QObject* parent = nullptr);
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  float value(int row, int column) const override;
  QString title() const override;
  QString valueName() const override { return tr("measure"); }
  QString columnAxis() const override { return tr("measure"); }
  QString columnLabel(int column) const override;
};
