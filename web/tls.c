/* SPDX-License-Identifier: MIT
 *
 * tls.c: reads and checks the gateway's HTTPS key pair (tls.h).
 *
 * libmicrohttpd hands the PEM text to GnuTLS only when the daemon starts,
 * and then fails with one generic message. The gateway checks the pair
 * here first, with the same GnuTLS calls, so that a missing file, a key
 * that is not the certificate's or an encrypted key is reported at the
 * config line that named it, before any socket is bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tls.h"

#define PEM_MAX (1024 * 1024) /* a certificate chain is a few KiB */

/* Reads a whole file into a NUL-terminated heap buffer, with read(2) and
 * not stdio, so no copy of a key is left in a FILE's buffer. On error
 * writes the reason (without the FILE:LINE prefix) into why. */
static char *read_pem(const char *path, size_t *n, char *why, size_t wn) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st)) {
    snprintf(why, wn, "cannot read %s: %s", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  const char *bad = !S_ISREG(st.st_mode) ? "not a regular file"
                    : st.st_size == 0     ? "empty file"
                    : st.st_size > PEM_MAX ? "larger than 1 MiB" : NULL;
  char *buf = bad ? NULL : malloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (buf && got < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
    if (r <= 0 && !(r < 0 && errno == EINTR)) {
      bad = r < 0 ? strerror(errno) : "the file shrank while it was read";
      break;
    }
    got += r > 0 ? (size_t)r : 0;
  }
  close(fd);
  if (!bad && !buf)
    bad = "out of memory";
  if (bad) {
    snprintf(why, wn, "cannot read %s: %s", path, bad);
    if (buf)
      sodium_memzero(buf, got);
    free(buf);
    return NULL;
  }
  buf[got] = 0;
  *n = got;
  return buf;
}

/* The checks GnuTLS will make when libmicrohttpd starts, made now. */
static int check_pair(const lxw_conf_t *c, lxw_tls_t *t, size_t cert_n, char *err, size_t errlen) {
  gnutls_datum_t cd = {(unsigned char *)t->cert, (unsigned)cert_n};
  gnutls_datum_t kd = {(unsigned char *)t->key, (unsigned)t->key_n};
  gnutls_x509_crt_t crt = NULL;
  gnutls_x509_privkey_t pk = NULL;
  gnutls_certificate_credentials_t cred = NULL;
  int rc = -1, g;
  if (gnutls_x509_crt_init(&crt) || gnutls_x509_privkey_init(&pk) ||
      gnutls_certificate_allocate_credentials(&cred)) {
    lxw_conf_fail(c, c->tls_cert_line, "web.tls", err, errlen, "GnuTLS: out of memory");
    goto done;
  }
  if ((g = gnutls_x509_crt_import(crt, &cd, GNUTLS_X509_FMT_PEM)) < 0) {
    lxw_conf_fail(c, c->tls_cert_line, "web.tls.cert", err, errlen,
                  "%s is not a PEM certificate (%s)", c->tls_cert, gnutls_strerror(g));
    goto done;
  }
  if ((g = gnutls_x509_privkey_import(pk, &kd, GNUTLS_X509_FMT_PEM)) < 0) {
    lxw_conf_fail(c, c->tls_key_line, "web.tls.key", err, errlen,
                  "%s is not an unencrypted PEM private key (%s)", c->tls_key, gnutls_strerror(g));
    goto done;
  }
  g = gnutls_certificate_set_x509_key_mem2(cred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
  if (g == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
    lxw_conf_fail(c, c->tls_key_line, "web.tls.key", err, errlen,
                  "%s is not the private key of the certificate %s", c->tls_key, c->tls_cert);
    goto done;
  }
  if (g < 0) {
    lxw_conf_fail(c, c->tls_cert_line, "web.tls", err, errlen, "GnuTLS refuses the pair: %s",
                  gnutls_strerror(g));
    goto done;
  }
  rc = 0;
done:
  if (cred)
    gnutls_certificate_free_credentials(cred);
  if (pk)
    gnutls_x509_privkey_deinit(pk);
  if (crt)
    gnutls_x509_crt_deinit(crt);
  return rc;
}

int lxw_tls_load(const lxw_conf_t *c, lxw_tls_t *t, char *err, size_t errlen) {
  char why[LXW_PATH_MAX + 128];
  size_t cert_n = 0;
  memset(t, 0, sizeof *t);
  if (!(t->cert = read_pem(c->tls_cert, &cert_n, why, sizeof why)))
    return lxw_conf_fail(c, c->tls_cert_line, "web.tls.cert", err, errlen, "%s", why);
  if (!(t->key = read_pem(c->tls_key, &t->key_n, why, sizeof why))) {
    lxw_tls_wipe(t);
    return lxw_conf_fail(c, c->tls_key_line, "web.tls.key", err, errlen, "%s", why);
  }
  if (check_pair(c, t, cert_n, err, errlen)) {
    lxw_tls_wipe(t);
    return -1;
  }
  return 0;
}

void lxw_tls_wipe(lxw_tls_t *t) {
  if (t->key)
    sodium_memzero(t->key, t->key_n);
  free(t->key);
  free(t->cert);
  memset(t, 0, sizeof *t);
}
