// Tokenizer::load (which file, which implementation) and Utf8StreamDecoder, the streaming
// decode that only ever hands out whole UTF-8 characters.
#include "mambascope/tokenizer.hpp"

#include "mambascope/error.hpp"
#include "tokenizer/bpe_tokenizer.hpp"
#include "tokenizer/sentencepiece_tokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace mambascope {

std::unique_ptr<Tokenizer> Tokenizer::load(const std::filesystem::path& dir_or_file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(dir_or_file, ec)) {
    if (fs::exists(dir_or_file / "tokenizer.json", ec))
      return BpeTokenizer::from_file(dir_or_file / "tokenizer.json");
    if (fs::exists(dir_or_file / "tokenizer.model", ec))
      return SentencePieceTokenizer::from_file(dir_or_file / "tokenizer.model");
    throw Error("no tokenizer in " + dir_or_file.string() +
                ": expected tokenizer.json (Hugging Face) or tokenizer.model (SentencePiece); "
                "copy the model's tokenizer file into that folder");
  }
  if (!fs::exists(dir_or_file, ec))
    throw Error("tokenizer not found: " + dir_or_file.string() + " does not exist");
  if (dir_or_file.extension() == ".json") return BpeTokenizer::from_file(dir_or_file);
  if (dir_or_file.extension() == ".model") return SentencePieceTokenizer::from_file(dir_or_file);
  throw Error("unrecognised tokenizer file " + dir_or_file.string() +
              ": expected a tokenizer.json (Hugging Face) or a .model (SentencePiece) file");
}

std::string Utf8StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  const std::string text = tok_.decode(ids_);
  // decode() of a longer id list extends that of a shorter one; guard anyway.
  if (emitted_ > text.size()) emitted_ = text.size();
  const std::string_view fresh = std::string_view(text).substr(emitted_);
  std::string out;
  size_t pos = 0;
  while (pos < fresh.size()) {
    const utf8::Unit u = utf8::next_unit(fresh, pos);
    if (u.kind == utf8::Unit::Kind::Truncated) break;  // hold back until the rest arrives
    if (u.kind == utf8::Unit::Kind::Char)
      out.append(fresh.substr(pos, u.length));
    else
      out.append("\xEF\xBF\xBD");  // bytes that no continuation can make valid
    pos += u.length;
  }
  emitted_ += pos;
  // Nothing held back: restart from this id alone so that decode cost stays per token. The id
  // is kept as context because a tokenizer may decode a token differently at the very start
  // (SentencePiece drops the leading space there); ids that decode to nothing are not context.
  if (emitted_ == text.size()) {
    const std::string alone = tok_.decode(std::span<const int32_t>(&id, 1));
    if (!alone.empty()) {
      ids_.assign(1, id);
      emitted_ = alone.size();
    }
  }
  return out;
}

std::string Utf8StreamDecoder::flush() {
  const std::string text = tok_.decode(ids_);
  std::string out;
  if (emitted_ < text.size()) utf8::append_lossy(out, std::string_view(text).substr(emitted_));
  ids_.clear();
  emitted_ = 0;
  return out;
}

}  // namespace mambascope
