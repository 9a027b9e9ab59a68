// HeatmapWidget on its own: long sequences are downsampled to the plot, the wheel zooms into a
// window of tokens, and columns can be coloured relative to their own mean.
#include <gtest/gtest.h>

#include <QTest>
#include <QWheelEvent>
#include <cmath>

#include "models/matrixmodel.h"
#include "uitestsupport.h"
#include "views/heatmapwidget.h"

namespace {
// rows × columns with value = (column + 1) · (1 + row % 7): columns on different scales.
class SyntheticModel : public MatrixModel {
 public:
  SyntheticModel(int rows, int columns) : m_rows(rows), m_columns(columns) {}
  int rowCount(const QModelIndex& = QModelIndex()) const override { return m_rows; }
  int columnCount(const QModelIndex& = QModelIndex()) const override { return m_columns; }
  float value(int row, int column) const override { return float(column + 1) * float(1 + row % 7); }
  QString title() const override { return QStringLiteral("synthetic"); }
  QString valueName() const override { return QStringLiteral("v"); }
  QString columnAxis() const override { return QStringLiteral("column"); }
  qint64 rowPosition(int row) const override { return row; }
  int rowForPosition(qint64 p) const override { return p >= 0 && p < m_rows ? int(p) : -1; }

 private:
  int m_rows, m_columns;
};

void wheel(QWidget* w, int steps) {
  const QPointF at(w->width() / 2.0, w->height() / 2.0);
  QWheelEvent e(at, w->mapToGlobal(at), QPoint(), QPoint(0, 120 * steps), Qt::NoButton, Qt::NoModifier,
                Qt::NoScrollPhase, false);
  QCoreApplication::sendEvent(w, &e);
}
}  // namespace

TEST(HeatmapWidget, ThousandsOfTokensAreDownsampledToThePlot) {
  ensureApp();
  SyntheticModel model(5000, 64);
  HeatmapWidget w;
  w.setModel(&model);
  w.resize(500, 300);
  w.grab();  // paints, which builds the image
  ASSERT_FALSE(w.image().isNull());
  EXPECT_LT(w.image().width(), 500);   // one pixel column per bucket of tokens, not 5000
  EXPECT_LE(w.image().height(), 64);
}

TEST(HeatmapWidget, TheWheelZoomsIntoAWindowOfTokens) {
  ensureApp();
  SyntheticModel model(5000, 8);
  HeatmapWidget w;
  w.setModel(&model);
  w.resize(500, 300);
  w.grab();
  const int allWidth = w.image().width();
  wheel(&w, 25);  // 0.8^25 of 5000 ≈ 19 tokens
  w.grab();
  EXPECT_LT(w.image().width(), allWidth);
  EXPECT_LE(w.image().width(), 40);  // a window of a few dozen tokens, one pixel each
  QTest::mouseDClick(&w, Qt::LeftButton, Qt::NoModifier, QPoint(250, 150));
  w.grab();
  EXPECT_EQ(w.image().width(), allWidth);
}

TEST(HeatmapWidget, RelativeColouringPutsColumnsOnOneScale) {
  ensureApp();
  SyntheticModel model(14, 4);  // whole cycles of row % 7, so every column has the same shape
  HeatmapWidget w;
  w.setModel(&model);
  w.resize(400, 300);
  w.grab();
  // Shared scale: the same token is coloured differently in column 0 and column 3.
  EXPECT_NE(w.image().pixel(0, 0), w.image().pixel(0, w.image().height() - 1));
  w.setRelativeToColumnMean(true);
  w.grab();
  // Relative to each column's mean they are the same.
  EXPECT_EQ(w.image().pixel(0, 0), w.image().pixel(0, w.image().height() - 1));
  EXPECT_EQ(w.image().pixel(3, 0), w.image().pixel(3, w.image().height() - 1));
}

TEST(HeatmapWidget, AZoomedViewMovesToATokenSelectedElsewhere) {
  ensureApp();
  SyntheticModel model(5000, 8);
  HeatmapWidget w;
  w.setModel(&model);
  w.resize(500, 300);
  w.grab();
  wheel(&w, 25);  // a window of a few dozen tokens at the end (it follows the newest ones)
  w.grab();
  w.setSelectedPosition(100);  // far outside that window
  w.grab();
  // The selected token's column is now drawn: the red marker appears inside the plot.
  const QImage shot = w.grab().toImage();
  bool red = false;
  for (int x = 0; x < shot.width() && !red; ++x)
    red = shot.pixel(x, shot.height() / 2) == qRgb(230, 30, 30);
  EXPECT_TRUE(red);
}
