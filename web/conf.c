/* SPDX-License-Identifier: MIT
 *
 * conf.c: reads the gateway's settings from the daemon's config file
 * (conf.h). The file is the daemon's, so the daemon's own sections are
 * only looked up for the few values the gateway shares (endpoints, the
 * server key, the UTC offset); the `web:` section is the gateway's and is
 * checked key by key, each mistake reported as FILE:LINE: web.KEY: reason.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "conf.h"

typedef struct ctx {
  lxw_conf_t *c;
  yaml_document_t *doc;
  char *err;
  size_t errlen;
} ctx_t;

static int fail(ctx_t *x, const yaml_node_t *n, const char *key, const char *fmt, const char *arg) {
  int len = snprintf(x->err, x->errlen, "%s:%lu: %s: ", x->c->file,
                     n ? (unsigned long)n->start_mark.line + 1 : 1UL, key);
  if (len >= 0 && (size_t)len < x->errlen)
    snprintf(x->err + len, x->errlen - (size_t)len, fmt, arg);
  return -1;
}

int lxw_conf_fail(const lxw_conf_t *c, unsigned long line, const char *key, char *err,
                  size_t errlen, const char *fmt, ...) {
  int len = snprintf(err, errlen, "%s:%lu: %s: ", c->file, line, key);
  if (len >= 0 && (size_t)len < errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + len, errlen - (size_t)len, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static const char *scalar(const yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The value under key in mapping m, or NULL. */
static yaml_node_t *get(yaml_document_t *d, const yaml_node_t *m, const char *key) {
  if (!m || m->type != YAML_MAPPING_NODE)
    return NULL;
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
    const char *k = scalar(yaml_document_get_node(d, p->key));
    if (k && strcmp(k, key) == 0)
      return yaml_document_get_node(d, p->value);
  }
  return NULL;
}

static int copy_str(ctx_t *x, const yaml_node_t *n, const char *key, char *out, size_t on) {
  const char *s = scalar(n);
  if (!s || !*s)
    return fail(x, n, key, "expected a non-empty string%s", "");
  if (strlen(s) >= on)
    return fail(x, n, key, "too long (at most %s bytes)", on > 300 ? "4095" : "255");
  strcpy(out, s);
  return 0;
}

static int copy_path(ctx_t *x, const yaml_node_t *n, const char *key, char *out) {
  char tmp[LXW_PATH_MAX];
  if (copy_str(x, n, key, tmp, sizeof tmp))
    return -1;
  if (tmp[0] == '/')
    return snprintf(out, LXW_PATH_MAX, "%s", tmp) < LXW_PATH_MAX ? 0 : fail(x, n, key, "too long%s", "");
  if (snprintf(out, LXW_PATH_MAX, "%s/%s", x->c->dir, tmp) >= LXW_PATH_MAX)
    return fail(x, n, key, "too long%s", "");
  return 0;
}

static int get_bool(ctx_t *x, const yaml_node_t *n, const char *key, bool *out) {
  const char *s = scalar(n);
  if (s && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
    *out = s[0] == 't';
    return 0;
  }
  return fail(x, n, key, "expected true or false%s", "");
}

static int get_int(ctx_t *x, const yaml_node_t *n, const char *key, int lo, int hi, int *out) {
  const char *s = scalar(n);
  char *end;
  errno = 0;
  long v = s ? strtol(s, &end, 10) : 0;
  if (!s || !*s || *end || errno || v < lo || v > hi) {
    char range[64];
    snprintf(range, sizeof range, "%d..%d", lo, hi);
    return fail(x, n, key, "expected an integer in %s", range);
  }
  *out = (int)v;
  return 0;
}

static int read_offset(ctx_t *x, const yaml_node_t *n) {
  const char *s = scalar(n);
  int h, m;
  char sign, extra;
  if (!s || sscanf(s, "%c%2d:%2d%c", &sign, &h, &m, &extra) != 3 || (sign != '+' && sign != '-') ||
      h > 14 || m > 59)
    return fail(x, n, "calendar.utc_offset", "expected a UTC offset such as \"+08:00\"%s", "");
  x->c->utc_offset_min = (sign == '-' ? -1 : 1) * (h * 60 + m);
  return 0;
}

