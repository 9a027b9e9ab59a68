// Line charts of MatrixModel columns.
#include "views/linechartwidget.h"

#include <QChart>
#include <QLegendMarker>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QMouseEvent>
#include <QToolTip>
#include <QValueAxis>
#include <algorithm>
#include <cmath>

#include "models/matrixmodel.h"
#include "models/tokentooltip.h"
#include "views/colorscale.h"

namespace {
constexpr int kRebuildMilliseconds = 80;
constexpr int kMaxLegendSeries = 16;
}  // namespace

LineChartWidget::LineChartWidget(QWidget* parent) : QChartView(new QChart, parent) {
  setRenderHint(QPainter::Antialiasing);
  chart()->setMargins(QMargins(4, 4, 4, 4));
  chart()->legend()->setAlignment(Qt::AlignBottom);
  QFont f = chart()->titleFont();
  f.setBold(true);
  chart()->setTitleFont(f);
  m_rebuildTimer.setSingleShot(true);
  m_rebuildTimer.setInterval(kRebuildMilliseconds);
  connect(&m_rebuildTimer, &QTimer::timeout, this, [this] {
    // A chart in a background tab waits: with many layers and thousands of tokens a rebuild is
    // the costliest thing the GUI thread does while streaming.
    if (isVisible())
      rebuild();
    else
      m_stale = true;
  });
  m_emptyText = tr("No data yet: generate some text.");
}

void LineChartWidget::setModel(MatrixModel* model) {
  if (m_model) disconnect(m_model, nullptr, this, nullptr);
  m_model = model;
  if (model) {
    auto later = [this] { scheduleRebuild(); };
    connect(model, &QAbstractItemModel::modelReset, this, later);
    connect(model, &QAbstractItemModel::rowsInserted, this, later);
    connect(model, &QAbstractItemModel::dataChanged, this, later);
    connect(model, &QObject::destroyed, this, [this] { m_model = nullptr; });
  }
  rebuild();
}

void LineChartWidget::setSelectedPosition(qint64 position) {
  m_selected = position;
  updateMarker();
}

void LineChartWidget::scheduleRebuild() {
  if (!m_rebuildTimer.isActive()) m_rebuildTimer.start();
}

int LineChartWidget::pointCount() const {
  int n = 0;
  for (const QLineSeries* s : m_series) n += int(s->count());
  return n;
}

