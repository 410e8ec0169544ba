/*
 * The per-connection send queue: TransmitPackets-style requests, completed in order.
 *
 * Cursors over the queue (oldest first):
 *   sq_head   .. first request not yet freed
 *   sq_notify .. first request whose callback has not run
 *   sq_send   .. first request with bytes not yet handed to the kernel
 * A request's callback runs when all its bytes are in the kernel (or at once, in order, for
 * PT_SEND_COPY, whose bytes the engine owns), and only after every earlier request's callback.
 * At most one kernel send is in flight per connection (io_uring may reorder concurrent sends on
 * a socket); consecutive memory chunks of queued requests are gathered into one sendmsg.
 * File chunks go out with sendfile(2) on the worker, at most PT_SENDFILE_MAX per call, and wait
 * for writability on EAGAIN. sq_check states the cursors' invariants (test and debug builds).
 *
 * Send requests and kernel send contexts come from per-worker lookaside lists (bypassed under
 * ASan, so that a use after recycling is caught).
 */
#include "engine/engine_int.h"
#include "engine/fault.h"
#include "engine/tls_int.h"
#include "engine/plat.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- lookaside lists ---- */

static struct pt_sreq *sreq_get(struct pt_worker *w)
{
	struct pt_sreq *r = w->sreq_free;

	if (pt__fault(PT_FAULT_ALLOC))     /* test builds: a context request fails even when listed */
		return NULL;
	if (r) {
		w->sreq_free = r->next;
		w->nsreq_free--;
	}
	else if (!(r = malloc(sizeof *r)))
		return NULL;
	r->next = NULL;
	r->chunks = r->inline_chunks;
	r->n = r->cur = r->flags = 0;
	r->off = r->total = r->left = r->copy_len = 0;
	r->copy = NULL;
	r->err = 0;
	return r;
}

static void sreq_put(struct pt_worker *w, struct pt_sreq *r)
{
	if (r->chunks != r->inline_chunks)
		free(r->chunks);
	if (r->copy) {
		free(r->copy);
		w->buffered -= r->copy_len;
	}
	if (!PT_RECYCLE || w->nsreq_free >= PT_SREQ_FREE_MAX) {
		free(r);
		return;
	}
	w->nsreq_free++;
	r->next = w->sreq_free;
	w->sreq_free = r;
}

static struct pt_txop *txop_get(struct pt_worker *w)
{
	struct pt_txop *t = w->txop_free;

	if (pt__fault(PT_FAULT_ALLOC))
		return NULL;
	if (t) {
		w->txop_free = t->next;
		w->ntxop_free--;
	}
	else if (!(t = malloc(sizeof *t)))
		return NULL;
	memset(&t->msg, 0, sizeof t->msg);
	t->msg.msg_iov = t->iov;
	t->len = 0;
	t->zc = false;
	t->zc_res = 0;
	return t;
}

static void txop_put(struct pt_worker *w, struct pt_txop *t)
{
	if (!PT_RECYCLE || w->ntxop_free >= PT_TXOP_FREE_MAX) {
		free(t);
		return;
	}
	w->ntxop_free++;
	t->next = w->txop_free;
	w->txop_free = t;
}

/* c's send queue, allocated when it was the worker's empty one: NULL when out of memory.
 * Queues come from a lookaside list too (one per response of a keep-alive connection). */
static struct pt_txq *txq_get(struct pt_conn *c)
{
	struct pt_worker *w = c->w;
	struct pt_txq *q = w->txq_free;

	if (c->q != &w->txq_none)
		return c->q;
	if (pt__fault(PT_FAULT_ALLOC))
		return NULL;
	if (q) {
		w->txq_free = (struct pt_txq *)q->sq_head;
		w->ntxq_free--;
	} else if (!(q = malloc(sizeof *q))) {
		return NULL;
	}
	*q = (struct pt_txq){ 0 };
	return c->q = q;
}

/* Gives back c's send queue once it is empty and no kernel send is in flight. */
void pt__txq_release(struct pt_conn *c)
{
	struct pt_worker *w = c->w;
	struct pt_txq *q = c->q;

	if (q == &w->txq_none || q->sq_head || q->tx)
		return;
	c->q = &w->txq_none;
	if (!PT_RECYCLE || w->ntxq_free >= PT_TXQ_FREE_MAX) {
		free(q);
		return;
	}
	q->sq_head = (struct pt_sreq *)w->txq_free;
	w->txq_free = q;
	w->ntxq_free++;
}

