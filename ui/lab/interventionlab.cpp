// Modes Lab ▸ Interventions (interventionlab.h).
#include "lab/interventionlab.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>
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
constexpr float kResetDelta = 10.0f;  // exp(10·A) < 5e-5 for |A| >= 1 (docs/lab.md §5)
}

struct InterventionLab::Shown {
  lab::InterventionResult r;
  std::vector<ms::DeltaOverride> overrides;
  QStringList pieces, topOriginal, topIntervened;
  QString contOriginal, contIntervened;
  int hLayer = 0;
};

InterventionLab::InterventionLab(const LabContext& context, QWidget* parent)
    : LabView(QStringLiteral("modes_interventions"), tr("Modes: interventions"), context, parent) {
  m_position = new QSpinBox(this);
  m_position->setObjectName(QStringLiteral("interventionPosition"));
  m_position->setPrefix(tr("token "));
  m_position->setMaximum(1 << 30);
  m_layer = new QComboBox(this);
  m_value = new QComboBox(this);
  m_value->addItem(tr("ignore (Δ = 0)"));
  m_value->addItem(tr("reset (Δ = %1)").arg(double(kResetDelta)));
  m_value->addItem(tr("Δ ="));
  m_custom = new QDoubleSpinBox(this);
  m_custom->setRange(0, 1000);
  m_custom->setDecimals(4);
  m_custom->setValue(1);
  m_custom->setEnabled(false);
  connect(m_value, &QComboBox::currentIndexChanged, this, [this](int i) { m_custom->setEnabled(i == 2); });
  auto* add = new QPushButton(tr("Add"), this);
  add->setObjectName(QStringLiteral("interventionAdd"));
  auto* clear = new QPushButton(tr("Clear"), this);
  m_list = new QLabel(this);
  m_hLayer = new QSpinBox(this);
  m_hLayer->setPrefix(tr("h of layer "));
  m_continue = new QSpinBox(this);
  m_continue->setRange(0, 4096);
  m_continue->setValue(16);
  m_continue->setPrefix(tr("continue "));
  for (QWidget* w : std::initializer_list<QWidget*>{m_position, m_layer, m_value, m_custom, add, clear, m_list,
                                                    m_hLayer, m_continue})
    addOption(w);
  connect(add, &QPushButton::clicked, this, [this] {
    const float v = m_value->currentIndex() == 0 ? 0.0f : m_value->currentIndex() == 1 ? kResetDelta : float(m_custom->value());
    addOverride(m_layer->currentData().toInt(), m_position->value(), v);
  });
  connect(clear, &QPushButton::clicked, this, &InterventionLab::clearOverrides);
  const auto fitModel = [this] {
    const int n = document()->model().nLayer;
    m_layer->clear();
    m_layer->addItem(tr("all layers"), -1);
    for (int l = 0; l < n; ++l) m_layer->addItem(tr("layer %1").arg(l), l);
    m_hLayer->setMaximum(std::max(0, n - 1));
    clearOverrides();
  };
  connect(document(), &SessionDocument::modelChanged, this, fitModel);
  fitModel();

  auto* results = new QSplitter(Qt::Vertical, this);
  auto* upper = new QSplitter(Qt::Horizontal, results);
  m_table = new QTableWidget(0, 7, upper);
  m_table->setObjectName(QStringLiteral("interventionTable"));
  m_table->setHorizontalHeaderLabels({tr("token"), tr("next (original)"), tr("next (intervened)"), tr("max |Δlogit|"),
                                      tr("KL"), tr("h change"), tr("override")});
  m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_yChange = new LabMatrix({tr("‖y′ − y‖ / ‖y‖ per layer"), tr("relative change of y"), tr("token"), tr("layer"), true}, this);
  m_heatmap = new HeatmapWidget(upper);
  m_heatmap->setModel(m_yChange);
  m_heatmap->setEmptyText(tr("Add an override and Run"));
  m_continuations = new QLabel(results);
  m_continuations->setObjectName(QStringLiteral("interventionContinuations"));
  m_continuations->setWordWrap(true);
  m_continuations->setTextInteractionFlags(Qt::TextSelectableByMouse);
  results->addWidget(upper);
  results->addWidget(m_continuations);
  results->setStretchFactor(0, 4);
  setResults(results);
  m_perToken = new LabMatrix({tr("intervention per token"), tr("value"), tr("token"), tr("measure")}, this);
}

InterventionLab::~InterventionLab() = default;

QString InterventionLab::continuationsText() const { return m_continuations->text(); }

void InterventionLab::addOverride(int layer, qint64 position, float value) {
  m_overrides.push_back({layer, position, value});
  showOverrides();
}

void InterventionLab::clearOverrides() {
  m_overrides.clear();
  showOverrides();
}

