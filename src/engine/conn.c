/*
 * Connections: the worker lists and the governor, accept, receive delivery, the close state
 * machine (the objects' memory: conn_mem.c).
 *
 * Close protocol: CLOSING (no more callbacks but send completions and on_close) -> graceful:
 * flush queued sends, FIN, discard input until the peer's FIN or the linger deadline -> FINAL:
 * cancel every kernel operation -> when inflight == 0: close(fd), on_close, recycle with a new
 * generation. ABORT skips to FINAL and resets the connection.
 *
 */
#include "engine/engine_int.h"
#include "engine/fault.h"
#include "engine/tls_int.h"
#include "engine/plat.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>


/* ---- worker lists (see enum pt_clist) ---- */

/* The counter of connections on list l (a gauge: conns_silent ... conns_closing). */
static uint64_t *list_gauge(struct pt_worker *w, enum pt_clist l)
{
	switch (l) {
	case PT_L_SILENT: return &w->cnt.conns_silent;
	case PT_L_PARTIAL: return &w->cnt.conns_partial;
	case PT_L_IDLE: return &w->cnt.conns_idle;
	case PT_L_BUSY: return &w->cnt.conns_busy;
	default: return &w->cnt.conns_closing;
	}
}

/* Adds d to the gauge of list l (owner thread; readers load it relaxed, like CNT_ADD). */
static void list_count(struct pt_worker *w, enum pt_clist l, uint64_t d)
{
	uint64_t *g = list_gauge(w, l);

	__atomic_store_n(g, __atomic_load_n(g, __ATOMIC_RELAXED) + d, __ATOMIC_RELAXED);
}

static void list_unlink(struct pt_worker *w, struct pt_conn *c)
{
	struct pt_clist_head *l = &w->lists[c->list];
	struct pt_conn *prev = pt__cderef(w, c->l_prev), *next = pt__cderef(w, c->l_next);

	PT_ASSERT(c->list < PT_L__COUNT);
	PT_ASSERT(prev ? prev->l_next == pt__cref(c) : l->head == c);
	PT_ASSERT(next ? next->l_prev == pt__cref(c) : l->tail == c);

	list_count(w, (enum pt_clist)c->list, (uint64_t)-1);
	if (prev)
		prev->l_next = c->l_next;
	else
		l->head = next;
	if (next)
		next->l_prev = c->l_prev;
	else
		l->tail = prev;
	c->l_prev = c->l_next = 0;
}

static void list_append(struct pt_worker *w, struct pt_conn *c, enum pt_clist which)
{
	struct pt_clist_head *l = &w->lists[which];

	PT_ASSERT(!c->l_prev && !c->l_next && l->head != c);   /* on no list */
	list_count(w, which, 1);
	c->list = (uint8_t)which;
	c->l_next = 0;
	c->l_prev = pt__cref(l->tail);
	if (l->tail)
		l->tail->l_next = pt__cref(c);
	else
		l->head = c;
	l->tail = c;
}

static enum pt_clist list_for(const struct pt_conn *c)
{
	if (c->flags & PT_C_CLOSING)
		return PT_L_CLOSING;
	if (!(c->flags & PT_C_GOT_DATA))
		return PT_L_SILENT;
	if (c->state == PT_CONN_PARTIAL)
		return PT_L_PARTIAL;
	return c->state == PT_CONN_IDLE ? PT_L_IDLE : PT_L_BUSY;
}

/* After a change of flags or state: move c to the tail of the list it belongs on now. */
static void relist(struct pt_conn *c)
{
	enum pt_clist l = list_for(c);

	if (l != c->list) {
		list_unlink(c->w, c);
		list_append(c->w, c, l);
	}
}

/* ---- governor: the connection limit, shedding and accept back-off ----
 * At max_conns (or out of descriptors or memory) PT_FULL_SHED closes the head of the first
 * non-empty list among silent, partial and idle: the connection longest in the least useful
 * state. Accepting pauses only when every connection is busy (or with PT_FULL_PAUSE); a paused
 * worker retries from its accept timer, and at once when one of its connections closes. */

static unsigned low_watermark(const struct pt_engine *e)
{
	return (unsigned)((uint64_t)e->cfg.max_conns * e->cfg.low_watermark_pct / 100);
}

