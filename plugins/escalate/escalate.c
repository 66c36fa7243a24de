/* SPDX-License-Identifier: MIT
 *
 * escalate.c: unresolved appeals climb community -> township -> county on
 * the working-day calendar, and the units are told (README "Escalation").
 *
 * Design: every clock an appeal runs is one key in the `due` database,
 *   u64be(time) | kind | appeal id      kind: D (deadline), W (warning), R (response)
 * so one timer, armed for the first key, serves every open appeal, and a
 * restart re-arms from the index (on_timer runs once at start and catches
 * up in deadline order). `state` holds, per appeal, the times its keys were
 * made with, so apply can remove them when the clock stops or moves.
 *
 * What an appeal was promised stays as it was when it was filed: `state`
 * keeps the working days of every tier from the configuration in force
 * then, so a reload that changes the deadlines applies to appeals filed
 * after it. Dates are counted on the calendar in force when each tier's
 * deadline is set (a holiday added for next year counts for everyone).
 * The plugin's own settings (warn_share, response_days, …) are reloaded on
 * SIGHUP and apply from then on.
 *
 * Decisions are made in on_timer and appended as records (`escalation`,
 * `warning`, `unanswered`); apply moves the index when those records are
 * stored, in the same transaction, so nothing is decided twice; react
 * publishes each alert after its record is committed.
 *
 * Catch-up in slices. When many deadlines are due at once (a restart after
 * downtime, or a burst opened together), one on_timer looks at no more than
 * SLICE_KEYS keys and appends no more than `slice` records (one group
 * commit), then arms for `now`: the host runs the next slice on the next
 * loop turn, after the sockets, so clients are served between slices. A
 * client's event that arrives during a slice waits for it and its commit,
 * so `slice` follows what a slice takes on this machine and store: halved
 * while one turn (sweep, commit, sockets) takes over SLICE_TURN_MS, doubled
 * back up to SLICE_ACTIONS while it takes under half that. The
 * sweep resumes where the last one stopped (`resume`, in memory), so each
 * key is looked at about once however long the backlog: keys it passes
 * without acting (a warning whose deadline has already gone, which waits
 * for that deadline's escalation to remove it) are not looked at again.
 * That is sound because a key passed over can only become due again through
 * apply putting it anew, and apply notes the earliest time it puts (`low`),
 * where the next sweep starts instead; and a key acted on is removed by the
 * apply of the record it caused, so one still present at the next sweep
 * belongs to a record the daemon refused (E_FULL): the sweep goes back to
 * it. The host commits what on_timer appends before it runs on_timer again
 * (lx_ingest_flush_timer, right after the call), so nothing is in flight.
 */
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lx/plugin.h"
#include "../common/lxp.h"

#define K_DEADLINE 'D'
#define K_WARNING 'W'
#define K_RESPONSE 'R'
#define SLICE_ACTIONS 4096 /* records appended per on_timer at most: one group commit */
#define SLICE_MIN 64       /* ... and at least, when there are so many due */
#define SLICE_TURN_MS 30   /* what one slice's loop turn should take (issue 15: ack p99 < 50 ms) */
#define SLICE_KEYS (2 * SLICE_ACTIONS) /* keys looked at per on_timer: a stale warning beside each action */
#define ID_MAX 64          /* longer appeal ids get no clocks */
#define KEY_MAX (9 + ID_MAX)
#define NEVER INT64_MAX

typedef struct esc_state {
  int64_t deadline;    /* the deadline of the tier that holds the appeal, -1 when stopped */
  int64_t due;         /* when the D key fires: the deadline, or the next reminder */
  int64_t warn_at;     /* the W key, -1 when none */
  int64_t respond_by;  /* the R key, -1 when none */
  int32_t tier;
  int32_t overdue;     /* past the county's deadline: reminders from now on */
  int32_t days[3];     /* working days at community, township, county, as
                        * promised at filing; 0: a state from before they
                        * were kept (the configuration in force then) */
  int32_t pad;
} esc_state_t;
#define ESC_STATE_OLD offsetof(esc_state_t, days) /* the size of a state without days */

