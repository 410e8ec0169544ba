/*
 * Strict, zero-copy HTTP/1.1 request-head parser (RFC 9112, RFC 9110).
 *
 * Shape: one pass over the bytes, line by line: optional leading CRLFs, the request line,
 * field lines, the empty line. Each line step validates its bytes with one table lookup
 * per byte and returns STEP_MORE when it reaches the end of the input, so an incomplete
 * head is validated as far as it goes. Cross-field rules (Host, Content-Length,
 * Transfer-Encoding, Connection, Expect) are checked once the whole head is there, over
 * the header array.
 *
 * Invariants:
 *  - Nothing beyond buf + min(len, max_head) is ever read.
 *  - Every scan that can grow with the input is bounded by its limit + 1, so an over-long
 *    element is reported as soon as limit + 1 bytes of it have arrived, and a prefix of an
 *    input is never rejected for a reason the whole input would not be.
 *  - Only the final, complete pass writes h; the resume pass (pt_parse_state) only
 *    validates, so the result never depends on the hint.
 */
#include "http/parse.h"
#include "util/defaults.h"
#ifdef _WIN32
#include <ws2tcpip.h>                 /* inet_pton (Windows: Winsock) */
#else
#include <arpa/inet.h>
#endif

#include <limits.h>
#include <string.h>

enum { STEP_OK = 0, STEP_MORE = 1, STEP_END = 2 };

/* Character classes, one table lookup per byte on the hot path (bits in parse.h). */
#define C_TCHAR   PT_CT_TCHAR
#define C_VALUE   PT_CT_VALUE
#define C_TARGET  PT_CT_TARGET
#define C_SPECIAL PT_CT_SPECIAL
#define C_HEX     PT_CT_HEX
#define C_REGNAME PT_CT_REGNAME
#define C_QDTEXT  PT_CT_QDTEXT

#define ALNUM(f) ['0' ... '9'] = (f) | C_HEX, ['A' ... 'F'] = (f) | C_HEX, \
	['a' ... 'f'] = (f) | C_HEX, ['G' ... 'Z'] = (f), ['g' ... 'z'] = (f)
#define VAL (C_VALUE | C_QDTEXT)
#define URI (C_TARGET | C_REGNAME)

const uint8_t pt__http_ctype[256] = {
	['\t'] = VAL, [' '] = VAL,
	ALNUM(C_TCHAR | VAL | URI),
	['!'] = C_TCHAR | VAL | URI, ['"'] = C_VALUE, ['#'] = C_TCHAR | VAL,
	['$'] = C_TCHAR | VAL | URI, ['%'] = C_TCHAR | VAL | URI | C_SPECIAL,
	['&'] = C_TCHAR | VAL | URI, ['\''] = C_TCHAR | VAL | URI,
	['('] = VAL | URI, [')'] = VAL | URI, ['*'] = C_TCHAR | VAL | URI,
	['+'] = C_TCHAR | VAL | URI, [','] = VAL | URI, ['-'] = C_TCHAR | VAL | URI,
	['.'] = C_TCHAR | VAL | URI, ['/'] = VAL | C_TARGET, [':'] = VAL | C_TARGET,
	[';'] = VAL | URI, ['<'] = VAL, ['='] = VAL | URI, ['>'] = VAL,
	['?'] = VAL | C_TARGET | C_SPECIAL, ['@'] = VAL | C_TARGET,
	['['] = VAL | C_TARGET | C_SPECIAL, ['\\'] = C_VALUE,
	[']'] = VAL | C_TARGET | C_SPECIAL, ['^'] = C_TCHAR | VAL,
	['_'] = C_TCHAR | VAL | URI, ['`'] = C_TCHAR | VAL, ['{'] = VAL,
	['|'] = C_TCHAR | VAL, ['}'] = VAL, ['~'] = C_TCHAR | VAL | URI,
	[0x80 ... 0xff] = VAL,
};

#define CT(c) pt__http_ctype[(uint8_t)(c)]

/* RFC 9112 2.2 lets a server ignore empty lines before the request line; we allow a
 * few (browsers add one after a POST body) and reject a stream of them. */
