// Saving and reopening a session: a JSON file (the model folder, prompt, mode, sampling settings,
// selection, and every branch with its tokens, alternatives and chat turns) and, in a folder
// beside it (<name>.probes/), the probe copies as .npy arrays, per branch:
//   b<id>_summary.npy {tokens, n_layer, 6}   mean Δ, ‖B‖, ‖C‖, mean gate, ‖h‖, write strength
//   b<id>_delta.npy, _gate.npy, _hnorm.npy {detail tokens, n_layer, d_inner}
//   b<id>_B.npy, _C.npy {detail tokens, n_layer, d_state}
//   b<id>_h.npy {h tokens, d_inner, d_state}  for one layer (h_layer in the JSON)
// NaN marks what was not recorded. Only the tokens a branch does not share with its parent are
// stored; "detail tokens" and "h tokens" are the newest ones that still had them in memory.
#pragma once
#include <QString>
#include <QVector>

#include "core/generationjob.h"
#include "core/sessiondocument.h"

struct SessionData {
  QString modelDir;
  QString modelName;
  QString prompt;
  bool chatMode = false;
  SamplingSettings sampling;
  QVector<Branch> branches;  // parents before their forks
  int currentBranch = 0;
  qint64 selected = -1;
  int layer = 0;
  qint64 tracked = -1;
};

namespace sessionfile {
// Gathers what the document holds (branches, selection) into a SessionData.
SessionData capture(const SessionDocument& doc);
bool save(const QString& path, const SessionData& data, const ModelInfo& model, QString* error);
// Reads a session; the probe frames of forks share their parent's prefix as they did when saved.
bool load(const QString& path, SessionData& data, QString* error);
QString probesDir(const QString& sessionPath);
}  // namespace sessionfile
