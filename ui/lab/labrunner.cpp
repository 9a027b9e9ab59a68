// LabRunner: lab tasks on the engine thread, results back on the GUI thread.
#include "lab/labrunner.h"

#include <QMetaObject>
#include <QPointer>
#include <chrono>
#include <new>

#include "core/enginecontroller.h"
#include "core/engineworker.h"

namespace lab = mambascope::lab;

LabRunner::LabRunner(EngineController* engine, QObject* parent) : QObject(parent), m_engine(engine) {}

void LabRunner::post(std::function<void()> fn) {
  // Queued on this object: dropped by Qt if the runner is gone by then.
  QMetaObject::invokeMethod(this, std::move(fn), Qt::QueuedConnection);
}

bool LabRunner::start(const QString& what, Task task) {
  if (m_running) return false;
  m_running = true;
  m_cancel = std::make_shared<std::atomic<bool>>(false);
  Q_EMIT started(what);
  Q_EMIT runningChanged(true);
  Q_EMIT progressed(0, what);
  QPointer<LabRunner> self(this);
  m_engine->runTask([self, task = std::move(task), cancel = m_cancel](const EngineAccess& engine) {
    using Clock = std::chrono::steady_clock;
    auto last = std::make_shared<Clock::time_point>(Clock::time_point{});
    lab::Progress progress;
    progress.cancel = cancel.get();
    progress.report = [self, last](double f, const std::string& what) {
      const auto now = Clock::now();
      if (now - *last < std::chrono::milliseconds(50) && f < 1) return;
      *last = now;
      const QString text = QString::fromStdString(what);
      if (self) self->post([self, f, text] {
        if (self) Q_EMIT self->progressed(f, text);
      });
    };
    // Everything is caught here: a lab never shows up as a failed generation.
    std::function<void()> onGui;
    try {
      if (!engine.model || !engine.backend) throw mambascope::Error("load a model first");
      Deliver deliver = task(engine, progress);
      onGui = [self, deliver] {
        if (!self) return;
        if (deliver) deliver();
        self->end();
        Q_EMIT self->finished();
      };
    } catch (const lab::Cancelled&) {
      onGui = [self] {
        if (!self) return;
        self->end();
        Q_EMIT self->cancelled();
      };
    } catch (const std::bad_alloc&) {
      onGui = [self] {
        if (!self) return;
        self->end();
        Q_EMIT self->failed(tr("out of memory: try a shorter text or smaller lengths"));
      };
    } catch (const std::exception& e) {
      const QString message = QString::fromUtf8(e.what());
      onGui = [self, message] {
        if (!self) return;
        self->end();
        Q_EMIT self->failed(message);
      };
    }
    if (self) self->post(std::move(onGui));
  });
  return true;
}

void LabRunner::cancel() {
  if (m_cancel) m_cancel->store(true);
}

void LabRunner::end() {
  m_running = false;
  Q_EMIT runningChanged(false);
}
