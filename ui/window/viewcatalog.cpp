// The built-in views.
#include "window/viewcatalog.h"

#include <QCoreApplication>

#include "models/selectivitymodels.h"
#include "views/channelsview.h"
#include "views/chartview.h"
#include "views/heatmapview.h"
#include "views/hiddenstateview.h"
#include "views/retentionview.h"
#include "views/survivalview.h"

namespace ViewCatalog {

QList<Entry> create(SessionDocument* doc, QWidget* parent) {
  const auto tr = [](const char* s) { return QCoreApplication::translate("ViewCatalog", s); };
  // Layers differ in their typical Δ: by default each is coloured relative to its own mean.
  auto* layers = new HeatmapView(QStringLiteral("layers"), tr("Δ per layer"), doc,
                                 new LayerModel(doc, LayerModel::Field::MeanDelta), parent);
  layers->addRelativeToggle(tr("each layer relative to its mean"), true);
  return {
      {new ChannelsView(doc, parent), 0},
      {layers, 0},
      {new HeatmapView(QStringLiteral("b_state"), tr("B"), doc, new StateModel(doc, StateModel::Field::B), parent), 0},
      {new HeatmapView(QStringLiteral("c_state"), tr("C"), doc, new StateModel(doc, StateModel::Field::C), parent), 0},
      {new ChartView(QStringLiteral("write_read"), tr("Write / read"), doc, new WriteReadModel(doc), parent), 0},
      {new HiddenStateView(doc, parent), 1},
      {new RetentionView(doc, parent), 1},
      {new ChartView(QStringLiteral("h_norm"), tr("‖h‖ per layer"), doc, new LayerModel(doc, LayerModel::Field::NormH), parent), 2},
      {new SurvivalView(doc, parent), 2},
  };
}

}  // namespace ViewCatalog