static int read_open311(ctx_t *x, const yaml_node_t *m) {
  yaml_document_t *d = x->doc;
  if (m->type != YAML_MAPPING_NODE)
    return fail(x, m, "web.open311", "expected a mapping%s", "");
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(d, p->key), *v = yaml_document_get_node(d, p->value);
    if (scalar(k) && strcmp(scalar(k), "publish_summary") == 0) {
      if (get_bool(x, v, "web.open311.publish_summary", &x->c->publish_summary))
        return -1;
    } else {
      return fail(x, k, "web.open311", "unknown key \"%s\"; valid keys: publish_summary",
                  scalar(k) ? scalar(k) : "?");
    }
  }
  return 0;
}

/* web.tls: {cert: PATH, key: PATH}, both or neither. The files are read
 * and checked against each other by tls.c, which names these lines. */
static int read_tls(ctx_t *x, const yaml_node_t *m) {
  yaml_document_t *d = x->doc;
  lxw_conf_t *c = x->c;
  if (m->type != YAML_MAPPING_NODE)
    return fail(x, m, "web.tls", "expected a mapping {cert: PATH, key: PATH}%s", "");
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(d, p->key), *v = yaml_document_get_node(d, p->value);
    const char *name = scalar(k) ? scalar(k) : "?";
    if (strcmp(name, "cert") == 0) {
      if (copy_path(x, v, "web.tls.cert", c->tls_cert))
        return -1;
      c->tls_cert_line = (unsigned long)v->start_mark.line + 1;
    } else if (strcmp(name, "key") == 0) {
      if (copy_path(x, v, "web.tls.key", c->tls_key))
        return -1;
      c->tls_key_line = (unsigned long)v->start_mark.line + 1;
    } else {
      return fail(x, k, "web.tls", "unknown key \"%s\"; valid keys: cert, key", name);
    }
  }
  if (!c->tls_cert[0] || !c->tls_key[0])
    return fail(x, m, "web.tls", "give both cert (the PEM certificate) and key (its PEM private "
                "key); %s is missing", c->tls_cert[0] ? "key" : "cert");
  return 0;
}

/* One key of the web: section. */
static int read_web_key(ctx_t *x, const yaml_node_t *kn, yaml_node_t *v) {
  lxw_conf_t *c = x->c;
  const char *k = scalar(kn);
  if (strcmp(k, "listen") == 0)
    return copy_str(x, v, "web.listen", c->listen, sizeof c->listen);
  if (strcmp(k, "key") == 0)
    return copy_path(x, v, "web.key", c->key);
  if (strcmp(k, "users") == 0)
    return copy_path(x, v, "web.users", c->users);
  if (strcmp(k, "assets") == 0)
    return copy_path(x, v, "web.assets", c->assets);
  if (strcmp(k, "open311") == 0)
    return read_open311(x, v);
  if (strcmp(k, "tls") == 0)
    return read_tls(x, v);
  if (strcmp(k, "behind_proxy") == 0)
    return get_bool(x, v, "web.behind_proxy", &c->behind_proxy);
  if (strcmp(k, "timeout") == 0)
    return get_int(x, v, "web.timeout", 1, 3600, &c->timeout_s);
  if (strcmp(k, "max_connections") == 0)
    return get_int(x, v, "web.max_connections", 1, 100000, &c->max_connections);
  if (strcmp(k, "threads") == 0)
    return get_int(x, v, "web.threads", 1, 64, &c->threads);
  return fail(x, kn, "web", "unknown key \"%s\"; valid keys: listen, key, users, assets, "
              "open311, tls, behind_proxy, timeout, max_connections, threads", k);
}

static int read_web(ctx_t *x, const yaml_node_t *m) {
  if (m->type != YAML_MAPPING_NODE)
    return fail(x, m, "web", "expected a mapping%s", "");
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
    if (!scalar(k))
      return fail(x, k, "web", "keys must be strings%s", "");
    if (read_web_key(x, k, yaml_document_get_node(x->doc, p->value)))
      return -1;
  }
  return 0;
}

