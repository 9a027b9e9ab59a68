// Modes Lab ▸ Equivalence (equivalencelab.h).
#include "lab/equivalencelab.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

#include "core/engineworker.h"
#include "lab/flagheatmap.h"
#include "lab/labmatrix.h"
#include "lab/labrunner.h"
#include "mambascope/backend.hpp"
#include "mambascope/lab.hpp"
#include "mambascope/model.hpp"

namespace ms = mambascope;
namespace lab = mambascope::lab;

struct EquivalenceLab::Shown {
  std::vector<lab::EquivalenceReport> reports;
  QStringList pieces;
  QStringList notes;
};

// The second backend (the CPU beside the GPU, or the GPU beside the CPU), made once per model.
struct EquivalenceLab::OtherBackend {
  std::weak_ptr<const ms::Model> model;
  std::shared_ptr<ms::Backend> backend;
  std::string why_not;
};

EquivalenceLab::EquivalenceLab(const LabContext& context, QWidget* parent)
    : LabView(QStringLiteral("modes_equivalence"), tr("Modes: equivalence"), context, parent),
      m_otherBackend(std::make_shared<OtherBackend>()) {
  m_other = new QCheckBox(tr("both backends"), this);
  m_other->setToolTip(tr("Also run on the other backend (the CPU beside the GPU, or the GPU when one is present)"));
  m_other->setChecked(true);
  addOption(m_other);
  addOption(new QLabel(tr("Heatmap:"), this));
  m_which = new QComboBox(this);
  m_which->setObjectName(QStringLiteral("equivalenceWhich"));
  m_which->setMinimumContentsLength(18);
  addOption(m_which);

  auto* results = new QSplitter(Qt::Vertical, this);
  m_heatmap = new FlagHeatmap(results);
  m_table = new QTableWidget(0, 10, results);
  m_table->setObjectName(QStringLiteral("equivalenceTable"));
  m_table->setHorizontalHeaderLabels({tr("backend"), tr("mode"), tr("compared with"), tr("y rel"), tr("logits rel"),
                                      tr("argmax agree"), tr("time"), tr("peak (est.)"), tr("peak (measured)"),
                                      tr("verdict")});
  m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_table->verticalHeader()->hide();
  results->addWidget(m_heatmap);
  results->addWidget(m_table);
  setResults(results);

  m_summary = new LabMatrix({tr("Mode equivalence"), tr("value"), tr("backend · mode"), tr("measure")}, this);
  m_cells = new LabMatrix({tr("max |Δy| / max |y| per layer and token"), tr("relative Δy"), tr("token"), tr("layer"),
                           true},
                          this);
  connect(m_which, &QComboBox::currentIndexChanged, this, &EquivalenceLab::showHeatmap);
}

EquivalenceLab::~EquivalenceLab() = default;

QList<MatrixModel*> EquivalenceLab::dataModels() const { return {m_summary, m_cells}; }

void EquivalenceLab::start(const LabText& text) {
  const bool both = m_other->isChecked();
  auto other = m_otherBackend;
  runner()->start(tr("Equivalence"), [this, text, both, other](const EngineAccess& engine,
                                                                 const lab::Progress& progress) {
    const std::vector<int32_t> ids = text.resolve(engine);
    auto shown = std::make_shared<Shown>();
    shown->pieces = tokenPieces(*engine.model, ids);
    std::vector<ms::Backend*> backends{engine.backend.get()};
    if (both) {
      if (other->model.lock() != engine.model) {
        other->backend.reset();
        other->why_not.clear();
        other->model = engine.model;
        const ms::Checkpoint& ckpt = engine.model->checkpoint();
        if (engine.backend->name() != "cpu") {
          other->backend = ms::make_cpu_backend(ckpt);
        } else if (ms::cuda_backend_available(&other->why_not)) {
          try {
            other->backend = ms::make_cuda_backend(ckpt);
          } catch (const std::exception& e) {
            other->why_not = e.what();
          }
        }
      }
      if (other->backend) backends.push_back(other->backend.get());
      else shown->notes << QObject::tr("Only the %1 backend ran: %2")
                                .arg(QString::fromStdString(engine.backend->name()),
                                     other->why_not.empty() ? QObject::tr("no other backend")
                                                            : QString::fromStdString(other->why_not));
    }
    for (size_t i = 0; i < backends.size(); ++i) {
      lab::Progress part = progress;
      part.report = [&progress, i, n = backends.size()](double f, const std::string& what) {
        progress((double(i) + f) / double(n), what);
      };
      shown->reports.push_back(lab::equivalence(*backends[i], engine.model->config(), ids, {}, part));
    }
    return LabRunner::Deliver([this, shown] { showResult(shown); });
  });
}

