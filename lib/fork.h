/* SPDX-License-Identifier: MIT */
/*
 * fork.h - which process made a handle: the fork generation (F1, bus.c).
 *
 * litebus threads and SQLite connections do not survive fork().  Every
 * object that a public call can reach records the generation it was made
 * in, and every public call on an object of an older generation returns
 * LITEBUS_EFORKED before it touches a lock, a thread or a connection.
 */
#ifndef LB_FORK_H
#define LB_FORK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * The fork generation of this process: 0 in the process that first
 * loaded litebus, raised by one in the child at every fork().  Written
 * only by lb_fork_child(), from the atfork child handler (bus.c).
 */
extern _Atomic uint32_t lb_fork_generation;

/* The generation of this process, to record in a new object.  Relaxed:
 * see lb_fork_is_inherited(). */
static inline uint32_t
lb_fork_now(void)
{
	return atomic_load_explicit(&lb_fork_generation, memory_order_relaxed);
}

/*
 * Was an object of generation `gen` made by another process (inherited
 * across fork())?  Any thread.
 *
 * Relaxed is enough: lb_fork_generation changes only in the atfork child
 * handler, which runs in the child's only thread before fork() returns
 * there.  Every later load in the child is by that thread (program order)
 * or by a thread it creates afterwards (pthread_create synchronizes), so
 * each sees the new value; in the parent the value never changes.  An
 * object's generation is written before the object is published to
 * other threads.
 */
static inline bool
lb_fork_is_inherited(uint32_t gen)
{
	return lb_fork_now() != gen;
}

/* The atfork child handler: raise the generation.  The child's only
 * thread, before fork() returns there. */
void lb_fork_child(void);

/* Set the calling thread's error for a call on an inherited object, and
 * return LITEBUS_EFORKED.  `call` names the public function. */
int lb_fork_err(const char *call);

#endif
