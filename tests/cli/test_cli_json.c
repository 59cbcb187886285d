/* SPDX-License-Identifier: MIT */
/*
 * test_cli_json.c - the litebus tool's JSON string escaper, UTF-8
 * validator and base64 encoder (tools/cli/json.c), on their own.
 */
#include "json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *
escaped(const void *p, size_t n)
{
	struct jbuf b;
	char *s;

	jbuf_init(&b);
	json_string(&b, p, n);
	assert_false(b.failed);
	s = strdup(b.data);
	assert_non_null(s);
	jbuf_free(&b);
	return s;
}

/* "'\"', '\\' and every control character U+0000..U+001F escaped" */
static void
every_control_character_quote_and_backslash_is_escaped(void **state)
{
	(void)state;
	for (unsigned c = 0; c < 0x20; c++) {
		unsigned char in = (unsigned char)c;
		char *s = escaped(&in, 1);
		char want[16];

		switch (c) {
		case '\b':
			strcpy(want, "\"\\b\"");
			break;
		case '\t':
			strcpy(want, "\"\\t\"");
			break;
		case '\n':
			strcpy(want, "\"\\n\"");
			break;
		case '\f':
			strcpy(want, "\"\\f\"");
			break;
		case '\r':
			strcpy(want, "\"\\r\"");
			break;
		default:
			snprintf(want, sizeof want, "\"\\u%04x\"", c);
		}
		assert_string_equal(s, want);
		free(s);
	}
	char *s = escaped("a\"b\\c", 5);
	assert_string_equal(s, "\"a\\\"b\\\\c\"");
	free(s);
	s = escaped("", 0);
	assert_string_equal(s, "\"\"");
	free(s);
	s = escaped(NULL, 0); /* an empty payload comes back as NULL */
	assert_string_equal(s, "\"\"");
	free(s);
}

/* "U+007F and U+2028/U+2029 escaped too" ... "valid UTF-8 in gives valid
 * UTF-8 out, on a single line" (J2) */
static void
del_and_line_separators_are_escaped_other_utf8_is_kept(void **state)
{
	static const char in[] = "x\x7f"
				 "\xe2\x80\xa8"
				 "\xe2\x80\xa9"
				 "\xc3\xa9\xe6\xbc\xa2\xf0\x9f\x98\x80"
				 "\xe2\x80\xaa";
	char *s;

	(void)state;
	s = escaped(in, sizeof in - 1);
	assert_string_equal(s, "\"x\\u007f\\u2028\\u2029"
			       "\xc3\xa9\xe6\xbc\xa2\xf0\x9f\x98\x80"
			       "\xe2\x80\xaa\"");
	assert_true(utf8_valid(s, strlen(s)));
	free(s);
	/* A NUL inside the bytes is data, not the end. */
	s = escaped("a\0b", 3);
	assert_string_equal(s, "\"a\\u0000b\"");
	free(s);
	/* An E2 at the very end is not read past. */
	s = escaped("\xe2\x80", 2);
	assert_string_equal(s, "\"\\ufffd\\ufffd\"");
	free(s);
}

/* "Bytes that are not valid UTF-8 become U+FFFD (one per byte): the
 * output is always valid JSON" (J2) */
static void
invalid_utf8_becomes_replacement_characters(void **state)
{
	uint32_t x = 12345;
	unsigned char in[16];
	char *s;

	(void)state;
	s = escaped("a\xff" "b\xc0\x80\xed\xa0\x80\xc3\xa9", 10);
	assert_string_equal(s, "\"a\\ufffdb\\ufffd\\ufffd\\ufffd\\ufffd"
			       "\\ufffd\xc3\xa9\"");
	free(s);
	/* Random bytes: the output is valid UTF-8 without a raw control
	 * character, and valid input comes out with only escapes added. */
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(round % (int)sizeof in);

		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			in[i] = (unsigned char)(x >> 16);
			if (round % 3 == 0)
				in[i] &= 0x7F;
		}
		s = escaped(in, n);
		assert_true(utf8_valid(s, strlen(s)));
		for (const char *p = s; *p != '\0'; p++)
			assert_true((unsigned char)*p >= 0x20);
		free(s);
	}
}

