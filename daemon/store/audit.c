/* SPDX-License-Identifier: MIT
 *
 * audit.c: rebuild every derived state from the log alone, compare it with
 * the live state, and re-check every escalation decision.
 *
 * Design: the auditor trusts only the log. The rebuild runs each record of
 * the live log, in order, through the very function the daemon stores
 * records with (lx_apply_record: dedup, appeal state, chain, plugins'
 * apply) into a scratch store, so the rebuilt chain must equal the stored
 * hashes and the rebuilt databases (dedup index, appeals, their histories,
 * counters, every plugin database) must equal the live ones byte for byte.
 * One read transaction on the live store gives one consistent snapshot, so
 * the audit can run beside a serving daemon.
 *
 * Decisions are re-checked against the rebuilt state just before each
 * escalation record: the appeal was open at the tier it left, the deadline
 * it names is the one it had and had passed, and `next` is that deadline
 * moved on by the next tier's working days on the configured calendar.
 * Records of a plugin's own types are offered to that plugin's `check`
 * (lx/plugin.h) at the same point: a `ranking` must equal the ranking the
 * rank plugin recomputes from the records before it.
 * At the end, an open appeal whose deadline (or next reminder) passed
 * before the log's last record is a missing escalation.
 *
 * Configurations. The store keeps every configuration the daemon ran with
 * (cfgstore.h). The rebuild starts under the one in force at seq 1 and, at
 * each `config` record, checks that the store holds bytes with the
 * record's hash and goes on under them: the plugins are closed and loaded
 * again with the new settings, calendar and deadlines, between two batches.
 * An escalation's `next` is checked against the working days in force when
 * its appeal was filed (what it was promised) on the calendar in force at
 * the escalation. A store from before configurations were kept is audited
 * under the file given.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appeal.h"
#include "apply.h"
#include "audit.h"
#include "calendar.h"
#include "cfgstore.h"
#include "log.h"
#include "plugin_host.h"

#define AUDIT_BATCH 20000
#define LATE_MS 60000 /* a decision may trail its deadline by a timer tick and a commit */

typedef struct audit {
  lx_daemon_t d;        /* the scratch daemon: store, plugins, calendar */
  lx_store_t *live;
  MDB_txn *live_txn;
  MDB_dbi next_dbi;     /* scratch only: appeal -> the reminder time it expects next */
  FILE *out;
  uint64_t records, appeals, escalations, problems, last_rat;
  msgpack_zone zone;
  msgpack_sbuffer content;
  const char *config;   /* the file given: names the stored ones, resolves their paths */
  lx_config_t *past;    /* configurations no longer in force, oldest first */
  size_t n_past;
  MDB_dbi filed_dbi;    /* scratch only: appeal -> index of the config it was filed under */
  uint8_t next_hash[32]; /* the config record just applied: swap to it after the batch */
  bool swap;
} audit_t;

