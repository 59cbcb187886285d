/* SPDX-License-Identifier: MIT */
/*
 * role.c - which bus's writer the calling thread is (role.h).
 *
 * Threads: any; the state is the calling thread's own.
 */
#include "role.h"

#include <stddef.h>

static _Thread_local const void *role_writer;

void
lb_role_set_writer(const void *owner)
{
	role_writer = owner;
}

const void *
lb_role_writer(void)
{
	return role_writer;
}
