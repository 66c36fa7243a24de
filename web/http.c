/* SPDX-License-Identifier: MIT
 *
 * http.c: the request handler of lianxin-web: method and size checks, the
 * login, the routes, the dashboard's files, and the ways to answer.
 *
 * Every error is JSON ({"ok": false, "code", "error"}) so scripts and the
 * dashboard read them alike. Only GET and HEAD exist; a request that
 * carries a body is refused before the body is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dclient.h"
#include "http.h"

static atomic_ullong g_requests, g_refused;

void lxw_http_counts(uint64_t *requests, uint64_t *refused_auth) {
  *requests = atomic_load(&g_requests);
  *refused_auth = atomic_load(&g_refused);
}

/* --- answers ------------------------------------------------------------------ */

static void common_headers(struct MHD_Response *resp) {
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
}

enum MHD_Result lxw_reply_text(lxw_req_t *r, unsigned status, const char *type, const char *text,
                               size_t n) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(n, (void *)text, MHD_RESPMEM_MUST_COPY);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", type);
  common_headers(resp);
  if (status == MHD_HTTP_UNAUTHORIZED)
    MHD_add_response_header(resp, "WWW-Authenticate", "Basic realm=\"lianxin\", charset=\"UTF-8\"");
  enum MHD_Result rc = MHD_queue_response(r->conn, status, resp);
  MHD_destroy_response(resp);
  return rc;
}

enum MHD_Result lxw_reply_json(lxw_req_t *r, unsigned status, cJSON *body) {
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  cJSON_Delete(body);
  if (!text)
    return lxw_reply_text(r, 500, "application/json", "{\"ok\":false,\"code\":\"E_INTERNAL\","
                          "\"error\":\"out of memory\"}", 56);
  enum MHD_Result rc = lxw_reply_text(r, status, "application/json; charset=utf-8", text, strlen(text));
  free(text);
  return rc;
}

enum MHD_Result lxw_reply_error(lxw_req_t *r, unsigned status, const char *code, const char *fmt,
                                ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddBoolToObject(j, "ok", 0);
  cJSON_AddStringToObject(j, "code", code);
  cJSON_AddStringToObject(j, "error", msg);
  return lxw_reply_json(r, status, j);
}

enum MHD_Result lxw_reply_down(lxw_req_t *r) {
  return lxw_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "E_DAEMON",
                         "the daemon is not answering; the gateway keeps trying");
}

/* --- query arguments -------------------------------------------------------------- */

const char *lxw_arg(lxw_req_t *r, const char *key) {
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

typedef struct arg_check {
  const char *const *allowed;
  char *bad;
  size_t bn;
  const char *seen[16];
  int n_seen;
  bool failed;
} arg_check_t;

static enum MHD_Result check_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value) {
  arg_check_t *a = cls;
  bool known = false;
  for (int i = 0; a->allowed[i] && !known; i++)
    known = strcmp(key, a->allowed[i]) == 0;
  for (int i = 0; i < a->n_seen && known; i++)
    if (strcmp(a->seen[i], key) == 0) {
      snprintf(a->bad, a->bn, "%.60s: given more than once", key);
      a->failed = true;
      return MHD_NO;
    }
  if (!known) {
    snprintf(a->bad, a->bn, "%.60s: unknown parameter", key);
    a->failed = true;
    return MHD_NO;
  }
  if (a->n_seen < 16)
    a->seen[a->n_seen++] = key;
  return MHD_YES;
}

int lxw_args_check(lxw_req_t *r, const char *const *allowed, char *bad, size_t bn) {
  arg_check_t a = {.allowed = allowed, .bad = bad, .bn = bn};
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_one, &a);
  return a.failed ? -1 : 0;
}

/* --- times --------------------------------------------------------------------- */

void lxw_iso_time(int64_t ms, int offset_min, char *out, size_t n) {
  time_t t = (time_t)(ms / 1000) + offset_min * 60;
  struct tm tm;
  gmtime_r(&t, &tm);
  int off = offset_min < 0 ? -offset_min : offset_min;
  snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, offset_min < 0 ? '-' : '+', off / 60,
           off % 60);
}

static int digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (**p < '0' || **p > '9')
      return -1;
    v = v * 10 + (**p - '0');
  }
  *out = v;
  return 0;
}

static int parse_zone(const char *p, int offset_min, int *zone) {
  int h, m;
  *zone = offset_min;
  if (!*p)
    return 0;
  if (p[0] == 'Z' && !p[1])
    return *zone = 0, 0;
  if ((p[0] != '+' && p[0] != '-') || (++p, digits(&p, 2, &h)) || *p++ != ':' ||
      digits(&p, 2, &m) || *p || h > 14 || m > 59)
    return -1;
  *zone = (p[-6] == '-' ? -1 : 1) * (h * 60 + m);
  return 0;
}

