// FrameReserve: probe frames for tokens not recorded yet, allocated and touched on a thread of
// their own. Until a ProbeRecorder's ring is full, every token's frames are fresh memory, and
// first touching it (page faults) cost the recording thread ~10× the copies that fill the frames
// (130m, the app's policy: ~200 against ~21 µs a token on the development machine), which set the
// explorer's pace while the ring filled. The reserve moves those faults off the recording thread.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "mambascope/probes.hpp"

namespace mambascope {

// A recorded token's frames by layer: the sizes its vectors reached. Two tokens of one decode
// have the same shape; the reserve makes frames of the shape it was given.
struct FrameShape {
  struct Layer {
    int layer = -1;
    size_t delta = 0, B = 0, C = 0, gate = 0, h_norm = 0, h = 0;
    bool operator==(const Layer&) const = default;
  };
  std::vector<Layer> layers;
  bool operator==(const FrameShape&) const = default;
  static FrameShape of(const TokenProbe& token);
  bool matches(const TokenProbe& token) const;  // == of(token), without building it
  size_t bytes() const;  // of one token's frames
};

class FrameReserve {
 public:
  // Makes `tokens` tokens' frames of `shape`, at most `ahead` of them waiting at a time.
  FrameReserve(FrameShape shape, int64_t tokens, int64_t ahead);
  ~FrameReserve();  // stops making frames and joins the thread
  FrameReserve(const FrameReserve&) = delete;
  FrameReserve& operator=(const FrameReserve&) = delete;

  const FrameShape& shape() const { return shape_; }
  // A made token's frames (layer set, every vector empty with its capacity touched), or false
  // when none is ready: the caller then allocates as before, never waits.
  bool take(std::vector<LayerProbe>& frames);
  bool exhausted();  // every token made and taken

 private:
  void run();

  const FrameShape shape_;
  const int64_t ahead_;
  int64_t left_;  // tokens still to make
  std::mutex m_;
  std::condition_variable room_;  // a taken token makes room for another
  std::deque<std::vector<LayerProbe>> ready_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members it reads
};

}  // namespace mambascope
