/*
 * HTTP/2 streams as requests: the request head (rebuilt as an HTTP/1.1 head and checked by the
 * same strict parser), request bodies with flow control, and the protocol ops of a request
 * that arrived on a stream (send, read_body, reset, detach). See h2_int.h.
 */
#include "http/h2_int.h"
#include "util/util.h"
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ---- the worker's free lists ---- */

static struct h2stream *stream_alloc(struct hworker *hw)
{
	struct h2stream *st = hw->st_free;

	if (st) {
		hw->st_free = st->free_next;
		hw->nst_free--;
	} else if (!(st = malloc(sizeof *st))) {
		return NULL;
	}
	memset(st, 0, offsetof(struct h2stream, free_next));
	st->hw = hw;
	st->hbuf = st->hinline;
	st->hcap = H2_HEAD_INLINE;
	st->fields = st->finline;
	st->fcap = H2_FIELDS_INLINE;
	return st;
}

/* The head's field buffers, unless they are the stream's own. */
static void head_bufs_free(struct h2stream *st)
{
	if (st->hbuf != st->hinline)
		free(st->hbuf);
	if (st->fields != st->finline)
		free(st->fields);
	st->hbuf = NULL;
	st->fields = NULL;
	st->hlen = st->hcap = 0;
	st->nfields = st->fcap = 0;
}

static void stream_release(struct h2stream *st)
{
	struct hworker *hw = st->hw;

	head_bufs_free(st);
	free(st->body);
	if (!PT_RECYCLE || hw->nst_free >= H2_FREE_MAX) {
		free(st);
		return;
	}
	st->free_next = hw->st_free;
	hw->st_free = st;
	hw->nst_free++;
}

static struct h2out *out_alloc(struct hworker *hw)
{
	struct h2out *o = hw->out_free;

	if (o) {
		hw->out_free = o->next;
		hw->nout_free--;
		memset(o, 0, sizeof *o);
	} else if (!(o = calloc(1, sizeof *o))) {
		return NULL;
	}
	o->hw = hw;
	return o;
}

void pt__h2_worker_free(struct hworker *hw)
{
	while (hw->st_free) {
		struct h2stream *st = hw->st_free;
		hw->st_free = st->free_next;
		free(st);
	}
	while (hw->out_free) {
		struct h2out *o = hw->out_free;
		hw->out_free = o->next;
		free(o);
	}
	hw->nst_free = hw->nout_free = 0;
	if (hw->h2mem)
		pt__h2_mem_trim(hw->h2mem);
}

/* ---- streams ---- */

int pt__h2_begin_headers(struct h2conn *h2, int32_t id)
{
	struct h2stream *st = stream_alloc(h2->hw);

	if (!st)
		return nghttp2_submit_rst_stream(h2->ng, NGHTTP2_FLAG_NONE, id,
						 NGHTTP2_REFUSED_STREAM) == 0 ? 0 : -1;
	st->h2 = h2;
	st->id = id;
	st->head_start = (uint32_t)pt_worker_now_ms(pt_conn_worker(h2->c));
	st->next = h2->streams;
	if (h2->streams)
		h2->streams->prev = st;
	h2->streams = st;
	h2->nstreams++;
	nghttp2_session_set_stream_user_data(h2->ng, id, st);
	return 0;
}

static void stream_unlink(struct h2stream *st)
{
	struct h2conn *h2 = st->h2;

	if (!h2)
		return;
	if (st->prev)
		st->prev->next = st->next;
	else
		h2->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	st->prev = st->next = NULL;
	h2->nstreams--;
	st->h2 = NULL;
}

static void out_free(struct h2out *o)
{
	for (unsigned i = 0; i < o->nrefs; i++)
		pt__fragment_unref(o->refs[i]);
	free(o->refs);
	free(o->copy);
	if (o->ch != o->inline_ch)
		free(o->ch);
	struct hworker *hw = o->hw;
	if (!PT_RECYCLE || hw->nout_free >= H2_FREE_MAX) {
		free(o);
		return;
	}
	o->next = hw->out_free;
	hw->out_free = o;
	hw->nout_free++;
}

