/*
 * HTTP/1.1 connections: the input state machine.
 *
 * Input is parsed straight from the engine's receive buffer; bytes are copied into the
 * connection's own buffer only when a head is incomplete or when requests must wait behind one
 * whose response is not final yet (pipelining keeps responses in order: request N+1's handler
 * runs only after request N's final send). A request that outlives the receive call gets its
 * own copy of its head (request.c).
 *
 * Each request is a request object (request.c) whose protocol ops (pt__h1_req_ops) point here
 * and to hsend.c. The connection keeps its live requests in arrival order; the current one
 * (cur, held) is the one whose body the input belongs to. Timeouts are in timeouts.c.
 *
 * Closing: after an error, or a response that ends the connection while the peer is still
 * sending (a body nobody reads), the connection lingers (timeouts.c) before the engine's
 * graceful close, so that the response is not destroyed by a reset. Worker thread only.
 */
#include "http/http_int.h"
#include "util/util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- the live list ---- */

static void live_unlink(struct hconn *h, struct pt_http_req *r)
{
	struct pt_http_req *prev = h->live;

	if (!prev)
		return;
	while (prev->next != r) {            /* the ring: r's predecessor */
		prev = prev->next;
		if (prev == h->live)
			return;                  /* not on it */
	}
	if (prev == r)
		h->live = NULL;                  /* it was the only one */
	else {
		prev->next = r->next;
		if (h->live == r)
			h->live = prev;
	}
	r->next = NULL;
	h->nlive--;
}

/* At the newest end, in constant time (16 pipelined requests walked a list each). */
static void live_append(struct hconn *h, struct pt_http_req *r)
{
	if (h->live) {
		r->next = h->live->next;
		h->live->next = r;
	} else {
		r->next = r;
	}
	h->live = r;
	h->nlive++;
}

/* ---- the protocol ops of an HTTP/1.1 request ---- */

static int h1_read_body(struct pt_http_req *r)
{
	int err = pt__h1_send_continue(r);

	if (err < 0)
		return err;
	pt__hconn_kick(r->h);        /* deliver bytes already buffered, from the loop */
	return 0;
}

/* The only way HTTP/1.1 can say that a response is incomplete. */
static void h1_reset(struct pt_http_req *r)
{
	r->h->closing = true;
	pt_conn_close(pt__hc(r->h), PT_CLOSE_ABORT);
}

static void h1_detach(struct pt_http_req *r)
{
	live_unlink(r->h, r);
}

const struct pt_req_ops pt__h1_req_ops = {
	.major = 1,
	.send = pt__h1_send,
	.read_body = h1_read_body,
	.reset = h1_reset,
	.detach = h1_detach,
};

/* ---- request bodies ---- */

static void body_piece(struct pt_http_req *r, const char *p, size_t n)
{
	if (!n)
		return;
	if (r->body_reading) {
		r->body_cb(r, r->body_arg, p, n, 0);
		return;
	}
	r->h1.drained += n;
	if (r->h1.drained > r->s->cfg.max_drain && r->h) {
		r->h->closing = true;                 /* too much to discard: close instead */
		r->h1.close_after = true;
	}
}

static size_t body_length(struct pt_http_req *r, const char *p, size_t n)
{
	size_t k = n < r->h1.body_left ? n : (size_t)r->h1.body_left;

	r->h1.body_left -= k;
	body_piece(r, p, k);
	if (!r->h1.body_left && !r->body_done)
		pt__req_body_end(r, 0);
	return k;
}

