// The Modes Lab's computations (docs/lab.md), shared by the CLI (app/cli/cmd_lab_*.cpp) and the
// app (ui/lab): (a) mode equivalence, (b) the complexity sweep and the S4 table, (c) the
// selective kernel K[t,s] beside the frozen LTI kernel, (d) what selectivity buys (frozen vs
// selective scoring and continuation), (e) Δ interventions, (f) the layer lens. Plain structs
// in, plain structs out; long computations take a Progress (report + cancel flag).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mambascope/backend.hpp"
#include "mambascope/config.hpp"
#include "mambascope/error.hpp"

namespace mambascope {
class Checkpoint;
}

namespace mambascope::lab {

// Thrown by a computation whose Progress::cancel was set (the sweep instead returns what it has).
class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
};

struct Progress {
  std::function<void(double fraction, const std::string& what)> report;  // may be empty
  const std::atomic<bool>* cancel = nullptr;
  bool cancelled() const { return cancel && cancel->load(std::memory_order_relaxed); }
  void operator()(double fraction, const std::string& what) const {
    if (report) report(fraction, what);
  }
  void check() const {  // throws Cancelled
    if (cancelled()) throw Cancelled();
  }
};

// "1.5 GiB", "12.3 ms": how the lab's views and commands print sizes and times.
std::string format_bytes(double bytes);
std::string format_seconds(double seconds);

// ---------------------------------------------------------------------------------------------
// (a) Equivalence: one token sequence through every mode on one backend, compared with the
// recurrent mode (lti-fft: with the recurrence under the same frozen Δ, B, C).

// docs/lab.md: model-level relative tolerance (max |Δ| / max |reference|, per layer for y), for
// fp32 activations; with 16-bit activations (a bf16/fp16 model on the GPU) the modes round at
// different places, so they are held to the bound the CUDA tests hold 16-bit logits to.
constexpr double kModeTolerance = 1e-4;
constexpr double kModeTolerance16 = 3e-2;
double mode_tolerance(const Backend& backend);  // from backend.device().activations

struct ModeEquivalence {
  ScanMode mode = ScanMode::Recurrent;
  std::string skipped;    // non-empty: not run, and why
  std::string reference;  // what it was compared with
  bool is_reference = false;
  double seconds = 0;                // wall time of the forward pass
  size_t peak_bytes_estimate = 0;    // mode_peak_bytes()
  int64_t peak_bytes_measured = -1;  // growth of the process's peak RSS (CPU); -1: unknown
  std::vector<float> y_max_abs;      // {n_layer, L}: max over channels of |y - y_ref|
  std::vector<float> y_scale;        // {n_layer}: max |y_ref| of each layer
  double y_rel = 0;                  // max over layers of max |Δy| / y_scale
  double logits_max_abs = 0, logits_rel = 0;  // relative to max |logits_ref|
  int64_t argmax_agree = 0;          // positions whose argmax equals the reference's
  double tolerance = kModeTolerance;
  bool ok = true;
  bool flagged(int64_t layer, int64_t token, int64_t L) const;  // this cell is over tolerance
};

struct EquivalenceOptions {
  std::vector<ScanMode> modes{ScanMode::Recurrent, ScanMode::Scan, ScanMode::Convolution,
                              ScanMode::LtiFft};
  double tolerance = -1;  // < 0: mode_tolerance(backend)
};

struct EquivalenceReport {
  std::string backend;
  int64_t n_layer = 0, n_tokens = 0;
  std::vector<ModeEquivalence> modes;
  // lti-fft on a selective model: how far the frozen model's logits are from the selective
  // ones (relative), i.e. what selectivity does. -1 when not measured.
  double frozen_vs_selective_rel = -1;
  bool ok = true;
};

EquivalenceReport equivalence(Backend& backend, const ModelConfig& cfg, std::span<const int32_t> ids,
                              const EquivalenceOptions& opts = {}, const Progress& progress = {});
std::string equivalence_json(const EquivalenceReport& r);

