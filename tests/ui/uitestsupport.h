// Support for the UI tests: one QApplication on the offscreen platform, a tiny random-weight
// model with a real SentencePiece tokenizer written once per run (so the tests do not depend on
// a trained model being present), and a DialogService that records instead of blocking.
#pragma once
#include <QSize>
#include <QString>
#include <QStringList>
#include <memory>

#include "window/dialogservice.h"

class QApplication;
class QImage;
class QTemporaryDir;
class MainWindow;

QApplication* ensureApp();

struct TinyModelShape {
  int dModel = 32;
  int nLayer = 3;
  int dState = 8;
};
// A model folder: config.json, model.safetensors (random fp32 weights, seeded), tokenizer.model
// (tests/fixtures/tokenizer/tiny_sp.model). Written on first use into a temporary folder.
QString tinyModelDir();
void writeTinyModel(const QString& dir, const TinyModelShape& shape, unsigned seed);

class RecordingDialogs : public DialogService {
 public:
  void showError(QWidget*, const QString& title, const QString& message) override {
    errors << title + QStringLiteral(": ") + message;
  }
  bool askYesNo(QWidget*, const QString& title, const QString&) override {
    questions << title;
    return answer;
  }
  QString chooseDirectory(QWidget*, const QString&, const QString&) override { return chosenPath; }
  QString chooseOpenFile(QWidget*, const QString&, const QString&, const QString&) override { return chosenPath; }
  QString chooseSaveFile(QWidget*, const QString&, const QString&, const QString&) override { return chosenPath; }

  QStringList errors;
  QStringList questions;
  bool answer = false;
  QString chosenPath;
};

// Distinct colours in an image (sampled every other pixel): a blank or single-colour view has
// very few.
int distinctColours(const QImage& image);

// The real main window for a test: settings in `scratch`, dialogs recorded, no default model,
// no saved layout; shown and exposed on the offscreen platform (nullptr if it never is).
std::unique_ptr<MainWindow> openTestWindow(const QTemporaryDir& scratch, DialogService* dialogs,
                                           QSize size);
