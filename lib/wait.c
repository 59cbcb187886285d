/* SPDX-License-Identifier: MIT */
/*
 * wait.c - futex sleeping and clocks (see wait.h).
 *
 * Linux only: litebus targets Linux servers.  A port replaces these
 * functions (a condition variable keyed by address would do).
 *
 * Threads: any; no state of its own.
 */
/* syscall() is a GNU/BSD interface. */
#define _DEFAULT_SOURCE

#include "wait.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint64_t
lb_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t
lb_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t
lb_deadline_ns(int timeout_ms)
{
	if (timeout_ms < 0)
		return UINT64_MAX;
	return lb_mono_ns() + (uint64_t)timeout_ms * 1000000u;
}

void
lb_sleep_ns(uint64_t ns)
{
	struct timespec ts, left;

	ts.tv_sec = (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	/* nanosleep fails only with EINTR (then `left` holds the rest) or
	 * EINVAL, which the conversion above rules out. */
	while (nanosleep(&ts, &left) != 0 && errno == EINTR)
		ts = left;
}

void
lb_futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns)
{
	struct timespec ts, *tsp = NULL;

	if (deadline_ns != UINT64_MAX) {
		uint64_t now = lb_mono_ns();

		if (now >= deadline_ns)
			return;
		uint64_t left = deadline_ns - now;
		ts.tv_sec = (time_t)(left / 1000000000u);
		ts.tv_nsec = (long)(left % 1000000000u);
		tsp = &ts;
	}
	/* FUTEX_WAIT takes a relative timeout on CLOCK_MONOTONIC.  EINTR,
	 * EAGAIN (the word changed) and ETIMEDOUT all mean "re-check". */
	(void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected,
		      tsp, NULL, 0);
}

void
lb_futex_wake_all(_Atomic uint32_t *word)
{
	(void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX,
		      NULL, NULL, 0);
}
