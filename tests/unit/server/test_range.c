/*
 * Unit tests of src/server/range.c: Range parsing (RFC 9110 14.1.2, 14.2), the abuse policy
 * (range count limit, coalescing of overlapping and nearby ranges), Content-Range values and
 * the multipart/byteranges layout (RFC 9110 14.6).
 */
#include "server/range.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#define SIZE 10000

struct rcase {
	const char *v;
	uint64_t size;
	int want;                    /* ranges, 0 (ignore) or -416 */
	struct pt_range r[4];        /* the first ranges expected */
};

static void run(const struct rcase *c, size_t n, unsigned max)
{
	for (size_t i = 0; i < n; i++) {
		struct pt_range r[PT_RANGE_MAX + 1];
		size_t len = strlen(c[i].v);
		char *copy = malloc(len ? len : 1); /* exact length: ASan sees overreads */
		int got;

		memcpy(copy, c[i].v, len);
		memset(r, 0xaa, sizeof(r));
		got = pt_range_parse(copy, len, c[i].size, r, max);
		free(copy);
		if (got != c[i].want)
			fail_msg("\"%s\" size %llu: got %d, want %d", c[i].v,
				 (unsigned long long)c[i].size, got, c[i].want);
		for (int k = 0; k < got && k < 4; k++)
			if (r[k].first != c[i].r[k].first || r[k].last != c[i].r[k].last)
				fail_msg("\"%s\" range %d: got %llu-%llu, want %llu-%llu", c[i].v, k,
					 (unsigned long long)r[k].first,
					 (unsigned long long)r[k].last,
					 (unsigned long long)c[i].r[k].first,
					 (unsigned long long)c[i].r[k].last);
	}
}

#define RUN(t) run(t, sizeof(t) / sizeof((t)[0]), PT_RANGE_MAX)

static void test_single(void **state)
{
	static const struct rcase t[] = {
		{ "bytes=0-499", SIZE, 1, { { 0, 499 } } },
		{ "bytes=500-999", SIZE, 1, { { 500, 999 } } },
		{ "bytes=-500", SIZE, 1, { { 9500, 9999 } } },        /* suffix */
		{ "bytes=9500-", SIZE, 1, { { 9500, 9999 } } },       /* open-ended */
		{ "bytes=0-", SIZE, 1, { { 0, 9999 } } },
		{ "bytes=0-0", SIZE, 1, { { 0, 0 } } },
		{ "bytes=-1", SIZE, 1, { { 9999, 9999 } } },
		{ "bytes=9999-9999", SIZE, 1, { { 9999, 9999 } } },
		{ "bytes=0-99999", SIZE, 1, { { 0, 9999 } } },        /* clamped */
		{ "bytes=-20000", SIZE, 1, { { 0, 9999 } } },
		{ "bytes=0-99999999999999999999999", SIZE, 1, { { 0, 9999 } } },
		{ "bytes=-99999999999999999999999", SIZE, 1, { { 0, 9999 } } },
		{ "BYTES=1-2", SIZE, 1, { { 1, 2 } } },               /* unit is case-insensitive */
		{ "Bytes=1-2", SIZE, 1, { { 1, 2 } } },
		{ "bytes= 1-2 ", SIZE, 1, { { 1, 2 } } },
		{ "bytes=,1-2,", SIZE, 1, { { 1, 2 } } },             /* empty elements */
		{ "bytes=0-0", 1, 1, { { 0, 0 } } },
		{ "bytes=-1", 1, 1, { { 0, 0 } } },
		{ "bytes=-5", 1, 1, { { 0, 0 } } },
		{ "bytes=0007-0008", SIZE, 1, { { 7, 8 } } },
	};
	RUN(t);
}

static void test_multiple(void **state)
{
	static const struct rcase t[] = {
		{ "bytes=0-0,-1", SIZE, 2, { { 0, 0 }, { 9999, 9999 } } },
		{ "bytes=0-1, 1000-1001", SIZE, 2, { { 0, 1 }, { 1000, 1001 } } },
		{ "bytes=0-1 ,\t1000-1001 , 5000-", SIZE, 3,
		  { { 0, 1 }, { 1000, 1001 }, { 5000, 9999 } } },
		/* no coalescing needed: the client's order is kept */
		{ "bytes=5000-5100,0-100", SIZE, 2, { { 5000, 5100 }, { 0, 100 } } },
		/* unsatisfiable ones are dropped */
		{ "bytes=10000-,0-1", SIZE, 1, { { 0, 1 } } },
		{ "bytes=0-1,-0,500-501", SIZE, 2, { { 0, 1 }, { 500, 501 } } },
	};
	RUN(t);
}

