/*
 * Synchronous handlers (PT_ROUTE_SYNC): a bounded pool of threads that may block, fed by a
 * bounded request queue (HTTP.SYS's request queue). A full queue answers 503 with Retry-After
 * (or resets the connection, by policy); a request that waited longer than the RequestQueue
 * timeout is answered 503 instead of being run.
 *
 * Calls a handler makes on its pool thread (respond, send body, read body) are forwarded to the
 * connection's worker as posted completions, and the pool thread waits for the call's result.
 * Without PT_HTTP_BUFFER it also waits for the send to complete, so its buffers may be reused
 * when the call returns (the synchronous model of HTTP.SYS); with PT_HTTP_BUFFER the data is
 * copied on the worker and the call returns at once.
 * While a request belongs to the pool (sync_route), only the pool frees it.
 */
#include "http/http_int.h"
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

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- worker side ---- */

static void answer_503(struct pt_http_req *r)
{
	static const char body[] = "Service Unavailable\n";
	static const struct pt_http_header h[] = { { "Retry-After", "1" },
						   { "Content-Type", "text/plain; charset=utf-8" } };
	struct pt_http_chunk ch = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, sizeof body - 1 } };

	if (r->s->cfg.queue_policy == PT_QUEUE_RESET ||
	    pt_http_respond(r, 503, NULL, h, 2, &ch, 1, PT_HTTP_DISCONNECT, NULL, NULL) < 0)
		pt_conn_close(r->h->c, PT_CLOSE_ABORT);
}