void pt__sreq_pool_free(struct pt_worker *w)
{
	while (w->sreq_free) {
		struct pt_sreq *r = w->sreq_free;
		w->sreq_free = r->next;
		free(r);
	}
	while (w->txop_free) {
		struct pt_txop *t = w->txop_free;
		w->txop_free = t->next;
		free(t);
	}
	while (w->txq_free) {
		struct pt_txq *q = w->txq_free;
		w->txq_free = (struct pt_txq *)q->sq_head;
		free(q);
	}
	w->nsreq_free = w->ntxop_free = w->ntxq_free = 0;
}

/* ---- submitting ---- */

static int check_chunks(const struct pt_chunk *ch, unsigned n, size_t *total, size_t *mem)
{
	*total = *mem = 0;
	for (unsigned i = 0; i < n; i++) {
		if (ch[i].kind == PT_CHUNK_MEM) {
			if (!ch[i].mem.base && ch[i].mem.len)
				return -EINVAL;
			*mem += ch[i].mem.len;
			*total += ch[i].mem.len;
		} else if (ch[i].kind == PT_CHUNK_FILE) {
			if (ch[i].file.fd < 0 || ch[i].file.offset < 0)
				return -EINVAL;
			*total += ch[i].file.len;
		} else {
			return -EINVAL;
		}
	}
	return 0;
}

/* PT_SEND_COPY: one owned buffer holds every memory chunk; chunks are re-pointed into it. */
static int sreq_copy(struct pt_worker *w, struct pt_sreq *r, size_t mem)
{
	if (!mem)
		return 0;
	if (w->buffered + mem > w->e->cfg.max_worker_buffered)
		return -EAGAIN;
	if (!(r->copy = pt__malloc(mem)))
		return -ENOMEM;
	r->copy_len = mem;
	w->buffered += mem;
	size_t off = 0;
	for (unsigned i = 0; i < r->n; i++) {
		struct pt_chunk *ch = &r->chunks[i];
		if (ch->kind != PT_CHUNK_MEM || !ch->mem.len)
			continue;
		memcpy(r->copy + off, ch->mem.base, ch->mem.len);
		ch->mem.base = r->copy + off;
		off += ch->mem.len;
	}
	r->flags |= PT_SR_COPIED;
	return 0;
}

/* The queue's invariants, over its first SQ_CHECK_MAX requests (test and debug builds): the
 * cursors are on the queue, in its order from sq_head; every request before sq_send has handed
 * all its bytes to the kernel and every one before sq_notify has been notified; sq_bytes is what
 * the requests from sq_send on have left. */
#define SQ_CHECK_MAX 64
static void sq_check(const struct pt_conn *c)
{
#if PT_ASSERTS
	const struct pt_sreq *r = c->q->sq_head, *last = NULL;
	bool at_notify = !c->q->sq_notify, at_send = !c->q->sq_send;
	size_t left = 0;
	unsigned n = 0;

	PT_ASSERT(!c->q->sq_head == !c->q->sq_tail);
	PT_ASSERT(c->q->sq_send || !c->q->sq_bytes);
	for (; r && n < SQ_CHECK_MAX; last = r, r = r->next, n++) {
		at_notify |= r == c->q->sq_notify;
		at_send |= r == c->q->sq_send;
		PT_ASSERT(at_notify || (r->flags & PT_SR_NOTIFIED));
		PT_ASSERT(at_send || r->left == 0);
		left += at_send ? r->left : 0;
	}
	if (!r) {                        /* the whole queue was seen */
		PT_ASSERT(last == c->q->sq_tail && at_notify && at_send);
		PT_ASSERT(left == c->q->sq_bytes);
	}
#else
	(void)c;
#endif
}

static void sq_append(struct pt_conn *c, struct pt_sreq *r)
{
	r->next = NULL;
	if (c->q->sq_tail)
		c->q->sq_tail->next = r;
	else
		c->q->sq_head = r;
	c->q->sq_tail = r;
	if (!c->q->sq_notify)
		c->q->sq_notify = r;
	if (!c->q->sq_send && r->left)
		c->q->sq_send = r;
	c->q->sq_bytes += r->left;
	sq_check(c);
}

