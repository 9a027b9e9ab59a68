// Modes Lab ▸ Complexity (sweeplab.h).
#include "lab/sweeplab.h"

#include <QCheckBox>
#include <QComboBox>
#include <QCoreApplication>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFile>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QRegularExpression>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLineSeries>
#include <QtCharts/QLogValueAxis>
#include <cmath>
#include <set>

#include "core/engineworker.h"
#include "core/sessiondocument.h"
#include "lab/labmatrix.h"
#include "lab/labrunner.h"
#include "mambascope/model.hpp"

namespace ms = mambascope;
namespace lab = mambascope::lab;

namespace {
const ms::ScanMode kMethods[] = {ms::ScanMode::Recurrent, ms::ScanMode::Scan, ms::ScanMode::Convolution,
                                 ms::ScanMode::LtiFft};
const QColor kColours[] = {QColor(0x1b, 0x9e, 0x77), QColor(0x75, 0x70, 0xb3), QColor(0xd9, 0x5f, 0x02),
                           QColor(0x66, 0xa6, 0x1e)};

QString methodName(ms::ScanMode m) {
  switch (m) {
    case ms::ScanMode::Recurrent: return QObject::tr("recurrent (token by token)");
    case ms::ScanMode::Scan: return QObject::tr("parallel scan");
    case ms::ScanMode::Convolution: return QObject::tr("selective kernel conv.");
    case ms::ScanMode::LtiFft: return QObject::tr("LTI FFT conv.");
  }
  return {};
}


}  // namespace

std::optional<lab::ReferenceCurve> SweepLab::findReference(QString* where) {
  const QString app = QCoreApplication::applicationDirPath();
  const QStringList candidates = {app + QStringLiteral("/docs/benchmarks.md"),
                                  app + QStringLiteral("/../docs/benchmarks.md"),
                                  app + QStringLiteral("/../../docs/benchmarks.md"),
                                  app + QStringLiteral("/../share/mambascope/docs/benchmarks.md"),
                                  QStringLiteral(MAMBASCOPE_SOURCE_DIR "/docs/benchmarks.md")};
  for (const QString& c : candidates) {
    QFile f(c);
    if (!f.open(QIODevice::ReadOnly)) continue;
    if (where) *where = QDir::cleanPath(c);
    return lab::parse_attention_reference(f.readAll().toStdString());
  }
  return std::nullopt;
}

SweepLab::SweepLab(const LabContext& context, QWidget* parent)
    : LabView(QStringLiteral("modes_sweep"), tr("Modes: complexity"), context, parent) {
  m_scope = new QComboBox(this);
  m_scope->setObjectName(QStringLiteral("sweepScope"));
  m_scope->addItem(tr("one layer's SSM (CPU)"));
  m_scope->addItem(tr("whole model (backend)"));
  m_scope->setToolTip(tr("One layer: the SSM op alone on the model's d_inner × d_state, on the CPU.\n"
                         "Whole model: Backend::forward with projections and head, on the app's backend."));
  m_layer = new QSpinBox(this);
  m_layer->setPrefix(tr("layer "));
  m_lengths = new QLineEdit(this);
  m_lengths->setObjectName(QStringLiteral("sweepLengths"));
  m_lengths->setPlaceholderText(tr("L: auto (64…4096 CPU, …131072 GPU)"));
  m_lengths->setToolTip(tr("Sequence lengths, ascending, comma-separated"));
  m_budget = new QDoubleSpinBox(this);
  m_budget->setRange(0.001, 3600);
  m_budget->setValue(10);
  m_budget->setSuffix(tr(" s/point"));
  m_budget->setToolTip(tr("A method stops before a point predicted to take longer than this"));
  m_memory = new QDoubleSpinBox(this);
  m_memory->setRange(0, 1024);
  m_memory->setSpecialValueText(tr("auto"));  // 0: 4 GiB on the CPU, 80% of the free GPU memory
  m_memory->setValue(0);
  m_memory->setSuffix(tr(" GiB"));
  m_memory->setToolTip(tr("… or to need more memory than this (auto: 4 GiB on the CPU, 80% of the GPU's free memory)"));
  m_reference = new QCheckBox(tr("attention reference"), this);
  m_reference->setChecked(true);
  for (QWidget* w : std::initializer_list<QWidget*>{m_scope, m_layer, m_lengths, m_budget, m_memory, m_reference})
    addOption(w);
  setTextSourceVisible(false);  // the sweep makes its own inputs
  connect(document(), &SessionDocument::modelChanged, this,
          [this] { m_layer->setMaximum(std::max(0, document()->model().nLayer - 1)); });

  auto* results = new QSplitter(Qt::Vertical, this);
  m_chart = new QChart;
  m_chart->setTitle(tr("Time per sequence against L (log-log)"));
  m_chart->legend()->setAlignment(Qt::AlignRight);
  m_x = new QLogValueAxis;
  m_x->setBase(2);
  m_x->setLabelFormat(QStringLiteral("%g"));
  m_x->setTitleText(tr("sequence length L"));
  m_y = new QLogValueAxis;
  m_y->setBase(10);
  m_y->setLabelFormat(QStringLiteral("%g"));
  m_y->setTitleText(tr("seconds"));
  m_chart->addAxis(m_x, Qt::AlignBottom);
  m_chart->addAxis(m_y, Qt::AlignLeft);
  m_chartView = new QChartView(m_chart, results);
  m_chartView->setRenderHint(QPainter::Antialiasing);
  m_chartView->setMinimumHeight(220);
  auto* lower = new QWidget(results);
  auto* lowerLayout = new QVBoxLayout(lower);
  lowerLayout->setContentsMargins(0, 0, 0, 0);
  m_notes = new QLabel(lower);
  m_notes->setWordWrap(true);
  m_table = new QTableWidget(0, 9, lower);
  m_table->setObjectName(QStringLiteral("s4Table"));
  m_table->setHorizontalHeaderLabels({tr("method"), tr("parallel training"), tr("training (theory)"),
                                      tr("training (measured)"), tr("per step (theory)"), tr("per step (measured)"),
                                      tr("memory (theory)"), tr("memory (est.)"), tr("slope")});
  m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_table->verticalHeader()->hide();
  lowerLayout->addWidget(new QLabel(tr("<b>The S4 paper's table</b> (Gu, Goel &amp; Ré 2022, Table 1), measured"), lower));
  lowerLayout->addWidget(m_table, 1);
  lowerLayout->addWidget(m_notes);
  results->addWidget(m_chartView);
  results->addWidget(lower);
  results->setStretchFactor(0, 3);
  results->setStretchFactor(1, 2);
  setResults(results);
  m_points = new LabMatrix({tr("Sweep: seconds per sequence"), tr("seconds"), tr("L"), tr("method")}, this);
  clearChart();
}