static bool below_low_watermark(const struct pt_engine *e)
{
	return atomic_load_explicit(&e->conns, memory_order_relaxed) <= low_watermark(e);
}

static void accept_resume(struct pt_worker *w)
{
	pt_timer_cancel(&w->accept_timer);
	w->accept_paused = false;
	pt__accept_set(w, true);
}

static struct pt_conn *shed_victim(struct pt_worker *w, const struct pt_conn *newest);

/* May accepting resume? Pause: below the low watermark. Shed: below the limit, or someone to
 * shed (a busy-only worker at the limit would otherwise grow by one per retry). */
static bool has_room(struct pt_worker *w)
{
	struct pt_engine *e = w->e;

	if (e->cfg.full_policy == PT_FULL_PAUSE)
		return below_low_watermark(e);
	return atomic_load_explicit(&e->conns, memory_order_relaxed) - w->shedding < e->cfg.max_conns ||
	       shed_victim(w, NULL);
}

static void accept_retry(pt_timer_t *t, void *arg)
{
	struct pt_worker *w = arg;

	if (w->stopping)
		return;
	if (!has_room(w)) {
		pt_timer_arm(w, &w->accept_timer, 100);
		return;
	}
	accept_resume(w);
}

static void accept_pause(struct pt_worker *w, unsigned retry_ms)
{
	if (!w->accept_paused) {
		w->accept_paused = true;
		CNT_ADD(w, accept_paused, 1);
		pt__accept_set(w, false);
	}
	if (!pt_timer_armed(&w->accept_timer))
		pt_timer_init(&w->accept_timer, accept_retry, w);
	pt_timer_arm(w, &w->accept_timer, retry_ms);
}

static struct pt_conn *shed_victim(struct pt_worker *w, const struct pt_conn *newest)
{
	for (enum pt_clist l = PT_L_SILENT; l < PT_L_BUSY; l++) {
		struct pt_conn *c = w->lists[l].head;
		if (c && c == newest)
			c = pt__cderef(w, c->l_next);
		if (c)
			return c;
	}
	return NULL;
}

/* One line per cause and worker at most every 10 s, with the count since the last one. */
static void shed_log(struct pt_worker *w, enum pt_clist l, uint64_t total, const char *why)
{
	static const char *const what[PT_L_BUSY] = {
		[PT_L_SILENT] = "that sent nothing",
		[PT_L_PARTIAL] = "with a partial or slow request",
		[PT_L_IDLE] = "idle between requests",
	};

	if (w->shed_log_ms[l] && w->now_ms - w->shed_log_ms[l] < 10000)
		return;
	pt__log(w->e, 1, "worker %u: %s: shedding connections %s to make room (%llu new, %llu in all)",
		w->index, why, what[l], (unsigned long long)(total - w->shed_logged[l]),
		(unsigned long long)total);
	w->shed_log_ms[l] = w->now_ms ? w->now_ms : 1;
	w->shed_logged[l] = total;
}

static void shed(struct pt_worker *w, struct pt_conn *v, const char *why)
{
	enum pt_clist l = v->list;
	uint64_t *n = l == PT_L_SILENT ? &w->cnt.shed_silent :
		      l == PT_L_PARTIAL ? &w->cnt.shed_partial : &w->cnt.shed_idle;

	__atomic_store_n(n, *n + 1, __ATOMIC_RELAXED);
	CNT_ADD(w, shed, 1);
	shed_log(w, l, *n, why);
	v->flags |= PT_C_SHED;
	w->shedding++;                        /* its slot frees when it finishes closing */
	pt_conn_close(v, PT_CLOSE_ABORT);
}

static bool limit_reached(struct pt_worker *w, struct pt_conn *newest)
{
	struct pt_engine *e = w->e;
	unsigned live = atomic_load_explicit(&e->conns, memory_order_relaxed) - w->shedding;
	bool shedding = e->cfg.full_policy == PT_FULL_SHED;

	/* pause: stop at the limit; shed: keep accepting, make room once it is exceeded */
	if (live < e->cfg.max_conns + shedding)
		return false;
	struct pt_conn *v = shedding ? shed_victim(w, newest) : NULL;
	if (v) {
		shed(w, v, "connection limit reached");
		return false;
	}
	if (!w->accept_paused)
		accept_pause(w, 100);
	return true;
}

