// Session files: JSON plus .npy probes.
#include "core/sessionfile.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>
#include <cmath>
#include <limits>
#include <map>

#include "mambascope/error.hpp"
#include "mambascope/npy.hpp"

namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int kSummaryFields = 6;
const QString kFormat = QStringLiteral("mambascope-session");

QString tr(const char* s) { return QObject::tr(s); }

bool fail(QString* error, const QString& message) {
  if (error) *error = message;
  return false;
}

QJsonObject samplingJson(const SamplingSettings& s) {
  return {{"temperature", s.temperature}, {"top_k", s.topK}, {"top_p", s.topP}, {"min_p", s.minP},
          {"repetition_penalty", s.repetitionPenalty}, {"seed", QString::number(s.seed)},
          {"max_tokens", s.maxTokens}, {"stop_at_eos", s.stopAtEos}};
}

SamplingSettings samplingFrom(const QJsonObject& o) {
  SamplingSettings s;
  s.temperature = o.value("temperature").toDouble(s.temperature);
  s.topK = o.value("top_k").toInt(s.topK);
  s.topP = o.value("top_p").toDouble(s.topP);
  s.minP = o.value("min_p").toDouble(s.minP);
  s.repetitionPenalty = o.value("repetition_penalty").toDouble(s.repetitionPenalty);
  s.seed = o.value("seed").toString().toULongLong();
  s.maxTokens = o.value("max_tokens").toInt(s.maxTokens);
  s.stopAtEos = o.value("stop_at_eos").toBool(s.stopAtEos);
  return s;
}

qint64 ownStart(const Branch& b) { return b.parent < 0 ? 0 : std::max<qint64>(0, b.forkPosition); }

std::string npyPath(const QString& dir, int branch, const char* field) {
  return QDir(dir).filePath(QStringLiteral("b%1_%2.npy").arg(branch).arg(QLatin1String(field))).toStdString();
}

// Copies one per-layer vector field of tokens [first, end) into {tokens, n_layer, width}.
template <typename Get>
std::vector<float> gather(const Branch& b, qint64 first, qint64 end, int nLayer, int width, Get get) {
  std::vector<float> out(size_t(end - first) * size_t(nLayer) * size_t(width), kNaN);
  for (qint64 i = first; i < end; ++i) {
    const auto& probe = b.tokens[i].probe;
    if (!probe) continue;
    for (const LayerFrame& f : probe->layers) {
      const std::vector<float>& v = get(f);
      if (f.layer < 0 || f.layer >= nLayer || int(v.size()) != width) continue;
      std::copy(v.begin(), v.end(), out.begin() + ((i - first) * nLayer + f.layer) * width);
    }
  }
  return out;
}

bool hasDetails(const TokenRecord& t) {
  if (!t.probe) return false;
  for (const LayerFrame& f : t.probe->layers)
    if (!f.delta.empty()) return true;
  return false;
}

const LayerFrame* hFrame(const TokenRecord& t, int layer) {
  const LayerFrame* f = t.probe ? t.probe->layer(layer) : nullptr;
  return f && !f->h.empty() ? f : nullptr;
}

