/*
 * The request object: its memory, its head, who owns it and on which thread, its end, and the
 * accessors. Protocol-neutral: the protocol under a request (r->ops: HTTP/1.1 in hconn.c and
 * hsend.c) creates it when a head has been parsed and is told when it must let go.
 *
 * Lifetime. A request is freed when nobody needs it any more (pt__req_maybe_free):
 *  - the protocol, while it still feeds the request input (held: HTTP/1.1's current request);
 *  - the application, until its final send was made and every send callback has run;
 *  - an owner off the worker (kept: pt_http_req_keep, or the sync pool while it has the
 *    request), until pt_http_req_release. Only the release frees a kept request.
 * When the connection goes away first, pt__req_lost detaches the request (proto = NULL: every
 * call then fails with -EPIPE), tells the application (the body reader's -ECONNRESET, or
 * on_abort) and frees it unless it is kept.
 *
 * Threads. Everything runs on the request's worker, except the accessors (on the thread that
 * owns the request: the worker, or the pool thread or owner of a kept request),
 * pt_http_req_conn and pt_http_req_release (any thread), and calls that pt__req_run forwards
 * to the worker (call.c).
 *
 * Memory: request objects come from a per-worker free list (REQ_FREE_MAX kept while requests
 * keep coming, none after a quiet second; none under ASan). Each holds PT_REQ_HDRS header fields inline; a request with more gets a heap array
 * of its own size, freed with it, so memory follows the request, not max_headers.
 */
#include "http/http_int.h"
#include "util/util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Enough for 16-deep pipelining on 64 connections without malloc (S4); what a burst leaves
 * here is freed after a second without requests (pool_housekeep). */
#define REQ_FREE_MAX 1024u

/* ---- memory ---- */

void pt__req_pool_free(struct hworker *hw)
{
	while (hw->req_free) {
		struct pt_http_req *r = hw->req_free;
		hw->req_free = r->next;
		free(r);
	}
	hw->nreq_free = 0;
	pt__hsend_pool_free(hw);
}

/* After a burst the free lists hold objects scattered over the heap, and they pin its pages
 * (issue 19): a second without a new request empties them (and the response cache) and
 * gives the pages back. Armed by the first request after a trim, so an idle worker is not
 * woken. */
#define TRIM_MS 1000u

static void pool_housekeep(pt_timer_t *t, void *arg)
{
	struct hworker *hw = arg;

	if (hw->nreqs != hw->trim_mark) {
		hw->trim_mark = hw->nreqs;
		pt_timer_arm(pt_worker_current(), t, TRIM_MS);
		return;
	}
	pt__req_pool_free(hw);
	pt__h2_worker_free(hw);                  /* HTTP/2 streams and sends kept for reuse */
	pt__rcache_free(hw);                     /* kept responses: none is wanted just now */
	pt__heap_trim();
}

static void pool_watch(struct hworker *hw, pt_conn_t *c)
{
	hw->nreqs++;
	if (!pt_timer_armed(&hw->trim)) {
		pt_timer_init(&hw->trim, pool_housekeep, hw);
		hw->trim_mark = hw->nreqs;
		pt_timer_arm(pt_conn_worker(c), &hw->trim, TRIM_MS);
	}
}

struct pt_http_req *pt__req_new(struct pt_http_server *s, struct hworker *hw, pt_conn_t *c,
				const struct pt_req_ops *ops, void *proto)
{
	struct pt_http_req *r = hw->req_free;

	if (r) {
		hw->req_free = r->next;
		hw->nreq_free--;
	} else if (!(r = malloc(sizeof *r))) {
		return NULL;
	}
	/* libc's memset (vector stores): with the size known here the compiler inlined
	 * `rep stos`, whose start-up cost was most of this function in S4's profile */
	size_t head = offsetof(struct pt_http_req, hdrs), h1 = offsetof(struct h1req, headbuf);
	__asm__("" : "+r"(head), "+r"(h1));
	memset(r, 0, head);
	memset(&r->h1, 0, h1);
	r->s = s;
	r->hw = hw;
	r->c = c;
	r->ops = ops;
	r->proto = proto;
	r->out_left = -1;
	r->head.headers = r->hdrs;
	r->head.nheaders = PT_REQ_HDRS;
	pool_watch(hw, c);
	return r;
}

