/* SPDX-License-Identifier: MIT
 *
 * audit_tools.h: what verify.c (verify) and backup.c (backup, export, import)
 * share: a reader of the log, online or offline, and the chain verifier.
 *
 * A log source yields records in seq order, either from the daemon's query
 * socket (`replay` pages of 10,000) or straight from an LMDB store directory
 * (daemon/store/store.h's layout: `log` u64be seq -> u64be rat | hash[32] | ev;
 * `meta` "head" -> u64be seq | u64be rat | hash[32] | u64be checkpoint),
 * opened read-only in a separate process, so a live daemon keeps serving.
 *
 * The verifier is fed one record at a time and recomputes PROTOCOL.md's
 * chain: h(n) = BLAKE2b-256(h(n-1) || u64be(seq) || u64be(rat) || ev),
 * h(0) = 32 zero bytes. It stops at the first failure and names its seq.
 */
#ifndef LX_CLI_AUDIT_TOOLS_H
#define LX_CLI_AUDIT_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>
#include <msgpack.h>

#include "cli.h"

#define AU_HASH 32
#define AU_PAGE 10000  /* records per replay page: the protocol's maximum */
#define AU_BATCH 4096 /* records hashed at once, spread over threads */
#define AU_THREADS 8

/* One record; the pointers are valid until the next au_src_next. */
typedef struct au_rec {
  uint64_t seq, rat;
  const uint8_t *hash; /* AU_HASH bytes */
  const uint8_t *ev;
  size_t ev_len;
} au_rec_t;

/* The head the source names: meta "head" (offline) or the `head` op. */
typedef struct au_head {
  uint64_t seq, rat, checkpoint;
  bool has_rat; /* online replies carry no rat */
  uint8_t hash[AU_HASH];
} au_head_t;

typedef struct au_src {
  bool offline;
  uint64_t first, last; /* the seqs to read, inclusive; last may be UINT64_MAX */
  au_head_t head;
  bool at_end;          /* the log ended (rather than the range) */
  uint64_t read_seq;    /* the last seq handed out */
  bool done;            /* au_src_next returned 0 */
  /* offline */
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi log, meta;
  MDB_cursor *cur;
  bool started;
  bool nolock;
  /* online */
  cli_t *c;
  void *sock;
  reply_t r;
  bool have_reply;
  bool asked;           /* the next page is asked for, its reply not read */
  const msgpack_object *recs;
  uint32_t idx;
  uint64_t next;
} au_src_t;

/* Opens the log: offline when data_dir is given, else online at c->query.
 * Records from `first` to `last` (UINT64_MAX: to the end) will be read;
 * online, the range ends at the head as it is when the source opens.
 * Returns 0, or EXIT_USAGE after reporting. */
int au_src_open(au_src_t *s, cli_t *c, const char *data_dir, uint64_t first, uint64_t last);
/* Returns 1 with *r filled, 0 at the end of the range, or -1 after
 * reporting an I/O or protocol error. */
int au_src_next(au_src_t *s, au_rec_t *r);
/* Up to max records into r[], valid until the next call: 1 with *n > 0,
 * 0 at the end of the range, -1 after reporting. Online, a batch does not
 * span replay pages. */
int au_src_batch(au_src_t *s, au_rec_t *r, size_t max, size_t *n);
void au_src_close(au_src_t *s);

/* Opens an LMDB environment the way the daemon does (MDB_NOTLS, 64 dbs,
 * 256 readers), adding `flags`. Returns 0 or an LMDB error code. */
int au_env_open(MDB_env **env, const char *dir, unsigned flags);

/* --- the verifier --------------------------------------------------------- */

typedef struct au_vf {
  uint64_t from;          /* the first seq to verify */
  uint64_t expect;        /* the next seq due */
  uint8_t prev[AU_HASH];  /* chain hash of expect - 1 */
  bool anchored;          /* from == 1, or the record at from - 1 was read */
  uint64_t n, first, last, last_rat;
  uint64_t cps, cp_last;  /* checkpoint records seen, and the newest one */
  uint64_t odd;           /* events whose type could not be read */
  bool has_key;
  uint8_t key[32];
  /* the first failure: fail_seq != 0 */
  uint64_t fail_seq;
  char what[96];
  char detail[256];
  msgpack_zone zone;   /* for decoding checkpoint records */
  uint8_t *ok;         /* au_vf_batch: each record's hash check */
  size_t ok_cap;
} au_vf_t;

void au_vf_init(au_vf_t *v, uint64_t from, const uint8_t *key);
void au_vf_free(au_vf_t *v);
/* Feeds one record. Returns 0 while everything holds, 1 on the (first)
 * failure. The record at from - 1 is taken as the trust anchor. */
int au_vf_record(au_vf_t *v, const au_rec_t *r);
/* Feeds n records at once: the same checks and verdict as n calls of
 * au_vf_record, with the hashing spread over the machine's cores. */
int au_vf_batch(au_vf_t *v, const au_rec_t *r, size_t n);
/* Checks the head the source names against what was recomputed; call only
 * when the source reached the head (online: its seq; offline: the end of
 * the log). Returns 0 or 1. */
int au_vf_head(au_vf_t *v, const au_head_t *h);
/* Reads `type` from a top-level msgpack map without allocating. */
bool au_ev_type(const uint8_t *ev, size_t len, const char **type, size_t *n);

/* Reads a .sign.pub file (64 lowercase hex digits) into key. Returns 0 or
 * -1 after reporting. */
int au_read_sign_pub(const char *path, uint8_t key[32]);
/* Decodes exactly 2n hex digits; false on anything else. */
bool au_unhex(const char *s, size_t slen, uint8_t *out, size_t n);

/* False when this process may not write the store in dir (its lock file,
 * or the directory when there is none): then it is opened with MDB_NOLOCK. */
bool au_dir_writable(const char *dir);
/* True when dir does not exist or is an empty directory; *exists says which. */
bool au_dir_fresh(const char *dir, bool *exists);

/* Handles --from/--to for verify and export: returns 1 when o was one. */
int au_range_opts(cli_t *c, int o, const char *arg, uint64_t *from, uint64_t *to);

/* The options verify and export share: --data, --key (a .sign.pub),
 * --from, --to. Exits on a usage error; returns EXIT_USAGE when the key
 * file cannot be read, else 0. */
typedef struct au_range_args {
  const char *data, *key_path;
  uint64_t from, to;
  uint8_t key[32];
} au_range_args_t;
int au_range_cmd(cli_t *c, int argc, char **argv, const char *name, au_range_args_t *a);
/* Prints v's failure: "FAIL at seq S: what" on stdout, the detail on stderr. */
void au_print_fail(const au_vf_t *v);

#endif
