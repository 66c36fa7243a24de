/* SPDX-License-Identifier: MIT
 *
 * clock.c: see clock.h. The fake clock is measured from CLOCK_MONOTONIC so
 * it never jumps when the machine's wall clock is set.
 */
#include <stdlib.h>
#include <time.h>

#include "clock.h"

static struct {
  int fake;
  uint64_t start_ms;
  double speed;
  uint64_t mono0_ns;
} clk;

static uint64_t ns_of(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int lx_clock_init(void) {
  const char *s = getenv("LIANXIN_FAKE_CLOCK");
  if (!s || !*s)
    return 0;
  char *end;
  unsigned long long start = strtoull(s, &end, 10);
  double speed = 1.0;
  if (*end == ':') {
    speed = strtod(end + 1, &end);
    if (speed <= 0)
      return -1;
  }
  if (*end)
    return -1;
  clk.fake = 1;
  clk.start_ms = start;
  clk.speed = speed;
  clk.mono0_ns = ns_of(CLOCK_MONOTONIC);
  return 0;
}

int lx_clock_is_fake(void) { return clk.fake; }

uint64_t lx_clock_now_ms(void) {
  if (!clk.fake)
    return ns_of(CLOCK_REALTIME) / 1000000u;
  double elapsed_ms = (double)(ns_of(CLOCK_MONOTONIC) - clk.mono0_ns) / 1e6 * clk.speed;
  return clk.start_ms + (uint64_t)elapsed_ms;
}

uint64_t lx_clock_real_delay_ms(uint64_t ms) {
  if (!clk.fake || clk.speed == 1.0)
    return ms;
  return (uint64_t)((double)ms / clk.speed) + 1;
}
