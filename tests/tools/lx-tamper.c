/* SPDX-License-Identifier: MIT
 *
 * lx-tamper: changes a stopped daemon's store behind its back, as an
 * attacker with the disk would, for the tests of `lianxin verify`.
 *
 *   lx-tamper DIR byte SEQ [OFFSET]     flip one bit of the stored event at SEQ
 *                                       (default: its last byte)
 *   lx-tamper DIR delete SEQ            delete the record at SEQ
 *   lx-tamper DIR swap N M              exchange the records at N and M
 *   lx-tamper DIR sig SEQ               flip one bit of the checkpoint's sig at SEQ
 *   lx-tamper DIR checkpoint KEY [UNIT] append a correctly signed checkpoint
 *                                       record (KEY: a .sign.key file; UNIT:
 *                                       default qd), as the daemon writes them
 *   lx-tamper DIR gen N [SIZE]          append N valid visit events of about
 *                                       SIZE bytes each (default 300), for
 *                                       benchmarks
 *
 * --rechain (before DIR): after the change, recompute every stored chain
 * hash from the first changed seq on and rewrite the head, as a forger who
 * rewrites the whole chain would. Only checkpoint signatures can catch that.
 *
 * The store is opened with the daemon's own store code (daemon/store/store.c);
 * the tampering itself is raw LMDB. Exit 0 done, 2 on errors.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "log.h"
#include "store.h"

#define REC_HDR (8 + LX_HASH_LEN)

static lx_store_t *st;
static MDB_env *env;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
  va_list ap;
  fputs("lx-tamper: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(2);
}

static uint64_t arg_u64(const char *s)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end)
    die("not a number: '%s'", s);
  return v;
}

static void check(int rc, const char *what)
{
  if (rc)
    die("%s: %s", what, mdb_strerror(rc));
}

static MDB_txn *wtxn(MDB_dbi *log, MDB_dbi *meta)
{
  MDB_txn *t;
  check(mdb_txn_begin(env, NULL, 0, &t), "mdb_txn_begin");
  check(mdb_dbi_open(t, "log", 0, log), "open log");
  check(mdb_dbi_open(t, "meta", 0, meta), "open meta");
  return t;
}

/* A copy of the stored record at seq (rat | hash | ev); caller frees. */
static uint8_t *get_rec(MDB_txn *t, MDB_dbi log, uint64_t seq, size_t *len)
{
  uint8_t key[8];
  lx_put_u64be(key, seq);
  MDB_val k = {8, key}, v;
  int rc = mdb_get(t, log, &k, &v);
  if (rc)
    die("seq %" PRIu64 ": %s", seq, mdb_strerror(rc));
  uint8_t *p = malloc(v.mv_size);
  memcpy(p, v.mv_data, v.mv_size);
  *len = v.mv_size;
  return p;
}

static void put_rec(MDB_txn *t, MDB_dbi log, uint64_t seq, const uint8_t *p, size_t len)
{
  uint8_t key[8];
  lx_put_u64be(key, seq);
  MDB_val k = {8, key}, v = {len, (void *)p};
  check(mdb_put(t, log, &k, &v, 0), "mdb_put log");
}

/* Recomputes every hash from seq `from` on and rewrites the head. */
static void rechain(MDB_txn *t, MDB_dbi log, MDB_dbi meta, uint64_t from)
{
  uint8_t prev[LX_HASH_LEN] = {0}, key[8];
  uint64_t last = 0, rat = 0;
  if (from > 1) {
    size_t n;
    uint8_t *p = get_rec(t, log, from - 1, &n);
    memcpy(prev, p + 8, LX_HASH_LEN);
    free(p);
  }
  MDB_cursor *c;
  check(mdb_cursor_open(t, log, &c), "cursor");
  lx_put_u64be(key, from);
  MDB_val k = {8, key}, v;
  for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    uint8_t *p = malloc(v.mv_size);
    memcpy(p, v.mv_data, v.mv_size);
    last = lx_get_u64be(k.mv_data);
    rat = lx_get_u64be(p);
    lx_chain_hash(prev, last, rat, p + REC_HDR, v.mv_size - REC_HDR, p + 8);
    memcpy(prev, p + 8, LX_HASH_LEN);
    MDB_val nv = {v.mv_size, p};
    check(mdb_cursor_put(c, &k, &nv, MDB_CURRENT), "rewrite record");
    free(p);
  }
  mdb_cursor_close(c);
  MDB_val hk = {4, "head"}, hv;
  check(mdb_get(t, meta, &hk, &hv), "meta head");
  uint8_t h[24 + LX_HASH_LEN];
  memcpy(h, hv.mv_data, sizeof h);
  if (last) {
    lx_put_u64be(h, last);
    lx_put_u64be(h + 8, rat);
    memcpy(h + 16, prev, LX_HASH_LEN);
  }
  hv = (MDB_val){sizeof h, h};
  check(mdb_put(t, meta, &hk, &hv, 0), "rewrite head");
}

