/* SPDX-License-Identifier: MIT */
/*
 * redis_consumer.c - the other side of the litebus relay: a service on
 * another machine that reads a Redis stream the relay fills
 * (include/litebus_relay.h, `litebus relay`) and processes every event
 * exactly once, across its own crashes and restarts.
 *
 *   redis_consumer --stream KEY --log FILE [--host H] [--port P]
 *                  [--password-file F] [--db N] [--block-ms MS]
 *                  [--idle-exit MS] [--max N]
 *
 * It needs hiredis only, not litebus: it never sees the database file.
 *
 * How it processes each event once: its "processing" is appending one
 * line per entry to FILE,
 *
 *   <entry id> <event_type> <partition_key> <payload bytes>
 *
 * and that file is also where it remembers how far it got: the id on its
 * last complete line.  One write() holds both the effect and the
 * position, so they cannot disagree after a crash.  At start it reads
 * the last complete line (a torn last line, from a crash in the middle
 * of a write, is cut off), then asks Redis for what comes after it:
 *
 *   XREAD COUNT 512 BLOCK <ms> STREAMS <key> <last id>
 *
 * Redis returns entries with ids above <last id>, in order.  Each batch
 * is written with one write() and fsync()ed before the next XREAD.  A
 * real service whose effects live elsewhere (a database) stores the last
 * id in the same transaction as the effects, for the same reason.
 *
 * The relay gives entry ids "<event_id>-0", so the ms part of an id is
 * the event_id in the litebus file.
 *
 * --idle-exit MS ends the program with status 0 after MS ms without a
 * new entry (for tests and batch jobs); --max N after N entries.  Without
 * them it runs until killed.  Redis being down is retried every second.
 * Exit status: 0 done, 1 an error, 2 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <hiredis/hiredis.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct settings {
	const char *host, *stream, *log;
	char password[512];
	int port, db;
	long block_ms, idle_exit_ms, max;
};

static int
usage(void)
{
	fprintf(stderr,
		"usage: redis_consumer --stream KEY --log FILE [--host H] "
		"[--port P]\n"
		"                      [--password-file F] [--db N] "
		"[--block-ms MS]\n"
		"                      [--idle-exit MS] [--max N]\n");
	return 2;
}

/* The id on the last complete line of the log ("0-0" if none); a torn
 * last line is cut off.  0 or -1. */
static int
recover(const char *path, char *last, size_t cap)
{
	char buf[4096];
	off_t size, good = 0, pos = 0;
	int fd = open(path, O_RDWR | O_CREAT, 0644);

	snprintf(last, cap, "0-0");
	if (fd < 0) {
		perror(path);
		return -1;
	}
	/* Read it all (a log of a test's size; a real service would read
	 * backwards from the end). */
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof buf, pos);

		if (n < 0) {
			perror(path);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\n')
				good = pos + i + 1;
		pos += n;
	}
	size = pos;
	if (good < size && ftruncate(fd, good) != 0) {
		perror("ftruncate");
		close(fd);
		return -1;
	}
	if (good > 0) {
		/* The last line starts after the newline before `good - 1`. */
		off_t start = good - 1;
		char line[64];
		ssize_t n;

		while (start > 0) {
			char ch;

			if (pread(fd, &ch, 1, start - 1) != 1) {
				perror(path);
				close(fd);
				return -1;
			}
			if (ch == '\n')
				break;
			start--;
		}
		n = pread(fd, line, sizeof line - 1, start);
		if (n <= 0) {
			perror(path);
			close(fd);
			return -1;
		}
		line[n] = '\0';
		line[strcspn(line, " \n")] = '\0';
		snprintf(last, cap, "%s", line);
	}
	if (fsync(fd) != 0) {
		perror("fsync");
		close(fd);
		return -1;
	}
	return close(fd);
}

static const redisReply *
field(const redisReply *fv, const char *name)
{
	for (size_t i = 0; i + 1 < fv->elements; i += 2)
		if (strcmp(fv->element[i]->str, name) == 0)
			return fv->element[i + 1];
	return NULL;
}

static redisContext *
connect_redis(const struct settings *s)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout(s->host, s->port, tv);
	redisReply *r;

	if (c == NULL || c->err != 0) {
		fprintf(stderr, "redis_consumer: %s:%d: %s\n", s->host, s->port,
			c != NULL ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	if (s->password[0] != '\0') {
		r = redisCommand(c, "AUTH %s", s->password);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "redis_consumer: AUTH: %s\n",
				r != NULL ? r->str : c->errstr);
			freeReplyObject(r);
			redisFree(c);
			return NULL;
		}
		freeReplyObject(r);
	}
	if (s->db != 0) {
		r = redisCommand(c, "SELECT %d", s->db);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "redis_consumer: SELECT: %s\n",
				r != NULL ? r->str : c->errstr);
			freeReplyObject(r);
			redisFree(c);
			return NULL;
		}
		freeReplyObject(r);
	}
	return c;
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Append one batch to the log with one write(), then fsync: the effect
 * and the new position together.  0 or -1. */