/* Within 1/8 of max_conns (connections still closing count: their descriptors are open). */
bool pt__accept_near_limit(struct pt_worker *w)
{
	const struct pt_engine *e = w->e;
	unsigned conns = atomic_load_explicit(&e->conns, memory_order_relaxed);

	return conns + e->cfg.max_conns / 8 >= e->cfg.max_conns;
}

void pt__fd_reserve(struct pt_worker *w)
{
	const char *env = getenv("PORTICO_FD_RESERVE");

	if (w->reserve_fd < 0 && !(env && !strcmp(env, "0")))
		w->reserve_fd = pt__fd_spare();
}

#define FD_SHED_BATCH 4u

/* EMFILE, ENFILE, ENOBUFS, ENOMEM from accept. Out of descriptors, the spare one is given up so
 * the next client gets in at once; with PT_FULL_SHED a few connections are shed, and accepting
 * resumes the moment one of them has closed. Otherwise: back off, never spin. */
void pt__accept_error(struct pt_worker *w, struct pt_wlisten *wl, int err)
{
	static const unsigned backoff_ms = 50;   /* short: the next close frees a descriptor */
	bool fds = err == -EMFILE || err == -ENFILE;
	static __thread uint64_t last_log;
	unsigned n = 0;
	struct pt_conn *v;

	CNT_ADD(w, accept_errors, 1);
	if (w->now_ms - last_log >= 1000 || !last_log) {
		last_log = w->now_ms ? w->now_ms : 1;
		pt__log(w->e, 1, "worker %u: accept failed: %s; %s", w->index, strerror(-err),
			w->e->cfg.full_policy == PT_FULL_SHED ? "making room" : "pausing accepts");
	}
	if (w->e->cfg.full_policy == PT_FULL_SHED && !w->stopping) {
		while (n < FD_SHED_BATCH && (v = shed_victim(w, NULL)))
			shed(w, v, fds ? "out of descriptors" : "out of memory"), n++;
		w->fd_short = true;               /* finish() resumes accepting */
		if (fds && w->reserve_fd >= 0) {
			pt__fd_close(w->reserve_fd);
			w->reserve_fd = -1;
			CNT_ADD(w, fd_reserve_used, 1);
			pt__accept_set(w, true);      /* uring: re-arm; epoll: still armed */
			return;
		}
	}
	accept_pause(w, backoff_ms);
}

/* ---- accept ---- */

/* Closes a connection refused at accept, before the backend knows it: no on_close. */
static void reject(struct pt_conn *c)
{
	c->flags &= ~PT_C_LIVE;
	c->flags |= PT_C_CLOSING | PT_C_FINAL;
	relist(c);
	pt__pending(c);
}

/* A fresh connection object for descriptor fd: counted, on list l, its timer ready. */
static void conn_init(struct pt_worker *w, struct pt_conn *c, int fd, uint32_t flags,
		      enum pt_clist l)
{
	c->fd = fd;
	c->flags = flags;
	c->ops = NULL;
	c->user = NULL;
	c->inflight = 0;
	c->sent = 0;
	c->accept_ms = (uint32_t)w->now_ms;
	if (w->e->cfg.conn_area)
		memset(pt_conn_area(c), 0, w->e->cfg.conn_area);
	PT_ASSERT(!pt__ctimer_armed(c));
	c->state = PT_CONN_BUSY;
	list_append(w, c, l);
	w->nconns++;
	atomic_fetch_add_explicit(&w->e->conns, 1, memory_order_relaxed);
	CNT_ADD(w, conns, 1);
}