/* A key of the index, or a place in it (one more byte: just after a key). */
typedef struct esc_key {
  uint8_t b[KEY_MAX + 1];
  size_t n;
} esc_key_t;

typedef struct esc {
  const lx_host_api_t *api;
  lx_host_t *host;
  lx_db_t due, state;
  double warn_share;
  int response_days, urgent_response_hours, reminder_days;
  /* The sweep's memory (see the top of the file); lost with the process,
   * which then starts from the first key. */
  esc_key_t resume;     /* the first key the next sweep has not looked at */
  int64_t low;          /* earliest time apply put a key at since the last sweep */
  int64_t armed;        /* what the timer is armed for, NEVER if nothing */
  int64_t last_now;     /* the last sweep's now: a clock set back starts over */
  esc_key_t *acted;     /* the keys the last sweep acted on, in key order */
  size_t n_acted;
  int slice;            /* records a sweep appends at most, SLICE_MIN..SLICE_ACTIONS */
  int64_t full_at;      /* monotonic ms when the last sweep stopped full, else -1 */
} esc_t;

static const char *const esc_types[] = {"warning", "unanswered", NULL};
static const char *const tier_names[] = {"", "community", "township", "county"};

static bool is_key(const msgpack_object *k, const char *name) {
  size_t n = strlen(name);
  return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
         memcmp(k->via.str.ptr, name, n) == 0;
}

static bool slice_is(lx_slice_t s, const char *name) {
  return s.n == strlen(name) && memcmp(s.p, name, s.n) == 0;
}

/* --- config ---------------------------------------------------------------- */

static int conf_share(esc_t *e) {
  const char *v = e->api->conf_str(e->host, "warn_share");
  char *end;
  e->warn_share = 0.8;
  if (!v)
    return 0;
  double x = strtod(v, &end);
  if (*v == 0 || *end || !(x > 0 && x < 1)) {
    e->api->conf_error(e->host, "warn_share", "expected a share between 0 and 1, e.g. 0.8");
    return -1;
  }
  e->warn_share = x;
  return 0;
}

static int conf_all(esc_t *e) {
  int bad = conf_share(e);
  bad |= lxp_conf_int_i(e->api, e->host, "response_days", 1, 1, 60, &e->response_days);
  bad |= lxp_conf_int_i(e->api, e->host, "urgent_response_hours", 2, 1, 240, &e->urgent_response_hours);
  bad |= lxp_conf_int_i(e->api, e->host, "reminder_days", 1, 1, 60, &e->reminder_days);
  return bad;
}

static int esc_init(const lx_host_api_t *api, lx_host_t *host, void **state) {
  esc_t *e = calloc(1, sizeof *e);
  if (!e)
    return -1;
  e->api = api;
  e->host = host;
  e->acted = calloc(SLICE_ACTIONS, sizeof *e->acted);
  e->low = e->armed = NEVER;
  e->slice = SLICE_ACTIONS;
  e->full_at = -1;
  if (conf_all(e) || !e->acted || api->db_open(host, "due", &e->due) ||
      api->db_open(host, "state", &e->state)) {
    free(e->acted);
    free(e);
    return -1;
  }
  *state = e;
  return 0;
}

/* The same databases and sweep, the new settings; the old state is left as
 * it is (it keeps serving if another part of the reload is refused). */
static int esc_reload(void *state, void **next) {
  esc_t *e = malloc(sizeof *e), *old = state;
  if (!e)
    return -1;
  *e = *old;
  e->acted = malloc(SLICE_ACTIONS * sizeof *e->acted);
  if (!e->acted || conf_all(e)) {
    free(e->acted);
    free(e);
    return -1;
  }
  memcpy(e->acted, old->acted, old->n_acted * sizeof *e->acted);
  *next = e;
  return 0;
}

static void esc_close(void *state) {
  esc_t *e = state;
  free(e->acted);
  free(e);
}

/* --- the index ------------------------------------------------------------- */