int pt__req_parse(struct pt_http_req *r, const char *buf, size_t n, struct pt_parse_state *st)
{
	int rc = pt_parse_request(buf, n, &r->head, &r->s->limits, st);

	if (rc != PT_PARSE_FIELDS)
		return rc;
	free(r->hdrs_heap);                      /* a head parsed again (never in practice) */
	if (!(r->hdrs_heap = malloc(r->head.nheaders * sizeof *r->hdrs_heap)))
		return -503;
	r->head.headers = r->hdrs_heap;
	rc = pt_parse_request(buf, n, &r->head, &r->s->limits, st);
	PT_ASSERT(rc != PT_PARSE_FIELDS);
	return rc;
}

/* Back to the worker's free list. Worker thread. */
static void req_free(struct pt_http_req *r)
{
	struct hworker *hw = r->hw;

	PT_ASSERT(!r->pending && !r->kept);      /* no send callback or owner can reach r now */
	free(r->own);
	free(r->hdrs_heap);
	if (!PT_RECYCLE || hw->nreq_free >= REQ_FREE_MAX) {
		free(r);
		return;
	}
	r->next = hw->req_free;
	hw->req_free = r;
	hw->nreq_free++;
}

void pt__req_drop(struct pt_http_req *r)
{
	req_free(r);
}

void pt__req_maybe_free(struct pt_http_req *r)
{
	if (r->pending || r->kept || (r->proto && (!r->final_sent || r->held)))
		return;                              /* still needed */
	if (r->proto)
		r->ops->detach(r);
	req_free(r);
}

/* ---- the head ---- */

/* Slices of the head point into a receive buffer that is about to be reused: move them. */
static void shift(struct pt_slice *s, const char *from, const char *to)
{
	if (s->p)
		s->p = to + (s->p - from);
}

int pt__req_own_head(struct pt_http_req *r)
{
	if (r->own)
		return 0;
	if (!(r->own = malloc(r->head_len ? r->head_len : 1)))
		return -ENOMEM;
	memcpy(r->own, r->head_base, r->head_len);
	struct pt_request_head *hd = &r->head;
	const char *from = r->head_base;
	struct pt_slice *all[] = { &hd->method, &hd->target, &hd->path, &hd->query,
				   &hd->authority, &hd->host };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		shift(all[i], from, r->own);
	for (unsigned i = 0; i < hd->nheaders; i++) {
		shift(&hd->headers[i].name, from, r->own);
		shift(&hd->headers[i].value, from, r->own);
	}
	r->head_base = r->own;
	return 0;
}

/* Clearing instead of copying spares a copy per request that has send callbacks pending. */
void pt__req_forget_head(struct pt_http_req *r)
{
	struct pt_request_head *hd = &r->head;

	hd->method = hd->target = hd->path = hd->query = hd->authority = hd->host = (struct pt_slice){ 0 };
	hd->nheaders = 0;
	r->head_base = NULL;
	r->head_len = 0;
}

/* ---- dispatch ---- */

static void not_found(struct pt_http_req *r)
{
	static const char body[] = "Not Found\n";
	static const struct pt_http_header ct = { "Content-Type", "text/plain; charset=utf-8" };
	struct pt_http_chunk ch = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, sizeof body - 1 } };

	if (pt_http_respond(r, 404, NULL, &ct, 1, &ch, 1, 0, NULL, NULL) < 0)
		r->ops->reset(r);
}

void pt__req_dispatch(struct pt_http_req *r)
{
	/* "OPTIONS *" asks about the server: the root route answers it */
	struct pt_slice path = r->head.target_form == PT_TARGET_ASTERISK ?
			       (struct pt_slice){ "/", 1 } : r->head.path;
	const struct pt_route *rt;

	if (r->hw->rc && r->head.target_form != PT_TARGET_ASTERISK && pt__rcache_serve(r))
		return;                               /* answered from the response cache */
	if (!(rt = pt__route_find(r->s, path)))
		not_found(r);
	else if (rt->flags & PT_ROUTE_SYNC)
		pt__sync_dispatch(r, rt);
	else
		rt->fn(r, rt->arg);
}

/* ---- the end: connection lost, body ended ---- */

void pt__req_body_end(struct pt_http_req *r, int err)
{
	r->body_done = true;
	if (r->body_reading && r->body_cb)
		r->body_cb(r, r->body_arg, NULL, 0, err);
}

