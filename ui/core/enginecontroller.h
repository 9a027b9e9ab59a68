// The GUI thread's handle on the engine worker: owns the worker thread, queues requests to it
// and relays its signals. Stop flips the cancel flag of every job still queued or running, so
// it takes effect within one token without waiting for the worker's event loop.
#pragma once
#include <QObject>
#include <QThread>
#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "core/generationjob.h"
#include "core/tokendata.h"

class EngineWorker;
struct EngineAccess;

class EngineController : public QObject {
  Q_OBJECT

 public:
  explicit EngineController(QObject* parent = nullptr);
  ~EngineController() override;

  void loadModel(const QString& dir, const QString& backend, int threads = 0);
  void submit(GenerationJob job);  // fills job.cancel
  void restoreBranch(int branchId, const QVector<qint32>& ids);
  void dropBranches();
  void setHLayer(int layer);
  // Queues `task` to run on the engine thread after the jobs before it. It gets the model, the
  // backend and the branches' sessions; it hands results back to the GUI thread itself (e.g.
  // QMetaObject::invokeMethod(receiver, ..., Qt::QueuedConnection)).
  void runTask(std::function<void(const EngineAccess&)> task);
  void stop();

  bool isBusy() const { return m_pending > 0; }
  bool isLoading() const { return m_loading; }

 Q_SIGNALS:
  void modelLoaded(const ModelInfo& info);
  void modelFailed(const QString& dir, const QString& message, bool offerCpu);
  void tokensReady(int branchId, const QVector<TokenRecord>& batch);
  void finished(int branchId, const GenerationSummary& summary);
  void failed(int branchId, const QString& message);
  void restored(int branchId);
  void busyChanged(bool busy);

 private:
  void jobEnded();

  QThread m_thread;
  EngineWorker* m_worker = nullptr;  // lives on m_thread, deleted when it finishes
  std::vector<std::weak_ptr<std::atomic<bool>>> m_cancels;
  int m_pending = 0;
  bool m_loading = false;
};
