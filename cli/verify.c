/* SPDX-License-Identifier: MIT
 *
 * verify.c: `lianxin verify`, an auditor's check of the whole log, and the
 * two pieces it shares with export and import (audit_tools.h): the log source
 * and the chain verifier.
 *
 * verify streams the log (or a range of it) from the daemon (`replay`
 * pages) or straight from a store directory (a backup, or a stopped or
 * running daemon's data dir, opened read-only from this process), and
 * recomputes everything PROTOCOL.md lets a holder of the records check:
 *
 *   - seqs are dense: the first missing one is named ("gap");
 *   - each record's stored hash equals the recomputed chain hash;
 *   - each `checkpoint` record names the record before it and that
 *     record's chain hash, carries the auditor's public key (--key), and
 *     its Ed25519 signature of u64be(seq) || hash holds;
 *   - the head (the `head` op, or the store's meta "head") names the last
 *     record, its hash and the newest checkpoint.
 *
 * The verdict is one line on stdout; details of a failure go to stderr.
 * Exit 0 when everything holds, 1 on a failure, 2 on usage or I/O errors.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "audit_tools.h"
#include "store.h"
#include "json_mp.h"
#include "lx_proto.h"

/* --- small helpers ------------------------------------------------------- */

static int hexval(char ch)
{
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

bool au_unhex(const char *s, size_t slen, uint8_t *out, size_t n)
{
  if (slen != 2 * n)
    return false;
  for (size_t i = 0; i < n; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return true;
}

int au_read_sign_pub(const char *path, uint8_t key[32])
{
  char buf[256];
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    cli_err("%s: %s", path, strerror(errno));
    return -1;
  }
  bool ok = fgets(buf, sizeof buf, f) != NULL;
  fclose(f);
  if (ok) {
    buf[strcspn(buf, "\r\n")] = '\0';
    ok = au_unhex(buf, strlen(buf), key, 32);
  }
  if (!ok) {
    cli_err("%s: not a .sign.pub file (one line of 64 hex digits, the Ed25519 public key)", path);
    return -1;
  }
  return 0;
}

bool au_dir_fresh(const char *dir, bool *exists)
{
  struct stat st;
  *exists = stat(dir, &st) == 0;
  if (!*exists)
    return errno == ENOENT;
  if (!S_ISDIR(st.st_mode))
    return false;
  DIR *d = opendir(dir);
  if (d == NULL)
    return false;
  struct dirent *e;
  bool empty = true;
  while (empty && (e = readdir(d)) != NULL)
    empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
  closedir(d);
  return empty;
}

int au_env_open(MDB_env **envp, const char *dir, unsigned flags)
{
  MDB_env *env;
  int rc = mdb_env_create(&env);
  if (rc)
    return rc;
  mdb_env_set_maxdbs(env, 64);
  mdb_env_set_maxreaders(env, 256);
  rc = mdb_env_open(env, dir, MDB_NOTLS | flags, 0640);
  if (rc) {
    mdb_env_close(env);
    return rc;
  }
  *envp = env;
  return 0;
}

/* --- the log source: offline --------------------------------------------- */

/* A store directory that this process may not write (a read-only backup)
 * is opened without LMDB's lock file: nobody can be writing it then. */
bool au_dir_writable(const char *dir)
{
  char lock[4096];
  snprintf(lock, sizeof lock, "%s/lock.mdb", dir);
  if (access(lock, F_OK) == 0)
    return access(lock, R_OK | W_OK) == 0;
  return access(dir, W_OK) == 0;
}

static int src_open_offline(au_src_t *s, const char *dir)
{
  char path[4096];
  struct stat st;
  snprintf(path, sizeof path, "%s/data.mdb", dir);
  if (stat(path, &st) != 0) {
    cli_err("%s: not a store directory (%s: %s)", dir, path, strerror(errno));
    return EXIT_USAGE;
  }
  s->offline = true;
  s->nolock = !au_dir_writable(dir);
  int rc = au_env_open(&s->env, dir, MDB_RDONLY | (s->nolock ? MDB_NOLOCK : 0));
  if (rc) {
    cli_err("%s: cannot open the store: %s", dir, mdb_strerror(rc));
    s->env = NULL;
    return EXIT_USAGE;
  }
  /* A live daemon may have grown the map since the file's meta was read. */
  while ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn)) == MDB_MAP_RESIZED)
    mdb_env_set_mapsize(s->env, 0);
  if (rc) {
    cli_err("%s: cannot read the store: %s", dir, mdb_strerror(rc));
    return EXIT_USAGE;
  }
  if ((rc = mdb_dbi_open(s->txn, "log", 0, &s->log)) ||
      (rc = mdb_dbi_open(s->txn, "meta", 0, &s->meta))) {
    cli_err("%s: not a Lianxin store (%s)", dir, mdb_strerror(rc));
    return EXIT_USAGE;
  }
  MDB_val k = {4, "head"}, v;
  rc = mdb_get(s->txn, s->meta, &k, &v);
  if (rc == 0 && v.mv_size == 24 + AU_HASH) {
    const uint8_t *p = v.mv_data;
    s->head.seq = lx_get_u64be(p);
    s->head.rat = lx_get_u64be(p + 8);
    memcpy(s->head.hash, p + 16, AU_HASH);
    s->head.checkpoint = lx_get_u64be(p + 16 + AU_HASH);
  } else if (rc == 0) {
    cli_err("%s: meta \"head\" is %zu bytes, not %d", dir, v.mv_size, 24 + AU_HASH);
    return EXIT_USAGE;
  } else if (rc != MDB_NOTFOUND) {
    cli_err("%s: reading the head: %s", dir, mdb_strerror(rc));
    return EXIT_USAGE;
  }
  s->head.has_rat = true;
  if ((rc = mdb_cursor_open(s->txn, s->log, &s->cur))) {
    cli_err("%s: %s", dir, mdb_strerror(rc));
    return EXIT_USAGE;
  }
  return 0;
}

