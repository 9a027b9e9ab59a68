// Opens a model folder: finds its weights (one file, or shards named by an index), maps them,
// reads every safetensors header, gives tensors their canonical names and checks each one
// against the shapes config.json implies. Everything a user can get wrong is reported with the
// file, the tensor and what to do; nothing is copied.
#include "mambascope/checkpoint.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "checkpoint/layout.hpp"
#include "checkpoint/mapped_file.hpp"
#include "checkpoint/safetensors.hpp"
#include "mambascope/error.hpp"

namespace mambascope {

namespace fs = std::filesystem;

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

// What to tell a user whose folder holds PyTorch pickles only (many state-spaces repos do).
std::string convert_hint(const fs::path& dir, const std::string& found) {
  return dir.string() + " holds " + found +
         " (PyTorch pickle) but no safetensors; MambaScope reads safetensors only, since a pickle "
         "can run code when loaded. Convert it once, in that folder, with Python (torch and "
         "safetensors installed):\n  python3 -c \"import torch; from safetensors.torch import "
         "save_file; sd = torch.load('" +
         found +
         "', map_location='cpu'); "
         "save_file({k: v.contiguous().clone() for k, v in sd.items()}, 'model.safetensors', "
         "metadata={'format': 'pt'})\"";
}

struct WeightFiles {
  std::vector<fs::path> files;
  std::map<std::string, std::string> weight_map;  // from the index: stored name -> shard file
  bool sharded = false;
};

WeightFiles find_weight_files(const fs::path& dir) {
  WeightFiles w;
  std::error_code ec;
  fs::path index = dir / kIndexName;
  if (fs::exists(index, ec)) {
    w.sharded = true;
    std::ifstream f(index, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(index.string() + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(index.string() + ": has no \"weight_map\" object naming each tensor's shard");
    std::set<std::string> shards;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string())
        throw Error(index.string() + ": weight_map entry for \"" + name + "\" is not a file name");
      std::string s = file.get<std::string>();
      if (s.empty() || s.find('/') != std::string::npos || s.find('\\') != std::string::npos ||
          s == "..")
        throw Error(index.string() + ": shard name \"" + s +
                    "\" must be a plain file name in the model folder");
      w.weight_map[name] = s;
      if (shards.insert(s).second && !fs::exists(dir / s, ec))
        throw Error(index.string() + " lists shard " + s + " (holding \"" + name + "\") but " +
                    (dir / s).string() + " is missing: download every shard the index names");
    }
    if (shards.empty()) throw Error(index.string() + ": weight_map is empty");
    for (const auto& s : shards) w.files.push_back(dir / s);
    return w;
  }
  if (fs::exists(dir / kSingleName, ec)) {
    w.files.push_back(dir / kSingleName);
    return w;
  }
  std::vector<fs::path> st;
  std::string pickle;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string ext = e.path().extension().string();
    if (ext == ".safetensors") st.push_back(e.path());
    if ((ext == ".bin" || ext == ".pt" || ext == ".pth") && pickle.empty())
      pickle = e.path().filename().string();
  }
  std::sort(st.begin(), st.end());
  if (st.size() == 1) {
    w.files = st;
    return w;
  }
  if (st.size() > 1)
    throw Error(dir.string() + " holds " + std::to_string(st.size()) +
                " .safetensors files but no " + kIndexName +
                " saying which tensor is in which; add the index or keep one file");
  if (!pickle.empty()) throw Error(convert_hint(dir, pickle));
  throw Error(dir.string() + " has no weights: expected " + kSingleName + " (or shards listed in " +
              kIndexName + ") next to config.json");
}

// Where a stored tensor came from, for messages.
struct Origin {
  std::string file;
  std::string stored_name;
};

