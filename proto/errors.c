/* SPDX-License-Identifier: MIT
 *
 * errors.c: the wire names of error codes and the names of the enums that
 * travel as strings (event types, appeal states). One table each, so the
 * daemon, the CLI and the tests agree on every spelling.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lx_proto.h"

static const char *const err_names[] = {
    "OK",       "E_DECODE", "E_TOO_BIG",  "E_VERSION", "E_SCHEMA",
    "E_TYPE",   "E_UNIT",   "E_CONFLICT", "E_STATE",   "E_DENIED",
    "E_FULL",   "E_INTERNAL", "E_BADREQ", "E_NOTFOUND",
};

const char *lx_strerror(int code) {
  int i = -code;
  if (i < 0 || i >= (int)(sizeof err_names / sizeof err_names[0]))
    return "E_INTERNAL";
  return err_names[i];
}

int lx_fail(lx_error_t *e, int code, const char *fmt, ...) {
  va_list ap;
  e->code = code;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return code;
}

static const char *const type_names[] = {
    "", "visit", "appeal", "resolution", "feedback", "escalation", "checkpoint",
    "config",
};

const char *lx_ev_type_name(int type) {
  if (type <= 0 || type >= (int)(sizeof type_names / sizeof type_names[0]))
    return "?";
  return type_names[type];
}

static int name_lookup(const char *const *names, int n, const char *s, size_t len) {
  for (int i = 1; i < n; i++)
    if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
      return i;
  return 0;
}

int lx_ev_type_parse(const char *s, size_t len) {
  return name_lookup(type_names, sizeof type_names / sizeof type_names[0], s, len);
}

static const char *const status_names[] = {
    "", "open", "resolved", "explained", "referred", "closed",
};

const char *lx_status_name(int st) {
  if (st <= 0 || st >= (int)(sizeof status_names / sizeof status_names[0]))
    return "?";
  return status_names[st];
}

int lx_status_parse(const char *s, size_t len) {
  return name_lookup(status_names, sizeof status_names / sizeof status_names[0], s, len);
}