void saveProbes(const QString& dir, const Branch& b, const ModelInfo& m, QJsonObject& meta) {
  const qint64 start = ownStart(b), end = b.tokens.size();
  if (end <= start) return;
  std::vector<float> summary(size_t(end - start) * size_t(m.nLayer) * kSummaryFields, kNaN);
  for (qint64 i = start; i < end; ++i)
    if (const auto& probe = b.tokens[i].probe)
      for (const LayerFrame& f : probe->layers) {
        if (f.layer < 0 || f.layer >= m.nLayer) continue;
        float* s = summary.data() + ((i - start) * m.nLayer + f.layer) * kSummaryFields;
        s[0] = f.meanDelta, s[1] = f.normB, s[2] = f.readNorm, s[3] = f.meanGate, s[4] = f.normH, s[5] = f.writeStrength;
      }
  mambascope::write_npy(npyPath(dir, b.id, "summary"), summary, {end - start, m.nLayer, kSummaryFields});

  qint64 first = end;  // details: the newest run of tokens that still has them
  while (first > start && hasDetails(b.tokens[first - 1])) --first;
  meta["detail_first"] = first;
  if (first < end) {
    const std::vector<int64_t> wide{end - first, m.nLayer, m.dInner}, narrow{end - first, m.nLayer, m.dState};
    mambascope::write_npy(npyPath(dir, b.id, "delta"), gather(b, first, end, m.nLayer, m.dInner, [](auto& f) -> auto& { return f.delta; }), wide);
    mambascope::write_npy(npyPath(dir, b.id, "gate"), gather(b, first, end, m.nLayer, m.dInner, [](auto& f) -> auto& { return f.gate; }), wide);
    mambascope::write_npy(npyPath(dir, b.id, "hnorm"), gather(b, first, end, m.nLayer, m.dInner, [](auto& f) -> auto& { return f.hNorm; }), wide);
    mambascope::write_npy(npyPath(dir, b.id, "B"), gather(b, first, end, m.nLayer, m.dState, [](auto& f) -> auto& { return f.b; }), narrow);
    mambascope::write_npy(npyPath(dir, b.id, "C"), gather(b, first, end, m.nLayer, m.dState, [](auto& f) -> auto& { return f.c; }), narrow);
  }

  int hLayer = -1;  // h: the layer the newest token kept it for, over the newest run that has it
  for (const LayerFrame& f : b.tokens[end - 1].probe ? b.tokens[end - 1].probe->layers : std::vector<LayerFrame>{})
    if (!f.h.empty()) hLayer = f.layer;
  qint64 hFirst = end;
  if (hLayer >= 0)
    while (hFirst > start && hFrame(b.tokens[hFirst - 1], hLayer)) --hFirst;
  meta["h_layer"] = hLayer;
  meta["h_first"] = hFirst;
  if (hFirst < end) {
    const size_t per = size_t(m.dInner) * size_t(m.dState);
    std::vector<float> h(size_t(end - hFirst) * per, kNaN);
    for (qint64 i = hFirst; i < end; ++i) {
      const LayerFrame* f = hFrame(b.tokens[i], hLayer);
      if (f && f->h.size() == per) std::copy(f->h.begin(), f->h.end(), h.begin() + (i - hFirst) * per);
    }
    mambascope::write_npy(npyPath(dir, b.id, "h"), h, {end - hFirst, m.dInner, m.dState});
  }
}

// Reads an array if the file exists and has the expected shape; throws with the file's name otherwise.
std::vector<float> readArray(const std::string& path, const std::vector<int64_t>& shape) {
  const mambascope::NpyArray a = mambascope::read_npy(path);
  if (a.type != mambascope::NpyArray::Type::F32 || a.shape != shape)
    throw mambascope::Error(path + ": the array does not have the shape the session describes");
  return a.f32;
}

