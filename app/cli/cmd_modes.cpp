// mambascope-cli modes: runs one prompt through the model in each SSM mode and compares the SSM
// outputs y (before the gate, every layer) and the logits with the recurrent mode's, with the
// time each took. lti-fft is compared with the recurrence under the same freeze of Δ, B, C (on
// a selective model: their mean over the prompt). Exit 1 if any mode is off by more than the
// tolerance, relative to the reference's largest magnitude.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.hpp"
#include "common.hpp"
#include "mambascope/error.hpp"

namespace mambascope::cli {

namespace {

struct Outputs {
  std::vector<float> y;       // {n_layer, L, d_inner}
  std::vector<float> logits;  // {L, vocab}
  double ms = 0;
};

Outputs run_mode(Backend& b, std::span<const int32_t> ids, ScanMode mode, const Freeze& freeze,
                 FrozenSsm* frozen_out) {
  Outputs o;
  ForwardOptions opts;
  opts.mode = mode;
  opts.all_logits = true;
  opts.freeze = freeze;
  opts.ssm_outputs = &o.y;
  opts.frozen_out = frozen_out;
  auto state = b.new_state();
  const auto t0 = std::chrono::steady_clock::now();
  b.forward(ids, *state, opts, o.logits);
  o.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return o;
}

struct Diff {
  double max_abs = 0, rel = 0;
};

Diff compare(const std::vector<float>& got, const std::vector<float>& ref) {
  if (got.size() != ref.size())
    throw Error("mode outputs differ in size (" + std::to_string(got.size()) + " vs " +
                std::to_string(ref.size()) + ")");
  Diff d;
  double scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    d.max_abs = std::max(d.max_abs, double(std::fabs(got[i] - ref[i])));
    scale = std::max(scale, double(std::fabs(ref[i])));
    if (std::isnan(got[i]) != std::isnan(ref[i])) d.max_abs = INFINITY;
  }
  d.rel = scale > 0 ? d.max_abs / scale : d.max_abs;
  return d;
}

}  // namespace

