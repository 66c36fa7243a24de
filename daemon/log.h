/* SPDX-License-Identifier: MIT
 *
 * log.h: one logging macro family for the daemon. The level is checked
 * before the arguments are formatted; every line carries a timestamp, the
 * level and the subsystem ("[store]", "[ingest]", "[plugin:escalate]").
 * Lines go to stderr, which a service manager collects.
 */
#ifndef LX_LOG_H
#define LX_LOG_H

enum lx_log_level { LX_LOG_ERROR = 0, LX_LOG_WARN, LX_LOG_INFO, LX_LOG_DEBUG };

extern int lx_log_level;

void lx_log_write(int level, const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define lx_log(level, sub, ...)                                                                    \
  do {                                                                                             \
    if ((level) <= lx_log_level)                                                                   \
      lx_log_write((level), (sub), __VA_ARGS__);                                                   \
  } while (0)

#define lx_error(sub, ...) lx_log(LX_LOG_ERROR, sub, __VA_ARGS__)
#define lx_warn(sub, ...) lx_log(LX_LOG_WARN, sub, __VA_ARGS__)
#define lx_info(sub, ...) lx_log(LX_LOG_INFO, sub, __VA_ARGS__)
#define lx_debug(sub, ...) lx_log(LX_LOG_DEBUG, sub, __VA_ARGS__)

/* Parses "error", "warn", "info" or "debug"; returns -1 if it is none. */
int lx_log_level_parse(const char *s);

#endif