static size_t due_key(uint8_t *k, int64_t at, char kind, lx_slice_t appeal) {
  uint64_t v = (uint64_t)at;
  for (int i = 7; i >= 0; i--, v >>= 8)
    k[i] = (uint8_t)v;
  k[8] = (uint8_t)kind;
  memcpy(k + 9, appeal.p, appeal.n);
  return 9 + appeal.n;
}

static int64_t key_time(const uint8_t *k) {
  int64_t at = 0;
  for (int i = 0; i < 8; i++)
    at = (at << 8) | k[i];
  return at;
}

/* LMDB's default order: bytes, then the shorter first. */
static int key_cmp(const esc_key_t *a, const esc_key_t *b) {
  int c = memcmp(a->b, b->b, a->n < b->n ? a->n : b->n);
  return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* Puts a key and notes its time, so the next sweep does not start past it
 * (an aborted batch leaves `low` too early, which costs only a look). */
static void due_put(esc_t *e, lx_txn_t *t, int64_t at, char kind, lx_slice_t appeal) {
  uint8_t k[KEY_MAX];
  if (at < 0 || appeal.n > ID_MAX)
    return;
  e->api->put(t, e->due, k, due_key(k, at, kind, appeal), "", 0);
  if (at < e->low)
    e->low = at;
}

static void due_del(esc_t *e, lx_txn_t *t, int64_t at, char kind, lx_slice_t appeal) {
  uint8_t k[KEY_MAX];
  if (at >= 0 && appeal.n <= ID_MAX)
    e->api->del(t, e->due, k, due_key(k, at, kind, appeal));
}

static bool load(esc_t *e, lx_txn_t *t, lx_slice_t appeal, esc_state_t *st) {
  const void *v;
  size_t n;
  if (e->api->get(t, e->state, appeal.p, appeal.n, &v, &n) == 0 &&
      (n == sizeof *st || n == ESC_STATE_OLD)) {
    memset(st, 0, sizeof *st);
    memcpy(st, v, n);
    return true;
  }
  return false;
}

static void save(esc_t *e, lx_txn_t *t, lx_slice_t appeal, const esc_state_t *st) {
  e->api->put(t, e->state, appeal.p, appeal.n, st, sizeof *st);
}

/* The working days at `tier` that the appeal was promised. */
static int tier_days(esc_t *e, const esc_state_t *st, int tier, lx_slice_t category, int urgent) {
  if (tier >= LX_COMMUNITY && tier <= LX_COUNTY && st->days[tier - 1] > 0)
    return st->days[tier - 1];
  return e->api->tier_days(e->host, tier, category, urgent);
}

/* Starts the clock of `tier` at `start`, ending at `deadline`. */
static void clock_start(esc_t *e, lx_txn_t *t, lx_slice_t appeal, esc_state_t *st, int tier,
                        int64_t start, int64_t deadline) {
  st->tier = tier;
  st->overdue = 0;
  st->deadline = st->due = deadline;
  st->warn_at = start + (int64_t)((double)(deadline - start) * e->warn_share);
  due_put(e, t, st->due, K_DEADLINE, appeal);
  due_put(e, t, st->warn_at, K_WARNING, appeal);
}

static void clock_stop(esc_t *e, lx_txn_t *t, lx_slice_t appeal, esc_state_t *st) {
  due_del(e, t, st->due, K_DEADLINE, appeal);
  due_del(e, t, st->warn_at, K_WARNING, appeal);
  st->deadline = st->due = st->warn_at = -1;
}

static void response_stop(esc_t *e, lx_txn_t *t, lx_slice_t appeal, esc_state_t *st) {
  due_del(e, t, st->respond_by, K_RESPONSE, appeal);
  st->respond_by = -1;
}

/* --- apply: keep the index in step with the log ----------------------------- */

static void apply_appeal(esc_t *e, lx_txn_t *t, const lx_rec_t *r) {
  esc_state_t st = {.deadline = -1, .due = -1, .warn_at = -1, .respond_by = -1};
  for (int tier = LX_COMMUNITY; tier <= LX_COUNTY; tier++)
    st.days[tier - 1] = e->api->tier_days(e->host, tier, r->category, r->urgent);
  int64_t deadline = e->api->deadline(e->host, r->rat, st.days[0]);
  clock_start(e, t, r->appeal, &st, LX_COMMUNITY, r->rat, deadline);
  /* The host's clock, which rank's `responded` counts by too. */
  st.respond_by = e->api->response_due(e->host, r->rat, r->urgent);
  due_put(e, t, st.respond_by, K_RESPONSE, r->appeal);
  e->api->set_deadline(t, r->appeal, deadline);
  save(e, t, r->appeal, &st);
}

/* An unsatisfied resident reopens the appeal at the tier that resolved it,
 * with a fresh deadline there. */
static void apply_reopen(esc_t *e, lx_txn_t *t, const lx_rec_t *r, esc_state_t *st) {
  lx_appeal_view_t a;
  if (e->api->appeal(t, r->appeal, &a) != 0)
    return;
  lx_slice_t cat = {a.category, strlen(a.category)};
  int64_t deadline = e->api->deadline(e->host, r->rat, tier_days(e, st, a.tier, cat, a.urgent));
  clock_stop(e, t, r->appeal, st);
  clock_start(e, t, r->appeal, st, a.tier, r->rat, deadline);
  e->api->set_deadline(t, r->appeal, deadline);
}

static void apply_escalation(esc_t *e, lx_txn_t *t, const lx_rec_t *r, esc_state_t *st) {
  bool escalated = slice_is(r->esc_kind, "escalated");
  clock_stop(e, t, r->appeal, st);
  if (escalated) {
    /* The new tier's time starts when the old one's ran out. */
    clock_start(e, t, r->appeal, st, r->esc_to, r->esc_deadline, r->esc_next);
    return;
  }
  st->tier = LX_COUNTY;
  st->overdue = 1;
  st->deadline = r->esc_deadline;
  st->due = r->esc_next;
  due_put(e, t, st->due, K_DEADLINE, r->appeal);
}

static void esc_apply(void *state, lx_txn_t *t, const lx_rec_t *r) {
  esc_t *e = state;
  esc_state_t st, was;
  if (r->appeal.n == 0)
    return;
  if (r->type == LX_REC_APPEAL) {
    apply_appeal(e, t, r);
    return;
  }
  if (!load(e, t, r->appeal, &st))
    return;
  was = st;
  switch (r->type) {
  case LX_REC_VISIT: /* the first response: its clock stops */
  case LX_REC_RESOLUTION:
    response_stop(e, t, r->appeal, &st);
    if (r->type == LX_REC_RESOLUTION) {
      clock_stop(e, t, r->appeal, &st); /* explained and referred pause it too */
      e->api->set_deadline(t, r->appeal, -1);
    }
    break;
  case LX_REC_FEEDBACK:
    if (!r->satisfied)
      apply_reopen(e, t, r, &st);
    break;
  case LX_REC_ESCALATION:
    apply_escalation(e, t, r, &st);
    break;
  case LX_REC_PLUGIN:
    if (slice_is(r->type_name, "warning")) {
      due_del(e, t, st.warn_at, K_WARNING, r->appeal);
      st.warn_at = -1;
    } else if (slice_is(r->type_name, "unanswered")) {
      response_stop(e, t, r->appeal, &st);
    }
    break;
  default:
    return;
  }
  /* Most records leave the state as it was (a second visit, a satisfied
   * resident): no write then. */
  if (memcmp(&st, &was, sizeof st) != 0)
    save(e, t, r->appeal, &st);
}

/* --- on_timer: decide what is due ------------------------------------------ */

typedef struct sweep {
  esc_t *e;
  lx_txn_t *t;
  int64_t now;
  int64_t next;   /* when to come back: the first key after now, now if more are due, -1 */
  int actions, keys;
  bool stopped;   /* at a key not looked at, which is then `resume` */
  esc_key_t last; /* the last key looked at */
  msgpack_sbuffer body;
} sweep_t;

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v, size_t n) {
  msgpack_pack_str(pk, strlen(k));
  msgpack_pack_str_body(pk, k, strlen(k));
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, v, n);
}

