/* SPDX-License-Identifier: MIT */
/*
 * epoll_server.c - stream a litebus channel to TCP clients, with
 * back-pressure, from one epoll loop.
 *
 *   epoll_server [--port N] [--rows N] [--clients K] [--ring SLOTS]
 *                [--sndbuf BYTES] [--db PATH]
 *
 * Every client that connects to 127.0.0.1:PORT gets every row of the
 * channel "ticks", from the first, as text lines
 *
 *   <event_id> <partition_key> <payload>\n
 *
 * (examples/epoll_client.c reads and checks them).  A producer thread
 * inside the program commits --rows rows, "tick 1" .. "tick N" with
 * partition_key 1 .. N, in jobs of ROWS_PER_JOB rows.
 *
 * Back-pressure, the point of the example.  Each client has one
 * litebus_reader and a small output buffer, and is in one of two states:
 *
 *   FOLLOWING  the buffer is empty; the reader's fd is in the epoll set.
 *              When it is readable, take rows with litebus_reader_next(r,
 *              &row, 0) until the buffer is full or TIMEOUT, and send().
 *   PAUSED     the socket took only part of the buffer (EAGAIN): the
 *              reader's fd is REMOVED from the epoll set (disarmed), and
 *              the socket waits for EPOLLOUT instead.  Once the buffer is
 *              sent, the reader's fd goes back in: FOLLOWING.
 *
 * A paused client costs the writer nothing: the writer never waits for a
 * reader, so the ring laps it (--ring 64 and a slow client make that
 * certain).  Nothing is lost by that: on its next litebus_reader_next()
 * the reader notices the lap, reads the missed rows from the outbox table
 * and rejoins the ring.  The client sees every row exactly once, in order.
 *
 * What the header says about the fd, and what this program does with it:
 *  - it is an eventfd (O_CLOEXEC | O_NONBLOCK) owned by the reader: never
 *    read, write or close it; litebus_reader_close() closes it, so the
 *    program takes it out of the epoll set first;
 *  - it is level-triggered in effect (it turns unreadable only when a
 *    litebus_reader_next() finds nothing), so the loop may stop taking
 *    rows when its buffer is full and epoll will report the fd again.
 *    (With EPOLLET it would have to call until TIMEOUT every time.)
 *  - timeout 0 never waits for a commit, but may read up to reader_batch
 *    rows from the table: a short, bounded read on the loop's thread.
 *
 * Fan-out: a reader costs about 3 fds and 150 kB.  For thousands of
 * clients, follow the channel with one reader (or a few) and copy its rows
 * into per-client buffers instead; this example keeps one reader per
 * client so that each client can fall behind on its own.
 *
 * --clients K (for tests): start producing once K clients are connected,
 * and exit once K clients have disconnected.  Without it (K = 0) the
 * producer starts at once and the server runs until SIGINT or SIGTERM.
 * The program prints "listening on 127.0.0.1:PORT" once it accepts
 * connections, and one line per client that leaves, with how often it
 * was paused and lapped.
 *
 * Threads: main (the epoll loop: every client, every reader, the
 * listening socket, a signalfd), the producer (litebus_exec() in a loop),
 * and litebus's own.
 * Exit status: 0 served every client without error, 1 an error, 2 usage.
 */
#define _GNU_SOURCE /* accept4, SOCK_NONBLOCK, signalfd, epoll */

#include <litebus.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Rows per job.  The default ring (64 slots) holds 4 jobs' rows: the
 * header's sizing rule (at least twice max_batch x events per job, and
 * one producer thread makes batches of one job) lets a client that keeps
 * up follow the ring, while a paused one is lapped. */
#define ROWS_PER_JOB 16
/* Per client; small on purpose, so that back-pressure is easy to see. */
#define OUTBUF_BYTES 8192
/* Longest line: two int64 in decimal, the payload, spaces and '\n'. */
#define LINE_MAX_BYTES 128
#define PAYLOAD_MAX_BYTES 64

struct settings {
	int port;	/* 0: the OS picks one */
	long rows;	/* rows the producer commits */
	int clients;	/* 0: run until a signal */
	uint32_t ring;	/* ring slots */
	int sndbuf;	/* SO_SNDBUF of client sockets; 0: kernel's */
	const char *db; /* NULL: in-memory */
};

