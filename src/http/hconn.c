/*
 * HTTP/1.1 connections: the input state machine and the HTTP.SYS timeouts.
 *
 * Input is parsed straight from the engine's receive buffer; bytes are copied into the
 * connection's own buffer only when a head is incomplete or when requests must wait behind one
 * whose response is not final yet (pipelining keeps responses in order: request N+1's handler
 * runs only after request N's final send). A request that outlives the receive call gets its
 * own copy of its head.
 *
 * One deadline per connection, chosen by phase: HeaderWait (new connection, partial head),
 * IdleConnection (keep-alive), EntityBody (reset on every body byte), DrainEntityBody (an
 * unread body being discarded), MinSendRate (a response waiting for a slow reader).
 */
#include "http/http_int.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RATE_WINDOW_MS 2000u
#define REQ_FREE_MAX 64u       /* request objects are ~4 KB (the header array): keep few */

/* ---- requests ---- */

static struct pt_http_req *req_alloc(struct hconn *h)
{
	struct hworker *hw = h->hw;
	struct pt_http_req *r = hw->req_free;

	if (r) {
		hw->req_free = r->next;
		hw->nreq_free--;
	} else if (!(r = malloc(h->s->req_size))) {
		return NULL;
	}
	memset(r, 0, offsetof(struct pt_http_req, headbuf));
	memset(&r->body_mode, 0, sizeof *r - offsetof(struct pt_http_req, body_mode));
	r->s = h->s;
	r->h = h;
	r->c = h->c;
	r->out_left = -1;
	r->head.headers = r->hdrs;
	r->head.nheaders = h->s->cfg.max_headers;
	return r;
}

static void req_free(struct hworker *hw, struct pt_http_req *r)
{
	free(r->own);
	if (hw->nreq_free >= REQ_FREE_MAX) {
		free(r);
		return;
	}
	r->next = hw->req_free;
	hw->req_free = r;
	hw->nreq_free++;
}

static void live_unlink(struct hconn *h, struct pt_http_req *r)
{
	for (struct pt_http_req **p = &h->live; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			h->nlive--;
			return;
		}
	}
}

static void live_append(struct hconn *h, struct pt_http_req *r)
{
	struct pt_http_req **p = &h->live;

	while (*p)
		p = &(*p)->next;
	r->next = NULL;
	*p = r;
	h->nlive++;
}

void pt__req_release(struct pt_http_req *r)
{
	struct hconn *h = r->h;

	if (r->pending || r->sync_route || (h && (!r->final_sent || h->cur == r)))
		return;                              /* still needed (the pool frees its own) */
	if (h)
		live_unlink(h, r);
	req_free(h ? h->hw : NULL, r);
}

/* Slices of the head point into a receive buffer that is about to be reused: move them. */
static void shift(struct pt_slice *s, const char *from, const char *to)
{
	if (s->p)
		s->p = to + (s->p - from);
}

int pt__own_head(struct pt_http_req *r)
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

/* ---- timers ---- */

static uint32_t now32(const struct hconn *h)
{
	return (uint32_t)pt_worker_now_ms(pt_conn_worker(h->c));
}

/* What the engine may shed first when it must make room: a head still arriving or a body being
 * discarded (partial), then keep-alive (idle); never a request being handled or answered. */
static enum pt_conn_state phase_state(enum hphase ph)
{
	switch (ph) {
	case PH_NEW: case PH_HEAD: case PH_DRAIN: return PT_CONN_PARTIAL;
	case PH_IDLE: return PT_CONN_IDLE;
	default: return PT_CONN_BUSY;
	}
}

static void set_phase(struct hconn *h, enum hphase ph)
{
	if (ph == h->phase)
		return;
	if (ph == PH_BODY) {
		h->body_win = 0;
		h->win_start = h->last_in = now32(h);
	}
	pt_conn_set_state(h->c, phase_state(ph));
	h->phase = ph;
}

/* PH_BODY runs on a rate window: EntityBody counts from the last body byte (HTTP.SYS resets it
 * on every data indication), and a body arriving slower than MinSendRate marks the connection
 * partial: sheddable before busy ones when the engine must make room. */
static unsigned body_tick_ms(const struct hconn *h)
{
	unsigned eb = h->s->cfg.timeouts.entity_body;

	return eb < RATE_WINDOW_MS ? eb : RATE_WINDOW_MS;
}