static int src_next_offline(au_src_t *s, au_rec_t *r)
{
  uint8_t key[8];
  MDB_val k, v;
  int rc;
  if (!s->started) {
    s->started = true;
    lx_put_u64be(key, s->first);
    k = (MDB_val){8, key};
    rc = mdb_cursor_get(s->cur, &k, &v, MDB_SET_RANGE);
  } else {
    rc = mdb_cursor_get(s->cur, &k, &v, MDB_NEXT);
  }
  if (rc == MDB_NOTFOUND) {
    s->at_end = true;
    return 0;
  }
  if (rc) {
    cli_err("reading the log: %s", mdb_strerror(rc));
    return -1;
  }
  if (k.mv_size != 8 || v.mv_size < 8 + AU_HASH) {
    cli_err("the log holds a malformed entry after seq %" PRIu64 " (key %zu bytes, value %zu)",
            s->read_seq, k.mv_size, v.mv_size);
    return -1;
  }
  const uint8_t *p = v.mv_data;
  r->seq = lx_get_u64be(k.mv_data);
  if (r->seq > s->last)
    return 0;
  r->rat = lx_get_u64be(p);
  r->hash = p + 8;
  r->ev = p + 8 + AU_HASH;
  r->ev_len = v.mv_size - 8 - AU_HASH;
  s->read_seq = r->seq;
  return 1;
}

/* --- the log source: online ---------------------------------------------- */

static void pack_map_uint(msgpack_packer *pk, const char *k, uint64_t v)
{
  pack_cstr(pk, k);
  msgpack_pack_uint64(pk, v);
}

static int src_open_online(au_src_t *s, cli_t *c)
{
  msgpack_sbuffer sb;
  msgpack_packer pk;
  reply_t r;
  s->c = c;
  s->sock = socket_open_type(c, ZMQ_DEALER, c->query, 0, NULL);
  if (s->sock == NULL)
    return EXIT_USAGE;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1);
  pack_cstr(&pk, "op");
  pack_cstr(&pk, "head");
  int rc = query_roundtrip(c, s->sock, &sb, &r);
  msgpack_sbuffer_destroy(&sb);
  if (rc < 0)
    return EXIT_USAGE;
  const msgpack_object *o = &r.u.data, *h = mp_get(o, "hash"), *cp = mp_get(o, "checkpoint");
  if (!mp_is_true(mp_get(o, "ok"))) {
    report_refusal("head", o);
    reply_free(&r);
    return EXIT_USAGE;
  }
  if (!mp_uint(mp_get(o, "seq"), &s->head.seq) || h == NULL || h->type != MSGPACK_OBJECT_BIN ||
      h->via.bin.size != AU_HASH ||
      (cp != NULL && cp->type != MSGPACK_OBJECT_NIL && !mp_uint(cp, &s->head.checkpoint))) {
    cli_err("head: the reply lacks seq, a 32-byte hash or a valid checkpoint");
    reply_free(&r);
    return EXIT_USAGE;
  }
  memcpy(s->head.hash, h->via.bin.ptr, AU_HASH);
  reply_free(&r);
  /* The log grows while we read: verify up to the head as it is now. */
  if (s->last >= s->head.seq) {
    s->last = s->head.seq;
    s->at_end = true;
  }
  s->next = s->first;
  return 0;
}

