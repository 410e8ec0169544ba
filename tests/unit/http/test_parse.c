/*
 * Unit tests of src/http/parse.c: the strict HTTP/1.1 request-head parser (RFC 9112).
 *
 * Every input is parsed (1) whole, (2) at every split point (each prefix must return
 * AGAIN, or the whole input's error), (3) fed prefix by prefix through a pt_parse_state,
 * with the buffer moving between calls. Every input sits right before a PROT_NONE page,
 * so any read past its end faults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "http/parse.h"

#define MAXH 128

/* ---- inputs placed before a guard page ---- */

struct guard {
	char *base;
	size_t size; /* mapped bytes, the last page PROT_NONE */
};

static void guard_free(struct guard *g)
{
	if (g->base)
		munmap(g->base, g->size);
	g->base = NULL;
}

static void guard_alloc(struct guard *g, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	g->size = (n + page - 1) / page * page + page;
	g->base = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g->base != MAP_FAILED);
	assert_int_equal(mprotect(g->base + g->size - page, page, PROT_NONE), 0);
}

/* Copies s[0..n) so that its last byte is the last readable byte. */
static char *guard_put(struct guard *g, const char *s, size_t n)
{
	char *p = g->base + g->size - (size_t)sysconf(_SC_PAGESIZE) - n;
	memcpy(p, s, n);
	return p;
}

/* ---- parsing helpers ---- */

static struct pt_header g_hdrs[MAXH];
static struct guard g_last; /* the buffer the last successful parse points into */

static int parse_into(const char *buf, size_t len, struct pt_request_head *h,
		      struct pt_header *hdrs, const struct pt_parse_limits *l,
		      struct pt_parse_state *st)
{
	h->headers = hdrs;
	h->nheaders = MAXH;
	return pt_parse_request(buf, len, h, l, st);
}

static int parse_at(const char *buf, size_t len, struct pt_request_head *h,
		    const struct pt_parse_limits *l, struct pt_parse_state *st)
{
	return parse_into(buf, len, h, g_hdrs, l, st);
}

static void assert_slice_in(struct pt_slice s, const char *buf, size_t n)
{
	assert_true(s.p >= buf && s.p + s.n <= buf + n);
}

/* a and b parsed the same bytes at different addresses: same result, same offsets. */
static void assert_same_head(const struct pt_request_head *a, const char *abuf,
			     const struct pt_request_head *b, const char *bbuf)
{
#define SAME(f) do { assert_int_equal(a->f.n, b->f.n); \
	assert_int_equal(a->f.p - abuf, b->f.p - bbuf); } while (0)
	SAME(method); SAME(target); SAME(path); SAME(query); SAME(authority); SAME(host);
	assert_int_equal(a->nheaders, b->nheaders);
	for (unsigned i = 0; i < a->nheaders; i++) {
		SAME(headers[i].name);
		SAME(headers[i].value);
	}
#undef SAME
	assert_int_equal(a->content_length, b->content_length);
	assert_int_equal(a->method_id, b->method_id);
	assert_int_equal(a->target_form, b->target_form);
	assert_int_equal(a->minor_version, b->minor_version);
	assert_int_equal(a->chunked, b->chunked);
	assert_int_equal(a->keep_alive, b->keep_alive);
	assert_int_equal(a->expect_continue, b->expect_continue);
	assert_int_equal(a->upgrade, b->upgrade);
}

/* Split points to try: all for small inputs, a sample for big ones. */
static bool try_split(size_t k, size_t n)
{
	return n <= 2048 || k < 64 || n - k < 64 || k % 97 == 0;
}

/* Every prefix, without a hint: AGAIN, or the whole input's result (once it is
 * reached, every longer prefix gives it too). */
static void check_prefixes(const char *s, size_t n, int whole, const struct pt_parse_limits *l)
{
	struct guard g;
	struct pt_request_head h;
	struct pt_header hdrs[MAXH];
	bool reached = false;

	guard_alloc(&g, n);
	for (size_t k = 0; k < n; k++) {
		if (!try_split(k, n))
			continue;
		int r = parse_into(guard_put(&g, s, k), k, &h, hdrs, l, NULL);
		if (r != PT_PARSE_AGAIN || reached) {
			if (r != whole)
				fail_msg("prefix %zu of %zu: got %d, whole gives %d", k, n, r, whole);
			reached = true;
		}
	}
	guard_free(&g);
}

/* Growing prefixes through one pt_parse_state, the buffer moving each time: the first
 * non-AGAIN result must be the whole input's result, with the same head. */
