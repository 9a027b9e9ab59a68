// mambascope-cli probe: runs a prompt with probes on and writes what each layer's SSM selected
// at each token (Δ, B, C, the gate, ‖h‖ per channel, and h itself for --h-layers) as .npy files,
// with index.json describing every file's shape and axes, the layers and the tokens.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "mambascope/error.hpp"
#include "mambascope/npy.hpp"

namespace mambascope::cli {

namespace {

std::vector<int> layer_list(const Args& a, const std::string& name, int64_t n_layer) {
  std::vector<int> out;
  for (int64_t v : parse_int_list(a.str(name), "probe: " + name)) {
    if (v < 0 || v >= n_layer)
      throw UsageError("probe: " + name + ": layer " + std::to_string(v) +
                       " does not exist (the model has layers 0.." + std::to_string(n_layer - 1) +
                       ")");
    out.push_back(int(v));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

int cmd_probe(int argc, char** argv) {
  Args a(
      "probe", "--model DIR (--prompt TEXT | --prompt-file FILE | --ids IDS) --out DIR [options]",
      "Runs a prompt with probes on and writes, per token and layer, what the selective SSM "
      "chose:\n"
      "delta.npy (Δ after softplus), B.npy, C.npy, gate.npy (SiLU(z)), h_norm.npy (‖h‖ over the\n"
      "state per channel), write_strength.npy, read_norm.npy, and h_layer<L>.npy (the full state "
      "h)\n"
      "for --h-layers, plus tokens.npy and index.json (shapes, axes, layers, tokens).");
  add_model_options(a);
  add_input_options(a, "--prompt", "--prompt-file", true, "prompt");
  a.option("--out", "DIR", "folder for the .npy files and index.json (created if missing)")
      .option("--layers", "LIST", "layers to record, e.g. \"0,5,11\"", "all")
      .option("--h-layers", "LIST",
              "layers whose full state h {d_inner, d_state} is kept per token", "none")
      .option("--mode", "MODE", "SSM mode: recurrent, scan, convolution or lti-fft", "scan")
      .option("--max-gb", "G", "refuse runs whose recorded arrays would exceed G GiB", "4");
  a.epilog(
      "example:\n"
      "  mambascope-cli probe --model models/mamba-130m-hf --prompt \"Alice was beginning\" \\\n"
      "      --out probes/ --layers 0,12,23 --h-layers 12\n"
      "  python3 -c \"import numpy, json; print(numpy.load('probes/delta.npy').shape)\"");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);
  const std::filesystem::path out = a.required("--out");
  const ScanMode mode = mode_from(a, "--mode", ScanMode::Scan);
  const double limit = a.number("--max-gb", 4.0, 0, 1e6) * double(1 << 30);

  Loaded m = load_model(a);
  const ModelConfig& c = m.model->config();
  const std::vector<int32_t> ids = input_ids(a, *m.model, "--prompt", "--prompt-file");
  if (ids.empty()) throw Error("the prompt is empty: nothing to probe");
  std::vector<int> layers, h_layers;
  if (a.has("--layers") && a.str("--layers") != "all") {
    layers = layer_list(a, "--layers", c.n_layer);
  } else {
    for (int l = 0; l < int(c.n_layer); ++l) layers.push_back(l);
  }
  if (a.has("--h-layers") && a.str("--h-layers") != "none")
    h_layers = layer_list(a, "--h-layers", c.n_layer);
  for (int l : h_layers)
    if (!std::binary_search(layers.begin(), layers.end(), l))
      throw UsageError("probe: --h-layers " + std::to_string(l) + " is not among --layers");

  const int64_t L = int64_t(ids.size()), R = int64_t(layers.size()), DI = c.d_inner, N = c.d_state;
  const double bytes =
      4.0 * double(L) * (double(R) * double(3 * DI + 2 * N + 2) + double(h_layers.size()) * DI * N);
  if (bytes > limit)
    throw Error("probing " + std::to_string(L) + " tokens would record " +
                std::to_string(int64_t(bytes / (1 << 20))) +
                " MiB, above --max-gb; use fewer --layers / --h-layers or a shorter prompt");

  ProbePolicy policy;
  policy.enabled = true;
  policy.layers = layers;
  policy.capture_h = !h_layers.empty();
  policy.h_layers = h_layers;
  policy.max_tokens = L;
  ProbeRecorder rec(policy);
  ForwardOptions opts;
  opts.mode = mode;
  opts.probes = &rec;
  std::vector<float> logits;
  auto state = m.backend->new_state();
  m.backend->forward(ids, *state, opts, logits);

  // Gather the per-token frames into token-major arrays.
  std::vector<float> delta(size_t(L * R * DI)), gate(delta.size()),
      h_norm(delta.size());                                     // {L, R, d_inner}
  std::vector<float> B(size_t(L * R * N)), C(B.size());         // {L, R, d_state}
  std::vector<float> write(size_t(L * R)), read(write.size());  // {L, R}
  std::vector<std::vector<float>> h(
      h_layers.size(), std::vector<float>(size_t(L * DI * N)));  // {L, d_inner, d_state}
  auto put = [](std::vector<float>& dst, size_t offset, const std::vector<float>& src, size_t n) {
    if (src.size() == n) std::copy(src.begin(), src.end(), dst.begin() + long(offset));
  };
  for (int64_t t = 0; t < L; ++t) {
    const TokenProbe* tp = rec.at(t);
    if (!tp) throw Error("the backend recorded no probe for token " + std::to_string(t));
    for (int64_t r = 0; r < R; ++r) {
      const LayerProbe* lp = tp->layer(layers[size_t(r)]);
      if (!lp)
        throw Error("the backend recorded no probe for layer " + std::to_string(layers[size_t(r)]));
      const size_t row = size_t(t * R + r);
      put(delta, row * size_t(DI), lp->delta, size_t(DI));
      put(gate, row * size_t(DI), lp->gate, size_t(DI));
      put(h_norm, row * size_t(DI), lp->h_norm, size_t(DI));
      put(B, row * size_t(N), lp->B, size_t(N));
      put(C, row * size_t(N), lp->C, size_t(N));
      write[row] = lp->write_strength;
      read[row] = lp->read_norm;
    }
    for (size_t k = 0; k < h_layers.size(); ++k) {
      const LayerProbe* lp = tp->layer(h_layers[k]);
      put(h[k], size_t(t) * size_t(DI * N), lp->h, size_t(DI * N));
    }
  }

  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (!std::filesystem::is_directory(out))
    throw Error("cannot create the output folder '" + out.string() + "'" +
                (ec ? ": " + ec.message() : ""));
  nlohmann::json files;
  auto save = [&](const std::string& key, const std::vector<float>& data,
                  std::vector<int64_t> shape, std::vector<std::string> axes,
                  const std::string& what) {
    const std::string file = key + ".npy";
    write_npy(out / file, data, shape);
    files[key] = {{"file", file},
                  {"shape", shape},
                  {"axes", axes},
                  {"dtype", "float32"},
                  {"description", what}};
  };
  save("delta", delta, {L, R, DI}, {"token", "layer", "channel"},
       "Δ = softplus(dt_proj(x) + bias), per channel");
  save("B", B, {L, R, N}, {"token", "layer", "state"},
       c.lti ? "B (LTI: mean over channels)" : "B_t, input-dependent");
  save("C", C, {L, R, N}, {"token", "layer", "state"},
       c.lti ? "C (LTI: mean over channels)" : "C_t, input-dependent");
  save("gate", gate, {L, R, DI}, {"token", "layer", "channel"}, "SiLU(z), the output gate");
  save("h_norm", h_norm, {L, R, DI}, {"token", "layer", "channel"},
       "‖h_t‖ over the state, per channel");
  save("write_strength", write, {L, R}, {"token", "layer"},
       "‖Δ·B·x‖: how hard this token writes into the state");
  save("read_norm", read, {L, R}, {"token", "layer"}, "‖C‖: how strongly the state is read");
  for (size_t k = 0; k < h_layers.size(); ++k)
    save("h_layer" + std::to_string(h_layers[k]), h[k], {L, DI, N}, {"token", "channel", "state"},
         "h_t, the full state of layer " + std::to_string(h_layers[k]));
  write_npy(out / "tokens.npy", ids, {L});
  files["tokens"] = {{"file", "tokens.npy"},
                     {"shape", {L}},
                     {"axes", {"token"}},
                     {"dtype", "int32"},
                     {"description", "the token ids"}};

  const Tokenizer& tok = m.model->tokenizer();
  nlohmann::json pieces = nlohmann::json::array();
  for (int32_t id : ids) pieces.push_back(printable(tok.token_bytes(id)));
  nlohmann::json index = {{"model", m.model->dir().string()},
                          {"mode", mode_name(mode)},
                          {"backend", m.backend->name()},
                          {"n_tokens", L},
                          {"tokens", ids},
                          {"pieces", pieces},
                          {"layers", layers},
                          {"h_layers", h_layers},
                          {"n_layer", c.n_layer},
                          {"d_inner", DI},
                          {"d_state", N},
                          {"lti", c.lti},
                          {"files", files}};
  std::ofstream f(out / "index.json");
  f << index.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  if (!f) throw Error("cannot write " + (out / "index.json").string());
  std::cout << "probed " << L << " tokens over " << R << " layers"
            << (h_layers.empty() ? "" : " (with h)") << " into " << out.string()
            << " (index.json describes the files)\n";
  return 0;
}

}  // namespace mambascope::cli