static bool body_tick(struct hconn *h)
{
	const struct pt_http_timeouts *t = &h->s->cfg.timeouts;
	uint32_t now = now32(h), quiet = now - h->last_in, span = now - h->win_start;

	if (quiet >= t->entity_body)
		return false;
	if (t->min_send_rate != PT_HTTP_RATE_OFF && span >= RATE_WINDOW_MS / 2) {
		bool slow = (uint64_t)h->body_win * 1000 < (uint64_t)t->min_send_rate * span;
		pt_conn_set_state(h->c, slow ? PT_CONN_PARTIAL : PT_CONN_BUSY);
		h->body_win = 0;
		h->win_start = now;
	}
	unsigned left = t->entity_body - quiet;
	pt_conn_set_timeout(h->c, left < RATE_WINDOW_MS ? left : RATE_WINDOW_MS);
	return true;
}

static void arm(struct hconn *h, enum hphase ph, unsigned ms, bool restart)
{
	if (h->phase == ph && !restart)
		return;
	set_phase(h, ph);
	pt_conn_set_timeout(h->c, ms);
}

static bool responses_pending(const struct hconn *h)
{
	return pt_conn_send_queued(h->c) > 0;
}

static void update_phase(struct hconn *h)
{
	const struct pt_http_timeouts *t = &h->s->cfg.timeouts;
	struct pt_http_req *r = h->cur;

	if (h->closing && !responses_pending(h))
		return;
	if (responses_pending(h) && t->min_send_rate != PT_HTTP_RATE_OFF) {
		if (h->phase != PH_SENDING) {
			h->rate_mark = pt_conn_bytes_sent(h->c);
			pt_conn_notify_empty(h->c);   /* on_drain moves on to the next phase */
		}
		arm(h, PH_SENDING, RATE_WINDOW_MS, false);
	} else if (r && !r->body_done && (r->body_reading || r->final_sent)) {
		arm(h, r->final_sent ? PH_DRAIN : PH_BODY,
		    r->final_sent ? t->drain_entity_body : body_tick_ms(h), false);
	} else if (r) {
		set_phase(h, PH_HANDLER);            /* the application decides how long it takes */
		pt_conn_set_timeout(h->c, 0);
	} else if (h->in_len) {
		arm(h, PH_HEAD, t->header_wait, false);
	} else if (h->phase != PH_NEW) {
		arm(h, PH_IDLE, t->idle_connection, false);
	}
}

static void on_timeout(pt_conn_t *c)
{
	struct hconn *h = pt_conn_user(c);

	if (h->phase == PH_SENDING && responses_pending(h)) {
		uint64_t sent = pt_conn_bytes_sent(c);
		uint64_t need = (uint64_t)h->s->cfg.timeouts.min_send_rate * RATE_WINDOW_MS / 1000;
		if (sent - h->rate_mark >= need) {     /* fast enough: next window */
			h->rate_mark = sent;
			pt_conn_set_timeout(c, RATE_WINDOW_MS);
			return;
		}
		pt_conn_close(c, PT_CLOSE_ABORT);     /* slower than MinSendRate */
		return;
	}
	if (h->phase == PH_SENDING) {
		set_phase(h, PH_HANDLER);
		update_phase(h);
		return;
	}
	if (h->phase == PH_BODY && body_tick(h))
		return;
	if (h->cur && h->cur->body_reading && !h->cur->body_done && h->cur->body_cb) {
		h->cur->body_done = true;
		h->cur->body_cb(h->cur, h->cur->body_arg, NULL, 0, -ETIMEDOUT);
	}
	h->closing = true;
	pt_conn_close(c, PT_CLOSE_GRACEFUL);     /* HeaderWait, Idle, EntityBody, Drain */
}

/* ---- request bodies ---- */

static void body_end(struct pt_http_req *r, int err)
{
	r->body_done = true;
	if (r->body_reading && r->body_cb)
		r->body_cb(r, r->body_arg, NULL, 0, err);
}

static void body_piece(struct pt_http_req *r, const char *p, size_t n)
{
	if (!n)
		return;
	if (r->body_reading) {
		r->body_cb(r, r->body_arg, p, n, 0);
		return;
	}
	r->drained += n;
	if (r->drained > r->s->cfg.max_drain && r->h) {
		r->h->closing = true;                 /* too much to discard: close instead */
		r->close_after = true;
	}
}

