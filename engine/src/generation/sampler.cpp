// The sampler: turns one row of logits into a token id. Written for vocabularies of ~50k: every
// step is O(vocab) (one copy, one exp pass) plus a partial selection, never a full sort, unless
// top-p without top-k needs a long tail (then the sorted prefix grows geometrically).
#include "mambascope/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "mambascope/error.hpp"

namespace mambascope {

namespace {

// Descending by logit; ties towards the lower id so that results are the same whatever
// selection algorithm the standard library uses.
bool better(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

void check_finite(std::span<const float> logits) {
  if (logits.empty()) throw Error("sampler: the model returned no logits (vocabulary of size 0)");
  for (size_t i = 0; i < logits.size(); ++i) {
    float v = logits[i];
    if (std::isnan(v) || v == std::numeric_limits<float>::infinity())
      throw Error("the model produced a non-finite logit (" +
                  std::string(std::isnan(v) ? "NaN" : "+inf") + " at token id " +
                  std::to_string(i) +
                  "): the weights or the computation are broken; check the checkpoint, or try "
                  "--backend cpu");
  }
}

// A uniform double in [0, 1) from the top 53 bits: unlike std::uniform_real_distribution this is
// the same on every standard library, so a seed gives the same text everywhere.
double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

// The k best (scaled logit, id) pairs of v {n}, sorted best first. Small k (alternatives, the
// usual top-k) keeps a min-heap of k while scanning, which touches the heap only for the few
// tokens better than its worst; large k selects with nth_element. Neither sorts the vocabulary.
void select_top(const std::vector<float>& v, int64_t k,
                std::vector<std::pair<float, int32_t>>& out) {
  const int64_t n = int64_t(v.size());
  k = std::min(k, n);
  out.clear();
  if (k <= 0) return;
  if (k <= 256) {
    out.reserve(size_t(k));
    for (int64_t i = 0; i < n; ++i) {
      std::pair<float, int32_t> c{v[size_t(i)], int32_t(i)};
      if (int64_t(out.size()) < k) {
        out.push_back(c);
        std::push_heap(out.begin(), out.end(), better);  // heap top = worst kept
      } else if (better(c, out.front())) {
        std::pop_heap(out.begin(), out.end(), better);
        out.back() = c;
        std::push_heap(out.begin(), out.end(), better);
      }
    }
  } else {
    out.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = {v[size_t(i)], int32_t(i)};
    std::nth_element(out.begin(), out.begin() + (k - 1), out.end(), better);
    out.resize(size_t(k));
  }
  std::sort(out.begin(), out.end(), better);
}

}  // namespace

void SamplingParams::validate() const {
  auto bad = [](const std::string& what) { throw Error("invalid sampling parameter: " + what); };
  if (!(temperature >= 0) || !std::isfinite(temperature))
    bad("temperature must be >= 0 (0 = greedy), got " + std::to_string(temperature));
  if (top_k < 0) bad("top-k must be >= 0 (0 = off), got " + std::to_string(top_k));
  if (!(top_p > 0 && top_p <= 1))
    bad("top-p must be in (0, 1] (1 = off), got " + std::to_string(top_p));
  if (!(min_p >= 0 && min_p <= 1))
    bad("min-p must be in [0, 1] (0 = off), got " + std::to_string(min_p));
  if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty))
    bad("repetition penalty must be > 0 (1 = off), got " + std::to_string(repetition_penalty));
  if (repetition_window < 0)
    bad("repetition window must be >= 0, got " + std::to_string(repetition_window));
  if (n_alternatives < 0)
    bad("number of alternatives must be >= 0, got " + std::to_string(n_alternatives));
}

Sampler::Sampler(SamplingParams params) : params_(params), rng_(params.seed) { params_.validate(); }

