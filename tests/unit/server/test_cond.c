/*
 * Unit tests of src/server/cond.c: ETag, HTTP-date formatting and parsing (RFC 9110 5.6.7)
 * and the precondition evaluation of RFC 9110 13.2.2, one test per branch and per
 * precedence rule.
 */
#include "server/cond.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#define T1994 784111777 /* Sun, 06 Nov 1994 08:49:37 GMT */
#define NOW2026 1780000000 /* some time in 2026 */

/* ---- ETag ---- */

static void test_etag_format(void **state)
{
	struct stat st = { 0 };
	char buf[PT_ETAG_MAX];

	st.st_ino = 0x1234;
	st.st_size = 0;
	st.st_mtim.tv_sec = 1;
	st.st_mtim.tv_nsec = 5;
	assert_int_equal(pt_cond_etag(buf, &st), 17);
	assert_string_equal(buf, "\"1234-0-3b9aca05\"");
	st.st_ino = UINT64_MAX;
	st.st_size = INT64_MAX;
	st.st_mtim.tv_sec = INT64_MAX / 1000000000;
	st.st_mtim.tv_nsec = 999999999;
	assert_true(pt_cond_etag(buf, &st) <= 52);
	assert_int_equal(strlen(buf), pt_cond_etag(buf, &st));
	/* any change of inode, size or mtime (even in nanoseconds) changes the tag */
	{
		char a[PT_ETAG_MAX], b[PT_ETAG_MAX];

		memset(&st, 0, sizeof(st));
		st.st_ino = 7;
		st.st_size = 100;
		st.st_mtim.tv_sec = 1700000000;
		pt_cond_etag(a, &st);
		st.st_mtim.tv_nsec = 1;
		pt_cond_etag(b, &st);
		assert_string_not_equal(a, b);
		st.st_mtim.tv_nsec = 0;
		st.st_size = 101;
		pt_cond_etag(b, &st);
		assert_string_not_equal(a, b);
		st.st_size = 100;
		st.st_ino = 8;
		pt_cond_etag(b, &st);
		assert_string_not_equal(a, b);
	}
}

/* ---- dates ---- */

static void test_date_format(void **state)
{
	char buf[PT_HTTP_DATE_LEN + 1];

	assert_int_equal(pt_cond_date_format(buf, 0), PT_HTTP_DATE_LEN);
	assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
	pt_cond_date_format(buf, T1994);
	assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
	pt_cond_date_format(buf, 951782400); /* leap day */
	assert_string_equal(buf, "Tue, 29 Feb 2000 00:00:00 GMT");
	pt_cond_date_format(buf, -1);
	assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
	pt_cond_date_format(buf, (time_t)INT64_MAX);
	assert_string_equal(buf, "Fri, 31 Dec 9999 23:59:59 GMT");
}

