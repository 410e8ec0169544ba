/*
 * Outbound connections on IOCP: pt_connect (connect.c) starts ConnectEx through the backend's
 * connect operation instead of a non-blocking connect(2) and a wait for writability, which is
 * not how a completion port works. ConnectEx needs a bound socket (the wildcard address of
 * the family, port 0) associated with the worker's port; it completes there as OP_CONNECT.
 * Then SO_UPDATE_CONNECT_CONTEXT makes the socket a fully connected one (getpeername,
 * shutdown), and connect.c's pt__connect_done hands it to the application. A connect that
 * fails (refused, unreachable, cancelled by the deadline's close) reports its error the same
 * way. The connection is the worker's like any other: every step runs on its thread.
 */
#include "engine/win/iocp_int.h"
#include "engine/fault.h"
#include <errno.h>

int pt__iocp_connect(struct pt_worker *w, struct pt_conn *c, const struct sockaddr *sa,
		     socklen_t len)
{
	struct sockaddr_storage any = { .ss_family = sa->sa_family };
	struct iop *o;
	BOOL ok;

	if (!pt__ConnectEx)
		return -ENOTSUP;
	/* ConnectEx wants a bound socket: the wildcard address, any port */
	if (bind(S(c->fd), (struct sockaddr *)&any, sa->sa_family == AF_INET
			? (int)sizeof(struct sockaddr_in) : (int)sizeof(struct sockaddr_in6)) != 0)
		return pt__sock_err();
	if (!(o = pt__iop_get(w, OP_CONNECT)))
		return -ENOMEM;
	pt__iocp_op_count(w, c, o);
	ok = pt__ConnectEx(S(c->fd), sa, (int)len, NULL, 0, NULL, &o->ov);
	pt__iocp_submitted(w, o, ok ? 0 : -1, ok ? 0 : WSAGetLastError());
	return 0;
}

void pt__iocp_connect_done(struct pt_worker *w, struct pt_conn *c, int err)
{
	if (!err && setsockopt(S(c->fd), SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0) != 0)
		err = pt__sock_err();
	if (err)
		pt__connect_failed(c, err);
	c->flags &= ~PT_C_TX_BUSY;
	pt__pending(c);
}
