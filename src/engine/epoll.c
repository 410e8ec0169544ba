/*
 * The epoll backend: a reactor that keeps the engine's completion semantics.
 *
 * Each socket is registered once, edge-triggered, for input and output (no epoll_ctl per
 * operation). Receiving reads into one per-worker scratch buffer only when the socket is
 * readable, so idle connections hold no buffer, as with provided buffers on io_uring. Sends run
 * synchronously from the worker's deferred-work phase (sendmsg with MSG_MORE, sendfile) and
 * wait for EPOLLOUT on EAGAIN. Every callback still runs from the worker loop, never inside the
 * call that started the operation. Zero-copy is not offered here: PT_SEND_ZC copies.
 *
 * Edge-triggered input means a connection that stops reading before EAGAIN (per-round budget,
 * or the application paused) must be revisited without a new edge: it goes on the ready list,
 * which is served before the next wait (with a zero timeout).
 *
 * Fault injection (test builds, fault.h) is checked after each successful accept4 and recv and
 * before each sendmsg. An injected EAGAIN on a send leaves a socket that has room, so no
 * EPOLLOUT edge would ever come: ep_wait_writable then re-registers it (EPOLL_CTL_MOD reports
 * the readiness it has now), and a retryable receive error puts the connection on the ready
 * list for the same reason.
 */
#include "engine/engine_int.h"
#include "engine/fault.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define SCRATCH_BYTES (64u << 10)
#define READ_BUDGET (256u << 10)       /* per connection per round */
#define ACCEPT_BUDGET 64u
#define MAX_EVENTS 256

struct epoll_w {
	int epfd;
	char *scratch;
	struct pt_conn *ready;
	struct epoll_event ev[MAX_EVENTS];
};

static inline struct epoll_w *E(struct pt_worker *w)
{
	return w->bd;
}

static int ep_probe(struct pt_engine *e, char *why, size_t n)
{
	return 0;
}

static void ep_fini(struct pt_worker *w)
{
	struct epoll_w *p = E(w);

	if (!p)
		return;
	if (p->epfd >= 0)
		close(p->epfd);
	/* wake_fd stays open until pt_engine_destroy: other threads may still write to it */
	free(p->scratch);
	free(p);
	w->bd = NULL;
}

/* A new descriptor from make(), or -errno; PT_FAULT_SOCKET can fail it in test builds. */
static int fd_new(int (*make)(int), int flags)
{
	int fd, err = pt__fault(PT_FAULT_SOCKET);

	if (err < 0)
		return err;
	return (fd = make(flags)) < 0 ? -errno : fd;
}

static int make_eventfd(int flags)
{
	return eventfd(0, flags);
}

static int ep_init(struct pt_worker *w)
{
	struct epoll_w *p = pt__calloc(1, sizeof *p);
	int err;

	if (!p)
		return -ENOMEM;
	w->bd = p;
	w->zc_ok = false;
	if (w->wake_fd >= 0)
		close(w->wake_fd);          /* from a start attempt on the other backend */
	w->wake_fd = -1;
	p->epfd = -1;
	if ((err = fd_new(epoll_create1, EPOLL_CLOEXEC)) < 0)
		goto fail;
	p->epfd = err;
	if ((err = fd_new(make_eventfd, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		goto fail;
	w->wake_fd = err;
	if (!(p->scratch = pt__malloc(SCRATCH_BYTES))) {
		err = -ENOMEM;
		goto fail;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = pt__ud(PT_K_WAKE, 0, 0) };
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev) < 0) {
		err = -errno;
		goto fail;
	}
	return 0;
fail:
	ep_fini(w);
	return err;
}

static int ep_accept_start(struct pt_worker *w, struct pt_wlisten *wl)
{
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u64 = pt__ud(PT_K_ACCEPT, 0, (uint32_t)(wl - w->wl)) };

	return epoll_ctl(E(w)->epfd, EPOLL_CTL_ADD, wl->fd, &ev) < 0 ? -errno : 0;
}

static void ep_accept_stop(struct pt_worker *w, struct pt_wlisten *wl)
{
	epoll_ctl(E(w)->epfd, EPOLL_CTL_DEL, wl->fd, NULL);
	wl->armed = false;
}

