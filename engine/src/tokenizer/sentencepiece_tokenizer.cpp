// SentencePiece through libsentencepiece (see sentencepiece_tokenizer.hpp). decode() follows
// the library's SentencePieceProcessor::Decode rule for rule, except that byte pieces are
// passed through as raw bytes.
#include "tokenizer/sentencepiece_tokenizer.hpp"

#include <sentencepiece_processor.h>

#include "mambascope/error.hpp"
#include "tokenizer/utf8.hpp"

namespace mambascope {

namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581, SentencePiece's space

std::string replace_space_symbol(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  size_t pos = 0;
  while (pos < piece.size()) {
    if (piece.substr(pos).starts_with(kSpaceSymbol)) {
      out += ' ';
      pos += kSpaceSymbol.size();
    } else {
      out += piece[pos++];
    }
  }
  return out;
}

// "<0x41>" -> 'A'.
std::optional<char> byte_of_piece(std::string_view piece) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || piece.back() != '>') return std::nullopt;
  int value = 0;
  for (char c : piece.substr(3, 2)) {
    value *= 16;
    if (c >= '0' && c <= '9')
      value += c - '0';
    else if (c >= 'A' && c <= 'F')
      value += c - 'A' + 10;
    else if (c >= 'a' && c <= 'f')
      value += c - 'a' + 10;
    else
      return std::nullopt;
  }
  return static_cast<char>(value);
}

}  // namespace

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_file(
    const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error("cannot open tokenizer file " + path.string() + ": no such file");
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->Load(path.string());
  if (!status.ok())
    throw Error(path.string() + " is not a readable SentencePiece model (" + status.ToString() +
                ")");
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(std::move(sp)));
}

SentencePieceTokenizer::SentencePieceTokenizer(
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp)
    : sp_(std::move(sp)) {
  const int n = sp_->GetPieceSize();
  pieces_.resize(static_cast<size_t>(n));
  for (int id = 0; id < n; ++id) {
    Piece& p = pieces_[id];
    const std::string& piece = sp_->IdToPiece(id);
    if (sp_->IsControl(id)) {
      p.kind = PieceKind::Control;
    } else if (sp_->IsUnknown(id)) {
      p.kind = PieceKind::Unknown;
      sp_->Decode(std::vector<int>{id}, &p.text).IgnoreError();  // the model's unk surface
    } else if (const auto byte = sp_->IsByte(id) ? byte_of_piece(piece) : std::nullopt) {
      p.kind = PieceKind::Byte;
      p.text = std::string(1, *byte);
    } else {
      p.kind = PieceKind::Normal;
      p.text = replace_space_symbol(piece);
      p.space_prefix = std::string_view(piece).starts_with(kSpaceSymbol);
    }
  }
  // The proto's normalizer flags are not in the library's public API; the encoder shows them.
  std::vector<std::string> pieces;
  if (sp_->Encode("a", &pieces).ok() && !pieces.empty())
    add_dummy_prefix_ = std::string_view(pieces.front()).starts_with(kSpaceSymbol);
  std::vector<int> plain, padded;
  if (sp_->Encode("a", &plain).ok() && sp_->Encode("  a  ", &padded).ok())
    remove_extra_whitespaces_ = plain == padded;
  if (sp_->eos_id() >= 0) eos_id_ = sp_->eos_id();
  if (sp_->bos_id() >= 0) bos_id_ = sp_->bos_id();
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, bool) const {
  utf8::require_valid(text);
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw Error("SentencePiece could not encode the text: " + status.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string SentencePieceTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  // While nothing has been written, a leading space that encode added (add_dummy_prefix), or
  // every leading space (remove_extra_whitespaces), is dropped.
  bool at_start = true;
  bool start_space_taken = false;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) continue;  // as BPE: skip unknown ids
    const Piece& p = pieces_[id];
    if (p.kind == PieceKind::Byte) {
      out += p.text;
      continue;
    }
    if (start_space_taken || !out.empty()) at_start = false;
    start_space_taken = false;
    if (p.kind == PieceKind::Normal && at_start && p.space_prefix &&
        (add_dummy_prefix_ || remove_extra_whitespaces_)) {
      out.append(p.text, 1);
      start_space_taken = !remove_extra_whitespaces_;
    } else {
      out += p.text;
    }
  }
  return out;
}

std::string SentencePieceTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return {};
  return pieces_[id].text;
}

std::optional<int32_t> SentencePieceTokenizer::token_id(std::string_view token) const {
  const int id = sp_->PieceToId(token);
  // PieceToId answers the unk id for a piece it does not know.
  if (id < 0 || sp_->IdToPiece(id) != token) return std::nullopt;
  return id;
}

}  // namespace mambascope
