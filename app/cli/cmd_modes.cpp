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
#include "mambascope/lab.hpp"

namespace mambascope::cli {

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
      .option("--tolerance", "R",
              "largest relative difference allowed, on y and on the logits (default: 1e-4 with "
              "fp32 activations, 3e-2 with a bf16/fp16 model on the GPU)",
              "auto")
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
  const double tol = a.has("--tolerance") ? a.number("--tolerance", 1e-4, 0, 1e6) : lab::mode_tolerance(b);
  // The comparison itself is the Modes Lab's (engine/src/lab/equivalence.cpp), so the CLI and
  // the app's equivalence view report the same numbers.
  lab::EquivalenceOptions eo;
  eo.modes = modes;
  eo.tolerance = tol;
  const lab::EquivalenceReport rep = lab::equivalence(b, c, ids, eo);
  nlohmann::json rows = nlohmann::json::array();
  std::vector<std::string> failures;
  std::string note;
  for (const lab::ModeEquivalence& me : rep.modes) {
    nlohmann::json row = {{"mode", mode_name(me.mode)}};
    if (!me.skipped.empty()) {
      row["skipped"] = me.skipped;
    } else if (me.is_reference) {
      row["ms"] = me.seconds * 1e3;
      row["reference"] = true;
    } else {
      double y_max_abs = 0;
      for (float v : me.y_max_abs) y_max_abs = std::max(y_max_abs, double(v));
      row["ms"] = me.seconds * 1e3;
      row["reference"] = me.reference;
      row["y_max_abs"] = y_max_abs;
      row["y_rel"] = me.y_rel;
      row["logits_max_abs"] = me.logits_max_abs;
      row["logits_rel"] = me.logits_rel;
      row["argmax_agree"] = me.argmax_agree;
      row["ok"] = me.ok;
      if (!me.ok) {
        char buf[200];
        std::snprintf(buf, sizeof buf,
                      "%s differs from recurrent by %.3g relative on y and %.3g on the logits",
                      mode_name(me.mode), me.y_rel, me.logits_rel);
        failures.push_back(buf);
      }
    }
    rows.push_back(row);
  }
  if (rep.frozen_vs_selective_rel >= 0)
    note = "lti-fft on a selective model freezes Δ, B, C to their mean over the prompt; against "
           "the\nunfrozen model its logits differ by " +
           std::to_string(rep.frozen_vs_selective_rel) +
           " relative: that gap is what selectivity does.";

  if (a.has("--json")) {
    std::cout << nlohmann::json{{"tokens", ids.size()},
                                {"tolerance", tol},
                                {"backend", b.name()},
                                {"modes", rows},
                                {"ok", failures.empty()}}
                     .dump(1)
              << "\n";
  } else {
    std::printf("%zu tokens, %s backend, tolerance %.3g relative (max |diff| / max |reference|; y per layer)\n",
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
