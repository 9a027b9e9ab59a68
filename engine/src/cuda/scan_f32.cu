// Instantiates the selective scan for float storage (one .cu per type so they build in parallel).
#include "cuda/scan_kernel.cuh"

namespace mambascope::cuda {
template void launch_selective_scan<float, 1>(const ScanParams&, const ScanLaunch&, cudaStream_t);
template void launch_selective_scan<float, 2>(const ScanParams&, const ScanLaunch&, cudaStream_t);
template void launch_selective_scan<float, 4>(const ScanParams&, const ScanLaunch&, cudaStream_t);
}  // namespace mambascope::cuda
