/* SPDX-License-Identifier: MIT */
/*
 * workload.h - the fixed workload of the fault and allocation sweeps, and
 * the invariants checked after each run.
 *
 * Three producer threads exec group-committed jobs with events on two
 * channels (every fourth job fails on purpose); a reader and a subscriber
 * follow.  After the run, with the fault cleared:
 *   I1  every job whose litebus_exec returned 0 has all its rows, with the
 *       ids it was given, after the bus is closed and reopened;
 *   I2  no job that returned an error has any row (rows carry a token
 *       naming their job: ids of failed work are legitimately reused);
 *   I3  the reader received exactly the committed rows, in order, and the
 *       subscriber received an in-order subsequence of them, with
 *       received + skipped == every committed event;
 *   I4  after the fault clears, the next job commits, or the bus refuses
 *       it with a documented error; litebus_close always returns.
 * A violation fails the current cmocka test with a message naming the
 * run (hooks.label).
 */
#ifndef LB_TEST_WORKLOAD_H
#define LB_TEST_WORKLOAD_H

#include "fixture.h"

#include <stdint.h>

struct wl_hooks {
	const char *label;
	void (*arm)(void *ctx);		  /* before litebus_open */
	void (*workload_done)(void *ctx); /* producers joined; may be NULL */
	void (*disarm)(void *ctx);	  /* the fault clears */
	void *ctx;
};

struct wl_report {
	int open_rc;
	int heal_rc;
	int ok_jobs, failed_jobs;
};

/* Run the workload in a fresh directory under fx and check I1..I4. */
void wl_run(struct bus_fixture *fx, const struct wl_hooks *h,
	    struct wl_report *rep);

/* Is rc a status the contract allows a failed job or open to return? */
bool wl_documented_error(int rc);

/* A job emitting one completion event (payload token -1, partition_key
 * -1); arg is NULL or an int64_t * that receives its event_id. */
int wl_heal_job(litebus_tx *tx, void *arg);

#endif
