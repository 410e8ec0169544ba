/*
 * HTTP/1.1 output: the response head (status line, Date, Server, the application's fields,
 * Content-Length or Transfer-Encoding, Connection), the framing (Content-Length, chunked, or
 * close-delimited for HTTP/1.0), and each application send turned into exactly one engine
 * transmit:
 *   [head] [chunk-size line] body chunks... [CRLF] [last-chunk]
 * so head and body leave in one sendmsg and the application's callback runs once per send.
 * Also the responses the layer makes itself: 100 Continue and errors before a request exists.
 *
 * Send contexts (struct hsend) come from a per-worker free list (bypassed under ASan). Worker
 * thread only.
 */
#include "http/http_int.h"
#include "util/util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HSEND_FREE_MAX 1024u
#define FOLD_MAX 512u             /* bodies copied behind the head (fold_body, joins) */
#define JOIN_MAX 32u              /* responses per join */
#define JOIN_BUF 8192u            /* bytes per join */
#define JOIN_FREE_MAX 64u

struct hjoin {
	struct hjoin *next;               /* free list */
	unsigned n;
	size_t len;
	struct {
		struct pt_http_req *r;
		pt_http_send_fn cb;
		void *arg;
		size_t len;
	} m[JOIN_MAX];
	char buf[JOIN_BUF];
};

/* ---- send contexts ---- */

static struct hsend *hsend_alloc(struct hworker *hw)
{
	struct hsend *hs = hw->hs_free;

	if (hs) {
		hw->hs_free = hs->next;
		hw->nhs_free--;
	} else if (!(hs = malloc(sizeof *hs))) {
		return NULL;
	}
	hs->heap_head = NULL;
	hs->refs = NULL;
	hs->nrefs = 0;
	return hs;
}

static void hsend_free(struct hworker *hw, struct hsend *hs)
{
	free(hs->heap_head);
	for (unsigned i = 0; i < hs->nrefs; i++)
		pt__fragment_unref(hs->refs[i]);
	free(hs->refs);
	if (!PT_RECYCLE || hw->nhs_free >= HSEND_FREE_MAX) {
		free(hs);
		return;
	}
	hs->next = hw->hs_free;
	hw->hs_free = hs;
	hw->nhs_free++;
}

void pt__hsend_pool_free(struct hworker *hw)
{
	while (hw->hs_free) {
		struct hsend *hs = hw->hs_free;
		hw->hs_free = hs->next;
		free(hs);
	}
	hw->nhs_free = 0;
	while (hw->hj_free) {
		struct hjoin *j = hw->hj_free;
		hw->hj_free = j->next;
		free(j);
	}
	hw->nhj_free = 0;
}

/* A send failed (other than by the connection closing first): the stream is broken, end it. */
static void send_failed(pt_conn_t *c, struct hconn *h, ssize_t res)
{
	if (res < 0 && h && res != -ECANCELED) {
		h->closing = true;
		pt_conn_close(c, PT_CLOSE_ABORT);
	}
}

/* The request's part of a completed send: its callback, then its release if it is done. */
static void req_sent(struct pt_http_req *r, pt_http_send_fn cb, void *arg, ssize_t res)
{
	PT_ASSERT(r->pending > 0);
	r->pending--;
	if (cb)
		cb(r, arg, res);
	pt__req_maybe_free(r);
}

/* Engine completion of one application send. */
static void send_done(pt_conn_t *c, void *arg, ssize_t res)
{
	struct hsend *hs = arg;
	struct pt_http_req *r = hs->r;
	struct hconn *h = r->h;
	pt_http_send_fn cb = hs->cb;
	void *cb_arg = hs->arg;

	hsend_free(r->hw, hs);
	send_failed(c, h, res);
	req_sent(r, cb, cb_arg, res);
	if (h)
		pt__hconn_after_send(h);
}

/* ---- the head ---- */

static size_t put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return n;
}

static size_t put_str(char *p, const char *s)
{
	return put(p, s, strlen(s));
}

static size_t status_line(char *p, unsigned status, const char *reason)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\n";

	if (status == 200 && reason[0] == 'O' && reason[1] == 'K' && !reason[2])
		return put(p, ok, sizeof ok - 1);
	size_t k = put(p, "HTTP/1.1 ", 9);

	p[k++] = (char)('0' + status / 100);
	p[k++] = (char)('0' + status / 10 % 10);
	p[k++] = (char)('0' + status % 10);
	p[k++] = ' ';
	k += put_str(p + k, reason);
	return k + put(p + k, "\r\n", 2);
}

static size_t put_field(char *p, const char *name, size_t nl, const char *value, size_t vl)
{
	size_t k = put(p, name, nl);

	k += put(p + k, ": ", 2);
	k += put(p + k, value, vl);
	return k + put(p + k, "\r\n", 2);
}

