// fuzz-sources: src/http/parse.c src/http/chunked.c
/*
 * libFuzzer target for the request-head parser (src/http/parse.c), and for the chunked
 * decoder on whatever body follows a chunked head.
 *
 * Each input is parsed with the default limits and with tight ones. Invariants checked
 * (a violation aborts):
 *  - the result is a length <= len and <= max_head, AGAIN, or one of the documented
 *    statuses; every slice of a parsed head lies inside the head;
 *  - every prefix tried gives AGAIN or the whole input's result (AGAIN if shorter than
 *    the parsed head, the same length if not);
 *  - feeding growing prefixes through a pt_parse_state (the buffer moving each time)
 *    gives the same result and the same head as parsing the whole input at once;
 *  - a parsed head is self-consistent (chunked excludes Content-Length, etc.);
 *  - the raw bytes of an accepted head, read independently of the parser, obey the
 *    smuggling rules: CRLF only, no controls, no folding, token names with the colon
 *    right after them, one all-digit Content-Length, Transfer-Encoding means chunked.
 * Every buffer handed to the parser is a heap copy of exactly its length, so ASan
 * reports any read past its end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/parse.h"

#define MAXH 64

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
	abort(); } } while (0)

struct run {
	struct pt_request_head h;
	struct pt_header hdrs[MAXH];
	const char *buf;
	int r;
};

static char *dup_bytes(const uint8_t *data, size_t n)
{
	char *p = malloc(n ? n : 1);
	CHECK(p != NULL);
	memcpy(p, data, n);
	return p;
}

static int parse(const char *buf, size_t len, struct run *x, const struct pt_parse_limits *l,
		 struct pt_parse_state *st)
{
	x->h.headers = x->hdrs;
	x->h.nheaders = MAXH;
	x->buf = buf;
	return x->r = pt_parse_request(buf, len, &x->h, l, st);
}

static bool status_ok(int r)
{
	static const int ok[] = { -400, -413, -414, -417, -431, -501, -505 };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (r == ok[i])
			return true;
	return r >= 0;
}

static void check_slice(struct pt_slice s, const char *buf, int r)
{
	CHECK(s.p >= buf && s.n <= (size_t)r && s.p + s.n <= buf + r);
}

static void check_head(const struct run *x, size_t len, const struct pt_parse_limits *l)
{
	const struct pt_request_head *h = &x->h;
	int r = x->r;

	if (r == PT_PARSE_FIELDS) {     /* more fields than hdrs[] holds, within the limit */
		CHECK(h->nheaders > MAXH && h->nheaders <= l->max_headers);
		return;
	}
	CHECK(status_ok(r));
	if (r <= 0)
		return;
	CHECK((size_t)r <= len && (size_t)r <= l->max_head);
	CHECK(r >= 16 && memcmp(x->buf + r - 4, "\r\n\r\n", 4) == 0);
	check_slice(h->method, x->buf, r);
	check_slice(h->target, x->buf, r);
	check_slice(h->path, x->buf, r);
	check_slice(h->query, x->buf, r);
	check_slice(h->authority, x->buf, r);
	check_slice(h->host, x->buf, r);
	CHECK(h->nheaders <= MAXH && h->nheaders <= l->max_headers);
	for (unsigned i = 0; i < h->nheaders; i++) {
		check_slice(h->headers[i].name, x->buf, r);
		check_slice(h->headers[i].value, x->buf, r);
		CHECK(h->headers[i].name.n > 0 && h->headers[i].name.n <= l->max_field);
	}
	CHECK(h->method.n > 0 && h->target.n > 0 && h->target.n <= l->max_target);
	CHECK(h->minor_version <= 1);
	CHECK(h->content_length >= -1);
	CHECK(!h->chunked || (h->content_length == -1 && h->minor_version == 1));
	CHECK(!l->max_body || h->content_length <= (int64_t)l->max_body);
	CHECK((h->method_id == PT_METHOD_CONNECT) == (h->target_form == PT_TARGET_AUTHORITY));
	CHECK(h->target_form != PT_TARGET_ASTERISK || h->method_id == PT_METHOD_OPTIONS);
}

