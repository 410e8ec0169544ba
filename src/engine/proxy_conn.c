/*
 * The PROXY protocol pre-filter of a connection (see "PROXY protocol" in engine.h): the trust
 * check at accept, the header gathered across receives (at most PT_PROXY_HDR_MAX bytes, kept
 * only when it is split), then the connection continues as on any other listener: the TLS
 * handshake, or the application's on_accept, with the bytes that followed the header.
 *
 * States: accepted with PT_C_PREACCEPT | PT_C_PROXY (the application has not seen it, the
 * governor counts it partial once a byte arrives, the connection's timer is the header
 * deadline) -> header parsed: PT_C_PROXY cleared, the client address kept in c->rare->px -> TLS
 * handshake (PT_C_PREACCEPT stays) or on_accept. Any failure closes it with a reset, counted,
 * without a callback to the application.
 *
 * Threads: everything here runs on the connection's worker.
 */
#include "engine/engine_int.h"
#include "engine/fault.h"
#include "engine/proxy.h"
#include "engine/tls_int.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PROXY_TIMEOUT_MS 10000u        /* spec 2: "at least 3 seconds" to cover a retransmit */

struct pt_proxy_conn {
	struct pt_listener *l;
	char *buf;                        /* a header split across receives, or NULL */
	uint32_t len;                     /* bytes in buf */
	bool has_peer;                    /* the header named the client */
	socklen_t peer_len;
	struct sockaddr_storage peer;
};

int pt__proxy_listen_opts(struct pt_listener *l)
{
	struct pt_listen_opts *o = &l->opts;
	const char *trusted = o->proxy_trusted;
	int n;

	o->proxy_trusted = NULL;               /* the caller's string: parsed, not kept */
	if (!o->proxy_protocol)
		return 0;
	if ((o->proxy_protocol & ~(PT_PROXY_V1 | PT_PROXY_V2)) || !trusted ||
	    (n = pt_cidr_parse_list(trusted, l->trusted, PT_CIDR_MAX)) < 0)
		return -EINVAL;
	l->ntrusted = (unsigned)n;
	if (!o->proxy_timeout_ms)
		o->proxy_timeout_ms = PROXY_TIMEOUT_MS;
	return 0;
}

int pt__proxy_accept(struct pt_conn *c, struct pt_listener *l)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0 ||
	    !pt_cidr_match(l->trusted, l->ntrusted, (const struct sockaddr *)&ss)) {
		CNT_ADD(c->w, proxy_untrusted, 1);
		return -EACCES;
	}
	if (!pt__conn_rare(c) || !(c->rare->px = pt__calloc(1, sizeof *c->rare->px)))
		return -ENOMEM;
	c->rare->px->l = l;
	c->flags |= PT_C_PREACCEPT | PT_C_PROXY;
	c->state = PT_CONN_PARTIAL;             /* once it sends: a header in progress */
	pt_conn_set_timeout(c, l->opts.proxy_timeout_ms);
	return 0;
}

static void fail(struct pt_conn *c, uint64_t *counter)
{
	__atomic_store_n(counter, *counter + 1, __ATOMIC_RELAXED);
	free(c->rare->px->buf);
	c->rare->px->buf = NULL;
	c->flags &= ~PT_C_PROXY;
	pt_conn_close(c, PT_CLOSE_ABORT);       /* PT_C_PREACCEPT: no on_close */
}

/* The header is in: keep the client's address, then continue with TLS or the application and
 * hand them the bytes that followed it. */
static void done(struct pt_conn *c, const struct pt_proxy_hdr *h, const char *rest, size_t n)
{
	struct pt_proxy_conn *px = c->rare->px;
	struct pt_listener *l = px->l;

	CNT_ADD(c->w, proxy_headers, 1);
	if (!h->local) {
		px->has_peer = true;
		px->peer = h->src;
		px->peer_len = h->src_len;
	}
	c->flags &= ~PT_C_PROXY;
	pt__ctimer_cancel(c);
	if (l->opts.tls) {
		if (pt__tls_accept(c, l) < 0) {
			pt_conn_close(c, PT_CLOSE_ABORT);
			return;
		}
		if (n)
			pt__tls_rx(c, rest, n);
		return;
	}
	if (!pt__conn_accept_app(c, l)) {
		pt_conn_close(c, PT_CLOSE_ABORT);   /* refused: no callback for it, not on_close */
		return;
	}
	if (n)
		pt__rx_plain(c, rest, n);
}

/* Bytes of a connection still waiting for its header: parse what is held plus data; on
 * success continue (done), on a bad header close (fail), else keep them and wait. */
void pt__proxy_rx(struct pt_conn *c, const void *data, size_t len)
{
	struct pt_proxy_conn *px = c->rare->px;
	unsigned versions = px->l->opts.proxy_protocol;
	struct pt_proxy_hdr h;
	int r;

	if (!px->buf) {                          /* the usual case: the header in one receive */
		if ((r = pt__proxy_parse(data, len, versions, &h)) > 0) {
			done(c, &h, (const char *)data + r, len - (size_t)r);
			return;
		}
		if (r < 0 || !(px->buf = pt__malloc(PT_PROXY_HDR_MAX))) {
			fail(c, &c->w->cnt.proxy_bad);
			return;
		}
	}
	size_t old = px->len, take = len < PT_PROXY_HDR_MAX - old ? len : PT_PROXY_HDR_MAX - old;
	memcpy(px->buf + old, data, take);
	px->len += (uint32_t)take;
	r = pt__proxy_parse(px->buf, px->len, versions, &h);
	if (r < 0 || (r == 0 && px->len == PT_PROXY_HDR_MAX)) {
		fail(c, &c->w->cnt.proxy_bad);
		return;
	}
	if (r == 0)
		return;
	free(px->buf);                           /* h holds no pointer into it */
	px->buf = NULL;
	px->len = 0;
	PT_ASSERT((size_t)r > old);              /* else the last receive would have ended it */
	size_t used = (size_t)r - old;
	done(c, &h, (const char *)data + used, len - used);
}

void pt__proxy_eof(struct pt_conn *c)
{
	fail(c, &c->w->cnt.proxy_bad);
}

void pt__proxy_timeout(struct pt_conn *c)
{
	fail(c, &c->w->cnt.proxy_timeout);
}

void pt__proxy_free(struct pt_conn *c)
{
	if (!c->rare || !c->rare->px)
		return;
	free(c->rare->px->buf);
	free(c->rare->px);
	c->rare->px = NULL;
}

PT_API int pt_conn_socket_peer(const pt_conn_t *c, struct sockaddr_storage *ss, socklen_t *len)
{
	if (!c || !ss || !len)
		return -EINVAL;
	*len = sizeof *ss;
	return pt__sock_peer(c->fd, ss, len);
}

PT_API int pt_conn_peer(const pt_conn_t *c, struct sockaddr_storage *ss, socklen_t *len)
{
	if (!c || !ss || !len)
		return -EINVAL;
	if (c->rare && c->rare->px && c->rare->px->has_peer) {
		memset(ss, 0, sizeof *ss);
		memcpy(ss, &c->rare->px->peer, c->rare->px->peer_len);
		*len = c->rare->px->peer_len;
		return 0;
	}
	return pt_conn_socket_peer(c, ss, len);
}
