// Δ (or the gate, or ‖h‖) as a heatmap tokens × channels for the chosen layer, with the
// channels in their natural order, sorted by their mean, or clustered by their profiles.
#pragma once
#include <array>

#include "views/heatmapview.h"

class ChannelModel;
class QComboBox;

class ChannelsView : public HeatmapView {
  Q_OBJECT

 public:
  explicit ChannelsView(SessionDocument* doc, QWidget* parent = nullptr);
  ChannelModel* channelModel() const;
  void setField(int field);  // ChannelModel::Field
  void setOrder(int order);  // ChannelModel::Order

 private:
  std::array<ChannelModel*, 3> m_models;
  QComboBox* m_field;
  QComboBox* m_order;
};
