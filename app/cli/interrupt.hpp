// Ctrl-C while generating cancels the reply, not the program: SIGINT sets the flag a Session
// checks every token. Outside generation (chat waiting for input) it only reminds the user how
// to leave.
#pragma once
#include <atomic>

namespace mambascope::cli {

class InterruptGuard {
 public:
  InterruptGuard();   // installs the SIGINT handler
  ~InterruptGuard();  // restores the previous one
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

  // Arms the flag for one generation (clears a stale Ctrl-C) and returns it.
  const std::atomic<bool>* begin_generation();
  void end_generation();
  bool interrupted() const;
};

}  // namespace mambascope::cli
