// Modes Lab ▸ Kernel (kernellab.h).
#include "lab/kernellab.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QSpinBox>
#include <QSplitter>
#include <QVBoxLayout>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLineSeries>
#include <QtCharts/QValueAxis>
#include <cmath>

#include "core/engineworker.h"
#include "core/sessiondocument.h"
#include "lab/labmatrix.h"
#include "lab/labrunner.h"
#include "mambascope/lab.hpp"
#include "mambascope/model.hpp"
#include "views/heatmapwidget.h"

namespace ms = mambascope;
namespace lab = mambascope::lab;

namespace {
// |K| {L(s) rows, L(t) columns} for the heatmap (x = source s, y = target t); NaN above the diagonal.
std::vector<float> forHeatmap(const std::vector<float>& K, int64_t L) {
  std::vector<float> out(size_t(L * L), NAN);
  for (int64_t t = 0; t < L; ++t)
    for (int64_t s = 0; s <= t; ++s) out[size_t(s * L + t)] = std::fabs(K[size_t(t * L + s)]);
  return out;
}
}  // namespace

KernelLab::KernelLab(const LabContext& context, QWidget* parent)
    : LabView(QStringLiteral("modes_kernel"), tr("Modes: kernel"), context, parent) {
  m_layer = new QSpinBox(this);
  m_layer->setObjectName(QStringLiteral("kernelLayer"));
  m_layer->setPrefix(tr("layer "));
  m_view = new QComboBox(this);
  m_view->setObjectName(QStringLiteral("kernelView"));
  m_view->addItem(tr("mean |K| over channels"), int(lab::KernelView::MeanOverChannels));
  m_view->addItem(tr("one channel"), int(lab::KernelView::Channel));
  m_view->addItem(tr("rollout across layers"), int(lab::KernelView::Rollout));
  m_channel = new QSpinBox(this);
  m_channel->setPrefix(tr("channel "));
  m_channel->setEnabled(false);
  m_freeze = new QComboBox(this);
  m_freeze->addItem(tr("LTI: Δ, B, C mean over the text"));
  m_freeze->addItem(tr("LTI: Δ, B, C of token"));
  m_token = new QSpinBox(this);
  m_token->setMaximum(1 << 30);
  m_token->setEnabled(false);
  for (QWidget* w : std::initializer_list<QWidget*>{m_layer, m_view, m_channel, m_freeze, m_token}) addOption(w);
  connect(m_view, &QComboBox::currentIndexChanged, this,
          [this] { m_channel->setEnabled(m_view->currentData().toInt() == int(lab::KernelView::Channel)); });
  connect(m_freeze, &QComboBox::currentIndexChanged, this, [this](int i) { m_token->setEnabled(i == 1); });
  const auto fitModel = [this] {
    m_layer->setMaximum(std::max(0, document()->model().nLayer - 1));
    m_channel->setMaximum(std::max(0, document()->model().dInner - 1));
  };
  connect(document(), &SessionDocument::modelChanged, this, fitModel);
  fitModel();

  m_selective = new LabMatrix({tr("selective kernel K[t,s]"), tr("|K|"), tr("source token s"), tr("token t"), true}, this);
  m_lti = new LabMatrix({tr("LTI kernel k[t−s]"), tr("|K|"), tr("source token s"), tr("token t"), true}, this);

  auto* results = new QSplitter(Qt::Vertical, this);
  auto* maps = new QSplitter(Qt::Horizontal, results);
  m_selectiveMap = new HeatmapWidget(maps);
  m_selectiveMap->setModel(m_selective);
  m_selectiveMap->setEmptyText(tr("Run to build the kernel"));
  m_ltiMap = new HeatmapWidget(maps);
  m_ltiMap->setModel(m_lti);
  m_ltiMap->setEmptyText(tr("The frozen (LTI) kernel appears here"));
  const auto tooltip = [this](bool lti) {
    return [this, lti](int row, int column) {
      if (!m_result) return QString();
      const int64_t L = m_result->L, s = row, t = column;
      const std::vector<float>& K = lti ? m_result->K_lti : m_result->K;
      if (s > t) return tr("s > t: token %1 cannot see token %2 (causal)").arg(t).arg(s);
      const QString sp = m_selective->rowLabel(row).toHtmlEscaped(), tp = m_selective->rowLabel(column).toHtmlEscaped();
      return tr("%1K[t=%2 “%3”, s=%4 “%5”] = %6\nlag t − s = %7")
          .arg(lti ? tr("LTI ") : QString())
          .arg(t)
          .arg(tp)
          .arg(s)
          .arg(sp)
          .arg(double(K[size_t(t * L + s)]), 0, 'g', 4)
          .arg(t - s);
    };
  };
  m_selectiveMap->setTooltipProvider(tooltip(false));
  m_ltiMap->setTooltipProvider(tooltip(true));
  auto* lower = new QWidget(results);
  auto* lowerLayout = new QHBoxLayout(lower);
  lowerLayout->setContentsMargins(0, 0, 0, 0);
  m_scores = new QLabel(lower);
  m_scores->setObjectName(QStringLiteral("kernelScores"));
  m_scores->setWordWrap(true);
  m_scores->setMinimumWidth(260);
  m_chart = new QChart;
  m_chart->setTitle(tr("last token's row by lag, against the LTI kernel"));
  m_rowSeries = new QLineSeries;
  m_rowSeries->setName(tr("selective: K[L−1, L−1−j]"));
  m_ltiSeries = new QLineSeries;
  m_ltiSeries->setName(tr("LTI: k[j]"));
  QPen dashed(Qt::gray);
  dashed.setStyle(Qt::DashLine);
  m_ltiSeries->setPen(dashed);
  m_chart->addSeries(m_rowSeries);
  m_chart->addSeries(m_ltiSeries);
  m_lagAxis = new QValueAxis;
  m_lagAxis->setTitleText(tr("lag j"));
  m_lagAxis->setLabelFormat(QStringLiteral("%d"));
  m_valueAxis = new QValueAxis;
  m_chart->addAxis(m_lagAxis, Qt::AlignBottom);
  m_chart->addAxis(m_valueAxis, Qt::AlignLeft);
  for (QLineSeries* s : {m_rowSeries, m_ltiSeries}) {
    s->attachAxis(m_lagAxis);
    s->attachAxis(m_valueAxis);
  }
  auto* chartView = new QChartView(m_chart, lower);
  chartView->setRenderHint(QPainter::Antialiasing);
  chartView->setMinimumHeight(160);
  lowerLayout->addWidget(m_scores);
  lowerLayout->addWidget(chartView, 1);
  results->addWidget(maps);
  results->addWidget(lower);
  results->setStretchFactor(0, 3);
  results->setStretchFactor(1, 1);
  setResults(results);
}

