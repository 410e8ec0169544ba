/*
 * Posting completions to a worker from any thread (PostQueuedCompletionStatus).
 * Each worker has a lock-free LIFO of caller-owned nodes (Treiber stack): producers push with a
 * CAS, the worker takes the whole stack with one exchange and reverses it, so posts run in the
 * order they were made. A wake flag coalesces wake-ups: a burst of posts costs one eventfd
 * write (or none when the worker is awake anyway).
 */
#include "engine/engine_int.h"
#include <errno.h>

PT_API int pt_post(pt_worker_t *w, pt_post_t *node, pt_post_fn fn, void *arg)
{
	if (!w || !node || !fn)
		return -EINVAL;
	if (atomic_load_explicit(&w->exited, memory_order_acquire))
		return -ESHUTDOWN;
	node->fn_ = fn;
	node->arg_ = arg;
	pt_post_t *head = atomic_load_explicit(&w->posts, memory_order_relaxed);
	do
		node->next_ = head;
	while (!atomic_compare_exchange_weak_explicit(&w->posts, &head, node, memory_order_release,
						      memory_order_relaxed));
	struct pt_worker *self = pt__current_worker();
	if (self != w && atomic_exchange_explicit(&w->wake_pending, 1, memory_order_acq_rel) == 0) {
		if (self && self->e == w->e && w->be->wake_from &&
		    !atomic_load_explicit(&self->exited, memory_order_acquire))
			w->be->wake_from(self, w);   /* between rings: MSG_RING */
		else
			w->be->wake(w);              /* foreign thread: eventfd */
	}
	return 0;
}

PT_API int pt_worker_hold(pt_worker_t *w)
{
	if (!w)
		return -EINVAL;
	atomic_fetch_add_explicit(&w->holds, 1, memory_order_acq_rel);
	if (atomic_load_explicit(&w->exited, memory_order_acquire)) {
		atomic_fetch_sub_explicit(&w->holds, 1, memory_order_acq_rel);
		return -ESHUTDOWN;
	}
	return 0;
}

PT_API void pt_worker_release(pt_worker_t *w)
{
	if (w && atomic_fetch_sub_explicit(&w->holds, 1, memory_order_acq_rel) == 1 &&
	    atomic_exchange_explicit(&w->wake_pending, 1, memory_order_acq_rel) == 0)
		w->be->wake(w);               /* a stopping worker may be waiting for this */
}

bool pt__posts_waiting(struct pt_worker *w)
{
	return atomic_load_explicit(&w->posts, memory_order_acquire) != NULL;
}

void pt__posts_run(struct pt_worker *w)
{
	atomic_store_explicit(&w->wake_pending, 0, memory_order_release);
	pt_post_t *list = atomic_exchange_explicit(&w->posts, NULL, memory_order_acquire);
	pt_post_t *fifo = NULL;

	while (list) {
		pt_post_t *next = list->next_;
		list->next_ = fifo;
		fifo = list;
		list = next;
	}
	while (fifo) {
		pt_post_t *next = fifo->next_;
		CNT_ADD(w, posts, 1);
		fifo->fn_(w, fifo->arg_);   /* the node may be reused from here on */
		fifo = next;
	}
}
