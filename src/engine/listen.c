/*
 * Listening sockets. Each listening address gets one SO_REUSEPORT socket per worker, created
 * and bound by pt_engine_listen (so errors are reported to the caller), and armed for
 * accepting by each worker when it starts. The kernel spreads new connections over the
 * sockets by 4-tuple hash, and each connection then stays on the worker that accepted it.
 */
#include "engine/engine_int.h"
#include "engine/fault.h"
#include "engine/plat.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* "1.2.3.4:80" or "[::1]:80" into ss. 0 or -EINVAL. */
static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon, *h = s;
	size_t hl;

	if (!s)
		return -EINVAL;
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof host)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	char *endp;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &endp, 10);
	if (colon[1] < '0' || colon[1] > '9' || *endp || errno || port > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof *in4;
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof *in6;
	} else {
		return -EINVAL;
	}
	return 0;
}

int pt__listen_socket(const struct sockaddr *sa, socklen_t len, const struct pt_listen_opts *o,
		      bool reuseport)
{
	int one = 1, err;

	if ((err = pt__fault(PT_FAULT_SOCKET)) < 0)
		return err;
	int fd = pt__sock_stream(sa->sa_family);
	if (fd < 0)
		return fd;
	if ((err = pt__sock_opt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one)) < 0 ||
	    (reuseport && (err = pt__sock_reuseport(fd)) < 0))
		goto fail;
	if (sa->sa_family == AF_INET6 &&
	    (err = pt__sock_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one)) < 0)
		goto fail;
	/* accepted sockets inherit it: no setsockopt per connection */
	if ((err = pt__sock_opt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one)) < 0)
		goto fail;
	if (o->defer_accept_sec > 0 && (err = pt__sock_defer_accept(fd, o->defer_accept_sec)) < 0)
		goto fail;
	if ((err = pt__sock_bind_listen(fd, sa, len, o->backlog > 0 ? o->backlog : 4096)) < 0)
		goto fail;
	return fd;
fail:
	pt__sock_close(fd);
	return err;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	int err = pt__sock_name(fd, &ss, &len);

	if (err < 0)
		return err;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int add_listener(struct pt_engine *e, struct pt_listener *l)
{
	struct pt_listener **v = pt__realloc(e->listeners, (e->nlisteners + 1) * sizeof *v);

	if (!v)
		return -ENOMEM;
	e->listeners = v;
	l->idx = (int)e->nlisteners;
	v[e->nlisteners++] = l;
	return l->idx;
}

static void listener_free(struct pt_engine *e, struct pt_listener *l)
{
	if (l->shared_fd >= 0)
		pt__sock_close(l->shared_fd);
	for (unsigned i = 0; l->fds && i < e->nworkers; i++)
		if (l->fds[i] >= 0)
			pt__sock_close(l->fds[i]);
	free(l->fds);
	free(l);
}

static struct pt_listener *listener_new(struct pt_engine *e, const struct pt_listen_opts *o)
{
	struct pt_listener *l = pt__calloc(1, sizeof *l);

	if (!l)
		return NULL;
	l->opts = *o;
	l->shared_fd = -1;
	l->fds = pt__malloc(e->nworkers * sizeof *l->fds);
	if (!l->fds) {
		free(l);
		return NULL;
	}
	for (unsigned i = 0; i < e->nworkers; i++)
		l->fds[i] = -1;
	return l;
}

PT_API int pt_engine_listen(pt_engine_t *e, const char *addr, const struct pt_listen_opts *o)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int err;

	if (!e || !o || !o->on_accept || o->defer_accept_sec < 0 || e->started)
		return -EINVAL;
	if ((err = parse_addr(addr, &ss, &len)) < 0)
		return err;
	pt__handover_hint(e, (struct sockaddr *)&ss, len);
	struct pt_listener *l = listener_new(e, o);
	if (!l)
		return -ENOMEM;
	if ((err = pt__proxy_listen_opts(l)) < 0)
		goto fail;
	if (!PT_PLAT_REUSEPORT) {   /* one socket that every worker accepts on (Windows) */
		if ((err = pt__listen_socket((struct sockaddr *)&ss, len, o, false)) < 0)
			goto fail;
		l->shared_fd = err;
		l->port = bound_port(err);
	}
	for (unsigned i = 0; PT_PLAT_REUSEPORT && i < e->nworkers; i++) {
		err = pt__listen_socket((struct sockaddr *)&ss, len, o, true);
		if (err < 0)
			goto fail;
		l->fds[i] = err;
		if (i == 0) {   /* port 0: every worker binds the port the first one got */
			l->port = bound_port(err);
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)l->port);
		}
	}
	if ((err = add_listener(e, l)) < 0)
		goto fail;
	return err;