KernelLab::~KernelLab() = default;

QString KernelLab::scoresText() const { return m_scores->text(); }

void KernelLab::start(const LabText& text) {
  lab::KernelOptions o;
  o.layer = m_layer->value();
  o.view = lab::KernelView(m_view->currentData().toInt());
  o.channel = m_channel->value();
  o.lti_freeze = m_freeze->currentIndex() == 0 ? ms::Freeze::Kind::MeanOverInput : ms::Freeze::Kind::AtToken;
  o.lti_token = m_token->value();
  runner()->start(tr("Kernel"), [this, text, o](const EngineAccess& engine, const lab::Progress& progress) {
    const std::vector<int32_t> ids = text.resolve(engine);
    auto r = std::make_shared<const lab::KernelResult>(
        lab::selective_kernel(engine.model->checkpoint(), *engine.backend, ids, o, progress));
    const QStringList pieces = tokenPieces(*engine.model, ids);
    return LabRunner::Deliver([this, r, pieces] { showResult(r, pieces); });
  });
}

void KernelLab::showResult(std::shared_ptr<const lab::KernelResult> r, const QStringList& pieces) {
  m_result = r;
  const int L = int(r->L);
  const QString what = r->view == lab::KernelView::Channel
                           ? tr("layer %1, channel %2").arg(r->layer).arg(r->channel)
                       : r->view == lab::KernelView::Rollout ? tr("rollout, layers 0…%1").arg(r->layer)
                                                              : tr("layer %1, mean |K| over channels").arg(r->layer);
  m_selective->setTitle(tr("selective kernel K[t,s] · %1").arg(what));
  m_selective->setData(L, L, forHeatmap(r->K, L), pieces, pieces);
  m_lti->setTitle(tr("LTI kernel k[t−s] (%1) · %2").arg(QString::fromStdString(r->lti_source), what));
  m_lti->setData(L, L, forHeatmap(r->K_lti, L), pieces, pieces);
  m_selectiveMap->resetZoom();
  m_ltiMap->resetZoom();

  QString check;
  if (r->reconstruction_rel >= 0)
    check = tr("<br>Check: row t of K applied to the layer's input gives the backend's y<sub>t</sub> within %1; "
               "the LTI kernel gives its FFT convolution within %2 (relative to max |y|).")
                .arg(r->reconstruction_rel, 0, 'g', 2)
                .arg(r->lti_reconstruction_rel, 0, 'g', 2);
  m_scores->setText(tr("<b>Stationarity score</b> (0: every row is a shifted copy of one kernel; 1: nothing "
                       "shift-invariant is left)<br>selective: <b>%1</b><br>LTI: <b>%2</b>%3")
                        .arg(r->nonstationarity, 0, 'f', 3)
                        .arg(r->nonstationarity_lti, 0, 'f', 3)
                        .arg(check));
  // The last row by lag, beside the LTI kernel (same view: channel or mean magnitude).
  QList<QPointF> row, lti;
  double lo = 0, hi = 0;
  for (int j = 0; j < L; ++j) {
    const double a = r->K[size_t((L - 1) * L + (L - 1 - j))];
    const double b = r->view == lab::KernelView::Rollout ? r->K_lti[size_t((L - 1) * L + (L - 1 - j))]
                                                        : r->lti_kernel[size_t(j)];
    row << QPointF(j, a);
    lti << QPointF(j, b);
    lo = std::min({lo, a, b});
    hi = std::max({hi, a, b});
  }
  m_rowSeries->replace(row);
  m_ltiSeries->replace(lti);
  m_lagAxis->setRange(0, std::max(1, L - 1));
  m_valueAxis->setRange(lo, hi > lo ? hi : lo + 1);
  setStatus(tr("%1 tokens · %2").arg(L).arg(what));
  shown();
}
