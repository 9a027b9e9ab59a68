// Model::load: a checkpoint folder plus its tokenizer (or the bundled GPT-NeoX-20B one every
// state-spaces model uses) and its chat format. Chat templates are Jinja; rather than embed a
// Jinja engine, the one template family Mamba chat models ship (zephyr's, as in
// havenhq/mamba-chat) is recognised and rendered here, and anything else falls back to a plain
// "User:/Assistant:" transcript with a warning.
#include "mambascope/model.hpp"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mambascope/error.hpp"

namespace mambascope {

namespace fs = std::filesystem;

namespace {

constexpr const char* kNeoxRelative = "tokenizers/gpt-neox-20b/tokenizer.json";

// The zephyr template: each turn is "<|role|>\n" + content + eos_token, and the generation
// prompt is "<|assistant|>". HF renders it with trim_blocks, so the literal newline after each
// {{ ... }} survives: turns end in eos + "\n" and the prompt ends in "<|assistant|>\n".
bool is_zephyr_style(const std::string& t) {
  return t.find("<|user|>") != std::string::npos && t.find("<|assistant|>") != std::string::npos;
}

// tokenizer_config.json values may be a string or an AddedToken object {"content": ...}.
std::optional<std::string> token_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

// A template may be one string or a list of named ones ({"name": "default", "template": ...}).
std::optional<std::string> pick_template(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_array()) return std::nullopt;
  std::optional<std::string> first;
  for (const auto& e : v) {
    if (!e.is_object() || !e.contains("template") || !e["template"].is_string()) continue;
    if (!first) first = e["template"].get<std::string>();
    if (e.value("name", "") == "default") return e["template"].get<std::string>();
  }
  return first;
}

}  // namespace

std::vector<fs::path> fallback_tokenizer_candidates() {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("MAMBASCOPE_ASSETS_DIR"); env && *env) {
    out.push_back(fs::path(env) / kNeoxRelative);  // an explicit choice: nothing else is tried
    return out;
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return out;
  fs::path dir = exe.parent_path();
  for (const fs::path& base : {dir, dir.parent_path(), dir.parent_path().parent_path(),
                               dir.parent_path() / "share" / "mambascope"})
    out.push_back(base / "assets" / kNeoxRelative);
  return out;
}

std::shared_ptr<Model> Model::load(const fs::path& dir) {
  auto m = std::make_shared<Model>();
  m->ckpt_ = Checkpoint::open(dir);
  std::error_code ec;

  // Tokenizer: the folder's own, else the GPT-NeoX-20B one the Mamba family was trained with.
  if (fs::exists(dir / "tokenizer.json", ec) || fs::exists(dir / "tokenizer.model", ec)) {
    m->tokenizer_path_ =
        fs::exists(dir / "tokenizer.json", ec) ? dir / "tokenizer.json" : dir / "tokenizer.model";
    m->tok_ = Tokenizer::load(dir);
  } else {
    std::string tried;
    for (const fs::path& p : fallback_tokenizer_candidates()) {
      if (fs::exists(p, ec)) {
        m->tokenizer_path_ = p;
        break;
      }
      tried += "\n  " + p.string();
    }
    if (m->tokenizer_path_.empty())
      throw Error(dir.string() +
                  " has no tokenizer (tokenizer.json or tokenizer.model), and the "
                  "GPT-NeoX-20B tokenizer that Mamba models use was not found at:" +
                  tried +
                  "\nCopy the model's tokenizer.json into its folder, or set MAMBASCOPE_ASSETS_DIR "
                  "to the MambaScope assets folder (the one holding " +
                  kNeoxRelative + ")");
    m->tok_ = Tokenizer::load(m->tokenizer_path_);
  }
  if (m->tok_->vocab_size() > m->config().vocab_size)
    m->warnings_.push_back("the tokenizer (" + m->tokenizer_path_.string() + ") has " +
                           std::to_string(m->tok_->vocab_size()) +
                           " tokens but the model's embedding has " +
                           std::to_string(m->config().vocab_size) +
                           " rows: text may encode to ids the model cannot read");

  // Chat format and end-of-text spelling from tokenizer_config.json, when the folder has one.
  fs::path tc = dir / "tokenizer_config.json";
  if (fs::exists(tc, ec)) {
    std::ifstream f(tc, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(tc.string() + ": not valid JSON (" + e.what() + ")");
    }
    if (j.is_object()) {
      if (j.contains("eos_token"))
        if (auto t = token_text(j["eos_token"])) m->eos_text_ = *t;
      if (j.contains("chat_template")) {
        std::optional<std::string> t = pick_template(j["chat_template"]);
        if (t && is_zephyr_style(*t)) {
          m->template_has_system_ = t->find("<|system|>") != std::string::npos;
          m->template_appends_eos_ = t->find("eos_token") != std::string::npos;
          m->chat_template_ = *t;
        } else if (t) {
          m->warnings_.push_back(tc.string() +
                                 " has a chat_template MambaScope cannot render (only "
                                 "zephyr-style <|user|>/<|assistant|> ones); chats use a plain "
                                 "\"User:/Assistant:\" transcript instead");
        }
      }
    }
  }
  if (m->eos_text_.empty()) {
    auto id = m->tok_->eos_id();
    if (!id && m->config().eos_token_id < m->tok_->vocab_size())
      id = int32_t(m->config().eos_token_id);
    if (id) m->eos_text_ = m->tok_->token_bytes(*id);
    if (m->eos_text_.empty()) m->eos_text_ = "<|endoftext|>";
  }
  return m;
}

std::string Model::display_name() const {
  fs::path d = dir();
  if (d.filename().empty()) d = d.parent_path();  // "models/foo/" names "foo"
  return d.filename().string();
}

std::string Model::format_chat(const std::vector<ChatTurn>& turns) const {
  for (const ChatTurn& t : turns)
    if (t.role != "system" && t.role != "user" && t.role != "assistant")
      throw Error("chat role \"" + t.role + "\" is not one of system, user, assistant");
  std::string out;
  if (chat_template_) {
    std::string
        pending_system;  // for a template without a system role: fold into the next user turn
    for (const ChatTurn& t : turns) {
      if (t.role == "system" && !template_has_system_) {
        pending_system += t.content + "\n\n";
        continue;
      }
      std::string content = t.role == "user" ? pending_system + t.content : t.content;
      if (t.role == "user") pending_system.clear();
      out += "<|" + t.role + "|>\n" + content + (template_appends_eos_ ? eos_text_ : "") + "\n";
    }
    return out + "<|assistant|>\n";
  }
  for (const ChatTurn& t : turns) {
    if (t.role == "system")
      out += t.content + "\n\n";
    else if (t.role == "user")
      out += "User: " + t.content + "\n";
    else
      out += "Assistant: " + t.content + "\n";
  }
  return out + "Assistant:";
}

std::vector<std::string> Model::stop_strings() const {
  if (chat_template_) return {eos_text_, "<|user|>", "<|system|>"};
  return {eos_text_, "\nUser:"};
}

}  // namespace mambascope
