/* SPDX-License-Identifier: MIT
 *
 * registry.h: the client registry (PROTOCOL.md "Files that independent
 * tools read and write"): who may connect, with which CURVE key, in which
 * role, over which part of the tier tree.
 */
#ifndef LX_REGISTRY_H
#define LX_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum lx_role { LX_ROLE_FIELD = 1, LX_ROLE_SUPERVISOR, LX_ROLE_AUDITOR, LX_ROLE_ADMIN };

typedef struct lx_client {
  char *name;
  uint8_t key[32];  /* CURVE public key */
  int role;         /* enum lx_role */
  char *jur;        /* jurisdiction: a configured unit path */
  size_t jur_len;
} lx_client_t;

typedef struct lx_registry {
  lx_client_t *clients;
  size_t n;
} lx_registry_t;

/* Loads FILE: a YAML list of {name, key, role, jurisdiction} (other keys are
 * ignored, so tools may add their own). Names and keys are unique; the
 * jurisdiction must be a unit of cfg. Returns 0, or -1 with every problem as
 * "FILE:LINE: [i].key: reason" lines in *errors (caller frees). */
int lx_registry_load(const char *file, const lx_config_t *cfg, lx_registry_t *out, char **errors);
void lx_registry_free(lx_registry_t *r);

const lx_client_t *lx_registry_by_key(const lx_registry_t *r, const uint8_t key[32]);
const lx_client_t *lx_registry_by_name(const lx_registry_t *r, const char *name);
const char *lx_role_name(int role);

/* True when unit (a path) lies inside the jurisdiction: equal to it, or
 * below it at a code boundary ("qd.hx" holds "qd.hx.dy", not "qd.hxa"). */
bool lx_within(const char *jur, size_t jn, const char *unit, size_t un);

#endif