static size_t put_framing(struct pt_http_req *r, char *p, const struct pt_out *o)
{
	size_t k = 0;

	if (r->h1.chunked_out) {
		k += put_str(p + k, "Transfer-Encoding: chunked\r\n");
	} else if (o->cl >= 0 && o->status != 204 && o->status != 304) {
		k += put(p + k, "Content-Length: ", 16);
		k += pt__fmt_u64(p + k, (uint64_t)o->cl);
		k += put(p + k, "\r\n", 2);
	}
	if (r->h1.close_after)
		k += put_str(p + k, "Connection: close\r\n");
	else if (r->head.minor_version == 0)
		k += put_str(p + k, "Connection: keep-alive\r\n");
	return k;
}

static size_t build_head(struct pt_http_req *r, char *p, const struct pt_out *o)
{
	struct hworker *hw = r->hw;
	struct pt_http_server *s = r->s;
	const struct pt_fields *f = o->f;
	const struct pt_http_header *hd = o->headers;
	size_t k = status_line(p, o->status, o->reason);

	pt__date_refresh(hw, r->c);
	k += put(p + k, hw->date, hw->date_len);
	k += put(p + k, s->server_line, s->server_line_len);
	if (o->pre)
		k += put(p + k, o->pre->block, o->pre->bytes);
	for (unsigned i = 0; i < o->nheaders; i++) {
		if ((int)i == f->cl_index)
			continue;                  /* written by put_framing, once */
		size_t nl = i < LEN_KEEP ? f->nlen[i] : strlen(hd[i].name);
		size_t vl = i < LEN_KEEP ? f->vlen[i] : strlen(hd[i].value);
		k += put_field(p + k, hd[i].name, nl, hd[i].value, vl);
	}
	k += put_framing(r, p + k, o);
	return k + put(p + k, "\r\n", 2);
}

/* ---- one engine transmit per application send ---- */

struct emit {
	const struct pt_out *o;
	const char *head;           /* NULL: body only */
	size_t head_len;
	char *heap_head;            /* the send owns it from here (freed with the context) */
	bool folded;                /* the body was copied into the head (fold_body) */
};

static unsigned engine_flags(unsigned f)
{
	return ((f & PT_HTTP_BUFFER) ? PT_SEND_COPY : 0) | ((f & PT_HTTP_MORE) ? PT_SEND_MORE : 0) |
	       ((f & PT_HTTP_ZC) ? PT_SEND_ZC : 0);
}

/* Fills ch in place, member by member: a compound literal here was assembled on the stack and
 * copied as a vector, which stalled on store forwarding (most of emit's time in S4). */
static void mem_chunk(struct pt_chunk *ch, const void *p, size_t n)
{
	ch->kind = PT_CHUNK_MEM;
	ch->mem.base = p;
	ch->mem.len = n;
}

static void body_chunk(struct pt_chunk *ch, const struct pt_http_chunk *b)
{
	if (b->kind == PT_HTTP_CHUNK_MEM) {
		mem_chunk(ch, b->mem.p, b->mem.len);
		return;
	}
	struct stat st;
	int64_t len = b->file.len;
	if (len < 0 && fstat(b->file.fd, &st) == 0)
		len = st.st_size - b->file.offset;
	ch->kind = PT_CHUNK_FILE;
	ch->file.fd = b->file.fd;
	ch->file.offset = b->file.offset;
	ch->file.len = (size_t)len;
}

static unsigned fill_chunks(struct pt_http_req *r, struct hsend *hs, const struct emit *em,
			    struct pt_chunk *ch)
{
	const struct pt_out *o = em->o;
	unsigned k = 0;
	bool framed = r->h1.chunked_out && o->total > 0;

	if (em->head)
		mem_chunk(&ch[k++], em->head, em->head_len);
	if (r->no_body || em->folded)
		return k;
	if (framed) {
		int n = snprintf(hs->sizeline, sizeof hs->sizeline, "%llx\r\n", (unsigned long long)o->total);
		mem_chunk(&ch[k++], hs->sizeline, (size_t)n);
	}
	for (unsigned i = 0; i < o->nbody; i++)
		body_chunk(&ch[k++], &o->body[i]);
	if (framed)
		mem_chunk(&ch[k++], "\r\n", 2);
	if (r->h1.chunked_out && o->final)
		mem_chunk(&ch[k++], "0\r\n\r\n", 5);
	return k;
}

