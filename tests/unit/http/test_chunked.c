/*
 * Unit tests of src/http/chunked.c: the chunked transfer-coding decoder (RFC 9112 7.1).
 *
 * Every input is decoded whole, split in two at every point, and one byte at a time;
 * the decoded bytes, the bytes consumed and the result must be the same each way. Each
 * piece sits right before a PROT_NONE page, so any read past its end faults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "http/parse.h"

/* ---- pieces placed before a guard page ---- */

struct guard {
	char *base;
	size_t size;
};

static void guard_alloc(struct guard *g, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	g->size = (n + page - 1) / page * page + page;
	g->base = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g->base != MAP_FAILED);
	assert_int_equal(mprotect(g->base + g->size - page, page, PROT_NONE), 0);
}

static char *guard_put(struct guard *g, const char *s, size_t n)
{
	char *p = g->base + g->size - (size_t)sysconf(_SC_PAGESIZE) - n;
	memcpy(p, s, n);
	return p;
}

/* ---- decoding helpers ---- */

struct result {
	int status;
	size_t consumed;
	size_t outn;
	char out[8192];
};

/* Feeds one piece until it is used up or the decoder stops. */
static int feed_piece(struct pt_chunked *c, const char *p, size_t n, struct result *res)
{
	int r = PT_CHUNKED_MORE;

	for (size_t off = 0; off < n && r == PT_CHUNKED_MORE;) {
		size_t used = 99999;
		struct pt_slice d;
		r = pt_chunked_feed(c, p + off, n - off, &used, &d);
		assert_true(used <= n - off);
		assert_true(d.n <= used && d.p >= p + off && d.p + d.n <= p + off + used);
		assert_true(used > 0 || r != PT_CHUNKED_MORE);
		assert_true(res->outn + d.n <= sizeof(res->out));
		memcpy(res->out + res->outn, d.p, d.n);
		res->outn += d.n;
		off += used;
		res->consumed += used;
	}
	return r;
}

/* Decodes s cut at the given points (ascending), each piece in guarded memory. */
static void decode_cuts(const char *s, size_t n, const size_t *cuts, size_t ncuts,
			const struct pt_parse_limits *l, struct result *res)
{
	struct pt_chunked c;
	struct guard g;
	size_t from = 0;

	memset(res, 0, sizeof(*res));
	pt_chunked_init(&c, l);
	guard_alloc(&g, n);
	res->status = PT_CHUNKED_MORE;
	for (size_t i = 0; i <= ncuts && res->status == PT_CHUNKED_MORE; i++) {
		size_t to = i < ncuts ? cuts[i] : n;
		res->status = feed_piece(&c, guard_put(&g, s + from, to - from), to - from, res);
		from = to;
	}
	munmap(g.base, g.size);
	/* Finished decoders stay finished and consume nothing more. */
	if (res->status != PT_CHUNKED_MORE) {
		size_t used = 1;
		struct pt_slice d;
		assert_int_equal(pt_chunked_feed(&c, "0\r\n\r\n", 5, &used, &d), res->status);
		assert_int_equal(used, 0);
		assert_int_equal(d.n, 0);
	}
}

static void assert_same(const struct result *a, const struct result *b, size_t cut)
{
	if (a->status != b->status || a->consumed != b->consumed || a->outn != b->outn ||
	    memcmp(a->out, b->out, a->outn) != 0)
		fail_msg("cut at %zu: status %d/%d consumed %zu/%zu out %zu/%zu", cut, a->status,
			 b->status, a->consumed, b->consumed, a->outn, b->outn);
}

/* Whole, every two-way split, one byte at a time: all the same. */
static void decode_l(const char *s, size_t n, const struct pt_parse_limits *l,
		     struct result *whole)
{
	struct result *r = malloc(sizeof(*r));
	size_t *bytes = malloc((n + 1) * sizeof(size_t));

	decode_cuts(s, n, NULL, 0, l, whole);
	for (size_t k = 0; k <= n; k++) {
		decode_cuts(s, n, &k, 1, l, r);
		assert_same(whole, r, k);
		bytes[k] = k;
	}
	decode_cuts(s, n, bytes + 1, n ? n - 1 : 0, l, r);
	assert_same(whole, r, 1);
	free(bytes);
	free(r);
}

static const struct pt_parse_limits *deflim(void)
{
	static struct pt_parse_limits l;
	pt_parse_limits_default(&l);
	return &l;
}

static struct result g_res;

/* Decodes s, checks the splits, expects status and (if not NULL) the body. */
static void expect_l(const char *s, size_t n, const struct pt_parse_limits *l, int status,
		     const char *body, size_t consumed)
{
	decode_l(s, n, l, &g_res);
	assert_int_equal(g_res.status, status);
	if (body) {
		assert_int_equal(g_res.outn, strlen(body));
		assert_memory_equal(g_res.out, body, g_res.outn);
	}
	if (status == PT_CHUNKED_DONE)
		assert_int_equal(g_res.consumed, consumed);
}

