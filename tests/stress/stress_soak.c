/* SPDX-License-Identifier: MIT */
/*
 * stress_soak.c - minutes of producers, readers and subscribers on tiny
 * and large rings, checking the invariants, not timings.
 *
 * Two buses run side by side: one with 8-slot rings (everyone lags all
 * the time) and one with 4096-slot rings.  On each, producers commit jobs
 * (some fail on purpose, some emit several events, some use submit),
 * readers follow from the start (some filtered by partition, some slow at
 * random) and raw subscribers follow the ring.  At the end:
 *   - every reader saw strictly increasing ids, and exactly the rows the
 *     outbox holds for its filter (count, sum and sum of squares agree);
 *   - every subscriber: received + skipped == events published after it
 *     subscribed, and what it received was in increasing order;
 *   - the outbox holds no row of a job that reported failure, and every
 *     row of every job that reported success.
 *
 * Size: LITEBUS_STRESS_SECONDS (default 10), LITEBUS_STRESS_THREADS
 * (producers per bus, default 4).  Followers: 16 per bus (8 readers and 8
 * subscribers), 32 in all.
 */
#include "fixture.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define FOLLOWERS 8
#define MAX_TOKENS (1u << 26)
struct soak_bus {
	struct bus_fixture fx;
	_Atomic bool stop;
	/* Token t = producer << 20 | n.  ok[t] set once the job reported 0;
	 * failed[t] once it reported anything else (writer thread or
	 * producer thread; read after close). */
	_Atomic unsigned char *ok, *failed;
	_Atomic uint64_t jobs_ok, jobs_failed;
};

struct soak_producer {
	struct soak_bus *sb;
	int index;
	unsigned seed;
};

/* A job: 1..3 events carrying the token, failing on purpose 1 in 10. */
struct soak_job {
	struct fx_emit emit; /* the argument of fx_emit_job */
	struct soak_bus *sb;
	uint32_t token;
};

static void
soak_record(struct soak_bus *sb, uint32_t token, int status)
{
	uint32_t slot = token % MAX_TOKENS;

	if (status == 0) {
		atomic_store_explicit(&sb->ok[slot], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&sb->jobs_ok, 1,
					  memory_order_relaxed);
	} else {
		atomic_store_explicit(&sb->failed[slot], 1,
				      memory_order_relaxed);
		atomic_fetch_add_explicit(&sb->jobs_failed, 1,
					  memory_order_relaxed);
	}
}

static void
soak_done(int status, void *arg)
{
	struct soak_job *j = arg;

	soak_record(j->sb, j->token, status);
	free(j);
}

static void *
producer_main(void *p)
{
	struct soak_producer *pr = p;
	struct soak_bus *sb = pr->sb;
	uint32_t n = 0;

	while (!atomic_load_explicit(&sb->stop, memory_order_relaxed) &&
	       n < (1u << 20)) {
		struct soak_job *j = malloc(sizeof *j);
		assert_non_null(j);
		j->sb = sb;
		j->token = ((uint32_t)pr->index << 20) | n++;
		j->emit = (struct fx_emit){
		    .channel = LITEBUS_COMPLETION,
		    .count = 1 + (int)(rand_r(&pr->seed) % 3),
		    .payload = &j->token,
		    .payload_len = sizeof j->token,
		    .partition_key = (int64_t)(j->token % 8)};
		j->emit.fail = rand_r(&pr->seed) % 10 == 0;
		if (rand_r(&pr->seed) % 2 == 0) {
			int rc = litebus_exec(sb->fx.bus, fx_emit_job, &j->emit);
			soak_record(sb, j->token, rc);
			free(j);
		} else {
			int rc = litebus_submit(sb->fx.bus, fx_emit_job,
						&j->emit, soak_done, j);
			if (rc != LITEBUS_OK) {
				assert_int_equal(rc, LITEBUS_EAGAIN);
				free(j);
			}
		}
	}
	return NULL;
}

struct soak_follower {
	struct soak_bus *sb;
	bool is_reader;
	int partition; /* -1: all */
	bool slow;
	unsigned seed;
	litebus_reader *r;
	litebus_sub *s;
	uint64_t count, sum, sumsq;
	int64_t last;
	uint64_t skipped;
	int error;
};