int SweepLab::pointCount() const {
  int n = 0;
  for (QLineSeries* s : m_series) n += int(s->count());
  return n;
}

void SweepLab::clearChart() {
  m_chart->removeAllSeries();
  m_series.clear();
  m_referenceSeries = nullptr;
  for (size_t i = 0; i < std::size(kMethods); ++i) {
    auto* s = new QLineSeries;
    s->setName(methodName(kMethods[i]));
    s->setPointsVisible(true);
    QPen pen(kColours[i]);
    pen.setWidthF(2);
    s->setPen(pen);
    m_chart->addSeries(s);
    s->attachAxis(m_x);
    s->attachAxis(m_y);
    m_series[int(kMethods[i])] = s;
  }
  if (m_reference->isChecked()) addReference();
  fitAxes();
}

void SweepLab::addReference() {
  QString where;
  const auto ref = findReference(&where);
  if (!ref) {
    m_notes->setText(where.isEmpty() ? tr("No attention reference: docs/benchmarks.md was not found.")
                                     : tr("No attention reference table in %1.").arg(where));
    return;
  }
  m_referenceSeries = new QLineSeries;
  m_referenceSeries->setName(tr("attention, %1 — reference data").arg(QString::fromStdString(ref->label)));
  QPen pen(Qt::gray);
  pen.setStyle(Qt::DashLine);
  pen.setWidthF(1.5);
  m_referenceSeries->setPen(pen);
  m_referenceSeries->setPointsVisible(true);
  for (auto [L, s] : ref->points) m_referenceSeries->append(double(L), s);
  m_chart->addSeries(m_referenceSeries);
  m_referenceSeries->attachAxis(m_x);
  m_referenceSeries->attachAxis(m_y);
  m_notes->setText(tr("Dashed grey: %1 (%2), reference data measured elsewhere, not by this sweep.")
                       .arg(QString::fromStdString(ref->source), where));
}

void SweepLab::fitAxes() {
  double x0 = 1e300, x1 = 0, y0 = 1e300, y1 = 0;
  QList<QLineSeries*> all = m_series.values();
  if (m_referenceSeries) all << m_referenceSeries;
  for (QLineSeries* s : all)
    for (const QPointF& p : s->points()) {
      x0 = std::min(x0, p.x());
      x1 = std::max(x1, p.x());
      y0 = std::min(y0, p.y());
      y1 = std::max(y1, p.y());
    }
  if (x1 <= 0) {
    x0 = 32;
    x1 = 8192;
    y0 = 1e-5;
    y1 = 10;
  }
  m_x->setRange(x0 / 1.5, x1 * 1.5);
  m_y->setRange(y0 / 2, y1 * 2);
}

void SweepLab::addPoint(const lab::SweepSeries& series, const lab::SweepPoint& point) {
  QLineSeries* s = m_series.value(int(series.method));
  if (!s) return;
  s->append(double(point.L), std::max(point.seconds, 1e-9));
  if (std::isfinite(series.slope))
    s->setName(tr("%1 — slope %2").arg(methodName(series.method)).arg(series.slope, 0, 'f', 2));
  fitAxes();
}

