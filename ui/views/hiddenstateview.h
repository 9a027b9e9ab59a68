// h_t at the selected token as a heatmap channels × d_state, with a slider over the tokens and a
// play button to watch the state evolve (moving the selection every view follows).
#pragma once
#include <QTimer>

#include "views/viewpanel.h"

class HeatmapWidget;
class HiddenStateModel;
class SessionDocument;
class QSlider;
class QToolButton;
class QLabel;

class HiddenStateView : public ViewPanel {
  Q_OBJECT

 public:
  explicit HiddenStateView(SessionDocument* doc, QWidget* parent = nullptr);
  QList<MatrixModel*> dataModels() const override;
  HeatmapWidget* heatmap() const { return m_heatmap; }
  QSlider* slider() const { return m_slider; }
  void setPlaying(bool playing);
  bool isPlaying() const { return m_timer.isActive(); }

 private:
  void syncSlider();
  void step();

  SessionDocument* m_doc;
  HiddenStateModel* m_model;
  HeatmapWidget* m_heatmap;
  QSlider* m_slider;
  QToolButton* m_play;
  QLabel* m_position;
  QTimer m_timer;
};
