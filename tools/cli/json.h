/* SPDX-License-Identifier: MIT */
/*
 * json.h - the litebus tool's output buffer, JSON string escaping, UTF-8
 * validation and base64.  No part of litebus: plain functions of bytes,
 * unit-tested on their own (tests/cli/test_cli_json.c).
 */
#ifndef LITEBUS_CLI_JSON_H
#define LITEBUS_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer; always NUL-terminated once anything was added.
 * After an allocation failure `failed` is set and further appends do
 * nothing, so a caller checks once, at the end. */
struct jbuf {
	char *data;
	size_t len, cap;
	bool failed;
};

void jbuf_init(struct jbuf *b);
void jbuf_free(struct jbuf *b);
/* Forget the contents, keep the memory. */
void jbuf_reset(struct jbuf *b);
void jbuf_add(struct jbuf *b, const void *p, size_t n);
void jbuf_adds(struct jbuf *b, const char *s);
void jbuf_addf(struct jbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* True if p[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF).  NUL bytes are valid UTF-8. */
bool utf8_valid(const void *p, size_t n);

/* Append p[0..n) as a JSON string with its quotes (RFC 8259): '"', '\\'
 * and every control character U+0000..U+001F escaped, U+007F and
 * U+2028/U+2029 escaped too so the output is safe in a line-oriented pipe
 * and in JavaScript.  Bytes that are not valid UTF-8 become U+FFFD (one
 * per byte): the output is always valid JSON, but such input is not kept
 * byte for byte - check utf8_valid() first where that matters. */
void json_string(struct jbuf *b, const void *p, size_t n);
/* The same for a NUL-terminated string; NULL gives the literal null. */
void json_cstring(struct jbuf *b, const char *s);

/* Length of the base64 text (RFC 4648, with '=' padding) for n bytes. */
size_t base64_len(size_t n);
/* Append the base64 text of p[0..n) (no quotes, no line breaks). */
void base64_add(struct jbuf *b, const void *p, size_t n);

#endif
