/* SPDX-License-Identifier: MIT
 *
 * http.h: what the endpoint files share: the request as the handlers see
 * it, and the ways to answer (http.c).
 */
#ifndef LXW_HTTP_H
#define LXW_HTTP_H

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stdint.h>

#include "auth.h"
#include "conf.h"

typedef struct lxw_req {
  struct MHD_Connection *conn;
  const char *url;
  const lxw_conf_t *conf;
  const lxw_user_t *user; /* NULL on the public endpoints */
} lxw_req_t;

/* Answers: each returns what the MHD handler returns. */
enum MHD_Result lxw_reply_json(lxw_req_t *r, unsigned status, cJSON *body); /* takes body */
enum MHD_Result lxw_reply_error(lxw_req_t *r, unsigned status, const char *code,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
enum MHD_Result lxw_reply_text(lxw_req_t *r, unsigned status, const char *type, const char *text,
                               size_t n);
/* 503 with a JSON error: the daemon did not answer. */
enum MHD_Result lxw_reply_down(lxw_req_t *r);

/* The query argument key, or NULL. */
const char *lxw_arg(lxw_req_t *r, const char *key);
/* Refuses (400) any query argument not in allowed (NULL-terminated), and
 * any given twice. Returns 0 when they are all known. */
int lxw_args_check(lxw_req_t *r, const char *const *allowed, char *bad, size_t bn);

/* Times: ISO 8601 with the configured local offset. */
void lxw_iso_time(int64_t ms, int offset_min, char *out, size_t n);
/* Parses YYYY-MM-DD[Thh:mm[:ss[.fff]][Z|±hh:mm]] (no zone: local time).
 * Returns 0 and ms, or -1. */
int lxw_iso_parse(const char *s, int offset_min, int64_t *ms);

/* Endpoints (api.c, open311.c). */
enum MHD_Result lxw_metrics(lxw_req_t *r);
enum MHD_Result lxw_api_units(lxw_req_t *r);
enum MHD_Result lxw_api_appeals(lxw_req_t *r);
enum MHD_Result lxw_api_ranking(lxw_req_t *r);
enum MHD_Result lxw_api_rates(lxw_req_t *r);
enum MHD_Result lxw_api_alerts(lxw_req_t *r);
enum MHD_Result lxw_api_me(lxw_req_t *r);
enum MHD_Result lxw_open311(lxw_req_t *r, const char *rest);

/* Counters for /metrics. */
void lxw_http_counts(uint64_t *requests, uint64_t *refused_auth);

#endif