/* Sends the request for the page at s->next. Returns 0 or -1. */
static int src_ask(au_src_t *s)
{
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 4);
  pack_cstr(&pk, "op");
  pack_cstr(&pk, "replay");
  pack_map_uint(&pk, "from", s->next);
  pack_map_uint(&pk, "limit", AU_PAGE);
  pack_map_uint(&pk, "to", s->last);
  int rc = zmq_send(s->sock, sb.data, sb.size, 0);
  msgpack_sbuffer_destroy(&sb);
  if (rc < 0) {
    cli_err("send to %s: %s", s->c->query, zmq_strerror(errno));
    return -1;
  }
  s->asked = true;
  return 0;
}

/* Takes the next page (asking for it first unless it was asked for), and
 * asks for the one after it at once, so the daemon reads the next page
 * while this one is checked. Returns 0, or -1 after reporting. */
static int src_page(au_src_t *s)
{
  if (s->have_reply) {
    reply_free(&s->r);
    s->have_reply = false;
  }
  if (!s->asked && src_ask(s) < 0)
    return -1;
  s->asked = false;
  if (reply_recv(s->c, s->sock, s->c->query, &s->r) < 0)
    return -1;
  s->have_reply = true;
  const msgpack_object *o = &s->r.u.data;
  uint64_t next, head;
  if (!mp_is_true(mp_get(o, "ok"))) {
    report_refusal("replay", o);
    return -1;
  }
  s->recs = mp_get(o, "records");
  if (s->recs == NULL || s->recs->type != MSGPACK_OBJECT_ARRAY || !mp_uint(mp_get(o, "next"), &next) ||
      !mp_uint(mp_get(o, "head"), &head)) {
    cli_err("replay: the reply lacks records, next or head");
    return -1;
  }
  if (next <= s->next) {
    cli_err("replay: the daemon did not advance past seq %" PRIu64, s->next);
    return -1;
  }
  s->idx = 0;
  s->next = next;
  if (s->next <= s->last && src_ask(s) < 0)
    return -1;
  return 0;
}

static int src_next_online(au_src_t *s, au_rec_t *r)
{
  for (;;) {
    if (s->have_reply && s->idx < s->recs->via.array.size) {
      const msgpack_object *o = &s->recs->via.array.ptr[s->idx++];
      const msgpack_object *h = mp_get(o, "hash"), *ev = mp_get(o, "ev");
      if (!mp_uint(mp_get(o, "seq"), &r->seq) || !mp_uint(mp_get(o, "rat"), &r->rat) ||
          h == NULL || h->type != MSGPACK_OBJECT_BIN || h->via.bin.size != AU_HASH ||
          ev == NULL || ev->type != MSGPACK_OBJECT_BIN) {
        cli_err("replay: a record after seq %" PRIu64 " lacks seq, rat, a 32-byte hash or ev",
                s->read_seq);
        return -1;
      }
      r->hash = (const uint8_t *)h->via.bin.ptr;
      r->ev = (const uint8_t *)ev->via.bin.ptr;
      r->ev_len = ev->via.bin.size;
      s->read_seq = r->seq;
      return 1;
    }
    if (s->next > s->last || s->first > s->last)
      return 0;
    if (src_page(s) < 0)
      return -1;
  }
}

int au_src_open(au_src_t *s, cli_t *c, const char *data_dir, uint64_t first, uint64_t last)
{
  memset(s, 0, sizeof *s);
  s->first = first;
  s->last = last;
  return data_dir != NULL ? src_open_offline(s, data_dir) : src_open_online(s, c);
}

int au_src_next(au_src_t *s, au_rec_t *r)
{
  if (s->done)
    return 0; /* the cursor stays where the range ended (at_end stays true) */
  int rc = s->offline ? src_next_offline(s, r) : src_next_online(s, r);
  s->done = rc == 0;
  return rc;
}

