// The frame of every Modes Lab view: which text to run on (the current branch's tokens, or text
// typed here), the view's own options, Run, a progress bar, Cancel and a status line; below them
// the results, which are what image export shows. Subclasses build the engine task in start().
#pragma once
#include <QStringList>
#include <vector>

#include "views/viewpanel.h"

class EngineController;
class LabRunner;
class QComboBox;
class QHBoxLayout;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class SessionDocument;
struct EngineAccess;

namespace mambascope {
class Model;
}

struct LabContext {
  SessionDocument* document = nullptr;
  EngineController* engine = nullptr;
};

// The text a lab runs on: token ids taken from the current branch, or text to tokenize.
struct LabText {
  std::vector<int32_t> ids;
  QString text;
  // On the engine thread: the ids (tokenizing the text if needed). Throws mambascope::Error.
  std::vector<int32_t> resolve(const EngineAccess& engine) const;
};

// Token pieces for labels (engine thread).
QStringList tokenPieces(const mambascope::Model& model, const std::vector<int32_t>& ids);
// Sizes and times as the engine's lab prints them ("1.5 GiB", "12.3 ms").
QString qBytes(double bytes);
QString qSeconds(double seconds);

class LabView : public ViewPanel {
  Q_OBJECT

 public:
  LabView(const QString& viewId, const QString& title, const LabContext& context, QWidget* parent = nullptr);

  QWidget* renderTarget() override { return m_results; }
  LabRunner* runner() const { return m_runner; }
  // What Run does: takes the chosen text and starts the computation. False (and the status
  // says why) when it could not start.
  bool run();
  void setCustomText(const QString& text);  // and switch the source to it
  QString statusText() const;

 Q_SIGNALS:
  void resultShown();  // a result is on screen (tests wait for it)

 protected:
  virtual void start(const LabText& text) = 0;
  void addOption(QWidget* w);  // the view's own controls go in the options row
  void setResults(QWidget* results);
  void setStatus(const QString& text, bool error = false);
  void shown();  // call when a result was drawn
  void setTextSourceVisible(bool visible);  // a lab that makes its own inputs hides it
  SessionDocument* document() const { return m_context.document; }

 private:
  LabContext m_context;
  LabRunner* m_runner;
  QComboBox* m_source;
  QLineEdit* m_text;
  QHBoxLayout* m_options;
  QPushButton* m_run;
  QPushButton* m_cancel;
  QProgressBar* m_progress;
  QLabel* m_status;
  QWidget* m_results = nullptr;
  bool m_needsText = true;
  class QScrollArea* m_optionsScroll = nullptr;
  class QVBoxLayout* m_layout;
};