/* Frees the stream once nothing refers to it: nghttp2 closed it (or the connection is gone),
 * no frame of it is in flight, and its request is gone. */
static void stream_maybe_free(struct h2stream *st)
{
	if ((!st->closed && st->h2) || st->inflight || st->r)
		return;
	stream_unlink(st);
	stream_release(st);
}

/* ---- the request head ----
 * Fields are kept as they arrive. When the block ends, the head is assembled as an HTTP/1.1
 * head, "METHOD PATH HTTP/1.1\r\nhost: AUTHORITY\r\n<fields>cookie: a; b\r\n\r\n", and checked
 * by the same strict parser as HTTP/1.1 requests (target syntax, Host, Content-Length, field
 * names and values), which also fills the request's slices. */

static int hbuf_put(struct h2stream *st, size_t limit, const void *p, size_t n)
{
	size_t need = (size_t)st->hlen + n;

	if (need > limit)
		return -1;
	if (need > st->hcap) {
		size_t cap = st->hcap ? st->hcap : 512;
		while (cap < need)
			cap *= 2;
		char *q = st->hbuf == st->hinline ? malloc(cap) : realloc(st->hbuf, cap);
		if (!q)
			return -1;
		if (st->hbuf == st->hinline)
			memcpy(q, st->hinline, st->hlen);
		st->hbuf = q;
		st->hcap = (uint32_t)cap;
	}
	memcpy(st->hbuf + st->hlen, p, n);
	st->hlen += (uint32_t)n;
	return 0;
}

void pt__h2_header(struct h2conn *h2, struct h2stream *st, const uint8_t *name, size_t nl,
		   const uint8_t *value, size_t vl)
{
	size_t lim = h2->s->cfg.max_head;

	st->head_bytes += nl + vl + 32;
	if (st->too_large || st->head_bytes > lim || st->nfields == H2_FIELDS_MAX ||
	    nl > UINT16_MAX) {
		st->too_large = true;            /* answered 431 when the block ends */
		return;
	}
	if (st->nfields == st->fcap) {
		unsigned cap = st->fcap ? st->fcap * 2 : 16;
		bool own = st->fields == st->finline;
		struct h2field *fs = own ? malloc(cap * sizeof *fs) : realloc(st->fields, cap * sizeof *fs);
		if (!fs) {
			st->too_large = true;
			return;
		}
		if (own)
			memcpy(fs, st->finline, st->nfields * sizeof *fs);
		st->fields = fs;
		st->fcap = cap;
	}
	struct h2field *f = &st->fields[st->nfields];
	f->name = st->hlen;
	f->nlen = (uint16_t)nl;
	f->vlen = (uint32_t)vl;
	if (hbuf_put(st, lim, name, nl) < 0 || hbuf_put(st, lim, value, vl) < 0)
		st->too_large = true;
	else
		st->nfields++;
}

static const struct h2field *field(const struct h2stream *st, const char *name)
{
	size_t n = strlen(name);

	for (unsigned i = 0; i < st->nfields; i++)
		if (st->fields[i].nlen == n && !memcmp(st->hbuf + st->fields[i].name, name, n))
			return &st->fields[i];
	return NULL;
}

static const char *fname(const struct h2stream *st, const struct h2field *f)
{
	return st->hbuf + f->name;
}

static const char *fval(const struct h2stream *st, const struct h2field *f)
{
	return st->hbuf + f->name + f->nlen;
}

static bool is(const struct h2stream *st, const struct h2field *f, const char *name, size_t n)
{
	return f->nlen == n && !memcmp(fname(st, f), name, n);
}

struct hb {                          /* the head being assembled */
	char *p;
	size_t len, cap;
};

static void hb_put(struct hb *b, const void *p, size_t n)
{
	if (b->len + n <= b->cap)
		memcpy(b->p + b->len, p, n);
	b->len += n;                     /* past cap: detected by the caller */
}

