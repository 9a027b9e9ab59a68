// FlagHeatmap painting and read-out.
#include "lab/flagheatmap.h"

#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>
#include <algorithm>
#include <cmath>

#include "views/colorscale.h"

namespace {
constexpr float kLo = 1e-9f, kHi = 1e-2f;  // the colour range of relative differences
const QRgb kFlag = qRgb(0xd7, 0x19, 0x1c);
}  // namespace

FlagHeatmap::FlagHeatmap(QWidget* parent) : QWidget(parent) {
  setMouseTracking(true);
  setAttribute(Qt::WA_OpaquePaintEvent, false);
}

void FlagHeatmap::setData(int rows, int columns, std::vector<float> values, double tolerance,
                          QStringList rowLabels, QStringList columnLabels, const QString& title) {
  m_rows = rows;
  m_columns = columns;
  m_values = std::move(values);
  m_values.resize(size_t(rows) * size_t(columns), NAN);
  m_tolerance = tolerance;
  m_rowLabels = std::move(rowLabels);
  m_columnLabels = std::move(columnLabels);
  m_title = title;
  m_flagged = 0;
  for (float v : m_values) m_flagged += !(v <= tolerance);  // NaN counts as flagged
  rebuild();
  update();
}

void FlagHeatmap::clear() { setData(0, 0, {}, m_tolerance, {}, {}, QString()); }

QRect FlagHeatmap::plotRect() const {
  const int left = fontMetrics().horizontalAdvance(QStringLiteral("layer 000")) + 8;
  return QRect(left, fontMetrics().height() + 8, std::max(10, width() - left - 70),
               std::max(10, height() - 2 * fontMetrics().height() - 16));
}

QRgb FlagHeatmap::colour(float v) const {
  if (!(v <= m_tolerance)) return kFlag;
  static const ColorScale scale(kLo, kHi, ColorScale::Kind::Sequential, true);
  return scale.map(std::max(v, kLo));
}

void FlagHeatmap::rebuild() {
  if (m_rows == 0 || m_columns == 0) {
    m_image = QImage();
    return;
  }
  const int w = std::max(1, std::min(m_columns, plotRect().width()));
  m_image = QImage(w, m_rows, QImage::Format_RGB32);
  for (int r = 0; r < m_rows; ++r)
    for (int x = 0; x < w; ++x) {
      const int c0 = int(int64_t(x) * m_columns / w), c1 = std::max(c0 + 1, int(int64_t(x + 1) * m_columns / w));
      float worst = 0;
      for (int c = c0; c < c1; ++c) {
        const float v = m_values[size_t(r) * size_t(m_columns) + size_t(c)];
        worst = std::isnan(v) || std::isnan(worst) ? NAN : std::max(worst, v);
      }
      m_image.setPixel(x, r, colour(worst));
    }
}

void FlagHeatmap::resizeEvent(QResizeEvent*) { rebuild(); }

void FlagHeatmap::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), palette().base());
  const QRect plot = plotRect();
  p.setPen(palette().text().color());
  p.drawText(QRect(plot.left(), 2, plot.width(), fontMetrics().height() + 4), Qt::AlignLeft | Qt::AlignVCenter,
             m_title);
  if (m_image.isNull()) {
    p.drawText(plot, Qt::AlignCenter, tr("Run to compare the modes"));
    return;
  }
  p.drawImage(plot, m_image);
  // Row labels (layers), column ticks (token positions).
  const int step = std::max(1, m_rows / std::max(1, plot.height() / (fontMetrics().height() + 2)));
  for (int r = 0; r < m_rows; r += step) {
    const int y = plot.top() + int((r + 0.5) * plot.height() / m_rows);
    p.drawText(QRect(0, y - fontMetrics().height() / 2, plot.left() - 4, fontMetrics().height()),
               Qt::AlignRight | Qt::AlignVCenter, r < m_rowLabels.size() ? m_rowLabels[r] : QString::number(r));
  }
  for (int c : {0, m_columns / 2, m_columns - 1}) {
    const int x = plot.left() + int((c + 0.5) * plot.width() / m_columns);
    p.drawText(QRect(x - 30, plot.bottom() + 2, 60, fontMetrics().height()), Qt::AlignCenter, QString::number(c));
  }
  p.drawText(QRect(plot.left(), plot.bottom() + 2 + fontMetrics().height(), plot.width(), fontMetrics().height() + 2),
             Qt::AlignCenter, tr("token   (red: above the tolerance %1)").arg(m_tolerance, 0, 'g', 2));
  const QRect bar(plot.right() + 12, plot.top(), 14, plot.height());
  paintColorBar(p, bar, ColorScale(kLo, kHi, ColorScale::Kind::Sequential, true), tr("|Δy| / max|y|"));
}

void FlagHeatmap::mouseMoveEvent(QMouseEvent* e) {
  const QRect plot = plotRect();
  if (m_rows == 0 || !plot.contains(e->position().toPoint())) {
    QToolTip::hideText();
    return;
  }
  const int c = std::clamp(int(int64_t(e->position().x() - plot.left()) * m_columns / plot.width()), 0, m_columns - 1);
  const int r = std::clamp(int(int64_t(e->position().y() - plot.top()) * m_rows / plot.height()), 0, m_rows - 1);
  const float v = m_values[size_t(r) * size_t(m_columns) + size_t(c)];
  const QString token = c < m_columnLabels.size() ? m_columnLabels[c] : QString();
  QToolTip::showText(e->globalPosition().toPoint(),
                     tr("%1, token #%2 “%3”\nmax |Δy| / max |y| = %4%5")
                         .arg(r < m_rowLabels.size() ? m_rowLabels[r] : QString::number(r))
                         .arg(c)
                         .arg(token.toHtmlEscaped())
                         .arg(double(v), 0, 'g', 3)
                         .arg(v <= m_tolerance ? QString() : tr("  — above the tolerance")),
                     this);
}