/* What an epoll_event's data.ptr points to. */
enum source_kind { SRC_LISTENER, SRC_SIGNAL, SRC_SOCKET, SRC_READER };
struct source {
	enum source_kind kind;
	struct client *client; /* SRC_SOCKET, SRC_READER */
};

struct client {
	int id;
	int sock;
	litebus_reader *reader;
	int reader_fd;	    /* owned by reader: never close it */
	bool paused;	    /* reader_fd is out of the epoll set */
	bool reader_closed; /* the reader said LITEBUS_CLOSED */
	char out[OUTBUF_BYTES];
	size_t out_off, out_len; /* unsent bytes: out[out_off .. out_len) */
	uint64_t rows_sent, pauses;
	struct source sock_src, reader_src;
	/* Dropped while epoll_wait()'s batch of events may still name it:
	 * freed after the batch. */
	bool gone;
	struct client *next_gone;
	struct client *prev, *next; /* the server's list of live clients */
};

struct server {
	struct settings set;
	litebus *bus;
	int channel;
	int epfd;
	int connected, left;	/* clients so far */
	struct client *clients; /* connected */
	struct client *gone;	/* dropped, to free after this batch */
	bool failed;
	pthread_t producer;
	bool producer_started;
	atomic_bool stop; /* main -> producer: stop early (relaxed: a flag
			     with no data behind it) */
	atomic_int producer_status; /* producer -> main, read after join */
};

/* ------------------------------------------------------------------ */
/* The producer                                                        */

struct tick_job {
	int channel;
	long first, count; /* ticks first .. first+count-1 */
};

/* A job: runs on litebus's writer thread, inside a transaction.  Its
 * rows become visible to readers only after the COMMIT. */
static int
emit_ticks(litebus_tx *tx, void *arg)
{
	const struct tick_job *j = arg;

	for (long i = 0; i < j->count; i++) {
		char payload[PAYLOAD_MAX_BYTES];
		int n =
		    snprintf(payload, sizeof payload, "tick %ld", j->first + i);
		litebus_record rec = {
		    .partition_key = j->first + i,
		    .event_type = "tick",
		    .payload = payload,
		    .payload_len = (size_t)n,
		};
		int rc = litebus_emit(tx, j->channel, &rec, NULL);
		if (rc != LITEBUS_OK)
			return rc; /* rolls this job back */
	}
	return 0;
}

static void *
producer_main(void *arg)
{
	struct server *s = arg;
	long next = 1;

	while (next <= s->set.rows &&
	       !atomic_load_explicit(&s->stop, memory_order_relaxed)) {
		struct tick_job j = {s->channel, next, ROWS_PER_JOB};
		if (j.count > s->set.rows - next + 1)
			j.count = s->set.rows - next + 1;
		/* Waits until the job's rows are committed and published. */
		int rc = litebus_exec(s->bus, emit_ticks, &j);
		if (rc != 0) {
			fprintf(stderr, "epoll_server: producer: %s: %s\n",
				litebus_errname(rc), litebus_last_errmsg());
			atomic_store_explicit(&s->producer_status, 1,
					      memory_order_relaxed);
			return NULL;
		}
		next += j.count;
	}
	return NULL;
}

static int
start_producer(struct server *s)
{
	int err = pthread_create(&s->producer, NULL, producer_main, s);
	if (err != 0) {
		fprintf(stderr, "epoll_server: pthread_create: %s\n",
			strerror(err));
		return -1;
	}
	s->producer_started = true;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Clients                                                             */

static int
epoll_add(struct server *s, int fd, uint32_t events, struct source *src)
{
	struct epoll_event ev = {.events = events, .data.ptr = src};
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		perror("epoll_server: epoll_ctl(ADD)");
		return -1;
	}
	return 0;
}

static int
epoll_mod(struct server *s, int fd, uint32_t events, struct source *src)
{
	struct epoll_event ev = {.events = events, .data.ptr = src};
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) != 0) {
		perror("epoll_server: epoll_ctl(MOD)");
		return -1;
	}
	return 0;
}

static int
epoll_del(struct server *s, int fd)
{
	if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL) != 0) {
		perror("epoll_server: epoll_ctl(DEL)");
		return -1;
	}
	return 0;
}

/* The client leaves (it hung up, or an error): reader fd out of the epoll
 * set BEFORE litebus_reader_close() closes it, then the socket. */
