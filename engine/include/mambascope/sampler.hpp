// Picks the next token from logits: greedy, temperature, top-k, top-p, min-p and a repetition
// penalty, seeded so that the same seed gives the same text. Also reports the top alternatives.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace mambascope {

struct SamplingParams {
  float temperature = 0.8f;        // 0 = greedy
  int top_k = 40;                  // 0 = off
  float top_p = 0.95f;             // 1 = off
  float min_p = 0.0f;              // 0 = off; keep tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f; // 1 = off; CTRL-style, over the last repetition_window tokens
  int repetition_window = 64;
  uint64_t seed = 0;
  int n_alternatives = 5;          // top-k alternatives reported per step
};

struct Alternative {
  int32_t id = 0;
  float prob = 0;  // after the repetition penalty and temperature, before truncation
};

class Sampler {
 public:
  explicit Sampler(SamplingParams params);
  const SamplingParams& params() const { return params_; }
  // logits {vocab}; history: tokens so far (for the penalty). alternatives: the
  // n_alternatives most probable tokens, descending. Returns the chosen id.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history,
                 std::vector<Alternative>* alternatives = nullptr);
  void reseed(uint64_t seed);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace mambascope