int cmd_modes(int argc, char** argv) {
  Args a(
      "modes", "--model DIR (--prompt TEXT | --prompt-file FILE | --ids IDS) [options]",
      "Runs the prompt in every SSM mode (recurrent, scan, convolution, lti-fft) and prints, for\n"
      "each, the largest absolute and relative difference from the recurrent mode of the SSM\n"
      "outputs y (every layer, before the gate) and of the logits, and the wall time. lti-fft\n"
      "freezes Δ, B, C (a selective model to their mean over the prompt) and is compared with the\n"
      "recurrence under the same freeze; its distance from the unfrozen model is shown too.\n"
      "Relative = max |difference| / max |reference|. Exits with 1 if a mode is off by more than\n"
      "the tolerance.");
  add_model_options(a);
  add_input_options(a, "--prompt", "--prompt-file", true, "prompt");
  a.option("--modes", "LIST", "which modes to run", "recurrent,scan,convolution,lti-fft")
      .option("--tolerance", "R", "largest relative difference allowed, on y and on the logits",
              "1e-4")
      .flag("--json", "print one JSON object instead of a table");
  add_logits_limit_option(a);
  a.epilog(
      "example:\n  mambascope-cli modes --model models/mamba-130m-hf --prompt-file "
      "tests/prompt.txt");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);
  const double tol = a.number("--tolerance", 1e-4, 0, 1e6);
  std::vector<ScanMode> modes;
  {
    std::string list = a.str("--modes", "recurrent,scan,convolution,lti-fft");
    for (char& ch : list)
      if (ch == ',') ch = ' ';
    std::istringstream in(list);
    std::string name;
    while (in >> name) {
      auto m = parse_mode(name);
      if (!m)
        throw UsageError("modes: --modes: unknown mode '" + name +
                         "' (recurrent, scan, convolution, lti-fft)");
      if (std::find(modes.begin(), modes.end(), *m) == modes.end()) modes.push_back(*m);
    }
    if (modes.empty()) throw UsageError("modes: --modes is empty");
  }

  Loaded m = load_model(a);
  const std::vector<int32_t> ids = input_ids(a, *m.model, "--prompt", "--prompt-file");
  if (ids.empty()) throw Error("the prompt is empty: nothing to compare");
  const ModelConfig& c = m.model->config();
  // Reference and one mode's logits are held at once.
  check_logits_budget(2 * int64_t(ids.size()), c.vocab_size, logits_limit_bytes(a),
                      "use a shorter prompt, or raise --max-logits-gb if memory allows");

  if (ids.size() > 1024 && std::find(modes.begin(), modes.end(), ScanMode::Convolution) != modes.end())
    warn("convolution is O(L^2): " + std::to_string(ids.size()) +
         " tokens may take minutes (--modes recurrent,scan,lti-fft leaves it out)");
  Backend& b = *m.backend;
  const Outputs ref = run_mode(b, ids, ScanMode::Recurrent, {}, nullptr);
  nlohmann::json rows = nlohmann::json::array();
  std::vector<std::string> failures;
  std::string note;
  for (ScanMode mode : modes) {
    nlohmann::json row = {{"mode", mode_name(mode)}};
    std::string why;
    if (!b.supports(mode, &why)) {
      row["skipped"] = why.empty() ? "not supported by the " + b.name() + " backend" : why;
      rows.push_back(row);
      continue;
    }
    if (mode == ScanMode::Recurrent) {
      row["ms"] = ref.ms;
      row["reference"] = true;
      rows.push_back(row);
      continue;
    }
    Outputs got;
    const Outputs* against = &ref;
    Outputs frozen_ref;
    if (mode == ScanMode::LtiFft && !c.lti) {
      // A selective model becomes LTI only once Δ, B, C are frozen: compare like with like.
      auto frozen = std::make_shared<FrozenSsm>();
      Freeze mean;
      mean.kind = Freeze::Kind::MeanOverInput;
      got = run_mode(b, ids, mode, mean, frozen.get());
      Freeze given;
      given.kind = Freeze::Kind::Given;
      given.values = frozen;
      frozen_ref = run_mode(b, ids, ScanMode::Recurrent, given, nullptr);
      against = &frozen_ref;
      const Diff sel = compare(got.logits, ref.logits);
      row["reference"] = "recurrent with the same frozen Δ, B, C (mean over the prompt)";
      row["vs_selective_logits_rel"] = sel.rel;
      note =
          "lti-fft on a selective model freezes Δ, B, C to their mean over the prompt; against "
          "the\n"
          "unfrozen model its logits differ by " +
          std::to_string(sel.rel) + " relative: that gap is what selectivity does.";
    } else {
      got = run_mode(b, ids, mode, {}, nullptr);
    }
    const Diff dy = compare(got.y, against->y), dl = compare(got.logits, against->logits);
    row["ms"] = got.ms;
    row["y_max_abs"] = dy.max_abs;
    row["y_rel"] = dy.rel;
    row["logits_max_abs"] = dl.max_abs;
    row["logits_rel"] = dl.rel;
    const bool ok = dy.rel <= tol && dl.rel <= tol;
    row["ok"] = ok;
    if (!ok) {
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    "%s differs from recurrent by %.3g relative on y and %.3g on the logits",
                    mode_name(mode), dy.rel, dl.rel);
      failures.push_back(buf);
    }
    rows.push_back(row);
  }

  if (a.has("--json")) {
    std::cout << nlohmann::json{{"tokens", ids.size()},
                                {"tolerance", tol},
                                {"backend", b.name()},
                                {"modes", rows},
                                {"ok", failures.empty()}}
                     .dump(1)
              << "\n";
  } else {
    std::printf("%zu tokens, %s backend, tolerance %.3g relative (max |diff| / max |reference|)\n",
                ids.size(), b.name().c_str(), tol);
    std::printf("%-12s %10s %12s %12s %14s %12s\n", "mode", "time ms", "y max abs", "y rel",
                "logits max abs", "logits rel");
    for (const auto& r : rows) {
      const std::string name = r["mode"].get<std::string>();
      if (r.contains("skipped")) {
        std::printf("%-12s skipped: %s\n", name.c_str(), r["skipped"].get<std::string>().c_str());
      } else if (r.contains("reference") && r["reference"].is_boolean()) {
        std::printf("%-12s %10.2f %12s\n", name.c_str(), r["ms"].get<double>(), "(reference)");
      } else {
        std::printf("%-12s %10.2f %12.3g %12.3g %14.3g %12.3g  %s\n", name.c_str(),
                    r["ms"].get<double>(), r["y_max_abs"].get<double>(), r["y_rel"].get<double>(),
                    r["logits_max_abs"].get<double>(), r["logits_rel"].get<double>(),
                    r["ok"].get<bool>() ? "ok" : "OVER TOLERANCE");
      }
    }
    if (!note.empty()) std::printf("%s\n", note.c_str());
  }
  std::fflush(stdout);
  if (!failures.empty()) {
    std::string msg = failures[0];
    for (size_t i = 1; i < failures.size(); ++i) msg += "; " + failures[i];
    throw Error(msg + " (tolerance " + std::to_string(tol) + ")");
  }
  return 0;
}

}  // namespace mambascope::cli
