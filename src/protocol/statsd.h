// StatsD / DogStatsD lines (docs/statsd.md) for the client-proxy:
//
//   name:value[:value...]|type[|@rate][|#tag[:v],...][|T<unix seconds>][|c:container]
//
// Parsing never allocates: a Line holds views into the caller's text, which
// must outlive it. Bad lines are reported with a short static reason, never
// thrown, so the caller can count them and go on.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace taba::protocol::statsd {

enum class Kind : uint8_t {
  kCounter,       // c
  kTimer,         // ms
  kHistogram,     // h
  kDistribution,  // d
  kGauge,         // g, absolute value
  kGaugeDelta,    // g with a leading '+' or '-': a change of the gauge
  kSet,           // s
};

struct Line {
  std::string_view name;       // metric name as sent (before map_name)
  std::string_view value;      // this value's text; for sets the member
  std::string_view values;     // the whole value list as sent, "1:2:3" (== value when one value)
  double number = 0;           // value parsed: finite, signed for kGaugeDelta; 0 for sets
  bool value_is_shortest = false;  // value is exactly format_number's text for number (never for sets)
  double sample_rate = 1;      // from |@rate, in (0, 1]
  int64_t timestamp = 0;       // from |T<unix seconds>, > 0; 0 when absent
  Kind kind = Kind::kCounter;  // from the type; for gauges also the sign of the value
  std::string_view tags;       // raw text after |#, comma-separated tag[:value]; "" if none
};

// Parses one line (without its newline). Returns nullptr on success, else a
// short static reason ("bad value", "unknown type", ...). On a multi-value
// line every value is checked (one bad value makes the whole line bad) and
// `value`, `number` and `kind` describe the first; see for_each_value.
const char* parse_line(std::string_view text, Line* out);

// parse_line for a caller that has already found, in one pass over the
// datagram, the first ':' or '|' of `text` (colon) and its first '|' (bar);
// either is text.data() + text.size() when there is none. Same result.
const char* parse_line_at(std::string_view text, const char* colon, const char* bar, Line* out);

// True for kGauge and kGaugeDelta.
constexpr bool is_gauge(Kind kind) {
  return kind == Kind::kGauge || kind == Kind::kGaugeDelta;
}

namespace detail {
// Parses a whole value text as a finite number with an optional leading
// '+' or '-' (*has_sign tells which was present). nullptr on success.
const char* parse_number(std::string_view text, double* number, bool* has_sign);
// The same, and *shortest = number_text_is_shortest(text), in the same pass.
const char* parse_number(std::string_view text, double* number, bool* has_sign, bool* shortest);
// The first byte in [p, end) that is a or b, or end (a vector scan that
// never reads past end).
const char* find_either(const char* p, const char* end, char a, char b);
}  // namespace detail

// Calls f(const Line&) once per value of a line that parse_line accepted:
// a copy of `line` with value, number and (for gauges, whose every value
// carries its own sign) kind set to that value. A single-value line is
// passed through as it is. Sets always have one value: a member may
// contain ':'.
template <class F>
void for_each_value(const Line& line, F&& f) {
  if (line.kind == Kind::kSet || line.values.size() == line.value.size()) {
    f(line);
    return;
  }
  Line one = line;
  std::string_view rest = line.values;
  for (;;) {
    size_t colon = rest.find(':');
    one.value = rest.substr(0, colon);
    bool has_sign = false;
    // Already checked by parse_line, so this cannot fail.
    detail::parse_number(one.value, &one.number, &has_sign, &one.value_is_shortest);
    if (is_gauge(line.kind)) one.kind = has_sign ? Kind::kGaugeDelta : Kind::kGauge;
    f(static_cast<const Line&>(one));
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
}

// Splits a datagram into lines at '\n' (a '\r' before it is dropped, empty
// lines are skipped, a final newline is optional) and calls
//   on_line(const Line&)                        once per VALUE of each good line
//                                               (multi-value lines arrive as
//                                               several Lines, see for_each_value);
//   on_bad(std::string_view line, const char* reason)  once per bad line.
template <class OnLine, class OnBad>
void parse_datagram(std::string_view datagram, OnLine&& on_line, OnBad&& on_bad) {
  while (!datagram.empty()) {
    size_t nl = datagram.find('\n');
    std::string_view text = datagram.substr(0, nl);
    datagram.remove_prefix(nl == std::string_view::npos ? datagram.size() : nl + 1);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (text.empty()) continue;
    Line line;
    if (const char* why = parse_line(text, &line)) {
      on_bad(text, why);
    } else {
      for_each_value(line, on_line);
    }
  }
}

// Builds the Taba name of a line into *out (cleared first; reuse one string
// across calls to avoid allocating): the name, then each distinct tag as
// ";tag=value" (";tag" when it has no value), sorted byte-wise. Bytes that
// may not appear in a Taba name become '_', and so do the bytes that would
// make the result ambiguous: ';' anywhere and '=' in a tag key. Only the
// first ':' of a tag separates key from value; later ones stay. Sorting and
// de-duplication work on the mapped tags. False when the result would be
// empty or longer than kMaxIdentifierBytes (*out is then unspecified).
bool map_name(const Line& line, std::string* out);

// Number texts for event payloads. format_number writes what
// fmt::format("{}", v) writes (the shortest text that reads back as v: "6",
// "0.5", "-0", "1e+16"), with a fast path for integers. number_text_is_shortest
// tells whether `text`, a value parse_number accepted, already is that text
// for its number, so the caller may copy it instead: an optional '-', then
// "0" or digits without a leading zero, then optionally '.' and digits not
// ending in '0'; at most 15 digits; no exponent; below 1 at most three zeros
// after the '.' (fmt writes 1e-05 for 0.00001). format_number writes at
// most kMaxNumberText bytes and returns the end of what it wrote.
constexpr size_t kMaxNumberText = 32;
char* format_number(double v, char* out);
void append_number(double v, std::string* out);
bool number_text_is_shortest(std::string_view text);

// The Taba type of a kind: "CounterGroup", "PercentileGroup" (ms, h, d),
// "Gauge" (both gauge kinds) or "Set".
std::string_view taba_type(Kind kind);

}  // namespace taba::protocol::statsd