#define MAX_LEADING_CRLF 4
/* RFC 9112 3.1: a method longer than any we implement is 501. The longest registered
 * method (UPDATEREDIRECTREF) has 17 characters. */
#define MAX_METHOD 32

struct ctx {
	const char *buf;
	const char *end;        /* buf + min(len, max_head): nothing past it is read */
	const struct pt_parse_limits *l;
	unsigned max_fields;    /* max_headers: more field lines are 431 */
	unsigned cap;           /* capacity of the caller's array: fields past it are counted
	                           only (PT_PARSE_FIELDS) */
};

void pt_parse_limits_default(struct pt_parse_limits *l)
{
	l->max_head = PT_DEFAULT_MAX_HEAD;
	l->max_target = PT_DEFAULT_MAX_TARGET;
	l->max_field = PT_DEFAULT_MAX_FIELD;
	l->max_headers = PT_DEFAULT_MAX_HEADERS;
	l->max_body = 0;
	l->max_chunk_line = 4096;
	l->max_trailer = PT_DEFAULT_MAX_FIELD;
}

/* Where a scan that may grow to limit + 1 bytes must stop. */
static const char *scan_stop(const char *p, const char *end, size_t limit)
{
	return (size_t)(end - p) > limit ? p + limit + 1 : end;
}

/* Case-insensitive compare with a lower-case literal of letters, digits and "-:/". Used
 * only on validated tokens, targets and field values, which hold no control characters:
 * then c | 0x20 matches such a literal byte only when c is that byte or its upper case. */
static bool ci_eq(const char *p, size_t n, const char *lit, size_t litn)
{
	if (n != litn)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((p[i] | 0x20) != lit[i])
			return false;
	return true;
}

#define CI_EQ(s, lit) ci_eq((s).p, (s).n, lit, sizeof(lit) - 1)

static bool is_token(struct pt_slice s)
{
	size_t i = 0;
	while (i < s.n && (CT(s.p[i]) & C_TCHAR))
		i++;
	return s.n > 0 && i == s.n;
}

/* RFC 9112 2.2: at most MAX_LEADING_CRLF empty lines before the request line. */
static int skip_leading_crlf(const struct ctx *x, const char **pp)
{
	const char *p = *pp;
	for (int i = 0; p < x->end && *p == '\r'; i++, p += 2) {
		if (p + 1 == x->end)
			return STEP_MORE;
		if (p[1] != '\n' || i == MAX_LEADING_CRLF)
			return -400;
	}
	*pp = p;
	return p == x->end ? STEP_MORE : STEP_OK;
}

static uint8_t method_id(const char *p, size_t n)
{
#define IS(lit) (memcmp(p, lit, sizeof(lit) - 1) == 0)
	switch (n) {
	case 3:
		return IS("GET") ? PT_METHOD_GET : IS("PUT") ? PT_METHOD_PUT : PT_METHOD_OTHER;
	case 4:
		return IS("HEAD") ? PT_METHOD_HEAD : IS("POST") ? PT_METHOD_POST : PT_METHOD_OTHER;
	case 5:
		return IS("PATCH") ? PT_METHOD_PATCH : IS("TRACE") ? PT_METHOD_TRACE : PT_METHOD_OTHER;
	case 6:
		return IS("DELETE") ? PT_METHOD_DELETE : PT_METHOD_OTHER;
	case 7:
		return IS("CONNECT") ? PT_METHOD_CONNECT
		     : IS("OPTIONS") ? PT_METHOD_OPTIONS : PT_METHOD_OTHER;
	}
	return PT_METHOD_OTHER;
#undef IS
}

/* RFC 9112 3: method = token, then exactly one SP (no other whitespace). */
static int parse_method(const struct ctx *x, const char **pp, struct pt_request_head *h)
{
	const char *p = *pp, *q = p, *stop = scan_stop(p, x->end, MAX_METHOD);

	while (q < stop && (CT(*q) & C_TCHAR))
		q++;
	if (q == stop)
		return q - p > MAX_METHOD ? -501 : STEP_MORE;
	if (*q != ' ' || q == p)
		return -400;
	h->method = (struct pt_slice){ p, (size_t)(q - p) };
	h->method_id = method_id(p, (size_t)(q - p));
	*pp = q + 1;
	return STEP_OK;
}