static void problem(audit_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(audit_t *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("  ", a->out);
  vfprintf(a->out, fmt, ap);
  fputc('\n', a->out);
  va_end(ap);
  a->problems++;
}

/* --- decisions ------------------------------------------------------------- */

/* The configuration an appeal was filed under (the one in force if the
 * audit did not see it filed). */
static const lx_config_t *filed_under(audit_t *a, MDB_txn *txn, lx_str_t id) {
  MDB_val k = {id.n, (void *)id.p}, v;
  uint32_t i;
  if (mdb_get(txn, a->filed_dbi, &k, &v) == 0 && v.mv_size == sizeof i) {
    memcpy(&i, v.mv_data, sizeof i);
    if (i < a->n_past)
      return &a->past[i];
  }
  return &a->d.cfg;
}

static int64_t expected_next(audit_t *a, MDB_txn *txn, lx_str_t id, const lx_appeal_t *ap,
                             int tier, int64_t from) {
  const lx_config_t *cfg = filed_under(a, txn, id);
  int days = lx_config_tier_days(cfg, tier, ap->category, strlen(ap->category), ap->urgent);
  return lx_calendar_deadline(a->d.cal, from, days);
}

static void check_escalation(audit_t *a, MDB_txn *txn, const lx_event_t *ev, uint64_t seq,
                             uint64_t rat) {
  lx_appeal_t ap;
  const char *kind = ev->esc_kind.p;
  int klen = (int)ev->esc_kind.n;
  a->escalations++;
  if (lx_store_appeal_get(a->d.store, txn, ev->appeal, &ap)) {
    problem(a, "seq %llu: %.*s of unknown appeal %.*s", (unsigned long long)seq, klen, kind,
            (int)ev->appeal.n, ev->appeal.p);
    return;
  }
  const char *why = NULL;
  MDB_val k = {ev->appeal.n, (void *)ev->appeal.p}, v;
  bool overdue = mdb_get(txn, a->next_dbi, &k, &v) == 0;
  if (ap.status != LX_ST_OPEN)
    why = "the appeal was not open";
  else if (ev->esc_from != ap.tier)
    why = "the appeal was not at the tier it left";
  else if (klen == 9 && memcmp(kind, "escalated", 9) == 0) {
    if (ev->esc_to != ap.tier + 1 || ap.tier >= LX_TIER_COUNTY)
      why = "it did not move one tier up";
    else if (ev->esc_deadline != ap.deadline)
      why = "its deadline is not the appeal's deadline";
    else if ((uint64_t)ev->esc_deadline > rat)
      why = "the deadline had not passed";
    else if (ev->esc_next != expected_next(a, txn, ev->appeal, &ap, ev->esc_to, ev->esc_deadline))
      why = "its next deadline does not follow the calendar";
  } else if (klen == 7 && memcmp(kind, "overdue", 7) == 0) {
    if (ap.tier != LX_TIER_COUNTY || overdue)
      why = "only an appeal at the county, once, becomes overdue";
    else if (ev->esc_deadline != ap.deadline || (uint64_t)ev->esc_deadline > rat)
      why = "the county's deadline had not passed";
  } else { /* reminder */
    int64_t due = -1;
    if (overdue && v.mv_size == sizeof due)
      memcpy(&due, v.mv_data, sizeof due);
    if (!overdue)
      why = "a reminder for an appeal that was not overdue";
    else if ((uint64_t)due > rat)
      why = "no reminder was due yet";
  }
  if (why)
    problem(a, "seq %llu: unjustified %.*s of appeal %.*s (%s at tier %s, deadline %lld, at %llu): %s",
            (unsigned long long)seq, klen, kind, (int)ev->appeal.n, ev->appeal.p,
            lx_status_name(ap.status), lx_tier_name(ap.tier), (long long)ap.deadline,
            (unsigned long long)rat, why);
}

/* Overdue and reminder records promise the next reminder; a resolution
 * ends the promise. */
static void track_reminders(audit_t *a, MDB_txn *txn, const lx_event_t *ev) {
  MDB_val k = {ev->appeal.n, (void *)ev->appeal.p};
  if (ev->type == LX_EV_ESCALATION && !(ev->esc_kind.n == 9 &&
                                        memcmp(ev->esc_kind.p, "escalated", 9) == 0)) {
    MDB_val v = {sizeof ev->esc_next, (void *)&ev->esc_next};
    mdb_put(txn, a->next_dbi, &k, &v, 0);
  } else if (ev->type == LX_EV_RESOLUTION) {
    mdb_del(txn, a->next_dbi, &k, NULL);
  }
}

/* The index the configuration in force will have in a->past once it is
 * replaced: the number of configurations replaced so far. */
static void note_filed(audit_t *a, MDB_txn *txn, lx_str_t id) {
  uint32_t i = (uint32_t)a->n_past;
  MDB_val k = {id.n, (void *)id.p}, v = {sizeof i, &i};
  mdb_put(txn, a->filed_dbi, &k, &v, 0);
}

/* --- configurations -------------------------------------------------------- */

/* Loads the configuration with this hash from the live store. */
static int load_stored(audit_t *a, const uint8_t hash[32], lx_config_t *out, uint64_t seq) {
  const uint8_t *bytes;
  size_t n;
  uint8_t check[32];
  char *errors = NULL;
  if (lx_cfgstore_bytes(a->live_txn, hash, &bytes, &n) != 0) {
    problem(a, "seq %llu: the configuration it names is not in the store", (unsigned long long)seq);
    return -1;
  }
  crypto_generichash(check, sizeof check, bytes, n, NULL, 0);
  if (memcmp(check, hash, 32) != 0) {
    problem(a, "seq %llu: the configuration kept under its hash has other bytes",
            (unsigned long long)seq);
    return -1;
  }
  if (lx_config_load_bytes(a->config, bytes, n, out, &errors)) {
    problem(a, "seq %llu: the configuration it names does not load here:", (unsigned long long)seq);
    fputs(errors ? errors : "", a->out);
    free(errors);
    return -1;
  }
  return 0;
}

/* Puts the plugins, calendar and config of nc in force (taking nc), keeping
 * the one it replaces for the appeals filed under it. */
static int swap_config(audit_t *a, lx_config_t *nc) {
  char *errors = NULL;
  lx_config_t *p = realloc(a->past, (a->n_past + 1) * sizeof *p);
  if (!p)
    return -1;
  a->past = p;
  lx_plugins_close(&a->d);
  uv_run(a->d.loop, UV_RUN_DEFAULT);
  lx_calendar_free(&a->d.cal);
  a->past[a->n_past++] = a->d.cfg;
  a->d.cfg = *nc;
  memset(nc, 0, sizeof *nc);
  if (lx_calendar_new(&a->d.cfg, &a->d.cal) || lx_plugins_load(&a->d, &errors)) {
    problem(a, "the plugins do not load under a configuration of the log:");
    fputs(errors ? errors : "", a->out);
    free(errors);
    return -1;
  }
  return 0;
}

/* --- the rebuild ------------------------------------------------------------- */

typedef struct batch {
  audit_t *a;
  MDB_txn *txn;
  uint64_t n;
  int failed;
} batch_t;

static int apply_live(void *arg, const lx_record_t *r) {
  batch_t *b = arg;
  audit_t *a = b->a;
  lx_event_t ev;
  msgpack_zone_clear(&a->zone);
  msgpack_sbuffer_clear(&a->content);
  if (lx_event_content(r->ev, r->ev_len, &a->zone, &ev, &a->content)) {
    problem(a, "seq %llu: the stored event does not decode", (unsigned long long)r->seq);
    return b->failed = 1;
  }
  if (ev.type == LX_EV_ESCALATION)
    check_escalation(a, b->txn, &ev, r->seq, r->rat);
  char why[300];
  if (lx_plugins_check(&a->d, b->txn, r->seq, r->rat, &ev, r->ev, r->ev_len, why, sizeof why)) {
    problem(a, "seq %llu: %.*s record: %s", (unsigned long long)r->seq, (int)ev.type_name.n,
            ev.type_name.p, why);
  }
  lx_apply_t ap = {.ev = &ev, .bytes = r->ev, .len = r->ev_len,
                   .content = (const uint8_t *)a->content.data, .content_len = a->content.size,
                   .rat = r->rat};
  if (lx_apply_record(&a->d, b->txn, &ap))
    return b->failed = 1;
  if (ap.err.code || ap.dup || ap.seq != r->seq) {
    problem(a, "seq %llu: rebuilding it fails: %s", (unsigned long long)r->seq,
            ap.err.code ? ap.err.msg : ap.dup ? "a second record with the same id" : "seq differs");
    return b->failed = 1;
  }
  if (memcmp(lx_store_head_tx_hash(a->d.store), r->hash, LX_HASH_LEN) != 0) {
    problem(a, "seq %llu: chain hash differs from the stored one", (unsigned long long)r->seq);
    return b->failed = 1;
  }
  if (ev.appeal.n)
    track_reminders(a, b->txn, &ev);
  if (ev.type == LX_EV_APPEAL)
    note_filed(a, b->txn, ev.appeal);
  if (ev.type == LX_EV_CONFIG && ev.cfg_hash.n == 32) {
    memcpy(a->next_hash, ev.cfg_hash.p, 32);
    a->swap = true;
    a->records++;
    a->last_rat = r->rat;
    b->n++;
    return 2; /* end the batch here: the next one runs under the new config */
  }
  a->appeals += ev.type == LX_EV_APPEAL;
  a->records++;
  a->last_rat = r->rat;
  return ++b->n >= AUDIT_BATCH ? 2 : 0;
}

static int rebuild(audit_t *a, uint64_t head) {
  uint64_t from = 1;
  while (from <= head) {
    batch_t b = {a, NULL, 0, 0};
    if (lx_store_begin(a->d.store, &b.txn))
      return -1;
    int rc = lx_store_scan(a->live, a->live_txn, from, head, apply_live, &b);
    if (b.failed || rc < 0) {
      lx_store_abort(a->d.store, b.txn);
      return -1;
    }
    if (lx_store_commit(a->d.store, b.txn))
      return -1;
    from += b.n;
    if (a->swap) {
      lx_config_t nc;
      a->swap = false;
      if (load_stored(a, a->next_hash, &nc, from - 1) || swap_config(a, &nc))
        return -1;
      continue;
    }
    if (rc != 2) /* 2: the batch was full, go on; else the log has ended */
      break;
  }
  return 0;
}

/* --- comparing ---------------------------------------------------------------- */

static void describe_appeal(char *buf, size_t len, const MDB_val *v) {
  lx_appeal_t ap;
  if (v->mv_size != sizeof ap) {
    snprintf(buf, len, "(%zu bytes)", v->mv_size);
    return;
  }
  memcpy(&ap, v->mv_data, sizeof ap);
  snprintf(buf, len, "%s at %s, deadline %lld", lx_status_name(ap.status), lx_tier_name(ap.tier),
           (long long)ap.deadline);
}

static void show_key(char *buf, size_t len, const MDB_val *k) {
  size_t n = 0;
  for (size_t i = 0; i < k->mv_size && n + 4 < len; i++) {
    unsigned char ch = ((unsigned char *)k->mv_data)[i];
    n += (size_t)snprintf(buf + n, len - n, ch >= 0x21 && ch < 0x7f ? "%c" : "\\x%02x", ch);
  }
}

/* Compares one named database of the live store with the rebuilt one. */
static void compare_db(audit_t *a, MDB_txn *rtxn, const char *name) {
  MDB_dbi ldbi, rdbi;
  MDB_cursor *lc, *rc;
  if (mdb_dbi_open(a->live_txn, name, 0, &ldbi) || mdb_dbi_open(rtxn, name, 0, &rdbi)) {
    problem(a, "database %s: missing from the rebuild", name);
    return;
  }
  unsigned flags = 0;
  mdb_dbi_flags(a->live_txn, ldbi, &flags);
  mdb_cursor_open(a->live_txn, ldbi, &lc);
  mdb_cursor_open(rtxn, rdbi, &rc);
  MDB_val lk, lv, rk, rv;
  int lr = mdb_cursor_get(lc, &lk, &lv, MDB_FIRST), rr = mdb_cursor_get(rc, &rk, &rv, MDB_FIRST);
  int shown = 0;
  while ((lr == 0 || rr == 0) && shown < 20) {
    int cmp = lr ? 1 : rr ? -1 : mdb_cmp(a->live_txn, ldbi, &lk, &rk);
    if (cmp == 0 && (flags & MDB_DUPSORT))
      cmp = mdb_dcmp(a->live_txn, ldbi, &lv, &rv);
    char key[200], lhs[120] = "", rhs[120] = "";
    if (cmp == 0 && lv.mv_size == rv.mv_size && memcmp(lv.mv_data, rv.mv_data, lv.mv_size) == 0) {
      lr = mdb_cursor_get(lc, &lk, &lv, MDB_NEXT);
      rr = mdb_cursor_get(rc, &rk, &rv, MDB_NEXT);
      continue;
    }
    show_key(key, sizeof key, cmp <= 0 ? &lk : &rk);
    if (strcmp(name, "appeals") == 0) {
      if (cmp <= 0) describe_appeal(lhs, sizeof lhs, &lv);
      if (cmp >= 0) describe_appeal(rhs, sizeof rhs, &rv);
      problem(a, "appeal %s: live state [%s], rebuilt from the log [%s]", key,
              cmp <= 0 ? lhs : "absent", cmp >= 0 ? rhs : "absent");
    } else {
      problem(a, "database %s, key %s: %s", name, key,
              cmp < 0 ? "only in the live store" : cmp > 0 ? "only in the rebuild" : "values differ");
    }
    shown++;
    if (cmp <= 0)
      lr = mdb_cursor_get(lc, &lk, &lv, MDB_NEXT);
    if (cmp >= 0)
      rr = mdb_cursor_get(rc, &rk, &rv, MDB_NEXT);
  }
  mdb_cursor_close(lc);
  mdb_cursor_close(rc);
}

/* Every named database of the live store but the log itself (checked
 * record by record) and the "x." ones (outside systems' progress, which
 * does not follow from the log) must be equal in the rebuild. */
static void compare_all(audit_t *a) {
  MDB_txn *rtxn;
  MDB_cursor *c;
  MDB_dbi main;
  if (lx_store_read_begin(a->d.store, &rtxn))
    return;
  mdb_dbi_open(a->live_txn, NULL, 0, &main);
  mdb_cursor_open(a->live_txn, main, &c);
  MDB_val k, v;
  for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)k.mv_size, (char *)k.mv_data);
    /* configs holds the configurations' bytes, checked at each config
     * record (check_config), not rebuilt from the log; x.* is progress an
     * outside system made (a mirror's position), not derived from the log. */
    if (strcmp(name, "log") != 0 && strcmp(name, "configs") != 0 && strncmp(name, "x.", 2) != 0)
      compare_db(a, rtxn, name);
  }
  mdb_cursor_close(c);
  lx_store_read_end(a->d.store, rtxn);
}

