// The equivalence heatmap: layers × tokens, each cell the largest relative difference of y
// between a mode and its reference, on a fixed log colour scale, with the cells above the
// tolerance painted red. Columns are max-pooled when there are more tokens than pixels, so that
// a single flagged cell never disappears. Hover reads out the cell.
#pragma once
#include <QImage>
#include <QStringList>
#include <QWidget>
#include <vector>

class FlagHeatmap : public QWidget {
  Q_OBJECT

 public:
  explicit FlagHeatmap(QWidget* parent = nullptr);

  // values {rows, columns}: relative differences (>= 0); flagged where > tolerance.
  void setData(int rows, int columns, std::vector<float> values, double tolerance, QStringList rowLabels,
               QStringList columnLabels, const QString& title);
  void clear();
  int flaggedCells() const { return m_flagged; }
  QSize sizeHint() const override { return {520, 220}; }
  QSize minimumSizeHint() const override { return {240, 120}; }

 protected:
  void paintEvent(QPaintEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;

 private:
  QRect plotRect() const;
  void rebuild();
  QRgb colour(float v) const;

  int m_rows = 0, m_columns = 0, m_flagged = 0;
  std::vector<float> m_values;
  double m_tolerance = 1e-4;
  QStringList m_rowLabels, m_columnLabels;
  QString m_title;
  QImage m_image;  // {rows, min(columns, plot width)}
};