int au_src_batch(au_src_t *s, au_rec_t *r, size_t max, size_t *n)
{
  *n = 0;
  while (*n < max) {
    /* Online, records point into the page: a batch ends with it. */
    if (!s->offline && *n > 0 && s->have_reply && s->idx >= s->recs->via.array.size)
      break;
    int rc = au_src_next(s, &r[*n]);
    if (rc < 0)
      return -1;
    if (rc == 0)
      break;
    (*n)++;
  }
  return *n > 0;
}

void au_src_close(au_src_t *s)
{
  if (s->cur != NULL)
    mdb_cursor_close(s->cur);
  if (s->txn != NULL)
    mdb_txn_abort(s->txn);
  if (s->env != NULL)
    mdb_env_close(s->env);
  if (s->have_reply)
    reply_free(&s->r);
  if (s->sock != NULL)
    zmq_close(s->sock);
  memset(s, 0, sizeof *s);
}

/* --- reading an event's type without decoding it ------------------------- */

/* Skips one msgpack value; false when it is malformed or runs past end. */
static bool mp_skip(const uint8_t **pp, const uint8_t *end, int depth)
{
  const uint8_t *p = *pp;
  if (p >= end || depth > 16)
    return false;
  uint8_t b = *p++;
  uint64_t n = 0, items = 0;
  size_t avail = (size_t)(end - p);
#define NEED(k) do { if (avail < (size_t)(k)) return false; } while (0)
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
    /* fixint, nil, bool */
  } else if (b >= 0xa0 && b <= 0xbf) {
    n = b & 0x1f;
  } else if (b >= 0x80 && b <= 0x8f) {
    items = 2 * (uint64_t)(b & 0x0f);
  } else if (b >= 0x90 && b <= 0x9f) {
    items = b & 0x0f;
  } else {
    switch (b) {
    case 0xcc: case 0xd0: n = 1; break;
    case 0xcd: case 0xd1: n = 2; break;
    case 0xca: case 0xce: case 0xd2: n = 4; break;
    case 0xcb: case 0xcf: case 0xd3: n = 8; break;
    case 0xd4: n = 2; break;
    case 0xd5: n = 3; break;
    case 0xd6: n = 5; break;
    case 0xd7: n = 9; break;
    case 0xd8: n = 17; break;
    case 0xc4: case 0xd9: NEED(1); n = p[0]; p += 1; avail -= 1; break;
    case 0xc5: case 0xda: NEED(2); n = (uint64_t)p[0] << 8 | p[1]; p += 2; avail -= 2; break;
    case 0xc6: case 0xdb:
      NEED(4);
      n = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
      p += 4;
      avail -= 4;
      break;
    case 0xc7: NEED(1); n = 1 + (uint64_t)p[0]; p += 1; avail -= 1; break;
    case 0xc8: NEED(2); n = 1 + ((uint64_t)p[0] << 8 | p[1]); p += 2; avail -= 2; break;
    case 0xc9:
      NEED(4);
      n = 1 + ((uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3]);
      p += 4;
      avail -= 4;
      break;
    case 0xdc: NEED(2); items = (uint64_t)p[0] << 8 | p[1]; p += 2; avail -= 2; break;
    case 0xde: NEED(2); items = 2 * ((uint64_t)p[0] << 8 | p[1]); p += 2; avail -= 2; break;
    case 0xdd: case 0xdf: {
      NEED(4);
      uint64_t k = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
      items = b == 0xdf ? 2 * k : k;
      p += 4;
      avail -= 4;
      break;
    }
    default: return false; /* 0xc1 */
    }
  }
  NEED(n);
  p += n;
  if (items > (uint64_t)(end - p))
    return false; /* every item takes at least one byte */
  for (uint64_t i = 0; i < items; i++)
    if (!mp_skip(&p, end, depth + 1))
      return false;
#undef NEED
  *pp = p;
  return true;
}

/* Reads a str header at *pp: its bytes in *s, *n. */
static bool mp_str(const uint8_t **pp, const uint8_t *end, const char **s, size_t *n)
{
  const uint8_t *p = *pp;
  if (p >= end)
    return false;
  uint8_t b = *p++;
  size_t len;
  if (b >= 0xa0 && b <= 0xbf) {
    len = b & 0x1f;
  } else if (b == 0xd9 && end - p >= 1) {
    len = p[0];
    p += 1;
  } else if (b == 0xda && end - p >= 2) {
    len = (size_t)p[0] << 8 | p[1];
    p += 2;
  } else if (b == 0xdb && end - p >= 4) {
    len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    p += 4;
  } else {
    return false;
  }
  if ((size_t)(end - p) < len)
    return false;
  *s = (const char *)p;
  *n = len;
  *pp = p + len;
  return true;
}

