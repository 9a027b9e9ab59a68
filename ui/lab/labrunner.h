// Runs one Modes Lab computation at a time on the engine thread (EngineController::runTask) and
// brings its result back to the GUI thread. The task gets a lab::Progress whose reports arrive
// here as progressed() (at most ~20 per second) and whose cancel flag Cancel sets; it returns the
// function that shows its result, which runs on the GUI thread. Errors and cancellation come back
// as failed() / cancelled(), never as the engine worker's failure signal.
#pragma once
#include <QObject>
#include <QString>
#include <atomic>
#include <functional>
#include <memory>

#include "mambascope/lab.hpp"

class EngineController;
struct EngineAccess;

class LabRunner : public QObject {
  Q_OBJECT

 public:
  using Deliver = std::function<void()>;
  using Task = std::function<Deliver(const EngineAccess&, const mambascope::lab::Progress&)>;

  explicit LabRunner(EngineController* engine, QObject* parent = nullptr);

  // False (and nothing queued) while a task of this runner is still running.
  bool start(const QString& what, Task task);
  void cancel();
  bool isRunning() const { return m_running; }
  // From a task: runs fn on the GUI thread (live results, e.g. one sweep point).
  void post(std::function<void()> fn);

 Q_SIGNALS:
  void started(const QString& what);
  void progressed(double fraction, const QString& what);
  void finished();  // the result was shown
  void failed(const QString& message);
  void cancelled();
  void runningChanged(bool running);

 private:
  void end();

  EngineController* m_engine;
  bool m_running = false;
  std::shared_ptr<std::atomic<bool>> m_cancel;
};
