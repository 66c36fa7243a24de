/* SPDX-License-Identifier: MIT
 *
 * alerts.c: the alerts XPUB socket (PROTOCOL.md "Alerts").
 *
 * Every alert is about a record already committed to the log, so a
 * subscriber that missed some (it was away, or too slow: XPUB drops past
 * the high-water mark) fills the gap with `replay` from the alert's seq.
 * Sending never blocks the loop. Subscription messages are always read, so
 * they never pile up; with keys they are also filtered (grant below).
 */
#include <errno.h>
#include <string.h>

#include "auth.h"
#include "census.h"
#include "daemon.h"
#include "log.h"

/* With keys (ZMQ_XPUB_MANUAL), a subscription takes effect only when the
 * daemon passes it on, so each is narrowed to the subscriber's
 * jurisdiction: inside it, as asked; wider (a township supervisor asking
 * for the whole county, or for everything), narrowed to the jurisdiction;
 * elsewhere, dropped and logged. Unsubscribes are narrowed the same way so
 * they cancel what was granted. Admins get what they ask for. */
static void grant(lx_daemon_t *d, zmq_msg_t *m) {
  const uint8_t *data = zmq_msg_data(m);
  size_t n = zmq_msg_size(m);
  if (n < 1 || (data[0] != 0 && data[0] != 1))
    return;
  int opt = data[0] ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE;
  const char *topic = (const char *)data + 1;
  size_t tn = n - 1;
  const lx_client_t *c = lx_auth_client(d, m);
  if (!c || (c->role != LX_ROLE_SUPERVISOR && c->role != LX_ROLE_ADMIN)) {
    lx_warn("alerts", "subscription from %s refused: %s", c ? c->name : "an unregistered key",
            c ? "its role does not receive alerts" : "not registered");
    return;
  }
  char mine[LX_PATH_MAX + 2];
  size_t mn = (size_t)snprintf(mine, sizeof mine, "%s.", c->jur);
  if (c->role == LX_ROLE_ADMIN || (tn >= mn && memcmp(topic, mine, mn) == 0)) {
    zmq_setsockopt(d->alerts_sock, opt, topic, tn); /* inside: as asked */
  } else if (tn < mn && memcmp(topic, mine, tn) == 0) {
    zmq_setsockopt(d->alerts_sock, opt, mine, mn); /* wider: narrowed */
    lx_info("alerts", "%s asked for \"%.*s\": narrowed to \"%s\"", c->name, (int)tn, topic,
            mine);
  } else {
    lx_warn("alerts", "%s asked for \"%.*s\", outside its jurisdiction %s: dropped", c->name,
            (int)(tn > 100 ? 100 : tn), topic, c->jur);
  }
}

static void on_alerts(lx_zsock_t *zs) {
  lx_daemon_t *d = zs->data;
  zmq_msg_t m;
  for (int i = 0; i < 1024; i++) {
    zmq_msg_init(&m);
    int rc = zmq_msg_recv(&m, zs->sock, ZMQ_DONTWAIT);
    if (rc >= 0 && d->secure)
      grant(d, &m); /* must follow the recv at once: it applies to that pipe */
    zmq_msg_close(&m);
    if (rc < 0)
      break;
  }
  lx_zsock_rearm(zs);
}

int lx_alerts_start(lx_daemon_t *d) {
  return lx_zsock_init(d->loop, &d->alerts_z, d->alerts_sock, on_alerts, d);
}

void lx_alerts_stop(lx_daemon_t *d) { lx_zsock_close(&d->alerts_z); }

/* Packs {seq, kind, unit, at, ...extra}. */
static int pack_alert(msgpack_sbuffer *sb, uint64_t seq, uint64_t at, const char *kind,
                      lx_str_t unit, const uint8_t *extra, size_t extra_len) {
  msgpack_packer pk;
  msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
  msgpack_zone zone;
  msgpack_zone_init(&zone, 1024);
  size_t off = 0;
  if (extra && (msgpack_unpack((const char *)extra, extra_len, &off, &zone, &o) !=
                    MSGPACK_UNPACK_SUCCESS ||
                o.type != MSGPACK_OBJECT_MAP)) {
    msgpack_zone_destroy(&zone);
    return -1;
  }
  uint32_t n = o.type == MSGPACK_OBJECT_MAP ? o.via.map.size : 0;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 4 + n);
  lx_mp_pack_cstr(&pk, "seq");
  msgpack_pack_uint64(&pk, seq);
  lx_mp_pack_cstr(&pk, "kind");
  lx_mp_pack_cstr(&pk, kind);
  lx_mp_pack_cstr(&pk, "unit");
  lx_mp_pack_str(&pk, unit.p, unit.n);
  lx_mp_pack_cstr(&pk, "at");
  msgpack_pack_uint64(&pk, at);
  for (uint32_t i = 0; i < n; i++) {
    msgpack_pack_object(&pk, o.via.map.ptr[i].key);
    msgpack_pack_object(&pk, o.via.map.ptr[i].val);
  }
  msgpack_zone_destroy(&zone);
  return 0;
}

int lx_alerts_publish(lx_daemon_t *d, uint64_t seq, uint64_t at, const char *kind, lx_str_t unit,
                      const uint8_t *extra, size_t extra_len) {
  char topic[LX_PATH_MAX + 2];
  if (unit.n == 0 || unit.n > LX_PATH_MAX)
    return LX_EINTERNAL;
  memcpy(topic, unit.p, unit.n);
  topic[unit.n] = '.';
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  int rc = pack_alert(&sb, seq, at, kind, unit, extra, extra_len);
  if (rc == 0 && (zmq_send(d->alerts_sock, topic, unit.n + 1, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
                  zmq_send(d->alerts_sock, sb.data, sb.size, ZMQ_DONTWAIT) < 0))
    lx_debug("alerts", "alert seq %llu not sent: %s", (unsigned long long)seq, zmq_strerror(errno));
  if (rc == 0) {
    d->stats.alerts++;
    lx_census_count(&d->census.kinds, kind, strlen(kind));
  }
  msgpack_sbuffer_destroy(&sb);
  /* XPUB's send only fails when the socket is gone; a missing subscriber is
   * not an error, so the alert counts as published. */
  d->alerts_sent = true;
  return rc ? LX_EINTERNAL : 0;
}

/* Once per run of alerts, not per alert: asking ZeroMQ for the socket's
 * events costs a poll and a getpid, a fifth of a catch-up's time when it
 * was done for each of its alerts. */
void lx_alerts_sent(lx_daemon_t *d) {
  if (d->alerts_sent) {
    d->alerts_sent = false;
    lx_zsock_rearm(&d->alerts_z);
  }
}