/* True if every '%' in s starts a %XX triplet (RFC 3986 2.1). */
static bool pct_valid(const char *p, size_t n)
{
	const char *end = p + n;
	while ((p = memchr(p, '%', (size_t)(end - p))) != NULL) {
		if (end - p < 3 || !(CT(p[1]) & C_HEX) || !(CT(p[2]) & C_HEX))
			return false;
		p += 3;
	}
	return true;
}

/* RFC 3986 3.2.2: IP-literal = "[" ( IPv6address / IPvFuture ) "]", given without the
 * brackets. IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ). No zone IDs. */
static bool valid_ip_literal(const char *p, size_t n)
{
	char buf[INET6_ADDRSTRLEN];
	unsigned char addr[16];
	size_t i = 1;

	if (n > 1 && (p[0] == 'v' || p[0] == 'V')) {
		while (i < n && (CT(p[i]) & C_HEX))
			i++;
		if (i == 1 || i >= n - 1 || p[i] != '.')
			return false;
		for (i++; i < n; i++)
			if ((!(CT(p[i]) & C_REGNAME) || p[i] == '%') && p[i] != ':')
				return false;
		return true;
	}
	if (n >= sizeof buf)
		return false;
	memcpy(buf, p, n);
	buf[n] = 0;
	return inet_pton(AF_INET6, buf, addr) == 1;
}

/* RFC 3986 3.2.2-3.2.3: uri-host [ ":" port ], host an IP-literal or a reg-name
 * (an IPv4 address is a reg-name lexically). No userinfo: RFC 9110 4.2.4. */
static bool valid_authority(const char *p, size_t n, bool need_host, bool need_port)
{
	size_t i = 0, port;
	bool pct = false;

	if (n > 0 && p[0] == '[') {
		for (i = 1; i < n && p[i] != ']'; i++) {
			if (!(CT(p[i]) & C_REGNAME) && p[i] != ':')
				return false;
			pct |= p[i] == '%';
		}
		if (i == n || i == 1 || !valid_ip_literal(p + 1, i - 1))
			return false;
		i++;
		pct = false;
	} else {
		while (i < n && (CT(p[i]) & C_REGNAME))
			i++;
		pct = i && memchr(p, '%', i);     /* rare: not tracked byte by byte */
		if (need_host && i == 0)
			return false;
	}
	if (pct && !pct_valid(p, i))
		return false;
	if (i == n)
		return !need_port;
	if (p[i] != ':')
		return false;
	for (port = ++i; i < n && p[i] >= '0' && p[i] <= '9'; i++)
		;
	return i == n && (i > port || !need_port);
}

/* Splits "path?query" (RFC 9112 3.2.1); '[' and ']' are not allowed there. special:
 * whether any of "%?[]" occurs (if not, there is nothing to look for). */
static int split_path(struct pt_request_head *h, const char *p, size_t n, bool special)
{
	const char *q = special ? memchr(p, '?', n) : NULL;

	if (special && (memchr(p, '[', n) || memchr(p, ']', n)))
		return -400;
	h->path = (struct pt_slice){ p, q ? (size_t)(q - p) : n };
	h->query = q ? (struct pt_slice){ q + 1, n - (size_t)(q - p) - 1 }
		     : (struct pt_slice){ p + n, 0 };
	return STEP_OK;
}

/* RFC 9112 3.2.2: absolute-form; we take http and https URIs only (RFC 9110 4.2),
 * with a non-empty host (RFC 9110 4.2.1) and no userinfo (RFC 9110 4.2.4). */
static int absolute_form(struct pt_request_head *h, bool special)
{
	const char *p = h->target.p, *end = p + h->target.n, *a;

	if (h->target.n >= 7 && ci_eq(p, 7, "http://", 7))
		a = p + 7;
	else if (h->target.n >= 8 && ci_eq(p, 8, "https://", 8))
		a = p + 8;
	else
		return -400;
	const char *e = a;
	while (e < end && *e != '/' && *e != '?')
		e++;
	if (!valid_authority(a, (size_t)(e - a), true, false))
		return -400;
	h->authority = (struct pt_slice){ a, (size_t)(e - a) };
	h->target_form = PT_TARGET_ABSOLUTE;
	return split_path(h, e, (size_t)(end - e), special);
}

