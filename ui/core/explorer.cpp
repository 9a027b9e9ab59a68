// User actions turned into engine jobs and document changes.
#include "core/explorer.h"

#include <QDir>
#include <QFileInfo>

#include "core/appsettings.h"
#include "core/enginecontroller.h"
#include "core/sessiondocument.h"

Explorer::Explorer(AppSettings* settings, QObject* parent)
    : QObject(parent), m_settings(settings), m_doc(new SessionDocument(this)), m_engine(new EngineController(this)) {
  m_doc->setProbeBudget(settings->probeDetailBudget(), settings->probeHBudget());
  connect(m_engine, &EngineController::modelLoaded, this, &Explorer::onModelLoaded);
  connect(m_engine, &EngineController::modelFailed, this, [this](const QString& dir, const QString& msg, bool cpu) {
    m_pendingSession.reset();
    Q_EMIT modelFailed(dir, msg, cpu);
  });
  connect(m_engine, &EngineController::tokensReady, this, &Explorer::onTokens);
  connect(m_engine, &EngineController::finished, this, [this](int branch, const GenerationSummary& s) {
    if (const Branch* b = m_doc->branch(branch); b && !b->chat.isEmpty()) m_doc->finishChatTurn(branch);
    if (s.decodeSeconds > 0) {
      m_rate = s.decodeTokensPerSecond();
      Q_EMIT rateChanged(m_rate);
    }
    Q_EMIT generationFinished(branch, s);
  });
  connect(m_engine, &EngineController::failed, this, &Explorer::generationFailed);
  connect(m_engine, &EngineController::busyChanged, this, &Explorer::busyChanged);
  connect(m_doc, &SessionDocument::layerChanged, m_engine, &EngineController::setHLayer);
}

Explorer::~Explorer() = default;

void Explorer::setProbeBudgets(qint64 detailBytes, qint64 hBytes) {
  m_settings->setProbeBudgets(detailBytes, hBytes);
  m_doc->setProbeBudget(detailBytes, hBytes);
}

bool Explorer::isBusy() const { return m_engine->isBusy(); }
bool Explorer::isLoading() const { return m_engine->isLoading(); }

void Explorer::loadModel(const QString& dir, const QString& backend) {
  const QString b = backend.isEmpty() ? m_settings->backend() : backend;
  if (dir.isEmpty() || !QFileInfo(dir).isDir()) {
    Q_EMIT modelFailed(dir, tr("“%1” is not a folder. Choose the folder that holds the model's config.json.").arg(dir), false);
    return;
  }
  Q_EMIT modelLoading(dir);
  m_engine->loadModel(QDir(dir).absolutePath(), b, m_settings->cpuThreads());
}

void Explorer::onModelLoaded(const ModelInfo& info) {
  m_doc->setModelInfo(info);
  m_settings->addRecentModel(info.dir);
  m_settings->setLastModel(info.dir);
  Q_EMIT modelReady(info);
  if (m_pendingSession) {
    const SessionData data = *m_pendingSession;
    m_pendingSession.reset();
    applySession(data);
  }
}

void Explorer::submit(GenerationJob job) {
  m_rateTokens = 0;
  m_rateClock.invalidate();
  Q_EMIT generationStarted(job.branchId);
  m_engine->submit(std::move(job));
}

void Explorer::generate(const QString& prompt, const SamplingSettings& s) {
  if (!m_doc->hasModel()) return;
  GenerationJob job;
  job.kind = GenerationJob::Kind::Complete;
  job.branchId = m_doc->createRoot();
  job.prompt = prompt;
  job.sampling = s;
  submit(std::move(job));
}

void Explorer::chat(const QString& message, const SamplingSettings& s) {
  if (!m_doc->hasModel()) return;
  int branch = m_doc->currentBranchId();
  const Branch* b = m_doc->branch(branch);
  if (!b || (!b->tokens.isEmpty() && b->chat.isEmpty())) branch = m_doc->createRoot();  // not a chat yet
  m_doc->beginChatTurn(branch, message);
  GenerationJob job;
  job.kind = GenerationJob::Kind::Chat;
  job.branchId = branch;
  job.turns = m_doc->chatTurns(branch);
  job.sampling = s;
  submit(std::move(job));
}

