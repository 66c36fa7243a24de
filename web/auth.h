/* SPDX-License-Identifier: MIT
 *
 * auth.h: HTTP Basic logins against the users file (PROTOCOL.md, "The web
 * gateway"): a YAML list of {name, password_hash, jurisdiction}, where
 * password_hash is an Argon2id string as crypto_pwhash_str writes it.
 */
#ifndef LXW_AUTH_H
#define LXW_AUTH_H

#include <stddef.h>

#define LXW_JUR_MAX 100

typedef struct lxw_user {
  char name[65];
  char hash[128];
  char jur[LXW_JUR_MAX + 1]; /* a unit path: the user sees it and below */
} lxw_user_t;

/* Loads the users file; errors as FILE:LINE: key: reason. */
int lxw_auth_load(const char *path, char *err, size_t errlen);

/* The user whose name and password these are, or NULL. A wrong password
 * costs one Argon2 verification whether or not the name exists; a right
 * one is remembered for a minute (keyed by a hash of name and password),
 * so a dashboard's many requests do not each cost one. Thread-safe. */
const lxw_user_t *lxw_auth_check(const char *name, const char *password);

/* True when path (a unit path, or a prefix with a trailing dot) lies
 * inside jur at a code boundary. */
int lxw_within(const char *jur, const char *path, size_t n);

#endif
