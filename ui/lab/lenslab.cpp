// Modes Lab ▸ Layer lens (lenslab.h).
#include "lab/lenslab.h"

#include <QHeaderView>
#include <QTableWidget>

#include "core/engineworker.h"
#include "lab/labmatrix.h"
#include "lab/labrunner.h"
#include "mambascope/lab.hpp"
#include "mambascope/model.hpp"
#include "views/colorscale.h"

namespace lab = mambascope::lab;

struct LensLab::Shown {
  lab::LensResult r;
  QStringList pieces;     // the text's tokens
  QStringList predicted;  // {n_layer, L, top_k} pieces
};

LensLab::LensLab(const LabContext& context, QWidget* parent)
    : LabView(QStringLiteral("modes_lens"), tr("Modes: layer lens"), context, parent) {
  m_table = new QTableWidget(0, 0, this);
  m_table->setObjectName(QStringLiteral("lensTable"));
  m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_table->horizontalHeader()->setDefaultSectionSize(64);
  setResults(m_table);
  m_probs = new LabMatrix({tr("layer lens: probability of each layer's top token"), tr("p(top)"), tr("token"), tr("layer")},
                          this);
  m_ids = new LabMatrix({tr("layer lens: each layer's top token id"), tr("token id"), tr("token"), tr("layer")}, this);
}

LensLab::~LensLab() = default;

void LensLab::start(const LabText& text) {
  runner()->start(tr("Layer lens"), [this, text](const EngineAccess& engine, const lab::Progress& progress) {
    auto shown = std::make_shared<Shown>();
    const std::vector<int32_t> ids = text.resolve(engine);
    shown->r = lab::layer_lens(engine.model->checkpoint(), *engine.backend, ids, 3, progress);
    shown->pieces = tokenPieces(*engine.model, ids);
    shown->predicted = tokenPieces(*engine.model, shown->r.ids);
    return LabRunner::Deliver([this, shown] { showResult(shown); });
  });
}

void LensLab::showResult(std::shared_ptr<const Shown> s) {
  const lab::LensResult& r = s->r;
  const int nl = int(r.n_layer), L = int(r.L), k = r.top_k;
  m_table->clear();
  m_table->setRowCount(nl);
  m_table->setColumnCount(L);
  QStringList rows, cols;
  for (int l = 0; l < nl; ++l) rows << tr("layer %1").arg(l);
  for (int t = 0; t < L; ++t) cols << QStringLiteral("%1 %2").arg(t).arg(s->pieces[t]);
  m_table->setVerticalHeaderLabels(rows);
  m_table->setHorizontalHeaderLabels(cols);
  const ColorScale scale(0, 1);
  std::vector<float> probs(size_t(L) * size_t(nl)), ids(size_t(L) * size_t(nl));
  for (int l = 0; l < nl; ++l)
    for (int t = 0; t < L; ++t) {
      const size_t base = (size_t(l) * size_t(L) + size_t(t)) * size_t(k);
      const float p = r.probs[base];
      auto* item = new QTableWidgetItem(s->predicted[qsizetype(base)]);
      const QColor bg = QColor::fromRgb(scale.map(p));
      item->setBackground(bg);
      item->setForeground(bg.lightness() < 128 ? Qt::white : Qt::black);
      QString tip = tr("layer %1 after token %2 “%3”:").arg(l).arg(t).arg(s->pieces[t].toHtmlEscaped());
      for (int i = 0; i < k; ++i)
        tip += QStringLiteral("\n  “%1”  %2").arg(s->predicted[qsizetype(base) + i]).arg(double(r.probs[base + size_t(i)]), 0, 'f', 3);
      item->setToolTip(tip);
      m_table->setItem(l, t, item);
      probs[size_t(t) * size_t(nl) + size_t(l)] = p;
      ids[size_t(t) * size_t(nl) + size_t(l)] = float(r.ids[base]);
    }
  m_probs->setData(L, nl, std::move(probs), s->pieces, rows);
  m_ids->setData(L, nl, std::move(ids), s->pieces, rows);
  setStatus(tr("%1 tokens × %2 layers; the last layer is the model's own prediction.").arg(L).arg(nl));
  shown();
}
