/* SPDX-License-Identifier: MIT */
/*
 * relay.c - `litebus relay`: ship channels of a litebus file to Redis
 * Streams, exactly once and in order (include/litebus_relay.h), until
 * SIGINT or SIGTERM.
 *
 *   litebus relay DB --redis HOST:PORT [--password-file F] [--db N]
 *                 --channel NAME [--channel NAME ...] [--prefix P]
 *                 [--maxlen N]
 *
 * It opens the file read-write (the relay's position is a durable
 * consumer, "relay", whose acknowledgements are writes), next to a server
 * that may have it open, and runs liblitebus_relay on it.  Built only
 * with the relay (LITEBUS_RELAY).
 *
 * Output: one line on standard output, with the time, when a channel
 * starts streaming, stops, or meets a new error ("orders: streaming
 * ...", "orders: waiting to reconnect ...; last error: ..."), and a
 * summary per channel at the end; so an operator sees Redis going down,
 * a wrong password or a stopped channel as it happens, without a line
 * per retry.
 *
 * Invariants
 *   R1  The password never appears on the command line (ps would show
 *       it): only in a file, whose first line is read.
 *   R2  The tool exits 0 only after a stop by signal with every channel
 *       still running; 1 when every channel stopped on its own (a
 *       permanent error, reported) or the relay could not start.
 *
 * Threads: the main thread; the relay's threads are the library's.
 */
#include "cli.h"

#include <litebus_relay.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_relay(int argc, char **argv); /* dispatched from main.c */

static void
relay_usage(FILE *f)
{
	fprintf(f,
		"usage: litebus relay DB --redis HOST:PORT [--password-file F] "
		"[--db N]\n"
		"                     --channel NAME [--channel NAME ...] "
		"[--prefix P] [--maxlen N]\n"
		"\n"
		"Ship every committed row of each CHANNEL to the Redis stream "
		"P:CHANNEL\n"
		"(default prefix litebus), entry id <event_id>-0, exactly "
		"once and in\n"
		"order, until SIGINT or SIGTERM.  The position is the durable "
		"consumer\n"
		"\"relay\" of each channel: a restart resumes where it "
		"stopped.\n"
		"\n"
		"  --redis HOST:PORT   the Redis (or Valkey) server\n"
		"  --password-file F   AUTH with the first line of F\n"
		"  --db N              SELECT database N (default 0)\n"
		"  --channel NAME      a channel to relay (repeat for more)\n"
		"  --prefix P          stream key prefix (default litebus)\n"
		"  --maxlen N          trim each stream with MAXLEN ~ N\n"
		"\n"
		"Prints a line when a channel starts streaming, stops or "
		"meets a new error.\n"
		"Exit status: 0 stopped by a signal, 1 an error (every "
		"channel stopped,\nor the relay could not start), 2 usage.\n");
}

static const char *
state_name(int s)
{
	switch (s) {
	case LITEBUS_RELAY_CONNECTING:
		return "connecting";
	case LITEBUS_RELAY_STREAMING:
		return "streaming";
	case LITEBUS_RELAY_BACKOFF:
		return "waiting to reconnect";
	case LITEBUS_RELAY_STOPPED:
		return "stopped";
	default:
		return "?";
	}
}

/* "host:port" (the port after the last colon). */
static bool
parse_redis(char *arg, const char **host, int *port)
{
	char *colon = strrchr(arg, ':');
	int64_t p;

	if (colon == NULL || colon == arg)
		return false;
	*colon = '\0';
	if (!cli_parse_i64(colon + 1, 1, 65535, &p))
		return false;
	*host = arg;
	*port = (int)p;
	return true;
}