static size_t body_length(struct pt_http_req *r, const char *p, size_t n)
{
	size_t k = n < r->body_left ? n : (size_t)r->body_left;

	r->body_left -= k;
	body_piece(r, p, k);
	if (!r->body_left && !r->body_done)
		body_end(r, 0);
	return k;
}

static size_t body_chunked(struct pt_http_req *r, const char *p, size_t n)
{
	size_t off = 0;

	while (!r->body_done && (off < n || n == 0)) {
		size_t used = 0;
		struct pt_slice data = { 0 };
		int rc = pt_chunked_feed(&r->chunked, p + off, n - off, &used, &data);
		off += used;
		if (rc < 0) {
			/* framing lost: nothing after it is usable; the response must say so
			 * (RFC 9112 9.6), so decide before the handler hears of the error */
			r->close_after = true;
			if (r->h)
				r->h->closing = true;
			body_end(r, rc == -413 ? -EMSGSIZE : -EPROTO);
			return n;
		}
		body_piece(r, data.p, data.n);
		if (rc == PT_CHUNKED_DONE)
			body_end(r, 0);
		else if (!used)
			break;
		if (r->h && r->h->closing && !r->body_reading)
			return n;
	}
	return off;
}

/* Feeds body bytes to the reader, or discards them once the response is final. */
static size_t body_input(struct pt_http_req *r, const char *p, size_t n)
{
	if (r->body_done || (!r->body_reading && !r->final_sent))
		return 0;                           /* the handler has not decided yet: hold them */
	return r->body_mode == BODY_LENGTH ? body_length(r, p, n) : body_chunked(r, p, n);
}

/* ---- dispatch ---- */



static void dispatch(struct pt_http_req *r)
{
	/* "OPTIONS *" asks about the server: the root route answers it */
	struct pt_slice path = r->head.target_form == PT_TARGET_ASTERISK ?
			       (struct pt_slice){ "/", 1 } : r->head.path;
	const struct pt_route *rt = pt__route_find(r->s, path);

	if (!rt) {
		static const char body[] = "Not Found\n";
		struct pt_http_chunk ch = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, sizeof body - 1 } };
		static const struct pt_http_header ct = { "Content-Type", "text/plain; charset=utf-8" };
		if (pt_http_respond(r, 404, NULL, &ct, 1, &ch, 1, 0, NULL, NULL) < 0)
			pt_conn_close(r->h->c, PT_CLOSE_ABORT);
		return;
	}
	if (rt->flags & PT_ROUTE_SYNC)
		pt__sync_dispatch(r, rt);
	else
		rt->fn(r, rt->arg);
}

static struct pt_http_req *start_request(struct hconn *h, const char *buf, size_t n, int *rc)
{
	struct pt_http_req *r = req_alloc(h);

	if (!r) {
		*rc = -503;
		return NULL;
	}
	*rc = pt_parse_request(buf, n, &r->head, &h->s->limits, &h->pst);
	if (*rc <= 0) {
		req_free(h->hw, r);
		return NULL;
	}
	memset(&h->pst, 0, sizeof h->pst);
	r->head_base = buf;
	r->head_len = (size_t)*rc;
	if (r->head.chunked) {
		r->body_mode = BODY_CHUNKED;
		pt_chunked_init(&r->chunked, &h->s->limits);
	} else if (r->head.content_length > 0) {
		r->body_mode = BODY_LENGTH;
		r->body_left = (uint64_t)r->head.content_length;
	} else {
		r->body_done = true;
	}
	live_append(h, r);
	h->cur = r;
	return r;
}

/* Pipelining backpressure: a client that sends requests faster than it reads the responses
 * must not make the server hold their requests and responses without bound. While this much
 * is queued, further requests wait in the input buffer (whose own bound pauses reading), and
 * dispatching resumes when the send queue is empty. */
#define PIPE_QUEUED_MAX (64u << 10)
#define PIPE_LIVE_MAX 32u

static bool must_wait_for_sends(struct hconn *h)
{
	if (h->nlive < PIPE_LIVE_MAX && pt_conn_send_queued(h->c) < PIPE_QUEUED_MAX)
		return false;
	if (!h->tx_wait && pt_conn_notify_empty(h->c) == 0)
		h->tx_wait = true;                   /* on_drain: dispatch again */
	return h->tx_wait;
}

