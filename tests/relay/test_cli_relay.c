/* SPDX-License-Identifier: MIT */
/*
 * test_cli_relay.c - `litebus relay` (tools/cli/relay.c), the INSTALLED
 * binary (argv[1]), against a redis-server of the test's own, next to
 * this process's bus committing on the same file (a server and its
 * relay, as an operator runs them).
 */
#include "fixture.h"
#include "redis_server.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *litebus_bin; /* the installed tool */
static const char *const channels[] = {"orders", NULL};
#define KEY "litebus:orders"

struct cli_fixture {
	struct bus_fixture f; /* first: the fixture's helpers use it */
	struct redis_server rs;
	int ch;
	char out[400]; /* the tool's stdout+stderr */
};

static int
setup(void **state)
{
	struct cli_fixture *t = calloc(1, sizeof *t);

	/* The test in progress is the last "[ RUN ]" line of the output. */
	watchdog_arm(240, "test_cli_relay");
	assert_non_null(t);
	fx_make_dir(&t->f);
	litebus_options_init(&t->f.opts);
	t->f.opts.path = t->f.path;
	t->f.opts.channels = channels;
	fx_open(&t->f);
	t->ch = litebus_channel_id(t->f.bus, "orders");
	(void)snprintf(t->out, sizeof t->out, "%s/relay.out", t->f.dir);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct cli_fixture *t = *state;

	redis_server_cleanup(&t->rs);
	assert_int_equal(litebus_close(t->f.bus), LITEBUS_OK);
	fx_remove_dir(&t->f);
	free(t);
	return 0;
}

/* Run `litebus relay DB --redis 127.0.0.1:PORT ... --channel orders`
 * with its output in t->out (appended). */
static pid_t
spawn_tool(struct cli_fixture *t, const char *pwfile)
{
	char redis[64];
	const char *argv[12];
	posix_spawn_file_actions_t fa;
	int argc = 0;
	pid_t pid;

	(void)snprintf(redis, sizeof redis, "127.0.0.1:%d", t->rs.port);
	argv[argc++] = litebus_bin;
	argv[argc++] = "relay";
	argv[argc++] = t->f.path;
	argv[argc++] = "--redis";
	argv[argc++] = redis;
	argv[argc++] = "--channel";
	argv[argc++] = "orders";
	if (pwfile != NULL) {
		argv[argc++] = "--password-file";
		argv[argc++] = pwfile;
	}
	argv[argc] = NULL;
	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	assert_int_equal(
	    posix_spawn_file_actions_addopen(
		&fa, 1, t->out, O_WRONLY | O_CREAT | O_APPEND, 0644),
	    0);
	assert_int_equal(posix_spawn_file_actions_adddup2(&fa, 1, 2), 0);
	assert_int_equal(posix_spawn(&pid, litebus_bin, &fa, NULL,
				     (char *const *)argv, environ),
			 0);
	assert_int_equal(posix_spawn_file_actions_destroy(&fa), 0);
	return pid;
}

