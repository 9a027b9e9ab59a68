// Thread plumbing between the GUI and the engine worker.
#include "core/enginecontroller.h"

#include "core/engineworker.h"

EngineController::EngineController(QObject* parent) : QObject(parent) {
  qRegisterMetaType<TokenRecord>();
  qRegisterMetaType<QVector<TokenRecord>>();
  qRegisterMetaType<ModelInfo>();
  qRegisterMetaType<GenerationSummary>();

  m_thread.setObjectName(QStringLiteral("engine"));
  m_worker = new EngineWorker;
  m_worker->moveToThread(&m_thread);
  connect(&m_thread, &QThread::finished, m_worker, &QObject::deleteLater);

  connect(m_worker, &EngineWorker::modelLoaded, this, [this](const ModelInfo& info) {
    m_loading = false;
    Q_EMIT modelLoaded(info);
  });
  connect(m_worker, &EngineWorker::modelFailed, this,
          [this](const QString& dir, const QString& message, bool offerCpu) {
            m_loading = false;
            Q_EMIT modelFailed(dir, message, offerCpu);
          });
  connect(m_worker, &EngineWorker::tokensReady, this, &EngineController::tokensReady);
  connect(m_worker, &EngineWorker::finished, this, [this](int branch, const GenerationSummary& s) {
    jobEnded();
    Q_EMIT finished(branch, s);
  });
  connect(m_worker, &EngineWorker::failed, this, [this](int branch, const QString& message) {
    jobEnded();
    Q_EMIT failed(branch, message);
  });
  connect(m_worker, &EngineWorker::taskDone, this, &EngineController::jobEnded);
  connect(m_worker, &EngineWorker::restored, this, [this](int branch) {
    jobEnded();
    Q_EMIT restored(branch);
  });
  m_thread.start();
}

EngineController::~EngineController() {
  stop();
  m_thread.quit();
  m_thread.wait();
}

void EngineController::loadModel(const QString& dir, const QString& backend, int threads) {
  stop();
  m_loading = true;
  QMetaObject::invokeMethod(m_worker, [w = m_worker, dir, backend, threads] {
    w->loadModel(dir, backend, threads);
  }, Qt::QueuedConnection);
}

void EngineController::submit(GenerationJob job) {
  job.cancel = std::make_shared<std::atomic<bool>>(false);
  std::erase_if(m_cancels, [](const auto& w) { return w.expired(); });
  m_cancels.push_back(job.cancel);
  if (m_pending++ == 0) Q_EMIT busyChanged(true);
  QMetaObject::invokeMethod(m_worker, [w = m_worker, job] { w->run(job); }, Qt::QueuedConnection);
}

void EngineController::restoreBranch(int branchId, const QVector<qint32>& ids) {
  if (m_pending++ == 0) Q_EMIT busyChanged(true);
  QMetaObject::invokeMethod(m_worker, [w = m_worker, branchId, ids] { w->restoreBranch(branchId, ids); },
                            Qt::QueuedConnection);
}

void EngineController::dropBranches() {
  QMetaObject::invokeMethod(m_worker, [w = m_worker] { w->dropBranches(); }, Qt::QueuedConnection);
}

void EngineController::setHLayer(int layer) {
  QMetaObject::invokeMethod(m_worker, [w = m_worker, layer] { w->setHLayer(layer); }, Qt::QueuedConnection);
}

void EngineController::runTask(std::function<void(const EngineAccess&)> task) {
  if (m_pending++ == 0) Q_EMIT busyChanged(true);
  QMetaObject::invokeMethod(m_worker, [w = m_worker, task = std::move(task)] { w->runTask(task); },
                            Qt::QueuedConnection);
}

void EngineController::stop() {
  for (const auto& w : m_cancels)
    if (auto flag = w.lock()) flag->store(true);
}

void EngineController::jobEnded() {
  if (m_pending > 0 && --m_pending == 0) Q_EMIT busyChanged(false);
}
