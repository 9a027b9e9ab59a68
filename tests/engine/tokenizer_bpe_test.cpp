// The byte-level BPE tokenizer against the Hugging Face `tokenizers` library (goldens), and its
// round trip, limits and error messages.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "mambascope/error.hpp"
#include "mambascope/tokenizer.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/utf8.hpp"
#include "tokenizer_goldens.hpp"

namespace mambascope {
namespace {

namespace fs = std::filesystem;
using test::kNeoxTokenizer;

const Tokenizer& tok() { return test::neox_tokenizer(); }

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no mambascope::Error thrown)";
}

// A scratch folder, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("mambascope_tok_" + std::to_string(::getpid()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path write(const std::string& name, const std::string& content) const {
    std::ofstream(path / name, std::ios::binary) << content;
    return path / name;
  }
};

TEST(NeoxTokenizer, EncodeMatchesHuggingFaceTokenizersOnEveryGolden) {
  const auto cases = test::read_goldens("bpe_goldens.json");
  ASSERT_GT(cases.size(), 400u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    EXPECT_EQ(tok().encode(c.text), c.ids) << "case " << i << ": \"" << c.text.substr(0, 80) << "\"";
    if (c.ids_plain) {
      EXPECT_EQ(tok().encode(c.text, /*parse_special=*/false), *c.ids_plain)
          << "case " << i << " with special tokens unparsed: \"" << c.text.substr(0, 80) << "\"";
    }
  }
}

TEST(NeoxTokenizer, DecodeMatchesHuggingFaceTokenizersOnEveryGolden) {
  for (const auto& c : test::read_goldens("bpe_goldens.json"))
    EXPECT_EQ(tok().decode(c.ids), c.decoded) << "\"" << c.text.substr(0, 80) << "\"";
}

TEST(NeoxTokenizer, DecodeOfEncodeGivesTheNfcText) {
  std::string all;
  for (const auto& c : test::read_goldens("bpe_goldens.json")) {
    EXPECT_EQ(tok().decode(tok().encode(c.text)), utf8::nfc(c.text)) << c.text.substr(0, 80);
    all += c.text;
  }
  // One long text of about 1 MB: the cache and the long-input paths.
  std::string big;
  while (big.size() < (1u << 20)) big += all;
  const auto ids = tok().encode(big);
  EXPECT_GT(ids.size(), big.size() / 8);
  EXPECT_EQ(tok().decode(ids), utf8::nfc(big));
}

TEST(NeoxTokenizer, KnowsItsVocabularyAndSpecialTokens) {
  EXPECT_EQ(tok().kind(), "bpe");
  EXPECT_EQ(tok().vocab_size(), 50277);
  EXPECT_EQ(tok().eos_id(), 0);
  EXPECT_EQ(tok().bos_id(), std::nullopt);
  EXPECT_EQ(tok().token_id("<|endoftext|>"), 0);
  EXPECT_EQ(tok().token_id("Hello"), 12092);
  EXPECT_EQ(tok().token_id("\xC4\xA0world"), 1533);  // "Ġworld": vocab entries as written
  EXPECT_EQ(tok().token_id("no such token here"), std::nullopt);
  EXPECT_EQ(tok().token_bytes(1533), " world");
  EXPECT_EQ(tok().token_bytes(50276), "  ");
  EXPECT_EQ(tok().token_bytes(0), "<|endoftext|>");
}

TEST(NeoxTokenizer, IdsBeyondTheVocabularyDecodeToNothing) {
  // Mamba checkpoints pad the embedding to 50,280 rows; a sampled padding id must not throw.
  const std::vector<int32_t> ids = {12092, 50277, 50279, -1, 1533};
  EXPECT_EQ(tok().decode(ids), "Hello world");
  EXPECT_EQ(tok().token_bytes(50279), "");
}

TEST(NeoxTokenizer, RejectsInvalidUtf8WithTheOffendingOffset) {
  for (const std::string& bad : {std::string("abc\xC3(", 5), std::string("\xC0\xAF"),
                                std::string("x\xED\xA0\x80"), std::string("end\xE2\x82"),
                                std::string("\xF4\x90\x80\x80"), std::string("\xFF")}) {
    const std::string msg = message_of([&] { tok().encode(bad); });
    EXPECT_NE(msg.find("not valid UTF-8"), std::string::npos) << msg;
  }
  EXPECT_NE(message_of([&] { tok().encode(std::string("abc\xC3(", 5)); }).find("offset 3"),
            std::string::npos);
}

