// The fixed cuBLASLt algorithms for the prefill's projections (gemm_table.hpp): the table, the
// once-per-shape check of an entry, and the call.
#include "cuda/gemm_table.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>

#include "cuda/cuda_check.hpp"

namespace mambascope::cuda {
namespace {

constexpr int64_t kAnyRows = std::numeric_limits<int64_t>::max();
// What a table algorithm may ask for (the H200 entries ask for 4 bytes), per (device, stream).
constexpr size_t kWorkspaceBytes = size_t(1) << 20;

cudaDataType_t lt_type(DType dt) {
  switch (dt) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

// One configuration checked for one shape: descriptors, the algorithm and what it needs.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
  uint32_t align_a = 16, align_b = 16, align_c = 16;  // bytes the kernel needs of W, x, y
  bool ok = false;
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

using PlanKey = std::tuple<int, int, int, int64_t, int64_t, int64_t, int64_t, int64_t,  // dev, dt, ydt, n, in, out, ldx, ldy
                           int, int, int, int, int, int, int, int, int>;                // the config
PlanKey plan_key(int dev, const LinearArgs& a, const LtAlgoConfig& c) {
  return {dev, int(a.dt), int(a.ydt), a.n, a.in_f, a.out_f, a.ldx, a.ldy, c.algo, c.tile,
          c.stages, c.splitk, c.reduction, c.swizzle, c.custom, c.inner_shape, c.cluster_shape};
}

// Process-wide state: one cuBLASLt handle per device, checked plans, workspaces per (device,
// stream) like cuBLAS keeps its own. Handles and workspaces live as long as the process (they
// are small; freeing them at exit would race the CUDA runtime's own teardown).
struct LtState {
  std::mutex mu;
  std::map<int, cublasLtHandle_t> handles;
  std::map<int, int> sm;  // device -> compute capability
  std::map<PlanKey, std::shared_ptr<Plan>> plans;
  std::map<std::pair<int, cudaStream_t>, void*> workspaces;
  std::optional<std::vector<GemmTableEntry>> table;  // null: the built-in one
  std::atomic<bool> enabled{true};
};
LtState& state() {
  static LtState* s = [] {
    auto* st = new LtState;
    if (const char* e = std::getenv("MAMBASCOPE_GEMM_TABLE")) st->enabled = std::atoi(e) != 0;
    return st;
  }();
  return *s;
}

// Under state().mu.
cublasLtHandle_t handle_for(LtState& s, int dev) {
  auto it = s.handles.find(dev);
  if (it != s.handles.end()) return it->second;
  cublasLtHandle_t h = nullptr;
  MS_CUDA_CHECK(cublasLtCreate(&h));
  s.handles[dev] = h;
  return h;
}
int sm_of(LtState& s, int dev) {
  auto it = s.sm.find(dev);
  if (it != s.sm.end()) return it->second;
  int major = 0, minor = 0;
  MS_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  MS_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return s.sm[dev] = major * 10 + minor;
}

template <typename T>
bool set_config(cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attr, int v) {
  if (v < 0) return true;  // left at the library's value
  const T t = T(v);
  return cublasLtMatmulAlgoConfigSetAttribute(&algo, attr, &t, sizeof t) == CUBLAS_STATUS_SUCCESS;
}

// The operation and operand layouts of `a` in p; false if cuBLASLt refused one.
bool describe(Plan& p, const LinearArgs& a) {
  const cudaDataType_t t = lt_type(a.dt), yt = lt_type(a.ydt);
  // Row-major y {n, out_f} = x W^T is column-major y^T = op(W^T) x^T, as in linear().
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  return !cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) &&
         !cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) &&
         !cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) &&
         !cublasLtMatrixLayoutCreate(&p.a, t, uint64_t(a.in_f), uint64_t(a.out_f), a.in_f) &&
         !cublasLtMatrixLayoutCreate(&p.b, t, uint64_t(a.in_f), uint64_t(a.n), a.ldx) &&
         !cublasLtMatrixLayoutCreate(&p.c, yt, uint64_t(a.out_f), uint64_t(a.n), a.ldy);
}

