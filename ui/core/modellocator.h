// Where models are: the bundled models/ folder (beside the executable, under an install
// prefix, or in the source tree; MAMBASCOPE_MODELS_DIR overrides), the default model named in
// models/DEFAULT, and the demo models under models/demos/ with their prepared prompts.
#pragma once
#include <QString>
#include <QStringList>
#include <QVector>

struct DemoModel {
  QString title;   // e.g. "selective-copying / lti"
  QString dir;
  QString prompt;  // demo_prompt.txt beside the model (or in its parent folder)
  int answerTokens = 0;  // length of the first answer in eval.jsonl (0: unknown)
};

namespace modellocator {
QStringList candidateRoots();  // in the order they are tried
QString modelsDir();           // the first candidate that exists; empty if none
// models/DEFAULT, else the first folder under models/ with a config.json, else the engine's
// test fixture; empty if none of them exists.
QString defaultModel();
QVector<DemoModel> demos();
bool looksLikeModel(const QString& dir);  // has a config.json
}  // namespace modellocator
