// The Modes Lab's view frame (labview.h).
#include "lab/labview.h"

#include <QComboBox>
#include <QCoreApplication>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QScrollBar>
#include <QVBoxLayout>

#include "core/engineworker.h"
#include "core/sessiondocument.h"
#include "lab/labrunner.h"
#include "mambascope/error.hpp"
#include "mambascope/lab.hpp"
#include "mambascope/model.hpp"

std::vector<int32_t> LabText::resolve(const EngineAccess& engine) const {
  if (!ids.empty()) return ids;
  if (text.isEmpty()) throw mambascope::Error("there is no text: generate some, or type a text into the lab");
  std::vector<int32_t> out = engine.model->tokenizer().encode(text.toStdString());
  const int64_t vocab = engine.model->config().vocab_size;
  for (int32_t id : out)
    if (id < 0 || id >= vocab) throw mambascope::Error("the tokenizer made a token outside this model's vocabulary");
  if (out.empty()) throw mambascope::Error("the text has no tokens");
  return out;
}

QStringList tokenPieces(const mambascope::Model& model, const std::vector<int32_t>& ids) {
  QStringList out;
  out.reserve(qsizetype(ids.size()));
  for (int32_t id : ids) out << QString::fromUtf8(model.tokenizer().token_bytes(id));
  return out;
}

QString qBytes(double bytes) { return QString::fromStdString(mambascope::lab::format_bytes(bytes)); }
QString qSeconds(double seconds) { return QString::fromStdString(mambascope::lab::format_seconds(seconds)); }

LabView::LabView(const QString& viewId, const QString& title, const LabContext& context, QWidget* parent)
    : ViewPanel(viewId, title, parent), m_context(context) {
  m_runner = new LabRunner(context.engine, this);
  auto* frame = new QWidget(this);
  m_layout = new QVBoxLayout(frame);
  m_layout->setContentsMargins(0, 0, 0, 0);
  auto* row = new QHBoxLayout;
  m_source = new QComboBox(frame);
  m_source->setObjectName(QStringLiteral("labSource"));
  m_source->addItem(tr("Current branch"));
  m_source->addItem(tr("This text:"));
  m_text = new QLineEdit(frame);
  m_text->setMinimumWidth(80);
  m_text->setObjectName(QStringLiteral("labText"));
  m_text->setPlaceholderText(tr("text to run (used when the source is “This text”)"));
  m_text->setEnabled(false);
  connect(m_source, &QComboBox::currentIndexChanged, this, [this](int i) { m_text->setEnabled(i == 1); });
  row->addWidget(m_source);
  row->addWidget(m_text, 1);
  m_layout->addLayout(row);

  auto* row2 = new QHBoxLayout;
  // The options scroll sideways rather than widen the dock (and with it the whole window).
  auto* optionsBox = new QWidget;
  m_options = new QHBoxLayout(optionsBox);
  m_options->setContentsMargins(0, 0, 0, 0);
  m_options->addStretch(1);
  auto* scroll = new QScrollArea(frame);
  scroll->setWidget(optionsBox);
  scroll->setWidgetResizable(true);
  scroll->setFrameShape(QFrame::NoFrame);
  scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAsNeeded);
  scroll->setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  scroll->setMinimumWidth(120);
  m_optionsScroll = scroll;
  row2->addWidget(scroll, 1);
  m_run = new QPushButton(tr("Run"), frame);
  m_run->setObjectName(QStringLiteral("labRun"));
  m_cancel = new QPushButton(tr("Cancel"), frame);
  m_cancel->setObjectName(QStringLiteral("labCancel"));
  m_cancel->setEnabled(false);
  m_progress = new QProgressBar(frame);
  m_progress->setRange(0, 1000);
  m_progress->setTextVisible(false);
  m_progress->setMaximumWidth(160);
  row2->addWidget(m_progress);
  row2->addWidget(m_run);
  row2->addWidget(m_cancel);
  m_layout->addLayout(row2);
  m_status = new QLabel(frame);
  m_status->setObjectName(QStringLiteral("labStatus"));
  m_status->setWordWrap(true);
  m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);
  m_layout->addWidget(m_status);
  setBody(frame);

  connect(m_run, &QPushButton::clicked, this, [this] { run(); });
  connect(m_cancel, &QPushButton::clicked, m_runner, &LabRunner::cancel);
  connect(m_runner, &LabRunner::runningChanged, this, [this](bool running) {
    m_run->setEnabled(!running);
    m_cancel->setEnabled(running);
    if (!running) m_progress->setValue(m_progress->maximum());
  });
  connect(m_runner, &LabRunner::progressed, this, [this](double f, const QString& what) {
    m_progress->setValue(int(f * 1000));
    setStatus(what + QStringLiteral(" …"));
  });
  connect(m_runner, &LabRunner::failed, this, [this](const QString& m) { setStatus(m, true); });
  connect(m_runner, &LabRunner::cancelled, this, [this] { setStatus(tr("Cancelled.")); });
  // Quitting cancels: the engine thread is waited for on exit.
  connect(QCoreApplication::instance(), &QCoreApplication::aboutToQuit, m_runner, &LabRunner::cancel);
}

void LabView::addOption(QWidget* w) {
  m_options->insertWidget(m_options->count() - 1, w);  // before the stretch
  const int h = w->sizeHint().height() + m_optionsScroll->horizontalScrollBar()->sizeHint().height() + 4;
  if (h > m_optionsScroll->height() || m_optionsScroll->maximumHeight() > 10000) m_optionsScroll->setFixedHeight(h);
}

void LabView::setResults(QWidget* results) {
  m_results = results;
  m_layout->addWidget(results, 1);
}

void LabView::setStatus(const QString& text, bool error) {
  m_status->setStyleSheet(error ? QStringLiteral("color: #b2182b;") : QString());
  m_status->setText(text);
}

QString LabView::statusText() const { return m_status->text(); }

void LabView::shown() { Q_EMIT resultShown(); }

void LabView::setTextSourceVisible(bool visible) {
  m_needsText = visible;
  m_source->setVisible(visible);
  m_text->setVisible(visible);
}

void LabView::setCustomText(const QString& text) {
  m_text->setText(text);
  m_source->setCurrentIndex(1);
}

bool LabView::run() {
  if (m_runner->isRunning()) return false;
  if (!document()->hasModel()) {
    setStatus(tr("Load a model first."), true);
    return false;
  }
  LabText t;
  if (!m_needsText) {
    // the lab makes its own inputs
  } else if (m_source->currentIndex() == 0) {
    for (const TokenRecord& r : document()->tokens()) t.ids.push_back(r.id);
    if (t.ids.empty()) {
      setStatus(tr("The current branch is empty: generate some text, or choose “This text”."), true);
      return false;
    }
  } else {
    t.text = m_text->text();
  }
  start(t);
  return m_runner->isRunning();
}