/* An open appeal whose deadline, or next reminder, passed before the log
 * ends should have been escalated by then. */
static void check_missing(audit_t *a) {
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_cursor *c;
  MDB_val k, v;
  if (lx_store_read_begin(a->d.store, &txn) || mdb_dbi_open(txn, "appeals", 0, &dbi)) {
    lx_store_read_end(a->d.store, txn);
    return;
  }
  mdb_cursor_open(txn, dbi, &c);
  for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    lx_appeal_t ap;
    if (v.mv_size != sizeof ap)
      continue;
    memcpy(&ap, v.mv_data, sizeof ap);
    int64_t due = ap.deadline;
    MDB_val nv;
    if (mdb_get(txn, a->next_dbi, &k, &nv) == 0 && nv.mv_size == sizeof due)
      memcpy(&due, nv.mv_data, sizeof due);
    if (ap.status == LX_ST_OPEN && due >= 0 && (uint64_t)due + LATE_MS < a->last_rat)
      problem(a, "appeal %.*s: missing escalation: at %s its time ran out at %lld, and the log "
                 "goes on to %llu", (int)k.mv_size, (char *)k.mv_data, lx_tier_name(ap.tier),
              (long long)due, (unsigned long long)a->last_rat);
  }
  mdb_cursor_close(c);
  lx_store_read_end(a->d.store, txn);
}

