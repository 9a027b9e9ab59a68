// Draws any MatrixModel as a heatmap: rows along x (tokens, or channels for h), columns along
// y, a colour bar, axes, a title and a hover read-out. Long sequences stay smooth: the model is
// downsampled (mean per pixel) into a QImage no larger than the plot, rebuilt at most every
// 60 ms while tokens stream in. The wheel zooms the rows, dragging pans, a click selects.
#pragma once
#include <QImage>
#include <QTimer>
#include <QWidget>
#include <functional>
#include <vector>

#include "views/colorscale.h"

class MatrixModel;

class HeatmapWidget : public QWidget {
  Q_OBJECT

 public:
  explicit HeatmapWidget(QWidget* parent = nullptr);

  void setModel(MatrixModel* model);
  MatrixModel* model() const { return m_model; }
  void setSelectedPosition(qint64 position);
  void setMarkedPosition(qint64 position);  // a second marker (the tracked token)
  void setEmptyText(const QString& text);
  // Rich hover text for a cell; the default read-out names the row, column and value.
  void setTooltipProvider(std::function<QString(int row, int column)> provider);
  void resetZoom();
  // Colours each column (a y row of the plot, e.g. a layer) relative to its own mean over the
  // shown tokens, so that columns on different scales can be compared token by token.
  void setRelativeToColumnMean(bool on);
  bool isRelativeToColumnMean() const { return m_relative; }

  const ColorScale& scale() const { return m_scale; }
  const QImage& image() const { return m_image; }  // the downsampled data as drawn
  QSize sizeHint() const override { return {480, 260}; }
  QSize minimumSizeHint() const override { return {200, 120}; }

 Q_SIGNALS:
  void positionClicked(qint64 position);

 protected:
  void paintEvent(QPaintEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void mouseDoubleClickEvent(QMouseEvent* event) override;
  void wheelEvent(QWheelEvent* event) override;
  void leaveEvent(QEvent* event) override;

 private:
  void scheduleRebuild();
  void rebuild();
  void visibleRows(int& begin, int& end) const;
  QRect plotRect() const;
  bool cellAt(const QPoint& p, int& row, int& column) const;
  void paintAxes(QPainter& p, const QRect& plot, int begin, int end);
  void paintMarker(QPainter& p, const QRect& plot, int begin, int end, qint64 position, const QColor& color,
                   Qt::PenStyle style);

  MatrixModel* m_model = nullptr;
  QImage m_image;
  ColorScale m_scale;
  QTimer m_rebuildTimer;
  bool m_dirty = true;
  QSize m_builtFor;
  int m_builtBegin = 0, m_builtEnd = 0;
  int m_span = 0;          // rows shown when zoomed; 0 = all
  int m_begin = 0;         // first row shown when zoomed
  bool m_followEnd = true; // a zoomed view keeps the newest rows in sight while streaming
  qint64 m_selected = -1, m_marked = -1;
  int m_hoverRow = -1, m_hoverColumn = -1;
  QPoint m_pressPos;
  int m_pressBegin = 0;
  bool m_dragging = false;
  bool m_relative = false;
  std::vector<double> m_columnMean;  // over the shown rows, when relative
  QString m_emptyText;
  std::function<QString(int, int)> m_tooltip;
};
