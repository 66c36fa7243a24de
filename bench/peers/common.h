/* SPDX-License-Identifier: MIT
 *
 * common.h: what every peer load generator of bench/compare shares, so that
 * each system is driven and measured the same way as lx-loadgen drives
 * lianxind:
 *
 *   options     --mode sync|pipe|replay, --events, --clients, --window,
 *               --size, --max-seconds, --hold-ms, --target, --batch
 *   clients     N threads started together behind a barrier; each sends its
 *               quota with at most --window events unacknowledged; the run's
 *               time is from the start until the last client has its last ack
 *   latency     per event, send to ack, in ms; nearest-rank percentiles over
 *               every event of the run (the same definition as lx-loadgen)
 *   output      one machine-readable line that bench/compare reads:
 *                 RESULT events=N errors=N secs=S eps=E p50=.. p99=.. p999=..
 *                        max=.. cut=0|1 rss_kb=K
 *               or, for --mode replay,
 *                 REPLAY records=N secs=S rps=R rss_kb=K cpu_s=C
 *               (rss_kb is this process's own VmHWM, cpu_s its CPU time;
 *               compare uses rss_kb only for the raw loops, which have no
 *               server process)
 *
 * Every loop is bounded: by its event count, and by --max-seconds (after
 * which no new event is sent; the line then says cut=1 and events/s is over
 * the events acknowledged in the time taken). Header-only; each peer is one
 * .c file that includes this.
 */
#ifndef LX_BENCH_COMMON_H
#define LX_BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct bopts {
  const char *prog;
  const char *mode;   /* sync, pipe or replay */
  long events;        /* events in all (sync and pipe) */
  int clients;        /* pipe: clients, each its own connection */
  int window;         /* pipe: events in flight per client */
  int size;           /* bytes per event */
  double max_seconds; /* no new event after this; replay stops too */
  int hold_ms;        /* keep connections open this long after RESULT */
  const char *target; /* host:port, a URL or a directory: the peer says */
  int batch;          /* the peer's own batch size (rows per transaction...) */
} bopts_t;

static inline int64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static inline void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(2);
}

/* This process's peak resident set (VmHWM), in kB. */
static inline long self_hwm_kb(void)
{
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

static inline bool is_mode(const bopts_t *o, const char *m) { return strcmp(o->mode, m) == 0; }

static inline void bopts_usage(const bopts_t *o, const char *extra)
{
  fprintf(stderr,
          "usage: %s --target T [--mode sync|pipe|replay] [--events N] [--clients N]\n"
          "          [--window W] [--size BYTES] [--batch B] [--max-seconds S] [--hold-ms MS]\n"
          "%s",
          o->prog, extra ? extra : "");
}

/* Parses the options every peer shares; exits 2 on a bad one. */
static inline void bopts_parse(bopts_t *o, int argc, char **argv, const char *extra)
{
  o->prog = argv[0];
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end = NULL;
    if (strcmp(k, "--help") == 0 || strcmp(k, "-h") == 0) {
      bopts_usage(o, extra);
      exit(0);
    }
    if (!v)
      die("%s: %s needs a value", o->prog, k);
    i++;
    errno = 0;
    if (strcmp(k, "--mode") == 0)
      o->mode = v;
    else if (strcmp(k, "--target") == 0)
      o->target = v;
    else if (strcmp(k, "--events") == 0)
      o->events = strtol(v, &end, 10);
    else if (strcmp(k, "--clients") == 0)
      o->clients = (int)strtol(v, &end, 10);
    else if (strcmp(k, "--window") == 0)
      o->window = (int)strtol(v, &end, 10);
    else if (strcmp(k, "--size") == 0)
      o->size = (int)strtol(v, &end, 10);
    else if (strcmp(k, "--batch") == 0)
      o->batch = (int)strtol(v, &end, 10);
    else if (strcmp(k, "--hold-ms") == 0)
      o->hold_ms = (int)strtol(v, &end, 10);
    else if (strcmp(k, "--max-seconds") == 0)
      o->max_seconds = strtod(v, &end);
    else
      die("%s: unknown option %s", o->prog, k);
    if (end && (*end != '\0' || errno != 0))
      die("%s: bad value '%s' for %s", o->prog, v, k);
  }
  if (!o->target)
    die("%s: --target is required", o->prog);
  if (!is_mode(o, "sync") && !is_mode(o, "pipe") && !is_mode(o, "replay"))
    die("%s: --mode must be sync, pipe or replay", o->prog);
  if (o->events < 1 || o->events > 100000000 || o->clients < 1 || o->clients > 256 ||
      o->window < 1 || o->window > 65536 || o->size < 32 || o->size > 65536 || o->batch < 1 ||
      o->max_seconds <= 0 || o->hold_ms < 0 || o->hold_ms > 60000)
    die("%s: a value is out of range", o->prog);
  if (is_mode(o, "sync"))
    o->clients = o->window = 1;
  if (o->clients > o->events)
    o->clients = (int)o->events;
}