static void
client_drop(struct server *s, struct client *c, bool error)
{
	litebus_reader_stats st = {0};

	if (litebus_reader_stats_get(c->reader, &st) != LITEBUS_OK)
		error = true;
	printf("epoll_server: client %d left%s: %" PRIu64 " rows sent, "
	       "paused %" PRIu64 " times, lapped %" PRIu64 " times, %" PRIu64
	       " catch-up queries\n",
	       c->id, error ? " after an error" : "", c->rows_sent, c->pauses,
	       st.lags, st.queries);
	fflush(stdout);
	if (!c->paused && epoll_del(s, c->reader_fd) != 0)
		error = true;
	litebus_reader_close(c->reader);
	if (epoll_del(s, c->sock) != 0)
		error = true;
	if (close(c->sock) != 0)
		error = true;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->gone = true;
	c->next_gone = s->gone;
	s->gone = c;
	if (error)
		s->failed = true;
	s->left++;
}

/* Disarm: stop polling the reader, wait until the socket takes more. */
static int
client_pause(struct server *s, struct client *c)
{
	if (epoll_del(s, c->reader_fd) != 0)
		return -1;
	c->paused = true;
	c->pauses++;
	return epoll_mod(s, c->sock, EPOLLIN | EPOLLOUT | EPOLLRDHUP,
			 &c->sock_src);
}

/* Re-arm: the buffer is empty, follow the reader again. */
static int
client_resume(struct server *s, struct client *c)
{
	if (epoll_mod(s, c->sock, EPOLLIN | EPOLLRDHUP, &c->sock_src) != 0)
		return -1;
	c->paused = false;
	return epoll_add(s, c->reader_fd, EPOLLIN, &c->reader_src);
}

/* Send what is buffered.  Returns 1 when all of it went out, 0 when the
 * socket is full (EAGAIN), -1 when the client is gone or broken. */
static int
client_flush(struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->sock, c->out + c->out_off,
				 c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return 0;
		} else {
			return -1; /* EPIPE, ECONNRESET: the client left */
		}
	}
	c->out_off = c->out_len = 0;
	return 1;
}

/* The reader's fd is readable: take rows until the buffer is full or the
 * reader has nothing more (TIMEOUT), then send.  Returns -1 to drop the
 * client. */
static int
client_on_reader(struct server *s, struct client *c)
{
	litebus_row row;

	while (c->out_len + LINE_MAX_BYTES <= sizeof c->out) {
		int rc = litebus_reader_next(c->reader, &row, 0);
		if (rc == LITEBUS_TIMEOUT)
			break; /* the fd is unreadable until the next commit */
		if (rc == LITEBUS_CLOSED) {
			c->reader_closed = true;
			break;
		}
		if (rc == LITEBUS_EXPIRED) {
			/* Retention pruned rows before we read them (not in
			 * this example, which prunes nothing). */
			int64_t first, last;
			if (litebus_reader_expired(c->reader, &first, &last) ==
			    LITEBUS_OK)
				fprintf(stderr,
					"epoll_server: client %d: rows %" PRId64
					"..%" PRId64 " expired\n",
					c->id, first, last);
			continue;
		}
		if (rc != LITEBUS_OK) {
			fprintf(stderr, "epoll_server: client %d: %s: %s\n",
				c->id, litebus_errname(rc),
				litebus_last_errmsg());
			return -1;
		}
		/* row's pointers are valid until the next call on the reader:
		 * copy what we need now.  The payloads are our own text. */
		int pl = row.payload_len > PAYLOAD_MAX_BYTES
			     ? PAYLOAD_MAX_BYTES
			     : (int)row.payload_len;
		int n =
		    snprintf(c->out + c->out_len, sizeof c->out - c->out_len,
			     "%" PRId64 " %" PRId64 " %.*s\n", row.event_id,
			     row.partition_key, pl,
			     row.payload ? (const char *)row.payload : "");
		if (n < 0 || (size_t)n >= sizeof c->out - c->out_len)
			return -1; /* cannot happen: LINE_MAX_BYTES fits */
		c->out_len += (size_t)n;
		c->rows_sent++;
	}

	int sent = client_flush(c);
	if (sent < 0)
		return -1;
	if (sent == 0)
		return client_pause(s, c);
	/* All sent.  If the reader said CLOSED (the bus closed), the client
	 * has had everything: stop following it. */
	if (c->reader_closed && epoll_del(s, c->reader_fd) == 0)
		c->paused = true;
	return 0;
}

