/* SPDX-License-Identifier: MIT
 *
 * dclient.h: the gateway's side of the daemon's query socket, and the
 * MessagePack to JSON conversion every endpoint uses.
 *
 * Each thread that asks gets a DEALER socket of its own (ZeroMQ sockets
 * belong to one thread), created on first use. A request that gets no
 * answer in time marks the daemon down, and its socket is replaced so a
 * late answer can never be taken for the answer to the next request.
 */
#ifndef LXW_DCLIENT_H
#define LXW_DCLIENT_H

#include <cjson/cJSON.h>
#include <msgpack.h>
#include <stdbool.h>

#include "conf.h"

#define LXW_QUERY_TIMEOUT_MS 2000

/* Sets up the ZeroMQ context and, with security on, the CURVE keys. */
int lxw_dc_init(const lxw_conf_t *c, char *err, size_t errlen);
void *lxw_dc_context(void);
/* Sets the gateway's CURVE keys on a socket (no-op without security). */
int lxw_dc_secure(void *sock);

/* Sends the packed request and waits for its reply, unpacked into out
 * (caller: msgpack_unpacked_init / _destroy). Returns 0, or -1 when the
 * daemon did not answer in time (it is then marked down). */
int lxw_dc_call(const char *req, size_t len, msgpack_unpacked *out, int timeout_ms);
/* Packs {op: OP} plus the given map entries with a packer callback. */
typedef void (*lxw_pack_fn)(msgpack_packer *pk, void *arg);
int lxw_dc_op(const char *op, int n_extra, lxw_pack_fn extra, void *arg, msgpack_unpacked *out);

/* Whether the last exchange with the daemon (by any thread) got an answer. */
bool lxw_dc_up(void);

/* Unpacks a copy of data into out's zone: MessagePack strings point into
 * the buffer they were read from, so the buffer must live as long as out.
 * Returns 0 or -1. */
int lxw_mp_unpack_copy(msgpack_unpacked *out, const char *data, size_t n);

/* Map look-ups on a reply. */
const msgpack_object *lxw_mp_get(const msgpack_object *m, const char *key);
bool lxw_mp_ok(const msgpack_object *m);
/* The reply's "code" as a C string in buf ("" when absent). */
const char *lxw_mp_code(const msgpack_object *m, char *buf, size_t n);
/* Copies a str object into buf (NUL-terminated, cut to fit). */
const char *lxw_mp_str(const msgpack_object *o, char *buf, size_t n);
int64_t lxw_mp_int(const msgpack_object *o, int64_t dflt);
void lxw_mp_pack_cstr(msgpack_packer *pk, const char *s);

/* MessagePack to JSON: bin becomes lowercase hex, maps with non-string
 * keys get the key's JSON text. Returns NULL on out of memory. */
cJSON *lxw_mp_to_json(const msgpack_object *o);

#endif
