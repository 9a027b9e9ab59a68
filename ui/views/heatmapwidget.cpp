// Heatmap rendering: downsample, colour, axes, markers, read-out.
#include "views/heatmapwidget.h"

#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>

#include "models/matrixmodel.h"
#include "models/tokentooltip.h"

namespace {
constexpr int kRebuildMilliseconds = 60;
constexpr int kBarWidth = 12;

// "Nice" tick step (1, 2, 5 × 10^k) so that about `target` ticks cover `span`.
int tickStep(int span, int target) {
  const double raw = std::max(1.0, double(span) / std::max(1, target));
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) return std::max(1, int(m * mag));
  return std::max(1, int(10 * mag));
}
}  // namespace

HeatmapWidget::HeatmapWidget(QWidget* parent) : QWidget(parent) {
  setMouseTracking(true);
  setAttribute(Qt::WA_OpaquePaintEvent);
  m_rebuildTimer.setSingleShot(true);
  m_rebuildTimer.setInterval(kRebuildMilliseconds);
  connect(&m_rebuildTimer, &QTimer::timeout, this, [this] {
    m_dirty = true;
    update();
  });
  m_emptyText = tr("No data yet: generate some text.");
}

void HeatmapWidget::setModel(MatrixModel* model) {
  if (m_model) disconnect(m_model, nullptr, this, nullptr);
  m_model = model;
  if (model) {
    auto later = [this] { scheduleRebuild(); };
    connect(model, &QAbstractItemModel::modelReset, this, [this] {
      resetZoom();
      m_dirty = true;
      update();
    });
    connect(model, &QAbstractItemModel::rowsInserted, this, later);
    connect(model, &QAbstractItemModel::dataChanged, this, later);
    connect(model, &QAbstractItemModel::headerDataChanged, this, later);
    connect(model, &QObject::destroyed, this, [this] { m_model = nullptr; });
  }
  m_dirty = true;
  update();
}

void HeatmapWidget::setSelectedPosition(qint64 position) {
  if (position == m_selected) return;
  m_selected = position;
  // A zoomed view brings a selection made elsewhere into its window.
  const int row = m_model ? m_model->rowForPosition(position) : -1;
  if (m_span > 0 && row >= 0) {
    int begin = 0, end = 0;
    visibleRows(begin, end);
    if (row < begin || row >= end) {
      const int rows = m_model->rowCount();
      m_begin = std::clamp(row - m_span / 2, 0, std::max(0, rows - m_span));
      m_followEnd = m_begin + m_span >= rows;
      m_dirty = true;
    }
  }
  update();
}

void HeatmapWidget::setMarkedPosition(qint64 position) {
  if (position == m_marked) return;
  m_marked = position;
  update();
}

void HeatmapWidget::setEmptyText(const QString& text) {
  m_emptyText = text;
  update();
}

void HeatmapWidget::setTooltipProvider(std::function<QString(int, int)> provider) {
  m_tooltip = std::move(provider);
}

void HeatmapWidget::setRelativeToColumnMean(bool on) {
  m_relative = on;
  m_dirty = true;
  update();
}

void HeatmapWidget::resetZoom() {
  m_span = 0;
  m_begin = 0;
  m_followEnd = true;
  m_dirty = true;
  update();
}

void HeatmapWidget::scheduleRebuild() {
  if (!m_rebuildTimer.isActive()) m_rebuildTimer.start();
}

void HeatmapWidget::visibleRows(int& begin, int& end) const {
  const int rows = m_model ? m_model->rowCount() : 0;
  if (m_span <= 0 || m_span >= rows) {
    begin = 0;
    end = rows;
    return;
  }
  begin = m_followEnd ? rows - m_span : std::clamp(m_begin, 0, rows - m_span);
  end = begin + m_span;
}

QRect HeatmapWidget::plotRect() const {
  const QFontMetrics fm = fontMetrics();
  const int left = fm.horizontalAdvance(QStringLiteral("00000")) + fm.height() + 8;
  const int top = fm.height() + 8;
  const int right = kBarWidth + fm.horizontalAdvance(QStringLiteral("0.00e+00")) + fm.height() + 14;
  const int bottom = 2 * fm.height() + fm.height() + 12;  // ticks, axis title, read-out
  return QRect(left, top, std::max(10, width() - left - right), std::max(10, height() - top - bottom));
}

