/* SPDX-License-Identifier: MIT
 *
 * passwd.c: `lianxin passwd [--jurisdiction PATH] NAME`: reads a password
 * from stdin (without echo, and twice, when stdin is a terminal) and prints
 * the line of lianxin-web's users file for it (PROTOCOL.md, "The web
 * gateway"): the password as an Argon2id string from crypto_pwhash_str, at
 * libsodium's interactive cost, which is what the gateway verifies against.
 */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

#define PW_MAX 1024

/* Reads one line into buf without its newline; -1 at end of input. */
static int read_line(const char *prompt, char *buf, size_t n) {
  bool tty = isatty(STDIN_FILENO);
  struct termios old, quiet;
  if (tty) {
    fputs(prompt, stderr);
    tcgetattr(STDIN_FILENO, &old);
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  char *got = fgets(buf, (int)n, stdin);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputc('\n', stderr);
  }
  if (!got)
    return -1;
  buf[strcspn(buf, "\r\n")] = 0;
  return 0;
}

static bool plain_name(const char *s, size_t max, const char *extra) {
  size_t n = strlen(s);
  if (n == 0 || n > max)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || strchr(extra, s[i])))
      return false;
  return true;
}

int cmd_passwd(cli_t *c, int argc, char **argv) {
  static const struct option own[] = {{"jurisdiction", required_argument, NULL, 'j'},
                                      {NULL, 0, NULL, 0}};
  const char *jur = NULL;
  int o;
  while ((o = cmd_getopt(c, argc, argv, own)) != -1)
    if (o == 'j')
      jur = optarg;
  if (argc - optind != 1) {
    cli_err("passwd: expected exactly one NAME");
    cmd_usage_exit(c);
  }
  const char *name = argv[optind];
  if (!plain_name(name, 64, "-_.@")) {
    cli_err("passwd: NAME: 1 to 64 of A-Z a-z 0-9 - _ . @");
    return EXIT_USAGE;
  }
  if (jur && !plain_name(jur, 100, "-.")) {
    cli_err("passwd: --jurisdiction: expected a unit path such as qd.hx");
    return EXIT_USAGE;
  }
  char pw[PW_MAX], again[PW_MAX], hash[crypto_pwhash_STRBYTES];
  int rc = EXIT_USAGE;
  if (read_line("password: ", pw, sizeof pw) || !pw[0]) {
    cli_err("passwd: no password on stdin");
  } else if (isatty(STDIN_FILENO) &&
             (read_line("again: ", again, sizeof again) || strcmp(pw, again) != 0)) {
    cli_err("passwd: the two passwords differ");
  } else if (sodium_init() < 0 ||
             crypto_pwhash_str(hash, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                               crypto_pwhash_MEMLIMIT_INTERACTIVE)) {
    cli_err("passwd: crypto_pwhash_str failed (out of memory?)");
    rc = 1;
  } else {
    printf("- {name: \"%s\", password_hash: \"%s\", jurisdiction: \"%s\"}\n", name, hash,
           jur ? jur : "");
    if (!jur)
      cli_err("passwd: fill in the jurisdiction (a unit path such as qd.hx) before use");
    rc = 0;
  }
  sodium_memzero(pw, sizeof pw);
  sodium_memzero(again, sizeof again);
  return rc;
}
