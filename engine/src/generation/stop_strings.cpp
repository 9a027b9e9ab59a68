// StopMatcher (stop_strings.hpp) and the names of the reasons generation stops.
#include "generation/stop_strings.hpp"

#include <algorithm>
#include <utility>

#include "mambascope/session.hpp"

namespace mambascope {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::MaxTokens:
      return "max-tokens";
    case StopReason::Eos:
      return "eos";
    case StopReason::StopString:
      return "stop-string";
    case StopReason::Cancelled:
      return "cancelled";
    case StopReason::Error:
      return "error";
  }
  return "unknown";
}

StopMatcher::StopMatcher(const std::vector<std::string>& stops) {
  for (const auto& s : stops)
    if (!s.empty()) stops_.push_back(s);
}

std::string StopMatcher::feed(std::string_view text) {
  if (matched_) return {};
  held_.append(text);
  if (stops_.empty()) return std::exchange(held_, {});

  // The earliest complete stop string wins.
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    matched_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Hold the longest suffix that could still grow into a stop string. It starts at a character
  // boundary because a stop string does, so the released part is whole UTF-8.
  size_t hold = 0;
  for (const auto& s : stops_) {
    for (size_t j = std::min(s.size() - 1, held_.size()); j > hold; --j) {
      if (held_.compare(held_.size() - j, j, s, 0, j) == 0) {
        hold = j;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return out;
}

std::string StopMatcher::flush() { return std::exchange(held_, {}); }

}  // namespace mambascope