/* Consumes complete requests (and their bodies) from buf; returns the bytes used. */
static size_t consume(struct hconn *h, const char *buf, size_t n)
{
	size_t off = 0;
	int rc;

	while (!h->closing) {
		struct pt_http_req *r = h->cur;
		if (r) {
			off += body_input(r, buf + off, n - off);
			if (h->closing || !r->body_done || !r->final_sent)
				break;
			h->cur = NULL;
			pt__req_release(r);
			continue;
		}
		if (off == n || must_wait_for_sends(h))
			break;
		r = start_request(h, buf + off, n - off, &rc);
		if (!r) {
			if (rc < 0)
				pt__req_send_error(h, (unsigned)-rc);
			break;
		}
		off += r->head_len;
		dispatch(r);
	}
	return h->closing ? n : off;
}

/* ---- input buffer ---- */

static int in_reserve(struct hconn *h, size_t more)
{
	size_t need = h->in_len + more;

	if (need <= h->in_cap)
		return 0;
	size_t cap = h->in_cap ? h->in_cap : 1024;
	while (cap < need)
		cap *= 2;
	if (cap > UINT32_MAX)
		return -ENOMEM;
	char *p = realloc(h->in, cap);
	if (!p)
		return -ENOMEM;
	h->in = p;
	h->in_cap = (uint32_t)cap;
	return 0;
}

static void in_drop(struct hconn *h, size_t used)
{
	h->in_len -= (uint32_t)used;
	if (h->in_len)
		memmove(h->in, h->in + used, h->in_len);
	else if (h->in_cap > 16384) {       /* do not keep a big buffer on an idle connection */
		free(h->in);
		h->in = NULL;
		h->in_cap = 0;
	}
}

/* After the final send the head is not available any more (http.h): its slices are cleared
 * instead of copied, which spares a copy per request that has send callbacks pending. */
static void forget_head(struct pt_http_req *r)
{
	struct pt_request_head *hd = &r->head;

	hd->method = hd->target = hd->path = hd->query = hd->authority = hd->host = (struct pt_slice){ 0 };
	hd->nheaders = 0;
	r->head_base = NULL;
	r->head_len = 0;
}

/* Requests alive after this receive call must not point into its buffers. */
static void own_live_heads(struct hconn *h)
{
	for (struct pt_http_req *r = h->live; r; r = r->next) {
		if (r->own)
			continue;
		if (r->final_sent && !r->sync_route) {
			forget_head(r);
			continue;
		}
		if (pt__own_head(r) < 0) {
			h->closing = true;
			pt_conn_close(h->c, PT_CLOSE_ABORT);
			return;
		}
	}
}

/* Buffered input waiting behind an unfinished request is bounded: stop reading meanwhile. */
static void flow_control(struct hconn *h)
{
	size_t limit = h->s->cfg.max_head + 65536;

	if (h->in_len > limit)
		pt_conn_pause_recv(h->c);
	else
		pt_conn_resume_recv(h->c);
}

/* After the peer's FIN (h->eof) the requests already received are still answered, in order
 * (a half-close after a pipelined batch is legal); what can no longer complete ends the
 * connection: a body that stops short, or a partial head. */
static void eof_check(struct hconn *h)
{
	struct pt_http_req *r = h->cur;

	if (r && !r->body_done) {
		if (!r->body_reading && !r->final_sent)
			return;                      /* the handler may still read what is buffered */
		body_end(r, -ECONNRESET);
		r->close_after = true;
		h->closing = true;
	} else if (!r && !h->tx_wait) {
		h->closing = true;                   /* nothing more can arrive: close after answers */
	}
}

static void process(struct hconn *h, const char *data, size_t len)
{
	size_t used;

	h->in_consume = true;
	if (h->in_len) {
		if (in_reserve(h, len) < 0)
			goto oom;
		memcpy(h->in + h->in_len, data, len);
		h->in_len += (uint32_t)len;
		used = consume(h, h->in, h->in_len);
		own_live_heads(h);
		in_drop(h, used);
	} else {
		used = consume(h, data, len);
		own_live_heads(h);
		if (used < len && !h->closing) {
			if (in_reserve(h, len - used) < 0)
				goto oom;
			memcpy(h->in, data + used, len - used);
			h->in_len = (uint32_t)(len - used);
		}
	}
	h->in_consume = false;
	if (h->eof && !h->closing)
		eof_check(h);
	if (h->closing) {
		pt__hconn_maybe_close(h);
		return;
	}
	flow_control(h);
	update_phase(h);
	return;
oom:
	h->in_consume = false;
	h->closing = true;
	pt_conn_close(h->c, PT_CLOSE_ABORT);
}

