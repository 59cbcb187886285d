/* SPDX-License-Identifier: MIT */
/*
 * consume_ack.c - consume, process, acknowledge: durable consumers across
 * a crash and a restart.
 *
 *   consume_ack [--db PATH] [--orders N] [--crash-after K] [--flush-every M]
 *
 * A shop commits N orders; each order is a row in the application's table
 * `orders` and an event on the channel "orders", in one job.  Two durable
 * consumers process the events.  Each runs in a child process that is
 * killed with SIGKILL part way (a crash: no close, no flush, no atexit),
 * then runs again in a new process, which resumes where the database
 * says the consumer had got to.
 *
 *  mailer - at least once.  For each event it "sends a mail" (appends a
 *     line to mails.log, an effect outside the database), then calls
 *     litebus_consumer_ack().  An ack becomes durable with a later commit
 *     of the writer; litebus_consumer_flush() every M rows waits for that.
 *     The crash comes after the mail of event K + 1 and before its ack.
 *     The restart resumes right after the last DURABLE ack, so the mails
 *     sent after it are sent again: every order is mailed at least once,
 *     and at most M twice.
 *
 *  totals - exactly-once effects.  For each event one job adds the order
 *     to the application's table `applied` and moves the consumer's
 *     position with litebus_consumer_ack_tx(), in the same transaction:
 *     both commit or neither does.  The crash comes INSIDE the job of
 *     event K + 1, after its INSERT and before the ack: the restart
 *     resumes at exactly K + 1, and every order is applied exactly once.
 *
 * Then the parent process opens the bus itself, lists the consumers
 * (litebus_consumer_list()) and checks mails.log and the table.
 *
 * Why child processes: litebus's threads do not survive fork(), and a
 * child cannot open a file the parent has open (LITEBUS_EFORKED).  The
 * parent opens nothing until the last child has exited.
 *
 * --db names a file that does not exist yet; with no --db, the files go
 * to a new temporary directory, removed at exit.  Exit status: 0 every check
 * passed, 1 a check or call failed, 2 usage.
 */
#define _GNU_SOURCE /* mkdtemp */

#include <litebus.h>
#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NEXT_TIMEOUT_MS 10000 /* a deadline per row, not a wait for it */

static const char *const channels[] = {"orders", NULL};

struct settings {
	char db[4096];
	char mails[4096]; /* mails.log, beside the database */
	long orders, crash_after, flush_every;
};

static int64_t
amount_of(int64_t order)
{
	return order * 37 % 1000 + 1; /* cents */
}

static int
fail(const char *what, int rc)
{
	fprintf(stderr, "consume_ack: %s: %s: %s\n", what, litebus_errname(rc),
		litebus_last_errmsg());
	return 1;
}

static int
open_bus(const struct settings *set, litebus **bus, int *channel)
{
	litebus_options o;
	int rc;

	litebus_options_init(&o);
	o.path = set->db;
	o.channels = channels;
	rc = litebus_open(&o, bus);
	if (rc != LITEBUS_OK)
		return fail("litebus_open", rc);
	*channel = litebus_channel_id(*bus, "orders");
	if (*channel < 0) {
		litebus_close(*bus);
		return fail("channel orders", *channel);
	}
	return 0;
}

/* ---- a job that runs SQL: the application's own tables --------------- */

static int
sql_job(litebus_tx *tx, void *arg)
{
	const char *sql = arg;

	return sqlite3_exec(litebus_tx_db(tx), sql, NULL, NULL, NULL) ==
		       SQLITE_OK
		   ? 0
		   : -1000;
}

/* ---- the shop: N orders, each a row and an event, one job each ------- */

struct order_job {
	int channel;
	int64_t order;
};

