// The only object in the app that touches the engine. It lives on its own QThread (see
// EngineController): requests arrive as queued calls, results leave as signals carrying Qt-side
// copies (TokenRecord), batched so that a 2,000-token prompt does not flood the event loop.
// One engine Session per branch; a fork copies the parent's state (Session::fork).
#pragma once
#include <QObject>
#include <QString>
#include <QVector>
#include <functional>
#include <map>
#include <memory>

#include "core/generationjob.h"
#include "core/tokendata.h"

namespace mambascope {
class Model;
class Backend;
class Session;
}  // namespace mambascope

// What a task queued with EngineController::runTask may use, on the engine thread only (labs
// run their computations this way, so that widgets still never call the engine).
struct EngineAccess {
  std::shared_ptr<const mambascope::Model> model;   // null before a model is loaded
  std::shared_ptr<mambascope::Backend> backend;
  const std::map<int, std::unique_ptr<mambascope::Session>>* sessions = nullptr;  // by branch
  const mambascope::Session* session(int branchId) const;
};

class EngineWorker : public QObject {
  Q_OBJECT

 public:
  EngineWorker();
  ~EngineWorker() override;

  // Run on the worker thread (EngineController queues them).
  void loadModel(const QString& dir, const QString& backend, int threads);
  void run(const GenerationJob& job);
  // Rebuilds a branch's state by feeding `ids` (a reopened session): no sampling, no probes.
  void restoreBranch(int branchId, const QVector<qint32>& ids);
  void dropBranches();
  void setHLayer(int layer);  // which layer keeps its full hidden state h
  // Runs a task on this thread; an exception it throws becomes failed(-1, message).
  void runTask(const std::function<void(const EngineAccess&)>& task);

 Q_SIGNALS:
  void modelLoaded(const ModelInfo& info);
  // offerCpu: the model may fit on the CPU (the GPU ran out of memory or failed).
  void modelFailed(const QString& dir, const QString& message, bool offerCpu);
  void tokensReady(int branchId, const QVector<TokenRecord>& batch);
  void finished(int branchId, const GenerationSummary& summary);
  void failed(int branchId, const QString& message);
  void restored(int branchId);
  void taskDone();

 private:
  mambascope::Session& sessionFor(int branchId);
  void generateOn(int branchId, mambascope::Session& session, const GenerationJob& job,
                  const QString& prompt);
  void applyProbePolicy(mambascope::Session& session) const;
  void warmUp();

  std::shared_ptr<mambascope::Model> m_model;
  std::shared_ptr<mambascope::Backend> m_backend;
  std::map<int, std::unique_ptr<mambascope::Session>> m_sessions;
  ModelInfo m_info;
  int m_hLayer = 0;
};