/* The ready list holds a reference (inflight, counted like an operation, as pt__op_done
 * uncounts it) so a listed connection is never recycled. */
static void make_ready(struct pt_worker *w, struct pt_conn *c)
{
	if (c->flags & PT_C_STARVED)
		return;
	c->flags |= PT_C_STARVED;
	c->inflight++;
	CNT_ADD(w, ops_inflight, 1);
	c->starve_next = pt__cref(E(w)->ready);
	E(w)->ready = c;
}

static void ep_rx_start(struct pt_worker *w, struct pt_conn *c)
{
	if (c->flags & PT_C_FINAL)
		return;
	c->flags |= PT_C_RX_ARMED;
	make_ready(w, c);   /* no new edge will come for bytes already waiting */
}

static void ep_rx_stop(struct pt_worker *w, struct pt_conn *c)
{
	c->flags &= ~PT_C_RX_ARMED;
}

static int conn_register(struct pt_worker *w, struct pt_conn *c, int how);

static int ep_conn_start(struct pt_worker *w, struct pt_conn *c)
{
	int err = conn_register(w, c, EPOLL_CTL_ADD);

	if (err < 0)
		return err;
	if (!(c->flags & PT_C_PAUSED))
		c->flags |= PT_C_RX_ARMED;
	return 0;
}

static ssize_t ep_send(struct pt_worker *w, struct pt_conn *c, int flags)
{
	int f = pt__fault(PT_FAULT_SEND);

	if (f)                              /* test builds: as if sendmsg had failed with f */
		return f == -EINTR ? -EAGAIN : f;
	const struct msghdr *m = &c->q->tx->msg;
	/* one piece: send, which the kernel takes with less work than a sendmsg */
	ssize_t n = m->msg_iovlen == 1 ?
		send(c->fd, m->msg_iov[0].iov_base, m->msg_iov[0].iov_len, flags) :
		sendmsg(c->fd, m, flags);

	if (n >= 0) {
		CNT_ADD(w, sends, 1);
		return n > 0 ? n : -EAGAIN;
	}
	return errno == EINTR ? -EAGAIN : -errno;
}

static int conn_register(struct pt_worker *w, struct pt_conn *c, int how)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
				  .data.u64 = pt__ud(PT_K_RECV, c->gen, c->idx) };

	return epoll_ctl(E(w)->epfd, how, c->fd, &ev) < 0 ? -errno : 0;
}

static void ep_wait_writable(struct pt_worker *w, struct pt_conn *c)
{
	/* registered for EPOLLOUT once, edge-triggered: the next edge calls pt__tx_writable */
	if (pt__fault_last(PT_FAULT_SEND) < 0)
		conn_register(w, c, EPOLL_CTL_MOD);   /* test builds: the EAGAIN was injected */
}

static void ep_cancel(struct pt_worker *w, struct pt_conn *c)
{
	/* nothing is in the kernel: sends ran synchronously, waits are flags */
}

static void ep_conn_closed(struct pt_worker *w, struct pt_conn *c)
{
	epoll_ctl(E(w)->epfd, EPOLL_CTL_DEL, c->fd, NULL);
}

static void ep_wake(struct pt_worker *w)
{
	uint64_t one = 1;

	if (write(w->wake_fd, &one, sizeof one) < 0) {
		/* EAGAIN: saturated, a wake-up is pending anyway */
	}
}

static bool want_rx(const struct pt_conn *c)
{
	return (c->flags & PT_C_RX_ARMED) && !(c->flags & (PT_C_PAUSED | PT_C_EOF | PT_C_FINAL));
}