void HeatmapWidget::rebuild() {
  m_dirty = false;
  m_builtFor = size();
  m_image = QImage();
  if (!m_model) return;
  int begin = 0, end = 0;
  visibleRows(begin, end);
  m_builtBegin = begin;
  m_builtEnd = end;
  const int rows = end - begin, columns = m_model->columnCount();
  if (rows <= 0 || columns <= 0) return;
  const QRect plot = plotRect();
  const int w = std::min(rows, plot.width()), h = std::min(columns, plot.height());
  std::vector<double> sum(size_t(w) * size_t(h), 0.0);
  std::vector<int> count(sum.size(), 0);
  std::vector<float> row(static_cast<size_t>(columns));
  std::vector<int> yOf(static_cast<size_t>(columns));
  for (int c = 0; c < columns; ++c) yOf[size_t(c)] = int(qint64(c) * h / columns);
  m_columnMean.clear();
  if (m_relative) {  // a first pass for each column's mean over the shown rows
    std::vector<double> s(size_t(columns), 0.0);
    std::vector<int> n(size_t(columns), 0);
    for (int r = begin; r < end; ++r) {
      m_model->rowValues(r, row.data());
      for (int c = 0; c < columns; ++c)
        if (std::isfinite(row[size_t(c)])) s[size_t(c)] += row[size_t(c)], ++n[size_t(c)];
    }
    m_columnMean.resize(size_t(columns));
    for (int c = 0; c < columns; ++c) m_columnMean[size_t(c)] = n[size_t(c)] ? s[size_t(c)] / n[size_t(c)] : 0.0;
  }
  for (int r = begin; r < end; ++r) {
    m_model->rowValues(r, row.data());
    const size_t x = size_t(qint64(r - begin) * w / rows);
    for (int c = 0; c < columns; ++c) {
      float v = row[size_t(c)];
      if (m_relative) v = m_columnMean[size_t(c)] != 0 ? float(v / m_columnMean[size_t(c)]) : std::nanf("");
      if (!std::isfinite(v)) continue;
      const size_t i = size_t(yOf[size_t(c)]) * size_t(w) + x;
      sum[i] += v;
      ++count[i];
    }
  }
  std::vector<float> pixels(sum.size(), std::nanf(""));
  for (size_t i = 0; i < sum.size(); ++i)
    if (count[i]) pixels[i] = float(sum[i] / count[i]);
  m_scale = ColorScale::fit(pixels, m_model->signedValues() ? ColorScale::Kind::Diverging : ColorScale::Kind::Sequential,
                            m_model->logScale());
  m_image = QImage(w, h, QImage::Format_RGB32);
  for (int y = 0; y < h; ++y) {
    auto* line = reinterpret_cast<QRgb*>(m_image.scanLine(y));
    for (int x = 0; x < w; ++x) line[x] = m_scale.map(pixels[size_t(y) * size_t(w) + size_t(x)]);
  }
}

void HeatmapWidget::paintEvent(QPaintEvent*) {
  if (m_dirty || m_builtFor != size()) rebuild();
  QPainter p(this);
  p.fillRect(rect(), palette().color(QPalette::Base));
  const QFontMetrics fm = fontMetrics();
  const QRect plot = plotRect();
  if (m_model) {
    p.setPen(palette().color(QPalette::Text));
    QFont bold = font();
    bold.setBold(true);
    p.setFont(bold);
    p.drawText(QRect(plot.left(), 2, width() - plot.left() - 4, fm.height() + 4), Qt::AlignLeft | Qt::AlignVCenter,
               QFontMetrics(bold).elidedText(m_model->title(), Qt::ElideRight, width() - plot.left() - 4));
    p.setFont(font());
  }
  if (m_image.isNull()) {
    p.setPen(palette().color(QPalette::PlaceholderText));
    p.drawText(plot, Qt::AlignCenter | Qt::TextWordWrap, m_emptyText);
    return;
  }
  p.drawImage(plot, m_image);
  paintAxes(p, plot, m_builtBegin, m_builtEnd);
  paintMarker(p, plot, m_builtBegin, m_builtEnd, m_marked, QColor(255, 140, 0), Qt::DashLine);
  paintMarker(p, plot, m_builtBegin, m_builtEnd, m_selected, QColor(230, 30, 30), Qt::SolidLine);
  const QRect bar(plot.right() + 8, plot.top(), kBarWidth, plot.height());
  paintColorBar(p, bar, m_scale, m_relative ? m_model->valueName() + tr(" ÷ its mean") : m_model->valueName());

  // Read-out line of the hovered cell.
  QString readout = tr("wheel: zoom · drag: pan · double-click: all · click: select");
  if (m_hoverRow >= 0 && m_hoverColumn >= 0) {
    const qint64 pos = m_model->rowPosition(m_hoverRow);
    const QString rowText = pos >= 0 ? tr("token #%1 “%2”").arg(pos).arg(visibleTokenText(m_model->rowLabel(m_hoverRow)))
                                     : tr("%1 %2").arg(m_model->rowAxis(), m_model->rowLabel(m_hoverRow));
    const float v = m_model->value(m_hoverRow, m_hoverColumn);
    readout = tr("%1 · %2 %3 · %4 = %5")
                  .arg(rowText, m_model->columnAxis(), m_model->columnLabel(m_hoverColumn), m_model->valueName(), formatValue(v));
    if (m_relative && size_t(m_hoverColumn) < m_columnMean.size() && m_columnMean[size_t(m_hoverColumn)] != 0)
      readout += tr(" (%1× its mean)").arg(double(v) / m_columnMean[size_t(m_hoverColumn)], 0, 'f', 2);
  }
  p.setPen(palette().color(QPalette::Text));
  p.drawText(QRect(4, height() - fm.height() - 4, width() - 8, fm.height() + 2), Qt::AlignLeft | Qt::AlignVCenter,
             fm.elidedText(readout, Qt::ElideRight, width() - 8));
}