static void hb_field(struct hb *b, const char *n, size_t nl, const char *v, size_t vl)
{
	hb_put(b, n, nl);
	hb_put(b, ": ", 2);
	hb_put(b, v, vl);
	hb_put(b, "\r\n", 2);
}

/* The HTTP/1.1 form of the head, in a new buffer (*out, caller frees). Its length, or -1
 * (no memory, or Host and :authority disagree: RFC 9113 8.3.1). */
static ssize_t assemble(const struct h2stream *st, char **out)
{
	const struct h2field *m = field(st, ":method"), *p = field(st, ":path"),
			     *a = field(st, ":authority");
	struct hb b = { .cap = st->hlen + 8u * st->nfields + 64 };
	bool cookie = false;

	if (!m || !(b.p = malloc(b.cap)))
		return -1;
	hb_put(&b, fval(st, m), m->vlen);
	hb_put(&b, " ", 1);
	if (p)
		hb_put(&b, fval(st, p), p->vlen);
	else if (a)                                 /* CONNECT: authority-form */
		hb_put(&b, fval(st, a), a->vlen);
	hb_put(&b, " HTTP/1.1\r\n", 11);
	if (a)
		hb_field(&b, "host", 4, fval(st, a), a->vlen);
	for (unsigned i = 0; i < st->nfields; i++) {
		const struct h2field *f = &st->fields[i];
		if (fname(st, f)[0] == ':' || is(st, f, "cookie", 6))
			continue;
		if (a && is(st, f, "host", 4)) {
			if (f->vlen != a->vlen || memcmp(fval(st, f), fval(st, a), a->vlen))
				goto bad;
			continue;
		}
		hb_field(&b, fname(st, f), f->nlen, fval(st, f), f->vlen);
	}
	for (unsigned i = 0; i < st->nfields; i++) {      /* RFC 9113 8.2.3: one cookie field */
		const struct h2field *f = &st->fields[i];
		if (!is(st, f, "cookie", 6))
			continue;
		hb_put(&b, cookie ? "; " : "cookie: ", cookie ? 2 : 8);
		hb_put(&b, fval(st, f), f->vlen);
		cookie = true;
	}
	if (cookie)
		hb_put(&b, "\r\n", 2);
	hb_put(&b, "\r\n", 2);
	if (b.len > b.cap)
		goto bad;
	*out = b.p;
	return (ssize_t)b.len;
bad:
	free(b.p);
	return -1;
}

static void refuse(struct h2stream *st, unsigned status);

