/* SPDX-License-Identifier: MIT
 *
 * census.c: the figures the web gateway (lianxin-web) serves, answered on
 * the query socket: the extra `stats` entries behind /metrics, the
 * per-unit open / due_soon / overdue counts of `units` with `counts`, and
 * the `appeals` op behind Open311's requests.json (proto/README.md).
 *
 * Records by type and alerts by kind are counted in memory as they are
 * stored and published: a counter in the store would cost a write in every
 * batch and change what an audit compares. Records stored before this start
 * are counted by a thread of its own, started by the first `stats`, in read
 * transactions of a bounded number of records each (so the map can grow
 * between them), under SCHED_IDLE; the loop adds its count in at the first
 * `stats` after it is done, and the reply says `types_complete: false` until
 * then. (The count used to be advanced by each `stats` request, 100,000
 * records at a time: each such request held the loop for 60 ms or more, and
 * during a catch-up after downtime, the busiest time, took a twelfth of the
 * loop.) Appeal figures are never a pass over the appeals: the store counts
 * open appeals by tier and by filing unit as they change (store.h), and
 * keeps the open ones with a deadline in deadline order, so a request reads
 * the counters, one row per unit, and the appeals due by the end of the next
 * working day.
 */
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "census.h"
#include "calendar.h"
#include "log.h"
#include "plugin_host.h"
#include "registry.h"

/* Records per read transaction of the count: the map can grow only between
 * two (lx_store_grow waits for them), so a chunk is kept to a few ms. */
#define SCAN_STEP 5000
#define SCAN_NICE 10
#define APPEALS_SCAN_MAX 200000

/* --- counting by name ------------------------------------------------------ */

/* The slot named name (created if there is room), or NULL when full. */
static lx_tally_slot_t *tally_slot(lx_tally_t *t, const char *name, size_t n) {
  if (n >= sizeof t->slot[0].name)
    n = sizeof t->slot[0].name - 1;
  for (int i = 0; i < t->n; i++)
    if (strlen(t->slot[i].name) == n && memcmp(t->slot[i].name, name, n) == 0)
      return &t->slot[i];
  if (t->n == LX_TALLY_SLOTS)
    return NULL;
  lx_tally_slot_t *sl = &t->slot[t->n++];
  memcpy(sl->name, name, n);
  sl->name[n] = 0;
  sl->count = 0;
  return sl;
}

void lx_census_count(lx_tally_t *t, const char *name, size_t n) {
  lx_tally_slot_t *sl = tally_slot(t, name, n);
  if (sl)
    sl->count++;
  else
    t->other++;
}

static void count_type(lx_tally_t *t, const lx_event_t *ev) {
  if (ev->type == LX_EV_PLUGIN)
    lx_census_count(t, ev->type_name.p, ev->type_name.n);
  else
    lx_census_count(t, lx_ev_type_name(ev->type), strlen(lx_ev_type_name(ev->type)));
}

void lx_census_record(lx_census_t *c, const lx_event_t *ev) { count_type(&c->types, ev); }

/* --- the records stored before this start ----------------------------------- */

typedef struct scan {
  lx_census_t *c;
  msgpack_zone *zone;
} scan_t;

/* Counts one stored record into `scanned` (the scan thread's alone). */
static int scan_record(void *arg, const lx_record_t *rec) {
  scan_t *sc = arg;
  lx_event_t ev;
  msgpack_zone_clear(sc->zone);
  if (lx_event_parse_stored(rec->ev, rec->ev_len, sc->zone, &ev) == 0)
    count_type(&sc->c->scanned, &ev);
  return atomic_load_explicit(&sc->c->scan_stop, memory_order_relaxed) ? 1 : 0;
}

static void *scan_main(void *arg) {
  lx_census_t *c = arg;
  msgpack_zone zone;
  /* Only on a CPU nobody else wants (SCHED_IDLE). At nice 10, on 2 cores,
   * bench/scale's ingest beside the count of a 10M-record store (which its
   * `stats` request starts) measured 0.67-0.72x of the empty store's rate;
   * under SCHED_IDLE 0.81-0.90x. */
  struct sched_param idle = {0};
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) != 0 &&
      setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), SCAN_NICE) != 0)
    lx_info("census", "the count of stored records runs at the loop's priority");
  msgpack_zone_init(&zone, 4096);
  scan_t sc = {c, &zone};
  bool ok = true;
  for (uint64_t from = 1; ok && from <= c->scan_end && !atomic_load(&c->scan_stop);
       from += SCAN_STEP) {
    uint64_t to = c->scan_end - from >= SCAN_STEP ? from + SCAN_STEP - 1 : c->scan_end;
    MDB_txn *txn;
    /* A failure is logged by the store; types_complete then stays false. */
    ok = lx_store_read_begin_shared(c->scan_store, &txn) == 0;
    if (ok) {
      ok = lx_store_scan(c->scan_store, txn, from, to, scan_record, &sc) >= 0;
      lx_store_read_end_shared(c->scan_store, txn);
    }
  }
  msgpack_zone_destroy(&zone);
  atomic_store(&c->scan_done, ok && !atomic_load(&c->scan_stop));
  return NULL;
}