void HeatmapWidget::paintAxes(QPainter& p, const QRect& plot, int begin, int end) {
  const QFontMetrics fm = fontMetrics();
  const int rows = end - begin, columns = m_model->columnCount();
  p.setPen(palette().color(QPalette::Text));
  p.drawRect(plot.adjusted(-1, -1, 0, 0));
  // x: rows. Few enough rows for their text, else numbered ticks.
  const double cellW = double(plot.width()) / rows;
  if (m_model->rowPosition(begin) >= 0 && cellW >= 18) {
    for (int r = begin; r < end; ++r) {
      const QRect cell(plot.left() + int((r - begin) * cellW), plot.bottom() + 3, int(cellW), fm.height());
      p.drawText(cell, Qt::AlignHCenter | Qt::AlignTop,
                 fm.elidedText(visibleTokenText(m_model->rowLabel(r)), Qt::ElideRight, cell.width()));
    }
  } else {
    const int step = tickStep(rows, std::max(2, plot.width() / 70));
    for (int r = begin - begin % step; r < end; r += step) {
      if (r < begin) continue;
      const int x = plot.left() + int((r - begin + 0.5) * cellW);
      p.drawLine(x, plot.bottom() + 1, x, plot.bottom() + 4);
      const qint64 pos = m_model->rowPosition(r);
      const QString label = pos >= 0 ? QString::number(pos) : m_model->rowLabel(r);
      p.drawText(QRect(x - 40, plot.bottom() + 4, 80, fm.height()), Qt::AlignHCenter | Qt::AlignTop, label);
    }
  }
  p.drawText(QRect(plot.left(), plot.bottom() + 4 + fm.height(), plot.width(), fm.height()), Qt::AlignHCenter,
             m_model->rowAxis() + (rows < m_model->rowCount() ? tr("  (rows %1–%2 of %3)").arg(begin).arg(end - 1).arg(m_model->rowCount()) : QString()));
  // y: columns, top to bottom.
  const double cellH = double(plot.height()) / columns;
  const int step = cellH >= fm.height() ? 1 : tickStep(columns, std::max(2, plot.height() / (2 * fm.height())));
  for (int c = 0; c < columns; c += step) {
    const int y = plot.top() + int((c + 0.5) * cellH);
    p.drawLine(plot.left() - 4, y, plot.left() - 1, y);
    p.drawText(QRect(0, y - fm.height() / 2, plot.left() - 6, fm.height()), Qt::AlignRight | Qt::AlignVCenter,
               fm.elidedText(m_model->columnLabel(c), Qt::ElideLeft, plot.left() - fm.height() - 8));
  }
  p.save();
  p.translate(fm.ascent(), plot.center().y());
  p.rotate(-90);
  p.drawText(QRect(-plot.height() / 2, -fm.ascent(), plot.height(), fm.height()), Qt::AlignCenter, m_model->columnAxis());
  p.restore();
}