static int
place_order(litebus_tx *tx, void *arg)
{
	const struct order_job *j = arg;
	char sql[128], payload[32];
	int n;

	snprintf(sql, sizeof sql,
		 "INSERT INTO orders VALUES(%" PRId64 ", %" PRId64 ")",
		 j->order, amount_of(j->order));
	if (sqlite3_exec(litebus_tx_db(tx), sql, NULL, NULL, NULL) != SQLITE_OK)
		return -1000;
	n = snprintf(payload, sizeof payload, "%" PRId64, amount_of(j->order));
	litebus_record rec = {.partition_key = j->order,
			      .event_type = "placed",
			      .payload = payload,
			      .payload_len = (size_t)n};
	return litebus_emit(tx, j->channel, &rec, NULL);
}

static int
shop(const struct settings *set)
{
	static char schema[] =
	    "CREATE TABLE orders(id INTEGER PRIMARY KEY, amount);"
	    "CREATE TABLE applied(event_id, order_id, amount);";
	litebus *bus;
	int ch, rc = 0;

	if (open_bus(set, &bus, &ch) != 0)
		return 1;
	rc = litebus_exec(bus, sql_job, schema);
	for (int64_t i = 1; rc == 0 && i <= set->orders; i++) {
		struct order_job j = {ch, i};
		rc = litebus_exec(bus, place_order, &j);
	}
	if (rc != 0)
		fail("placing orders", rc);
	litebus_close(bus);
	if (rc == 0)
		printf("shop: %ld orders placed\n", set->orders);
	return rc == 0 ? 0 : 1;
}

/* ---- the consumers' common loop -------------------------------------- */

/* What a consumer does with one row; non-zero stops the loop with an
 * error.  `n` counts rows this process was given, from 1. */
typedef int (*process_fn)(void *ctx, const litebus_row *row, long n);

/* Open consumer `name`, process every row up to the channel's head, and
 * close.  `first` gets the event_id this process was given first. */
static int
consume(const struct settings *set, const char *name, process_fn fn, void *ctx,
	litebus **busp, litebus_consumer **cp, int64_t *first)
{
	litebus_row row;
	int64_t head, oldest;
	int ch, rc;
	long n = 0;

	if (open_bus(set, busp, &ch) != 0)
		return 1;
	/* FROM_START applies only when the name is new; afterwards the
	 * database has the position, and `start` is ignored. */
	rc = litebus_consumer_open(*busp, ch, name, LITEBUS_FROM_START, NULL,
				   cp);
	if (rc == LITEBUS_OK)
		rc = litebus_channel_head(*busp, ch, &head, &oldest);
	while (rc == LITEBUS_OK && litebus_consumer_cursor(*cp) < head) {
		rc = litebus_consumer_next(*cp, &row, NEXT_TIMEOUT_MS);
		if (rc != LITEBUS_OK)
			break; /* TIMEOUT here means a row went missing */
		if (++n == 1)
			*first = row.event_id;
		if (fn(ctx, &row, n) != 0)
			rc = -1;
	}
	if (rc != LITEBUS_OK && rc != -1)
		fail(name, rc);
	/* Close makes pending acks durable; close consumers before the
	 * bus. */
	litebus_consumer_close(*cp);
	litebus_close(*busp);
	return rc == LITEBUS_OK ? 0 : 1;
}

static void
crash(void)
{
	fflush(NULL); /* only so that our own lines reach the terminal */
	kill(getpid(), SIGKILL);
	_exit(99); /* not reached */
}

/* ---- mailer: at least once ------------------------------------------- */

struct mailer {
	const struct settings *set;
	litebus_consumer **c;
	int log_fd;
	bool crash;
};

static int
mail_one(void *ctx, const litebus_row *row, long n)
{
	struct mailer *m = ctx;
	char line[32];
	int len = snprintf(line, sizeof line, "%" PRId64 "\n", row->event_id);

	/* 1. The effect, outside the database. */
	if (write(m->log_fd, line, (size_t)len) != len) {
		perror("consume_ack: mails.log");
		return -1;
	}
	/* A crash here, after the effect and before its ack: the restart
	 * sends this mail again. */
	if (m->crash && n == m->set->crash_after + 1)
		crash();
	/* 2. The acknowledgement: durable with a later commit. */
	int rc = litebus_consumer_ack(*m->c, row->event_id);
	if (rc == LITEBUS_OK && n % m->set->flush_every == 0)
		rc = litebus_consumer_flush(*m->c); /* durable now */
	return rc == LITEBUS_OK ? 0 : fail("ack", rc);
}

