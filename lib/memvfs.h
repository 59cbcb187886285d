/* SPDX-License-Identifier: MIT */
/*
 * memvfs.h - in-memory databases: memdb with the locks of a
 * rollback-journal file (see memvfs.c).
 */
#ifndef LB_MEMVFS_H
#define LB_MEMVFS_H

/* The name of the VFS for in-memory databases (for "?vfs=" in a URI),
 * registered on the first call.  NULL if this SQLite has no memdb VFS;
 * the thread's error (ECANTOPEN) is then set.  Any thread. */
const char *lb_memvfs_name(void);

#endif