/* The socket is writable (we were PAUSED), or readable (the client sent
 * something or hung up). */
static int
client_on_socket(struct server *s, struct client *c, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		char junk[256];
		ssize_t n = recv(c->sock, junk, sizeof junk, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return -1; /* hung up: the normal way to leave */
		/* Clients are not expected to talk; ignore what they say. */
	}
	if (c->paused && (events & EPOLLOUT)) {
		int sent = client_flush(c);
		if (sent < 0)
			return -1;
		if (sent == 1 && !c->reader_closed)
			return client_resume(s, c);
	}
	return 0;
}

static void
accept_clients(struct server *s, int listener)
{
	for (;;) {
		int fd =
		    accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED) {
				perror("epoll_server: accept4");
				s->failed = true;
			}
			return;
		}
		if (s->set.sndbuf > 0 &&
		    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &s->set.sndbuf,
			       sizeof s->set.sndbuf) != 0)
			perror("epoll_server: SO_SNDBUF");

		struct client *c = calloc(1, sizeof *c);
		if (c == NULL) {
			close(fd);
			s->failed = true;
			continue;
		}
		c->id = ++s->connected;
		c->sock = fd;
		c->sock_src = (struct source){SRC_SOCKET, c};
		c->reader_src = (struct source){SRC_READER, c};
		/* Every row of the channel, from the first.  A client could
		 * send a cursor to resume from instead (a reconnecting client
		 * that kept the last event_id it saw). */
		int rc = litebus_reader_open(
		    s->bus, s->channel, LITEBUS_FROM_START, NULL, &c->reader);
		if (rc == LITEBUS_OK) {
			c->reader_fd = litebus_reader_fd(c->reader);
			rc = c->reader_fd >= 0 ? LITEBUS_OK : c->reader_fd;
		}
		if (rc != LITEBUS_OK) {
			fprintf(stderr, "epoll_server: reader: %s: %s\n",
				litebus_errname(rc), litebus_last_errmsg());
			litebus_reader_close(c->reader);
			close(fd);
			free(c);
			s->failed = true;
			continue;
		}
		c->next = s->clients;
		if (c->next)
			c->next->prev = c;
		s->clients = c;
		if (epoll_add(s, fd, EPOLLIN | EPOLLRDHUP, &c->sock_src) != 0 ||
		    epoll_add(s, c->reader_fd, EPOLLIN, &c->reader_src) != 0) {
			s->failed = true;
			client_drop(s, c, true);
			continue;
		}
		if (s->set.clients > 0 && s->connected == s->set.clients &&
		    start_producer(s) != 0)
			s->failed = true;
	}
}

/* ------------------------------------------------------------------ */
/* Setup and the loop                                                  */

static int
open_listener(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;

	if (fd < 0) {
		perror("epoll_server: socket");
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		perror("epoll_server: listen on 127.0.0.1");
		close(fd);
		return -1;
	}
	printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
	fflush(stdout);
	return fd;
}

static void
free_gone(struct server *s)
{
	while (s->gone != NULL) {
		struct client *c = s->gone;
		s->gone = c->next_gone;
		free(c);
	}
}

static int
serve(struct server *s, int listener, int sigfd)
{
	struct source listener_src = {SRC_LISTENER, NULL};
	struct source signal_src = {SRC_SIGNAL, NULL};
	struct epoll_event evs[64];

	if (epoll_add(s, listener, EPOLLIN, &listener_src) != 0 ||
	    epoll_add(s, sigfd, EPOLLIN, &signal_src) != 0)
		return -1;
	while (s->set.clients == 0 || s->left < s->set.clients) {
		int n = epoll_wait(s->epfd, evs, 64, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("epoll_server: epoll_wait");
			return -1;
		}
		for (int i = 0; i < n; i++) {
			struct source *src = evs[i].data.ptr;
			struct client *c = src->client;
			if (c != NULL && c->gone)
				continue; /* dropped earlier in this batch */
			switch (src->kind) {
			case SRC_LISTENER:
				accept_clients(s, listener);
				break;
			case SRC_SIGNAL:
				printf("epoll_server: signal, leaving\n");
				while (s->clients != NULL)
					client_drop(s, s->clients, false);
				free_gone(s);
				return 0;
			case SRC_READER:
				/* An earlier event of this batch may have
				 * paused the client; its fd is then out of the
				 * set and this report is stale. */
				if (c->paused)
					break;
				if (client_on_reader(s, c) != 0)
					client_drop(s, c, true);
				break;
			case SRC_SOCKET:
				if (client_on_socket(s, c, evs[i].events) != 0)
					client_drop(s, c, false);
				break;
			}
		}
		free_gone(s);
	}
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: epoll_server [--port N] [--rows N] [--clients K] "
		   "[--ring SLOTS]\n"
		   "                    [--sndbuf BYTES] [--db PATH]\n");
}

