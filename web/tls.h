/* SPDX-License-Identifier: MIT
 *
 * tls.h: the gateway's HTTPS certificate and key (web.tls), read from their
 * PEM files and checked before the gateway binds (tls.c).
 */
#ifndef LXW_TLS_H
#define LXW_TLS_H

#include <stddef.h>

#include "conf.h"

typedef struct lxw_tls {
  char *cert; /* PEM, NUL-terminated (libmicrohttpd takes C strings) */
  char *key;  /* PEM, NUL-terminated; wiped by lxw_tls_wipe */
  size_t key_n;
} lxw_tls_t;

/* Reads c->tls_cert and c->tls_key into t and checks with GnuTLS that the
 * certificate parses, that the key parses (an encrypted key does not: the
 * gateway has no passphrase to ask for) and that the key is the
 * certificate's. On error writes "FILE:LINE: web.tls.KEY: reason" and
 * returns -1 with t empty. Caller frees t with lxw_tls_wipe. */
int lxw_tls_load(const lxw_conf_t *c, lxw_tls_t *t, char *err, size_t errlen);

/* Zeroes the key's bytes (sodium_memzero) and frees both buffers: call it
 * once libmicrohttpd has started, since GnuTLS keeps its own copy. */
void lxw_tls_wipe(lxw_tls_t *t);

#endif