static int sreq_build(struct pt_worker *w, struct pt_sreq *r, const struct pt_chunk *chunks,
		      unsigned n, unsigned flags, size_t total, size_t mem)
{
	r->chunks = n <= PT_SREQ_INLINE ? r->inline_chunks : pt__malloc(n * sizeof *chunks);
	if (!r->chunks)
		return -ENOMEM;
	memcpy(r->chunks, chunks, n * sizeof *chunks);
	r->n = n;
	r->flags = flags & (PT_SEND_MORE | PT_SEND_COPY | PT_SEND_ZC);
	r->total = r->left = total;
	return (flags & PT_SEND_COPY) ? sreq_copy(w, r, mem) : 0;
}

PT_API int pt_conn_transmit(pt_conn_t *c, const struct pt_chunk *chunks, unsigned n,
			    unsigned flags, pt_send_fn cb, void *arg)
{
	size_t total, mem;
	int err;

	if (!c || !chunks || n == 0 || n > PT_MAX_CHUNKS || (flags & ~7u) ||
	    !(c->flags & PT_C_LIVE) || c->w != pt__current_worker())
		return -EINVAL;
	if ((err = check_chunks(chunks, n, &total, &mem)) < 0)
		return err;
	if (c->flags & (PT_C_CLOSING | PT_C_SHUT_WR))
		return -EPIPE;
	struct pt_worker *w = c->w;
	if (c->q->sq_bytes && c->q->sq_bytes + mem > w->e->cfg.max_send_queue) {
		c->flags |= PT_C_WANT_DRAIN;
		CNT_ADD(w, send_refused, 1);
		return -EAGAIN;
	}
	struct pt_sreq *r = txq_get(c) ? sreq_get(w) : NULL;
	if (!r) {
		pt__txq_release(c);
		return -ENOMEM;
	}
	r->chunks = r->inline_chunks;
	if ((err = sreq_build(w, r, chunks, n, flags, total, mem)) < 0) {
		sreq_put(w, r);
		pt__txq_release(c);
		if (err == -EAGAIN) {
			c->flags |= PT_C_WANT_DRAIN;
			CNT_ADD(w, send_refused, 1);
		}
		return err;
	}
	r->cb = cb;
	r->arg = arg;
	sq_append(c, r);
	pt__pending(c);
	return 0;
}

PT_API int pt_conn_send(pt_conn_t *c, const void *buf, size_t len, unsigned flags,
			pt_send_fn cb, void *arg)
{
	struct pt_chunk ch = { .kind = PT_CHUNK_MEM, .mem = { buf, len } };

	return pt_conn_transmit(c, &ch, 1, flags, cb, arg);
}

/* The newest send, when pt_conn_transmit_extend may grow it (see engine.h). */
static struct pt_sreq *growable_tail(const struct pt_conn *c, pt_send_fn cb)
{
	struct pt_sreq *r = c->q->sq_tail;

	if (!r || r->cb != cb || r->err || r->n == 0 || !r->left ||
	    (r->flags & (PT_SEND_COPY | PT_SEND_ZC | PT_SR_COPIED | PT_SR_NOTIFIED)) ||
	    r->chunks[r->n - 1].kind != PT_CHUNK_MEM)
		return NULL;
	return r;
}

PT_API void *pt_conn_tail_arg(const pt_conn_t *c, pt_send_fn cb)
{
	const struct pt_sreq *r = c && (c->flags & PT_C_LIVE) ? growable_tail(c, cb) : NULL;

	return r ? r->arg : NULL;
}

PT_API int pt_conn_transmit_extend(pt_conn_t *c, pt_send_fn cb, void *arg, size_t more)
{
	if (!c || !(c->flags & PT_C_LIVE) || c->w != pt__current_worker())
		return -EINVAL;
	if (c->flags & (PT_C_CLOSING | PT_C_SHUT_WR))
		return -EPIPE;
	struct pt_sreq *r = growable_tail(c, cb);
	if (!r || r->arg != arg)
		return -EBUSY;
	if (c->q->sq_bytes + more > c->w->e->cfg.max_send_queue)
		return -EAGAIN;
	r->chunks[r->n - 1].mem.len += more;   /* positions already sent stay where they were */
	r->total += more;
	r->left += more;
	c->q->sq_bytes += more;
	return 0;
}

