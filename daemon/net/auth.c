/* SPDX-License-Identifier: MIT
 *
 * auth.c: CURVE on every socket, and a ZAP handler inside the daemon.
 *
 * Design: with `security:` in the config, the three sockets are CURVE
 * servers, and libzmq asks the ZAP handler (a REP socket on
 * inproc://zeromq.zap.01, served by this loop) about every handshake. The
 * handler admits only keys in the registry and answers with the client's
 * registry name as the User-Id, which libzmq then attaches to every message
 * from that peer (zmq_msg_gets "User-Id"). The ingest, query and alerts
 * handlers look the name up in the *current* registry on each message, so
 * a key removed by a SIGHUP reload loses its rights at once, and new
 * handshakes with it fail.
 *
 * Without `security:` the sockets are plain, which is allowed only when
 * every endpoint is loopback or ipc.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

/* Reads a .key file: line 1 the Z85 public key, line 2 the Z85 secret. */
static int read_server_key(const char *path, char secret[41], char *err, size_t errlen) {
  char pub[128] = "", sec[128] = "";
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  bool ok = fgets(pub, sizeof pub, f) && fgets(sec, sizeof sec, f);
  fclose(f);
  sec[strcspn(sec, "\r\n")] = 0;
  uint8_t raw[32];
  if (!ok || strlen(sec) != 40 || !zmq_z85_decode(raw, sec)) {
    snprintf(err, errlen, "%s: expected two lines, the Z85 public then secret key (lianxin keygen)",
             path);
    return -1;
  }
  memcpy(secret, sec, 41);
  memset(sec, 0, sizeof sec);
  return 0;
}

