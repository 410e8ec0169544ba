// fuzz-sources: src/server/range.c
/*
 * libFuzzer target for pt_range_parse and pt_range_multipart (src/server/range.c).
 *
 * Input: the first 8 bytes (little-endian, if present) pick the representation size among
 * small, medium and huge values; the rest is the Range field value. Each value is parsed
 * with max = PT_RANGE_MAX and max = 2. Invariants (a violation aborts):
 *  - the result is -416, 0, or 1..max; with max = 2 it is never more than 2;
 *  - every range satisfies first <= last < size; ranges are pairwise disjoint and more
 *    than PT_RANGE_GAP bytes apart (coalescing is complete), so their total is <= size;
 *  - printing the ranges back as "bytes=a-b,..." and parsing that gives the same ranges;
 *  - the multipart layout of the ranges fits PT_RANGE_MULTIPART_MAX, its pieces are
 *    contiguous in the buffer, and *total is the framing plus the range lengths.
 * The value is a heap copy of exactly its length, so ASan reports any overread.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/range.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
	abort(); } } while (0)

static void check_ranges(const struct pt_range *r, int n, uint64_t size)
{
	uint64_t sum = 0;

	for (int i = 0; i < n; i++) {
		CHECK(r[i].first <= r[i].last && r[i].last < size);
		sum += r[i].last - r[i].first + 1;
		for (int j = 0; j < i; j++) {
			const struct pt_range *lo = r[j].first < r[i].first ? &r[j] : &r[i];
			const struct pt_range *hi = lo == &r[j] ? &r[i] : &r[j];

			CHECK(hi->first > lo->last && hi->first - lo->last > PT_RANGE_GAP + 1);
		}
	}
	CHECK(sum <= size);
}

static void check_reparse(const struct pt_range *r, int n, uint64_t size)
{
	char v[PT_RANGE_MAX * 44 + 8];
	struct pt_range again[PT_RANGE_MAX];
	size_t len = (size_t)sprintf(v, "bytes=");

	for (int i = 0; i < n; i++)
		len += (size_t)sprintf(v + len, "%s%llu-%llu", i ? "," : "",
				       (unsigned long long)r[i].first,
				       (unsigned long long)r[i].last);
	CHECK(pt_range_parse(v, len, size, again, PT_RANGE_MAX) == n);
	CHECK(memcmp(again, r, (size_t)n * sizeof(*r)) == 0);
}

static void check_multipart(const struct pt_range *r, int n, uint64_t size)
{
	static const char ctype[] = "text/html; charset=utf-8";
	char b[PT_RANGE_BOUNDARY_LEN + 1];
	size_t cap = PT_RANGE_MULTIPART_MAX(n, PT_RANGE_BOUNDARY_LEN, sizeof(ctype) - 1);
	char *buf = malloc(cap);
	struct pt_range_part parts[PT_RANGE_MAX + 1];
	uint64_t total = 0, sum = 0;
	size_t off = 0;

	pt_range_boundary(b, size);
	CHECK(pt_range_multipart(r, (unsigned)n, size, b, ctype, buf, cap, parts, &total) == 0);
	for (int i = 0; i <= n; i++) {
		CHECK(parts[i].off == off && parts[i].len > 0);
		off += parts[i].len;
		sum += parts[i].len + (i < n ? r[i].last - r[i].first + 1 : 0);
	}
	CHECK(off <= cap && sum == total);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const uint64_t sizes[] = { 0, 1, 2, 100, 10000, 1u << 20, UINT64_MAX / 2,
					  UINT64_MAX };
	uint64_t sel = 0, size;
	struct pt_range r[PT_RANGE_MAX];
	char *v;
	int n;

	if (len >= 8) {
		memcpy(&sel, data, 8);
		data += 8;
		len -= 8;
	}
	size = sel & 1 ? sizes[(sel >> 1) % 8] : sel >> 1;
	v = malloc(len ? len : 1);
	memcpy(v, data, len);

	n = pt_range_parse(v, len, size, r, PT_RANGE_MAX);
	CHECK(n == -416 || (n >= 0 && n <= PT_RANGE_MAX));
	if (n > 0) {
		check_ranges(r, n, size);
		check_reparse(r, n, size);
		check_multipart(r, n, size);
	}
	n = pt_range_parse(v, len, size, r, 2);
	CHECK(n == -416 || (n >= 0 && n <= 2));
	if (n > 0)
		check_ranges(r, n, size);
	free(v);
	return 0;
}