PT_API size_t pt_conn_send_queued(const pt_conn_t *c)
{
	return c ? c->q->sq_bytes : 0;
}

PT_API size_t pt_conn_unacked(const pt_conn_t *c)
{
	int n;

	if (!c)
		return 0;
	n = pt__sock_outq(c->fd);
	return c->q->sq_bytes + (n > 0 ? (size_t)n : 0);
}

PT_API uint64_t pt_conn_bytes_sent(const pt_conn_t *c)
{
	return c ? c->sent : 0;
}

/* ---- progress ---- */

size_t pt__chunk_len(const struct pt_chunk *ch)
{
	return ch->kind == PT_CHUNK_MEM ? ch->mem.len : ch->file.len;
}

#define chunk_len pt__chunk_len

/* Skip empty chunks and finished requests at the send cursor. */
static void send_cursor_settle(struct pt_conn *c)
{
	struct pt_sreq *r;

	while ((r = c->q->sq_send)) {
		while (r->cur < r->n && r->off == chunk_len(&r->chunks[r->cur])) {
			r->cur++;
			r->off = 0;
		}
		if (r->cur < r->n && r->left)
			return;
		r->left = 0;
		c->q->sq_send = r->next;
	}
}

/* n bytes went to the kernel. */
static void tx_advance(struct pt_conn *c, size_t n)
{
	if (!c->tls || c->tls->ktls)
		CNT_ADD(c->w, bytes_out, n);      /* TLS: ciphertext is counted in tls_sent */
	c->q->sq_bytes -= n;
	c->sent += n;
	while (n) {
		struct pt_sreq *r = c->q->sq_send;
		size_t room = chunk_len(&r->chunks[r->cur]) - r->off;
		size_t k = n < room ? n : room;
		r->off += k;
		r->left -= k;
		n -= k;
		send_cursor_settle(c);
	}
	send_cursor_settle(c);
}

void pt__tx_notify(struct pt_conn *c)
{
	struct pt_sreq *r;

	while ((r = c->q->sq_notify) && (r->left == 0 || (r->flags & PT_SR_COPIED) || r->err)) {
		c->q->sq_notify = r->next;
		r->flags |= PT_SR_NOTIFIED;
		if (r->cb)
			r->cb(c, r->arg, r->err ? r->err : (ssize_t)r->total);
	}
	while ((r = c->q->sq_head) && (r->flags & PT_SR_NOTIFIED) && r->left == 0) {
		c->q->sq_head = r->next;
		if (!c->q->sq_head)
			c->q->sq_tail = NULL;
		sreq_put(c->w, r);
	}
	sq_check(c);
	pt__txq_release(c);
}

/* Every queued request fails with err, in order. Requests whose memory a kernel send still
 * references wait for that send's completion (pt__tx_done calls back here). */
void pt__tx_fail(struct pt_conn *c, int err)
{
	c->flags |= PT_C_SHUT_WR;
	if (c->flags & PT_C_TX_BUSY) {
		if (c->q->tx)
			return;     /* memory in the kernel: fail when the send completes */
		c->flags &= ~PT_C_TX_BUSY;   /* a writable-wait only: safe to fail now */
	}
	/* from the head: copied requests already notified still hold bytes and must go too */
	for (struct pt_sreq *r = c->q->sq_head; r; r = r->next) {
		if (!r->err && !(r->flags & PT_SR_NOTIFIED))
			r->err = err;
		r->left = 0;
	}
	if (c->q->sq_head) {
		c->q->sq_send = NULL;
		c->q->sq_bytes = 0;
	}
	pt__tx_notify(c);
}

/* ---- the transmit state machine ---- */

static bool zc_request(const struct pt_conn *c, const struct pt_sreq *r)
{
	return (r->flags & PT_SEND_ZC) && !(r->flags & PT_SR_COPIED) && c->w->zc_ok && !c->tls;
}

/* Gathers memory chunks from the send cursor into t. A zero-copy request goes alone. Returns
 * MSG_MORE when more bytes are queued behind what was gathered or the last request asked for
 * it, so the kernel does not push a partial segment. */
