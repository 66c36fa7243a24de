/* SPDX-License-Identifier: MIT
 *
 * publish.c: `lianxin publish`, which sends events to the ingest endpoint
 * and prints one ack per input event as a JSON line, in input order.
 *
 * The input (a file or stdin) is one JSON object, an array of objects, or
 * JSON Lines. Up to --window events are in flight at once, so a large file
 * goes at the daemon's pace rather than one round trip per event, while a
 * person typing events sees each ack as soon as it comes. An event that
 * cannot be sent (bad JSON, too big) gets a local rejection shaped like the
 * daemon's, printed in its turn.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <msgpack.h>
#include <sodium.h>
#include <zmq.h>

#include "cli.h"
#include "json_mp.h"

#define DEFAULT_WINDOW 256
#define MAX_WINDOW 65536
/* The transport may disconnect a peer that sends more than this, which would
 * lose every ack in flight, so larger events are refused before sending. */
#define FRAME_MAX (1024 * 1024)
#define MSG_MAX (64 * 1024)

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- reading the input --------------------------------------------------- */

/* A buffered reader over a file descriptor. It is ours rather than stdio's
 * so that the pipeline can poll the descriptor and know whether a whole line
 * is already buffered: a person typing events sees each ack at once. */
typedef struct pub_reader {
  int fd;
  char *buf;
  size_t off, len, cap;
  bool eof;
  long line; /* number of the line that starts at off, from 1 */
} pub_reader_t;

/* Reads once. Returns 0 (setting eof when the input has ended) or -1. */
static int rd_fill(pub_reader_t *rd)
{
  if (rd->off > 0) {
    memmove(rd->buf, rd->buf + rd->off, rd->len - rd->off);
    rd->len -= rd->off;
    rd->off = 0;
  }
  if (rd->len == rd->cap) {
    size_t cap = rd->cap ? rd->cap * 2 : 65536;
    char *b = realloc(rd->buf, cap);
    if (b == NULL)
      return -1;
    rd->buf = b;
    rd->cap = cap;
  }
  ssize_t n;
  do
    n = read(rd->fd, rd->buf + rd->len, rd->cap - rd->len);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -1;
  rd->eof = n == 0;
  rd->len += (size_t)n;
  return 0;
}

/* Finds the line at off: its text without "\n" or "\r\n" in *p and *n, and
 * the bytes it spans in *adv. False when no whole line is buffered yet; at
 * the end of the input an unterminated last line counts. */
static bool rd_peek(const pub_reader_t *rd, const char **p, size_t *n, size_t *adv)
{
  size_t avail = rd->len - rd->off;
  if (avail == 0)
    return false;
  const char *s = rd->buf + rd->off;
  const char *nl = memchr(s, '\n', avail);
  if (nl == NULL && !rd->eof)
    return false;
  *adv = nl != NULL ? (size_t)(nl - s) + 1 : avail;
  *n = nl != NULL ? (size_t)(nl - s) : avail;
  if (*n > 0 && s[*n - 1] == '\r')
    (*n)--;
  *p = s;
  return true;
}

static bool blank(const char *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
      return false;
  return true;
}

/* The input is one JSON object, one array of objects, or JSON Lines; which
 * one is decided from the first non-blank line (SRC_DETECT). */
enum { SRC_DETECT, SRC_LINES, SRC_ARRAY, SRC_DONE };
enum { SRC_AGAIN = -1, SRC_END = 0, SRC_ITEM = 1 };

typedef struct pub_src {
  pub_reader_t rd;
  int mode;
  cJSON *doc; /* SRC_ARRAY: what is left of the array */
  long item;  /* SRC_ARRAY: number of the last item taken */
} pub_src_t;

typedef struct pub_item {
  cJSON *ev;      /* the event, or NULL when err says why it cannot be sent */
  char where[40]; /* "line 7" or "item 3", for messages */
  char err[200];
} pub_item_t;

static int src_lines(pub_src_t *s, pub_item_t *it)
{
  const char *p;
  size_t n, adv, eo;
  for (;;) {
    if (!rd_peek(&s->rd, &p, &n, &adv))
      return s->rd.eof ? SRC_END : SRC_AGAIN;
    long line = s->rd.line++;
    s->rd.off += adv; /* p stays valid until the next rd_fill */
    if (blank(p, n))
      continue;
    snprintf(it->where, sizeof it->where, "line %ld", line);
    it->ev = lx_json_parse(p, n, &eo);
    if (it->ev == NULL) {
      snprintf(it->err, sizeof it->err, "line %ld: invalid JSON at column %zu", line, eo + 1);
    } else if (!cJSON_IsObject(it->ev)) {
      snprintf(it->err, sizeof it->err, "line %ld: not a JSON object", line);
      cJSON_Delete(it->ev);
      it->ev = NULL;
    }
    return SRC_ITEM;
  }
}

