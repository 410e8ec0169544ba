/*
 * Engine lifecycle and the worker loop.
 *
 * A worker thread runs: timers due -> posted completions -> deferred connection work (flush
 * sends, run send callbacks, close) -> backend poll (submit + wait + dispatch completions), and
 * again. Deferred work is what keeps callbacks out of the calls that start operations, and it is
 * where queued sends of one batch are gathered into single kernel sends.
 */
#include "engine/engine_int.h"
#include "engine/tls_int.h"
#include "engine/plat.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pt__log(struct pt_engine *e, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (e && e->cfg.log)
		e->cfg.log(e->cfg.log_arg, level, msg);
	else
		fprintf(stderr, "portico: %s%s\n", level == 0 ? "error: " : level == 1 ? "warning: " : "", msg);
}

PT_API void pt_engine_config_init(struct pt_engine_config *cfg)
{
	if (cfg)
		memset(cfg, 0, sizeof *cfg);
}

static void config_defaults(struct pt_engine_config *c)
{
	if (!c->workers)
		c->workers = pt__cpu_count();
	if (!c->ring_entries)
		c->ring_entries = 1024;
	if (!c->recv_buf_size)
		c->recv_buf_size = 2048;   /* request heads are small; bodies span buffers */
	if (!c->recv_buf_count)
		c->recv_buf_count = 1024;
	if (!c->max_conns) {
		unsigned long lim = pt__fd_limit();
		c->max_conns = lim ? (unsigned)(lim * 9 / 10) : 1000;
	}
	if (!c->low_watermark_pct || c->low_watermark_pct > 100)
		c->low_watermark_pct = 90;
	if (!c->max_send_queue)
		c->max_send_queue = 4u << 20;
	if (!c->max_worker_buffered)
		c->max_worker_buffered = 64u << 20;
	if (!c->shutdown_ms)
		c->shutdown_ms = 5000;
	if (!c->stop_grace_ms)
		c->stop_grace_ms = 1000;
	if (!c->batch_wait_us)
		c->batch_wait_us = 50;
}

static int config_check(const struct pt_engine_config *c)
{
	if (c->workers > 1024 || c->ring_entries > 32768 || c->recv_buf_count > 32768 ||
	    (c->recv_buf_count & (c->recv_buf_count - 1)) || c->recv_buf_size < 64 ||
	    c->recv_buf_size > (1u << 20) || c->backend > PT_BACKEND_IOCP ||
	    c->full_policy > PT_FULL_PAUSE || c->conn_area > 4096 ||
	    c->batch_wait > c->ring_entries || c->batch_wait_us > 1000000)
		return -EINVAL;
	return 0;
}

PT_API pt_engine_t *pt_engine_create(const struct pt_engine_config *cfg, int *err)
{
	int dummy, rc;
	struct pt_engine *e;

	err = err ? err : &dummy;
	if (!(e = calloc(1, sizeof *e))) {
		*err = -ENOMEM;
		return NULL;
	}
	if (cfg)
		e->cfg = *cfg;
	config_defaults(&e->cfg);
	if ((rc = config_check(&e->cfg)) < 0 || (rc = pt__backend_choose(e)) < 0)
		goto fail;
	e->nworkers = e->cfg.workers;
	if (!(e->workers = calloc(e->nworkers, sizeof *e->workers))) {
		rc = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < e->nworkers; i++) {
		e->workers[i].e = e;
		e->workers[i].index = i;
		e->workers[i].be = e->be;
		e->workers[i].wake_fd = -1;
		atomic_init(&e->workers[i].msg_fd, -1);
		e->workers[i].reserve_fd = -1;
	}
	pthread_mutex_init(&e->start_lock, NULL);
	pthread_cond_init(&e->start_cond, NULL);
	*err = 0;
	return e;
fail:
	free(e);
	*err = rc;
	return NULL;
}

/* ---- the worker ---- */

static void run_pending(struct pt_worker *w)
{
	struct pt_conn *c;

	while ((c = w->pend_head)) {
		w->pend_head = pt__cderef(w, c->pend_next);
		if (!w->pend_head)
			w->pend_tail = NULL;
		c->pend_next = 0;
		c->flags &= ~PT_C_PENDING;
		pt__conn_process(c);
	}
}

void pt__pending(struct pt_conn *c)
{
	struct pt_worker *w = c->w;

	if (c->flags & PT_C_PENDING)
		return;
	c->flags |= PT_C_PENDING;
	c->pend_next = 0;
	if (w->pend_tail)
		w->pend_tail->pend_next = pt__cref(c);
	else
		w->pend_head = c;
	w->pend_tail = c;
}

/* Housekeeping, once a second: after a burst, give memory back. When fewer connections than a
 * quarter block arrived in the last second, wholly free connection blocks go; when no send or
 * receive completed, the lookaside lists empty; then malloc_trim returns the freed pages (and
 * whatever the layers above freed in this thread's arena) to the kernel. Under load nothing is
 * freed: the free lists exist so that the hot path never allocates. */
