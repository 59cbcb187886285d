/*
 * writer.h - the writer thread: job queue in, transactions, publish.
 */
#ifndef LB_WRITER_H
#define LB_WRITER_H

#include "litebus.h"
#include "outbox.h"

#include <stdbool.h>

struct litebus;
struct lb_writer;

/* Open the write connection (schema, statements), read the channels'
 * next event ids, and start the writer thread.  On failure nothing is left
 * open and the thread's error is set. */
int lb_writer_start(struct litebus *bus, struct lb_writer **out);

/* Refuse new jobs, let the queued ones run, publish, close every channel
 * and join the thread.  Not on the writer thread. */
void lb_writer_stop(struct lb_writer *w);
void lb_writer_free(struct lb_writer *w);

/* Is the calling thread the writer of `bus`? */
bool lb_writer_is_current(const struct litebus *bus);

#endif