static int emit(struct pt_http_req *r, const struct emit *em, pt_http_send_fn cb, void *arg)
{
	struct hconn *h = r->h;
	const struct pt_out *o = em->o;
	struct pt_chunk stack[8], *ch = stack;
	struct hsend *hs = hsend_alloc(r->hw);
	int err = -ENOMEM;

	if (!hs)
		return err;
	if (o->nbody + 4 > 8 && !(ch = malloc((o->nbody + 4) * sizeof *ch))) {
		hsend_free(r->hw, hs);
		return err;
	}
	*hs = (struct hsend){ .r = r, .cb = cb, .arg = arg, .heap_head = em->heap_head,
			      .refs = o->refs, .nrefs = o->nrefs };
	unsigned n = fill_chunks(r, hs, em, ch);
	if (n == 0)
		mem_chunk(&ch[n++], NULL, 0);
	err = pt_conn_transmit(pt__hc(h), ch, n, engine_flags(o->flags), send_done, hs);
	if (ch != stack)
		free(ch);
	if (err < 0) {
		hs->heap_head = NULL;          /* the caller still owns these on failure */
		hs->refs = NULL;
		hs->nrefs = 0;
		hsend_free(r->hw, hs);
		return err;
	}
	r->pending++;
	if (o->final) {
		r->final_sent = true;
		if (r->h1.close_after)
			h->closing = true;
	}
	pt__hconn_after_send(h);
	return 0;
}

/* A small body from memory is copied behind the head, so the response leaves as one buffer: a
 * send instead of a sendmsg of two pieces, which costs the kernel more per call (S1: a 13-byte
 * file). Not for chunked framing or a zero-copy send. Whether it was: the head grew by it. */
static bool small_body(const struct pt_out *o)
{
	const struct pt_http_chunk *b = o->body;

	return o->nbody == 1 && b->kind == PT_HTTP_CHUNK_MEM && b->mem.len <= FOLD_MAX &&
	       !(o->flags & PT_HTTP_ZC);
}

static bool fold_body(struct pt_http_req *r, const struct pt_out *o, char *p, size_t *k, size_t cap)
{
	const struct pt_http_chunk *b = o->body;

	if (r->no_body || r->h1.chunked_out || !small_body(o) || *k + b->mem.len > cap)
		return false;
	memcpy(p + *k, b->mem.p, b->mem.len);
	*k += b->mem.len;
	return true;
}

/* ---- joined sends: the responses to pipelined requests ---- */

/* A complete small response (head, and a body of at most FOLD_MAX bytes from memory) to a
 * request that others follow in the input is written into a join buffer, sent as one engine
 * transmit, and the responses to the next requests of the batch are written behind it while
 * that transmit is still the connection's newest: it grows (pt_conn_transmit_extend) instead
 * of a transmit each. 16 pipelined hits then cost one send request and one completion; each
 * request's callback still runs once, in order, with its own byte count. */
static struct hjoin *join_alloc(struct hworker *hw)
{
	struct hjoin *j = hw->hj_free;

	if (j) {
		hw->hj_free = j->next;
		hw->nhj_free--;
	} else if (!(j = malloc(sizeof *j))) {
		return NULL;
	}
	j->n = 0;
	j->len = 0;
	return j;
}

static void join_free(struct hworker *hw, struct hjoin *j)
{
	if (!PT_RECYCLE || hw->nhj_free >= JOIN_FREE_MAX) {
		free(j);
		return;
	}
	j->next = hw->hj_free;
	hw->hj_free = j;
	hw->nhj_free++;
}

/* Engine completion of a join: each member's, in order (send_done's steps). */
static void join_done(pt_conn_t *c, void *arg, ssize_t res)
{
	struct hjoin *j = arg;
	struct hworker *hw = j->m[0].r->hw;
	struct hconn *h = j->m[0].r->h;

	send_failed(c, h, res);
	for (unsigned i = 0; i < j->n; i++)
		req_sent(j->m[i].r, j->m[i].cb, j->m[i].arg, res < 0 ? res : (ssize_t)j->m[i].len);
	join_free(hw, j);
	if (h)
		pt__hconn_after_send(h);
}

/* Whether the whole response fits a join: final, no chunked framing, nothing held, the body
 * (if it is sent) one piece of memory of at most FOLD_MAX bytes. */
static bool joinable(const struct pt_http_req *r, const struct pt_out *o, size_t need)
{
	if (!o->final || o->nrefs || r->h1.chunked_out || r->h1.close_after ||
	    (o->flags & (PT_HTTP_ZC | PT_HTTP_MORE | PT_HTTP_DISCONNECT)) || need > JOIN_BUF)
		return false;
	return r->no_body || o->nbody == 0 || small_body(o);
}

/* Sends r's response through a join: 0, 1 when it does not go that way (no join to grow and
 * no pipelined request behind it), or -errno. need: the head's bound plus the body. */