// Why a tensor that is not in the expected layout is there, when we can tell.
std::string unexpected_hint(const std::string& name, const ModelConfig& c) {
  const std::string layers = "backbone.layers.";
  if (name.rfind(layers, 0) == 0) {
    int64_t i = std::atoll(name.c_str() + layers.size());
    if (i >= c.n_layer)
      return ": config.json says " + std::to_string(c.n_layer) +
             " layers but the checkpoint has layer " + std::to_string(i) +
             " (wrong config.json for these weights?)";
  }
  auto ends = [&](const char* s) { return name.ends_with(s); };
  if ((ends("in_proj.bias") || ends("out_proj.bias")) && !c.use_bias)
    return ": config.json says use_bias false, but the checkpoint has projection biases";
  if (ends("conv1d.bias") && !c.use_conv_bias)
    return ": config.json says use_conv_bias false, but the checkpoint has a conv1d bias";
  if ((ends("x_proj.weight") || ends("dt_proj.weight") || ends("dt_proj.bias")) && c.lti)
    return ": config.json says mambascope_lti, but this is a selective (x_proj/dt_proj) layer";
  if (ends("_lti") && !c.lti)
    return ": an LTI parameter, but config.json lacks \"mambascope_lti\": true";
  return ": not part of a Mamba-1 model (is this another architecture?)";
}

std::string missing_hint(const ExpectedTensor& t, const ModelConfig& c) {
  auto ends = [&](const char* s) { return t.name.ends_with(s); };
  if ((ends("in_proj.bias") || ends("out_proj.bias")) && c.use_bias)
    return " (config.json says use_bias true, or leaves it out, which means true in transformers; "
           "set \"use_bias\": false if the model has none)";
  if (ends("conv1d.bias"))
    return " (config.json says use_conv_bias true; set it false if the model has none)";
  if (t.name == "lm_head.weight")
    return " (config.json says tie_word_embeddings false; set it true if the head is the "
           "embedding)";
  if (c.lti && t.name.ends_with("_lti")) return " (config.json says mambascope_lti)";
  return "";
}

bool views_equal_sampled(const TensorView& a, const TensorView& b) {
  // A tied head must equal the embedding. Comparing a few spread rows finds a different head
  // without paging in hundreds of megabytes of a cold file.
  const int64_t rows = a.shape[0];
  const size_t row_bytes = a.nbytes / size_t(std::max<int64_t>(rows, 1));
  if (a.dtype != b.dtype) return false;
  for (int64_t k = 0; k < 17 && rows > 0; ++k) {
    int64_t r = k * (rows - 1) / 16;
    if (std::memcmp(a.data + size_t(r) * row_bytes, b.data + size_t(r) * row_bytes, row_bytes) != 0)
      return false;
  }
  return true;
}

}  // namespace