void EquivalenceLab::showResult(std::shared_ptr<const Shown> r) {
  m_shown = r;
  m_table->setRowCount(0);
  m_which->blockSignals(true);
  m_which->clear();
  std::vector<float> summary;
  QStringList rowNames;
  const QStringList measures = {tr("y rel"), tr("logits rel"), tr("argmax agree"), tr("seconds"),
                                tr("peak bytes (est.)"), tr("peak bytes (measured)"), tr("ok")};
  QStringList notes = r->notes;
  bool allOk = true;
  for (size_t b = 0; b < r->reports.size(); ++b) {
    const lab::EquivalenceReport& rep = r->reports[b];
    const QString backend = QString::fromStdString(rep.backend);
    for (size_t i = 0; i < rep.modes.size(); ++i) {
      const lab::ModeEquivalence& m = rep.modes[i];
      const QString mode = QString::fromLatin1(ms::mode_name(m.mode));
      const int row = m_table->rowCount();
      m_table->insertRow(row);
      const auto set = [&](int col, const QString& text) { m_table->setItem(row, col, new QTableWidgetItem(text)); };
      set(0, backend);
      set(1, mode);
      if (!m.skipped.empty()) {
        set(2, tr("skipped: %1").arg(QString::fromStdString(m.skipped)));
        continue;
      }
      set(2, QString::fromStdString(m.reference));
      set(3, QString::number(m.y_rel, 'g', 3));
      set(4, QString::number(m.logits_rel, 'g', 3));
      set(5, QStringLiteral("%1 / %2").arg(m.argmax_agree).arg(rep.n_tokens));
      set(6, QStringLiteral("%1 ms").arg(m.seconds * 1e3, 0, 'f', 2));
      set(7, qBytes(double(m.peak_bytes_estimate)));
      set(8, m.peak_bytes_measured < 0 ? tr("–") : qBytes(double(m.peak_bytes_measured)));
      set(9, m.ok ? tr("within %1").arg(m.tolerance, 0, 'g', 2) : tr("⚑ over %1").arg(m.tolerance, 0, 'g', 2));
      if (!m.ok) {
        allOk = false;
        for (int c = 0; c < m_table->columnCount(); ++c)
          if (auto* item = m_table->item(row, c)) item->setBackground(QColor(0xf4, 0xa5, 0x82));
      }
      m_which->addItem(backend + QStringLiteral(" · ") + mode, QPoint(int(b), int(i)));
      rowNames << backend + QStringLiteral(" ") + mode;
      summary.insert(summary.end(), {float(m.y_rel), float(m.logits_rel), float(m.argmax_agree), float(m.seconds),
                                     float(m.peak_bytes_estimate), float(m.peak_bytes_measured), m.ok ? 1.f : 0.f});
    }
    if (rep.frozen_vs_selective_rel >= 0)
      notes << tr("%1: freezing Δ, B, C (lti-fft) moves the logits by %2 relative to the selective model: that is "
                  "what selectivity does, not an error.")
                   .arg(backend)
                   .arg(rep.frozen_vs_selective_rel, 0, 'g', 3);
  }
  m_summary->setData(int(rowNames.size()), int(measures.size()), summary, rowNames, measures);
  // Show the first non-reference mode (the recurrence is all zeros).
  m_which->setCurrentIndex(m_which->count() > 1 ? 1 : 0);
  m_which->blockSignals(false);
  showHeatmap(m_which->currentIndex());
  setStatus((allOk ? tr("Every mode agrees within the tolerance.") : tr("⚑ Some modes differ by more than the tolerance."))
                + (notes.isEmpty() ? QString() : QStringLiteral("\n") + notes.join(QStringLiteral("\n"))),
            !allOk);
  shown();
}

void EquivalenceLab::showHeatmap(int index) {
  if (!m_shown || index < 0) return;
  const QPoint which = m_which->itemData(index).toPoint();
  const lab::EquivalenceReport& rep = m_shown->reports[size_t(which.x())];
  const lab::ModeEquivalence& m = rep.modes[size_t(which.y())];
  const int L = int(rep.n_tokens), layers = int(rep.n_layer);
  std::vector<float> rel(size_t(layers) * size_t(L));
  std::vector<float> byToken(size_t(layers) * size_t(L));  // {L, layers} for export
  for (int l = 0; l < layers; ++l)
    for (int t = 0; t < L; ++t) {
      const float scale = m.y_scale[size_t(l)];
      const float v = m.y_max_abs[size_t(l) * size_t(L) + size_t(t)];
      rel[size_t(l) * size_t(L) + size_t(t)] = scale > 0 ? v / scale : v;
      byToken[size_t(t) * size_t(layers) + size_t(l)] = rel[size_t(l) * size_t(L) + size_t(t)];
    }
  QStringList layerNames;
  for (int l = 0; l < layers; ++l) layerNames << tr("layer %1").arg(l);
  const QString title = tr("%1 · %2 vs %3").arg(QString::fromStdString(rep.backend),
                                                QString::fromLatin1(ms::mode_name(m.mode)),
                                                QString::fromStdString(m.reference));
  m_heatmap->setData(layers, L, rel, m.tolerance, layerNames, m_shown->pieces, title);
  m_cells->setTitle(title);
  m_cells->setData(L, layers, std::move(byToken), m_shown->pieces, layerNames);
}