/* Compare with the C library over many times, and parse back. */
static void test_date_roundtrip(void **state)
{
	uint64_t x = 88172645463325252ull;

	for (int i = 0; i < 200000; i++) {
		char a[PT_HTTP_DATE_LEN + 1], b[64];
		struct tm tm;
		time_t t, back;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		t = (time_t)(x % (uint64_t)DATE_MAX);
		if (i < 1000)
			t = (time_t)i * 86399 * 13; /* near the epoch, every weekday and month */
		pt_cond_date_format(a, t);
		gmtime_r(&t, &tm);
		strftime(b, sizeof(b), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		if (strcmp(a, b) != 0)
			fail_msg("%lld: %s != %s", (long long)t, a, b);
		assert_int_equal(pt_cond_date_parse(a, PT_HTTP_DATE_LEN, NOW2026, &back), 0);
		assert_true(back == t);
		/* asctime form of the same instant */
		strftime(b, sizeof(b), "%a %b %e %H:%M:%S %Y", &tm);
		assert_int_equal(pt_cond_date_parse(b, strlen(b), NOW2026, &back), 0);
		assert_true(back == t);
	}
}

static int parse(const char *s, time_t *t)
{
	return pt_cond_date_parse(s, strlen(s), NOW2026, t);
}

static void test_date_parse_formats(void **state)
{
	time_t t = 0;

	assert_int_equal(parse("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
	assert_true(t == T1994);
	t = 0;
	assert_int_equal(parse("Sunday, 06-Nov-94 08:49:37 GMT", &t), 0);
	assert_true(t == T1994);
	t = 0;
	assert_int_equal(parse("Sun Nov  6 08:49:37 1994", &t), 0);
	assert_true(t == T1994);
	t = 0;
	assert_int_equal(parse("Sun Nov 06 08:49:37 1994", &t), 0);
	assert_true(t == T1994);
	/* every long day name */
	assert_int_equal(parse("Monday, 06-Nov-94 08:49:37 GMT", &t), 0);
	assert_int_equal(parse("Tuesday, 06-Nov-94 08:49:37 GMT", &t), 0);
	assert_int_equal(parse("Wednesday, 06-Nov-94 08:49:37 GMT", &t), 0);
	assert_int_equal(parse("Thursday, 06-Nov-94 08:49:37 GMT", &t), 0);
	assert_int_equal(parse("Friday, 06-Nov-94 08:49:37 GMT", &t), 0);
	assert_int_equal(parse("Saturday, 06-Nov-94 08:49:37 GMT", &t), 0);
	/* leap second and leap days */
	assert_int_equal(parse("Wed, 31 Dec 2008 23:59:60 GMT", &t), 0);
	assert_true(t == 1230768000);
	assert_int_equal(parse("Tue, 29 Feb 2000 00:00:00 GMT", &t), 0);
	assert_int_equal(parse("Thu, 29 Feb 2024 00:00:00 GMT", &t), 0);
	/* before the epoch is a valid date */
	assert_int_equal(parse("Mon, 01 Jan 1900 00:00:00 GMT", &t), 0);
	assert_true(t == -2208988800LL);
}

static void test_date_rfc850_century(void **state)
{
	time_t t;

	/* now is 2026: up to 2076 is this century, later is the previous one */
	assert_int_equal(parse("Friday, 01-Jan-27 00:00:00 GMT", &t), 0);
	assert_true(t == 1798761600);
	assert_int_equal(parse("Thursday, 01-Jan-76 00:00:00 GMT", &t), 0);
	assert_true(t == 3345062400LL); /* 2076 */
	assert_int_equal(parse("Thursday, 01-Jan-77 00:00:00 GMT", &t), 0);
	assert_true(t == 220924800);    /* 1977 */
	assert_int_equal(parse("Thursday, 01-Jan-70 00:00:00 GMT", &t), 0);
	assert_true(t == 3155760000LL); /* 2070 */
	/* in 1994, "94" is 1994 and "99" 1999 */
	assert_int_equal(pt_cond_date_parse("Friday, 01-Jan-99 00:00:00 GMT", 30, T1994, &t), 0);
	assert_true(t == 915148800);
}

static void test_date_parse_invalid(void **state)
{
	static const char *bad[] = {
		"",
		"Sun",
		"Sun, 06 Nov 1994 08:49:37 gmt",      /* case-sensitive */
		"Sun, 06 Nov 1994 08:49:37 UTC",
		"sun, 06 Nov 1994 08:49:37 GMT",
		"Sun, 06 nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 08:49:37 GMT ",     /* trailing space */
		" Sun, 06 Nov 1994 08:49:37 GMT",
		"Sun, 6 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 94 08:49:37 GMT",
		"Sun, 06 Nov 1994 8:49:37 GMT",
		"Sun, 06 Nov 1994 08:49 GMT",
		"Sun, 06 Nov 1994 24:00:00 GMT",
		"Sun, 06 Nov 1994 23:60:00 GMT",
		"Sun, 06 Nov 1994 23:59:61 GMT",
		"Sun, 00 Nov 1994 08:49:37 GMT",
		"Sun, 31 Nov 1994 08:49:37 GMT",
		"Sun, 32 Dec 1994 08:49:37 GMT",
		"Sun, 29 Feb 1900 08:49:37 GMT",      /* not a leap year */
		"Sun, 29 Feb 2023 08:49:37 GMT",
		"Xyz, 06 Nov 1994 08:49:37 GMT",
		"Sun, 06 Xyz 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT", /* a list */
		"Sun, 06 Nov 1994 08:49:37 +0000",
		"Sun, 06-Nov-1994 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 gmt",
		"Sunday, 06-Nov-1994 08:49:37 GMT",
		"Sun, 06-Nov-94 08:49:37 GMT",        /* short name in RFC 850 form */
		"Sundays, 06-Nov-94 08:49:37 GMT",
		"Sunday 06-Nov-94 08:49:37 GMT",
		"Sunday, 6-Nov-94 08:49:37 GMT",
		"Sunday, 06-Nov-9x 08:49:37 GMT",
		"Sun Nov  6 08:49:37 94",
		"Sun Nov 6 08:49:37 1994",
		"Sun Nov  0 08:49:37 1994",
		"Sun Nov  6 08:49:37 1994 ",
		"Sun Nov x6 08:49:37 1994",
		"1994-11-06T08:49:37Z",
		"784111777",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		time_t t;

		if (parse(bad[i], &t) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

/* ---- preconditions ---- */

#define ETAG "\"abc-1-2\""
#define MTIME T1994
#define D_EQ "Sun, 06 Nov 1994 08:49:37 GMT"
#define D_AFTER "Sun, 06 Nov 1994 08:49:38 GMT"
#define D_BEFORE "Sun, 06 Nov 1994 08:49:36 GMT"

static const struct pt_cond_res g_res = { ETAG, sizeof(ETAG) - 1, MTIME };

static struct pt_cond_field F(const char *s)
{
	return (struct pt_cond_field){ s, s ? strlen(s) : 0 };
}

struct req {
	const char *im, *inm, *ims, *ius, *ir;
	bool range;
	int method;
};

static int eval_res(struct req q, const struct pt_cond_res *rs, bool *use_range)
{
	struct pt_cond_req rq = {
		.if_match = F(q.im), .if_none_match = F(q.inm), .if_modified_since = F(q.ims),
		.if_unmodified_since = F(q.ius), .if_range = F(q.ir), .has_range = q.range,
		.method = (uint8_t)q.method, .now = NOW2026,
	};
	return pt_cond_evaluate(&rq, rs, use_range);
}

static int eval(struct req q)
{
	bool ur;

	return eval_res(q, &g_res, &ur);
}

static bool range_of(struct req q)
{
	bool ur = true;
	int r = eval(q);

	assert_int_equal(r, 0);
	assert_int_equal(eval_res(q, &g_res, &ur), 0);
	return ur;
}

static void test_no_conditions(void **state)
{
	bool ur = true;

	assert_int_equal(eval_res((struct req){ 0 }, &g_res, &ur), 0);
	assert_false(ur);
	assert_true(range_of((struct req){ .range = true }));
	assert_false(range_of((struct req){ .range = true, .method = PT_COND_HEAD }));
	assert_false(range_of((struct req){ .range = true, .method = PT_COND_OTHER }));
}

static void test_if_match(void **state)
{
	assert_int_equal(eval((struct req){ .im = ETAG }), 0);
	assert_int_equal(eval((struct req){ .im = "\"other\"" }), 412);
	assert_int_equal(eval((struct req){ .im = "*" }), 0);
	assert_int_equal(eval((struct req){ .im = "  *  " }), 0);
	assert_int_equal(eval((struct req){ .im = "W/" ETAG }), 412);   /* strong comparison */
	assert_int_equal(eval((struct req){ .im = "\"x\", " ETAG }), 0);
	assert_int_equal(eval((struct req){ .im = " \"x\" ,\t" ETAG " " }), 0);
	assert_int_equal(eval((struct req){ .im = ", ,, " ETAG ",," }), 0); /* empty elements */
	assert_int_equal(eval((struct req){ .im = "\"a,b\", " ETAG }), 0); /* comma in a tag */
	assert_int_equal(eval((struct req){ .im = "junk, " ETAG }), 0);    /* bad element skipped */
	assert_int_equal(eval((struct req){ .im = "\"x\" junk, " ETAG }), 0);
	assert_int_equal(eval((struct req){ .im = "\"abc-1-2" }), 412);    /* unterminated */
	assert_int_equal(eval((struct req){ .im = "abc-1-2" }), 412);      /* unquoted */
	assert_int_equal(eval((struct req){ .im = "\"abc-1-2\"x" }), 412);
	assert_int_equal(eval((struct req){ .im = "w/" ETAG }), 412);      /* W/ is case-sensitive */
	assert_int_equal(eval((struct req){ .im = "\"abc 1-2\"" }), 412);
	assert_int_equal(eval((struct req){ .im = "" }), 412);             /* present but empty */
	assert_int_equal(eval((struct req){ .im = "*, " ETAG }), 0);       /* not "*": a list */
	assert_int_equal(eval((struct req){ .im = "*, \"x\"" }), 412);
	/* the same for other methods */
	assert_int_equal(eval((struct req){ .im = "\"x\"", .method = PT_COND_OTHER }), 412);
	assert_int_equal(eval((struct req){ .im = ETAG, .method = PT_COND_OTHER }), 0);
}

static void test_if_unmodified_since(void **state)
{
	assert_int_equal(eval((struct req){ .ius = D_EQ }), 0);
	assert_int_equal(eval((struct req){ .ius = D_AFTER }), 0);
	assert_int_equal(eval((struct req){ .ius = D_BEFORE }), 412);
	assert_int_equal(eval((struct req){ .ius = "garbage" }), 0);          /* ignored */
	assert_int_equal(eval((struct req){ .ius = D_BEFORE ", " D_AFTER }), 0); /* a list: ignored */
	assert_int_equal(eval((struct req){ .ius = " " D_BEFORE " " }), 412); /* OWS trimmed */
	assert_int_equal(eval((struct req){ .ius = "Sunday, 06-Nov-94 08:49:36 GMT" }), 412);
	assert_int_equal(eval((struct req){ .ius = "Sun Nov  6 08:49:36 1994" }), 412);
	/* ignored when If-Match is present (13.1.4) */
	assert_int_equal(eval((struct req){ .im = ETAG, .ius = D_BEFORE }), 0);
	assert_int_equal(eval((struct req){ .im = "\"x\"", .ius = D_AFTER }), 412);
	assert_int_equal(eval((struct req){ .ius = D_BEFORE, .method = PT_COND_OTHER }), 412);
}

static void test_if_none_match(void **state)
{
	assert_int_equal(eval((struct req){ .inm = ETAG }), 304);
	assert_int_equal(eval((struct req){ .inm = ETAG, .method = PT_COND_HEAD }), 304);
	assert_int_equal(eval((struct req){ .inm = ETAG, .method = PT_COND_OTHER }), 412);
	assert_int_equal(eval((struct req){ .inm = "W/" ETAG }), 304);     /* weak comparison */
	assert_int_equal(eval((struct req){ .inm = "*" }), 304);
	assert_int_equal(eval((struct req){ .inm = "*", .method = PT_COND_OTHER }), 412);
	assert_int_equal(eval((struct req){ .inm = "\"x\"" }), 0);
	assert_int_equal(eval((struct req){ .inm = "\"x\", W/\"y\", " ETAG }), 304);
	assert_int_equal(eval((struct req){ .inm = "\"x\", W/\"y\"" }), 0);
	assert_int_equal(eval((struct req){ .inm = "" }), 0);
	assert_int_equal(eval((struct req){ .inm = "W/", }), 0);
	assert_int_equal(eval((struct req){ .inm = "\"" }), 0);
}

static void test_if_modified_since(void **state)
{
	assert_int_equal(eval((struct req){ .ims = D_EQ }), 304);
	assert_int_equal(eval((struct req){ .ims = D_AFTER }), 304);
	assert_int_equal(eval((struct req){ .ims = D_BEFORE }), 0);
	assert_int_equal(eval((struct req){ .ims = D_EQ, .method = PT_COND_HEAD }), 304);
	assert_int_equal(eval((struct req){ .ims = D_EQ, .method = PT_COND_OTHER }), 0); /* ignored */
	assert_int_equal(eval((struct req){ .ims = "not a date" }), 0);
	assert_int_equal(eval((struct req){ .ims = D_EQ ", " D_EQ }), 0);
	assert_int_equal(eval((struct req){ .ims = "Sunday, 06-Nov-94 08:49:37 GMT" }), 304);
	assert_int_equal(eval((struct req){ .ims = "Sun Nov  6 08:49:37 1994" }), 304);
	/* ignored when If-None-Match is present (13.1.3), whether it matches or not */
	assert_int_equal(eval((struct req){ .inm = "\"x\"", .ims = D_AFTER }), 0);
	assert_int_equal(eval((struct req){ .inm = ETAG, .ims = D_BEFORE }), 304);
}

static void test_precedence(void **state)
{
	/* If-Match is decided before If-None-Match: 412 wins over 304 */
	assert_int_equal(eval((struct req){ .im = "\"x\"", .inm = ETAG }), 412);
	assert_int_equal(eval((struct req){ .ius = D_BEFORE, .inm = ETAG }), 412);
	assert_int_equal(eval((struct req){ .ius = D_BEFORE, .ims = D_AFTER }), 412);
	/* If-Match passes, then If-None-Match decides */
	assert_int_equal(eval((struct req){ .im = ETAG, .inm = ETAG }), 304);
	assert_int_equal(eval((struct req){ .im = "*", .inm = "\"x\"" }), 0);
	assert_int_equal(eval((struct req){ .ius = D_AFTER, .ims = D_EQ }), 304);
	/* all five, all passing, with a range */
	assert_true(range_of((struct req){ .im = ETAG, .ius = D_AFTER, .inm = "\"x\"",
					   .ims = D_BEFORE, .ir = ETAG, .range = true }));
	/* 304 beats If-Range */
	assert_int_equal(eval((struct req){ .inm = ETAG, .ir = ETAG, .range = true }), 304);
}

static void test_if_range(void **state)
{
	assert_true(range_of((struct req){ .ir = ETAG, .range = true }));
	assert_true(range_of((struct req){ .ir = " " ETAG " ", .range = true }));
	assert_false(range_of((struct req){ .ir = "\"x\"", .range = true }));
	assert_false(range_of((struct req){ .ir = "W/" ETAG, .range = true })); /* weak never */
	assert_false(range_of((struct req){ .ir = ETAG ", " ETAG, .range = true }));
	assert_true(range_of((struct req){ .ir = D_EQ, .range = true }));
	assert_false(range_of((struct req){ .ir = D_AFTER, .range = true }));   /* exact only */
	assert_false(range_of((struct req){ .ir = D_BEFORE, .range = true }));
	assert_true(range_of((struct req){ .ir = "Sun Nov  6 08:49:37 1994", .range = true }));
	assert_false(range_of((struct req){ .ir = "garbage", .range = true }));
	assert_false(range_of((struct req){ .ir = "", .range = true }));
	/* a date starting with 'W' is a date, not a weak tag */
	{
		static const struct pt_cond_res wed = { ETAG, sizeof(ETAG) - 1, 1623233894 };
		struct req q = { .ir = "Wed, 09 Jun 2021 10:18:14 GMT", .range = true };
		bool ur = false;

		assert_int_equal(eval_res(q, &wed, &ur), 0);
		assert_true(ur);
	}
	/* If-Range without Range, or on HEAD: no range */
	assert_false(range_of((struct req){ .ir = ETAG }));
	assert_false(range_of((struct req){ .ir = ETAG, .range = true, .method = PT_COND_HEAD }));
}

static void test_resource_without_etag(void **state)
{
	static const struct pt_cond_res none = { NULL, 0, MTIME };
	bool ur;

	assert_int_equal(eval_res((struct req){ .im = ETAG }, &none, &ur), 412);
	assert_int_equal(eval_res((struct req){ .im = "*" }, &none, &ur), 0);
	assert_int_equal(eval_res((struct req){ .inm = ETAG }, &none, &ur), 0);
	assert_int_equal(eval_res((struct req){ .inm = "*" }, &none, &ur), 304);
	assert_int_equal(eval_res((struct req){ .ir = ETAG, .range = true }, &none, &ur), 0);
	assert_false(ur);
	assert_int_equal(eval_res((struct req){ .ir = D_EQ, .range = true }, &none, &ur), 0);
	assert_true(ur);
}

static void test_weak_resource_etag(void **state)
{
	static const struct pt_cond_res weak = { "W/\"w\"", 5, MTIME };
	bool ur;

	assert_int_equal(eval_res((struct req){ .im = "W/\"w\"" }, &weak, &ur), 412);
	assert_int_equal(eval_res((struct req){ .im = "\"w\"" }, &weak, &ur), 412);
	assert_int_equal(eval_res((struct req){ .inm = "\"w\"" }, &weak, &ur), 304);
	assert_int_equal(eval_res((struct req){ .inm = "W/\"w\"" }, &weak, &ur), 304);
}

static void test_now_default(void **state)
{
	struct pt_cond_req rq = { .if_modified_since = F("Sunday, 06-Nov-94 08:49:37 GMT") };
	bool ur;

	/* now == 0 uses the clock: "94" is 1994 until 2044 */
	assert_int_equal(pt_cond_evaluate(&rq, &g_res, &ur), 304);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_etag_format),
		cmocka_unit_test(test_date_format),
		cmocka_unit_test(test_date_roundtrip),
		cmocka_unit_test(test_date_parse_formats),
		cmocka_unit_test(test_date_rfc850_century),
		cmocka_unit_test(test_date_parse_invalid),
		cmocka_unit_test(test_no_conditions),
		cmocka_unit_test(test_if_match),
		cmocka_unit_test(test_if_unmodified_since),
		cmocka_unit_test(test_if_none_match),
		cmocka_unit_test(test_if_modified_since),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_if_range),
		cmocka_unit_test(test_resource_without_etag),
		cmocka_unit_test(test_weak_resource_etag),
		cmocka_unit_test(test_now_default),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
