/* SPDX-License-Identifier: MIT
 *
 * clock.h: the daemon's one source of "now" (milliseconds since the Unix
 * epoch, UTC). Every receive time and deadline comes from here, so a test
 * can drive time: with LIANXIN_FAKE_CLOCK=START_MS[:SPEED] in the
 * environment the clock starts at START_MS and runs SPEED times faster than
 * real time (default 1), which lets an escalation over weeks take seconds.
 */
#ifndef LX_CLOCK_H
#define LX_CLOCK_H

#include <stdint.h>

/* Reads LIANXIN_FAKE_CLOCK once; returns 0, or -1 if it is malformed. */
int lx_clock_init(void);
uint64_t lx_clock_now_ms(void);
/* How long to wait in real time for `ms` of daemon-clock time to pass. */
uint64_t lx_clock_real_delay_ms(uint64_t ms);
/* True when the fake clock is in use (it is logged at start). */
int lx_clock_is_fake(void);

#endif
