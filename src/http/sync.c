/*
 * Synchronous handlers (PT_ROUTE_SYNC): a bounded pool of threads that may block, fed by a
 * bounded request queue (HTTP.SYS's request queue). A full queue answers 503 with Retry-After
 * (or resets the connection, by policy); a request that waited longer than the RequestQueue
 * timeout is answered 503 instead of being run.
 *
 * A queued request is kept (request.c): its head is copied, its worker held, and only the
 * pool's pt_http_req_release gives it back. The calls its handler makes on the pool thread
 * reach the worker through pt__req_run (call.c). This file is the pool and its queue only.
 */
#include "http/http_int.h"
#include "util/util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pt_sync {
	struct pt_http_server *s;
	pthread_t *th;
	unsigned nth;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pt_http_req *head, *tail;
	unsigned len;
	bool stop;
};

/* ---- worker side ---- */

/* 503 Retry-After (or a reset, by policy). Worker thread. */
static void answer_503(struct pt_http_req *r)
{
	static const char body[] = "Service Unavailable\n";
	static const struct pt_http_header h[] = { { "Retry-After", "1" },
						   { "Content-Type", "text/plain; charset=utf-8" } };
	struct pt_http_chunk ch = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, sizeof body - 1 } };

	if (!r->proto)
		return;                      /* the connection is gone: nobody to answer */
	if (r->s->cfg.queue_policy == PT_QUEUE_RESET ||
	    pt_http_respond(r, 503, NULL, h, 2, &ch, 1, PT_HTTP_DISCONNECT, NULL, NULL) < 0)
		r->ops->reset(r);
}

/* The queue takes one more (not full, not stopping). Under q->mu. */
static bool room(const struct pt_sync *q)
{
	return q->len < q->s->cfg.queue_length && !q->stop;
}

/* Appends r (kept) to the queue. Under q->mu. */
static bool enqueue(struct pt_sync *q, struct pt_http_req *r)
{
	r->qnext = NULL;
	if (q->tail)
		q->tail->qnext = r;
	else
		q->head = r;
	q->tail = r;
	q->len++;
	pthread_cond_signal(&q->cv);
	return true;
}

void pt__sync_dispatch(struct pt_http_req *r, const struct pt_route *rt)
{
	struct pt_sync *q = r->s->sync;
	bool queued = false;

	/* the pool thread reads the head while this worker reuses its receive buffer */
	if (pt__req_own_head(r) == 0) {
		r->route = rt;
		r->queued_ms = pt__now_ms();
		pthread_mutex_lock(&q->mu);
		queued = room(q) && pt__req_keep(r) == 0 && enqueue(q, r);
		pthread_mutex_unlock(&q->mu);
	}
	if (!queued)
		answer_503(r);
}

/* Waited too long for a thread: answered 503 on the worker (pt__req_run, from the pool). */
static int expired(struct pt_call *call, void *arg)
{
	answer_503(arg);
	return 0;
}

/* ---- pool threads ---- */

static struct pt_http_req *take(struct pt_sync *q)
{
	pthread_mutex_lock(&q->mu);
	while (!q->stop && !q->head)
		pthread_cond_wait(&q->cv, &q->mu);
	struct pt_http_req *r = q->head;
	if (r) {
		q->head = r->qnext;
		if (!q->head)
			q->tail = NULL;
		q->len--;
	}
	pthread_mutex_unlock(&q->mu);
	return r;
}

static void *pool_main(void *arg)
{
	struct pt_sync *q = arg;
	struct pt_http_req *r;

	while ((r = take(q))) {
		if (pt__now_ms() - r->queued_ms > q->s->cfg.timeouts.request_queue)
			pt__req_run(r, expired, r);
		else
			r->route->fn(r, r->route->arg);
		pt_http_req_release(r);          /* cannot fail: the request holds its worker */
	}
	return NULL;
}

int pt__sync_start(struct pt_http_server *s)
{
	bool any = false;

	for (unsigned i = 0; i < s->nroutes; i++)
		any |= (s->routes[i].flags & PT_ROUTE_SYNC) != 0;
	if (!any)
		return 0;
	struct pt_sync *q = calloc(1, sizeof *q);
	if (!q || !(q->th = calloc(s->cfg.sync_threads, sizeof *q->th))) {
		free(q);
		return -ENOMEM;
	}
	q->s = s;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	s->sync = q;
	for (; q->nth < s->cfg.sync_threads; q->nth++)
		if (pthread_create(&q->th[q->nth], NULL, pool_main, q) != 0)
			break;
	return q->nth ? 0 : -EAGAIN;
}

void pt__sync_stop(struct pt_http_server *s)
{
	struct pt_sync *q = s->sync;

	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	for (unsigned i = 0; i < q->nth; i++)
		pthread_join(q->th[i], NULL);
	/* the workers have exited, and a worker cannot exit while the pool holds one of its
	 * requests, so the queue is empty here */
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q->th);
	free(q);
	s->sync = NULL;
}