static int join_send(struct pt_http_req *r, const struct pt_out *o, size_t need,
		     pt_http_send_fn cb, void *arg)
{
	struct hconn *h = r->h;
	pt_conn_t *c = pt__hc(h);

	if (!h->pipelined && !h->joined)
		return 1;                  /* a lone request (S1): no join to look for */
	struct hjoin *j = pt_conn_tail_arg(c, join_done);
	bool fresh = !j || j->n == JOIN_MAX || JOIN_BUF - j->len < need;
	int err;

	if (fresh && (!h->pipelined || !(j = join_alloc(r->hw))))
		return 1;
	char *p = j->buf + j->len;
	size_t k = build_head(r, p, o);
	fold_body(r, o, p, &k, JOIN_BUF - j->len);    /* joinable: it fits, if there is one */
	err = fresh ? pt_conn_send(c, p, k, 0, join_done, j)
		    : pt_conn_transmit_extend(c, join_done, j, k);
	if (err < 0) {
		if (fresh)
			join_free(r->hw, j);
		return err;
	}
	j->m[j->n].r = r;
	j->m[j->n].cb = cb;
	j->m[j->n].arg = arg;
	j->m[j->n++].len = k;
	j->len += k;
	h->joined = true;
	r->pending++;
	r->final_sent = true;        /* no after_send: consume() goes on, process() updates the phase */
	return 0;
}

/* ---- sends ---- */

static bool keep_alive(struct pt_http_req *r, const struct pt_fields *f, unsigned flags)
{
	if (!r->head.keep_alive || f->user_close || (flags & PT_HTTP_DISCONNECT) ||
	    r->h->closing || atomic_load(&r->s->stopping))
		return false;
	if (!r->body_done && !r->body_reading) {   /* an unread body must be discarded first */
		if (r->head.expect_continue)
			return false;              /* the client may never send it */
		if (r->body_mode == BODY_LENGTH && r->h1.body_left > r->s->cfg.max_drain)
			return false;
	}
	return true;
}

static int send_head(struct pt_http_req *r, const struct pt_out *o, pt_http_send_fn cb, void *arg)
{
	struct h1req *q = &r->h1;

	if (o->cl < 0 && !o->final) {              /* more body follows, length unknown */
		if (r->head.minor_version >= 1)
			q->chunked_out = true;
		else
			q->close_after = true;     /* HTTP/1.0: the body ends with the connection */
	}
	q->close_after = q->close_after || !keep_alive(r, o->f, o->flags);
	size_t need = 96 + r->hw->date_len + 48 + r->s->server_line_len + o->f->bytes + 64;
	if (r->h->in_consume && joinable(r, o, need + FOLD_MAX)) {   /* in consume() only */
		int err = join_send(r, o, need + FOLD_MAX, cb, arg);
		if (err <= 0)
			return err;
	}
	char *heap = need > PT_HEAD_INLINE ? malloc(need) : NULL;
	if (need > PT_HEAD_INLINE && !heap)
		return -ENOMEM;
	char *p = heap ? heap : q->headbuf;
	struct emit em = { o, p, build_head(r, p, o), heap, false };
	em.folded = fold_body(r, o, p, &em.head_len, heap ? need : PT_HEAD_INLINE);
	int err = emit(r, &em, cb, arg);
	if (err < 0)
		free(heap);
	return err;
}

int pt__h1_send(struct pt_http_req *r, const struct pt_out *o, pt_http_send_fn cb, void *arg)
{
	struct h1req *q = &r->h1;
	bool was_close = q->close_after, was_chunked = q->chunked_out;
	int err;

	if (o->status) {
		err = send_head(r, o, cb, arg);
	} else {
		if (o->flags & PT_HTTP_DISCONNECT)
			q->close_after = true;
		struct emit em = { o, NULL, 0, NULL, false };
		err = emit(r, &em, cb, arg);
	}
	if (err < 0) {
		q->close_after = was_close;         /* nothing was sent: state as before */
		q->chunked_out = was_chunked;
	}
	return err;
}

/* ---- responses of the layer ---- */

int pt__h1_send_continue(struct pt_http_req *r)
{
	static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";

	if (!r->head.expect_continue || r->h1.continue_sent || r->head_sent)
		return 0;
	int err = pt_conn_send(pt__hc(r->h), msg, sizeof msg - 1, 0, NULL, NULL);
	if (err == 0)
		r->h1.continue_sent = true;
	return err;
}

void pt__h1_send_error(struct hconn *h, unsigned status)
{
	char buf[512];
	const char *reason = pt__reason(status);

	pt__count_reject(h->hw, status);
	pt__date_refresh(h->hw, pt__hc(h));
	int n = snprintf(buf, sizeof buf,
			 "HTTP/1.1 %u %s\r\n%s%sContent-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
			 status, reason, h->hw->date, h->hw->s->server_line, strlen(reason) + 1, reason);
	pt_conn_send(pt__hc(h), buf, (size_t)n, PT_SEND_COPY, NULL, NULL);
	h->closing = true;
}
