// The engine worker: loads models, runs generation jobs and copies every token event (and its
// probe frame) into Qt-side values before the engine's callback returns.
#include "core/engineworker.h"

#include <QElapsedTimer>
#include <algorithm>
#include <cmath>
#include <new>

#include "mambascope/backend.hpp"
#include "mambascope/error.hpp"
#include "mambascope/model.hpp"
#include "mambascope/session.hpp"

namespace ms = mambascope;

namespace {

constexpr qint64 kFlushMilliseconds = 30;  // at most ~33 batches a second reach the GUI
constexpr int kFlushTokens = 512;
constexpr double kEngineProbeBudget = 256.0 * 1024 * 1024;  // bytes the engine's ring may hold

QString gib(size_t bytes) { return QString::number(double(bytes) / (1024.0 * 1024 * 1024), 'f', 1); }

QString deviceLine(const ms::DeviceInfo& d) {
  if (d.kind == "cuda")
    return QStringLiteral("GPU: %1 · %2 GiB (%3 free)")
        .arg(QString::fromStdString(d.name), gib(d.memory_total), gib(d.memory_free));
  QString line = QStringLiteral("CPU: %1").arg(QString::fromStdString(d.name));
  if (d.threads > 0) line += QStringLiteral(" · %1 threads").arg(d.threads);
  return line;
}

float l2(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return float(std::sqrt(s));
}

float mean(const std::vector<float>& v) {
  if (v.empty()) return 0;
  double s = 0;
  for (float x : v) s += x;
  return float(s / double(v.size()));
}

std::shared_ptr<ProbeFrame> copyProbe(const ms::TokenProbe& probe) {
  auto frame = std::make_shared<ProbeFrame>();
  frame->layers.reserve(probe.layers.size());
  for (const ms::LayerProbe& p : probe.layers) {
    LayerFrame f;
    f.layer = p.layer;
    f.delta = p.delta;
    f.b = p.B;
    f.c = p.C;
    f.gate = p.gate;
    f.hNorm = p.h_norm;
    f.h = p.h;
    f.writeStrength = p.write_strength;
    f.readNorm = p.read_norm;
    f.meanDelta = mean(p.delta);
    f.normB = l2(p.B);
    f.meanGate = mean(p.gate);
    f.normH = l2(p.h_norm);  // sqrt(Σ_c ‖h_c‖²) = ‖h‖ over (d_inner, d_state)
    frame->layers.push_back(std::move(f));
  }
  return frame;
}

// The A matrices of every layer, A = -exp(A_log) {d_inner, d_state}.
std::shared_ptr<const std::vector<std::vector<float>>> decayRates(const ms::Model& model) {
  auto rates = std::make_shared<std::vector<std::vector<float>>>();
  const auto& cfg = model.config();
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    std::vector<float> a;
    const std::string name = "backbone.layers." + std::to_string(l) + ".mixer.A_log";
    if (const ms::TensorView* t = model.checkpoint().find(name)) {
      a.resize(size_t(t->numel()));  // A {d_inner, d_state}
      ms::convert_to_f32(t->dtype, t->data, a.data(), a.size());
      for (float& x : a) x = -std::exp(x);
    }
    rates->push_back(std::move(a));
  }
  return rates;
}

// Collects token events and hands them to the GUI in batches.
class Batcher {
 public:
  Batcher(EngineWorker* worker, int branchId, const ms::Tokenizer& tok)
      : m_worker(worker), m_branch(branchId), m_tok(tok) {
    m_clock.start();
  }
  void add(const ms::TokenEvent& ev) {
    TokenRecord r;
    r.position = ev.position;
    r.id = ev.id;
    r.text = QString::fromUtf8(ev.text.data(), qsizetype(ev.text.size()));
    r.isPrompt = ev.is_prompt;
    r.alternatives.reserve(qsizetype(ev.alternatives.size()));
    for (const ms::Alternative& a : ev.alternatives) {
      const std::string bytes = m_tok.token_bytes(a.id);
      r.alternatives.push_back({a.id, a.prob, QString::fromUtf8(bytes.data(), qsizetype(bytes.size()))});
    }
    if (ev.probe) r.probe = copyProbe(*ev.probe);
    m_pending.push_back(std::move(r));
    if (m_pending.size() >= kFlushTokens || m_clock.elapsed() >= kFlushMilliseconds) flush();
  }
  void flush() {
    if (!m_pending.isEmpty()) Q_EMIT m_worker->tokensReady(m_branch, m_pending);
    m_pending.clear();
    m_clock.restart();
  }

 private:
  EngineWorker* m_worker;
  int m_branch;
  const ms::Tokenizer& m_tok;
  QVector<TokenRecord> m_pending;
  QElapsedTimer m_clock;
};

