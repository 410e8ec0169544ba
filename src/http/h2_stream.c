/*
 * HTTP/2 streams as requests: request bodies with flow control, responses and their DATA
 * frames, the end of a stream, and the protocol ops of a request that arrived on a stream
 * (send, read_body, reset, detach). The request head is h2_head.c. See h2_int.h.
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
	return st;
}

/* The head's buffers, unless they are the stream's own. */
static void head_bufs_free(struct h2stream *st)
{
	if (st->hbuf != st->hinline)
		free(st->hbuf);
	free(st->cookie);
	st->hbuf = NULL;
	st->cookie = NULL;
	st->hlen = st->hcap = st->cookie_len = st->cookie_cap = 0;
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
	h2->hd_id = id;                          /* on_header finds it without a lookup */
	h2->hd_st = st;
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
	if (pt__h2_grow(&st->body, &st->body_cap, (size_t)st->body_len + n, 4096) < 0)
		return -1;
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

/* Whether a field is connection-specific (RFC 9113 8.2.2) or Content-Length (the layer
 * writes the one it announces): HTTP/2 does not send them. */
static bool conn_specific(const char *name, size_t nl)
{
	switch (nl) {
	case 7:
		return !strncasecmp(name, "upgrade", 7);
	case 10:
		return !strncasecmp(name, "connection", 10) || !strncasecmp(name, "keep-alive", 10);
	case 14:
		return !strncasecmp(name, "content-length", 14);
	case 16:
		return !strncasecmp(name, "proxy-connection", 16);
	case 17:
		return !strncasecmp(name, "transfer-encoding", 17);
	}
	return false;
}

static nghttp2_nv nv(const char *n, size_t nl, const char *v, size_t vl)
{
	return (nghttp2_nv){ (uint8_t *)n, (uint8_t *)v, nl, vl, NGHTTP2_NV_FLAG_NONE };
}

/* Length of field i's name or value: from the lengths respond() measured when it has them. */
static size_t name_len(const struct pt_fields *f, const struct pt_http_header *hd, unsigned i)
{
	return f && i < LEN_KEEP ? f->nlen[i] : strlen(hd[i].name);
}

static size_t val_len(const struct pt_fields *f, const struct pt_http_header *hd, unsigned i)
{
	return f && i < LEN_KEEP ? f->vlen[i] : strlen(hd[i].value);
}

/* Submits HEADERS: :status, date, server, the application's fields (the connection-specific
 * ones dropped; nghttp2 lowercases the names as it copies them), content-length. nghttp2
 * copies everything. f: the fields' measured lengths, or NULL. */
static int submit_head(struct h2stream *st, unsigned status, const struct pt_http_fields *pre,
		       const struct pt_http_header *hd, unsigned n, const struct pt_fields *f,
		       int64_t cl, bool data)
{
	struct h2conn *h2 = st->h2;
	struct hworker *hw = h2->hw;
	unsigned all = n + (pre ? pre->n : 0) + 4;
	nghttp2_nv vstack[24], *v = all <= 24 ? vstack : malloc(all * sizeof *v);
	char code[4], len[24];
	unsigned k = 0;
	int rc = -ENOMEM;

	if (!v)
		return rc;
	status %= 1000;
	code[0] = (char)('0' + status / 100), code[1] = (char)('0' + status / 10 % 10);
	code[2] = (char)('0' + status % 10);
	v[k++] = nv(":status", 7, code, 3);
	pt__date_refresh(hw, h2->c);
	v[k++] = nv("date", 4, hw->date + 6, hw->date_len - 8);      /* "Date: " ... CRLF */
	if (h2->s->server_line_len)
		v[k++] = nv("server", 6, h2->s->server_line + 8, h2->s->server_line_len - 10);
	for (unsigned i = 0; pre && i < pre->n; i++) {
		const struct pt_pre_field *a = &pre->at[i];
		if (!conn_specific(pre->block + a->name, a->nlen))
			v[k++] = nv(pre->block + a->name, a->nlen, pre->block + a->value, a->vlen);
	}
	for (unsigned i = 0; i < n; i++) {
		size_t nl = name_len(f, hd, i);
		if (!conn_specific(hd[i].name, nl))
			v[k++] = nv(hd[i].name, nl, hd[i].value, val_len(f, hd, i));
	}
	if (cl >= 0 && status != 204 && status != 304)
		v[k++] = nv("content-length", 14, len, pt__fmt_u64(len, (uint64_t)cl));
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = pt__h2_read_cb };
	rc = nghttp2_submit_response(h2->ng, st->id, v, k, data ? &prd : NULL) == 0 ? 0 : -EPROTO;
	if (v != vstack)
		free(v);
	return rc;
}

static void out_queue(struct h2stream *st, struct h2out *o);

/* A request that cannot be served (bad or too large head): the status with its reason phrase
 * and a newline as the body, as HTTP/1.1 answers it (hsend.c pt__h1_send_error; none for
 * HEAD), then the stream ends; a body the client still sends is discarded. */
void pt__h2_refuse(struct h2stream *st, unsigned status)
{
	static const struct pt_http_header ct = { "content-type", "text/plain; charset=utf-8" };
	struct h2out *o = st->is_head ? NULL : out_alloc(st->hw);

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
	if (submit_head(st, status, NULL, &ct, 1, NULL, o ? (int64_t)o->total : 0, o != NULL) < 0) {
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
		if ((err = submit_head(st, po->status, po->pre, po->headers, po->nheaders, po->f, po->cl,
				       data)) < 0)
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

bool pt__h2_frame_mem(const struct h2stream *st, size_t len)
{
	for (const struct h2out *o = st->out; o && len; o = o->next) {
		size_t off = o->off;
		for (unsigned i = o->cur; i < o->n && len; i++, off = 0) {
			const struct pt_chunk *c = &o->ch[i];
			size_t clen = c->kind == PT_CHUNK_MEM ? c->mem.len : c->file.len;
			if (c->kind != PT_CHUNK_MEM && clen > off)
				return false;
			len -= clen - off < len ? clen - off : len;
		}
	}
	return true;
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
