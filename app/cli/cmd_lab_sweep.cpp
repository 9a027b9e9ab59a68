// mambascope-cli sweep: the Modes Lab's complexity benchmark. Times the recurrence (token by
// token), the parallel scan, the O(L²) selective-kernel convolution and the LTI FFT over growing
// sequence lengths, fits log-log slopes, and fills the S4 paper's table with the measured
// numbers. Methods stop at their time or memory budget and say so. Ctrl-C stops the sweep and
// prints what was measured.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "cmd_lab.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "interrupt.hpp"
#include "mambascope/error.hpp"

namespace mambascope::cli {
namespace {

std::vector<ScanMode> methods_from(const std::string& list_text) {
  std::string list = list_text;
  for (char& ch : list)
    if (ch == ',') ch = ' ';
  std::istringstream in(list);
  std::vector<ScanMode> out;
  std::string name;
  while (in >> name) {
    auto m = parse_mode(name);
    if (!m) throw UsageError("sweep: --methods: unknown method '" + name + "' (recurrent, scan, convolution, lti-fft)");
    out.push_back(*m);
  }
  if (out.empty()) throw UsageError("sweep: --methods is empty");
  return out;
}

}  // namespace

int cmd_sweep(int argc, char** argv) {
  Args a("sweep", "--model DIR [options]",
         "Times each way of running the SSM over growing sequence lengths L: the recurrence token by\n"
         "token, the parallel scan, the selective-kernel convolution (O(L^2): it stops where it runs\n"
         "over the time or memory budget, and says so) and the LTI FFT convolution. --scope layer\n"
         "times one layer's SSM op alone on the CPU (the model's d_inner x d_state and A, synthetic\n"
         "inputs); --scope model times the whole model through the backend (GPU if present). Prints\n"
         "the times, the fitted log-log slopes (1 = linear, 2 = quadratic) and the S4 paper's table.");
  add_model_options(a);
  a.option("--scope", "S", "layer (one layer's SSM op, CPU) or model (whole model, the backend)", "layer")
      .option("--layer", "N", "layer whose shapes, A and Δ bias the layer scope uses", "0")
      .option("--lengths", "LIST", "sequence lengths, ascending", "64,128,...,4096 (CPU) / ...,131072 (GPU)")
      .option("--methods", "LIST", "which methods", "recurrent,scan,convolution,lti-fft")
      .option("--budget-s", "S", "a method stops before a point predicted to take longer", "10")
      .option("--memory-gb", "G", "... or to need more memory", "4 on the CPU, 80% of the free GPU memory")
      .option("--csv", "FILE", "write method,L,seconds,repeats,peak_bytes_estimate")
      .option("--reference", "FILE", "markdown with the attention reference table", "docs/benchmarks.md if present")
      .flag("--json", "print one JSON object instead of tables");
  a.epilog("example:\n  mambascope-cli sweep --model models/mamba-130m-hf --lengths 128,256,512,1024,2048 --csv sweep.csv");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);
  lab::SweepOptions o;
  const std::string scope = a.str("--scope", "layer");
  if (scope != "layer" && scope != "model") throw UsageError("sweep: --scope must be layer or model, got '" + scope + "'");
  o.scope = scope == "layer" ? lab::SweepScope::Layer : lab::SweepScope::Model;
  o.methods = methods_from(a.str("--methods", "recurrent,scan,convolution,lti-fft"));
  o.point_budget_seconds = a.number("--budget-s", 10, 1e-6, 1e6);
  if (a.has("--memory-gb")) o.memory_budget_bytes = a.number("--memory-gb", 4, 1e-6, 1e6) * double(1ull << 30);

  Loaded m = load_model(a, o.scope == lab::SweepScope::Model);
  const ModelConfig& c = m.model->config();
  o.layer = layer_option(a, "--layer", c.n_layer, 0);
  const bool gpu = m.backend && m.backend->name() != "cpu";
  if (a.has("--lengths")) {
    o.lengths.clear();
    for (int64_t v : parse_int_list(a.str("--lengths"), "sweep: --lengths")) o.lengths.push_back(v);
  } else {
    o.lengths.clear();
    for (int64_t L = 64; L <= (gpu ? 131072 : 4096); L *= 2) o.lengths.push_back(L);
  }
  for (size_t i = 0; i < o.lengths.size(); ++i)
    if (o.lengths[i] < 1 || (i && o.lengths[i] <= o.lengths[i - 1]))
      throw UsageError("sweep: --lengths must be positive and ascending");

  InterruptGuard guard;
  const std::atomic<bool>* cancel = guard.begin_generation();
  const lab::SweepResult r = lab::sweep(m.model->checkpoint(), m.backend.get(), o, stderr_progress(cancel));
  guard.end_generation();
  end_progress();

