// FrameReserve: a thread that allocates and touches probe frames ahead of the recording thread.
#include "frame_reserve.hpp"

namespace mambascope {

FrameShape FrameShape::of(const TokenProbe& token) {
  FrameShape s;
  s.layers.reserve(token.layers.size());
  for (const LayerProbe& p : token.layers)
    s.layers.push_back({p.layer, p.delta.size(), p.B.size(), p.C.size(), p.gate.size(), p.h_norm.size(), p.h.size()});
  return s;
}

bool FrameShape::matches(const TokenProbe& token) const {
  if (token.layers.size() != layers.size()) return false;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerProbe& p = token.layers[i];
    const Layer& l = layers[i];
    if (p.layer != l.layer || p.delta.size() != l.delta || p.B.size() != l.B || p.C.size() != l.C ||
        p.gate.size() != l.gate || p.h_norm.size() != l.h_norm || p.h.size() != l.h)
      return false;
  }
  return true;
}

size_t FrameShape::bytes() const {
  size_t n = 0;
  for (const Layer& l : layers) n += l.delta + l.B + l.C + l.gate + l.h_norm + l.h;
  return n * sizeof(float);
}

FrameReserve::FrameReserve(FrameShape shape, int64_t tokens, int64_t ahead)
    : shape_(std::move(shape)), ahead_(ahead < 1 ? 1 : ahead), left_(tokens), thread_([this] { run(); }) {}

FrameReserve::~FrameReserve() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  room_.notify_all();
  thread_.join();
}

bool FrameReserve::take(std::vector<LayerProbe>& frames) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (ready_.empty()) return false;
    frames = std::move(ready_.front());
    ready_.pop_front();
  }
  room_.notify_one();
  return true;
}

bool FrameReserve::exhausted() {
  std::lock_guard<std::mutex> lock(m_);
  return left_ <= 0 && ready_.empty();
}

void FrameReserve::run() {
  // resize writes every value (the pages are touched here, not on the recording thread); clear
  // keeps the capacity, so the frames come back empty as ProbeRecorder::slot promises.
  auto touched = [](std::vector<float>& v, size_t n) {
    v.resize(n);
    v.clear();
  };
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(m_);
      room_.wait(lock, [&] { return stop_ || left_ <= 0 || int64_t(ready_.size()) < ahead_; });
      if (stop_ || left_ <= 0) return;
      --left_;
    }
    std::vector<LayerProbe> frames(shape_.layers.size());
    for (size_t i = 0; i < frames.size(); ++i) {
      const FrameShape::Layer& s = shape_.layers[i];
      LayerProbe& p = frames[i];
      p.layer = s.layer;
      touched(p.delta, s.delta);
      touched(p.B, s.B);
      touched(p.C, s.C);
      touched(p.gate, s.gate);
      touched(p.h_norm, s.h_norm);
      touched(p.h, s.h);
    }
    std::lock_guard<std::mutex> lock(m_);
    if (stop_) return;
    ready_.push_back(std::move(frames));
  }
}

}  // namespace mambascope
