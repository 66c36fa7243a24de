/* SPDX-License-Identifier: MIT
 *
 * auth.h: CURVE, the in-daemon ZAP handler and the client registry (see
 * auth.c), and who may do what.
 */
#ifndef LX_AUTH_H
#define LX_AUTH_H

#include "daemon.h"
#include "registry.h"

/* Reads the server key and the registry (with `security:`), or checks that
 * plain sockets are all loopback (without). Before anything is bound.
 * Returns 0, or -1 with the reason in err. */
int lx_auth_start(lx_daemon_t *d, char *err, size_t errlen);
/* Binds the ZAP handler (with `security:`), before the sockets it guards. */
int lx_auth_listen(lx_daemon_t *d);
/* For a reload: loads the registry that cfg names, checked against cfg's
 * units, into *next (left empty when security is off). Returns 0, or -1
 * with every problem in *errors (caller frees). Changes nothing in d. */
int lx_auth_reload(lx_daemon_t *d, const lx_config_t *cfg, lx_registry_t *next, char **errors);
/* Makes sock a CURVE server with the daemon's key, before it binds. */
int lx_auth_secure_socket(lx_daemon_t *d, void *sock);
/* The registered client that sent msg, by its ZAP User-Id; NULL when
 * security is off or the name is no longer registered. */
const lx_client_t *lx_auth_client(lx_daemon_t *d, zmq_msg_t *msg);
void lx_auth_stop(lx_daemon_t *d);  /* closes handles (loop still running) */
void lx_auth_free(lx_daemon_t *d);  /* after the loop: socket, registry, key */

#endif