bool au_ev_type(const uint8_t *ev, size_t len, const char **type, size_t *tn)
{
  const uint8_t *p = ev, *end = ev + len;
  uint64_t n;
  if (len == 0)
    return false;
  if (*p >= 0x80 && *p <= 0x8f) {
    n = *p++ & 0x0f;
  } else if (*p == 0xde && len >= 3) {
    n = (uint64_t)p[1] << 8 | p[2];
    p += 3;
  } else if (*p == 0xdf && len >= 5) {
    n = (uint64_t)p[1] << 24 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 8 | p[4];
    p += 5;
  } else {
    return false;
  }
  for (uint64_t i = 0; i < n; i++) {
    const char *k;
    size_t kn;
    if (!mp_str(&p, end, &k, &kn))
      return false;
    if (kn == 4 && memcmp(k, "type", 4) == 0)
      return mp_str(&p, end, type, tn);
    if (!mp_skip(&p, end, 1))
      return false;
  }
  return false;
}

/* --- the verifier ------------------------------------------------------- */

void au_vf_init(au_vf_t *v, uint64_t from, const uint8_t *key)
{
  memset(v, 0, sizeof *v);
  v->from = from < 1 ? 1 : from;
  v->anchored = v->from == 1; /* h(0) is 32 zero bytes */
  v->expect = v->from;
  if (key != NULL) {
    v->has_key = true;
    memcpy(v->key, key, 32);
  }
  msgpack_zone_init(&v->zone, 4096);
}

void au_vf_free(au_vf_t *v)
{
  msgpack_zone_destroy(&v->zone);
  free(v->ok);
  v->ok = NULL;
}

