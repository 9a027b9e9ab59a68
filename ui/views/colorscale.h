// Value → colour: a sequential map (viridis) for magnitudes, a diverging one (blue–white–red)
// for signed values, linear or logarithmic, with a robust range fitted to the data. Also the
// colour bar every view draws beside its data, and a small legend widget built on it.
#pragma once
#include <QColor>
#include <QRect>
#include <QString>
#include <QWidget>
#include <vector>

class QPainter;

class ColorScale {
 public:
  enum class Kind { Sequential, Diverging };

  ColorScale() = default;
  ColorScale(float lo, float hi, Kind kind = Kind::Sequential, bool log = false);
  // A range covering the 1st..99th percentile of the finite values (log: of the positive ones);
  // diverging scales are symmetric around 0.
  static ColorScale fit(const std::vector<float>& values, Kind kind, bool log);

  QRgb map(float v) const;       // NaN → the "no data" grey
  float position(float v) const; // 0..1 along the bar
  float valueAt(float t) const;  // inverse of position
  float lo() const { return m_lo; }
  float hi() const { return m_hi; }
  bool isLog() const { return m_log; }
  Kind kind() const { return m_kind; }

  static QRgb noData();

 private:
  float m_lo = 0, m_hi = 1;
  Kind m_kind = Kind::Sequential;
  bool m_log = false;
};

// A vertical bar with ticks at the ends and the middle, and the quantity's name.
void paintColorBar(QPainter& p, const QRect& bar, const ColorScale& scale, const QString& title);
QString formatValue(float v);

class ColorLegend : public QWidget {
  Q_OBJECT

 public:
  explicit ColorLegend(QWidget* parent = nullptr);
  void setScale(const ColorScale& scale, const QString& title);
  QSize sizeHint() const override;

 protected:
  void paintEvent(QPaintEvent* event) override;

 private:
  ColorScale m_scale;
  QString m_title;
};
