/* SPDX-License-Identifier: MIT */
/*
 * catalog.c - the built-in channels as data, and the rules for names and
 * event types.
 *
 * The five built-in channels and their event-type lists are those of the
 * FlowFabric execution engine's SQLite backend.  They are kept here as a
 * table, apart from the channels' rings and wake-ups (channel.c), so that
 * storage (outbox.c) can learn names and types without knowing anything
 * that carries a ring or a futex word.
 *
 * Threads: any; nothing here changes after load.
 */
#include "catalog.h"

#include <assert.h>
#include <string.h>

static const char *const lease_history_types[] = {"acquired", "renewed",
						  "reclaimed", "revoked", NULL};
static const char *const completion_types[] = {
    "success", "failed", "cancelled", "expired", "skipped", NULL};
static const char *const operator_event_types[] = {
    "priority_changed", "replayed", "flow_cancel_requested", NULL};

static const struct lb_chan_spec builtin[LITEBUS_BUILTIN_CHANNELS] = {
    [LITEBUS_LEASE_HISTORY] = {"lease_history", lease_history_types},
    [LITEBUS_COMPLETION] = {"completion", completion_types},
    [LITEBUS_SIGNAL_DELIVERY] = {"signal_delivery", NULL},
    [LITEBUS_STREAM_FRAME] = {"stream_frame", NULL},
    [LITEBUS_OPERATOR_EVENT] = {"operator_event", operator_event_types},
};

const char *
lb_catalog_builtin_name(int id)
{
	assert(id >= 0 && id < LITEBUS_BUILTIN_CHANNELS);
	return builtin[id].name;
}

const char *const *
lb_catalog_builtin_types(int id)
{
	if (id < 0 || id >= LITEBUS_BUILTIN_CHANNELS)
		return NULL;
	return builtin[id].types;
}

bool
lb_catalog_name_ok(const char *name)
{
	size_t n = 0;

	if (name == NULL || name[0] == '\0' ||
	    (name[0] >= '0' && name[0] <= '9'))
		return false;
	for (const char *p = name; *p != '\0'; p++, n++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return n <= LITEBUS_CHANNEL_NAME_MAX;
}

bool
lb_catalog_type_ok(const char *const *types, const char *type)
{
	if (type == NULL || type[0] == '\0')
		return false;
	if (types == NULL)
		return true;
	for (const char *const *t = types; *t != NULL; t++)
		if (strcmp(*t, type) == 0)
			return true;
	return false;
}
