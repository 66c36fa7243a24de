/* SPDX-License-Identifier: MIT
 *
 * log.h: one logging macro family for the daemon. The level is checked
 * before the arguments are formatted; every line carries a timestamp, the
 * level and the subsystem ("[store]", "[ingest]", "[plugin:escalate]").
 * Lines go to stderr, which a service manager collects.
 *
 * Two formats (--log-format, or `log: {format}` in the config): text, one
 * line "TS LEVEL [component] msg key=value…", and JSON Lines, one object
 * {"ts", "level", "component", "msg", …fields} per line, which journald and
 * log collectors take as is. A message's fields are given apart from its
 * text (lx_logf) so that a collector sees them as keys, not inside a
 * sentence; printf-style messages (lx_info …) have no fields.
 */
#ifndef LX_LOG_H
#define LX_LOG_H

#include <stddef.h>
#include <stdint.h>

enum lx_log_level { LX_LOG_ERROR = 0, LX_LOG_WARN, LX_LOG_INFO, LX_LOG_DEBUG };
enum lx_log_format { LX_LOG_TEXT = 0, LX_LOG_JSON };

extern int lx_log_level;
extern int lx_log_format;

/* One field of a structured message: a string (s) or an integer (i). */
typedef struct lx_log_field {
  const char *key;
  const char *s; /* NULL: the field is the integer i */
  long long i;
} lx_log_field_t;

#define LXF_S(k, v) ((lx_log_field_t){(k), (v) ? (v) : "", 0})
#define LXF_I(k, v) ((lx_log_field_t){(k), NULL, (long long)(v)})

void lx_log_write(int level, const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes msg (plain text, not a format) with n fields. */
void lx_log_fields(int level, const char *sub, const char *msg, const lx_log_field_t *f,
                   size_t n);
/* Writes each line of text (e.g. a list of config problems) as a message
 * of its own, so JSON output stays one object per line. */
void lx_log_lines(int level, const char *sub, const char *text);

#define lx_log(level, sub, ...)                                                                    \
  do {                                                                                             \
    if ((level) <= lx_log_level)                                                                   \
      lx_log_write((level), (sub), __VA_ARGS__);                                                   \
  } while (0)

/* lx_logf(LX_LOG_INFO, "main", "listening", LXF_S("socket", "ingest"), LXF_S("endpoint", ep)) */
#define lx_logf(level, sub, msg, ...)                                                              \
  do {                                                                                             \
    if ((level) <= lx_log_level) {                                                                 \
      const lx_log_field_t lx_f_[] = {__VA_ARGS__};                                                \
      lx_log_fields((level), (sub), (msg), lx_f_, sizeof lx_f_ / sizeof lx_f_[0]);                 \
    }                                                                                              \
  } while (0)

#define lx_error(sub, ...) lx_log(LX_LOG_ERROR, sub, __VA_ARGS__)
#define lx_warn(sub, ...) lx_log(LX_LOG_WARN, sub, __VA_ARGS__)
#define lx_info(sub, ...) lx_log(LX_LOG_INFO, sub, __VA_ARGS__)
#define lx_debug(sub, ...) lx_log(LX_LOG_DEBUG, sub, __VA_ARGS__)

/* Appends one formatted line (and a newline) to *errors, a malloc'd string
 * (NULL to start); a failed allocation drops the line. For lists of
 * problems that are logged, or printed, all at once. */
void lx_errors_add(char **errors, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses "error", "warn", "info" or "debug"; returns -1 if it is none. */
int lx_log_level_parse(const char *s);
/* Parses "text" or "json"; returns -1 if it is neither. */
int lx_log_format_parse(const char *s);

#endif