/* Finds the 64 signature bytes in a checkpoint event: "sig" then bin8 64. */
static uint8_t *find_sig(uint8_t *ev, size_t len)
{
  static const uint8_t pat[] = {0xa3, 's', 'i', 'g', 0xc4, 64};
  for (size_t i = 0; i + sizeof pat + 64 <= len; i++)
    if (memcmp(ev + i, pat, sizeof pat) == 0)
      return ev + i + sizeof pat;
  return NULL;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
  msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void pack_envelope(msgpack_packer *pk, const char *type, uint64_t at, const char *unit,
                          const char *actor)
{
  uint8_t rnd[16];
  char id[40] = "lx-";
  randombytes_buf(rnd, sizeof rnd);
  sodium_bin2hex(id + 3, sizeof id - 3, rnd, sizeof rnd);
  msgpack_pack_map(pk, 7);
  pack_str(pk, "v");
  msgpack_pack_uint64(pk, 1);
  pack_str(pk, "id");
  pack_str(pk, id);
  pack_str(pk, "type");
  pack_str(pk, type);
  pack_str(pk, "at");
  msgpack_pack_uint64(pk, at);
  pack_str(pk, "unit");
  pack_str(pk, unit);
  pack_str(pk, "actor");
  pack_str(pk, actor);
  pack_str(pk, "body");
}

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Appends one normalised event through the store API, with its dedup
 * entry. Returns 0 or the store's error (LX_EFULL: grow and retry). */
static int append(MDB_txn *t, uint64_t rat, const msgpack_sbuffer *sb, uint64_t *seq)
{
  msgpack_zone z;
  lx_event_t e;
  msgpack_zone_init(&z, 1024);
  if (lx_event_parse_stored((const uint8_t *)sb->data, sb->size, &z, &e))
    die("internal: the event made here does not parse");
  int rc = lx_store_append(st, t, rat, (const uint8_t *)sb->data, sb->size, seq);
  if (rc == 0)
    rc = lx_store_id_put(st, t, e.id, *seq);
  msgpack_zone_destroy(&z);
  return rc;
}

static void cmd_checkpoint(const char *key_path, const char *unit)
{
  char line[300];
  uint8_t sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES], msg[8 + LX_HASH_LEN];
  size_t n = 0;
  FILE *f = fopen(key_path, "r");
  if (!f || !fgets(line, sizeof line, f))
    die("%s: cannot read", key_path);
  fclose(f);
  line[strcspn(line, "\r\n")] = 0;
  if (sodium_hex2bin(sk, sizeof sk, line, strlen(line), NULL, &n, NULL) || n != sizeof sk)
    die("%s: not a .sign.key file", key_path);
  const lx_head_t *h = lx_store_head(st);
  if (h->seq == 0)
    die("the log is empty: nothing to sign");
  lx_put_u64be(msg, h->seq);
  memcpy(msg + 8, h->hash, LX_HASH_LEN);
  crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  uint64_t rat = lx_store_next_rat(st, now_ms()), seq;
  pack_envelope(&pk, "checkpoint", rat, unit, "checkpoint");
  msgpack_pack_map(&pk, 4);
  pack_str(&pk, "seq");
  msgpack_pack_uint64(&pk, h->seq);
  pack_str(&pk, "hash");
  msgpack_pack_bin_with_body(&pk, h->hash, LX_HASH_LEN);
  pack_str(&pk, "key");
  msgpack_pack_bin_with_body(&pk, sk + 32, 32);
  pack_str(&pk, "sig");
  msgpack_pack_bin_with_body(&pk, sig, sizeof sig);
  MDB_txn *t;
  if (lx_store_begin(st, &t))
    die("cannot begin a transaction");
  if (append(t, rat, &sb, &seq))
    die("append failed");
  lx_store_set_checkpoint(st, seq);
  if (lx_store_commit(st, t))
    die("commit failed");
  sodium_memzero(sk, sizeof sk);
  msgpack_sbuffer_destroy(&sb);
  printf("%" PRIu64 "\n", seq);
}

