/*
 * Outbound connections (pt_connect): a non-blocking connect(2) whose completion is the
 * socket becoming writable, seen through the backend's writable-wait (io_uring POLL_ADD, or
 * the EPOLLOUT edge of the epoll registration), so neither Linux backend needs an operation
 * of its own. A backend with a connect operation (IOCP: ConnectEx, win/iocp_connect.c)
 * starts it instead and reports its end the same way. While the connect runs, the connection object carries internal ops (the deadline and the
 * close path report failures) and a small record of the application's callback; once it is
 * done the object is an ordinary connection handed to on_connect.
 *
 * Threads: everything runs on the worker that started the connect.
 */
#include "engine/engine_int.h"
#include "engine/fault.h"
#include "engine/plat.h"
#include <errno.h>
#include <stdlib.h>

#define CONNECT_TIMEOUT_MS 10000u

struct connecting {
	pt_connect_fn fn;
	void *arg;
	int err;                          /* the failure to report, 0 while none is known */
};

/* Reports a failure (once): the connection is closing, on_close of the internal ops runs it. */
static void cg_close(pt_conn_t *c)
{
	struct connecting *g = c->user;

	c->user = NULL;
	g->fn(NULL, g->err ? g->err : -ECANCELED, g->arg);
	free(g);
}

static void cg_timeout(pt_conn_t *c)
{
	struct connecting *g = c->user;

	g->err = -ETIMEDOUT;
	pt_conn_close(c, PT_CLOSE_ABORT);
}

static const struct pt_conn_ops connecting_ops = { .on_timeout = cg_timeout,
						   .on_close = cg_close };

void pt__connect_done(struct pt_conn *c)
{
	struct connecting *g = c->user;

	if (!g->err)
		g->err = pt__sock_pending_err(c->fd);
	if (g->err) {
		pt_conn_close(c, PT_CLOSE_ABORT);     /* cg_close reports it */
		return;
	}
	c->flags &= ~PT_C_CONNECTING;
	pt_conn_set_timeout(c, 0);
	c->ops = NULL;
	c->user = NULL;
	int r = g->fn(c, 0, g->arg);
	free(g);
	if (r < 0) {                              /* refused by the application: no on_close */
		c->ops = NULL;
		c->user = NULL;
		pt_conn_close(c, PT_CLOSE_ABORT);
		return;
	}
	pt_conn_resume_recv(c);
}

void pt__connect_failed(struct pt_conn *c, int err)
{
	struct connecting *g = c->user;

	if (g && !g->err)
		g->err = err;
}

static int new_socket(int family, bool no_delay)
{
	int err = pt__fault(PT_FAULT_SOCKET), one = 1;

	if (err < 0)
		return err;
	int fd = pt__sock_stream(family);
	if (fd >= 0 && no_delay)
		pt__sock_opt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

PT_API int pt_connect(pt_worker_t *w, const struct sockaddr *sa, socklen_t len,
		      const struct pt_connect_opts *o)
{
	struct connecting *g;
	struct pt_conn *c;
	int fd, err;

	if (!w || !sa || !o || !o->on_connect || w != pt__current_worker() ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    (size_t)len < (sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
						    : sizeof(struct sockaddr_in6)))
		return -EINVAL;
	if (w->stopping)
		return -ESHUTDOWN;
	if (!(g = pt__malloc(sizeof *g)))
		return -ENOMEM;
	*g = (struct connecting){ o->on_connect, o->arg, 0 };
	if ((fd = new_socket(sa->sa_family, o->no_delay)) < 0) {
		free(g);
		return fd;
	}
	if (!(c = pt__conn_outbound(w, fd))) {
		pt__sock_close(fd);
		free(g);
		return -ENOMEM;
	}
	c->ops = &connecting_ops;
	c->user = g;
	pt_conn_set_timeout(c, o->timeout_ms ? o->timeout_ms : CONNECT_TIMEOUT_MS);
	if ((err = w->be->conn_start(w, c)) < 0) {   /* epoll: registers it (receiving paused) */
		g->err = err;
		pt__pending(c);
	} else if (w->be->connect) {                 /* IOCP: ConnectEx */
		c->flags |= PT_C_TX_BUSY;
		if ((err = w->be->connect(w, c, sa, len)) < 0) {
			c->flags &= ~PT_C_TX_BUSY;
			g->err = err;
			pt__pending(c);
		}
	} else if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
		g->err = -errno;                          /* reported from the loop, not here */
		pt__pending(c);
	} else {
		c->flags |= PT_C_TX_BUSY;
		w->be->wait_writable(w, c);
	}
	return 0;
}
