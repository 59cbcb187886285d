/* SPDX-License-Identifier: MIT */
/*
 * test_metrics.c - litebus_metrics_format (lib/metrics.c): both formats
 * parse under strict parsers, every litebus_stats counter, the per-channel
 * counters, the histograms, the file's figures and the consumers' lag say
 * what the rest of the API says, names are escaped, and the call works on
 * the writer thread, in memory and on a bus without a writer of its own.
 *
 * Why the JSON parser is written here and not `python3 -c 'import json'`
 * on a pipe: it needs no interpreter on the machine (CI's fresh machine
 * has none promised), runs inside the sanitizer builds, and is stricter
 * than Python's, which accepts NaN, Infinity and lone surrogates.  It
 * follows RFC 8259 and also refuses what litebus promises never to write
 * (duplicate keys, ill-formed UTF-8).
 *
 * The Prometheus text goes through a strict line parser written here
 * (exposition format 0.0.4: names, labels and their escapes, HELP and TYPE
 * before every family's samples, families in one piece, no duplicate
 * series, histogram buckets cumulative with le="+Inf" equal to _count),
 * and through `promtool check metrics` when promtool is installed
 * (Debian's prometheus package; the test is skipped otherwise).
 */
#include "fixture.h"
#include "outbox.h" /* LB_SCHEMA_VERSION */
#include "stats.h"  /* the histograms' bounds */

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define CH LITEBUS_COMPLETION

/* ------------------------------------------------------------------ */
/* A strict JSON parser (RFC 8259), into a small tree                  */

enum jt { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jt t;
	char *s;	  /* J_STR: decoded UTF-8; J_NUM: the token */
	size_t n;	  /* J_ARR, J_OBJ: items */
	struct jv *items; /* J_ARR, J_OBJ */
	char **keys;	  /* J_OBJ */
	bool b;		  /* J_BOOL */
};

struct jp {
	const char *start, *p, *end;
	char err[160];
};

static bool
jp_fail(struct jp *j, const char *why)
{
	if (j->err[0] == '\0')
		snprintf(j->err, sizeof j->err, "%s at offset %td: %.20s", why,
			 j->p - j->start, j->p);
	return false;
}

static void
jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
				 *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

/* Well-formed UTF-8 (no overlong forms, surrogates or > U+10FFFF): the
 * sequence's length, or 0. */
static size_t
utf8_len(const unsigned char *s, size_t avail)
{
	size_t n;
	uint32_t cp, min;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xE0) == 0xC0)
		n = 1, cp = s[0] & 0x1Fu, min = 0x80;
	else if ((s[0] & 0xF0) == 0xE0)
		n = 2, cp = s[0] & 0x0Fu, min = 0x800;
	else if ((s[0] & 0xF8) == 0xF0)
		n = 3, cp = s[0] & 0x07u, min = 0x10000;
	else
		return 0;
	if (n >= avail)
		return 0;
	for (size_t i = 1; i <= n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3Fu);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n + 1;
}

static size_t
utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

static bool
jp_hex4(struct jp *j, uint32_t *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++, j->p++) {
		char c = j->p < j->end ? *j->p : '\0';

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (uint32_t)(c - 'A' + 10);
		else
			return jp_fail(j, "bad \\u escape");
	}
	return true;
}

static bool
jp_string(struct jp *j, char **out)
{
	char *buf = malloc((size_t)(j->end - j->p) + 1);
	size_t len = 0;

	assert_non_null(buf);
	j->p++; /* the opening quote */
	for (;;) {
		unsigned char c;
		size_t n;

		if (j->p >= j->end) {
			free(buf);
			return jp_fail(j, "unterminated string");
		}
		c = (unsigned char)*j->p;
		if (c == '"') {
			j->p++;
			break;
		}
		if (c < 0x20) {
			free(buf);
			return jp_fail(j, "raw control character in a string");
		}
		if (c != '\\') {
			n = utf8_len((const unsigned char *)j->p,
				     (size_t)(j->end - j->p));
			if (n == 0) {
				free(buf);
				return jp_fail(j, "ill-formed UTF-8");
			}
			memcpy(buf + len, j->p, n);
			len += n;
			j->p += n;
			continue;
		}
		j->p++;
		c = j->p < j->end ? (unsigned char)*j->p++ : 0;
		switch (c) {
		case '"':
			buf[len++] = '"';
			break;
		case '\\':
			buf[len++] = '\\';
			break;
		case '/':
			buf[len++] = '/';
			break;
		case 'b':
			buf[len++] = '\b';
			break;
		case 'f':
			buf[len++] = '\f';
			break;
		case 'n':
			buf[len++] = '\n';
			break;
		case 'r':
			buf[len++] = '\r';
			break;
		case 't':
			buf[len++] = '\t';
			break;
		case 'u': {
			uint32_t cp, lo;

			if (!jp_hex4(j, &cp)) {
				free(buf);
				return false;
			}
			if (cp >= 0xDC00 && cp <= 0xDFFF) {
				free(buf);
				return jp_fail(j, "lone low surrogate");
			}
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (j->end - j->p < 2 || j->p[0] != '\\' ||
				    j->p[1] != 'u') {
					free(buf);
					return jp_fail(j,
						       "lone high surrogate");
				}
				j->p += 2;
				if (!jp_hex4(j, &lo) || lo < 0xDC00 ||
				    lo > 0xDFFF) {
					free(buf);
					return jp_fail(j, "bad surrogate pair");
				}
				cp = 0x10000 + ((cp - 0xD800) << 10) +
				     (lo - 0xDC00);
			}
			len += utf8_put(buf + len, cp);
			break;
		}
		default:
			free(buf);
			return jp_fail(j, "bad escape");
		}
	}
	buf[len] = '\0';
	*out = buf;
	return true;
}

static bool
jp_digits(struct jp *j)
{
	const char *start = j->p;

	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return j->p > start;
}

static bool
jp_number(struct jp *j, struct jv *v)
{
	const char *start = j->p;

	if (*j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (j->p >= j->end || *j->p < '1' || *j->p > '9' || !jp_digits(j))
		return jp_fail(j, "bad number");
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (!jp_digits(j))
			return jp_fail(j, "bad fraction");
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!jp_digits(j))
			return jp_fail(j, "bad exponent");
	}
	v->t = J_NUM;
	v->s = strndup(start, (size_t)(j->p - start));
	assert_non_null(v->s);
	return true;
}

static bool jp_value(struct jp *j, struct jv *v, int depth);
static void jv_free(struct jv *v);

static void
jv_push(struct jv *v, struct jv *item, char *key)
{
	v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
	assert_non_null(v->items);
	v->items[v->n] = *item;
	if (v->t == J_OBJ) {
		v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
		assert_non_null(v->keys);
		v->keys[v->n] = key;
	}
	v->n++;
}

