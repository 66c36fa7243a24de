/* SPDX-License-Identifier: MIT
 *
 * main.c: lianxind's entry point. Parses the command line, loads and checks
 * the configuration (exiting non-zero before anything is bound if it is
 * wrong), opens the store, binds the three sockets, and runs the one libuv
 * loop until SIGINT or SIGTERM. Shutdown closes every handle, runs the loop
 * until it is empty, and only then closes the sockets and the store.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <zmq.h>

#include "audit.h"
#include "auth.h"
#include "calendar.h"
#include "checkpoint.h"
#include "clock.h"
#include "daemon.h"
#include "log.h"
#include "notify.h"
#include "reload.h"
#include "plugin_host.h"

typedef struct opts {
  const char *config, *data, *ingest, *alerts, *query, *check, *audit;
  const char *log_level, *log_format;
} opts_t;

static void usage(FILE *f) {
  fprintf(f,
          "usage: lianxind --config FILE [options]\n"
          "       lianxind --check-config FILE\n"
          "\n"
          "Lianxin daemon: takes visit, appeal, resolution and feedback events over\n"
          "ZeroMQ, stores them durably in an LMDB hash-chained log, and answers queries.\n"
          "\n"
          "options:\n"
          "  -c, --config FILE        the YAML configuration (see docs/config.md)\n"
          "  -d, --data DIR           the store directory (overrides store.path)\n"
          "      --ingest EP          ingest ROUTER endpoint (overrides listen.ingest)\n"
          "      --alerts EP          alerts XPUB endpoint (overrides listen.alerts)\n"
          "      --query EP           query ROUTER endpoint (overrides listen.query)\n"
          "                           EP is any ZeroMQ endpoint: tcp://127.0.0.1:7601, ipc:///run/lx.sock\n"
          "      --check-config FILE  check FILE, print each problem as FILE:LINE: key: reason,\n"
          "                           and exit 0 if it is valid, 1 if not; loads each plugin\n"
          "                           to check its own settings (the store is not opened)\n"
          "      --audit DIR          rebuild the state of the store in DIR (live or a backup)\n"
          "                           from its log alone, compare it with the stored state,\n"
          "                           re-check every escalation, print a report; exit 0 when\n"
          "                           there is no discrepancy, 1 when there is, 2 on error\n"
          "      --log-level LEVEL    error, warn, info (default) or debug\n"
          "      --log-format FORMAT  text (default) or json: one JSON object per line on stderr\n"
          "  -h, --help               this help\n"
          "  -V, --version            print the version\n"
          "\n"
          "environment:\n"
          "  LIANXIN_FAKE_CLOCK=START_MS[:SPEED]  run on a test clock (never in production)\n"
          "  NOTIFY_SOCKET, WATCHDOG_USEC         set by systemd (Type=notify, WatchdogSec=):\n"
          "                                       READY, STATUS, WATCHDOG, RELOADING, STOPPING\n"
          "\n"
          "SIGINT or SIGTERM: finish and acknowledge the batch in hand, then exit 0.\n"
          "SIGHUP: reload the whole configuration file; a file with any error is refused\n"
          "whole and the old one stays in force (docs/config.md, \"Reloading\").\n");
}

static int parse_args(int argc, char **argv, opts_t *o) {
  enum { O_INGEST = 256, O_ALERTS, O_QUERY, O_CHECK, O_LOGLEVEL, O_AUDIT, O_LOGFORMAT };
  static const struct option longs[] = {
      {"config", required_argument, NULL, 'c'}, {"data", required_argument, NULL, 'd'},
      {"ingest", required_argument, NULL, O_INGEST}, {"alerts", required_argument, NULL, O_ALERTS},
      {"query", required_argument, NULL, O_QUERY}, {"check-config", required_argument, NULL, O_CHECK},
      {"log-level", required_argument, NULL, O_LOGLEVEL}, {"help", no_argument, NULL, 'h'},
      {"audit", required_argument, NULL, O_AUDIT},
      {"log-format", required_argument, NULL, O_LOGFORMAT},
      {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "c:d:hV", longs, NULL)) != -1) {
    switch (c) {
    case 'c': o->config = optarg; break;
    case 'd': o->data = optarg; break;
    case O_INGEST: o->ingest = optarg; break;
    case O_ALERTS: o->alerts = optarg; break;
    case O_QUERY: o->query = optarg; break;
    case O_CHECK: o->check = optarg; break;
    case O_LOGLEVEL: o->log_level = optarg; break;
    case O_AUDIT: o->audit = optarg; break;
    case O_LOGFORMAT: o->log_format = optarg; break;
    case 'h': usage(stdout); exit(0);
    case 'V': printf("lianxind 0.1.0 (protocol 1)\n"); exit(0);
    default: usage(stderr); return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "lianxind: unexpected argument: %s\n", argv[optind]);
    return -1;
  }
  if (!o->check && !o->config) {
    fprintf(stderr, "lianxind: --config FILE is required (try --help)\n");
    return -1;
  }
  return 0;
}

/* --check-config's second half: loads each plugin of d->cfg and runs its
 * init, which reads and checks the plugin's own settings (reported as
 * FILE:LINE: plugins[i].KEY: reason in *errors). The plugins open their
 * databases in a scratch store in a temporary directory, removed after:
 * the configured store is never opened, and nothing is bound. No on_timer
 * runs, so no plugin starts a thread or a connection (lx/plugin.h: init). */
