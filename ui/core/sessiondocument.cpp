// The GUI-side data of a session: branches, selection and the probe memory bound.
#include "core/sessiondocument.h"

#include <algorithm>
#include <set>

namespace {
const QVector<TokenRecord> kNoTokens;

QString shortText(const QString& text) {
  QString t = text;
  t.replace(QLatin1Char('\n'), QStringLiteral("↵"));
  return t.size() > 12 ? t.left(11) + QStringLiteral("…") : t;
}
}  // namespace

SessionDocument::SessionDocument(QObject* parent) : QObject(parent) {}

void SessionDocument::setModelInfo(const ModelInfo& info) {
  m_model = info;
  m_layer = std::clamp(m_layer, 0, std::max(0, info.nLayer - 1));
  clear();
  Q_EMIT modelChanged();
  Q_EMIT layerChanged(m_layer);
}

void SessionDocument::clear() {
  m_branches.clear();
  m_current = -1;
  m_selected = -1;
  m_tracked = -1;
  m_detailQueue.clear();
  m_hQueue.clear();
  m_detailBytes = m_hBytes = 0;
  Q_EMIT branchesChanged();
  Q_EMIT currentBranchChanged();
  Q_EMIT selectionChanged(-1);
  Q_EMIT trackedChanged(-1);
}

int SessionDocument::createRoot() {
  Branch b;
  b.id = m_nextId++;
  b.label = m_branches.empty() ? tr("main") : tr("run %1").arg(b.id);
  m_branches[b.id] = b;
  Q_EMIT branchesChanged();
  setCurrentBranch(b.id);
  return b.id;
}

int SessionDocument::createFork(int parentId, qint64 position, qint32 tokenId) {
  const Branch* parent = branch(parentId);
  if (!parent || position < 0 || position > parent->tokens.size()) return -1;
  Branch b;
  b.id = m_nextId++;
  b.parent = parentId;
  b.forkPosition = position;
  b.tokens = parent->tokens.mid(0, position);  // shares the prefix's probe frames
  for (const ChatSegment& s : parent->chat)
    if (s.start < position) b.chat.push_back(s);
  QString text;
  if (position < parent->tokens.size())
    for (const AlternativeToken& a : parent->tokens[position].alternatives)
      if (a.id == tokenId) text = a.text;
  b.label = tr("fork %1 · #%2 “%3”").arg(b.id).arg(position).arg(shortText(text));
  m_branches[b.id] = b;
  Q_EMIT branchesChanged();
  setCurrentBranch(b.id);
  m_selected = position;  // the chosen token, as soon as it arrives
  Q_EMIT selectionChanged(selectedPosition());
  return b.id;
}

void SessionDocument::appendTokens(int branchId, const QVector<TokenRecord>& batch) {
  auto it = m_branches.find(branchId);
  if (it == m_branches.end() || batch.isEmpty()) return;
  Branch& b = it->second;
  const Branch* parent = branch(b.parent);
  bool restarted = false;
  const int first = int(b.tokens.size());
  for (TokenRecord r : batch) {
    if (r.position < b.tokens.size()) {  // the engine restarted the history from here
      b.tokens.resize(r.position);
      restarted = true;
    }
    if (r.position == b.forkPosition && parent) {
      // The chosen alternative: fed like a prompt token, but it stands where a sampled token
      // stood, with the same alternatives.
      r.isPrompt = false;
      if (r.alternatives.isEmpty() && r.position < parent->tokens.size())
        r.alternatives = parent->tokens[r.position].alternatives;
    }
    if (r.probe) account(r.probe);
    b.tokens.push_back(std::move(r));
  }
  enforceBudget();
  if (restarted)
    Q_EMIT branchReset(branchId);
  else
    Q_EMIT tokensAppended(branchId, first, int(b.tokens.size()) - first);
  // The effective selection moved if it follows the newest token, or waited for one just added.
  if (branchId == m_current && (m_selected < 0 || (m_selected >= first && m_selected < b.tokens.size())))
    Q_EMIT selectionChanged(selectedPosition());
}

void SessionDocument::installBranches(const QVector<Branch>& branches, int current) {
  clear();
  std::set<const ProbeFrame*> seen;  // forks share their prefix's frames: count each once
  for (const Branch& b : branches) {
    m_branches[b.id] = b;
    m_nextId = std::max(m_nextId, b.id + 1);
    for (const TokenRecord& t : b.tokens)
      if (t.probe && seen.insert(t.probe.get()).second) account(t.probe);
  }
  enforceBudget();
  Q_EMIT branchesChanged();
  setCurrentBranch(branch(current) ? current : (branches.isEmpty() ? -1 : branches.first().id));
}

