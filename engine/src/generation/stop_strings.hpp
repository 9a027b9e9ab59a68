// Stop strings for streaming generation: text is released as soon as it cannot be the start of
// a stop string, and held back while it might be, so that a stop string's own text is never
// shown even when it arrives split across several tokens.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace mambascope {

class StopMatcher {
 public:
  explicit StopMatcher(const std::vector<std::string>& stops);  // empty strings are ignored
  // Appends text and returns what can be released now. When a stop string completes, matched()
  // turns true, the returned text ends just before it and everything after it is dropped.
  std::string feed(std::string_view text);
  // Releases the held-back tail (generation ended without completing a stop string).
  std::string flush();
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;  // a suffix that is a proper prefix of some stop string
  bool matched_ = false;
};

}  // namespace mambascope
