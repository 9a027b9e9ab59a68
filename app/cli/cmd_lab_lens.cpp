// mambascope-cli lens: the layer lens. The model's final norm and head applied to the residual
// stream after every layer: which token each layer would predict at each position, and how sure.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cmd_lab.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "mambascope/error.hpp"

namespace mambascope::cli {

int cmd_lens(int argc, char** argv) {
  Args a("lens", "--model DIR (--prompt TEXT | --prompt-file FILE | --ids IDS) [options]",
         "Applies norm_f + lm_head to the residual stream after every layer and prints, for each\n"
         "position, each layer's top prediction for the next token (with its probability). The last\n"
         "layer's row is the model's own prediction.");
  add_model_options(a);
  add_input_options(a, "--prompt", "--prompt-file", true, "prompt");
  a.option("--top", "K", "predictions kept per layer and position (the JSON has them all)", "3")
      .option("--layers", "LIST", "layers to print", "all")
      .flag("--json", "print one JSON object");
  a.epilog("example:\n  mambascope-cli lens --model models/mamba-130m-hf --prompt \"The Eiffel Tower is in\" --layers 0,6,12,18,23");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);
  Loaded m = load_model(a);
  const ModelConfig& c = m.model->config();
  const int top = int(a.integer("--top", 3, 1, 100));
  std::vector<int64_t> layers;
  if (a.has("--layers") && a.str("--layers") != "all") {
    for (int64_t l : parse_int_list(a.str("--layers"), "lens: --layers")) {
      if (l < 0 || l >= c.n_layer)
        throw UsageError("lens: --layers: layer " + std::to_string(l) + " does not exist (0.." +
                         std::to_string(c.n_layer - 1) + ")");
      layers.push_back(l);
    }
  } else {
    for (int64_t l = 0; l < c.n_layer; ++l) layers.push_back(l);
  }
  const std::vector<int32_t> ids = input_ids(a, *m.model, "--prompt", "--prompt-file");
  if (ids.empty()) throw Error("the prompt is empty: there is nothing to look through");
  const lab::LensResult r = lab::layer_lens(m.model->checkpoint(), *m.backend, ids, top, stderr_progress());
  end_progress();

  if (a.has("--json")) {
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t l : layers) {
      nlohmann::json pos = nlohmann::json::array();
      for (int64_t t = 0; t < r.L; ++t) {
        nlohmann::json preds = nlohmann::json::array();
        for (int k = 0; k < r.top_k; ++k)
          preds.push_back({{"id", r.top(l, t)[k]}, {"piece", printable(m.model->tokenizer().token_bytes(r.top(l, t)[k]))},
                           {"p", r.probs[size_t((l * r.L + t) * r.top_k + k)]}});
        pos.push_back(preds);
      }
      rows.push_back({{"layer", l}, {"positions", pos}});
    }
    std::cout << nlohmann::json{{"tokens", ids}, {"layers", rows}}.dump(1) << "\n";
    return 0;
  }
  for (int64_t t = 0; t < r.L; ++t) {
    std::printf("%lld %s ->", (long long)t, quoted_piece(*m.model, ids[size_t(t)]).c_str());
    for (int64_t l : layers)
      std::printf("  L%lld %s %.2f", (long long)l, quoted_piece(*m.model, r.top(l, t)[0]).c_str(),
                  r.probs[size_t((l * r.L + t) * r.top_k)]);
    std::printf("\n");
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace mambascope::cli