static bool
jp_container(struct jp *j, struct jv *v, int depth)
{
	char close = *j->p == '{' ? '}' : ']';

	v->t = close == '}' ? J_OBJ : J_ARR;
	j->p++;
	jp_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return true;
	}
	for (;;) {
		struct jv item = {0};
		char *key = NULL;

		jp_ws(j);
		if (v->t == J_OBJ) {
			if (j->p >= j->end || *j->p != '"')
				return jp_fail(j, "expected a key");
			if (!jp_string(j, &key))
				return false;
			for (size_t i = 0; i < v->n; i++)
				if (strcmp(v->keys[i], key) == 0) {
					free(key);
					return jp_fail(j, "duplicate key");
				}
			jp_ws(j);
			if (j->p >= j->end || *j->p != ':') {
				free(key);
				return jp_fail(j, "expected ':'");
			}
			j->p++;
		}
		if (!jp_value(j, &item, depth + 1)) {
			jv_free(&item);
			free(key);
			return false;
		}
		jv_push(v, &item, key);
		jp_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		return jp_fail(j, "expected ',' or the end");
	}
}

static bool
jp_literal(struct jp *j, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return jp_fail(j, "unexpected character");
	j->p += n;
	return true;
}

static bool
jp_value(struct jp *j, struct jv *v, int depth)
{
	jp_ws(j);
	if (depth > 64)
		return jp_fail(j, "nested too deep");
	if (j->p >= j->end)
		return jp_fail(j, "expected a value");
	switch (*j->p) {
	case '{':
	case '[':
		return jp_container(j, v, depth);
	case '"':
		v->t = J_STR;
		return jp_string(j, &v->s);
	case 't':
		v->t = J_BOOL, v->b = true;
		return jp_literal(j, "true");
	case 'f':
		v->t = J_BOOL;
		return jp_literal(j, "false");
	case 'n':
		v->t = J_NULL;
		return jp_literal(j, "null");
	default:
		return jp_number(j, v);
	}
}

static void
jv_free(struct jv *v)
{
	for (size_t i = 0; i < v->n; i++) {
		jv_free(&v->items[i]);
		if (v->t == J_OBJ)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->s);
}

/* Parse the whole text: exactly one value, then only whitespace.  Returns
 * NULL (with the reason in err) if it is not valid JSON. */
static bool
json_parse(const char *text, size_t len, struct jv *out, char *err,
	   size_t errlen)
{
	struct jp j = {.start = text, .p = text, .end = text + len};
	bool ok;

	memset(out, 0, sizeof *out);
	ok = jp_value(&j, out, 0);
	if (ok) {
		jp_ws(&j);
		if (j.p != j.end)
			ok = jp_fail(&j, "text after the value");
	}
	if (!ok) {
		snprintf(err, errlen, "%s", j.err);
		jv_free(out);
	}
	return ok;
}

static const struct jv *
jv_get(const struct jv *obj, const char *key)
{
	if (obj == NULL || obj->t != J_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return &obj->items[i];
	return NULL;
}

static int64_t
jv_int(const struct jv *v)
{
	char *end;
	long long x;

	if (v == NULL || v->t != J_NUM)
		fail_msg("expected a number");
	errno = 0;
	x = strtoll(v->s, &end, 10);
	if (errno != 0 || *end != '\0')
		fail_msg("expected an integer, got %s", v->s);
	return x;
}

/* The value of a labelled JSON family's item whose labels match. */
static int64_t
json_labelled(const struct jv *root, const char *family, const char *chan,
	      const char *consumer)
{
	const struct jv *arr = jv_get(root, family);

	if (arr == NULL || arr->t != J_ARR)
		fail_msg("JSON has no array %s", family);
	for (size_t i = 0; i < arr->n; i++) {
		const struct jv *c = jv_get(&arr->items[i], "channel");
		const struct jv *k = jv_get(&arr->items[i], "consumer");

		if (c == NULL || c->t != J_STR || strcmp(c->s, chan) != 0)
			continue;
		if (consumer != NULL &&
		    (k == NULL || k->t != J_STR || strcmp(k->s, consumer) != 0))
			continue;
		return jv_int(jv_get(&arr->items[i], "value"));
	}
	fail_msg("JSON %s has no item for %s/%s", family, chan,
		 consumer != NULL ? consumer : "-");
	return -1;
}

/* ------------------------------------------------------------------ */
/* A strict parser of Prometheus text exposition format 0.0.4          */

#define PM_MAX_LABELS 4

struct pm_sample {
	char *name;
	int nlabels;
	char *lname[PM_MAX_LABELS], *lvalue[PM_MAX_LABELS];
	char *raw; /* the value as written */
	double value;
	int family; /* index into families */
};

struct pm_family {
	char *name;
	char type[16];
	bool has_help, has_type, has_samples, ended;
};

struct pm {
	struct pm_sample *s;
	size_t ns;
	struct pm_family *f;
	size_t nf;
	char err[256];
};

static bool pm_fail(struct pm *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool
pm_fail(struct pm *p, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->err[0] != '\0')
		return false;
	n = snprintf(p->err, sizeof p->err, "line %d: ", line);
	va_start(ap, fmt);
	vsnprintf(p->err + n, sizeof p->err - (size_t)n, fmt, ap);
	va_end(ap);
	return false;
}

static bool
pm_name_char(char c, bool first, bool metric)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	if (metric && c == ':')
		return true;
	return !first && c >= '0' && c <= '9';
}

/* A metric or label name at *s; its length (0: none). */
static size_t
pm_name(const char *s, bool metric)
{
	size_t n = 0;

	while (s[n] != '\0' && pm_name_char(s[n], n == 0, metric))
		n++;
	return n;
}

