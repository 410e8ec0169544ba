/* HTTP/1.1 response parser (see resp.h). */
#include "resp.h"
#include <string.h>

enum { CS_SIZE, CS_EXT, CS_SIZE_LF, CS_DATA, CS_DATA_CR, CS_DATA_LF, CS_TRAILER_START,
       CS_TRAILER_LINE, CS_TRAILER_LF, CS_END_LF };

static bool ieq(const char *a, size_t n, const char *lit)
{
	size_t m = strlen(lit);

	if (n != m)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((a[i] | 0x20) != lit[i])
			return false;
	return true;
}

/* Whether the comma-separated list v (n bytes) has token tok as its last (want_last) or any
 * element, case-insensitively. */
static bool list_has(const char *v, size_t n, const char *tok, bool want_last)
{
	size_t i = 0;
	bool found = false;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > s)
			found = ieq(v + s, e - s, tok) || (found && !want_last);
	}
	return found;
}

static int parse_u64(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 19)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

/* "HTTP/1.x SSS[ reason]": the status and whether the version is 1.0. */
static int status_line(struct resp *r, const char *p, size_t n, bool *v10)
{
	if (n < 12 || memcmp(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
		return -1;
	if (p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
		return -1;
	if (n > 12 && p[12] != ' ')
		return -1;
	r->status = (unsigned)(p[9] - '0') * 100 + (unsigned)(p[10] - '0') * 10 + (unsigned)(p[11] - '0');
	*v10 = p[7] == '0';
	return 0;
}

struct head_seen {
	bool te_chunked, te_other, has_len, keep_alive;
	uint64_t len;
};

static int header_line(struct resp *r, const char *p, size_t n, struct head_seen *s)
{
	const char *colon = memchr(p, ':', n);

	if (!colon || colon == p)
		return -1;
	size_t kn = (size_t)(colon - p), vs = kn + 1;
	while (vs < n && (p[vs] == ' ' || p[vs] == '\t'))
		vs++;
	size_t vn = n - vs;
	while (vn && (p[vs + vn - 1] == ' ' || p[vs + vn - 1] == '\t'))
		vn--;
	const char *v = p + vs;
	if (ieq(p, kn, "content-length")) {
		uint64_t len;
		if (parse_u64(v, vn, &len) < 0 || (s->has_len && len != s->len))
			return -1;
		s->has_len = true;
		s->len = len;
	} else if (ieq(p, kn, "transfer-encoding")) {
		if (list_has(v, vn, "chunked", true))
			s->te_chunked = true;
		else
			s->te_other = true;
	} else if (ieq(p, kn, "connection")) {
		if (list_has(v, vn, "close", false))
			r->close = true;
		if (list_has(v, vn, "keep-alive", false))
			s->keep_alive = true;
	}
	return 0;
}

static void set_framing(struct resp *r, const struct head_seen *s, bool head_req)
{
	r->interim = r->status < 200 && r->status != 101;
	if (head_req || r->status < 200 || r->status == 204 || r->status == 304) {
		r->kind = RB_NONE;
	} else if (s->te_chunked) {
		r->kind = RB_CHUNKED;
		r->cstate = CS_SIZE;
	} else if (s->te_other || !s->has_len) {
		r->kind = RB_CLOSE;
		r->close = true;
	} else {
		r->kind = s->len ? RB_LENGTH : RB_NONE;
		r->left = s->len;
	}
}

int resp_head(struct resp *r, const char *buf, size_t len, bool head_req)
{
	const char *end = len >= 4 ? memmem(buf, len, "\r\n\r\n", 4) : NULL;
	struct head_seen s = { 0 };
	bool v10 = false;

	if (!end)
		return len > RESP_HEAD_MAX ? -1 : 0;
	size_t hl = (size_t)(end - buf) + 4;
	if (hl > RESP_HEAD_MAX)
		return -1;
	*r = (struct resp){ 0 };
	const char *hend = end + 2;             /* one past the CRLF of the last header line */
	const char *eol = memchr(buf, '\r', (size_t)(hend - buf));
	if (!eol || eol[1] != '\n' || status_line(r, buf, (size_t)(eol - buf), &v10) < 0)
		return -1;
	for (const char *p = eol + 2; p < hend; p = eol + 2) {
		eol = memchr(p, '\r', (size_t)(hend - p));    /* found: hend[-2] is one */
		if (eol[1] != '\n' || header_line(r, p, (size_t)(eol - p), &s) < 0)
			return -1;
	}
	if (s.te_chunked && s.has_len)
		return -1;                   /* RFC 9112 6.3: both is a smuggling vector */
	if (v10 && !s.keep_alive)
		r->close = true;
	set_framing(r, &s, head_req);
	return (int)hl;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One byte of chunked framing (not payload). 0 go on, 1 the body ended, -1 error. */
static int chunk_byte(struct resp *r, char ch)
{
	int h;

	switch (r->cstate) {
	case CS_SIZE:
		if ((h = hexval(ch)) >= 0) {
			if (++r->hexdigits > 15)
				return -1;
			r->left = r->left * 16 + (unsigned)h;
			return 0;
		}
		if (!r->hexdigits)
			return -1;
		if (ch == ';' || ch == ' ' || ch == '\t') {
			r->cstate = CS_EXT;
			return 0;
		}
		/* fall through */
	case CS_EXT:
		if (ch == '\r')
			r->cstate = CS_SIZE_LF;
		else if (ch == '\n' || (unsigned char)ch < 0x20)
			return ch == '\t' ? 0 : -1;
		return 0;
	case CS_SIZE_LF:
		if (ch != '\n')
			return -1;
		r->hexdigits = 0;
		r->cstate = r->left ? CS_DATA : CS_TRAILER_START;
		return 0;
	case CS_DATA_CR:
		r->cstate = CS_DATA_LF;
		return ch == '\r' ? 0 : -1;
	case CS_DATA_LF:
		r->cstate = CS_SIZE;
		return ch == '\n' ? 0 : -1;
	case CS_TRAILER_START:
		r->cstate = ch == '\r' ? CS_END_LF : CS_TRAILER_LINE;
		return ch == '\n' ? -1 : 0;
	case CS_TRAILER_LINE:
		if (ch == '\r')
			r->cstate = CS_TRAILER_LF;
		return 0;
	case CS_TRAILER_LF:
		r->cstate = CS_TRAILER_START;
		return ch == '\n' ? 0 : -1;
	case CS_END_LF:
		return ch == '\n' ? 1 : -1;
	default:
		return -1;
	}
}

static ssize_t chunked(struct resp *r, const char *buf, size_t len, bool *done)
{
	size_t i = 0;

	while (i < len) {
		if (r->cstate == CS_DATA) {
			size_t take = len - i < r->left ? len - i : (size_t)r->left;
			r->left -= take;
			r->body += take;
			i += take;
			if (!r->left)
				r->cstate = CS_DATA_CR;
			continue;
		}
		int rc = chunk_byte(r, buf[i++]);
		if (rc < 0)
			return -1;
		if (rc > 0) {
			*done = true;
			return (ssize_t)i;
		}
	}
	return (ssize_t)i;
}

ssize_t resp_body(struct resp *r, const char *buf, size_t len, bool *done)
{
	*done = false;
	switch (r->kind) {
	case RB_NONE:
		*done = true;
		return 0;
	case RB_LENGTH: {
		size_t take = len < r->left ? len : (size_t)r->left;
		r->left -= take;
		r->body += take;
		*done = r->left == 0;
		return (ssize_t)take;
	}
	case RB_CHUNKED:
		return chunked(r, buf, len, done);
	case RB_CLOSE:
		r->body += len;
		return (ssize_t)len;
	}
	return -1;
}