void Explorer::continueBranch(const QString& text, const SamplingSettings& s) {
  if (!m_doc->hasModel()) return;
  const int branch = m_doc->currentBranchId();
  if (branch < 0) return generate(text, s);
  GenerationJob job;
  job.kind = GenerationJob::Kind::Continue;
  job.branchId = branch;
  job.prompt = text;
  job.sampling = s;
  job.chatStops = !m_doc->branch(branch)->chat.isEmpty();
  submit(std::move(job));
}

void Explorer::fork(qint64 position, qint32 tokenId, const SamplingSettings& s) {
  const int parent = m_doc->currentBranchId();
  if (!m_doc->branch(parent)) return;
  m_engine->stop();  // a fork replaces whatever is being generated; the queue keeps the order
  GenerationJob job;
  job.kind = GenerationJob::Kind::Fork;
  job.parentBranch = parent;
  job.forkPosition = position;
  job.forkToken = tokenId;
  job.branchId = m_doc->createFork(parent, position, tokenId);
  if (job.branchId < 0) return;
  job.sampling = s;
  job.chatStops = !m_doc->branch(job.branchId)->chat.isEmpty();
  submit(std::move(job));
}

void Explorer::stop() { m_engine->stop(); }

void Explorer::newSession() {
  m_engine->stop();
  m_engine->dropBranches();
  m_doc->clear();
}

void Explorer::onTokens(int branchId, const QVector<TokenRecord>& batch) {
  m_doc->appendTokens(branchId, batch);
  int generated = 0;
  for (const TokenRecord& t : batch) generated += t.isPrompt ? 0 : 1;
  if (generated == 0) return;
  if (!m_rateClock.isValid()) {  // the first generated token starts the clock
    m_rateClock.start();
    m_rateTokens = 0;
    return;
  }
  m_rateTokens += generated;
  const double seconds = double(m_rateClock.nsecsElapsed()) * 1e-9;
  if (seconds > 0.25) {
    m_rate = m_rateTokens / seconds;
    Q_EMIT rateChanged(m_rate);
  }
}

bool Explorer::saveSession(const QString& path, SessionData data, QString* error) {
  const SessionData captured = sessionfile::capture(*m_doc);
  data.modelDir = captured.modelDir;
  data.modelName = captured.modelName;
  data.branches = captured.branches;
  data.currentBranch = captured.currentBranch;
  data.selected = captured.selected;
  data.layer = captured.layer;
  data.tracked = captured.tracked;
  return sessionfile::save(path, data, m_doc->model(), error);
}

bool Explorer::openSession(const QString& path, QString* error) {
  SessionData data;
  if (!sessionfile::load(path, data, error)) return false;
  const bool sameModel = m_doc->hasModel() && QDir(m_doc->model().dir) == QDir(data.modelDir);
  if (sameModel) {
    applySession(data);
    return true;
  }
  if (!QFileInfo(data.modelDir).isDir()) {
    if (error) *error = tr("The session was made with the model in %1, which is not there any more.").arg(data.modelDir);
    return false;
  }
  m_pendingSession = data;
  loadModel(data.modelDir);
  return true;
}

void Explorer::applySession(const SessionData& data) {
  m_engine->stop();
  m_engine->dropBranches();
  m_doc->installBranches(data.branches, data.currentBranch);
  m_doc->setLayer(data.layer);
  m_doc->selectPosition(data.selected);
  m_doc->setTrackedPosition(data.tracked);
  // The engine rebuilds each branch's state from its ids, so that Continue and fork work.
  for (const Branch& b : data.branches) {
    QVector<qint32> ids;
    ids.reserve(b.tokens.size());
    for (const TokenRecord& t : b.tokens) ids.push_back(t.id);
    m_engine->restoreBranch(b.id, ids);
  }
  Q_EMIT sessionOpened(data);
}
