// A small typed wrapper over QSettings: every setting the app remembers, with its default, in
// one place. Tests and the headless mode point it at a scratch .ini file instead of the user's.
#pragma once
#include <QByteArray>
#include <QString>
#include <QStringList>
#include <memory>

#include "core/generationjob.h"

class QSettings;

class AppSettings {
 public:
  // iniFile empty: the user's settings (organization and application names of the QApplication).
  explicit AppSettings(const QString& iniFile = QString());
  ~AppSettings();

  QStringList recentModels() const;
  void addRecentModel(const QString& dir);  // most recent first, at most kMaxRecent
  QString lastModel() const;
  void setLastModel(const QString& dir);

  QString backend() const;  // "auto", "cpu" or "cuda"
  void setBackend(const QString& name);
  int cpuThreads() const;  // 0: all cores

  SamplingSettings sampling() const;
  void setSampling(const SamplingSettings& s);
  bool chatMode() const;
  void setChatMode(bool on);

  QByteArray windowGeometry() const;
  QByteArray windowState() const;
  void setWindowLayout(const QByteArray& geometry, const QByteArray& state);

  // Memory bound of the probe copies (see SessionDocument::setProbeBudget).
  qint64 probeDetailBudget() const;
  qint64 probeHBudget() const;
  void setProbeBudgets(qint64 detailBytes, qint64 hBytes);  // stored in whole MiB

  QString lastDirectory(const QString& purpose) const;
  void setLastDirectory(const QString& purpose, const QString& dir);

  static constexpr int kMaxRecent = 8;

 private:
  std::unique_ptr<QSettings> m_s;
};