#define HOUSEKEEP_MS 1000u

static void housekeep(pt_timer_t *t, void *arg)
{
	struct pt_worker *w = arg;
	uint64_t accepts = w->cnt.accepts, ops = w->cnt.sends + w->cnt.recvs;
	bool freed = false;

	if (accepts - w->trim_accepts < PT_CONN_BLOCK / 4)
		freed = pt__conns_trim(w) > 0;
	if (ops == w->trim_ops && (w->sreq_free || w->txop_free || w->txq_free)) {
		pt__sreq_pool_free(w);
		freed = true;
	}
	if (freed)
		pt__mem_trim();
	w->trim_accepts = accepts;
	w->trim_ops = ops;
	pt_timer_arm(w, t, HOUSEKEEP_MS);
}

static void stop_abort(pt_timer_t *t, void *arg)
{
	struct pt_worker *w = arg;

	w->stop_abort = true;
	pt__conn_close_all(w, PT_CLOSE_ABORT);
}

static void stop_on_worker(pt_worker_t *w, void *arg)
{
	w->stopping = true;
	pt__accept_set(w, false);
	pt_timer_cancel(&w->accept_timer);
	pt__stop_conns(w);
	pt_timer_init(&w->stop_timer, stop_abort, w);
	pt_timer_arm(w, &w->stop_timer, w->e->cfg.shutdown_ms);
}

static bool worker_done(struct pt_worker *w)
{
	if (!w->stopping || w->nconns || w->pend_head || pt__posts_waiting(w) ||
	    atomic_load_explicit(&w->holds, memory_order_acquire))
		return false;
	for (unsigned i = 0; i < w->nwl; i++)
		if (w->wl[i].armed)
			return false;
	return true;
}

static int worker_setup(struct pt_worker *w)
{
	struct pt_engine *e = w->e;

	pt__worker_clock(w);
	pt__wheel_init(&w->wheel, w->now_ms);
	if (!(w->wl = calloc(e->nlisteners ? e->nlisteners : 1, sizeof *w->wl)))
		return -ENOMEM;
	w->nwl = e->nlisteners;
	for (unsigned i = 0; i < w->nwl; i++) {
		struct pt_listener *l = e->listeners[i];
		w->wl[i].l = l;
		w->wl[i].fd = l->shared_fd >= 0 ? l->shared_fd : l->fds[w->index];
	}
	return w->be->worker_init(w);
}

static void worker_report(struct pt_worker *w, int err)
{
	struct pt_engine *e = w->e;

	pthread_mutex_lock(&e->start_lock);
	w->start_err = err;
	e->started_workers++;
	pthread_cond_broadcast(&e->start_cond);
	pthread_mutex_unlock(&e->start_lock);
}

static void *worker_main(void *arg)
{
	struct pt_worker *w = arg;
	int err;

	pt__timer_bind_thread(w);
	if ((err = worker_setup(w)) < 0) {
		free(w->wl);
		w->wl = NULL;
		worker_report(w, err);
		pt__timer_bind_thread(NULL);
		return NULL;
	}
	pt__fd_reserve(w);
	pt__accept_set(w, true);
	pt_timer_init(&w->trim_timer, housekeep, w);
	pt_timer_arm(w, &w->trim_timer, HOUSEKEEP_MS);
	worker_report(w, 0);
	for (;;) {
		pt__worker_clock(w);
		pt__wheel_run(w);
		pt__posts_run(w);
		run_pending(w);
		if (w->stopping && atomic_load(&w->e->final_stop))
			pt__listeners_close_stopped(w);
		if (worker_done(w))
			break;
		int timeout = (w->pend_head || pt__posts_waiting(w)) ? 0 : pt__wheel_timeout(w);
		if ((err = w->be->poll(w, timeout)) < 0 && err != -EINTR && err != -ETIME) {
			pt__log(w->e, 0, "worker %u: %s poll failed: %s", w->index, w->be->name,
				strerror(-err));
			break;
		}
	}
	atomic_store_explicit(&w->exited, true, memory_order_release);
	pt__posts_run(w);             /* posts that raced with the exit decision */
	pt__conns_free(w);
	pt__tls_worker_free(w);
	if (w->reserve_fd >= 0)
		pt__fd_close(w->reserve_fd);
	w->be->worker_fini(w);
	pt__sreq_pool_free(w);
	free(w->wl);
	w->wl = NULL;
	pt__timer_bind_thread(NULL);
	return NULL;
}

static void join_workers(struct pt_engine *e, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		pthread_join(e->workers[i].thread, NULL);
}

static void post_stop(struct pt_engine *e, unsigned n)
{
	atomic_store_explicit(&e->stopping, true, memory_order_release);
	for (unsigned i = 0; i < n; i++)
		if (e->workers[i].start_err == 0)
			pt_post(&e->workers[i], &e->workers[i].stop_post, stop_on_worker, NULL);
}

