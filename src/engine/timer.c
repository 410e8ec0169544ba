/*
 * Per-worker hashed timing wheel (Varghese & Lauck). A timer lives in slot expires % SLOTS;
 * deadlines beyond one revolution wait there for their round. Arm and cancel are O(1) list
 * operations; the worker's wait timeout is the distance to the next non-empty slot, found with
 * a bitmap, so an idle worker with armed timers wakes only when a slot is due.
 * Threads: a timer belongs to the worker it was armed on; only that thread touches it.
 *
 * The wheel links nodes (struct pt_timer_node_): a pt_timer_t's, or a connection's deadline,
 * which is a bare node (24 bytes instead of 40: issue 19) marked by PT_TN_CONN in expires_;
 * it calls pt__conn_timer.
 */
#include "engine/engine_int.h"
#include <errno.h>
#include <stddef.h>

typedef struct pt_timer_node_ tnode;

#define PT_TN_CONN (1ull << 63)

static inline uint64_t tick_of(const tnode *t)
{
	return t->expires_ & ~PT_TN_CONN;
}

static inline unsigned slot_of(uint64_t tick)
{
	return (unsigned)(tick % PT_WHEEL_SLOTS);
}

static void slot_link(struct pt_wheel *wh, tnode *t)
{
	unsigned s = slot_of(tick_of(t));

	t->prev_ = NULL;
	t->next_ = wh->slot[s];
	if (t->next_)
		t->next_->prev_ = t;
	wh->slot[s] = t;
	wh->bits[s / 64] |= 1ull << (s % 64);
}

static void slot_unlink(struct pt_wheel *wh, tnode *t)
{
	unsigned s = slot_of(tick_of(t));

	if (t->prev_)
		t->prev_->next_ = t->next_;
	else
		wh->slot[s] = t->next_;
	if (t->next_)
		t->next_->prev_ = t->prev_;
	if (!wh->slot[s])
		wh->bits[s / 64] &= ~(1ull << (s % 64));
	t->next_ = t->prev_ = NULL;
}

void pt__wheel_init(struct pt_wheel *wh, uint64_t now_ms)
{
	*wh = (struct pt_wheel){ 0 };
	wh->now = now_ms / PT_TICK_MS;
	wh->done = wh->now;
}

/* A timer is only touched on the thread of the worker it is armed on, so the wheel is found
 * through the thread's current worker instead of a pointer in every timer. */
static __thread struct pt_worker *cur_worker;

static bool slot_holds(const struct pt_wheel *wh, const tnode *t)
{
	for (const tnode *x = wh->slot[slot_of(tick_of(t))]; x; x = x->next_)
		if (x == t)
			return true;
	return false;
}

/* Re-initialising a timer that is armed on this thread's worker disarms it first: zeroing its
 * links while a wheel slot still points at it would corrupt the wheel (the worker then loops in
 * pt__wheel_run). Any other memory is taken as fresh, even garbage: it is only compared. */
PT_API void pt_timer_init(pt_timer_t *t, pt_timer_fn fn, void *arg)
{
	if (t->n_.expires_ && cur_worker && slot_holds(&cur_worker->wheel, &t->n_)) {
		slot_unlink(&cur_worker->wheel, &t->n_);
		cur_worker->wheel.armed--;
	}
	*t = (pt_timer_t){ .fn_ = fn, .arg_ = arg };
}

PT_API bool pt_timer_armed(const pt_timer_t *t)
{
	return t && t->n_.expires_ != 0;
}

void pt__timer_bind_thread(struct pt_worker *w)
{
	cur_worker = w;
}

struct pt_worker *pt__current_worker(void)
{
	return cur_worker;
}

/* Links node t to fire ms from now on w (mark: PT_TN_CONN or 0). */
static void node_arm(struct pt_worker *w, tnode *t, unsigned ms, uint64_t mark)
{
	if (t->expires_) {
		slot_unlink(&w->wheel, t);
		w->wheel.armed--;
	}
	w->wheel.armed++;
	/* from the current time, not the wheel's last run: the worker may have slept since */
	uint64_t ticks = (ms + PT_TICK_MS - 1) / PT_TICK_MS;
	t->expires_ = (w->now_ms / PT_TICK_MS + (ticks ? ticks : 1)) | mark;
	slot_link(&w->wheel, t);
}

static void node_cancel(struct pt_worker *w, tnode *t)
{
	if (!t->expires_ || !w)
		return;
	slot_unlink(&w->wheel, t);
	t->expires_ = 0;
	w->wheel.armed--;
}

PT_API int pt_timer_arm(pt_worker_t *w, pt_timer_t *t, unsigned ms)
{
	if (!w || !t || !t->fn_ || w != cur_worker)
		return -EINVAL;
	node_arm(w, &t->n_, ms, 0);
	return 0;
}

PT_API void pt_timer_cancel(pt_timer_t *t)
{
	if (t)
		node_cancel(cur_worker, &t->n_);
}

int pt__ctimer_arm(struct pt_conn *c, unsigned ms)
{
	if (c->w != cur_worker)
		return -EINVAL;
	node_arm(c->w, &c->timer, ms, PT_TN_CONN);
	return 0;
}

void pt__ctimer_cancel(struct pt_conn *c)
{
	node_cancel(c->w, &c->timer);
}

/* Restarting the scan after each callback keeps it safe against callbacks that arm or cancel
 * any timer, including neighbours in the same slot. */
static bool fire_one(struct pt_worker *w, unsigned s, uint64_t tick)
{
	for (tnode *t = w->wheel.slot[s]; t; t = t->next_) {
		if (tick_of(t) > tick)
			continue;
		bool conn = t->expires_ & PT_TN_CONN;
		slot_unlink(&w->wheel, t);
		t->expires_ = 0;
		w->wheel.armed--;
		if (conn) {
			pt__conn_timer((struct pt_conn *)((char *)t - offsetof(struct pt_conn, timer)));
		} else {
			pt_timer_t *pt = (pt_timer_t *)((char *)t - offsetof(pt_timer_t, n_));
			pt->fn_(pt, pt->arg_);
		}
		return true;
	}
	return false;
}

void pt__wheel_run(struct pt_worker *w)
{
	struct pt_wheel *wh = &w->wheel;

	wh->now = w->now_ms / PT_TICK_MS;
	if (wh->now - wh->done > PT_WHEEL_SLOTS)
		wh->done = wh->now - PT_WHEEL_SLOTS;
	while (wh->done < wh->now) {
		uint64_t tick = ++wh->done;
		unsigned s = slot_of(tick);

		if (!(wh->bits[s / 64] & (1ull << (s % 64))))
			continue;
		while (fire_one(w, s, wh->now))
			;
	}
}

int pt__wheel_timeout(struct pt_worker *w)
{
	struct pt_wheel *wh = &w->wheel;

	if (!wh->armed)
		return -1;
	for (uint64_t d = 1; d <= PT_WHEEL_SLOTS; d++) {
		unsigned s = slot_of(wh->now + d);
		uint64_t word = wh->bits[s / 64] >> (s % 64);

		if (!word) {            /* skip to the next bitmap word */
			d += 63 - (s % 64);
			continue;
		}
		d += (uint64_t)__builtin_ctzll(word);
		uint64_t due_ms = (wh->now + d) * PT_TICK_MS;
		return due_ms > w->now_ms ? (int)(due_ms - w->now_ms) : 0;
	}
	return PT_TICK_MS;
}
