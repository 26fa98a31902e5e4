// The filter every part of tabad selects names and clients with: an exact set
// of values, or one whole-string RE2 pattern (the `re=1` query parameter).
// Queries build it from their parameters (query/params.h) and stores take it
// to fetch or delete only what matches, so it lives below both.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace re2 {
class RE2;
}

namespace taba {

class Matcher {
 public:
  // `present` false: no filter, everything matches. Error when the regex
  // does not compile (the message names it, on one short line).
  static Result<Matcher> make(const std::vector<std::string>& values, bool re, bool present);
  bool any() const { return !present_; }  // no filter: everything matches
  bool matches(std::string_view value) const;
  // The exact values, sorted and unique (only meaningful when !is_regex()).
  const std::vector<std::string>& values() const { return values_; }
  bool is_regex() const { return regex_ != nullptr; }

 private:
  bool present_ = false;
  std::vector<std::string> values_;  // sorted
  std::shared_ptr<re2::RE2> regex_;
};

}  // namespace taba