// Builds and checks `cfg` for the shape of `a`; a plan that is not ok is kept too, so that a
// rejected entry is asked about once.
std::shared_ptr<Plan> make_plan(cublasLtHandle_t h, const LinearArgs& a, const LtAlgoConfig& cfg) {
  auto p = std::make_shared<Plan>();
  const cudaDataType_t t = lt_type(a.dt), yt = lt_type(a.ydt);
  if (!describe(*p, a)) return p;
  if (cfg.algo < 0 ||
      cublasLtMatmulAlgoInit(h, CUBLAS_COMPUTE_32F, CUDA_R_32F, t, t, yt, yt, cfg.algo, &p->algo))
    return p;
  const bool set =
      set_config<uint32_t>(p->algo, CUBLASLT_ALGO_CONFIG_TILE_ID, cfg.tile) &&
      set_config<uint32_t>(p->algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, cfg.stages) &&
      set_config<int32_t>(p->algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, cfg.splitk) &&
      set_config<uint32_t>(p->algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, cfg.reduction) &&
      set_config<uint32_t>(p->algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, cfg.swizzle) &&
      set_config<uint32_t>(p->algo, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, cfg.custom) &&
      set_config<uint16_t>(p->algo, CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID, cfg.inner_shape) &&
      set_config<uint16_t>(p->algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, cfg.cluster_shape);
  if (!set) return p;
  cublasLtMatmulHeuristicResult_t r{};
  if (cublasLtMatmulAlgoCheck(h, p->desc, p->a, p->b, p->c, p->c, &p->algo, &r) ||
      r.state != CUBLAS_STATUS_SUCCESS || r.workspaceSize > kWorkspaceBytes)
    return p;
  p->workspace = r.workspaceSize;
  auto align = [&](cublasLtMatmulAlgoCapAttributes_t attr, uint32_t& out) {
    uint32_t v = 0;
    size_t n = 0;
    if (cublasLtMatmulAlgoCapGetAttribute(&p->algo, attr, &v, sizeof v, &n) == CUBLAS_STATUS_SUCCESS && v > 0)
      out = std::max<uint32_t>(v, 1);
  };
  align(CUBLASLT_ALGO_CAP_MIN_ALIGNMENT_A_BYTES, p->align_a);
  align(CUBLASLT_ALGO_CAP_MIN_ALIGNMENT_B_BYTES, p->align_b);
  align(CUBLASLT_ALGO_CAP_MIN_ALIGNMENT_C_BYTES, p->align_c);
  p->ok = true;
  return p;
}

// The checked plan for (current device, a, cfg), made on first use.
std::shared_ptr<Plan> plan_for(LtState& s, int dev, const LinearArgs& a, const LtAlgoConfig& cfg) {
  const PlanKey key = plan_key(dev, a, cfg);
  auto it = s.plans.find(key);
  if (it != s.plans.end()) return it->second;
  if (s.plans.size() >= 1024) s.plans.clear();  // many prompt lengths: start over (plans are shared_ptrs)
  return s.plans[key] = make_plan(handle_for(s, dev), a, cfg);
}

// The entry covering `a` on a device of compute capability `sm`, under state().mu.
const GemmTableEntry* find_entry(LtState& s, int sm, const LinearArgs& a) {
  if (!s.enabled) return nullptr;
  for (const GemmTableEntry& e : s.table ? *s.table : builtin_gemm_table())
    if (e.sm == sm && e.dt == a.dt && e.ydt == a.ydt && e.out_f == a.out_f && e.in_f == a.in_f &&
        a.n >= e.min_rows && a.n <= e.max_rows)
      return &e;
  return nullptr;
}