void HeatmapWidget::paintMarker(QPainter& p, const QRect& plot, int begin, int end, qint64 position,
                                const QColor& color, Qt::PenStyle style) {
  const int row = m_model->rowForPosition(position);
  if (row < begin || row >= end || row < 0) return;
  const double cellW = double(plot.width()) / (end - begin);
  const int x0 = plot.left() + int((row - begin) * cellW), x1 = plot.left() + int((row - begin + 1) * cellW);
  p.setPen(QPen(color, 2, style));
  p.setBrush(Qt::NoBrush);
  if (x1 - x0 >= 4)
    p.drawRect(QRect(x0, plot.top(), x1 - x0, plot.height()));
  else
    p.drawLine(x0, plot.top(), x0, plot.bottom());
}

bool HeatmapWidget::cellAt(const QPoint& pos, int& row, int& column) const {
  const QRect plot = plotRect();
  if (!m_model || m_image.isNull() || !plot.contains(pos)) return false;
  const int rows = m_builtEnd - m_builtBegin, columns = m_model->columnCount();
  row = m_builtBegin + std::min(rows - 1, int(qint64(pos.x() - plot.left()) * rows / plot.width()));
  column = std::min(columns - 1, int(qint64(pos.y() - plot.top()) * columns / plot.height()));
  return true;
}

void HeatmapWidget::resizeEvent(QResizeEvent*) { m_dirty = true; }

void HeatmapWidget::mouseMoveEvent(QMouseEvent* e) {
  if (m_dragging && m_span > 0 && m_model) {
    const int dx = int(e->position().x()) - m_pressPos.x();
    const int rows = m_model->rowCount();
    m_begin = std::clamp(m_pressBegin - int(qint64(dx) * m_span / std::max(1, plotRect().width())), 0,
                         std::max(0, rows - m_span));
    m_followEnd = m_begin + m_span >= rows;
    m_dirty = true;
    update();
    return;
  }
  int row = -1, column = -1;
  if (!cellAt(e->position().toPoint(), row, column)) row = column = -1;
  if (row != m_hoverRow || column != m_hoverColumn) {
    m_hoverRow = row;
    m_hoverColumn = column;
    update();
    if (row >= 0 && m_tooltip)
      QToolTip::showText(e->globalPosition().toPoint(), m_tooltip(row, column), this);
    else if (row < 0)
      QToolTip::hideText();
  }
}

void HeatmapWidget::mousePressEvent(QMouseEvent* e) {
  if (e->button() != Qt::LeftButton || !m_model) return;
  int begin = 0, end = 0;
  visibleRows(begin, end);
  m_pressPos = e->position().toPoint();
  m_pressBegin = begin;
  m_dragging = m_span > 0;
}

void HeatmapWidget::mouseReleaseEvent(QMouseEvent* e) {
  const bool moved = (e->position().toPoint() - m_pressPos).manhattanLength() > 4;
  m_dragging = false;
  if (e->button() != Qt::LeftButton || moved) return;
  int row = -1, column = -1;
  if (cellAt(e->position().toPoint(), row, column)) {
    const qint64 pos = m_model->rowPosition(row);
    if (pos >= 0) Q_EMIT positionClicked(pos);
  }
}

void HeatmapWidget::mouseDoubleClickEvent(QMouseEvent*) { resetZoom(); }

void HeatmapWidget::wheelEvent(QWheelEvent* e) {
  if (!m_model) return;
  const int rows = m_model->rowCount();
  if (rows < 2) return;
  int begin = 0, end = 0;
  visibleRows(begin, end);
  const int span = end - begin;
  const QRect plot = plotRect();
  const double anchor = std::clamp((e->position().x() - plot.left()) / std::max(1, plot.width()), 0.0, 1.0);
  const int steps = e->angleDelta().y() / 120;
  if (steps == 0) return;
  int newSpan = int(span * std::pow(0.8, steps));
  newSpan = std::clamp(newSpan, std::min(rows, 8), rows);
  if (newSpan == span) return;
  const int center = begin + int(anchor * span);
  m_span = newSpan >= rows ? 0 : newSpan;
  m_begin = std::clamp(center - int(anchor * newSpan), 0, rows - newSpan);
  m_followEnd = m_begin + newSpan >= rows;
  m_dirty = true;
  update();
  e->accept();
}

void HeatmapWidget::leaveEvent(QEvent*) {
  m_hoverRow = m_hoverColumn = -1;
  update();
}
