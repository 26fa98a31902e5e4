// Per-client latest values: the state of Gauge and ExpiryGauge.
//
// A table of entries keyed by client ID. A client's entry is the value it
// set most recently by event timestamp (ties go to the entry offered last),
// with two times:
//   expiry        the entry counts (is "live") while now < expiry;
//   retain_until  the entry is kept while now < retain_until, which is
//                 max(expiry, timestamp + tombstone_seconds). Between the
//                 two an expired entry stays as a tombstone: it still hides
//                 older values of its client that arrive late, so a newer
//                 value with an earlier expiry wins whatever the order in
//                 which states are merged (within tombstone_seconds of its
//                 event). For Gauge (expiry = timestamp + 48 h, tombstones
//                 of 48 h) the two times coincide.
//
// The table knows the client it was created for (new_state's client; ""
// for aggregates) and keeps that client's entry inline, outside the map:
// per-request deltas and client states never touch the map, and merging a
// delta into an aggregate costs one lookup. Entries past retain_until are
// swept out lazily (one pass each time now reaches the earliest
// retain_until of the map), so merges stay O(entries of `from`) amortized.
//
// Values are the canonical JSON text of the scalar set (json_canonical.h):
// the handlers canonicalize in fold, so that one value is one key of the
// render however clients write it.
//
// Two renders: render_counts (TABA_FORMAT_JSON, clients per value) and
// render_metrics (TABA_FORMAT_METRICS, the values themselves).
//
// Serialized form (shared by both types): bytes own client, varint entry
// count, then per entry, sorted by client: bytes client, bytes value JSON
// text, double event timestamp and, unless the table has a fixed lifetime
// (expiry = timestamp + lifetime, Gauge), double expiry. "bytes" is a
// varint length and the bytes (common/byte_io.h). The handlers' state
// version 1 holds values as sent; version 2, the same layout, holds them
// canonical, and reading a version 1 state canonicalizes them.
#ifndef TABA_PLUGINS_COMMON_LATEST_VALUES_H
#define TABA_PLUGINS_COMMON_LATEST_VALUES_H

#include <cstddef>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/byte_io.h"
#include "taba/handler.h"

namespace taba::builtin {

struct LatestEntry {
  std::string value;  // the scalar's canonical JSON text
  double timestamp = 0.0;
  double expiry = 0.0;
  double retain_until = 0.0;
};

class LatestValues {
 public:
  // fixed_lifetime > 0: every entry expires that long after its event and
  // the serialized form omits expiries; 0: expiries are given per entry.
  LatestValues(std::string_view client, double tombstone_seconds, double fixed_lifetime);

  const std::string& client() const { return client_; }

  // Makes (value, canonical JSON text, timestamp, expiry) client's entry as
  // of now, unless the entry held is strictly newer. An entry already past
  // its retention replaces nothing new: it only removes the older entry
  // held.
  void offer(std::string_view client, std::string_view value, double timestamp, double expiry, double now);

  // Offers every entry of `from`. O(entries of from), plus an amortized
  // sweep of this table.
  void merge_from(const LatestValues& from, double now);

  // Whether some entry is live as of now.
  bool any_live(double now) const;

  // Writes {"<value>": <clients>, ...} over the live entries: keys sorted
  // bytewise, ": " and ", " separators, {} when empty. A string value's key
  // is its (canonical) JSON text; any other scalar's text is quoted (1.5 ->
  // "1.5", true -> "true"), so a number and a string with the same text
  // share a key.
  taba_status render_counts(double now, taba_output* out) const;

  // Writes the TABA_FORMAT_METRICS families over the live entries
  // (docs/prometheus.md, "Families by type", Gauge): "_clients" (entries),
  // "_min", "_max" and "_last" over the numeric values (left out when
  // there is none; "_last" is the value with the latest event timestamp,
  // ties going to the client whose ID sorts last), "" with a sample per
  // numeric value labelled "client", then "_info" with a sample of 1 per
  // other value labelled "client" and "value" (common/value_labels.h);
  // the per-client samples sorted by client ID.
  taba_status render_metrics(double now, taba_output* out) const;

  void write(ByteWriter* w) const;
  // Reads the serialized form into this (empty) table, checking it fully;
  // on failure returns false with the reason in *why. values_canonical:
  // the state was written with canonical values (which are then checked
  // to be); otherwise they are canonicalized.
  bool read(ByteReader* r, bool values_canonical, const char** why);

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  // Drops the entries whose retention has passed.
  void sweep(double now);
  void note_added(const LatestEntry& e, bool own);

  std::string client_;
  double tombstone_seconds_;
  double fixed_lifetime_;
  bool has_own_ = false;
  LatestEntry own_;
  std::unordered_map<std::string, LatestEntry, StringHash, std::equal_to<>> others_;
  // At least the latest expiry of any entry; exactly that while
  // max_expiry_exact_ (no entry was lowered or removed since it was
  // computed), which makes any_live O(1) for Gauge.
  double max_expiry_ = -std::numeric_limits<double>::infinity();
  bool max_expiry_exact_ = true;
  // At most the earliest retain_until in others_: the next sweep's time.
  double min_other_retain_ = std::numeric_limits<double>::infinity();
};

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_LATEST_VALUES_H