void SweepLab::start(const LabText&) {
  lab::SweepOptions o;
  o.scope = m_scope->currentIndex() == 0 ? lab::SweepScope::Layer : lab::SweepScope::Model;
  o.layer = m_layer->value();
  o.point_budget_seconds = m_budget->value();
  o.memory_budget_bytes = m_memory->value() * double(1ull << 30);
  std::vector<int64_t> lengths;
  for (const QString& part : m_lengths->text().split(QRegularExpression(QStringLiteral("[,\\s]+")), Qt::SkipEmptyParts)) {
    bool ok = false;
    const qlonglong v = part.toLongLong(&ok);
    if (!ok || v < 1 || (!lengths.empty() && v <= lengths.back())) {
      setStatus(tr("Lengths must be positive whole numbers, ascending: “%1”").arg(part), true);
      return;
    }
    lengths.push_back(v);
  }
  const bool gpu = document()->model().backend != QStringLiteral("cpu");
  if (lengths.empty())
    for (int64_t L = 64; L <= (gpu && o.scope == lab::SweepScope::Model ? 131072 : 4096); L *= 2) lengths.push_back(L);
  o.lengths = lengths;
  clearChart();
  m_table->setRowCount(0);
  LabRunner* r = runner();
  runner()->start(tr("Sweep"), [this, o, r](const EngineAccess& engine, const lab::Progress& progress) {
    const auto onPoint = [this, r](const lab::SweepSeries& s, const lab::SweepPoint& p) {
      lab::SweepSeries copy;
      copy.method = s.method;
      copy.slope = s.slope;
      r->post([this, copy, p] { addPoint(copy, p); });
    };
    auto result = std::make_shared<lab::SweepResult>(
        lab::sweep(engine.model->checkpoint(), engine.backend.get(), o, progress, onPoint));
    return LabRunner::Deliver([this, result] { showResult(*result); });
  });
}

void SweepLab::showResult(const lab::SweepResult& r) {
  // Redraw from the result (the live points may have been coalesced).
  clearChart();
  for (const lab::SweepSeries& s : r.series)
    for (const lab::SweepPoint& p : s.points) addPoint(s, p);
  QStringList notes;
  notes << tr("Timed: %1 on %2.").arg(QString::fromStdString(r.what), QString::fromStdString(r.device));
  for (const lab::SweepSeries& s : r.series)
    if (!s.stopped.empty()) notes << tr("%1: %2").arg(methodName(s.method), QString::fromStdString(s.stopped));
  if (r.cancelled) notes << tr("Cancelled: the points so far are shown.");
  if (!m_notes->text().isEmpty()) notes << m_notes->text();
  m_notes->setText(notes.join(QLatin1Char('\n')));

  const auto table = lab::s4_table(r);
  m_table->setRowCount(int(table.size()));
  for (int i = 0; i < int(table.size()); ++i) {
    const lab::S4Row& row = table[size_t(i)];
    const QStringList cells = {QString::fromStdString(row.method),
                               QString::fromStdString(row.parallel),
                               QString::fromStdString(row.train_theory),
                               tr("%1 at L = %2").arg(qSeconds(row.train_seconds)).arg(row.at_L),
                               QString::fromStdString(row.step_theory),
                               qSeconds(row.step_seconds),
                               QString::fromStdString(row.memory_theory),
                               qBytes(double(row.memory_bytes)),
                               std::isfinite(row.slope) ? QString::number(row.slope, 'f', 2) : tr("–")};
    for (int c = 0; c < cells.size(); ++c) {
      auto* item = new QTableWidgetItem(cells[c]);
      item->setToolTip(QString::fromStdString(row.note));
      m_table->setItem(i, c, item);
    }
  }
  // Export: seconds {L, method}.
  std::set<int64_t> Ls;
  for (const lab::SweepSeries& s : r.series)
    for (const lab::SweepPoint& p : s.points) Ls.insert(p.L);
  const std::vector<int64_t> lv(Ls.begin(), Ls.end());
  std::vector<float> values(lv.size() * r.series.size(), NAN);
  QStringList rowNames, colNames;
  for (int64_t L : lv) rowNames << QString::number(L);
  for (size_t j = 0; j < r.series.size(); ++j) {
    colNames << QString::fromLatin1(ms::mode_name(r.series[j].method));
    for (const lab::SweepPoint& p : r.series[j].points) {
      const size_t i = size_t(std::lower_bound(lv.begin(), lv.end(), p.L) - lv.begin());
      values[i * r.series.size() + j] = float(p.seconds);
    }
  }
  m_points->setData(int(lv.size()), int(r.series.size()), std::move(values), rowNames, colNames);
  setStatus(r.cancelled ? tr("Cancelled.") : tr("Done."));
  shown();
}
