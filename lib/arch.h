/* SPDX-License-Identifier: MIT */
/*
 * arch.h - what litebus assumes of the machine, checked at compile time.
 */
#ifndef LB_ARCH_H
#define LB_ARCH_H

#include <assert.h>
#include <stdalign.h>
#include <stdatomic.h>

/* Fields written by the writer and fields polled by readers are kept on
 * separate lines of this size.  64 bytes covers x86-64 and most arm64
 * parts (some use 128-byte lines for prefetch pairs; 64 is still correct,
 * only a little less isolated). */
#define LB_CACHELINE 64

/* The ring's stamps and the channel's published id are 64-bit atomics.  If
 * they fell back to a lock, the writer could wait on a reader after all. */
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
static_assert(ATOMIC_INT_LOCK_FREE == 2, "int atomics must be lock-free");

static inline void
lb_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

#define LB_UNUSED(x) ((void)(x))

#endif
