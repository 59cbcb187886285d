/* SPDX-License-Identifier: MIT */
/*
 * abi.c - the exported entry points that take a caller's struct together
 * with its size (the ABI policy at the top of litebus.h).
 *
 * A program passes sizeof of each struct as its own copy of litebus.h
 * laid it out (the header's macros do it under the usual call names).
 * Each function here turns the caller's struct into one of this
 * library's own layout, calls the implementation (the same name without
 * _sized, hidden, declared in litebus.h for LITEBUS_BUILDING_LIBRARY_),
 * and copies results back, touching only the bytes the caller has.
 * When the caller's size is this library's, the caller's struct is used
 * directly: no copy on the hot paths (recv, reader_next, emit) of a
 * program built against this header.
 *
 * Invariants
 *   A1  Neither read nor written: any byte of a caller's struct at or
 *       beyond the size it passed (for arrays, beyond count x size).
 *   A2  Input from an older header (smaller size): every field it lacks
 *       takes its default - litebus_options_init()'s for options, 0 for
 *       every other struct (a field added later means "as before" when 0).
 *   A3  Input from a newer header (larger size): the bytes this library
 *       does not know must all be 0, else EINVAL - a field the program
 *       set is never silently ignored.
 *   A4  Output to a newer header: the bytes this library does not know
 *       are set to 0, after the known fields.
 *   A5  A size smaller than the struct's first field is EINVAL (no header
 *       ever had such a struct); so is 0.
 *
 * Threads: any; every function here runs on its caller's thread and keeps
 * no state.
 */
#include "errors.h"

#include <stdlib.h>
#include <string.h>

/* The smallest size a header of any release can have given (A5): the end
 * of the struct's first field, which every release has had. */
#define ABI_MIN(type, first)                                                   \
	(offsetof(type, first) + sizeof(((type *)0)->first))

/* A5: whether `size` can be a struct of `type` from some litebus.h. */
static int
abi_check_size(size_t size, size_t min, const char *call, const char *what)
{
	if (size < min)
		return lb_err_set(LITEBUS_EINVAL,
				  "%s: %s size %zu is smaller than any "
				  "litebus.h ever had (%zu)",
				  call, what, size, min);
	return LITEBUS_OK;
}

/*
 * A2, A3: copy a caller's input struct of `size` bytes over `own` (which
 * holds the defaults of the fields the caller may lack).
 */
static int
abi_in(void *own, size_t own_size, const void *user, size_t size,
       const char *call, const char *what)
{
	const unsigned char *u = user;

	if (size <= own_size) {
		memcpy(own, user, size);
		return LITEBUS_OK;
	}
	for (size_t i = own_size; i < size; i++)
		if (u[i] != 0)
			return lb_err_set(
			    LITEBUS_EINVAL,
			    "%s: %s byte %zu is set, but this library (%s) "
			    "knows only the first %zu bytes of the struct: "
			    "the program uses a field of a newer litebus",
			    call, what, i, LITEBUS_VERSION_STRING, own_size);
	memcpy(own, user, own_size);
	return LITEBUS_OK;
}

/* A1, A4: copy this library's output struct into a caller's of `size`. */
static void
abi_out(void *user, size_t size, const void *own, size_t own_size)
{
	if (size <= own_size) {
		memcpy(user, own, size);
		return;
	}
	memcpy(user, own, own_size);
	memset((unsigned char *)user + own_size, 0, size - own_size);
}

/* ------------------------------------------------------------------ */
/* Options and opening                                                 */

void
litebus_options_init_sized(litebus_options *o, size_t size)
{
	litebus_options own;

	if (o == NULL || size < ABI_MIN(litebus_options, path))
		return;
	litebus_options_init(&own);
	abi_out(o, size, &own, sizeof own);
}

/*
 * The retention list in this library's layout: the caller's entries are
 * `size` bytes apart; the list ends at the first entry whose channel is
 * NULL.  *out is NULL when the caller's list can be used as it is.
 */
static int
abi_retention(const litebus_retention *list, size_t size,
	      litebus_retention **out)
{
	const unsigned char *base = (const unsigned char *)list;
	litebus_retention *own;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (list == NULL || size == sizeof(litebus_retention))
		return LITEBUS_OK;
	rc = abi_check_size(size, ABI_MIN(litebus_retention, channel),
			    "litebus_open", "litebus_retention");
	if (rc != LITEBUS_OK)
		return rc;
	/* channel is the first field (A5), so reading it is within size. */
	for (;;) {
		const char *channel;

		memcpy(&channel, base + n * size, sizeof channel);
		n++;
		if (channel == NULL)
			break;
	}
	own = calloc(n, sizeof *own);
	if (own == NULL)
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_open: copying the retention list");
	for (size_t i = 0; i < n; i++) {
		rc = abi_in(&own[i], sizeof own[i], base + i * size, size,
			    "litebus_open", "litebus_retention");
		if (rc != LITEBUS_OK) {
			free(own);
			return rc;
		}
	}
	*out = own;
	return LITEBUS_OK;
}

