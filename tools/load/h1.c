/*
 * portico-load: HTTP/1.1 on a connection. Keeps --pipeline requests outstanding (1 without),
 * sends as many new ones as responses completed in one read, in one transmit whose chunks
 * point at the prebuilt request bytes (no copy). --new-conn: one request with
 * "Connection: close", then the server's close, then a new connection.
 * A head whose bytes equal the worker's last parsed head (up to its blank line) takes that
 * parse: resp_head is a pure function of those bytes, so the result is the same, and the
 * common case (every response of a run alike but its body) skips the scan and the parse.
 * Threads: the connection's worker.
 */
#include "load.h"
#include <stdlib.h>
#include <string.h>

static void h1_send(struct lconn *lc, unsigned k)
{
	struct lworker *lw = lc->lw;
	const struct opts *o = &lw->run->o;
	struct pt_chunk ch[PIPE_MAX];
	uint64_t t = o->new_conn ? lc->conn_start_us : pt_worker_now_us(lw->w);

	if (lc->outstanding + k > o->pipeline)    /* never: the ring holds --pipeline */
		k = o->pipeline > lc->outstanding ? o->pipeline - lc->outstanding : 0;
	if (!can_start(lc) || lc->want_close || !k)
		return;
	for (unsigned i = 0; i < k; i++) {
		const struct url *u = &o->urls[lc->next_url];
		lc->next_url = lc->next_url + 1 == o->nurls ? 0 : lc->next_url + 1;
		ch[i] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { u->req, u->req_len } };
		unsigned slot = lc->ring_head + lc->outstanding + i;
		lc->sent_us[slot < o->pipeline ? slot : slot - o->pipeline] = t;
	}
	lc->outstanding += k;
	if (lw->counting)
		lw->st.sent += k;
	lconn_send(lc, ch, k, false);
}

void h1_start(struct lconn *lc)
{
	const struct opts *o = &lc->lw->run->o;

	if (o->pipeline == 1)
		lc->sent_us = &lc->sent_one;     /* keep-alive: no separate (cold) allocation */
	if (!lc->sent_us && !(lc->sent_us = malloc(o->pipeline * sizeof *lc->sent_us))) {
		lconn_fail(lc, &lc->lw->st.err_connect);
		return;
	}
	h1_reset(lc);
	h1_send(lc, o->new_conn ? 1 : o->pipeline);
}

void h1_reset(struct lconn *lc)
{
	lc->outstanding = 0;
	lc->ring_head = 0;
	lc->in_body = false;
	lc->want_close = false;
	lc->head_len = 0;
}

static void complete(struct lconn *lc)
{
	lc->in_body = false;
	record(lc, lc->r.status, lc->sent_us[lc->ring_head]);
	lc->ring_head = lc->ring_head + 1 == lc->lw->run->o.pipeline ? 0 : lc->ring_head + 1;
	lc->outstanding--;
	if (lc->r.close || lc->lw->run->o.new_conn)
		lc->want_close = true;        /* wait for the server's close (its TIME_WAIT) */
}

/* A head at data (len bytes), maybe continuing one gathered before. Returns the bytes of data
 * it used (> 0, the head is parsed into lc->r), 0 when all of data went into the gathered head,
 * or -1 (malformed, too long, out of memory). */
static long take_head(struct lconn *lc, const char *data, size_t len)
{
	bool head_req = lc->lw->run->o.head;
	size_t prev = lc->head_len;

	if (!prev) {
		struct lworker *lw = lc->lw;
		if (lw->hc_len && len >= lw->hc_len && !memcmp(data, lw->hc, lw->hc_len)) {
			lc->r = lw->hc_r;          /* the same bytes as the last head: the same parse */
			return (long)lw->hc_len;
		}
		int hl = resp_head(&lc->r, data, len, head_req);
		if (hl > 0 && (size_t)hl <= sizeof lw->hc) {
			memcpy(lw->hc, data, (size_t)hl);
			lw->hc_len = (size_t)hl;
			lw->hc_r = lc->r;
		}
		if (hl != 0)
			return hl;
	}
	if (!lc->head && !(lc->head = malloc(RESP_HEAD_MAX + 4)))
		return -1;
	size_t room = RESP_HEAD_MAX + 4 - prev, n = len < room ? len : room;
	memcpy(lc->head + prev, data, n);
	lc->head_len += n;
	int hl = resp_head(&lc->r, lc->head, lc->head_len, head_req);
	if (hl < 0 || (hl == 0 && n < len))
		return -1;
	if (hl == 0)
		return 0;
	lc->head_len = 0;
	return (long)((size_t)hl - prev);
}

void h1_rx(struct lconn *lc, const char *data, size_t len)
{
	struct stats *st = &lc->lw->st;
	unsigned completed = 0;
	size_t off = 0;

	while (off < len && lc->c && !lc->closing) {
		if (!lc->in_body) {
			long used = lc->outstanding ? take_head(lc, data + off, len - off) : -1;
			if (used < 0) {
				lconn_fail(lc, &st->err_parse);
				return;
			}
			if (used == 0)
				break;
			off += (size_t)used;
			if (lc->r.interim)
				continue;
			lc->in_body = true;
		}
		bool done;
		ssize_t n = resp_body(&lc->r, data + off, len - off, &done);
		if (n < 0) {
			lconn_fail(lc, &st->err_parse);
			return;
		}
		off += (size_t)n;
		if (lc->lw->counting)
			st->body_in += (uint64_t)n;
		if (done) {
			complete(lc);
			completed++;
		}
	}
	h1_send(lc, completed);
}

/* The server closed: a body delimited by the close is complete. */
void h1_eof(struct lconn *lc)
{
	if (lc->in_body && lc->r.kind == RB_CLOSE)
		complete(lc);
}