void pt__h2_request(struct h2conn *h2, struct h2stream *st)
{
	char *head = NULL;
	ssize_t len = st->too_large ? -1 : assemble(st, &head);
	struct pt_http_req *r;

	st->head_done = true;
	if (st->too_large || len < 0) {
		refuse(st, st->too_large ? 431 : 400);
		return;
	}
	if (!(r = pt__req_new(h2->s, h2->hw, h2->c, &pt__h2_req_ops, st))) {
		free(head);
		nghttp2_submit_rst_stream(h2->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
		return;
	}
	r->own = head;
	int rc = pt__req_parse(r, head, (size_t)len, NULL);
	if (rc != len) {
		pt__req_drop(r);
		refuse(st, rc < 0 ? (unsigned)-rc : 400);
		return;
	}
	st->r = r;
	h2->nactive++;
	r->head_base = head;
	r->head_len = (size_t)len;
	r->held = true;                        /* until the stream closes */
	head_bufs_free(st);                    /* the head lives in r->own now */
	if (st->end_stream)
		r->body_done = true;
	else
		r->body_mode = BODY_LENGTH;    /* the body ends with END_STREAM */
	pt__req_dispatch(r);
}

/* ---- request bodies ---- */

/* Body bytes held for the reader, then the end; the window opens as the reader takes them. */
static void body_deliver(struct h2stream *st)
{
	struct pt_http_req *r = st->r;

	if (!r || !r->body_reading || r->body_done)
		return;
	if (st->body_len) {
		char *p = st->body;
		uint32_t n = st->body_len;
		st->body = NULL;
		st->body_len = st->body_cap = 0;
		r->body_cb(r, r->body_arg, p, n, 0);
		free(p);
		if (st->h2 && !st->closed)
			nghttp2_session_consume(st->h2->ng, st->id, n);
		if (!st->r || r->body_done)
			return;
	}
	if (st->end_stream)
		pt__req_body_end(r, 0);
}

static int body_hold(struct h2stream *st, const uint8_t *p, size_t n)
{
	if ((size_t)st->body_len + n > st->body_cap) {
		size_t cap = st->body_cap ? st->body_cap : 4096u;
		while (cap < (size_t)st->body_len + n)
			cap *= 2;
		char *q = realloc(st->body, cap);
		if (!q)
			return -1;
		st->body = q;
		st->body_cap = (uint32_t)cap;
	}
	memcpy(st->body + st->body_len, p, n);
	st->body_len += (uint32_t)n;
	return 0;
}

static uint32_t now32(const pt_conn_t *c)
{
	return (uint32_t)pt_worker_now_ms(pt_conn_worker(c));
}

bool pt__h2_body_stalled(const struct h2stream *st, uint32_t now, unsigned limit_ms)
{
	const struct pt_http_req *r = st->r;

	return r && !st->closed && !st->end_stream && r->body_reading && !r->body_done &&
	       now - st->body_last >= limit_ms;
}

bool pt__h2_head_stalled(const struct h2stream *st, uint32_t now, unsigned limit_ms)
{
	return !st->head_done && !st->closed && now - st->head_start >= limit_ms;
}

int pt__h2_body(struct h2conn *h2, struct h2stream *st, const uint8_t *p, size_t n)
{
	struct pt_http_req *r = st->r;
	uint64_t max = h2->s->cfg.max_body;

	st->body_total += n;
	st->body_last = now32(h2->c);
	if (!r || r->body_done || (r->final_sent && !r->body_reading)) {
		nghttp2_session_consume(h2->ng, st->id, n);    /* nobody reads it: discard */
		return 0;
	}
	if (max && st->body_total > max) {
		nghttp2_submit_rst_stream(h2->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
		pt__req_body_end(r, -EMSGSIZE);
		return 0;
	}
	if (r->body_reading && !st->body_len) {
		r->body_cb(r, r->body_arg, p, n, 0);
		if (!st->closed)
			nghttp2_session_consume(h2->ng, st->id, n);
		return 0;
	}
	/* not read yet: held (the window we advertised bounds it) */
	return body_hold(st, p, n) < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

void pt__h2_body_end(struct h2stream *st)
{
	st->end_stream = true;
	body_deliver(st);
}

static void stream_settle(struct h2stream *st);

static void body_kick(pt_conn_t *c, void *arg, ssize_t res)
{
	struct h2stream *st = arg;

	st->inflight--;
	if (res >= 0)
		body_deliver(st);
	stream_settle(st);
}

/* pt_req_ops.read_body: what is held goes to the reader from the loop. */
static int h2_read_body(struct pt_http_req *r)
{
	struct h2stream *st = r->proto;

	st->body_last = now32(r->c);             /* EntityBody counts from here */
	if (r->head.expect_continue && !r->head_sent && !st->body_len && !st->end_stream &&
	    st->h2 && !st->closed) {
		/* RFC 9110 10.1.1: the client waits for 100 (Continue); RFC 9113 8.1: a 1xx is a
		 * HEADERS frame of its own before the response's */
		static const nghttp2_nv cont[] = { { (uint8_t *)":status", (uint8_t *)"100", 7, 3,
						     NGHTTP2_NV_FLAG_NONE } };
		nghttp2_submit_headers(st->h2->ng, NGHTTP2_FLAG_NONE, st->id, NULL, cont, 1, NULL);
		if (!st->h2->in_recv)
			pt__h2_flush(st->h2);
	}
	if (!st->body_len && !st->end_stream)
		return 0;
	if (pt_conn_send(r->c, NULL, 0, 0, body_kick, st) < 0)
		return -ENOMEM;
	st->inflight++;
	return 0;
}

/* ---- responses ---- */

static bool conn_specific(const char *name)
{
	static const char *const drop[] = {
		"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
		"content-length",                /* the layer writes the one it announces */
	};
	for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
		if (!strcasecmp(name, drop[i]))
			return true;
	return false;
}

static nghttp2_nv nv(const char *n, size_t nl, const char *v, size_t vl)
{
	return (nghttp2_nv){ (uint8_t *)n, (uint8_t *)v, nl, vl, NGHTTP2_NV_FLAG_NONE };
}

/* Submits HEADERS: :status, date, server, the application's fields (names lowercased, the
 * connection-specific ones dropped), content-length. nghttp2 copies everything. */
static int submit_head(struct h2stream *st, unsigned status, const struct pt_http_header *hd,
		       unsigned n, int64_t cl, bool data)
{
	struct h2conn *h2 = st->h2;
	struct hworker *hw = h2->hw;
	size_t names = 0;

	for (unsigned i = 0; i < n; i++)
		names += strlen(hd[i].name);
	nghttp2_nv vstack[24], *v = n + 4 <= 24 ? vstack : malloc((n + 4) * sizeof *v);
	char lstack[512], *low = names < sizeof lstack ? lstack : malloc(names + 1), code[4], len[24];
	unsigned k = 0;
	int rc = -ENOMEM;

	if (!v || !low)
		goto out;
	status %= 1000;
	code[0] = (char)('0' + status / 100), code[1] = (char)('0' + status / 10 % 10);
	code[2] = (char)('0' + status % 10);
	v[k++] = nv(":status", 7, code, 3);
	pt__date_refresh(hw);
	v[k++] = nv("date", 4, hw->date + 6, hw->date_len - 8);      /* "Date: " ... CRLF */
	if (h2->s->server_line_len)
		v[k++] = nv("server", 6, h2->s->server_line + 8, h2->s->server_line_len - 10);
	for (unsigned i = 0, at = 0; i < n; i++) {
		size_t nl = strlen(hd[i].name);
		if (conn_specific(hd[i].name))
			continue;
		for (size_t j = 0; j < nl; j++) {
			char c = hd[i].name[j];
			low[at + j] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
		}
		v[k++] = nv(low + at, nl, hd[i].value, strlen(hd[i].value));
		at += (unsigned)nl;
	}
	if (cl >= 0 && status != 204 && status != 304)
		v[k++] = nv("content-length", 14, len, pt__fmt_u64(len, (uint64_t)cl));
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = pt__h2_read_cb };
	rc = nghttp2_submit_response(h2->ng, st->id, v, k, data ? &prd : NULL) == 0 ? 0 : -EPROTO;
out:
	if (v != vstack)
		free(v);
	if (low != lstack)
		free(low);
	return rc;
}

static void out_queue(struct h2stream *st, struct h2out *o);

/* A request that cannot be served (bad or too large head): the status with its reason phrase
 * and a newline as the body, as HTTP/1.1 answers it (hsend.c pt__h1_send_error; none for
 * HEAD), then the stream ends; a body the client still sends is discarded. */
static void refuse(struct h2stream *st, unsigned status)
{
	static const struct pt_http_header ct = { "content-type", "text/plain; charset=utf-8" };
	const struct h2field *m = field(st, ":method");
	bool head = m && m->vlen == 4 && !memcmp(fval(st, m), "HEAD", 4);
	struct h2out *o = head ? NULL : out_alloc(st->hw);

	if (status < 400 || status > 599)
		status = 400;
	pt__count_reject(st->h2->hw, status);
	const char *reason = pt__reason(status);          /* static */
	if (o) {
		o->ch = o->inline_ch;
		o->ch[0] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { reason, strlen(reason) } };
		o->ch[1] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { "\n", 1 } };
		o->n = 2;
		o->st = st;
		o->total = o->left = strlen(reason) + 1;
		o->final = true;
	}
	if (submit_head(st, status, &ct, 1, o ? (int64_t)o->total : 0, o != NULL) < 0) {
		if (o)
			out_free(o);
		nghttp2_submit_rst_stream(st->h2->ng, NGHTTP2_FLAG_NONE, st->id,
					  NGHTTP2_PROTOCOL_ERROR);
	} else if (o) {
		out_queue(st, o);                         /* no request: completes unseen */
	}
}

