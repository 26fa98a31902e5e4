// What the tests of the built-in handler plugins (plugin_<type>_test.cpp and
// the tests that span several types) share, on top of plugin_abi_harness.h:
// the nine handlers by type, payload values and serialized bytes to build
// events and states from, the empty percentile summary, and the checks of
// check_event verdicts and of serialization round trips.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "plugin_abi_harness.h"
#include "taba/handler.h"

namespace taba::test_support {

// ---------------------------------------------------------------------------
// The built-in handlers, each from its plugin's built .so.

inline const taba_handler& counter_group() {
  return handler("counter_group.so", "CounterGroup");
}
inline const taba_handler& totals_counter() {
  return handler("totals_counter.so", "TotalsCounter");
}
inline const taba_handler& gauge() {
  return handler("gauge.so", "Gauge");
}
inline const taba_handler& expiry_gauge() {
  return handler("expiry_gauge.so", "ExpiryGauge");
}
inline const taba_handler& buffer() {
  return handler("buffer.so", "Buffer");
}
inline const taba_handler& noop() {
  return handler("noop.so", "Noop");
}
inline const taba_handler& set() {
  return handler("set.so", "Set");
}
inline const taba_handler& percentile_group() {
  return handler("percentile_group.so", "PercentileGroup");
}
inline const taba_handler& percentile_counter() {
  return handler("percentile_counter.so", "PercentileCounter");
}

// ---------------------------------------------------------------------------
// Payload values and serialized bytes.

// A JSON string whose body (between the quotes) is s, escapes as written.
inline V str(const std::string& s) {
  return {TABA_VALUE_STRING, "\"" + s + "\"", 0};
}
// A JSON number: text as given (or %.17g).
inline V num(double v, std::string text = "") {
  if (text.empty()) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    text = buf;
  }
  return {TABA_VALUE_NUMBER, text, v};
}
// Any JSON value of the given kind and text.
inline V raw(taba_value_kind kind, const std::string& text, double number = 0) {
  return {kind, text, number};
}

// The bytes of the given values.
inline std::string bytes_of(std::initializer_list<int> b) {
  std::string s;
  for (const int c : b) s.push_back(static_cast<char>(c));
  return s;
}

// The 8 bytes of v, little-endian, as the serialized forms hold doubles.
inline std::string le_double(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  return s;
}

// The summary PercentileGroup's windows and PercentileCounter render when
// they hold no value.
inline const std::string kZeroPct = "[0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00]";
inline const std::string kEmptySummary = R"({"count": 0, "total": 0.000000, "pct": )" + kZeroPct + "}";

// ---------------------------------------------------------------------------
// Checks.

// Every event of `ok` passes check_event; every event of `bad` is refused
// with a one-line reason starting with `prefix`.
inline void check_events(const taba_handler& h, const Events& ok, const Events& bad,
                         const std::string& prefix) {
  for (size_t i = 0; i < ok.size(); ++i) {
    taba_status st;
    const std::string err = check_error(h, ok[i], &st);
    INFO("accepted #" << i << ": " << err);
    CHECK(st == TABA_OK);
  }
  for (size_t i = 0; i < bad.size(); ++i) {
    taba_status st;
    const std::string err = check_error(h, bad[i], &st);
    INFO("refused #" << i << ": " << err);
    CHECK(st == TABA_ERR_PAYLOAD);
    CHECK(err.rfind(prefix, 0) == 0);
    CHECK(err.find('\n') == std::string::npos);
  }
}

// The serialization round trip of s: serialized and read back it writes
// the same bytes, and same(copy) checks the copy is the same state;
// versions state_version + 1 and 0 are refused (version_reason(reason)
// checks the reason); every truncation and 300 random byte corruptions are
// refused as corrupt (corrupt_reason(reason)) or read as a state that
// usable(state) (truncated) or usable_corrupted(state) puts to use. Run
// under ASan this also shows nothing reads past the end of the input.
template <class Same, class VersionReason, class CorruptReason, class Usable, class UsableCorrupted>
void check_round_trip_with(const taba_handler& h, const State& s, Same same, VersionReason version_reason,
                           CorruptReason corrupt_reason, Usable usable, UsableCorrupted usable_corrupted) {
  const std::string bytes = s.serialize();
  std::unique_ptr<State> copy;
  std::string reason;
  REQUIRE(deserialize(h, bytes, h.state_version, &copy, &reason) == TABA_OK);
  CHECK(copy->serialize() == bytes);
  same(copy.get());
  std::unique_ptr<State> ignored;
  CHECK(deserialize(h, bytes, h.state_version + 1, &ignored, &reason) == TABA_ERR_VERSION);
  version_reason(reason);
  CHECK(deserialize(h, bytes, 0, &ignored, &reason) == TABA_ERR_VERSION);
  for (size_t len = 0; len < bytes.size(); ++len) {
    std::unique_ptr<State> partial;
    const taba_status st = deserialize(h, bytes.substr(0, len), h.state_version, &partial, &reason);
    INFO("truncated to " << len << " of " << bytes.size());
    REQUIRE((st == TABA_OK || st == TABA_ERR_CORRUPT));
    if (st == TABA_OK) {
      usable(partial.get());
    } else {
      corrupt_reason(reason);
    }
  }
  std::mt19937_64 rng(bytes.size());
  for (int i = 0; i < 300 && !bytes.empty(); ++i) {
    std::string bad = bytes;
    bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255);
    std::unique_ptr<State> mutated;
    const taba_status st = deserialize(h, bad, h.state_version, &mutated, &reason);
    REQUIRE((st == TABA_OK || st == TABA_ERR_CORRUPT));
    if (st == TABA_OK) usable_corrupted(mutated.get());
  }
}

