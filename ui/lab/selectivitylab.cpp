// Modes Lab ▸ Selectivity (selectivitylab.h).
#include "lab/selectivitylab.h"

#include <QComboBox>
#include <QDir>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <cmath>

#include "core/engineworker.h"
#include "core/sessiondocument.h"
#include "lab/labmatrix.h"
#include "lab/labrunner.h"
#include "mambascope/lab.hpp"
#include "mambascope/model.hpp"

namespace ms = mambascope;
namespace lab = mambascope::lab;

struct SelectivityLab::Shown {
  std::vector<lab::VariantResult> variants;
  std::vector<int32_t> ids;
  QStringList pieces;
  int64_t promptLen = 0, scoreFrom = 1;
  QStringList continuations;  // decoded, per variant
  QVector<QStringList> predicted;  // per variant: the predicted token's piece at each position
  QString expected;
};

// The comparison model, loaded once per folder; engine thread only.
struct SelectivityLab::Other {
  std::string dir;
  std::shared_ptr<ms::Model> model;
  std::unique_ptr<ms::Backend> backend;
};

SelectivityLab::SelectivityLab(const LabContext& context, QWidget* parent)
    : LabView(QStringLiteral("modes_selectivity"), tr("Modes: selectivity"), context, parent),
      m_other(std::make_shared<Other>()) {
  m_answer = new QLineEdit(this);
  m_answer->setObjectName(QStringLiteral("selectivityAnswer"));
  m_answer->setPlaceholderText(tr("answer after…"));
  m_answer->setToolTip(tr("The answer starts after the last occurrence of this marker (e.g. | or #): only the "
                          "answer is scored and the continuation starts there. Empty: the whole text is scored."));
  m_answer->setMaximumWidth(110);
  m_freeze = new QComboBox(this);
  m_freeze->addItem(tr("frozen: mean over the prompt"));
  m_freeze->addItem(tr("frozen: token"));
  m_token = new QSpinBox(this);
  m_token->setMaximum(1 << 30);
  m_token->setEnabled(false);
  connect(m_freeze, &QComboBox::currentIndexChanged, this, [this](int i) { m_token->setEnabled(i == 1); });
  m_compare = new QLineEdit(this);
  m_compare->setObjectName(QStringLiteral("selectivityCompare"));
  m_compare->setPlaceholderText(tr("compare with model folder (optional)"));
  m_continue = new QSpinBox(this);
  m_continue->setRange(0, 4096);
  m_continue->setSpecialValueText(tr("continue: answer length"));
  m_continue->setPrefix(tr("continue "));
  for (QWidget* w : std::initializer_list<QWidget*>{m_answer, m_freeze, m_token, m_compare, m_continue})
    addOption(w);
  connect(document(), &SessionDocument::modelChanged, this, &SelectivityLab::suggestComparison);

  auto* results = new QSplitter(Qt::Vertical, this);
  m_summary = new QTableWidget(0, 6, results);
  m_summary->setObjectName(QStringLiteral("selectivitySummary"));
  m_summary->setHorizontalHeaderLabels({tr("variant"), tr("Δ, B, C"), tr("perplexity"), tr("accuracy"),
                                        tr("continuation"), tr("matches")});
  m_summary->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  m_summary->horizontalHeader()->setStretchLastSection(true);
  m_summary->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_summary->verticalHeader()->hide();
  m_strip = new QTableWidget(0, 0, results);
  m_strip->setObjectName(QStringLiteral("selectivityStrip"));
  m_strip->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_strip->horizontalHeader()->setDefaultSectionSize(44);
  results->addWidget(m_summary);
  results->addWidget(m_strip);
  setResults(results);
  m_logprobs = new LabMatrix({tr("log p(token | prefix) per variant"), tr("log p"), tr("token"), tr("variant")}, this);
  m_predicted = new LabMatrix({tr("argmax prediction per variant"), tr("token id"), tr("token"), tr("variant")}, this);
}

SelectivityLab::~SelectivityLab() = default;