static int
pm_family_find(struct pm *p, const char *name)
{
	for (size_t i = 0; i < p->nf; i++)
		if (strcmp(p->f[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int
pm_family_get(struct pm *p, const char *name)
{
	int i = pm_family_find(p, name);

	if (i >= 0)
		return i;
	p->f = realloc(p->f, (p->nf + 1) * sizeof *p->f);
	assert_non_null(p->f);
	memset(&p->f[p->nf], 0, sizeof p->f[p->nf]);
	p->f[p->nf].name = strdup(name);
	return (int)p->nf++;
}

/* The family a sample named `name` belongs to: its own, or for
 * _bucket/_sum/_count the histogram it is part of. */
static int
pm_family_of(struct pm *p, const char *name)
{
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};
	size_t len = strlen(name);

	for (size_t i = 0; i < 3; i++) {
		size_t sl = strlen(sfx[i]);
		char base[256];
		int f;

		if (len <= sl || strcmp(name + len - sl, sfx[i]) != 0 ||
		    len - sl >= sizeof base)
			continue;
		memcpy(base, name, len - sl);
		base[len - sl] = '\0';
		f = pm_family_find(p, base);
		if (f >= 0 && strcmp(p->f[f].type, "histogram") == 0)
			return f;
	}
	return pm_family_find(p, name);
}

/* Leave only one family open at a time (families in one piece). */
static bool
pm_enter(struct pm *p, int f, int line)
{
	if (p->f[f].ended)
		return pm_fail(p, line, "family %s appears again after another",
			       p->f[f].name);
	for (size_t i = 0; i < p->nf; i++)
		if ((int)i != f && (p->f[i].has_help || p->f[i].has_type ||
				    p->f[i].has_samples))
			p->f[i].ended = true;
	return true;
}

static bool
pm_comment(struct pm *p, const char *l, int line)
{
	bool help = strncmp(l, "# HELP ", 7) == 0;
	bool type = strncmp(l, "# TYPE ", 7) == 0;
	size_t n;
	char name[256];
	int f;

	if (!help && !type)
		return true; /* another comment: allowed, ignored */
	l += 7;
	n = pm_name(l, true);
	if (n == 0 || n >= sizeof name || (l[n] != ' ' && l[n] != '\0'))
		return pm_fail(p, line, "bad name after HELP/TYPE");
	memcpy(name, l, n);
	name[n] = '\0';
	f = pm_family_get(p, name);
	if (!pm_enter(p, f, line))
		return false;
	if (p->f[f].has_samples)
		return pm_fail(p, line, "HELP/TYPE after samples of %s", name);
	l += n;
	if (*l == ' ')
		l++;
	if (help) {
		if (p->f[f].has_help)
			return pm_fail(p, line, "second HELP for %s", name);
		p->f[f].has_help = true;
		/* Only \\ and \n are escapes in HELP text. */
		for (const char *c = l; *c != '\0'; c++)
			if (*c == '\\' && c[1] != '\\' && c[1] != 'n')
				return pm_fail(p, line, "bad escape in HELP");
			else if (*c == '\\')
				c++;
		return true;
	}
	if (p->f[f].has_type)
		return pm_fail(p, line, "second TYPE for %s", name);
	if (strcmp(l, "counter") != 0 && strcmp(l, "gauge") != 0 &&
	    strcmp(l, "histogram") != 0 && strcmp(l, "summary") != 0 &&
	    strcmp(l, "untyped") != 0)
		return pm_fail(p, line, "bad TYPE '%s'", l);
	p->f[f].has_type = true;
	snprintf(p->f[f].type, sizeof p->f[f].type, "%s", l);
	return true;
}

/* A label value in quotes at *l, unescaped into a new string. */
static bool
pm_label_value(struct pm *p, const char **lp, char **out, int line)
{
	const char *l = *lp;
	char *buf = malloc(strlen(l) + 1);
	size_t len = 0;

	assert_non_null(buf);
	if (*l++ != '"') {
		free(buf);
		return pm_fail(p, line, "label value without quotes");
	}
	for (;;) {
		size_t n;

		if (*l == '\0') {
			free(buf);
			return pm_fail(p, line, "unterminated label value");
		}
		if (*l == '"')
			break;
		if (*l == '\\') {
			l++;
			if (*l == '\\' || *l == '"')
				buf[len++] = *l++;
			else if (*l == 'n')
				buf[len++] = '\n', l++;
			else {
				free(buf);
				return pm_fail(p, line, "bad escape '\\%c'",
					       *l);
			}
			continue;
		}
		n = utf8_len((const unsigned char *)l, strlen(l));
		if (n == 0) {
			free(buf);
			return pm_fail(p, line, "ill-formed UTF-8");
		}
		memcpy(buf + len, l, n);
		len += n;
		l += n;
	}
	buf[len] = '\0';
	*out = buf;
	*lp = l + 1;
	return true;
}

static bool
pm_value(const char *s, double *v)
{
	char *end;

	if (strcmp(s, "+Inf") == 0) {
		*v = INFINITY;
		return true;
	}
	if (strcmp(s, "-Inf") == 0) {
		*v = -INFINITY;
		return true;
	}
	if (strcmp(s, "NaN") == 0) {
		*v = NAN;
		return true;
	}
	if (*s == '\0' || strchr("+-.0123456789", *s) == NULL)
		return false;
	errno = 0;
	*v = strtod(s, &end);
	return errno == 0 && *end == '\0';
}

/* One sample line into *s; on failure the caller frees *s. */
static bool
pm_sample_parse(struct pm *p, const char *l, int line, struct pm_sample *s)
{
	size_t n = pm_name(l, true);
	char *name;

	if (n == 0)
		return pm_fail(p, line, "bad metric name");
	s->name = strndup(l, n);
	name = s->name;
	l += n;
	if (*l == '{') {
		l++;
		while (*l != '}') {
			size_t ln = pm_name(l, false);

			if (ln == 0 || l[ln] != '=')
				return pm_fail(p, line, "bad label name");
			if (s->nlabels == PM_MAX_LABELS)
				return pm_fail(p, line, "too many labels");
			s->lname[s->nlabels] = strndup(l, ln);
			for (int i = 0; i < s->nlabels; i++)
				if (strcmp(s->lname[i], s->lname[s->nlabels]) ==
				    0)
					return pm_fail(p, line,
						       "label %s twice",
						       s->lname[i]);
			l += ln + 1;
			if (!pm_label_value(p, &l, &s->lvalue[s->nlabels],
					    line))
				return false;
			s->nlabels++;
			if (*l == ',')
				l++;
			else if (*l != '}')
				return pm_fail(p, line, "expected , or }");
		}
		l++;
	}
	if (*l++ != ' ')
		return pm_fail(p, line, "expected one space before the value");
	/* The value, and no timestamp: litebus writes none. */
	s->raw = strdup(l);
	if (!pm_value(s->raw, &s->value))
		return pm_fail(p, line, "bad value '%s'", s->raw);
	s->family = pm_family_of(p, name);
	if (s->family < 0)
		return pm_fail(p, line, "sample %s has no HELP/TYPE", name);
	if (!p->f[s->family].has_help || !p->f[s->family].has_type)
		return pm_fail(p, line, "family %s lacks HELP or TYPE",
			       p->f[s->family].name);
	if (!pm_enter(p, s->family, line))
		return false;
	p->f[s->family].has_samples = true;
	/* No duplicate series. */
	for (size_t i = 0; i < p->ns; i++) {
		bool same = strcmp(p->s[i].name, name) == 0 &&
			    p->s[i].nlabels == s->nlabels;

		for (int k = 0; same && k < s->nlabels; k++)
			same = strcmp(p->s[i].lname[k], s->lname[k]) == 0 &&
			       strcmp(p->s[i].lvalue[k], s->lvalue[k]) == 0;
		if (same)
			return pm_fail(p, line, "duplicate series %s", name);
	}
	p->s = realloc(p->s, (p->ns + 1) * sizeof *p->s);
	assert_non_null(p->s);
	p->s[p->ns++] = *s;
	return true;
}

static void
pm_sample_free(struct pm_sample *s)
{
	free(s->name);
	free(s->raw);
	for (int k = 0; k < PM_MAX_LABELS; k++) {
		free(s->lname[k]);
		free(s->lvalue[k]);
	}
}

static bool
pm_sample_line(struct pm *p, const char *l, int line)
{
	struct pm_sample s = {0};

	if (pm_sample_parse(p, l, line, &s))
		return true; /* p owns it now */
	pm_sample_free(&s);
	return false;
}

static const struct pm_sample *
pm_find(const struct pm *p, const char *name, const char *l1, const char *v1,
	const char *l2, const char *v2)
{
	for (size_t i = 0; i < p->ns; i++) {
		const struct pm_sample *s = &p->s[i];
		int want = (l1 != NULL) + (l2 != NULL);
		int got = 0;

		if (strcmp(s->name, name) != 0 || s->nlabels != want)
			continue;
		for (int k = 0; k < s->nlabels; k++)
			if ((l1 != NULL && strcmp(s->lname[k], l1) == 0 &&
			     strcmp(s->lvalue[k], v1) == 0) ||
			    (l2 != NULL && strcmp(s->lname[k], l2) == 0 &&
			     strcmp(s->lvalue[k], v2) == 0))
				got++;
		if (got == want)
			return s;
	}
	return NULL;
}

/* Histograms: per family, buckets non-decreasing along le (in the order
 * written, which must be increasing le), +Inf last and equal to _count,
 * and _sum present. */
static bool
pm_check_histograms(struct pm *p)
{
	for (size_t f = 0; f < p->nf; f++) {
		char name[300];
		double prev_le = -INFINITY, prev = 0, inf = -1;
		const struct pm_sample *cnt, *sum;

		if (strcmp(p->f[f].type, "histogram") != 0)
			continue;
		snprintf(name, sizeof name, "%s_bucket", p->f[f].name);
		for (size_t i = 0; i < p->ns; i++) {
			const struct pm_sample *s = &p->s[i];
			double le;

			if (strcmp(s->name, name) != 0)
				continue;
			if (s->nlabels != 1 || strcmp(s->lname[0], "le") != 0 ||
			    !pm_value(s->lvalue[0], &le))
				return pm_fail(p, 0, "%s: bad le", name);
			if (inf >= 0)
				return pm_fail(p, 0, "%s: bucket after +Inf",
					       name);
			if (le <= prev_le || s->value < prev)
				return pm_fail(p, 0,
					       "%s: not cumulative at "
					       "le=%s",
					       name, s->lvalue[0]);
			prev_le = le;
			prev = s->value;
			if (isinf(le))
				inf = s->value;
		}
		snprintf(name, sizeof name, "%s_count", p->f[f].name);
		cnt = pm_find(p, name, NULL, NULL, NULL, NULL);
		snprintf(name, sizeof name, "%s_sum", p->f[f].name);
		sum = pm_find(p, name, NULL, NULL, NULL, NULL);
		if (inf < 0 || cnt == NULL || sum == NULL || cnt->value != inf)
			return pm_fail(p, 0, "%s: +Inf, _count or _sum wrong",
				       p->f[f].name);
	}
	return true;
}

static void
pm_free(struct pm *p)
{
	for (size_t i = 0; i < p->ns; i++)
		pm_sample_free(&p->s[i]);
	for (size_t i = 0; i < p->nf; i++)
		free(p->f[i].name);
	free(p->s);
	free(p->f);
	memset(p, 0, sizeof *p);
}

/* Parse the whole text; false with p->err on the first violation. */
static bool
pm_parse(struct pm *p, const char *text, size_t len)
{
	const char *l = text;
	int line = 0;

	memset(p, 0, sizeof *p);
	if (len == 0 || text[len - 1] != '\n' || strlen(text) != len)
		return pm_fail(p, 0, "text must end with a line feed, no NUL");
	while (l < text + len) {
		const char *nl = strchr(l, '\n');
		char *cur = strndup(l, (size_t)(nl - l));
		bool ok;

		line++;
		assert_non_null(cur);
		if (cur[0] == '#')
			ok = pm_comment(p, cur, line);
		else if (cur[0] == '\0')
			ok = true;
		else
			ok = pm_sample_line(p, cur, line);
		free(cur);
		if (!ok)
			return false;
		l = nl + 1;
	}
	for (size_t f = 0; f < p->nf; f++)
		if (!p->f[f].has_help || !p->f[f].has_type)
			return pm_fail(p, 0, "family %s lacks HELP or TYPE",
				       p->f[f].name);
	return pm_check_histograms(p);
}

static double
pm_value_of(const struct pm *p, const char *name, const char *l1,
	    const char *v1, const char *l2, const char *v2)
{
	const struct pm_sample *s = pm_find(p, name, l1, v1, l2, v2);

	if (s == NULL)
		fail_msg("no sample %s{%s=%s,%s=%s}", name, l1 ? l1 : "",
			 v1 ? v1 : "", l2 ? l2 : "", v2 ? v2 : "");
	return s->value;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static char *
metrics_text(litebus *bus, int format, size_t *len)
{
	char *text = NULL;
	size_t n = 0;
	int rc = litebus_metrics_format(bus, format, &text, &n);

	if (rc != LITEBUS_OK)
		fail_msg("litebus_metrics_format: %s: %s", litebus_errname(rc),
			 litebus_last_errmsg());
	assert_non_null(text);
	assert_int_equal(strlen(text), n);
	if (len != NULL)
		*len = n;
	return text;
}

static void
metrics_json(litebus *bus, struct jv *root)
{
	size_t len;
	char *text = metrics_text(bus, LITEBUS_METRICS_JSON, &len);
	char err[200];

	if (!json_parse(text, len, root, err, sizeof err))
		fail_msg("invalid JSON: %s\n%s", err, text);
	litebus_free(text);
	assert_int_equal(root->t, J_OBJ);
}

static void
metrics_prom(litebus *bus, struct pm *p)
{
	size_t len;
	char *text = metrics_text(bus, LITEBUS_METRICS_PROMETHEUS, &len);

	if (!pm_parse(p, text, len))
		fail_msg("invalid exposition text: %s\n%s", p->err, text);
	litebus_free(text);
}

static litebus_consumer *
cons_open(litebus *bus, const char *name)
{
	litebus_consumer *c = NULL;
	int rc =
	    litebus_consumer_open(bus, CH, name, LITEBUS_FROM_START, NULL, &c);

	if (rc != LITEBUS_OK)
		fail_msg("litebus_consumer_open: %s: %s", litebus_errname(rc),
			 litebus_last_errmsg());
	return c;
}

/* Several jobs that share transactions: submitted while one job holds the
 * writer, so the rest queue up and run as one batch. */
static void
ignore_done(int status, void *arg)
{
	(void)status;
	(void)arg;
}

static void
commit_grouped(litebus *bus, int jobs)
{
	struct fx_barrier hold;
	struct fx_exec blocker = {bus, fx_block_job, &hold, -1};
	pthread_t t;

	fx_barrier_init(&hold, 2);
	assert_int_equal(pthread_create(&t, NULL, fx_exec_main, &blocker), 0);
	fx_barrier_wait(&hold); /* the writer is inside the blocking job */
	for (int i = 0; i < jobs; i++)
		assert_int_equal(litebus_submit(bus, fx_emit_one_job, NULL,
						ignore_done, NULL),
				 LITEBUS_OK);
	fx_barrier_wait(&hold);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(blocker.rc, 0);
	/* Every submitted job has completed once this exec returns (W2). */
	assert_int_equal(litebus_exec(bus, fx_noop_job, NULL), 0);
	fx_barrier_destroy(&hold);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

/* The checkers themselves: each refuses what its format refuses, so the
 * tests below can fail (and accept a known-good sample). */
static void
the_strict_parsers_refuse_malformed_json_and_exposition_text(void **state)
{
	static const char *const bad_json[] = {
	    "",
	    "{\"a\": 1,}",
	    "{\"a\": NaN}",
	    "{\"a\": 01}",
	    "{\"a\": 1.}",
	    "{'a': 1}",
	    "{\"a\": \"\\ud800\"}",
	    "{\"a\": \"tab\there\"}",
	    "{\"a\": \"\xff\"}",
	    "{\"a\": \"\xc0\xaf\"}",
	    "{\"a\": 1, \"a\": 2}",
	    "{\"a\": 1} x",
	    "[1 2]",
	};
	static const char *const bad_prom[] = {
	    "x 1\n",
	    "# TYPE x counter\nx 1\n",
	    "# HELP x h\n# TYPE x gauge\nx 1",
	    "# HELP x h\n# TYPE x gauge\nx{a=\"b\\t\"} 1\n",
	    "# HELP x h\n# TYPE x gauge\nx{a=\"b\"} 1\nx{a=\"b\"} 2\n",
	    "# HELP x h\n# TYPE x gauge\nx  1\n",
	    "# HELP x h\n# TYPE x gauge\nx one\n",
	    "# HELP x h\n# TYPE x gauge\n# HELP y h\n# TYPE y gauge\ny 1\n"
	    "x 1\n",
	    "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
	    "h_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
	    "h_count 2\n",
	    "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\n"
	    "h_sum 1\nh_count 3\n",
	};
	const char *good_json =
	    "{\"a\": [1, -2.5e3, \"\\u00e9\\ud83d\\ude8c\"], "
	    "\"b\": {\"c\": null, \"d\": true}}";
	const char *good_prom =
	    "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
	    "h_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n"
	    "# HELP x_total h\n# TYPE x_total counter\n"
	    "x_total{a=\"q\\\"\\n\\\\\"} 1\n";
	char err[200];
	struct jv v;
	struct pm p;

	(void)state;
	for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++)
		if (json_parse(bad_json[i], strlen(bad_json[i]), &v, err,
			       sizeof err)) {
			jv_free(&v);
			fail_msg("JSON parser accepted: %s", bad_json[i]);
		}
	for (size_t i = 0; i < sizeof bad_prom / sizeof bad_prom[0]; i++) {
		bool ok = pm_parse(&p, bad_prom[i], strlen(bad_prom[i]));

		pm_free(&p);
		if (ok)
			fail_msg("exposition parser accepted:\n%s",
				 bad_prom[i]);
	}
	if (!json_parse(good_json, strlen(good_json), &v, err, sizeof err))
		fail_msg("JSON parser refused good input: %s", err);
	assert_string_equal(v.items[0].items[2].s, "\xc3\xa9\xf0\x9f\x9a\x8c");
	jv_free(&v);
	if (!pm_parse(&p, good_prom, strlen(good_prom)))
		fail_msg("exposition parser refused good input: %s", p.err);
	assert_string_equal(p.s[4].lvalue[0], "q\"\n\\");
	pm_free(&p);
}

/* "*text is NUL-terminated, *len (if not NULL) its length"; "Every
 * metric is named and described in the output itself (Prometheus # HELP
 * and # TYPE lines; the JSON keys are the same names)." */
static void
both_formats_parse_strictly_and_name_the_same_metrics(void **state)
{
	struct bus_fixture *f = *state;
	litebus_consumer *c;
	struct jv root;
	struct pm p;

	commit_events(f->bus, CH, 3, NULL);
	c = cons_open(f->bus, "reporting");
	metrics_json(f->bus, &root);
	metrics_prom(f->bus, &p);
	assert_int_equal(root.n, p.nf);
	for (size_t i = 0; i < p.nf; i++)
		if (jv_get(&root, p.f[i].name) == NULL)
			fail_msg("JSON lacks %s", p.f[i].name);
	for (size_t i = 0; i < p.nf; i++) {
		const char *n = p.f[i].name;
		size_t len = strlen(n);

		/* Prometheus's conventions: prefix, _total on counters and
		 * only there. */
		assert_int_equal(strncmp(n, "litebus_", 8), 0);
		assert_int_equal(strcmp(p.f[i].type, "counter") == 0,
				 len > 6 && strcmp(n + len - 6, "_total") == 0);
	}
	pm_free(&p);
	jv_free(&root);
	litebus_consumer_close(c);
}

/* The header: "the counters of litebus_stats". */
static void
every_litebus_stats_counter_matches_litebus_stats_get(void **state)
{
	struct bus_fixture *f = *state;
	struct fx_emit failing = {.channel = CH, .count = 2, .fail = true};
	static const struct {
		const char *name;
		size_t off;
	} map[] = {
	    {"litebus_batches_total", offsetof(litebus_stats, batches)},
	    {"litebus_commits_total", offsetof(litebus_stats, commits)},
	    {"litebus_jobs_total", offsetof(litebus_stats, jobs)},
	    {"litebus_jobs_failed_total", offsetof(litebus_stats, jobs_failed)},
	    {"litebus_events_total", offsetof(litebus_stats, events)},
	    {"litebus_busy_retries_total",
	     offsetof(litebus_stats, busy_retries)},
	    {"litebus_subscriber_lags_total",
	     offsetof(litebus_stats, sub_lags)},
	    {"litebus_subscriber_skipped_events_total",
	     offsetof(litebus_stats, sub_skipped)},
	    {"litebus_reader_lags_total", offsetof(litebus_stats, reader_lags)},
	    {"litebus_checkpoints_total", offsetof(litebus_stats, checkpoints)},
	    {"litebus_queued_jobs", offsetof(litebus_stats, queued)},
	};
	litebus_sub *sub;
	litebus_event ev;
	litebus_stats st;
	struct jv root;
	struct pm p;

	assert_int_equal(litebus_subscribe(f->bus, CH, &sub), LITEBUS_OK);
	commit_events(f->bus, CH, 20, NULL); /* laps the 8-slot ring */
	commit_batch(f->bus, LITEBUS_OPERATOR_EVENT, 5, NULL);
	assert_int_equal(litebus_exec(f->bus, fx_emit_job, &failing),
			 JOB_FAILED);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_LAGGED);
	commit_grouped(f->bus, 10); /* so that jobs != batches */

	metrics_json(f->bus, &root);
	metrics_prom(f->bus, &p);
	assert_int_equal(litebus_stats_get(f->bus, &st), LITEBUS_OK);
	/* The workload's own figures, so a counter that reads 0 twice
	 * cannot pass by accident. */
	assert_int_equal(st.events, 35);
	assert_int_equal(st.jobs, 34); /* + the blocking and the final job */
	assert_true(st.batches < st.jobs);
	assert_int_equal(st.jobs_failed, 1);
	assert_int_equal(st.sub_lags, 1);
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		uint64_t want;

		memcpy(&want, (const char *)&st + map[i].off, sizeof want);
		if ((uint64_t)jv_int(jv_get(&root, map[i].name)) != want ||
		    pm_value_of(&p, map[i].name, NULL, NULL, NULL, NULL) !=
			(double)want)
			fail_msg("%s: want %llu", map[i].name,
				 (unsigned long long)want);
	}
	pm_free(&p);
	jv_free(&root);
	litebus_unsubscribe(sub);
}

/* "histograms of jobs per batch and of commit duration" */
static void
histogram_counts_equal_batches_and_commits_and_sizes_sum_to_jobs(void **state)
{
	struct bus_fixture *f = *state;
	litebus_stats st;
	const struct jv *h;
	struct jv root;
	struct pm p;

	commit_events(f->bus, CH, 3, NULL); /* three batches of one job */
	commit_grouped(f->bus, 40);	    /* some batches of many */
	metrics_json(f->bus, &root);
	metrics_prom(f->bus, &p);
	assert_int_equal(litebus_stats_get(f->bus, &st), LITEBUS_OK);
	assert_true(st.batches < st.jobs); /* some batch had several jobs */

	assert_true(pm_value_of(&p, "litebus_batch_jobs_count", NULL, NULL,
				NULL, NULL) == (double)st.batches);
	assert_true(pm_value_of(&p, "litebus_batch_jobs_sum", NULL, NULL, NULL,
				NULL) == (double)st.jobs);
	assert_true(pm_value_of(&p, "litebus_batch_jobs_bucket", "le", "1",
				NULL, NULL) >= 3);
	assert_true(pm_value_of(&p, "litebus_commit_duration_seconds_count",
				NULL, NULL, NULL, NULL) == (double)st.commits);
	assert_true(pm_value_of(&p, "litebus_commit_duration_seconds_sum", NULL,
				NULL, NULL, NULL) > 0);

	h = jv_get(&root, "litebus_batch_jobs");
	assert_non_null(h);
	assert_int_equal(jv_int(jv_get(h, "count")), st.batches);
	assert_int_equal(jv_int(jv_get(h, "sum")), st.jobs);
	h = jv_get(&root, "litebus_commit_duration_seconds");
	assert_non_null(h);
	assert_int_equal(jv_int(jv_get(h, "count")), st.commits);
	pm_free(&p);
	jv_free(&root);
}

/* The bucket bounds written as text are stats.h's bounds (so the writer
 * files each observation under the le the output says). */
static void
bucket_bounds_in_the_text_are_the_bounds_the_writer_uses(void **state)
{
	struct bus_fixture *f = *state;
	size_t nb = 0, nc = 0;
	struct pm p;

	metrics_prom(f->bus, &p);
	for (size_t i = 0; i < p.ns; i++) {
		double le;

		if (p.s[i].nlabels != 1 || strcmp(p.s[i].lname[0], "le") != 0 ||
		    strcmp(p.s[i].lvalue[0], "+Inf") == 0)
			continue;
		assert_true(pm_value(p.s[i].lvalue[0], &le));
		if (strcmp(p.s[i].name, "litebus_batch_jobs_bucket") == 0) {
			assert_true(nb < LB_HIST_BATCH_N);
			assert_true(le == (double)lb_hist_batch_bound(nb++));
		} else if (strcmp(p.s[i].name,
				  "litebus_commit_duration_seconds_bucket") ==
			   0) {
			assert_true(nc < LB_HIST_COMMIT_N);
			assert_true(
			    fabs(le * 1e9 -
				 (double)lb_hist_commit_bound_ns(nc++)) < 0.5);
		}
	}
	assert_int_equal(nb, LB_HIST_BATCH_N);
	assert_int_equal(nc, LB_HIST_COMMIT_N);
	pm_free(&p);
}

/* "per channel the events published by this bus, head and oldest id
 * (litebus_channel_head), and subscriber laps" */
static void
per_channel_counters_match_the_channel_head_and_the_laps(void **state)
{
	struct bus_fixture *f = *state;
	int nch = litebus_channel_count(f->bus);
	uint64_t lags = 0, skipped = 0;
	litebus_sub *sub;
	litebus_event ev;
	litebus_stats st;
	struct jv root;
	struct pm p;

	assert_int_equal(litebus_subscribe(f->bus, CH, &sub), LITEBUS_OK);
	commit_events(f->bus, CH, 12, NULL); /* laps the 8-slot ring */
	commit_batch(f->bus, LITEBUS_STREAM_FRAME, 4, NULL);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_LAGGED);
	assert_int_equal(litebus_prune(f->bus, CH, 5), LITEBUS_OK);
	metrics_json(f->bus, &root);
	metrics_prom(f->bus, &p);

	for (int c = 0; c < nch; c++) {
		const char *name = litebus_channel_name(f->bus, c);
		int64_t head, oldest, published = 0;

		assert_int_equal(
		    litebus_channel_head(f->bus, c, &head, &oldest),
		    LITEBUS_OK);
		if (c == CH)
			published = 12;
		else if (c == LITEBUS_STREAM_FRAME)
			published = 4;
		assert_int_equal(
		    json_labelled(&root, "litebus_channel_head_id", name, NULL),
		    head);
		assert_true(pm_value_of(&p, "litebus_channel_head_id",
					"channel", name, NULL,
					NULL) == (double)head);
		assert_int_equal(json_labelled(&root,
					       "litebus_channel_oldest_id",
					       name, NULL),
				 oldest);
		assert_true(pm_value_of(&p, "litebus_channel_oldest_id",
					"channel", name, NULL,
					NULL) == (double)oldest);
		assert_int_equal(
		    json_labelled(&root,
				  "litebus_channel_published_events_total",
				  name, NULL),
		    published);
		assert_true(
		    pm_value_of(&p, "litebus_channel_published_events_total",
				"channel", name, NULL,
				NULL) == (double)published);
		lags += (uint64_t)json_labelled(
		    &root, "litebus_channel_subscriber_lags_total", name, NULL);
		skipped += (uint64_t)pm_value_of(
		    &p, "litebus_channel_subscriber_skipped_events_total",
		    "channel", name, NULL, NULL);
		if (c == CH) {
			assert_int_equal(head, 12);
			assert_int_equal(oldest, 5);
		}
	}
	assert_int_equal(json_labelled(&root,
				       "litebus_channel_subscriber_lags_total",
				       litebus_channel_name(f->bus, CH), NULL),
			 1);
	assert_int_equal(
	    json_labelled(&root,
			  "litebus_channel_subscriber_skipped_events_total",
			  litebus_channel_name(f->bus, CH), NULL),
	    litebus_sub_skipped(sub));
	assert_int_equal(litebus_stats_get(f->bus, &st), LITEBUS_OK);
	assert_int_equal(lags, st.sub_lags);
	assert_int_equal(skipped, st.sub_skipped);
	pm_free(&p);
	jv_free(&root);
	litebus_unsubscribe(sub);
}

/* "per durable consumer its position and lag" - and litebus_channel_head:
 * "A consumer's lag is head - its position". */
static void
consumer_lag_is_head_minus_its_durable_position(void **state)
{
	struct bus_fixture *f = *state;
	const char *chan = litebus_channel_name(f->bus, CH);
	litebus_consumer *a, *b;
	int64_t ids[10], head, oldest;
	litebus_row row;
	struct jv root;
	struct pm p;

	commit_events(f->bus, CH, 10, ids);
	a = cons_open(f->bus, "billing");
	b = cons_open(f->bus, "audit");
	for (int i = 0; i < 4; i++)
		assert_int_equal(litebus_consumer_next(a, &row, FX_WAIT_MS),
				 LITEBUS_OK);
	assert_int_equal(litebus_consumer_ack(a, ids[3]), LITEBUS_OK);
	assert_int_equal(litebus_consumer_flush(a), LITEBUS_OK);
	assert_int_equal(litebus_channel_head(f->bus, CH, &head, &oldest),
			 LITEBUS_OK);
	metrics_json(f->bus, &root);
	metrics_prom(f->bus, &p);

	assert_int_equal(json_labelled(&root, "litebus_consumer_position_id",
				       chan, "billing"),
			 ids[3]);
	assert_int_equal(
	    json_labelled(&root, "litebus_consumer_lag_ids", chan, "billing"),
	    head - ids[3]);
	assert_int_equal(
	    json_labelled(&root, "litebus_consumer_lag_ids", chan, "audit"),
	    head);
	assert_true(pm_value_of(&p, "litebus_consumer_lag_ids", "channel", chan,
				"consumer",
				"billing") == (double)(head - ids[3]));
	assert_true(pm_value_of(&p, "litebus_consumer_position_id", "channel",
				chan, "consumer", "audit") == 0);
	assert_true(pm_value_of(&p, "litebus_consumer_open", "channel", chan,
				"consumer", "audit") == 1);
	pm_free(&p);
	jv_free(&root);
	litebus_consumer_close(a);
	litebus_consumer_close(b);
}

/* "label values escaped per the exposition format (consumer names are
 * arbitrary UTF-8 ...)"; JSON "strings escaped correctly (control
 * characters, quotes, backslashes; UTF-8 passed)". */
static void
names_with_quotes_newlines_backslashes_and_controls_come_back_intact(
    void **state)
{
	struct bus_fixture *f = *state;
	static const char *const names[] = {
	    "say \"hi\"",
	    "two\nlines",
	    "back\\slash\\n",
	    "tab\tbell\x07",
	    "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x8c",
	    "}{\",=\\\"",
	};
	enum { N = sizeof names / sizeof names[0] };
	const char *chan = litebus_channel_name(f->bus, CH);
	litebus_consumer *c[N];
	struct jv root;
	struct pm p;

	commit_events(f->bus, CH, 2, NULL);
	for (int i = 0; i < N; i++)
		c[i] = cons_open(f->bus, names[i]);
	metrics_json(f->bus, &root);
	metrics_prom(f->bus, &p);
	for (int i = 0; i < N; i++) {
		assert_int_equal(json_labelled(&root,
					       "litebus_consumer_lag_ids", chan,
					       names[i]),
				 2);
		assert_true(pm_value_of(&p, "litebus_consumer_lag_ids",
					"channel", chan, "consumer",
					names[i]) == 2);
	}
	pm_free(&p);
	jv_free(&root);
	for (int i = 0; i < N; i++)
		litebus_consumer_close(c[i]);
}

/* M2 (metrics.c): the output is well-formed UTF-8 even when the file holds
 * a consumer name that is not (written by another program). */
static void
a_consumer_name_that_is_not_utf8_comes_out_as_the_replacement_character(
    void **state)
{
	struct bus_fixture *f = *state;
	const char *chan = litebus_channel_name(f->bus, CH);
	sqlite3 *db;
	struct jv root;
	struct pm p;

	commit_events(f->bus, CH, 3, NULL);
	db = fx_sql_open(f->path, SQLITE_OPEN_READWRITE);
	fx_sql_run(db, "INSERT INTO litebus_consumer(channel, name, position, "
		       "acked_at_ms) VALUES('completion', "
		       "CAST(X'61FF62C3' AS TEXT), 1, 0)");
	sqlite3_close(db);
	metrics_json(f->bus, &root);
	metrics_prom(f->bus, &p);
	assert_int_equal(json_labelled(&root, "litebus_consumer_lag_ids", chan,
				       "a\xef\xbf\xbd"
				       "b\xef\xbf\xbd"),
			 2);
	assert_true(pm_value_of(&p, "litebus_consumer_lag_ids", "channel", chan,
				"consumer",
				"a\xef\xbf\xbd"
				"b\xef\xbf\xbd") == 2);
	pm_free(&p);
	jv_free(&root);
}

/* "the -wal file's size; ... the schema version" */
static void
wal_size_and_schema_version_are_the_files(void **state)
{
	struct bus_fixture *f = *state;
	char wal[320];
	int64_t before, after, reported;
	struct jv root;
	struct pm p;

	commit_events(f->bus, CH, 5, NULL);
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	before = fx_file_len(wal);
	metrics_json(f->bus, &root);
	metrics_prom(f->bus, &p);
	after = fx_file_len(wal);
	assert_true(before > 0);
	assert_int_equal(before, after); /* nothing wrote meanwhile */
	reported = jv_int(jv_get(&root, "litebus_wal_size_bytes"));
	assert_int_equal(reported, before);
	assert_true(pm_value_of(&p, "litebus_wal_size_bytes", NULL, NULL, NULL,
				NULL) == (double)before);
	assert_int_equal(jv_int(jv_get(&root, "litebus_schema_version")),
			 LB_SCHEMA_VERSION);
	assert_true(pm_value_of(&p, "litebus_schema_version", NULL, NULL, NULL,
				NULL) == LB_SCHEMA_VERSION);
	pm_free(&p);
	jv_free(&root);
}

/* "the -wal file's size" for an in-memory database: 0. */
static void
an_in_memory_bus_reports_no_wal_and_its_heads(void **state)
{
	struct bus_fixture *f = *state;
	struct jv root;

	commit_events(f->bus, CH, 4, NULL);
	metrics_json(f->bus, &root);
	assert_int_equal(jv_int(jv_get(&root, "litebus_wal_size_bytes")), 0);
	assert_int_equal(json_labelled(&root, "litebus_channel_head_id",
				       litebus_channel_name(f->bus, CH), NULL),
			 4);
	jv_free(&root);
}

/* "Thread-safety: any thread.  Blocking: short reads on a connection of
 * its own (never waits for jobs)." - so it works inside a job, on the
 * writer thread, and sees what committed before that job. */
struct in_job {
	litebus *bus;
	int rc;
	char *text;
	size_t len;
};

static int
metrics_in_job(litebus_tx *tx, void *arg)
{
	struct in_job *j = arg;

	(void)tx;
	j->rc = litebus_metrics_format(j->bus, LITEBUS_METRICS_PROMETHEUS,
				       &j->text, &j->len);
	return 0;
}

static void
it_works_inside_a_job_on_the_writer_thread(void **state)
{
	struct bus_fixture *f = *state;
	struct in_job j = {.bus = f->bus, .rc = -100};
	litebus_consumer *c;
	struct pm p;

	commit_events(f->bus, CH, 6, NULL);
	c = cons_open(f->bus, "in-job");
	assert_int_equal(litebus_exec(f->bus, metrics_in_job, &j), 0);
	assert_int_equal(j.rc, LITEBUS_OK);
	if (!pm_parse(&p, j.text, j.len))
		fail_msg("invalid exposition text: %s\n%s", p.err, j.text);
	assert_true(pm_value_of(&p, "litebus_channel_head_id", "channel",
				litebus_channel_name(f->bus, CH), NULL,
				NULL) == 6);
	assert_true(pm_value_of(&p, "litebus_consumer_lag_ids", "channel",
				litebus_channel_name(f->bus, CH), "consumer",
				"in-job") == 6);
	pm_free(&p);
	litebus_free(j.text);
	litebus_consumer_close(c);
}

/* "The function must also work on a read-only bus ... then counters are
 * zero and the file-derived figures are what matter" (Read-only buses:
 * "litebus_metrics_format() work[s]").  A bus that writes nothing itself
 * reports the file as another bus left it. */
static void
a_read_only_bus_reports_zero_counters_and_the_files_figures(void **state)
{
	struct bus_fixture *f = *state;
	litebus_options o;
	litebus_consumer *c;
	litebus_row row;
	int64_t ids[7];
	char wal[320];
	struct jv root;
	struct pm p;

	fx_open(f);
	commit_events(f->bus, CH, 7, ids);
	c = cons_open(f->bus, "follower");
	for (int i = 0; i < 2; i++)
		assert_int_equal(litebus_consumer_next(c, &row, FX_WAIT_MS),
				 LITEBUS_OK);
	assert_int_equal(litebus_consumer_ack(c, ids[1]), LITEBUS_OK);
	litebus_consumer_close(c);
	assert_int_equal(litebus_close(f->bus), LITEBUS_OK);
	f->bus = NULL;

	litebus_options_init(&o);
	o.path = f->path;
	o.read_only = 1;
	assert_int_equal(litebus_open(&o, &f->bus), LITEBUS_OK);
	metrics_json(f->bus, &root);
	metrics_prom(f->bus, &p);
	for (size_t i = 0; i < p.ns; i++) {
		const struct pm_sample *s = &p.s[i];

		/* Every counter of this process is 0: it ran nothing. */
		if (strcmp(p.f[s->family].type, "gauge") != 0 && s->value != 0)
			fail_msg("%s is %s on a bus that ran nothing", s->name,
				 s->raw);
	}
	assert_true(pm_value_of(&p, "litebus_channel_head_id", "channel",
				litebus_channel_name(f->bus, CH), NULL,
				NULL) == 7);
	assert_true(pm_value_of(&p, "litebus_channel_oldest_id", "channel",
				litebus_channel_name(f->bus, CH), NULL,
				NULL) == 1);
	assert_int_equal(json_labelled(&root, "litebus_consumer_position_id",
				       litebus_channel_name(f->bus, CH),
				       "follower"),
			 ids[1]);
	assert_int_equal(json_labelled(&root, "litebus_consumer_lag_ids",
				       litebus_channel_name(f->bus, CH),
				       "follower"),
			 7 - ids[1]);
	assert_int_equal(json_labelled(&root, "litebus_consumer_open",
				       litebus_channel_name(f->bus, CH),
				       "follower"),
			 0);
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	assert_int_equal(jv_int(jv_get(&root, "litebus_wal_size_bytes")),
			 fx_file_len(wal));
	assert_int_equal(jv_int(jv_get(&root, "litebus_schema_version")),
			 LB_SCHEMA_VERSION);
	pm_free(&p);
	jv_free(&root);
}

/* The issue: "the Prometheus output passes `promtool check metrics` if
 * Debian has it".  Skipped where promtool is not installed. */
static void
promtool_check_metrics_accepts_the_output(void **state)
{
	struct bus_fixture *f = *state;
	litebus_consumer *c1, *c2;
	litebus_sub *sub;
	litebus_event ev;
	char file[320], cmd[800];
	FILE *out;
	char *text;
	size_t len;
	int st;

	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		print_message("promtool is not installed: skipped\n");
		skip();
	}
	assert_int_equal(litebus_subscribe(f->bus, CH, &sub), LITEBUS_OK);
	commit_events(f->bus, CH, 10, NULL);
	assert_int_equal(litebus_recv(sub, &ev, 0), LITEBUS_LAGGED);
	c1 = cons_open(f->bus, "quote\" back\\slash\nnewline");
	c2 = cons_open(f->bus, "plain");
	text = metrics_text(f->bus, LITEBUS_METRICS_PROMETHEUS, &len);
	snprintf(file, sizeof file, "%s/metrics.txt", f->dir);
	out = fopen(file, "w");
	assert_non_null(out);
	assert_int_equal(fwrite(text, 1, len, out), len);
	assert_int_equal(fclose(out), 0);
	snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' 2>&1", file);
	st = system(cmd);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("promtool check metrics failed (%d) on:\n%s", st,
			 text);
	litebus_free(text);
	litebus_consumer_close(c1);
	litebus_consumer_close(c2);
	litebus_unsubscribe(sub);
}