/* Adds the scan's count to `types` once it is done (loop thread). */
static void scan_merge(lx_census_t *c) {
  if (c->scan_merged || !atomic_load(&c->scan_done))
    return;
  pthread_join(c->scan_thread, NULL);
  c->scanning = false;
  for (int i = 0; i < c->scanned.n; i++) {
    const lx_tally_slot_t *from = &c->scanned.slot[i];
    lx_tally_slot_t *to = tally_slot(&c->types, from->name, strlen(from->name));
    if (to)
      to->count += from->count;
    else
      c->types.other += from->count;
  }
  c->types.other += c->scanned.other;
  c->scan_merged = true;
}

void lx_census_start(lx_daemon_t *d) {
  lx_census_t *c = &d->census;
  *c = (lx_census_t){.scan_end = lx_store_head(d->store)->seq, .scan_store = d->store};
  /* Every type the log may hold is listed, stored or not, so a client
   * learns the plugins' types (the gateway's alert types) from `stats`. */
  for (int t = LX_EV_VISIT; t < LX_EV_PLUGIN; t++)
    tally_slot(&c->types, lx_ev_type_name(t), strlen(lx_ev_type_name(t)));
  for (size_t i = 0; i < d->n_hosts; i++)
    for (const char *const *t = lx_plugins_types(d, i); t && *t; t++)
      tally_slot(&c->types, *t, strlen(*t));
  c->scan_merged = c->scan_end == 0;
}

/* Starts the count of the records stored before this start at the first
 * `stats` that needs it: a daemon nobody asks for `types` never reads its
 * whole log (1 to 2.5 µs of CPU per record: 500,000 visits took 0.5 s,
 * 1,000,000 appeals 2.3 s). */
static void scan_begin(lx_census_t *c) {
  if (c->scan_merged || c->scanning || c->scan_tried)
    return;
  c->scan_tried = true;
  if (pthread_create(&c->scan_thread, NULL, scan_main, c) == 0)
    c->scanning = true;
  else
    lx_error("census", "cannot start the count of stored records: stats.types stays partial");
}

void lx_census_stop(lx_daemon_t *d) {
  lx_census_t *c = &d->census;
  if (!c->scanning)
    return;
  atomic_store(&c->scan_stop, true);
  pthread_join(c->scan_thread, NULL);
  c->scanning = false;
}

/* --- stats ------------------------------------------------------------------ */

static void pack_tally(msgpack_packer *pk, const char *key, const lx_tally_t *t) {
  lx_mp_pack_cstr(pk, key);
  msgpack_pack_map(pk, (uint32_t)t->n + (t->other ? 1 : 0));
  for (int i = 0; i < t->n; i++) {
    lx_mp_pack_cstr(pk, t->slot[i].name);
    msgpack_pack_uint64(pk, t->slot[i].count);
  }
  if (t->other) {
    lx_mp_pack_cstr(pk, "other");
    msgpack_pack_uint64(pk, t->other);
  }
}

static void pack_hist(msgpack_packer *pk, const lx_commit_hist_t *h) {
  lx_mp_pack_cstr(pk, "commit_seconds");
  msgpack_pack_map(pk, 3);
  lx_mp_pack_cstr(pk, "buckets"); /* [[le, cumulative count]...], as Prometheus wants */
  msgpack_pack_array(pk, LX_COMMIT_BUCKETS);
  uint64_t cum = 0;
  for (int i = 0; i < LX_COMMIT_BUCKETS; i++) {
    cum += h->counts[i];
    msgpack_pack_array(pk, 2);
    msgpack_pack_double(pk, lx_commit_bounds[i]);
    msgpack_pack_uint64(pk, cum);
  }
  lx_mp_pack_cstr(pk, "sum");
  msgpack_pack_double(pk, (double)h->sum_ns / 1e9);
  lx_mp_pack_cstr(pk, "count");
  msgpack_pack_uint64(pk, h->count);
}