static int gather(struct pt_conn *c, struct pt_txop *t)
{
	unsigned k = 0;
	struct pt_sreq *r = c->q->sq_send, *last = r;
	bool more = false;

	t->zc = zc_request(c, r);
	for (; r && k < PT_TX_IOV; r = r->next) {
		if (r != c->q->sq_send && (t->zc || zc_request(c, r))) {
			more = true;
			break;
		}
		unsigned i = (r == c->q->sq_send) ? r->cur : 0;
		size_t off = (r == c->q->sq_send) ? r->off : 0;
		for (; i < r->n && k < PT_TX_IOV; i++, off = 0) {
			const struct pt_chunk *ch = &r->chunks[i];
			if (ch->kind == PT_CHUNK_FILE && ch->file.len) {
				more = true;
				goto out;
			}
			if (ch->kind != PT_CHUNK_MEM || ch->mem.len == off)
				continue;
			t->iov[k].iov_base = (char *)ch->mem.base + off;
			t->iov[k].iov_len = ch->mem.len - off;
			t->len += t->iov[k++].iov_len;
		}
		last = r;
		if (i < r->n) {
			more = true;
			break;
		}
	}
	if (r && r != last)
		more = true;
out:
	t->msg.msg_iovlen = k;
	return MSG_NOSIGNAL | ((more || (last->flags & PT_SEND_MORE)) ? MSG_MORE : 0);
}

/* The send stream broke (a kernel send error, a short file, no memory for a kernel send):
 * bytes the application handed over are lost, PT_SEND_COPY ones after their callbacks said
 * "sent", so nothing can follow on this connection. Every queued request fails with err, and
 * a live connection is reset (on_close follows): a FIN would pass the truncated stream off as
 * complete, and leaving it open would keep the peer waiting for bytes that never come. */
static void tx_error(struct pt_conn *c, int err)
{
	pt__tx_fail(c, err);
	if ((c->flags & PT_C_LIVE) && !(c->flags & PT_C_FINAL))
		pt_conn_close(c, PT_CLOSE_ABORT);
}

/* A file chunk at the cursor: sendfile until done, EAGAIN or the per-round budget. */
static int tx_file(struct pt_conn *c, size_t *budget)
{
	struct pt_sreq *r = c->q->sq_send;
	const struct pt_chunk *ch = &r->chunks[r->cur];
	size_t want = ch->file.len - r->off;
	off_t off = ch->file.offset + (off_t)r->off;

	if (want > PT_SENDFILE_MAX)
		want = PT_SENDFILE_MAX;
	int f = pt__fault(PT_FAULT_SEND);      /* test builds; EINTR waits (a rule may repeat it) */
	if (f)
		return f == -EINTR ? -EAGAIN : f;
	ssize_t n = c->w->be->send_file(c->w, c, ch->file.fd, off, want);
	if (n > 0) {
		tx_advance(c, (size_t)n);
		*budget = *budget > (size_t)n ? *budget - (size_t)n : 0;
		return 0;
	}
	if (n == 0)
		return -EIO;           /* the file is shorter than the range: the stream is broken */
	if (n == -EINPROGRESS) {       /* submitted: pt__tx_done follows */
		c->flags |= PT_C_TX_BUSY;
		return 1;
	}
	return n == -EINTR ? 0 : (int)n;
}

static int tx_mem(struct pt_conn *c, size_t *budget)
{
	struct pt_worker *w = c->w;

	if (!c->q->tx && !(c->q->tx = txop_get(w)))
		return -ENOMEM;
	int flags = gather(c, c->q->tx);
	ssize_t n = w->be->send(w, c, flags);
	if (n > 0) {                    /* done synchronously (epoll) */
		txop_put(w, c->q->tx);
		c->q->tx = NULL;
		tx_advance(c, (size_t)n);
		*budget = *budget > (size_t)n ? *budget - (size_t)n : 0;
		return 0;
	}
	if (n == 0) {                   /* submitted: pt__tx_done follows */
		c->flags |= PT_C_TX_BUSY;
		return 1;
	}
	txop_put(w, c->q->tx);
	c->q->tx = NULL;
	return (int)n;
}

