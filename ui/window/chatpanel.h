// Generation panel: plain completion or chat turns, the prompt box, Generate / Continue / Stop,
// the sampling controls, and the text of the current branch streaming in (what was given in
// grey, what the model wrote in dark blue, a forked token in green).
#pragma once
#include <QWidget>

#include "core/generationjob.h"

class QComboBox;
class QPlainTextEdit;
class QPushButton;
class QTextEdit;
class SamplingPanel;
class SessionDocument;

class ChatPanel : public QWidget {
  Q_OBJECT

 public:
  explicit ChatPanel(SessionDocument* doc, QWidget* parent = nullptr);

  bool isChatMode() const;
  void setChatMode(bool chat);
  QString prompt() const;
  void setPrompt(const QString& text);
  SamplingSettings sampling() const;
  void setSampling(const SamplingSettings& s);
  void setBusy(bool busy);
  void setModelReady(bool ready);

  QPushButton* generateButton() const { return m_generate; }
  QPushButton* continueButton() const { return m_continue; }
  QPushButton* stopButton() const { return m_stop; }
  QTextEdit* transcript() const { return m_transcript; }
  QPlainTextEdit* promptEdit() const { return m_prompt; }

 Q_SIGNALS:
  void generateRequested();  // completion: a new run from the prompt; chat: send the message
  void continueRequested();  // completion: append the prompt box (may be empty) and go on
  void stopRequested();

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  void rebuildTranscript();
  void appendTokens(int branchId, int first, int count);
  void updateButtons();

  SessionDocument* m_doc;
  QComboBox* m_mode;
  QTextEdit* m_transcript;
  QPlainTextEdit* m_prompt;
  QPushButton* m_generate;
  QPushButton* m_continue;
  QPushButton* m_stop;
  SamplingPanel* m_sampling;
  bool m_busy = false;
  bool m_ready = false;
};