/* Reads until EAGAIN, EOF, the application pauses, or the budget is spent (then: ready list). */
static void do_read(struct pt_worker *w, struct pt_conn *c)
{
	struct epoll_w *p = E(w);
	size_t budget = READ_BUDGET;

	while (want_rx(c)) {
		if (!budget) {
			make_ready(w, c);
			return;
		}
		ssize_t n = recv(c->fd, p->scratch, SCRATCH_BYTES, 0);
		if (n > 0) {
			int f = pt__fault(PT_FAULT_RECV);
			if (f && f != -EAGAIN && f != -EINTR && f != -ENOBUFS) {
				/* test builds: as if the receive had failed with f; the bytes are lost
				 * with the connection */
				c->flags &= ~PT_C_RX_ARMED;
				pt__rx_end(c, f);
				return;
			}
			CNT_ADD(w, recvs, 1);
			budget = budget > (size_t)n ? budget - (size_t)n : 0;
			pt__rx_data(c, p->scratch, (size_t)n);
			if (f) {
				make_ready(w, c);   /* a retryable error: no new edge will come */
				return;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		c->flags &= ~PT_C_RX_ARMED;
		pt__rx_end(c, n == 0 ? 0 : -errno);
		return;
	}
}

static void on_accept_ready(struct pt_worker *w, uint32_t idx)
{
	if (idx >= w->nwl)
		return;
	struct pt_wlisten *wl = &w->wl[idx];
	for (unsigned i = 0; i < ACCEPT_BUDGET && wl->armed && !w->accept_paused; i++) {
		int fd = accept4(wl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			int f = pt__fault(PT_FAULT_ACCEPT);
			if (!f) {
				pt__accepted(w, wl, fd);
				continue;
			}
			close(fd);                  /* test builds: as if accept4 had failed with f */
			errno = -f;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			pt__accept_error(w, wl, -errno);
		return;   /* EAGAIN, or paused */
	}
}

static void on_conn_event(struct pt_worker *w, uint64_t ud, uint32_t events)
{
	struct pt_conn *c = pt__conn_get(w, PT_UD_IDX(ud), PT_UD_GEN(ud));

	if (!c)
		return;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		do_read(w, c);
	if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && (c->flags & PT_C_TX_BUSY))
		pt__tx_writable(c);
}

static void serve_ready(struct pt_worker *w)
{
	struct pt_conn *c = E(w)->ready;

	E(w)->ready = NULL;
	while (c) {
		struct pt_conn *next = pt__cderef(w, c->starve_next);
		c->starve_next = 0;
		c->flags &= ~PT_C_STARVED;
		do_read(w, c);
		pt__op_done(c);   /* drop the list's reference */
		c = next;
	}
}

static int ep_poll(struct pt_worker *w, int timeout_ms)
{
	struct epoll_w *p = E(w);
	uint64_t val;

	if (p->ready) {
		serve_ready(w);    /* callbacks may have armed timers or queued work: recompute */
		timeout_ms = (p->ready || w->pend_head || pt__posts_waiting(w)) ? 0 : pt__wheel_timeout(w);
	}
	int n = epoll_wait(p->epfd, p->ev, MAX_EVENTS, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	pt__worker_clock(w);
	for (int i = 0; i < n; i++) {
		uint64_t ud = p->ev[i].data.u64;
		switch (PT_UD_TYPE(ud)) {
		case PT_K_ACCEPT: on_accept_ready(w, PT_UD_IDX(ud)); break;
		case PT_K_RECV: on_conn_event(w, ud, p->ev[i].events); break;
		case PT_K_WAKE:
			if (read(w->wake_fd, &val, sizeof val) < 0) {
				/* EAGAIN: drained */
			}
			break;
		default: break;
		}
	}
	return 0;
}

static ssize_t ep_send_file(struct pt_worker *w, struct pt_conn *c, int fd, off_t off, size_t len)
{
	return pt__file_send(c->fd, fd, off, len);   /* synchronous; EAGAIN waits for room */
}

const struct pt_backend pt__epoll_backend = {
	.name = "epoll",
	.probe = ep_probe,
	.worker_init = ep_init,
	.worker_fini = ep_fini,
	.accept_start = ep_accept_start,
	.accept_stop = ep_accept_stop,
	.conn_start = ep_conn_start,
	.rx_stop = ep_rx_stop,
	.rx_start = ep_rx_start,
	.send = ep_send,
	.send_file = ep_send_file,
	.wait_writable = ep_wait_writable,
	.cancel = ep_cancel,
	.conn_closed = ep_conn_closed,
	.poll = ep_poll,
	.wake = ep_wake,
};