static void
soak_nap(unsigned *seed)
{
	struct timespec ts = {0, (long)(rand_r(seed) % 200) * 1000};

	nanosleep(&ts, NULL); /* a slow consumer, not synchronization */
}

static void *
follower_main(void *p)
{
	struct soak_follower *f = p;

	for (;;) {
		int rc;
		if (f->is_reader) {
			litebus_row row;
			rc = litebus_reader_next(f->r, &row, 1000);
			if (rc == LITEBUS_OK) {
				if (row.event_id <= f->last)
					f->error = 1;
				if (f->partition >= 0 &&
				    row.partition_key != f->partition)
					f->error = 2;
				f->last = row.event_id;
				f->count++;
				f->sum += (uint64_t)row.event_id;
				f->sumsq += (uint64_t)row.event_id *
					    (uint64_t)row.event_id;
			}
		} else {
			litebus_event ev;
			rc = litebus_recv(f->s, &ev, 1000);
			if (rc == LITEBUS_OK) {
				if (ev.event_id <= f->last)
					f->error = 3;
				f->last = ev.event_id;
				f->count++;
			} else if (rc == LITEBUS_LAGGED) {
				f->skipped += litebus_sub_skipped(f->s);
			}
		}
		if (rc == LITEBUS_CLOSED)
			break;
		if (rc < 0) {
			f->error = rc;
			break;
		}
		if (f->slow && rand_r(&f->seed) % 64 == 0)
			soak_nap(&f->seed);
	}
	return NULL;
}

/* count, sum, sum of squares of the outbox ids (optionally one
 * partition), and whether every row belongs to a job that succeeded. */
