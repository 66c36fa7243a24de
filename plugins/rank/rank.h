/* SPDX-License-Identifier: MIT
 *
 * rank.h: the parts of the rank plugin shared by its files: periods, the
 * facts kept per appeal, and the computation of a ranking (rank_calc.c);
 * the plugin's life cycle, timer and query are in rank.c.
 *
 * Design: one definition of each figure. The facts of an appeal (its filing
 * time and unit, first-response deadline and first response, and the
 * outcomes, feedback and escalations it met, each with its receive time)
 * are built by rk_fact_apply from records, whether apply builds them into
 * the plugin's database as records are stored or a query builds them in
 * memory from a log scan; rk_calc_add then reads them as of a period's
 * end. So a ranking appended at a period's end and its recomputation by
 * the `rank` op go through the same code.
 */
#ifndef LX_RANK_H
#define LX_RANK_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lx/plugin.h"

/* --- periods (local: calendar.utc_offset) --------------------------------- */

enum { RK_MONTH = 'M', RK_QUARTER = 'Q', RK_YEAR = 'Y' };

typedef struct rk_period {
  int kind; /* RK_MONTH, RK_QUARTER, RK_YEAR */
  int year;
  int num;  /* month 1..12, quarter 1..4, 0 for a year */
} rk_period_t;

/* Parses "2026-11", "2026-Q4" or "2026" (years 1970..9999). Returns 0, or
 * -1 for anything else. */
int rk_period_parse(const char *s, size_t n, rk_period_t *p);
/* Writes "2026-11", "2026-Q4" or "2026". */
void rk_period_format(const rk_period_t *p, char out[16]);
/* The period's first moment, ms UTC, for local time = UTC + off_ms. */
int64_t rk_period_start(const rk_period_t *p, int64_t off_ms);
/* The first moment after the period: the next period's start. */
int64_t rk_period_end(const rk_period_t *p, int64_t off_ms);
rk_period_t rk_period_next(const rk_period_t *p);
/* The period of `kind` that contains time t. */
rk_period_t rk_period_of(int kind, int64_t t, int64_t off_ms);

/* --- facts of one appeal --------------------------------------------------- */

enum { RK_EV_OUTCOME = 1, RK_EV_FEEDBACK, RK_EV_TIER };

/* Stored as the head followed by n_ev events, all fields fixed-width and
 * zero-padded, so the audit's rebuild gives the same bytes. */
typedef struct rk_head {
  int64_t opened;     /* rat of the appeal record */
  int64_t due;        /* its first-response deadline (api->response_due at filing) */
  int64_t first_resp; /* rat of the first visit naming it or resolution, -1 if none */
  char unit[100];     /* its community path, NUL-padded */
  int32_t top;        /* the highest tier it reached (1: never escalated) */
  uint32_t n_ev;
} rk_head_t;

typedef struct rk_ev {
  int64_t rat;
  int32_t kind; /* RK_EV_* */
  int32_t arg;  /* outcome (LX_RESOLVED…), satisfied (0/1), or the tier reached */
} rk_ev_t;

/* A fact being built: the stored bytes, growable. */
typedef struct rk_fact {
  uint8_t *buf; /* rk_head_t then rk_ev_t[n_ev] */
  size_t cap;
  bool lent;    /* buf is the caller's (cap bytes, not malloc'd): a fact that outgrows it
                 * moves to the heap; rk_fact_free leaves it alone */
} rk_fact_t;

/* Room for an appeal's facts with this many events: a year's scan of the
 * log lends each appeal that much from one block (rank_q.c) rather than
 * allocating per appeal; filing, a response, two outcomes and two
 * feedbacks fit. */
#define RK_FACT_SMALL (sizeof(rk_head_t) + 5 * sizeof(rk_ev_t))

/* Starts the facts of the appeal filed by rec (an appeal record). */
int rk_fact_new(rk_fact_t *f, const lx_rec_t *rec, int64_t due);
/* Loads stored bytes into f (a copy). */
int rk_fact_load(rk_fact_t *f, const void *v, size_t n);
/* Adds what rec (naming the appeal) tells: returns 1 when f changed, 0 if
 * not, -1 out of memory. */
int rk_fact_apply(rk_fact_t *f, const lx_rec_t *rec);
size_t rk_fact_size(const rk_fact_t *f);
void rk_fact_free(rk_fact_t *f);

/* --- rows and a ranking ------------------------------------------------------ */

enum { RK_RESPONSE, RK_RESOLUTION, RK_SATISFACTION, RK_RATES };

typedef struct rk_row {
  const char *unit; /* the configured path */
  int64_t received, responded, resolved, explained, referred, escalated, feedback, satisfied,
      reopened;
  double rate[RK_RATES];
  bool has_rate[RK_RATES];
  double score;
  bool has_score;
  int rank; /* 0: unranked */
} rk_row_t;

/* The units of one tier, sorted by path, as the config has them. */
typedef struct rk_units {
  const char **path;
  size_t n;
} rk_units_t;

/* One period's figures for both tiers (index 0: community, 1: township). */
typedef struct rk_calc {
  int64_t end;            /* records with rat < end count */
  rk_row_t *rows[2];
  size_t n[2];
  const rk_units_t *units; /* [2] */
  double w[RK_RATES];      /* normalised weights */
} rk_calc_t;

/* Sets up zeroed rows for every configured unit of both tiers. */
int rk_calc_init(rk_calc_t *c, const rk_units_t units[2], const double w[RK_RATES], int64_t end);
void rk_calc_free(rk_calc_t *c);
/* Counts one appeal of the cohort, as of c->end. An appeal whose unit is
 * no longer configured is left out. */
void rk_calc_add(rk_calc_t *c, const void *fact, size_t n);
/* Rates, scores and ranks; sorts each tier's rows: ranked ones in rank
 * order, then unranked ones by path. */
void rk_calc_finish(rk_calc_t *c);
/* Packs the ranking body of tier index ti ({period, tier, weights, rows,
 * red, black}), keeping only units within jurisdiction `jur` ("" for all). */
void rk_calc_pack(const rk_calc_t *c, int ti, const char *period, int list_size, const char *jur,
                  msgpack_packer *pk);

/* True when path lies within prefix at a code boundary ("" holds all). */
bool rk_within(const char *path, const char *prefix);

#endif
