/* SPDX-License-Identifier: MIT
 *
 * log.c: writes log lines to stderr, as text
 * ("2026-11-27T10:00:00.123Z INFO  [sub] text key=value") or as one JSON
 * object per line ({"ts":…,"level":"info","component":"sub","msg":…}).
 * Each line is built whole and written with one fputs, so lines from one
 * process never interleave.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"

int lx_log_level = LX_LOG_INFO;
int lx_log_format = LX_LOG_TEXT;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
static const char *const level_json[] = {"error", "warn", "info", "debug"};

typedef struct line {
  char buf[4096];
  size_t n;
} line_t;

static void put(line_t *l, const char *s, size_t n) {
  if (n > sizeof l->buf - 2 - l->n)
    n = sizeof l->buf - 2 - l->n; /* keep room for the closing brace and newline */
  memcpy(l->buf + l->n, s, n);
  l->n += n;
}

static void puts_(line_t *l, const char *s) { put(l, s, strlen(s)); }

/* A JSON string: quotes, backslashes and control bytes escaped; other bytes
 * (UTF-8) as they are. */
static void put_json(line_t *l, const char *s) {
  put(l, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(l, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, c == '\n' ? "\\n" : c == '\t' ? "\\t" : "\\u%04x", c);
      puts_(l, esc);
    } else {
      put(l, s, 1);
    }
  }
  put(l, "\"", 1);
}

static void stamp(char *out, size_t len) {
  struct timeval tv;
  struct tm tm;
  char s[32];
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, len, "%s.%03dZ", s, (int)(tv.tv_usec / 1000) % 1000);
}

/* One field: ,"key":value in JSON, or " key=value" in text. */
static void put_field(line_t *l, const lx_log_field_t *f, bool json) {
  char num[32];
  puts_(l, json ? "," : " ");
  json ? put_json(l, f->key) : puts_(l, f->key);
  puts_(l, json ? ":" : "=");
  if (!f->s) {
    snprintf(num, sizeof num, "%lld", f->i);
    puts_(l, num);
  } else {
    json ? put_json(l, f->s) : puts_(l, f->s);
  }
}

void lx_log_fields(int level, const char *sub, const char *msg, const lx_log_field_t *f,
                   size_t n) {
  line_t l = {.n = 0};
  char ts[64], head[160];
  bool json = lx_log_format == LX_LOG_JSON;
  level = level < 0 ? 0 : level > 3 ? 3 : level;
  stamp(ts, sizeof ts);
  if (json) {
    snprintf(head, sizeof head, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts,
             level_json[level]);
    puts_(&l, head);
    put_json(&l, sub);
    puts_(&l, ",\"msg\":");
    put_json(&l, msg);
  } else {
    snprintf(head, sizeof head, "%s %-5s [%s] ", ts, level_names[level], sub);
    puts_(&l, head);
    puts_(&l, msg);
  }
  for (size_t i = 0; i < n; i++)
    put_field(&l, &f[i], json);
  if (json)
    l.buf[l.n++] = '}';
  l.buf[l.n++] = '\n';
  l.buf[l.n] = 0;
  fputs(l.buf, stderr);
}

void lx_log_write(int level, const char *sub, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  lx_log_fields(level, sub, text, NULL, 0);
}

void lx_log_lines(int level, const char *sub, const char *text) {
  char one[1024];
  while (text && *text) {
    const char *nl = strchr(text, '\n');
    size_t n = nl ? (size_t)(nl - text) : strlen(text);
    if (n) {
      snprintf(one, sizeof one, "%.*s", (int)n, text);
      lx_log_fields(level, sub, one, NULL, 0);
    }
    text += n + (nl != NULL);
  }
}

void lx_errors_add(char **errors, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  size_t old = *errors ? strlen(*errors) : 0, n = strlen(line);
  char *p = realloc(*errors, old + n + 2);
  if (!p)
    return;
  memcpy(p + old, line, n);
  memcpy(p + old + n, "\n", 2);
  *errors = p;
}

int lx_log_level_parse(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcasecmp(s, level_names[i]) == 0)
      return i;
  return strcasecmp(s, "warning") == 0 ? LX_LOG_WARN : -1;
}

int lx_log_format_parse(const char *s) {
  return strcmp(s, "text") == 0 ? LX_LOG_TEXT : strcmp(s, "json") == 0 ? LX_LOG_JSON : -1;
}
