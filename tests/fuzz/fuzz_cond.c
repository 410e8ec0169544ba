// fuzz-sources: src/server/cond.c
/*
 * libFuzzer target for the HTTP-date parser and precondition evaluation (src/server/cond.c).
 *
 * Input: byte 0 picks the method (GET, HEAD, other), whether Range is present, and which
 * of the five fields are present; the rest, split at '\n', gives the values of If-Match,
 * If-None-Match, If-Modified-Since, If-Unmodified-Since and If-Range in that order.
 * Invariants (a violation aborts):
 *  - pt_cond_evaluate returns 0, 304 or 412; 304 only for GET/HEAD; 412 for GET/HEAD only
 *    when If-Match or If-Unmodified-Since is present; use_range only with 0, GET and Range;
 *  - the result does not depend on the absent fields' buffers (same answer twice);
 *  - every value that parses as an IMF-fixdate within 1970..9999 formats back to itself
 *    (apart from the day name, which is not checked against the date, and a leap second
 *    :60, which becomes :00 of the next minute), and every parsed
 *    date formats and parses back to the same time.
 * Every value is a heap copy of exactly its length, so ASan reports any overread.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cond.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
	abort(); } } while (0)

#define NOW 1780000000 /* 2026 */
#define ETAG "\"abc-1-2\""

static void check_date(const char *s, size_t n)
{
	char buf[PT_HTTP_DATE_LEN + 1];
	time_t t, back;

	if (pt_cond_date_parse(s, n, NOW, &t) != 0)
		return;
	if (t < 0 || t > 253402300799LL)
		return;
	pt_cond_date_format(buf, t);
	CHECK(pt_cond_date_parse(buf, PT_HTTP_DATE_LEN, NOW, &back) == 0 && back == t);
	if (n == PT_HTTP_DATE_LEN && s[3] == ',' && memcmp(s + 23, "60", 2) != 0)
		CHECK(memcmp(buf + 3, s + 3, PT_HTTP_DATE_LEN - 3) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct pt_cond_field *f[5];
	struct pt_cond_req rq = { .now = NOW };
	struct pt_cond_res rs = { ETAG, sizeof(ETAG) - 1, 784111777 };
	char *copies[5] = { 0 };
	const char *p, *end;
	bool ur, ur2;
	int r;

	if (len == 0)
		return 0;
	rq.method = (uint8_t)(data[0] % 3);
	rq.has_range = data[0] & 0x04;
	f[0] = &rq.if_match;
	f[1] = &rq.if_none_match;
	f[2] = &rq.if_modified_since;
	f[3] = &rq.if_unmodified_since;
	f[4] = &rq.if_range;
	p = (const char *)data + 1;
	end = (const char *)data + len;
	for (int i = 0; i < 5 && p <= end; i++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);

		if (data[0] & (0x08 << i)) {
			copies[i] = malloc(n ? n : 1);
			memcpy(copies[i], p, n);
			*f[i] = (struct pt_cond_field){ copies[i], n };
			check_date(copies[i], n);
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	r = pt_cond_evaluate(&rq, &rs, &ur);
	CHECK(r == 0 || r == 304 || r == 412);
	CHECK(r != 304 || rq.method != PT_COND_OTHER);
	CHECK(r != 412 || rq.method == PT_COND_OTHER || rq.if_match.p ||
	      rq.if_unmodified_since.p);
	CHECK(!ur || (r == 0 && rq.method == PT_COND_GET && rq.has_range));
	CHECK(pt_cond_evaluate(&rq, &rs, &ur2) == r && ur2 == ur);
	for (int i = 0; i < 5; i++)
		free(copies[i]);
	return 0;
}
