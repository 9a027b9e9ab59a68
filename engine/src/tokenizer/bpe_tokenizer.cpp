// tokenizer.json parsing and the byte-level BPE encode/decode pipeline (see bpe_tokenizer.hpp).
// The order of the steps is `tokenizers`' own: added tokens that are not normalized are cut out
// of the raw text, the rest is NFC-normalized, normalized added tokens are cut out of that, and
// only what is left is split by the regex and merged.
#include "tokenizer/bpe_tokenizer.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mambascope/error.hpp"
#include "tokenizer/utf8.hpp"

namespace mambascope {

namespace {

using nlohmann::json;

std::string type_of(const json& j) {
  if (j.is_object() && j.contains("type") && j["type"].is_string()) return j["type"];
  return "(no type)";
}

[[noreturn]] void unsupported(const std::string& origin, const std::string& what,
                              const std::string& type) {
  throw Error(origin + ": the " + what + " '" + type +
              "' is not supported. MambaScope reads byte-level BPE tokenizers (GPT-2 / GPT-NeoX "
              "style: BPE model, ByteLevel pre-tokenizer and decoder, optional NFC) and "
              "SentencePiece tokenizer.model files.");
}

// Normalizer: none, NFC, or a Sequence of NFCs. Returns whether NFC applies.
bool parse_normalizer(const json& n, const std::string& origin) {
  if (n.is_null()) return false;
  const std::string type = type_of(n);
  if (type == "NFC") return true;
  if (type == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
    bool nfc = false;
    for (const json& part : n["normalizers"]) nfc = parse_normalizer(part, origin) || nfc;
    return nfc;
  }
  unsupported(origin, "normalizer", type);
}

// Pre-tokenizer: ByteLevel, alone or as the only member of a Sequence.
void parse_pre_tokenizer(const json& p, const std::string& origin, BpeTokenizer::Options& opt) {
  const std::string type = type_of(p);
  if (type == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array() &&
      p["pretokenizers"].size() == 1) {
    parse_pre_tokenizer(p["pretokenizers"][0], origin, opt);
    return;
  }
  if (type != "ByteLevel") unsupported(origin, "pre-tokenizer", p.is_null() ? "none" : type);
  opt.add_prefix_space = p.value("add_prefix_space", true);
  opt.use_regex = p.value("use_regex", true);
}

std::optional<std::string> optional_string(const json& obj, const char* key) {
  if (!obj.contains(key) || obj[key].is_null()) return std::nullopt;
  return obj[key].get<std::string>();
}

BpeModelSpec parse_model(const json& m, const std::string& origin) {
  if (!m.is_object()) throw Error(origin + ": no \"model\" section; is this a tokenizer.json?");
  // Files written by old versions of `tokenizers` may omit the type of a BPE model.
  const std::string type = m.contains("type") ? type_of(m) : (m.contains("merges") ? "BPE" : "");
  if (type != "BPE") unsupported(origin, "tokenizer model", type.empty() ? "(no type)" : type);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto value = optional_string(m, key);
    if (value && !value->empty())
      throw Error(origin + ": BPE with " + key + " '" + *value +
                  "' is not supported (byte-level BPE uses none)");
  }
  if (!m.contains("vocab") || !m["vocab"].is_object())
    throw Error(origin + ": the BPE model has no \"vocab\" object");
  BpeModelSpec spec;
  spec.vocab.reserve(m["vocab"].size());
  for (const auto& [token, id] : m["vocab"].items()) spec.vocab.emplace(token, id.get<int32_t>());
  if (m.contains("merges")) {
    spec.merges.reserve(m["merges"].size());
    for (const json& merge : m["merges"]) {
      if (merge.is_array() && merge.size() == 2) {  // newer files: ["a", "b"]
        spec.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
        continue;
      }
      const std::string s = merge.get<std::string>();  // older files: "a b"
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        throw Error(origin + ": malformed merge '" + s + "' (expected two tokens and one space)");
      spec.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    }
  }
  spec.unk_token = optional_string(m, "unk_token");
  spec.fuse_unk = m.value("fuse_unk", false);
  spec.ignore_merges = m.value("ignore_merges", false);
  // dropout is a training-time regularizer; inference tokenizes deterministically.
  return spec;
}

std::vector<AddedToken> parse_added_tokens(const json& list) {
  std::vector<AddedToken> added;
  if (!list.is_array()) return added;
  for (const json& t : list) {
    AddedToken a;
    a.id = t.at("id").get<int32_t>();
    a.content = t.at("content").get<std::string>();
    a.special = t.value("special", false);
    a.single_word = t.value("single_word", false);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    a.normalized = t.value("normalized", !a.special);
    added.push_back(std::move(a));
  }
  return added;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error("cannot open tokenizer file " + path.string() +
                ": check that it exists and is readable");
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

// What the ByteLevel decoder makes of one token: its bytes if every character is in the byte
// table, else the token's own UTF-8 (how `tokenizers` treats e.g. added whitespace tokens).
std::string decoded_bytes(const std::string& token) {
  auto bytes = byte_level::chars_to_bytes(token);
  return bytes ? std::move(*bytes) : token;
}

}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_file(const std::filesystem::path& path) {
  return from_json_text(read_file(path), path.string());
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_json_text(std::string_view json_text,
                                                           const std::string& origin) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(origin + " is not valid JSON (" + e.what() + "); is the download complete?");
  }
  try {
    if (!root.is_object()) throw Error(origin + " is not a Hugging Face tokenizer.json");
    Options opt;
    opt.nfc = parse_normalizer(root.value("normalizer", json()), origin);
    parse_pre_tokenizer(root.value("pre_tokenizer", json()), origin, opt);
    const json decoder = root.value("decoder", json());
    if (!decoder.is_null() && type_of(decoder) != "ByteLevel")
      unsupported(origin, "decoder", type_of(decoder));
    return std::make_unique<BpeTokenizer>(opt, parse_model(root.value("model", json()), origin),
                                          parse_added_tokens(root.value("added_tokens", json())));
  } catch (const json::exception& e) {
    throw Error(origin + ": unexpected tokenizer.json layout (" + e.what() + ")");
  }
}

