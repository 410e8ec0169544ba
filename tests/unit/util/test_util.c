/*
 * src/util: the shared helpers (util.h) against their definitions, and the defaults
 * (defaults.h) as the HTTP layer, the parser and the portico program read them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "util/defaults.h"
#include "util/util.h"
#include <portico/http.h>
#include "http/parse.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* RFC 9110 5.6.2, spelled out. */
static bool tchar_ref(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void test_tchar(void **state)
{
	for (int c = 0; c < 256; c++)
		if (pt__is_tchar((unsigned char)c) != tchar_ref(c))
			fail_msg("byte %d: %d", c, pt__is_tchar((unsigned char)c));
}

static void test_ows(void **state)
{
	const char s[] = " \t a b\t \t";
	const char *p = s, *end = s + strlen(s);

	for (int c = 0; c < 256; c++)
		assert_int_equal(pt__is_ows((char)c), c == ' ' || c == '\t');
	assert_ptr_equal(pt__skip_ows(p, end), s + 3);
	assert_ptr_equal(pt__skip_ows(end, end), end);
	pt__trim_ows(&p, &end);
	assert_int_equal(end - p, 3);
	assert_memory_equal(p, "a b", 3);
	p = end = s + 2;                     /* empty, and all OWS */
	pt__trim_ows(&p, &end);
	assert_ptr_equal(p, end);
	p = s;
	end = s + 2;
	pt__trim_ows(&p, &end);
	assert_ptr_equal(p, end);
}

static void test_hex(void **state)
{
	for (int c = 0; c < 256; c++) {
		const char *d = strchr("0123456789abcdef", c | (c >= 'A' && c <= 'F' ? 0x20 : 0));
		int want = c && d ? (int)(d - "0123456789abcdef") : -1;
		assert_int_equal(pt__hexval((unsigned char)c), want);
	}
}

static void test_format(void **state)
{
	static const uint64_t v[] = { 0, 1, 9, 10, 99, 100, 12345678901234567ull, UINT64_MAX };
	char buf[32], want[32];

	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		size_t n = pt__fmt_u64(buf, v[i]);
		assert_true(n <= PT_U64_DEC_MAX);
		snprintf(want, sizeof want, "%" PRIu64, v[i]);
		assert_int_equal(n, strlen(want));
		assert_memory_equal(buf, want, n);
		n = pt__fmt_hex64(buf, v[i]);
		assert_true(n <= PT_U64_HEX_MAX);
		snprintf(want, sizeof want, "%" PRIx64, v[i]);
		assert_int_equal(n, strlen(want));
		assert_memory_equal(buf, want, n);
	}
}

static void test_clock(void **state)
{
	uint64_t ms = pt__now_ms(), us = pt__now_us(), co = pt__now_coarse_ms();

	assert_true(us / 1000 >= ms);
	assert_true(co <= ms + 1 && co + 100 >= ms);   /* a coarse tick is a few ms at most */
	usleep(20000);
	assert_true(pt__now_ms() >= ms + 19);
	assert_true(pt__now_us() >= us + 19000);
}

/* The HTTP layer's zeros and the parser's limits are the shared defaults. */
static void test_defaults(void **state)
{
	struct pt_parse_limits l;

	assert_int_equal(PT_DEFAULT_TIMEOUT_MS, 120000);
	assert_int_equal(PT_DEFAULT_MAX_HEAD, 16384);
	assert_int_equal(PT_DEFAULT_MAX_TARGET, 8192);
	assert_string_equal(PT_DEFAULT_STR(PT_DEFAULT_TIMEOUT_SEC), "120");
	pt_parse_limits_default(&l);
	assert_int_equal(l.max_head, PT_DEFAULT_MAX_HEAD);
	assert_int_equal(l.max_target, PT_DEFAULT_MAX_TARGET);
	assert_int_equal(l.max_field, PT_DEFAULT_MAX_FIELD);
	assert_int_equal(l.max_headers, PT_DEFAULT_MAX_HEADERS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tchar),  cmocka_unit_test(test_ows),
		cmocka_unit_test(test_hex),    cmocka_unit_test(test_format),
		cmocka_unit_test(test_clock),  cmocka_unit_test(test_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