void pt__accepted(struct pt_worker *w, struct pt_wlisten *wl, int fd)
{
	struct pt_conn *c;

	if (w->stop_abort || !(c = pt__conn_alloc(w))) {  /* stopping: served, then told (stop.c) */
		pt__sock_close(fd);
		return;
	}
	conn_init(w, c, fd, PT_C_LIVE, PT_L_SILENT);   /* TCP_NODELAY comes from the listener */
	CNT_ADD(w, accepts, 1);
	limit_reached(w, c);   /* at the limit now: make room, or pause further accepts */
	if (wl->l->opts.proxy_protocol) {
		if (pt__proxy_accept(c, wl->l) < 0) {   /* untrusted source: closed, counted */
			reject(c);
			return;
		}
	} else if (wl->l->opts.tls) {
		c->flags |= PT_C_PREACCEPT;       /* on_accept runs after the handshake */
		c->state = PT_CONN_PARTIAL;       /* once it sends: a handshake in progress */
		if (pt__tls_accept(c, wl->l) < 0) {
			pt_conn_close(c, PT_CLOSE_ABORT);
			return;
		}
	} else if (wl->l->opts.on_accept(c, wl->l->opts.arg) < 0) {
		reject(c);
		return;
	}
	if (w->be->conn_start(w, c) < 0)
		pt_conn_close(c, PT_CLOSE_ABORT);
	else if (!(c->flags & PT_C_PREACCEPT))
		pt__stop_owe(c);
}

/* An outbound connection object for pt_connect (connect.c): on the busy list (never shed),
 * receiving paused until the connect is done. NULL when no object can be had. */
struct pt_conn *pt__conn_outbound(struct pt_worker *w, int fd)
{
	struct pt_conn *c = w->stopping ? NULL : pt__conn_alloc(w);

	if (!c)
		return NULL;
	conn_init(w, c, fd, PT_C_LIVE | PT_C_CONNECTING | PT_C_PAUSED | PT_C_GOT_DATA, PT_L_BUSY);
	return c;
}

/* After a TLS handshake: the application's on_accept, as for a plaintext connection at
 * accept. false: it refused the connection (the caller closes it, without on_close). */
bool pt__conn_accept_app(struct pt_conn *c, struct pt_listener *l)
{
	c->state = PT_CONN_BUSY;
	relist(c);
	if (l->opts.on_accept(c, l->opts.arg) < 0)
		return false;
	c->flags &= ~PT_C_PREACCEPT;
	pt__stop_owe(c);
	return true;
}

/* ---- receive ---- */

static uint32_t stash_len(const struct pt_conn *c)
{
	return c->rare ? c->rare->stash_len : 0;
}

static int stash_append(struct pt_conn *c, const void *data, size_t len)
{
	struct pt_conn_rare *x = pt__conn_rare(c);

	if (!x)
		return -ENOMEM;
	if (x->stash_len + len > x->stash_cap) {
		size_t cap = x->stash_cap ? x->stash_cap : 4096;
		while (cap < x->stash_len + len)
			cap *= 2;
		if (cap > UINT32_MAX)
			return -ENOMEM;
		char *p = pt__realloc(x->stash, cap);
		if (!p)
			return -ENOMEM;
		x->stash = p;
		x->stash_cap = (uint32_t)cap;
	}
	memcpy(x->stash + x->stash_len, data, len);
	x->stash_len += (uint32_t)len;
	return 0;
}

void pt__rx_data(struct pt_conn *c, const void *data, size_t len)
{
	CNT_ADD(c->w, bytes_in, len);
	if (c->flags & PT_C_CLOSING)
		return;                  /* closing: input is discarded */
	if (!(c->flags & PT_C_GOT_DATA)) {
		c->flags |= PT_C_GOT_DATA;
		relist(c);
	}
	if (c->flags & PT_C_PROXY)
		pt__proxy_rx(c, data, len);  /* the PROXY header first (proxy_conn.c) */
	else if (c->tls)
		pt__tls_rx(c, data, len);    /* decrypts, then pt__rx_plain */
	else
		pt__rx_plain(c, data, len);
}

/* Application bytes: delivered now, or kept in order while paused. */
void pt__rx_plain(struct pt_conn *c, const void *data, size_t len)
{
	if (c->flags & PT_C_CLOSING)
		return;
	if ((c->flags & PT_C_PAUSED) || stash_len(c)) {
		if (stash_append(c, data, len) < 0)
			pt_conn_close(c, PT_CLOSE_ABORT);  /* cannot keep the bytes: never lose them silently */
		return;
	}
	if (c->ops && c->ops->on_data)
		c->ops->on_data(c, data, len);
}

