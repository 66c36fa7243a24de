/* SPDX-License-Identifier: MIT
 *
 * audit.h: rebuild the state from the log and re-check every decision
 * (see audit.c). `lianxind --audit DIR` and `lianxin audit` run it.
 */
#ifndef LX_AUDIT_H
#define LX_AUDIT_H

#include <stdio.h>

/* Audits the store in `data` (a live daemon's, or a backup) under the
 * configuration `config`, writing the report to out. Returns 0 when there
 * is no discrepancy, 1 when there is, 2 when the audit could not run. */
int lx_audit_run(const char *config, const char *data, FILE *out);

#endif