static int
parse_args(int argc, char **argv, struct settings *set)
{
	*set = (struct settings){.rows = 10000, .ring = 64};
	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;
		long n = v ? strtol(v, &end, 10) : 0;
		bool num_ok = v && *v && *end == '\0' && n >= 0;

		if (strcmp(a, "--db") == 0 && v) {
			set->db = v;
		} else if (strcmp(a, "--port") == 0 && num_ok && n < 65536) {
			set->port = (int)n;
		} else if (strcmp(a, "--rows") == 0 && num_ok) {
			set->rows = n;
		} else if (strcmp(a, "--clients") == 0 && num_ok && n < 1000) {
			set->clients = (int)n;
		} else if (strcmp(a, "--ring") == 0 && num_ok &&
			   n <= (long)LITEBUS_RING_MAX) {
			set->ring = (uint32_t)n;
		} else if (strcmp(a, "--sndbuf") == 0 && num_ok &&
			   n < (1L << 30)) {
			set->sndbuf = (int)n;
		} else {
			usage(stderr);
			return -1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const char *const channels[] = {"ticks", NULL};
	struct server s = {.epfd = -1};
	litebus_options o;
	sigset_t sigs;
	int listener = -1, sigfd = -1, rc;

	if (parse_args(argc, argv, &s.set) != 0)
		return 2;

	/* Block SIGINT and SIGTERM before any thread starts (litebus's
	 * threads and the producer inherit the mask), and take them from a
	 * signalfd in the loop instead. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0 ||
	    (sigfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		perror("epoll_server: signalfd");
		return 1;
	}

	litebus_options_init(&o);
	o.path = s.set.db; /* NULL: in memory */
	o.ring_capacity = s.set.ring;
	o.channels = channels;
	rc = litebus_open(&o, &s.bus);
	if (rc != LITEBUS_OK) {
		fprintf(stderr, "epoll_server: litebus_open: %s: %s\n",
			litebus_errname(rc), litebus_last_errmsg());
		return rc == LITEBUS_EINVAL ? 2 : 1;
	}
	/* Channel ids are positions in o.channels: look them up by name. */
	s.channel = litebus_channel_id(s.bus, "ticks");
	if (s.channel < 0)
		fprintf(stderr, "epoll_server: channel ticks: %s\n",
			litebus_errname(s.channel));

	s.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s.epfd < 0)
		perror("epoll_server: epoll_create1");
	if (s.epfd >= 0 && s.channel >= 0)
		listener = open_listener(s.set.port);
	if (listener < 0 || (s.set.clients == 0 && start_producer(&s) != 0) ||
	    serve(&s, listener, sigfd) != 0)
		s.failed = true;

	/* Shutdown: stop and join the producer, then close the bus.  (The
	 * readers are closed already; readers may outlive their bus, but
	 * they must be closed all the same.) */
	atomic_store_explicit(&s.stop, true, memory_order_relaxed);
	if (s.producer_started) {
		pthread_join(s.producer, NULL);
		if (atomic_load_explicit(&s.producer_status,
					 memory_order_relaxed) != 0)
			s.failed = true;
	}
	rc = litebus_close(s.bus);
	if (rc != LITEBUS_OK) {
		fprintf(stderr, "epoll_server: litebus_close: %s\n",
			litebus_errname(rc));
		s.failed = true;
	}
	if (listener >= 0)
		close(listener);
	if (s.epfd >= 0)
		close(s.epfd);
	close(sigfd);
	printf("epoll_server: %d clients served, %s\n", s.left,
	       s.failed ? "with errors" : "no errors");
	return s.failed ? 1 : 0;
}