void pt__rx_end(struct pt_conn *c, int err)
{
	if (c->flags & PT_C_EOF)
		return;
	if ((c->flags & (PT_C_PREACCEPT | PT_C_CLOSING)) == PT_C_PREACCEPT) {
		c->flags |= PT_C_EOF;
		if (c->flags & PT_C_PROXY)
			pt__proxy_eof(c);      /* gone before its PROXY header */
		else
			pt__tls_eof(c);        /* gone during the handshake */
		return;
	}
	if (c->tls && err == 0)
		err = pt__tls_rx_end(c);   /* -EPROTO: the stream ended inside a record */
	c->flags |= PT_C_EOF;
	c->eof_err = (int16_t)err;
	pt__pending(c);
}

void pt__op_done(struct pt_conn *c)
{
	c->inflight--;
	CNT_SUB(c->w, ops_inflight, 1);
	if (c->inflight == 0 && (c->flags & PT_C_FINAL))
		pt__pending(c);
}

/* ---- close ---- */

static void begin_final(struct pt_conn *c)
{
	if (c->flags & PT_C_FINAL)
		return;
	c->flags |= PT_C_FINAL;
	pt__ctimer_cancel(c);
	pt__tx_fail(c, (c->flags & PT_C_ABORT) ? -ECANCELED : -EPIPE);
	if (c->inflight)
		c->w->be->cancel(c->w, c);
	else
		pt__pending(c);
}

static void finish(struct pt_conn *c)
{
	struct pt_worker *w = c->w;
	bool owed = (c->flags & (PT_C_LIVE | PT_C_PREACCEPT)) == PT_C_LIVE;

	pt__tx_fail(c, -ECANCELED);    /* nothing is in flight now: no request may outlive c */
	pt__tls_free(c);
	pt__proxy_free(c);
	w->be->conn_closed(w, c);
	if (c->flags & PT_C_ABORT)
		pt__sock_linger0(c->fd);
	pt__sock_close(c->fd);
	if (c->flags & PT_C_SHED)
		w->shedding--;
	list_unlink(w, c);
	w->nconns--;
	atomic_fetch_sub_explicit(&w->e->conns, 1, memory_order_relaxed);
	CNT_SUB(w, conns, 1);
	CNT_ADD(w, closes, 1);
	c->flags &= ~PT_C_LIVE;            /* on_close may look, not act: no more pending work */
	if (owed && c->ops && c->ops->on_close)
		c->ops->on_close(c);
	pt__conn_recycle(w, c);
	if (w->fd_short) {                 /* a descriptor is free now: spare first, then clients */
		w->fd_short = false;
		pt__fd_reserve(w);
		if (w->accept_paused && !w->stopping)
			accept_resume(w);
	} else if (w->accept_paused && !w->stopping && has_room(w)) {
		accept_resume(w);
	}
}

/* Unread input makes close(2) send RST, which can destroy the response still on its way to
 * the peer; only then is lingering (reading and discarding until the peer's FIN) worth it. */
static bool input_pending(int fd)
{
	return pt__sock_has_input(fd);
}

/* The peer has not acknowledged all we sent: it may still send (an HTTP/2 client's
 * WINDOW_UPDATE for the data it is reading), and closing now would answer that with RST, which
 * makes its kernel drop what it has not read yet. Input wakes the close up; so does this timer,
 * every ACKWAIT_POLL_MS, to see whether the acknowledgements arrived (the close deadline still
 * bounds it). */
#define ACKWAIT_POLL_MS 20u

static void ack_wait(struct pt_conn *c)
{
	int32_t left = (int32_t)(c->close_by - (uint32_t)c->w->now_ms);

	if (left <= 0)
		return;                        /* the deadline timer is due */
	c->flags |= PT_C_ACKWAIT;
	pt__ctimer_arm(c, (unsigned)left < ACKWAIT_POLL_MS ? (unsigned)left : ACKWAIT_POLL_MS);
}

/* Graceful close: flush, FIN, then linger while the peer still sends or has not acknowledged
 * everything, up to the deadline. */