static void pack_kv_int(msgpack_packer *pk, const char *k, int64_t v) {
  msgpack_pack_str(pk, strlen(k));
  msgpack_pack_str_body(pk, k, strlen(k));
  if (v < 0)
    msgpack_pack_nil(pk);
  else
    msgpack_pack_int64(pk, v);
}

/* Appends the decision about the key just looked at, and remembers that
 * key: its record's apply removes it, so if it is still there at the next
 * sweep, the record was refused. */
static void append(sweep_t *s, const char *type, const lx_appeal_view_t *a) {
  lx_slice_t unit = {a->unit, strlen(a->unit)};
  s->e->api->append(s->e->host, type, unit, (const uint8_t *)s->body.data, s->body.size);
  msgpack_sbuffer_clear(&s->body);
  s->e->acted[s->e->n_acted++] = s->last;
  s->actions++;
}

static void decide_deadline(sweep_t *s, lx_slice_t id, const lx_appeal_view_t *a,
                            const esc_state_t *st, int64_t due) {
  esc_t *e = s->e;
  msgpack_packer pk;
  msgpack_packer_init(&pk, &s->body, msgpack_sbuffer_write);
  lx_slice_t cat = {a->category, strlen(a->category)};
  msgpack_pack_map(&pk, 6);
  pack_kv_str(&pk, "appeal", id.p, id.n);
  if (!st->overdue && st->tier < LX_COUNTY) {
    int to = st->tier + 1;
    int64_t next = e->api->deadline(e->host, due, tier_days(e, st, to, cat, a->urgent));
    pack_kv_str(&pk, "kind", "escalated", 9);
    pack_kv_str(&pk, "from", tier_names[st->tier], strlen(tier_names[st->tier]));
    pack_kv_str(&pk, "to", tier_names[to], strlen(tier_names[to]));
    pack_kv_int(&pk, "deadline", due);
    pack_kv_int(&pk, "next", next);
  } else {
    /* After downtime, one reminder catches up, not one per missed interval. */
    int64_t next = e->api->deadline(e->host, s->now, e->reminder_days);
    const char *kind = st->overdue ? "reminder" : "overdue";
    pack_kv_str(&pk, "kind", kind, strlen(kind));
    pack_kv_str(&pk, "from", "county", 6);
    pack_kv_str(&pk, "to", "county", 6);
    pack_kv_int(&pk, "deadline", st->deadline);
    pack_kv_int(&pk, "next", next);
  }
  append(s, "escalation", a);
}