static void on_data(pt_conn_t *c, const void *data, size_t len)
{
	struct hconn *h = pt_conn_user(c);

	if (h->closing)
		return;
	if (h->phase == PH_BODY) {
		h->body_win += (uint32_t)len;
		h->last_in = now32(h);
	}
	process(h, data, len);
}

/* Continues with input that waited behind a response that is now final. A zero-length send
 * is the connection's own completion: it runs in order, from the worker loop, and before
 * on_close if the connection goes away. */
static void resume_cb(pt_conn_t *c, void *arg, ssize_t res)
{
	struct hconn *h = pt_conn_user(c);

	h->resume_queued = false;
	if (res >= 0 && !h->closing)
		process(h, "", 0);
}

/* The final send of a request was made (or a send completed). Inside consume() the loop goes
 * on by itself; otherwise the application made the call, and must not be re-entered. */
void pt__hconn_after_send(struct hconn *h)
{
	if (h->closing) {
		pt__hconn_maybe_close(h);
		return;
	}
	if (!h->cur || !h->cur->final_sent) {
		update_phase(h);
		return;
	}
	pt__hconn_kick(h);
}

/* Input waits that the state just changed for (response final, body reader set): process it
 * from the loop. */
void pt__hconn_kick(struct hconn *h)
{
	if (h->in_consume || h->resume_queued || h->closing) {
		update_phase(h);
		return;
	}
	if (pt_conn_send(h->c, NULL, 0, 0, resume_cb, NULL) == 0)
		h->resume_queued = true;
}

/* Closing was decided: close once every live request has made its final send. */
void pt__hconn_maybe_close(struct hconn *h)
{
	for (struct pt_http_req *r = h->live; r; r = r->next)
		if (!r->final_sent)
			return;
	pt_conn_close(h->c, PT_CLOSE_GRACEFUL);
}

static void on_eof(pt_conn_t *c, int err)
{
	struct hconn *h = pt_conn_user(c);

	h->eof = true;
	if (err) {                                /* reset: nobody is left to answer */
		if (h->cur && !h->cur->body_done && h->cur->body_reading)
			body_end(h->cur, err);
		h->closing = true;
		pt_conn_close(c, PT_CLOSE_ABORT);
		return;
	}
	if (h->closing)
		pt__hconn_maybe_close(h);
	else if (!h->in_consume)
		process(h, "", 0);                    /* answer what was received, then close */
}

static void on_drain(pt_conn_t *c)
{
	struct hconn *h = pt_conn_user(c);

	for (struct pt_http_req *r = h->live; r; r = r->next) {
		if (r->on_writable) {                  /* one wake-up per registration */
			pt_http_writable_fn fn = r->on_writable;
			r->on_writable = NULL;
			fn(r, r->writable_arg);
			break;                         /* the list may have changed */
		}
	}

	if (h->phase == PH_SENDING && !responses_pending(h))
		set_phase(h, PH_HANDLER);                /* leave the rate phase: pick the next one */
	if (h->tx_wait) {
		h->tx_wait = false;
		pt__hconn_kick(h);                       /* dispatch what waited (or wait again) */
		return;
	}
	update_phase(h);
}

static void on_close(pt_conn_t *c)
{
	struct hconn *h = pt_conn_user(c);
	struct hworker *hw = h->hw;

	while (h->live) {
		struct pt_http_req *r = h->live;
		h->live = r->next;
		__atomic_store_n(&r->h, NULL, __ATOMIC_RELEASE);
		if (!r->sync_route && r->body_reading && !r->body_done)
			body_end(r, -ECONNRESET);    /* the reader frees its state (responding fails) */
		if (r->on_abort && !(r->final_sent && !r->pending))
			r->on_abort(r, r->abort_arg);
		if (!r->sync_route)
			req_free(hw, r);
		else
			r->next = NULL;              /* the sync pool owns it until its thread is done */
	}
	free(h->in);                             /* h itself lives in the connection object */
}

const struct pt_conn_ops pt__http_conn_ops = {
	.on_data = on_data,
	.on_eof = on_eof,
	.on_timeout = on_timeout,
	.on_drain = on_drain,
	.on_close = on_close,
};