/* RFC 9112 3.2: which target form, and which method may use it. */
static int classify_target(struct pt_request_head *h, bool special)
{
	const struct pt_slice t = h->target;

	if (special && !pct_valid(t.p, t.n))
		return -400;
	if (h->method_id == PT_METHOD_CONNECT) { /* 3.2.3: authority-form only */
		if (!valid_authority(t.p, t.n, true, true))
			return -400;
		h->authority = t;
		h->path = h->query = (struct pt_slice){ t.p + t.n, 0 };
		h->target_form = PT_TARGET_AUTHORITY;
		return STEP_OK;
	}
	if (t.p[0] == '/')
		return split_path(h, t.p, t.n, special);
	if (t.n == 1 && t.p[0] == '*') { /* 3.2.4: asterisk-form, OPTIONS only */
		if (h->method_id != PT_METHOD_OPTIONS)
			return -400;
		h->path = t;
		h->target_form = PT_TARGET_ASTERISK;
		return STEP_OK;
	}
	return absolute_form(h, special);
}

/* RFC 9112 3.2: request-target, then exactly one SP. RFC 9112 3: 414 when too long. */
static int parse_target(const struct ctx *x, const char **pp, struct pt_request_head *h)
{
	const char *p = *pp, *q = p, *stop = scan_stop(p, x->end, x->l->max_target);
	unsigned seen = 0, c;

	while (q < stop && ((c = CT(*q)) & C_TARGET)) {
		seen |= c;
		q++;
	}
	if (q == stop)
		return (size_t)(q - p) > x->l->max_target ? -414 : STEP_MORE;
	if (*q != ' ' || q == p)
		return -400;
	h->target = (struct pt_slice){ p, (size_t)(q - p) };
	*pp = q + 1;
	return classify_target(h, seen & C_SPECIAL);
}

/* RFC 9112 2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive, then CRLF.
 * Well-formed versions other than 1.0 and 1.1 are 505, anything else 400. */
static int parse_version(const struct ctx *x, const char **pp, struct pt_request_head *h)
{
	static const char pat[] = "HTTP/#.#\r\n";
	const char *p = *pp;
	size_t n = (size_t)(x->end - p) < 10 ? (size_t)(x->end - p) : 10;

	if (n == 10 && !memcmp(p, "HTTP/1.", 7) && (p[7] == '1' || p[7] == '0') &&
	    p[8] == '\r' && p[9] == '\n') {      /* the usual case, in one comparison */
		h->minor_version = (uint8_t)(p[7] - '0');
		*pp = p + 10;
		return STEP_OK;
	}
	for (size_t i = 0; i < n; i++)
		if (pat[i] == '#' ? p[i] < '0' || p[i] > '9' : p[i] != pat[i])
			return -400;
	if (n < 10)
		return STEP_MORE;
	if (p[5] != '1' || p[7] > '1')
		return -505;
	h->minor_version = (uint8_t)(p[7] - '0');
	*pp = p + 10;
	return STEP_OK;
}

/* RFC 9112 3: request-line = method SP request-target SP HTTP-version CRLF */
static int parse_request_line(const struct ctx *x, const char **pp, struct pt_request_head *h)
{
	int r = parse_method(x, pp, h);
	if (r == STEP_OK)
		r = parse_target(x, pp, h);
	if (r == STEP_OK)
		r = parse_version(x, pp, h);
	return r;
}

/* Scans field-value bytes from p, at most to stop. Word-at-a-time: a word with no byte
 * below 0x20 and no 0x7f is all VCHAR/obs-text/SP; HTAB and the rest take the table. */