static int check_plugins(lx_daemon_t *d, char **errors) {
  char scratch[] = "/tmp/lx-check-XXXXXX", err[600];
  uv_loop_t loop;
  if (!d->cfg.n_plugins)
    return 0;
  if (lx_store_open_scratch(&d->store, scratch, 1 << 20, d->cfg.map_max, err, sizeof err)) {
    lx_errors_add(errors, "cannot check the plugins: %s", err);
    lx_store_scratch_free(&d->store, scratch);
    return -1;
  }
  uv_loop_init(&loop);
  d->loop = &loop;
  int rc = lx_calendar_new(&d->cfg, &d->cal) || lx_plugins_load(d, errors) ? -1 : 0;
  lx_plugins_close(d);
  uv_run(&loop, UV_RUN_DEFAULT); /* the plugins' timers close */
  uv_loop_close(&loop);
  lx_calendar_free(&d->cal);
  lx_store_scratch_free(&d->store, scratch);
  return rc;
}

static int check_config(const char *file) {
  lx_daemon_t d = {0};
  char *errors = NULL;
  int rc = lx_config_load(file, &d.cfg, &errors);
  if (rc == 0) {
    lx_log_level = LX_LOG_WARN; /* no "loaded" lines: only the problems */
    rc = check_plugins(&d, &errors);
  }
  if (rc)
    fputs(errors ? errors : "invalid configuration\n", stderr);
  else
    printf("%s: ok (%zu units, %zu categories, %zu plugins)\n", file, d.cfg.n_units,
           d.cfg.n_categories, d.cfg.n_plugins);
  free(errors);
  lx_config_free(&d.cfg);
  return rc ? 1 : 0;
}

