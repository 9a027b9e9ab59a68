// Instantiates the selective scan for __nv_bfloat16 storage (one .cu per type so they build in parallel).
#include "cuda/scan_kernel.cuh"

namespace mambascope::cuda {
template void launch_selective_scan<__nv_bfloat16, 1>(const ScanParams&, const ScanLaunch&, cudaStream_t);
template void launch_selective_scan<__nv_bfloat16, 2>(const ScanParams&, const ScanLaunch&, cudaStream_t);
template void launch_selective_scan<__nv_bfloat16, 4>(const ScanParams&, const ScanLaunch&, cudaStream_t);
}  // namespace mambascope::cuda
