// Test scaffolding shared by the plugin tests that drive the built handler
// plugins (<TABA_TEST_PLUGIN_DIR>/*.so) only through the C ABI
// (include/taba/handler.h), as tabad does: loading a plugin, event batches
// with their JSON texts, an RAII state, deserialize, the host's ingest
// contract and check_event.
#pragma once

#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "taba/handler.h"

namespace taba::test_support {

inline void test_log(int, const char*, size_t) {}

inline const taba_host kTestHost = {sizeof(taba_host), TABA_ABI_MAJOR, TABA_ABI_MINOR, test_log, {}};

// Loads <TABA_TEST_PLUGIN_DIR>/<file> once and returns its plugin table.
inline const taba_plugin& plugin(const std::string& file) {
  static std::map<std::string, const taba_plugin*> loaded;
  auto it = loaded.find(file);
  if (it == loaded.end()) {
    const std::string path = std::string(TABA_TEST_PLUGIN_DIR) + "/" + file;
    void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    INFO(path << ": " << (dl == nullptr ? dlerror() : "loaded"));
    REQUIRE(dl != nullptr);
    auto entry = reinterpret_cast<taba_plugin_entry_fn>(dlsym(dl, TABA_PLUGIN_ENTRY_SYMBOL));
    REQUIRE(entry != nullptr);
    const taba_plugin* p = entry(&kTestHost);
    REQUIRE(p != nullptr);
    it = loaded.emplace(file, p).first;
  }
  return *it->second;
}

// The handler for type in <TABA_TEST_PLUGIN_DIR>/<file>.
inline const taba_handler& handler(const std::string& file, const std::string& type) {
  const taba_plugin& p = plugin(file);
  for (uint32_t i = 0; i < p.handler_count; ++i) {
    if (type == p.handlers[i]->type_name) return *p.handlers[i];
  }
  FAIL("no handler " << type << " in " << file);
  throw std::logic_error("unreachable");
}

// A taba_output sink appending to the std::string in host_data.
inline int collect(taba_output* out, const char* data, size_t len) {
  static_cast<std::string*>(out->host_data)->append(data, len);
  return 0;
}

// %.17g: the shortest text that round-trips any double.
inline std::string fmt_double(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// One JSON value: kind, text and (numbers, booleans) number.
struct V {
  taba_value_kind kind = TABA_VALUE_NONE;
  std::string text;
  double number = 0;
};

// Event batches whose JSON texts live as long as the batch.
class Events {
 public:
  Events() = default;
  Events(Events&&) = default;  // a deque keeps its elements' addresses when moved
  Events& operator=(Events&&) = default;
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;

  // A bare number: text as given (or %.17g).
  Events& number(double ts, double v, std::string text = "") {
    if (text.empty()) text = fmt_double(v);
    push(ts, make({TABA_VALUE_NUMBER, text, v}), {}, {});
    return *this;
  }
  // A scalar or container of the given kind with its JSON text.
  Events& value(double ts, taba_value_kind kind, std::string text, double number = 0) {
    push(ts, make({kind, text, number}), {}, {});
    return *this;
  }
  // A payload that is not an array.
  Events& value(double ts, const V& v) {
    push(ts, make(v), {}, {});
    return *this;
  }
  // An array payload whose [0] is given, then "x" (kind NONE: empty array).
  Events& array(double ts, taba_value_kind kind0, std::string text0, double number0 = 0) {
    const std::string whole = kind0 == TABA_VALUE_NONE ? "[]" : "[" + text0 + ", \"x\"]";
    taba_value e0 = kind0 == TABA_VALUE_NONE ? taba_value{} : make({kind0, text0, number0});
    taba_value e1 = kind0 == TABA_VALUE_NONE ? taba_value{} : make({TABA_VALUE_STRING, "\"x\"", 0});
    push(ts, make({TABA_VALUE_ARRAY, whole, 0}), e0, e1);
    return *this;
  }
  // The array payload [e0, e1] (e1 kind NONE: [e0]; both NONE: []).
  Events& pair(double ts, const V& e0, const V& e1) {
    std::string whole = "[";
    if (e0.kind != TABA_VALUE_NONE) whole += e0.text;
    if (e1.kind != TABA_VALUE_NONE) whole += ", " + e1.text;
    whole += "]";
    push(ts, make({TABA_VALUE_ARRAY, whole, 0}), e0.kind == TABA_VALUE_NONE ? taba_value{} : make(e0),
         e1.kind == TABA_VALUE_NONE ? taba_value{} : make(e1));
    return *this;
  }

  const taba_event* data() const { return events_.data(); }
  size_t size() const { return events_.size(); }
  const taba_event& operator[](size_t i) const { return events_[i]; }

 private:
  taba_value make(const V& v) {
    texts_.push_back(v.text);
    taba_value out{};
    out.kind = v.kind;
    out.number = v.kind == TABA_VALUE_NUMBER || v.kind == TABA_VALUE_BOOL ? v.number : 0;
    out.json = texts_.back().data();
    out.json_len = texts_.back().size();
    return out;
  }
  void push(double ts, taba_value payload, taba_value e0, taba_value e1) {
    taba_event e{};
    e.timestamp = ts;
    e.payload = payload;
    e.elem0 = e0;
    e.elem1 = e1;
    events_.push_back(e);
  }

  std::deque<std::string> texts_;  // stable addresses for the json pointers
  std::vector<taba_event> events_;
};

// A state owned by the test, used through the handler's hooks.
class State {
 public:
  State(const taba_handler& h, double now, const std::string& client = "")
      : h_(&h), s_(h.new_state(client.data(), client.size(), now)) {
    REQUIRE(s_ != nullptr);
  }
  State(const taba_handler& h, taba_state* adopted) : h_(&h), s_(adopted) {}
  State(State&& o) noexcept : h_(o.h_), s_(o.s_) { o.s_ = nullptr; }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() {
    if (s_ != nullptr) h_->free_state(s_);
  }

  void fold(const Events& ev, double now) { h_->fold(s_, ev.data(), ev.size(), now); }
  void merge(const State& from, double now) { h_->merge(s_, from.s_, now); }
  std::string render(double now, uint32_t format = TABA_FORMAT_JSON, taba_status* status = nullptr) const {
    std::string text;
    taba_output out{&text, collect};
    const taba_status st = h_->render(s_, format, now, &out);
    if (status != nullptr) {
      *status = st;
    } else {
      REQUIRE(st == TABA_OK);
    }
    return text;
  }
  bool prunable(double now) const { return h_->prunable(s_, now) != 0; }
  std::string serialize() const {
    std::string bytes;
    taba_output out{&bytes, collect};
    REQUIRE(h_->serialize(s_, &out) == TABA_OK);
    return bytes;
  }
  taba_state* raw() const { return s_; }

 private:
  const taba_handler* h_;
  taba_state* s_;
};

// deserialize, returning the status and (on success) the state.
inline taba_status deserialize(const taba_handler& h, const std::string& bytes, uint32_t version,
                               std::unique_ptr<State>* out, std::string* reason = nullptr) {
  taba_state* s = nullptr;
  char err[256] = "";
  const taba_status st = h.deserialize(bytes.data(), bytes.size(), version, &s, err, sizeof err);
  if (reason != nullptr) *reason = err;
  if (st == TABA_OK) {
    REQUIRE(s != nullptr);
    *out = std::make_unique<State>(h, s);
  }
  return st;
}

// The host's ingest contract: a fresh delta per (client, name) block,
// folded, then merged into the client's state and the name's aggregate.
inline void ingest(const taba_handler& h, State* client_state, State* aggregate, const std::string& client,
                   const Events& ev, double now) {
  State delta(h, now, client);
  delta.fold(ev, now);
  client_state->merge(delta, now);
  aggregate->merge(delta, now);
}

// check_event on e: sets *status, returns the reason ("" when accepted).
inline std::string check_error(const taba_handler& h, const taba_event& e, taba_status* status) {
  char err[256];
  std::memset(err, 'X', sizeof err);
  *status = h.check_event(&e, err, sizeof err);
  return *status == TABA_OK ? std::string() : std::string(err);
}

}  // namespace taba::test_support