static int start_workers(struct pt_engine *e)
{
	unsigned i;
	int err = 0;

	e->started_workers = 0;
	for (i = 0; i < e->nworkers; i++) {
		if ((err = -pthread_create(&e->workers[i].thread, NULL, worker_main, &e->workers[i])))
			break;
	}
	pthread_mutex_lock(&e->start_lock);
	while (e->started_workers < i)
		pthread_cond_wait(&e->start_cond, &e->start_lock);
	pthread_mutex_unlock(&e->start_lock);
	for (unsigned k = 0; k < i && !err; k++)
		err = e->workers[k].start_err;
	if (err) {
		pt__log(e, 0, "cannot start the %s workers: %s", e->be->name, strerror(-err));
		post_stop(e, i);
		join_workers(e, i);
		atomic_store(&e->stopping, false);
	}
	return err;
}

PT_API int pt_engine_start(pt_engine_t *e)
{
	if (!e || e->started)
		return -EINVAL;
	e->started = true;
	int err = start_workers(e);
	const struct pt_backend *fb = err ? pt__backend_fallback(e, err) : NULL;
	if (fb) {
		e->be = fb;
		for (unsigned i = 0; i < e->nworkers; i++) {
			e->workers[i].be = e->be;
			e->workers[i].start_err = 0;
			e->workers[i].cnt = (struct pt_counters){ 0 };
		}
		err = start_workers(e);
	}
	if (err)
		e->stopped = true;
	return err;
}

PT_API int pt_engine_stop_begin(pt_engine_t *e)
{
	if (!e)
		return -EINVAL;
	if (!e->started || e->stopped)
		return 0;
	atomic_store(&e->final_stop, true);
	if (!atomic_exchange(&e->stop_begun, true))
		post_stop(e, e->nworkers);
	return 0;
}

PT_API int pt_engine_stop(pt_engine_t *e)
{
	if (!e)
		return -EINVAL;
	if (!e->started || e->stopped)
		return 0;
	if (pt__current_worker() && pt__current_worker()->e == e)
		return -EDEADLK;
	pt_engine_stop_begin(e);
	join_workers(e, e->nworkers);
	e->stopped = true;
	return 0;
}

PT_API void pt_engine_destroy(pt_engine_t *e)
{
	if (!e)
		return;
	pt_engine_stop(e);
	pt__listeners_free(e);
	for (unsigned i = 0; i < e->nworkers; i++)
		if (e->workers[i].wake_fd >= 0)
			pt__fd_close(e->workers[i].wake_fd);
	pthread_mutex_destroy(&e->start_lock);
	pthread_cond_destroy(&e->start_cond);
	free(e->workers);
	free(e);
}

PT_API unsigned pt_engine_workers(const pt_engine_t *e)
{
	return e ? e->nworkers : 0;
}

PT_API pt_worker_t *pt_engine_worker(pt_engine_t *e, unsigned i)
{
	return e && i < e->nworkers ? &e->workers[i] : NULL;
}

PT_API uint64_t pt_worker_now_ms(const pt_worker_t *w)
{
	return w ? w->now_ms : pt__now_ms();
}

PT_API uint64_t pt_worker_now_us(const pt_worker_t *w)
{
	return w ? w->now_us : pt__now_us();
}

PT_API unsigned pt_worker_index(const pt_worker_t *w)
{
	return w ? w->index : 0;
}

PT_API pt_worker_t *pt_worker_current(void)
{
	return pt__current_worker();
}

PT_API pt_engine_t *pt_worker_engine(const pt_worker_t *w)
{
	return w ? w->e : NULL;
}

PT_API const char *pt_engine_backend(const pt_engine_t *e)
{
	return e ? e->be->name : NULL;
}

PT_API void pt_engine_set_user(pt_engine_t *e, void *user)
{
	if (e)
		e->user = user;
}

PT_API void *pt_engine_user(const pt_engine_t *e)
{
	return e ? e->user : NULL;
}

static void counters_add(struct pt_counters *out, const struct pt_counters *in)
{
	const uint64_t *src = (const uint64_t *)in;
	uint64_t *dst = (uint64_t *)out;

	for (size_t k = 0; k < sizeof *in / sizeof(uint64_t); k++)
		dst[k] += __atomic_load_n(&src[k], __ATOMIC_RELAXED);
}

PT_API unsigned pt_engine_max_conns(const pt_engine_t *e)
{
	return e ? e->cfg.max_conns : 0;
}

PT_API int pt_engine_counters(const pt_engine_t *e, int i, struct pt_counters *out)
{
	if (!e || !out || i < -1 || (i >= 0 && (unsigned)i >= e->nworkers))
		return -EINVAL;
	memset(out, 0, sizeof *out);
	for (unsigned k = 0; k < e->nworkers; k++)
		if (i < 0 || (unsigned)i == k)
			counters_add(out, &e->workers[k].cnt);
	return 0;
}