// A demo folder "<task>-selective" suggests its "<task>-lti" sibling (and the other way round).
void SelectivityLab::suggestComparison() {
  const QString dir = document()->model().dir;
  const QFileInfo fi(dir);
  QString name = fi.fileName(), other;
  if (name.endsWith(QStringLiteral("-selective"))) other = name.left(name.size() - 10) + QStringLiteral("-lti");
  else if (name.endsWith(QStringLiteral("-lti"))) other = name.left(name.size() - 4) + QStringLiteral("-selective");
  const QString path = other.isEmpty() ? QString() : fi.dir().filePath(other);
  if (!path.isEmpty() && QFileInfo::exists(path + QStringLiteral("/config.json"))) m_compare->setText(path);
  else if (m_compare->text().contains(QStringLiteral("/models/demos/"))) m_compare->clear();
}

void SelectivityLab::start(const LabText& text) {
  const QString marker = m_answer->text();
  const ms::Freeze::Kind kind = m_freeze->currentIndex() == 0 ? ms::Freeze::Kind::MeanOverInput : ms::Freeze::Kind::AtToken;
  const int64_t token = m_token->value();
  const std::string compare = m_compare->text().trimmed().toStdString();
  const int nContinue = m_continue->value();
  auto other = m_other;
  runner()->start(tr("Selectivity"), [=, this](const EngineAccess& engine, const lab::Progress& progress) {
    auto shown = std::make_shared<Shown>();
    shown->ids = text.resolve(engine);
    const auto& ids = shown->ids;
    const int64_t L = int64_t(ids.size());
    if (L < 2) throw ms::Error("the text needs at least two tokens to be scored");
    const ms::Tokenizer& tok = engine.model->tokenizer();
    lab::SelectivityOptions o;
    o.prompt_len = L;
    o.score_from = 1;
    if (!marker.isEmpty()) {
      const std::vector<int32_t> m = tok.encode(marker.toStdString(), false);
      int64_t at = -1;
      for (int64_t i = L - int64_t(m.size()); i >= 0 && at < 0 && !m.empty(); --i)
        if (std::equal(m.begin(), m.end(), ids.begin() + i)) at = i;
      if (at < 0) throw ms::Error("the marker “" + marker.toStdString() + "” does not occur in the text's tokens");
      o.prompt_len = at + int64_t(m.size());
      if (o.prompt_len >= L) throw ms::Error("nothing follows the last “" + marker.toStdString() + "”: no answer to score");
      o.score_from = o.prompt_len;
    }
    o.n_continue = nContinue > 0 ? nContinue : int(L > o.prompt_len ? L - o.prompt_len : 16);
    if (kind == ms::Freeze::Kind::AtToken && token >= o.prompt_len)
      throw ms::Error("the freeze token " + std::to_string(token) + " is past the prompt's " +
                      std::to_string(o.prompt_len) + " tokens");
    const bool lti = engine.model->config().lti;
    std::vector<lab::Variant> variants = {{lti ? "as it is" : "selective", engine.backend.get(), ms::Freeze::Kind::None, 0, lti}};
    // Both backends freeze Δ, B, C, so the frozen run uses the app's backend too.
    if (!lti) variants.push_back({"frozen", engine.backend.get(), kind, token, false});
    if (!compare.empty()) {
      if (other->dir != compare) {
        other->backend.reset();
        other->model = ms::Model::load(compare);
        ms::BackendChoice choice;
        choice.name = engine.backend->name();
        other->backend = ms::make_backend(other->model->checkpoint(), choice);
        other->dir = compare;
      }
      if (other->model->config().vocab_size < engine.model->config().vocab_size)
        throw ms::Error("the comparison model has a smaller vocabulary: it cannot score the same tokens");
      variants.push_back({other->model->display_name(), other->backend.get(), ms::Freeze::Kind::None, 0,
                          other->model->config().lti});
    }
    shown->variants = lab::compare_selectivity(variants, ids, o, progress);
    shown->pieces = tokenPieces(*engine.model, ids);
    shown->promptLen = o.prompt_len;
    shown->scoreFrom = o.score_from;
    for (const auto& v : shown->variants) {
      shown->continuations << QString::fromUtf8(tok.decode(v.continuation));
      std::vector<int32_t> p(v.predicted.begin(), v.predicted.end());
      p[0] = ids[0];  // position 0 is not predicted
      shown->predicted << tokenPieces(*engine.model, p);
    }
    shown->expected = QString::fromUtf8(tok.decode(std::span(ids).subspan(size_t(o.prompt_len))));
    return LabRunner::Deliver([this, shown] { showResult(shown); });
  });
}

