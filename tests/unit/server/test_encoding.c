/*
 * Unit tests of src/server/encoding.c: Accept-Encoding parsing (RFC 9110 12.5.3) and the
 * choice among precompressed variants (q-values, "*", identity, q=0 exclusions, ties).
 */
#include "server/encoding.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

enum { ID = PT_ENC_IDENTITY, BR = PT_ENC_BR, ZS = PT_ENC_ZSTD, GZ = PT_ENC_GZIP,
       ALL = PT_ENC_ALL };

struct ecase {
	const char *ae;
	unsigned avail;
	unsigned want;
};

static void run(const struct ecase *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(c[i].ae);
		char *copy = malloc(len ? len : 1); /* exact length: ASan sees overreads */
		unsigned got;

		memcpy(copy, c[i].ae, len);
		got = pt_enc_choose(copy, len, c[i].avail);
		free(copy);
		if (got != c[i].want)
			fail_msg("\"%s\" avail %u: got %u, want %u", c[i].ae, c[i].avail, got,
				 c[i].want);
	}
}

#define RUN(t) run(t, sizeof(t) / sizeof((t)[0]))

static void test_absent_and_empty(void **state)
{
	static const struct ecase t[] = {
		{ "", ALL, ID },
		{ " ", ALL, ID },
		{ ",", ALL, ID },
		{ "gzip", 0, ID },
	};
	RUN(t);
	assert_int_equal(pt_enc_choose(NULL, 0, ALL), ID);
}

static void test_browsers(void **state)
{
	static const struct ecase t[] = {
		{ "gzip, deflate, br, zstd", ALL, BR },   /* Chrome */
		{ "gzip, deflate, br", ALL, BR },         /* Firefox, Safari */
		{ "gzip, deflate, br, zstd", ZS | GZ, ZS },
		{ "gzip, deflate, br, zstd", GZ, GZ },
		{ "gzip, deflate", ALL, GZ },
		{ "gzip, deflate", BR | ZS, ID },
		{ "deflate, compress", ALL, ID },
		{ "identity", ALL, ID },
	};
	RUN(t);
}

static void test_qvalues(void **state)
{
	static const struct ecase t[] = {
		{ "br;q=0.5, gzip", ALL, GZ },
		{ "br;q=0.5, gzip;q=0.4", ALL, BR },
		{ "gzip;q=0.9, br;q=0.8", ALL, GZ },
		{ "br;q=1.0, gzip;q=0.999", ALL, BR },
		{ "br;q=1., gzip;q=0.999", ALL, BR },
		{ "br;q=1.000", ALL, BR },
		{ "br;q=0.001", ALL, BR },
		{ "br;q=0", ALL, ID },
		{ "br;q=0.0", ALL, ID },
		{ "br;q=0.000", ALL, ID },
		{ "br;Q=0.5", ALL, BR },                 /* "q=" is case-insensitive */
		{ "br ; q=0.5", ALL, BR },               /* OWS around ';' */
		{ "br\t;\tq=0.5", ALL, BR },
		{ "gzip;q=0.8, br;q=0.8, zstd;q=0.8", ALL, BR }, /* ties: br > zstd > gzip */
		{ "gzip;q=0.8, zstd;q=0.8", ALL, ZS },
		{ "gzip, zstd", GZ | ZS, ZS },
	};
	RUN(t);
}

static void test_invalid_elements(void **state)
{
	static const struct ecase t[] = {
		{ "br;q=1.001", ALL, ID },
		{ "br;q=1.5", ALL, ID },
		{ "br;q=2", ALL, ID },
		{ "br;q=-1", ALL, ID },
		{ "br;q=.5", ALL, ID },
		{ "br;q=0.0001", ALL, ID },
		{ "br;q= 0.5", ALL, ID },
		{ "br;q =0.5", ALL, ID },
		{ "br;q", ALL, ID },
		{ "br;q=", ALL, ID },
		{ "br;", ALL, ID },
		{ "br;level=5", ALL, ID },
		{ "br;q=0.5;x=1", ALL, ID },
		{ "br;q=0.5x", ALL, ID },
		{ "br x", ALL, ID },
		{ "br/x", ALL, ID },
		{ "\"br\"", ALL, ID },
		{ ";q=1", ALL, ID },
		/* an invalid element does not spoil the others */
		{ "br;q=1.001, gzip", ALL, GZ },
		{ "br/x, gzip", ALL, GZ },
		{ "\"br\", gzip;q=0.5", ALL, GZ },
		{ "br;q=0.5;x=1, zstd", ALL, ZS },
		{ "garbage;;;,, gzip ,", ALL, GZ },
	};
	RUN(t);
}

