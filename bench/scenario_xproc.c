/* SPDX-License-Identifier: MIT */
/*
 * scenario_xproc.c - readers in another process than the writer
 * (litebus.h, "Commits made elsewhere"): wake-up latency and the idle
 * cost of the watcher, for each way of watching.
 *
 * latency: a writer process (forked before this process opens the file,
 * as the header's fork() rules ask) commits one event per exec at a fixed
 * rate and stores, in shared memory, the monotonic time at which each
 * exec returned (its COMMIT is done then).  This process follows the
 * channel with a reader of a read-only bus; the latency of an event is
 * the time the reader holds the row minus that time (CLOCK_MONOTONIC is
 * one clock for the whole machine).  A row the reader holds before the
 * writer's exec has returned counts as 0.  Baseline in the same run:
 * mode=inproc, the reader on the writer's own bus in one process (the
 * ring's wake-up path).  Watch modes: auto (inotify + backstop), poll1
 * and poll5 (data_version every 1 / 5 ms).
 *
 * idle: a read-only bus with one reader blocked in litebus_reader_next
 * and nobody writing; the CPU time this whole process uses over the
 * interval (getrusage: the watcher thread is the only one that runs),
 * as CPU seconds per minute and percent of one core.
 *
 * Checks: the reader got every event, in order, exactly once.
 */
/* MAP_ANONYMOUS */
#define _DEFAULT_SOURCE

#include "bench.h"
#include "hist.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum xmode { X_INPROC, X_AUTO, X_POLL1, X_POLL5, X_NMODES };
static const char *const xmode_name[X_NMODES] = {"inproc", "auto", "poll1",
						 "poll5"};

/* Shared with the writer process. */
struct xshared {
	_Atomic int ready; /* the writer opened the file */
	_Atomic int go;	   /* the reader is attached: start */
	_Atomic int failed;
	_Atomic uint64_t acked_ns[]; /* event i: when its exec returned */
};

/* Commit n events at the scheduled rate on `bus`, storing when each
 * exec returned. */
static void
xproc_produce(litebus *bus, struct xshared *sh, uint64_t n, uint64_t period_ns)
{
	uint64_t t0;

	while (atomic_load(&sh->go) == 0)
		bench_sleep_ns(100000);
	bench_tight_timer_slack();
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		int rc;

		bench_sleep_until_ns(t0 + i * period_ns);
		rc = litebus_exec(bus, bench_emit_job,
				  (void *)(uintptr_t)BENCH_KEY(0, i));
		if (rc != LITEBUS_OK) {
			atomic_store(&sh->failed, rc);
			break;
		}
		atomic_store(&sh->acked_ns[i], bench_now_ns());
	}
}

struct xproc_thread_arg {
	litebus *bus;
	struct xshared *sh;
	uint64_t n, period_ns;
};

static void *
xproc_produce_main(void *arg)
{
	struct xproc_thread_arg *a = arg;

	xproc_produce(a->bus, a->sh, a->n, a->period_ns);
	return NULL;
}

/* Follow n events on `bus`; the latencies go to *h.  True if every event
 * arrived once and in order. */
static bool
xproc_follow(litebus *bus, struct xshared *sh, uint64_t n, struct hist *h)
{
	litebus_reader *r;
	litebus_row row;
	uint64_t next = 0;
	bool ok = true;
	int rc;

	bench_litebus_check(litebus_reader_open(bus, BENCH_CHANNEL_ID,
						LITEBUS_FROM_NOW, NULL, &r),
			    "xproc: reader_open");
	atomic_store(&sh->go, 1);
	while (next < n) {
		uint64_t now, acked, key;

		rc = litebus_reader_next(r, &row, 10000);
		if (rc != LITEBUS_OK) {
			fprintf(stderr, "xproc: reader_next: %s after %llu\n",
				litebus_errname(rc), (unsigned long long)next);
			ok = false;
			break;
		}
		now = bench_now_ns();
		key = (uint64_t)row.partition_key;
		if (BENCH_KEY_SEQ(key) != next)
			ok = false;
		acked = atomic_load(&sh->acked_ns[next]);
		hist_add(h, acked != 0 && now > acked ? now - acked : 0);
		next++;
	}
	litebus_reader_close(r);
	return ok;
}

