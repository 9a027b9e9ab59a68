// The GPU's convolution and lti-fft modes and its freezing of Δ, B, C, against the CPU backend
// (the fp32 reference) and against the GPU's own scan: on the transformers fixtures, the bundled
// models (the story model, the LTI and selective demos) and random checkpoints; odd, tiny, long
// and non-power-of-two lengths; every Freeze kind in every mode; frozen_out; probes; Δ
// interventions in the convolution mode; the errors the CPU backend gives.
//
// Tolerances (rel_error: ‖a − b‖ / ‖b‖ over all logits of the call):
// - fp32, GPU vs CPU: 2e-4 (as backend_test.cpp); GPU mode vs GPU mode: 1e-4 (docs/modes.md);
// - bf16, GPU vs CPU: 3e-2 (the GPU stores activations in bf16); GPU mode vs GPU mode: 1e-2 (the
//   modes round different fp32 sums to bf16 outputs).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>

#include "cuda_test_util.hpp"
#include "engine/hf_fixture.hpp"
#include "mambascope/checkpoint.hpp"
#include "mambascope/random_checkpoint.hpp"

#if MAMBASCOPE_HAVE_CUDA
#include "cuda/ssm_modes.hpp"

namespace mambascope::test {
namespace {

using testing::hf_fixture_cases;
using testing::load_hf_fixture;

const ScanMode kAllModes[] = {ScanMode::Recurrent, ScanMode::Scan, ScanMode::Convolution, ScanMode::LtiFft};

double cpu_tol(DType dt) { return dt == DType::F32 ? 2e-4 : 3e-2; }
// GPU mode vs GPU mode. The recurrent mode keeps its activations in fp32 where the others store
// them in the model's dtype, so against it a bf16 model differs as much as from the CPU.
double gpu_tol(DType dt, ScanMode mode = ScanMode::Scan) {
  if (dt == DType::F32) return 1e-4;
  return mode == ScanMode::Recurrent ? cpu_tol(dt) : 1e-2;
}

// Everything one forward call gives back, from the zero state.
struct Out {
  std::vector<float> logits, ssm_outputs;
  HostState state;
  FrozenSsm frozen;
};

Out run(Backend& be, std::span<const int32_t> ids, ScanMode mode, ForwardOptions o = {}) {
  Out r;
  o.mode = mode;
  o.all_logits = true;
  o.ssm_outputs = &r.ssm_outputs;
  o.frozen_out = &r.frozen;
  auto st = be.new_state();
  be.forward(ids, *st, o, r.logits);
  r.state = st->to_host();
  return r;
}

// A fixture's checkpoint on both backends.
struct OnBoth {
  testing::HfFixture fx;
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<Backend> gpu, cpu;
};
OnBoth on_both(const std::string& fixture) {
  OnBoth b;
  b.fx = load_hf_fixture(fixture);
  b.ckpt = Checkpoint::open(b.fx.dir);
  b.gpu = make_cuda_backend(*b.ckpt);
  b.cpu = make_cpu_backend(*b.ckpt, 0);
  return b;
}

Freeze freeze_of(Freeze::Kind kind, int64_t token = 0, std::shared_ptr<const FrozenSsm> values = {}) {
  Freeze f;
  f.kind = kind;
  f.token = token;
  f.values = std::move(values);
  return f;
}

// Random checkpoints, written once per shape.
const Checkpoint& random_model(DType dt, bool lti, int64_t d_inner, int64_t d_state) {
  ModelConfig c;
  c.d_model = 48; c.n_layer = 2; c.vocab_size = 200; c.d_state = d_state; c.d_conv = 4;
  c.expand = 2; c.d_inner = d_inner; c.dt_rank = 3; c.use_bias = true; c.use_conv_bias = true;
  c.tie_embeddings = false; c.lti = lti;
  return random_checkpoint(std::string("modes_test") + (lti ? "_lti_" : "_") + std::to_string(d_inner) + "x" +
                               std::to_string(d_state),
                           c, dt, 7);
}

// The largest logits error seen per comparison, printed at the end of the run (the report's
// "max error vs the CPU" comes from here).
class ErrorSummary : public ::testing::Environment {
 public:
  static void note(const std::string& what, double tol, double err) {
    const std::string key = what.substr(0, what.find(" L=")) + " [tol " + std::to_string(tol) + "]";
    double& m = worst()[key];
    m = std::max(m, err);
  }
  void TearDown() override {
    for (const auto& [key, err] : worst()) std::printf("max logits rel error: %-60s %.3g\n", key.c_str(), err);
  }

