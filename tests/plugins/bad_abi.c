/* SPDX-License-Identifier: MIT
 *
 * bad_abi.c: a plugin built for an ABI this daemon does not have, so the
 * tests can check it is refused at start, before anything is called.
 */
#include <stdlib.h>

#include "lx/plugin.h"

static int never_init(const lx_host_api_t *api, lx_host_t *host, void **state) {
  abort(); /* the host must not call anything of a plugin with the wrong ABI */
}

const lx_plugin_t lx_plugin_entry = {
    .abi = 1, /* the ABI before this one (no list or map settings) */
    .name = "bad_abi",
    .init = never_init,
};
