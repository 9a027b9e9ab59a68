// Qt-side copies of what the engine reports per token. The engine's TokenEvent and TokenProbe
// live only during its callback; the worker copies them into these value types, which then
// cross to the GUI thread by queued signals and are shared (never copied again) between the
// branches that have the token in common.
#pragma once
#include <QMetaType>
#include <QString>
#include <QStringList>
#include <QVector>
#include <memory>
#include <vector>

struct AlternativeToken {
  qint32 id = 0;
  float prob = 0;
  QString text;
};

// One layer's selection at one token. The vectors may be dropped later to bound memory (see
// SessionDocument::setProbeBudget); the scalar summaries are always kept.
struct LayerFrame {
  int layer = -1;
  std::vector<float> delta;  // Δ {d_inner}
  std::vector<float> b;      // B {d_state}
  std::vector<float> c;      // C {d_state}
  std::vector<float> gate;   // SiLU(z) {d_inner}
  std::vector<float> hNorm;  // ‖h‖ over d_state {d_inner}
  std::vector<float> h;      // h {d_inner, d_state}; only for the captured layer
  float writeStrength = 0;   // ‖Δ·B·x‖
  float readNorm = 0;        // ‖C‖
  float meanDelta = 0;
  float normB = 0;
  float meanGate = 0;
  float normH = 0;  // ‖h‖ over (d_inner, d_state)

  size_t detailBytes() const;
  size_t hBytes() const { return h.size() * sizeof(float); }
};

struct ProbeFrame {
  std::vector<LayerFrame> layers;  // recorded layers, ascending
  const LayerFrame* layer(int l) const;
  size_t detailBytes() const;
  size_t hBytes() const;
  void dropDetails();  // keeps the summaries
  void dropH();
};

struct TokenRecord {
  qint64 position = 0;  // index in the branch's history
  qint32 id = 0;
  QString text;         // the text this token released (whole characters; may be empty)
  bool isPrompt = false;
  QVector<AlternativeToken> alternatives;  // most probable first; empty for prompt tokens
  // Shared by the branches that have this token in common; null when nothing was recorded.
  std::shared_ptr<ProbeFrame> probe;
};

struct ModelInfo {
  QString name;
  QString dir;
  QString backend;     // "cpu" or "cuda"
  QString device;      // human-readable device line for the status bar
  QString note;        // why the backend was chosen, if it was not the one asked for
  QString tokenizer;   // "bpe" or "sentencepiece"
  int nLayer = 0;
  int dModel = 0;
  int dInner = 0;
  int dState = 0;
  qint64 vocab = 0;
  qint64 parameters = 0;
  bool lti = false;
  bool chatTemplate = false;
  QStringList stopStrings;  // chat replies end at these
  // A = -exp(A_log) per layer {n_layer}{d_inner, d_state}: the decay rates behind the retention
  // and half-life views.
  std::shared_ptr<const std::vector<std::vector<float>>> a;

  bool isValid() const { return nLayer > 0; }
};

Q_DECLARE_METATYPE(TokenRecord)
Q_DECLARE_METATYPE(ModelInfo)
