// mambascope-cli: the command line of MambaScope. Dispatches to one subcommand and turns every
// failure into one message on stderr and an exit code: 1 for errors, 2 for usage errors.
#include <cstring>
#include <exception>
#include <iostream>
#include <new>

#include "args.hpp"
#include "commands.hpp"
#include "mambascope/error.hpp"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

const Command kCommands[] = {
    {"generate", mambascope::cli::cmd_generate, "generate text from a prompt, streamed to stdout"},
    {"chat", mambascope::cli::cmd_chat, "talk with a model in the terminal"},
    {"info", mambascope::cli::cmd_info, "a model's configuration, size, memory and backend"},
    {"tokenize", mambascope::cli::cmd_tokenize,
     "text to token ids and pieces, or ids back to text"},
    {"score", mambascope::cli::cmd_score,
     "per-token log-probabilities, perplexity, full logits as .npy"},
    {"probe", mambascope::cli::cmd_probe,
     "record Δ, B, C, gate, ‖h‖ (and h) of a prompt as .npy files"},
    {"modes", mambascope::cli::cmd_modes,
     "run the SSM modes on a prompt and compare their outputs"},
    {"eval", mambascope::cli::cmd_eval, "perplexity of a text file, accuracy on a task file"},
    {"sweep", mambascope::cli::cmd_sweep, "time recurrent, scan, convolution and LTI FFT over growing L"},
    {"kernel", mambascope::cli::cmd_kernel, "a layer's selective kernel K[t,s] beside the frozen LTI kernel"},
    {"intervene", mambascope::cli::cmd_intervene, "override Δ at tokens and layers and compare with the original"},
    {"lens", mambascope::cli::cmd_lens, "each layer's top next-token prediction (norm_f + lm_head)"},
    {"freeze", mambascope::cli::cmd_freeze, "score and continue a text with Δ, B, C frozen vs selective"},
};

void overview(std::ostream& o) {
  o << "usage: mambascope-cli <command> --model DIR [options]\n\n"
       "Runs Mamba (selective state-space) language models: Hugging Face MambaForCausalLM\n"
       "folders (config.json + safetensors) on the CPU or a CUDA GPU.\n\ncommands:\n";
  for (const auto& c : kCommands) {
    std::string name = c.name;
    o << "  " << name << std::string(name.size() < 12 ? 12 - name.size() : 1, ' ') << c.summary << "\n";
  }
  o << "\n'mambascope-cli <command> --help' describes a command's options. docs/cli.md has "
       "examples.\n";
}

int fail(const std::string& message, int code) {
  std::cerr << "mambascope-cli: error: " << message << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    overview(std::cerr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    overview(std::cout);
    return 0;
  }
  if (name == "--version") {
    std::cout << "mambascope-cli 0.1.0\n";
    return 0;
  }
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const mambascope::cli::UsageError& e) {
      return fail(e.what(), 2);
    } catch (const mambascope::Error& e) {
      return fail(e.what(), 1);
    } catch (const std::bad_alloc&) {
      return fail("out of memory: try a shorter input or a smaller model", 1);
    } catch (const std::exception& e) {
      return fail(e.what(), 1);
    } catch (...) {
      return fail("an unexpected error stopped the command", 1);
    }
  }
  std::string list;
  for (const auto& c : kCommands) list += std::string(list.empty() ? "" : ", ") + c.name;
  return fail(
      "unknown command '" + name + "' (commands: " + list + "; see 'mambascope-cli --help')", 2);
}
