#include "core/matcher.h"

#include <fmt/format.h>
#include <re2/re2.h>

#include <algorithm>

#include "core/validation.h"

namespace taba {

Result<Matcher> Matcher::make(const std::vector<std::string>& values, bool re, bool present) {
  Matcher m;
  m.present_ = present;
  if (!present) return m;
  if (re) {
    std::string pattern = values.empty() ? std::string() : values.front();
    RE2::Options opts;
    opts.set_log_errors(false);
    opts.set_max_mem(8 << 20);
    auto regex = std::make_shared<RE2>(pattern, opts);
    if (!regex->ok()) {
      // RE2's error repeats the offending part of the pattern, which can be
      // as long as the pattern: keep the reason one short line.
      std::string why = regex->error();
      if (why.size() > 120) why = why.substr(0, 117) + "...";
      return Status::Invalid(fmt::format("invalid regular expression \"{}\": {}", quote_for_error(pattern), why));
    }
    m.regex_ = std::move(regex);
    return m;
  }
  m.values_ = values;
  std::sort(m.values_.begin(), m.values_.end());
  m.values_.erase(std::unique(m.values_.begin(), m.values_.end()), m.values_.end());
  return m;
}

bool Matcher::matches(std::string_view value) const {
  if (!present_) return true;
  if (regex_) return RE2::FullMatch(re2::StringPiece(value.data(), value.size()), *regex_);
  return std::binary_search(values_.begin(), values_.end(), value);
}

}  // namespace taba
