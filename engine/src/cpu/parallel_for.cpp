// Worker pool behind parallel_for: workers sleep on a condition variable between jobs.
#include "cpu/parallel_for.hpp"

#include <cblas.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace mambascope::cpu {
namespace {

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return int(workers_.size()) + 1; }

  void resize(int n) {
    stop();
    stopping_ = false;
    for (int i = 1; i < n; ++i) workers_.emplace_back([this] { loop(); });
  }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    int parts = int(std::min<int64_t>(size(), std::max<int64_t>(1, n / std::max<int64_t>(grain, 1))));
    if (parts <= 1) {
      fn(0, n);
      return;
    }
    std::unique_lock lock(job_mutex_);  // one job at a time (sessions may share the pool)
    {
      std::lock_guard g(m_);
      fn_ = &fn;
      n_ = n;
      parts_ = parts;
      next_part_ = 1;  // part 0 is the caller's
      pending_ = parts - 1;
      error_ = nullptr;
    }
    // Wake only as many workers as there are parts: a worker claims whichever part is next, so
    // any of them will do, and the rest sleep on (waking every worker for a small job had them
    // queue on the mutex: H200 host, 16 threads, a job of 8 parts cost ~170 µs more than 4).
    for (int i = 1; i < parts; ++i) cv_.notify_one();
    std::exception_ptr mine;
    try {
      chunk(fn, n, parts, 0);
    } catch (...) {
      mine = std::current_exception();
    }
    std::unique_lock g(m_);
    // Parts no worker has claimed yet (still waking) are the caller's.
    while (next_part_ < parts_) {
      const int part = next_part_++;
      g.unlock();
      try {
        chunk(fn, n, parts, part);
      } catch (...) {
        if (!mine) mine = std::current_exception();
      }
      g.lock();
      --pending_;
    }
    done_cv_.wait(g, [&] { return pending_ == 0; });
    fn_ = nullptr;
    parts_ = next_part_ = 0;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static void chunk(const std::function<void(int64_t, int64_t)>& fn, int64_t n, int parts, int part) {
    int64_t begin = n * part / parts, end = n * (part + 1) / parts;
    if (begin < end) fn(begin, end);
  }

  // A worker sleeps until a job has an unclaimed part, claims it under the lock (the job stays
  // alive until every claimed part is done: the caller waits for pending_ == 0), runs it, and
  // looks for another.
  void loop() {
    std::unique_lock g(m_);
    for (;;) {
      cv_.wait(g, [&] { return stopping_ || next_part_ < parts_; });
      if (stopping_) return;
      const int part = next_part_++;
      const auto* fn = fn_;
      const int64_t n = n_;
      const int parts = parts_;
      g.unlock();
      std::exception_ptr err;
      try {
        chunk(*fn, n, parts, part);
      } catch (...) {
        err = std::current_exception();
      }
      g.lock();
      if (err && !error_) error_ = err;
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  void stop() {
    {
      std::lock_guard g(m_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::mutex job_mutex_, m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int parts_ = 0, next_part_ = 0, pending_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

int hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

Pool& pool() {
  static Pool p(hardware_threads());
  return p;
}

}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = hardware_threads();
  if (n != pool().size()) pool().resize(n);
  openblas_set_num_threads(n);
}

int num_threads() { return pool().size(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  pool().run(n, grain, fn);
}

}  // namespace mambascope::cpu
