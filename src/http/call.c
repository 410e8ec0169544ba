/*
 * Running a function on a worker from another thread, and waiting for it: how a thread that
 * is not a request's worker (a PT_ROUTE_SYNC pool thread, the owner of a kept request) makes
 * calls that must run there (request.c pt__req_run).
 *
 * The caller posts a completion to the worker (pt_post: no allocation, the node lives on the
 * caller's stack) and sleeps until the function has run there. The function may ask the
 * caller to wait for later completions too (pt__call_defer, then pt__call_done from a
 * callback on the worker): a send made without PT_HTTP_BUFFER must have completed before its
 * caller reuses its buffers (the synchronous model of HTTP.SYS). Nothing here knows what the
 * function does.
 *
 * The caller must make sure the worker runs the post: a request kept off the worker holds it
 * (pt_worker_hold) until it is released.
 */
#include "http/http_int.h"
#include <errno.h>

struct pt_call {
	pt_post_t post;
	pt_call_fn fn;
	void *arg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int result;                 /* fn's return value */
	int late;                   /* the first error a deferred completion reported */
	unsigned owed;              /* events the caller still waits for: fn, deferred completions */
};

/* One awaited event has happened: wake the caller when it was the last. */
static void settle(struct pt_call *k, int err)
{
	pthread_mutex_lock(&k->mu);
	if (err < 0 && !k->late)
		k->late = err;
	if (--k->owed == 0)
		pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);     /* the caller may free k from here on */
}

static void run(pt_worker_t *w, void *arg)
{
	struct pt_call *k = arg;

	k->result = k->fn(k, k->arg);
	settle(k, 0);
}

void pt__call_defer(struct pt_call *k)
{
	pthread_mutex_lock(&k->mu);
	k->owed++;
	pthread_mutex_unlock(&k->mu);
}

void pt__call_done(struct pt_call *k, int err)
{
	settle(k, err);
}

int pt__call(pt_worker_t *w, pt_call_fn fn, void *arg)
{
	struct pt_call k = { .fn = fn, .arg = arg, .owed = 1 };
	int err;

	pthread_mutex_init(&k.mu, NULL);
	pthread_cond_init(&k.cv, NULL);
	if (pt_post(w, &k.post, run, &k) == 0) {
		pthread_mutex_lock(&k.mu);
		while (k.owed)
			pthread_cond_wait(&k.cv, &k.mu);
		pthread_mutex_unlock(&k.mu);
		err = k.result ? k.result : k.late;
	} else {
		err = -EPIPE;                 /* the worker has exited: the connection is gone */
	}
	pthread_mutex_destroy(&k.mu);
	pthread_cond_destroy(&k.cv);
	return err;
}