static void check_resume(const char *s, size_t n, int whole, const struct pt_request_head *wh,
			 const char *wbuf, const struct pt_parse_limits *l)
{
	struct guard g;
	struct pt_request_head h;
	struct pt_header hdrs[MAXH];
	struct pt_parse_state st = { 0 };
	int r = PT_PARSE_AGAIN;
	size_t k;
	char *buf = NULL;

	guard_alloc(&g, n);
	for (k = 1; k <= n && r == PT_PARSE_AGAIN; k++)
		r = parse_into(buf = guard_put(&g, s, k), k, &h, hdrs, l, &st);
	if (r != whole)
		fail_msg("resumed at %zu of %zu: got %d, whole gives %d", k - 1, n, r, whole);
	if (r > 0)
		assert_same_head(&h, buf, wh, wbuf);
	guard_free(&g);
}

/* Parses s whole and checks every split. h points into a buffer valid until the next call. */
static int parse_l(const char *s, size_t n, struct pt_request_head *h,
		   const struct pt_parse_limits *l)
{
	guard_free(&g_last);
	guard_alloc(&g_last, n);
	char *buf = guard_put(&g_last, s, n);
	int r = parse_at(buf, n, h, l, NULL);

	if (r > 0) {
		assert_slice_in(h->method, buf, (size_t)r);
		assert_slice_in(h->target, buf, (size_t)r);
		for (unsigned i = 0; i < h->nheaders; i++)
			assert_slice_in(h->headers[i].value, buf, (size_t)r);
	}
	check_prefixes(s, n, r, l);
	check_resume(s, n, r, h, buf, l);
	return r;
}

static const struct pt_parse_limits *deflim(void)
{
	static struct pt_parse_limits l;
	pt_parse_limits_default(&l);
	return &l;
}

static int parse(const char *s, struct pt_request_head *h)
{
	return parse_l(s, strlen(s), h, deflim());
}

static void assert_slice(struct pt_slice s, const char *want)
{
	if (s.n != strlen(want) || memcmp(s.p, want, s.n) != 0)
		fail_msg("slice \"%.*s\" != \"%s\"", (int)s.n, s.p, want);
}

#define H11 "GET / HTTP/1.1\r\nHost: a\r\n"

/* ---- valid requests ---- */

static void test_simple_get(void **state)
{
	struct pt_request_head h;
	const char *req = "GET /index.html?a=1&b=%20 HTTP/1.1\r\nHost: example.com\r\n"
			  "User-Agent: t/1\r\nAccept: */*\r\n\r\n";

	assert_int_equal(parse(req, &h), strlen(req));
	assert_slice(h.method, "GET");
	assert_int_equal(h.method_id, PT_METHOD_GET);
	assert_slice(h.target, "/index.html?a=1&b=%20");
	assert_slice(h.path, "/index.html");
	assert_slice(h.query, "a=1&b=%20");
	assert_int_equal(h.target_form, PT_TARGET_ORIGIN);
	assert_int_equal(h.minor_version, 1);
	assert_slice(h.host, "example.com");
	assert_slice(h.authority, "example.com");
	assert_int_equal(h.nheaders, 3);
	assert_slice(h.headers[1].name, "User-Agent");
	assert_slice(h.headers[1].value, "t/1");
	assert_int_equal(h.content_length, -1);
	assert_false(h.chunked);
	assert_true(h.keep_alive);
	assert_false(h.expect_continue);
}

/* RFC 9112 2.1: the head ends at the empty line; what follows is not consumed. */
static void test_pipelined(void **state)
{
	struct pt_request_head h;
	const char *req = H11 "\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n";
	int n = parse(req, &h);

	assert_int_equal(n, strlen(H11 "\r\n"));
	assert_int_equal(parse(req + n, &h), strlen(req + n));
	assert_slice(h.path, "/2");
}

/* RFC 9112 9.3: 1.1 is persistent unless "close"; 1.0 only with keep-alive. */
static void test_keep_alive(void **state)
{
	struct pt_request_head h;

	assert_true(parse("GET / HTTP/1.0\r\n\r\n", &h) > 0);
	assert_false(h.keep_alive);
	assert_int_equal(h.minor_version, 0);
	assert_true(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h) > 0);
	assert_true(h.keep_alive);
	assert_true(parse(H11 "Connection: close\r\n\r\n", &h) > 0);
	assert_false(h.keep_alive);
	assert_true(parse(H11 "Connection: keep-alive, CLOSE\r\n\r\n", &h) > 0);
	assert_false(h.keep_alive);
	assert_true(parse(H11 "Connection: ,, foo ,\r\n\r\n", &h) > 0); /* RFC 9110 5.6.1 */
	assert_true(h.keep_alive);
	assert_true(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
			  &h) > 0);
	assert_false(h.keep_alive);
}

