// Memory accounting and trimming of the per-token probe copies.
#include "core/tokendata.h"

namespace {
template <typename T>
void release(std::vector<T>& v) {
  std::vector<T>().swap(v);
}
}  // namespace

size_t LayerFrame::detailBytes() const {
  return (delta.size() + b.size() + c.size() + gate.size() + hNorm.size()) * sizeof(float);
}

const LayerFrame* ProbeFrame::layer(int l) const {
  for (const LayerFrame& f : layers)
    if (f.layer == l) return &f;
  return nullptr;
}

size_t ProbeFrame::detailBytes() const {
  size_t n = 0;
  for (const LayerFrame& f : layers) n += f.detailBytes();
  return n;
}

size_t ProbeFrame::hBytes() const {
  size_t n = 0;
  for (const LayerFrame& f : layers) n += f.hBytes();
  return n;
}

void ProbeFrame::dropDetails() {
  for (LayerFrame& f : layers) {
    release(f.delta);
    release(f.b);
    release(f.c);
    release(f.gate);
    release(f.hNorm);
  }
}

void ProbeFrame::dropH() {
  for (LayerFrame& f : layers) release(f.h);
}