// copy renders (in every format, with the same status) and prunes as s at
// each of the times.
inline void check_same_in_all_formats(const State* copy, const State& s, const std::vector<double>& times) {
  for (const double t : times) {
    CHECK(copy->render(t) == s.render(t));
    taba_status a;
    taba_status b;
    CHECK(copy->render(t, TABA_FORMAT_JSON_DETAILED, &a) == s.render(t, TABA_FORMAT_JSON_DETAILED, &b));
    CHECK(a == b);
    CHECK(copy->render(t, TABA_FORMAT_JSON_EXACT, &a) == s.render(t, TABA_FORMAT_JSON_EXACT, &b));
    CHECK(a == b);
    CHECK(copy->prunable(t) == s.prunable(t));
  }
}

// st renders, and renders detailed or says it has no detailed form.
inline void check_renders(const State& st, double t) {
  taba_status detailed;
  st.render(t);
  st.render(t, TABA_FORMAT_JSON_DETAILED, &detailed);
  CHECK((detailed == TABA_OK || detailed == TABA_ERR_UNSUPPORTED));
}

// The round trip for CounterGroup, TotalsCounter and Gauge: the copy is the
// same in every format; refusals give a reason; a state read from truncated
// bytes renders, one from corrupted bytes renders in every format.
inline void check_round_trip_all_formats(const taba_handler& h, const State& s,
                                         const std::vector<double>& render_times) {
  check_round_trip_with(
      h, s, [&](const State* copy) { check_same_in_all_formats(copy, s, render_times); },
      [](const std::string& reason) { CHECK_FALSE(reason.empty()); },
      [](const std::string& reason) { CHECK_FALSE(reason.empty()); },
      [&](const State* partial) { partial->render(render_times.front()); },
      [&](const State* mutated) { check_renders(*mutated, render_times.front()); });
}

// The round trip for the percentile handlers: as check_round_trip_all_formats,
// with the refusal reasons' texts checked, and every state read from
// truncated or corrupted bytes also merged into a fresh one, serialized and
// asked whether it is prunable.
inline void check_round_trip_strict(const taba_handler& h, const State& s,
                                    const std::vector<double>& render_times) {
  const auto exercise = [&](const State* state) {
    const State& st = *state;
    check_renders(st, render_times.front());
    State agg(h, render_times.front());
    agg.merge(st, render_times.front());
    agg.serialize();
    st.prunable(render_times.front());
  };
  check_round_trip_with(
      h, s, [&](const State* copy) { check_same_in_all_formats(copy, s, render_times); },
      [](const std::string& reason) { CHECK(reason.find("not supported") != std::string::npos); },
      [](const std::string& reason) { CHECK(reason.rfind("corrupt ", 0) == 0); }, exercise, exercise);
}

// The round trip for ExpiryGauge, Buffer, Noop and Set (no other format
// than TABA_FORMAT_JSON): the copy renders and prunes the same; refusals
// give a reason; a state read from truncated bytes renders and prunes, one
// from corrupted bytes renders and merges into a fresh one, which then
// serializes.
inline void check_round_trip_json(const taba_handler& h, const State& s, const std::vector<double>& times) {
  check_round_trip_with(
      h, s,
      [&](const State* copy) {
        for (const double t : times) {
          CHECK(copy->render(t) == s.render(t));
          CHECK(copy->prunable(t) == s.prunable(t));
        }
      },
      [](const std::string& reason) { CHECK_FALSE(reason.empty()); },
      [](const std::string& reason) { CHECK_FALSE(reason.empty()); },
      [&](const State* partial) {
        partial->render(times.front());
        partial->prunable(times.front());
      },
      [&](const State* mutated) {
        mutated->render(times.front());
        State other(h, times.front());
        other.merge(*mutated, times.front());
        other.serialize();
      });
}

