/* SPDX-License-Identifier: MIT */
/*
 * role.h - thread roles, written down and asserted.
 *
 * A thread is the writer of at most one bus, for as long as writer_main
 * runs on it (writer.c).  Functions that only the writer may run open with
 * LB_ASSERT_ON_WRITER_THREAD(), functions that must not run there (they
 * would wait for the writer) with LB_ASSERT_NOT_WRITER_OF(owner); both
 * are checked in Debug builds (assert) and cost nothing under NDEBUG.
 * Tests that play the writer of a bare ring or channel claim the role
 * first with lb_role_set_writer().
 */
#ifndef LB_ROLE_H
#define LB_ROLE_H

#include <assert.h>
#include <stdbool.h>

/* The calling thread becomes the writer of `owner` (an identity, never
 * dereferenced), or, with NULL, stops being a writer. */
void lb_role_set_writer(const void *owner);
/* Whose writer the calling thread is; NULL if none. */
const void *lb_role_writer(void);

#define LB_ASSERT_ON_WRITER_THREAD() assert(lb_role_writer() != NULL)
#define LB_ASSERT_NOT_WRITER_OF(owner)                                         \
	assert(lb_role_writer() == NULL || lb_role_writer() != (owner))

#endif
