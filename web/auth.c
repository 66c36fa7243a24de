/* SPDX-License-Identifier: MIT
 *
 * auth.c: the users file and the password check (auth.h).
 *
 * Timing: an unknown name is checked against a dummy Argon2id hash made at
 * start with the same parameters as `lianxin passwd`, so a wrong password
 * takes one verification whether the name exists or not. Successful checks
 * are cached for CACHE_TTL seconds under BLAKE2b(secret key, name, 0,
 * password): the cache never holds a password, and only the exact pair that
 * was verified hits it.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

#include "auth.h"

#define CACHE_SLOTS 64
#define CACHE_TTL 60

typedef struct cached {
  uint8_t tag[32];
  int user;
  time_t until;
} cached_t;

static lxw_user_t *g_users;
static size_t g_n;
static char g_dummy[crypto_pwhash_STRBYTES];
static uint8_t g_cache_key[32];
static cached_t g_cache[CACHE_SLOTS];
static size_t g_next_slot;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static int user_err(char *err, size_t errlen, const char *path, const yaml_node_t *n, size_t i,
                    const char *what) {
  snprintf(err, errlen, "%s:%lu: [%zu]: %s", path, n ? (unsigned long)n->start_mark.line + 1 : 1UL,
           i, what);
  return -1;
}

static const char *field(yaml_document_t *d, yaml_node_t *m, const char *key) {
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(d, p->key), *v = yaml_document_get_node(d, p->value);
    if (k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
      return v->type == YAML_SCALAR_NODE ? (const char *)v->data.scalar.value : NULL;
  }
  return NULL;
}

static int add_user(yaml_document_t *d, yaml_node_t *m, size_t i, const char *path, char *err,
                    size_t errlen) {
  if (m->type != YAML_MAPPING_NODE)
    return user_err(err, errlen, path, m, i, "expected a map {name, password_hash, jurisdiction}");
  const char *name = field(d, m, "name"), *hash = field(d, m, "password_hash"),
             *jur = field(d, m, "jurisdiction");
  if (!name || !*name || strlen(name) > 64)
    return user_err(err, errlen, path, m, i, "name: required, 1 to 64 bytes");
  if (!hash || strncmp(hash, "$argon2id$", 10) != 0 || strlen(hash) >= sizeof g_users->hash)
    return user_err(err, errlen, path, m, i, "password_hash: expected an Argon2id string "
                                             "(lianxin passwd NAME writes one)");
  if (!jur || !*jur || strlen(jur) > LXW_JUR_MAX || strspn(jur, "abcdefghijklmnopqrstuvwxyz0123456789-.") != strlen(jur))
    return user_err(err, errlen, path, m, i, "jurisdiction: expected a unit path such as qd.hx");
  for (size_t j = 0; j < g_n; j++)
    if (strcmp(g_users[j].name, name) == 0)
      return user_err(err, errlen, path, m, i, "name: listed twice");
  lxw_user_t *u = &g_users[g_n++];
  snprintf(u->name, sizeof u->name, "%s", name);
  snprintf(u->hash, sizeof u->hash, "%s", hash);
  snprintf(u->jur, sizeof u->jur, "%s", jur);
  return 0;
}

static int load_doc(yaml_document_t *d, const char *path, char *err, size_t errlen) {
  yaml_node_t *root = yaml_document_get_root_node(d);
  if (!root || root->type != YAML_SEQUENCE_NODE)
    return user_err(err, errlen, path, root, 0, "expected a list of users");
  size_t n = (size_t)(root->data.sequence.items.top - root->data.sequence.items.start);
  g_users = calloc(n ? n : 1, sizeof *g_users);
  if (!g_users)
    return user_err(err, errlen, path, root, 0, "out of memory");
  for (size_t i = 0; i < n; i++)
    if (add_user(d, yaml_document_get_node(d, root->data.sequence.items.start[i]), i, path, err,
                 errlen))
      return -1;
  return 0;
}

int lxw_auth_load(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open the users file", path);
    return -1;
  }
  yaml_parser_t p;
  yaml_document_t d;
  int rc = -1;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_file(&p, f);
  if (!yaml_parser_load(&p, &d)) {
    snprintf(err, errlen, "%s:%lu: %s", path, (unsigned long)p.problem_mark.line + 1,
             p.problem ? p.problem : "YAML syntax error");
  } else {
    rc = load_doc(&d, path, err, errlen);
    yaml_document_delete(&d);
  }
  yaml_parser_delete(&p);
  fclose(f);
  if (rc)
    return rc;
  /* The dummy a missing name is checked against: same cost as a real one. */
  uint8_t rnd[16];
  randombytes_buf(rnd, sizeof rnd);
  randombytes_buf(g_cache_key, sizeof g_cache_key);
  if (crypto_pwhash_str(g_dummy, (const char *)rnd, sizeof rnd, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE)) {
    snprintf(err, errlen, "crypto_pwhash_str: out of memory");
    return -1;
  }
  return 0;
}

static void tag_of(const char *name, const char *pw, uint8_t tag[32]) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, g_cache_key, sizeof g_cache_key, 32);
  crypto_generichash_update(&st, (const uint8_t *)name, strlen(name) + 1);
  crypto_generichash_update(&st, (const uint8_t *)pw, strlen(pw));
  crypto_generichash_final(&st, tag, 32);
}

static int cache_find(const uint8_t tag[32]) {
  time_t now = time(NULL);
  int found = -1;
  pthread_mutex_lock(&g_mu);
  for (size_t i = 0; i < CACHE_SLOTS && found < 0; i++)
    if (g_cache[i].until > now && sodium_memcmp(g_cache[i].tag, tag, 32) == 0)
      found = g_cache[i].user;
  pthread_mutex_unlock(&g_mu);
  return found;
}

static void cache_put(const uint8_t tag[32], int user) {
  pthread_mutex_lock(&g_mu);
  cached_t *c = &g_cache[g_next_slot++ % CACHE_SLOTS];
  memcpy(c->tag, tag, 32);
  c->user = user;
  c->until = time(NULL) + CACHE_TTL;
  pthread_mutex_unlock(&g_mu);
}

const lxw_user_t *lxw_auth_check(const char *name, const char *password) {
  uint8_t tag[32];
  tag_of(name, password, tag);
  int hit = cache_find(tag);
  if (hit >= 0)
    return &g_users[hit];
  int idx = -1;
  for (size_t i = 0; i < g_n; i++)
    if (strcmp(g_users[i].name, name) == 0)
      idx = (int)i;
  const char *hash = idx >= 0 ? g_users[idx].hash : g_dummy;
  int ok = crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
  if (!ok || idx < 0)
    return NULL;
  cache_put(tag, idx);
  return &g_users[idx];
}

int lxw_within(const char *jur, const char *path, size_t n) {
  size_t jn = strlen(jur);
  if (n > 0 && path[n - 1] == '.')
    n--;
  return n >= jn && memcmp(path, jur, jn) == 0 && (n == jn || path[jn] == '.');
}
