/* SPDX-License-Identifier: MIT
 *
 * json_mp.h: conversion between cJSON trees and MessagePack for the CLI.
 *
 * People type and read JSON; the daemon speaks MessagePack. The CLI converts
 * at the edge so that everything it prints or sends goes through one
 * well-tested mapping: objects <-> maps (string keys), arrays, strings,
 * booleans, null, and numbers, where integral JSON numbers become msgpack
 * integers and everything else float64. In the other direction bin values
 * are printed as lowercase hex, and integers beyond 10^15 - 1 (which a
 * double or cJSON's printing would round) are printed with all their digits as raw JSON.
 */
#ifndef LX_JSON_MP_H
#define LX_JSON_MP_H

#include <cjson/cJSON.h>
#include <msgpack.h>
#include <stddef.h>

/* Parses text[0..len) as exactly one JSON value (only whitespace may follow).
 * Unlike plain cJSON, integer literals beyond 10^15 - 1 keep all their digits: they
 * become cJSON_Raw nodes that lx_json_pack() packs as exact integers.
 * Returns the tree, or NULL with *err_off set to the byte offset where parsing
 * failed. Caller owns the result; free with cJSON_Delete. Does not block. */
cJSON *lx_json_parse(const char *text, size_t len, size_t *err_off);

/* Packs j as MessagePack. Returns 0, or -1 with a reason in err (a node that
 * has no msgpack form, such as a raw node that is not a number). */
int lx_json_pack(msgpack_packer *pk, const cJSON *j, char *err, size_t errlen);

/* Converts a msgpack object to JSON. Returns NULL with a reason in err when o
 * holds something JSON cannot express: an ext value or a non-string map key.
 * Caller owns the result; free with cJSON_Delete. */
cJSON *lx_mp_to_json(const msgpack_object *o, char *err, size_t errlen);

/* Unpacks exactly one msgpack object from buf[0..len) and converts it.
 * Trailing bytes are an error. Caller owns the result (cJSON_Delete). */
cJSON *lx_mp_buf_to_json(const void *buf, size_t len, char *err, size_t errlen);

/* Writes n bytes as 2n lowercase hex digits plus a NUL into out, which must
 * hold 2n + 1 bytes. Returns out. */
char *lx_hex(char *out, const void *p, size_t n);

#endif