static int src_array(pub_src_t *s, pub_item_t *it)
{
  cJSON *e = s->doc->child;
  if (e == NULL) {
    cJSON_Delete(s->doc);
    s->doc = NULL;
    s->mode = SRC_DONE;
    return SRC_END;
  }
  cJSON_DetachItemViaPointer(s->doc, e);
  snprintf(it->where, sizeof it->where, "item %ld", ++s->item);
  if (!cJSON_IsObject(e)) {
    snprintf(it->err, sizeof it->err, "item %ld: not a JSON object", s->item);
    cJSON_Delete(e);
    e = NULL;
  }
  it->ev = e;
  return SRC_ITEM;
}

/* Parses all remaining input as one document (an object or an array). A
 * failed object parse falls back to JSON Lines whose first line is broken. */
static int src_document(pub_src_t *s, pub_item_t *it, char first)
{
  const char *text = s->rd.buf + s->rd.off, *ls = text;
  size_t len = s->rd.len - s->rd.off, eo;
  long line = s->rd.line;
  cJSON *doc = lx_json_parse(text, len, &eo);
  if (doc == NULL && first == '{') {
    s->mode = SRC_LINES;
    return src_lines(s, it);
  }
  s->mode = SRC_DONE;
  if (doc == NULL) {
    for (size_t i = 0; i < eo; i++)
      if (text[i] == '\n') {
        line++;
        ls = text + i + 1;
      }
    snprintf(it->where, sizeof it->where, "line %ld", line);
    snprintf(it->err, sizeof it->err, "line %ld: invalid JSON at column %zu", line,
             (size_t)(text + eo - ls) + 1);
  }
  s->rd.off = s->rd.len;
  if (doc == NULL || cJSON_IsObject(doc)) {
    snprintf(it->where, sizeof it->where, "line %ld", line);
    it->ev = doc;
    return SRC_ITEM;
  }
  s->doc = doc;
  s->mode = SRC_ARRAY;
  return src_array(s, it);
}

static int src_detect(pub_src_t *s, pub_item_t *it)
{
  const char *p;
  size_t n, adv, eo, i = 0;
  for (;;) {
    if (!rd_peek(&s->rd, &p, &n, &adv))
      return s->rd.eof ? SRC_END : SRC_AGAIN;
    if (!blank(p, n))
      break;
    s->rd.line++;
    s->rd.off += adv;
  }
  while (p[i] == ' ' || p[i] == '\t')
    i++;
  char first = p[i];
  if (first == '{') {
    cJSON *j = lx_json_parse(p, n, &eo);
    if (j != NULL)
      first = '\0'; /* a whole object on the first line: JSON Lines */
    cJSON_Delete(j);
  }
  if (first != '{' && first != '[') {
    s->mode = SRC_LINES;
    return src_lines(s, it);
  }
  if (!s->rd.eof)
    return SRC_AGAIN; /* a document spanning lines: wait for all of it */
  return src_document(s, it, first);
}

/* Takes the next input item. Returns SRC_ITEM, SRC_END, or SRC_AGAIN when
 * more input must be read first. */
static int src_next(pub_src_t *s, pub_item_t *it)
{
  it->ev = NULL;
  it->where[0] = it->err[0] = '\0';
  switch (s->mode) {
  case SRC_DETECT: return src_detect(s, it);
  case SRC_LINES: return src_lines(s, it);
  case SRC_ARRAY: return src_array(s, it);
  default: return SRC_END;
  }
}

/* --- the pipeline -------------------------------------------------------- */

/* One input event awaiting its turn to print, in input order. */
typedef struct pub_slot {
  cJSON *local; /* a reply made here for an event that was never sent */
  char *id;     /* the sent event's id, to check its ack against */
} pub_slot_t;

typedef struct pub_run {
  cli_t *c;
  void *sock;
  pub_src_t src;
  pub_slot_t *q; /* ring buffer */
  size_t qcap, qhead, qn;
  size_t inflight, window;
  bool fill, src_done;
  int64_t waiting_since; /* monotonic ms since the oldest ack has been due */
  long rejected;
} pub_run_t;

static int q_push(pub_run_t *run, cJSON *local, char *id)
{
  if (run->qn == run->qcap) {
    size_t cap = run->qcap ? run->qcap * 2 : 512;
    pub_slot_t *q = malloc(cap * sizeof *q);
    if (q == NULL) {
      cli_err("out of memory");
      cJSON_Delete(local);
      free(id);
      return -1;
    }
    for (size_t i = 0; i < run->qn; i++)
      q[i] = run->q[(run->qhead + i) % run->qcap];
    free(run->q);
    run->q = q;
    run->qcap = cap;
    run->qhead = 0;
  }
  run->q[(run->qhead + run->qn++) % run->qcap] = (pub_slot_t){local, id};
  return 0;
}

