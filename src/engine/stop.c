/*
 * The graceful stop of connections, and the hint for handing an address over.
 *
 * When a worker stops (engine.c), every accepted connection is owed one on_stop: a flag and a
 * place on the pending list, so the callback runs from the loop, after input already received
 * was delivered, and never while the worker lists are walked (an application that changes a
 * connection's state there would move it between them). Connections the worker still accepts
 * while its listeners close (listen.c), and TLS connections whose handshake ends during the
 * stop, are owed it as soon as the application has seen them (on_accept). A connection whose
 * ops have no on_stop is closed gracefully instead, which is what every connection got before
 * on_stop existed. Worker thread only, except the hint (the thread that adds listeners).
 */
#include "engine/engine_int.h"
#include <errno.h>
#include <string.h>

void pt__stop_owe(struct pt_conn *c)
{
	if (!c->w->stopping || !(c->flags & PT_C_LIVE) ||
	    (c->flags & (PT_C_CLOSING | PT_C_PREACCEPT | PT_C_STOP_OWED)))
		return;
	c->flags |= PT_C_STOP_OWED;
	pt__pending(c);
}

/* A TLS handshake in progress may finish (its client may be about to send a request), but
 * within stop_grace_ms rather than the handshake timeout: a client that connected and sends
 * nothing must not hold the stop until shutdown_ms. It is owed on_stop once accepted. */
void pt__stop_conns(struct pt_worker *w)
{
	for (enum pt_clist l = PT_L_SILENT; l < PT_L_CLOSING; l++)
		for (struct pt_conn *c = w->lists[l].head; c; c = pt__cderef(w, c->l_next))
			if (c->flags & PT_C_PREACCEPT)
				pt__ctimer_arm(c, w->e->cfg.stop_grace_ms);
			else
				pt__stop_owe(c);
}

void pt__stop_deliver(struct pt_conn *c)
{
	c->flags &= ~PT_C_STOP_OWED;
	if (c->ops && c->ops->on_stop)
		c->ops->on_stop(c);
	else
		pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

/* ---- the handover hint ---- */

void pt__handover_hint(struct pt_engine *e, const struct sockaddr *sa, socklen_t len)
{
	const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;

	if (in4->sin_port == 0 || !pt__addr_listened(sa, len) || pt__migrate_req() != 0)
		return;
	pt__log(e, 1, "another socket listens on port %u (a handover?): the connections queued on "
		"a listener when it closes are reset while sysctl net.ipv4.tcp_migrate_req is 0; "
		"set it to 1 so that the kernel moves them to the listener that stays",
		(unsigned)ntohs(in4->sin_port));
}