GenerationSummary summarize(const ms::GenerateResult& r) {
  GenerationSummary s;
  s.stopReason = QString::fromLatin1(ms::stop_reason_name(r.reason));
  s.promptTokens = r.prompt_tokens;
  s.newTokens = r.new_tokens;
  s.prefillSeconds = r.prefill_seconds;
  s.decodeSeconds = r.decode_seconds;
  s.cancelled = r.reason == ms::StopReason::Cancelled;
  return s;
}

}  // namespace

EngineWorker::EngineWorker() = default;
EngineWorker::~EngineWorker() = default;

void EngineWorker::loadModel(const QString& dir, const QString& backend, int threads) {
  std::shared_ptr<ms::Model> model;
  try {
    model = ms::Model::load(dir.toStdString());
  } catch (const std::bad_alloc&) {
    Q_EMIT modelFailed(dir, tr("Not enough memory to open the model in %1.").arg(dir), false);
    return;
  } catch (const std::exception& e) {
    Q_EMIT modelFailed(dir, QString::fromUtf8(e.what()), false);
    return;
  }
  std::shared_ptr<ms::Backend> be;
  std::string note;
  try {
    ms::BackendChoice choice;
    choice.name = backend.toStdString();
    choice.threads = threads;
    be = ms::make_backend(model->checkpoint(), choice, &note);
  } catch (const std::bad_alloc&) {
    Q_EMIT modelFailed(dir, tr("Not enough memory for the model's weights on the %1 backend.").arg(backend),
                       backend != QLatin1String("cpu"));
    return;
  } catch (const std::exception& e) {
    Q_EMIT modelFailed(dir, QString::fromUtf8(e.what()), backend != QLatin1String("cpu"));
    return;
  }
  // Only now, with both in hand, replace what was loaded: a failure keeps the old model usable.
  m_sessions.clear();
  m_model = std::move(model);
  m_backend = std::move(be);

  const auto& cfg = m_model->config();
  ModelInfo info;
  info.name = QString::fromStdString(m_model->display_name());
  info.dir = dir;
  info.backend = QString::fromStdString(m_backend->name());
  info.device = deviceLine(m_backend->device());
  info.note = QString::fromStdString(note);
  info.tokenizer = QString::fromStdString(m_model->tokenizer().kind());
  info.nLayer = int(cfg.n_layer);
  info.dModel = int(cfg.d_model);
  info.dInner = int(cfg.d_inner);
  info.dState = int(cfg.d_state);
  info.vocab = cfg.vocab_size;
  info.parameters = m_model->checkpoint().parameter_count();
  info.lti = cfg.lti;
  info.chatTemplate = m_model->has_chat_template();
  info.a = decayRates(*m_model);
  for (const std::string& stop : m_model->stop_strings()) info.stopStrings << QString::fromStdString(stop);
  m_info = info;
  m_hLayer = std::clamp(m_hLayer, 0, std::max(0, info.nLayer - 1));
  warmUp();
  Q_EMIT modelLoaded(info);
}

// A backend's first call pays one-time costs (on a GPU: loading the kernels' modules, cuBLAS's
// handles, the decode step's graph, the probe copies' staging buffers) that the status bar would
// otherwise report as the first prompt's prefill rate. They are paid here, through the path a
// generation takes (probes on, a short prompt, two greedy tokens), on a scratch session. Its
// result is not reported: a failure meets the first real call again, which says so.
void EngineWorker::warmUp() {
  const ms::Tokenizer& tok = m_model->tokenizer();
  const int32_t bos = tok.bos_id() ? *tok.bos_id() : int32_t(m_model->config().bos_token_id);
  ms::Session scratch(m_model, m_backend);
  applyProbePolicy(scratch);
  ms::GenerateRequest req;
  req.prompt_ids.assign(4, bos);
  req.max_new_tokens = 2;
  req.sampling.temperature = 0.f;
  req.stop_at_eos = false;
  scratch.generate(req, {});
}

void EngineWorker::applyProbePolicy(ms::Session& session) const {
  ms::ProbePolicy policy;
  policy.enabled = true;
  policy.capture_h = true;
  policy.h_layers = {m_hLayer};
  // Bound the engine's own ring; the GUI keeps its copies under its own budget.
  policy.max_tokens = ms::probe_ring_tokens(m_info.nLayer, m_info.dInner, m_info.dState, 1, kEngineProbeBudget);
  session.probes() = ms::ProbeRecorder(policy);
}

ms::Session& EngineWorker::sessionFor(int branchId) {
  auto it = m_sessions.find(branchId);
  if (it == m_sessions.end()) {
    auto session = std::make_unique<ms::Session>(m_model, m_backend);
    applyProbePolicy(*session);
    it = m_sessions.emplace(branchId, std::move(session)).first;
  }
  return *it->second;
}

