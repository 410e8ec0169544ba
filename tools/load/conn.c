/*
 * portico-load: a connection's life cycle (connect, transport, reconnect) and the per-worker
 * loop (start, request timeouts, stop). See load.h.
 * Threads: every function here runs on the connection's (the worker's) thread.
 */
#include "load.h"
#include <errno.h>
#include <stdlib.h>

#define RETRY_MS 10u              /* after a failed connect: do not spin on a dead server */
#define TICK_MS 100u              /* request timeouts are checked this often */

static void on_data(pt_conn_t *c, const void *data, size_t len);
static void on_eof(pt_conn_t *c, int err);
static void on_close(pt_conn_t *c);
static const struct pt_conn_ops conn_ops = { .on_data = on_data, .on_eof = on_eof,
					     .on_close = on_close };

bool can_start(const struct lconn *lc)
{
	return !lc->lw->ending && lc->c && !lc->closing;
}

void record(struct lconn *lc, unsigned status, uint64_t start_us)
{
	struct lworker *lw = lc->lw;
	uint64_t now = pt_worker_now_us(lw->w);

	if (!lw->counting)
		return;
	lw->st.done++;
	lw->st.status[status >= 100 && status < 600 ? status / 100 : 0]++;
	hist_record(&lw->hist, now > start_us ? now - start_us : 0);
}

void lconn_deliver(struct lconn *lc, const char *data, size_t len)
{
	if (lc->lw->run->o.h2)
		h2_rx(lc, data, len);
	else
		h1_rx(lc, data, len);
}

void lconn_ready(struct lconn *lc)
{
	if (!lc->lw->run->o.h2)
		h1_start(lc);
	else if (h2_start(lc) < 0)
		lconn_fail(lc, &lc->lw->st.err_connect);
}

void lconn_fail(struct lconn *lc, uint64_t *counter)
{
	if (lc->lw->counting && counter)
		(*counter)++;
	if (lc->c && !lc->closing) {
		lc->closing = true;
		pt_conn_close(lc->c, PT_CLOSE_ABORT);   /* on_close reconnects */
	}
}

int lconn_send(struct lconn *lc, const struct pt_chunk *ch, unsigned n, bool copy)
{
	int err;

	if (!lc->c || lc->closing)
		return -EPIPE;
	if (lc->ssl)
		err = tls_send(lc, ch, n);
	else
		err = pt_conn_transmit(lc->c, ch, n, copy ? PT_SEND_COPY : 0, NULL, NULL);
	if (err < 0)
		lconn_fail(lc, &lc->lw->st.err_write);
	return err;
}

static int on_connect(pt_conn_t *c, int err, void *arg)
{
	struct lconn *lc = arg;
	struct lworker *lw = lc->lw;

	lc->connecting = false;
	if (err < 0) {
		if (lw->counting)
			lw->st.err_connect++;
		if (!lw->ending)
			pt_timer_arm(lw->w, &lc->retry, RETRY_MS);
		return 0;
	}
	lc->c = c;
	lc->closing = false;
	lc->last_progress_ms = pt_worker_now_ms(lw->w);
	pt_conn_set_ops(c, &conn_ops);
	pt_conn_set_user(c, lc);
	if (lw->counting)
		lw->st.connects++;
	if (lw->ending)
		lconn_fail(lc, NULL);
	else if (!lw->run->o.tls)
		lconn_ready(lc);
	else if (tls_start(lc) < 0)
		lconn_fail(lc, &lw->st.err_connect);
	return 0;
}

void lconn_open(struct lconn *lc)
{
	struct lworker *lw = lc->lw;
	const struct opts *o = &lw->run->o;
	struct pt_connect_opts co = { .on_connect = on_connect, .arg = lc,
				      .timeout_ms = o->timeout_ms, .no_delay = true };

	if (lw->ending || lc->connecting || lc->c)
		return;
	lc->connecting = true;
	lc->conn_start_us = pt_worker_now_us(lw->w);
	if (pt_connect(lw->w, (const struct sockaddr *)&o->sa, o->salen, &co) < 0) {
		lc->connecting = false;
		if (lw->counting)
			lw->st.err_connect++;
		pt_timer_arm(lw->w, &lc->retry, RETRY_MS);
	}
}

static void on_data(pt_conn_t *c, const void *data, size_t len)
{
	struct lconn *lc = pt_conn_user(c);

	if (lc->lw->counting)
		lc->lw->st.bytes_in += len;
	lc->last_progress_ms = pt_worker_now_ms(lc->lw->w);
	if (lc->ssl)
		tls_rx(lc, data, len);
	else
		lconn_deliver(lc, data, len);
}

static void on_eof(pt_conn_t *c, int err)
{
	struct lconn *lc = pt_conn_user(c);

	if (!lc->lw->run->o.h2)
		h1_eof(lc);
	/* requests still owed are lost, an error unless the server announced its close */
	bool owed = (lc->outstanding || lc->h2_open) && !lc->want_close;
	if ((owed || err) && !lc->closing)
		lconn_fail(lc, &lc->lw->st.err_read);
	else if (!lc->closing) {
		lc->closing = true;
		pt_conn_close(c, PT_CLOSE_GRACEFUL);
	}
}

static void on_close(pt_conn_t *c)
{
	struct lconn *lc = pt_conn_user(c);

	lc->c = NULL;
	lc->closing = false;
	h1_reset(lc);
	h2_reset(lc);
	tls_reset(lc);
	if (!lc->lw->ending)
		lconn_open(lc);
}

/* ---- the worker ---- */

static void retry_fire(pt_timer_t *t, void *arg)
{
	lconn_open(arg);
}

/* Requests without progress for --timeout fail (and their connection is opened again). */
static void tick_fire(pt_timer_t *t, void *arg)
{
	struct lworker *lw = arg;
	uint64_t now = pt_worker_now_ms(lw->w);
	unsigned to = lw->run->o.timeout_ms;

	for (unsigned i = 0; i < lw->nconns; i++) {
		struct lconn *lc = &lw->conns[i];
		bool waiting = lc->outstanding || lc->h2_open || lc->want_close ||
			       (lc->ssl && !lc->hs_done);
		if (lc->c && !lc->closing && waiting && now - lc->last_progress_ms > to)
			lconn_fail(lc, lc->want_close ? NULL : &lw->st.err_timeout);
	}
	if (!lw->ending)
		pt_timer_arm(lw->w, &lw->tick, TICK_MS);
}

void lworker_start(pt_worker_t *w, void *arg)
{
	struct lworker *lw = arg;

	lw->w = w;
	lw->counting = true;
	pt_timer_init(&lw->tick, tick_fire, lw);
	pt_timer_arm(w, &lw->tick, TICK_MS);
	for (unsigned i = 0; i < lw->nconns; i++) {
		pt_timer_init(&lw->conns[i].retry, retry_fire, &lw->conns[i]);
		lconn_open(&lw->conns[i]);
	}
}

/* The end of the run: counting stops now (the main thread reads the statistics after the
 * engine stopped); connections are reset (their requests would not count anyway). */
void lworker_stop(pt_worker_t *w, void *arg)
{
	struct lworker *lw = arg;

	lw->counting = false;
	lw->ending = true;
	pt_timer_cancel(&lw->tick);
	for (unsigned i = 0; i < lw->nconns; i++) {
		struct lconn *lc = &lw->conns[i];
		pt_timer_cancel(&lc->retry);
		lconn_fail(lc, NULL);
	}
}