TEST(BpeTokenizerLoad, RejectsModelTypesItDoesNotImplement) {
  TempDir dir;
  const auto wordpiece = dir.write("wordpiece.json", R"({"normalizer": null,
      "pre_tokenizer": {"type": "BertPreTokenizer"}, "decoder": null,
      "model": {"type": "WordPiece", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}})");
  std::string msg = message_of([&] { Tokenizer::load(wordpiece); });
  EXPECT_NE(msg.find("'BertPreTokenizer' is not supported"), std::string::npos) << msg;

  const auto wordpiece_bytelevel = dir.write("wp2.json", R"({"pre_tokenizer": {"type": "ByteLevel"},
      "model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}})");
  msg = message_of([&] { Tokenizer::load(wordpiece_bytelevel); });
  EXPECT_NE(msg.find("tokenizer model 'WordPiece' is not supported"), std::string::npos) << msg;

  const auto metaspace = dir.write("metaspace.json", R"({"pre_tokenizer":
      {"type": "Metaspace", "replacement": "\u2581"}, "model": {"type": "BPE", "vocab": {},
      "merges": []}})");
  msg = message_of([&] { Tokenizer::load(metaspace); });
  EXPECT_NE(msg.find("pre-tokenizer 'Metaspace' is not supported"), std::string::npos) << msg;

  const auto lowercase = dir.write("lower.json", R"({"normalizer": {"type": "Lowercase"},
      "pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {}, "merges": []}})");
  msg = message_of([&] { Tokenizer::load(lowercase); });
  EXPECT_NE(msg.find("normalizer 'Lowercase' is not supported"), std::string::npos) << msg;
}

TEST(BpeTokenizerLoad, ExplainsMissingAndBrokenFiles) {
  TempDir dir;
  std::string msg = message_of([&] { Tokenizer::load(dir.path / "absent" / "tokenizer.json"); });
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  EXPECT_NE(msg.find("absent"), std::string::npos) << msg;

  msg = message_of([&] { Tokenizer::load(dir.path); });  // a folder with no tokenizer in it
  EXPECT_NE(msg.find("no tokenizer in"), std::string::npos) << msg;

  const auto truncated = dir.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {)");
  msg = message_of([&] { Tokenizer::load(truncated); });
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;

  const auto bad_merge = dir.write("merge.json", R"({"pre_tokenizer": {"type": "ByteLevel"},
      "model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})");
  msg = message_of([&] { Tokenizer::load(bad_merge); });
  EXPECT_NE(msg.find("'b' is not in the vocabulary"), std::string::npos) << msg;
}

TEST(BpeTokenizerLoad, AFolderPrefersTokenizerJsonOverTokenizerModel) {
  TempDir dir;
  fs::copy_file(test::kTinySentencePiece, dir.path / "tokenizer.model");
  EXPECT_EQ(Tokenizer::load(dir.path)->kind(), "sentencepiece");
  fs::copy_file(kNeoxTokenizer, dir.path / "tokenizer.json");
  EXPECT_EQ(Tokenizer::load(dir.path)->kind(), "bpe");
}

// A tiny byte-level BPE with added tokens that use the flags GPT-NeoX's do not: the behaviour
// pinned here is `tokenizers`' AddedVocabulary (lstrip takes the white space before, rstrip the
// white space after, single_word needs no word character on either side).
TEST(BpeAddedTokens, HonourLstripRstripAndSingleWord) {
  nlohmann::json vocab;
  const auto& chars = byte_level::byte_chars();
  for (int b = 0; b < 256; ++b) vocab[chars[b]] = b;
  const nlohmann::json root = {
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens",
       {{{"id", 300}, {"content", "[L]"}, {"special", true}, {"lstrip", true}, {"rstrip", false},
         {"single_word", false}, {"normalized", false}},
        {{"id", 301}, {"content", "[R]"}, {"special", true}, {"lstrip", false}, {"rstrip", true},
         {"single_word", false}, {"normalized", false}},
        {{"id", 302}, {"content", "cat"}, {"special", false}, {"lstrip", false}, {"rstrip", false},
         {"single_word", true}, {"normalized", true}}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  TempDir dir;
  const auto tok = Tokenizer::load(dir.write("tokenizer.json", root.dump()));
  const int32_t space = 0x20, a = 'a', b = 'b';
  EXPECT_EQ(tok->encode("a  [L]b"), (std::vector<int32_t>{a, 300, b}));
  EXPECT_EQ(tok->encode("a[R]  b"), (std::vector<int32_t>{a, 301, b}));
  EXPECT_EQ(tok->encode("a [R] [L] b"), (std::vector<int32_t>{a, space, 301, 300, space, b}));
  EXPECT_EQ(tok->encode("a cat b"), (std::vector<int32_t>{a, space, 302, space, b}));
  EXPECT_EQ(tok->encode("cat"), (std::vector<int32_t>{302}));
  EXPECT_EQ(tok->encode("cats"), (std::vector<int32_t>{'c', a, 't', 's'}));  // not a single word
  EXPECT_EQ(tok->encode("a [L]", false), (std::vector<int32_t>{a, space, '[', 'L', ']'}));
}

}  // namespace
}  // namespace mambascope
