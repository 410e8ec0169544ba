/*
 * HTTP/2 request heads: the fields of a HEADERS block written in their HTTP/1.1 form as they
 * arrive, into the stream's own buffer, then read by the same strict parser as HTTP/1.1; the
 * request made from it (h2_stream.c has its bodies, responses and end). See h2_int.h.
 * Worker thread only, inside nghttp2's receive callbacks.
 */
#include "http/h2_int.h"
#include "util/util.h"
#include <stdlib.h>
#include <string.h>

/* ---- the request head ----
 * The head is written in its HTTP/1.1 form while the fields arrive. The pseudo-fields come
 * first (RFC 9113 8.3; nghttp2 enforces it): their values are kept at the start of hbuf. At
 * the first regular field (or the end of the block) "METHOD PATH HTTP/1.1\r\nhost: AUTHORITY
 * \r\n" follows them (head_at), then each field as "name: value\r\n"; a Host field must equal
 * :authority and is dropped (RFC 9113 8.3.1). Cookie crumbs are gathered apart and end the
 * head as one field (RFC 9113 8.2.3). The same strict parser as for HTTP/1.1 then checks the
 * head (target syntax, Host, Content-Length, names and values) and fills the request's
 * slices, which point into hbuf: the stream outlives its request (a request kept or handed
 * to the pool copies its head first). */

/* A heap buffer of at least need bytes (doubling from first); -1 without memory. */
int pt__h2_grow(char **buf, uint32_t *cap, size_t need, size_t first)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : first;
	while (c < need)
		c *= 2;
	char *q = realloc(*buf, c);
	if (!q)
		return -1;
	*buf = q;
	*cap = (uint32_t)c;
	return 0;
}

/* Room for n more bytes in hbuf; the buffer holds at most twice the head's limit (the
 * pseudo-field values appear twice). Past the stream's inline buffer it moves to the heap. */
static int hbuf_room(struct h2stream *st, size_t limit, size_t n)
{
	size_t need = (size_t)st->hlen + n;

	if (need > 2 * limit + 64)
		return -1;
	if (need <= st->hcap)
		return 0;
	bool inl = st->hbuf == st->hinline;
	char *heap = inl ? NULL : st->hbuf;
	uint32_t cap = inl ? 0 : st->hcap;
	if (pt__h2_grow(&heap, &cap, need, 512) < 0)
		return -1;
	if (inl)
		memcpy(heap, st->hinline, st->hlen);
	st->hbuf = heap;
	st->hcap = cap;
	return 0;
}

static void hbuf_add(struct h2stream *st, const void *p, size_t n)
{
	memcpy(st->hbuf + st->hlen, p, n);    /* room made by hbuf_room */
	st->hlen += (uint32_t)n;
}

static int pseudo(struct h2stream *st, size_t limit, struct h2pseudo *ps, const uint8_t *v,
		  size_t vl)
{
	if (hbuf_room(st, limit, vl) < 0)
		return -1;
	ps->at = st->hlen;
	ps->len = (uint32_t)vl;
	ps->set = true;
	hbuf_add(st, v, vl);
	return 0;
}

/* The request line and host field, after the pseudo-fields' values. */
static int request_line(struct h2stream *st, size_t limit)
{
	const struct h2pseudo *m = &st->method, *a = &st->authority;
	const struct h2pseudo *t = st->path.set ? &st->path : a;     /* CONNECT: authority-form */

	if (!m->set) {
		st->bad = true;
		return -1;
	}
	if (hbuf_room(st, limit, m->len + t->len + a->len + 20) < 0)
		return -1;
	st->head_at = st->hlen;
	hbuf_add(st, st->hbuf + m->at, m->len);
	hbuf_add(st, " ", 1);
	hbuf_add(st, st->hbuf + t->at, t->len);
	hbuf_add(st, " HTTP/1.1\r\n", 11);
	if (a->set) {
		hbuf_add(st, "host: ", 6);
		hbuf_add(st, st->hbuf + a->at, a->len);
		hbuf_add(st, "\r\n", 2);
	}
	return 0;
}

static bool name_is(const uint8_t *name, size_t nl, const char *what, size_t wn)
{
	return nl == wn && !memcmp(name, what, wn);
}

static int cookie_add(struct h2stream *st, const uint8_t *v, size_t vl)
{
	if (pt__h2_grow(&st->cookie, &st->cookie_cap, (size_t)st->cookie_len + vl + 2, 256) < 0)
		return -1;
	if (st->cookie_len) {
		memcpy(st->cookie + st->cookie_len, "; ", 2);
		st->cookie_len += 2;
	}
	memcpy(st->cookie + st->cookie_len, v, vl);
	st->cookie_len += (uint32_t)vl;
	return 0;
}

