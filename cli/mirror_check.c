/* SPDX-License-Identifier: MIT
 *
 * mirror_check.c: `lianxin mirror-check`, which compares a county's
 * JetStream stream with its log (PROTOCOL.md, "Mirror to NATS JetStream"):
 * message k must be record k, with Lx-Seq k, the record's chain hash as
 * Lx-Hash and its ev bytes as data, and the stream must hold as many
 * messages as the log. It names the first difference.
 *
 * Design: the stream's state is read first, then the log is opened (online
 * through replay pages, or offline from a store directory: au_src), so with
 * a live daemon the log's head is at least what the stream could hold. The
 * stream is read with an ordered push consumer (libnats's js_SubscribeSync
 * with Ordered: flow control, no acks, gaps re-fetched by the library), and
 * each message's stream sequence comes from its JetStream metadata, so a
 * deleted message shows as a skipped sequence.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "audit_tools.h"
#include "cli.h"

#define MC_WAIT_MS 10000 /* the next message of an ordered consumer */

typedef struct mc {
  natsConnection *nc;
  jsCtx *js;
  natsSubscription *sub;
  char stream[64];
  char subject[64];
  uint64_t last, msgs; /* the stream's last seq and message count */
} mc_t;

static void mc_close(mc_t *m) {
  natsSubscription_Destroy(m->sub);
  jsCtx_Destroy(m->js);
  natsConnection_Destroy(m->nc);
}