static int vf_fail(au_vf_t *v, uint64_t seq, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int vf_fail(au_vf_t *v, uint64_t seq, const char *what, const char *fmt, ...)
{
  va_list ap;
  v->fail_seq = seq ? seq : 1;
  snprintf(v->what, sizeof v->what, "%s", what);
  v->detail[0] = '\0';
  if (fmt != NULL) {
    va_start(ap, fmt);
    vsnprintf(v->detail, sizeof v->detail, fmt, ap);
    va_end(ap);
  }
  return 1;
}

/* PROTOCOL.md's chain hash, computed by the daemon's own function. */
static void chain(const uint8_t prev[AU_HASH], uint64_t seq, uint64_t rat, const uint8_t *ev,
                  size_t len, uint8_t out[AU_HASH])
{
  lx_chain_hash(prev, seq, rat, ev, len, out);
}

static const msgpack_object *bin_field(const msgpack_object *body, const char *k, uint32_t n)
{
  const msgpack_object *o = lx_mp_get(body, k);
  return o != NULL && o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == n ? o : NULL;
}

/* A checkpoint record at r->seq; v->prev is still the hash of r->seq - 1. */
static int vf_checkpoint(au_vf_t *v, const au_rec_t *r)
{
  msgpack_object root;
  size_t off = 0;
  char a[65], b[65];
  msgpack_zone_clear(&v->zone);
  v->cps++;
  v->cp_last = r->seq;
  if (msgpack_unpack((const char *)r->ev, r->ev_len, &off, &v->zone, &root) !=
          MSGPACK_UNPACK_SUCCESS || off != r->ev_len)
    return vf_fail(v, r->seq, "bad checkpoint signature", "the checkpoint event is not one msgpack map");
  const msgpack_object *body = lx_mp_get(&root, "body"), *seq = lx_mp_get(body ? body : &root, "seq");
  const msgpack_object *hash = body ? bin_field(body, "hash", 32) : NULL;
  const msgpack_object *key = body ? bin_field(body, "key", 32) : NULL;
  const msgpack_object *sig = body ? bin_field(body, "sig", 64) : NULL;
  if (body == NULL || seq == NULL || seq->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      hash == NULL || key == NULL || sig == NULL)
    return vf_fail(v, r->seq, "bad checkpoint signature",
                   "the checkpoint's body lacks seq (uint), hash (bin 32), key (bin 32) or sig (bin 64)");
  if (v->has_key && memcmp(key->via.bin.ptr, v->key, 32) != 0)
    return vf_fail(v, r->seq, "checkpoint key mismatch",
                   "signed by key %s, not the --key %s", lx_hex(a, key->via.bin.ptr, 32),
                   lx_hex(b, v->key, 32));
  if (seq->via.u64 != r->seq - 1)
    return vf_fail(v, r->seq, "checkpoint hash mismatch",
                   "it names seq %" PRIu64 ", not the record before it (%" PRIu64 ")",
                   seq->via.u64, r->seq - 1);
  if (memcmp(hash->via.bin.ptr, v->prev, AU_HASH) != 0)
    return vf_fail(v, r->seq, "checkpoint hash mismatch",
                   "it signs hash %s for seq %" PRIu64 ", the chain has %s",
                   lx_hex(a, hash->via.bin.ptr, 32), seq->via.u64, lx_hex(b, v->prev, 32));
  uint8_t msg[8 + AU_HASH];
  lx_put_u64be(msg, seq->via.u64);
  memcpy(msg + 8, hash->via.bin.ptr, AU_HASH);
  const uint8_t *pk = v->has_key ? v->key : (const uint8_t *)key->via.bin.ptr;
  if (crypto_sign_verify_detached((const uint8_t *)sig->via.bin.ptr, msg, sizeof msg, pk) != 0)
    return vf_fail(v, r->seq, "bad checkpoint signature",
                   "the Ed25519 signature of seq %" PRIu64 " and its hash does not verify with key %s",
                   seq->via.u64, lx_hex(a, pk, 32));
  return 0;
}

/* The record before --from: its stored hash is taken on trust. */
static int vf_anchor(au_vf_t *v, const au_rec_t *r)
{
  if (r->seq != v->from - 1) {
    vf_fail(v, v->from - 1, "", "seq %" PRIu64 " is the record before --from, whose hash the range starts from",
            v->from - 1);
    snprintf(v->what, sizeof v->what, "gap (expected %" PRIu64 ", got %" PRIu64 ")", v->from - 1,
             r->seq);
    return 1;
  }
  memcpy(v->prev, r->hash, AU_HASH);
  v->last_rat = r->rat;
  v->anchored = true;
  return 0;
}

/* Everything but the hashing, in seq order; hash_ok says whether the
 * record's hash is H(v->prev, seq, rat, ev). */
static int vf_step(au_vf_t *v, const au_rec_t *r, bool hash_ok)
{
  char a[65], b[65];
  if (r->seq != v->expect) {
    vf_fail(v, v->expect, "", NULL);
    snprintf(v->what, sizeof v->what, "gap (expected %" PRIu64 ", got %" PRIu64 ")", v->expect,
             r->seq);
    return 1;
  }
  if (!hash_ok) {
    uint8_t h[AU_HASH];
    chain(v->prev, r->seq, r->rat, r->ev, r->ev_len, h);
    return vf_fail(v, r->seq, "hash mismatch", "stored %s, recomputed %s", lx_hex(a, r->hash, 32),
                   lx_hex(b, h, 32));
  }
  const char *t;
  size_t tn;
  if (!au_ev_type(r->ev, r->ev_len, &t, &tn))
    v->odd++;
  else if (tn == 10 && memcmp(t, "checkpoint", 10) == 0 && vf_checkpoint(v, r))
    return 1;
  memcpy(v->prev, r->hash, AU_HASH); /* equal to the recomputed hash */
  if (v->n++ == 0)
    v->first = r->seq;
  v->last = r->seq;
  v->last_rat = r->rat;
  v->expect++;
  return 0;
}

int au_vf_record(au_vf_t *v, const au_rec_t *r)
{
  if (v->fail_seq)
    return 1;
  if (!v->anchored)
    return vf_anchor(v, r);
  uint8_t h[AU_HASH];
  chain(v->prev, r->seq, r->rat, r->ev, r->ev_len, h);
  return vf_step(v, r, memcmp(h, r->hash, AU_HASH) == 0);
}

/* The hashing of a batch, spread over threads. Record i is checked against
 * the STORED hash of record i - 1: if every record passes, each stored hash
 * equals the recomputed one by induction, and the first record that fails
 * is the one a sequential pass names, since all before it passed. */
typedef struct hjob {
  const au_rec_t *r;
  size_t lo, hi;
  const uint8_t *prev0; /* the hash before r[0] */
  uint8_t *ok;
} hjob_t;

static void *hash_range(void *arg)
{
  hjob_t *j = arg;
  uint8_t h[AU_HASH];
  for (size_t i = j->lo; i < j->hi; i++) {
    const au_rec_t *r = &j->r[i];
    chain(i == 0 ? j->prev0 : j->r[i - 1].hash, r->seq, r->rat, r->ev, r->ev_len, h);
    j->ok[i] = memcmp(h, r->hash, AU_HASH) == 0;
  }
  return NULL;
}

int au_vf_batch(au_vf_t *v, const au_rec_t *r, size_t n)
{
  size_t i = 0;
  if (v->fail_seq)
    return 1;
  for (; i < n && !v->anchored; i++)
    if (vf_anchor(v, &r[i]))
      return 1;
  r += i;
  n -= i;
  if (n == 0)
    return 0;
  if (n > v->ok_cap) {
    uint8_t *p = realloc(v->ok, n);
    if (p == NULL) { /* no room to batch: one at a time */
      for (i = 0; i < n; i++)
        if (au_vf_record(v, &r[i]))
          return 1;
      return 0;
    }
    v->ok = p;
    v->ok_cap = n;
  }
  /* LIANXIN_THREADS=N caps the threads (1: none), for reproducible timings. */
  const char *env = getenv("LIANXIN_THREADS");
  long cpus = env != NULL && atoi(env) > 0 ? atoi(env) : sysconf(_SC_NPROCESSORS_ONLN);
  size_t nt = cpus < 1 ? 1 : cpus > AU_THREADS ? AU_THREADS : (size_t)cpus;
  if (n < 512 * nt)
    nt = 1;
  hjob_t jobs[AU_THREADS];
  pthread_t tid[AU_THREADS];
  bool started[AU_THREADS] = {false};
  for (size_t t = 0; t < nt; t++)
    jobs[t] = (hjob_t){r, n * t / nt, n * (t + 1) / nt, v->prev, v->ok};
  for (size_t t = 1; t < nt; t++)
    started[t] = pthread_create(&tid[t], NULL, hash_range, &jobs[t]) == 0;
  hash_range(&jobs[0]);
  for (size_t t = 1; t < nt; t++) {
    if (started[t])
      pthread_join(tid[t], NULL);
    else
      hash_range(&jobs[t]); /* no thread: do its share here */
  }
  for (i = 0; i < n; i++)
    if (vf_step(v, &r[i], v->ok[i]))
      return 1;
  return 0;
}

int au_vf_head(au_vf_t *v, const au_head_t *h)
{
  char a[65], b[65];
  if (v->fail_seq)
    return 1;
  uint64_t last = v->expect - 1; /* the last record read, the anchor included */
  if (!v->anchored)
    last = 0;
  if (h->seq != last)
    return vf_fail(v, h->seq > last ? last + 1 : h->seq + 1, "head mismatch",
                   "the head names seq %" PRIu64 ", the log ends at seq %" PRIu64, h->seq, last);
  if (memcmp(h->hash, v->prev, AU_HASH) != 0)
    return vf_fail(v, h->seq, "head mismatch", "the head names hash %s, the chain has %s",
                   lx_hex(a, h->hash, 32), lx_hex(b, v->prev, 32));
  if (h->has_rat && last > 0 && h->rat != v->last_rat)
    return vf_fail(v, h->seq, "head mismatch",
                   "the head names receive time %" PRIu64 ", the record has %" PRIu64, h->rat,
                   v->last_rat);
  bool cp_ok = v->cps > 0 ? h->checkpoint == v->cp_last
                          : (v->from <= 1 ? h->checkpoint == 0 : h->checkpoint < v->from);
  if (!cp_ok)
    return vf_fail(v, h->seq, "head mismatch",
                   "the head names checkpoint seq %" PRIu64 ", the newest checkpoint record %s %" PRIu64,
                   h->checkpoint, v->cps > 0 ? "is at" : "read is none; from seq", v->cps > 0 ? v->cp_last : v->from);
  return 0;
}

/* --- lianxin verify -------------------------------------------------------- */

static void seq_opt(cli_t *c, const char *name, const char *arg, uint64_t *out)
{
  int64_t v;
  if (!parse_i64(arg, 1, INT64_MAX, &v)) {
    cli_err("%s: --%s expects a seq (1 or more), got '%s'", c->cmd->name, name, arg);
    cmd_usage_exit(c);
  }
  *out = (uint64_t)v;
}

int au_range_opts(cli_t *c, int o, const char *arg, uint64_t *from, uint64_t *to)
{
  if (o == OPT_FROM)
    seq_opt(c, "from", arg, from);
  else if (o == OPT_TO)
    seq_opt(c, "to", arg, to);
  else
    return 0;
  return 1;
}

/* Prints the failure: the verdict on stdout, its detail on stderr. */
void au_print_fail(const au_vf_t *v)
{
  if (v->detail[0] != '\0')
    cli_err("%s: seq %" PRIu64 ": %s", "verify", v->fail_seq, v->detail);
  printf("FAIL at seq %" PRIu64 ": %s\n", v->fail_seq, v->what);
}

int au_range_cmd(cli_t *c, int argc, char **argv, const char *name, au_range_args_t *a)
{
  static const struct option own[] = {
    {"data", required_argument, NULL, OPT_DATA},
    {"key", required_argument, NULL, OPT_SIGN_PUB},
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {NULL, 0, NULL, 0},
  };
  int o;
  a->data = a->key_path = NULL;
  a->from = 1;
  a->to = UINT64_MAX;
  while ((o = cmd_getopt(c, argc, argv, own)) != -1) {
    if (o == OPT_DATA)
      a->data = optarg;
    else if (o == OPT_SIGN_PUB)
      a->key_path = optarg;
    else
      au_range_opts(c, o, optarg, &a->from, &a->to);
  }
  if (optind < argc) {
    cli_err("%s: unexpected argument '%s'", name, argv[optind]);
    cmd_usage_exit(c);
  }
  if (a->to < a->from) {
    cli_err("%s: --to %" PRIu64 " is before --from %" PRIu64, name, a->to, a->from);
    cmd_usage_exit(c);
  }
  if (a->key_path != NULL && au_read_sign_pub(a->key_path, a->key) < 0)
    return EXIT_USAGE;
  return 0;
}

int cmd_verify(cli_t *c, int argc, char **argv)
{
  au_range_args_t a;
  if (au_range_cmd(c, argc, argv, "verify", &a))
    return EXIT_USAGE;
  const char *data = a.data, *key_path = a.key_path;
  uint64_t from = a.from, to = a.to;
  uint8_t *key = a.key;
  au_src_t s;
  au_vf_t v;
  int rc = au_src_open(&s, c, data, from > 1 ? from - 1 : 1, to);
  if (rc != 0) {
    au_src_close(&s);
    return rc;
  }
  au_vf_init(&v, from, key_path != NULL ? key : NULL);
  au_rec_t *batch = malloc(AU_BATCH * sizeof *batch);
  size_t n;
  if (batch == NULL) {
    cli_err("verify: out of memory");
    rc = -1;
  }
  while (batch != NULL && (rc = au_src_batch(&s, batch, AU_BATCH, &n)) == 1)
    if (au_vf_batch(&v, batch, n))
      break;
  free(batch);
  int out = 0;
  if (rc < 0) {
    out = EXIT_USAGE;
  } else if (v.fail_seq == 0 && v.n == 0 && from > 1) {
    cli_err("verify: nothing to verify from seq %" PRIu64 ": the head is seq %" PRIu64, from,
            s.head.seq);
    out = EXIT_USAGE;
  } else if (v.fail_seq != 0 || (s.at_end && au_vf_head(&v, &s.head))) {
    au_print_fail(&v);
    out = EXIT_REJECTED;
  } else {
    char hex[65];
    if (v.odd > 0)
      cli_err("verify: warning: %" PRIu64 " events have no readable type (not checked as checkpoints)",
              v.odd);
    if (s.nolock)
      cli_err("verify: %s is not writable: opened without LMDB's lock file", data);
    if (v.n == 0)
      printf("OK: 0 records, seq 0..0, 0 checkpoints %s, head %s", key_path ? "verified" : "not checked (no --key)",
             lx_hex(hex, v.prev, 32));
    else
      printf("OK: %" PRIu64 " records, seq %" PRIu64 "..%" PRIu64 ", %" PRIu64 " checkpoints %s, head %s",
             v.n, v.first, v.last, v.cps, key_path ? "verified" : "not checked (no --key)",
             lx_hex(hex, v.prev, 32));
    if (from > 1)
      printf("; the chain before seq %" PRIu64 " is taken on trust", from);
    if (!s.at_end)
      printf("; head not checked (the range ends before the head, seq %" PRIu64 ")", s.head.seq);
    putchar('\n');
  }
  au_vf_free(&v);
  au_src_close(&s);
  return out;
}
