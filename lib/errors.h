/* SPDX-License-Identifier: MIT */
/*
 * errors.h - status codes, SQLite result mapping, per-thread error text.
 */
#ifndef LB_ERRORS_H
#define LB_ERRORS_H

#include "litebus.h"

#include <sqlite3.h>

#define LB_ERRMSG_MAX 256

/* Record `status` as the calling thread's last error with a message
 * (printf-style; NULL uses litebus_strerror) and return status.  Does
 * nothing for status >= 0. */
int lb_err_set(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record an error caused by SQLite on `db` (extended code `sqlite_rc`),
 * prefixed by `what`, and return the litebus status it maps to. */
int lb_err_sqlite(sqlite3 *db, int sqlite_rc, const char *what);

/* Copy a complete error (status, extended code, text) into the calling
 * thread's slot, as made on another thread (the writer, for a job). */
void lb_err_restore(int status, int sqlite_code, const char *msg);

/* Forget the calling thread's last error. */
void lb_err_clear(void);

/* The calling thread's last error text and SQLite code. */
const char *lb_err_msg(void);
int lb_err_code(void);

/* The litebus status for a SQLite result code. */
int lb_status_from_sqlite(int sqlite_rc);

/* The litebus status for a failed system call's errno: EMFILE for
 * EMFILE and ENFILE (E2), ENOMEM for ENOMEM, `other` for the rest. */
int lb_status_from_errno(int err, int other);

#endif
