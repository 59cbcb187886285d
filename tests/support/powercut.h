/* SPDX-License-Identifier: MIT */
/*
 * powercut.h - the power-cut sweep shared by test_power_cut (unit, a few
 * hundred cuts) and stress_power_cut (thousands).
 *
 * One recorded run (powervfs.h) of a busy bus: producer threads commit
 * jobs with litebus_exec and litebus_submit (group commit), one job in
 * eight fails on purpose, some undo an emit with their own savepoint;
 * every job writes a row of the application table txlog (the commit
 * order of the whole database); background checkpoints run all along
 * (checkpoint_pages 8); a reader follows COMPLETION through an 8-slot
 * ring and records its cursor; a durable consumer acknowledges
 * COMPLETION with litebus_consumer_ack (+ flush), another applies
 * "orders" exactly once with litebus_consumer_ack_tx.  Then, for each cut
 * point, the disk a power cut there would leave (pending writes of the
 * database and the -wal dropped, kept or torn by sector; the -shm gone,
 * empty or garbage) is reopened with litebus_open and checked:
 *
 *  both   the bus opens; PRAGMA integrity_check is "ok"; txlog is a
 *         prefix of the run's final txlog (the commit order of the whole
 *         database); the outbox rows are exactly the events of the
 *         surviving jobs, with their ids and fields (so no event of a
 *         failed job or an undone emit, and ids dense per channel up to
 *         the last surviving commit); the exactly-once consumer's
 *         applied rows and position match its surviving commits; no
 *         consumer position points past its channel's surviving rows;
 *         a reader from the start delivers exactly the rows; reopened
 *         consumers resume right after their positions; a new job
 *         commits with ids above the surviving ones.
 *  FULL   every job acknowledged before the cut survived (exec returned
 *         0, or done(0) ran); every consumer position flushed before the
 *         cut held; the rows up to every reader cursor recorded before
 *         the cut survived, and a reader reopened from that cursor
 *         delivers exactly the rows after it.
 *
 * Failures fail the cmocka test with the cut point, its kind and seed.
 */
#ifndef LB_TEST_POWERCUT_H
#define LB_TEST_POWERCUT_H

#include <stddef.h>
#include <stdint.h>

struct powercut_config {
	int durability;	     /* LITEBUS_DURABILITY_* */
	int checkpoint_mode; /* LITEBUS_CHECKPOINT_* */
	int producers;	     /* threads committing jobs */
	int jobs;	     /* jobs per producer */
	size_t cuts;	     /* cut points to try; 0: every trace position,
				each with every cut kind */
	uint64_t seed;
};

struct powercut_result {
	size_t trace_len; /* VFS calls recorded */
	size_t syncs;	  /* of which xSync */
	size_t cuts;	  /* cut points tried */
	size_t torn;	  /* cuts that tore some file's pending writes */
	size_t lost_jobs; /* cuts that lost an acknowledged job (NORMAL
			     may; FULL fails the test) */
	size_t committed; /* jobs in the run's final txlog */
};

/* Record one run in a fresh directory, sweep the cuts, remove the
 * directory.  Fails the current cmocka test on any broken promise. */
void powercut_run(const struct powercut_config *cfg,
		  struct powercut_result *res);

#endif
