#include "common/metric_families.h"

namespace taba::builtin {

void MetricFamilies::family(std::string_view suffix, std::string_view type, std::string_view help) {
  if (family_has_samples_) text_.raw("]]");
  family_has_samples_ = false;
  TextBuffer head(Numbers::kExact);
  head.raw("[").json_string(suffix).raw(", ").json_string(type).raw(", ").json_string(help).raw(", [");
  pending_ = head.str();
}

void MetricFamilies::open_sample(std::initializer_list<Label> labels) {
  if (!family_has_samples_) {
    text_.raw(any_family_ ? ", " : "[").raw(pending_);
    any_family_ = true;
    family_has_samples_ = true;
  } else {
    text_.raw(", ");
  }
  text_.raw("[{");
  bool first = true;
  for (const Label& l : labels) {
    if (!first) text_.raw(", ");
    first = false;
    text_.json_string(l.first).raw(": ").json_string(l.second);
  }
  text_.raw("}, ");
}

void MetricFamilies::sample(std::initializer_list<Label> labels, double value) {
  open_sample(labels);
  text_.shortest(value).raw("]");
}

void MetricFamilies::sample(std::initializer_list<Label> labels, double value, double tolerance) {
  open_sample(labels);
  text_.number6(value, tolerance).raw("]");  // exact numbers: the shortest within tolerance
}

taba_status MetricFamilies::flush_to(taba_output* out) {
  if (family_has_samples_) text_.raw("]]");
  family_has_samples_ = false;
  text_.raw(any_family_ ? "]" : "[]");
  return text_.flush_to(out);
}

}  // namespace taba::builtin
