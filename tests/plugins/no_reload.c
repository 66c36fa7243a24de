/* SPDX-License-Identifier: MIT
 *
 * no_reload.c: a plugin with a setting and no reload callback, so the tests
 * can check that a SIGHUP changing its setting is refused whole (and one
 * that leaves it alone is not).
 */
#include <stdlib.h>

#include "lx/plugin.h"

static int nr_init(const lx_host_api_t *api, lx_host_t *host, void **state) {
  api->conf_str(host, "x"); /* any value: the test only changes it */
  *state = NULL;
  return 0;
}

const lx_plugin_t lx_plugin_entry = {
    .abi = LX_PLUGIN_ABI,
    .name = "no_reload",
    .description = "a test plugin that cannot reload its settings",
    .init = nr_init,
};