/* One regular field, appended to the head. */
static int regular(struct h2stream *st, size_t limit, const uint8_t *name, size_t nl,
		   const uint8_t *value, size_t vl)
{
	if (!st->head_at && request_line(st, limit) < 0)
		return -1;
	if (name_is(name, nl, "cookie", 6))
		return cookie_add(st, value, vl);
	if (st->authority.set && name_is(name, nl, "host", 4)) {
		if (vl != st->authority.len || memcmp(value, st->hbuf + st->authority.at, vl))
			st->bad = true;
		return 0;
	}
	if (hbuf_room(st, limit, nl + vl + 4) < 0)
		return -1;
	hbuf_add(st, name, nl);
	hbuf_add(st, ": ", 2);
	hbuf_add(st, value, vl);
	hbuf_add(st, "\r\n", 2);
	return 0;
}

void pt__h2_header(struct h2conn *h2, struct h2stream *st, const uint8_t *name, size_t nl,
		   const uint8_t *value, size_t vl)
{
	size_t lim = h2->s->cfg.max_head;
	int rc = 0;

	if (st->head_done)                      /* trailers: not kept (the request's slices point
						   into hbuf, which must not move now) */
		return;
	st->head_bytes += nl + vl + 32;
	if (st->too_large || st->bad || st->head_bytes > lim || st->nfields == H2_FIELDS_MAX) {
		st->too_large = !st->bad;            /* answered 431 when the block ends */
		return;
	}
	st->nfields++;
	if (nl && name[0] == ':') {             /* nghttp2 let only the known ones through */
		if (name_is(name, nl, ":method", 7)) {
			st->is_head = name_is(value, vl, "HEAD", 4);
			rc = pseudo(st, lim, &st->method, value, vl);
		} else if (name_is(name, nl, ":path", 5)) {
			rc = pseudo(st, lim, &st->path, value, vl);
		} else if (name_is(name, nl, ":authority", 10)) {
			rc = pseudo(st, lim, &st->authority, value, vl);
		}
	} else {
		rc = regular(st, lim, name, nl, value, vl);
	}
	if (rc < 0 && !st->bad)
		st->too_large = true;
}

/* The end of the head: the request line if no regular field wrote it, the cookie, CRLF.
 * Its length, or -1 (bad: 400). */
static ssize_t head_end(struct h2stream *st)
{
	size_t lim = st->h2->s->cfg.max_head;

	if (st->bad || (!st->head_at && request_line(st, lim) < 0))
		return -1;
	if (st->cookie_len) {
		if (hbuf_room(st, lim, st->cookie_len + 10) < 0)
			return -1;
		hbuf_add(st, "cookie: ", 8);
		hbuf_add(st, st->cookie, st->cookie_len);
		hbuf_add(st, "\r\n", 2);
	}
	if (hbuf_room(st, lim, 2) < 0)
		return -1;
	hbuf_add(st, "\r\n", 2);
	return (ssize_t)(st->hlen - st->head_at);
}

void pt__h2_request(struct h2conn *h2, struct h2stream *st)
{
	ssize_t len = st->too_large ? -1 : head_end(st);
	struct pt_http_req *r;

	st->head_done = true;
	free(st->cookie);                      /* in the head now */
	st->cookie = NULL;
	st->cookie_len = st->cookie_cap = 0;
	if (st->too_large || len < 0) {
		pt__h2_refuse(st, st->too_large ? 431 : 400);
		return;
	}
	if (!(r = pt__req_new(h2->s, h2->hw, h2->c, &pt__h2_req_ops, st))) {
		nghttp2_submit_rst_stream(h2->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
		return;
	}
	const char *head = st->hbuf + st->head_at;
	int rc = pt__req_parse(r, head, (size_t)len, NULL);
	if (rc != len) {
		pt__req_drop(r);
		pt__h2_refuse(st, rc < 0 ? (unsigned)-rc : 400);
		return;
	}
	st->r = r;
	h2->nactive++;
	r->head_base = head;
	r->head_len = (size_t)len;
	r->held = true;                        /* until the stream closes */
	if (st->end_stream)
		r->body_done = true;
	else
		r->body_mode = BODY_LENGTH;    /* the body ends with END_STREAM */
	pt__req_dispatch(r);
}
