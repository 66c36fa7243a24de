/* SPDX-License-Identifier: MIT
 *
 * notify.c: the systemd notification protocol (sd_notify(3)), for a unit
 * with Type=notify and WatchdogSec= (config/lianxind.service).
 *
 * READY=1 goes out only after the store is open and every socket is bound,
 * so whatever systemd starts after lianxind finds it answering. The
 * watchdog ping comes from a timer on the daemon's one loop, not from a
 * thread of its own: a loop that is stuck (a plugin spinning, a commit that
 * never returns) stops the pings, and systemd restarts the daemon. The same
 * timer keeps STATUS= (records, open appeals) current for `systemctl
 * status`, sending it only when it changed. Without NOTIFY_SOCKET nothing
 * here does anything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

#define STATUS_MS 1000 /* STATUS= at most this often, when it changed */

struct lx_notify {
  uv_timer_t timer;
  uint64_t watchdog_ms; /* ping interval, 0 without a watchdog */
  uint64_t since_status;
  char status[160];
};

static void status_text(lx_daemon_t *d, const char *what, char *out, size_t len) {
  const lx_head_t *h = lx_store_head(d->store);
  const lx_counters_t *c = lx_store_counters(d->store);
  snprintf(out, len, "%s: %llu records, %llu open appeals", what, (unsigned long long)h->seq,
           (unsigned long long)c->appeals_open);
}

static void send_status(lx_daemon_t *d, const char *what) {
  char text[160];
  status_text(d, what, text, sizeof text);
  if (strcmp(text, d->notify->status) == 0)
    return;
  snprintf(d->notify->status, sizeof d->notify->status, "%s", text);
  sd_notifyf(0, "STATUS=%s", text);
}

static void on_tick(uv_timer_t *t) {
  lx_daemon_t *d = t->data;
  lx_notify_t *n = d->notify;
  if (n->watchdog_ms)
    sd_notify(0, "WATCHDOG=1");
  n->since_status += uv_timer_get_repeat(t);
  if (n->since_status >= STATUS_MS) {
    n->since_status = 0;
    send_status(d, "serving");
  }
}

/* The ping interval: a third of WATCHDOG_USEC, so a late tick still comes
 * well within half of it. 0 when there is no (usable) watchdog. */
static uint64_t watchdog_ms(void) {
  const char *raw = getenv("WATCHDOG_USEC");
  uint64_t usec = 0;
  int rc = sd_watchdog_enabled(0, &usec);
  if (rc < 0) {
    lx_logf(LX_LOG_WARN, "notify", "WATCHDOG_USEC is not a number of microseconds; no watchdog",
            LXF_S("value", raw));
    return 0;
  }
  if (rc == 0 || usec < 3000)
    return 0;
  return usec / 3000;
}

void lx_notify_ready(lx_daemon_t *d) {
  if (!getenv("NOTIFY_SOCKET"))
    return;
  lx_notify_t *n = calloc(1, sizeof *n);
  if (!n)
    return;
  d->notify = n;
  n->watchdog_ms = watchdog_ms();
  uint64_t every = n->watchdog_ms && n->watchdog_ms < STATUS_MS ? n->watchdog_ms : STATUS_MS;
  uv_timer_init(d->loop, &n->timer);
  n->timer.data = d;
  uv_timer_start(&n->timer, on_tick, every, every);
  char text[160];
  status_text(d, "serving", text, sizeof text);
  snprintf(n->status, sizeof n->status, "%s", text);
  sd_notifyf(0, "READY=1\nSTATUS=%s\nMAINPID=%lu", text, (unsigned long)getpid());
  if (n->watchdog_ms)
    sd_notify(0, "WATCHDOG=1");
  lx_logf(LX_LOG_INFO, "notify", "told systemd we are ready",
          LXF_I("watchdog_ping_ms", n->watchdog_ms));
}

void lx_notify_reloading(lx_daemon_t *d) {
  struct timespec ts;
  if (!d->notify)
    return;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  /* MONOTONIC_USEC lets systemd (253+, Type=notify-reload) match the reload. */
  sd_notifyf(0, "RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
}

void lx_notify_reloaded(lx_daemon_t *d, const char *outcome) {
  char text[160], what[64];
  if (!d->notify)
    return;
  snprintf(what, sizeof what, "serving (%s)", outcome);
  status_text(d, what, text, sizeof text);
  snprintf(d->notify->status, sizeof d->notify->status, "%s", text);
  sd_notifyf(0, "READY=1\nSTATUS=%s", text);
}

static void on_closed(uv_handle_t *h) { free(h->data); }

void lx_notify_stopping(lx_daemon_t *d) {
  lx_notify_t *n = d->notify;
  if (!n)
    return;
  sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing the batch in hand");
  n->timer.data = n;
  uv_close((uv_handle_t *)&n->timer, on_closed);
  d->notify = NULL;
}
