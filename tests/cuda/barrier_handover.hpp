// The scan's named-barrier tile hand-over in miniature (barrier_handover.cu), for racecheck.
#pragma once
#include <string>
#include <vector>

namespace mambascope::test {

int handover_stage_values();    // floats per tile
int handover_lanes();           // consumer lanes (partials per tile)
int handover_values_per_lane();
// Runs the kernel over `tiles` tiles of `in` {tiles, stage values}; out {tiles, lanes}. The
// writers hand over with bar.arrive (as the scan does) or, with writer_syncs, with bar.sync.
// Returns "" or the CUDA error.
std::string run_handover(const std::vector<float>& in, int tiles, bool writer_syncs,
                         std::vector<float>& out);

}  // namespace mambascope::test