/* R1: the first line of path, without its line end. */
static bool
read_password(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	bool ok;

	if (f == NULL) {
		cli_err("--password-file %s: %s", path, strerror(errno));
		return false;
	}
	ok = fgets(buf, (int)cap, f) != NULL;
	if (fclose(f) != 0)
		ok = false;
	if (!ok) {
		cli_err("--password-file %s: cannot read a line", path);
		return false;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	return true;
}

static void
print_stats(const litebus_relay_stats *st, bool final)
{
	char now[32];

	cli_iso_time(cli_now_ms(), now);
	printf("%s %s%s: %s, relayed %" PRIu64 ", lag %" PRId64
	       " events (%" PRId64 " ms), position %" PRId64
	       ", reconnects %" PRIu64,
	       now, final ? "final: " : "", st->channel, state_name(st->state),
	       st->relayed, st->lag_events, st->lag_ms, st->position,
	       st->reconnects);
	if (st->skipped > 0)
		printf(", already in the stream %" PRIu64, st->skipped);
	if (st->expired > 0)
		printf(", pruned before relayed %" PRIu64, st->expired);
	if (st->last_error[0] != '\0')
		printf("; last error: %s", st->last_error);
	putchar('\n');
	(void)fflush(stdout);
}

int
cli_relay(int argc, char **argv)
{
	const char *path = NULL, *v, *chans[LITEBUS_MAX_CHANNELS + 1];
	char redis_arg[512] = "", password[1024];
	const char *pwfile = NULL;
	litebus_relay_stats last[LITEBUS_MAX_CHANNELS];
	litebus_relay_options o;
	litebus_relay *r = NULL;
	litebus *bus = NULL;
	struct cli_file f;
	int nchan = 0, rc, stopped = 0;
	int64_t n;

	litebus_relay_options_init(&o);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			relay_usage(stdout);
			return CLI_EXIT_OK;
		} else if (cli_is_opt(argv[i], "--redis")) {
			if ((v = cli_optval(argc, argv, &i, "--redis")) == NULL)
				return CLI_EXIT_USAGE;
			(void)snprintf(redis_arg, sizeof redis_arg, "%s", v);
			if (!parse_redis(redis_arg, &o.host, &o.port)) {
				cli_err("--redis: '%s' is not HOST:PORT", v);
				return CLI_EXIT_USAGE;
			}
		} else if (cli_is_opt(argv[i], "--password-file")) {
			if ((v = cli_optval(argc, argv, &i,
					    "--password-file")) == NULL)
				return CLI_EXIT_USAGE;
			pwfile = v;
		} else if (cli_is_opt(argv[i], "--db")) {
			if ((v = cli_optval(argc, argv, &i, "--db")) == NULL)
				return CLI_EXIT_USAGE;
			if (!cli_parse_i64(v, 0, 1 << 20, &n)) {
				cli_err("--db: '%s' is not a database index",
					v);
				return CLI_EXIT_USAGE;
			}
			o.db = (int)n;
		} else if (cli_is_opt(argv[i], "--channel")) {
			if ((v = cli_optval(argc, argv, &i, "--channel")) ==
			    NULL)
				return CLI_EXIT_USAGE;
			if (nchan == LITEBUS_MAX_CHANNELS) {
				cli_err("--channel: at most %d",
					LITEBUS_MAX_CHANNELS);
				return CLI_EXIT_USAGE;
			}
			chans[nchan++] = v;
		} else if (cli_is_opt(argv[i], "--prefix")) {
			if ((v = cli_optval(argc, argv, &i, "--prefix")) ==
			    NULL)
				return CLI_EXIT_USAGE;
			if (v[0] == '\0' ||
			    strlen(v) > LITEBUS_RELAY_PREFIX_MAX) {
				cli_err("--prefix: 1..%d bytes",
					LITEBUS_RELAY_PREFIX_MAX);
				return CLI_EXIT_USAGE;
			}
			o.prefix = v;
		} else if (cli_is_opt(argv[i], "--maxlen")) {
			if ((v = cli_optval(argc, argv, &i, "--maxlen")) ==
			    NULL)
				return CLI_EXIT_USAGE;
			if (!cli_parse_i64(v, 1, INT64_MAX, &o.maxlen)) {
				cli_err("--maxlen: '%s' is not a count (1 or "
					"more)",
					v);
				return CLI_EXIT_USAGE;
			}
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			cli_err("relay: unknown option '%s'", argv[i]);
			return CLI_EXIT_USAGE;
		} else if (path == NULL) {
			path = argv[i];
		} else {
			cli_err("relay: unexpected argument '%s'", argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	chans[nchan] = NULL;
	if (path == NULL || redis_arg[0] == '\0' || nchan == 0) {
		cli_err("relay needs DB, --redis and at least one --channel "
			"(litebus relay --help)");
		return CLI_EXIT_USAGE;
	}
	if (pwfile != NULL) {
		if (!read_password(pwfile, password, sizeof password))
			return CLI_EXIT_ERROR;
		o.password = password;
	}

	rc = cli_file_load(path, &f);
	if (rc == CLI_EXIT_OK)
		rc = cli_bus_open(&f, false, NULL, &bus);
	if (rc != CLI_EXIT_OK)
		return rc;
	for (int i = 0; i < nchan && rc == CLI_EXIT_OK; i++)
		if (cli_channel(bus, chans[i]) < 0)
			rc = CLI_EXIT_ERROR;
	if (rc == CLI_EXIT_OK) {
		int lrc = litebus_relay_start(bus, chans, &o, &r);

		if (lrc != LITEBUS_OK) {
			cli_lb_err("starting the relay", lrc);
			rc = CLI_EXIT_ERROR;
		}
	}
	if (rc != CLI_EXIT_OK) {
		if (litebus_close(bus) != LITEBUS_OK)
			cli_err("closing %s failed", path);
		return rc;
	}
	printf("relaying %d channel(s) of %s to %s:%d, streams %s:<channel>\n",
	       nchan, path, o.host, o.port, o.prefix);
	(void)fflush(stdout);
	memset(last, 0, sizeof last);
	for (int i = 0; i < nchan; i++)
		last[i].state = -1;

	cli_catch_signals();
	while (!cli_stop && stopped < nchan) {
		struct timespec ts = {0, 200 * 1000 * 1000};

		stopped = 0;
		for (int i = 0; i < nchan; i++) {
			litebus_relay_stats st;

			if (litebus_relay_stats_get(r, i, &st) != LITEBUS_OK)
				continue;
			if (st.state == LITEBUS_RELAY_STOPPED)
				stopped++;
			/* A line when the channel starts streaming or
			 * stops, or meets a new error; not once per retry
			 * of the same one (connecting and waiting to
			 * reconnect alternate quietly). */
			if ((st.state != last[i].state &&
			     (st.state == LITEBUS_RELAY_STREAMING ||
			      st.state == LITEBUS_RELAY_STOPPED ||
			      last[i].state < 0)) ||
			    strcmp(st.last_error, last[i].last_error) != 0)
				print_stats(&st, false);
			last[i] = st;
		}
		/* Interrupted by SIGINT/SIGTERM (no SA_RESTART). */
		(void)nanosleep(&ts, NULL);
	}
	for (int i = 0; i < nchan; i++) {
		litebus_relay_stats st;

		if (litebus_relay_stats_get(r, i, &st) == LITEBUS_OK)
			print_stats(&st, true);
	}
	litebus_relay_stop(r);
	if (litebus_close(bus) != LITEBUS_OK) {
		cli_err("closing %s failed", path);
		return CLI_EXIT_ERROR;
	}
	if (stopped == nchan && !cli_stop) {
		cli_err("every channel stopped (see the errors above)");
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}