void pt__sync_dispatch(struct pt_http_req *r, const struct pt_route *rt)
{
	struct pt_sync *q = r->s->sync;

	/* the pool thread reads the head while this worker reuses its receive buffer */
	if (pt__own_head(r) < 0) {
		answer_503(r);
		return;
	}
	pthread_mutex_lock(&q->mu);
	if (q->len >= r->s->cfg.queue_length || q->stop) {
		pthread_mutex_unlock(&q->mu);
		answer_503(r);
		return;
	}
	r->worker = pt_conn_worker(r->h->c);
	if (pt_worker_hold(r->worker) < 0) {  /* the worker must outlive the pool's use of r */
		pthread_mutex_unlock(&q->mu);
		answer_503(r);
		return;
	}
	r->sync_route = true;
	r->route = rt;
	r->queued_ms = now_ms();
	r->qnext = NULL;
	if (q->tail)
		q->tail->qnext = r;
	else
		q->head = r;
	q->tail = r;
	q->len++;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

/* The pool is done with r (worker thread). */
static void sync_done(pt_worker_t *w, void *arg)
{
	struct pt_http_req *r = arg;

	r->sync_route = false;
	pt_worker_release(w);
	if (!r->h) {                         /* the connection went away meanwhile */
		free(r->own);
		free(r);
		return;
	}
	if (!r->final_sent) {                /* the handler returned without finishing */
		if (!r->head_sent)
			pt_http_respond(r, 500, NULL, NULL, 0, NULL, 0, PT_HTTP_DISCONNECT, NULL, NULL);
		else
			pt_conn_close(r->h->c, PT_CLOSE_ABORT);
	}
	pt__req_release(r);
}

static void expired(pt_worker_t *w, void *arg)
{
	struct pt_http_req *r = arg;

	if (r->h)
		answer_503(r);
	sync_done(w, r);
}

/* ---- requests kept by the application (responded to from other threads) ---- */

PT_API int pt_http_req_keep(pt_http_req_t *r)
{
	if (!r || !r->h || r->sync_route || pt_worker_current() != pt_conn_worker(r->h->c))
		return -EINVAL;
	r->worker = pt_conn_worker(r->h->c);
	int err = pt__own_head(r);             /* other threads read the head meanwhile */
	if (err < 0)
		return err;
	if ((err = pt_worker_hold(r->worker)) < 0)
		return err;
	r->sync_route = true;                  /* owned outside the worker, like a pool request */
	return 0;
}

PT_API void pt_http_req_release(pt_http_req_t *r)
{
	if (r && r->sync_route)
		pt_post(r->worker, &r->post, sync_done, r);   /* cannot fail: the worker is held */
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

/* Cannot fail: the pool holds the worker (pt_worker_hold) until sync_done has run there. */
static void give_back(struct pt_http_req *r, pt_post_fn fn)
{
	pt_post(r->worker, &r->post, fn, r);
}

static void *pool_main(void *arg)
{
	struct pt_sync *q = arg;
	struct pt_http_req *r;

	while ((r = take(q))) {
		if (now_ms() - r->queued_ms > q->s->cfg.timeouts.request_queue) {
			give_back(r, expired);
			continue;
		}
		r->route->fn(r, r->route->arg);
		give_back(r, sync_done);
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

/* ---- forwarding calls from pool threads ---- */

enum fwd_kind { FWD_RESPOND, FWD_BODY, FWD_READ };

struct fwd {
	pt_post_t post;
	enum fwd_kind kind;
	struct pt_http_req *r;
	unsigned status;
	const char *reason;
	const struct pt_http_header *headers;
	unsigned nheaders;
	const struct pt_http_chunk *body;
	unsigned nbody, flags;
	pt_http_send_fn cb;
	void *arg;
	pt_http_body_fn body_cb;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int result;
	ssize_t sent_res;                /* the send's completion, when waited for */
	bool called, completed, wait_completion;
};

static void fwd_signal(struct fwd *f, bool *flag)
{
	pthread_mutex_lock(&f->mu);
	*flag = true;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static void fwd_sent(pt_http_req_t *r, void *arg, ssize_t res)
{
	struct fwd *f = arg;

	if (f->cb)
		f->cb(r, f->arg, res);
	f->sent_res = res;
	fwd_signal(f, &f->completed);
}

int pt__respond_local(pt_http_req_t *r, unsigned status, const char *reason,
		      const struct pt_http_header *headers, unsigned nheaders,
		      const struct pt_http_chunk *body, unsigned nbody, unsigned flags,
		      pt_http_send_fn cb, void *arg);
int pt__send_body_local(pt_http_req_t *r, const struct pt_http_chunk *body, unsigned nbody,
			unsigned flags, pt_http_send_fn cb, void *arg);
int pt__read_body_local(pt_http_req_t *r, pt_http_body_fn cb, void *arg);

static void fwd_run(pt_worker_t *w, void *arg)
{
	struct fwd *f = arg;
	pt_http_send_fn cb = f->wait_completion ? fwd_sent : f->cb;
	void *cb_arg = f->wait_completion ? (void *)f : f->arg;

	if (f->kind == FWD_RESPOND)
		f->result = pt__respond_local(f->r, f->status, f->reason, f->headers, f->nheaders,
					      f->body, f->nbody, f->flags, cb, cb_arg);
	else if (f->kind == FWD_BODY)
		f->result = pt__send_body_local(f->r, f->body, f->nbody, f->flags, cb, cb_arg);
	else
		f->result = pt__read_body_local(f->r, f->body_cb, f->arg);
	bool wait = f->wait_completion && f->result == 0;
	fwd_signal(f, &f->called);
	if (!wait)
		fwd_signal(f, &f->completed);
}

static int fwd_call(struct fwd *f)
{
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->wait_completion = f->kind != FWD_READ && !(f->flags & PT_HTTP_BUFFER);
	int err = pt_post(f->r->worker, &f->post, fwd_run, f);
	if (err == 0) {
		pthread_mutex_lock(&f->mu);
		while (!f->called || !f->completed)
			pthread_cond_wait(&f->cv, &f->mu);
		pthread_mutex_unlock(&f->mu);
		err = f->result;
		if (err == 0 && f->wait_completion && f->sent_res < 0)
			err = (int)f->sent_res;   /* the synchronous caller learns that it failed */
	} else {
		err = -EPIPE;
	}
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	return err;
}

/* True when the caller is not on r's worker (a pool thread): the call must be forwarded. */
static bool foreign(const struct pt_http_req *r)
{
	return r && r->sync_route && pt_worker_current() != r->worker;
}

int pt__sync_respond(pt_http_req_t *r, unsigned status, const char *reason,
		     const struct pt_http_header *headers, unsigned nheaders,
		     const struct pt_http_chunk *body, unsigned nbody, unsigned flags,
		     pt_http_send_fn cb, void *arg, bool *forwarded)
{
	if (!(*forwarded = foreign(r)))
		return 0;
	struct fwd f = { .kind = FWD_RESPOND, .r = r, .status = status, .reason = reason,
			 .headers = headers, .nheaders = nheaders, .body = body, .nbody = nbody,
			 .flags = flags, .cb = cb, .arg = arg };
	return fwd_call(&f);
}

int pt__sync_send_body(pt_http_req_t *r, const struct pt_http_chunk *body, unsigned nbody,
		       unsigned flags, pt_http_send_fn cb, void *arg, bool *forwarded)
{
	if (!(*forwarded = foreign(r)))
		return 0;
	struct fwd f = { .kind = FWD_BODY, .r = r, .body = body, .nbody = nbody, .flags = flags,
			 .cb = cb, .arg = arg };
	return fwd_call(&f);
}

int pt__sync_read_body(pt_http_req_t *r, pt_http_body_fn cb, void *arg, bool *forwarded)
{
	if (!(*forwarded = foreign(r)))
		return 0;
	struct fwd f = { .kind = FWD_READ, .r = r, .body_cb = cb, .arg = arg };
	return fwd_call(&f);
}
