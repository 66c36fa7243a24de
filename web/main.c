/* SPDX-License-Identifier: MIT
 *
 * main.c: lianxin-web, the web gateway (PROTOCOL.md, "The web gateway").
 *
 *   lianxin-web --config FILE [--listen HOST:PORT] [--query EP] [--alerts EP]
 *
 * One process: a libmicrohttpd daemon with a few worker threads (epoll,
 * non-blocking sockets: a slow browser costs its own socket and nothing
 * else), a cap on connections, a memory limit per connection that bounds
 * its headers, an idle timeout; and one follower thread for the daemon's
 * alerts. Like the daemon, it refuses a non-loopback address unless its
 * traffic is encrypted: by itself (web.tls: HTTPS through libmicrohttpd's
 * GnuTLS) or by a TLS proxy in front of it (behind_proxy: true). Basic
 * logins must not cross a network in clear.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alerts.h"
#include "auth.h"
#include "conf.h"
#include "dclient.h"
#include "http.h"
#include "tls.h"

#ifndef LXW_ASSETS_INSTALLED
#define LXW_ASSETS_INSTALLED "/usr/local/share/lianxin/web"
#endif

#define CONN_MEMORY_LIMIT (16 * 1024) /* request line + headers, per connection */

enum MHD_Result lxw_handle(void *cls, struct MHD_Connection *conn, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_data_size, void **state);

static const char usage[] =
    "usage: lianxin-web --config FILE [--listen HOST:PORT] [--query EP] [--alerts EP]\n"
    "\n"
    "The web gateway of a Lianxin daemon: the supervisors' dashboard at /, JSON\n"
    "under /api/ (HTTP Basic login against web.users), Open311 GeoReport v2 under\n"
    "/open311/v2/ and Prometheus metrics at /metrics. FILE is the daemon's config:\n"
    "the daemon's endpoints come from listen:, the gateway's settings from web:.\n"
    "\n"
    "  --config FILE      the daemon's YAML config (required)\n"
    "  --listen HOST:PORT where to serve HTTP (default web.listen, 127.0.0.1:7680);\n"
    "                     a non-loopback address needs web.tls (HTTPS) or\n"
    "                     web.behind_proxy: true (a TLS proxy in front)\n"
    "  --query EP         the daemon's query socket (default listen.query)\n"
    "  --alerts EP        the daemon's alerts socket (default listen.alerts)\n"
    "  --help             this text\n";

/* The dashboard's files: web.assets, else beside the binary (the build
 * tree), else where `cmake --install` puts them. */
static void find_assets(lxw_conf_t *c) {
  char exe[PATH_MAX], try[PATH_MAX + 32];
  if (c->assets[0])
    return;
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash)
      *slash = 0;
    snprintf(try, sizeof try, "%s/web-assets/index.html", exe);
    if (access(try, R_OK) == 0) {
      snprintf(c->assets, sizeof c->assets, "%.4000s/web-assets", exe);
      return;
    }
  }
  snprintf(c->assets, sizeof c->assets, "%s", LXW_ASSETS_INSTALLED);
}

static int parse_args(int argc, char **argv, lxw_conf_t *c) {
  static const struct option opts[] = {{"config", 1, 0, 'c'}, {"listen", 1, 0, 'l'},
                                       {"query", 1, 0, 'q'},  {"alerts", 1, 0, 'a'},
                                       {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
  const char *file = NULL, *listen = NULL, *query = NULL, *alerts = NULL;
  char err[1024];
  int o;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
    case 'c': file = optarg; break;
    case 'l': listen = optarg; break;
    case 'q': query = optarg; break;
    case 'a': alerts = optarg; break;
    case 'h': fputs(usage, stdout); exit(0);
    default: fputs(usage, stderr); return 2;
    }
  }
  if (!file || optind < argc) {
    fputs(usage, stderr);
    return 2;
  }
  if (lxw_conf_load(c, file, err, sizeof err)) {
    fprintf(stderr, "lianxin-web: %s\n", err);
    return 1;
  }
  if ((listen && strlen(listen) >= sizeof c->listen) || (query && strlen(query) >= sizeof c->query) ||
      (alerts && strlen(alerts) >= sizeof c->alerts)) {
    fprintf(stderr, "lianxin-web: an option's value is too long\n");
    return 2;
  }
  if (listen)
    strcpy(c->listen, listen);
  if (query)
    strcpy(c->query, query);
  if (alerts)
    strcpy(c->alerts, alerts);
  return 0;
}

/* Fills ss with HOST:PORT of c->listen, refusing a non-loopback address
 * that neither TLS nor a proxy protects. Returns 0 and whether it is IPv6. */
