// The canonical text of a JSON value, for the handlers that key, compare or
// store event values by their JSON text (Gauge, ExpiryGauge, Set, Buffer).
// Clients write the same value in different ways (the original Python
// client's cjson sends "a\/b" where others send "a/b"; "\u00fcrich" and
// "ürich"; 1.5, 1.50 and 15e-1), and keyed by the text as sent those would
// be different values: two keys in a Gauge's render, two members of a Set.
// Rewritten into one form first, equal values are one value.
//
// The canonical form:
//   string   decoded, then written one way: '"' and '\' backslash-escaped,
//            control characters (< 0x20) as \b \f \n \r \t or \u00XX
//            (append_json_escaped), everything else ('/', DEL, non-ASCII)
//            as raw UTF-8. A \uD8xx\uDCxx escape pair is its code point; an
//            unpaired surrogate escape becomes U+FFFD. A string whose raw
//            bytes are not valid UTF-8 is read as Latin-1, each byte being
//            the code point of the same number (the Java client's
//            "Z\xfcrich" is "Zürich"); the choice is per string.
//   number   the shortest text that reads back as the same double, in
//            JavaScript's form (append_shortest_double): 1.50 and 15e-1 are
//            1.5, 1e3 is 1000, -0 is 0.
//   true, false, null   as they are.
//   array, object       without whitespace ([1,"a"], {"k":1}), elements
//            and members canonical, members in their order (a key repeated
//            after decoding stays repeated).
// The result is always valid UTF-8 and valid JSON.
#ifndef TABA_PLUGINS_COMMON_JSON_CANONICAL_H
#define TABA_PLUGINS_COMMON_JSON_CANONICAL_H

#include <string>
#include <string_view>

namespace taba::builtin {

// Containers may nest this many levels deep: as deep as the host's payload
// scanner lets a payload nest, so every value an event can carry has a
// canonical form.
inline constexpr int kMaxJsonDepth = 65;

// Points *out at the canonical form of `text`, one JSON value without
// whitespace around it (value_text trims an event's). The common values are recognised as canonical in
// one pass without copying, *out then being `text` itself: a string of
// valid UTF-8 without escapes, an integer of at most 15 digits, true,
// false, null. Any other value is rewritten into *scratch (its previous
// content replaced), and *out points at it. Returns false, *out unset,
// when text is not one JSON value, nests deeper than kMaxJsonDepth, or
// holds a number beyond the range of a double (the host refuses those).
bool canonical_json(std::string_view text, std::string* scratch, std::string_view* out);

// A value read back from a serialized state: a state written before its
// handler kept values canonical (`canonical` false) has its value
// rewritten as canonical_json does; in a later one the value must already
// be canonical. Returns false when it is not JSON, or not canonical where
// it must be (a damaged state).
bool read_stored_value(std::string_view text, bool canonical, std::string* scratch, std::string_view* out);

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_JSON_CANONICAL_H
