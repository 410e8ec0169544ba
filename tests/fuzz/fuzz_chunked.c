// fuzz-sources: src/http/parse.c src/http/chunked.c
/*
 * libFuzzer target for the chunked body decoder (src/http/chunked.c).
 *
 * Each input is decoded with the default limits and with tight ones, three ways: whole,
 * cut in two at a point taken from the input, and one byte at a time. Invariants (a
 * violation aborts):
 *  - every data span lies inside the bytes consumed by its call, and a call consumes
 *    at least one byte unless it finished;
 *  - the decoded output never exceeds the input, nor max_body;
 *  - all three ways give the same status, the same bytes consumed, the same output;
 *  - a finished decoder returns the same status again and consumes nothing;
 *  - a second, independent reading of RFC 9112 7.1 (whole lines, written differently)
 *    agrees: a body it finds complete and valid is DONE with the same bytes consumed
 *    and the same data; a body it finds invalid is an error, never DONE.
 * Each piece handed to the decoder is a heap copy of exactly its length.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
	abort(); } } while (0)

/* ---- the reference: complete lines only, default limits ---- */

#define REF_MORE (-1) /* incomplete, or beyond what the reference judges */
#define REF_BAD  (-2)

static bool is_tchar(uint8_t c)
{
	return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static bool is_vchar_ws(uint8_t c) /* field-vchar / obs-text / SP / HTAB */
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static size_t token_len(const uint8_t *p, const uint8_t *e)
{
	size_t n = 0;
	while (p + n < e && is_tchar(p[n]))
		n++;
	return n;
}

static const uint8_t *skip_bws(const uint8_t *p, const uint8_t *e)
{
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* quoted-string at p (RFC 9110 5.6.4); returns its end, or NULL. */
static const uint8_t *quoted_end(const uint8_t *p, const uint8_t *e)
{
	for (p++; p < e; p++) {
		if (*p == '"')
			return p + 1;
		if (*p == '\\') {
			if (++p == e || !is_vchar_ws(*p))
				return NULL;
		} else if (!is_vchar_ws(*p)) {
			return NULL;
		}
	}
	return NULL;
}

/* *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] ) over [p, e). */
static bool ext_valid(const uint8_t *p, const uint8_t *e)
{
	while (p < e) {
		size_t n;
		p = skip_bws(p, e);
		if (p == e || *p++ != ';')
			return false;
		p = skip_bws(p, e);
		if ((n = token_len(p, e)) == 0)
			return false;
		p += n;
		const uint8_t *q = skip_bws(p, e);
		if (q == e || *q != '=')
			continue;
		p = skip_bws(q + 1, e);
		if (p < e && *p == '"')
			p = quoted_end(p, e);
		else if ((n = token_len(p, e)) > 0)
			p += n;
		else
			return false;
		if (!p)
			return false;
	}
	return true;
}

static const uint8_t *find_crlf(const uint8_t *p, const uint8_t *e)
{
	for (; e - p >= 2; p++)
		if (p[0] == '\r' && p[1] == '\n')
			return p;
	return NULL;
}

/* One chunk-size line [p, e): false if invalid. */
static bool size_line(const uint8_t *p, const uint8_t *e, uint64_t *size)
{
	int d = 0;

	for (*size = 0; p < e && isxdigit(*p) && d < 17; p++, d++)
		*size = *size * 16 + (uint64_t)(isdigit(*p) ? *p - '0' : (*p | 0x20) - 'a' + 10);
	return d > 0 && d <= 16 && ext_valid(p, e);
}

static bool field_line(const uint8_t *p, const uint8_t *e)
{
	size_t n = token_len(p, e);
	if (n == 0 || p + n == e || p[n] != ':')
		return false;
	for (p += n + 1; p < e; p++)
		if (!is_vchar_ws(*p))
			return false;
	return true;
}

/* Returns the bytes of a complete valid body, REF_BAD or REF_MORE; data into out. */
static long long ref_decode(const uint8_t *s, size_t n, char *out, size_t *outn)
{
	const uint8_t *p = s, *e = s + n, *l;
	uint64_t size;

	*outn = 0;
	do {
		if (!(l = find_crlf(p, e)) || l - p > 4000)
			return REF_MORE;
		if (!size_line(p, l, &size))
			return REF_BAD;
		p = l + 2;
		if (size > (uint64_t)(e - p) || (uint64_t)(e - p) - size < 2)
			return REF_MORE;
		memcpy(out + *outn, p, size);
		*outn += size;
		if (size && (p[size] != '\r' || p[size + 1] != '\n'))
			return REF_BAD;
		p += size ? size + 2 : 0;
	} while (size);
	for (const uint8_t *t = p; (l = find_crlf(p, e)) != NULL; p = l + 2) {
		if (l + 2 - t > 8000)
			return REF_MORE;
		if (l == p)
			return l + 2 - s;
		if (!field_line(p, l))
			return REF_BAD;
	}
	return REF_MORE;
}

/* ---- the decoder under test ---- */

struct result {
	int status;
	size_t consumed;
	size_t outn;
	char *out; /* capacity: the input length */
};

/* Feeds one piece (copied to its own exact-size buffer) until used up or finished. */
static int feed_piece(struct pt_chunked *c, const uint8_t *data, size_t n, struct result *res)
{
	char *p = malloc(n ? n : 1);
	int r = PT_CHUNKED_MORE;

	CHECK(p != NULL);
	memcpy(p, data, n);
	for (size_t off = 0; off < n && r == PT_CHUNKED_MORE;) {
		size_t used;
		struct pt_slice d;
		r = pt_chunked_feed(c, p + off, n - off, &used, &d);
		CHECK(used <= n - off);
		CHECK(d.n <= used && d.p >= p + off && d.p + d.n <= p + off + used);
		CHECK(used > 0 || r != PT_CHUNKED_MORE);
		CHECK(r == PT_CHUNKED_MORE || r == PT_CHUNKED_DONE || r == -400 || r == -413 ||
		      r == -431);
		memcpy(res->out + res->outn, d.p, d.n);
		res->outn += d.n;
		off += used;
		res->consumed += used;
	}
	free(p);
	return r;
}

static void decode(const uint8_t *data, size_t n, size_t step, size_t cut,
		   const struct pt_parse_limits *l, struct result *res)
{
	struct pt_chunked c;
	size_t used = 1;
	struct pt_slice d;

	pt_chunked_init(&c, l);
	res->status = PT_CHUNKED_MORE;
	res->consumed = res->outn = 0;
	for (size_t from = 0; from < n && res->status == PT_CHUNKED_MORE;) {
		size_t to = step ? (from + step < n ? from + step : n) : from < cut ? cut : n;
		res->status = feed_piece(&c, data + from, to - from, res);
		from = to;
	}
	CHECK(res->outn <= n && res->consumed <= n);
	CHECK(!l->max_body || res->outn <= l->max_body);
	if (res->status != PT_CHUNKED_MORE) {
		CHECK(pt_chunked_feed(&c, "0\r\n\r\n", 5, &used, &d) == res->status);
		CHECK(used == 0 && d.n == 0);
	} else {
		CHECK(res->consumed == n);
	}
}

static void same(const struct result *a, const struct result *b)
{
	CHECK(a->status == b->status && a->consumed == b->consumed && a->outn == b->outn);
	CHECK(memcmp(a->out, b->out, a->outn) == 0);
}

/* The decoder (default limits) against the reference. */
static void check_ref(const uint8_t *data, size_t size, const struct result *got)
{
	char *out = malloc(size ? size : 1);
	size_t outn;
	long long ref = ref_decode(data, size, out, &outn);

	if (ref >= 0) {
		CHECK(got->status == PT_CHUNKED_DONE && got->consumed == (size_t)ref);
		CHECK(got->outn == outn && memcmp(got->out, out, outn) == 0);
	} else if (ref == REF_BAD) {
		CHECK(got->status < 0);
	} else {
		CHECK(got->status != PT_CHUNKED_DONE);
	}
	free(out);
}

static void one(const uint8_t *data, size_t size, const struct pt_parse_limits *l, bool ref)
{
	struct result r[3];
	size_t cut = size ? (data[0] * 251u + data[size - 1]) % (size + 1) : 0;

	for (int i = 0; i < 3; i++)
		r[i].out = malloc(size ? size : 1);
	decode(data, size, 0, 0, l, &r[0]);
	decode(data, size, 0, cut, l, &r[1]);
	decode(data, size, 1, 0, l, &r[2]);
	same(&r[0], &r[1]);
	same(&r[0], &r[2]);
	if (ref)
		check_ref(data, size, &r[0]);
	for (int i = 0; i < 3; i++)
		free(r[i].out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pt_parse_limits l;

	pt_parse_limits_default(&l);
	one(data, size, &l, true);
	l.max_body = 64;
	l.max_chunk_line = 24;
	l.max_trailer = 32;
	one(data, size, &l, false);
	return 0;
}