int
litebus_open_sized(const litebus_options *o, size_t options_size,
		   size_t retention_size, litebus **out)
{
	litebus_options own;
	litebus_retention *retention;
	int rc;

	if (o == NULL)
		return litebus_open(NULL, out);
	if (out != NULL)
		*out = NULL;
	rc = abi_check_size(options_size, ABI_MIN(litebus_options, path),
			    "litebus_open", "litebus_options");
	if (rc != LITEBUS_OK)
		return rc;
	litebus_options_init(&own);
	rc = abi_in(&own, sizeof own, o, options_size, "litebus_open",
		    "litebus_options");
	if (rc != LITEBUS_OK)
		return rc;
	rc = abi_retention(own.retention, retention_size, &retention);
	if (rc != LITEBUS_OK)
		return rc;
	if (retention != NULL)
		own.retention = retention;
	/* litebus_open copies what it keeps (the retention list included). */
	rc = litebus_open(&own, out);
	free(retention);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Jobs                                                                */

int
litebus_emit_sized(litebus_tx *tx, int channel, const litebus_record *rec,
		   size_t rec_size, int64_t *event_id)
{
	litebus_record own = {0};
	int rc;

	if (rec == NULL || rec_size == sizeof *rec)
		return litebus_emit(tx, channel, rec, event_id);
	rc = abi_check_size(rec_size, ABI_MIN(litebus_record, partition_key),
			    "litebus_emit", "litebus_record");
	if (rc == LITEBUS_OK)
		rc = abi_in(&own, sizeof own, rec, rec_size, "litebus_emit",
			    "litebus_record");
	if (rc != LITEBUS_OK)
		return rc;
	return litebus_emit(tx, channel, &own, event_id);
}

/* ------------------------------------------------------------------ */
/* Subscribers, readers, consumers                                     */

int
litebus_recv_sized(litebus_sub *sub, litebus_event *ev, size_t ev_size,
		   int timeout_ms)
{
	litebus_event own;
	int rc;

	if (ev == NULL || ev_size == sizeof *ev)
		return litebus_recv(sub, ev, timeout_ms);
	rc = abi_check_size(ev_size, ABI_MIN(litebus_event, event_id),
			    "litebus_recv", "litebus_event");
	if (rc != LITEBUS_OK)
		return rc;
	rc = litebus_recv(sub, &own, timeout_ms);
	if (rc == LITEBUS_OK)
		abi_out(ev, ev_size, &own, sizeof own);
	return rc;
}

/* The filter in this library's layout; *f is NULL or points to own. */
static int
abi_filter(const litebus_filter **f, size_t size, litebus_filter *own,
	   const char *call)
{
	int rc;

	if (*f == NULL || size == sizeof **f)
		return LITEBUS_OK;
	rc = abi_check_size(size, ABI_MIN(litebus_filter, partition_key), call,
			    "litebus_filter");
	if (rc != LITEBUS_OK)
		return rc;
	memset(own, 0, sizeof *own);
	rc = abi_in(own, sizeof *own, *f, size, call, "litebus_filter");
	if (rc == LITEBUS_OK)
		*f = own;
	return rc;
}

int
litebus_reader_open_sized(litebus *bus, int channel, int64_t after_event_id,
			  const litebus_filter *f, size_t f_size,
			  litebus_reader **out)
{
	litebus_filter own;
	int rc;

	rc = abi_filter(&f, f_size, &own, "litebus_reader_open");
	if (rc != LITEBUS_OK) {
		if (out != NULL)
			*out = NULL;
		return rc;
	}
	return litebus_reader_open(bus, channel, after_event_id, f, out);
}

/* A row out of `next` (reader or consumer) into a caller's row. */
static int
abi_row_check(litebus_row *row, size_t size, const char *call)
{
	if (row == NULL)
		return LITEBUS_OK;
	return abi_check_size(size, ABI_MIN(litebus_row, event_id), call,
			      "litebus_row");
}

int
litebus_reader_next_sized(litebus_reader *r, litebus_row *row, size_t row_size,
			  int timeout_ms)
{
	litebus_row own;
	int rc;

	if (row == NULL || row_size == sizeof *row)
		return litebus_reader_next(r, row, timeout_ms);
	rc = abi_row_check(row, row_size, "litebus_reader_next");
	if (rc != LITEBUS_OK)
		return rc;
	rc = litebus_reader_next(r, &own, timeout_ms);
	if (rc == LITEBUS_OK)
		abi_out(row, row_size, &own, sizeof own);
	return rc;
}

int
litebus_consumer_open_sized(litebus *bus, int channel, const char *name,
			    int64_t start, const litebus_filter *f,
			    size_t f_size, litebus_consumer **out)
{
	litebus_filter own;
	int rc;

	rc = abi_filter(&f, f_size, &own, "litebus_consumer_open");
	if (rc != LITEBUS_OK) {
		if (out != NULL)
			*out = NULL;
		return rc;
	}
	return litebus_consumer_open(bus, channel, name, start, f, out);
}

int
litebus_consumer_next_sized(litebus_consumer *c, litebus_row *row,
			    size_t row_size, int timeout_ms)
{
	litebus_row own;
	int rc;

	if (row == NULL || row_size == sizeof *row)
		return litebus_consumer_next(c, row, timeout_ms);
	rc = abi_row_check(row, row_size, "litebus_consumer_next");
	if (rc != LITEBUS_OK)
		return rc;
	rc = litebus_consumer_next(c, &own, timeout_ms);
	if (rc == LITEBUS_OK)
		abi_out(row, row_size, &own, sizeof own);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Statistics                                                          */

int
litebus_stats_get_sized(litebus *bus, litebus_stats *st, size_t st_size)
{
	litebus_stats own;
	int rc;

	if (st == NULL || st_size == sizeof *st)
		return litebus_stats_get(bus, st);
	rc = abi_check_size(st_size, ABI_MIN(litebus_stats, batches),
			    "litebus_stats_get", "litebus_stats");
	if (rc != LITEBUS_OK)
		return rc;
	rc = litebus_stats_get(bus, &own);
	if (rc == LITEBUS_OK)
		abi_out(st, st_size, &own, sizeof own);
	return rc;
}

int
litebus_sub_stats_get_sized(const litebus_sub *sub, litebus_sub_stats *st,
			    size_t st_size)
{
	litebus_sub_stats own;
	int rc;

	if (st == NULL || st_size == sizeof *st)
		return litebus_sub_stats_get(sub, st);
	rc = abi_check_size(st_size, ABI_MIN(litebus_sub_stats, received),
			    "litebus_sub_stats_get", "litebus_sub_stats");
	if (rc != LITEBUS_OK)
		return rc;
	rc = litebus_sub_stats_get(sub, &own);
	if (rc == LITEBUS_OK)
		abi_out(st, st_size, &own, sizeof own);
	return rc;
}

int
litebus_reader_stats_get_sized(const litebus_reader *r,
			       litebus_reader_stats *st, size_t st_size)
{
	litebus_reader_stats own;
	int rc;

	if (st == NULL || st_size == sizeof *st)
		return litebus_reader_stats_get(r, st);
	rc = abi_check_size(st_size, ABI_MIN(litebus_reader_stats, delivered),
			    "litebus_reader_stats_get", "litebus_reader_stats");
	if (rc != LITEBUS_OK)
		return rc;
	rc = litebus_reader_stats_get(r, &own);
	if (rc == LITEBUS_OK)
		abi_out(st, st_size, &own, sizeof own);
	return rc;
}

int
litebus_consumer_stats_get_sized(litebus_consumer *c,
				 litebus_consumer_info *info, size_t info_size)
{
	litebus_consumer_info own;
	int rc;

	if (info == NULL || info_size == sizeof *info)
		return litebus_consumer_stats_get(c, info);
	rc = abi_check_size(info_size, ABI_MIN(litebus_consumer_info, name),
			    "litebus_consumer_stats_get",
			    "litebus_consumer_info");
	if (rc != LITEBUS_OK)
		return rc;
	rc = litebus_consumer_stats_get(c, &own);
	if (rc == LITEBUS_OK)
		abi_out(info, info_size, &own, sizeof own);
	return rc;
}

/*
 * out[] holds `cap` entries `info_size` bytes apart.  The list is read
 * into this library's layout first - counted, then fetched, so the
 * buffer is never larger than what the database holds - and copied
 * entry by entry (A1).
 */
int
litebus_consumer_list_sized(litebus *bus, int channel,
			    litebus_consumer_info *out, size_t cap,
			    size_t info_size, size_t *count)
{
	litebus_consumer_info *own;
	size_t total = 0, n;
	int rc;

	if (info_size == sizeof *out)
		return litebus_consumer_list(bus, channel, out, cap, count);
	/* Nothing to copy, or an argument error the call reports itself
	 * (out is not passed on: its entries are not this layout's). */
	if (out == NULL || cap == 0 || count == NULL)
		return litebus_consumer_list(bus, channel, NULL,
					     out == NULL ? cap : 0, count);
	rc = abi_check_size(info_size, ABI_MIN(litebus_consumer_info, name),
			    "litebus_consumer_list", "litebus_consumer_info");
	if (rc != LITEBUS_OK)
		return rc;
	rc = litebus_consumer_list(bus, channel, NULL, 0, &total);
	if (rc != LITEBUS_OK)
		return rc;
	n = total < cap ? total : cap;
	if (n == 0) {
		*count = total;
		return LITEBUS_OK;
	}
	own = calloc(n, sizeof *own);
	if (own == NULL)
		return lb_err_set(LITEBUS_ENOMEM,
				  "litebus_consumer_list: %zu entries", n);
	/* The list may have changed since it was counted: total is the
	 * second answer, and at most n entries were written. */
	rc = litebus_consumer_list(bus, channel, own, n, &total);
	if (rc == LITEBUS_OK) {
		size_t got = total < n ? total : n;

		for (size_t i = 0; i < got; i++)
			abi_out((unsigned char *)out + i * info_size, info_size,
				&own[i], sizeof own[i]);
		*count = total;
	}
	free(own);
	return rc;
}