/* Creates, configures and binds one socket. */
static void *bind_socket(lx_daemon_t *d, int type, const char *ep, const char *what) {
  void *s = zmq_socket(d->zctx, type);
  /* Per connection: at most RCVHWM requests waiting to be read (a sender
   * past it is held back by ZeroMQ, not buffered) and SNDHWM replies or
   * alerts waiting to be taken (past it they are dropped: a client that
   * never reads its acks loses acks, never the daemon's memory). With the
   * 1 MiB frame cap that bounds each connection's queues. */
  int zero = 0, one = 1, rcvhwm = 1000, sndhwm = 10000;
  int64_t maxmsg = LX_FRAME_MAX;
  if (!s)
    return NULL;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  /* A frame over 1 MiB is refused by the transport (the peer is dropped);
   * up to that, the daemon reads it and answers E_TOO_BIG past 64 KiB. */
  zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
  zmq_setsockopt(s, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
  zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
  if (type == ZMQ_ROUTER)
    zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
  /* With keys, the daemon sees each subscription and grants only what the
   * subscriber's jurisdiction allows (alerts.c). */
  if (type == ZMQ_XPUB && d->secure)
    zmq_setsockopt(s, ZMQ_XPUB_MANUAL, &one, sizeof one);
  if (lx_auth_secure_socket(d, s)) {
    lx_error("main", "cannot make the %s socket a CURVE server: %s", what, zmq_strerror(errno));
    zmq_close(s);
    return NULL;
  }
  if (zmq_bind(s, ep)) {
    lx_error("main", "cannot bind the %s socket to %s: %s", what, ep, zmq_strerror(errno));
    zmq_close(s);
    return NULL;
  }
  lx_logf(LX_LOG_INFO, "main", "listening", LXF_S("socket", what), LXF_S("endpoint", ep));
  return s;
}

static void on_signal(uv_signal_t *h, int signum) {
  lx_daemon_t *d = h->data;
  if (d->stopping++)
    return;
  lx_info("main", "%s: stopping", strsignal(signum));
  lx_notify_stopping(d);
  lx_checkpoint_stop(d);
  lx_plugins_close(d);
  lx_ingest_stop(d);
  lx_query_stop(d);
  lx_alerts_stop(d);
  lx_auth_stop(d);
  lx_reload_stop(d);
  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
}

static int start(lx_daemon_t *d) {
  char err[2048];
  if (lx_auth_start(d, err, sizeof err)) {
    lx_error("main", "%s", err);
    return -1;
  }
  if (lx_store_open(&d->store, d->cfg.store_path, d->cfg.map_size, d->cfg.map_max, err,
                    sizeof err)) {
    lx_error("main", "cannot open the store: %s", err);
    return -1;
  }
  const lx_head_t *h = lx_store_head(d->store);
  lx_logf(LX_LOG_INFO, "main", "store open", LXF_S("path", d->cfg.store_path),
          LXF_I("records", h->seq));
  char *errors = NULL;
  if (lx_calendar_new(&d->cfg, &d->cal) || lx_plugins_load(d, &errors)) {
    lx_log_lines(LX_LOG_ERROR, "main", errors ? errors : "cannot start the plugins");
    free(errors);
    return -1;
  }
  if (lx_checkpoint_start(d, err, sizeof err)) {
    lx_error("main", "checkpoints: %s", err);
    return -1;
  }
  d->zctx = zmq_ctx_new();
  if (lx_auth_listen(d))
    return -1;
  if (!(d->ingest_sock = bind_socket(d, ZMQ_ROUTER, d->cfg.ingest_ep, "ingest")) ||
      !(d->alerts_sock = bind_socket(d, ZMQ_XPUB, d->cfg.alerts_ep, "alerts")) ||
      !(d->query_sock = bind_socket(d, ZMQ_ROUTER, d->cfg.query_ep, "query")))
    return -1;
  if (lx_ingest_start(d) || lx_query_start(d) || lx_alerts_start(d))
    return -1;
  uv_signal_init(d->loop, &d->sigint);
  uv_signal_init(d->loop, &d->sigterm);
  d->sigint.data = d->sigterm.data = d;
  uv_signal_start(&d->sigint, on_signal, SIGINT);
  uv_signal_start(&d->sigterm, on_signal, SIGTERM);
  lx_reload_start(d);
  /* A changed file is recorded before anything it governs; then the
   * escalations that fell due while the daemon was down are made. */
  if (lx_reload_record_start(d))
    return -1;
  lx_plugins_start(d);
  lx_notify_ready(d);
  return 0;
}

static void finish(lx_daemon_t *d) {
  void *socks[] = {d->ingest_sock, d->alerts_sock, d->query_sock};
  for (int i = 0; i < 3; i++)
    if (socks[i])
      zmq_close(socks[i]);
  lx_auth_free(d);
  if (d->zctx)
    zmq_ctx_term(d->zctx);
  lx_store_free(&d->store);
  lx_calendar_free(&d->cal);
  lx_config_free(&d->cfg);
}

int main(int argc, char **argv) {
  opts_t o = {0};
  lx_daemon_t d = {0};
  char *errors = NULL;
  if (parse_args(argc, argv, &o))
    return 2;
  if (o.check)
    return check_config(o.check);
  if (o.log_level && (lx_log_level = lx_log_level_parse(o.log_level)) < 0) {
    fprintf(stderr, "lianxind: --log-level: expected error, warn, info or debug\n");
    return 2;
  }
  if (o.log_format && (lx_log_format = lx_log_format_parse(o.log_format)) < 0) {
    fprintf(stderr, "lianxind: --log-format: expected text or json\n");
    return 2;
  }
  /* libsodium asks for this before any other call (it readies the random
   * source the daemon's ids come from). libzmq makes the same call when it
   * starts a context, but the daemon should not lean on that. */
  if (sodium_init() < 0) {
    fprintf(stderr, "lianxind: libsodium could not be initialised\n");
    return 1;
  }
  if (lx_clock_init()) {
    fprintf(stderr, "lianxind: LIANXIN_FAKE_CLOCK: expected START_MS[:SPEED]\n");
    return 2;
  }
  if (o.audit)
    return lx_audit_run(o.config, o.audit, stdout);
  if (lx_config_load(o.config, &d.cfg, &errors)) {
    lx_log_lines(LX_LOG_ERROR, "config", errors ? errors : "invalid configuration");
    free(errors);
    return 1;
  }
  /* The config's log settings apply unless a flag said otherwise. */
  if (!o.log_format && d.cfg.log.format)
    lx_log_format = lx_log_format_parse(d.cfg.log.format);
  if (!o.log_level && d.cfg.log.level)
    lx_log_level = lx_log_level_parse(d.cfg.log.level);
  d.opt_data = o.data;
  d.opt_ingest = o.ingest;
  d.opt_alerts = o.alerts;
  d.opt_query = o.query;
  d.opt_log_format = o.log_format != NULL;
  d.opt_log_level = o.log_level != NULL;
  lx_reload_overrides(&d, &d.cfg);
  signal(SIGPIPE, SIG_IGN);
  if (lx_clock_is_fake())
    lx_warn("main", "LIANXIN_FAKE_CLOCK is set: receive times come from a test clock");
  d.loop = uv_default_loop();
  d.started_ms = lx_clock_now_ms();
  int rc = start(&d);
  if (rc == 0) {
    uv_run(d.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(d.loop);
    if (rc)
      lx_error("main", "handles still open at exit: %s", uv_strerror(rc));
    lx_logf(LX_LOG_INFO, "main", "stopped", LXF_I("seq", lx_store_head(d.store)->seq));
  } else {
    lx_checkpoint_stop(&d);
    lx_plugins_close(&d);
    lx_ingest_stop(&d);
    lx_query_stop(&d);
    lx_alerts_stop(&d);
    lx_auth_stop(&d);
    uv_run(d.loop, UV_RUN_DEFAULT);
  }
  finish(&d);
  return rc ? 1 : 0;
}
