// Everything the views show, in one place on the GUI thread: the loaded model's shape, the
// branches of the generation (each a token history; forks share their prefix's probe frames),
// and the selection every view follows (branch, token, layer, tracked token). It also bounds the
// memory of the probe copies: past a budget, the oldest tokens keep only their summaries.
#pragma once
#include <QObject>
#include <QVector>
#include <deque>
#include <map>
#include <memory>

#include "core/generationjob.h"
#include "core/tokendata.h"

struct ChatSegment {
  QString user;        // what the user said
  qint64 start = 0;    // position where this turn's prompt began
  QString reply;       // the model's answer, filled when its generation ends
};

struct Branch {
  int id = 0;
  int parent = -1;           // -1 for a root
  qint64 forkPosition = -1;  // the token that differs from the parent
  QString label;
  QVector<TokenRecord> tokens;
  QVector<ChatSegment> chat;
};

class SessionDocument : public QObject {
  Q_OBJECT

 public:
  explicit SessionDocument(QObject* parent = nullptr);

  void setModelInfo(const ModelInfo& info);  // clears the branches
  const ModelInfo& model() const { return m_model; }
  bool hasModel() const { return m_model.isValid(); }

  // Branches.
  void clear();
  int createRoot();
  // A fork of `parent` that replaces its token at `position` by `tokenId`; becomes current.
  int createFork(int parent, qint64 position, qint32 tokenId);
  void appendTokens(int branchId, const QVector<TokenRecord>& batch);
  // Replaces all branches (a reopened session); parents come before their forks.
  void installBranches(const QVector<Branch>& branches, int current);
  const Branch* branch(int id) const;
  Branch* mutableBranch(int id);
  QVector<int> branchIds() const;
  int currentBranchId() const { return m_current; }
  void setCurrentBranch(int id);
  const QVector<TokenRecord>& tokens() const;  // of the current branch
  int tokenCount() const { return int(tokens().size()); }
  const TokenRecord* token(qint64 position) const;  // in the current branch

  // Chat turns of a branch: every earlier exchange, ready for GenerationJob::turns.
  QVector<ChatMessage> chatTurns(int branchId) const;
  void beginChatTurn(int branchId, const QString& user);
  void finishChatTurn(int branchId);

  // Selection. A selected position of -1 follows the newest token.
  qint64 selectedPosition() const;
  bool isFollowing() const { return m_selected < 0; }
  void selectPosition(qint64 position);
  int layer() const { return m_layer; }
  void setLayer(int layer);
  qint64 trackedPosition() const { return m_tracked; }  // survival view; -1: none
  void setTrackedPosition(qint64 position);

  // Memory bound of the probe copies.
  void setProbeBudget(qint64 detailBytes, qint64 hBytes);
  qint64 probeBytes() const { return m_detailBytes + m_hBytes; }

 Q_SIGNALS:
  void modelChanged();
  void branchesChanged();
  void currentBranchChanged();
  // Tokens [first, first + count) were added to the branch's end.
  void tokensAppended(int branchId, int first, int count);
  // The branch's tokens changed other than by appending (history restarted, session opened).
  void branchReset(int branchId);
  void selectionChanged(qint64 position);
  void layerChanged(int layer);
  void trackedChanged(qint64 position);

 private:
  void account(const std::shared_ptr<ProbeFrame>& frame);
  void enforceBudget();

  ModelInfo m_model;
  std::map<int, Branch> m_branches;
  int m_current = -1;
  int m_nextId = 0;
  qint64 m_selected = -1;
  int m_layer = 0;
  qint64 m_tracked = -1;

  struct Held {
    std::weak_ptr<ProbeFrame> frame;
    size_t bytes = 0;
  };
  std::deque<Held> m_detailQueue, m_hQueue;  // oldest first
  qint64 m_detailBytes = 0, m_hBytes = 0;
  qint64 m_detailBudget = 512LL << 20, m_hBudget = 256LL << 20;
};