static void q_pop(pub_run_t *run)
{
  pub_slot_t *sl = &run->q[run->qhead];
  cJSON_Delete(sl->local);
  free(sl->id);
  run->qhead = (run->qhead + 1) % run->qcap;
  run->qn--;
}

/* A reply for an event this client refused to send, shaped like the
 * daemon's rejections so that scripts handle both alike. */
static cJSON *local_reject(const char *code, const cJSON *ev, const char *msg)
{
  cJSON *r = cJSON_CreateObject();
  const cJSON *id = ev != NULL ? cJSON_GetObjectItemCaseSensitive(ev, "id") : NULL;
  cJSON_AddFalseToObject(r, "ok");
  if (cJSON_IsString(id))
    cJSON_AddStringToObject(r, "id", id->valuestring);
  else
    cJSON_AddNullToObject(r, "id");
  cJSON_AddStringToObject(r, "code", code);
  cJSON_AddStringToObject(r, "error", msg);
  return r;
}

/* Prints the local rejections at the front of the queue: their turn has come. */
static void pub_flush_locals(pub_run_t *run)
{
  while (run->qn > 0 && run->q[run->qhead].local != NULL) {
    print_json(run->q[run->qhead].local, false);
    run->rejected++;
    q_pop(run);
  }
}

/* --fill: completes the envelope so that a person can type small events. */
static void pub_fill(cJSON *ev)
{
  if (cJSON_GetObjectItemCaseSensitive(ev, "v") == NULL)
    cJSON_AddNumberToObject(ev, "v", 1);
  if (cJSON_GetObjectItemCaseSensitive(ev, "id") == NULL) {
    unsigned char b[16];
    char hex[33], uuid[37];
    randombytes_buf(b, sizeof b);
    b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
    b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
    lx_hex(hex, b, sizeof b);
    snprintf(uuid, sizeof uuid, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
    cJSON_AddStringToObject(ev, "id", uuid);
  }
  if (cJSON_GetObjectItemCaseSensitive(ev, "at") == NULL)
    cJSON_AddNumberToObject(ev, "at", (double)now_ms());
}

/* Sends one item, or queues its local rejection. Consumes it->ev. Returns 0,
 * or -1 on a transport error (already reported). */
static int pub_send(pub_run_t *run, pub_item_t *it)
{
  char err[160], msg[300];
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int rc;
  if (it->ev == NULL)
    return q_push(run, local_reject("E_DECODE", NULL, it->err), NULL);
  if (run->fill)
    pub_fill(it->ev);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(it->ev, "id");
  if (lx_json_pack(&pk, it->ev, err, sizeof err) < 0) {
    snprintf(msg, sizeof msg, "%s: %s", it->where, err);
    rc = q_push(run, local_reject("E_DECODE", it->ev, msg), NULL);
  } else if (sb.size > FRAME_MAX) {
    snprintf(msg, sizeof msg, "%s: the event is %zu bytes; a message is at most %d", it->where,
             sb.size, MSG_MAX);
    rc = q_push(run, local_reject("E_TOO_BIG", it->ev, msg), NULL);
  } else if (zmq_send(run->sock, sb.data, sb.size, 0) < 0) {
    cli_err("send to %s: %s", run->c->ingest, zmq_strerror(errno));
    rc = -1;
  } else {
    if (run->inflight++ == 0)
      run->waiting_since = mono_ms();
    rc = q_push(run, NULL, cJSON_IsString(id) ? strdup(id->valuestring) : NULL);
  }
  msgpack_sbuffer_destroy(&sb);
  cJSON_Delete(it->ev);
  it->ev = NULL;
  return rc;
}

/* Prints one ack: the reply of the oldest event in flight, since the daemon
 * answers each peer in order. */
static int pub_ack(pub_run_t *run, const void *data, size_t len)
{
  char err[160];
  pub_flush_locals(run);
  if (run->inflight == 0) {
    cli_err("unexpected reply from %s", run->c->ingest);
    return -1;
  }
  const pub_slot_t *sl = &run->q[run->qhead];
  cJSON *ack = lx_mp_buf_to_json(data, len, err, sizeof err);
  if (ack == NULL || !cJSON_IsObject(ack)) {
    cli_err("ack from %s is not a msgpack map%s%s", run->c->ingest, ack ? "" : ": ", ack ? "" : err);
    cJSON_Delete(ack);
    return -1;
  }
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(ack, "id");
  if (sl->id != NULL && cJSON_IsString(id) && strcmp(sl->id, id->valuestring) != 0) {
    cli_err("the ack for id '%s' came where the one for '%s' was due", id->valuestring, sl->id);
    cJSON_Delete(ack);
    return -1;
  }
  if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ack, "ok")))
    run->rejected++;
  print_json(ack, false);
  cJSON_Delete(ack);
  q_pop(run);
  run->inflight--;
  run->waiting_since = mono_ms();
  return 0;
}