// Bytes of the working set one forward pass in `mode` over L tokens allocates, counted from the
// CPU reference's buffers (docs/lab.md lists them); `threads` for the per-thread ones.
size_t mode_peak_bytes(const ModelConfig& cfg, ScanMode mode, int64_t L, int threads, bool all_logits);

// ---------------------------------------------------------------------------------------------
// (b) Complexity sweep over sequence length.

enum class SweepScope {
  Layer,  // one layer's SSM op alone (CPU ops, the model's d_inner × d_state and A), no projections
  Model,  // the whole model through Backend::forward (any backend)
};

struct SweepOptions {
  std::vector<int64_t> lengths{64, 128, 256, 512, 1024, 2048, 4096};  // ascending
  std::vector<ScanMode> methods{ScanMode::Recurrent, ScanMode::Scan, ScanMode::Convolution,
                                ScanMode::LtiFft};
  SweepScope scope = SweepScope::Layer;
  int layer = 0;                       // Layer scope: whose shapes, A and Δ bias
  double point_budget_seconds = 10;    // a method stops before a point predicted to take longer
  double memory_budget_bytes = 0;      // ... or to need more memory; <= 0: sweep_memory_budget()
  double min_seconds = 0.05;           // a point is repeated until this much time is spent ...
  int max_repeats = 5;                 // ... or this often; the fastest repeat counts
  uint64_t seed = 1;
};

struct SweepPoint {
  int64_t L = 0;
  double seconds = 0;  // fastest repeat
  int repeats = 0;
  size_t peak_bytes_estimate = 0;
};

struct SweepSeries {
  ScanMode method = ScanMode::Scan;
  std::string label;  // "recurrent (token by token)", ...
  std::vector<SweepPoint> points;
  double slope = 0;       // log-log slope over the last (up to) 4 points; NaN with < 2 points
  std::string stopped;    // non-empty: why the series ended before the last length
};

// The automatic memory budget: 4 GiB on the CPU (the layer scope, or a CPU backend), 80% of the
// GPU's free memory for a whole-model sweep on the GPU, so that its lengths reach 131072.
double sweep_memory_budget(const Backend* backend, SweepScope scope);

struct SweepResult {
  SweepScope scope = SweepScope::Layer;
  double memory_budget_bytes = 0;  // the budget the sweep ran with
  std::string what;    // what was timed, in words (shapes, backend)
  std::string device;
  std::vector<SweepSeries> series;
  bool cancelled = false;
};

// on_point is called after each measured point (for live charts). Never throws for a method
// that fails, runs out of budget or is not supported by the backend: its series says why it
// stopped. Cancel returns early with
// cancelled = true and the points so far. `backend` is needed for the Model scope only.
SweepResult sweep(const Checkpoint& ckpt, Backend* backend, const SweepOptions& opts,
                  const Progress& progress = {},
                  const std::function<void(const SweepSeries&, const SweepPoint&)>& on_point = {});

// Least-squares slope of log(seconds) against log(L). NaN with fewer than 2 points.
double loglog_slope(std::span<const SweepPoint> points);
std::string sweep_csv(const SweepResult& r);  // method,L,seconds,repeats,peak_bytes_estimate

// The S4 paper's comparison table (Gu et al. 2022, Table 1) with measured numbers from a sweep.
struct S4Row {
  std::string method;
  std::string parallel;      // can training run over all positions at once?
  std::string train_theory, step_theory, memory_theory;  // the paper's asymptotic columns
  int64_t at_L = 0;          // the largest length this method reached
  double train_seconds = 0;  // a whole sequence of at_L tokens
  double step_seconds = 0;   // one generated token after at_L tokens
  size_t memory_bytes = 0;   // estimated working set at at_L
  double slope = 0;
  std::string note;
};
std::vector<S4Row> s4_table(const SweepResult& r);