/* RFC 9112 3.2: HTTP/1.0 may omit Host. */
static void test_http10_no_host(void **state)
{
	struct pt_request_head h;

	assert_true(parse("GET /x HTTP/1.0\r\nAccept: a\r\n\r\n", &h) > 0);
	assert_int_equal(h.host.n, 0);
	assert_int_equal(h.authority.n, 0);
}

/* RFC 9112 2.2: empty lines before the request line are ignored (at most 4). */
static void test_leading_crlf(void **state)
{
	struct pt_request_head h;

	assert_int_equal(parse("\r\n" H11 "\r\n", &h), strlen("\r\n" H11 "\r\n"));
	assert_slice(h.method, "GET");
	assert_true(parse("\r\n\r\n\r\n\r\n" H11 "\r\n", &h) > 0);
	assert_int_equal(parse("\r\n\r\n\r\n\r\n\r\n" H11 "\r\n", &h), -400);
}

/* RFC 9110 5.5: OWS around the value is not part of it; obs-text is allowed inside. */
static void test_field_values(void **state)
{
	struct pt_request_head h;

	assert_true(parse(H11 "A:  x y \t\r\nB:\r\nC: \t \r\nD: caf\xc3\xa9\x80\xff\r\n"
			  "E:\tv\r\n\r\n", &h) > 0);
	assert_slice(h.headers[1].value, "x y");
	assert_slice(h.headers[2].value, "");
	assert_slice(h.headers[3].value, "");
	assert_slice(h.headers[4].value, "caf\xc3\xa9\x80\xff");
	assert_slice(h.headers[5].value, "v");
	assert_slice(h.headers[5].name, "E");
}

static void test_content_length(void **state)
{
	struct pt_request_head h;

	assert_true(parse("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\nbody", &h) > 0);
	assert_int_equal(h.content_length, 42);
	assert_int_equal(h.method_id, PT_METHOD_POST);
	assert_true(parse(H11 "content-length: 0\r\n\r\n", &h) > 0);
	assert_int_equal(h.content_length, 0);
	assert_true(parse(H11 "Content-Length: 007\r\n\r\n", &h) > 0); /* 1*DIGIT */
	assert_int_equal(h.content_length, 7);
	assert_true(parse(H11 "Content-Length:  5 \r\n\r\n", &h) > 0); /* OWS is not the value */
	assert_int_equal(h.content_length, 5);
	assert_true(parse(H11 "Content-Length: 9223372036854775807\r\n\r\n", &h) > 0);
	assert_int_equal(h.content_length, INT64_MAX);
}

/* RFC 9112 7: chunked is the final coding. */
static void test_chunked_head(void **state)
{
	struct pt_request_head h;

	assert_true(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", &h) > 0);
	assert_true(h.chunked);
	assert_int_equal(h.content_length, -1);
	/* Not Transfer-Encoding: an unrelated field named with an underscore. */
	assert_true(parse(H11 "Transfer_Encoding: chunked\r\n\r\n", &h) > 0);
	assert_false(h.chunked);
}

/* RFC 9112 3.2.2: absolute-form; the target's authority wins over Host. */
static void test_absolute_form(void **state)
{
	struct pt_request_head h;

	assert_true(parse("GET HTTP://Example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
			  &h) > 0);
	assert_int_equal(h.target_form, PT_TARGET_ABSOLUTE);
	assert_slice(h.authority, "Example.com:8080");
	assert_slice(h.host, "other");
	assert_slice(h.path, "/p/q");
	assert_slice(h.query, "x=1");
	assert_true(parse("GET https://[::1]?q HTTP/1.1\r\nHost: x\r\n\r\n", &h) > 0);
	assert_slice(h.authority, "[::1]");
	assert_slice(h.path, "");
	assert_slice(h.query, "q");
	assert_true(parse("GET http://a HTTP/1.0\r\n\r\n", &h) > 0);
	assert_slice(h.authority, "a");
	assert_int_equal(h.path.n, 0);
}

/* RFC 9112 3.2.3-3.2.4: authority-form with CONNECT, asterisk-form with OPTIONS. */
static void test_connect_options(void **state)
{
	struct pt_request_head h;

	assert_true(parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
			  &h) > 0);
	assert_int_equal(h.method_id, PT_METHOD_CONNECT);
	assert_int_equal(h.target_form, PT_TARGET_AUTHORITY);
	assert_slice(h.authority, "example.com:443");
	assert_true(parse("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: h\r\n\r\n", &h) > 0);
	assert_slice(h.authority, "[2001:db8::1]:8443");
	assert_true(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &h) > 0);
	assert_int_equal(h.target_form, PT_TARGET_ASTERISK);
	assert_slice(h.path, "*");
}

