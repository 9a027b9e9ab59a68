// Instantiates the selective scan for __half storage (one .cu per type so they build in parallel).
#include "cuda/scan_kernel.cuh"

namespace mambascope::cuda {
template void launch_selective_scan<__half, 1>(const ScanParams&, const ScanLaunch&, cudaStream_t);
template void launch_selective_scan<__half, 2>(const ScanParams&, const ScanLaunch&, cudaStream_t);
template void launch_selective_scan<__half, 4>(const ScanParams&, const ScanLaunch&, cudaStream_t);
}  // namespace mambascope::cuda