void InterventionLab::showOverrides() {
  QStringList parts;
  for (const auto& o : m_overrides)
    parts << tr("%1 @%2: Δ=%3")
                 .arg(o.layer < 0 ? tr("all") : tr("L%1").arg(o.layer))
                 .arg(o.position)
                 .arg(double(o.value));
  m_list->setText(parts.isEmpty() ? tr("(no override: the runs must be identical)") : parts.join(QStringLiteral("; ")));
}

void InterventionLab::start(const LabText& text) {
  lab::InterventionOptions o;
  o.overrides = m_overrides;
  o.n_continue = m_continue->value();
  o.h_layer = m_hLayer->value();
  runner()->start(tr("Intervention"), [this, text, o](const EngineAccess& engine, const lab::Progress& progress) {
    auto shown = std::make_shared<Shown>();
    const std::vector<int32_t> ids = text.resolve(engine);
    if (engine.model->config().lti)
      throw ms::Error("this is an LTI model: its Δ is a parameter, the same at every token, so there is no "
                      "per-token Δ to override");
    shown->r = lab::intervene(*engine.backend, engine.model->config(), ids, o, progress);
    shown->overrides = o.overrides;
    shown->hLayer = o.h_layer;
    shown->pieces = tokenPieces(*engine.model, ids);
    shown->topOriginal = tokenPieces(*engine.model, shown->r.top_original);
    shown->topIntervened = tokenPieces(*engine.model, shown->r.top_intervened);
    const ms::Tokenizer& tok = engine.model->tokenizer();
    shown->contOriginal = QString::fromUtf8(tok.decode(shown->r.continuation_original));
    shown->contIntervened = QString::fromUtf8(tok.decode(shown->r.continuation_intervened));
    return LabRunner::Deliver([this, shown] { showResult(shown); });
  });
}

void InterventionLab::showResult(std::shared_ptr<const Shown> s) {
  const lab::InterventionResult& r = s->r;
  const int L = int(r.L), nl = int(r.n_layer);
  m_table->setRowCount(L);
  std::vector<float> perToken(size_t(L) * 3);
  const QColor hit(0xfe, 0xe0, 0x8b), changed(0xf4, 0xa5, 0x82);
  for (int t = 0; t < L; ++t) {
    QString over;
    for (const auto& o : s->overrides)
      if (o.position == t) over += (over.isEmpty() ? QString() : QStringLiteral(", ")) +
                                   tr("%1: Δ=%2").arg(o.layer < 0 ? tr("all") : tr("L%1").arg(o.layer)).arg(double(o.value));
    const QStringList cells = {QStringLiteral("%1 %2").arg(t).arg(s->pieces[t]), s->topOriginal[t], s->topIntervened[t],
                               QString::number(double(r.logits_change[size_t(t)]), 'g', 3),
                               QString::number(double(r.kl[size_t(t)]), 'g', 3),
                               QString::number(double(r.h_change[size_t(t)]), 'g', 3), over};
    for (int c = 0; c < cells.size(); ++c) {
      auto* item = new QTableWidgetItem(cells[c]);
      if (!over.isEmpty()) item->setBackground(hit);
      else if (c == 2 && r.top_original[size_t(t)] != r.top_intervened[size_t(t)]) item->setBackground(changed);
      m_table->setItem(t, c, item);
    }
    perToken[size_t(t) * 3] = r.logits_change[size_t(t)];
    perToken[size_t(t) * 3 + 1] = r.kl[size_t(t)];
    perToken[size_t(t) * 3 + 2] = r.h_change[size_t(t)];
  }
  m_perToken->setData(L, 3, std::move(perToken), s->pieces,
                      {tr("max |Δlogit|"), tr("KL"), tr("h change (layer %1)").arg(s->hLayer)});
  std::vector<float> y(size_t(L) * size_t(nl));
  QStringList layers;
  for (int l = 0; l < nl; ++l) layers << tr("layer %1").arg(l);
  for (int l = 0; l < nl; ++l)
    for (int t = 0; t < L; ++t) {
      const float v = r.y_change[size_t(l) * size_t(L) + size_t(t)];
      y[size_t(t) * size_t(nl) + size_t(l)] = v > 0 ? v : NAN;  // log scale: unchanged cells are blank
    }
  m_yChange->setData(L, nl, std::move(y), s->pieces, layers);
  m_heatmap->resetZoom();
  QStringList state;
  for (float v : r.state_change) state << QString::number(double(v), 'g', 3);
  m_continuations->setText(
      tr("<b>%1</b><br>State after the text, relative change per layer: %2<br>"
         "<b>Continuation (original):</b> %3<br><b>Continuation (intervened):</b> %4")
          .arg(r.identical ? tr("The logits are identical to the original run, bit for bit.")
                           : tr("The intervention changed the run."))
          .arg(state.join(QStringLiteral(", ")))
          .arg(s->contOriginal.toHtmlEscaped(), s->contIntervened.toHtmlEscaped()));
  setStatus(tr("%1 tokens, %2 override(s).").arg(L).arg(s->overrides.size()));
  shown();
}