int lxw_iso_parse(const char *s, int offset_min, int64_t *ms) {
  const char *p = s;
  int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, zone;
  if (strlen(s) > 40 || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
      digits(&p, 2, &d))
    return -1;
  if (*p == 'T' || *p == ' ') {
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
      return -1;
    if (*p == ':' && (p++, digits(&p, 2, &sec)))
      return -1;
    if (*p == '.') {
      p++;
      int nd = 0;
      for (; *p >= '0' && *p <= '9'; p++, nd++)
        if (nd < 3)
          frac = frac * 10 + (*p - '0');
      if (nd == 0)
        return -1;
      for (; nd < 3; nd++)
        frac *= 10;
    }
  }
  if (parse_zone(p, offset_min, &zone) || mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 60)
    return -1;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100) || y % 400 == 0;
  if (d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
    return -1;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                  .tm_min = mi, .tm_sec = sec};
  *ms = ((int64_t)timegm(&tm) - (int64_t)zone * 60) * 1000 + frac;
  return 0;
}

/* --- the dashboard's files ------------------------------------------------------ */

static const char *content_type(const char *name) {
  const char *dot = strrchr(name, '.');
  static const char *const types[][2] = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
      {".png", "image/png"},                 {".ico", "image/x-icon"}};
  for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
    if (strcmp(dot, types[i][0]) == 0)
      return types[i][1];
  return NULL;
}

/* Serves a file of the assets directory: a plain name, no subdirectories. */
static enum MHD_Result serve_file(lxw_req_t *r, const char *name) {
  const char *type = content_type(name);
  char path[LXW_PATH_MAX + 64];
  if (!type || strchr(name, '/') || name[0] == '.' || strlen(name) > 60)
    return lxw_reply_error(r, 404, "E_NOTFOUND", "no such page");
  snprintf(path, sizeof path, "%s/%s", r->conf->assets, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    if (fd >= 0)
      close(fd);
    return lxw_reply_error(r, 404, "E_NOTFOUND", "no such page");
  }
  struct MHD_Response *resp = MHD_create_response_from_fd((size_t)st.st_size, fd);
  if (!resp) {
    close(fd);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", type);
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "Cache-Control", "no-cache");
  MHD_add_response_header(resp, "Content-Security-Policy",
                          "default-src 'self'; style-src 'self' 'unsafe-inline'");
  enum MHD_Result rc = MHD_queue_response(r->conn, 200, resp);
  MHD_destroy_response(resp);
  return rc;
}

/* --- login and routes -------------------------------------------------------------- */

static enum MHD_Result need_login(lxw_req_t *r) {
  atomic_fetch_add(&g_refused, 1);
  return lxw_reply_error(r, MHD_HTTP_UNAUTHORIZED, "E_LOGIN",
                         "log in with a name and password from the gateway's users file");
}

static const lxw_user_t *login(lxw_req_t *r) {
  char *pass = NULL;
  char *name = MHD_basic_auth_get_username_password(r->conn, &pass);
  const lxw_user_t *u = name && pass ? lxw_auth_check(name, pass) : NULL;
  if (pass) {
    memset(pass, 0, strlen(pass));
    MHD_free(pass);
  }
  if (name)
    MHD_free(name);
  return u;
}

static enum MHD_Result route_private(lxw_req_t *r) {
  const char *u = r->url;
  if (strcmp(u, "/api/units") == 0)
    return lxw_api_units(r);
  if (strcmp(u, "/api/appeals") == 0)
    return lxw_api_appeals(r);
  if (strcmp(u, "/api/ranking") == 0)
    return lxw_api_ranking(r);
  if (strcmp(u, "/api/rates") == 0)
    return lxw_api_rates(r);
  if (strcmp(u, "/api/alerts") == 0)
    return lxw_api_alerts(r);
  if (strcmp(u, "/api/me") == 0)
    return lxw_api_me(r);
  if (strncmp(u, "/api/", 5) == 0)
    return lxw_reply_error(r, 404, "E_NOTFOUND", "no such endpoint");
  return serve_file(r, strcmp(u, "/") == 0 ? "index.html" : u + 1);
}

static enum MHD_Result route(lxw_req_t *r) {
  if (strcmp(r->url, "/metrics") == 0)
    return lxw_metrics(r);
  if (strncmp(r->url, "/open311/v2/", 12) == 0)
    return lxw_open311(r, r->url + 12);
  if (!(r->user = login(r)))
    return need_login(r);
  return route_private(r);
}

enum MHD_Result lxw_handle(void *cls, struct MHD_Connection *conn, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_data_size, void **state) {
  lxw_req_t r = {.conn = conn, .url = url, .conf = cls};
  static int marker;
  if (*state == NULL) {
    *state = &marker;
    atomic_fetch_add(&g_requests, 1);
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    if ((cl && strcmp(cl, "0") != 0) || te)
      return lxw_reply_error(&r, MHD_HTTP_CONTENT_TOO_LARGE, "E_TOO_BIG",
                             "requests to this gateway carry no body");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
      return lxw_reply_error(&r, MHD_HTTP_METHOD_NOT_ALLOWED, "E_METHOD",
                             "only GET and HEAD are served");
    return route(&r);
  }
  if (*upload_data_size) /* a body after all: refused, not read */
    return MHD_NO;
  return MHD_YES;
}