/* RFC 9110 10.1.1: 100-continue, any case; ignored on HTTP/1.0. */
static void test_expect(void **state)
{
	struct pt_request_head h;

	assert_true(parse(H11 "Expect: 100-Continue\r\n\r\n", &h) > 0);
	assert_true(h.expect_continue);
	assert_true(parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &h) > 0);
	assert_false(h.expect_continue);
	assert_true(parse("PUT / HTTP/1.0\r\nExpect: foo\r\n\r\n", &h) > 0);
	assert_int_equal(parse(H11 "Expect: foo\r\n\r\n", &h), -417);
}

/* RFC 9110 7.8: Upgrade counts only with "Connection: upgrade" on HTTP/1.1. */
static void test_upgrade(void **state)
{
	struct pt_request_head h;

	assert_true(parse(H11 "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &h) > 0);
	assert_true(h.upgrade);
	assert_true(parse(H11 "Upgrade: websocket\r\n\r\n", &h) > 0);
	assert_false(h.upgrade);
	assert_true(parse("GET / HTTP/1.0\r\nUpgrade: w\r\nConnection: upgrade\r\n\r\n", &h) > 0);
	assert_false(h.upgrade);
}

/* RFC 9110 9.1: methods are case-sensitive tokens. */
static void test_methods(void **state)
{
	static const struct { const char *m; int id; } t[] = {
		{ "GET", PT_METHOD_GET }, { "HEAD", PT_METHOD_HEAD }, { "POST", PT_METHOD_POST },
		{ "PUT", PT_METHOD_PUT }, { "DELETE", PT_METHOD_DELETE },
		{ "OPTIONS", PT_METHOD_OPTIONS }, { "TRACE", PT_METHOD_TRACE },
		{ "PATCH", PT_METHOD_PATCH }, { "get", PT_METHOD_OTHER },
		{ "PROPFIND", PT_METHOD_OTHER }, { "M-SEARCH", PT_METHOD_OTHER },
		{ "GETS", PT_METHOD_OTHER }, { "UPDATEREDIRECTREF", PT_METHOD_OTHER },
	};
	struct pt_request_head h;
	char req[128];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(req, sizeof(req), "%s / HTTP/1.1\r\nHost: a\r\n\r\n", t[i].m);
		assert_int_equal(parse(req, &h), strlen(req));
		assert_int_equal(h.method_id, t[i].id);
		assert_slice(h.method, t[i].m);
	}
}

/* RFC 9110 7.2 / RFC 3986 3.2.2: Host values. */
static void test_host_values(void **state)
{
	static const char *ok[] = { "", "a", "a.b-c_d~e", "127.0.0.1:80", "[::1]", "[::1]:8080",
				    "x:", "%41b", "a!$&'()*+,;=" };
	struct pt_request_head h;
	char req[128];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", ok[i]);
		assert_int_equal(parse(req, &h), strlen(req));
		assert_slice(h.host, ok[i]);
	}
}

/* The character table against the RFC's own lists. */
static void test_ctype_table(void **state)
{
	const char *tchar = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz";
	const char *uri = "-._~!$&'()*+,;=:@/?%[]0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "abcdefghijklmnopqrstuvwxyz";

	for (int c = 1; c < 256; c++) {
		uint8_t t = pt__http_ctype[c];
		assert_int_equal(!!(t & PT_CT_TCHAR), strchr(tchar, c) != NULL);
		assert_int_equal(!!(t & PT_CT_TARGET), strchr(uri, c) != NULL);
		assert_int_equal(!!(t & PT_CT_VALUE), c == '\t' || (c >= ' ' && c != 0x7f));
		assert_int_equal(!!(t & PT_CT_QDTEXT),
				 c == '\t' || (c >= ' ' && c != 0x7f && c != '"' && c != '\\'));
		assert_int_equal(!!(t & PT_CT_HEX), strchr("0123456789abcdefABCDEF", c) != NULL);
	}
	assert_int_equal(pt__http_ctype[0], 0);
}

/* ---- limits (431 / 414 / 413), detected early on partial input ---- */