static void close_graceful_step(struct pt_conn *c)
{
	pt__tx_run(c);
	if (c->q->sq_head || (c->flags & PT_C_TX_BUSY) || (c->flags & PT_C_FINAL))
		return;
	if (c->tls && pt__tls_shutdown(c)) {   /* close_notify (or an alert) still to send */
		pt__pending(c);
		return;
	}
	if (!(c->flags & PT_C_SHUT_WR)) {
		c->flags |= PT_C_SHUT_WR | PT_C_LINGER;
		pt__sock_shutdown_wr(c->fd);
	}
	bool input = !(c->flags & PT_C_EOF) && input_pending(c->fd);
	if ((c->flags & PT_C_EOF) || (!input && pt__sock_outq(c->fd) <= 0)) {
		begin_final(c);
		return;
	}
	c->flags &= ~PT_C_PAUSED;
	c->w->be->rx_start(c->w, c);           /* read to see the FIN, discarding data */
	if (!input)
		ack_wait(c);
}

static void process_closing(struct pt_conn *c)
{
	if ((c->flags & PT_C_FINAL) && c->inflight == 0) {
		finish(c);
		return;
	}
	if (c->flags & PT_C_FINAL)
		return;
	if (c->flags & PT_C_ABORT)
		begin_final(c);
	else
		close_graceful_step(c);
}

/* Deliver what was received while paused, then the end of input, in order. */
static void deliver_owed(struct pt_conn *c)
{
	if (stash_len(c) && !(c->flags & PT_C_PAUSED)) {
		char *p = c->rare->stash;
		uint32_t n = c->rare->stash_len;
		c->rare->stash = NULL;
		c->rare->stash_len = c->rare->stash_cap = 0;
		if (c->ops && c->ops->on_data)
			c->ops->on_data(c, p, n);
		free(p);
	}
	if ((c->flags & (PT_C_EOF | PT_C_PAUSED | PT_C_CLOSING)) == PT_C_EOF && !stash_len(c) &&
	    !(c->flags & PT_C_EOF_DONE)) {
		c->flags |= PT_C_EOF_DONE;
		if (c->ops && c->ops->on_eof)
			c->ops->on_eof(c, c->eof_err);
	}
}

void pt__conn_process(struct pt_conn *c)
{
	if (c->flags & PT_C_CLOSING) {
		process_closing(c);
		return;
	}
	deliver_owed(c);
	if ((c->flags & (PT_C_STOP_OWED | PT_C_CLOSING)) == PT_C_STOP_OWED)
		pt__stop_deliver(c);
	if (c->flags & PT_C_CLOSING) {
		pt__pending(c);
		return;
	}
	if (c->flags & PT_C_CONNECTING) {        /* outbound: nothing else until it is done */
		if (!(c->flags & PT_C_TX_BUSY))
			pt__connect_done(c);
		return;
	}
	pt__tx_run(c);
	bool drained = (c->flags & PT_C_WANT_DRAIN) && c->q->sq_bytes <= c->w->e->cfg.max_send_queue / 2;
	bool empty = (c->flags & PT_C_WANT_EMPTY) && c->q->sq_bytes == 0;
	if ((drained || empty) && !(c->flags & PT_C_CLOSING)) {
		c->flags &= ~(drained ? PT_C_WANT_DRAIN : 0u) & ~(empty ? PT_C_WANT_EMPTY : 0u);
		if (c->ops && c->ops->on_drain)
			c->ops->on_drain(c);
	}
	if (c->flags & PT_C_CLOSING)
		pt__pending(c);
}

void pt__conn_timer(struct pt_conn *c)
{
	if (c->flags & PT_C_ACKWAIT) {   /* closing: look at the acknowledgements again */
		c->flags &= ~PT_C_ACKWAIT;
		if ((int32_t)(c->close_by - (uint32_t)c->w->now_ms) > 0) {
			pt__ctimer_arm(c, c->close_by - (uint32_t)c->w->now_ms);
			pt__pending(c);
			return;
		}
	}
	if (c->flags & PT_C_CLOSING) {   /* the close deadline: stop being polite */
		c->flags |= PT_C_ABORT;
		pt__pending(c);
		return;
	}
	if (c->flags & PT_C_PREACCEPT) {  /* the PROXY header's or the handshake's deadline */
		if (c->flags & PT_C_PROXY)
			pt__proxy_timeout(c);
		else
			pt__tls_timeout(c);
		return;
	}
	CNT_ADD(c->w, timeouts, 1);
	if (c->ops && c->ops->on_timeout)
		c->ops->on_timeout(c);
}