static void
soak_table(struct soak_bus *sb, int partition, uint64_t out[3],
	   bool *tokens_ok, uint64_t *rows_total)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	out[0] = out[1] = out[2] = 0;
	*tokens_ok = true;
	*rows_total = 0;
	assert_int_equal(sqlite3_open_v2(sb->fx.path, &db,
					 SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT event_id, partition_key, "
					    "payload FROM "
					    "litebus_outbox_completion",
					    -1, &st, NULL),
			 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
		uint32_t token;
		memcpy(&token, sqlite3_column_blob(st, 2), sizeof token);
		if (!atomic_load_explicit(&sb->ok[token % MAX_TOKENS],
					  memory_order_relaxed) ||
		    atomic_load_explicit(&sb->failed[token % MAX_TOKENS],
					 memory_order_relaxed))
			*tokens_ok = false;
		(*rows_total)++;
		if (partition >= 0 && sqlite3_column_int64(st, 1) != partition)
			continue;
		out[0]++;
		out[1] += id;
		out[2] += id * id;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void
soak_bus_init(struct soak_bus *sb, uint32_t ring)
{
	memset(sb, 0, sizeof *sb);
	fx_make_dir(&sb->fx);
	litebus_options_init(&sb->fx.opts);
	sb->fx.opts.ring_capacity = ring;
	fx_open(&sb->fx);
	sb->ok = calloc(MAX_TOKENS, 1);
	sb->failed = calloc(MAX_TOKENS, 1);
	assert_non_null(sb->ok);
	assert_non_null(sb->failed);
}

static void
soak_every_reader_exactly_once_and_every_subscriber_accounted(void **state)
{
	const char *env_s = getenv("LITEBUS_STRESS_SECONDS");
	const char *env_t = getenv("LITEBUS_STRESS_THREADS");
	int seconds = env_s != NULL ? atoi(env_s) : 10;
	int producers = env_t != NULL ? atoi(env_t) : 4;
	static struct soak_bus buses[2];
	static struct soak_follower fol[2][2 * FOLLOWERS];
	struct soak_producer *prod = calloc((size_t)producers * 2, sizeof *prod);
	pthread_t *pt = calloc((size_t)producers * 2, sizeof *pt);
	pthread_t ft[2][2 * FOLLOWERS];
	uint64_t verified = 0;

	(void)state;
	assert_non_null(prod);
	assert_non_null(pt);
	soak_bus_init(&buses[0], 8);
	soak_bus_init(&buses[1], 4096);
	for (int b = 0; b < 2; b++) {
		for (int i = 0; i < 2 * FOLLOWERS; i++) {
			struct soak_follower *f = &fol[b][i];
			memset(f, 0, sizeof *f);
			f->sb = &buses[b];
			f->is_reader = i < FOLLOWERS;
			f->partition = f->is_reader && i % 4 == 3 ? i % 8 : -1;
			f->slow = i % 3 == 0;
			f->seed = (unsigned)(b * 100 + i);
			if (f->is_reader) {
				litebus_filter flt = {0};
				flt.partition_key = f->partition;
				flt.any_partition = f->partition < 0;
				assert_int_equal(
				    litebus_reader_open(buses[b].fx.bus,
							LITEBUS_COMPLETION, 0,
							&flt, &f->r),
				    LITEBUS_OK);
			} else {
				assert_int_equal(
				    litebus_subscribe(buses[b].fx.bus,
						      LITEBUS_COMPLETION,
						      &f->s),
				    LITEBUS_OK);
			}
			assert_int_equal(
			    pthread_create(&ft[b][i], NULL, follower_main, f),
			    0);
		}
		for (int p = 0; p < producers; p++) {
			struct soak_producer *pr = &prod[b * producers + p];
			pr->sb = &buses[b];
			pr->index = p;
			pr->seed = (unsigned)(b * 1000 + p);
			assert_int_equal(pthread_create(&pt[b * producers + p],
							NULL, producer_main,
							pr),
					 0);
		}
	}
	uint64_t end = fx_now_ms() + (uint64_t)seconds * 1000u;
	while (fx_now_ms() < end) {
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL); /* the test's duration, not sync */
	}
	for (int b = 0; b < 2; b++)
		atomic_store_explicit(&buses[b].stop, true,
				      memory_order_relaxed);
	for (int i = 0; i < 2 * producers; i++)
		pthread_join(pt[i], NULL);
	for (int b = 0; b < 2; b++) {
		litebus_stats st;
		struct soak_bus *sb = &buses[b];
		assert_int_equal(litebus_stats_get(sb->fx.bus, &st), LITEBUS_OK);
		assert_int_equal(litebus_close(sb->fx.bus), LITEBUS_OK);
		sb->fx.bus = NULL;
		for (int i = 0; i < 2 * FOLLOWERS; i++)
			pthread_join(ft[b][i], NULL);
		for (int i = 0; i < 2 * FOLLOWERS; i++) {
			struct soak_follower *f = &fol[b][i];
			uint64_t want[3], rows;
			bool tokens_ok;
			if (f->error != 0)
				fail_msg("bus %d follower %d: error %d", b, i,
					 f->error);
			soak_table(sb, f->partition, want, &tokens_ok, &rows);
			assert_true(tokens_ok);
			if (f->is_reader) {
				if (f->count != want[0] || f->sum != want[1] ||
				    f->sumsq != want[2])
					fail_msg("bus %d reader %d: %llu rows, "
						 "table has %llu",
						 b, i,
						 (unsigned long long)f->count,
						 (unsigned long long)want[0]);
				verified += f->count;
				litebus_reader_close(f->r);
			} else {
				if (f->count + f->skipped != rows)
					fail_msg("bus %d subscriber %d: "
						 "received %llu + skipped %llu "
						 "!= published %llu",
						 b, i,
						 (unsigned long long)f->count,
						 (unsigned long long)f->skipped,
						 (unsigned long long)rows);
				verified += f->count;
				litebus_unsubscribe(f->s);
			}
		}
		print_message("soak bus %d (ring %u): jobs ok %llu failed %llu, "
			      "events %llu, batches %llu, sub lags %llu, "
			      "reader lags %llu\n",
			      b, sb->fx.opts.ring_capacity,
			      (unsigned long long)sb->jobs_ok,
			      (unsigned long long)sb->jobs_failed,
			      (unsigned long long)st.events,
			      (unsigned long long)st.batches,
			      (unsigned long long)st.sub_lags,
			      (unsigned long long)st.reader_lags);
		fx_remove_dir(&sb->fx);
		free((void *)sb->ok);
		free((void *)sb->failed);
	}
	print_message("soak: %llu deliveries verified\n",
		      (unsigned long long)verified);
	free(prod);
	free(pt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		soak_every_reader_exactly_once_and_every_subscriber_accounted),
	};

	return cmocka_run_group_tests_name("soak", tests, NULL, NULL);
}
