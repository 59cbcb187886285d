/* SPDX-License-Identifier: MIT */
/*
 * epoll_client.c - read N rows from examples/epoll_server.c and check
 * them: every row exactly once, in order.
 *
 *   epoll_client --port N [--rows N] [--stall-ms MS] [--rcvbuf BYTES]
 *
 * The server sends "<event_id> <partition_key> <payload>\n" per row; its
 * producer commits "tick 1" .. "tick N" with partition_key 1 .. N from one
 * thread, so row i must have partition_key i and payload "tick i", and the
 * event_ids must increase.  A gap, a duplicate or a reordering fails the
 * check, wherever it happened (ring, catch-up from the table, server).
 *
 * --stall-ms MS makes this a slow client: after the first row it stops
 * reading for MS milliseconds, so the server's socket fills up, the server
 * disarms this client's reader and the ring laps it.  --rcvbuf shrinks
 * the socket's receive buffer so that happens sooner.  A slow client is a
 * scenario, not a way to wait for something.
 *
 * It uses no litebus call: any TCP client would do.  It gives up after
 * 10 s without data (SO_RCVTIMEO), so a broken server cannot hang a test.
 * Exit status: 0 every row checked out, 1 a check or I/O failed, 2 usage.
 */
#define _GNU_SOURCE /* getline, nanosleep with -std=c11 */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECV_TIMEOUT_S 10

static int
parse_num(const char *s, long max, long *out)
{
	char *end;
	long n;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || n < 0 || n > max)
		return -1;
	*out = n;
	return 0;
}

static int
connect_to(long port, long rcvbuf)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {.tv_sec = RECV_TIMEOUT_S};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int buf = (int)rcvbuf;

	if (fd < 0) {
		perror("epoll_client: socket");
		return -1;
	}
	/* SO_RCVBUF before connect(), so that the window starts small. */
	if ((rcvbuf > 0 &&
	     setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf) != 0) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
		perror("epoll_client: setsockopt");
		close(fd);
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		perror("epoll_client: connect to 127.0.0.1");
		close(fd);
		return -1;
	}
	return fd;
}

/* Check row `want` (1-based).  Returns 0 if it is right. */
static int
check_line(const char *line, long want, int64_t *last_id)
{
	int64_t id, key;
	char payload[64], expect[64];
	int used = 0;

	if (sscanf(line, "%" SCNd64 " %" SCNd64 " %63[^\n]%n", &id, &key,
		   payload, &used) != 3 ||
	    line[used] != '\n') {
		fprintf(stderr, "epoll_client: row %ld: malformed line '%s'\n",
			want, line);
		return -1;
	}
	snprintf(expect, sizeof expect, "tick %ld", want);
	if (key != want || strcmp(payload, expect) != 0) {
		fprintf(stderr,
			"epoll_client: row %ld: got partition_key %" PRId64
			" payload '%s' (a gap, a duplicate or out of order)\n",
			want, key, payload);
		return -1;
	}
	if (id <= *last_id) {
		fprintf(stderr,
			"epoll_client: row %ld: event_id %" PRId64
			" after %" PRId64 "\n",
			want, id, *last_id);
		return -1;
	}
	*last_id = id;
	return 0;
}

int
main(int argc, char **argv)
{
	long port = -1, rows = 10000, stall_ms = 0, rcvbuf = 0;
	int64_t last_id = 0;
	char *line = NULL;
	size_t cap = 0;
	FILE *in;
	int fd, status = 0;

	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 1;
		if (strcmp(argv[i], "--port") == 0)
			bad = parse_num(v, 65535, &port);
		else if (strcmp(argv[i], "--rows") == 0)
			bad = parse_num(v, 1000000000L, &rows);
		else if (strcmp(argv[i], "--stall-ms") == 0)
			bad = parse_num(v, 60000, &stall_ms);
		else if (strcmp(argv[i], "--rcvbuf") == 0)
			bad = parse_num(v, 1L << 30, &rcvbuf);
		if (bad) {
			fprintf(stderr,
				"usage: epoll_client --port N [--rows "
				"N] [--stall-ms MS] [--rcvbuf BYTES]\n");
			return 2;
		}
	}
	if (port <= 0) {
		fprintf(stderr, "epoll_client: --port is required\n");
		return 2;
	}

	fd = connect_to(port, rcvbuf);
	if (fd < 0)
		return 1;
	in = fdopen(fd, "r");
	if (in == NULL) {
		perror("epoll_client: fdopen");
		close(fd);
		return 1;
	}
	for (long want = 1; want <= rows; want++) {
		errno = 0;
		if (getline(&line, &cap, in) < 0) {
			fprintf(stderr, "epoll_client: after %ld rows: %s\n",
				want - 1,
				errno == EAGAIN || errno == EWOULDBLOCK
				    ? "no data for 10 s"
				: errno ? strerror(errno)
					: "the server closed the connection");
			status = 1;
			break;
		}
		if (check_line(line, want, &last_id) != 0) {
			status = 1;
			break;
		}
		if (want == 1 && stall_ms > 0) {
			struct timespec ts = {stall_ms / 1000,
					      (stall_ms % 1000) * 1000000L};
			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				;
		}
	}
	free(line);
	/* Closing is how a client leaves; the server sees the hang-up. */
	if (fclose(in) != 0)
		status = 1;
	if (status == 0)
		printf("epoll_client: %ld rows, in order, each exactly once "
		       "(last event_id %" PRId64 ")\n",
		       rows, last_id);
	return status;
}