#define EXPECT_DONE(s, body) expect_l(s, sizeof(s) - 1, deflim(), PT_CHUNKED_DONE, body, sizeof(s) - 1)

/* ---- valid bodies (RFC 9112 7.1) ---- */

static void test_simple(void **state)
{
	EXPECT_DONE("5\r\nhello\r\n0\r\n\r\n", "hello");
	EXPECT_DONE("0\r\n\r\n", "");
	EXPECT_DONE("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
}

/* chunk-size = 1*HEXDIG, either case, leading zeros, up to 16 digits. */
static void test_hex(void **state)
{
	EXPECT_DONE("a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n", "0123456789abcdefghijk");
	EXPECT_DONE("0005\r\nhello\r\n0000\r\n\r\n", "hello");
	EXPECT_DONE("0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n", "hello");
}

/* RFC 9112 7.1.1: chunk-ext with BWS, tokens and quoted-strings; ignored. */
static void test_extensions(void **state)
{
	EXPECT_DONE("5;a\r\nhello\r\n0;last\r\n\r\n", "hello");
	EXPECT_DONE("5;ab=cd;ef=gh\r\nhello\r\n0\r\n\r\n", "hello");
	EXPECT_DONE("5 ; a = b ; c\r\nhello\r\n0\r\n\r\n", "hello");
	EXPECT_DONE("5\t;\ta\t=\t\"q \\\"x\\\\ \xff\"\r\nhello\r\n0\r\n\r\n", "hello");
	EXPECT_DONE("5;a=\"\";b=\"x\" ;c\r\nhello\r\n0\r\n\r\n", "hello");
	EXPECT_DONE("5;a ;b\r\nhello\r\n0\r\n\r\n", "hello");
}

/* RFC 9112 7.1.2: trailer fields are validated, bounded and discarded. */
static void test_trailers(void **state)
{
	EXPECT_DONE("5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\nZ: \t a b \xf0\r\n\r\n", "hello");
}

/* The decoder stops right after the final CRLF: a pipelined request stays unread. */
static void test_pipelined(void **state)
{
	const char s[] = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
	expect_l(s, sizeof(s) - 1, deflim(), PT_CHUNKED_DONE, "abc", 13);
	assert_int_equal(g_res.consumed, 13);
}

/* Incomplete input: MORE, data delivered as it arrives. */
static void test_partial(void **state)
{
	const char s[] = "10\r\n0123456789";
	expect_l(s, sizeof(s) - 1, deflim(), PT_CHUNKED_MORE, "0123456789", 0);
	assert_int_equal(g_res.consumed, sizeof(s) - 1);
	/* A chunk as large as int64 allows, with no body limit. */
	expect_l("7FFFFFFFFFFFFFFF\r\nab", 20, deflim(), PT_CHUNKED_MORE, "ab", 0);
}

/* RFC 9110 15.5.14: 413 as soon as the declared total passes max_body. */
static void test_max_body(void **state)
{
	struct pt_parse_limits l;
	struct pt_chunked c;
	size_t used;
	struct pt_slice d;

	pt_parse_limits_default(&l);
	l.max_body = 10;
	expect_l("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 25, &l, PT_CHUNKED_DONE, "helloworld", 25);
	expect_l("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", 26, &l, -413, "hello", 0);
	/* Reported at the digit, before any data of that chunk. */
	pt_chunked_init(&c, &l);
	assert_int_equal(pt_chunked_feed(&c, "b", 1, &used, &d), -413);
	assert_int_equal(used, 1);
	/* No limit still means at most INT64_MAX in total. */
	expect_l("8000000000000000\r\n", 18, deflim(), -413, "", 0);
	l.max_body = 0;
	expect_l("7FFFFFFFFFFFFFFF\r\n", 18, &l, PT_CHUNKED_MORE, "", 0);
}

static void test_line_limits(void **state)
{
	struct pt_parse_limits l;

	pt_parse_limits_default(&l);
	l.max_chunk_line = 10; /* "5;abcde\r\n" is 9 bytes */
	expect_l("5;abcde\r\nhello\r\n0\r\n\r\n", 21, &l, PT_CHUNKED_DONE, "hello", 21);
	expect_l("5;abcdef\r\nhello\r\n0\r\n\r\n", 22, &l, PT_CHUNKED_DONE, "hello", 22);
	expect_l("5;abcdefg\r\nhello\r\n0\r\n\r\n", 23, &l, -400, "", 0);
	l.max_trailer = 8; /* "X: 1\r\n\r\n" is 8 bytes */
	expect_l("0\r\nX: 1\r\n\r\n", 11, &l, PT_CHUNKED_DONE, "", 11);
	expect_l("0\r\nX: 12\r\n\r\n", 12, &l, -431, "", 0);
}

/* ---- malformed bodies: all 400 (RFC 9112 7.1) ---- */

struct bad {
	const char *name;
	const char *s;
	size_t n;
};

#define BAD(nm, str) { nm, str, sizeof(str) - 1 }

static const struct bad bad_bodies[] = {
	BAD("size: empty", "\r\nhello\r\n0\r\n\r\n"),
	BAD("size: not hex", "x\r\n"),
	BAD("size: negative", "-5\r\nhello\r\n0\r\n\r\n"),
	BAD("size: plus sign", "+5\r\nhello\r\n0\r\n\r\n"),
	BAD("size: 0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"),
	BAD("size: leading space", " 5\r\nhello\r\n0\r\n\r\n"),
	BAD("size: trailing space (BWS only before ;)", "5 \r\nhello\r\n0\r\n\r\n"),
	BAD("size: 17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n"),
	BAD("size: 17 digits of last chunk", "00000000000000000\r\n\r\n"),
	BAD("size: bare LF", "5\nhello\r\n0\r\n\r\n"),
	BAD("size: CR CR", "5\r\rhello\r\n0\r\n\r\n"),
	BAD("size: NUL", "5\0\r\nhello\r\n0\r\n\r\n"),
	BAD("size: comma", "5,6\r\nhello\r\n0\r\n\r\n"),
	BAD("size: letter after digits", "5g\r\nhello\r\n0\r\n\r\n"),
	BAD("size: last chunk 0x", "0x\r\n\r\n"),
	BAD("size: last chunk 0 then token", "0abcdefg\r\n\r\n"),
	BAD("data: bare LF after", "5\r\nhello\n0\r\n\r\n"),
	BAD("data: no CRLF after", "5\r\nhelloX\r\n0\r\n\r\n"),
	BAD("data: CR then X", "5\r\nhello\rX0\r\n\r\n"),
	BAD("data: shorter than size", "5\r\nhell\r\n0\r\n\r\n"),
	BAD("data: longer than size", "3\r\nhello\r\n0\r\n\r\n"),
	BAD("ext: empty name", "5;\r\nhello\r\n0\r\n\r\n"),
	BAD("ext: no name", "5;=x\r\nhello\r\n0\r\n\r\n"),
	BAD("ext: empty value", "5;a=\r\nhello\r\n0\r\n\r\n"),
	BAD("ext: space in name", "5;a b\r\nhello\r\n0\r\n\r\n"),
	BAD("ext: space in value", "5;a=b c\r\nhello\r\n0\r\n\r\n"),
	BAD("ext: name then space then CRLF", "5;a \r\nhello\r\n0\r\n\r\n"),
	BAD("ext: value then space then CRLF", "5;a=b \r\nhello\r\n0\r\n\r\n"),
	BAD("ext: unterminated quoted-string", "5;a=\"x\r\nhello\r\n0\r\n\r\n"),
	BAD("ext: control in quoted-string", "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n"),
	BAD("ext: control in quoted-pair", "5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n"),
	BAD("ext: text after quoted-string", "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n"),
	BAD("ext: NUL in name", "5;a\0\r\nhello\r\n0\r\n\r\n"),
	BAD("ext: bare LF", "5;a=b\nhello\r\n0\r\n\r\n"),
	BAD("ext: double equals", "5;a==b\r\nhello\r\n0\r\n\r\n"),
	BAD("ext: quote in token", "5;a=b\"\r\nhello\r\n0\r\n\r\n"),
	BAD("trailer: obs-fold", "0\r\nX: y\r\n z\r\n\r\n"),
	BAD("trailer: leading space", "0\r\n X: y\r\n\r\n"),
	BAD("trailer: no colon", "0\r\nX y\r\n\r\n"),
	BAD("trailer: space before colon", "0\r\nX : y\r\n\r\n"),
	BAD("trailer: empty name", "0\r\n: y\r\n\r\n"),
	BAD("trailer: NUL in value", "0\r\nX: a\0\r\n\r\n"),
	BAD("trailer: DEL in value", "0\r\nX: a\x7f\r\n\r\n"),
	BAD("trailer: bare LF", "0\r\nX: a\n\r\n"),
	BAD("trailer: bare CR", "0\r\nX: a\rb\r\n\r\n"),
	BAD("final: bare LF", "0\r\n\n"),
	BAD("final: CR CR", "0\r\n\r\r"),
	BAD("final: missing, a line instead", "0\r\nhello\r\n"),
};

static void test_bad(void **state)
{
	const struct bad *b = *state;
	expect_l(b->s, b->n, deflim(), -400, NULL, 0);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_extensions),
		cmocka_unit_test(test_trailers),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_partial),
		cmocka_unit_test(test_max_body),
		cmocka_unit_test(test_line_limits),
	};
	const size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
	const size_t nbad = sizeof(bad_bodies) / sizeof(bad_bodies[0]);
	struct CMUnitTest *all = calloc(nfixed + nbad, sizeof(*all));

	memcpy(all, fixed, sizeof(fixed));
	for (size_t i = 0; i < nbad; i++)
		all[nfixed + i] = (struct CMUnitTest){ .name = bad_bodies[i].name,
			.test_func = test_bad, .initial_state = (void *)&bad_bodies[i] };
	int r = _cmocka_run_group_tests("http_chunked", all, nfixed + nbad, NULL, NULL);
	free(all);
	return r;
}