/* Prints every ack already received. */
static int pub_drain(pub_run_t *run)
{
  for (;;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, run->sock, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m);
      if (errno == EAGAIN || errno == EINTR)
        return 0;
      cli_err("receive from %s: %s", run->c->ingest, zmq_strerror(errno));
      return -1;
    }
    int rc = pub_ack(run, zmq_msg_data(&m), zmq_msg_size(&m));
    zmq_msg_close(&m);
    if (rc < 0)
      return -1;
  }
}

/* Waits for acks and, when want_input, for more input. Times out only while
 * an ack is due, so a person may pause between events as long as they like. */
static int pub_wait(pub_run_t *run, bool want_input)
{
  /* The input is polled only when wanted: poll(2) reports POLLHUP even for
   * an fd that asks for no events, which would make this loop spin. */
  zmq_pollitem_t items[2] = {
    {run->sock, 0, run->inflight > 0 ? ZMQ_POLLIN : 0, 0},
    {NULL, run->src.rd.fd, ZMQ_POLLIN, 0},
  };
  long timeout = -1;
  if (run->inflight > 0) {
    timeout = (long)(run->waiting_since + run->c->timeout_ms - mono_ms());
    timeout = timeout < 0 ? 0 : timeout;
  }
  fflush(stdout);
  if (zmq_poll(items, want_input ? 2 : 1, timeout) < 0 && errno != EINTR) {
    cli_err("poll: %s", zmq_strerror(errno));
    return -1;
  }
  /* A pipe whose writer has gone reports POLLHUP alone, which zmq_poll
   * passes on as POLLERR; the read then sees the end of the input. */
  if (want_input && (items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) &&
      rd_fill(&run->src.rd) < 0) {
    cli_err("read input: %s", strerror(errno));
    return -1;
  }
  if ((items[0].revents & ZMQ_POLLIN) && pub_drain(run) < 0)
    return -1;
  if (run->inflight > 0 && mono_ms() - run->waiting_since >= run->c->timeout_ms) {
    cli_err("no ack from %s within %d ms (%zu events in flight)", run->c->ingest,
            run->c->timeout_ms, run->inflight);
    return -1;
  }
  return 0;
}

static int pub_loop(pub_run_t *run)
{
  pub_item_t it;
  for (;;) {
    pub_flush_locals(run);
    if (run->src_done && run->qn == 0)
      return 0;
    bool want_input = false;
    if (!run->src_done && run->inflight < run->window) {
      int rc = src_next(&run->src, &it);
      if (rc == SRC_ITEM) {
        if (pub_send(run, &it) < 0)
          return -1;
        continue;
      }
      if (rc == SRC_END) {
        run->src_done = true;
        continue;
      }
      want_input = true;
    }
    if (pub_wait(run, want_input) < 0)
      return -1;
  }
}

static void pub_run_free(pub_run_t *run)
{
  while (run->qn > 0)
    q_pop(run);
  free(run->q);
  cJSON_Delete(run->src.doc);
  free(run->src.rd.buf);
  if (run->src.rd.fd > 0)
    close(run->src.rd.fd);
  if (run->sock != NULL)
    zmq_close(run->sock);
}

int cmd_publish(cli_t *c, int argc, char **argv)
{
  static const struct option own[] = {
    {"window", required_argument, NULL, OPT_WINDOW},
    {"fill", no_argument, NULL, OPT_FILL},
    {NULL, 0, NULL, 0},
  };
  pub_run_t run = {.c = c, .window = DEFAULT_WINDOW, .src = {.rd = {.line = 1}}};
  int64_t v;
  int o;
  while ((o = cmd_getopt(c, argc, argv, own)) != -1) {
    if (o == OPT_FILL) {
      run.fill = true;
    } else if (o == OPT_WINDOW) {
      if (!parse_i64(optarg, 1, MAX_WINDOW, &v)) {
        cli_err("publish: --window expects 1 to %d, got '%s'", MAX_WINDOW, optarg);
        cmd_usage_exit(c);
      }
      run.window = (size_t)v;
    }
  }
  if (argc - optind > 1) {
    cli_err("publish: expected at most one FILE");
    cmd_usage_exit(c);
  }
  const char *path = optind < argc ? argv[optind] : "-";
  run.src.rd.fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
  if (run.src.rd.fd < 0) {
    cli_err("%s: %s", path, strerror(errno));
    return EXIT_USAGE;
  }
  run.sock = socket_open(c, c->ingest, (int)run.window + 64);
  int rc = run.sock != NULL ? pub_loop(&run) : -1;
  fflush(stdout);
  pub_run_free(&run);
  return rc < 0 ? EXIT_USAGE : run.rejected > 0 ? EXIT_REJECTED : 0;
}
