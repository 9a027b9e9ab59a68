// Finding the bundled models.
#include "core/modellocator.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

#ifndef MAMBASCOPE_SOURCE_DIR
#define MAMBASCOPE_SOURCE_DIR ""
#endif

namespace {
QString readText(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly | QIODevice::Text)) return {};
  return QString::fromUtf8(f.readAll());
}

QString demoPrompt(const QDir& modelDir) {
  for (const QString& p : {modelDir.filePath(QStringLiteral("demo_prompt.txt")),
                           QFileInfo(modelDir.absolutePath()).dir().filePath(QStringLiteral("demo_prompt.txt"))}) {
    const QString text = readText(p);
    if (!text.isEmpty()) return text.endsWith(QLatin1Char('\n')) ? text.chopped(1) : text;
  }
  return {};
}
// The first example of eval.jsonl says how many tokens the answer to the demo prompt has.
int answerLength(const QDir& modelDir) {
  QFile f(modelDir.filePath(QStringLiteral("eval.jsonl")));
  if (!f.open(QIODevice::ReadOnly)) return 0;
  const QJsonObject first = QJsonDocument::fromJson(f.readLine()).object();
  return int(first.value(QStringLiteral("target_ids")).toArray().size());
}

DemoModel demoAt(const QString& title, const QDir& dir) {
  return {title, dir.absolutePath(), demoPrompt(dir), answerLength(dir)};
}
}  // namespace

namespace modellocator {

QStringList candidateRoots() {
  QStringList roots;
  const QString env = qEnvironmentVariable("MAMBASCOPE_MODELS_DIR");
  if (!env.isEmpty()) roots << env;
  if (QCoreApplication::instance()) {
    const QString exe = QCoreApplication::applicationDirPath();
    roots << exe + QStringLiteral("/models") << exe + QStringLiteral("/../share/mambascope/models")
          << exe + QStringLiteral("/../models") << exe + QStringLiteral("/../../models");
  }
  const QString src = QStringLiteral(MAMBASCOPE_SOURCE_DIR);
  if (!src.isEmpty()) roots << src + QStringLiteral("/models");
  return roots;
}

bool looksLikeModel(const QString& dir) { return QFileInfo::exists(QDir(dir).filePath(QStringLiteral("config.json"))); }

QString modelsDir() {
  for (const QString& r : candidateRoots()) {
    const QDir d(r);
    // A models/ folder counts when it has DEFAULT, demos/ or at least one model in it.
    if (!d.exists()) continue;
    if (d.exists(QStringLiteral("DEFAULT")) || d.exists(QStringLiteral("demos"))) return d.absolutePath();
    for (const QString& sub : d.entryList(QDir::Dirs | QDir::NoDotAndDotDot))
      if (looksLikeModel(d.filePath(sub))) return d.absolutePath();
  }
  return {};
}

QString defaultModel() {
  const QString root = modelsDir();
  if (!root.isEmpty()) {
    const QDir d(root);
    const QString named = readText(d.filePath(QStringLiteral("DEFAULT"))).trimmed();
    if (!named.isEmpty()) {
      const QString dir = QDir::isAbsolutePath(named) ? named : d.filePath(named);
      if (looksLikeModel(dir)) return QDir(dir).absolutePath();
    }
    for (const QString& sub : d.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name))
      if (looksLikeModel(d.filePath(sub))) return QDir(d.filePath(sub)).absolutePath();
  }
  const QString fixture = QStringLiteral(MAMBASCOPE_SOURCE_DIR "/tests/fixtures/hf/tied_fp32");
  return looksLikeModel(fixture) ? fixture : QString();
}

QVector<DemoModel> demos() {
  QVector<DemoModel> out;
  const QString root = modelsDir();
  if (root.isEmpty()) return out;
  const QDir demosDir(QDir(root).filePath(QStringLiteral("demos")));
  // models/demos/<task>/ is a model, or holds models (e.g. selective/ and lti/ of one task).
  for (const QString& task : demosDir.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name)) {
    const QDir taskDir(demosDir.filePath(task));
    if (looksLikeModel(taskDir.path())) {
      out.push_back(demoAt(task, taskDir));
      continue;
    }
    for (const QString& variant : taskDir.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name)) {
      const QDir v(taskDir.filePath(variant));
      if (looksLikeModel(v.path())) out.push_back(demoAt(task + QStringLiteral(" / ") + variant, v));
    }
  }
  return out;
}

}  // namespace modellocator