// The attention reference curve from `markdown` (docs/benchmarks.md): the first table with a
// sequence-length column and an attention column in milliseconds (e.g. "FA-2 (ms)"), or the first
// table under a heading that mentions attention with a length and a milliseconds column or row.
// nullopt when there is none.
struct ReferenceCurve {
  std::string label;   // the heading
  std::string source;  // e.g. "docs/benchmarks.md: FlashAttention-2 ..."
  std::vector<std::pair<int64_t, double>> points;  // (L, seconds)
};
std::optional<ReferenceCurve> parse_attention_reference(std::string_view markdown);

// ---------------------------------------------------------------------------------------------
// (c) The selective kernel K[t,s] (docs/modes.md) of one layer, and the LTI kernel.

// One layer's SSM inputs over a run from the zero state: what the kernel is built from.
struct LayerTrace {
  int64_t L = 0, d = 0, N = 0;
  std::vector<float> delta;  // Δ {L, d} (after softplus)
  std::vector<float> B, C;   // {L, N}
  std::vector<float> A;      // {d, N} = -exp(A_log)
  std::vector<float> D;      // {d}
  std::vector<float> u;      // {L, d} SSM input (conv + SiLU output); empty if not rebuilt
  std::vector<float> y;      // {L, d} SSM output C·h + D·u; empty if not recorded
};

// K_c {L, L} (upper triangle zero), built in log space with the prefix sums in double.
void kernel_channel(const LayerTrace& tr, int64_t channel, float* K);
// K_c[j] = Σ_n C[c,n] exp(j Δ_c A[c,n]) Δ_c B[c,n], j = 0..L-1, from frozen values.
void lti_kernel_channel(const FrozenSsm& f, int layer, const float* A /*{d, N}*/, int64_t channel,
                        int64_t L, float* k);
// ‖K - Toeplitz(k̂)‖_F / ‖K‖_F over the causal triangle, k̂[j] the mean of diagonal j: 0 when
// every row is a shifted copy of one kernel (LTI), up to 1 when no shift-invariant part is left.
double nonstationarity(const float* K, int64_t L);

enum class KernelView { Channel, MeanOverChannels, Rollout };
const char* kernel_view_name(KernelView v);  // "channel", "mean", "rollout"

struct KernelOptions {
  int layer = 0;
  KernelView view = KernelView::MeanOverChannels;
  int64_t channel = 0;  // Channel view
  // The LTI kernel freezes Δ, B, C to the selective run's values averaged over the text
  // (MeanOverInput) or to one token's (AtToken). An LTI model uses its own parameters.
  Freeze::Kind lti_freeze = Freeze::Kind::MeanOverInput;
  int64_t lti_token = 0;  // AtToken
  bool verify = true;  // rebuild u and check that row t of K reproduces y_t
};

struct KernelResult {
  int64_t L = 0;
  int layer = 0;
  KernelView view = KernelView::MeanOverChannels;
  int64_t channel = 0;
  bool signed_values = false;  // Channel view: K itself; mean/rollout: magnitudes
  std::vector<float> K;        // {L, L}: K_c; mean_c |K_c|; or the rollout R
  std::vector<float> K_lti;    // {L, L}: the frozen kernel's Toeplitz matrix, same view
  std::vector<float> lti_kernel;  // {L}: k_c[j], or mean_c |k_c[j]|
  double nonstationarity = 0;     // of the selective kernel (energy-weighted over channels)
  double nonstationarity_lti = 0; // of K_lti (0 up to rounding)
  // max over t, c of |Σ_s K_c[t,s] u_s + D_c u_t - y_t| / max |y| (over the layers shown);
  // -1 when not checked.
  double reconstruction_rel = -1;
  // The same for K_lti against the FFT convolution (cpu::ssm_lti_fft) of the frozen layer
  // applied to the same u: -1 when not checked.
  double lti_reconstruction_rel = -1;
  std::string lti_source;  // where the frozen values came from
};

KernelResult selective_kernel(const Checkpoint& ckpt, Backend& backend, std::span<const int32_t> ids,
                              const KernelOptions& opts, const Progress& progress = {});