#define BOPTS_DEFAULTS                                                                      \
  {.mode = "pipe", .events = 200000, .clients = 4, .window = 256, .size = 300,             \
   .max_seconds = 60, .hold_ms = 0, .batch = 1}

/* Fills buf with an event of o->size bytes: a unique id, then padding. */
static inline void make_payload(char *buf, const bopts_t *o, int client, long n)
{
  memset(buf, 'x', (size_t)o->size);
  int k = snprintf(buf, (size_t)o->size, "lx-bench-%03d-%010ld ", client, n);
  if (k > 0 && k < o->size)
    buf[k] = 'x'; /* overwrite snprintf's terminator */
}

/* --- clients ------------------------------------------------------------- */

typedef struct bclient {
  const bopts_t *o;
  int index;
  long quota;       /* events this client may send */
  long sent, acked; /* acked: ok acks, each with a latency */
  long errors;      /* rejected or failed events */
  bool cut;         /* stopped by --max-seconds */
  double *lat;      /* ms, one per ack */
  int64_t *sent_ns; /* send times, a ring of --window slots */
  char err[256];    /* first problem */
  void *user;       /* the peer's own per-client state */
  pthread_t th;
} bclient_t;

static int64_t g_deadline_ns;
static pthread_barrier_t g_start, g_done, g_release;