static int
mailer(const struct settings *set, bool will_crash)
{
	litebus *bus;
	litebus_consumer *c;
	int64_t first = 0;
	struct mailer m = {set, &c, -1, will_crash};
	int rc;

	m.log_fd =
	    open(set->mails, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	/* A line that marks where each run starts, for the check. */
	if (m.log_fd >= 0 && write(m.log_fd, "run\n", 4) != 4) {
		close(m.log_fd);
		m.log_fd = -1;
	}
	if (m.log_fd < 0) {
		perror("consume_ack: mails.log");
		return 1;
	}
	rc = consume(set, "mailer", mail_one, &m, &bus, &c, &first);
	close(m.log_fd);
	if (rc == 0)
		printf("mailer: restarted, resumed at event %" PRId64 "\n",
		       first);
	return rc;
}

/* ---- totals: exactly-once effects ------------------------------------ */

struct totals {
	const struct settings *set;
	litebus *bus;
	litebus_consumer *c;
	bool crash;
};

struct apply {
	struct totals *t;
	const litebus_row *row;
	long n;
};

/* The effect and the position, in one transaction. */
static int
apply_one(litebus_tx *tx, void *arg)
{
	const struct apply *a = arg;
	const litebus_row *row = a->row;
	char sql[160];

	snprintf(sql, sizeof sql,
		 "INSERT INTO applied VALUES(%" PRId64 ", %" PRId64
		 ", (SELECT amount FROM orders WHERE id = %" PRId64 "))",
		 row->event_id, row->partition_key, row->partition_key);
	if (sqlite3_exec(litebus_tx_db(tx), sql, NULL, NULL, NULL) != SQLITE_OK)
		return -1000;
	/* A crash here, between the effect and the ack, inside the
	 * transaction: neither survives. */
	if (a->t->crash && a->n == a->t->set->crash_after + 1)
		crash();
	return litebus_consumer_ack_tx(tx, a->t->c, row->event_id);
}

static int
total_one(void *ctx, const litebus_row *row, long n)
{
	struct totals *t = ctx;
	struct apply a = {t, row, n};
	/* The consumer's thread waits in litebus_exec() while the job uses
	 * the consumer on the writer thread, as ack_tx requires. */
	int rc = litebus_exec(t->bus, apply_one, &a);
	return rc == 0 ? 0 : fail("apply", rc);
}

static int
totals(const struct settings *set, bool will_crash)
{
	struct totals t = {set, NULL, NULL, will_crash};
	int64_t first = 0;
	int rc = consume(set, "totals", total_one, &t, &t.bus, &t.c, &first);

	if (rc == 0 && !will_crash) {
		printf("totals: restarted, resumed at event %" PRId64 "\n",
		       first);
		/* The first run applied events 1..K durably, then died inside
		 * the job of K+1: the position is exactly K. */
		if (first != set->crash_after + 1) {
			fprintf(stderr,
				"consume_ack: totals resumed at %" PRId64
				", not %ld\n",
				first, set->crash_after + 1);
			rc = 1;
		}
	}
	return rc;
}

/* ---- the parent: run each step in a child, then check ---------------- */

enum step { SHOP, MAILER_CRASH, MAILER, TOTALS_CRASH, TOTALS };

static int
run_step(const struct settings *set, enum step step)
{
	static const char *const names[] = {"shop", "mailer", "mailer",
					    "totals", "totals"};
	bool crashes = step == MAILER_CRASH || step == TOTALS_CRASH;
	int status;
	pid_t pid;

	fflush(NULL); /* nothing buffered is written twice */
	pid = fork();
	if (pid < 0) {
		perror("consume_ack: fork");
		return 1;
	}
	if (pid == 0) {
		int rc = 1;
		switch (step) {
		case SHOP:
			rc = shop(set);
			break;
		case MAILER_CRASH:
		case MAILER:
			rc = mailer(set, crashes);
			break;
		case TOTALS_CRASH:
		case TOTALS:
			rc = totals(set, crashes);
			break;
		}
		fflush(NULL);
		_exit(rc);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			perror("consume_ack: waitpid");
			return 1;
		}
	if (crashes && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
		printf("%s: crashed (SIGKILL) between the effect and the ack "
		       "of event %ld\n",
		       names[step], set->crash_after + 1);
		return 0;
	}
	if (!crashes && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	fprintf(stderr, "consume_ack: the %s process failed (status %#x)\n",
		names[step], status);
	return 1;
}

/* mails.log: "run", then 1..K+1 (the crash), "run", then r..N: the
 * restart resumed at r, right after the last durable ack. */
static int
check_mails(const struct settings *set)
{
	FILE *f = fopen(set->mails, "r");
	long *count = calloc((size_t)set->orders + 1, sizeof *count);
	long id, runs = 0, resumed = 0, twice = 0, mails = 0;
	char line[64];
	int rc = 0;

	if (f == NULL || count == NULL) {
		perror("consume_ack: mails.log");
		free(count);
		if (f)
			fclose(f);
		return 1;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		if (strcmp(line, "run\n") == 0) {
			runs++;
			continue;
		}
		id = strtol(line, NULL, 10);
		if (id < 1 || id > set->orders) {
			rc = 1;
			break;
		}
		if (runs == 2 && resumed == 0)
			resumed = id;
		mails++;
		count[id]++;
	}
	fclose(f);
	for (long i = 1; i <= set->orders; i++) {
		if (count[i] == 0)
			rc = 1; /* lost: never acceptable */
		if (count[i] > 1)
			twice++;
	}
	/* Mailed twice: every mail after the last durable ack, which is at
	 * least the last flush before the crash - and at least the mail
	 * that was never acknowledged. */
	long flushed = set->crash_after / set->flush_every * set->flush_every;
	if (runs != 2 || resumed <= flushed || resumed > set->crash_after + 1 ||
	    twice != set->crash_after + 2 - resumed ||
	    mails != set->orders + twice)
		rc = 1;
	printf("mailer: %ld mails for %ld orders: every order mailed, %ld "
	       "twice (sent after the last durable ack; the last flush was at "
	       "%ld)%s\n",
	       mails, set->orders, twice, flushed,
	       rc ? ": CHECK FAILED" : ": at least once");
	free(count);
	return rc;
}

struct applied_counts {
	int64_t rows, distinct, sum;
};

static int
read_applied(litebus_tx *tx, void *arg)
{
	struct applied_counts *a = arg;
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(litebus_tx_db(tx),
			       "SELECT count(*), count(DISTINCT order_id), "
			       "total(amount) FROM applied",
			       -1, &st, NULL) != SQLITE_OK)
		return -1000;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		a->rows = sqlite3_column_int64(st, 0);
		a->distinct = sqlite3_column_int64(st, 1);
		a->sum = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1000;
}

static int
check_totals(const struct settings *set)
{
	litebus_consumer_info info[4];
	struct applied_counts a = {0};
	int64_t want_sum = 0;
	litebus *bus;
	size_t count = 0;
	int ch, rc;

	if (open_bus(set, &bus, &ch) != 0)
		return 1;
	rc = litebus_consumer_list(bus, ch, info, 4, &count);
	for (size_t i = 0; rc == LITEBUS_OK && i < count && i < 4; i++)
		printf("consumer %s: position %" PRId64 ", lag %" PRId64 "\n",
		       info[i].name, info[i].position, info[i].lag);
	if (rc == LITEBUS_OK)
		rc = litebus_exec(bus, read_applied, &a);
	litebus_close(bus);
	if (rc != LITEBUS_OK)
		return fail("reading the results", rc);
	for (int64_t i = 1; i <= set->orders; i++)
		want_sum += amount_of(i);
	bool ok = a.rows == set->orders && a.distinct == set->orders &&
		  a.sum == want_sum && count == 2;
	printf("totals: %" PRId64 " orders applied, %" PRId64
	       " distinct, sum %" PRId64 " (expected %ld, %" PRId64 ")%s\n",
	       a.rows, a.distinct, a.sum, set->orders, want_sum,
	       ok ? ": exactly once" : ": CHECK FAILED");
	return ok ? 0 : 1;
}

static int
parse_args(int argc, char **argv, struct settings *set, bool *temp)
{
	set->orders = 200;
	set->crash_after = 70;
	set->flush_every = 25;
	set->db[0] = '\0';
	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;
		long n = v ? strtol(v, &end, 10) : -1;
		bool num_ok = v && *v && *end == '\0' && n > 0 && n < 10000000;
		if (strcmp(argv[i], "--db") == 0 && v &&
		    strlen(v) < sizeof set->db - 16)
			snprintf(set->db, sizeof set->db, "%s", v);
		else if (strcmp(argv[i], "--orders") == 0 && num_ok)
			set->orders = n;
		else if (strcmp(argv[i], "--crash-after") == 0 && num_ok)
			set->crash_after = n;
		else if (strcmp(argv[i], "--flush-every") == 0 && num_ok)
			set->flush_every = n;
		else
			goto usage;
	}
	if (set->crash_after >= set->orders)
		goto usage;
	if (set->db[0] != '\0' && access(set->db, F_OK) == 0) {
		fprintf(stderr, "consume_ack: %s exists; give a new path\n",
			set->db);
		return -2;
	}
	*temp = set->db[0] == '\0';
	if (*temp) {
		char dir[] = "/tmp/consume_ack.XXXXXX";
		if (mkdtemp(dir) == NULL) {
			perror("consume_ack: mkdtemp");
			return -1;
		}
		snprintf(set->db, sizeof set->db, "%s/shop.db", dir);
	}
	/* mails.log beside the database */
	snprintf(set->mails, sizeof set->mails, "%s", set->db);
	char *slash = strrchr(set->mails, '/');
	snprintf(slash ? slash + 1 : set->mails,
		 sizeof set->mails -
		     (size_t)(slash ? slash + 1 - set->mails : 0),
		 "mails.log");
	return 0;
usage:
	fprintf(stderr, "usage: consume_ack [--db PATH] [--orders N] "
			"[--crash-after K] [--flush-every M]  (K < N)\n");
	return -2;
}

static void
remove_temp(const struct settings *set)
{
	static const char *const suffix[] = {"", "-wal", "-shm"};
	char path[4200];

	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s%s", set->db, suffix[i]);
		unlink(path);
	}
	unlink(set->mails);
	char *slash = strrchr(set->mails, '/');
	if (slash) {
		*slash = '\0';
		rmdir(set->mails);
	}
}

int
main(int argc, char **argv)
{
	struct settings set;
	bool temp;
	int rc = parse_args(argc, argv, &set, &temp);

	if (rc != 0)
		return rc == -2 ? 2 : 1;
	printf("database %s\n", set.db);
	rc = run_step(&set, SHOP) || run_step(&set, MAILER_CRASH) ||
	     run_step(&set, MAILER) || run_step(&set, TOTALS_CRASH) ||
	     run_step(&set, TOTALS);
	if (rc == 0)
		rc = check_mails(&set) | check_totals(&set);
	if (temp)
		remove_temp(&set);
	printf("consume_ack: %s\n", rc ? "FAILED" : "all checks passed");
	return rc ? 1 : 0;
}
