/*
 * The portico program's own counters (metrics.c), beside the engine's (pt_counters), and
 * what reads them: the Prometheus exposition (prom.c) and the status JSON (status.c).
 *
 * Cost on the request path: each worker writes only its own struct pt_wmetrics (a cache-line
 * aligned block), with plain increments (counter.h); nothing is shared between workers and
 * nothing is locked. A scrape (the admin listener's thread) sums the workers' blocks with
 * relaxed loads. The counters exist only with --admin (struct pt_files.metrics is NULL
 * otherwise), so a server without an admin listener pays nothing at all.
 *
 * Requests are counted when they finish (obs.c): when the final send of the response has
 * completed (its bytes are in the kernel, or copied for buffered sends), by method and
 * status class, with the response's body bytes and its duration: from the worker's loop
 * iteration that ran the handler to the one that saw the final send complete, on the
 * worker's clock (pt_worker_now_us), so no request reads the clock itself.
 */
#ifndef PT_SERVER_METRICS_H
#define PT_SERVER_METRICS_H

#include <portico/http.h>
#include <stdatomic.h>
#include <stdio.h>
#include "server/fcache.h"

#define PT_METRICS_METHODS (PT_HTTP_PATCH + 1)   /* enum pt_http_method */
#define PT_METRICS_CLASSES 5                      /* 1xx .. 5xx */
#define PT_METRICS_BUCKETS 16                     /* duration bounds; +Inf follows */

/* Upper bounds of the duration buckets, seconds (100 us to 10 s, 1-2.5-5 steps), and the
 * same in microseconds. */
extern const double pt_metrics_le[PT_METRICS_BUCKETS];
extern const uint64_t pt_metrics_le_us[PT_METRICS_BUCKETS];

/* Content codings of file responses, in this order. */
enum { PT_MENC_IDENTITY, PT_MENC_BR, PT_MENC_ZSTD, PT_MENC_GZIP, PT_MENC__COUNT };

/* One worker's counters. Written by that worker only, read by any thread (counter.h). */
struct pt_wmetrics {
	uint64_t req[PT_METRICS_METHODS][PT_METRICS_CLASSES]; /* finished, by method, class */
	uint64_t resp_bytes;          /* body bytes of the responses finished */
	uint64_t dur[PT_METRICS_BUCKETS + 1];  /* durations, per bucket (not cumulative) */
	uint64_t dur_sum_us;
	uint64_t started;             /* handler calls (in flight = started - done) */
	uint64_t done;                /* requests finished, or that failed to respond */
	uint64_t encoded[PT_MENC__COUNT];  /* 200/206 file bodies by content coding */
	uint64_t zcopy_hit, zcopy_miss;    /* compressed copy ready / not ready (queued) */
	struct pt_fcache_stats fcache;     /* the open-file caches of this worker */
} __attribute__((aligned(64)));

struct pt_zcache;

struct pt_metrics {
	unsigned nworkers;
	struct pt_wmetrics *w;        /* [nworkers], owned */
	pt_engine_t *engine;          /* the data plane's engine (pt_engine_counters) */
	const pt_http_server_t *http; /* its HTTP layer (pt_http_server_counters), or NULL */
	struct pt_zcache *zc;         /* compressed copies, or NULL */
	const atomic_bool *draining;  /* SIGTERM with --drain-delay: /healthz says 503 */
	double start_time;            /* Unix time of the start, seconds */
	uint64_t start_us;            /* CLOCK_MONOTONIC at the start */
	const char *backend;          /* "io_uring" or "epoll" */
	uint64_t admin_requests;      /* written by the admin worker only */
	uint64_t admin_refused;       /* 403s to sources outside --admin-allow */
};

/* Counters for workers workers, all 0. The caller sets engine, http, zc, draining, backend.
 * NULL when out of memory. Main thread. */
struct pt_metrics *pt_metrics_new(unsigned workers);
/* After every thread that writes or reads it has stopped. NULL is allowed. */
void pt_metrics_free(struct pt_metrics *m);

/* Worker w's block. Any thread. */
static inline struct pt_wmetrics *pt_metrics_worker(struct pt_metrics *m, unsigned w)
{
	return &m->w[w];
}

/* A request finished: method (enum pt_http_method), status, body bytes, duration in
 * microseconds. Worker thread of wm. */
void pt_metrics_finish(struct pt_wmetrics *wm, unsigned method, unsigned status,
		       uint64_t bytes, uint64_t us);
/* A file body goes out in coding enc (a PT_ENC_* value of encoding.h). Worker of wm. */
void pt_metrics_encoding(struct pt_wmetrics *wm, unsigned enc);

/* The sums over the workers. Any thread. */
struct pt_metrics_sum {
	struct pt_wmetrics w;         /* every field summed (fcache too) */
	struct pt_counters e;         /* the engine's, summed */
	struct pt_http_counters http; /* the HTTP layer's: refused requests, HTTP/2 */
	uint64_t requests;            /* all finished requests */
	uint64_t inflight;
};
void pt_metrics_sum(const struct pt_metrics *m, struct pt_metrics_sum *out);
/* Finished requests of worker w. Any thread. */
uint64_t pt_metrics_worker_requests(const struct pt_metrics *m, unsigned w);

/* What the process uses, from /proc and getrusage (for the exposition). Any thread. */
struct pt_metrics_proc {
	double cpu_seconds;           /* user + system, all threads */
	uint64_t rss_bytes;
	uint64_t open_fds, max_fds;   /* descriptors open now, RLIMIT_NOFILE */
};
void pt_metrics_proc(struct pt_metrics_proc *p);

/* Seconds since the start. Any thread. */
double pt_metrics_uptime(const struct pt_metrics *m);

/* The Prometheus text exposition (format 0.0.4) of everything above into f (prom.c).
 * Admin thread. */
void pt_prom_render(const struct pt_metrics *m, FILE *f);
/* The /status.json document into f (status.c). Admin thread. */
void pt_status_json(const struct pt_metrics *m, FILE *f);
/* The /status page: a self-contained HTML document (status.html, built in). */
const char *pt_status_page(size_t *len);

#endif
