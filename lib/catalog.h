/* SPDX-License-Identifier: MIT */
/*
 * catalog.h - the built-in channels as data, and the rules for names and
 * event types.  No state, no threads: any thread, any time.
 */
#ifndef LB_CATALOG_H
#define LB_CATALOG_H

#include "litebus.h"

#include <stdbool.h>

/*
 * What storage and the writer need to know of one channel: its name and
 * the event types it accepts.  Plain data; the strings are borrowed (the
 * catalog's own for built-in channels, the channel's for the name).
 */
struct lb_chan_spec {
	const char *name;	  /* valid: lb_catalog_name_ok() */
	const char *const *types; /* NULL-terminated; NULL: any non-empty */
};

/* Name of built-in channel id (0..LITEBUS_BUILTIN_CHANNELS-1). */
const char *lb_catalog_builtin_name(int id);
/* The event types of channel id if it is a built-in channel that lists
 * them; NULL for any other id, or a built-in channel that accepts any
 * non-empty type. */
const char *const *lb_catalog_builtin_types(int id);
/* Is `name` a valid channel name?  [A-Za-z_][A-Za-z0-9_]*, at most
 * LITEBUS_CHANNEL_NAME_MAX bytes. */
bool lb_catalog_name_ok(const char *name);
/* Is `type` allowed by `types` (NULL: any non-empty type)? */
bool lb_catalog_type_ok(const char *const *types, const char *type);

#endif
