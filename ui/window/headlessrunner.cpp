// Headless generate-and-screenshot.
#include "window/headlessrunner.h"

#include <QDir>
#include <QDockWidget>
#include <QEventLoop>
#include <QPixmap>
#include <QTemporaryDir>
#include <QTimer>
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/explorer.h"
#include "core/measures.h"
#include "core/modellocator.h"
#include "core/sessiondocument.h"
#include "window/chatpanel.h"
#include "window/dialogservice.h"
#include "window/mainwindow.h"

namespace {
// Runs the event loop until one of the window's signals fires or the time is up; true if fired.
template <typename... Signals>
bool waitFor(MainWindow* w, int seconds, Signals... sigs) {
  QEventLoop loop;
  bool fired = false;
  (QObject::connect(w, sigs, &loop, [&] { fired = true; loop.quit(); }), ...);
  QTimer::singleShot(seconds * 1000, &loop, &QEventLoop::quit);
  loop.exec();
  return fired;
}

void settle(int milliseconds) {
  QEventLoop loop;
  QTimer::singleShot(milliseconds, &loop, &QEventLoop::quit);
  loop.exec();
}

// The generated token with the largest mean Δ in the chosen layer, among the first two thirds of
// the text so that the survival view has a stretch of later tokens to show.
qint64 mostSelective(const SessionDocument& doc) {
  const auto& tokens = doc.tokens();
  qint64 best = -1;
  float bestValue = -1;
  for (qint64 i = 0; i < std::max<qint64>(1, tokens.size() * 2 / 3); ++i) {
    if (tokens[i].isPrompt && best >= 0) continue;
    const float v = tokenMeasure(tokens, i, TokenMeasure::DeltaLayer, doc.layer());
    if (std::isfinite(v) && (v > bestValue || best < 0)) best = i, bestValue = v;
  }
  return best;
}
}  // namespace

int runHeadless(const HeadlessOptions& o) {
  QTemporaryDir scratch;  // settings of this run only: the user's stay untouched
  ConsoleDialogService dialogs;
  MainWindow::Options wo;
  wo.settingsFile = scratch.filePath(QStringLiteral("headless.ini"));
  wo.dialogs = &dialogs;
  wo.loadDefaultModel = false;
  wo.persistLayout = false;
  MainWindow window(wo);
  window.resize(o.size);
  window.show();

  const QString model = o.model.isEmpty() ? modellocator::defaultModel() : o.model;
  if (model.isEmpty()) {
    std::fprintf(stderr, "mambascope: no model given and no default model found\n");
    return 2;
  }
  window.loadModel(model, o.backend);
  if (!waitFor(&window, o.timeoutSeconds, &MainWindow::modelReady, &MainWindow::modelLoadFailed) ||
      !window.document()->hasModel()) {
    std::fprintf(stderr, "mambascope: the model in %s could not be loaded\n", qPrintable(model));
    return 3;
  }
  SessionDocument* doc = window.document();
  doc->setLayer(o.layer >= 0 ? o.layer : doc->model().nLayer / 2);

  ChatPanel* chat = window.chatPanel();
  chat->setChatMode(o.chat);
  chat->setPrompt(o.prompt.isEmpty() ? QStringLiteral("Once upon a time") : o.prompt);
  SamplingSettings s = chat->sampling();
  s.maxTokens = o.maxTokens;
  s.seed = quint64(o.seed);
  if (o.temperature >= 0) s.temperature = o.temperature;
  chat->setSampling(s);
  window.generateFromPanel();
  if (!waitFor(&window, o.timeoutSeconds, &MainWindow::generationFinished)) {
    window.explorer()->stop();
    std::fprintf(stderr, "mambascope: generation did not finish within %d s\n", o.timeoutSeconds);
    return 4;
  }
  const qint64 pick = o.select >= 0 ? o.select : mostSelective(*doc);
  doc->selectPosition(pick);
  doc->setTrackedPosition(pick);
  for (const QString& id : o.raise)
    if (ViewPanel* v = window.view(id))
      if (auto* dock = qobject_cast<QDockWidget*>(v->parentWidget())) dock->raise();
  settle(400);  // the views rebuild on short timers

  QString text;
  for (const TokenRecord& t : doc->tokens()) text += t.text;
  std::printf("%s\n", qPrintable(text));
  std::fprintf(stderr, "mambascope: %lld tokens, %.1f tok/s, selected token #%lld\n",
               static_cast<long long>(doc->tokenCount()), window.explorer()->tokensPerSecond(),
               static_cast<long long>(pick));
  if (!o.screenshot.isEmpty()) {
    // Best compression: screenshots go into the repository's docs.
    const QPixmap shot = window.grab();
    if (shot.isNull() || !shot.save(o.screenshot, "PNG", 0)) {
      std::fprintf(stderr, "mambascope: cannot write %s\n", qPrintable(o.screenshot));
      return 5;
    }
  }
  if (!o.viewsDir.isEmpty()) {
    QDir().mkpath(o.viewsDir);
    for (ViewPanel* v : window.views()) {
      if (auto* dock = qobject_cast<QDockWidget*>(v->parentWidget())) dock->raise();
      settle(200);
      QString error;
      if (!window.exportView(v, ExportFormat::Png, QDir(o.viewsDir).filePath(v->viewId() + QStringLiteral(".png")), &error))
        std::fprintf(stderr, "mambascope: %s\n", qPrintable(error));
    }
  }
  return dialogs.errorCount() > 0 ? 6 : 0;
}
