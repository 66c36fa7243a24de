/* SPDX-License-Identifier: MIT
 *
 * log.c: writes log lines to stderr as "2026-11-27T10:00:00.123Z INFO [sub] text".
 * One fprintf per line, so lines from one process never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"

int lx_log_level = LX_LOG_INFO;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void lx_log_write(int level, const char *sub, const char *fmt, ...) {
  char text[1024], stamp[32];
  struct timeval tv;
  struct tm tm;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", stamp, (long)(tv.tv_usec / 1000),
          level_names[level < 0 ? 0 : level > 3 ? 3 : level], sub, text);
}

int lx_log_level_parse(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcasecmp(s, level_names[i]) == 0)
      return i;
  return strcasecmp(s, "warning") == 0 ? LX_LOG_WARN : -1;
}