class CheckpointLoader {
 public:
  static std::unique_ptr<Checkpoint> load(const fs::path& dir_in) {
    std::unique_ptr<Checkpoint> ck(new Checkpoint());
    ck->config_ = load_model_config(dir_in);  // also checks the folder exists
    ck->dir_ = dir_in;
    const fs::path& dir = ck->dir_;
    ModelConfig& cfg = ck->config_;

    WeightFiles wf = find_weight_files(dir);
    std::map<std::string, TensorView> found;  // canonical name -> view
    std::map<std::string, Origin> origin;
    for (const fs::path& p : wf.files) {
      ck->files_.push_back(MappedFile::open(p));
      const MappedFile& mf = *ck->files_.back();
      std::set<std::string> in_file;
      for (SafetensorsEntry& e : parse_safetensors(mf.data(), mf.size(), p.string())) {
        std::string canon = canonical_tensor_name(e.name);
        if (found.count(canon)) {
          const Origin& o = origin[canon];
          throw Error(p.string() + ": tensor \"" + e.name + "\" is also stored as \"" +
                      o.stored_name + "\" in " + o.file +
                      "; a checkpoint must hold each tensor once");
        }
        in_file.insert(e.name);
        TensorView v;
        v.name = canon;
        v.dtype = e.dtype;
        v.shape = std::move(e.shape);
        v.data = mf.data() + e.begin;
        v.nbytes = e.end - e.begin;
        found.emplace(canon, std::move(v));
        origin[canon] = {p.string(), e.name};
      }
      for (const auto& [name, file] : wf.weight_map)
        if (file == p.filename().string() && !in_file.count(name))
          throw Error(dir.string() + "/" + kIndexName + " places \"" + name + "\" in " + file +
                      ", but that shard does not hold it: the shards and the index do not match");
    }

    // A converted original checkpoint may keep only the tied head's name for the shared tensor.
    const std::string emb = "backbone.embeddings.weight", head = "lm_head.weight";
    if (!found.count(emb) && found.count(head) && cfg.tie_embeddings) {
      TensorView v = found.at(head);
      v.name = emb;
      found.erase(head);
      found.emplace(emb, std::move(v));
    }

    // The embedding's rows are the vocabulary; config.json must agree (after padding).
    if (auto it = found.find(emb); it != found.end() && it->second.shape.size() == 2 &&
                                   it->second.shape[0] != cfg.vocab_size) {
      throw Error(
          origin[emb].file + ": " + emb + " has " + std::to_string(it->second.shape[0]) +
          " rows but config.json implies vocab_size " + std::to_string(cfg.vocab_size) +
          (cfg.naming == "original" ? " (vocab_size padded up to pad_vocab_size_multiple)" : "") +
          ": config.json and weights are from different models");
    }

    std::set<std::string> expected_names;
    for (const ExpectedTensor& t : expected_tensors(cfg)) {
      expected_names.insert(t.name);
      auto it = found.find(t.name);
      if (it == found.end())
        throw Error(dir.string() + ": the weights lack " + t.name + " " + shape_to_string(t.shape) +
                    ", which config.json calls for" + missing_hint(t, cfg));
      if (it->second.shape != t.shape)
        throw Error(origin[t.name].file + ": " + origin[t.name].stored_name + " has shape " +
                    shape_to_string(it->second.shape) + " but config.json implies " +
                    shape_to_string(t.shape) + " = " + t.formula + " with d_model " +
                    std::to_string(cfg.d_model) + ", d_inner " + std::to_string(cfg.d_inner) +
                    ", d_state " + std::to_string(cfg.d_state) + ", d_conv " +
                    std::to_string(cfg.d_conv) + ", dt_rank " + std::to_string(cfg.dt_rank) +
                    ": config.json and weights do not match");
      ck->index_[t.name] = ck->tensors_.size();
      ck->tensors_.push_back(it->second);
    }
    for (const auto& [name, v] : found) {
      if (expected_names.count(name)) continue;
      if (name == head && cfg.tie_embeddings) {
        const TensorView& e = ck->get(emb);
        if (v.shape != e.shape || !views_equal_sampled(v, e))
          throw Error(origin[head].file +
                      ": config.json ties the output head to the embedding, but "
                      "lm_head.weight differs from it; set \"tie_word_embeddings\": false (or "
                      "\"tie_embeddings\": false) if this model has a separate head");
        continue;  // the same numbers: use the embedding, count them once
      }
      throw Error(origin[name].file + ": unexpected tensor \"" + origin[name].stored_name + "\"" +
                  unexpected_hint(name, cfg));
    }
    if (cfg.tie_embeddings) ck->index_[head] = ck->index_.at(emb);
    return ck;
  }
};

std::unique_ptr<Checkpoint> Checkpoint::open(const fs::path& dir) {
  return CheckpointLoader::load(dir);
}

Checkpoint::~Checkpoint() = default;

const TensorView* Checkpoint::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorView& Checkpoint::get(std::string_view name) const {
  if (const TensorView* v = find(name)) return *v;
  throw Error(dir_.string() + ": the checkpoint has no tensor \"" + std::string(name) + "\"");
}

DType Checkpoint::storage_dtype() const { return get("backbone.embeddings.weight").dtype; }

int64_t Checkpoint::parameter_count() const {
  int64_t n = 0;
  for (const TensorView& t : tensors_) n += t.numel();  // a tied head is not in tensors_
  return n;
}

size_t Checkpoint::mapped_bytes() const {
  size_t n = 0;
  for (const auto& f : files_) n += f->size();
  return n;
}

}  // namespace mambascope
