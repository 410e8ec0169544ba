/*
 * The portico static-file handler (files.c). One struct pt_files per server, read-only once
 * serving starts, except the per-worker caches, each touched only by its worker.
 */
#ifndef PT_SERVER_FILES_H
#define PT_SERVER_FILES_H

#include <portico/http.h>
#include "server/fcache.h"

struct pt_files {
	struct pt_fcache_opts opts;
	const char *index;              /* "" = no index file */
	bool autoindex;
	const char *cache_control;      /* "" = none */
	struct pt_alog *alog;           /* NULL: access log off */
	char hsts[32];                  /* Strict-Transport-Security value on TLS connections,
	                                   "max-age=N"; "" = none */
	bool redirect_https;            /* plaintext requests get a 301 to https://... */
	unsigned https_port;            /* ... on this port (the first HTTPS listener's) */
	struct pt_fcache **cache;       /* one per worker */
	unsigned nworkers;
};

/* Creates the per-worker caches. Before the server starts. 0 or -ENOMEM. */
int pt_files_init(struct pt_files *f, unsigned workers, int rootfd);
/* After the server stopped. */
void pt_files_fini(struct pt_files *f);
/* The route handler (arg = struct pt_files *). Worker thread. */
void pt_files_handle(pt_http_req_t *r, void *arg);
const char *pt_files_reason(unsigned status);

#endif
