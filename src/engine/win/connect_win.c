/*
 * Outbound connections (pt_connect, connect.c) are not on the IOCP backend yet: on Windows
 * they need ConnectEx (a bound socket, an overlapped connect that completes through the port),
 * not a non-blocking connect() followed by a wait for writability, which is what connect.c
 * does on Linux. Until then pt_connect refuses with -ENOTSUP, so no connection is ever in the
 * connecting state here.
 */
#include "engine/engine_int.h"
#include <errno.h>

PT_API int pt_connect(pt_worker_t *w, const struct sockaddr *sa, socklen_t len,
		      const struct pt_connect_opts *o)
{
	return -ENOTSUP;
}

void pt__connect_done(struct pt_conn *c)
{
	PT_ASSERT(!"no outbound connection exists on the IOCP backend");
}
