/*
 * taba/handler.h — the tabad handler plugin ABI.
 *
 * A handler defines how the events of one tab type fold into state, how the
 * states of many clients merge into an aggregate, and how a state renders.
 * Handlers live in shared objects ("plugins") that tabad loads at startup
 * from its plugins directory. This header is the whole contract: a plugin
 * needs nothing else from tabad, and it is plain C so that any compiler and
 * any language with a C FFI can implement it.
 *
 * ---------------------------------------------------------------------------
 * 1. Loading
 *
 * A plugin exports exactly one function, with C linkage:
 *
 *     const taba_plugin* taba_plugin_entry(const taba_host* host);
 *
 * tabad dlopen()s every "*.so" in the plugins directory, looks up the symbol
 * TABA_PLUGIN_ENTRY_SYMBOL and calls it once. The returned table (and all the
 * handler tables and strings it points to) must stay valid and unchanged
 * until the plugin is unloaded; a static const object is the usual choice.
 * Returning NULL refuses to load (for example when host->abi_major is not
 * the major the plugin was built for).
 *
 * tabad refuses a plugin whose abi_major differs from its own, or whose
 * struct_size fields are smaller than the version-1.0 layouts. A plugin
 * built against a newer minor loads into an older host: the host only reads
 * the fields it knows and asks only the render formats it knows. A plugin
 * built against an older minor loads into a newer host: hooks appended
 * later are treated as absent (NULL), and render formats added later are
 * never asked of it (the host asks the format they fall back to).
 *
 * ---------------------------------------------------------------------------
 * 2. Lifecycle of a state
 *
 * A state (taba_state*, opaque to the host) is what a handler keeps for one
 * (client, name) pair, or for the aggregate of a name over all its clients.
 * The host keeps states live in memory and calls:
 *
 *   new_state   with the client ID for a per-client state or a per-client
 *               delta, and with the empty client ID (client_len 0) for
 *               aggregates and query-time reductions. Handlers that keep
 *               per-client data (Gauge) key it by this ID; others ignore it;
 *   check_event on every incoming event BEFORE anything of its request is
 *               applied: one refused event refuses its whole (client,
 *               name) block of the request (the other blocks are applied),
 *               so payload errors must be found here. fold may assume every
 *               event passed check_event;
 *   fold        with a batch of checked events of one (client, name);
 *   merge       to add one state into another (aggregates, query-time
 *               reduction). merge(into, from) must be commutative and
 *               associative in effect: merging the states of N clients in any
 *               order gives the same result as folding all their events into
 *               one state;
 *   render      to produce the JSON text shown by /tabs and friends;
 *   prunable    to ask whether a state holds nothing worth keeping (GC);
 *   serialize / deserialize   when writing or reading the store
 *               (snapshots, Redis), and to carry deltas from the edge:
 *               the client-proxy and the agent fold the events of each
 *               (client, name) into a state made with new_state(client)
 *               and serialize it, and the fe deserializes it and merges
 *               it as the delta of the ingest contract below (POST
 *               /post_delta, docs/api.md). So deserialize reads bytes
 *               that came over the network from another process, maybe
 *               another release of the plugin: it must check every
 *               length and count against `len` before it reads or
 *               allocates, never read outside data[0, len), and refuse
 *               what does not read (TABA_ERR_CORRUPT with a reason; a
 *               version it does not read, TABA_ERR_VERSION). Its reason
 *               is shown to the sender;
 *   free_state  when the host drops the state.
 *
 * Ingest contract. For each (client, name) block of a request the host does
 *
 *     delta = new_state(client, client_len, now);
 *     fold(delta, events, n, now);
 *     merge(client_state, delta, now);
 *     merge(name_aggregate, delta, now);
 *     free_state(delta);
 *
 * (when the client's state does not exist yet, the host folds straight into
 * the new client state and merges that into the aggregate). So fold only
 * ever sees fresh per-client states, and merge is the hot path: a handler
 * should make merge cost proportional to what `from` holds (a delta of a
 * few events), not to the size of `into`.
 *
 * A delta folded at the edge (see serialize / deserialize above) arrives
 * serialized: the host deserializes it and uses it as `delta` in the
 * sequence above (as the client's state when the client has none). The
 * edge folds it at its own `now`; the fe merges it at its own.
 *
 * A handler that provides the optional fold_many hook (ABI 1.1) replaces
 * that sequence: the host calls
 *
 *     fold_many({client_state, name_aggregate}, 2, client, client_len,
 *               events, n, now);
 *
 * (client_state being a new_state() when the client is new), and must get
 * the same result as from the delta sequence. A handler may also provide
 * prefetch (ABI 1.1), a cache hint the host calls one block ahead. Which
 * field decides whether each optional hook is present is stated beside
 * the ABI 1.1 fields of taba_handler.
 *
 * Time: every hook that depends on time receives `now`, in epoch seconds.
 * It is the host's clock, already discounted by the measured pipeline
 * latency where the host measures one. Handlers never read a clock
 * themselves; that keeps replay of a write-ahead log deterministic.
 * `now` is nearly monotonic but may step back by a little (requests are
 * applied in the order they complete, each stamped with its receive time;
 * queries use the wall clock). Handlers treat an earlier `now` as "no
 * rotation": windows only ever move forward.
 *
 * ---------------------------------------------------------------------------
 * 3. Threading
 *
 * The host calls a handler's hooks for one state from one thread at a time.
 * Different states may be used from different threads concurrently, so a
 * handler must not keep unsynchronized mutable global data.
 *
 * serialize may run in a forked child process: the embedded store writes
 * its snapshots by fork()ing and serializing every state in the child. Only
 * the forking thread exists there, and any lock another thread of the host
 * held at the moment of the fork stays held forever. So serialize must
 * take no locks (no mutex, no stdio stream, nothing that locks inside),
 * allocate only through malloc/new (or not at all), and must not call
 * host->log (the host's log lock may be held by another thread at the
 * fork, and the child would deadlock). It may also be called in the host
 * process, so it must work in both.
 *
 * ---------------------------------------------------------------------------
 * 4. Memory and errors
 *
 * States are allocated and freed by the plugin. Output (render, serialize)
 * goes through a taba_output the host provides: call out->write as many
 * times as needed; the host copies the bytes. Hooks never throw (C++ plugins
 * must catch everything at the boundary). Fallible hooks return a
 * taba_status and, where given an error buffer, write a one-line,
 * NUL-terminated reason into it (truncated to err_cap bytes).
 *
 * ---------------------------------------------------------------------------
 * 5. Versions
 *
 * state_version is the version of the serialized form serialize writes.
 * The host stores it beside every serialized state and hands it back to
 * deserialize, which must read every version it ever wrote (upgrading old
 * ones) and refuse newer ones with TABA_ERR_VERSION.
 */