/* TLS: ciphertext of n bytes reached the kernel. */
static void tls_sent(struct pt_conn *c, size_t n, size_t *budget)
{
	size_t plain = pt__tls_sent(c, n);

	CNT_ADD(c->w, bytes_out, n);             /* as bytes_in: what crossed the socket */
	if (plain)
		tx_advance(c, plain);
	*budget = *budget > n ? *budget - n : 0;
}

/* TLS (userspace records): send the next ciphertext buffer, encrypting first if needed.
 * 0 = progress, 1 = submitted or nothing to send, < 0 = -errno. */
static int tx_tls(struct pt_conn *c, size_t *budget)
{
	struct pt_worker *w = c->w;
	struct pt_tls_buf *b;
	int rc = pt__tls_take(c, &b);

	if (rc < 0)
		return rc;
	if (!b)
		return 1;
	if (!txq_get(c) || (!c->q->tx && !(c->q->tx = txop_get(w))))
		return -ENOMEM;
	struct pt_txop *t = c->q->tx;
	t->iov[0].iov_base = b->base + b->off;
	t->iov[0].iov_len = t->len = b->len - b->off;
	t->msg.msg_iovlen = 1;
	ssize_t n = w->be->send(w, c, MSG_NOSIGNAL | (b->more ? MSG_MORE : 0));
	if (n > 0) {
		txop_put(w, t);
		c->q->tx = NULL;
		tls_sent(c, (size_t)n, budget);
		return 0;
	}
	if (n == 0) {
		c->flags |= PT_C_TX_BUSY;
		return 1;
	}
	txop_put(w, t);
	c->q->tx = NULL;
	return (int)n;
}

static bool tx_tls_mode(const struct pt_conn *c)
{
	return c->tls && !c->tls->ktls;
}

void pt__tx_run(struct pt_conn *c)
{
	size_t budget = 4 * PT_SENDFILE_MAX;   /* per round, so one fast client cannot monopolise */
	int rc = 0;

	while ((c->q->sq_send || c->tls) && !(c->flags & (PT_C_TX_BUSY | PT_C_FINAL)) && budget) {
		struct pt_sreq *r = c->q->sq_send;
		if (tx_tls_mode(c))
			rc = tx_tls(c, &budget);
		else if (!r)
			break;
		else if (r->chunks[r->cur].kind == PT_CHUNK_FILE)
			rc = tx_file(c, &budget);
		else
			rc = tx_mem(c, &budget);
		if (rc == -EAGAIN) {
			c->flags |= PT_C_TX_BUSY;
			c->w->be->wait_writable(c->w, c);
			break;
		}
		if (rc < 0) {
			tx_error(c, rc);
			break;
		}
		if (rc > 0)
			break;
	}
	if (!budget && (c->q->sq_send || (c->tls && c->tls->fly)))
		pt__pending(c);        /* continue in the next round */
	pt__tx_notify(c);
}

/* The kernel send of c->q->tx (NULL: a file send the backend submitted with its own context)
 * completed with res (bytes or -errno). */
void pt__tx_done(struct pt_conn *c, ssize_t res)
{
	struct pt_worker *w = c->w;
	struct pt_txop *t = c->q->tx;

	c->q->tx = NULL;
	c->flags &= ~PT_C_TX_BUSY;
	CNT_ADD(w, sends, 1);
	if (c->flags & PT_C_FINAL) {               /* closing: whatever happened, fail the rest */
		if (t)
			txop_put(w, t);
		t = NULL;
		tx_error(c, res < 0 ? (int)res : -ECANCELED);
	} else if (res >= 0 && tx_tls_mode(c) && c->tls->fly) {
		size_t budget = SIZE_MAX;
		tls_sent(c, (size_t)res, &budget);
	} else if (res >= 0 && c->q->sq_send) {
		tx_advance(c, (size_t)res);
	} else if (res == -EAGAIN) {               /* the socket is full: wait for room, resend */
		c->flags |= PT_C_TX_BUSY;
		w->be->wait_writable(w, c);
	} else if (res < 0 && res != -EINTR) {
		if (t)
			txop_put(w, t);
		t = NULL;
		tx_error(c, (int)res);
	}                                          /* -EINTR: send again */
	if (t)
		txop_put(w, t);
	pt__tx_notify(c);
	pt__pending(c);
}

void pt__tx_writable(struct pt_conn *c)
{
	c->flags &= ~PT_C_TX_BUSY;
	pt__pending(c);
}