void Sampler::reseed(uint64_t seed) {
  params_.seed = seed;
  rng_.seed(seed);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history,
                        std::vector<Alternative>* alternatives) {
  check_finite(logits);
  const int64_t n = int64_t(logits.size());
  scaled_.assign(logits.begin(), logits.end());  // scaled_ {vocab}

  // CTRL repetition penalty (Keskar et al. 2019): each distinct token of the window once;
  // dividing a positive logit and multiplying a negative one both make it less likely.
  const float rp = params_.repetition_penalty;
  if (rp != 1.0f && params_.repetition_window > 0 && !history.empty()) {
    seen_.resize(size_t(n), 0);
    size_t w = std::min(history.size(), size_t(params_.repetition_window));
    auto window = history.subspan(history.size() - w);
    for (int32_t id : window) {
      if (id < 0 || id >= n || seen_[size_t(id)]) continue;
      seen_[size_t(id)] = 1;
      float& v = scaled_[size_t(id)];
      v = v > 0 ? v / rp : v * rp;
    }
    for (int32_t id : window)
      if (id >= 0 && id < n) seen_[size_t(id)] = 0;
  }

  const bool greedy = params_.temperature <= 0;
  if (!greedy && params_.temperature != 1.0f) {
    const float inv_t = 1.0f / params_.temperature;
    for (float& v : scaled_) v *= inv_t;
  }

  // argmax (first index among ties) and the normaliser of the whole distribution.
  int64_t arg = 0;
  for (int64_t i = 1; i < n; ++i)
    if (scaled_[size_t(i)] > scaled_[size_t(arg)]) arg = i;
  const float m = scaled_[size_t(arg)];
  if (m == -std::numeric_limits<float>::infinity())
    throw Error("sampler: every logit is -inf, there is no token to choose");
  // float exp: this pass over the vocabulary is the sampler's main cost; z is summed in double.
  double z = 0;
  for (float v : scaled_) z += double(std::exp(v - m));

  if (alternatives) {
    alternatives->clear();
    select_top(scaled_, params_.n_alternatives, cand_);
    for (const auto& c : cand_)
      alternatives->push_back({c.second, float(std::exp(double(c.first) - m) / z)});
  }
  if (greedy) return int32_t(arg);

  // Candidates: (scaled logit, id), sorted best first whenever top-p needs the order.
  const bool use_top_p = params_.top_p < 1.0f;
  const int64_t k = (params_.top_k > 0 && params_.top_k < n) ? params_.top_k : n;
  if (k < n) {
    select_top(scaled_, k, cand_);
  } else if (use_top_p) {
    // No top-k: select only as long a sorted prefix as the nucleus needs, growing it 8× a round.
    for (int64_t s = std::min<int64_t>(n, 128);; s = std::min<int64_t>(n, s * 8)) {
      select_top(scaled_, s, cand_);
      double cum = 0;
      for (const auto& c : cand_) cum += std::exp(double(c.first) - m);
      if (cum / z >= params_.top_p || s == n) break;
    }
  } else {
    cand_.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) cand_[size_t(i)] = {scaled_[size_t(i)], int32_t(i)};
  }

  // top-p: the smallest prefix whose probability (renormalised over the candidates) reaches p.
  if (use_top_p) {
    double zc = 0;
    for (const auto& c : cand_) zc += std::exp(double(c.first) - m);
    double cum = 0;
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += std::exp(double(cand_[i].first) - m) / zc;
      if (cum >= params_.top_p) {
        cand_.resize(i + 1);
        break;
      }
    }
  }

  // min-p: p_i >= min_p * p_max  <=>  l_i >= m + log(min_p). The argmax is always a candidate.
  if (params_.min_p > 0) {
    const double thr = double(m) + std::log(double(params_.min_p));
    std::erase_if(cand_, [thr](const auto& c) { return double(c.first) < thr; });
  }

  double zf = 0;
  for (const auto& c : cand_) zf += std::exp(double(c.first) - m);
  const double r = uniform01(rng_) * zf;
  double acc = 0;
  for (const auto& c : cand_) {
    acc += std::exp(double(c.first) - m);
    if (r < acc) return c.second;
  }
  // Rounding can leave r == zf: take the last candidate with non-zero weight.
  for (auto it = cand_.rbegin(); it != cand_.rend(); ++it)
    if (it->first > -std::numeric_limits<float>::infinity()) return it->second;
  return int32_t(arg);
}

void log_softmax(std::span<const float> logits, std::vector<float>& out) {
  check_finite(logits);
  float m = -std::numeric_limits<float>::infinity();
  for (float v : logits) m = std::max(m, v);
  if (m == -std::numeric_limits<float>::infinity()) throw Error("log_softmax: every logit is -inf");
  double z = 0;
  for (float v : logits) z += std::exp(double(v) - m);
  const double lz = double(m) + std::log(z);
  out.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = float(double(logits[i]) - lz);
}

}  // namespace mambascope
