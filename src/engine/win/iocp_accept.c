/*
 * The IOCP backend's accepting (see iocp.c for the whole design): a pool of AcceptEx calls
 * with a receive buffer per worker and listener, refilled between ACCEPT_LOW and ACCEPT_HIGH;
 * SO_UPDATE_ACCEPT_CONTEXT on completion; SO_CONNECT_TIME reaping of posted accepts whose
 * client connected and never sent. The listening socket belongs to worker 0's port; a worker
 * with accepts posted holds itself and worker 0 (pt_worker_hold) until they have completed,
 * so neither exits while the kernel may still write to an accept's OVERLAPPED.
 * Worker thread only.
 */
#include "engine/win/iocp_int.h"

static struct iocp_w *worker0(struct pt_worker *w)
{
	return __atomic_load_n(&w->e->workers[0].bd, __ATOMIC_ACQUIRE);
}

/* Accepts posted keep this worker and worker 0 running (pt_worker_hold) until they complete. */
static int acc_hold(struct pt_worker *w)
{
	struct iocp_w *p = I(w);
	struct pt_worker *w0 = &w->e->workers[0];

	if (p->holding)
		return 0;
	if (pt_worker_hold(w) < 0)
		return -ESHUTDOWN;
	if (w != w0 && pt_worker_hold(w0) < 0) {
		pt_worker_release(w);
		return -ESHUTDOWN;
	}
	p->holding = true;
	return 0;
}

static void acc_release(struct pt_worker *w)
{
	struct iocp_w *p = I(w);

	if (!p->holding || p->accepts)
		return;
	p->holding = false;
	if (w->index != 0)
		pt_worker_release(&w->e->workers[0]);
	pt_worker_release(w);
}

static int accept_post(struct pt_worker *w, struct pt_wlisten *wl)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int err;

	if ((err = pt__sock_name(wl->fd, &ss, &len)) < 0)
		return err;
	if ((err = acc_hold(w)) < 0)
		return err;
	int fd = pt__sock_stream(ss.ss_family);
	if (fd < 0) {
		acc_release(w);
		return fd;
	}
	struct iop *o = pt__iop_get(w, OP_ACCEPT);
	if (!o) {
		pt__sock_close(fd);
		acc_release(w);
		return -ENOMEM;
	}
	unsigned slot = (unsigned)(wl - w->wl);
	struct pool *pl = &I(w)->pools[slot];
	o->s = S(fd);
	o->idx = slot;
	o->next = pl->head;
	pl->head = o;
	pl->n++;
	I(w)->accepts++;
	DWORD got = 0;
	BOOL ok = pt__AcceptEx(S(wl->fd), o->s, o->abuf, ACCEPT_DATA, ACCEPT_ADDR, ACCEPT_ADDR, &got,
			    &o->ov);
	pt__iocp_submitted(w, o, ok ? 0 : -1, ok ? 0 : WSAGetLastError());
	return 0;
}

static void pool_fill(struct pt_worker *w, struct pt_wlisten *wl)
{
	struct pool *pl = &I(w)->pools[wl - w->wl];

	if (!pl->on || pl->n >= ACCEPT_LOW)
		return;
	while (pl->n < ACCEPT_HIGH && accept_post(w, wl) == 0) {
	}
}

int pt__iocp_accept_start(struct pt_worker *w, struct pt_wlisten *wl)
{
	struct iocp_w *p = I(w);

	for (int i = 0; i < 10000 && !worker0(w); i++)   /* worker 0 is starting: <= 10 s */
		Sleep(1);
	if (!worker0(w))
		return -ESHUTDOWN;
	p->pools[wl - w->wl].on = true;
	pool_fill(w, wl);
	if (!pt_timer_armed(&p->reap))
		pt_timer_arm(w, &p->reap, 1000);
	return 0;
}

/* Pausing stops refilling (accepts already posted still bring their clients in, as a listen
 * backlog would); stopping closes the posted sockets, whose accepts then complete with an
 * error. wl->armed stays set until the last one has completed. */
void pt__iocp_accept_stop(struct pt_worker *w, struct pt_wlisten *wl)
{
	struct pool *pl = &I(w)->pools[wl - w->wl];

	pl->on = false;
	wl->armed = false;
	if (!w->stopping)
		return;
	for (struct iop *o = pl->head; o; o = o->next)
		if (o->s != INVALID_SOCKET) {
			closesocket(o->s);
			o->s = INVALID_SOCKET;
		}
}

static void pool_unlink(struct pt_worker *w, struct iop *o)
{
	struct iocp_w *p = I(w);
	struct pool *pl = &p->pools[o->idx];

	for (struct iop **pp = &pl->head; *pp; pp = &(*pp)->next)
		if (*pp == o) {
			*pp = o->next;
			break;
		}
	pl->n--;
	p->accepts--;
}

static unsigned reap_sec(const struct pt_wlisten *wl)
{
	int d = wl->l->opts.defer_accept_sec;

	return d > 0 ? (unsigned)d : REAP_SEC;
}

/* SO_CONNECT_TIME: seconds since the client connected, 0xFFFFFFFF while not connected. A
 * posted accept that has been connected for the reap time without one byte is closed. */
void pt__iocp_reap(pt_timer_t *t, void *arg)
{
	struct pt_worker *w = arg;
	struct iocp_w *p = I(w);

	for (unsigned i = 0; i < w->nwl; i++)
		for (struct iop *o = p->pools[i].head; o; o = o->next) {
			DWORD sec = 0xFFFFFFFF;
			int len = sizeof sec;
			if (o->s == INVALID_SOCKET ||
			    getsockopt(o->s, SOL_SOCKET, SO_CONNECT_TIME, (char *)&sec, &len) ||
			    sec == 0xFFFFFFFF || sec < reap_sec(&w->wl[i]))
				continue;
			closesocket(o->s);          /* its accept completes with an error */
			o->s = INVALID_SOCKET;
		}
	if (!w->stopping)
		pt_timer_arm(w, t, 1000);
}

void pt__iocp_accept_done(struct pt_worker *w, struct iop *o, DWORD n, int err)
{
	struct pt_wlisten *wl = &w->wl[o->idx];
	SOCKET s = o->s;

	pool_unlink(w, o);
	if (err || s == INVALID_SOCKET || w->stopping) {
		if (s != INVALID_SOCKET)
			closesocket(s);
		pt__iop_put(w, o);
		if (err == -ENOBUFS || err == -ENOMEM)
			pt__accept_error(w, wl, err);
		else
			pool_fill(w, wl);
		acc_release(w);
		return;
	}
	SOCKET ls = S(wl->fd);
	BOOL one = TRUE;
	setsockopt(s, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (char *)&ls, sizeof ls);
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (char *)&one, sizeof one);
	o->ov.InternalHigh = n;               /* the first bytes, for iocp_conn_start */
	I(w)->cur_accept = o;
	pt__accepted(w, wl, (int)(intptr_t)s);
	if (I(w)->cur_accept) {               /* refused, or no connection object */
		I(w)->cur_accept = NULL;
		pt__iop_put(w, o);
	}
	pool_fill(w, wl);
	acc_release(w);
}
