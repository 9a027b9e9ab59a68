// What the GUI asks the engine worker to do, and what it gets back when a generation ends.
// Plain values: they are copied into the worker thread's event queue.
#pragma once
#include <QMetaType>
#include <QString>
#include <QVector>
#include <atomic>
#include <memory>

struct SamplingSettings {
  double temperature = 0.8;
  int topK = 40;
  double topP = 0.95;
  double minP = 0.0;
  double repetitionPenalty = 1.0;
  quint64 seed = 0;
  int maxTokens = 128;
  bool stopAtEos = true;
  int alternatives = 5;  // top-k alternatives reported per generated token
};

struct ChatMessage {
  QString role;  // "user" or "assistant"
  QString content;
};

struct GenerationJob {
  enum class Kind {
    Complete,  // a fresh history: the prompt, then generation
    Continue,  // append the prompt (may be empty) to the branch and generate further
    Chat,      // the conversation `turns`, formatted by the model's template, then generation
    Fork,      // branch `branchId` = `parentBranch`'s first `forkPosition` tokens + `forkToken`
  };
  Kind kind = Kind::Complete;
  int branchId = 0;
  int parentBranch = -1;
  qint64 forkPosition = 0;
  qint32 forkToken = 0;
  QString prompt;
  QVector<ChatMessage> turns;
  bool chatStops = false;  // stop at the model's chat stop strings (chat turns and their forks)
  SamplingSettings sampling;
  // Set by Stop from the GUI thread; the engine checks it every token.
  std::shared_ptr<std::atomic<bool>> cancel;
};

struct GenerationSummary {
  QString stopReason;  // "max-tokens", "eos", "stop-string", "cancelled", ...
  int promptTokens = 0;
  int newTokens = 0;
  double prefillSeconds = 0;
  double decodeSeconds = 0;
  bool cancelled = false;

  double decodeTokensPerSecond() const { return decodeSeconds > 0 ? newTokens / decodeSeconds : 0; }
  double prefillTokensPerSecond() const {
    return prefillSeconds > 0 ? promptTokens / prefillSeconds : 0;
  }
};

Q_DECLARE_METATYPE(GenerationSummary)