/* The county of record 1's unit, for the default stream name LX_COUNTY. */
static int mc_default_stream(cli_t *c, const char *data, char *out, size_t len) {
  au_src_t s;
  au_rec_t r;
  int rc = au_src_open(&s, c, data, 1, 1);
  if (rc == 0 && (rc = au_src_next(&s, &r)) == 1) {
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    msgpack_zone_init(&z, 1024);
    rc = -1;
    if (msgpack_unpack((const char *)r.ev, r.ev_len, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS) {
      const msgpack_object *u = mp_get(&o, "unit");
      if (u && u->type == MSGPACK_OBJECT_STR) {
        size_t n = 0;
        while (n < u->via.str.size && u->via.str.ptr[n] != '.')
          n++;
        int w = snprintf(out, len, "LX_%.*s", (int)n, u->via.str.ptr);
        for (int i = 3; i < w; i++)
          out[i] = (char)toupper((unsigned char)out[i]);
        rc = 0;
      }
    }
    msgpack_zone_destroy(&z);
  } else if (rc == 0) {
    cli_err("mirror-check: the log is empty: give --stream");
    rc = -1;
  }
  au_src_close(&s);
  return rc;
}

static int mc_open(mc_t *m, const char *url) {
  jsStreamInfo *si = NULL;
  jsErrCode je = 0;
  jsSubOptions so;
  natsStatus st = natsConnection_ConnectTo(&m->nc, url);
  if (st == NATS_OK)
    st = natsConnection_JetStream(&m->js, m->nc, NULL);
  if (st == NATS_OK)
    st = js_GetStreamInfo(&si, m->js, m->stream, NULL, &je);
  if (st != NATS_OK) {
    cli_err("mirror-check: %s: stream %s: %s (jetstream error %d)", url, m->stream,
            natsStatus_GetText(st), (int)je);
    return -1;
  }
  m->last = si->State.LastSeq;
  m->msgs = si->State.Msgs;
  snprintf(m->subject, sizeof m->subject, "%s",
           si->Config->SubjectsLen > 0 ? si->Config->Subjects[0] : ">");
  jsStreamInfo_Destroy(si);
  if (m->last == 0)
    return 0;
  jsSubOptions_Init(&so);
  so.Stream = m->stream;
  so.Ordered = true;
  st = js_SubscribeSync(&m->sub, m->js, m->subject, NULL, &so, &je);
  if (st != NATS_OK) {
    cli_err("mirror-check: reading stream %s: %s (jetstream error %d)", m->stream,
            natsStatus_GetText(st), (int)je);
    return -1;
  }
  return 0;
}

static void mc_hex(const uint8_t *h, char out[65]) {
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Compares stream message `got` (with seq sseq) with record r; fills why
 * and returns 1 at a difference. */
static int mc_compare(natsMsg *msg, uint64_t sseq, const au_rec_t *r, char *why, size_t len) {
  const char *lseq = NULL, *lhash = NULL;
  char hex[65];
  if (sseq != r->seq) {
    snprintf(why, len, "stream message %" PRIu64 " is missing (the next one is %" PRIu64 ")",
             r->seq, sseq);
    return 1;
  }
  natsMsgHeader_Get(msg, "Lx-Seq", &lseq);
  natsMsgHeader_Get(msg, "Lx-Hash", &lhash);
  mc_hex(r->hash, hex);
  if (!lseq || strtoull(lseq, NULL, 10) != r->seq)
    snprintf(why, len, "stream message %" PRIu64 " has Lx-Seq %s", sseq, lseq ? lseq : "(none)");
  else if (!lhash || strcmp(lhash, hex) != 0)
    snprintf(why, len, "stream message %" PRIu64 " has Lx-Hash %.64s; the log's hash is %s", sseq,
             lhash ? lhash : "(none)", hex);
  else if ((size_t)natsMsg_GetDataLength(msg) != r->ev_len ||
           memcmp(natsMsg_GetData(msg), r->ev, r->ev_len) != 0)
    snprintf(why, len, "stream message %" PRIu64 ": its data are not the record's ev bytes", sseq);
  else
    return 0;
  return 1;
}

/* Walks the log and the stream side by side. Returns 0 (agree), 1 (a
 * difference, in why) or -1 (I/O, reported). */
static int mc_walk(mc_t *m, au_src_t *s, char *why, size_t len, uint64_t *n) {
  au_rec_t r;
  int rc;
  uint64_t got = 0;
  while ((rc = au_src_next(s, &r)) == 1) {
    if (r.seq <= m->last && got == m->msgs) {
      snprintf(why, len, "stream message %" PRIu64 " is missing (the stream holds %" PRIu64
               " message(s) up to %" PRIu64 ")", r.seq, m->msgs, m->last);
      return 1;
    }
    if (r.seq > m->last) {
      snprintf(why, len, "the stream ends at %" PRIu64 "; the log goes on to %" PRIu64
               " (%" PRIu64 " record(s) not mirrored)", m->last, s->head.seq, s->head.seq - m->last);
      return 1;
    }
    natsMsg *msg = NULL;
    jsMsgMetaData *meta = NULL;
    natsStatus st = natsSubscription_NextMsg(&msg, m->sub, MC_WAIT_MS);
    if (st == NATS_OK)
      st = natsMsg_GetMetaData(&meta, msg);
    if (st != NATS_OK) {
      natsMsg_Destroy(msg);
      cli_err("mirror-check: reading stream %s at %" PRIu64 ": %s", m->stream, r.seq,
              natsStatus_GetText(st));
      return -1;
    }
    got++;
    int diff = mc_compare(msg, meta->Sequence.Stream, &r, why, len);
    jsMsgMetaData_Destroy(meta);
    natsMsg_Destroy(msg);
    if (diff)
      return 1;
    (*n)++;
  }
  if (rc < 0)
    return -1;
  if (m->last > s->head.seq) {
    snprintf(why, len, "stream message %" PRIu64 " is beyond the log's head %" PRIu64,
             s->head.seq + 1, s->head.seq);
    return 1;
  }
  return 0;
}

int cmd_mirror_check(cli_t *c, int argc, char **argv) {
  static const struct option own[] = {
    {"nats", required_argument, NULL, 'n'},
    {"stream", required_argument, NULL, 's'},
    {"data", required_argument, NULL, OPT_DATA},
    {NULL, 0, NULL, 0},
  };
  const char *url = NULL, *stream = NULL, *data = NULL;
  int o;
  while ((o = cmd_getopt(c, argc, argv, own)) != -1)
    if (o == 'n') url = optarg;
    else if (o == 's') stream = optarg;
    else if (o == OPT_DATA) data = optarg;
  if (!url || optind < argc) {
    cli_err("mirror-check: %s", url ? "unexpected argument" : "--nats URL is required");
    cmd_usage_exit(c);
  }
  mc_t m = {0};
  if (stream)
    snprintf(m.stream, sizeof m.stream, "%s", stream);
  else if (mc_default_stream(c, data, m.stream, sizeof m.stream))
    return EXIT_USAGE;
  au_src_t s = {0};
  char why[512] = "";
  uint64_t n = 0;
  int rc = mc_open(&m, url);
  if (rc == 0 && (rc = au_src_open(&s, c, data, 1, UINT64_MAX)) == 0)
    rc = mc_walk(&m, &s, why, sizeof why, &n);
  au_src_close(&s);
  mc_close(&m);
  if (rc < 0 || rc == EXIT_USAGE)
    return EXIT_USAGE;
  if (rc == 1) {
    printf("DIFFER: %s\n", why);
    return EXIT_REJECTED;
  }
  printf("OK: stream %s holds the log's %" PRIu64 " record(s), every seq and chain hash equal\n",
         m.stream, n);
  return 0;
}