bool aligned(const void* p, uint32_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

// Runs a checked plan; false where this call's pointers or stream do not suit it.
bool run_plan(LtState& s, std::unique_lock<std::mutex>& lock, int dev, const Plan& p,
              const LinearArgs& a, cudaStream_t stream) {
  if (!p.ok || !aligned(a.W, p.align_a) || !aligned(a.x, p.align_b) || !aligned(a.y, p.align_c))
    return false;
  void*& ws = s.workspaces[{dev, stream}];
  if (!ws && p.workspace > 0) {
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    MS_CUDA_CHECK(cudaStreamIsCapturing(stream, &cap));
    if (cap != cudaStreamCaptureStatusNone) return false;  // no allocation inside a capture
    MS_CUDA_CHECK(cudaMalloc(&ws, kWorkspaceBytes));
  }
  const cublasLtHandle_t h = handle_for(s, dev);
  void* const w = ws;
  lock.unlock();  // the plan is held by a shared_ptr; the call needs no lock
  const float alpha = 1.f;
  // A refusal here (nothing was launched) leaves the projection to cublasGemmEx too.
  return cublasLtMatmul(h, p.desc, &alpha, a.W, p.a, a.x, p.b, &a.beta, a.y, p.c, a.y, p.c, &p.algo,
                        w, p.workspace > 0 ? kWorkspaceBytes : 0, stream) == CUBLAS_STATUS_SUCCESS;
}

}  // namespace

std::string to_string(const LtAlgoConfig& c) {
  return "algo " + std::to_string(c.algo) + " tile " + std::to_string(c.tile) + " stages " +
         std::to_string(c.stages) + " splitk " + std::to_string(c.splitk) + " reduction " +
         std::to_string(c.reduction) + " swizzle " + std::to_string(c.swizzle) + " custom " +
         std::to_string(c.custom) + " inner " + std::to_string(c.inner_shape) + " cluster " +
         std::to_string(c.cluster_shape);
}

LtAlgoConfig lt_algo_config(const cublasLtMatmulAlgo_t& algo) {
  LtAlgoConfig c;
  auto get = [&](cublasLtMatmulAlgoConfigAttributes_t attr, auto zero) {
    decltype(zero) v = zero;
    size_t n = 0;
    if (cublasLtMatmulAlgoConfigGetAttribute(&algo, attr, &v, sizeof v, &n) != CUBLAS_STATUS_SUCCESS)
      return -1;
    return int(v);
  };
  c.algo = get(CUBLASLT_ALGO_CONFIG_ID, int32_t(0));
  c.tile = get(CUBLASLT_ALGO_CONFIG_TILE_ID, uint32_t(0));
  c.stages = get(CUBLASLT_ALGO_CONFIG_STAGES_ID, uint32_t(0));
  c.splitk = get(CUBLASLT_ALGO_CONFIG_SPLITK_NUM, int32_t(0));
  c.reduction = get(CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, uint32_t(0));
  c.swizzle = get(CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, uint32_t(0));
  c.custom = get(CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, uint32_t(0));
  c.inner_shape = get(CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID, uint16_t(0));
  c.cluster_shape = get(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, uint16_t(0));
  return c;
}