#ifndef TABA_HANDLER_H
#define TABA_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TABA_ABI_MAJOR 1
#define TABA_ABI_MINOR 3

#define TABA_PLUGIN_ENTRY_SYMBOL "taba_plugin_entry"

/* Results of fallible hooks. */
typedef enum taba_status {
  TABA_OK = 0,
  TABA_ERR_PAYLOAD = 1,     /* an event's payload is not acceptable */
  TABA_ERR_CORRUPT = 2,     /* serialized bytes are malformed */
  TABA_ERR_VERSION = 3,     /* serialized state version not supported */
  TABA_ERR_NOMEM = 4,       /* allocation failed */
  TABA_ERR_UNSUPPORTED = 5, /* e.g. a render format the handler lacks */
  TABA_ERR_INTERNAL = 6     /* anything else; see the error text */
} taba_status;

/* Render formats. A format added by a later minor is only asked of a
 * plugin built for that minor or a newer one, so a plugin never sees a
 * format its header did not define. */
typedef enum taba_format {
  /* The JSON value of /tabs text replies (text/plain), in Taba's number
   * form: non-integer figures rounded to a few decimals ("%.2f", totals of
   * percentile summaries "%f"), which the consumers of Taba's text parse.
   * Also the last fallback for every other format. Required. */
  TABA_FORMAT_JSON = 0,
  /* A more detailed JSON value (Accept: application/json-detailed), its
   * numbers in full precision as for TABA_FORMAT_JSON_EXACT (ABI 1.2;
   * before, in the form of TABA_FORMAT_JSON). Optional: return
   * TABA_ERR_UNSUPPORTED and the host uses TABA_FORMAT_JSON_EXACT, then
   * TABA_FORMAT_JSON. */
  TABA_FORMAT_JSON_DETAILED = 1,
  /* ABI 1.2. The JSON value of TABA_FORMAT_JSON with every number in full
   * precision: a non-integer number is written as the shortest decimal
   * text that reads back to the same double (0.0012, not 0.00), as
   * JavaScript's JSON.stringify writes it (a figure known only to a
   * coarser resolution, such as a fixed-point sum, may drop the digits
   * below it); integers and the shape of the value are unchanged. Used
   * for application/json replies, /metrics and the web page. Optional:
   * return TABA_ERR_UNSUPPORTED and the host uses TABA_FORMAT_JSON (a
   * handler whose JSON form is already exact, or has no numbers, need not
   * support it). */
  TABA_FORMAT_JSON_EXACT = 2,
  /* ABI 1.3. The state as Prometheus samples, for GET /metrics/tabs
   * (docs/prometheus.md). Optional: a handler that returns
   * TABA_ERR_UNSUPPORTED (or whose plugin predates 1.3) is exported by
   * the host from its TABA_FORMAT_JSON_EXACT render, one gauge sample per
   * number labelled with its JSON path (`field`); it never falls back to
   * another format the way the JSON formats do.
   *
   * The value is a JSON array of families, each an array of four:
   *
   *   [suffix, type, help, samples]
   *
   *   suffix   a string appended to the metric name the host derives from
   *            the tab's name: "" or "_" followed by [a-z0-9_]; a counter's
   *            ends in "_total", an info's in "_info";
   *   type     "counter" (a value that only grows while the state lives:
   *            rate() and increase() read it), "gauge", "summary" (suffix
   *            "", every sample a percentile with a "quantile" label; no
   *            _sum or _count samples) or "info" (a string-valued fact:
   *            every sample's value is 1 and the facts are labels); only
   *            a summary has "quantile" labels, and no gauge suffix ends in
   *            "_total", "_sum", "_count" or "_bucket" (promtool's rules);
   *   help     one line for humans, without the tab's name (the host
   *            prefixes the type and the name);
   *   samples  an array of [labels, value]: labels an object of string
   *            values whose keys are among "client", "window", "quantile",
   *            "value" (the host reserves these and renames a tab's tags
   *            that would collide); value a finite number (a counter's is
   *            >= 0).
   *
   * for example a TotalsCounter:
   *
   *   [["_total", "counter", "Sum of the values.", [[{}, 12.5]]],
   *    ["_events_total", "counter", "Events recorded.", [[{}, 3]]]]
   *
   * Each suffix appears once. Samples of one family have distinct label
   * sets. Put the samples that matter most first: the host keeps at most
   * a configured number of samples per tab, in the order written, and
   * counts the rest as left out; a handler with one sample per client
   * writes its aggregates (min, max, ...) first and the clients sorted by
   * ID. Numbers in full precision, as for TABA_FORMAT_JSON_EXACT. A window
   * with nothing in it writes no percentile samples (its count reads 0).
   * The host checks all of this and drops (and counts) what breaks it. */
  TABA_FORMAT_METRICS = 3
} taba_format;