static int listen_addr(const lxw_conf_t *c, struct sockaddr_storage *ss, bool *v6, char *err,
                       size_t errlen) {
  char host[128];
  int port;
  bool loopback;
  if (lxw_listen_parse(c->listen, host, sizeof host, &port, &loopback)) {
    snprintf(err, errlen, "listen: \"%s\": expected HOST:PORT with an IP address", c->listen);
    return -1;
  }
  if (!loopback && !c->behind_proxy && !c->tls_cert[0]) {
    snprintf(err, errlen, "listen: %s is not a loopback address, and HTTP Basic logins must not "
             "cross a network in clear: give web.tls {cert, key} to serve HTTPS, or set "
             "web.behind_proxy: true once a TLS proxy is in front of the gateway", c->listen);
    return -1;
  }
  memset(ss, 0, sizeof *ss);
  *v6 = strchr(host, ':') != NULL;
  if (*v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6, a->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, host, &a->sin6_addr);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET, a->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &a->sin_addr);
  }
  return 0;
}

/* Starts libmicrohttpd; with tls (its PEM text), HTTPS only. */
static struct MHD_Daemon *start_http(const lxw_conf_t *c, const lxw_tls_t *tls, char *err,
                                     size_t errlen) {
  struct sockaddr_storage ss;
  bool v6;
  if (listen_addr(c, &ss, &v6, err, errlen))
    return NULL;
  if (tls->cert && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
    snprintf(err, errlen, "web.tls: this libmicrohttpd was built without TLS (GnuTLS); serve "
             "plain HTTP behind a TLS proxy instead (web.behind_proxy: true)");
    return NULL;
  }
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
                   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0) |
                   (tls->cert ? MHD_USE_TLS : 0);
  struct MHD_OptionItem https[] = {
      {tls->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, tls->cert},
      {MHD_OPTION_HTTPS_MEM_KEY, 0, tls->key},
      {MHD_OPTION_END, 0, NULL}};
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, 0, NULL, NULL, lxw_handle, (void *)c, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)c->timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->threads, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
      MHD_OPTION_ARRAY, https, MHD_OPTION_END);
  if (!d)
    snprintf(err, errlen, "cannot serve HTTP%s on %s (in use, or not an address of this host)",
             tls->cert ? "S" : "", c->listen);
  return d;
}

/* Room for the connection cap: each connection is a descriptor. */
static void raise_fd_limit(int want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)want + 64) {
    rl.rlim_cur = rl.rlim_max < (rlim_t)want + 64 ? rl.rlim_max : (rlim_t)want + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int main(int argc, char **argv) {
  static lxw_conf_t conf;
  char err[1024];
  int rc = parse_args(argc, argv, &conf);
  if (rc)
    return rc;
  find_assets(&conf);
  if (sodium_init() < 0 || lxw_auth_load(conf.users, err, sizeof err) ||
      lxw_dc_init(&conf, err, sizeof err)) {
    fprintf(stderr, "lianxin-web: %s\n", err[0] ? err : "sodium_init failed");
    return 1;
  }
  raise_fd_limit(conf.max_connections);
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits it; main waits */
  lxw_tls_t tls = {0};
  if (conf.tls_cert[0] && lxw_tls_load(&conf, &tls, err, sizeof err)) {
    fprintf(stderr, "lianxin-web: %s\n", err);
    return 1;
  }
  struct MHD_Daemon *http = start_http(&conf, &tls, err, sizeof err);
  lxw_tls_wipe(&tls); /* GnuTLS holds its own copy from here on */
  if (!http || lxw_alerts_start(&conf, err, sizeof err)) {
    fprintf(stderr, "lianxin-web: %s\n", err);
    return 1;
  }
  /* The port bound, which differs from the configured one with port 0. */
  const union MHD_DaemonInfo *bound = MHD_get_daemon_info(http, MHD_DAEMON_INFO_BIND_PORT);
  char where[300];
  snprintf(where, sizeof where, "%s", conf.listen);
  char *colon = strrchr(where, ':');
  if (bound && colon)
    snprintf(colon + 1, sizeof where - (size_t)(colon + 1 - where), "%u", (unsigned)bound->port);
  fprintf(stderr, "lianxin-web: serving http%s://%s/ (daemon query %s, alerts %s, assets %s)\n",
          conf.tls_cert[0] ? "s" : "", where, conf.query, conf.alerts, conf.assets);
  int sig;
  sigwait(&set, &sig);
  fprintf(stderr, "lianxin-web: stopping (signal %d)\n", sig);
  lxw_alerts_stop();
  lxw_sse_shutdown();
  MHD_stop_daemon(http);
  return 0;
}