static void defaults(lxw_conf_t *c, const char *file) {
  memset(c, 0, sizeof *c);
  snprintf(c->file, sizeof c->file, "%s", file);
  snprintf(c->dir, sizeof c->dir, "%s", file);
  char *slash = strrchr(c->dir, '/');
  if (slash)
    *slash = 0;
  else
    strcpy(c->dir, ".");
  strcpy(c->query, "tcp://127.0.0.1:7603");
  strcpy(c->alerts, "tcp://127.0.0.1:7602");
  strcpy(c->listen, "127.0.0.1:7680");
  c->utc_offset_min = 8 * 60;
  c->timeout_s = 30;
  c->max_connections = 2000;
  c->threads = 4;
}

static int read_root(ctx_t *x, yaml_node_t *root) {
  yaml_document_t *d = x->doc;
  lxw_conf_t *c = x->c;
  if (!root || root->type != YAML_MAPPING_NODE)
    return fail(x, root, "(top)", "expected a mapping%s", "");
  yaml_node_t *listen = get(d, root, "listen"), *n;
  if ((n = get(d, listen, "query")) && copy_str(x, n, "listen.query", c->query, sizeof c->query))
    return -1;
  if ((n = get(d, listen, "alerts")) && copy_str(x, n, "listen.alerts", c->alerts, sizeof c->alerts))
    return -1;
  yaml_node_t *sec = get(d, root, "security");
  c->secure = sec != NULL;
  if ((n = get(d, sec, "server_key")) && copy_path(x, n, "security.server_key", c->server_key))
    return -1;
  if ((n = get(d, get(d, root, "calendar"), "utc_offset")) && read_offset(x, n))
    return -1;
  if ((n = get(d, root, "web")) && read_web(x, n))
    return -1;
  if (!c->users[0])
    return fail(x, n, "web.users", "required: the users file (a YAML list of {name, "
                "password_hash, jurisdiction})%s", "");
  if (c->secure && (!c->key[0] || !c->server_key[0]))
    return fail(x, n, "web.key", "required when the config has a security section: the "
                "gateway's own .key file (lianxin keygen), registered as a supervisor%s", "");
  return 0;
}

int lxw_conf_load(lxw_conf_t *c, const char *file, char *err, size_t errlen) {
  defaults(c, file);
  ctx_t x = {c, NULL, err, errlen};
  FILE *f = fopen(file, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
    return -1;
  }
  yaml_parser_t p;
  yaml_document_t doc;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_file(&p, f);
  int rc;
  if (!yaml_parser_load(&p, &doc)) {
    snprintf(err, errlen, "%s:%lu: (top): %s", file, (unsigned long)p.problem_mark.line + 1,
             p.problem ? p.problem : "YAML syntax error");
    rc = -1;
  } else {
    x.doc = &doc;
    rc = read_root(&x, yaml_document_get_root_node(&doc));
    yaml_document_delete(&doc);
  }
  yaml_parser_delete(&p);
  fclose(f);
  return rc;
}

int lxw_listen_parse(const char *hp, char *host, size_t hn, int *port, bool *loopback) {
  const char *colon = strrchr(hp, ':');
  if (!colon || colon == hp || (size_t)(colon - hp) >= hn)
    return -1;
  size_t n = (size_t)(colon - hp);
  if (hp[0] == '[' && hp[n - 1] == ']') /* [::1]:7680 */
    memcpy(host, hp + 1, n - 2), host[n - 2] = 0;
  else
    memcpy(host, hp, n), host[n] = 0;
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || p < 0 || p > 65535)
    return -1;
  *port = (int)p;
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1)
    *loopback = (ntohl(a4.s_addr) >> 24) == 127;
  else if (inet_pton(AF_INET6, host, &a6) == 1)
    *loopback = IN6_IS_ADDR_LOOPBACK(&a6);
  else if (strcmp(host, "localhost") == 0)
    *loopback = true, strcpy(host, "127.0.0.1");
  else
    return -1; /* a name would need a lookup: give an address */
  return 0;
}
