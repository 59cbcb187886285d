/* SPDX-License-Identifier: MIT */
/*
 * bench_checkpoint - where should WAL checkpoints run?
 *
 * Question: does moving checkpoints off the commit path (a background
 * thread, LITEBUS_CHECKPOINT_BACKGROUND) take the checkpoint out of the
 * tail latency of litebus_exec, compared with SQLite's auto-checkpoint
 * inside the commit (LITEBUS_CHECKPOINT_INLINE)?
 *
 * One producer calls litebus_exec in a loop (one event per job, so every
 * job is its own transaction: the worst case for checkpoints), on a fresh
 * file database per run; the two modes alternate, and each figure is the
 * median over the repetitions of that run's percentile.  Ratios are
 * background / inline from the same run.  wal_kib_max is the largest
 * -wal file seen after any job (the WAL bound, litebus.h).
 *
 * usage: bench_checkpoint [jobs] [reps] [payload_bytes]
 */
#define _XOPEN_SOURCE 700
#include "litebus.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned char *payload;
static size_t payload_len = 32;

static int
job(litebus_tx *tx, void *arg)
{
	litebus_record rec = {0};

	(void)arg;
	rec.partition_key = 1;
	rec.event_type = "success";
	rec.payload = payload;
	rec.payload_len = payload_len;
	return litebus_emit(tx, LITEBUS_COMPLETION, &rec, NULL);
}

static double
wal_kib(const char *wal)
{
	struct stat sb;

	return stat(wal, &sb) == 0 ? (double)sb.st_size / 1024.0 : 0.0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

enum { P50, P99, P999, MAX, RATE, WAL, WAL_MAX, NSTAT };
static const char *const stat_names[NSTAT] = {
    "p50_us", "p99_us", "p999_us", "max_us",
    "jobs_s", "wal_kib_at_end", "wal_kib_max"};

static void
run(const char *dir, int mode, int jobs, int rep, double out[NSTAT],
    uint64_t *ckpts)
{
	char path[512], wal[600];
	litebus_options o;
	litebus *bus;
	litebus_stats st;
	uint64_t *lat = malloc((size_t)jobs * sizeof *lat), t0, t1;

	snprintf(path, sizeof path, "%s/ckpt-%d-%d.db", dir, mode, rep);
	snprintf(wal, sizeof wal, "%s-wal", path);
	out[WAL_MAX] = 0.0;
	litebus_options_init(&o);
	o.path = path;
	o.checkpoint_mode = mode;
	if (lat == NULL || litebus_open(&o, &bus) != LITEBUS_OK) {
		fprintf(stderr, "open: %s\n", litebus_last_errmsg());
		exit(1);
	}
	t0 = now_ns();
	for (int i = 0; i < jobs; i++) {
		uint64_t s = now_ns();
		if (litebus_exec(bus, job, NULL) != 0) {
			fprintf(stderr, "exec: %s\n", litebus_last_errmsg());
			exit(1);
		}
		lat[i] = now_ns() - s;
		double kib = wal_kib(wal); /* outside the timed call */
		if (kib > out[WAL_MAX])
			out[WAL_MAX] = kib;
	}
	t1 = now_ns();
	litebus_stats_get(bus, &st);
	*ckpts = st.checkpoints;
	out[WAL] = wal_kib(wal);
	litebus_close(bus);
	qsort(lat, (size_t)jobs, sizeof *lat, cmp_u64);
	out[P50] = (double)lat[jobs / 2] / 1e3;
	out[P99] = (double)lat[(size_t)jobs * 99 / 100] / 1e3;
	out[P999] = (double)lat[(size_t)jobs * 999 / 1000] / 1e3;
	out[MAX] = (double)lat[jobs - 1] / 1e3;
	out[RATE] = jobs / ((double)(t1 - t0) / 1e9);
	free(lat);
}

int
main(int argc, char **argv)
{
	int jobs = argc > 1 ? atoi(argv[1]) : 20000;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	char dir[] = "/tmp/litebus-bench-XXXXXX";
	static const char *const mode_names[2] = {"background", "inline"};
	double *v[2][NSTAT], med[2][NSTAT];
	uint64_t ckpts[2] = {0, 0};

	if (argc > 3)
		payload_len = (size_t)strtoul(argv[3], NULL, 10);
	payload = calloc(payload_len > 0 ? payload_len : 1, 1);
	if (payload == NULL || jobs < 1 || reps < 1) {
		fprintf(stderr, "usage: bench_checkpoint [jobs] [reps] "
				"[payload_bytes]\n");
		return 2;
	}
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	for (int m = 0; m < 2; m++)
		for (int s = 0; s < NSTAT; s++)
			v[m][s] = calloc((size_t)reps, sizeof(double));
	for (int rep = 0; rep < reps; rep++) {
		for (int m = 0; m < 2; m++) { /* alternate the modes */
			double out[NSTAT];
			run(dir, m, jobs, rep, out, &ckpts[m]);
			for (int s = 0; s < NSTAT; s++)
				v[m][s][rep] = out[s];
		}
	}
	for (int m = 0; m < 2; m++)
		for (int s = 0; s < NSTAT; s++) {
			qsort(v[m][s], (size_t)reps, sizeof(double),
			      cmp_double);
			med[m][s] = v[m][s][reps / 2];
		}
	for (int m = 0; m < 2; m++) {
		printf("checkpoint mode=%s jobs=%d reps=%d payload=%zu",
		       mode_names[m], jobs, reps, payload_len);
		for (int s = 0; s < NSTAT; s++)
			printf(" %s=%.1f", stat_names[s], med[m][s]);
		printf(" background_checkpoints=%llu\n",
		       (unsigned long long)ckpts[m]);
	}
	printf("checkpoint ratio background/inline:");
	for (int s = 0; s < NSTAT; s++)
		printf(" %s=%.2f", stat_names[s], med[0][s] / med[1][s]);
	printf("\n");
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(payload);
	return 0;
}
