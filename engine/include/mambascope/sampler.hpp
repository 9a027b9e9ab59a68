// Picks the next token from logits: greedy, temperature, top-k, top-p, min-p and a repetition
// penalty, seeded so that the same seed gives the same text. Also reports the top alternatives.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace mambascope {

struct SamplingParams {
  float temperature = 0.8f;         // 0 = greedy
  int top_k = 40;                   // 0 = off
  float top_p = 0.95f;              // 1 = off
  float min_p = 0.0f;               // 0 = off; keep tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f;  // 1 = off; CTRL-style, over the last repetition_window tokens
  int repetition_window = 64;
  uint64_t seed = 0;
  int n_alternatives = 5;  // top-k alternatives reported per step

  // Throws mambascope::Error naming the first value out of range (temperature < 0, top_k < 0,
  // top_p outside (0, 1], min_p outside [0, 1], repetition_penalty <= 0, ...).
  void validate() const;
};

struct Alternative {
  int32_t id = 0;
  float prob = 0;  // after the repetition penalty and temperature, before truncation
};

// The filters are applied in this order, each on the distribution left by the previous one
// (renormalised): repetition penalty, temperature, top-k, top-p, min-p. Greedy (temperature 0)
// takes the argmax of the penalised logits and draws no random number; its alternatives are
// reported at temperature 1. Ties are broken towards the lower id, so results do not depend on
// the sort algorithm. Logits may be -inf (a masked token); NaN or +inf is an Error.
class Sampler {
 public:
  explicit Sampler(SamplingParams params);  // validates params
  const SamplingParams& params() const { return params_; }
  // logits {vocab}; history: tokens so far (for the penalty). alternatives: the
  // n_alternatives most probable tokens, descending. Returns the chosen id.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history,
                 std::vector<Alternative>* alternatives = nullptr);
  void reseed(uint64_t seed);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  // Scratch reused across calls so that a decode step allocates nothing.
  std::vector<float> scaled_;                    // {vocab} penalised logits / temperature
  std::vector<std::pair<float, int32_t>> cand_;  // (scaled logit, id) candidates
  std::vector<uint8_t> seen_;                    // {vocab} penalty bookkeeping
};

// log p(token) for every entry of logits {vocab} at temperature 1 (scoring, perplexity).
// Throws mambascope::Error on NaN or +inf.
void log_softmax(std::span<const float> logits, std::vector<float>& out);

}  // namespace mambascope