void LineChartWidget::rebuild() {
  QChart* c = chart();
  const int columns = m_model ? m_model->columnCount() : 0;
  const int rows = m_model ? m_model->rowCount() : 0;
  const bool log = m_model && m_model->logScale();
  // Series: reuse while the column count holds, else recreate.
  if (m_series.size() != columns || (m_y && (m_y->type() == QAbstractAxis::AxisTypeLogValue) != log)) {
    c->removeAllSeries();
    m_series.clear();
    m_marker = nullptr;
    for (QAbstractAxis* a : c->axes()) {
      c->removeAxis(a);
      delete a;
    }
    m_x = new QValueAxis;
    if (log) {
      auto* y = new QLogValueAxis;
      y->setBase(10);
      y->setLabelFormat(QStringLiteral("%g"));
      y->setRange(0.1, 10);  // positive from the start: an empty log axis warns about log(0)
      m_y = y;
    } else {
      auto* y = new QValueAxis;
      y->setLabelFormat(QStringLiteral("%.3g"));
      m_y = y;
    }
    static_cast<QValueAxis*>(m_x)->setLabelFormat(QStringLiteral("%d"));
    c->addAxis(m_x, Qt::AlignBottom);
    c->addAxis(m_y, Qt::AlignLeft);
    for (int col = 0; col < columns; ++col) {
      auto* s = new QLineSeries;
      c->addSeries(s);
      s->attachAxis(m_x);
      s->attachAxis(m_y);
      connect(s, &QLineSeries::hovered, this, [this, s](const QPointF& pt, bool state) {
        if (!state || !m_model) return QToolTip::hideText();
        const qint64 pos = qint64(std::llround(pt.x()));
        const int row = m_model->rowForPosition(pos);
        const QString token = row >= 0 ? tr("token #%1 “%2”").arg(pos).arg(visibleTokenText(m_model->rowLabel(row)))
                                       : tr("#%1").arg(pos);
        QToolTip::showText(QCursor::pos(), tr("%1<br>%2 = %3").arg(token.toHtmlEscaped(), s->name().toHtmlEscaped(),
                                                                   formatValue(float(pt.y()))), this);
      });
      m_series.push_back(s);
    }
    m_marker = new QLineSeries;
    m_marker->setPen(QPen(QColor(230, 30, 30), 1.5));
    c->addSeries(m_marker);
    m_marker->attachAxis(m_x);
    m_marker->attachAxis(m_y);
    for (QLegendMarker* mk : c->legend()->markers(m_marker)) mk->setVisible(false);
  }
  // Few series: legend below; up to kMaxLegendSeries: a column on the right; more: tooltips only.
  c->legend()->setVisible(columns > 1 && columns <= kMaxLegendSeries);
  c->legend()->setAlignment(columns <= 3 ? Qt::AlignBottom : Qt::AlignRight);
  if (!m_model || rows == 0 || columns == 0) {
    c->setTitle(m_model ? m_model->title() + QStringLiteral(" — ") + m_emptyText : m_emptyText);
    for (QLineSeries* s : m_series) s->clear();
    updateMarker();
    return;
  }
  c->setTitle(m_model->title());
  m_x->setTitleText(m_model->rowAxis());
  m_y->setTitleText(m_model->valueName());

  // Decimate: at most one min/max pair per pixel column.
  const int buckets = std::max(64, int(c->plotArea().width()));
  const int perBucket = rows > 2 * buckets ? (rows + buckets - 1) / buckets : 1;
  std::vector<float> values(static_cast<size_t>(columns));
  QVector<QList<QPointF>> points(columns);
  QVector<QPointF> lo(columns), hi(columns);
  QVector<bool> any(columns, false);
  double yMin = 1e300, yMax = -1e300;
  qint64 xMin = m_model->rowPosition(0), xMax = m_model->rowPosition(rows - 1);
  for (int r = 0; r < rows; ++r) {
    m_model->rowValues(r, values.data());
    const double x = double(m_model->rowPosition(r));
    for (int col = 0; col < columns; ++col) {
      const float v = values[size_t(col)];
      if (!std::isfinite(v) || (log && v <= 0)) continue;
      yMin = std::min(yMin, double(v));
      yMax = std::max(yMax, double(v));
      if (perBucket == 1) {
        points[col].append(QPointF(x, v));
        continue;
      }
      if (!any[col] || v < lo[col].y()) lo[col] = QPointF(x, v);
      if (!any[col] || v > hi[col].y()) hi[col] = QPointF(x, v);
      any[col] = true;
    }
    if (perBucket > 1 && ((r + 1) % perBucket == 0 || r == rows - 1)) {
      for (int col = 0; col < columns; ++col) {
        if (!any[col]) continue;
        const bool loFirst = lo[col].x() <= hi[col].x();
        points[col].append(loFirst ? lo[col] : hi[col]);
        if (lo[col] != hi[col]) points[col].append(loFirst ? hi[col] : lo[col]);
        any[col] = false;
      }
    }
  }
  for (int col = 0; col < columns; ++col) {
    // A bare number names the series by its axis ("layer 3"); other labels stand alone.
    const QString label = m_model->columnLabel(col);
    bool numeric = false;
    label.toInt(&numeric);
    m_series[col]->setName(numeric ? m_model->columnAxis() + QLatin1Char(' ') + label : label);
    if (numeric && columns > 5) {  // many numbered series (layers): colour them in order
      const QColor colour = QColor::fromRgb(ColorScale(0, float(columns - 1)).map(float(col)));
      m_series[col]->setPen(QPen(colour, 1.5));
    }
    m_series[col]->replace(points[col]);
  }
  if (yMin > yMax) yMin = log ? 0.1 : 0, yMax = 1;
  if (yMax - yMin < 1e-12) {
    const double pad = log ? yMin * 0.5 : std::max(std::fabs(yMin) * 0.05, 1e-6);
    yMin -= pad;
    yMax += pad;
  } else if (!log) {
    const double pad = (yMax - yMin) * 0.05;
    yMin = yMin >= 0 ? std::max(0.0, yMin - pad) : yMin - pad;  // no negative axis for norms
    yMax += pad;
  }
  if (log) {  // whole decades, so that the axis always has at least two labels
    yMin = std::pow(10.0, std::floor(std::log10(yMin)));
    yMax = std::pow(10.0, std::max(std::ceil(std::log10(yMax)), std::log10(yMin) + 1));
    yMin *= 0.999;  // a decade exactly at the end of the range may lose its label to rounding
    yMax *= 1.001;
  }
  m_yMin = yMin;
  m_yMax = yMax;
  m_x->setRange(double(xMin), double(std::max(xMax, xMin + 1)));
  m_y->setRange(yMin, yMax);
  updateMarker();
}

void LineChartWidget::updateMarker() {
  if (!m_marker) return;
  const int row = m_model ? m_model->rowForPosition(m_selected) : -1;
  const bool log = m_y && m_y->type() == QAbstractAxis::AxisTypeLogValue;
  if (row < 0 || (log && m_yMin <= 0)) {
    m_marker->clear();
    return;
  }
  const double x = double(m_selected);
  m_marker->replace(QList<QPointF>{QPointF(x, m_yMin), QPointF(x, m_yMax)});
}

void LineChartWidget::mouseReleaseEvent(QMouseEvent* e) {
  QChartView::mouseReleaseEvent(e);
  if (e->button() != Qt::LeftButton || !m_model || m_model->rowCount() == 0) return;
  if (!chart()->plotArea().contains(e->position())) return;
  const QPointF v = chart()->mapToValue(e->position());
  const qint64 pos = qint64(std::llround(v.x()));
  if (m_model->rowForPosition(pos) >= 0) Q_EMIT positionClicked(pos);
}

void LineChartWidget::showEvent(QShowEvent* e) {
  QChartView::showEvent(e);
  if (m_stale) {
    m_stale = false;
    rebuild();
  }
}

void LineChartWidget::resizeEvent(QResizeEvent* e) {
  QChartView::resizeEvent(e);
  scheduleRebuild();
}
