// Typed settings over QSettings.
#include "core/appsettings.h"

#include <QSettings>

namespace {
const QString kRecent = QStringLiteral("models/recent");
const QString kLast = QStringLiteral("models/last");
const QString kBackend = QStringLiteral("engine/backend");
const QString kThreads = QStringLiteral("engine/threads");
const QString kChat = QStringLiteral("generate/chatMode");
const QString kGeometry = QStringLiteral("window/geometry");
const QString kState = QStringLiteral("window/state");
const QString kDetailMb = QStringLiteral("probes/detailBudgetMiB");
const QString kHMb = QStringLiteral("probes/hBudgetMiB");
}  // namespace

AppSettings::AppSettings(const QString& iniFile)
    : m_s(iniFile.isEmpty() ? std::make_unique<QSettings>()
                            : std::make_unique<QSettings>(iniFile, QSettings::IniFormat)) {}

AppSettings::~AppSettings() = default;

QStringList AppSettings::recentModels() const { return m_s->value(kRecent).toStringList(); }

void AppSettings::addRecentModel(const QString& dir) {
  QStringList list = recentModels();
  list.removeAll(dir);
  list.prepend(dir);
  while (list.size() > kMaxRecent) list.removeLast();
  m_s->setValue(kRecent, list);
}

QString AppSettings::lastModel() const { return m_s->value(kLast).toString(); }
void AppSettings::setLastModel(const QString& dir) { m_s->setValue(kLast, dir); }

QString AppSettings::backend() const { return m_s->value(kBackend, QStringLiteral("auto")).toString(); }
void AppSettings::setBackend(const QString& name) { m_s->setValue(kBackend, name); }
int AppSettings::cpuThreads() const { return m_s->value(kThreads, 0).toInt(); }

SamplingSettings AppSettings::sampling() const {
  SamplingSettings d;
  SamplingSettings s;
  s.temperature = m_s->value(QStringLiteral("sampling/temperature"), d.temperature).toDouble();
  s.topK = m_s->value(QStringLiteral("sampling/topK"), d.topK).toInt();
  s.topP = m_s->value(QStringLiteral("sampling/topP"), d.topP).toDouble();
  s.minP = m_s->value(QStringLiteral("sampling/minP"), d.minP).toDouble();
  s.repetitionPenalty = m_s->value(QStringLiteral("sampling/repetitionPenalty"), d.repetitionPenalty).toDouble();
  s.seed = m_s->value(QStringLiteral("sampling/seed"), d.seed).toULongLong();
  s.maxTokens = m_s->value(QStringLiteral("sampling/maxTokens"), d.maxTokens).toInt();
  s.stopAtEos = m_s->value(QStringLiteral("sampling/stopAtEos"), d.stopAtEos).toBool();
  return s;
}

void AppSettings::setSampling(const SamplingSettings& s) {
  m_s->setValue(QStringLiteral("sampling/temperature"), s.temperature);
  m_s->setValue(QStringLiteral("sampling/topK"), s.topK);
  m_s->setValue(QStringLiteral("sampling/topP"), s.topP);
  m_s->setValue(QStringLiteral("sampling/minP"), s.minP);
  m_s->setValue(QStringLiteral("sampling/repetitionPenalty"), s.repetitionPenalty);
  m_s->setValue(QStringLiteral("sampling/seed"), s.seed);
  m_s->setValue(QStringLiteral("sampling/maxTokens"), s.maxTokens);
  m_s->setValue(QStringLiteral("sampling/stopAtEos"), s.stopAtEos);
}

bool AppSettings::chatMode() const { return m_s->value(kChat, false).toBool(); }
void AppSettings::setChatMode(bool on) { m_s->setValue(kChat, on); }

QByteArray AppSettings::windowGeometry() const { return m_s->value(kGeometry).toByteArray(); }
QByteArray AppSettings::windowState() const { return m_s->value(kState).toByteArray(); }
void AppSettings::setWindowLayout(const QByteArray& geometry, const QByteArray& state) {
  m_s->setValue(kGeometry, geometry);
  m_s->setValue(kState, state);
}

qint64 AppSettings::probeDetailBudget() const { return m_s->value(kDetailMb, 512).toLongLong() << 20; }
qint64 AppSettings::probeHBudget() const { return m_s->value(kHMb, 256).toLongLong() << 20; }
void AppSettings::setProbeBudgets(qint64 detailBytes, qint64 hBytes) {
  m_s->setValue(kDetailMb, detailBytes >> 20);
  m_s->setValue(kHMb, hBytes >> 20);
}

QString AppSettings::lastDirectory(const QString& purpose) const {
  return m_s->value(QStringLiteral("dirs/") + purpose).toString();
}
void AppSettings::setLastDirectory(const QString& purpose, const QString& dir) {
  m_s->setValue(QStringLiteral("dirs/") + purpose, dir);
}