void EngineWorker::generateOn(int branchId, ms::Session& session, const GenerationJob& job,
                              const QString& prompt) {
  const SamplingSettings& s = job.sampling;
  ms::GenerateRequest req;
  req.prompt = prompt.toStdString();
  req.max_new_tokens = s.maxTokens;
  req.sampling.temperature = float(s.temperature);
  req.sampling.top_k = s.topK;
  req.sampling.top_p = float(s.topP);
  req.sampling.min_p = float(s.minP);
  req.sampling.repetition_penalty = float(s.repetitionPenalty);
  req.sampling.seed = s.seed;
  req.sampling.n_alternatives = s.alternatives;
  req.stop_at_eos = s.stopAtEos;
  if (job.kind == GenerationJob::Kind::Chat || job.chatStops) req.stop_strings = m_model->stop_strings();

  Batcher batch(this, branchId, m_model->tokenizer());
  const ms::GenerateResult result =
      session.generate(req, [&](const ms::TokenEvent& ev) { batch.add(ev); }, job.cancel.get());
  batch.flush();
  session.probes().clear();  // the GUI holds its copies now
  if (result.reason == ms::StopReason::Error)
    Q_EMIT failed(branchId, QString::fromStdString(result.error));
  else
    Q_EMIT finished(branchId, summarize(result));
}

void EngineWorker::run(const GenerationJob& job) {
  if (!m_model || !m_backend) {
    Q_EMIT failed(job.branchId, tr("No model is loaded."));
    return;
  }
  try {
    switch (job.kind) {
      case GenerationJob::Kind::Complete: {
        ms::Session& session = sessionFor(job.branchId);
        session.reset();
        generateOn(job.branchId, session, job, job.prompt);
        break;
      }
      case GenerationJob::Kind::Continue:
        generateOn(job.branchId, sessionFor(job.branchId), job, job.prompt);
        break;
      case GenerationJob::Kind::Chat: {
        ms::Session& session = sessionFor(job.branchId);
        std::vector<ms::ChatTurn> turns;
        for (const ChatMessage& m : job.turns) turns.push_back({m.role.toStdString(), m.content.toStdString()});
        const std::string formatted = m_model->format_chat(turns);
        // Feed only what the conversation adds to the history; if the history is not a prefix
        // of the new transcript (a fork, a stop string), start over from the whole transcript.
        const std::string consumed = m_model->tokenizer().decode(session.tokens());
        std::string prompt = formatted;
        if (!session.tokens().empty() && formatted.compare(0, consumed.size(), consumed) == 0)
          prompt = formatted.substr(consumed.size());
        else
          session.reset();
        generateOn(job.branchId, session, job, QString::fromStdString(prompt));
        break;
      }
      case GenerationJob::Kind::Fork: {
        auto parent = m_sessions.find(job.parentBranch);
        if (parent == m_sessions.end()) {
          Q_EMIT failed(job.branchId, tr("The branch to fork from is no longer available."));
          return;
        }
        std::unique_ptr<ms::Session> child = parent->second->fork(job.forkPosition);
        applyProbePolicy(*child);
        ms::Session& session = *child;
        m_sessions[job.branchId] = std::move(child);
        {
          Batcher batch(this, job.branchId, m_model->tokenizer());
          session.append({job.forkToken}, [&](const ms::TokenEvent& ev) { batch.add(ev); });
          batch.flush();
        }
        generateOn(job.branchId, session, job, QString());
        break;
      }
    }
  } catch (const std::bad_alloc&) {
    Q_EMIT failed(job.branchId, tr("Out of memory while generating. Try fewer tokens or the CPU backend."));
  } catch (const std::exception& e) {
    Q_EMIT failed(job.branchId, QString::fromUtf8(e.what()));
  }
}

void EngineWorker::restoreBranch(int branchId, const QVector<qint32>& ids) {
  if (!m_model) {  // every request ends in exactly one signal: the controller counts them
    Q_EMIT failed(branchId, tr("No model is loaded."));
    return;
  }
  try {
    auto session = std::make_unique<ms::Session>(m_model, m_backend);
    session->append(std::vector<int32_t>(ids.begin(), ids.end()));
    applyProbePolicy(*session);
    m_sessions[branchId] = std::move(session);
    Q_EMIT restored(branchId);
  } catch (const std::exception& e) {
    Q_EMIT failed(branchId, QString::fromUtf8(e.what()));
  }
}

void EngineWorker::dropBranches() { m_sessions.clear(); }

const ms::Session* EngineAccess::session(int branchId) const {
  if (!sessions) return nullptr;
  auto it = sessions->find(branchId);
  return it == sessions->end() ? nullptr : it->second.get();
}

void EngineWorker::runTask(const std::function<void(const EngineAccess&)>& task) {
  try {
    task(EngineAccess{m_model, m_backend, &m_sessions});
    Q_EMIT taskDone();
  } catch (const std::exception& e) {
    Q_EMIT failed(-1, QString::fromUtf8(e.what()));
  }
}

void EngineWorker::setHLayer(int layer) {
  m_hLayer = layer;
  for (auto& [id, session] : m_sessions) applyProbePolicy(*session);
}
