// A view that is one heatmap of one MatrixModel, following the document's selection: the
// selectivity views (Δ per layer, B, C) are this with different models; ChannelsView adds its
// own controls on top.
#pragma once
#include "views/viewpanel.h"

class HeatmapWidget;
class SessionDocument;

class HeatmapView : public ViewPanel {
  Q_OBJECT

 public:
  HeatmapView(const QString& viewId, const QString& title, SessionDocument* doc, MatrixModel* model,
              QWidget* parent = nullptr);
  HeatmapWidget* heatmap() const { return m_heatmap; }
  QList<MatrixModel*> dataModels() const override;
  // A check box in the controls that colours each column relative to its mean.
  void addRelativeToggle(const QString& text, bool on);

  // Selection marker, tracked marker, click-to-select and token tooltips for any heatmap.
  static void follow(HeatmapWidget* heatmap, SessionDocument* doc);

 protected:
  SessionDocument* document() const { return m_doc; }

 private:
  SessionDocument* m_doc;
  HeatmapWidget* m_heatmap;
};