static void test_limit_head(void **state)
{
	struct pt_parse_limits l;
	struct pt_request_head h;
	char req[20000];

	pt_parse_limits_default(&l);
	int n = snprintf(req, sizeof(req), H11 "X: ");
	memset(req + n, 'a', sizeof(req) - (size_t)n);
	/* A 20 KiB head with no end yet: 431 once max_head bytes are in. */
	assert_int_equal(parse_l(req, sizeof(req), &h, &l), -431);
	assert_int_equal(parse_at(req, 16383, &h, &l, NULL), -431); /* the line: 431 */
	l.max_field = 1 << 20;
	assert_int_equal(parse_at(req, 16383, &h, &l, NULL), PT_PARSE_AGAIN);
	assert_int_equal(parse_at(req, 16384, &h, &l, NULL), -431);
	/* A head of exactly max_head bytes is fine; one more is not. */
	l.max_head = 100;
	n = snprintf(req, sizeof(req), H11 "X: %*s\r\n\r\n", 100 - (int)strlen(H11 "X: \r\n\r\n"), "v");
	assert_int_equal(n, 100);
	assert_int_equal(parse_l(req, 100, &h, &l), 100);
	l.max_head = 99;
	assert_int_equal(parse_l(req, 100, &h, &l), -431);
}

static void test_limit_target(void **state)
{
	struct pt_parse_limits l;
	struct pt_request_head h;
	char req[10000];

	pt_parse_limits_default(&l);
	memcpy(req, "GET /", 5);
	memset(req + 5, 'a', sizeof(req) - 5);
	/* 8192 target bytes may still end; the 8193rd is 414 without waiting for more. */
	assert_int_equal(parse_at(req, 4 + 8192, &h, &l, NULL), PT_PARSE_AGAIN);
	assert_int_equal(parse_at(req, 4 + 8193, &h, &l, NULL), -414);
	assert_int_equal(parse_l(req, sizeof(req), &h, &l), -414);
	l.max_target = 3;
	const char *ok = "GET /ab HTTP/1.1\r\nHost: a\r\n\r\n", *bad = "GET /abc HTTP/1.1\r\n";
	assert_int_equal(parse_l(ok, strlen(ok), &h, &l), strlen(ok));
	assert_int_equal(parse_l(bad, strlen(bad), &h, &l), -414);
}

static void test_limit_fields(void **state)
{
	struct pt_parse_limits l;
	struct pt_request_head h;
	char req[9000];
	struct pt_header few[2];

	pt_parse_limits_default(&l);
	l.max_headers = 3;
	assert_true(parse_l(H11 "A: 1\r\nB: 2\r\n\r\n", strlen(H11 "A: 1\r\nB: 2\r\n\r\n"), &h, &l) > 0);
	assert_int_equal(parse_l(H11 "A: 1\r\nB: 2\r\nC: 3\r\n\r\n",
				 strlen(H11 "A: 1\r\nB: 2\r\nC: 3\r\n\r\n"), &h, &l), -431);
	/* A caller's array too small (within max_headers): PT_PARSE_FIELDS with the count
	 * needed; again with an array that large, the head parses. */
	pt_parse_limits_default(&l);
	h.headers = few;
	h.nheaders = 2;
	assert_int_equal(pt_parse_request(H11 "A: 1\r\n\r\n", strlen(H11 "A: 1\r\n\r\n"), &h, &l,
					  NULL), strlen(H11 "A: 1\r\n\r\n"));
	h.nheaders = 2;
	assert_int_equal(pt_parse_request(H11 "A: 1\r\nB: 2\r\n\r\n",
					  strlen(H11 "A: 1\r\nB: 2\r\n\r\n"), &h, &l, NULL), PT_PARSE_FIELDS);
	assert_int_equal(h.nheaders, 3);
	struct pt_header three[3];
	h.headers = three;
	assert_int_equal(pt_parse_request(H11 "A: 1\r\nB: 2\r\n\r\n",
					  strlen(H11 "A: 1\r\nB: 2\r\n\r\n"), &h, &l, NULL),
			 strlen(H11 "A: 1\r\nB: 2\r\n\r\n"));
	assert_int_equal(h.nheaders, 3);
	/* ... but a bad field after the capacity is still an error, not PT_PARSE_FIELDS */
	h.headers = few;
	h.nheaders = 2;
	assert_int_equal(pt_parse_request(H11 "A: 1\r\nB : 2\r\n\r\n",
					  strlen(H11 "A: 1\r\nB : 2\r\n\r\n"), &h, &l, NULL), -400);
	/* One field line: max_field bytes from name to value end. */
	l.max_field = 10;
	const char *fit = H11 "Abc: 67890\r\n\r\n", *over = H11 "Abc: 678901\r\n\r\n";
	const char *name = H11 "Abcdefghijk: 1\r\n\r\n";
	assert_int_equal(parse_l(fit, strlen(fit), &h, &l), strlen(fit));
	assert_int_equal(parse_l(over, strlen(over), &h, &l), -431);
	assert_int_equal(parse_l(name, strlen(name), &h, &l), -431);
	/* Early: 8192 bytes of one field line may still end, 8193 may not. */
	pt_parse_limits_default(&l);
	int n = snprintf(req, sizeof(req), H11 "X: ");
	memset(req + n, 'v', sizeof(req) - (size_t)n);
	assert_int_equal(parse_at(req, strlen(H11) + 8192, &h, &l, NULL), PT_PARSE_AGAIN);
	assert_int_equal(parse_at(req, strlen(H11) + 8193, &h, &l, NULL), -431);
	assert_int_equal(parse_l(req, sizeof(req), &h, &l), -431);
}