static int
append_batch(int fd, const char *text, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, text, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("write");
			return -1;
		}
		text += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0) {
		perror("fsync");
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct settings s = {"127.0.0.1", NULL, NULL, "", 6379,
			     0,		  1000, -1,   -1};
	char last[64];
	long handled = 0, idle_since;
	redisContext *c = NULL;
	int fd;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0) {
			usage();
			return 0;
		}
		if (v == NULL)
			return usage();
		i++;
		if (strcmp(a, "--stream") == 0) {
			s.stream = v;
		} else if (strcmp(a, "--log") == 0) {
			s.log = v;
		} else if (strcmp(a, "--host") == 0) {
			s.host = v;
		} else if (strcmp(a, "--port") == 0) {
			s.port = atoi(v);
		} else if (strcmp(a, "--db") == 0) {
			s.db = atoi(v);
		} else if (strcmp(a, "--block-ms") == 0) {
			s.block_ms = atol(v);
		} else if (strcmp(a, "--idle-exit") == 0) {
			s.idle_exit_ms = atol(v);
		} else if (strcmp(a, "--max") == 0) {
			s.max = atol(v);
		} else if (strcmp(a, "--password-file") == 0) {
			FILE *f = fopen(v, "r");

			if (f == NULL ||
			    fgets(s.password, sizeof s.password, f) == NULL) {
				fprintf(stderr,
					"redis_consumer: cannot read "
					"%s\n",
					v);
				return 1;
			}
			fclose(f);
			s.password[strcspn(s.password, "\r\n")] = '\0';
		} else {
			return usage();
		}
	}
	if (s.stream == NULL || s.log == NULL || s.block_ms < 1)
		return usage();
	if (recover(s.log, last, sizeof last) != 0)
		return 1;
	fd = open(s.log, O_WRONLY | O_APPEND);
	if (fd < 0) {
		perror(s.log);
		return 1;
	}
	idle_since = now_ms();
	for (;;) {
		redisReply *r;
		char *text = NULL;
		size_t len = 0;
		FILE *mem;

		if (s.idle_exit_ms >= 0 &&
		    now_ms() - idle_since >= s.idle_exit_ms)
			break;
		if (s.max >= 0 && handled >= s.max)
			break;
		if (c == NULL) {
			c = connect_redis(&s);
			if (c == NULL) {
				sleep(1); /* Redis is down: retry */
				continue;
			}
		}
		r = redisCommand(c, "XREAD COUNT %d BLOCK %ld STREAMS %s %s",
				 512, s.block_ms, s.stream, last);
		if (r == NULL) {
			fprintf(stderr, "redis_consumer: XREAD: %s\n",
				c->errstr);
			redisFree(c);
			c = NULL;
			continue;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "redis_consumer: XREAD: %s\n", r->str);
			freeReplyObject(r);
			return 1;
		}
		if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
			freeReplyObject(r); /* nil: BLOCK timed out */
			continue;
		}
		/* [[key, [[id, [field, value, ...]], ...]]] */
		mem = open_memstream(&text, &len);
		if (mem == NULL) {
			perror("open_memstream");
			return 1;
		}
		{
			const redisReply *entries = r->element[0]->element[1];

			for (size_t i = 0; i < entries->elements; i++) {
				const redisReply *e = entries->element[i];
				const redisReply *fv = e->element[1];
				const redisReply *type =
				    field(fv, "event_type");
				const redisReply *pk =
				    field(fv, "partition_key");
				const redisReply *pl = field(fv, "payload");

				fprintf(mem, "%s %s %s %zu\n",
					e->element[0]->str,
					type != NULL ? type->str : "-",
					pk != NULL ? pk->str : "-",
					pl != NULL ? pl->len : (size_t)0);
				snprintf(last, sizeof last, "%s",
					 e->element[0]->str);
				handled++;
				if (s.max >= 0 && handled >= s.max)
					break;
			}
		}
		freeReplyObject(r);
		if (fclose(mem) != 0) {
			perror("open_memstream");
			return 1;
		}
		if (append_batch(fd, text, len) != 0)
			return 1;
		free(text);
		idle_since = now_ms();
	}
	printf("redis_consumer: handled %ld entries, last %s\n", handled, last);
	redisFree(c);
	return close(fd) == 0 ? 0 : 1;
}