/* The body of a send as engine chunks (file ranges measured); memory copied for
 * PT_HTTP_BUFFER. */
static int out_chunks(struct h2out *o, const struct pt_out *po)
{
	size_t mem = 0;

	o->ch = po->nbody <= H2_OUT_INLINE ? o->inline_ch : malloc(po->nbody * sizeof *o->ch);
	if (!o->ch)
		return -ENOMEM;
	for (unsigned i = 0; i < po->nbody; i++) {
		const struct pt_http_chunk *b = &po->body[i];
		if (b->kind == PT_HTTP_CHUNK_MEM) {
			o->ch[i] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { b->mem.p, b->mem.len } };
			mem += b->mem.len;
			continue;
		}
		struct stat sb;
		int64_t len = b->file.len;
		if (len < 0)
			len = fstat(b->file.fd, &sb) == 0 ? sb.st_size - b->file.offset : 0;
		o->ch[i] = (struct pt_chunk){ .kind = PT_CHUNK_FILE,
					      .file = { b->file.fd, b->file.offset, (size_t)len } };
	}
	o->n = po->nbody;
	if (!(po->flags & PT_HTTP_BUFFER) || !mem)
		return 0;
	if (!(o->copy = malloc(mem)))
		return -ENOMEM;
	for (unsigned i = 0, at = 0; i < o->n; i++) {
		if (o->ch[i].kind != PT_CHUNK_MEM || !o->ch[i].mem.len)
			continue;
		memcpy(o->copy + at, o->ch[i].mem.base, o->ch[i].mem.len);
		o->ch[i].mem.base = o->copy + at;
		at += (unsigned)o->ch[i].mem.len;
	}
	return 0;
}

