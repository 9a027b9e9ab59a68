// Model::load: checkpoint + tokenizer (the folder's own, else the bundled GPT-NeoX-20B one),
// the zephyr chat format of mamba-chat rendered as transformers renders it, the plain transcript
// otherwise, and the stop strings that go with each.
#include "mambascope/model.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "checkpoint_testing.hpp"
#include "hf_fixture.hpp"
#include "mambascope/error.hpp"

namespace mambascope {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// Sets an environment variable for one test and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

fs::path assets_dir() { return fs::path(MAMBASCOPE_SOURCE_DIR) / "assets"; }

// A model folder holding a fixture's weights and config, and nothing else.
void make_model_folder(const fs::path& dir) {
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(testing::hf_fixtures_dir() / "tied_fp32" / f, dir / f);
}

// The chat template of havenhq/mamba-chat (zephyr's), as its tokenizer_config.json holds it.
const char* kZephyrTemplate =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' "
    "+ "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ "
    "'<|assistant|>\n'  "
    "+ message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt "
    "%}\n"
    "{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

TEST(Model, FolderWithoutTokenizerUsesTheBundledNeoxTokenizer) {
  TempDir tmp;
  make_model_folder(tmp.path());
  ScopedEnv env("MAMBASCOPE_ASSETS_DIR", assets_dir().string());
  auto m = Model::load(tmp.path());
  EXPECT_EQ(m->tokenizer().kind(), "bpe");
  EXPECT_EQ(m->tokenizer_path(), assets_dir() / "tokenizers/gpt-neox-20b/tokenizer.json");
  EXPECT_EQ(m->config().vocab_size, 512);
  EXPECT_EQ(m->display_name(), tmp.path().filename().string());
  // NeoX has ~50k tokens, this test model 512 rows: loadable, but the user is told.
  ASSERT_EQ(m->warnings().size(), 1u);
  EXPECT_NE(m->warnings()[0].find("512 rows"), std::string::npos) << m->warnings()[0];
}

TEST(Model, ZephyrTemplateRendersAsTransformersDoes) {
  TempDir tmp;
  make_model_folder(tmp.path());
  nlohmann::json tc = {{"chat_template", kZephyrTemplate},
                       {"eos_token", {{"content", "<|endoftext|>"}, {"special", true}}}};
  testing::write_text(tmp / "tokenizer_config.json", tc.dump());
  ScopedEnv env("MAMBASCOPE_ASSETS_DIR", assets_dir().string());
  auto m = Model::load(tmp.path());
  ASSERT_TRUE(m->has_chat_template());
  // transformers' apply_chat_template(..., add_generation_prompt=True) on this template.
  EXPECT_EQ(
      m->format_chat(
          {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Why?"}}),
      "<|system|>\nBe brief.<|endoftext|>\n<|user|>\nHi<|endoftext|>\n"
      "<|assistant|>\nHello!<|endoftext|>\n<|user|>\nWhy?<|endoftext|>\n<|assistant|>\n");
  std::vector<std::string> stops = m->stop_strings();
  EXPECT_NE(std::find(stops.begin(), stops.end(), "<|endoftext|>"), stops.end());
  EXPECT_NE(std::find(stops.begin(), stops.end(), "<|user|>"), stops.end());
}

TEST(Model, WithoutATemplateChatIsAPlainTranscript) {
  TempDir tmp;
  make_model_folder(tmp.path());
  ScopedEnv env("MAMBASCOPE_ASSETS_DIR", assets_dir().string());
  auto m = Model::load(tmp.path());
  EXPECT_FALSE(m->has_chat_template());
  EXPECT_EQ(m->format_chat({{"user", "Hi"}, {"assistant", "Hello."}, {"user", "Name a fish."}}),
            "User: Hi\nAssistant: Hello.\nUser: Name a fish.\nAssistant:");
  EXPECT_EQ(m->stop_strings(), (std::vector<std::string>{"<|endoftext|>", "\nUser:"}));
  EXPECT_THROW(m->format_chat({{"narrator", "Once"}}), Error);
}

TEST(Model, TemplateItCannotRenderFallsBackWithAWarning) {
  TempDir tmp;
  make_model_folder(tmp.path());
  testing::write_text(
      tmp / "tokenizer_config.json",
      nlohmann::json{
          {"chat_template", "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"}}
          .dump());
  ScopedEnv env("MAMBASCOPE_ASSETS_DIR", assets_dir().string());
  auto m = Model::load(tmp.path());
  EXPECT_FALSE(m->has_chat_template());
  EXPECT_EQ(m->format_chat({{"user", "Hi"}}), "User: Hi\nAssistant:");
  bool warned = false;
  for (const std::string& w : m->warnings()) warned |= w.find("chat_template") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST(Model, FolderTokenizerIsPreferredToTheFallback) {
  TempDir tmp, empty_assets;
  make_model_folder(tmp.path());
  fs::copy_file(assets_dir() / "tokenizers/gpt-neox-20b/tokenizer.json", tmp / "tokenizer.json");
  ScopedEnv env("MAMBASCOPE_ASSETS_DIR", empty_assets.path().string());  // the fallback would fail
  auto m = Model::load(tmp.path());
  EXPECT_EQ(m->tokenizer_path(), tmp / "tokenizer.json");
}

TEST(Model, NoTokenizerAnywhereSaysWhereItLookedAndWhatToDo) {
  TempDir tmp, empty_assets;
  make_model_folder(tmp.path());
  ScopedEnv env("MAMBASCOPE_ASSETS_DIR", empty_assets.path().string());
  try {
    Model::load(tmp.path());
    ADD_FAILURE() << "loaded without a tokenizer";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("has no tokenizer"), std::string::npos) << msg;
    EXPECT_NE(msg.find(empty_assets.path().string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("MAMBASCOPE_ASSETS_DIR"), std::string::npos) << msg;
  }
}

TEST(Model, FallbackSearchLooksBesideTheExecutableUnlessTheVariableIsSet) {
  {
    ScopedEnv env("MAMBASCOPE_ASSETS_DIR", "/somewhere");
    auto c = fallback_tokenizer_candidates();
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0], fs::path("/somewhere/tokenizers/gpt-neox-20b/tokenizer.json"));
  }
  ScopedEnv env("MAMBASCOPE_ASSETS_DIR", "");
  auto c = fallback_tokenizer_candidates();
  ASSERT_FALSE(c.empty());
  fs::path exe_dir = fs::read_symlink("/proc/self/exe").parent_path();
  EXPECT_EQ(c[0], exe_dir / "assets/tokenizers/gpt-neox-20b/tokenizer.json");
}

TEST(Model, CheckpointErrorsReachTheCaller) {
  TempDir tmp;
  EXPECT_THROW(Model::load(tmp / "absent"), Error);
}

}  // namespace
}  // namespace mambascope