static void test_ignored(void **state)
{
	static const struct rcase t[] = {
		{ "", SIZE, 0, { { 0 } } },
		{ "bytes", SIZE, 0, { { 0 } } },
		{ "bytes=", SIZE, 0, { { 0 } } },
		{ "bytes=,", SIZE, 0, { { 0 } } },
		{ "bytes= , ,", SIZE, 0, { { 0 } } },
		{ "items=0-1", SIZE, 0, { { 0 } } },                  /* unknown unit */
		{ "bytes =0-1", SIZE, 0, { { 0 } } },
		{ " bytes=0-1", SIZE, 0, { { 0 } } },
		{ "bytes:0-1", SIZE, 0, { { 0 } } },
		{ "bytes=5-3", SIZE, 0, { { 0 } } },                  /* last < first: invalid */
		{ "bytes=0-1,5-3", SIZE, 0, { { 0 } } },
		{ "bytes=a-b", SIZE, 0, { { 0 } } },
		{ "bytes=0-1x", SIZE, 0, { { 0 } } },
		{ "bytes=--1", SIZE, 0, { { 0 } } },
		{ "bytes=-", SIZE, 0, { { 0 } } },
		{ "bytes=1", SIZE, 0, { { 0 } } },
		{ "bytes=0-1;", SIZE, 0, { { 0 } } },
		{ "bytes=+1-2", SIZE, 0, { { 0 } } },
		{ "bytes=0 -1", SIZE, 0, { { 0 } } },
		{ "bytes=0- 1", SIZE, 0, { { 0 } } },
		{ "bytes=0-1 2-3", SIZE, 0, { { 0 } } },
		{ "bytes=-1-2", SIZE, 0, { { 0 } } },
		{ "bytes=0x10-0x20", SIZE, 0, { { 0 } } },
		{ "bytes=0-1,garbage", SIZE, 0, { { 0 } } },
		/* an empty representation has no expressible range */
		{ "bytes=0-", 0, 0, { { 0 } } },
		{ "bytes=-5", 0, 0, { { 0 } } },
		{ "bytes=0-0", 0, 0, { { 0 } } },
	};
	RUN(t);
}

static void test_unsatisfiable(void **state)
{
	static const struct rcase t[] = {
		{ "bytes=10000-", SIZE, -416, { { 0 } } },
		{ "bytes=10000-10001", SIZE, -416, { { 0 } } },
		{ "bytes=20000-30000", SIZE, -416, { { 0 } } },
		{ "bytes=-0", SIZE, -416, { { 0 } } },
		{ "bytes=-0,10000-", SIZE, -416, { { 0 } } },
		{ "bytes=99999999999999999999999-", SIZE, -416, { { 0 } } },
		{ "bytes=1-", 1, -416, { { 0 } } },
	};
	RUN(t);
}

static void test_count_limit(void **state)
{
	char v[1024];
	size_t n = 5;
	struct pt_range r[PT_RANGE_MAX];

	memcpy(v, "bytes", 5);
	for (int i = 0; i < PT_RANGE_MAX; i++)
		n += (size_t)sprintf(v + n, "%c%d-%d", i ? ',' : '=', i * 500, i * 500 + 9);
	assert_int_equal(pt_range_parse(v, n, SIZE, r, PT_RANGE_MAX), PT_RANGE_MAX);
	for (int i = 0; i < PT_RANGE_MAX; i++) {
		assert_true(r[i].first == (uint64_t)i * 500);
		assert_true(r[i].last == (uint64_t)i * 500 + 9);
	}
	/* one more is ignored as a whole, even if unsatisfiable */
	n += (size_t)sprintf(v + n, ",99999-");
	assert_int_equal(pt_range_parse(v, n, SIZE, r, PT_RANGE_MAX), 0);
	/* the caller's max is the limit, and r[] is never written past it */
	{
		static const char three[] = "bytes=0-1,100-200,300-400";
		struct pt_range two[2];

		assert_int_equal(pt_range_parse(three, sizeof(three) - 1, SIZE, two, 2), 0);
		assert_int_equal(pt_range_parse(three, 17, SIZE, two, 2), 2);
		assert_int_equal(pt_range_parse(three, 11, SIZE, two, 0), 0);
	}
}