/* --- running ----------------------------------------------------------------- */

static int open_all(audit_t *a, const char *config, const char *data, char *scratch) {
  char *errors = NULL, err[512];
  if (lx_config_load(config, &a->d.cfg, &errors)) {
    fputs(errors ? errors : "invalid configuration\n", stderr);
    free(errors);
    return -1;
  }
  if (lx_store_open(&a->live, data, a->d.cfg.map_size, a->d.cfg.map_max, err, sizeof err) ||
      lx_store_open_scratch(&a->d.store, scratch, a->d.cfg.map_max, a->d.cfg.map_max, err,
                            sizeof err)) {
    fprintf(stderr, "lianxind --audit: %s\n", err);
    return -1;
  }
  a->d.loop = uv_loop_new();
  if (lx_store_read_begin(a->live, &a->live_txn))
    return -1;
  uint8_t first[32];
  lx_config_t fc;
  if (lx_cfgstore_hash(a->live_txn, "first", first) == 0 &&
      memcmp(first, a->d.cfg.hash, 32) != 0) {
    if (load_stored(a, first, &fc, 0))
      return -1;
    lx_config_free(&a->d.cfg);
    a->d.cfg = fc;
  }
  if (lx_calendar_new(&a->d.cfg, &a->d.cal) || lx_plugins_load(&a->d, &errors)) {
    fputs(errors ? errors : "cannot load the plugins\n", stderr);
    free(errors);
    return -1;
  }
  MDB_txn *txn;
  if (lx_store_begin(a->d.store, &txn) ||
      mdb_dbi_open(txn, "audit.next", MDB_CREATE, &a->next_dbi) ||
      mdb_dbi_open(txn, "audit.filed", MDB_CREATE, &a->filed_dbi) ||
      lx_store_commit(a->d.store, txn))
    return -1;
  return 0;
}

