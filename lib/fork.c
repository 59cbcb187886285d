/* SPDX-License-Identifier: MIT */
/*
 * fork.c - the fork generation (fork.h; invariants F1-F4 in bus.c, which
 * installs the fork handlers).
 *
 * Threads: lb_fork_child in the atfork child handler only; the rest from
 * any thread.
 */
#include "fork.h"

#include "errors.h"

_Atomic uint32_t lb_fork_generation; /* F1 */

void
lb_fork_child(void)
{
	/* F1.  Relaxed: see lb_fork_is_inherited(). */
	atomic_fetch_add_explicit(&lb_fork_generation, 1, memory_order_relaxed);
}

int
lb_fork_err(const char *call)
{
	return lb_err_set(LITEBUS_EFORKED,
			  "%s: the handle was made by the parent process and "
			  "was inherited across fork(); litebus threads and "
			  "connections do not survive fork(): open litebus "
			  "anew in this process",
			  call);
}