static size_t body_chunked(struct pt_http_req *r, const char *p, size_t n)
{
	size_t off = 0;

	while (!r->body_done && (off < n || n == 0)) {
		size_t used = 0;
		struct pt_slice data = { 0 };
		int rc = pt_chunked_feed(&r->h1.chunked, p + off, n - off, &used, &data);
		off += used;
		if (rc < 0) {
			/* framing lost: nothing after it is usable; the response must say so
			 * (RFC 9112 9.6), so decide before the handler hears of the error */
			r->h1.close_after = true;
			if (r->h)
				r->h->closing = true;
			pt__req_body_end(r, rc == -413 ? -EMSGSIZE : -EPROTO);
			return n;
		}
		body_piece(r, data.p, data.n);
		if (rc == PT_CHUNKED_DONE)
			pt__req_body_end(r, 0);
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

void pt__hconn_body_abort(struct hconn *h, int err)
{
	struct pt_http_req *r = h->cur;

	if (r && r->body_reading && !r->body_done)
		pt__req_body_end(r, err);
}

/* ---- requests ---- */

/* RFC 9112 7.1, 9.6: a chunked body whose framing is already broken in the bytes that came
 * with the head is answered 400 (413 over max_body, 431 for too long a trailer section) before
 * any handler runs, while the status can still say so. The scan runs a copy of the decoder
 * (the body itself is decoded when it is read); chunk data spans are skipped, not read. Later
 * framing errors reach the body reader (-EPROTO) or, once the response is final, close the
 * connection. Returns 0 or -status. */
static int chunked_in_hand(const struct pt_chunked *dec, const char *p, size_t n)
{
	struct pt_chunked c = *dec;
	size_t off = 0;

	while (off < n) {
		size_t used = 0;
		struct pt_slice data;
		int rc = pt_chunked_feed(&c, p + off, n - off, &used, &data);
		if (rc != PT_CHUNKED_MORE)
			return rc < 0 ? rc : 0;
		if (!used)
			break;
		off += used;
	}
	return 0;
}

/* How the body is framed (RFC 9112 6.3); a bad chunked framing in hand is -status. */
static int body_setup(struct pt_http_req *r, const char *rest, size_t n)
{
	if (r->head.chunked) {
		r->body_mode = BODY_CHUNKED;
		pt_chunked_init(&r->h1.chunked, &r->s->limits);
		return chunked_in_hand(&r->h1.chunked, rest, n);
	}
	if (r->head.content_length > 0) {
		r->body_mode = BODY_LENGTH;
		r->h1.body_left = (uint64_t)r->head.content_length;
	} else {
		r->body_done = true;
	}
	return 0;
}

/* A request from the head at buf, or NULL: *rc is then 0 (incomplete) or -status. pst: what
 * is validated of an incomplete head at buf (kept with the buffered input). */
static struct pt_http_req *start_request(struct hconn *h, const char *buf, size_t n, int *rc,
					 struct pt_parse_state *pst)
{
	struct pt_http_req *r = pt__req_new(h->hw->s, h->hw, pt__hc(h), &pt__h1_req_ops, h);

	if (!r) {
		*rc = -503;
		return NULL;
	}
	*rc = pt__req_parse(r, buf, n, pst);
	if (*rc > 0) {
		size_t len = (size_t)*rc;
		memset(pst, 0, sizeof *pst);
		r->head_base = buf;
		r->head_len = len;
		int err = body_setup(r, buf + len, n - len);
		*rc = err < 0 ? err : *rc;
	}
	if (*rc <= 0) {
		pt__req_drop(r);
		return NULL;
	}
	live_append(h, r);
	h->cur = r;
	r->held = true;
	return r;
}

/* A request that cannot be taken (bad head, bad framing in hand, no memory): answered, then
 * the connection closes. It lingers first when the client is surely still sending: its head
 * has not ended (a limit cut it short: 431, 414), or it announced a body that is too large
 * (413: the body follows unless it asked to continue first). */
static void bad_request(struct hconn *h, const char *p, size_t n, unsigned status)
{
	pt__h1_send_error(h, status);
	h->linger = status == 413 || !memmem(p, n, "\r\n\r\n", 4);
}

/* Pipelining backpressure: a client that sends requests faster than it reads the responses
 * must not make the server hold their requests and responses without bound. While this much
 * is queued, further requests wait in the input buffer (whose own bound pauses reading), and
 * dispatching resumes when the send queue is empty. */
#define PIPE_QUEUED_MAX (64u << 10)
#define PIPE_LIVE_MAX 32u

static bool must_wait_for_sends(struct hconn *h)
{
	if (h->nlive < PIPE_LIVE_MAX && pt_conn_send_queued(pt__hc(h)) < PIPE_QUEUED_MAX)
		return false;
	if (!h->tx_wait && pt_conn_notify_empty(pt__hc(h)) == 0)
		h->tx_wait = true;                   /* on_drain: dispatch again */
	return h->tx_wait;
}

/* Consumes complete requests (and their bodies) from buf; returns the bytes used. pst: the
 * parse state of an incomplete head where consuming stops. */
static size_t consume(struct hconn *h, const char *buf, size_t n, struct pt_parse_state *pst)
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
			r->held = false;
			pt__req_maybe_free(r);
			continue;
		}
		if (off == n || must_wait_for_sends(h))
			break;
		if (!(r = start_request(h, buf + off, n - off, &rc, pst))) {
			if (rc < 0)
				bad_request(h, buf + off, n - off, (unsigned)-rc);
			break;
		}
		off += r->head_len;
		h->pipelined = off < n;
		pt__req_dispatch(r);
	}
	return h->closing ? n : off;
}

/* ---- input buffer ---- */

