// InterruptGuard (interrupt.hpp). The handler touches only lock-free atomics and write(2),
// which is all a signal handler may do.
#include "interrupt.hpp"

#include <unistd.h>

#include <csignal>
#include <cstring>

namespace mambascope::cli {

namespace {

std::atomic<bool> g_cancel{false};
std::atomic<bool> g_generating{false};
struct sigaction g_previous;

void on_sigint(int) {
  if (g_generating.load()) {
    g_cancel.store(true);
  } else {
    const char msg[] = "\n(Ctrl-D or /quit leaves)\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
  }
}

}  // namespace

InterruptGuard::InterruptGuard() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a blocked read of the next line carries on
  sigaction(SIGINT, &sa, &g_previous);
}

InterruptGuard::~InterruptGuard() { sigaction(SIGINT, &g_previous, nullptr); }

const std::atomic<bool>* InterruptGuard::begin_generation() {
  g_cancel.store(false);
  g_generating.store(true);
  return &g_cancel;
}

void InterruptGuard::end_generation() { g_generating.store(false); }

bool InterruptGuard::interrupted() const { return g_cancel.load(); }

}  // namespace mambascope::cli
