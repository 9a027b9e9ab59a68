// Instantiates the selective scan for float storage (one .cu per type so they build in parallel).
#include "cuda/scan_kernel.cuh"

namespace mambascope::cuda {
template <> ScanVariantTable scan_variant_table<float>() { return make_scan_variant_table<float>(); }
}  // namespace mambascope::cuda