void loadProbes(const QString& dir, Branch& b, const QJsonObject& meta, int nLayer, int dInner, int dState) {
  const qint64 start = ownStart(b), end = b.tokens.size();
  if (end <= start || !QFileInfo::exists(QString::fromStdString(npyPath(dir, b.id, "summary")))) return;
  const std::vector<float> summary = readArray(npyPath(dir, b.id, "summary"), {end - start, nLayer, kSummaryFields});
  const qint64 first = meta.value("detail_first").toInteger(end);
  std::map<std::string, std::vector<float>> detail;
  if (first >= start && first < end) {
    for (const char* f : {"delta", "gate", "hnorm"}) detail[f] = readArray(npyPath(dir, b.id, f), {end - first, nLayer, dInner});
    for (const char* f : {"B", "C"}) detail[f] = readArray(npyPath(dir, b.id, f), {end - first, nLayer, dState});
  }
  const int hLayer = meta.value("h_layer").toInt(-1);
  const qint64 hFirst = meta.value("h_first").toInteger(end);
  std::vector<float> h;
  if (hLayer >= 0 && hFirst >= start && hFirst < end) h = readArray(npyPath(dir, b.id, "h"), {end - hFirst, dInner, dState});
  const auto slice = [](const std::vector<float>& v, size_t offset, size_t n) {
    return std::vector<float>(v.begin() + offset, v.begin() + offset + n);
  };
  for (qint64 i = start; i < end; ++i) {
    auto frame = std::make_shared<ProbeFrame>();
    for (int l = 0; l < nLayer; ++l) {
      const float* s = summary.data() + ((i - start) * nLayer + l) * kSummaryFields;
      if (std::isnan(s[0])) continue;
      LayerFrame f;
      f.layer = l;
      f.meanDelta = s[0], f.normB = s[1], f.readNorm = s[2], f.meanGate = s[3], f.normH = s[4], f.writeStrength = s[5];
      if (i >= first && !detail.empty()) {
        const size_t row = size_t((i - first) * nLayer + l);
        f.delta = slice(detail["delta"], row * dInner, size_t(dInner));
        f.gate = slice(detail["gate"], row * dInner, size_t(dInner));
        f.hNorm = slice(detail["hnorm"], row * dInner, size_t(dInner));
        f.b = slice(detail["B"], row * dState, size_t(dState));
        f.c = slice(detail["C"], row * dState, size_t(dState));
      }
      if (l == hLayer && i >= hFirst && !h.empty())
        f.h = slice(h, size_t(i - hFirst) * dInner * dState, size_t(dInner) * dState);
      frame->layers.push_back(std::move(f));
    }
    b.tokens[i].probe = std::move(frame);
  }
}
}  // namespace

