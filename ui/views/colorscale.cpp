// Colour maps, fitted ranges and colour bars.
#include "views/colorscale.h"

#include <QPainter>
#include <algorithm>
#include <cmath>

namespace {
// viridis at 9 evenly spaced stops (matplotlib's key colours).
constexpr QRgb kViridis[] = {0x440154, 0x482878, 0x3e4989, 0x31688e, 0x26828e,
                             0x1f9e89, 0x35b779, 0x6ece58, 0xfde725};
// a blue–white–red diverging map (ColorBrewer RdBu, reversed so that red is positive).
constexpr QRgb kDiverging[] = {0x2166ac, 0x67a9cf, 0xd1e5f0, 0xf7f7f7, 0xfddbc7, 0xef8a62, 0xb2182b};

template <size_t N>
QRgb interpolate(const QRgb (&stops)[N], float t) {
  t = std::clamp(t, 0.f, 1.f) * float(N - 1);
  const size_t i = std::min(size_t(t), N - 2);
  const float f = t - float(i);
  const auto mix = [f](int a, int b) { return int(std::lround(a + (b - a) * f)); };
  return qRgb(mix(qRed(stops[i]), qRed(stops[i + 1])), mix(qGreen(stops[i]), qGreen(stops[i + 1])),
              mix(qBlue(stops[i]), qBlue(stops[i + 1])));
}

float percentile(std::vector<float>& v, double q) {
  const size_t k = std::min(v.size() - 1, size_t(q * double(v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return v[k];
}
}  // namespace

ColorScale::ColorScale(float lo, float hi, Kind kind, bool log) : m_lo(lo), m_hi(hi), m_kind(kind), m_log(log) {}

ColorScale ColorScale::fit(const std::vector<float>& values, Kind kind, bool log) {
  std::vector<float> v;
  v.reserve(values.size());
  for (float x : values)
    if (std::isfinite(x) && (!log || x > 0)) v.push_back(kind == Kind::Diverging ? std::fabs(x) : x);
  if (v.empty()) return ColorScale(0, 1, kind, log);
  if (kind == Kind::Diverging) {
    const float m = std::max(percentile(v, 0.99), 1e-12f);
    return ColorScale(-m, m, kind, false);
  }
  float lo = percentile(v, 0.01), hi = percentile(v, 0.99);
  if (!(hi > lo)) {  // constant data: a small range around it
    const float pad = log ? lo * 0.5f : std::max(std::fabs(lo) * 0.05f, 1e-6f);
    lo -= pad;
    hi += pad;
  }
  return ColorScale(lo, hi, kind, log && lo > 0);
}

float ColorScale::position(float v) const {
  if (m_log) {
    const float a = std::log(m_lo), b = std::log(m_hi);
    return b > a ? (std::log(std::max(v, m_lo)) - a) / (b - a) : 0.5f;
  }
  return m_hi > m_lo ? (v - m_lo) / (m_hi - m_lo) : 0.5f;
}

float ColorScale::valueAt(float t) const {
  if (m_log) return std::exp(std::log(m_lo) + t * (std::log(m_hi) - std::log(m_lo)));
  return m_lo + t * (m_hi - m_lo);
}

QRgb ColorScale::map(float v) const {
  if (!std::isfinite(v)) return noData();
  const float t = position(v);
  return m_kind == Kind::Diverging ? interpolate(kDiverging, t) : interpolate(kViridis, t);
}

QRgb ColorScale::noData() { return qRgb(200, 200, 200); }

QString formatValue(float v) {
  if (!std::isfinite(v)) return QStringLiteral("–");
  const float a = std::fabs(v);
  if (a != 0 && (a < 1e-2f || a >= 1e4f)) return QString::number(double(v), 'e', 2);
  return QString::number(double(v), 'g', 3);
}

void paintColorBar(QPainter& p, const QRect& bar, const ColorScale& scale, const QString& title) {
  if (bar.height() < 4 || bar.width() < 2) return;
  for (int y = 0; y < bar.height(); ++y) {
    const float t = 1.0f - float(y) / float(bar.height() - 1);
    p.setPen(QColor::fromRgb(scale.map(scale.valueAt(t))));
    p.drawLine(bar.left(), bar.top() + y, bar.right(), bar.top() + y);
  }
  p.setPen(QPen(Qt::darkGray));
  p.drawRect(bar.adjusted(0, 0, -1, -1));
  const QFontMetrics fm(p.font());
  p.setPen(QPen(Qt::black));
  const int x = bar.right() + 4;
  p.drawText(QPoint(x, bar.top() + fm.ascent() / 2 + 1), formatValue(scale.hi()));
  p.drawText(QPoint(x, bar.center().y() + fm.ascent() / 2), formatValue(scale.valueAt(0.5f)));
  p.drawText(QPoint(x, bar.bottom() + fm.ascent() / 2 - 1), formatValue(scale.lo()));
  if (!title.isEmpty()) {
    p.save();
    p.translate(x + fm.horizontalAdvance(QStringLiteral("0.000e+00")) + fm.height() / 2, bar.center().y());
    p.rotate(-90);
    const QString t = scale.isLog() ? title + QStringLiteral(" (log)") : title;
    p.drawText(QPoint(-fm.horizontalAdvance(t) / 2, 0), t);
    p.restore();
  }
}

ColorLegend::ColorLegend(QWidget* parent) : QWidget(parent) {
  setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Fixed);
}

void ColorLegend::setScale(const ColorScale& scale, const QString& title) {
  m_scale = scale;
  m_title = title;
  updateGeometry();
  update();
}

QSize ColorLegend::sizeHint() const {
  const QFontMetrics fm = fontMetrics();
  return {2 * fm.horizontalAdvance(QStringLiteral("0.00e+00")) + 100 + fm.horizontalAdvance(m_title) + 24, fm.height() + 6};
}

void ColorLegend::paintEvent(QPaintEvent*) {
  // Horizontal: "lo [bar] hi  title".
  QPainter p(this);
  const QFontMetrics fm = fontMetrics();
  const QString lo = formatValue(m_scale.lo()), hi = formatValue(m_scale.hi());
  const int h = height() - 6;
  int x = 0;
  p.drawText(QRect(x, 0, fm.horizontalAdvance(lo) + 4, height()), Qt::AlignVCenter, lo);
  x += fm.horizontalAdvance(lo) + 6;
  const int w = 90;
  for (int i = 0; i < w; ++i) {
    p.setPen(QColor::fromRgb(m_scale.map(m_scale.valueAt(float(i) / float(w - 1)))));
    p.drawLine(x + i, 3, x + i, 3 + h);
  }
  p.setPen(palette().color(QPalette::WindowText));
  p.drawRect(x, 3, w - 1, h);
  x += w + 6;
  p.drawText(QRect(x, 0, width() - x, height()), Qt::AlignVCenter,
             hi + QStringLiteral("   ") + m_title + (m_scale.isLog() ? tr(" (log)") : QString()));
}