void lx_census_pack_stats(lx_daemon_t *d, msgpack_packer *pk) {
  lx_census_t *c = &d->census;
  scan_begin(c);
  scan_merge(c);
  pack_tally(pk, "types", &c->types);
  lx_mp_pack_cstr(pk, "types_complete");
  c->scan_merged ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
  pack_tally(pk, "alerts", &c->kinds);
  /* The committed counters, as `appeals_open` in the same reply. */
  const uint64_t *by_tier = lx_store_counters(d->store)->open_tier;
  lx_mp_pack_cstr(pk, "appeals_open_tier");
  msgpack_pack_map(pk, 3);
  for (int t = LX_TIER_COMMUNITY; t <= LX_TIER_COUNTY; t++) {
    lx_mp_pack_cstr(pk, lx_tier_name(t));
    msgpack_pack_uint64(pk, by_tier[t - LX_TIER_COMMUNITY]);
  }
  MDB_envinfo info;
  MDB_stat st;
  mdb_env_info(lx_store_env(d->store), &info);
  mdb_env_stat(lx_store_env(d->store), &st);
  lx_mp_pack_cstr(pk, "store_bytes"); /* pages in use, not the sparse map size */
  msgpack_pack_uint64(pk, ((uint64_t)info.me_last_pgno + 1) * st.ms_psize);
  pack_hist(pk, lx_store_commit_hist(d->store));
}

/* --- units with counts -------------------------------------------------------- */

typedef struct unit_counts {
  const lx_config_t *cfg;
  uint32_t (*counts)[3];
  int64_t now;
} unit_counts_t;

static long unit_index(const lx_config_t *cfg, const char *path, size_t n) {
  for (size_t i = 0; i < cfg->n_units; i++)
    if (strlen(cfg->units[i].path) == n && memcmp(cfg->units[i].path, path, n) == 0)
      return (long)i;
  return -1;
}

/* Adds k to column col of unit and of every unit above it. */
static void add_up(const unit_counts_t *uc, lx_str_t unit, int col, uint64_t k) {
  size_t n = unit.n;
  for (;;) {
    long i = unit_index(uc->cfg, unit.p, n);
    if (i >= 0)
      uc->counts[i][col] += (uint32_t)k;
    while (n > 0 && unit.p[n - 1] != '.')
      n--;
    if (n-- <= 1)
      return;
  }
}

static int count_open(void *arg, lx_str_t unit, uint64_t n) {
  add_up(arg, unit, 0, n);
  return 0;
}

/* An open appeal due by `soon`: overdue (column 2) or due soon (1). */
static int count_due(void *arg, lx_str_t id, int64_t deadline, lx_str_t unit) {
  unit_counts_t *uc = arg;
  add_up(uc, unit, deadline <= uc->now ? 2 : 1, 1);
  return 0;
}

int lx_census_unit_counts(lx_daemon_t *d, MDB_txn *txn, int64_t now, uint32_t (*counts)[3]) {
  unit_counts_t uc = {&d->cfg, counts, now};
  memset(counts, 0, d->cfg.n_units * sizeof *counts);
  /* Due soon: by the end of the next working day, the deadline one working
   * day from now would have. */
  int64_t soon = d->cal ? lx_calendar_deadline(d->cal, uc.now, 1) : uc.now + 86400000;
  int rc = lx_store_units_open_each(d->store, txn, count_open, &uc);
  return rc ? rc : lx_store_open_due_each(d->store, txn, soon, count_due, &uc);
}

/* --- appeals: a page of appeal states ----------------------------------------- */

typedef struct listing {
  lx_daemon_t *d;
  MDB_txn *txn;
  msgpack_packer *pk;
  msgpack_zone *zone;
  const lx_census_filter_t *f;
  uint64_t sent, scanned;
  lx_str_t last; /* the last id looked at: where the next page starts */
  char last_buf[256];
  bool more;
} listing_t;

static bool status_wanted(const lx_census_filter_t *f, int status) {
  return f->statuses == 0 || (f->statuses & (1u << status));
}

static bool appeal_wanted(const listing_t *l, const lx_appeal_t *a) {
  const lx_census_filter_t *f = l->f;
  if (!status_wanted(f, a->status) || (f->has_since && a->opened < (int64_t)f->since) ||
      (f->has_until && a->opened > (int64_t)f->until))
    return false;
  if (f->category.n &&
      (strlen(a->category) != f->category.n || memcmp(a->category, f->category.p, f->category.n)))
    return false;
  return !f->unit.n || lx_within(f->unit.p, f->unit.n, a->unit, strlen(a->unit));
}

static int last_seq(void *arg, uint64_t seq) {
  *(uint64_t *)arg = seq;
  return 0;
}

