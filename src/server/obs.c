/*
 * Request observation (see obs.h): a record per response, from the handler call to the
 * completion of the final send.
 */
#include "server/obs.h"
#include "server/alog.h"
#include "server/counter.h"
#include "util/util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FREE_MAX 1024                  /* records kept per worker for reuse */

struct pt_obs_req {
	struct pt_obs_req *next;           /* free list */
	struct pt_obs *o;
	pt_worker_t *wk;
	unsigned w;
	unsigned status;
	unsigned method;
	uint64_t t0, bytes;
	pt_http_send_fn cb;                /* the caller's callback and argument */
	void *arg;
	char *line;                        /* JSON access-log line begun, or NULL (owned) */
	size_t len;
};

struct oworker {                       /* one worker's free list (owner only) */
	struct pt_obs_req *free;
	unsigned nfree;
} __attribute__((aligned(64)));

struct pt_obs {
	struct pt_metrics *m;
	struct pt_alog *log;               /* JSON lines, or NULL */
	unsigned nworkers;
	struct oworker *w;
};

struct pt_obs *pt_obs_new(unsigned workers, struct pt_metrics *m, struct pt_alog *l, int *err)
{
	struct pt_obs *o;

	*err = 0;
	if (!m && !pt_alog_is_json(l))
		return NULL;
	if (!(o = calloc(1, sizeof *o)) || !(o->w = pt__aligned_alloc(64, workers * sizeof *o->w))) {
		free(o);
		*err = -ENOMEM;
		return NULL;
	}
	memset(o->w, 0, workers * sizeof *o->w);
	o->m = m;
	o->log = pt_alog_is_json(l) ? l : NULL;
	o->nworkers = workers;
	return o;
}

void pt_obs_free(struct pt_obs *o)
{
	if (!o)
		return;
	for (unsigned i = 0; i < o->nworkers; i++)
		while (o->w[i].free) {
			struct pt_obs_req *q = o->w[i].free;
			o->w[i].free = q->next;
			free(q);
		}
	pt__aligned_free(o->w);
	free(o);
}

uint64_t pt_obs_start(struct pt_obs *o, unsigned w, pt_worker_t *wk)
{
	if (o->m)
		pt_count(&pt_metrics_worker(o->m, w)->started, 1);
	return pt_worker_now_us(wk);
}

/* A record from the worker's free list, else a new one (NULL when out of memory). */
static struct pt_obs_req *req_get(struct oworker *ow)
{
	struct pt_obs_req *q = ow->free;

	if (!q)
		return malloc(sizeof *q);
	ow->free = q->next;
	ow->nfree--;
	return q;
}

/* Recycles q (frees it under ASan, so a use after recycling is caught, STYLE.md 17). */
static void req_put(struct pt_obs_req *q)
{
	free(q->line);
#if !PT_RECYCLE
	free(q);
#else
	struct oworker *ow = &q->o->w[q->w];

	if (ow->nfree >= FREE_MAX) {
		free(q);
		return;
	}
	q->next = ow->free;
	ow->free = q;
	ow->nfree++;
#endif
}

/* Counts and logs a finished response. */
static void finish(struct pt_obs *o, unsigned w, pt_worker_t *wk, unsigned method,
		   unsigned status, uint64_t bytes, uint64_t us, const char *line, size_t len)
{
	if (o->m)
		pt_metrics_finish(pt_metrics_worker(o->m, w), method, status, bytes, us);
	if (line)
		pt_alog_json_end(o->log, wk, line, len, us);
}

struct pt_obs_req *pt_obs_begin(struct pt_obs *o, pt_http_req_t *r, unsigned w, uint64_t t0,
				unsigned status, uint64_t bytes, pt_http_send_fn cb, void *arg)
{
	struct pt_obs_req *q = req_get(&o->w[w]);
	pt_worker_t *wk = pt_conn_worker(pt_http_req_conn(r));
	char *line = NULL;
	int len = o->log ? pt_alog_json_begin(o->log, r, status, bytes, &line) : 0;

	if (!q) {                          /* out of memory: count it now */
		finish(o, w, wk, pt_http_req_method(r), status, bytes,
		       pt_worker_now_us(wk) - t0, line, len > 0 ? (size_t)len : 0);
		free(line);
		return NULL;
	}
	*q = (struct pt_obs_req){ NULL, o, wk, w, status, pt_http_req_method(r), t0, bytes,
				  cb, arg, line, len > 0 ? (size_t)len : 0 };
	return q;
}

void pt_obs_sent(pt_http_req_t *r, void *arg, ssize_t res)
{
	struct pt_obs_req *q = arg;

	if (q->cb)
		q->cb(r, q->arg, res);
	finish(q->o, q->w, q->wk, q->method, q->status, q->bytes, pt_worker_now_us(q->wk) - q->t0,
	       q->line, q->len);
	req_put(q);
}

void pt_obs_cancel(struct pt_obs_req *q)
{
	if (q->o->m)
		pt_count(&pt_metrics_worker(q->o->m, q->w)->done, 1);
	req_put(q);
}
