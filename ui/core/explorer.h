// What the user can do with a model, independent of any widget: load it, generate, chat,
// continue, fork from an alternative, stop, save and reopen the session. It turns those into
// engine jobs (EngineController) and engine results into document changes (SessionDocument),
// and reports progress and failures by signals for the window to show.
#pragma once
#include <QElapsedTimer>
#include <QObject>
#include <optional>

#include "core/generationjob.h"
#include "core/sessionfile.h"
#include "core/tokendata.h"

class AppSettings;
class EngineController;
class SessionDocument;

class Explorer : public QObject {
  Q_OBJECT

 public:
  Explorer(AppSettings* settings, QObject* parent = nullptr);
  ~Explorer() override;

  SessionDocument* document() const { return m_doc; }
  EngineController* engine() const { return m_engine; }
  bool isBusy() const;
  bool isLoading() const;

  // Checks the folder exists, then loads it on the worker. backend empty: the setting.
  void loadModel(const QString& dir, const QString& backend = QString());
  void generate(const QString& prompt, const SamplingSettings& s);   // a new run
  void chat(const QString& message, const SamplingSettings& s);      // the next turn
  void continueBranch(const QString& text, const SamplingSettings& s);
  // Replaces the current branch's token at `position` by `tokenId` in a new branch and goes on.
  void fork(qint64 position, qint32 tokenId, const SamplingSettings& s);
  void stop();
  void newSession();  // forgets every branch (and its memory)

  bool saveSession(const QString& path, SessionData data, QString* error);
  // Loads the session's model first if another one is loaded; sessionOpened follows.
  bool openSession(const QString& path, QString* error);

  double tokensPerSecond() const { return m_rate; }

  // Bounds of the probe copies the document keeps; applied at once and remembered.
  void setProbeBudgets(qint64 detailBytes, qint64 hBytes);

 Q_SIGNALS:
  void modelLoading(const QString& dir);
  void modelReady(const ModelInfo& info);
  void modelFailed(const QString& dir, const QString& message, bool offerCpu);
  void generationStarted(int branchId);
  void generationFinished(int branchId, const GenerationSummary& summary);
  void generationFailed(int branchId, const QString& message);
  void busyChanged(bool busy);
  void rateChanged(double tokensPerSecond);
  void sessionOpened(const SessionData& data);  // prompt, mode and sampling for the window

 private:
  void submit(GenerationJob job);
  void onTokens(int branchId, const QVector<TokenRecord>& batch);
  void onModelLoaded(const ModelInfo& info);
  void applySession(const SessionData& data);

  AppSettings* m_settings;
  SessionDocument* m_doc;
  EngineController* m_engine;
  std::optional<SessionData> m_pendingSession;
  QElapsedTimer m_rateClock;  // since the first generated token of the running job
  int m_rateTokens = 0;
  double m_rate = 0;
};