static inline void bc_fail(bclient_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void bc_fail(bclient_t *c, const char *fmt, ...)
{
  va_list ap;
  c->errors++;
  if (c->err[0])
    return;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
}

/* May this client send another event? False once its quota is sent, or once
 * the deadline has passed (then the run is marked cut). */
static inline bool bc_may_send(bclient_t *c)
{
  if (c->sent >= c->quota)
    return false;
  if (mono_ns() >= g_deadline_ns) {
    c->cut = true;
    return false;
  }
  return true;
}

static inline bool bc_past_deadline(int64_t grace_ns) { return mono_ns() >= g_deadline_ns + grace_ns; }

/* Records the send of this client's next event (number c->sent). */
static inline void bc_sent(bclient_t *c) { c->sent_ns[c->sent++ % c->o->window] = mono_ns(); }

/* Records the ack of event n (acks in order: n == c->acked + c->errors). */
static inline void bc_acked_n(bclient_t *c, long n, int64_t now)
{
  c->lat[c->acked++] = (double)(now - c->sent_ns[n % c->o->window]) / 1e6;
}

/* Records an ack whose send time the peer kept itself. */
static inline void bc_acked_at(bclient_t *c, int64_t sent_ns, int64_t now)
{
  c->lat[c->acked++] = (double)(now - sent_ns) / 1e6;
}

/* Every client thread calls this when its work is done and before it closes
 * its connection: the run's time stops when the last one arrives, and the
 * connections stay open --hold-ms longer (so compare can read the server's
 * memory while its per-connection processes still exist). */
static inline void bc_finish(bclient_t *c)
{
  (void)c;
  pthread_barrier_wait(&g_done);
  pthread_barrier_wait(&g_release);
}

/* Events sent (or due, when the run was not cut) that got no ack at all. */
static inline long bc_missing(const bclient_t *c)
{
  long due = c->cut ? c->sent : c->quota;
  return due > c->acked + c->errors ? due - c->acked - c->errors : 0;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The nearest-rank percentile of sorted v. */
static inline double percentile(const double *v, size_t n, double q)
{
  if (n == 0)
    return NAN;
  size_t rank = (size_t)ceil(q * (double)n);
  return v[rank > 0 ? rank - 1 : 0];
}

static inline void bc_report(const bopts_t *o, bclient_t *cls, double secs)
{
  long acked = 0, errors = 0;
  bool cut = false;
  for (int i = 0; i < o->clients; i++) {
    acked += cls[i].acked;
    errors += cls[i].errors + bc_missing(&cls[i]);
    cut |= cls[i].cut;
    if (cls[i].err[0])
      fprintf(stderr, "%s: client %d: %s\n", o->prog, i, cls[i].err);
  }
  double *all = malloc(((size_t)acked + 1) * sizeof *all);
  size_t n = 0;
  for (int i = 0; i < o->clients; i++)
    for (long j = 0; j < cls[i].acked; j++)
      all[n++] = cls[i].lat[j];
  qsort(all, n, sizeof *all, cmp_double);
  printf("RESULT events=%ld errors=%ld secs=%.3f eps=%.0f p50=%.3f p99=%.3f p999=%.3f "
         "max=%.3f cut=%d rss_kb=%ld\n",
         acked, errors, secs, secs > 0 ? (double)acked / secs : 0.0, percentile(all, n, 0.50),
         percentile(all, n, 0.99), percentile(all, n, 0.999), n ? all[n - 1] : NAN, cut ? 1 : 0,
         self_hwm_kb());
  fflush(stdout);
  free(all);
}

/* Runs fn on o->clients threads started together; prints RESULT. Returns the
 * number of events that failed or went missing (0 is a clean run). */
static inline long run_clients(const bopts_t *o, void *(*fn)(void *), void *(*setup)(bclient_t *))
{
  bclient_t *cls = calloc((size_t)o->clients, sizeof *cls);
  unsigned n = (unsigned)o->clients + 1;
  pthread_barrier_init(&g_start, NULL, n);
  pthread_barrier_init(&g_done, NULL, n);
  pthread_barrier_init(&g_release, NULL, n);
  g_deadline_ns = INT64_MAX;
  for (int i = 0; i < o->clients; i++) {
    bclient_t *c = &cls[i];
    c->o = o;
    c->index = i;
    c->quota = o->events / o->clients + (i < o->events % o->clients);
    c->lat = malloc(((size_t)c->quota + 1) * sizeof *c->lat);
    c->sent_ns = calloc((size_t)o->window, sizeof *c->sent_ns);
    c->user = setup ? setup(c) : NULL; /* connects, before the clock starts */
    pthread_create(&c->th, NULL, fn, c);
  }
  g_deadline_ns = mono_ns() + (int64_t)(o->max_seconds * 1e9);
  pthread_barrier_wait(&g_start);
  int64_t t0 = mono_ns();
  pthread_barrier_wait(&g_done);
  double secs = (double)(mono_ns() - t0) / 1e9;
  bc_report(o, cls, secs);
  if (o->hold_ms > 0)
    sleep_ms(o->hold_ms);
  pthread_barrier_wait(&g_release);
  long bad = 0;
  for (int i = 0; i < o->clients; i++) {
    pthread_join(cls[i].th, NULL);
    bad += cls[i].errors + bc_missing(&cls[i]);
    free(cls[i].lat);
    free(cls[i].sent_ns);
  }
  free(cls);
  return bad;
}

/* Client threads start with this: wait for every other client. */
static inline void bc_start(bclient_t *c)
{
  (void)c;
  pthread_barrier_wait(&g_start);
}

/* This process's CPU time (user + system), in seconds. */
static inline double self_cpu_s(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* cpu0: self_cpu_s() when the replay started. */
static inline void replay_report(long records, double secs, double cpu0)
{
  printf("REPLAY records=%ld secs=%.3f rps=%.0f rss_kb=%ld cpu_s=%.3f\n", records, secs,
         secs > 0 ? (double)records / secs : 0.0, self_hwm_kb(), self_cpu_s() - cpu0);
  fflush(stdout);
}

#endif
