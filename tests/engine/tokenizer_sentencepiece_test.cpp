// The SentencePiece tokenizer against the `sentencepiece` Python package (goldens made with
// tests/fixtures/tokenizer/tiny_sp.model: unigram, 1000 pieces, byte fallback).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "mambascope/error.hpp"
#include "mambascope/tokenizer.hpp"
#include "tokenizer_goldens.hpp"

namespace mambascope {
namespace {

class TinySentencePiece : public ::testing::Test {
 protected:
  void SetUp() override { tok_ = Tokenizer::load(test::kTinySentencePiece); }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(TinySentencePiece, EncodeAndDecodeMatchSentencePieceOnEveryGolden) {
  const auto cases = test::read_goldens("sp_goldens.json");
  ASSERT_GT(cases.size(), 400u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    EXPECT_EQ(tok_->encode(c.text), c.ids)
        << "case " << i << ": \"" << c.text.substr(0, 80) << "\"";
    EXPECT_EQ(tok_->decode(c.ids), c.decoded)
        << "case " << i << ": \"" << c.text.substr(0, 80) << "\"";
  }
}

TEST_F(TinySentencePiece, KnowsItsVocabularyAndControlPieces) {
  EXPECT_EQ(tok_->kind(), "sentencepiece");
  EXPECT_EQ(tok_->vocab_size(), 1000);
  EXPECT_EQ(tok_->token_id("<unk>"), 0);
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_EQ(tok_->eos_id(), 2);
  EXPECT_EQ(tok_->token_id("<0x41>"), 3 + 0x41);  // byte pieces follow the three control pieces
  EXPECT_EQ(tok_->token_bytes(3 + 0xF0), "\xF0");
  EXPECT_EQ(tok_->token_id("no such piece"), std::nullopt);
  EXPECT_EQ(tok_->token_bytes(*tok_->eos_id()), "");  // control pieces are invisible
}

TEST_F(TinySentencePiece, DecodeKeepsACharacterSplitAcrossBytePiecesAsRawBytes) {
  // The library would turn the incomplete emoji into U+FFFD; the stream decoder needs the bytes.
  const auto ids = tok_->encode("\xF0\x9F\x98\x80");  // U+1F600 through byte fallback
  ASSERT_GE(ids.size(), 4u);
  const std::vector<int32_t> head(ids.begin(), ids.end() - 1);
  const std::string partial = tok_->decode(head);
  EXPECT_EQ(partial.substr(partial.size() - 3), "\xF0\x9F\x98");
}

TEST_F(TinySentencePiece, RejectsInvalidUtf8) {
  EXPECT_THROW(tok_->encode(std::string("caf\xE9", 4)), Error);  // Latin-1, not UTF-8
}

TEST(SentencePieceLoad, ExplainsAFileThatIsNotAModel) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("mambascope_not_a_model_" + std::to_string(::getpid()) + ".model");
  std::ofstream(path, std::ios::binary) << "this is plain text, not a protobuf";
  try {
    Tokenizer::load(path);
    ADD_FAILURE() << "no error for a file that is not a model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a readable SentencePiece model"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace mambascope