void SelectivityLab::showResult(std::shared_ptr<const Shown> r) {
  const int nv = int(r->variants.size()), L = int(r->ids.size());
  const int64_t answer = L - r->promptLen;
  m_summary->setRowCount(nv + (answer > 0 ? 1 : 0));
  for (int i = 0; i < nv; ++i) {
    const lab::VariantResult& v = r->variants[size_t(i)];
    const QStringList cells = {QString::fromStdString(v.name), QString::fromStdString(v.freeze_text),
                               QString::number(v.perplexity, 'g', 4),
                               QStringLiteral("%1 % of %2").arg(100 * v.accuracy, 0, 'f', 1).arg(v.scored),
                               r->continuations[i],
                               answer > 0 ? QStringLiteral("%1 / %2").arg(v.continuation_matches).arg(
                                                std::min<int64_t>(answer, int64_t(v.continuation.size())))
                                          : QStringLiteral("–")};
    for (int c = 0; c < cells.size(); ++c) m_summary->setItem(i, c, new QTableWidgetItem(cells[c]));
  }
  if (answer > 0) {
    m_summary->setItem(nv, 0, new QTableWidgetItem(tr("expected")));
    m_summary->setItem(nv, 4, new QTableWidgetItem(r->expected));
  }
  // Token strip: the text's scored tokens, then each variant's prediction for them.
  const int first = int(r->scoreFrom);
  const int cols = L - first;
  m_strip->clear();
  m_strip->setRowCount(nv + 1);
  m_strip->setColumnCount(cols);
  QStringList rowNames = {tr("text")};
  for (const auto& v : r->variants) rowNames << QString::fromStdString(v.name);
  m_strip->setVerticalHeaderLabels(rowNames);
  QStringList colNames;
  for (int t = first; t < L; ++t) colNames << QString::number(t);
  m_strip->setHorizontalHeaderLabels(colNames);
  const QColor right(0xb8, 0xe1, 0x86), wrong(0xf1, 0xb6, 0xda);
  for (int c = 0; c < cols; ++c) {
    const int t = first + c;
    m_strip->setItem(0, c, new QTableWidgetItem(r->pieces[t]));
    for (int i = 0; i < nv; ++i) {
      const lab::VariantResult& v = r->variants[size_t(i)];
      const int32_t p = v.predicted[size_t(t)];
      auto* item = new QTableWidgetItem(r->predicted[i][t]);
      item->setBackground(p == r->ids[size_t(t)] ? right : wrong);
      item->setToolTip(tr("%1 at token %2: predicted id %3, log p(actual) = %4")
                           .arg(QString::fromStdString(v.name))
                           .arg(t)
                           .arg(p)
                           .arg(double(v.logprob[size_t(t)]), 0, 'f', 3));
      m_strip->setItem(i + 1, c, item);
    }
  }
  std::vector<float> lp(size_t(L) * size_t(nv)), pred(size_t(L) * size_t(nv));
  QStringList names;
  for (int i = 0; i < nv; ++i) {
    names << QString::fromStdString(r->variants[size_t(i)].name);
    for (int t = 0; t < L; ++t) {
      lp[size_t(t) * size_t(nv) + size_t(i)] = t >= 1 ? r->variants[size_t(i)].logprob[size_t(t)] : NAN;
      pred[size_t(t) * size_t(nv) + size_t(i)] = float(r->variants[size_t(i)].predicted[size_t(t)]);
    }
  }
  m_logprobs->setData(L, nv, std::move(lp), r->pieces, names);
  m_predicted->setData(L, nv, std::move(pred), r->pieces, names);
  setStatus(tr("%1 tokens; prompt %2; scored from token %3.").arg(L).arg(r->promptLen).arg(r->scoreFrom));
  shown();
}
