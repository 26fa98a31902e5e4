/*
 * max_gauge.c — an example tabad handler plugin, in plain C11.
 *
 * Type "MaxGauge": the all-time (window-free) minimum and maximum of numeric
 * payloads, with the number of events. Useful for "largest queue ever seen",
 * "peak resident memory", "smallest free disk seen" and the like.
 *
 * It uses nothing but include/taba/handler.h and the C library: it proves a
 * plugin needs only the installed headers and a C compiler. See README.md in
 * this directory for how to build it, and docs/plugins.md for the rules.
 *
 * Payload: a finite number, or an array whose first element is a finite
 * number (["MaxGauge", 1400000000, "12.5"] or "[12.5, \"extra\"]").
 *
 * STATE_VERSION (a compile-time macro, 1 or 2; default 2) selects which
 * release of the plugin this is, to show how a state format is upgraded:
 *
 *   version 1 keeps count, min and max and renders
 *       {"count": N, "min": X, "max": Y}
 *   version 2 also keeps the sum of the values and renders the mean:
 *       {"count": N, "min": X, "max": Y, "mean": M, "mean_count": K}
 *
 * A version-1 state read by version 2 knows no sum. Inventing one (say
 * count * (min + max) / 2) would publish a made-up mean, so version 2 keeps
 * beside the sum the number of events it covers (mean_count). An upgraded
 * state starts with sum 0 and mean_count 0: the mean covers the events
 * folded since the upgrade, mean_count says how many those are, and "mean"
 * is null while there are none. States created by version 2 have
 * mean_count == count.
 *
 * Numbers render with "%.15g": integers print as integers and every decimal
 * of up to 15 significant digits prints as it was sent (tabad runs in the C
 * locale, so the decimal point is '.').
 *
 * Serialized form (all integers and IEEE-754 doubles 8 bytes little-endian):
 *   version 1: count, min, max                          (24 bytes)
 *   version 2: count, min, max, sum, mean_count         (40 bytes)
 * An empty state (count 0) stores min = max = 0 (and sum = mean_count = 0).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taba/handler.h"

#ifndef STATE_VERSION
#define STATE_VERSION 2
#endif
#if STATE_VERSION != 1 && STATE_VERSION != 2
#error "STATE_VERSION must be 1 or 2"
#endif

#define TYPE_NAME "MaxGauge"
#if STATE_VERSION == 1
#define PLUGIN_RELEASE "1.0.0"
#else
#define PLUGIN_RELEASE "2.0.0"
#endif

#define V1_BYTES 24u
#define V2_BYTES 40u

typedef struct max_gauge {
  uint64_t count; /* events folded (saturating) */
  double min;     /* smallest value; meaningful when count > 0 */
  double max;     /* largest value; meaningful when count > 0 */
#if STATE_VERSION >= 2
  double sum;          /* sum of the values of the mean_count events */
  uint64_t mean_count; /* events whose values are in sum (<= count) */
#endif
} max_gauge;

/* taba_state is opaque to the host: it is whatever the plugin allocates. */
static max_gauge* gauge_of(taba_state* s) {
  return (max_gauge*)(void*)s;
}
static const max_gauge* cgauge_of(const taba_state* s) {
  return (const max_gauge*)(const void*)s;
}

static uint64_t add_saturating(uint64_t a, uint64_t b) {
  uint64_t s = a + b;
  return s < a ? UINT64_MAX : s;
}

/* One line into the host's error buffer, truncated to err_cap bytes. */
static void set_error(char* err, size_t err_cap, const char* msg) {
  if (err == NULL || err_cap == 0) return;
  snprintf(err, err_cap, "%s", msg);
}

/* The number an event carries, or NULL: the payload itself when it is a
 * number, else payload[0] when the payload is an array starting with one. */
