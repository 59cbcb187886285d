/* SPDX-License-Identifier: MIT */
/*
 * json.c - output buffer, JSON strings, UTF-8 validation, base64.
 *
 * The tool prints rows whose subject and payload are arbitrary bytes.  A
 * JSON document must be valid UTF-8 (RFC 8259 section 8.1), so bytes that
 * are not valid UTF-8 are never written into a JSON string: the caller
 * checks utf8_valid() and uses base64 instead, and says which it used.
 *
 * Invariants
 *   J1  jbuf data is NUL-terminated whenever len > 0 or cap > 0, and
 *       len < cap; after an allocation failure nothing more is appended.
 *   J2  json_string() writes no byte below 0x20, no unescaped '"' or '\\',
 *       and only valid UTF-8: a byte of its input that starts no valid
 *       sequence becomes the escape \\ufffd (lossy: fields that must keep
 *       their bytes are checked with utf8_valid() and sent as base64).
 *       So its output is always valid JSON, on a single line.
 *   J3  base64_add() writes exactly base64_len(n) bytes from the RFC 4648
 *       alphabet, padded with '='.
 *
 * Threads: any; no shared state.
 */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
jbuf_init(struct jbuf *b)
{
	memset(b, 0, sizeof *b);
}

void
jbuf_free(struct jbuf *b)
{
	free(b->data);
	jbuf_init(b);
}

void
jbuf_reset(struct jbuf *b)
{
	b->len = 0;
	if (b->cap > 0)
		b->data[0] = '\0';
}

/* Room for n more bytes and the NUL (J1). */
static bool
jbuf_reserve(struct jbuf *b, size_t n)
{
	size_t want, cap;
	char *p;

	if (b->failed)
		return false;
	if (n > SIZE_MAX - b->len - 1) {
		b->failed = true;
		return false;
	}
	want = b->len + n + 1;
	if (want <= b->cap)
		return true;
	cap = b->cap > 0 ? b->cap : 256;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	p = realloc(b->data, cap);
	if (p == NULL) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void
jbuf_add(struct jbuf *b, const void *p, size_t n)
{
	if (!jbuf_reserve(b, n))
		return;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
jbuf_adds(struct jbuf *b, const char *s)
{
	jbuf_add(b, s, strlen(s));
}

void
jbuf_addf(struct jbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if (!jbuf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	b->len += (size_t)n;
}

/* RFC 3629, section 4: the length of the well-formed sequence at s[0]
 * (n > 0 bytes available), or 0 if there is none. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t more;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		more = 1;
	} else if (c >= 0xE0 && c <= 0xEF) {
		more = 2;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		more = 3;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		else if (c == 0xF4)
			hi = 0x8F; /* above U+10FFFF */
	} else {
		return 0; /* 80..C1, F5..FF */
	}
	if (more > n - 1)
		return 0; /* truncated */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k <= more; k++)
		if (s[k] < 0x80 || s[k] > 0xBF)
			return 0;
	return more + 1;
}

bool
utf8_valid(const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0, len; i < n; i += len)
		if ((len = utf8_seq(s + i, n - i)) == 0)
			return false;
	return true;
}

void
json_string(struct jbuf *b, const void *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = p;
	size_t run = 0; /* start of the bytes copied as they are */

	if (n == 0) { /* p may be NULL: no arithmetic on it */
		jbuf_add(b, "\"\"", 2);
		return;
	}
	jbuf_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		char esc[8];
		size_t elen = 0, skip = 1;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			elen = 2;
		} else if (c == '\n' || c == '\r' || c == '\t' || c == '\b' ||
			   c == '\f') {
			esc[0] = '\\';
			esc[1] = c == '\n'   ? 'n'
				 : c == '\r' ? 'r'
				 : c == '\t' ? 't'
				 : c == '\b' ? 'b'
					     : 'f';
			elen = 2;
		} else if (c < 0x20 || c == 0x7F) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		} else if (c == 0xE2 && n - i >= 3 && s[i + 1] == 0x80 &&
			   (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
			/* U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR */
			memcpy(esc, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029",
			       6);
			elen = 6;
			skip = 3;
		} else if (c >= 0x80) {
			/* J2: a valid sequence is copied whole; a byte that
			 * starts none becomes U+FFFD. */
			skip = utf8_seq(s + i, n - i);
			if (skip == 0) {
				memcpy(esc, "\\ufffd", 6);
				elen = 6;
				skip = 1;
			} else {
				i += skip - 1;
				continue;
			}
		}
		if (elen == 0)
			continue;
		jbuf_add(b, s + run, i - run);
		jbuf_add(b, esc, elen);
		i += skip - 1;
		run = i + 1;
	}
	jbuf_add(b, s + run, n - run);
	jbuf_add(b, "\"", 1);
}

void
json_cstring(struct jbuf *b, const char *s)
{
	if (s == NULL)
		jbuf_adds(b, "null");
	else
		json_string(b, s, strlen(s));
}

size_t
base64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

void
base64_add(struct jbuf *b, const void *p, size_t n)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz"
				       "0123456789+/";
	const unsigned char *s = p;
	size_t i = 0;
	char q[4];

	while (n - i >= 3) {
		uint32_t v =
		    (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];

		q[0] = alphabet[v >> 18];
		q[1] = alphabet[(v >> 12) & 63];
		q[2] = alphabet[(v >> 6) & 63];
		q[3] = alphabet[v & 63];
		jbuf_add(b, q, 4);
		i += 3;
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;

		q[0] = alphabet[v >> 18];
		q[1] = alphabet[(v >> 12) & 63];
		q[2] = '=';
		q[3] = '=';
		jbuf_add(b, q, 4);
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;

		q[0] = alphabet[v >> 18];
		q[1] = alphabet[(v >> 12) & 63];
		q[2] = alphabet[(v >> 6) & 63];
		q[3] = '=';
		jbuf_add(b, q, 4);
	}
}