static bool loopback(const char *ep) {
  static const char *const ok[] = {"ipc://", "inproc://", "tcp://127.", "tcp://localhost:",
                                   "tcp://[::1]:"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (strncmp(ep, ok[i], strlen(ok[i])) == 0)
      return true;
  return false;
}

static int check_plain(lx_daemon_t *d, char *err, size_t errlen) {
  const char *eps[] = {d->cfg.ingest_ep, d->cfg.alerts_ep, d->cfg.query_ep};
  const char *names[] = {"ingest", "alerts", "query"};
  for (int i = 0; i < 3; i++)
    if (!loopback(eps[i])) {
      snprintf(err, errlen,
               "listen.%s: %s is not loopback, and without `security:` the daemon listens only "
               "on loopback or ipc. Make keys (lianxin keygen lianxind; lianxin keygen NAME for "
               "each client), list the clients in a registry, and add `security: {server_key: "
               "lianxind.key, clients: clients.yaml}` (see config/secure.yaml)",
               names[i], eps[i]);
      return -1;
    }
  lx_warn("auth", "no `security:` in the config: sockets are plain (unencrypted, "
                  "unauthenticated), on loopback only");
  return 0;
}

/* --- the ZAP handler ------------------------------------------------------ */

static void zap_reply(void *sock, zmq_msg_t *req, const char *status, const char *text,
                      const char *user) {
  zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
  zmq_send(sock, zmq_msg_data(&req[1]), zmq_msg_size(&req[1]), ZMQ_SNDMORE);
  zmq_send(sock, status, strlen(status), ZMQ_SNDMORE);
  zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
  zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
  zmq_send(sock, "", 0, 0);
}

/* One ZAP request: version, request id, domain, address, identity,
 * mechanism, credentials (the client's 32-byte public key for CURVE). */
static void zap_one(lx_daemon_t *d, void *sock, zmq_msg_t *req, int n) {
  char z85[41] = "?", addr[64] = "";
  if (n < 7 || zmq_msg_size(&req[5]) != 5 || memcmp(zmq_msg_data(&req[5]), "CURVE", 5) ||
      zmq_msg_size(&req[6]) != 32) {
    if (n >= 2)
      zap_reply(sock, req, "400", "CURVE only", "");
    return;
  }
  snprintf(addr, sizeof addr, "%.*s", (int)zmq_msg_size(&req[3]), (char *)zmq_msg_data(&req[3]));
  const lx_client_t *c = lx_registry_by_key(&d->registry, zmq_msg_data(&req[6]));
  if (!c) {
    zmq_z85_encode(z85, zmq_msg_data(&req[6]), 32);
    lx_warn("auth", "refused unknown key %s from %s", z85, addr);
    zap_reply(sock, req, "400", "unknown key", "");
    return;
  }
  lx_debug("auth", "admitted %s (%s) from %s", c->name, lx_role_name(c->role), addr);
  zap_reply(sock, req, "200", "OK", c->name);
}

static void on_zap(lx_zsock_t *zs) {
  lx_daemon_t *d = zs->data;
  for (int k = 0; k < 256; k++) {
    zmq_msg_t req[8];
    int n = 0, more = 1;
    size_t len = sizeof more;
    while (more) {
      zmq_msg_t *m = &req[n < 8 ? n : 7];
      if (n >= 8)
        zmq_msg_close(m);
      zmq_msg_init(m);
      if (zmq_msg_recv(m, zs->sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
        zmq_msg_close(m);
        break;
      }
      n += n < 8;
      zmq_getsockopt(zs->sock, ZMQ_RCVMORE, &more, &len);
    }
    if (n == 0)
      break;
    zap_one(d, zs->sock, req, n);
    for (int i = 0; i < n; i++)
      zmq_msg_close(&req[i]);
  }
  lx_zsock_rearm(zs);
}

/* --- SIGHUP ---------------------------------------------------------------- */

int lx_auth_reload(lx_daemon_t *d, const lx_config_t *cfg, lx_registry_t *next, char **errors) {
  *next = (lx_registry_t){0};
  *errors = NULL;
  if (!d->secure)
    return 0;
  return lx_registry_load(cfg->security.clients, cfg, next, errors);
}

/* --- API ------------------------------------------------------------------- */

int lx_auth_start(lx_daemon_t *d, char *err, size_t errlen) {
  const lx_security_conf_t *sec = &d->cfg.security;
  if (!sec->server_key)
    return check_plain(d, err, errlen);
  char *errors = NULL;
  if (read_server_key(sec->server_key, d->server_secret, err, errlen))
    return -1;
  if (lx_registry_load(sec->clients, &d->cfg, &d->registry, &errors)) {
    snprintf(err, errlen, "client registry:\n%s", errors);
    free(errors);
    return -1;
  }
  d->secure = true;
  lx_info("auth", "CURVE on every socket; %zu registered client(s)", d->registry.n);
  return 0;
}

int lx_auth_listen(lx_daemon_t *d) {
  if (!d->secure)
    return 0;
  d->zap_sock = zmq_socket(d->zctx, ZMQ_REP);
  int zero = 0;
  zmq_setsockopt(d->zap_sock, ZMQ_LINGER, &zero, sizeof zero);
  if (!d->zap_sock || zmq_bind(d->zap_sock, ZAP_ENDPOINT)) {
    lx_error("auth", "cannot bind the ZAP handler: %s", zmq_strerror(errno));
    return -1;
  }
  return lx_zsock_init(d->loop, &d->zap_z, d->zap_sock, on_zap, d);
}

int lx_auth_secure_socket(lx_daemon_t *d, void *sock) {
  if (!d->secure)
    return 0;
  int one = 1;
  if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
      zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, d->server_secret, 40) ||
      zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "lianxin", 7))
    return -1;
  return 0;
}

const lx_client_t *lx_auth_client(lx_daemon_t *d, zmq_msg_t *msg) {
  if (!d->secure)
    return NULL;
  return lx_registry_by_name(&d->registry, zmq_msg_gets(msg, "User-Id"));
}

void lx_auth_stop(lx_daemon_t *d) {
  if (!d->secure || !d->zap_sock)
    return;
  lx_zsock_close(&d->zap_z);
}

void lx_auth_free(lx_daemon_t *d) {
  if (d->zap_sock)
    zmq_close(d->zap_sock);
  d->zap_sock = NULL;
  lx_registry_free(&d->registry);
  memset(d->server_secret, 0, sizeof d->server_secret);
}