static int
stop_tool(pid_t pid, int sig)
{
	int st;

	if (sig != 0)
		assert_int_equal(kill(pid, sig), 0);
	st = wait_exit(pid, 4 * FX_WAIT_MS, "litebus relay");
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *
output(const struct cli_fixture *t)
{
	static char buf[65536];
	FILE *f = fopen(t->out, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	assert_int_equal(fclose(f), 0);
	return buf;
}

static int64_t
head_of(struct cli_fixture *t)
{
	int64_t head, oldest;

	assert_int_equal(litebus_channel_head(t->f.bus, t->ch, &head, &oldest),
			 LITEBUS_OK);
	return head;
}

/* litebus(1), relay: "ships every committed row of each CHANNEL to the
 * Redis stream P:CHANNEL ... exactly once and in order, until SIGINT or
 * SIGTERM", and a restart "resumes where it stopped". */
static void
tool_relays_a_live_file_across_sigkill_and_restart(void **state)
{
	struct cli_fixture *t = *state;
	char pw[400];
	redisContext *c;
	FILE *f;
	pid_t pid;

	t->rs.password = "s3cret";
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	(void)snprintf(pw, sizeof pw, "%s/password", t->f.dir);
	f = fopen(pw, "w");
	assert_non_null(f);
	assert_true(fputs("s3cret\n", f) >= 0);
	assert_int_equal(fclose(f), 0);

	commit_rows(t->f.bus, t->ch, 300);
	pid = spawn_tool(t, pw);
	commit_rows(t->f.bus, t->ch, 300); /* live, from this process */
	if (!redis_stream_wait(c, KEY, head_of(t), 4 * FX_WAIT_MS))
		fail_msg("the tool did not relay: %s", output(t));
	assert_int_equal(stop_tool(pid, SIGKILL), 128 + SIGKILL);

	commit_rows(t->f.bus, t->ch, 200);
	pid = spawn_tool(t, pw);
	if (!redis_stream_wait(c, KEY, head_of(t), 4 * FX_WAIT_MS))
		fail_msg("the restarted tool did not relay: %s", output(t));
	assert_int_equal(stop_tool(pid, SIGTERM), 0);
	assert_int_equal(check_stream(t->f.bus, t->ch, c, KEY), 800);
	assert_non_null(strstr(output(t), "orders: streaming"));
	assert_non_null(strstr(output(t), "final: orders:"));
	redisFree(c);
}

/* litebus(1), relay: "a permanent error (a key of another type) stops
 * that channel with a message; exit status 1 when every channel
 * stopped", and a wrong password is printed as it happens. */
static void
tool_reports_redis_errors_on_its_output(void **state)
{
	struct cli_fixture *t = *state;
	char pw[400];
	redisContext *c;
	FILE *f;
	pid_t pid;

	t->rs.password = "right";
	redis_server_start(&t->rs);
	c = redis_admin(&t->rs);
	commit_rows(t->f.bus, t->ch, 10);
	(void)snprintf(pw, sizeof pw, "%s/password", t->f.dir);
	f = fopen(pw, "w");
	assert_non_null(f);
	assert_true(fputs("wrong\n", f) >= 0);
	assert_int_equal(fclose(f), 0);

	/* A wrong password: reported, retried, never a crash. */
	pid = spawn_tool(t, pw);
	for (int i = 0; strstr(output(t), "WRONGPASS") == NULL; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		if (i > FX_WAIT_MS / 10)
			fail_msg("no WRONGPASS on the output: %s", output(t));
		(void)nanosleep(&ts, NULL); /* another process's output */
	}
	assert_int_equal(stop_tool(pid, SIGTERM), 0);

	/* WRONGTYPE: every channel stops, exit 1. */
	redis_ok(c, "SET litebus:orders not-a-stream");
	f = fopen(pw, "w");
	assert_non_null(f);
	assert_true(fputs("right\n", f) >= 0);
	assert_int_equal(fclose(f), 0);
	pid = spawn_tool(t, pw);
	assert_int_equal(stop_tool(pid, 0), 1);
	assert_non_null(strstr(output(t), "WRONGTYPE"));
	assert_non_null(strstr(output(t), "every channel stopped"));
	redisFree(c);
}

/* litebus(1): "2 usage error". */
static void
tool_refuses_a_bad_command_line(void **state)
{
	struct cli_fixture *t = *state;
	char cmd[1200];

	(void)snprintf(cmd, sizeof cmd,
		       "'%s' relay '%s' --channel orders >/dev/null 2>&1",
		       litebus_bin, t->f.path);
	assert_int_equal(WEXITSTATUS(system(cmd)), 2); /* no --redis */
	(void)snprintf(cmd, sizeof cmd,
		       "'%s' relay '%s' --redis nohost --channel orders "
		       ">/dev/null 2>&1",
		       litebus_bin, t->f.path);
	assert_int_equal(WEXITSTATUS(system(cmd)), 2); /* no port */
	(void)snprintf(cmd, sizeof cmd,
		       "'%s' relay '%s' --redis 127.0.0.1:1 --channel nosuch "
		       ">/dev/null 2>&1",
		       litebus_bin, t->f.path);
	assert_int_equal(WEXITSTATUS(system(cmd)), 1); /* no such channel */
	(void)snprintf(cmd, sizeof cmd, "'%s' relay --help >/dev/null",
		       litebus_bin);
	assert_int_equal(WEXITSTATUS(system(cmd)), 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		tool_relays_a_live_file_across_sigkill_and_restart, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		tool_reports_redis_errors_on_its_output, setup, teardown),
	    cmocka_unit_test_setup_teardown(tool_refuses_a_bad_command_line,
					    setup, teardown),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: test_cli_relay INSTALLED_LITEBUS\n");
		return 2;
	}
	litebus_bin = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
