/* SPDX-License-Identifier: MIT
 *
 * loadgen.c: lx-loadgen, the benchmark load generator for lianxind.
 *
 * It publishes valid `visit` events over the ingest socket exactly as a
 * field app would and measures what a client sees: throughput, and for every
 * event the time from send to its ack, which the daemon sends only once the
 * event is durable. Two modes answer two questions:
 *
 *   sync  one client, one event in flight: the latency floor of a durable
 *         write (every ack waits for its own commit);
 *   pipe  N clients, each with W events in flight: the throughput the daemon
 *         reaches when it can batch commits.
 *
 * The events are `visit`s, or with --type appeal new `appeal`s (category
 * jobs, each its own appeal id): how bench/catchup lays down a backlog of
 * open appeals; or with --type mix a county's day in miniature, in cycles of
 * ten per client: two new appeals, each answered by a visit, four other
 * visits, and the first appeal resolved and its resident's feedback given
 * (every plugin of the sample config has work; half the appeals stay open).
 *
 * Every ack must be ok:true and name the id that was due (acks come back in
 * order per peer); anything else is counted, and the exit status is 0 only
 * when no ack was rejected or missing. Plain C11, pthreads, libzmq and
 * msgpack-c, so it can run on a machine with nothing else installed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <zmq.h>

enum { LG_SYNC, LG_PIPE };
enum { LG_VISIT, LG_APPEAL, LG_MIX };

typedef struct lg_conf {
  const char *ingest;
  const char *unit;
  int mode;
  int type;       /* LG_VISIT, LG_APPEAL or LG_MIX (--type) */
  bool uuid_ids;  /* --ids uuid */
  uint64_t seed;  /* the run prefix as a number, for --ids uuid */
  int clients;
  int window;
  long events;
  int size;       /* wanted bytes per msgpack event */
  int note_len;   /* note padding that gives that size */
  int timeout_ms; /* how long an ack may take before it counts as missing */
  char run[17];   /* random hex prefix that makes ids unique per run */
  char pub[41], sec[41], server[41]; /* CURVE keys (Z85), empty for plain sockets */
} lg_conf_t;

typedef struct lg_client {
  const lg_conf_t *conf;
  void *zctx;
  pthread_barrier_t *start;
  int index;
  long quota;       /* events this client sends */
  double *lat_ms;   /* one per acked event */
  int64_t *sent_ns; /* ring of send times, one per slot of the window */
  long acked, rejected, missing, dup;
  char error[256];  /* the first problem seen, for the report */
  pthread_t thread;
} lg_client_t;

static int64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
  msgpack_pack_str_with_body(pk, s, n);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
  pack_str(pk, s, strlen(s));
}

/* --- events -------------------------------------------------------------- */

