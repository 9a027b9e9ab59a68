// The generation panel.
#include "window/chatpanel.h"

#include <QComboBox>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QScrollBar>
#include <QTextCursor>
#include <QTextEdit>
#include <QVBoxLayout>

#include "core/sessiondocument.h"
#include "window/samplingpanel.h"

namespace {
QTextCharFormat formatFor(const TokenRecord& t, bool forked) {
  QTextCharFormat f;
  if (forked) {
    f.setBackground(QColor(190, 235, 200));
    f.setForeground(QColor(0, 90, 40));
  } else if (t.isPrompt) {
    f.setForeground(QColor(100, 100, 100));
  } else {
    f.setForeground(QColor(20, 50, 140));
  }
  return f;
}
}  // namespace

ChatPanel::ChatPanel(SessionDocument* doc, QWidget* parent) : QWidget(parent), m_doc(doc) {
  m_mode = new QComboBox(this);
  m_mode->setObjectName(QStringLiteral("modeBox"));
  m_mode->addItems({tr("Completion"), tr("Chat")});
  m_transcript = new QTextEdit(this);
  m_transcript->setObjectName(QStringLiteral("transcript"));
  m_transcript->setReadOnly(true);
  m_transcript->setPlaceholderText(tr("The text appears here as it is generated."));
  m_prompt = new QPlainTextEdit(this);
  m_prompt->setObjectName(QStringLiteral("promptEdit"));
  m_prompt->setPlaceholderText(tr("Type a prompt (Ctrl+Enter to generate)"));
  m_prompt->setMaximumHeight(m_prompt->fontMetrics().height() * 5);
  m_prompt->installEventFilter(this);
  m_generate = new QPushButton(tr("Generate"), this);
  m_generate->setObjectName(QStringLiteral("generateButton"));
  m_generate->setDefault(true);
  m_continue = new QPushButton(tr("Continue"), this);
  m_continue->setObjectName(QStringLiteral("continueButton"));
  m_continue->setToolTip(tr("Append the prompt box (or nothing) to the current branch and generate more"));
  m_stop = new QPushButton(tr("Stop"), this);
  m_stop->setObjectName(QStringLiteral("stopButton"));
  m_sampling = new SamplingPanel(this);

  auto* top = new QHBoxLayout;
  top->addWidget(new QLabel(tr("Mode"), this));
  top->addWidget(m_mode);
  top->addStretch(1);
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(m_generate);
  buttons->addWidget(m_continue);
  buttons->addWidget(m_stop);
  auto* samplingBox = new QGroupBox(tr("Sampling"), this);
  auto* samplingLayout = new QVBoxLayout(samplingBox);
  samplingLayout->setContentsMargins(4, 4, 4, 4);
  samplingLayout->addWidget(m_sampling);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addLayout(top);
  layout->addWidget(m_transcript, 1);
  layout->addWidget(m_prompt);
  layout->addLayout(buttons);
  layout->addWidget(samplingBox);

  connect(m_generate, &QPushButton::clicked, this, &ChatPanel::generateRequested);
  connect(m_continue, &QPushButton::clicked, this, &ChatPanel::continueRequested);
  connect(m_stop, &QPushButton::clicked, this, &ChatPanel::stopRequested);
  connect(m_mode, &QComboBox::currentIndexChanged, this, [this] { updateButtons(); });
  connect(doc, &SessionDocument::currentBranchChanged, this, &ChatPanel::rebuildTranscript);
  connect(doc, &SessionDocument::branchReset, this, [this](int id) {
    if (id == m_doc->currentBranchId()) rebuildTranscript();
  });
  connect(doc, &SessionDocument::tokensAppended, this, &ChatPanel::appendTokens);
  updateButtons();
}

bool ChatPanel::isChatMode() const { return m_mode->currentIndex() == 1; }
void ChatPanel::setChatMode(bool chat) { m_mode->setCurrentIndex(chat ? 1 : 0); }
QString ChatPanel::prompt() const { return m_prompt->toPlainText(); }
void ChatPanel::setPrompt(const QString& text) { m_prompt->setPlainText(text); }
SamplingSettings ChatPanel::sampling() const { return m_sampling->settings(); }
void ChatPanel::setSampling(const SamplingSettings& s) { m_sampling->setSettings(s); }

void ChatPanel::setBusy(bool busy) {
  m_busy = busy;
  updateButtons();
}

void ChatPanel::setModelReady(bool ready) {
  m_ready = ready;
  updateButtons();
}

void ChatPanel::updateButtons() {
  m_generate->setText(isChatMode() ? tr("Send") : tr("Generate"));
  m_generate->setEnabled(m_ready && !m_busy);
  m_continue->setVisible(!isChatMode());
  m_continue->setEnabled(m_ready && !m_busy && m_doc->tokenCount() > 0);
  m_stop->setEnabled(m_busy);
}

void ChatPanel::rebuildTranscript() {
  m_transcript->clear();
  appendTokens(m_doc->currentBranchId(), 0, m_doc->tokenCount());
}

void ChatPanel::appendTokens(int branchId, int first, int count) {
  if (branchId != m_doc->currentBranchId()) return;
  const Branch* b = m_doc->branch(branchId);
  if (!b) return;
  QScrollBar* bar = m_transcript->verticalScrollBar();
  const bool atEnd = bar->value() >= bar->maximum() - 4;
  QTextCursor c(m_transcript->document());
  c.movePosition(QTextCursor::End);
  c.beginEditBlock();
  for (int i = first; i < first + count && i < b->tokens.size(); ++i)
    c.insertText(b->tokens[i].text, formatFor(b->tokens[i], i == b->forkPosition));
  c.endEditBlock();
  if (atEnd) bar->setValue(bar->maximum());
  updateButtons();
}

bool ChatPanel::eventFilter(QObject* watched, QEvent* event) {
  if (watched == m_prompt && event->type() == QEvent::KeyPress) {
    auto* k = static_cast<QKeyEvent*>(event);
    if ((k->key() == Qt::Key_Return || k->key() == Qt::Key_Enter) && (k->modifiers() & Qt::ControlModifier)) {
      if (m_generate->isEnabled()) m_generate->click();
      return true;
    }
  }
  return QWidget::eventFilter(watched, event);
}