fail:
	listener_free(e, l);
	return err;
}

PT_API int pt_engine_listen_fd(pt_engine_t *e, int fd, const struct pt_listen_opts *o)
{
	int err = -EINVAL;

	if (!e || !o || !o->on_accept || fd < 0 || e->started) {
		if (fd >= 0)
			pt__sock_close(fd);
		return err;
	}
	/* systemd passes blocking sockets by default (NonBlocking=no): the epoll backend accepts
	 * until EAGAIN and would block in accept4 */
	if ((err = pt__sock_nonblock(fd)) < 0) {
		pt__sock_close(fd);
		return err;
	}
	int one = 1;                             /* inherited by accepted sockets (not TCP: no-op) */
	pt__sock_opt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct pt_listener *l = listener_new(e, o);
	if (!l) {
		pt__sock_close(fd);
		return -ENOMEM;
	}
	l->shared_fd = fd;
	l->port = bound_port(fd);
	if ((err = pt__proxy_listen_opts(l)) < 0 || (err = add_listener(e, l)) < 0)
		listener_free(e, l);
	return err;
}

PT_API int pt_engine_listen_port(pt_engine_t *e, int idx)
{
	if (!e || idx < 0 || (unsigned)idx >= e->nlisteners)
		return -EINVAL;
	return e->listeners[idx]->port;
}

void pt__listeners_free(struct pt_engine *e)
{
	for (unsigned i = 0; i < e->nlisteners; i++)
		listener_free(e, e->listeners[i]);
	free(e->listeners);
	e->listeners = NULL;
	e->nlisteners = 0;
}

/* Bounds the connections taken from a closing listener's queue (its backlog is bounded too,
 * but clients keep arriving while it is read). */
#define ACCEPT_REST_MAX 4096u

/* The connections the kernel has queued on a listener about to close are accepted and served
 * (the application is told the engine stops): closing would reset them. What arrives between
 * the last accept4 and the close is reset too, unless net.ipv4.tcp_migrate_req is 1: then the
 * kernel moves it (and handshakes in progress) to another listener on the port. */
static void accept_rest(struct pt_worker *w, struct pt_wlisten *wl)
{
	for (unsigned i = 0; i < ACCEPT_REST_MAX && !w->stop_abort; i++) {
		int fd = pt__sock_accept(wl->fd);
		if (fd >= 0)
			pt__accepted(w, wl, fd);
		else if (fd != -EINTR && fd != -ECONNABORTED)
			return;
	}
}

/* Stopping: a listener this worker no longer accepts on is closed at once, after taking what
 * is queued on it, so the kernel refuses new clients (or hands them to another instance on the
 * port) instead of queueing them until the process exits. Shared (socket-activated) sockets
 * stay open with their queue for the next process, and close at destroy. */
void pt__listeners_close_stopped(struct pt_worker *w)
{
	for (unsigned i = 0; i < w->nwl; i++) {
		struct pt_wlisten *wl = &w->wl[i];
		if (wl->armed || wl->fd < 0 || wl->l->shared_fd >= 0)
			continue;
		accept_rest(w, wl);
		pt__sock_close(wl->fd);
		wl->l->fds[w->index] = -1;
		wl->fd = -1;
	}
}

/* Pause (limit reached, resource error back-off, shutdown) or resume accepting. */
void pt__accept_set(struct pt_worker *w, bool on)
{
	if (on && (w->stopping || w->accept_paused))
		return;
	for (unsigned i = 0; i < w->nwl; i++) {
		struct pt_wlisten *wl = &w->wl[i];
		wl->want = on;
		if (wl->fd < 0)
			continue;
		if (on && !wl->armed && w->be->accept_start(w, wl) == 0)
			wl->armed = true;
		else if (!on && wl->armed)
			w->be->accept_stop(w, wl);
	}
}