const char *pt__scan_value(const char *p, const char *stop)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;

	while (stop - p >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		uint64_t lo = (w - ones * 0x20) & ~w;          /* high bit: byte < 0x20 */
		uint64_t del = ((w ^ ones * 0x7f) - ones) & ~(w ^ ones * 0x7f); /* byte == 0x7f */
		if ((lo | del) & highs)
			break;
		p += 8;
	}
	while (p < stop && (CT(*p) & C_VALUE))
		p++;
	return p;
}

/* The value part of a field line, from just after the colon (RFC 9112 5, RFC 9110 5.5):
 * OWS field-value OWS CRLF. NUL, bare CR and LF, other controls and DEL are 400.
 * On success *pp moves past the CRLF. capped: stop is the max_field bound, not the end. */
static int parse_value(const struct ctx *x, const char **pp, const char *stop, bool capped,
		       struct pt_header *f)
{
	const char *v = *pp, *e;

	while (v < stop && (*v == ' ' || *v == '\t'))
		v++;
	e = pt__scan_value(v, stop);
	if (e == stop)
		return capped ? -431 : STEP_MORE;
	if (*e != '\r')
		return -400;
	if (e + 1 == x->end)
		return STEP_MORE;
	if (e[1] != '\n')
		return -400;
	*pp = e + 2;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	f->value = (struct pt_slice){ v, (size_t)(e - v) };
	return STEP_OK;
}

/* One field line (RFC 9112 5): field-name ":" OWS field-value OWS CRLF, or the empty line
 * that ends the head (STEP_END). f receives the field; NULL when max_fields is reached,
 * then any further field is 431. A line starting with SP or HTAB is 400: obs-fold
 * (RFC 9112 5.2), or whitespace before the first field (RFC 9112 2.2). RFC 9112 5.1: no
 * whitespace between name and colon. */
static int parse_field_line(const struct ctx *x, const char **pp, struct pt_header *f)
{
	const char *p = *pp, *q = p, *stop = scan_stop(p, x->end, x->l->max_field);
	bool capped = (size_t)(stop - p) > x->l->max_field;

	if (p == x->end || (*p == '\r' && p + 1 == x->end))
		return STEP_MORE;
	if (*p == '\r') {
		*pp = p + 2;
		return p[1] == '\n' ? STEP_END : -400;
	}
	if (!(CT(*p) & C_TCHAR))
		return -400;
	if (!f)
		return -431;
	while (q < stop && (CT(*q) & C_TCHAR))
		q++;
	if (q == stop)
		return capped ? -431 : STEP_MORE;
	if (*q != ':')
		return -400;
	f->name = (struct pt_slice){ p, (size_t)(q - p) };
	*pp = q + 1;
	int r = parse_value(x, pp, stop, capped, f);
	if (r != STEP_OK)
		*pp = p;
	return r;
}

/* Field lines up to the empty line. out == NULL: validate only. On STEP_MORE, *pp is the
 * start of the incomplete line and *n the number of complete fields before it. */
static int parse_fields(const struct ctx *x, const char **pp, struct pt_header *out,
			unsigned *n)
{
	struct pt_header scratch;

	for (;;) {
		struct pt_header *f = *n >= x->max_fields ? NULL :
				      out && *n < x->cap ? &out[*n] : &scratch;
		int r = parse_field_line(x, pp, f);
		if (r != STEP_OK)
			return r;
		(*n)++;
	}
}

/* What the fields say, gathered in one pass over the header array. */
struct sem {
	const struct pt_header *host;
	unsigned nhost, ncl;
	uint64_t cl;
	bool cl_big;
	bool te, te_chunked, te_after_chunked, te_other;
	bool close, keep_alive, conn_upgrade, upgrade;
	bool expect_continue, expect_other;
};

/* One element of a #list (RFC 9110 5.6.1) from *it, OWS trimmed; false at the end. */
static bool list_next(struct pt_slice *it, struct pt_slice *el)
{
	if (!it->p)
		return false;
	const char *end = it->p + it->n, *c = memchr(it->p, ',', it->n);
	const char *b = it->p, *e = c ? c : end;
	while (b < e && (*b == ' ' || *b == '\t'))
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*el = (struct pt_slice){ b, (size_t)(e - b) };
	*it = c ? (struct pt_slice){ c + 1, (size_t)(end - c - 1) } : (struct pt_slice){ NULL, 0 };
	return true;
}

