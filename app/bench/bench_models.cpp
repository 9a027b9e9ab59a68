// Placeholder until the model benchmark lands.
#include <stdexcept>

#include "bench.hpp"

namespace mambascope::bench {
void bench_models(const Options&) { throw std::runtime_error("model benchmark not built yet"); }
}  // namespace mambascope::bench
