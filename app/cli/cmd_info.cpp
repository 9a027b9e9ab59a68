// mambascope-cli info: what a model folder holds (configuration, parameter count, storage
// dtype, mapped bytes), what one sequence's state costs, and which backend/device would run it.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace mambascope::cli {

namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return buf;
}

std::string human_count(double n) {
  char buf[32];
  if (n >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2f B", n / 1e9);
  else if (n >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1f M", n / 1e6);
  else if (n >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1f K", n / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

}  // namespace

int cmd_info(int argc, char** argv) {
  Args a(
      "info", "--model DIR [--json]",
      "Describes a model folder: its configuration, parameter count, storage dtype, how much is\n"
      "memory-mapped, the size of the recurrent state, and the backend and device that run it.");
  add_model_options(a);
  a.flag("--json", "print one JSON object instead of text");
  a.epilog("example:\n  mambascope-cli info --model models/mamba-130m-hf --json");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);

  Loaded m = load_model(a);
  const ModelConfig& c = m.model->config();
  const Checkpoint& ck = m.model->checkpoint();
  const Tokenizer& tok = m.model->tokenizer();
  const size_t state_bytes = m.backend->new_state()->bytes();
  const DeviceInfo dev = m.backend->device();

  nlohmann::json j;
  j["model"] = {{"dir", m.model->dir().string()},
                {"name", m.model->display_name()},
                {"architecture", c.lti ? "Mamba-1 (LTI variant)" : "Mamba-1 (MambaForCausalLM)"},
                {"naming", c.naming}};
  j["config"] = {{"d_model", c.d_model},
                 {"n_layer", c.n_layer},
                 {"vocab_size", c.vocab_size},
                 {"d_state", c.d_state},
                 {"d_conv", c.d_conv},
                 {"expand", c.expand},
                 {"d_inner", c.d_inner},
                 {"dt_rank", c.dt_rank},
                 {"use_bias", c.use_bias},
                 {"use_conv_bias", c.use_conv_bias},
                 {"tie_embeddings", c.tie_embeddings},
                 {"residual_in_fp32", c.residual_in_fp32},
                 {"norm_eps", c.norm_eps},
                 {"lti", c.lti},
                 {"bos_token_id", c.bos_token_id},
                 {"eos_token_id", c.eos_token_id}};
  j["parameters"] = ck.parameter_count();
  j["storage_dtype"] = std::string(dtype_name(ck.storage_dtype()));
  j["tensors"] = ck.tensors().size();
  j["mapped_bytes"] = ck.mapped_bytes();
  j["state_bytes"] = state_bytes;
  j["tokenizer"] = {{"kind", tok.kind()},
                    {"vocab_size", tok.vocab_size()},
                    {"path", m.model->tokenizer_path().string()},
                    {"chat_template", m.model->has_chat_template()}};
  j["backend"] = {{"name", m.backend->name()},
                  {"device", dev.name},
                  {"kind", dev.kind},
                  {"threads", dev.threads},
                  {"memory_total", dev.memory_total},
                  {"memory_free", dev.memory_free}};
  j["warnings"] = m.model->warnings();

  if (a.has("--json")) {
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  auto yes = [](bool b) { return b ? "yes" : "no"; };
  std::cout << "model          " << m.model->display_name() << " (" << m.model->dir().string()
            << ")\n"
            << "architecture   " << j["model"]["architecture"].get<std::string>() << ", "
            << c.naming << " naming\n"
            << "shape          d_model " << c.d_model << ", n_layer " << c.n_layer << ", d_inner "
            << c.d_inner << ", d_state " << c.d_state << ", d_conv " << c.d_conv << ", dt_rank "
            << c.dt_rank << "\n"
            << "vocabulary     " << c.vocab_size << " rows (tokenizer: " << tok.kind() << ", "
            << tok.vocab_size() << " tokens)\n"
            << "options        bias " << yes(c.use_bias) << ", conv bias " << yes(c.use_conv_bias)
            << ", tied embeddings " << yes(c.tie_embeddings) << ", eps " << c.norm_eps << "\n"
            << "parameters     " << human_count(double(ck.parameter_count())) << " ("
            << ck.parameter_count() << ")\n"
            << "storage        " << dtype_name(ck.storage_dtype()) << ", " << ck.tensors().size()
            << " tensors, " << human_bytes(double(ck.mapped_bytes())) << " memory-mapped\n"
            << "state          " << human_bytes(double(state_bytes))
            << " per sequence, whatever its length (conv window + h per layer)\n"
            << "chat template  " << (m.model->has_chat_template() ? "yes" : "no (plain transcript)")
            << "\n"
            << "backend        " << m.backend->name() << " on " << dev.name;
  if (dev.threads > 0) std::cout << ", " << dev.threads << " threads";
  if (dev.memory_total > 0)
    std::cout << ", " << human_bytes(double(dev.memory_free)) << " free of "
              << human_bytes(double(dev.memory_total));
  std::cout << "\n";
  return 0;
}

}  // namespace mambascope::cli