static void decide_other(sweep_t *s, char kind, lx_slice_t id, const lx_appeal_view_t *a,
                         const esc_state_t *st, int64_t due) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, &s->body, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 3);
  pack_kv_str(&pk, "appeal", id.p, id.n);
  if (kind == K_WARNING) {
    pack_kv_str(&pk, "tier", tier_names[st->tier], strlen(tier_names[st->tier]));
    pack_kv_int(&pk, "deadline", st->deadline);
    append(s, "warning", a);
  } else {
    pack_kv_str(&pk, "tier", tier_names[a->tier], strlen(tier_names[a->tier]));
    pack_kv_int(&pk, "due", due);
    append(s, "unanswered", a);
  }
}

/* One key of the index: act if it is due and still current. A key that no
 * longer matches the appeal's state is left alone (apply removes keys as
 * clocks stop, so this is only a guard); so is a warning whose deadline has
 * passed too, which that deadline's escalation removes. */
static void sweep_key(sweep_t *s, const uint8_t *k, size_t klen, int64_t due) {
  lx_slice_t id = {(const char *)k + 9, klen - 9};
  lx_appeal_view_t a;
  esc_state_t st;
  bool current;
  if (!load(s->e, s->t, id, &st))
    return;
  if (k[8] == K_DEADLINE)
    current = st.due == due;
  else if (k[8] == K_WARNING)
    current = st.warn_at == due && st.deadline > s->now;
  else
    current = k[8] == K_RESPONSE && st.respond_by == due;
  if (!current || s->e->api->appeal(s->t, id, &a) != 0 || a.status != LX_OPEN)
    return;
  if (k[8] == K_DEADLINE)
    decide_deadline(s, id, &a, &st, due);
  else if (k[8] == K_WARNING)
    decide_other(s, K_WARNING, id, &a, &st, due);
  else if (a.first_response < 0)
    decide_other(s, K_RESPONSE, id, &a, &st, due);
}