void pt__req_lost(struct pt_http_req *r)
{
	__atomic_store_n(&r->proto, NULL, __ATOMIC_RELEASE);
	r->next = NULL;
	r->held = false;
	if (!r->kept && r->body_reading && !r->body_done)
		pt__req_body_end(r, -ECONNRESET);    /* the reader frees its state (responding fails) */
	if (r->on_abort && !(r->final_sent && !r->pending))
		r->on_abort(r, r->abort_arg);
	if (!r->kept)
		req_free(r);                     /* no send is pending: they all ended before on_close */
}

bool pt__req_wake_writable(struct pt_http_req *r)
{
	pt_http_writable_fn fn = r->on_writable;

	if (!fn)
		return false;
	r->on_writable = NULL;                   /* one wake-up per registration */
	fn(r, r->writable_arg);
	return true;
}

PT_API int pt_http_req_on_writable(pt_http_req_t *r, pt_http_writable_fn cb, void *arg)
{
	if (!r || !cb)
		return -EINVAL;
	r->on_writable = cb;
	r->writable_arg = arg;
	return 0;
}

PT_API void pt_http_req_on_abort(pt_http_req_t *r, pt_http_abort_fn cb, void *arg)
{
	if (!r)
		return;
	r->on_abort = cb;
	r->abort_arg = arg;
}

/* ---- requests owned off the worker (kept) ---- */

int pt__req_keep(struct pt_http_req *r)
{
	pt_worker_t *w = pt_conn_worker(r->c);
	int err = pt__req_own_head(r);           /* other threads read the head meanwhile */

	if (err < 0)
		return err;
	if ((err = pt_worker_hold(w)) < 0)       /* the worker must outlive the owner's use of r */
		return err;
	r->worker = w;
	r->kept = true;
	return 0;
}

PT_API int pt_http_req_keep(pt_http_req_t *r)
{
	if (!r || !r->proto || r->kept || pt_worker_current() != pt_conn_worker(r->c))
		return -EINVAL;
	return pt__req_keep(r);
}

/* Given back without its final send: a 500 if nothing went out yet, else the protocol ends the
 * response (HTTP/1.1: the connection is reset, the only way to say it is incomplete). */
static void finish_abandoned(struct pt_http_req *r)
{
	if (r->head_sent ||
	    pt_http_respond(r, 500, NULL, NULL, 0, NULL, 0, PT_HTTP_DISCONNECT, NULL, NULL) < 0)
		r->ops->reset(r);
}

/* The owner is done with r (worker thread, posted by pt_http_req_release). */
static void released(pt_worker_t *w, void *arg)
{
	struct pt_http_req *r = arg;

	PT_ASSERT(r->kept);
	r->kept = false;
	pt_worker_release(w);                    /* this runs on w: it cannot exit meanwhile */
	if (r->proto && !r->final_sent)
		finish_abandoned(r);
	pt__req_maybe_free(r);
}

PT_API void pt_http_req_release(pt_http_req_t *r)
{
	if (r && r->kept)
		pt_post(r->worker, &r->post, released, r);   /* cannot fail: the worker is held */
}

int pt__req_run(struct pt_http_req *r, pt_call_fn fn, void *arg)
{
	if (!r)
		return -EINVAL;
	if (!r->kept || pt_worker_current() == r->worker)
		return fn(NULL, arg);
	return pt__call(r->worker, fn, arg);
}

/* ---- body reading ---- */

struct read_args {
	struct pt_http_req *r;
	pt_http_body_fn cb;
	void *arg;
};

static int read_body(struct pt_call *call, void *p)
{
	struct read_args *a = p;
	struct pt_http_req *r = a->r;

	if (!a->cb || r->body_mode == BODY_NONE || r->body_reading)
		return -EINVAL;
	if (!r->proto)
		return -EPIPE;
	if (r->final_sent)
		return -EALREADY;
	if (r->body_done)
		return -ECONNRESET;          /* it ended before anyone read it: nothing will come */
	r->body_cb = a->cb;
	r->body_arg = a->arg;
	r->body_reading = true;
	int err = r->ops->read_body(r);
	if (err < 0) {
		r->body_reading = false;     /* refused: as if never called */
		r->body_cb = NULL;
	}
	return err;
}

