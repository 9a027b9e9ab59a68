// Every question and message the app puts to the user goes through here, so that tests (and
// the headless mode) can answer without a modal dialog blocking the event loop: subclass it and
// hand it to the MainWindow.
#pragma once
#include <QString>

class QWidget;

class DialogService {
 public:
  virtual ~DialogService() = default;
  virtual void showError(QWidget* parent, const QString& title, const QString& message);
  virtual bool askYesNo(QWidget* parent, const QString& title, const QString& question);
  // Empty when cancelled.
  virtual QString chooseDirectory(QWidget* parent, const QString& caption, const QString& start);
  virtual QString chooseOpenFile(QWidget* parent, const QString& caption, const QString& start, const QString& filter);
  virtual QString chooseSaveFile(QWidget* parent, const QString& caption, const QString& start, const QString& filter);
};

// For the headless mode: errors go to stderr, questions get their default answer, and nothing
// is chosen.
class ConsoleDialogService : public DialogService {
 public:
  void showError(QWidget* parent, const QString& title, const QString& message) override;
  bool askYesNo(QWidget* parent, const QString& title, const QString& question) override;
  QString chooseDirectory(QWidget*, const QString&, const QString&) override { return {}; }
  QString chooseOpenFile(QWidget*, const QString&, const QString&, const QString&) override { return {}; }
  QString chooseSaveFile(QWidget*, const QString&, const QString&, const QString&) override { return {}; }
  int errorCount() const { return m_errors; }

 private:
  int m_errors = 0;
};
