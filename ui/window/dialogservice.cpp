// Modal dialogs, and their console stand-ins.
#include "window/dialogservice.h"

#include <QFileDialog>
#include <QMessageBox>
#include <cstdio>

void DialogService::showError(QWidget* parent, const QString& title, const QString& message) {
  QMessageBox::critical(parent, title, message);
}

bool DialogService::askYesNo(QWidget* parent, const QString& title, const QString& question) {
  return QMessageBox::question(parent, title, question, QMessageBox::Yes | QMessageBox::No, QMessageBox::Yes) ==
         QMessageBox::Yes;
}

QString DialogService::chooseDirectory(QWidget* parent, const QString& caption, const QString& start) {
  return QFileDialog::getExistingDirectory(parent, caption, start);
}

QString DialogService::chooseOpenFile(QWidget* parent, const QString& caption, const QString& start,
                                      const QString& filter) {
  return QFileDialog::getOpenFileName(parent, caption, start, filter);
}

QString DialogService::chooseSaveFile(QWidget* parent, const QString& caption, const QString& start,
                                      const QString& filter) {
  return QFileDialog::getSaveFileName(parent, caption, start, filter);
}

void ConsoleDialogService::showError(QWidget*, const QString& title, const QString& message) {
  ++m_errors;
  std::fprintf(stderr, "mambascope: %s: %s\n", qPrintable(title), qPrintable(message));
}

bool ConsoleDialogService::askYesNo(QWidget*, const QString& title, const QString& question) {
  std::fprintf(stderr, "mambascope: %s: %s (answering yes)\n", qPrintable(title), qPrintable(question));
  return true;
}