/* Kinds of JSON values. */
typedef enum taba_value_kind {
  TABA_VALUE_NONE = 0, /* absent (e.g. elem1 of a one-element array) */
  TABA_VALUE_NULL = 1,
  TABA_VALUE_BOOL = 2,
  TABA_VALUE_NUMBER = 3,
  TABA_VALUE_STRING = 4,
  TABA_VALUE_ARRAY = 5,
  TABA_VALUE_OBJECT = 6
} taba_value_kind;

/* One JSON value of an event payload, decoded by the host.
 * The payload arrives on the wire JSON-encoded inside a JSON string
 * (["CounterGroup", 1400000000, "12.5"]); the host undoes that outer
 * encoding, so `json` below is the payload's own JSON text (`12.5`). */
typedef struct taba_value {
  uint32_t kind;    /* a taba_value_kind */
  uint32_t flags;   /* reserved, 0 */
  double number;    /* NUMBER: the value; BOOL: 0 or 1; otherwise 0 */
  const char* json; /* the value's JSON text, exactly as sent (a STRING
                       keeps its quotes and escapes); not NUL-terminated */
  size_t json_len;  /* bytes at json */
} taba_value;

/* One event. Pointers are valid only during the hook call. */
typedef struct taba_event {
  double timestamp;   /* epoch seconds; host clamps far-future stamps */
  taba_value payload; /* the whole payload */
  taba_value elem0;   /* payload[0] if payload is a non-empty array */
  taba_value elem1;   /* payload[1] if payload is an array of 2 or more */
} taba_event;

