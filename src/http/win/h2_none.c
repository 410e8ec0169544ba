/*
 * HTTP/2 in the Windows build: not available. Debian packages no libnghttp2 for mingw-w64 and
 * Portico takes its dependencies from Debian only, so the src/http/h2*.c files are not built.
 * There is no TLS there either (no ALPN "h2"), and a configuration asking for h2c is refused
 * by pt_http_server_create with -ENOTSUP: nothing pretends to speak HTTP/2.
 */
#include "http/http_int.h"
#include <errno.h>

bool pt__h2_available(void)
{
	return false;
}

int pt__h2_start(struct pt_http_server *s, pt_conn_t *c, const void *data, size_t len)
{
	return -ENOTSUP;
}

void pt__h2_goaway_all(struct hworker *hw, int step)
{
	/* no HTTP/2 connections exist */
}

void pt__h2_worker_free(struct hworker *hw)
{
	/* no HTTP/2 streams were ever allocated: nothing is on the free lists */
}