/* splitmix64's finalizer: a bijection that scatters nearby inputs. */
static uint64_t scatter(uint64_t x)
{
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* Ids have a fixed width (run prefix, client, zero-padded counter: 31 bytes)
 * so that every event of a run has the same size. The default ids of one
 * client sort together, so a run inserts into the daemon's dedup index at
 * one place per client, as ULIDs (time-ordered) would; with --ids uuid each
 * is a UUIDv4-shaped string (36 bytes) scattered over the index, as random
 * UUIDs from field apps are. Either is a function of (run, client, n), so
 * an ack is checked and a mix event names an earlier appeal by it. */
static int make_id(char *out, size_t cap, const lg_conf_t *conf, int client, long n)
{
  if (!conf->uuid_ids)
    return snprintf(out, cap, "%s-%03d-%010ld", conf->run, client, n);
  uint64_t a = scatter(conf->seed ^ ((uint64_t)client << 48) ^ (uint64_t)n), b = scatter(a);
  return snprintf(out, cap, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
                  (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
                  ((unsigned)(b >> 48) & 0x3fff) | 0x8000, (unsigned long long)(b & 0xffffffffffffULL));
}

/* What event n of a --type mix cycle is, and the event whose appeal it names
 * (its own for an appeal). */
static const struct { const char *type; int appeal_at; } mix[10] = {
  {"appeal", 0}, {"visit", -1}, {"visit", 99}, {"visit", 99}, {"visit", 99},
  {"appeal", 0}, {"visit", -1}, {"visit", 99}, {"resolution", -8}, {"feedback", -9},
};

/* Packs event n of a client into sb (which is cleared first). Every event
 * has a household and ends with its note (or summary), which pads it to
 * --size; a visit that answers an appeal names it. */
static void make_event(msgpack_sbuffer *sb, const lg_conf_t *conf, int client, long n,
                       const char *note)
{
  char id[64], household[32], appeal[68] = "";
  msgpack_packer pk;
  const char *type = conf->type == LG_APPEAL ? "appeal" : "visit";
  if (conf->type == LG_MIX) {
    int at = mix[n % 10].appeal_at;
    type = mix[n % 10].type;
    if (at != 99 && n + at >= 0) {
      make_id(id, sizeof id, conf, client, n + at);
      snprintf(appeal, sizeof appeal, "ap-%s", id);
    }
  } else if (conf->type == LG_APPEAL) {
    make_id(id, sizeof id, conf, client, n);
    snprintf(appeal, sizeof appeal, "ap-%s", id);
  }
  bool is_appeal = strcmp(type, "appeal") == 0, is_visit = strcmp(type, "visit") == 0;
  bool is_res = strcmp(type, "resolution") == 0;
  msgpack_sbuffer_clear(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  make_id(id, sizeof id, conf, client, n);
  snprintf(household, sizeof household, "hh-%06ld", n % 1000000);
  msgpack_pack_map(&pk, 7);
  pack_cstr(&pk, "v");
  msgpack_pack_uint64(&pk, 1);
  pack_cstr(&pk, "id");
  pack_cstr(&pk, id);
  pack_cstr(&pk, "type");
  pack_cstr(&pk, type);
  pack_cstr(&pk, "at");
  msgpack_pack_uint64(&pk, (uint64_t)wall_ms());
  pack_cstr(&pk, "unit");
  pack_cstr(&pk, conf->unit);
  pack_cstr(&pk, "actor");
  pack_cstr(&pk, "loadgen");
  pack_cstr(&pk, "body");
  msgpack_pack_map(&pk, (is_appeal ? 4 : is_visit ? 3 : 2) + (!is_appeal && appeal[0]));
  if (appeal[0]) {
    pack_cstr(&pk, "appeal");
    pack_cstr(&pk, appeal);
  }
  if (is_appeal) {
    pack_cstr(&pk, "category");
    pack_cstr(&pk, "jobs");
  }
  if (is_visit) {
    pack_cstr(&pk, "mode");
    pack_cstr(&pk, "periodic");
  }
  if (is_appeal || is_visit) {
    pack_cstr(&pk, "household");
    pack_cstr(&pk, household);
  } else if (is_res) {
    pack_cstr(&pk, "outcome");
    pack_cstr(&pk, "resolved");
  } else {
    pack_cstr(&pk, "satisfied");
    msgpack_pack_true(&pk);
  }
  pack_cstr(&pk, is_appeal ? "summary" : "note");
  pack_str(&pk, note, (size_t)conf->note_len);
}

/* Chooses the note length that brings an event to conf->size bytes, taking
 * into account that msgpack's string header grows with the length. Returns
 * the resulting event size. */
static size_t size_events(lg_conf_t *conf)
{
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  conf->note_len = 0;
  make_event(&sb, conf, 0, 0, "");
  size_t base = sb.size - 1; /* without the note's 1-byte fixstr header */
  static const struct { int hdr; long max; } forms[] = {{1, 31}, {2, 255}, {3, 65535}};
  for (size_t i = 0; i < 3; i++) {
    long n = (long)conf->size - (long)base - forms[i].hdr;
    if (n >= 0 && n <= forms[i].max) {
      conf->note_len = (int)n;
      break;
    }
  }
  char *note = malloc((size_t)conf->note_len + 1);
  memset(note, 'x', (size_t)conf->note_len);
  make_event(&sb, conf, 0, 0, note);
  size_t size = sb.size;
  free(note);
  msgpack_sbuffer_destroy(&sb);
  return size;
}

/* --- one client ---------------------------------------------------------- */

static void client_fail(lg_client_t *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Keeps the first problem a client sees; later ones are only counted. */
static void client_fail(lg_client_t *cl, const char *fmt, ...)
{
  va_list ap;
  if (cl->error[0] != '\0')
    return;
  va_start(ap, fmt);
  vsnprintf(cl->error, sizeof cl->error, fmt, ap);
  va_end(ap);
}

/* Checks one ack: a map with ok:true and the id that was due. */
static void check_ack(lg_client_t *cl, const void *data, size_t len, long n)
{
  msgpack_unpacked u;
  size_t off = 0;
  char want[64];
  bool ok = false, dup = false, id_ok = false;
  int wn = make_id(want, sizeof want, cl->conf, cl->index, n);
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_MAP) {
    const msgpack_object_map *m = &u.data.via.map;
    const msgpack_object *code = NULL, *err = NULL;
    for (uint32_t i = 0; i < m->size; i++) {
      const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
      if (k->type != MSGPACK_OBJECT_STR)
        continue;
      const char *kp = k->via.str.ptr;
      uint32_t kn = k->via.str.size;
      if (kn == 2 && memcmp(kp, "ok", 2) == 0)
        ok = v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
      else if (kn == 3 && memcmp(kp, "dup", 3) == 0)
        dup = v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
      else if (kn == 2 && memcmp(kp, "id", 2) == 0)
        id_ok = v->type == MSGPACK_OBJECT_STR && v->via.str.size == (uint32_t)wn &&
                memcmp(v->via.str.ptr, want, (size_t)wn) == 0;
      else if (kn == 4 && memcmp(kp, "code", 4) == 0 && v->type == MSGPACK_OBJECT_STR)
        code = v;
      else if (kn == 5 && memcmp(kp, "error", 5) == 0 && v->type == MSGPACK_OBJECT_STR)
        err = v;
    }
    if (!ok)
      client_fail(cl, "rejected: %.*s: %.*s", code ? (int)code->via.str.size : 1,
                  code ? code->via.str.ptr : "?", err ? (int)err->via.str.size : 1,
                  err ? err->via.str.ptr : "?");
    else if (!id_ok)
      client_fail(cl, "ack out of order: expected id %s", want);
  } else {
    client_fail(cl, "ack is not a msgpack map");
  }
  msgpack_unpacked_destroy(&u);
  if (ok && id_ok)
    cl->dup += dup;
  else
    cl->rejected++;
}

/* Takes one ack: waits up to the timeout when block is set, otherwise only
 * takes one that is already here. False when there is none. Asking the socket
 * first and polling only when it is empty keeps a pipelining client from
 * making a poll call per ack. */
static bool recv_ack(lg_client_t *cl, void *s, long n, bool block)
{
  zmq_msg_t m;
  zmq_msg_init(&m);
  if (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) < 0) {
    zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
    if (!block || errno != EAGAIN || zmq_poll(&item, 1, cl->conf->timeout_ms) <= 0 ||
        zmq_msg_recv(&m, s, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m);
      return false;
    }
  }
  int64_t now = mono_ns();
  check_ack(cl, zmq_msg_data(&m), zmq_msg_size(&m), n);
  zmq_msg_close(&m);
  cl->lat_ms[cl->acked] = (double)(now - cl->sent_ns[n % cl->conf->window]) / 1e6;
  cl->acked++;
  return true;
}

static void *client_run(void *arg)
{
  lg_client_t *cl = arg;
  const lg_conf_t *conf = cl->conf;
  void *s = zmq_socket(cl->zctx, ZMQ_DEALER);
  int zero = 0, hwm = conf->window + 64;
  char *note = malloc((size_t)conf->note_len + 1);
  msgpack_sbuffer sb;
  long sent = 0;
  memset(note, 'x', (size_t)conf->note_len);
  msgpack_sbuffer_init(&sb);
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
  if (conf->server[0]) {
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, conf->server, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, conf->pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, conf->sec, 40);
  }
  bool connected = zmq_connect(s, conf->ingest) == 0;
  if (!connected)
    client_fail(cl, "connect %s: %s", conf->ingest, zmq_strerror(errno));
  pthread_barrier_wait(cl->start);
  while (connected) {
    /* Fill the window, then take one ack; in sync mode the window is 1. */
    while (sent < cl->quota && sent - cl->acked < conf->window) {
      make_event(&sb, conf, cl->index, sent, note);
      cl->sent_ns[sent % conf->window] = mono_ns();
      if (zmq_send(s, sb.data, sb.size, 0) < 0)
        break;
      sent++;
    }
    /* Wait for one ack, then take every ack already here before sending
     * again, so that sends and receives go in bursts as a real pipelining
     * client's would. */
    if (cl->acked == sent || !recv_ack(cl, s, cl->acked, true))
      break;
    while (cl->acked < sent && recv_ack(cl, s, cl->acked, false))
      ;
  }
  cl->missing = cl->quota - cl->acked;
  if (cl->missing > 0)
    client_fail(cl, "no ack within %d ms after %ld acks", conf->timeout_ms, cl->acked);
  msgpack_sbuffer_destroy(&sb);
  free(note);
  zmq_close(s);
  return NULL;
}

/* --- the run --------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The nearest-rank percentile of sorted v. */
static double percentile(const double *v, size_t n, double q)
{
  if (n == 0)
    return NAN;
  size_t rank = (size_t)ceil(q * (double)n);
  return v[rank > 0 ? rank - 1 : 0];
}

static void report(const lg_conf_t *conf, size_t ev_size, lg_client_t *cls, double secs)
{
  long acked = 0, rejected = 0, missing = 0, dup = 0;
  for (int i = 0; i < conf->clients; i++) {
    acked += cls[i].acked;
    rejected += cls[i].rejected;
    missing += cls[i].missing;
    dup += cls[i].dup;
  }
  double *all = malloc(((size_t)acked + 1) * sizeof *all);
  size_t n = 0;
  for (int i = 0; i < conf->clients; i++)
    for (long j = 0; j < cls[i].acked; j++)
      all[n++] = cls[i].lat_ms[j];
  qsort(all, n, sizeof *all, cmp_double);
  printf("mode        %s\n", conf->mode == LG_SYNC ? "sync" : "pipe");
  printf("clients     %d\n", conf->clients);
  printf("window      %d\n", conf->window);
  printf("event size  %zu bytes\n", ev_size);
  printf("events      %ld\n", acked - rejected);
  printf("seconds     %.3f\n", secs);
  printf("events/s    %.0f\n", secs > 0 ? (double)(acked - rejected) / secs : 0.0);
  printf("latency ms  p50 %.3f  p99 %.3f  p999 %.3f  max %.3f\n", percentile(all, n, 0.50),
         percentile(all, n, 0.99), percentile(all, n, 0.999), n ? all[n - 1] : NAN);
  printf("rejected    %ld\n", rejected);
  printf("missing     %ld\n", missing);
  if (dup > 0)
    printf("dup         %ld\n", dup);
  for (int i = 0; i < conf->clients; i++)
    if (cls[i].error[0] != '\0')
      fprintf(stderr, "lx-loadgen: client %d: %s\n", i, cls[i].error);
  free(all);
}

/* Starts the clients together and returns the wall time until the last
 * one is done. */
static double run_clients(lg_conf_t *conf, lg_client_t *cls, void *zctx)
{
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)conf->clients + 1);
  for (int i = 0; i < conf->clients; i++) {
    lg_client_t *cl = &cls[i];
    cl->conf = conf;
    cl->zctx = zctx;
    cl->start = &start;
    cl->index = i;
    cl->quota = conf->events / conf->clients + (i < conf->events % conf->clients);
    cl->lat_ms = malloc(((size_t)cl->quota + 1) * sizeof *cl->lat_ms);
    cl->sent_ns = malloc((size_t)conf->window * sizeof *cl->sent_ns);
    pthread_create(&cl->thread, NULL, client_run, cl);
  }
  pthread_barrier_wait(&start);
  int64_t t0 = mono_ns();
  for (int i = 0; i < conf->clients; i++)
    pthread_join(cls[i].thread, NULL);
  double secs = (double)(mono_ns() - t0) / 1e9;
  pthread_barrier_destroy(&start);
  return secs;
}

