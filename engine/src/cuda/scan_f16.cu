// Instantiates the selective scan for __half storage (one .cu per type so they build in parallel).
#include "cuda/scan_kernel.cuh"

namespace mambascope::cuda {
template <> ScanVariantTable scan_variant_table<__half>() { return make_scan_variant_table<__half>(); }
}  // namespace mambascope::cuda