static const taba_value* event_number(const taba_event* e) {
  if (e->payload.kind == TABA_VALUE_NUMBER) return &e->payload;
  if (e->payload.kind == TABA_VALUE_ARRAY && e->elem0.kind == TABA_VALUE_NUMBER) return &e->elem0;
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Hooks */

static taba_state* mg_new_state(const char* client, size_t client_len, double now) {
  (void)client; /* one state looks the same for every client */
  (void)client_len;
  (void)now; /* no windows */
  max_gauge* s = calloc(1, sizeof *s);
  return (taba_state*)(void*)s; /* NULL when out of memory, as the ABI asks */
}

static void mg_free_state(taba_state* state) {
  free(state);
}

static taba_status mg_check_event(const taba_event* event, char* err, size_t err_cap) {
  if (event == NULL) {
    set_error(err, err_cap, "no event");
    return TABA_ERR_PAYLOAD;
  }
  const taba_value* v = event_number(event);
  if (v == NULL) {
    set_error(err, err_cap,
              TYPE_NAME " payload must be a number or an array whose first element is a number");
    return TABA_ERR_PAYLOAD;
  }
  if (!isfinite(v->number)) {
    set_error(err, err_cap, TYPE_NAME " payload must be a finite number");
    return TABA_ERR_PAYLOAD;
  }
  return TABA_OK;
}

static void add_value(max_gauge* s, double v) {
  if (s->count == 0 || v < s->min) s->min = v;
  if (s->count == 0 || v > s->max) s->max = v;
  s->count = add_saturating(s->count, 1);
#if STATE_VERSION >= 2
  s->sum += v;
  s->mean_count = add_saturating(s->mean_count, 1);
#endif
}

static void mg_fold(taba_state* state, const taba_event* events, size_t n, double now) {
  (void)now;
  max_gauge* s = gauge_of(state);
  for (size_t i = 0; i < n; ++i) {
    /* Every event passed check_event; the test is only a seatbelt. */
    const taba_value* v = event_number(&events[i]);
    if (v != NULL && isfinite(v->number)) add_value(s, v->number);
  }
}

/* Order-free: count and sum add, min and max are min and max. */
static void mg_merge(taba_state* into, const taba_state* from, double now) {
  (void)now;
  max_gauge* dst = gauge_of(into);
  const max_gauge* src = cgauge_of(from);
  if (src->count == 0) return;
  if (dst->count == 0 || src->min < dst->min) dst->min = src->min;
  if (dst->count == 0 || src->max > dst->max) dst->max = src->max;
  dst->count = add_saturating(dst->count, src->count);
#if STATE_VERSION >= 2
  dst->sum += src->sum;
  dst->mean_count = add_saturating(dst->mean_count, src->mean_count);
#endif
}

/* Appends "%.15g" of v, or null, to buf. Returns the new length. */
static size_t put_number(char* buf, size_t cap, size_t len, int known, double v) {
  int n = known && isfinite(v) ? snprintf(buf + len, cap - len, "%.15g", v)
                               : snprintf(buf + len, cap - len, "null");
  return n < 0 ? len : len + (size_t)n;
}

static taba_status mg_render(const taba_state* state, uint32_t format, double now, taba_output* out) {
  (void)now;
  if (format != TABA_FORMAT_JSON) return TABA_ERR_UNSUPPORTED; /* the host then asks for JSON */
  const max_gauge* s = cgauge_of(state);
  /* Longest output: 5 keys, a 20-digit count and 4 numbers of <= 23 chars. */
  char buf[256];
  size_t len = (size_t)snprintf(buf, sizeof buf, "{\"count\": %llu, \"min\": ", (unsigned long long)s->count);
  len = put_number(buf, sizeof buf, len, s->count > 0, s->min);
  len += (size_t)snprintf(buf + len, sizeof buf - len, ", \"max\": ");
  len = put_number(buf, sizeof buf, len, s->count > 0, s->max);
#if STATE_VERSION >= 2
  len += (size_t)snprintf(buf + len, sizeof buf - len, ", \"mean\": ");
  /* A sum past the range of a double renders as null, not as "inf". */
  len = put_number(buf, sizeof buf, len, s->mean_count > 0,
                   s->sum / (double)(s->mean_count ? s->mean_count : 1));
  len += (size_t)snprintf(buf + len, sizeof buf - len, ", \"mean_count\": %llu",
                          (unsigned long long)s->mean_count);
#endif
  len += (size_t)snprintf(buf + len, sizeof buf - len, "}");
  if (len >= sizeof buf) return TABA_ERR_INTERNAL; /* cannot happen; see above */
  return out->write(out, buf, len) == 0 ? TABA_OK : TABA_ERR_NOMEM;
}

static int mg_prunable(const taba_state* state, double now) {
  (void)now;
  return cgauge_of(state)->count == 0;
}

/* Little-endian 8-byte fields, whatever the machine's byte order. */
static void put_u64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get_u64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= (uint64_t)p[i] << (8 * i);
  return v;
}
static void put_f64(unsigned char* p, double d) {
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  put_u64(p, bits);
}
static double get_f64(const unsigned char* p) {
  uint64_t bits = get_u64(p);
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

static taba_status mg_serialize(const taba_state* state, taba_output* out) {
  const max_gauge* s = cgauge_of(state);
  unsigned char buf[V2_BYTES];
  size_t len = V1_BYTES;
  put_u64(buf, s->count);
  put_f64(buf + 8, s->count > 0 ? s->min : 0.0);
  put_f64(buf + 16, s->count > 0 ? s->max : 0.0);
#if STATE_VERSION >= 2
  put_f64(buf + 24, s->sum);
  put_u64(buf + 32, s->mean_count);
  len = V2_BYTES;
#endif
  return out->write(out, (const char*)buf, len) == 0 ? TABA_OK : TABA_ERR_NOMEM;
}

static taba_status mg_deserialize(const char* data, size_t len, uint32_t version, taba_state** out, char* err,
                                  size_t err_cap) {
  char msg[160];
  if (version == 0 || version > STATE_VERSION) {
    snprintf(msg, sizeof msg, TYPE_NAME " state version %lu not supported (this build reads 1 to %d)",
             (unsigned long)version, STATE_VERSION);
    set_error(err, err_cap, msg);
    return TABA_ERR_VERSION;
  }
  const size_t want = version == 1 ? V1_BYTES : V2_BYTES;
  if (data == NULL || len != want) {
    snprintf(msg, sizeof msg, "corrupt " TYPE_NAME " state: version %lu takes %lu bytes, got %lu",
             (unsigned long)version, (unsigned long)want, (unsigned long)len);
    set_error(err, err_cap, msg);
    return TABA_ERR_CORRUPT;
  }
  const unsigned char* p = (const unsigned char*)data;
  max_gauge parsed;
  memset(&parsed, 0, sizeof parsed);
  parsed.count = get_u64(p);
  parsed.min = get_f64(p + 8);
  parsed.max = get_f64(p + 16);
  if (parsed.count == 0 ? (parsed.min != 0.0 || parsed.max != 0.0)
                        : !(isfinite(parsed.min) && isfinite(parsed.max) && parsed.min <= parsed.max)) {
    set_error(err, err_cap, "corrupt " TYPE_NAME " state: min and max do not fit the count");
    return TABA_ERR_CORRUPT;
  }
#if STATE_VERSION >= 2
  if (version >= 2) {
    parsed.sum = get_f64(p + 24);
    parsed.mean_count = get_u64(p + 32);
    /* The sum itself may be infinite or NaN: a sum of finite values can
     * overflow. It renders as a null mean then. */
    if (parsed.mean_count > parsed.count || (parsed.mean_count == 0 && parsed.sum != 0.0)) {
      set_error(err, err_cap, "corrupt " TYPE_NAME " state: sum and mean_count do not fit the count");
      return TABA_ERR_CORRUPT;
    }
  } else {
    /* Upgrade from version 1, which kept no sum: the mean starts over. */
    parsed.sum = 0.0;
    parsed.mean_count = 0;
  }
#endif
  max_gauge* s = malloc(sizeof *s);
  if (s == NULL) {
    set_error(err, err_cap, "out of memory");
    return TABA_ERR_NOMEM;
  }
  *s = parsed;
  *out = (taba_state*)(void*)s;
  return TABA_OK;
}

/* ------------------------------------------------------------------------ */
/* Tables and the entry point. Static const: valid until dlclose, never
 * written, so nothing here needs locking. */

static const taba_handler kMaxGauge = {
    .struct_size = sizeof(taba_handler),
    .state_version = STATE_VERSION,
    .type_name = TYPE_NAME,
    .description = "all-time minimum and maximum of numeric payloads, with the count",
    .new_state = mg_new_state,
    .free_state = mg_free_state,
    .check_event = mg_check_event,
    .fold = mg_fold,
    .merge = mg_merge,
    .render = mg_render,
    .prunable = mg_prunable,
    .serialize = mg_serialize,
    .deserialize = mg_deserialize,
};

static const taba_handler* const kHandlers[] = {&kMaxGauge};

static const taba_plugin kPlugin = {
    .struct_size = sizeof(taba_plugin),
    .abi_major = TABA_ABI_MAJOR,
    .abi_minor = TABA_ABI_MINOR,
    .name = "max_gauge",
    .version = PLUGIN_RELEASE,
    .handler_count = sizeof kHandlers / sizeof kHandlers[0],
    .flags = 0,
    .handlers = kHandlers,
};

TABA_PLUGIN_EXPORT const taba_plugin* taba_plugin_entry(const taba_host* host) {
  /* Decline a host of another ABI major: its tables would not match ours. */
  if (host == NULL || host->struct_size < offsetof(taba_host, abi_minor) + sizeof host->abi_minor ||
      host->abi_major != TABA_ABI_MAJOR) {
    return NULL;
  }
  if (host->struct_size >= offsetof(taba_host, log) + sizeof host->log && host->log != NULL) {
    char line[128];
    int n = snprintf(line, sizeof line, "max_gauge: %s writes state version %d, reads 1 to %d", TYPE_NAME,
                     STATE_VERSION, STATE_VERSION);
    if (n > 0) host->log(1, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
  }
  return &kPlugin;
}