static void close_all(audit_t *a, const char *scratch) {
  if (a->live_txn)
    lx_store_read_end(a->live, a->live_txn);
  lx_plugins_close(&a->d);
  if (a->d.loop) {
    uv_run(a->d.loop, UV_RUN_DEFAULT);
    uv_loop_close(a->d.loop);
    free(a->d.loop);
  }
  lx_calendar_free(&a->d.cal);
  lx_store_free(&a->live);
  lx_store_scratch_free(&a->d.store, scratch);
  lx_config_free(&a->d.cfg);
  for (size_t i = 0; i < a->n_past; i++)
    lx_config_free(&a->past[i]);
  free(a->past);
}

int lx_audit_run(const char *config, const char *data, FILE *out) {
  audit_t a = {.out = out, .config = config};
  char scratch[] = "/tmp/lx-audit-XXXXXX";
  msgpack_zone_init(&a.zone, 4096);
  msgpack_sbuffer_init(&a.content);
  int rc = 2;
  if (open_all(&a, config, data, scratch) == 0) {
    lx_head_t head;
    lx_store_read_head(a.live, a.live_txn, &head);
    fprintf(out, "audit of %s: %llu records, head %llu\n", data, (unsigned long long)head.seq,
            (unsigned long long)head.seq);
    fprintf(out, "discrepancies:\n");
    if (rebuild(&a, head.seq) == 0) {
      compare_all(&a);
      check_missing(&a);
    }
    fprintf(out, "%s%llu records replayed, %llu appeals checked, %llu escalations checked, "
                 "%llu discrepancies\n",
            a.problems ? "" : "  none\n", (unsigned long long)a.records,
            (unsigned long long)a.appeals, (unsigned long long)a.escalations,
            (unsigned long long)a.problems);
    rc = a.problems ? 1 : 0;
  }
  close_all(&a, scratch);
  msgpack_zone_destroy(&a.zone);
  msgpack_sbuffer_destroy(&a.content);
  return rc;
}