/* RFC 9110 8.6: Content-Length = 1*DIGIT. We allow exactly one such field with one value:
 * a list ("5, 5"), a sign, spaces or hex are 400. Overflow is remembered (413 later). */
static int note_content_length(struct sem *s, struct pt_slice v)
{
	uint64_t n = 0;

	if (v.n == 0 || s->ncl++)
		return -400;
	for (size_t i = 0; i < v.n; i++) {
		unsigned d = (unsigned)(uint8_t)v.p[i] - '0';
		if (d > 9)
			return -400;
		if (n > ((uint64_t)INT64_MAX - d) / 10)
			s->cl_big = true;
		n = n * 10 + d;
	}
	s->cl = n;
	return 0;
}

/* RFC 9112 6.1, 7: Transfer-Encoding is a list of codings applied in order. We take
 * bare tokens only (no parameters, no empty elements); "chunked" must be last and
 * appear once (checked in check_framing). */
static int note_transfer_encoding(struct sem *s, struct pt_slice v)
{
	struct pt_slice el;

	s->te = true;
	while (list_next(&v, &el)) {
		if (!is_token(el))
			return -400;
		if (s->te_chunked)
			s->te_after_chunked = true;
		if (CI_EQ(el, "chunked"))
			s->te_chunked = true;
		else
			s->te_other = true;
	}
	return 0;
}

/* RFC 9110 7.6.1: Connection = #connection-option (tokens, case-insensitive). */
static int note_connection(struct sem *s, struct pt_slice v)
{
	struct pt_slice el;

	while (list_next(&v, &el)) {
		if (el.n == 0)
			continue;
		if (!is_token(el))
			return -400;
		s->close |= CI_EQ(el, "close");
		s->keep_alive |= CI_EQ(el, "keep-alive");
		s->conn_upgrade |= CI_EQ(el, "upgrade");
	}
	return 0;
}

/* RFC 9110 10.1.1: the only expectation is 100-continue (case-insensitive). */
static void note_expect(struct sem *s, struct pt_slice v)
{
	struct pt_slice el;

	while (list_next(&v, &el)) {
		if (CI_EQ(el, "100-continue"))
			s->expect_continue = true;
		else if (el.n)
			s->expect_other = true;
	}
}

static int note_field(struct sem *s, const struct pt_header *f)
{
	switch (f->name.n) {
	case 4:
		if (CI_EQ(f->name, "host")) {
			s->host = f;
			s->nhost++;
		}
		return 0;
	case 6:
		if (CI_EQ(f->name, "expect"))
			note_expect(s, f->value);
		return 0;
	case 7:
		s->upgrade |= CI_EQ(f->name, "upgrade");
		return 0;
	case 10:
		return CI_EQ(f->name, "connection") ? note_connection(s, f->value) : 0;
	case 14:
		return CI_EQ(f->name, "content-length") ? note_content_length(s, f->value) : 0;
	case 17:
		return CI_EQ(f->name, "transfer-encoding") ? note_transfer_encoding(s, f->value) : 0;
	}
	return 0;
}

/* RFC 9112 6.1, 6.3 and 7: how the body is framed. */
static int check_framing(const struct sem *s, const struct pt_request_head *h,
			 const struct pt_parse_limits *l)
{
	if (s->te) {
		if (h->minor_version == 0) /* 6.1: faulty framing on HTTP/1.0 */
			return -400;
		if (s->ncl)                /* 6.3: CL with TE is a smuggling vector */
			return -400;
		if (!s->te_chunked || s->te_after_chunked) /* 6.3: chunked must be final; 7: once */
			return -400;
		if (s->te_other)           /* 6.1: a coding we do not implement */
			return -501;
	}
	if (s->ncl && (s->cl_big || (l->max_body && s->cl > l->max_body)))
		return -413;
	return 0;
}