/* PT_HTTP_BUFFER: the callback runs from the loop at once (a zero-byte send keeps it in order
 * with the connection's other completions: it always comes before the frames of o). */
static void buffered_done(pt_conn_t *c, void *arg, ssize_t res)
{
	struct h2out *o = arg;
	struct h2stream *st = o->st;
	struct pt_http_req *r = st->r;
	pt_http_send_fn cb = o->cb;
	void *cb_arg = o->arg;
	ssize_t total = (ssize_t)o->total;

	o->cb = NULL;
	st->inflight--;
	if (o->early_free) {           /* nothing to frame: this was its completion */
		out_free(o);
		if (r)
			r->pending--;
	}
	if (r && cb)
		cb(r, cb_arg, res < 0 ? res : total);
	stream_settle(st);
}

static void out_queue(struct h2stream *st, struct h2out *o)
{
	if (st->out_tail)
		st->out_tail->next = o;
	else
		st->out = o;
	st->out_tail = o;
	st->queued += o->left;
	if (o->final)
		st->final_queued = true;
}

/* pt_req_ops.send: the head (when o->status) is submitted now; the body is queued for DATA
 * frames, which nghttp2 asks for as the peer's windows allow. */
static int h2_send(struct pt_http_req *r, const struct pt_out *po, pt_http_send_fn cb, void *arg)
{
	struct h2stream *st = r->proto;
	struct h2out *o;
	int err = -ENOMEM;

	if (st->closed || !st->h2)
		return -EPIPE;
	if (!(o = out_alloc(st->hw)) || (err = out_chunks(o, po)) < 0)
		goto fail;
	o->st = st;
	o->cb = cb;
	o->arg = arg;
	o->total = o->left = r->no_body ? 0 : po->total;
	o->final = po->final;
	if (po->status) {
		bool data = !r->no_body && (!po->final || po->total);
		if ((err = submit_head(st, po->status, po->headers, po->nheaders, po->cl, data)) < 0)
			goto fail;
	}
	bool early = (po->flags & PT_HTTP_BUFFER) || (!o->total && !o->final);
	if (early && cb) {             /* BUFFER, or nothing to frame yet: complete from the loop */
		if (pt_conn_send(r->c, NULL, 0, 0, buffered_done, o) < 0) {
			err = -ENOMEM;       /* HEADERS may be submitted: the stream is reset */
			nghttp2_submit_rst_stream(st->h2->ng, NGHTTP2_FLAG_NONE, st->id,
						  NGHTTP2_INTERNAL_ERROR);
			goto fail;
		}
		st->inflight++;
	}
	o->refs = po->refs;
	o->nrefs = po->nrefs;
	if (!o->total && !o->final) {  /* nothing to frame: complete from the loop, or now */
		if (cb) {
			o->early_free = true;
			r->pending++;
		} else {
			out_free(o);
		}
	} else {
		out_queue(st, o);
		r->pending++;
	}
	r->final_sent = po->final;
	if (po->flags & PT_HTTP_DISCONNECT)
		nghttp2_submit_goaway(st->h2->ng, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(st->h2->ng),
				      NGHTTP2_NO_ERROR, NULL, 0);
	if (st->deferred) {
		st->deferred = false;
		nghttp2_session_resume_data(st->h2->ng, st->id);
	}
	if (!st->h2->in_recv)
		pt__h2_flush(st->h2);
	return 0;
fail:
	if (o)
		out_free(o);
	return err;
}

