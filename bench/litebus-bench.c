/* SPDX-License-Identifier: MIT */
/*
 * litebus-bench - litebus against its baseline and its ceiling, measured
 * in the same run.
 *
 * usage: litebus-bench [--quick] [--json FILE] [--reps N]
 *                      ring|commit|latency|catchup|fanout|
 *                      retention|consumer|prune|xproc|all ...
 *                      [--only K=V[,K=V...]]
 *        litebus-bench --help | --version
 *
 * Every scenario prints one line per configuration to stdout: the
 * configuration, the medians over the repetitions of litebus's figures,
 * the baseline's and the ceiling's, their ratios, and check=PASS/FAIL
 * (every consumer saw exactly the committed events, in order).  The
 * machines these run on are shared, so absolute figures drift between
 * runs; compare the ratios.  --json FILE writes one JSON object per
 * configuration (config, median/min/max of each metric, checks).  The
 * exit status is 1 if any check failed.  See bench/README.md.
 */
#include "bench.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef LITEBUS_BENCH_RELAY
/* scenario_relay.c: built with the Redis relay (LITEBUS_RELAY). */
void scenario_relay(void);
#endif

static const struct {
	const char *name;
	void (*run)(void);
} scenarios[] = {
    {"ring", scenario_ring},	     {"commit", scenario_commit},
    {"latency", scenario_latency},   {"catchup", scenario_catchup},
    {"fanout", scenario_fanout},     {"retention", scenario_retention},
    {"consumer", scenario_consumer}, {"prune", scenario_prune},
    {"xproc", scenario_xproc},
#ifdef LITEBUS_BENCH_RELAY
    {"relay", scenario_relay},
#endif
};
#define NSCENARIOS (sizeof scenarios / sizeof scenarios[0])

static void
usage(FILE *f)
{
	fprintf(f, "usage: litebus-bench [--quick] [--json FILE] [--reps N] "
		   "ring|commit|latency|catchup|fanout|\n"
		   "       retention|consumer|prune|xproc|all ...\n"
#ifdef LITEBUS_BENCH_RELAY
		   "       (and relay: this build has the Redis relay)\n"
#endif
		   "       litebus-bench --help | --version\n"
		   "\n"
		   "  --quick      shorter runs, one repetition unless --reps\n"
		   "  --json FILE  also write one JSON object per "
		   "configuration to FILE\n"
		   "  --reps N     repetitions per configuration, 1..32 "
		   "(default 3)\n"
		   "  --only K=V[,K=V...]  only configurations whose K is V "
		   "(where they\n"
		   "               have a K), e.g. --only P=1,mode=exec,S=0\n"
		   "  -h, --help   print this text and exit\n"
		   "  --version    print the versions of litebus-bench, the "
		   "litebus library\n"
		   "               and SQLite it runs with, and exit\n"
		   "\n"
		   "Exit status: 0 every check passed, 1 a check failed, 2 "
		   "usage or setup\nerror.  See bench/README.md.\n");
}

/* --only K=V[,K=V...]: add each pair to bench_cfg's filters. */
static bool
parse_only(const char *arg)
{
	char buf[512], *save = NULL;

	snprintf(buf, sizeof buf, "%s", arg);
	for (char *kv = strtok_r(buf, ",", &save); kv != NULL;
	     kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		int n = bench_cfg.nonly;

		if (eq == NULL || eq == kv || n >= 16 ||
		    (size_t)(eq - kv) >= sizeof bench_cfg.only_key[0] ||
		    strlen(eq + 1) >= sizeof bench_cfg.only_val[0])
			return false;
		*eq = '\0';
		snprintf(bench_cfg.only_key[n], sizeof bench_cfg.only_key[n],
			 "%s", kv);
		snprintf(bench_cfg.only_val[n], sizeof bench_cfg.only_val[n],
			 "%s", eq + 1);
		bench_cfg.nonly++;
	}
	return true;
}

/* "litebus-bench 0.1.0 (library 0.1.0, SQLite 3.40.1)": the version the
 * bench was built as, then the libraries actually loaded. */
static void
print_version(void)
{
	printf("litebus-bench %s (library %s, SQLite %s)\n",
	       LITEBUS_VERSION_STRING, litebus_version_string(),
	       sqlite3_libversion());
}

int
main(int argc, char **argv)
{
	bool want[NSCENARIOS] = {false};
	bool any = false, reps_set = false;
	uint64_t t0;
	int failed;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool known = false;

		if (strcmp(a, "--quick") == 0) {
			bench_cfg.quick = true;
			continue;
		}
		if (strcmp(a, "--json") == 0 && i + 1 < argc) {
			bench_cfg.json_path = argv[++i];
			continue;
		}
		if (strcmp(a, "--reps") == 0 && i + 1 < argc) {
			bench_cfg.reps = atoi(argv[++i]);
			reps_set = true;
			if (bench_cfg.reps < 1 || bench_cfg.reps > 32) {
				fprintf(stderr, "--reps: 1..32\n");
				return 2;
			}
			continue;
		}
		if (strcmp(a, "--only") == 0 && i + 1 < argc) {
			if (!parse_only(argv[++i])) {
				fprintf(stderr, "--only: K=V[,K=V...], at most "
						"16 in all\n");
				return 2;
			}
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "--version") == 0) {
			print_version();
			return 0;
		}
		for (size_t s = 0; s < NSCENARIOS; s++)
			if (strcmp(a, "all") == 0 ||
			    strcmp(a, scenarios[s].name) == 0) {
				want[s] = true;
				known = any = true;
			}
		if (!known) {
			usage(stderr);
			return 2;
		}
	}
	if (!any) {
		usage(stderr);
		return 2;
	}
	if (bench_cfg.quick && !reps_set)
		bench_cfg.reps = 1;

	report_open();
	res_note("litebus-bench litebus=%d.%d.%d sqlite=%s cpus=%ld reps=%d "
		 "quick=%d; medians over reps; compare the ratios, absolute "
		 "figures drift on shared machines",
		 LITEBUS_VERSION_MAJOR, LITEBUS_VERSION_MINOR,
		 LITEBUS_VERSION_PATCH, sqlite3_libversion(),
		 sysconf(_SC_NPROCESSORS_ONLN), bench_cfg.reps,
		 bench_cfg.quick ? 1 : 0);
	t0 = bench_now_ns();
	for (size_t s = 0; s < NSCENARIOS; s++) {
		uint64_t ts = bench_now_ns();

		if (!want[s])
			continue;
		scenarios[s].run();
		fprintf(stderr, "litebus-bench: %s took %.1f s\n",
			scenarios[s].name, bench_secs(bench_now_ns() - ts));
	}
	failed = report_close();
	res_note("%d configuration(s) FAILed; %.1f s", failed,
		 bench_secs(bench_now_ns() - t0));
	bench_dir_remove();
	return failed == 0 ? 0 : 1;
}