/* Cross-field rules, once the head is complete; fills the summary fields of h. */
static int check_fields(struct pt_request_head *h, unsigned n, const struct pt_parse_limits *l)
{
	struct sem s = { 0 };
	int r;

	for (unsigned i = 0; i < n; i++)
		if ((r = note_field(&s, &h->headers[i])) < 0)
			return r;
	/* RFC 9112 3.2: exactly one Host on 1.1, never two, and a valid value. */
	if (s.nhost > 1 || (s.nhost == 0 && h->minor_version == 1))
		return -400;
	if (s.host && !valid_authority(s.host->value.p, s.host->value.n, false, false))
		return -400;
	if ((r = check_framing(&s, h, l)) < 0)
		return r;
	if (h->minor_version == 1 && s.expect_other) /* RFC 9110 10.1.1 */
		return -417;
	if (s.host) {
		h->host = s.host->value;
		if (h->target_form == PT_TARGET_ORIGIN || h->target_form == PT_TARGET_ASTERISK)
			h->authority = s.host->value;  /* not from h->host, just stored */
	}
	h->content_length = s.ncl ? (int64_t)s.cl : -1;
	h->chunked = s.te;
	h->keep_alive = !s.close && (h->minor_version == 1 || s.keep_alive);
	h->expect_continue = h->minor_version == 1 && s.expect_continue;
	h->upgrade = h->minor_version == 1 && s.upgrade && s.conn_upgrade;
	return 0;
}

static void head_reset(struct pt_request_head *h, const char *buf)
{
	struct pt_slice *all[] = { &h->method, &h->target, &h->path, &h->query, &h->authority,
				   &h->host };

	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		all[i]->p = buf;          /* field by field: a struct copy here was built on the
					     stack and reloaded as a vector (a store-forwarding stall) */
		all[i]->n = 0;
	}
	h->content_length = -1;
	h->method_id = PT_METHOD_OTHER;
	h->target_form = PT_TARGET_ORIGIN;
	h->minor_version = 0;
	h->chunked = h->keep_alive = h->expect_continue = h->upgrade = false;
}

/* The full pass from byte 0. On STEP_END, *size is the head's length. */
static int parse_head(const struct ctx *x, struct pt_request_head *h,
		      struct pt_parse_state *st, size_t *size)
{
	const char *p = x->buf;
	unsigned n = 0;
	int r = skip_leading_crlf(x, &p);

	if (r == STEP_OK)
		r = parse_request_line(x, &p, h);
	if (r != STEP_OK)
		return r;
	r = parse_fields(x, &p, h->headers, &n);
	if (r == STEP_MORE && st)
		*st = (struct pt_parse_state){ (size_t)(p - x->buf), n };
	if (r != STEP_END)
		return r;
	h->nheaders = n;
	if (n > x->cap)
		return PT_PARSE_FIELDS;
	*size = (size_t)(p - x->buf);
	r = check_fields(h, n, x->l);
	return r < 0 ? r : STEP_END;
}

/* Validates only the lines not validated by earlier calls. */
static int resume(const struct ctx *x, struct pt_parse_state *st)
{
	const char *p = x->buf + st->line;
	unsigned n = st->fields;
	int r = parse_fields(x, &p, NULL, &n);

	if (r == STEP_MORE)
		*st = (struct pt_parse_state){ (size_t)(p - x->buf), n };
	return r;
}

int pt_parse_request(const char *buf, size_t len, struct pt_request_head *h,
		     const struct pt_parse_limits *l, struct pt_parse_state *st)
{
	const size_t max = l->max_head < INT_MAX ? l->max_head : INT_MAX;
	const size_t avail = len < max ? len : max;
	struct ctx x = { buf, buf + avail, l, l->max_headers, h->nheaders };
	size_t size = 0;
	int r = STEP_END;

	if (len == 0)
		return max ? PT_PARSE_AGAIN : -431;
	if (st && (st->line > avail || st->fields > x.max_fields))
		*st = (struct pt_parse_state){ 0, 0 };
	if (st && st->line)
		r = resume(&x, st);
	if (r == STEP_END) {
		head_reset(h, buf);
		r = parse_head(&x, h, st, &size);
	}
	if (r == STEP_MORE)
		return len >= max ? -431 : PT_PARSE_AGAIN;
	return r == STEP_END ? (int)size : r;
}
