// Per-channel heatmaps with field and order controls.
#include "views/channelsview.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>

#include "models/selectivitymodels.h"
#include "views/heatmapwidget.h"

ChannelsView::ChannelsView(SessionDocument* doc, QWidget* parent)
    : HeatmapView(QStringLiteral("channels"), tr("Δ per channel"), doc,
                  new ChannelModel(doc, ChannelModel::Field::Delta), parent) {
  m_models[0] = static_cast<ChannelModel*>(heatmap()->model());
  m_models[0]->setParent(this);
  m_models[1] = new ChannelModel(doc, ChannelModel::Field::Gate, this);
  m_models[2] = new ChannelModel(doc, ChannelModel::Field::HNorm, this);

  m_field = new QComboBox(this);
  m_field->setObjectName(QStringLiteral("channelField"));
  m_field->addItems({tr("Δ (step size)"), tr("gate SiLU(z)"), tr("‖h‖ per channel")});
  m_order = new QComboBox(this);
  m_order->setObjectName(QStringLiteral("channelOrder"));
  m_order->addItems({tr("channel order"), tr("sorted by mean"), tr("clustered")});
  controls()->addWidget(new QLabel(tr("Show"), this));
  controls()->addWidget(m_field);
  controls()->addWidget(m_order);
  connect(m_field, &QComboBox::currentIndexChanged, this, &ChannelsView::setField);
  connect(m_order, &QComboBox::currentIndexChanged, this, &ChannelsView::setOrder);
}

ChannelModel* ChannelsView::channelModel() const { return static_cast<ChannelModel*>(heatmap()->model()); }

void ChannelsView::setField(int field) {
  if (field < 0 || field >= int(m_models.size())) return;
  m_field->setCurrentIndex(field);
  ChannelModel* m = m_models[size_t(field)];
  m->setOrder(ChannelModel::Order(m_order->currentIndex()));
  heatmap()->setModel(m);
}

void ChannelsView::setOrder(int order) {
  m_order->setCurrentIndex(order);
  channelModel()->setOrder(ChannelModel::Order(order));
}