PT_API int pt_http_req_read_body(pt_http_req_t *r, pt_http_body_fn cb, void *arg)
{
	struct read_args a = { r, cb, arg };

	return pt__req_run(r, read_body, &a);
}

/* ---- accessors: slices of the head, never copied ---- */

static struct pt_http_str str(struct pt_slice s)
{
	return (struct pt_http_str){ s.p, s.n };
}

PT_API enum pt_http_method pt_http_req_method(const pt_http_req_t *r)
{
	return r ? (enum pt_http_method)r->head.method_id : PT_HTTP_OTHER;
}

PT_API struct pt_http_str pt_http_req_method_name(const pt_http_req_t *r)
{
	return r ? str(r->head.method) : (struct pt_http_str){ 0 };
}

PT_API struct pt_http_str pt_http_req_target(const pt_http_req_t *r)
{
	return r ? str(r->head.target) : (struct pt_http_str){ 0 };
}

PT_API struct pt_http_str pt_http_req_path(const pt_http_req_t *r)
{
	return r ? str(r->head.path) : (struct pt_http_str){ 0 };
}

PT_API struct pt_http_str pt_http_req_query(const pt_http_req_t *r)
{
	return r ? str(r->head.query) : (struct pt_http_str){ 0 };
}

PT_API struct pt_http_str pt_http_req_authority(const pt_http_req_t *r)
{
	return r ? str(r->head.authority) : (struct pt_http_str){ 0 };
}

PT_API int pt_http_req_decoded_path(const pt_http_req_t *r, char *buf, size_t cap)
{
	if (!r || !buf || !cap)
		return -EINVAL;
	struct pt_slice p = r->head.path;
	size_t k = 0;
	for (size_t i = 0; i < p.n; i++) {
		char c = p.p[i];
		if (c == '%') {
			if (i + 2 >= p.n)
				return -EINVAL;          /* truncated escape */
			int a = pt__hexval((unsigned char)p.p[i + 1]);
			int b = pt__hexval((unsigned char)p.p[i + 2]);
			if (a < 0 || b < 0 || (a | b) == 0)
				return -EINVAL;          /* malformed, or %00 */
			c = (char)(a << 4 | b);
			i += 2;
		}
		if (k + 1 >= cap)
			return -ENOSPC;
		buf[k++] = c;
	}
	buf[k] = 0;
	return (int)k;
}

PT_API int pt_http_req_minor_version(const pt_http_req_t *r)
{
	return r ? r->head.minor_version : -EINVAL;
}

PT_API int pt_http_req_version(const pt_http_req_t *r)
{
	if (!r)
		return -EINVAL;
	return r->ops->major == 2 ? 20 : 10 + r->head.minor_version;
}

PT_API struct pt_http_str pt_http_req_header(const pt_http_req_t *r, const char *name)
{
	if (!r || !name)
		return (struct pt_http_str){ 0 };
	size_t n = strlen(name);
	for (unsigned i = 0; i < r->head.nheaders; i++) {
		const struct pt_header *h = &r->head.headers[i];
		if (h->name.n == n && !strncasecmp(h->name.p, name, n))
			return str(h->value);
	}
	return (struct pt_http_str){ 0 };
}

PT_API int pt_http_req_header_at(const pt_http_req_t *r, unsigned i, struct pt_http_str *name,
				 struct pt_http_str *value)
{
	if (!r || !name || !value)
		return -EINVAL;
	if (i >= r->head.nheaders)
		return -ENOENT;
	*name = str(r->head.headers[i].name);
	*value = str(r->head.headers[i].value);
	return 0;
}

PT_API int64_t pt_http_req_content_length(const pt_http_req_t *r)
{
	return r && !r->head.chunked ? r->head.content_length : -1;
}

PT_API bool pt_http_req_has_body(const pt_http_req_t *r)
{
	return r && r->body_mode != BODY_NONE;
}

PT_API pt_conn_t *pt_http_req_conn(const pt_http_req_t *r)
{
	return r && __atomic_load_n(&r->proto, __ATOMIC_ACQUIRE) ? r->c : NULL;
}

PT_API void pt_http_req_set_user(pt_http_req_t *r, void *user)
{
	if (r)
		r->user = user;
}

PT_API void *pt_http_req_user(const pt_http_req_t *r)
{
	return r ? r->user : NULL;
}
