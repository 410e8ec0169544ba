/*
 * The portico static-file handler (files.c). One struct pt_files per server: the sites (a
 * snapshot swapped on reload, see vhost.h), the compress-once cache, and the server-wide
 * HTTPS settings, read-only once serving starts apart from what vhost.h and zcache.h
 * describe.
 */
#ifndef PT_SERVER_FILES_H
#define PT_SERVER_FILES_H

#include <portico/http.h>
#include <stdatomic.h>
#include "server/fcache.h"
#include "server/vhost.h"
#include "server/zcache.h"

struct pt_files {
	struct pt_vhosts vh;            /* the sites */
	struct pt_zcache *zc;           /* compressed copies, or NULL (no site compresses) */
	struct pt_alog *alog;           /* NULL: access log off */
	char hsts[32];                  /* Strict-Transport-Security value on TLS connections,
	                                   "max-age=N"; "" = none */
	bool redirect_https;            /* plaintext requests get a 301 to https://... */
	unsigned https_port;            /* ... on this port (the first HTTPS listener's) */
	struct pt_metrics *metrics;     /* counters (metrics.h), or NULL: no --admin */
	struct pt_obs *obs;             /* counting and JSON logging at completion (obs.h), or
	                                   NULL: neither */
	atomic_bool draining;           /* SIGTERM with --drain-delay: responses close their
	                                   connections (set by the main thread) */
	pt_http_server_t *srv;          /* the server (its response cache is flushed on reload) */
};

/* Starts serving snapshot s (the reference passes to f) with workers workers. Before the
 * server starts. 0 or -ENOMEM. */
int pt_files_init(struct pt_files *f, unsigned workers, struct pt_snapshot *s, unsigned keep_ms);
/* After the server stopped (the compression cache is not freed: see pt_zcache_free). */
void pt_files_fini(struct pt_files *f);
/* The route handler (arg = struct pt_files *). Worker thread. */
void pt_files_handle(pt_http_req_t *r, void *arg);
/* The server's on_cache_hit (arg = struct pt_files *): a response from the response cache
 * is logged and counted as the handler's would be; declined (the handler answers) while
 * draining or on a connection that predates a reload, which must close. Worker thread. */
int pt_files_cache_hit(pt_http_req_t *r, unsigned status, uint64_t bytes, unsigned *flags,
		       pt_http_send_fn *cb, void **arg, void *ctx);
/* The reason phrase of status, for the built-in bodies. Pure. */
const char *pt_files_reason(unsigned status);

#endif