static void cmd_gen(uint64_t count, size_t size)
{
  msgpack_sbuffer sb;
  msgpack_packer pk;
  char note[70000], household[32];
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  for (uint64_t done = 0; done < count;) {
    MDB_txn *t;
    if (lx_store_begin(st, &t))
      die("cannot begin a transaction");
    uint64_t start = done, end = done + 20000 < count ? done + 20000 : count;
    int rc = 0;
    for (; done < end && rc == 0; done++) {
      uint64_t rat = lx_store_next_rat(st, now_ms()), seq;
      msgpack_sbuffer_clear(&sb);
      snprintf(household, sizeof household, "hh-%06" PRIu64, done % 1000000);
      pack_envelope(&pk, "visit", rat, "qd.hx.dy", "cadre-7");
      msgpack_pack_map(&pk, 3);
      pack_str(&pk, "household");
      pack_str(&pk, household);
      pack_str(&pk, "mode");
      pack_str(&pk, "periodic");
      pack_str(&pk, "note");
      /* the note pads the event to about `size` bytes */
      size_t base = sb.size + 2, pad = size > base ? size - base : 0; /* + str8 header */
      if (pad >= sizeof note)
        pad = sizeof note - 1;
      for (size_t i = 0; i < pad; i++)
        note[i] = (char)('a' + (done + i) % 26);
      note[pad] = 0;
      pack_str(&pk, note);
      rc = append(t, rat, &sb, &seq);
    }
    if (rc == 0)
      rc = lx_store_commit(st, t);
    else
      lx_store_abort(st, t);
    if (rc == LX_EFULL && lx_store_grow(st) == 0)
      done = start; /* the batch again, in the larger map */
    else if (rc)
      die("writing: %s", lx_strerror(rc));
  }
  msgpack_sbuffer_destroy(&sb);
  printf("%" PRIu64 "\n", lx_store_head(st)->seq);
}

int main(int argc, char **argv)
{
  bool re = false;
  char err[512];
  int i = 1;
  if (i < argc && strcmp(argv[i], "--rechain") == 0) {
    re = true;
    i++;
  }
  if (argc - i < 2)
    die("usage: lx-tamper [--rechain] DIR byte SEQ [OFF] | delete SEQ | swap N M | sig SEQ"
        " | checkpoint KEYFILE [UNIT] | gen N [SIZE]");
  const char *dir = argv[i], *cmd = argv[i + 1];
  char **a = argv + i + 2;
  int na = argc - i - 2;
  if (sodium_init() < 0)
    die("libsodium");
  lx_log_level = LX_LOG_WARN;
  if (lx_store_open(&st, dir, 1ull << 30, 1ull << 40, err, sizeof err))
    die("%s", err);
  env = lx_store_env(st);

  if (strcmp(cmd, "checkpoint") == 0 && na >= 1) {
    cmd_checkpoint(a[0], na >= 2 ? a[1] : "qd");
  } else if (strcmp(cmd, "gen") == 0 && na >= 1) {
    cmd_gen(arg_u64(a[0]), na >= 2 ? (size_t)arg_u64(a[1]) : 300);
  } else {
    MDB_dbi log, meta;
    MDB_txn *t = wtxn(&log, &meta);
    uint64_t changed;
    size_t len;
    if (strcmp(cmd, "byte") == 0 && na >= 1) {
      changed = arg_u64(a[0]);
      uint8_t *p = get_rec(t, log, changed, &len);
      size_t off = na >= 2 ? (size_t)arg_u64(a[1]) : len - REC_HDR - 1;
      if (REC_HDR + off >= len)
        die("offset %zu is past the event's %zu bytes", off, len - REC_HDR);
      p[REC_HDR + off] ^= 0x01;
      put_rec(t, log, changed, p, len);
      free(p);
    } else if (strcmp(cmd, "delete") == 0 && na >= 1) {
      changed = arg_u64(a[0]);
      uint8_t key[8];
      lx_put_u64be(key, changed);
      MDB_val k = {8, key};
      check(mdb_del(t, log, &k, NULL), "delete");
    } else if (strcmp(cmd, "swap") == 0 && na >= 2) {
      uint64_t n = arg_u64(a[0]), m = arg_u64(a[1]);
      size_t ln, lm;
      uint8_t *pn = get_rec(t, log, n, &ln), *pm = get_rec(t, log, m, &lm);
      put_rec(t, log, n, pm, lm);
      put_rec(t, log, m, pn, ln);
      free(pn);
      free(pm);
      changed = n < m ? n : m;
    } else if (strcmp(cmd, "sig") == 0 && na >= 1) {
      changed = arg_u64(a[0]);
      uint8_t *p = get_rec(t, log, changed, &len);
      uint8_t *sig = find_sig(p + REC_HDR, len - REC_HDR);
      if (sig == NULL)
        die("seq %" PRIu64 " is not a checkpoint record", changed);
      sig[10] ^= 0x01;
      put_rec(t, log, changed, p, len);
      free(p);
    } else {
      die("unknown command or missing arguments: %s", cmd);
    }
    if (re)
      rechain(t, log, meta, changed);
    check(mdb_txn_commit(t), "commit");
  }
  lx_store_free(&st);
  return 0;
}
