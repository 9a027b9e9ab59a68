// mambascope-cli tokenize: text to token ids and their pieces, or (--decode) ids back to text,
// with the tokenizer of a model folder or a tokenizer file.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "mambascope/error.hpp"
#include "mambascope/tokenizer.hpp"

namespace mambascope::cli {

int cmd_tokenize(int argc, char** argv) {
  Args a("tokenize",
         "(--model DIR | --tokenizer FILE) (--text TEXT | --file FILE | --decode IDS) [--json]",
         "Splits text into tokens and prints each id with the bytes it stands for, or decodes ids\n"
         "back to text. Pieces show control characters and partial UTF-8 as \\xNN.");
  a.option("--model", "DIR", "use this model folder's tokenizer")
      .option("--tokenizer", "FILE",
              "use this tokenizer.json / tokenizer.model (or a folder holding one)");
  add_input_options(a, "--text", "--file", false, "text");
  a.option("--decode", "IDS", "decode these ids (\"12,345,6\") instead of encoding")
      .flag("--no-special", "treat special-token text such as <|endoftext|> as plain text")
      .flag("--json",
            "print {\"ids\": [...], \"pieces\": [...]} (or {\"text\": ...} with --decode)");
  a.epilog(
      "examples:\n"
      "  mambascope-cli tokenize --model models/mamba-130m-hf --text \"Hello, world\"\n"
      "  mambascope-cli tokenize --tokenizer assets/tokenizers/gpt-neox-20b/tokenizer.json "
      "--decode 12092,13,1533");
  a.parse(argc, argv);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  no_positional(a);
  a.exclusive({"--model", "--tokenizer"}, true);
  a.exclusive({"--text", "--file", "--decode"}, true);

  std::shared_ptr<Model> model;
  std::unique_ptr<Tokenizer> own;
  if (a.has("--model")) {
    model = Model::load(a.str("--model"));
    for (const auto& w : model->warnings()) warn(w);
  } else {
    own = Tokenizer::load(a.str("--tokenizer"));
  }
  const Tokenizer& tok = model ? model->tokenizer() : *own;
  const bool json = a.has("--json");

  if (a.has("--decode")) {
    std::vector<int32_t> ids;
    for (int64_t v : parse_int_list(a.str("--decode"), "tokenize: --decode")) {
      if (v < 0 || v >= tok.vocab_size())
        throw Error("--decode: token id " + std::to_string(v) +
                    " is outside the tokenizer's vocabulary (0.." +
                    std::to_string(tok.vocab_size() - 1) + ")");
      ids.push_back(int32_t(v));
    }
    const std::string text = tok.decode(ids);
    if (json)
      std::cout << nlohmann::json{{"text", text}}.dump(-1, ' ', false,
                                                       nlohmann::json::error_handler_t::replace)
                << "\n";
    else
      std::cout << text << "\n";
    return 0;
  }

  const std::string text = input_text(a, "--text", "--file");
  const std::vector<int32_t> ids = tok.encode(text, !a.has("--no-special"));
  if (json) {
    nlohmann::json pieces = nlohmann::json::array();
    for (int32_t id : ids) pieces.push_back(printable(tok.token_bytes(id)));
    std::cout << nlohmann::json{{"ids", ids}, {"pieces", pieces}}.dump() << "\n";
    return 0;
  }
  for (int32_t id : ids) std::cout << id << "\t" << printable(tok.token_bytes(id)) << "\n";
  std::cerr << ids.size() << " tokens\n";
  return 0;
}

}  // namespace mambascope::cli
