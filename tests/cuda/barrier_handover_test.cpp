// The named-barrier hand-over model (barrier_handover.cu) delivers every tile intact: the check
// that racecheck's verdict on the pattern can be read against.
#include <gtest/gtest.h>

#include <vector>

#include "cuda_test_util.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include "barrier_handover.hpp"
#endif

namespace mambascope::test {

namespace {

void expect_every_tile_intact(bool writer_syncs) {
#if MAMBASCOPE_HAVE_CUDA
  const int tiles = 37;  // odd: both stages, and a last tile on stage 0
  const int nv = handover_stage_values(), lanes = handover_lanes(), per = handover_values_per_lane();
  std::vector<float> in(size_t(tiles) * nv);
  // Small integers: every sum is exact in fp32, so any stale or torn read shows.
  for (size_t i = 0; i < in.size(); ++i) in[i] = float(int((i * 2654435761u) >> 20) % 17 - 8);
  std::vector<float> out;
  ASSERT_EQ(run_handover(in, tiles, writer_syncs, out), "");
  for (int kt = 0; kt < tiles; ++kt)
    for (int l = 0; l < lanes; ++l) {
      float s = 0.f;
      for (int j = 0; j < per; ++j) s += in[size_t(kt) * nv + l * per + j];
      ASSERT_EQ(out[size_t(kt) * lanes + l], s * float(kt + 1)) << "tile " << kt << " lane " << l;
    }
#else
  (void)writer_syncs;
#endif
}

}  // namespace

// The scan's way: writers bar.arrive, readers bar.sync.
TEST(BarrierHandover, ArriveThenSyncDeliversEveryTileIntact) {
  SKIP_WITHOUT_GPU();
  expect_every_tile_intact(false);
}

// Both sides bar.sync: the reference that racecheck's report on the first is compared with.
TEST(BarrierHandover, SyncOnBothSidesDeliversEveryTileIntact) {
  SKIP_WITHOUT_GPU();
  expect_every_tile_intact(true);
}

}  // namespace mambascope::test
