// The byte-level BPE tokenizer against the Hugging Face `tokenizers` library (goldens), and its
// round trip, limits and error messages.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "mambascope/error.hpp"
#include "mambascope/tokenizer.hpp"
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
           ("mambascope_tok_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
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
    EXPECT_EQ(tok().encode(c.text), c.ids)
        << "case " << i << ": \"" << c.text.substr(0, 80) << "\"";
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
  for (const std::string& bad :
       {std::string("abc\xC3(", 5), std::string("\xC0\xAF"), std::string("x\xED\xA0\x80"),
        std::string("end\xE2\x82"), std::string("\xF4\x90\x80\x80"), std::string("\xFF")}) {
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
      "pre_tokenizer": {"type": "ByteLevel"},
      "model": {"type": "BPE", "vocab": {}, "merges": []}})");
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

// A tiny byte-level BPE whose added tokens use the flags GPT-NeoX's do not (lstrip, rstrip,
// single_word, normalized before/after NFC), against what `tokenizers` made of it.
TEST(BpeAddedTokens, FollowLstripRstripSingleWordAndNormalizedAsTokenizersDoes) {
  const auto tok = Tokenizer::load(test::kTokenizerFixtures + "/added_flags_tokenizer.json");
  const auto cases = test::read_goldens("added_flags_goldens.json");
  ASSERT_GT(cases.size(), 40u);
  for (const auto& c : cases) {
    EXPECT_EQ(tok->encode(c.text), c.ids) << "\"" << c.text << "\"";
    ASSERT_TRUE(c.ids_plain.has_value());
    EXPECT_EQ(tok->encode(c.text, /*parse_special=*/false), *c.ids_plain) << "\"" << c.text << "\"";
    // decode() gives bytes; `tokenizers` gives them as a string, invalid UTF-8 replaced.
    std::string lossy;
    utf8::append_lossy(lossy, tok->decode(c.ids));
    EXPECT_EQ(lossy, c.decoded) << "\"" << c.text << "\"";
  }
}

}  // namespace
}  // namespace mambascope