/* Output sink owned by the host. write returns 0 on success, nonzero when
 * the host could not take the bytes (the hook should then stop and return
 * TABA_ERR_NOMEM). */
typedef struct taba_output {
  void* host_data;
  int (*write)(struct taba_output* out, const char* data, size_t len);
} taba_output;

/* Opaque per-(client, name) state, defined by each handler. */
typedef struct taba_state taba_state;

/* Services the host offers to plugins. Read fields only after checking
 * struct_size covers them. */
typedef struct taba_host {
  uint32_t struct_size; /* sizeof(taba_host) as compiled into the host */
  uint16_t abi_major;   /* TABA_ABI_MAJOR of the host */
  uint16_t abi_minor;   /* TABA_ABI_MINOR of the host */
  /* Writes one line to the host's log. level: 0 debug, 1 info, 2 warn,
   * 3 error. msg need not be NUL-terminated. */
  void (*log)(int level, const char* msg, size_t msg_len);
  void* reserved[8];
} taba_host;

/* One handler: the behaviour of one tab type. */
typedef struct taba_handler {
  uint32_t struct_size;    /* sizeof(taba_handler) as compiled in the plugin */
  uint32_t state_version;  /* version of the form serialize writes, >= 1 */
  const char* type_name;   /* the tab type it serves, e.g. "CounterGroup";
                              1..64 bytes of [A-Za-z0-9_.-] */
  const char* description; /* one line for humans; may be NULL */

  /* Returns a new empty state, or NULL when out of memory. `client` is the
   * client ID (client_len bytes, not NUL-terminated) of a per-client state
   * or delta, and empty (client_len 0, client possibly NULL) for aggregates
   * and query-time reductions; see section 2. `now` lets windowed handlers
   * align their buckets. */
  taba_state* (*new_state)(const char* client, size_t client_len, double now);

  /* Frees a state returned by new_state or deserialize. */
  void (*free_state)(taba_state* state);

  /* Validates one event. Returns TABA_OK, or TABA_ERR_PAYLOAD with a reason
   * in err (e.g. "payload must be a number or an array starting with a
   * number"). Must not depend on any state. */
  taba_status (*check_event)(const taba_event* event, char* err, size_t err_cap);

  /* Folds n checked events (same client, same name) into state. Events
   * are in arrival order, not necessarily in timestamp order. Cannot fail:
   * a handler that must allocate and cannot should drop the events. */
  void (*fold)(taba_state* state, const taba_event* events, size_t n, double now);

  /* Adds `from` into `into`; `from` is left unchanged. */
  void (*merge)(taba_state* into, const taba_state* from, double now);

  /* Writes the state as JSON in the given format (a taba_format; return
   * TABA_ERR_UNSUPPORTED for one the handler does not write). Must not
   * modify the state; windowed handlers report the windows as of `now`. */
  taba_status (*render)(const taba_state* state, uint32_t format, double now, taba_output* out);

  /* Nonzero when the state holds nothing worth keeping as of `now`. */
  int (*prunable)(const taba_state* state, double now);

  /* Writes the state's serialized form (version state_version). May run in
   * a forked child process: no locks, allocation only through malloc/new,
   * never host->log (section 3). */
  taba_status (*serialize)(const taba_state* state, taba_output* out);

  /* Reads a serialized state written with `version` (<= state_version).
   * On success stores a new state in *out and returns TABA_OK. The bytes
   * may come from the network (deltas folded at the edge, section 2):
   * validate every length and count, never read outside data[0, len), and
   * return TABA_ERR_CORRUPT (or TABA_ERR_VERSION) with a reason in err for
   * bytes that do not read. */
  taba_status (*deserialize)(const char* data, size_t len, uint32_t version, taba_state** out, char* err,
                             size_t err_cap);

  /* --- ABI 1.1 ------------------------------------------------------- */

  /* Presence of the optional hooks below, exactly as the host checks it:
   * the host reads fold_many and prefetch only when the plugin table's
   * abi_minor (taba_plugin, not the handler) is 1 or more AND the
   * handler's struct_size covers both fields (sizeof(taba_handler) of this
   * header does); then a hook is present when its pointer is not NULL. For
   * a plugin whose abi_minor is 0, or a handler table shorter than the 1.1
   * layout, both are absent whatever the fields hold. Every hook above
   * this line is required: a handler with one of them NULL is refused. */

  /* Optional (present when abi_minor >= 1, struct_size covers it and not
   * NULL; see above).
   * Folds the same n checked events of one client into each of the `count`
   * states, with the same effect as folding them into a fresh state for
   * `client` and merging that into each state in turn (section 2). The
   * states need not be fresh: the host passes the client's state and the
   * name's aggregate in one call, so the handler does the per-event work
   * (reading a value, finding its bucket or bin) once instead of building
   * and freeing a delta. Cannot fail, like fold. When a handler has this
   * hook the host uses it on the ingest path instead of the delta sequence
   * of section 2. */
  void (*fold_many)(taba_state* const* states, size_t count, const char* client, size_t client_len,
                    const taba_event* events, size_t n, double now);

  /* Optional (present when abi_minor >= 1, struct_size covers it and not
   * NULL; see above). A
   * cache hint: the host is about to fold these events into these states
   * (the client's state, when it exists, and the name's aggregate), with
   * fold_many when the handler has it, else with the delta sequence of
   * section 2; the host calls prefetch whenever it is present, with or
   * without fold_many. The handler may read the states and events and
   * issue prefetches for what the fold will write, and must change
   * nothing. The host calls it one (client, name) block ahead while
   * applying a request, so the cache misses of a state that has not been
   * used for a while overlap with the work on the block before. */
  void (*prefetch)(const taba_state* const* states, size_t count, const taba_event* events, size_t n,
                   double now);

  void* reserved[6]; /* growth room: later minors append hooks here */
} taba_handler;

/* What taba_plugin_entry returns. */
typedef struct taba_plugin {
  uint32_t struct_size;   /* sizeof(taba_plugin) as compiled in the plugin */
  uint16_t abi_major;     /* TABA_ABI_MAJOR the plugin was built against */
  uint16_t abi_minor;     /* TABA_ABI_MINOR the plugin was built against */
  const char* name;       /* plugin name, e.g. "counter_group" */
  const char* version;    /* plugin release, free form, e.g. "1.0.0" */
  uint32_t handler_count; /* number of entries in handlers */
  uint32_t flags;         /* reserved, 0 */
  const taba_handler* const* handlers;
  void* reserved[4];
} taba_plugin;

typedef const taba_plugin* (*taba_plugin_entry_fn)(const taba_host* host);

#if defined(__GNUC__)
#define TABA_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define TABA_PLUGIN_EXPORT
#endif

/* Declaration a plugin defines (with C linkage). */
TABA_PLUGIN_EXPORT const taba_plugin* taba_plugin_entry(const taba_host* host);

#ifdef __cplusplus
}
#endif

#endif /* TABA_HANDLER_H */
