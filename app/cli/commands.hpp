// The subcommands of mambascope-cli, one file each (cmd_<name>.cpp). Each takes the arguments
// after the program name (argv[0] is the command's name) and returns the exit code; errors are
// thrown (UsageError: exit 2, anything else: exit 1) and reported once by main.
#pragma once

namespace mambascope::cli {

int cmd_generate(int argc, char** argv);
int cmd_chat(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_score(int argc, char** argv);
int cmd_probe(int argc, char** argv);
int cmd_modes(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_sweep(int argc, char** argv);      // Modes Lab (cmd_lab_*.cpp)
int cmd_kernel(int argc, char** argv);
int cmd_intervene(int argc, char** argv);
int cmd_lens(int argc, char** argv);
int cmd_freeze(int argc, char** argv);

}  // namespace mambascope::cli
