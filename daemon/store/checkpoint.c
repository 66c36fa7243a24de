/* SPDX-License-Identifier: MIT
 *
 * checkpoint.c: signed checkpoints (PROTOCOL.md, the `checkpoint` type).
 *
 * Every `every` records, every `interval` seconds while records arrive,
 * and at clean shutdown, the daemon appends a `checkpoint` record whose
 * body names the record just before it (seq and chain hash) and signs
 * u64be(seq) || hash with its Ed25519 key. An auditor holding the public
 * key can then prove that a head was issued by this daemon: anyone can
 * recompute a chain, but only the key's holder can sign one.
 *
 * The record is committed alone, right after any queued events, so "the
 * record just before" is exactly the head it signs.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "clock.h"
#include "log.h"

struct lx_ckpt {
  lx_daemon_t *d;
  uint8_t sk[crypto_sign_SECRETKEYBYTES];
  uint8_t pk[crypto_sign_PUBLICKEYBYTES];
  uv_timer_t timer;
  bool busy; /* writing one now: no re-entry from the flush it causes */
};

/* Reads a .sign.key file: one line, 128 lowercase hex digits (libsodium's
 * secret key, seed then public key). */
static int read_key(const char *path, uint8_t *sk, char *err, size_t errlen) {
  char line[300];
  struct stat st;
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open: %m", path);
    return -1;
  }
  if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
    lx_warn("checkpoint", "%s is readable by others (mode %03o); it should be 0600", path,
            (unsigned)(st.st_mode & 0777));
  bool got = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  size_t n = 0;
  line[got ? strcspn(line, "\r\n") : 0] = 0;
  if (!got || strlen(line) != 2 * crypto_sign_SECRETKEYBYTES ||
      sodium_hex2bin(sk, crypto_sign_SECRETKEYBYTES, line, strlen(line), NULL, &n, NULL) ||
      n != crypto_sign_SECRETKEYBYTES) {
    snprintf(err, errlen, "%s: expected one line of %d hex digits (lianxin keygen --sign)", path,
             2 * crypto_sign_SECRETKEYBYTES);
    return -1;
  }
  sodium_memzero(line, sizeof line);
  return 0;
}

static void write_checkpoint(lx_ckpt_t *c) {
  lx_daemon_t *d = c->d;
  if (c->busy)
    return;
  c->busy = true;
  lx_ingest_flush_queue(d); /* so the head below is the record just before */
  const lx_head_t *h = lx_store_head(d->store);
  if (h->seq == 0 || h->seq == h->checkpoint) {
    c->busy = false;
    return; /* nothing new since the last one */
  }
  uint8_t msg[8 + LX_HASH_LEN], sig[crypto_sign_BYTES];
  lx_put_u64be(msg, h->seq);
  memcpy(msg + 8, h->hash, LX_HASH_LEN);
  crypto_sign_detached(sig, NULL, msg, sizeof msg, c->sk);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 4);
  lx_mp_pack_cstr(&pk, "seq");
  msgpack_pack_uint64(&pk, h->seq);
  lx_mp_pack_cstr(&pk, "hash");
  msgpack_pack_bin_with_body(&pk, h->hash, LX_HASH_LEN);
  lx_mp_pack_cstr(&pk, "key");
  msgpack_pack_bin_with_body(&pk, c->pk, sizeof c->pk);
  lx_mp_pack_cstr(&pk, "sig");
  msgpack_pack_bin_with_body(&pk, sig, sizeof sig);
  const char *county = lx_config_county(&d->cfg);
  if (lx_ingest_queue(d, "checkpoint", "checkpoint", (lx_str_t){county, strlen(county)},
                      (const uint8_t *)sb.data, sb.size) == 0)
    lx_ingest_flush_queue(d);
  msgpack_sbuffer_destroy(&sb);
  c->busy = false;
}

static void on_timer(uv_timer_t *t) { write_checkpoint(t->data); }

int lx_checkpoint_start(lx_daemon_t *d, char *err, size_t errlen) {
  const lx_checkpoint_conf_t *conf = &d->cfg.checkpoints;
  if (!conf->key)
    return 0;
  lx_ckpt_t *c = calloc(1, sizeof *c);
  if (!c || read_key(conf->key, c->sk, err, errlen)) {
    if (c)
      sodium_memzero(c->sk, sizeof c->sk);
    free(c);
    return -1;
  }
  crypto_sign_ed25519_sk_to_pk(c->pk, c->sk);
  char hex[2 * crypto_sign_PUBLICKEYBYTES + 1];
  sodium_bin2hex(hex, sizeof hex, c->pk, sizeof c->pk);
  lx_info("checkpoint", "signing checkpoints every %d records / %d s with public key %s",
          conf->every, conf->interval, hex);
  c->d = d;
  uint64_t ms = lx_clock_real_delay_ms((uint64_t)conf->interval * 1000);
  uv_timer_init(d->loop, &c->timer);
  c->timer.data = c;
  uv_timer_start(&c->timer, on_timer, ms, ms);
  d->ckpt = c;
  return 0;
}

void lx_checkpoint_maybe(lx_daemon_t *d) {
  lx_ckpt_t *c = d->ckpt;
  if (!c)
    return;
  const lx_head_t *h = lx_store_head(d->store);
  if (h->seq - h->checkpoint >= (uint64_t)d->cfg.checkpoints.every)
    write_checkpoint(c);
}

static void on_closed(uv_handle_t *t) {
  lx_ckpt_t *c = t->data;
  sodium_memzero(c->sk, sizeof c->sk);
  free(c);
}

int lx_checkpoint_key_ok(const char *path, char *err, size_t errlen) {
  uint8_t sk[crypto_sign_SECRETKEYBYTES];
  int rc = read_key(path, sk, err, errlen);
  sodium_memzero(sk, sizeof sk);
  return rc;
}

int lx_checkpoint_restart(lx_daemon_t *d, char *err, size_t errlen) {
  lx_ckpt_t *c = d->ckpt;
  if (c) {
    uv_close((uv_handle_t *)&c->timer, on_closed);
    d->ckpt = NULL;
  }
  return lx_checkpoint_start(d, err, errlen);
}

void lx_checkpoint_stop(lx_daemon_t *d) {
  lx_ckpt_t *c = d->ckpt;
  if (!c)
    return;
  write_checkpoint(c); /* a clean shutdown leaves a signed head */
  uv_close((uv_handle_t *)&c->timer, on_closed);
  d->ckpt = NULL;
}