// Measured on the H200 (sm_90, CUDA 13.0's cuBLAS) with `mambascope-bench --models 2.8b:ops` in
// three device runs: configurations of cuBLASLt heuristic candidates that beat cublasGemmEx's
// choice in every run, at 2048 rows (used for 2048..4095) and at 8192 (used from 8192 on; at 2048
// the 8192 choices made the prefill 12% slower). µs, third run, table against cublasGemmEx.
// At 8192, x_proj's best candidate is the kernel cublasGemmEx runs already, and out_proj's ran
// as fast as cublasGemmEx's under ncu (287 µs both) and within the noise in the prefill: no
// entries. Each candidate rebuilt from its configuration ran as fast as cuBLASLt's own algorithm
// object, with its bits.
const std::vector<GemmTableEntry>& builtin_gemm_table() {
  constexpr int64_t k8k = 8192, k2k = 2048, k4k = 4095;
  static const std::vector<GemmTableEntry> t = {
      // in_proj: 144 against 153 (128x160 tiles) / 537 against 567 (176x128, 1x2x1 clusters;
      // in the prefill under ncu 520 against 549)
      {"2.8b in_proj", 90, DType::BF16, DType::BF16, 10240, 2560, k2k, k4k, {66, 29, 35, 1, 0, 0, 1, 0, 3}},
      {"2.8b in_proj", 90, DType::BF16, DType::BF16, 10240, 2560, k8k, kAnyRows, {66, 201, 35, 1, 0, 0, 2, 0, 5}},
      // x_proj: 22.1 against 23.8 (64x64)
      {"2.8b x_proj", 90, DType::BF16, DType::BF16, 192, 5120, k2k, k4k, {66, 15, 35, 1, 0, 0, 3, 0, 8}},
      // dt_proj: 22.7 against 24.6 / 41.8 against 48.3 (128x160)
      {"2.8b dt_proj", 90, DType::BF16, DType::BF16, 5120, 160, k2k, k4k, {66, 29, 35, 1, 0, 0, 1, 0, 3}},
      {"2.8b dt_proj", 90, DType::BF16, DType::BF16, 5120, 160, k8k, kAnyRows, {66, 29, 35, 1, 0, 0, 1, 0, 3}},
      // out_proj into the fp32 residual (beta = 1): 85.1 against 87.1 (128x160)
      {"2.8b out_proj", 90, DType::BF16, DType::F32, 2560, 5120, k2k, k4k, {66, 29, 35, 1, 0, 0, 1, 0, 3}},
  };
  return t;
}

std::vector<LtAlgoConfig> lt_heuristic_configs(const LinearArgs& a, int count) {
  LtState& s = state();
  int dev = 0;
  MS_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard lock(s.mu);
  Plan p;
  if (!describe(p, a)) throw Error("cuBLASLt cannot describe this projection");
  cublasLtMatmulPreference_t pref;
  MS_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = kWorkspaceBytes;
  std::vector<cublasLtMatmulHeuristicResult_t> res(size_t(std::max(count, 1)));
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  if (st == CUBLAS_STATUS_SUCCESS)
    cublasLtMatmulAlgoGetHeuristic(handle_for(s, dev), p.desc, p.a, p.b, p.c, p.c, pref, count,
                                   res.data(), &found);
  cublasLtMatmulPreferenceDestroy(pref);
  std::vector<LtAlgoConfig> out;
  for (int i = 0; i < found; ++i) out.push_back(lt_algo_config(res[size_t(i)].algo));
  return out;
}

bool linear_lt(const LtAlgoConfig& cfg, const LinearArgs& a, cudaStream_t stream) {
  if (a.n == 0) return true;
  LtState& s = state();
  int dev = 0;
  MS_CUDA_CHECK(cudaGetDevice(&dev));
  std::unique_lock lock(s.mu);
  const auto plan = plan_for(s, dev, a, cfg);
  return run_plan(s, lock, dev, *plan, a, stream);
}

bool linear_from_table(const LinearArgs& a, cudaStream_t stream) {
  LtState& s = state();
  if (!s.enabled || a.n == 0) return false;
  int dev = 0;
  MS_CUDA_CHECK(cudaGetDevice(&dev));
  std::unique_lock lock(s.mu);
  const GemmTableEntry* e = find_entry(s, sm_of(s, dev), a);
  if (!e) return false;
  const auto plan = plan_for(s, dev, a, e->cfg);
  return run_plan(s, lock, dev, *plan, a, stream);
}

bool gemm_table_covers(const LinearArgs& a, std::string* entry_name) {
  LtState& s = state();
  int dev = 0;
  MS_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard lock(s.mu);
  const GemmTableEntry* e = find_entry(s, sm_of(s, dev), a);
  if (!e || !plan_for(s, dev, a, e->cfg)->ok) return false;
  if (entry_name) *entry_name = e->name;
  return true;
}

void set_gemm_table(const std::vector<GemmTableEntry>& entries) {
  std::lock_guard lock(state().mu);
  state().table = entries;
}

void use_builtin_gemm_table() {
  std::lock_guard lock(state().mu);
  state().table.reset();
}

void set_gemm_table_enabled(bool on) { state().enabled = on; }
bool gemm_table_enabled() { return state().enabled; }

}  // namespace mambascope::cuda