/* The filing record's summary and the receive time of the newest record. */
static void appeal_extras(listing_t *l, lx_str_t id, const lx_appeal_t *a, lx_str_t *summary,
                          uint64_t *updated) {
  lx_record_t rec;
  uint64_t seq = a->seq;
  *summary = (lx_str_t){"", 0};
  *updated = (uint64_t)a->opened;
  if (lx_store_get(l->d->store, l->txn, a->seq, &rec) == 0) {
    msgpack_object o;
    size_t off = 0;
    if (msgpack_unpack((const char *)rec.ev, rec.ev_len, &off, l->zone, &o) ==
        MSGPACK_UNPACK_SUCCESS) {
      const msgpack_object *s = lx_mp_get(lx_mp_get(&o, "body"), "summary");
      if (s && s->type == MSGPACK_OBJECT_STR)
        *summary = (lx_str_t){s->via.str.ptr, s->via.str.size};
    }
  }
  lx_store_appeal_scan(l->d->store, l->txn, id, 1, last_seq, &seq);
  if (seq != a->seq && lx_store_get(l->d->store, l->txn, seq, &rec) == 0)
    *updated = rec.rat;
}

static void pack_kv_int(msgpack_packer *pk, const char *k, int64_t v) {
  lx_mp_pack_cstr(pk, k);
  v < 0 ? msgpack_pack_nil(pk) : msgpack_pack_int64(pk, v);
}

static void pack_row(listing_t *l, lx_str_t id, const lx_appeal_t *a) {
  msgpack_packer *pk = l->pk;
  lx_str_t summary;
  uint64_t updated;
  appeal_extras(l, id, a, &summary, &updated);
  msgpack_pack_map(pk, 11);
  lx_mp_pack_cstr(pk, "appeal");
  lx_mp_pack_str(pk, id.p, id.n);
  lx_mp_pack_cstr(pk, "unit");
  lx_mp_pack_cstr(pk, a->unit);
  lx_mp_pack_cstr(pk, "category");
  lx_mp_pack_cstr(pk, a->category);
  lx_mp_pack_cstr(pk, "priority");
  lx_mp_pack_cstr(pk, a->urgent ? "urgent" : "normal");
  lx_mp_pack_cstr(pk, "status");
  lx_mp_pack_cstr(pk, lx_status_name(a->status));
  lx_mp_pack_cstr(pk, "tier");
  lx_mp_pack_cstr(pk, lx_tier_name(a->tier));
  /* An open appeal that was resolved once was reopened by feedback. */
  lx_mp_pack_cstr(pk, "reopened");
  a->status == LX_ST_OPEN && a->resolved_tier ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
  pack_kv_int(pk, "deadline", a->deadline);
  pack_kv_int(pk, "opened", a->opened);
  pack_kv_int(pk, "updated", (int64_t)updated);
  lx_mp_pack_cstr(pk, "summary");
  lx_mp_pack_str(pk, summary.p, summary.n);
}

static int list_one(void *arg, lx_str_t id, const lx_appeal_t *a) {
  listing_t *l = arg;
  if (l->sent >= l->f->limit || l->scanned >= APPEALS_SCAN_MAX) {
    l->more = true;
    return 1;
  }
  l->scanned++;
  size_t n = id.n < sizeof l->last_buf ? id.n : sizeof l->last_buf - 1;
  memcpy(l->last_buf, id.p, n);
  l->last = (lx_str_t){l->last_buf, n};
  if (!appeal_wanted(l, a))
    return 0;
  msgpack_zone_clear(l->zone);
  pack_row(l, id, a);
  l->sent++;
  return 0;
}

int lx_census_appeals(lx_daemon_t *d, MDB_txn *txn, const lx_census_filter_t *f,
                      msgpack_sbuffer *out, msgpack_zone *zone) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
  listing_t l = {.d = d, .txn = txn, .pk = &pk, .zone = zone, .f = f};
  msgpack_pack_map(&pk, 3);
  lx_mp_pack_cstr(&pk, "ok");
  msgpack_pack_true(&pk);
  lx_mp_pack_cstr(&pk, "appeals");
  size_t count_at = out->size; /* the count is known at the end: 32-bit form */
  msgpack_sbuffer_write(out, "\xdd\0\0\0\0", 5);
  int rc;
  if (f->only.n) { /* one appeal by id: a page of zero or one */
    lx_appeal_t a;
    rc = lx_store_appeal_get(d->store, txn, f->only, &a);
    if (rc == 0)
      rc = list_one(&l, f->only, &a);
    else if (rc == LX_ENOTFOUND)
      rc = 0;
  } else {
    rc = lx_store_appeals_each(d->store, txn, f->after, list_one, &l);
  }
  if (rc < 0)
    return rc;
  for (int i = 0; i < 4; i++)
    ((uint8_t *)out->data)[count_at + 1 + i] = (uint8_t)(l.sent >> (8 * (3 - i)));
  lx_mp_pack_cstr(&pk, "next"); /* the id to pass as `after`, nil at the end */
  l.more ? lx_mp_pack_str(&pk, l.last.p, l.last.n) : msgpack_pack_nil(&pk);
  return 0;
}