/* ---- DATA frames ---- */

ssize_t pt__h2_read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
		       uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct h2stream *st = src->ptr;
	uint64_t avail = st->queued - st->promised;

	if (!avail && !st->final_queued) {
		st->deferred = true;                 /* h2_send resumes it */
		return NGHTTP2_ERR_DEFERRED;
	}
	size_t n = avail < len ? (size_t)avail : len;
	st->promised += n;
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (st->final_queued && n == avail)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static void move_done(struct h2stream *st)
{
	struct h2out *o = st->out;

	st->out = o->next;
	if (!st->out)
		st->out_tail = NULL;
	o->next = NULL;
	if (st->done_tail)
		st->done_tail->next = o;
	else
		st->done = o;
	st->done_tail = o;
}

/* One chunk of o at its cursor, at most len bytes, into *ch; the bytes taken. */
static size_t take(struct h2out *o, struct pt_chunk *ch, size_t len)
{
	const struct pt_chunk *c = &o->ch[o->cur];
	size_t clen = c->kind == PT_CHUNK_MEM ? c->mem.len : c->file.len;
	size_t k = clen - o->off < len ? clen - o->off : len;

	*ch = *c;
	if (c->kind == PT_CHUNK_MEM) {
		ch->mem.base = (const char *)c->mem.base + o->off;
		ch->mem.len = k;
	} else {
		ch->file.offset = c->file.offset + (off_t)o->off;
		ch->file.len = k;
	}
	o->off += k;
	if (o->off == clen) {
		o->cur++;
		o->off = 0;
	}
	return k;
}

int pt__h2_frame(struct h2stream *st, struct pt_chunk *ch, unsigned cap, size_t len,
		 unsigned *ndone)
{
	unsigned k = 0;

	*ndone = 0;
	st->promised -= len;
	st->queued -= len;
	while (st->out) {
		struct h2out *o = st->out;
		while (len && o->left) {
			if (k == cap)
				return -1;
			size_t n = take(o, &ch[k], len);
			k += n > 0;
			o->left -= n;
			len -= n;
		}
		if (o->left)
			break;
		move_done(st);                           /* all of o is in this frame */
		(*ndone)++;
		if (!len && (!st->out || st->out->left || !st->out->final))
			break;                           /* (an empty final send rides along) */
	}
	if (k == 0)
		ch[k++] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { NULL, 0 } };
	return (int)k;
}

/* The frame (or staged HEADERS) carrying the last bytes of ndone sends of st is in the kernel
 * (res >= 0), or failed: their callbacks run, in order. */
