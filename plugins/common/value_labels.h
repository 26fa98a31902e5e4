// Values kept as canonical JSON text (common/json_canonical.h) as the
// TABA_FORMAT_METRICS render shows them (docs/prometheus.md, "Families by
// type"): a JSON number is a sample's value, any other value a label of an
// info family. Gauge, ExpiryGauge (common/latest_values.h) and Buffer keep
// such values.
#ifndef TABA_PLUGINS_COMMON_VALUE_LABELS_H
#define TABA_PLUGINS_COMMON_VALUE_LABELS_H

#include <cstddef>
#include <string>
#include <string_view>

namespace taba::builtin {

// The longest label value a metrics render writes, in bytes.
inline constexpr size_t kMaxLabelBytes = 256;

// Whether `canonical` (a canonical JSON value) is a number; its value in
// *value when it is.
bool canonical_number(std::string_view canonical, double* value);

// s cut to at most kMaxLabelBytes bytes, ending on a UTF-8 character
// boundary (a character that does not fit whole is left out).
std::string_view cut_label(std::string_view s);

// The label text of a canonical JSON value: a string's content, decoded
// (no quotes, no escapes: the host escapes labels for the exposition
// format); any other value's JSON text (true, false, null, [1,"a"]). Cut
// as cut_label does.
std::string value_label(std::string_view canonical);

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_VALUE_LABELS_H