static void test_limit_body(void **state)
{
	struct pt_parse_limits l;
	struct pt_request_head h;

	pt_parse_limits_default(&l);
	l.max_body = 100;
	assert_true(parse_l(H11 "Content-Length: 100\r\n\r\n", strlen(H11 "Content-Length: 100\r\n\r\n"),
			    &h, &l) > 0);
	assert_int_equal(parse_l(H11 "Content-Length: 101\r\n\r\n",
				 strlen(H11 "Content-Length: 101\r\n\r\n"), &h, &l), -413);
}

/* The hint is only a speed-up: feeding one byte at a time gives the same answer, and
 * a stale hint (from a longer buffer) is ignored. */
static void test_resume_hint(void **state)
{
	struct pt_request_head h;
	struct pt_parse_state st = { 0 };
	const char *req = H11 "A: 1\r\nB: 2\r\n\r\n";
	size_t n = strlen(req);

	for (size_t k = 1; k < n; k++)
		assert_int_equal(parse_at(req, k, &h, deflim(), &st), PT_PARSE_AGAIN);
	assert_true(st.line > 0 && st.fields == 3);
	assert_int_equal(parse_at(req, n, &h, deflim(), &st), n);
	st = (struct pt_parse_state){ 1000, 3 };
	assert_int_equal(parse_at(req, n, &h, deflim(), &st), n);
	/* An error in an already complete line is reported by the resume pass. */
	st = (struct pt_parse_state){ 0 };
	assert_int_equal(parse_at(H11 "A\x01: 1\r\n", 20, &h, deflim(), &st), PT_PARSE_AGAIN);
	assert_int_equal(parse_at(H11 "A\x01: 1\r\n", 30, &h, deflim(), &st), -400);
}

/* A request of every size up to 4 KiB ends exactly at the guard page. */
static void test_guard_sizes(void **state)
{
	struct pt_request_head h;
	char req[4200];

	for (int v = 0; v < 4096; v += 37) {
		int n = snprintf(req, sizeof(req), H11 "V: %*s\r\n\r\n", v, "");
		struct guard g;
		guard_alloc(&g, (size_t)n);
		for (int cut = n; cut > n - 6 && cut > 0; cut--) {
			int r = parse_at(guard_put(&g, req, (size_t)cut), (size_t)cut, &h, deflim(), NULL);
			assert_int_equal(r, cut == n ? n : PT_PARSE_AGAIN);
		}
		guard_free(&g);
	}
}

/* ---- malformed requests and smuggling vectors: the status each must get ---- */

struct bad {
	const char *name;
	const char *s;
	size_t n;
	int status;
	size_t max_target, max_field, max_head; /* 0: default */
	unsigned max_headers;
	uint64_t max_body;
};

#define BAD(nm, str, st, ...) \
	{ .name = nm, .s = str, .n = sizeof(str) - 1, .status = -(st), __VA_ARGS__ }
#define CL "POST / HTTP/1.1\r\nHost: a\r\n"