static void test_coalescing(void **state)
{
	static const struct rcase t[] = {
		/* the classic amplification: the same range many times */
		{ "bytes=0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-", SIZE, 1, { { 0, 9999 } } },
		{ "bytes=0-499,400-999", SIZE, 1, { { 0, 999 } } },
		{ "bytes=400-999,0-499", SIZE, 1, { { 0, 999 } } },
		{ "bytes=500-600,0-100,50-550", SIZE, 1, { { 0, 600 } } },
		{ "bytes=-100,0-", SIZE, 1, { { 0, 9999 } } },
		{ "bytes=0-9,10-19", SIZE, 1, { { 0, 19 } } },         /* adjacent */
		{ "bytes=0-9,90-199", SIZE, 1, { { 0, 199 } } },       /* 80-byte gap: merged */
		{ "bytes=0-9,91-199", SIZE, 2, { { 0, 9 }, { 91, 199 } } }, /* 81: kept apart */
		{ "bytes=5000-5010,0-9,5005-6000", SIZE, 2, { { 0, 9 }, { 5000, 6000 } } },
		/* many small ranges become one */
		{ "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,"
		  "26-26,28-28,30-30", SIZE, 1, { { 0, 30 } } },
		/* descending, overlapping: sorted once merged */
		{ "bytes=9000-9999,7000-9500,3000-3100,0-10", SIZE, 3,
		  { { 0, 10 }, { 3000, 3100 }, { 7000, 9999 } } },
	};
	RUN(t);
}

/* The response never carries more file bytes than the file has. */
static void test_bounded_output(void **state)
{
	uint64_t x = 2463534242;

	for (int iter = 0; iter < 20000; iter++) {
		char v[512];
		size_t n = (size_t)sprintf(v, "bytes=");
		struct pt_range r[PT_RANGE_MAX];
		int k = 1 + (int)(x % PT_RANGE_MAX), got;
		uint64_t sum = 0, size = 1 + x % 3000;

		for (int i = 0; i < k; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			uint64_t a = x % 4000, b = a + (x >> 20) % 500;

			n += (size_t)sprintf(v + n, "%s%llu-%llu", i ? "," : "",
					     (unsigned long long)a, (unsigned long long)b);
		}
		got = pt_range_parse(v, n, size, r, PT_RANGE_MAX);
		assert_true(got == -416 || (got >= 1 && got <= k));
		for (int i = 0; i < got; i++) {
			assert_true(r[i].first <= r[i].last && r[i].last < size);
			sum += r[i].last - r[i].first + 1;
			for (int j = 0; j < i; j++) /* disjoint */
				assert_true(r[j].last < r[i].first || r[i].last < r[j].first);
		}
		assert_true(sum <= size);
	}
}

static void test_content_range(void **state)
{
	char buf[PT_RANGE_CR_MAX];
	struct pt_range r = { 0, 499 }, big = { UINT64_MAX - 1, UINT64_MAX - 1 };

	assert_int_equal(pt_range_content_range(buf, sizeof(buf), &r, 10000), 17);
	assert_string_equal(buf, "bytes 0-499/10000");
	assert_int_equal(pt_range_content_range(buf, sizeof(buf), NULL, 10000), 13);
	assert_string_equal(buf, "bytes */10000");
	assert_int_equal(pt_range_content_range(buf, 13, NULL, 10000), 0);
	assert_int_equal(pt_range_content_range(buf, 14, NULL, 10000), 13);
	assert_int_equal(pt_range_content_range(buf, sizeof(buf), &big, UINT64_MAX), 68);
	assert_string_equal(buf, "bytes 18446744073709551614-18446744073709551614/"
				 "18446744073709551615");
}

static void test_boundary(void **state)
{
	char b[PT_RANGE_BOUNDARY_LEN + 1], c[PT_RANGE_BOUNDARY_LEN + 1];

	assert_int_equal(pt_range_boundary(b, 0x0123456789abcdefull), PT_RANGE_BOUNDARY_LEN);
	assert_string_equal(b, "pt0123456789abcdefzz");
	pt_range_boundary(c, 1);
	assert_int_equal(strlen(c), PT_RANGE_BOUNDARY_LEN);
	assert_string_not_equal(b, c);
}

