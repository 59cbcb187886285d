/* SPDX-License-Identifier: MIT */
/*
 * errors.c - the error table, litebus_strerror(), per-thread error
 * text, and the run-time version.
 *
 * The codes come from the single list LITEBUS_ERRORS in litebus.h, so a
 * code cannot exist without its message.  The detail of a failure (which
 * call, SQLite's own message and extended code) is kept per thread, like
 * dlerror(): the writer thread's failure reaches the submitting thread by
 * being copied into the job and restored there (lb_err_restore()).
 *
 * Invariants
 *   E1  Every status has exactly one message and one name (the list).
 *   E2  Running out of file descriptors (EMFILE, ENFILE) is reported as
 *       LITEBUS_EMFILE wherever it is the cause - a SQLite connection
 *       that could not open its files, an eventfd - never as ECANTOPEN,
 *       EIO or ENOMEM: the remedy (raise RLIMIT_NOFILE, close readers)
 *       is not theirs.
 *
 * Threads: any; the error slot is the calling thread's own.
 */
#include "errors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct lb_err_slot {
	int sqlite_code;
	char msg[LB_ERRMSG_MAX];
};

static _Thread_local struct lb_err_slot err_slot;

const char *
litebus_strerror(int status)
{
	switch (status) {
#define LB_MSG_(name, value, msg)                                              \
	case value:                                                            \
		return msg;
		LITEBUS_ERRORS(LB_MSG_)
#undef LB_MSG_
	}
	return "unknown status";
}

const char *
litebus_errname(int status)
{
	switch (status) {
#define LB_NAME_(name, value, msg)                                             \
	case value:                                                            \
		return #name;
		LITEBUS_ERRORS(LB_NAME_)
#undef LB_NAME_
	}
	return "?";
}

const char *
litebus_last_errmsg(void)
{
	return err_slot.msg;
}

int
litebus_last_sqlite_code(void)
{
	return err_slot.sqlite_code;
}

int
litebus_version_number(void)
{
	return LITEBUS_VERSION_NUMBER;
}

const char *
litebus_version_string(void)
{
	return LITEBUS_VERSION_STRING;
}

void
lb_err_clear(void)
{
	err_slot.sqlite_code = 0;
	err_slot.msg[0] = '\0';
}

const char *
lb_err_msg(void)
{
	return err_slot.msg;
}

int
lb_err_code(void)
{
	return err_slot.sqlite_code;
}

int
lb_err_set(int status, const char *fmt, ...)
{
	va_list ap;

	if (status >= 0)
		return status;
	err_slot.sqlite_code = 0;
	if (fmt == NULL) {
		snprintf(err_slot.msg, sizeof err_slot.msg, "%s",
			 litebus_strerror(status));
		return status;
	}
	va_start(ap, fmt);
	vsnprintf(err_slot.msg, sizeof err_slot.msg, fmt, ap);
	va_end(ap);
	return status;
}

int
lb_status_from_sqlite(int sqlite_rc)
{
	switch (sqlite_rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return LITEBUS_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return LITEBUS_EBUSY;
	case SQLITE_NOMEM:
		return LITEBUS_ENOMEM;
	case SQLITE_FULL:
		return LITEBUS_ENOSPC;
	case SQLITE_IOERR:
		if (sqlite_rc == SQLITE_IOERR_NOMEM)
			return LITEBUS_ENOMEM;
		return LITEBUS_EIO;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return LITEBUS_ENOTDB;
	case SQLITE_READONLY:
	case SQLITE_PERM:
		return LITEBUS_EREADONLY;
	case SQLITE_CANTOPEN:
		return LITEBUS_ECANTOPEN;
	case SQLITE_TOOBIG:
		return LITEBUS_ETOOBIG;
	default:
		return LITEBUS_ESQLITE;
	}
}

int
lb_status_from_errno(int err, int other)
{
	switch (err) {
	case EMFILE:
	case ENFILE:
		return LITEBUS_EMFILE;
	case ENOMEM:
		return LITEBUS_ENOMEM;
	default:
		return other;
	}
}

int
lb_err_sqlite(sqlite3 *db, int sqlite_rc, const char *what)
{
	int status = lb_status_from_sqlite(sqlite_rc);
	const char *detail;

	if (status == LITEBUS_OK) /* never map success to success silently */
		status = LITEBUS_ESQLITE;
	/* E2: SQLite reports a file it could not open for want of a
	 * descriptor as CANTOPEN (or an I/O error, for the -wal and -shm);
	 * the errno behind it tells. */
	if ((status == LITEBUS_ECANTOPEN || status == LITEBUS_EIO) &&
	    db != NULL)
		status = lb_status_from_errno(sqlite3_system_errno(db), status);
	/* sqlite3_errmsg describes the most recent call on db; prefer the
	 * generic text for the code when it does not match. */
	if (db != NULL &&
	    (sqlite3_extended_errcode(db) & 0xff) == (sqlite_rc & 0xff))
		detail = sqlite3_errmsg(db);
	else
		detail = sqlite3_errstr(sqlite_rc);
	snprintf(err_slot.msg, sizeof err_slot.msg, "%s: %s (sqlite %d: %s)",
		 what, litebus_strerror(status), sqlite_rc, detail);
	err_slot.sqlite_code = sqlite_rc;
	return status;
}

void
lb_err_restore(int status, int sqlite_code, const char *msg)
{
	if (status >= 0)
		return;
	err_slot.sqlite_code = sqlite_code;
	snprintf(err_slot.msg, sizeof err_slot.msg, "%s",
		 msg != NULL && msg[0] != '\0' ? msg
					       : litebus_strerror(status));
}