static int sweep_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
  sweep_t *s = arg;
  const uint8_t *k = key;
  if (klen > KEY_MAX)
    return 0; /* never put (due_put refuses long ids) */
  int64_t due = key_time(k);
  bool full = s->actions >= s->e->slice || s->keys >= SLICE_KEYS;
  if (due > s->now || full) {
    s->next = due > s->now ? due : s->now; /* full: the rest on the next loop turn */
    s->stopped = true;
    memcpy(s->e->resume.b, k, klen);
    s->e->resume.n = klen;
    return 1;
  }
  s->keys++;
  memcpy(s->last.b, k, klen);
  s->last.n = klen;
  if (klen >= 10)
    sweep_key(s, k, klen, due);
  return 0;
}

/* Where this sweep starts: where the last one stopped, or earlier if apply
 * put a key before that, or at a key acted on whose record never came. */
static void sweep_start(esc_t *e, lx_txn_t *t, int64_t now) {
  if (now < e->last_now)
    e->resume.n = 0; /* the clock went back: what was passed may be due again */
  e->last_now = now;
  if (e->low != NEVER && e->resume.n && e->low <= key_time(e->resume.b)) {
    due_key(e->resume.b, e->low, 0, (lx_slice_t){"", 0});
    e->resume.n = 8;
  }
  e->low = NEVER;
  for (size_t i = 0; i < e->n_acted; i++) {
    const void *v;
    size_t n;
    const esc_key_t *k = &e->acted[i];
    if (e->api->get(t, e->due, k->b, k->n, &v, &n) == 0) {
      if (key_cmp(k, &e->resume) < 0 && e->resume.n)
        e->resume = *k;
      e->api->log(e->host, LX_PLOG_INFO, "a decision was not stored; deciding again");
      break; /* acted keys are in key order: the first present is the earliest */
    }
  }
  e->n_acted = 0;
}

