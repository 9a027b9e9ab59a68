// A loaded model folder: the memory-mapped checkpoint, its tokenizer and, if it ships one, its
// chat template (tokenizer_config.json `chat_template`).
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mambascope/checkpoint.hpp"
#include "mambascope/tokenizer.hpp"

namespace mambascope {

struct ChatTurn {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class Model {
 public:
  // Throws mambascope::Error with a message naming the folder and what is wrong with it.
  static std::shared_ptr<Model> load(const std::filesystem::path& dir);

  const Checkpoint& checkpoint() const { return *ckpt_; }
  const ModelConfig& config() const { return ckpt_->config(); }
  const Tokenizer& tokenizer() const { return *tok_; }
  const std::filesystem::path& dir() const { return ckpt_->dir(); }
  std::string display_name() const;  // the folder's name
  bool has_chat_template() const { return chat_template_.has_value(); }
  // Formats a conversation for generation (ending where the assistant speaks next): the
  // model's zephyr-style template when it ships one, otherwise a plain "User: ...\nAssistant:"
  // transcript.
  std::string format_chat(const std::vector<ChatTurn>& turns) const;
  std::vector<std::string> stop_strings() const;  // e.g. "<|endoftext|>", "\nUser:"
  // Things that load but deserve a word to the user (e.g. a chat template MambaScope cannot
  // render, or a tokenizer with more tokens than the embedding has rows).
  const std::vector<std::string>& warnings() const { return warnings_; }
  const std::filesystem::path& tokenizer_path() const { return tokenizer_path_; }

 private:
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<Tokenizer> tok_;
  std::optional<std::string> chat_template_;  // set only for a template format_chat renders
  bool template_has_system_ = true;           // the template knows the <|system|> role
  bool template_appends_eos_ = true;          // each turn ends with eos_token
  std::string eos_text_;                      // e.g. "<|endoftext|>"
  std::filesystem::path tokenizer_path_;
  std::vector<std::string> warnings_;
};

// Where Model::load finds the GPT-NeoX-20B tokenizer for a folder that ships none, in order:
// $MAMBASCOPE_ASSETS_DIR/tokenizers/gpt-neox-20b/tokenizer.json when that variable is set
// (then nothing else), else assets/tokenizers/gpt-neox-20b/tokenizer.json in the executable's
// folder, its parent, its grandparent (a build tree inside the source tree) or ../share/mambascope.
std::vector<std::filesystem::path> fallback_tokenizer_candidates();

}  // namespace mambascope