namespace sessionfile {

QString probesDir(const QString& sessionPath) {
  const QFileInfo fi(sessionPath);
  return fi.dir().filePath(fi.completeBaseName() + QStringLiteral(".probes"));
}

SessionData capture(const SessionDocument& doc) {
  SessionData d;
  d.modelDir = doc.model().dir;
  d.modelName = doc.model().name;
  for (int id : doc.branchIds()) d.branches.push_back(*doc.branch(id));
  d.currentBranch = doc.currentBranchId();
  d.selected = doc.isFollowing() ? -1 : doc.selectedPosition();
  d.layer = doc.layer();
  d.tracked = doc.trackedPosition();
  return d;
}

bool save(const QString& path, const SessionData& data, const ModelInfo& model, QString* error) {
  const QString dir = probesDir(path);
  if (!QDir().mkpath(dir)) return fail(error, tr("Cannot create the folder %1.").arg(dir));
  QJsonArray branches;
  try {
    for (const Branch& b : data.branches) {
      QJsonArray tokens;
      for (const TokenRecord& t : b.tokens) {
        QJsonArray alts;
        for (const AlternativeToken& a : t.alternatives) alts.append(QJsonArray{a.id, double(a.prob), a.text});
        tokens.append(QJsonObject{{"id", t.id}, {"text", t.text}, {"prompt", t.isPrompt}, {"alternatives", alts}});
      }
      QJsonArray chat;
      for (const ChatSegment& s : b.chat) chat.append(QJsonObject{{"user", s.user}, {"start", s.start}, {"reply", s.reply}});
      QJsonObject probes;
      saveProbes(dir, b, model, probes);
      branches.append(QJsonObject{{"id", b.id}, {"parent", b.parent}, {"fork_position", b.forkPosition},
                                  {"label", b.label}, {"tokens", tokens}, {"chat", chat}, {"probes", probes}});
    }
  } catch (const std::exception& e) {
    return fail(error, QString::fromUtf8(e.what()));
  }
  const QJsonObject root{
      {"format", kFormat}, {"version", 1},
      {"model", QJsonObject{{"dir", data.modelDir}, {"name", data.modelName}, {"n_layer", model.nLayer},
                            {"d_inner", model.dInner}, {"d_state", model.dState}}},
      {"prompt", data.prompt}, {"chat_mode", data.chatMode}, {"sampling", samplingJson(data.sampling)},
      {"current_branch", data.currentBranch}, {"selected", data.selected}, {"layer", data.layer},
      {"tracked", data.tracked}, {"probes_dir", QFileInfo(dir).fileName()}, {"branches", branches}};
  QSaveFile f(path);
  if (!f.open(QIODevice::WriteOnly)) return fail(error, tr("Cannot write %1: %2").arg(path, f.errorString()));
  f.write(QJsonDocument(root).toJson(QJsonDocument::Indented));
  if (!f.commit()) return fail(error, tr("Cannot write %1: %2").arg(path, f.errorString()));
  return true;
}

bool load(const QString& path, SessionData& data, QString* error) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) return fail(error, tr("Cannot open %1: %2").arg(path, f.errorString()));
  QJsonParseError perr;
  const QJsonDocument doc = QJsonDocument::fromJson(f.readAll(), &perr);
  if (doc.isNull() || !doc.isObject())
    return fail(error, tr("%1 is not a MambaScope session (JSON error: %2).").arg(path, perr.errorString()));
  const QJsonObject root = doc.object();
  if (root.value("format").toString() != kFormat)
    return fail(error, tr("%1 is not a MambaScope session file.").arg(path));
  const QJsonObject model = root.value("model").toObject();
  SessionData d;
  d.modelDir = model.value("dir").toString();
  d.modelName = model.value("name").toString();
  d.prompt = root.value("prompt").toString();
  d.chatMode = root.value("chat_mode").toBool();
  d.sampling = samplingFrom(root.value("sampling").toObject());
  d.currentBranch = root.value("current_branch").toInt();
  d.selected = root.value("selected").toInteger(-1);
  d.layer = root.value("layer").toInt();
  d.tracked = root.value("tracked").toInteger(-1);
  const int nLayer = model.value("n_layer").toInt(), dInner = model.value("d_inner").toInt(),
            dState = model.value("d_state").toInt();
  const QString dir = QFileInfo(path).dir().filePath(root.value("probes_dir").toString());
  std::map<int, qsizetype> index;
  try {
    for (const QJsonValue& bv : root.value("branches").toArray()) {
      const QJsonObject bo = bv.toObject();
      Branch b;
      b.id = bo.value("id").toInt();
      b.parent = bo.value("parent").toInt(-1);
      b.forkPosition = bo.value("fork_position").toInteger(-1);
      b.label = bo.value("label").toString();
      const Branch* parent = b.parent >= 0 && index.count(b.parent) ? &d.branches[index[b.parent]] : nullptr;
      if (b.parent >= 0 && (!parent || b.forkPosition < 0 || b.forkPosition > parent->tokens.size()))
        return fail(error, tr("%1 is damaged: branch %2 forks from a branch it does not contain.").arg(path).arg(b.id));
      const QJsonArray tokens = bo.value("tokens").toArray();
      for (qsizetype i = 0; i < tokens.size(); ++i) {
        const QJsonObject t = tokens[i].toObject();
        TokenRecord r;
        r.position = i;
        r.id = t.value("id").toInt();
        r.text = t.value("text").toString();
        r.isPrompt = t.value("prompt").toBool();
        for (const QJsonValue& av : t.value("alternatives").toArray()) {
          const QJsonArray a = av.toArray();
          r.alternatives.push_back({a.at(0).toInt(), float(a.at(1).toDouble()), a.at(2).toString()});
        }
        if (parent && i < b.forkPosition) r.probe = parent->tokens.value(i).probe;  // shared prefix
        b.tokens.push_back(std::move(r));
      }
      for (const QJsonValue& cv : bo.value("chat").toArray()) {
        const QJsonObject c = cv.toObject();
        b.chat.push_back({c.value("user").toString(), c.value("start").toInteger(), c.value("reply").toString()});
      }
      if (nLayer > 0 && dInner > 0 && dState > 0) loadProbes(dir, b, bo.value("probes").toObject(), nLayer, dInner, dState);
      index[b.id] = d.branches.size();
      d.branches.push_back(std::move(b));
    }
  } catch (const std::exception& e) {
    return fail(error, tr("The probes of %1 cannot be read: %2").arg(path, QString::fromUtf8(e.what())));
  }
  if (d.branches.isEmpty()) return fail(error, tr("%1 holds no tokens.").arg(path));
  data = std::move(d);
  return true;
}

}  // namespace sessionfile