static int in_reserve(struct hconn *h, size_t more)
{
	size_t have = pt__hin_len(h), need = have + more, cap = h->in ? h->in->cap : 0;

	if (need <= cap)
		return 0;
	cap = cap ? cap : 1024 - sizeof(struct hin);
	while (cap < need)
		cap = 2 * cap + sizeof(struct hin);    /* the allocations stay powers of two */
	if (cap > UINT32_MAX)
		return -ENOMEM;
	struct hin *p = realloc(h->in, sizeof *p + cap);
	if (!p)
		return -ENOMEM;
	if (!h->in)
		*p = (struct hin){ 0 };
	h->in = p;
	p->cap = (uint32_t)cap;
	return 0;
}

/* Drops the first used bytes; an emptied buffer is freed (an idle connection holds none). */
static void in_drop(struct hconn *h, size_t used)
{
	struct hin *in = h->in;

	in->len -= (uint32_t)used;
	if (in->len) {
		memmove(in->data, in->data + used, in->len);
	} else {
		free(in);
		h->in = NULL;
	}
}

static void in_free(struct hconn *h)
{
	free(h->in);
	h->in = NULL;
}

/* Requests alive after this receive call must not point into its buffers. After the final
 * send the head is not available any more (http.h): its slices are cleared, not copied. */
static void own_live_heads(struct hconn *h)
{
	for (struct pt_http_req *r = pt__live_first(h); r; r = pt__live_next(h, r)) {
		if (r->own)
			continue;
		if (r->final_sent && !r->kept) {
			pt__req_forget_head(r);
			continue;
		}
		if (pt__req_own_head(r) < 0) {
			h->closing = true;
			pt_conn_close(pt__hc(h), PT_CLOSE_ABORT);
			return;
		}
	}
}

/* Buffered input waiting behind an unfinished request is bounded: stop reading meanwhile. */
static void flow_control(struct hconn *h)
{
	size_t limit = h->hw->s->cfg.max_head + 65536;

	if (pt__hin_len(h) > limit)
		pt_conn_pause_recv(pt__hc(h));
	else
		pt_conn_resume_recv(pt__hc(h));
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
		pt__req_body_end(r, -ECONNRESET);
		r->h1.close_after = true;
		h->closing = true;
	} else if (!r && !h->tx_wait) {
		h->closing = true;                   /* nothing more can arrive: close after answers */
	}
}

/* Appends data to the buffered input and consumes from there. */
static int process_buffered(struct hconn *h, const char *data, size_t len)
{
	if (in_reserve(h, len) < 0)
		return -ENOMEM;
	struct hin *in = h->in;
	memcpy(in->data + in->len, data, len);
	in->len += (uint32_t)len;
	size_t used = consume(h, in->data, in->len, &in->pst);
	own_live_heads(h);
	in_drop(h, used);
	return 0;
}

/* Consumes from the receive buffer; keeps what is left (with the parse state of its head). */
static int process_direct(struct hconn *h, const char *data, size_t len)
{
	struct pt_parse_state pst = { 0 };
	size_t used = consume(h, data, len, &pst);

	own_live_heads(h);
	if (used == len || h->closing)
		return 0;
	if (in_reserve(h, len - used) < 0)
		return -ENOMEM;
	memcpy(h->in->data, data + used, len - used);
	h->in->len = (uint32_t)(len - used);
	h->in->pst = pst;
	return 0;
}

static void process(struct hconn *h, const char *data, size_t len)
{
	h->in_consume = true;
	h->joined = false;
	int err = h->in ? process_buffered(h, data, len) : process_direct(h, data, len);
	h->in_consume = false;
	if (err < 0) {
		h->closing = true;
		pt_conn_close(pt__hc(h), PT_CLOSE_ABORT);
		return;
	}
	if (h->eof && !h->closing)
		eof_check(h);
	if (h->closing) {
		pt__hconn_maybe_close(h);
		return;
	}
	flow_control(h);
	pt__phase_update(h);
}

/* ---- the connection's callbacks and the layer's calls ---- */

/* h2c with prior knowledge: a plaintext connection that opens with the client preface (24
 * bytes, which TCP may split) becomes HTTP/2. A beginning of the preface is kept until the rest
 * arrives. true: handled (switched, kept, or closed). */