BpeTokenizer::BpeTokenizer(Options options, BpeModelSpec model, std::vector<AddedToken> added)
    : options_(options), model_(std::move(model)), added_(std::move(added)) {
  std::vector<AddedToken> raw, normalized;
  for (AddedToken a : added_) {
    if (a.normalized) {
      // Normalized tokens are looked for in normalized text, so in their normalized spelling.
      if (options_.nfc && is_valid_utf8(a.content)) a.content = utf8::nfc(a.content);
      normalized.push_back(std::move(a));
    } else {
      raw.push_back(std::move(a));
    }
  }
  raw_matcher_ = AddedTokenMatcher(std::move(raw));
  normalized_matcher_ = AddedTokenMatcher(std::move(normalized));

  int32_t max_id = -1;
  for (const auto& [token, id] : model_.vocab()) max_id = std::max(max_id, id);
  for (const AddedToken& a : added_) max_id = std::max(max_id, a.id);
  // Ids are dense in every real tokenizer; a stray huge one would otherwise allocate gigabytes.
  if (max_id > 0 &&
      static_cast<size_t>(max_id) > 2 * (model_.vocab().size() + added_.size()) + 1024)
    throw Error("tokenizer.json gives token id " + std::to_string(max_id) + " to a vocabulary of " +
                std::to_string(model_.vocab().size() + added_.size()) + " entries; is it corrupt?");
  id_bytes_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [token, id] : model_.vocab())
    if (id >= 0) id_bytes_[id] = decoded_bytes(token);
  for (const AddedToken& a : added_)  // added tokens take precedence, as in `tokenizers`
    if (a.id >= 0) id_bytes_[a.id] = decoded_bytes(a.content);

  for (const char* name : {"<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"}) {
    for (const AddedToken& a : added_) {
      if (a.special && a.content == name && !eos_id_) eos_id_ = a.id;
    }
  }
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool parse_special) const {
  utf8::require_valid(text);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  std::vector<AddedTokenMatcher::Segment> raw_segments, norm_segments;
  raw_matcher_.split(text, parse_special, raw_segments);
  for (const auto& raw : raw_segments) {
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    const std::string_view piece = text.substr(raw.begin, raw.end - raw.begin);
    const std::string normalized = options_.nfc ? utf8::nfc(piece) : std::string(piece);
    norm_segments.clear();
    normalized_matcher_.split(normalized, parse_special, norm_segments);
    for (const auto& seg : norm_segments) {
      if (seg.id >= 0)
        ids.push_back(seg.id);
      else
        encode_plain(std::string_view(normalized).substr(seg.begin, seg.end - seg.begin), ids);
    }
  }
  return ids;
}

void BpeTokenizer::encode_plain(std::string_view normalized, std::vector<int32_t>& ids) const {
  std::string prefixed;
  if (options_.add_prefix_space && !normalized.starts_with(' ')) {
    prefixed.reserve(normalized.size() + 1);
    prefixed += ' ';
    prefixed += normalized;
    normalized = prefixed;
  }
  if (!options_.use_regex) {
    model_.tokenize(normalized, ids);
    return;
  }
  std::vector<std::string_view> words;
  splitter_.split(normalized, words);
  for (std::string_view w : words) model_.tokenize(w, ids);
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  // Ids outside the vocabulary (e.g. the padding rows of an embedding) decode to nothing, as
  // `tokenizers` skips ids it does not know.
  for (int32_t id : ids) out += token_bytes(id);
  return out;
}

std::string BpeTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_bytes_.size()) return {};
  return id_bytes_[id];
}

std::optional<int32_t> BpeTokenizer::token_id(std::string_view token) const {
  for (const AddedToken& a : added_)
    if (a.content == token) return a.id;
  const auto it = model_.vocab().find(std::string(token));
  if (it == model_.vocab().end()) return std::nullopt;
  return it->second;
}

}  // namespace mambascope