static void new_run_id(lg_conf_t *conf)
{
  unsigned char b[8];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
    uint64_t x = (uint64_t)mono_ns() ^ ((uint64_t)getpid() << 32);
    memcpy(b, &x, sizeof b);
  }
  for (size_t i = 0; i < sizeof b; i++)
    snprintf(conf->run + 2 * i, 3, "%02x", b[i]);
  conf->seed = strtoull(conf->run, NULL, 16);
}

/* --- options --------------------------------------------------------------- */

static const char usage[] =
  "usage: lx-loadgen --ingest EP [--mode sync|pipe] [--clients N] [--window W]\n"
  "                  [--events TOTAL] [--size BYTES] [--unit PATH] [--timeout MS]\n"
  "                  [--type visit|appeal|mix] [--ids counter|uuid]\n"
  "\n"
  "Publishes valid visit events to lianxind and reports throughput and ack\n"
  "latency (send to durable ack).\n"
  "\n"
  "  --mode sync      one client, one event in flight (--clients, --window ignored)\n"
  "  --mode pipe      N clients, each keeping W events in flight (default)\n"
  "  --clients N      pipe mode clients, each its own DEALER (default 4)\n"
  "  --window W       pipe mode events in flight per client (default 256)\n"
  "  --events TOTAL   events in all (default 200000)\n"
  "  --size BYTES     msgpack size of each event, padded with a note (default 300)\n"
  "  --unit PATH      community the events happen at (default qd.hx.dy)\n"
  "  --type T         visit (default); appeal: each event a new open appeal; or\n"
  "                   mix: in tens, 2 appeals, 6 visits (2 answering them),\n"
  "                   a resolution and a feedback (sizes about --size)\n"
  "  --ids counter    ids that sort by client and counter, like ULIDs (default);\n"
  "  --ids uuid       UUIDv4-shaped ids, each at a random place in the dedup index\n"
  "  --timeout MS     an ack later than this counts as missing (default 10000)\n"
  "  --key FILE       CURVE: this client's NAME.key (lianxin keygen), with\n"
  "  --server-key FILE  the daemon's NAME.pub: measures ingest with CURVE on\n"
  "\n"
  "Exit status: 0 when every ack was ok:true and none was missing; 1 otherwise;\n"
  "2 on usage errors.\n";

