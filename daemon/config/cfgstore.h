/* SPDX-License-Identifier: MIT
 *
 * cfgstore.h: every configuration the daemon ran with, kept in the store
 * (the named LMDB database "configs"), so an audit applies the rules that
 * were in force at each record (PROTOCOL.md "config").
 *
 *   configs: hash (32 bytes, BLAKE2b-256 of the file) -> the file's bytes
 *            "first"   -> the hash in force from seq 1 (no record names it)
 *            "current" -> the hash in force now: "first", or the newest
 *                         `config` record's, changed in that record's
 *                         transaction
 */
#ifndef LX_CFGSTORE_H
#define LX_CFGSTORE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

/* Reads key "first" or "current" into hash. Returns 0, 1 when absent (a
 * store from before configurations were kept, or a new one), or an LMDB
 * error. */
int lx_cfgstore_hash(MDB_txn *txn, const char *which, uint8_t hash[32]);
/* Points *bytes into the store (valid until txn ends) at the configuration
 * with this hash. Returns 0, 1 when absent, or an LMDB error. */
int lx_cfgstore_bytes(MDB_txn *txn, const uint8_t hash[32], const uint8_t **bytes, size_t *n);
/* Keeps cfg's bytes under its hash, in a transaction of its own (a
 * configuration nobody refers to yet is harmless); with `first`, also
 * makes it "first" and "current". Returns 0 or an LMDB error (logged). */
int lx_cfgstore_keep(lx_store_t *s, const lx_config_t *cfg, bool first);
/* Inside the write transaction of a `config` record: "current" = hash. */
int lx_cfgstore_set_current(MDB_txn *txn, const uint8_t hash[32]);

#endif
