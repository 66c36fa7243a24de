/* SPDX-License-Identifier: MIT
 *
 * fuzz_util.h: what the three libFuzzer harnesses share: finding the source
 * tree (for config/lianxin.yaml), a scratch directory that is removed at
 * exit, and the invariant check that turns a broken promise into a crash
 * libFuzzer records (abort() with a message, so the reproducer is saved and
 * the stack printed like any sanitizer report).
 */
#ifndef LX_FUZZ_UTIL_H
#define LX_FUZZ_UTIL_H

#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef LX_FUZZ_SOURCE_DIR
#define LX_FUZZ_SOURCE_DIR "."
#endif

/* Sanitizer defaults for a harness run by hand: stop at the first UBSan
 * report (the libraries are built in recover mode) and print its stack.
 * ASAN_OPTIONS / UBSAN_OPTIONS in the environment still win. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "print_stacktrace=1:halt_on_error=1"; }

/* A failed invariant: say which, then abort so libFuzzer saves the input. */
#define FUZZ_CHECK(cond, ...)                                                                      \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                           \
  } while (0)

static inline void fuzz_fail(const char *file, int line, const char *cond, const char *fmt,
                             ...) __attribute__((noreturn, format(printf, 4, 5)));
static inline void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "\n==FUZZ INVARIANT== %s:%d: %s: ", file, line, cond);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

/* LX_FUZZ_VERBOSE=1 in the environment: each harness prints what it made
 * of every input (for checking that seeds do what their names say). */
static inline bool fuzz_verbose(void) {
  static int v = -1;
  if (v < 0) {
    const char *e = getenv("LX_FUZZ_VERBOSE");
    v = e && *e && strcmp(e, "0") != 0;
  }
  return v;
}

/* The repository root: $LX_SOURCE_DIR, else the one the harness was built
 * from. */
static inline const char *fuzz_source_dir(void) {
  const char *env = getenv("LX_SOURCE_DIR");
  return env && *env ? env : LX_FUZZ_SOURCE_DIR;
}

/* Writes the sample config's path into buf. */
static inline void fuzz_sample_config(char *buf, size_t n) {
  snprintf(buf, n, "%s/config/lianxin.yaml", fuzz_source_dir());
}

/* Removes a directory tree we made (regular files and directories only). */
static inline void fuzz_rmtree(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
        continue;
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      struct stat st;
      if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
        fuzz_rmtree(path);
      else
        unlink(path);
    }
    closedir(d);
  }
  rmdir(dir);
}

/* Makes a fresh scratch directory under $TMPDIR (else /tmp) into buf;
 * aborts if it cannot. The caller removes it with fuzz_rmtree at exit. */
static inline void fuzz_mkdtemp(char *buf, size_t n, const char *what) {
  const char *tmp = getenv("TMPDIR");
  snprintf(buf, n, "%s/lx-fuzz-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", what);
  if (!mkdtemp(buf)) {
    perror(buf);
    abort();
  }
}

#endif