static const struct bad bad_requests[] = {
	/* RFC 9112 3: request-line = method SP request-target SP HTTP-version CRLF */
	BAD("rl: two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("rl: space before CRLF", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
	BAD("rl: tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("rl: no version (0.9)", "GET /\r\n\r\n", 400),
	BAD("rl: empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("rl: method not a token", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("rl: NUL in method", "GE\0T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("rl: method too long (3.1: 501)", "ABCDEFGHIJABCDEFGHIJABCDEFGHIJABC / HTTP/1.1\r\n\r\n", 501),
	BAD("rl: bare LF after version", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
	BAD("rl: bare CR after version", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
	/* RFC 9112 2.3: HTTP-version */
	BAD("ver: lower case", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("ver: 1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
	BAD("ver: HTTP/1", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
	BAD("ver: HTTP/1.x", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400),
	BAD("ver: 1.2 (505)", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
	BAD("ver: 2.0 (505)", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
	BAD("ver: 0.9 (505)", "GET / HTTP/0.9\r\n\r\n", 505),
	/* RFC 9112 2.2: leading empty lines */
	BAD("lead: bare LF", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("lead: CR CR", "\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("lead: five CRLF", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("lead: space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	/* RFC 9112 3.2, RFC 3986: request-target */
	BAD("target: fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: quote", "GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: backslash", "GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: NUL", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: DEL", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: 8-bit", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: tab", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: bad %XX", "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: truncated %X", "GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: bracket in path", "GET /a[1] HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: relative", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: * with GET (3.2.4)", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: authority-form with GET", "GET a.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: CONNECT origin-form (3.2.3)", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: CONNECT without port", "CONNECT a.com HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: userinfo (9110 4.2.4)", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: empty host (9110 4.2.1)", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: other scheme", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target: too long (414)", "GET /abcdefghijk HTTP/1.1\r\nHost: a\r\n\r\n", 414, 8),
	/* RFC 9112 5: field lines */
	BAD("field: space before colon (5.1)", H11 "Foo : bar\r\n\r\n", 400),
	BAD("field: tab before colon (5.1)", H11 "Foo\t: bar\r\n\r\n", 400),
	BAD("field: obs-fold (5.2)", H11 "Foo: bar\r\n baz\r\n\r\n", 400),
	BAD("field: tab obs-fold (5.2)", H11 "Foo: bar\r\n\tbaz\r\n\r\n", 400),
	BAD("field: space before first (2.2)", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
	BAD("field: empty name", H11 ": x\r\n\r\n", 400),
	BAD("field: no colon", H11 "Foo\r\n\r\n", 400),
	BAD("field: name not a token", H11 "Fo(o): x\r\n\r\n", 400),
	BAD("field: 8-bit name", H11 "F\xc3\xb6o: x\r\n\r\n", 400),
	BAD("field: NUL in name", H11 "Fo\0o: x\r\n\r\n", 400),
	BAD("field: NUL in value (9110 5.5)", H11 "Foo: a\0b\r\n\r\n", 400),
	BAD("field: bare CR in value (2.2)", H11 "Foo: a\rb\r\n\r\n", 400),
	BAD("field: bare LF ends line (2.2)", H11 "Foo: a\nBar: b\r\n\r\n", 400),
	BAD("field: bare LF ends head (2.2)", H11 "Foo: a\r\n\n", 400),
	BAD("field: CR CR ends head", H11 "\r\r\n", 400),
	BAD("field: control in value", H11 "Foo: a\x01" "b\r\n\r\n", 400),
	BAD("field: DEL in value", H11 "Foo: a\x7f\r\n\r\n", 400),
	BAD("field: too many (431)", H11 "A: 1\r\nB: 2\r\n\r\n", 431, .max_headers = 2),
	BAD("field: line too long (431)", H11 "Abcdefgh: 1234567890\r\n\r\n", 431, .max_field = 16),
	BAD("head: too long (431)", H11 "Abcdefgh: 1234567890\r\n\r\n", 431, .max_head = 40),
	/* RFC 9112 3.2: Host */
	BAD("host: missing on 1.1", "GET / HTTP/1.1\r\nAccept: a\r\n\r\n", 400),
	BAD("host: two", H11 "Host: a\r\n\r\n", 400),
	BAD("host: two on 1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400),
	BAD("host: space inside", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
	BAD("host: userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
	BAD("host: path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
	BAD("host: bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
	BAD("host: open bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
	BAD("host: slash in IP-literal", "GET / HTTP/1.1\r\nHost: [::1/8]\r\n\r\n", 400),
	BAD("host: bad %XX", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400),
	BAD("host: missing with absolute-form", "GET http://a/ HTTP/1.1\r\n\r\n", 400),
	/* RFC 9110 8.6, RFC 9112 6.3: Content-Length */
	BAD("cl: plus sign", CL "Content-Length: +5\r\n\r\n", 400),
	BAD("cl: negative", CL "Content-Length: -1\r\n\r\n", 400),
	BAD("cl: hex", CL "Content-Length: 0x10\r\n\r\n", 400),
	BAD("cl: two numbers", CL "Content-Length: 5 5\r\n\r\n", 400),
	BAD("cl: list of equal values", CL "Content-Length: 5, 5\r\n\r\n", 400),
	BAD("cl: two equal fields", CL "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
	BAD("cl: two different fields", CL "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
	BAD("cl: empty", CL "Content-Length: \r\n\r\n", 400),
	BAD("cl: decimal point", CL "Content-Length: 1.5\r\n\r\n", 400),
	BAD("cl: trailing letter", CL "Content-Length: 5a\r\n\r\n", 400),
	BAD("cl: space before colon", CL "Content-Length : 5\r\n\r\n", 400),
	BAD("cl: INT64_MAX + 1 (413)", CL "Content-Length: 9223372036854775808\r\n\r\n", 413),
	BAD("cl: 30 digits (413)", CL "Content-Length: 123456789012345678901234567890\r\n\r\n", 413),
	BAD("cl: above max_body (413)", CL "Content-Length: 11\r\n\r\n", 413, .max_body = 10),
	/* RFC 9112 6.1, 6.3, 7: Transfer-Encoding */
	BAD("CL.TE", CL "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
	BAD("TE.CL", CL "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n", 400),
	BAD("TE.CL upper case", CL "TRANSFER-ENCODING: CHUNKED\r\ncontent-length: 6\r\n\r\n", 400),
	BAD("TE.TE xchunked", CL "Transfer-Encoding: xchunked\r\n\r\n", 400),
	BAD("TE.TE chunked, identity", CL "Transfer-Encoding: chunked, identity\r\n\r\n", 400),
	BAD("TE.TE identity", CL "Transfer-Encoding: identity\r\n\r\n", 400),
	BAD("TE.TE chunked twice", CL "Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
	BAD("TE.TE two fields", CL "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	    400),
	BAD("TE.TE chunked then gzip field", CL "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip"
	    "\r\n\r\n", 400),
	BAD("TE.TE obs-fold", CL "Transfer-Encoding:\r\n chunked\r\n\r\n", 400),
	BAD("TE.TE space before colon", CL "Transfer-Encoding : chunked\r\n\r\n", 400),
	BAD("TE.TE vertical tab", CL "Transfer-Encoding: \x0b" "chunked\r\n\r\n", 400),
	BAD("TE.TE quoted", CL "Transfer-Encoding: \"chunked\"\r\n\r\n", 400),
	BAD("TE.TE parameter", CL "Transfer-Encoding: chunked;q=1\r\n\r\n", 400),
	BAD("TE.TE trailing comma", CL "Transfer-Encoding: chunked,\r\n\r\n", 400),
	BAD("TE.TE leading comma", CL "Transfer-Encoding: , chunked\r\n\r\n", 400),
	BAD("TE.TE empty", CL "Transfer-Encoding:\r\n\r\n", 400),
	BAD("TE.TE NUL", CL "Transfer-Encoding: chunked\0\r\n\r\n", 400),
	BAD("TE on HTTP/1.0 (6.1)", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
	BAD("TE gzip, chunked (501)", CL "Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
	/* RFC 9110 7.6.1, 10.1.1: Connection and Expect */
	BAD("connection: not a token", H11 "Connection: close;x\r\n\r\n", 400),
	BAD("expect: unknown (417)", H11 "Expect: 100-continuex\r\n\r\n", 417),
	BAD("expect: other (417)", H11 "Expect: 100-continue, foo\r\n\r\n", 417),
};

static void test_bad(void **state)
{
	const struct bad *b = *state;
	struct pt_parse_limits l;
	struct pt_request_head h;

	pt_parse_limits_default(&l);
	l.max_target = b->max_target ? b->max_target : l.max_target;
	l.max_field = b->max_field ? b->max_field : l.max_field;
	l.max_head = b->max_head ? b->max_head : l.max_head;
	l.max_headers = b->max_headers ? b->max_headers : l.max_headers;
	l.max_body = b->max_body;
	assert_int_equal(parse_l(b->s, b->n, &h, &l), b->status);
}

static int teardown_all(void **state)
{
	guard_free(&g_last);
	return 0;
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_simple_get),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_keep_alive),
		cmocka_unit_test(test_http10_no_host),
		cmocka_unit_test(test_leading_crlf),
		cmocka_unit_test(test_field_values),
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_chunked_head),
		cmocka_unit_test(test_absolute_form),
		cmocka_unit_test(test_connect_options),
		cmocka_unit_test(test_expect),
		cmocka_unit_test(test_upgrade),
		cmocka_unit_test(test_methods),
		cmocka_unit_test(test_host_values),
		cmocka_unit_test(test_ctype_table),
		cmocka_unit_test(test_limit_head),
		cmocka_unit_test(test_limit_target),
		cmocka_unit_test(test_limit_fields),
		cmocka_unit_test(test_limit_body),
		cmocka_unit_test(test_resume_hint),
		cmocka_unit_test(test_guard_sizes),
	};
	const size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
	const size_t nbad = sizeof(bad_requests) / sizeof(bad_requests[0]);
	struct CMUnitTest *all = calloc(nfixed + nbad, sizeof(*all));

	memcpy(all, fixed, sizeof(fixed));
	for (size_t i = 0; i < nbad; i++)
		all[nfixed + i] = (struct CMUnitTest){ .name = bad_requests[i].name,
			.test_func = test_bad, .initial_state = (void *)&bad_requests[i] };
	int r = _cmocka_run_group_tests("http_parse", all, nfixed + nbad, NULL, teardown_all);
	free(all);
	return r;
}