/* Builds the whole body from the layout and a file image, to compare with the expected. */
static char *assemble(const struct pt_range *r, unsigned n, const char *file, const char *buf,
		      const struct pt_range_part *parts, uint64_t total)
{
	char *out = malloc(total + 1), *p = out;

	for (unsigned i = 0; i < n; i++) {
		memcpy(p, buf + parts[i].off, parts[i].len);
		p += parts[i].len;
		memcpy(p, file + r[i].first, r[i].last - r[i].first + 1);
		p += r[i].last - r[i].first + 1;
	}
	memcpy(p, buf + parts[n].off, parts[n].len);
	p += parts[n].len;
	assert_true((uint64_t)(p - out) == total);
	*p = '\0';
	return out;
}

static void test_multipart(void **state)
{
	static const char file[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	const struct pt_range r[2] = { { 0, 1 }, { 30, 35 } };
	struct pt_range_part parts[3];
	char buf[PT_RANGE_MULTIPART_MAX(2, 3, 10)];
	uint64_t total = 0;
	char *body;

	assert_int_equal(pt_range_multipart(r, 2, 36, "BND", "text/plain", buf, sizeof(buf),
					    parts, &total), 0);
	body = assemble(r, 2, file, buf, parts, total);
	assert_string_equal(body,
		"--BND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/36\r\n\r\n01"
		"\r\n--BND\r\nContent-Type: text/plain\r\nContent-Range: bytes 30-35/36\r\n\r\n"
		"uvwxyz"
		"\r\n--BND--\r\n");
	assert_true(total == strlen(body));
	free(body);
	/* no Content-Type in the parts */
	assert_int_equal(pt_range_multipart(r, 2, 36, "BND", NULL, buf, sizeof(buf), parts,
					    &total), 0);
	body = assemble(r, 2, file, buf, parts, total);
	assert_string_equal(body, "--BND\r\nContent-Range: bytes 0-1/36\r\n\r\n01"
				  "\r\n--BND\r\nContent-Range: bytes 30-35/36\r\n\r\nuvwxyz"
				  "\r\n--BND--\r\n");
	free(body);
}

static void test_multipart_errors(void **state)
{
	const struct pt_range r[2] = { { 0, 1 }, { 30, 35 } }, bad = { 5, 4 }, out = { 0, 36 };
	struct pt_range_part parts[3];
	char buf[512];
	uint64_t total;
	size_t need;

	assert_int_equal(pt_range_multipart(r, 0, 36, "B", NULL, buf, sizeof(buf), parts,
					    &total), -EINVAL);
	assert_int_equal(pt_range_multipart(r, 2, 36, "", NULL, buf, sizeof(buf), parts,
					    &total), -EINVAL);
	assert_int_equal(pt_range_multipart(&bad, 1, 36, "B", NULL, buf, sizeof(buf), parts,
					    &total), -EINVAL);
	assert_int_equal(pt_range_multipart(&out, 1, 36, "B", NULL, buf, sizeof(buf), parts,
					    &total), -EINVAL);
	assert_int_equal(pt_range_multipart(r, 2, 36, "B", "t/x", buf, sizeof(buf), parts,
					    &total), 0);
	need = parts[2].off + parts[2].len;
	/* every smaller buffer is refused, and nothing is written past it (ASan) */
	for (size_t cap = 0; cap < need; cap++) {
		char *small = malloc(cap ? cap : 1);

		assert_int_equal(pt_range_multipart(r, 2, 36, "B", "t/x", small, cap, parts,
						    &total), -ENOBUFS);
		free(small);
	}
	assert_true(need <= PT_RANGE_MULTIPART_MAX(2, 1, 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_multiple),
		cmocka_unit_test(test_ignored),
		cmocka_unit_test(test_unsatisfiable),
		cmocka_unit_test(test_count_limit),
		cmocka_unit_test(test_coalescing),
		cmocka_unit_test(test_bounded_output),
		cmocka_unit_test(test_content_range),
		cmocka_unit_test(test_boundary),
		cmocka_unit_test(test_multipart),
		cmocka_unit_test(test_multipart_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
