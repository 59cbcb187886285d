/* SPDX-License-Identifier: MIT */
/* TEMPORARY, removed when lib/metrics.c lands on main (issue 10 item 4):
 * lets the tool build before litebus_metrics_format() exists. */
#include <litebus.h>
#include <stdlib.h>

int
litebus_metrics_format(litebus *bus, int format, char **text, size_t *len)
{
	(void)bus;
	(void)format;
	(void)text;
	(void)len;
	return LITEBUS_EINVAL;
}

void
litebus_free(void *p)
{
	free(p);
}