static void arm(esc_t *e, int64_t at) {
  e->armed = at;
  if (at != NEVER)
    e->api->arm(e->host, at);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sizes this slice by what the last full one's turn took (see the top). */
static void slice_adapt(esc_t *e, int64_t mono) {
  if (e->full_at < 0)
    return;
  int64_t took = mono - e->full_at;
  if (took > SLICE_TURN_MS && e->slice > SLICE_MIN)
    e->slice /= 2;
  else if (took * 2 < SLICE_TURN_MS && e->slice < SLICE_ACTIONS)
    e->slice *= 2;
}

static void esc_on_timer(void *state, int64_t now) {
  esc_t *e = state;
  sweep_t s = {.e = e, .now = now, .next = -1};
  int64_t mono = mono_ms();
  slice_adapt(e, mono);
  if (!(s.t = e->api->read_begin(e->host))) {
    arm(e, now + 1000);
    return;
  }
  sweep_start(e, s.t, now);
  msgpack_sbuffer_init(&s.body);
  e->api->scan(s.t, e->due, e->resume.b, e->resume.n, sweep_one, &s);
  e->api->read_end(s.t);
  msgpack_sbuffer_destroy(&s.body);
  if (!s.stopped && s.keys) { /* the index ended: resume just after its last key */
    e->resume = s.last;
    e->resume.b[e->resume.n++] = 0;
  }
  e->full_at = s.stopped && s.next == now ? mono : -1;
  if (s.actions)
    e->api->log(e->host, LX_PLOG_DEBUG, "%d decision(s) at %lld (slice %d)", s.actions,
                (long long)now, e->slice);
  arm(e, s.next >= 0 ? s.next : NEVER);
}

/* --- react: tell, and keep the timer on the earliest key ---------------------- */

/* The alert carries the record's body fields (appeal, from, to, deadline,
 * next, or tier and due) plus `tier`, the tier that must act now. */
static void publish(esc_t *e, const lx_rec_t *r, const char *kind) {
  msgpack_zone z;
  msgpack_object o;
  size_t off = 0;
  msgpack_zone_init(&z, 512);
  if (msgpack_unpack((const char *)r->ev, r->ev_len, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS &&
      o.type == MSGPACK_OBJECT_MAP) {
    const msgpack_object *body = NULL;
    for (uint32_t i = 0; i < o.via.map.size; i++)
      if (is_key(&o.via.map.ptr[i].key, "body"))
        body = &o.via.map.ptr[i].val;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    bool esc = r->type == LX_REC_ESCALATION;
    uint32_t n = body && body->type == MSGPACK_OBJECT_MAP ? body->via.map.size : 0, kept = 0;
    for (uint32_t i = 0; i < n; i++)
      kept += !is_key(&body->via.map.ptr[i].key, "kind");
    msgpack_pack_map(&pk, kept + esc);
    for (uint32_t i = 0; i < n; i++) {
      /* The record's kind travels as the alert's own `kind`. */
      if (is_key(&body->via.map.ptr[i].key, "kind"))
        continue;
      msgpack_pack_object(&pk, body->via.map.ptr[i].key);
      msgpack_pack_object(&pk, body->via.map.ptr[i].val);
    }
    if (esc)
      pack_kv_str(&pk, "tier", tier_names[r->esc_to], strlen(tier_names[r->esc_to]));
    e->api->publish(e->host, r, kind, r->unit, (const uint8_t *)sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
  }
  msgpack_zone_destroy(&z);
}

/* An escalation's alert, from the fields the host has already read out of
 * its body (appeal, from, to, deadline, next), so a catch-up's thousands do
 * not each unpack their record again; `tier` is the tier it went to. */
static void publish_escalation(esc_t *e, const lx_rec_t *r) {
  char kind[16];
  size_t n = r->esc_kind.n < sizeof kind - 1 ? r->esc_kind.n : sizeof kind - 1;
  memcpy(kind, r->esc_kind.p, n);
  kind[n] = 0;
  if (r->esc_from < LX_COMMUNITY || r->esc_from > LX_COUNTY || r->esc_to < LX_COMMUNITY ||
      r->esc_to > LX_COUNTY) {
    publish(e, r, kind);
    return;
  }
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 6);
  pack_kv_str(&pk, "appeal", r->appeal.p, r->appeal.n);
  pack_kv_str(&pk, "from", tier_names[r->esc_from], strlen(tier_names[r->esc_from]));
  pack_kv_str(&pk, "to", tier_names[r->esc_to], strlen(tier_names[r->esc_to]));
  pack_kv_int(&pk, "deadline", r->esc_deadline);
  pack_kv_int(&pk, "next", r->esc_next);
  pack_kv_str(&pk, "tier", tier_names[r->esc_to], strlen(tier_names[r->esc_to]));
  e->api->publish(e->host, r, kind, r->unit, (const uint8_t *)sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

static void esc_react(void *state, const lx_rec_t *r) {
  esc_t *e = state;
  if (r->appeal.n == 0)
    return;
  if (r->type == LX_REC_ESCALATION) {
    publish_escalation(e, r);
  } else if (r->type == LX_REC_PLUGIN) {
    for (int i = 0; esc_types[i]; i++)
      if (slice_is(r->type_name, esc_types[i]))
        publish(e, r, esc_types[i]);
  }
  /* A key put before the time armed for (a new appeal's clocks) moves the
   * timer; keys removed only make it fire early and find nothing. */
  if (e->low < e->armed)
    arm(e, e->low);
}

const lx_plugin_t lx_plugin_entry = {
    .abi = LX_PLUGIN_ABI,
    .name = "escalate",
    .description = "escalates unresolved appeals community -> township -> county on working days",
    .types = esc_types,
    .init = esc_init,
    .apply = esc_apply,
    .react = esc_react,
    .on_timer = esc_on_timer,
    .close = esc_close,
    .reload = esc_reload,
};
