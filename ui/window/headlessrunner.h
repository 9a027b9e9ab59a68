// `mambascope --prompt "..." --max-tokens N --screenshot out.png`: opens the main window
// (offscreen with QT_QPA_PLATFORM=offscreen), loads the model, generates, selects the most
// selective generated token so that every view has something to show, renders the window to a
// PNG and returns an exit code. For documentation, tests, and machines without a display.
#pragma once
#include <QSize>
#include <QString>
#include <QStringList>

struct HeadlessOptions {
  QString model;        // empty: the default model
  QString prompt;
  int maxTokens = 64;
  QString screenshot;   // the PNG to write
  QString backend;      // empty: "auto"
  qint64 seed = 0;
  double temperature = -1;  // < 0: the default
  QSize size{1600, 1000};
  int layer = -1;           // -1: the middle layer
  qint64 select = -1;       // token to select; -1: the generated token with the largest mean Δ
  bool chat = false;
  QStringList raise;    // view ids whose docks are brought to the front before the screenshot
  QString viewsDir;     // if set: every view is also written there as <view id>.png
  int timeoutSeconds = 600;
};

// Runs inside an existing QApplication; returns 0 on success.
int runHeadless(const HeadlessOptions& options);