// ---------------------------------------------------------------------------
// fold_many against the delta sequence.

// Up to 150 numeric events at `now` (more than one 64-event chunk of the
// built-ins' fold_many), for the numeric types: stamps out of order, some
// ahead of now, some older than the shorter windows and a few older than
// every window; values zero and -0, too small to bin, negative, decimal,
// large, some repeated, some given as [number, ...] or true.
inline void random_numeric_events(std::mt19937_64& rng, double now, Events* ev) {
  const int n = 1 + static_cast<int>(rng() % 150);
  for (int i = 0; i < n; ++i) {
    double stamp = now - static_cast<double>(rng() % 1200) - static_cast<double>(rng() % 1000) / 1000;
    if (i % 17 == 3) stamp = now + 5;
    if (i % 41 == 7) stamp = now - 30000 - static_cast<double>(rng() % 200000);
    double value = static_cast<double>(static_cast<int64_t>(rng() % 8000) - 1000) / 4;
    switch (rng() % 12) {
      case 0: value = 0.0; break;
      case 1: value = -0.0; break;
      case 2: value = 1e-12; break;
      case 3: value = static_cast<double>(rng() % 100'000'000) * 1000; break;
      case 4: value = 42.5; break;
      default: break;
    }
    if (i % 13 == 5) {
      ev->array(stamp, TABA_VALUE_NUMBER, fmt_double(value), value);
    } else if (i % 29 == 11) {
      ev->value(stamp, TABA_VALUE_BOOL, "true", 1);
    } else {
      ev->number(stamp, value);
    }
  }
}

// The fold_many hook gives what the delta sequence gives (handler.h,
// section 2; ingest() above): `requests` requests from three clients, each
// of the events make(rng, now, &events) writes, go through fold_many into
// {the client's state, the aggregate} on one side and through ingest() on
// the other. The two states a request changed must serialize to the same
// bytes after it; at the end every state must also render (every format)
// and prune the same at the last request's time and `later` seconds after
// it. Time moves between 3 s back (requests are
// applied in completion order, each at its receive time) and 9 s ahead
// between requests, and `jump` seconds every 60th. Last, fold_many into
// one fresh state equals fold.
template <class MakeEvents>
void check_fold_many_equals_deltas(const taba_handler& h, double t0, int requests, double jump,
                                   const std::vector<double>& later, MakeEvents make) {
  REQUIRE(h.fold_many != nullptr);
  std::mt19937_64 rng(static_cast<uint64_t>(requests) * 7919 + 1);
  const std::vector<std::string> clients = {"a", "b", "c"};
  State by_delta(h, t0);
  State by_many(h, t0);
  std::vector<State> delta_clients;
  std::vector<State> many_clients;
  for (const std::string& c : clients) {
    delta_clients.emplace_back(h, t0, c);
    many_clients.emplace_back(h, t0, c);
  }
  double now = t0;
  for (int request = 0; request < requests; ++request) {
    now += request % 60 == 59 ? jump : static_cast<double>(rng() % 1200) / 100 - 3;
    const size_t ci = rng() % clients.size();
    Events ev;
    make(rng, now, &ev);
    ingest(h, &delta_clients[ci], &by_delta, clients[ci], ev, now);
    taba_state* const targets[2] = {many_clients[ci].raw(), by_many.raw()};
    h.fold_many(targets, 2, clients[ci].data(), clients[ci].size(), ev.data(), ev.size(), now);
    // After every request: what a short window held may be gone by the end.
    INFO("request " << request);
    REQUIRE(many_clients[ci].serialize() == delta_clients[ci].serialize());
    REQUIRE(by_many.serialize() == by_delta.serialize());
  }
  std::vector<double> times = {now};
  for (const double d : later) times.push_back(now + d);
  CHECK(by_many.serialize() == by_delta.serialize());
  check_same_in_all_formats(&by_many, by_delta, times);
  for (size_t i = 0; i < clients.size(); ++i) {
    INFO("client " << clients[i]);
    CHECK(many_clients[i].serialize() == delta_clients[i].serialize());
    check_same_in_all_formats(&many_clients[i], delta_clients[i], times);
  }
  State folded(h, now, "z");
  State many(h, now, "z");
  Events ev;
  make(rng, now, &ev);
  folded.fold(ev, now);
  taba_state* const one[1] = {many.raw()};
  h.fold_many(one, 1, "z", 1, ev.data(), ev.size(), now);
  CHECK(many.serialize() == folded.serialize());
  check_same_in_all_formats(&many, folded, times);
}

}  // namespace taba::test_support