static void
xproc_latency(enum xmode m, uint64_t n, uint64_t rate)
{
	struct bench_result *res = res_new("xproc");
	size_t shlen = sizeof(struct xshared) + n * sizeof(uint64_t);
	uint64_t period_ns = 1000000000ull / rate;

	res_cfg(res, "kind", "latency");
	res_cfg(res, "mode", "%s", xmode_name[m]);
	res_cfg(res, "rate", "%llu", (unsigned long long)rate);
	for (int rep = 0; rep < bench_cfg.reps; rep++) {
		struct xshared *sh = mmap(NULL, shlen, PROT_READ | PROT_WRITE,
					  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		struct hist *h = malloc(sizeof *h);
		char path[512];
		litebus *bus;
		bool ok;
		int st = 0;
		pid_t pid;

		if (sh == MAP_FAILED || h == NULL) {
			fprintf(stderr, "xproc: out of memory\n");
			exit(1);
		}
		hist_init(h);
		bench_db_path(path, sizeof path, "xproc");
		if (m == X_INPROC) {
			/* Baseline: the producer on a thread of this process,
			 * the reader on the same bus (the ring's path). */
			struct xproc_thread_arg a = {
			    .sh = sh, .n = n, .period_ns = period_ns};
			pthread_t th;

			bus = bench_open_bus(path, LITEBUS_DURABILITY_NORMAL,
					     4096);
			a.bus = bus;
			if (pthread_create(&th, NULL, xproc_produce_main, &a) !=
			    0) {
				fprintf(stderr, "xproc: pthread_create\n");
				exit(1);
			}
			ok = xproc_follow(bus, sh, n, h);
			pthread_join(th, NULL);
			ok = ok && atomic_load(&sh->failed) == 0;
			litebus_close(bus);
		} else {
			litebus_options o;

			pid = fork();
			if (pid < 0) {
				perror("xproc: fork");
				exit(1);
			}
			if (pid == 0) {
				/* A new process: this one has not opened the
				 * file (header, "fork()"). */
				bus = bench_open_bus(
				    path, LITEBUS_DURABILITY_NORMAL, 4096);
				atomic_store(&sh->ready, 1);
				xproc_produce(bus, sh, n, period_ns);
				litebus_close(bus);
				_exit(atomic_load(&sh->failed) != 0);
			}
			while (atomic_load(&sh->ready) == 0)
				bench_sleep_ns(1000000);
			litebus_options_init(&o);
			o.path = path;
			o.read_only = 1;
			o.channels = (const char *const[]){BENCH_CHANNEL, NULL};
			o.watch = m == X_AUTO ? LITEBUS_WATCH_AUTO
					      : LITEBUS_WATCH_POLL;
			o.watch_interval_ms = m == X_POLL1   ? 1
					      : m == X_POLL5 ? 5
							     : 1000;
			bus = bench_open_bus_opts(&o);
			ok = xproc_follow(bus, sh, n, h);
			litebus_close(bus);
			while (waitpid(pid, &st, 0) < 0)
				;
			ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
		}
		res_check(res, "every_event_once_in_order", ok,
			  "the reader missed, repeated or reordered events");
		res_val(res, "p50_us", 0, (double)hist_quantile(h, 0.50) / 1e3);
		res_val(res, "p99_us", 0, (double)hist_quantile(h, 0.99) / 1e3);
		res_val(res, "max_us", 0, (double)h->max / 1e3);
		free(h);
		munmap(sh, shlen);
		bench_db_remove(path);
	}
	res_emit(res);
}

/* The watcher's cost with a reader waiting and nothing committed. */
static void
xproc_idle(enum xmode m, double secs)
{
	struct bench_result *res = res_new("xproc");
	char path[512];
	litebus *bus;

	res_cfg(res, "kind", "idle");
	res_cfg(res, "mode", "%s", xmode_name[m]);
	bench_db_path(path, sizeof path, "xidle");
	bus = bench_open_bus(path, LITEBUS_DURABILITY_NORMAL, 4096);
	bench_fill(bus, BENCH_FILL_PER_JOB);
	litebus_close(bus);
	for (int rep = 0; rep < bench_cfg.reps; rep++) {
		litebus_options o;
		litebus_reader *r;
		litebus_row row;
		struct rusage ru0, ru1;
		uint64_t t0, t1;
		double cpu;
		int rc;

		litebus_options_init(&o);
		o.path = path;
		o.read_only = 1;
		o.channels = (const char *const[]){BENCH_CHANNEL, NULL};
		o.watch = m == X_AUTO ? LITEBUS_WATCH_AUTO : LITEBUS_WATCH_POLL;
		o.watch_interval_ms = m == X_POLL1   ? 1
				      : m == X_POLL5 ? 5
						     : 1000;
		bus = bench_open_bus_opts(&o);
		bench_litebus_check(litebus_reader_open(bus, BENCH_CHANNEL_ID,
							LITEBUS_FROM_NOW, NULL,
							&r),
				    "xproc idle: reader_open");
		getrusage(RUSAGE_SELF, &ru0);
		t0 = bench_now_ns();
		/* This thread blocks in the reader, as a follower would. */
		rc = litebus_reader_next(r, &row, (int)(secs * 1000));
		t1 = bench_now_ns();
		getrusage(RUSAGE_SELF, &ru1);
		res_check(res, "nothing_delivered", rc == LITEBUS_TIMEOUT,
			  "reader_next returned %s with nothing committed",
			  litebus_errname(rc));
		cpu =
		    (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
		    (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
		    (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) /
			1e6 +
		    (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
		res_val(res, "cpu_s_per_min", 4,
			cpu / bench_secs(t1 - t0) * 60);
		res_val(res, "pct_core", 3, cpu / bench_secs(t1 - t0) * 100);
		litebus_reader_close(r);
		litebus_close(bus);
	}
	bench_db_remove(path);
	res_emit(res);
}

void
scenario_xproc(void)
{
	uint64_t n = bench_cfg.quick ? 200 : 5000;
	double idle_secs = bench_cfg.quick ? 0.5 : 10;

	res_note("xproc: a reader in another process than the writer; "
		 "latency = reader holds the row - the writer's exec "
		 "returned (1000 events/s), inproc = same process "
		 "(baseline); idle = the watcher's CPU with a reader waiting");
	for (int m = 0; m < X_NMODES; m++)
		xproc_latency((enum xmode)m, n, 1000);
	for (int m = 0; m < X_NMODES; m++)
		xproc_latency((enum xmode)m, n / 10, 100);
	for (int m = X_AUTO; m < X_NMODES; m++)
		xproc_idle((enum xmode)m, idle_secs);
}