static void test_case_and_whitespace(void **state)
{
	static const struct ecase t[] = {
		{ "GZIP", ALL, GZ },
		{ "Br", ALL, BR },
		{ "ZSTD", ALL, ZS },
		{ "x-gzip", ALL, GZ },
		{ "X-GZip;q=0.3", ALL, GZ },
		{ "  br  ,  gzip  ", ALL, BR },
		{ "\tgzip\t", ALL, GZ },
		{ ",,,gzip,,,", ALL, GZ },
		{ "brotli, gzipx, zst", ALL, ID },       /* near misses are other codings */
	};
	RUN(t);
}

static void test_star(void **state)
{
	static const struct ecase t[] = {
		{ "*", ALL, BR },
		{ "*", ZS, ZS },
		{ "*;q=0", ALL, ID },
		{ "*, br;q=0", ALL, ZS },                /* explicit exclusion beats "*" */
		{ "*;q=0, gzip", ALL, GZ },
		{ "*;q=0.5, gzip;q=0.6", ALL, GZ },
		{ "*;q=0.7, gzip;q=0.6", ALL, BR },
		{ "gzip;q=0.6, *;q=0.7", GZ | ZS, ZS },
		{ "br;q=0, zstd;q=0, *", ALL, GZ },
	};
	RUN(t);
}

static void test_identity(void **state)
{
	static const struct ecase t[] = {
		{ "identity;q=1, gzip;q=0.5", ALL, ID },  /* identity preferred */
		{ "identity, gzip", ALL, GZ },            /* tie: the smaller representation */
		{ "identity;q=0.5, gzip;q=0.5", ALL, GZ },
		{ "identity;q=0, gzip", ALL, GZ },
		{ "identity;q=0", ALL, ID },              /* nothing acceptable: no 406 */
		{ "*;q=0", ALL, ID },
		{ "identity;q=0.9, *;q=0.8", ALL, ID },
		{ "identity;q=0.7, *;q=0.8", ALL, BR },
	};
	RUN(t);
}

static void test_duplicates(void **state)
{
	static const struct ecase t[] = {
		{ "gzip;q=0, gzip", ALL, ID },           /* the first element counts */
		{ "gzip, gzip;q=0", ALL, GZ },
		{ "x-gzip;q=0, gzip", ALL, ID },
		{ "br;q=0.1, br;q=0.9, gzip;q=0.5", ALL, GZ },
	};
	RUN(t);
}

static void test_names(void **state)
{
	assert_string_equal(pt_enc_suffix(BR), ".br");
	assert_string_equal(pt_enc_suffix(ZS), ".zst");
	assert_string_equal(pt_enc_suffix(GZ), ".gz");
	assert_string_equal(pt_enc_suffix(ID), "");
	assert_string_equal(pt_enc_name(BR), "br");
	assert_string_equal(pt_enc_name(ZS), "zstd");
	assert_string_equal(pt_enc_name(GZ), "gzip");
	assert_null(pt_enc_name(ID));
	assert_null(pt_enc_name(BR | GZ));
}

/* Every prefix of a long value parses without reading past it. */
static void test_prefixes(void **state)
{
	static const char v[] = " br;q=0.5 , x-gzip ; Q=1.000,zstd;q=0.75,*;q=0,identity;q=0.1";

	for (size_t n = 0; n < sizeof(v) - 1; n++) {
		char *copy = malloc(n ? n : 1);
		unsigned got;

		memcpy(copy, v, n);
		got = pt_enc_choose(copy, n, ALL);
		assert_true(got == ID || got == BR || got == ZS || got == GZ);
		free(copy);
	}
	assert_int_equal(pt_enc_choose(v, sizeof(v) - 1, ALL), GZ);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_absent_and_empty),
		cmocka_unit_test(test_browsers),
		cmocka_unit_test(test_qvalues),
		cmocka_unit_test(test_invalid_elements),
		cmocka_unit_test(test_case_and_whitespace),
		cmocka_unit_test(test_star),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_prefixes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
