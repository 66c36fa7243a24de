/* SPDX-License-Identifier: MIT
 *
 * conf.h: what lianxin-web reads from the daemon's YAML config file
 * (PROTOCOL.md, "The web gateway"): the daemon's query and alerts
 * endpoints from `listen:`, the security and calendar settings it shares
 * with the daemon, and its own `web:` section. The daemon checks its own
 * sections; this reads them leniently and checks `web:` strictly.
 */
#ifndef LXW_CONF_H
#define LXW_CONF_H

#include <stdbool.h>
#include <stddef.h>

#define LXW_PATH_MAX 4096

typedef struct lxw_conf {
  char file[LXW_PATH_MAX];
  char dir[LXW_PATH_MAX];       /* relative paths resolve against this */
  char query[512], alerts[512]; /* the daemon's endpoints */
  char listen[256];             /* HOST:PORT of the gateway */
  char users[LXW_PATH_MAX];     /* the users file, resolved */
  char assets[LXW_PATH_MAX];    /* the dashboard's files, resolved */
  char key[LXW_PATH_MAX];       /* web.key: the gateway's CURVE .key file */
  char server_key[LXW_PATH_MAX];/* security.server_key: the daemon's .key file */
  bool secure;                  /* the config has a security section */
  bool behind_proxy;
  char tls_cert[LXW_PATH_MAX];  /* web.tls.cert: PEM certificate (chain), resolved; "" = no TLS */
  char tls_key[LXW_PATH_MAX];   /* web.tls.key: PEM private key, resolved */
  unsigned long tls_cert_line, tls_key_line; /* where they were given, for errors */
  bool publish_summary;         /* web.open311.publish_summary */
  int utc_offset_min;           /* calendar.utc_offset, minutes */
  int timeout_s;                /* web.timeout: idle connection timeout */
  int max_connections;          /* web.max_connections */
  int threads;                  /* web.threads: HTTP worker threads */
} lxw_conf_t;

/* Writes "FILE:LINE: key: " and the formatted reason into err; returns -1.
 * For checks made after the config is read (tls.c) that name a key's line. */
int lxw_conf_fail(const lxw_conf_t *c, unsigned long line, const char *key, char *err,
                  size_t errlen, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Reads FILE; on error writes "FILE:LINE: key: reason" into err and
 * returns -1. */
int lxw_conf_load(lxw_conf_t *c, const char *file, char *err, size_t errlen);

/* True when HOST:PORT names a loopback address (127.0.0.0/8, ::1,
 * localhost). Splits it into host and port; returns -1 if malformed. */
int lxw_listen_parse(const char *hp, char *host, size_t hn, int *port, bool *loopback);

#endif
