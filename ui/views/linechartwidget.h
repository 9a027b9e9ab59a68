// Draws the columns of a MatrixModel as line series over its rows (Qt Charts): x is the token
// position, y linear or logarithmic as the model prefers. Long series are decimated to a min/max
// pair per pixel; rebuilds are coalesced while tokens stream in. Hover shows a read-out, a click
// selects the nearest token, a red line marks the selected one.
#pragma once
#include <QChartView>
#include <QTimer>
#include <QVector>

class MatrixModel;
class QLineSeries;
class QAbstractAxis;

class LineChartWidget : public QChartView {
  Q_OBJECT

 public:
  explicit LineChartWidget(QWidget* parent = nullptr);

  void setModel(MatrixModel* model);
  MatrixModel* model() const { return m_model; }
  void setSelectedPosition(qint64 position);
  void setEmptyText(const QString& text) { m_emptyText = text; }
  int pointCount() const;  // points drawn over all series (tests)
  QSize sizeHint() const override { return {480, 260}; }

 Q_SIGNALS:
  void positionClicked(qint64 position);

 protected:
  void mouseReleaseEvent(QMouseEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;
  void showEvent(QShowEvent* event) override;

 private:
  void scheduleRebuild();
  void rebuild();
  void updateMarker();

  MatrixModel* m_model = nullptr;
  QTimer m_rebuildTimer;
  QVector<QLineSeries*> m_series;
  QLineSeries* m_marker = nullptr;
  QAbstractAxis* m_x = nullptr;
  QAbstractAxis* m_y = nullptr;
  double m_yMin = 0, m_yMax = 1;
  qint64 m_selected = -1;
  bool m_stale = false;  // data changed while hidden: rebuild when shown
  QString m_emptyText;
};