/* "well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF)" */
static void
utf8_validation_follows_rfc_3629(void **state)
{
	static const struct {
		const char *s;
		size_t n;
		bool ok;
	} cases[] = {
	    {"", 0, true},
	    {"plain ascii", 11, true},
	    {"\0", 1, true},
	    {"\x7f", 1, true},
	    {"\xc2\x80", 2, true},	   /* U+0080 */
	    {"\xdf\xbf", 2, true},	   /* U+07FF */
	    {"\xe0\xa0\x80", 3, true},	   /* U+0800 */
	    {"\xed\x9f\xbf", 3, true},	   /* U+D7FF */
	    {"\xee\x80\x80", 3, true},	   /* U+E000 */
	    {"\xef\xbf\xbf", 3, true},	   /* U+FFFF */
	    {"\xf0\x90\x80\x80", 4, true}, /* U+10000 */
	    {"\xf4\x8f\xbf\xbf", 4, true}, /* U+10FFFF */
	    {"\x80", 1, false},		   /* lone continuation */
	    {"\xbf", 1, false},
	    {"\xc0\x80", 2, false},	    /* overlong NUL */
	    {"\xc1\xbf", 2, false},	    /* overlong */
	    {"\xe0\x9f\xbf", 3, false},	    /* overlong */
	    {"\xed\xa0\x80", 3, false},	    /* U+D800 surrogate */
	    {"\xed\xbf\xbf", 3, false},	    /* U+DFFF surrogate */
	    {"\xf0\x8f\xbf\xbf", 4, false}, /* overlong */
	    {"\xf4\x90\x80\x80", 4, false}, /* U+110000 */
	    {"\xf5\x80\x80\x80", 4, false},
	    {"\xff", 1, false},
	    {"\xfe", 1, false},
	    {"\xc3", 1, false},		/* truncated */
	    {"\xe6\xbc", 2, false},	/* truncated */
	    {"\xf0\x9f\x98", 3, false}, /* truncated */
	    {"\xc3\x28", 2, false},	/* bad continuation */
	    {"\xe2\x28\xa1", 3, false},
	    {"\xe2\x82\x28", 3, false},
	    {"\xf0\x28\x8c\xbc", 4, false},
	    {"\xf0\x90\x28\xbc", 4, false},
	    {"\xf0\x90\x8c\x28", 4, false},
	    {"ok\xc3\xa9then\xff", 9, false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (utf8_valid(cases[i].s, cases[i].n) != cases[i].ok)
			fail_msg("case %zu: expected %s", i,
				 cases[i].ok ? "valid" : "invalid");
	}
}

/* Every code point, encoded by the test itself, is valid; every
 * surrogate is not. */
static void
every_scalar_value_is_valid_utf8_and_no_surrogate_is(void **state)
{
	(void)state;
	for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
		unsigned char b[4];
		size_t n;

		if (cp < 0x80) {
			b[0] = (unsigned char)cp;
			n = 1;
		} else if (cp < 0x800) {
			b[0] = (unsigned char)(0xC0 | cp >> 6);
			b[1] = (unsigned char)(0x80 | (cp & 63));
			n = 2;
		} else if (cp < 0x10000) {
			b[0] = (unsigned char)(0xE0 | cp >> 12);
			b[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
			b[2] = (unsigned char)(0x80 | (cp & 63));
			n = 3;
		} else {
			b[0] = (unsigned char)(0xF0 | cp >> 18);
			b[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
			b[2] = (unsigned char)(0x80 | ((cp >> 6) & 63));
			b[3] = (unsigned char)(0x80 | (cp & 63));
			n = 4;
		}
		bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
		if (utf8_valid(b, n) == surrogate)
			fail_msg("U+%04X: utf8_valid says %d", (unsigned)cp,
				 !surrogate ? 0 : 1);
	}
}

/* Decode for the round trip: the test's own, independent of json.c. */
static size_t
b64_decode(const char *s, unsigned char *out)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
	    "vwxyz0123456789+/";
	size_t n = 0, len = strlen(s);

	assert_int_equal(len % 4, 0);
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v = 0;
		int pad = 0;

		for (size_t k = 0; k < 4; k++) {
			const char *p;

			if (s[i + k] == '=') {
				pad++;
				v <<= 6;
				continue;
			}
			assert_int_equal(pad, 0); /* '=' only at the end */
			p = strchr(a, s[i + k]);
			assert_non_null(p);
			v = v << 6 | (uint32_t)(p - a);
		}
		out[n++] = (unsigned char)(v >> 16);
		if (pad < 2)
			out[n++] = (unsigned char)(v >> 8);
		if (pad < 1)
			out[n++] = (unsigned char)v;
	}
	return n;
}

/* "base64_add() writes exactly base64_len(n) bytes from the RFC 4648
 * alphabet, padded with '='" (J3): the RFC's test vectors, and a round
 * trip of every length up to 300 over every byte value. */
static void
base64_matches_rfc_4648_and_round_trips(void **state)
{
	static const char *const vec[][2] = {
	    {"", ""},
	    {"f", "Zg=="},
	    {"fo", "Zm8="},
	    {"foo", "Zm9v"},
	    {"foob", "Zm9vYg=="},
	    {"fooba", "Zm9vYmE="},
	    {"foobar", "Zm9vYmFy"},
	};
	unsigned char in[300], out[300];
	struct jbuf b;

	(void)state;
	jbuf_init(&b);
	for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
		jbuf_reset(&b);
		base64_add(&b, vec[i][0], strlen(vec[i][0]));
		assert_false(b.failed);
		assert_string_equal(b.len ? b.data : "", vec[i][1]);
	}
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)(i * 7 + 255 - i / 3);
	for (size_t n = 0; n <= sizeof in; n++) {
		jbuf_reset(&b);
		base64_add(&b, in, n);
		assert_int_equal(b.len, base64_len(n));
		assert_int_equal(b64_decode(b.len ? b.data : "", out), n);
		assert_memory_equal(out, in, n);
	}
	jbuf_free(&b);
}

/* "A growable byte buffer; always NUL-terminated once anything was
 * added" (J1) */
static void
the_buffer_grows_and_stays_terminated(void **state)
{
	struct jbuf b;

	(void)state;
	jbuf_init(&b);
	for (int i = 0; i < 10000; i++)
		jbuf_addf(&b, "%d,", i % 10);
	assert_false(b.failed);
	assert_int_equal(b.len, 20000);
	assert_int_equal(strlen(b.data), 20000);
	assert_true(b.len < b.cap);
	jbuf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	json_cstring(&b, NULL);
	assert_string_equal(b.data, "null");
	jbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		every_control_character_quote_and_backslash_is_escaped),
	    cmocka_unit_test(
		del_and_line_separators_are_escaped_other_utf8_is_kept),
	    cmocka_unit_test(invalid_utf8_becomes_replacement_characters),
	    cmocka_unit_test(utf8_validation_follows_rfc_3629),
	    cmocka_unit_test(
		every_scalar_value_is_valid_utf8_and_no_surrogate_is),
	    cmocka_unit_test(base64_matches_rfc_4648_and_round_trips),
	    cmocka_unit_test(the_buffer_grows_and_stays_terminated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