  std::optional<lab::ReferenceCurve> ref;
  std::string ref_path = a.str("--reference", "docs/benchmarks.md");
  if (std::filesystem::exists(ref_path)) ref = lab::parse_attention_reference(read_file(ref_path, "--reference file"));
  else if (a.has("--reference")) throw Error("--reference: no file '" + ref_path + "'");

  if (a.has("--csv")) {
    std::ofstream f(a.str("--csv"));
    if (!f) throw Error("cannot write '" + a.str("--csv") + "'");
    f << lab::sweep_csv(r);
  }
  const auto table = lab::s4_table(r);
  if (a.has("--json")) {
    nlohmann::json series = nlohmann::json::array();
    for (const auto& s : r.series) {
      nlohmann::json pts = nlohmann::json::array();
      for (const auto& p : s.points) pts.push_back({{"L", p.L}, {"seconds", p.seconds}, {"repeats", p.repeats},
                                                    {"peak_bytes_estimate", p.peak_bytes_estimate}});
      series.push_back({{"method", mode_name(s.method)}, {"label", s.label}, {"points", pts},
                        {"slope", std::isfinite(s.slope) ? nlohmann::json(s.slope) : nlohmann::json(nullptr)},
                        {"stopped", s.stopped}});
    }
    nlohmann::json s4 = nlohmann::json::array();
    for (const auto& row : table)
      s4.push_back({{"method", row.method}, {"parallel", row.parallel}, {"train", row.train_theory},
                    {"step", row.step_theory}, {"memory", row.memory_theory}, {"at_L", row.at_L},
                    {"train_seconds", row.train_seconds}, {"step_seconds", row.step_seconds},
                    {"memory_bytes", row.memory_bytes}, {"note", row.note}});
    nlohmann::json out = {{"what", r.what}, {"device", r.device}, {"cancelled", r.cancelled}, {"series", series},
                          {"s4_table", s4}};
    if (ref) {
      nlohmann::json pts = nlohmann::json::array();
      for (auto [L, s] : ref->points) pts.push_back({{"L", L}, {"seconds", s}});
      out["attention_reference"] = {{"source", ref->source}, {"points", pts}, {"note", "reference data, not measured here"}};
    }
    std::cout << out.dump(1) << "\n";
    return 0;
  }

  std::printf("timed: %s\ndevice: %s%s\n\n", r.what.c_str(), r.device.c_str(), r.cancelled ? " (cancelled)" : "");
  std::printf("%9s", "L");
  for (const auto& s : r.series) std::printf(" %16s", mode_name(s.method));
  if (ref) std::printf(" %16s", "attention (ref)");
  std::printf("\n");
  std::map<int64_t, double> ref_at;
  if (ref)
    for (auto [L, s] : ref->points) ref_at[L] = s;
  for (int64_t L : o.lengths) {
    std::printf("%9lld", (long long)L);
    for (const auto& s : r.series) {
      std::string cell = "-";
      for (const auto& p : s.points)
        if (p.L == L) cell = lab::format_seconds(p.seconds);
      std::printf(" %16s", cell.c_str());
    }
    if (ref) {
      auto it = ref_at.find(L);
      std::printf(" %16s", it == ref_at.end() ? "" : lab::format_seconds(it->second).c_str());
    }
    std::printf("\n");
  }
  std::printf("%9s", "slope");
  for (const auto& s : r.series) {
    char buf[32];
    std::snprintf(buf, sizeof buf, std::isfinite(s.slope) ? "%.2f" : "-", s.slope);
    std::printf(" %16s", buf);
  }
  std::printf("\n\n");
  for (const auto& s : r.series)
    if (!s.stopped.empty()) std::printf("%s: %s\n", s.label.c_str(), s.stopped.c_str());
  if (ref) std::printf("attention (ref): %s - reference data, not measured here\n", ref->source.c_str());
  std::printf("\nThe S4 paper's table, measured (slope: fitted over the last points, log-log):\n");
  std::printf("%-38s %-34s %-22s %-10s %-44s %-12s\n", "method", "parallel training", "train (theory)",
              "at L", "inference per step", "memory");
  for (const auto& row : table) {
    char train[64], step[96], mem[64];
    std::snprintf(train, sizeof train, "%s = %s", row.train_theory.c_str(), lab::format_seconds(row.train_seconds).c_str());
    std::snprintf(step, sizeof step, "%s: %s", row.step_theory.c_str(), lab::format_seconds(row.step_seconds).c_str());
    std::snprintf(mem, sizeof mem, "%s", lab::format_bytes(double(row.memory_bytes)).c_str());
    std::printf("%-38s %-34s %-22s %-10lld %-44s %-12s\n", row.method.c_str(), row.parallel.c_str(), train,
                (long long)row.at_L, step, mem);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace mambascope::cli