static bool h2c_preface(struct hconn *h, const void *data, size_t len)
{
	static const char pre[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	size_t have = pt__hin_len(h), all = have + len;

	if (pt_conn_is_tls(pt__hc(h)) || have >= 24 || !len || (have && memcmp(h->in->data, pre, have)) ||
	    memcmp(data, pre + have, len < 24 - have ? len : 24 - have))
		return false;
	if (all < 24) {                           /* a prefix so far: wait for the rest */
		if (in_reserve(h, len) < 0) {
			pt_conn_close(pt__hc(h), PT_CLOSE_ABORT);
			return true;
		}
		memcpy(h->in->data + h->in->len, data, len);
		h->in->len += (uint32_t)len;
		return true;
	}
	char *buf = have ? malloc(all) : NULL;
	if (have && !buf) {
		pt_conn_close(pt__hc(h), PT_CLOSE_ABORT);
		return true;
	}
	if (buf) {
		memcpy(buf, h->in->data, have);
		memcpy(buf + have, data, len);
	}
	in_free(h);                               /* the area is HTTP/2's from now on */
	if (pt__h2_start(h->hw->s, pt__hc(h), buf ? buf : data, all) < 0)
		pt_conn_close(pt__hc(h), PT_CLOSE_ABORT);
	free(buf);
	return true;
}

static void on_data(pt_conn_t *c, const void *data, size_t len)
{
	struct hconn *h = pt_conn_user(c);

	if (h->hw->s->cfg.h2c && h->phase == PH_NEW && !h->cur && h2c_preface(h, data, len))
		return;
	pt__phase_input(h, len);
	if (!h->closing)
		process(h, data, len);
}

/* Continues with input that waited behind a response that is now final. */
static void resume_cb(pt_conn_t *c, void *arg, ssize_t res)
{
	struct hconn *h = pt_conn_user(c);

	h->resume = false;
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
		pt__phase_update(h);
		return;
	}
	pt__hconn_kick(h);
}

/* Input waits that the state just changed for (response final, body reader set): process it
 * from the loop. The step is a send of zero bytes, the connection's own completion
 * (engine.h, pt_conn_send): it runs from the worker loop, after the callbacks of the sends
 * made before it, and before on_close if the connection goes away, so h is still valid. */
void pt__hconn_kick(struct hconn *h)
{
	if (h->in_consume || h->resume || h->closing) {
		pt__phase_update(h);
		return;
	}
	if (pt_conn_send(pt__hc(h), NULL, 0, 0, resume_cb, NULL) == 0)
		h->resume = true;
}

/* Closing was decided: once every live request has made its final send, linger while the
 * peer may still be sending (an error cut its message short, or a body is still coming), else
 * close. */
void pt__hconn_maybe_close(struct hconn *h)
{
	for (struct pt_http_req *r = pt__live_first(h); r; r = pt__live_next(h, r))
		if (!r->final_sent)
			return;
	if ((h->linger || (h->cur && !h->cur->body_done)) && !h->eof) {
		if (h->phase != PH_LINGER)
			pt__phase_linger(h);
		return;
	}
	pt_conn_close(pt__hc(h), PT_CLOSE_GRACEFUL);
}

static void on_eof(pt_conn_t *c, int err)
{
	struct hconn *h = pt_conn_user(c);

	h->eof = true;
	if (err) {                                /* reset: nobody is left to answer */
		pt__hconn_body_abort(h, err);
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

	for (struct pt_http_req *r = pt__live_first(h); r; r = pt__live_next(h, r))
		if (pt__req_wake_writable(r))
			break;                         /* the list may have changed */
	if (h->phase == PH_SENDING && pt_conn_send_queued(c) == 0)
		pt__phase_set(h, PH_HANDLER);          /* leave the rate phase: pick the next one */
	if (h->tx_wait) {
		h->tx_wait = false;
		pt__hconn_kick(h);                     /* dispatch what waited (or wait again) */
		return;
	}
	pt__phase_update(h);
}

static void on_close(pt_conn_t *c)
{
	struct hconn *h = pt_conn_user(c);

	h->cur = NULL;
	while (h->live) {
		struct pt_http_req *r = pt__live_first(h);
		live_unlink(h, r);
		pt__req_lost(r);
	}
	in_free(h);                              /* h itself lives in the connection object */
}

/* The server stops: see pt__phase_stop (the next response head says Connection: close). */
static void on_stop(pt_conn_t *c)
{
	pt__phase_stop(pt_conn_user(c));
}

const struct pt_conn_ops pt__http_conn_ops = {
	.on_data = on_data,
	.on_eof = on_eof,
	.on_timeout = pt__phase_timeout,
	.on_drain = on_drain,
	.on_close = on_close,
	.on_stop = on_stop,
};

void pt__hconn_init(struct hconn *h, struct pt_http_server *s, pt_conn_t *c)
{
	h->hw = pt__hw(s, c);
	pt_conn_set_user(c, h);
	pt_conn_set_ops(c, &pt__http_conn_ops);
	h->phase = PH_NEW;
	pt_conn_set_state(c, PT_CONN_PARTIAL);     /* once it sends: a head still arriving */
}