/* "Returns OK; EINVAL (NULL, unknown format), ... ECLOSED"; "*text ...
 * the caller owns *text and frees it with litebus_free()"; and litebus_free:
 * "NULL is a no-op". */
static void
bad_arguments_are_einval_and_a_closed_bus_is_eclosed(void **state)
{
	struct bus_fixture *f = *state;
	char *text = (char *)"untouched";
	size_t len = 99;
	litebus *bus;

	assert_int_equal(litebus_metrics_format(NULL, 0, &text, &len),
			 LITEBUS_EINVAL);
	assert_null(text); /* M5: nothing to free after a failure */
	assert_int_equal(len, 0);
	assert_int_equal(litebus_metrics_format(f->bus, 0, NULL, &len),
			 LITEBUS_EINVAL);
	text = (char *)"untouched";
	assert_int_equal(litebus_metrics_format(f->bus, 2, &text, NULL),
			 LITEBUS_EINVAL);
	assert_null(text);
	assert_int_equal(litebus_metrics_format(f->bus, -1, &text, NULL),
			 LITEBUS_EINVAL);
	/* len is optional. */
	assert_int_equal(
	    litebus_metrics_format(f->bus, LITEBUS_METRICS_JSON, &text, NULL),
	    LITEBUS_OK);
	litebus_free(text);
	litebus_free(NULL);

	bus = f->bus;
	assert_int_equal(litebus_close(bus), LITEBUS_OK);
	f->bus = NULL;
	text = (char *)"untouched";
	assert_int_equal(litebus_metrics_format(bus, 0, &text, &len),
			 LITEBUS_ECLOSED);
	assert_null(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		the_strict_parsers_refuse_malformed_json_and_exposition_text),
	    FX_TEST_TINY(both_formats_parse_strictly_and_name_the_same_metrics),
	    FX_TEST_TINY(every_litebus_stats_counter_matches_litebus_stats_get),
	    FX_TEST_TINY(
		histogram_counts_equal_batches_and_commits_and_sizes_sum_to_jobs),
	    FX_TEST_TINY(
		bucket_bounds_in_the_text_are_the_bounds_the_writer_uses),
	    FX_TEST_TINY(
		per_channel_counters_match_the_channel_head_and_the_laps),
	    FX_TEST_TINY(consumer_lag_is_head_minus_its_durable_position),
	    FX_TEST_TINY(
		names_with_quotes_newlines_backslashes_and_controls_come_back_intact),
	    FX_TEST_TINY(
		a_consumer_name_that_is_not_utf8_comes_out_as_the_replacement_character),
	    FX_TEST_TINY(wal_size_and_schema_version_are_the_files),
	    FX_TEST_WITH(an_in_memory_bus_reports_no_wal_and_its_heads,
			 bus_in_memory),
	    FX_TEST_TINY(it_works_inside_a_job_on_the_writer_thread),
	    FX_TEST_TMPDIR(
		a_read_only_bus_reports_zero_counters_and_the_files_figures),
	    FX_TEST_TINY(promtool_check_metrics_accepts_the_output),
	    FX_TEST_TINY(bad_arguments_are_einval_and_a_closed_bus_is_eclosed),
	};

	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