static bool opt_long(const char *s, long min, long max, long *out)
{
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
    return false;
  *out = v;
  return true;
}

/* Reads the first (or, with line 2, the second) line of a key file. */
static bool read_key_line(const char *path, int line, char out[41])
{
  char buf[128] = "";
  FILE *f = fopen(path, "r");
  bool ok = f != NULL;
  for (int i = 0; ok && i < line; i++)
    ok = fgets(buf, sizeof buf, f) != NULL;
  if (f)
    fclose(f);
  buf[strcspn(buf, "\r\n")] = 0;
  if (!ok || strlen(buf) != 40)
    return false;
  memcpy(out, buf, 41);
  return true;
}

static int parse_args(lg_conf_t *conf, int argc, char **argv)
{
  static const struct option opts[] = {
    {"ingest", required_argument, NULL, 'i'}, {"mode", required_argument, NULL, 'm'},
    {"clients", required_argument, NULL, 'c'}, {"window", required_argument, NULL, 'w'},
    {"events", required_argument, NULL, 'n'}, {"size", required_argument, NULL, 's'},
    {"unit", required_argument, NULL, 'u'}, {"timeout", required_argument, NULL, 't'},
    {"type", required_argument, NULL, 'T'}, {"key", required_argument, NULL, 'k'}, {"server-key", required_argument, NULL, 'K'},
    {"ids", required_argument, NULL, 'I'},
    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
  };
  long v = 0;
  int o;
  while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    bool ok = true;
    switch (o) {
    case 'i': conf->ingest = optarg; break;
    case 'u': conf->unit = optarg; break;
    case 'T':
      ok = strcmp(optarg, "visit") == 0 || strcmp(optarg, "appeal") == 0 ||
           strcmp(optarg, "mix") == 0;
      conf->type = strcmp(optarg, "appeal") == 0 ? LG_APPEAL
                   : strcmp(optarg, "mix") == 0  ? LG_MIX : LG_VISIT;
      break;
    case 'I':
      ok = strcmp(optarg, "counter") == 0 || strcmp(optarg, "uuid") == 0;
      conf->uuid_ids = strcmp(optarg, "uuid") == 0;
      break;
    case 'm':
      ok = strcmp(optarg, "sync") == 0 || strcmp(optarg, "pipe") == 0;
      conf->mode = strcmp(optarg, "sync") == 0 ? LG_SYNC : LG_PIPE;
      break;
    case 'c': ok = opt_long(optarg, 1, 1024, &v); conf->clients = (int)v; break;
    case 'w': ok = opt_long(optarg, 1, 65536, &v); conf->window = (int)v; break;
    case 'n': ok = opt_long(optarg, 1, 1000000000, &v); conf->events = v; break;
    case 's': ok = opt_long(optarg, 1, 60000, &v); conf->size = (int)v; break;
    case 't': ok = opt_long(optarg, 1, 3600000, &v); conf->timeout_ms = (int)v; break;
    case 'k': ok = read_key_line(optarg, 1, conf->pub) && read_key_line(optarg, 2, conf->sec); break;
    case 'K': ok = read_key_line(optarg, 1, conf->server); break;
    case 'h': fputs(usage, stdout); exit(0);
    default: ok = false; break;
    }
    if (!ok) {
      if (o != '?')
        fprintf(stderr, "lx-loadgen: bad value '%s'\n", optarg);
      fputs("Try 'lx-loadgen --help'.\n", stderr);
      return -1;
    }
  }
  if (!conf->server[0] != !conf->pub[0]) {
    fputs("lx-loadgen: CURVE needs both --key and --server-key\n", stderr);
    return -1;
  }
  if (conf->ingest == NULL || optind < argc) {
    fputs(usage, stderr);
    return -1;
  }
  if (conf->mode == LG_SYNC)
    conf->clients = conf->window = 1;
  if (conf->clients > conf->events)
    conf->clients = (int)conf->events;
  return 0;
}

int main(int argc, char **argv)
{
  lg_conf_t conf = {
    .unit = "qd.hx.dy", .mode = LG_PIPE, .clients = 4, .window = 256,
    .events = 200000, .size = 300, .timeout_ms = 10000,
  };
  if (parse_args(&conf, argc, argv) < 0)
    return 2;
  new_run_id(&conf);
  size_t ev_size = size_events(&conf);
  void *zctx = zmq_ctx_new();
  lg_client_t *cls = calloc((size_t)conf.clients, sizeof *cls);
  if (zctx == NULL || cls == NULL) {
    fprintf(stderr, "lx-loadgen: out of resources\n");
    return 2;
  }
  double secs = run_clients(&conf, cls, zctx);
  report(&conf, ev_size, cls, secs);
  long bad = 0;
  for (int i = 0; i < conf.clients; i++) {
    bad += cls[i].rejected + cls[i].missing;
    free(cls[i].lat_ms);
    free(cls[i].sent_ns);
  }
  free(cls);
  zmq_ctx_term(zctx);
  return bad == 0 ? 0 : 1;
}
