/* SPDX-License-Identifier: MIT
 *
 * cfgstore.c: see cfgstore.h. The database is opened on each use: it is
 * touched a few times per configuration change, never per event.
 */
#include <string.h>

#include "cfgstore.h"
#include "log.h"

#define DB_NAME "configs"

static int open_db(MDB_txn *txn, bool create, MDB_dbi *dbi) {
  return mdb_dbi_open(txn, DB_NAME, create ? MDB_CREATE : 0, dbi);
}

int lx_cfgstore_hash(MDB_txn *txn, const char *which, uint8_t hash[32]) {
  MDB_dbi dbi;
  MDB_val k = {strlen(which), (void *)which}, v;
  int rc = open_db(txn, false, &dbi);
  if (rc == 0)
    rc = mdb_get(txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND)
    return 1;
  if (rc == 0 && v.mv_size != 32)
    rc = MDB_CORRUPTED;
  if (rc == 0)
    memcpy(hash, v.mv_data, 32);
  return rc;
}

int lx_cfgstore_bytes(MDB_txn *txn, const uint8_t hash[32], const uint8_t **bytes, size_t *n) {
  MDB_dbi dbi;
  MDB_val k = {32, (void *)hash}, v;
  int rc = open_db(txn, false, &dbi);
  if (rc == 0)
    rc = mdb_get(txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND)
    return 1;
  if (rc == 0) {
    *bytes = v.mv_data;
    *n = v.mv_size;
  }
  return rc;
}

static int put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, const void *val,
               size_t vlen) {
  MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
  return mdb_put(txn, dbi, &k, &v, 0);
}

static int keep_once(lx_store_t *s, const lx_config_t *cfg, bool first) {
  MDB_txn *txn;
  MDB_dbi dbi;
  int rc = mdb_txn_begin(lx_store_env(s), NULL, 0, &txn);
  if (rc)
    return rc;
  if ((rc = open_db(txn, true, &dbi)) ||
      (rc = put(txn, dbi, cfg->hash, 32, cfg->n_bytes ? cfg->bytes : (const uint8_t *)"",
                cfg->n_bytes)) ||
      (first && ((rc = put(txn, dbi, "first", 5, cfg->hash, 32)) ||
                 (rc = put(txn, dbi, "current", 7, cfg->hash, 32))))) {
    mdb_txn_abort(txn);
    return rc;
  }
  return mdb_txn_commit(txn);
}

int lx_cfgstore_keep(lx_store_t *s, const lx_config_t *cfg, bool first) {
  int rc;
  while ((rc = keep_once(s, cfg, first)) == MDB_MAP_FULL && lx_store_grow(s) == 0)
    ;
  if (rc)
    lx_error("config", "cannot keep the configuration in the store: %s", mdb_strerror(rc));
  return rc;
}

int lx_cfgstore_set_current(MDB_txn *txn, const uint8_t hash[32]) {
  MDB_dbi dbi;
  int rc = open_db(txn, true, &dbi);
  return rc ? rc : put(txn, dbi, "current", 7, hash, 32);
}
