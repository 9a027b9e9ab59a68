// UTF-8 validation and the streaming decoder: only whole characters come out, a character split
// across tokens is held back until complete, and flush() repairs whatever is left.
#include <gtest/gtest.h>

#include "mambascope/tokenizer.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer_goldens.hpp"

namespace mambascope {
namespace {

constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD

TEST(IsValidUtf8, AcceptsWellFormedText) {
  for (const std::string& s : {std::string(""), std::string("plain ascii"), std::string("\0", 1),
                               std::string("caf\xC3\xA9"), std::string("\xE6\x97\xA5\xE6\x9C\xAC"),
                               std::string("\xF0\x9F\x98\x80"), std::string("\xF4\x8F\xBF\xBF"),
                               std::string("\xEF\xBF\xBD")})
    EXPECT_TRUE(is_valid_utf8(s)) << s;
}

TEST(IsValidUtf8, RejectsOverlongsSurrogatesAndBrokenSequences) {
  for (const std::string& s :
       {std::string("\xC0\xAF"), std::string("\xE0\x80\xAF"), std::string("\xF0\x80\x80\xAF"),
        std::string("\xED\xA0\x80"), std::string("\xED\xBF\xBF"), std::string("\xF4\x90\x80\x80"),
        std::string("\x80"), std::string("a\xBF"), std::string("\xE2\x82"),
        std::string("\xF8\x88\x80\x80\x80"), std::string("\xFF"),
        std::string("\xC3"
                    "a")})
    EXPECT_FALSE(is_valid_utf8(s)) << testing::PrintToString(s);
}

// The id of the GPT-NeoX vocabulary entry that is exactly one byte.
int32_t byte_id(unsigned char b) {
  return test::neox_tokenizer().token_id(byte_level::byte_chars()[b]).value();
}

TEST(NeoxStream, HoldsAFourByteEmojiBackUntilItsLastByteArrives) {
  Utf8StreamDecoder dec(test::neox_tokenizer());
  EXPECT_EQ(dec.push(byte_id('a')), "a");
  EXPECT_EQ(dec.push(byte_id(0xF0)), "");
  EXPECT_EQ(dec.push(byte_id(0x9F)), "");
  EXPECT_EQ(dec.push(byte_id(0x98)), "");
  EXPECT_EQ(dec.push(byte_id(0x80)), "\xF0\x9F\x98\x80");
  EXPECT_EQ(dec.push(byte_id('b')), "b");
  EXPECT_EQ(dec.flush(), "");
}

TEST(NeoxStream, FlushReplacesAnIncompleteCharacter) {
  Utf8StreamDecoder dec(test::neox_tokenizer());
  EXPECT_EQ(dec.push(byte_id(0xF0)), "");
  EXPECT_EQ(dec.push(byte_id(0x9F)), "");
  EXPECT_EQ(dec.flush(), kReplacement);
  EXPECT_EQ(dec.push(byte_id('x')), "x");  // a fresh start after flush
}

TEST(NeoxStream, BytesThatCanNeverBecomeACharacterAreReplacedAtOnce) {
  Utf8StreamDecoder dec(test::neox_tokenizer());
  EXPECT_EQ(dec.push(byte_id(0x80)), kReplacement);  // a continuation byte with no lead
  EXPECT_EQ(dec.push(byte_id(0xE2)), "");            // could still become a character...
  EXPECT_EQ(dec.push(byte_id('a')), std::string(kReplacement) + "a");  // ...but did not
  EXPECT_EQ(dec.push(byte_id(0xE0)), "");
  // E0 must be followed by A0..BF (anything lower would be an overlong): both bytes are lost.
  EXPECT_EQ(dec.push(byte_id(0x80)), std::string(kReplacement) + kReplacement);
}

// Every piece a stream hands out is valid UTF-8, and together they are the whole decode.
void expect_stream_equals_decode(const Tokenizer& tok, const std::vector<test::GoldenCase>& cases) {
  for (const auto& c : cases) {
    Utf8StreamDecoder dec(tok);
    std::string streamed;
    for (int32_t id : c.ids) {
      const std::string piece = dec.push(id);
      EXPECT_TRUE(is_valid_utf8(piece)) << testing::PrintToString(piece);
      streamed += piece;
    }
    streamed += dec.flush();
    EXPECT_EQ(streamed, tok.decode(c.ids)) << c.text.substr(0, 80);
  }
}

TEST(NeoxStream, StreamingEveryGoldenGivesTheSameTextAsDecode) {
  expect_stream_equals_decode(test::neox_tokenizer(), test::read_goldens("bpe_goldens.json"));
}

TEST(SentencePieceStream, StreamingEveryGoldenGivesTheSameTextAsDecode) {
  // SentencePiece decodes a leading "▁" differently at the start of the text: the stream must
  // keep that straight while it restarts its context token by token.
  const auto tok = Tokenizer::load(test::kTinySentencePiece);
  expect_stream_equals_decode(*tok, test::read_goldens("sp_goldens.json"));
}

TEST(SentencePieceStream, HoldsAnEmojiSplitAcrossBytePieces) {
  const auto tok = Tokenizer::load(test::kTinySentencePiece);
  const auto ids = tok->encode("x \xF0\x9F\x98\x80");
  Utf8StreamDecoder dec(*tok);
  std::vector<std::string> pieces;
  for (int32_t id : ids) pieces.push_back(dec.push(id));
  ASSERT_GE(pieces.size(), 4u);
  EXPECT_EQ(pieces.back(), "\xF0\x9F\x98\x80");
  for (size_t i = pieces.size() - 4; i + 1 < pieces.size(); ++i) EXPECT_EQ(pieces[i], "");
}

}  // namespace
}  // namespace mambascope
