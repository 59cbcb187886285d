/* SPDX-License-Identifier: MIT */
/*
 * wait.h - sleeping on a 32-bit word, and clocks.
 *
 * lb_futex_wait() sleeps while *word == expected, until lb_futex_wake() on
 * the same word, a deadline, or a spurious wake-up; callers re-check their
 * condition in a loop.  On Linux this is the futex system call, so a wake
 * costs a system call only when somebody actually sleeps, and the kernel
 * compares *word under its own lock (no lost wake-up between the caller's
 * check and the sleep).
 */
#ifndef LB_WAIT_H
#define LB_WAIT_H

#include <stdatomic.h>
#include <stdint.h>

/* Monotonic clock, nanoseconds. */
uint64_t lb_mono_ns(void);
/* Wall clock, milliseconds since the Unix epoch. */
int64_t lb_wall_ms(void);

/* A deadline for a timeout_ms argument: UINT64_MAX for timeout_ms < 0. */
uint64_t lb_deadline_ns(int timeout_ms);

/* Sleep for ns nanoseconds (monotonic), resuming after signals.  For
 * backoff while another connection holds a lock, never to wait for an
 * event of our own (those use the futex below). */
void lb_sleep_ns(uint64_t ns);

/* Sleep while *word == expected, at most until deadline_ns (monotonic;
 * UINT64_MAX = no deadline).  Returns with no result: re-check. */
void lb_futex_wait(_Atomic uint32_t *word, uint32_t expected,
		   uint64_t deadline_ns);
/* Wake every thread sleeping on word. */
void lb_futex_wake_all(_Atomic uint32_t *word);

#endif
