// Instantiates the selective scan for __nv_bfloat16 storage (one .cu per type so they build in parallel).
#include "cuda/scan_kernel.cuh"

namespace mambascope::cuda {
template <> ScanVariantTable scan_variant_table<__nv_bfloat16>() { return make_scan_variant_table<__nv_bfloat16>(); }
}  // namespace mambascope::cuda