void pt__h2_complete(struct h2stream *st, unsigned ndone, ssize_t res)
{
	struct pt_http_req *r = st->r;
	struct h2out *o;

	/* the ndone sends this frame finished, then failed ones queued behind them */
	while ((o = st->done) && (ndone || o->failed)) {
		st->done = o->next;
		if (!st->done)
			st->done_tail = NULL;
		ssize_t rc = ndone ? res : o->failed;
		ndone -= ndone > 0;
		pt_http_send_fn cb = o->cb;
		void *arg = o->arg;
		ssize_t total = (ssize_t)o->total;
		out_free(o);
		if (!r)
			continue;
		r->pending--;
		if (cb)
			cb(r, arg, rc < 0 ? rc : total);
	}
	stream_settle(st);
}

/* on_frame_send of HEADERS with END_STREAM: a head-only final response completes when the
 * staged bytes holding it do. */
void pt__h2_head_sent(struct h2conn *h2, struct h2stream *st)
{
	struct h2out *o = st->out;

	if (!o || o->left || !o->final)
		return;
	st->out = o->next;
	if (!st->out)
		st->out_tail = NULL;
	o->next = h2->stage_done;
	h2->stage_done = o;
	st->inflight++;
}

/* ---- the end of a stream ---- */

/* Sends never framed fail, in order (the stream or the connection ended first). */
static void fail_unsent(struct h2stream *st, int err)
{
	while (st->out) {
		st->out->failed = err;
		move_done(st);
	}
	st->queued = st->promised = 0;
	pt__h2_complete(st, 0, 0);               /* those not behind a frame in flight: now */
}

/* After a change: a stream that ended before its response did hands the request back as
 * lost once no send of it is outstanding; otherwise the request layer frees it when done. */
static void stream_settle(struct h2stream *st)
{
	struct pt_http_req *r = st->r;

	if (r && st->aborted && !r->pending) {
		st->r = NULL;
		pt__req_lost(r);                 /* on_abort; calls fail with -EPIPE; freed */
	} else if (r) {
		pt__req_maybe_free(r);           /* when it frees r, h2_detach frees st if done */
		return;
	}
	stream_maybe_free(st);
}

/* nghttp2 closed the stream: both sides ended, or a reset, or the session ended. Frames
 * already given to the engine still complete; sends never framed fail now. */
void pt__h2_stream_close(struct h2stream *st, uint32_t code)
{
	struct pt_http_req *r = st->r;

	st->closed = true;
	if (r) {
		r->held = false;
		if (st->h2)
			st->h2->nactive--;
		if (!r->final_sent || (r->body_reading && !r->body_done))
			st->aborted = true;
	}
	fail_unsent(st, -ECONNRESET);            /* ends with stream_settle */
}

/* The connection is closing (its on_close): every stream ends; every transmit has completed. */
void pt__h2_streams_gone(struct h2conn *h2)
{
	while (h2->streams) {
		struct h2stream *st = h2->streams;
		stream_unlink(st);                      /* st->h2 = NULL: nothing reaches h2 now */
		if (!st->closed)
			pt__h2_stream_close(st, NGHTTP2_CANCEL);   /* may free st */
		else
			stream_maybe_free(st);
	}
}

/* pt_req_ops.reset: the response cannot be completed. */
static void h2_reset(struct pt_http_req *r)
{
	struct h2stream *st = r->proto;

	if (st->h2 && !st->closed) {
		nghttp2_submit_rst_stream(st->h2->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		if (!st->h2->in_recv)
			pt__h2_flush(st->h2);
	}
}

/* pt_req_ops.detach: r is being freed. */
static void h2_detach(struct pt_http_req *r)
{
	struct h2stream *st = r->proto;

	st->r = NULL;
	stream_maybe_free(st);
}

const struct pt_req_ops pt__h2_req_ops = {
	.major = 2,
	.send = h2_send,
	.read_body = h2_read_body,
	.reset = h2_reset,
	.detach = h2_detach,
};
