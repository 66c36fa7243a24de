/* SPDX-License-Identifier: MIT
 *
 * reload.c: SIGHUP reloads the configuration without a restart.
 */
#include <signal.h>
#include <stdlib.h>

#include "auth.h"
#include "log.h"
#include "notify.h"
#include "reload.h"

static void on_hup(uv_signal_t *h, int signum) {
  lx_daemon_t *d = h->data;
  lx_registry_t next;
  char *errors = NULL;
  lx_notify_reloading(d);
  if (lx_auth_reload(d, &d->cfg, &next, &errors)) {
    lx_error("reload", "SIGHUP: the registry has errors; keeping the old one");
    lx_log_lines(LX_LOG_ERROR, "reload", errors);
    free(errors);
    lx_notify_reloaded(d, "reload refused");
    return;
  }
  if (d->secure) {
    lx_registry_free(&d->registry);
    d->registry = next;
    lx_info("reload", "SIGHUP: registry reloaded, %zu client(s)", d->registry.n);
  }
  lx_notify_reloaded(d, "reloaded");
}

void lx_reload_start(lx_daemon_t *d) {
  uv_signal_init(d->loop, &d->sighup);
  d->sighup.data = d;
  uv_signal_start(&d->sighup, on_hup, SIGHUP);
}

void lx_reload_stop(lx_daemon_t *d) {
  if (uv_is_active((uv_handle_t *)&d->sighup) && !uv_is_closing((uv_handle_t *)&d->sighup))
    uv_close((uv_handle_t *)&d->sighup, NULL);
}