void pt__conn_close_all(struct pt_worker *w, int how)
{
	for (enum pt_clist l = PT_L_SILENT; l < PT_L_CLOSING; l++)
		while (w->lists[l].head)
			pt_conn_close(w->lists[l].head, how);   /* moves it to the closing list */
	for (struct pt_conn *c = w->lists[PT_L_CLOSING].head; c; c = pt__cderef(w, c->l_next))
		if (c->flags & PT_C_LIVE)
			pt_conn_close(c, how);
}

/* ---- public API ---- */

static bool conn_ok(const struct pt_conn *c)
{
	return c && (c->flags & PT_C_LIVE) && c->w == pt__current_worker();
}

PT_API int pt_conn_close(pt_conn_t *c, int how)
{
	if (!conn_ok(c) || (how != PT_CLOSE_GRACEFUL && how != PT_CLOSE_ABORT))
		return -EINVAL;
	if (!(c->flags & PT_C_CLOSING)) {
		c->flags |= PT_C_CLOSING;
		relist(c);
		c->close_by = (uint32_t)(c->w->now_ms + c->w->e->cfg.shutdown_ms);
		pt__ctimer_arm(c, c->w->e->cfg.shutdown_ms);
	}
	if (how == PT_CLOSE_ABORT)
		c->flags |= PT_C_ABORT;
	pt__pending(c);
	return 0;
}

PT_API void pt_conn_set_ops(pt_conn_t *c, const struct pt_conn_ops *ops)
{
	if (c)
		c->ops = ops;
}

PT_API void pt_conn_set_user(pt_conn_t *c, void *user)
{
	if (c)
		c->user = user;
}

PT_API void *pt_conn_user(const pt_conn_t *c)
{
	return c ? c->user : NULL;
}

PT_API pt_worker_t *pt_conn_worker(const pt_conn_t *c)
{
	return c ? c->w : NULL;
}

PT_API int pt_conn_fd(const pt_conn_t *c)
{
	return c ? c->fd : -EINVAL;
}

PT_API int pt_conn_set_timeout(pt_conn_t *c, unsigned ms)
{
	if (!conn_ok(c) || (c->flags & PT_C_CLOSING))
		return -EINVAL;
	if (ms == 0) {
		pt__ctimer_cancel(c);
		return 0;
	}
	return pt__ctimer_arm(c, ms);
}

PT_API void pt_conn_set_state(pt_conn_t *c, enum pt_conn_state s)
{
	if (conn_ok(c) && s <= PT_CONN_IDLE && c->state != s) {
		c->state = (uint8_t)s;
		relist(c);
	}
}

PT_API void pt_conn_set_idle(pt_conn_t *c, bool idle)
{
	pt_conn_set_state(c, idle ? PT_CONN_IDLE : PT_CONN_BUSY);
}

PT_API int pt_conn_notify_empty(pt_conn_t *c)
{
	if (!conn_ok(c) || (c->flags & PT_C_CLOSING))
		return -EINVAL;
	c->flags |= PT_C_WANT_EMPTY;
	pt__pending(c);
	return 0;
}

PT_API int pt_conn_pause_recv(pt_conn_t *c)
{
	if (!conn_ok(c) || (c->flags & PT_C_CLOSING))
		return -EINVAL;
	if (c->flags & PT_C_PAUSED)
		return 0;
	c->flags |= PT_C_PAUSED;
	if (c->flags & PT_C_RX_ARMED)
		c->w->be->rx_stop(c->w, c);
	return 0;
}

PT_API int pt_conn_resume_recv(pt_conn_t *c)
{
	if (!conn_ok(c) || (c->flags & PT_C_CLOSING))
		return -EINVAL;
	if (!(c->flags & PT_C_PAUSED))
		return 0;
	c->flags &= ~PT_C_PAUSED;
	if (!(c->flags & PT_C_EOF))
		c->w->be->rx_start(c->w, c);   /* idempotent in each backend */
	pt__pending(c);
	return 0;
}

PT_API unsigned pt_conn_age_ms(const pt_conn_t *c)
{
	return c ? (uint32_t)c->w->now_ms - c->accept_ms : 0;
}