const Branch* SessionDocument::branch(int id) const {
  auto it = m_branches.find(id);
  return it == m_branches.end() ? nullptr : &it->second;
}

Branch* SessionDocument::mutableBranch(int id) {
  auto it = m_branches.find(id);
  return it == m_branches.end() ? nullptr : &it->second;
}

QVector<int> SessionDocument::branchIds() const {
  QVector<int> ids;
  for (const auto& [id, b] : m_branches) ids.push_back(id);
  return ids;
}

void SessionDocument::setCurrentBranch(int id) {
  if (id == m_current || !branch(id)) return;
  m_current = id;
  if (m_selected >= tokens().size()) m_selected = -1;
  Q_EMIT currentBranchChanged();
  Q_EMIT selectionChanged(selectedPosition());
}

const QVector<TokenRecord>& SessionDocument::tokens() const {
  const Branch* b = branch(m_current);
  return b ? b->tokens : kNoTokens;
}

const TokenRecord* SessionDocument::token(qint64 position) const {
  const auto& t = tokens();
  return position >= 0 && position < t.size() ? &t[position] : nullptr;
}

QVector<ChatMessage> SessionDocument::chatTurns(int branchId) const {
  QVector<ChatMessage> turns;
  if (const Branch* b = branch(branchId))
    for (qsizetype i = 0; i < b->chat.size(); ++i) {
      const ChatSegment& s = b->chat[i];
      turns.push_back({QStringLiteral("user"), s.user});
      if (i + 1 < b->chat.size() || !s.reply.isEmpty()) turns.push_back({QStringLiteral("assistant"), s.reply});
    }
  return turns;
}

void SessionDocument::beginChatTurn(int branchId, const QString& user) {
  if (Branch* b = mutableBranch(branchId)) b->chat.push_back({user, b->tokens.size(), QString()});
}

void SessionDocument::finishChatTurn(int branchId) {
  Branch* b = mutableBranch(branchId);
  if (!b || b->chat.isEmpty()) return;
  // The reply is what was generated after the last prompt token of the conversation.
  qint64 lastPrompt = -1;
  for (qint64 i = b->tokens.size() - 1; i >= 0; --i)
    if (b->tokens[i].isPrompt) {
      lastPrompt = i;
      break;
    }
  QString reply;
  for (qint64 i = lastPrompt + 1; i < b->tokens.size(); ++i) reply += b->tokens[i].text;
  for (const QString& stop : m_model.stopStrings)
    if (!stop.isEmpty() && reply.endsWith(stop)) reply.chop(stop.size());
  b->chat.last().reply = reply.trimmed();
}

qint64 SessionDocument::selectedPosition() const {
  const qint64 n = tokens().size();
  if (n == 0) return -1;
  return m_selected >= 0 && m_selected < n ? m_selected : n - 1;
}

void SessionDocument::selectPosition(qint64 position) {
  if (position >= tokens().size()) position = -1;
  if (position == m_selected) return;
  m_selected = position;
  Q_EMIT selectionChanged(selectedPosition());
}

void SessionDocument::setLayer(int layer) {
  layer = std::clamp(layer, 0, std::max(0, m_model.nLayer - 1));
  if (layer == m_layer) return;
  m_layer = layer;
  Q_EMIT layerChanged(layer);
}

void SessionDocument::setTrackedPosition(qint64 position) {
  if (position == m_tracked) return;
  m_tracked = position;
  Q_EMIT trackedChanged(position);
}

void SessionDocument::setProbeBudget(qint64 detailBytes, qint64 hBytes) {
  m_detailBudget = detailBytes;
  m_hBudget = hBytes;
  enforceBudget();
}

void SessionDocument::account(const std::shared_ptr<ProbeFrame>& frame) {
  if (const size_t d = frame->detailBytes()) {
    m_detailQueue.push_back({frame, d});
    m_detailBytes += qint64(d);
  }
  if (const size_t h = frame->hBytes()) {
    m_hQueue.push_back({frame, h});
    m_hBytes += qint64(h);
  }
}

void SessionDocument::enforceBudget() {
  while (m_detailBytes > m_detailBudget && !m_detailQueue.empty()) {
    if (auto f = m_detailQueue.front().frame.lock()) f->dropDetails();
    m_detailBytes -= qint64(m_detailQueue.front().bytes);
    m_detailQueue.pop_front();
  }
  while (m_hBytes > m_hBudget && !m_hQueue.empty()) {
    if (auto f = m_hQueue.front().frame.lock()) f->dropH();
    m_hBytes -= qint64(m_hQueue.front().bytes);
    m_hQueue.pop_front();
  }
}
