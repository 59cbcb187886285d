/* SPDX-License-Identifier: MIT */
/*
 * progress.c - the terminal: the live progress line, redrawn in place on
 * a terminal (a line a second otherwise), and error messages, which end
 * that line first.  out_lock serializes all of it.
 */
#include "demo.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* End the progress line, if one is shown.  Caller holds out_lock. */
void
demo_end_status_line(struct demo *d)
{
	if (d->status_shown) {
		fputc('\n', stdout);
		fflush(stdout);
		d->status_shown = false;
	}
}

/*
 * Report something that should not have happened: it fails the run and
 * stops the producers.  Any thread.
 */
void
demo_error(struct demo *d, const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add_explicit(&d->errors, 1, memory_order_relaxed);
	demo_request_stop(d);
	pthread_mutex_lock(&d->out_lock);
	demo_end_status_line(d);
	fputs("litebus-demo: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&d->out_lock);
}


/* ------------------------------------------------------------------ */
/* The progress line                                                   */

struct progress {
	uint64_t start_ms, last_ms, last_events;
	bool tty;
	unsigned refreshes;
};

static void
progress_print(struct demo *d, struct progress *p, uint64_t now_ms)
{
	litebus_stats st;
	char line[512];
	size_t n, width = sizeof line - 1;
	double rate = 0;
	struct winsize ws;

	if (litebus_stats_get(d->bus, &st) != LITEBUS_OK) {
		demo_error(d, "litebus_stats_get: %s", litebus_last_errmsg());
		return;
	}
	if (now_ms > p->last_ms)
		rate = (double)(st.events - p->last_events) * 1000.0 /
		       (double)(now_ms - p->last_ms);
	p->last_ms = now_ms;
	p->last_events = st.events;

	n = (size_t)snprintf(
	    line, sizeof line,
	    "%5.1fs %6.0f ev/s  jobs %" PRIu64 " ok %" PRIu64
	    " aborted  subs lag %" PRIu64 " skip %" PRIu64 "  readers",
	    (double)(now_ms - p->start_ms) / 1000.0, rate,
	    atomic_load_explicit(&d->jobs_ok, memory_order_relaxed),
	    atomic_load_explicit(&d->jobs_aborted, memory_order_relaxed),
	    st.sub_lags, st.sub_skipped);
	for (int i = 0; i < d->ncons && n < sizeof line; i++) {
		const struct consumer *c = &d->cons[i];

		if (!consumer_is_reader(c))
			continue;
		n += (size_t)snprintf(
		    line + n, sizeof line - n, " %s %" PRId64 "/%" PRIu64,
		    c->label,
		    atomic_load_explicit(&c->cursor, memory_order_relaxed),
		    atomic_load_explicit(&c->laps, memory_order_relaxed));
	}
	if (p->tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 &&
	    ws.ws_col > 1 && (size_t)ws.ws_col - 1 < width)
		width = (size_t)ws.ws_col - 1;

	pthread_mutex_lock(&d->out_lock);
	if (p->tty) {
		/* Rewrite the line in place; clear what a longer line left. */
		printf("\r%.*s\033[K", (int)width, line);
		d->status_shown = true;
	} else if (p->refreshes % (1000 / DEMO_REFRESH_MS) == 0) {
		printf("%s\n", line);
	}
	fflush(stdout);
	pthread_mutex_unlock(&d->out_lock);
	p->refreshes++;
}

/*
 * Show progress until the time is up, a signal arrives or an error
 * stopped the run.  Main thread, with SIGINT and SIGTERM blocked.
 * Returns why it stopped.
 */
const char *
demo_run(struct demo *d, const sigset_t *sigs)
{
	struct progress p;
	uint64_t end_ms;

	memset(&p, 0, sizeof p);
	p.start_ms = p.last_ms = mono_ms();
	p.tty = isatty(STDOUT_FILENO) == 1;
	end_ms = p.start_ms + (uint64_t)d->o.seconds * 1000u;
	for (;;) {
		uint64_t now = mono_ms(), wait_ms;
		struct timespec ts;
		int sig;

		if (demo_stopping(d))
			return "stopped by an error";
		if (now >= end_ms)
			break;
		wait_ms = end_ms - now < DEMO_REFRESH_MS ? end_ms - now
							 : DEMO_REFRESH_MS;
		ts.tv_sec = (time_t)(wait_ms / 1000);
		ts.tv_nsec = (long)(wait_ms % 1000) * 1000000;
		sig = sigtimedwait(sigs, NULL, &ts);
		if (sig > 0) {
			progress_print(d, &p, mono_ms());
			return sig == SIGINT ? "interrupted (SIGINT)"
					     : "terminated (SIGTERM)";
		}
		progress_print(d, &p, mono_ms());
	}
	return "time is up";
}