// The recorded trace of one layer (Δ, B, C from probes; u rebuilt from the residual stream; y
// from ssm_outputs). An LTI model has no per-token Δ, B, C: they stay empty.
LayerTrace record_layer_trace(const Checkpoint& ckpt, Backend& backend, std::span<const int32_t> ids,
                              int layer, bool with_u_and_y);
std::string kernel_csv(const std::vector<float>& K, int64_t L);

// ---------------------------------------------------------------------------------------------
// (d) What selectivity buys: score and continue the same text with and without freezing.

struct Variant {
  std::string name;            // "selective", "frozen (mean)", "LTI demo", ...
  Backend* backend = nullptr;  // another model's backend compares two models
  Freeze::Kind freeze = Freeze::Kind::None;  // None, MeanOverInput (over the prompt) or AtToken
  int64_t freeze_token = 0;
  bool lti_model = false;  // the model itself is LTI (config "mambascope_lti"): always frozen
};

struct SelectivityOptions {
  int64_t prompt_len = 0;  // continuation starts after ids[0, prompt_len); 0: all of ids
  int64_t score_from = 1;  // positions t >= score_from count in perplexity and accuracy
  int n_continue = 16;
};

struct VariantResult {
  std::string name, freeze_text;
  std::vector<float> logprob;     // {L}: log p(ids[t] | ids[<t]); logprob[0] = 0 (not scored)
  std::vector<int32_t> predicted; // {L}: argmax for position t made after ids[<t]; [0] = -1
  double nll = 0, perplexity = 0, accuracy = 0;  // over the scored positions
  int64_t scored = 0;
  std::vector<int32_t> continuation;  // greedy, after ids[0, prompt_len)
  int64_t continuation_matches = 0;   // leading tokens equal to ids[prompt_len, ...)
};

std::vector<VariantResult> compare_selectivity(std::span<const Variant> variants,
                                               std::span<const int32_t> ids,
                                               const SelectivityOptions& opts,
                                               const Progress& progress = {});

// ---------------------------------------------------------------------------------------------
// (e) Interventions on Δ, (f) the layer lens.

struct InterventionOptions {
  std::vector<DeltaOverride> overrides;
  int n_continue = 16;
  int h_layer = 0;  // layer whose h_t is compared token by token
};

struct InterventionResult {
  int64_t L = 0, n_layer = 0;
  std::vector<float> logits_change;   // {L}: max |Δlogit| at each position
  std::vector<float> kl;              // {L}: KL(original ‖ intervened) of the next-token distributions
  std::vector<int32_t> top_original, top_intervened;  // {L}
  std::vector<float> y_change;        // {n_layer, L}: ‖y' - y‖ / ‖y‖ over channels
  std::vector<float> h_change;        // {L}: ‖h'_t - h_t‖ / ‖h_t‖ in h_layer
  std::vector<float> state_change;    // {n_layer}: the same for the state after the text
  std::vector<int32_t> continuation_original, continuation_intervened;
  bool identical = false;             // logits equal bit for bit
};

InterventionResult intervene(Backend& backend, const ModelConfig& cfg, std::span<const int32_t> ids,
                             const InterventionOptions& opts, const Progress& progress = {});

struct LensResult {
  int64_t n_layer = 0, L = 0;
  int top_k = 0;
  std::vector<int32_t> ids;  // {n_layer, L, top_k}: best tokens of norm_f + lm_head on layer l's residual
  std::vector<float> probs;  // {n_layer, L, top_k}
  const int32_t* top(int64_t layer, int64_t t) const { return &ids[size_t((layer * L + t) * top_k)]; }
};

LensResult layer_lens(const Checkpoint& ckpt, Backend& backend, std::span<const int32_t> ids, int top_k = 3,
                      const Progress& progress = {});

// The greedy continuation of n tokens after `state` (whose last logits are `logits` {vocab}),
// decoding in recurrent mode with `opts` (its freeze, overrides). Used by (d) and (e).
std::vector<int32_t> greedy_continue(Backend& backend, BackendState& state, std::vector<float> logits,
                                     const ForwardOptions& opts, int n, const Progress& progress = {});

}  // namespace mambascope::lab
