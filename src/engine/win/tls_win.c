/*
 * TLS on Windows: not built. Debian packages no OpenSSL for mingw-w64, and Portico takes its
 * dependencies from Debian only, so the Windows build has no TLS transport: pt_tls_create
 * fails with a message that says so, and no listener can ask for TLS. Every connection is
 * plaintext (c->tls is NULL), so the transport hooks the core calls are reached only with
 * nothing to do (free, worker teardown) or not at all (asserted).
 */
#include "engine/tls_int.h"
#include <stdio.h>
#include <string.h>

#define NO_TLS "TLS is not available in the Windows build (no OpenSSL for mingw-w64 in Debian)"

PT_API void pt_tls_config_init(struct pt_tls_config *cfg)
{
	if (cfg)
		memset(cfg, 0, sizeof *cfg);
}

PT_API pt_tls_t *pt_tls_create(const struct pt_tls_config *cfg, char *err, size_t cap)
{
	if (err && cap)
		snprintf(err, cap, "%s", NO_TLS);
	return NULL;
}

PT_API int pt_tls_reload(pt_tls_t *t, const struct pt_tls_config *cfg, char *err, size_t cap)
{
	if (err && cap)
		snprintf(err, cap, "%s", NO_TLS);
	return -ENOTSUP;
}

PT_API void pt_tls_destroy(pt_tls_t *t)
{
}

PT_API bool pt_tls_ktls(const pt_tls_t *t)
{
	return false;
}

PT_API bool pt_conn_is_tls(const pt_conn_t *c)
{
	return false;
}

PT_API const char *pt_conn_alpn(const pt_conn_t *c)
{
	return NULL;
}

PT_API const char *pt_conn_sni(const pt_conn_t *c)
{
	return NULL;
}

PT_API int pt_conn_tls_info(const pt_conn_t *c, struct pt_tls_info *info)
{
	return c && info ? -ENOTCONN : -EINVAL;
}

/* The transport hooks: only reachable with c->tls set, which never happens here. */
int pt__tls_accept(struct pt_conn *c, struct pt_listener *l)
{
	return -ENOTSUP;
}

void pt__tls_rx(struct pt_conn *c, const void *data, size_t len)
{
	PT_ASSERT(!"TLS data on a build without TLS");
}

int pt__tls_rx_end(struct pt_conn *c)
{
	return 0;
}

void pt__tls_eof(struct pt_conn *c)
{
	PT_ASSERT(!"TLS end on a build without TLS");
}

void pt__tls_timeout(struct pt_conn *c)
{
	PT_ASSERT(!"TLS timeout on a build without TLS");
}

int pt__tls_take(struct pt_conn *c, struct pt_tls_buf **b)
{
	*b = NULL;
	return -ENOTSUP;
}

size_t pt__tls_sent(struct pt_conn *c, size_t n)
{
	return 0;
}

bool pt__tls_shutdown(struct pt_conn *c)
{
	return false;
}

void pt__tls_free(struct pt_conn *c)
{
	PT_ASSERT(!c->tls);
}

void pt__tls_worker_free(struct pt_worker *w)
{
	PT_ASSERT(!w->tlsw);
}