 private:
  static std::map<std::string, double>& worst() {
    static std::map<std::string, double> m;
    return m;
  }
};
[[maybe_unused]] const auto* const kErrorSummary = ::testing::AddGlobalTestEnvironment(new ErrorSummary);

// Logits, SSM outputs, the final state (and, when frozen, the frozen values) agree.
void expect_same(const Out& got, const Out& want, double tol, const std::string& what) {
  SCOPED_TRACE(what);
  ErrorSummary::note(what, tol, rel_error(got.logits, want.logits));
  EXPECT_LT(rel_error(got.logits, want.logits), tol);
  EXPECT_LT(rel_error(got.ssm_outputs, want.ssm_outputs), tol);
  EXPECT_LT(rel_error(got.state.ssm, want.state.ssm), tol);
  EXPECT_LT(rel_error(got.state.conv, want.state.conv), tol);
  EXPECT_EQ(got.state.position, want.state.position);
  ASSERT_EQ(got.frozen.n_layer, want.frozen.n_layer);
  const bool frozen = std::any_of(want.frozen.delta.begin(), want.frozen.delta.end(), [](float v) { return v != 0.f; });
  if (frozen) {
    EXPECT_LT(rel_error(got.frozen.delta, want.frozen.delta), tol);
    EXPECT_LT(rel_error(got.frozen.B, want.frozen.B), tol);
    EXPECT_LT(rel_error(got.frozen.C, want.frozen.C), tol);
  } else {
    EXPECT_EQ(got.frozen.delta, want.frozen.delta);  // nothing frozen: zeros on both
  }
}

class ModesOnHfFixtures : public ::testing::TestWithParam<std::string> {};

TEST_P(ModesOnHfFixtures, EveryModeMatchesTheCpuAndTheGpuScan) {
  SKIP_WITHOUT_GPU();
  auto [fx, ckpt, gpu, cpu] = on_both(GetParam());
  const DType dt = ckpt->storage_dtype();
  const Out scan = run(*gpu, fx.input_ids, ScanMode::Scan);
  for (ScanMode mode : {ScanMode::Convolution, ScanMode::LtiFft}) {
    const Out g = run(*gpu, fx.input_ids, mode);
    expect_same(g, run(*cpu, fx.input_ids, mode), cpu_tol(dt), std::string(mode_name(mode)) + " vs CPU");
    if (mode == ScanMode::Convolution) {
      expect_same(g, scan, gpu_tol(dt), "convolution vs the GPU scan");
      EXPECT_LT(rel_error(g.logits, fx.logits), dt == DType::F32 ? 2e-4 : 3e-2) << "vs transformers";
    } else {
      // lti-fft equals the scan and the recurrence run with the same frozen values.
      auto values = std::make_shared<const FrozenSsm>(g.frozen);
      ForwardOptions o;
      o.freeze = freeze_of(Freeze::Kind::Given, 0, values);
      expect_same(g, run(*gpu, fx.input_ids, ScanMode::Scan, o), gpu_tol(dt), "lti-fft vs frozen scan");
      expect_same(g, run(*gpu, fx.input_ids, ScanMode::Recurrent, o), gpu_tol(dt, ScanMode::Recurrent),
                  "lti-fft vs frozen recurrent");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ModesOnHfFixtures, ::testing::ValuesIn(hf_fixture_cases()));

// Every Freeze kind in every mode: the GPU runs what the CPU runs, frozen_out included.
class FreezeKinds : public ::testing::TestWithParam<ScanMode> {};

TEST_P(FreezeKinds, MatchTheCpu) {
  SKIP_WITHOUT_GPU();
  auto [fx, ckpt, gpu, cpu] = on_both("tied_fp32");
  const ScanMode mode = GetParam();
  const int64_t L = int64_t(fx.input_ids.size());
  // Given values: the CPU's mean freeze, perturbed so that they are nobody's mean.
  auto given = std::make_shared<FrozenSsm>(run(*cpu, fx.input_ids, ScanMode::LtiFft).frozen);
  for (size_t i = 0; i < given->delta.size(); ++i) given->delta[i] *= 1.0f + 0.3f * float(i % 3);
  for (size_t i = 0; i < given->B.size(); ++i) given->B[i] += 0.01f * float(int(i % 7) - 3);
  for (Freeze f : {freeze_of(Freeze::Kind::MeanOverInput), freeze_of(Freeze::Kind::AtToken, 0),
                   freeze_of(Freeze::Kind::AtToken, L / 2), freeze_of(Freeze::Kind::AtToken, L - 1),
                   freeze_of(Freeze::Kind::Given, 0, given)}) {
    ForwardOptions o;
    o.freeze = f;
    const std::string what = std::string(mode_name(mode)) + ", freeze kind " + std::to_string(int(f.kind)) +
                             " token " + std::to_string(f.token);
    const Out g = run(*gpu, fx.input_ids, mode, o);
    expect_same(g, run(*cpu, fx.input_ids, mode, o), 2e-4, what);
    if (f.kind == Freeze::Kind::Given) EXPECT_EQ(g.frozen.delta, given->delta) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, FreezeKinds, ::testing::ValuesIn(kAllModes));

// Lengths around the convolution's 64-token tiles, the 256-token Toeplitz tiles and the FFT's
// powers of two, on random checkpoints in fp32 (selective and LTI, d_state 16 and an odd 5).
class ModeLengths : public ::testing::TestWithParam<std::tuple<bool, int64_t, int64_t>> {};

TEST_P(ModeLengths, ConvolutionAndFftMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const auto [lti, N, L] = GetParam();
  const Checkpoint& ck = random_model(DType::F32, lti, 40, N);
  auto gpu = make_cuda_backend(ck);
  auto cpu = make_cpu_backend(ck, 0);
  const auto ids = random_tokens(L, 200, uint32_t(L));
  const Out scan = run(*gpu, ids, ScanMode::Scan);
  for (ScanMode mode : {ScanMode::Convolution, ScanMode::LtiFft}) {
    const std::string what = std::string(mode_name(mode)) + " L=" + std::to_string(L);
    const Out g = run(*gpu, ids, mode);
    // The CPU's own convolution at 3000 tokens is slow; its scan is the same numbers.
    const ScanMode ref = mode == ScanMode::Convolution && L > 1000 ? ScanMode::Scan : mode;
    expect_same(g, run(*cpu, ids, ref), 2e-4, what + " vs CPU");
    if (mode == ScanMode::Convolution) expect_same(g, scan, 1e-4, what + " vs GPU scan");
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ModeLengths,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(int64_t(16), int64_t(5)),
                                            ::testing::Values(int64_t(1), int64_t(2), int64_t(7), int64_t(63),
                                                              int64_t(64), int64_t(65), int64_t(100),
                                                              int64_t(257), int64_t(3000))));

// A call that continues from a state (non-zero h0 and conv window) and an fp16/bf16 checkpoint.
TEST(GpuModes, ContinueFromAStateInEveryDtype) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    const Checkpoint& ck = random_model(dt, false, 72, 16);
    auto gpu = make_cuda_backend(ck);
    auto cpu = make_cpu_backend(ck, 0);
    const auto ids = random_tokens(300, 200, 11);
    std::span<const int32_t> all(ids);
    for (ScanMode mode : {ScanMode::Convolution, ScanMode::LtiFft}) {
      auto sg = gpu->new_state(), sc = cpu->new_state();
      std::vector<float> lg, lc;
      ForwardOptions o;
      gpu->forward(all.first(130), *sg, o, lg);
      cpu->forward(all.first(130), *sc, o, lc);
      o.mode = mode;
      o.all_logits = true;
      gpu->forward(all.subspan(130), *sg, o, lg);
      cpu->forward(all.subspan(130), *sc, o, lc);
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + mode_name(mode));
      EXPECT_LT(rel_error(lg, lc), cpu_tol(dt));
      EXPECT_LT(rel_error(sg->to_host().ssm, sc->to_host().ssm), cpu_tol(dt));
      EXPECT_EQ(sg->position(), 300);
    }
  }
}

TEST(GpuModes, ProbesMatchTheCpuInEveryMode) {
  SKIP_WITHOUT_GPU();
  auto [fx, ckpt, gpu, cpu] = on_both("dstate_8");
  ProbePolicy pol;
  pol.enabled = true;
  pol.capture_h = true;
  pol.h_layers = {0};
  for (ScanMode mode : kAllModes)
    for (Freeze::Kind kind : {Freeze::Kind::None, Freeze::Kind::MeanOverInput}) {
      if (mode == ScanMode::LtiFft && kind == Freeze::Kind::None) continue;  // the same as the mean
      ProbeRecorder pg(pol), pc(pol);
      ForwardOptions og, oc;
      og.freeze.kind = oc.freeze.kind = kind;
      og.probes = &pg;
      oc.probes = &pc;
      run(*gpu, fx.input_ids, mode, og);
      run(*cpu, fx.input_ids, mode, oc);
      SCOPED_TRACE(std::string(mode_name(mode)) + (kind == Freeze::Kind::None ? "" : " frozen"));
      expect_probes_match(pg, pc, 2e-4);
    }
}

TEST(GpuModes, InterventionsInTheConvolutionMode) {
  SKIP_WITHOUT_GPU();
  auto [fx, ckpt, gpu, cpu] = on_both("long_500");
  ForwardOptions o;
  o.delta_overrides = {{-1, 12, 0.f}, {1, 30, 5.f}, {0, 300, 100.f}, {-1, 499, 0.f}};
  const Out g = run(*gpu, fx.input_ids, ScanMode::Convolution, o);
  expect_same(g, run(*cpu, fx.input_ids, ScanMode::Convolution, o), 2e-4, "vs CPU");
  expect_same(g, run(*gpu, fx.input_ids, ScanMode::Scan, o), 1e-4, "vs GPU scan");
  EXPECT_GT(rel_error(run(*gpu, fx.input_ids, ScanMode::Convolution).state.ssm, g.state.ssm), 1e-3);
}

// The bundled models: the story model (bf16, 8 layers) and the demo pairs (an LTI model runs
// frozen in every mode).
class BundledModels : public ::testing::TestWithParam<std::string> {};

TEST_P(BundledModels, EveryModeMatchesTheCpuAndTheGpuScan) {
  SKIP_WITHOUT_GPU();
  const std::filesystem::path dir =
      std::filesystem::path(MAMBASCOPE_FIXTURES_DIR).parent_path().parent_path() / "models" / GetParam();
  auto ckpt = Checkpoint::open(dir);
  auto gpu = make_cuda_backend(*ckpt);
  auto cpu = make_cpu_backend(*ckpt, 0);
  const DType dt = ckpt->storage_dtype();
  const auto ids = random_tokens(333, int(ckpt->config().vocab_size), 5);
  const Out scan = run(*gpu, ids, ScanMode::Scan);
  for (ScanMode mode : kAllModes) {
    const Out g = run(*gpu, ids, mode);
    expect_same(g, run(*cpu, ids, mode), cpu_tol(dt), std::string(mode_name(mode)) + " vs CPU");
    if (mode != ScanMode::LtiFft || ckpt->config().lti)
      expect_same(g, scan, gpu_tol(dt, mode), std::string(mode_name(mode)) + " vs GPU scan");
  }
}

INSTANTIATE_TEST_SUITE_P(Models, BundledModels,
                         ::testing::Values("mamba-tinystories-9m", "demos/induction-heads-lti",
                                           "demos/induction-heads-selective", "demos/selective-copying-lti",
                                           "demos/selective-copying-selective"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return s;
                         });

TEST(GpuModes, RefusesWhatTheCpuRefusesWithTheSameWords) {
  SKIP_WITHOUT_GPU();
  auto [fx, ckpt, gpu, cpu] = on_both("tied_fp32");
  for (ScanMode mode : kAllModes) EXPECT_TRUE(gpu->supports(mode)) << mode_name(mode);
  auto message = [&](Backend& be, ScanMode mode, const ForwardOptions& o) {
    try {
      run(be, fx.input_ids, mode, o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ForwardOptions interv;
  interv.delta_overrides = {{-1, 3, 0.f}};
  ForwardOptions late;
  late.freeze = freeze_of(Freeze::Kind::AtToken, int64_t(fx.input_ids.size()));
  ForwardOptions wrong;
  auto bad = std::make_shared<FrozenSsm>();
  bad->n_layer = 1;
  wrong.freeze = freeze_of(Freeze::Kind::Given, 0, bad);
  for (const auto& [mode, o] : {std::pair{ScanMode::LtiFft, interv}, std::pair{ScanMode::Scan, late},
                                std::pair{ScanMode::Convolution, wrong}}) {
    const std::string want = message(*cpu, mode, o);
    EXPECT_NE(want, "no error");
    EXPECT_EQ(message(*gpu, mode, o), want);
  }
  // The backend still works after the refusals.
  expect_same(run(*gpu, fx.input_ids, ScanMode::Convolution), run(*cpu, fx.input_ids, ScanMode::Convolution),
              2e-4, "after errors");
}

TEST(GpuModes, AWorkspaceTooLargeForTheGpuIsAnErrorNamingModeAndLength) {
  SKIP_WITHOUT_GPU();
  cuda::DeviceMemory m;
  try {
    cuda::reserve_for_mode(m, size_t(1) << 50, "convolution", 123456);
    FAIL() << "a petabyte was allocated";
  } catch (const Error& e) {
    const std::string s = e.what();
    EXPECT_NE(s.find("convolution"), std::string::npos) << s;
    EXPECT_NE(s.find("123456"), std::string::npos) << s;
  }
  // The failed allocation does not poison later work.
  const Checkpoint& ck = random_model(DType::F32, false, 40, 16);
  auto gpu = make_cuda_backend(ck);
  auto cpu = make_cpu_backend(ck, 0);
  const auto ids = random_tokens(50, 200, 3);
  expect_same(run(*gpu, ids, ScanMode::LtiFft), run(*cpu, ids, ScanMode::LtiFft), 2e-4, "after the failure");
}

}  // namespace
}  // namespace mambascope::test

#else
TEST(GpuModes, NeedsACudaBuild) { GTEST_SKIP() << "built without the CUDA backend"; }
#endif
