/* SPDX-License-Identifier: MIT
 *
 * mirror.h: the state shared by the jetstream plugin's two halves: the loop
 * side (jetstream.c: config, react, on_timer, stats, the `mirror` record)
 * and the mirror thread (mirror.c: libnats, the stream, the window of
 * publishes in flight). They meet only in the atomics and the mutex below.
 */
#ifndef LX_JS_MIRROR_H
#define LX_JS_MIRROR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lx/plugin.h"

#define JS_SERVERS_MAX 16

/* What the mirror is doing, for stats and the log. */
enum { JS_STARTING = 0, JS_RUNNING, JS_RETRYING, JS_DIVERGED, JS_STOPPED };

typedef struct js_state {
  const lx_host_api_t *api;
  lx_host_t *host;
  /* config (read-only once the thread runs) */
  char county[33];
  char stream[64];
  char *servers[JS_SERVERS_MAX];
  int n_servers;
  int replicas;
  int window; /* publishes in flight at most */
  uint64_t saved; /* the position the store held at start */

  /* shared between the loop and the thread */
  pthread_t thread;
  bool started;
  pthread_mutex_t mu;
  pthread_cond_t cv;   /* react -> thread: new records; close -> thread: stop */
  bool stop;           /* under mu */
  atomic_uint_fast64_t head;   /* newest committed seq the loop has seen */
  atomic_uint_fast64_t acked;  /* JetStream acknowledged every record up to here */
  atomic_int status;           /* JS_* */
  atomic_bool idle;            /* the thread sleeps until react signals cv */
  /* the first difference, handed from the thread to the loop (under mu) */
  bool diverged_pending;
  uint64_t diverged_seq;
  char diverged_text[400];
  bool alerted;        /* loop: the `mirror` record was appended */
} js_state_t;

/* Starts the mirror thread. Returns 0 or -1 (logged). */
int js_mirror_start(js_state_t *s);
/* Asks the thread to stop and joins it (it closes its connection first). */
void js_mirror_stop(js_state_t *s);

#endif