static bool is_tchar(uint8_t c)
{
	return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static bool name_is(struct pt_slice n, const char *lit)
{
	return n.n == strlen(lit) && strncasecmp(n.p, lit, n.n) == 0;
}

/* Properties of the raw bytes of an accepted head, checked without the parser's code. */
static void check_raw(const struct run *x)
{
	const uint8_t *b = (const uint8_t *)x->buf;
	const struct pt_request_head *h = &x->h;
	unsigned lines = 0, ncl = 0, nte = 0;

	for (int i = 0; i < x->r; i++) {
		CHECK(b[i] >= 0x20 || b[i] == '\t' || b[i] == '\r' || b[i] == '\n');
		CHECK(b[i] != 0x7f);
		if (b[i] == '\r')
			CHECK(i + 1 < x->r && b[i + 1] == '\n');
		if (b[i] == '\n') {
			CHECK(i > 0 && b[i - 1] == '\r');
			CHECK(i + 1 == x->r || (b[i + 1] != ' ' && b[i + 1] != '\t'));
			lines++;
		}
	}
	CHECK(lines >= h->nheaders + 2 && lines <= h->nheaders + 2 + 4);
	for (unsigned i = 0; i < h->nheaders; i++) {
		struct pt_slice n = h->headers[i].name, v = h->headers[i].value;
		for (size_t k = 0; k < n.n; k++)
			CHECK(is_tchar((uint8_t)n.p[k]));
		CHECK(n.p[n.n] == ':' && (n.p == x->buf || n.p[-1] == '\n'));
		if (name_is(n, "content-length")) {
			ncl++;
			CHECK(v.n > 0 && strspn(v.p, "0123456789") >= v.n);
		}
		nte += name_is(n, "transfer-encoding");
	}
	CHECK(ncl <= 1 && !(ncl && nte));
	CHECK(h->chunked == (nte > 0));
	CHECK((h->content_length >= 0) == (ncl == 1));
}

#define SAME_SLICE(f) CHECK(a->h.f.n == b->h.f.n && a->h.f.p - a->buf == b->h.f.p - b->buf)

static void check_same(const struct run *a, const struct run *b)
{
	CHECK(a->r == b->r);
	if (a->r <= 0)
		return;
	SAME_SLICE(method); SAME_SLICE(target); SAME_SLICE(path); SAME_SLICE(query);
	SAME_SLICE(authority); SAME_SLICE(host);
	CHECK(a->h.nheaders == b->h.nheaders);
	for (unsigned i = 0; i < a->h.nheaders; i++) {
		SAME_SLICE(headers[i].name);
		SAME_SLICE(headers[i].value);
	}
	CHECK(a->h.content_length == b->h.content_length && a->h.chunked == b->h.chunked);
	CHECK(a->h.keep_alive == b->h.keep_alive && a->h.method_id == b->h.method_id);
	CHECK(a->h.expect_continue == b->h.expect_continue && a->h.upgrade == b->h.upgrade);
	CHECK(a->h.target_form == b->h.target_form && a->h.minor_version == b->h.minor_version);
}

/* A prefix of k bytes: AGAIN, or exactly the whole input's result. */
static void check_prefix(const uint8_t *data, size_t k, const struct run *whole,
			 const struct pt_parse_limits *l)
{
	struct run *x = malloc(sizeof(*x));
	char *buf = dup_bytes(data, k);
	int r = parse(buf, k, x, l, NULL);

	if (whole->r > 0)
		CHECK(r == ((int)k < whole->r ? PT_PARSE_AGAIN : whole->r));
	else
		CHECK(r == PT_PARSE_AGAIN || r == whole->r);
	free(buf);
	free(x);
}

/* Growing prefixes (cut at a, b, then all) through one state, each in a new buffer. */
static void check_resume(const uint8_t *data, size_t len, size_t a, size_t b,
			 const struct run *whole, const struct pt_parse_limits *l)
{
	const size_t cuts[3] = { a, b, len };
	struct pt_parse_state st = { 0, 0 };
	struct run *x = malloc(sizeof(*x));
	char *buf = NULL;

	x->r = PT_PARSE_AGAIN;
	for (int i = 0; i < 3 && x->r == PT_PARSE_AGAIN; i++) {
		free(buf);
		buf = dup_bytes(data, cuts[i]);
		parse(buf, cuts[i], x, l, &st);
	}
	check_same(x, whole);
	free(buf);
	free(x);
}

/* The body after a chunked head: the decoder never outputs more than it is given. */
static void check_body(const char *p, size_t n, const struct pt_parse_limits *l)
{
	struct pt_chunked c;
	size_t off = 0, out = 0, used;
	struct pt_slice d;
	int r = PT_CHUNKED_MORE;

	pt_chunked_init(&c, l);
	while (off < n && r == PT_CHUNKED_MORE) {
		r = pt_chunked_feed(&c, p + off, n - off, &used, &d);
		CHECK(used <= n - off && d.n <= used && d.p >= p + off);
		off += used;
		out += d.n;
	}
	CHECK(out <= n && off <= n);
}

static void one(const uint8_t *data, size_t len, const struct pt_parse_limits *l)
{
	struct run *whole = malloc(sizeof(*whole));
	char *buf = dup_bytes(data, len);

	parse(buf, len, whole, l, NULL);
	check_head(whole, len, l);
	if (whole->r > 0)
		check_raw(whole);
	size_t a = len / 3, b = len - len / 4;
	check_prefix(data, a, whole, l);
	check_prefix(data, b, whole, l);
	if (whole->r > 1) {
		check_prefix(data, (size_t)whole->r - 1, whole, l);
		check_prefix(data, (size_t)whole->r - 2, whole, l);
	}
	check_resume(data, len, a, b, whole, l);
	if (whole->r > 0 && whole->h.chunked)
		check_body(buf + whole->r, len - (size_t)whole->r, l);
	free(buf);
	free(whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pt_parse_limits l;

	pt_parse_limits_default(&l);
	one(data, size, &l);
	l.max_head = 200;
	l.max_target = 40;
	l.max_field = 48;
	l.max_headers = 6;
	l.max_body = 1000;
	l.max_chunk_line = 24;
	l.max_trailer = 32;
	one(data, size, &l);
	return 0;
}
