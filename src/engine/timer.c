/*
 * Per-worker hashed timing wheel (Varghese & Lauck). A timer lives in slot expires % SLOTS;
 * deadlines beyond one revolution wait there for their round. Arm and cancel are O(1) list
 * operations; the worker's wait timeout is the distance to the next non-empty slot, found with
 * a bitmap, so an idle worker with armed timers wakes only when a slot is due.
 * Threads: a timer belongs to the worker it was armed on; only that thread touches it.
 */
#include "engine/engine_int.h"
#include <errno.h>

static inline unsigned slot_of(uint64_t tick)
{
	return (unsigned)(tick % PT_WHEEL_SLOTS);
}

static void slot_link(struct pt_wheel *wh, pt_timer_t *t)
{
	unsigned s = slot_of(t->expires_);

	t->prev_ = NULL;
	t->next_ = wh->slot[s];
	if (t->next_)
		t->next_->prev_ = t;
	wh->slot[s] = t;
	wh->bits[s / 64] |= 1ull << (s % 64);
}

static void slot_unlink(struct pt_wheel *wh, pt_timer_t *t)
{
	unsigned s = slot_of(t->expires_);

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

static bool slot_holds(const struct pt_wheel *wh, const pt_timer_t *t)
{
	for (const pt_timer_t *x = wh->slot[slot_of(t->expires_)]; x; x = x->next_)
		if (x == t)
			return true;
	return false;
}

/* Re-initialising a timer that is armed on this thread's worker disarms it first: zeroing its
 * links while a wheel slot still points at it would corrupt the wheel (the worker then loops in
 * pt__wheel_run). Any other memory is taken as fresh, even garbage: it is only compared. */
PT_API void pt_timer_init(pt_timer_t *t, pt_timer_fn fn, void *arg)
{
	if (t->expires_ && cur_worker && slot_holds(&cur_worker->wheel, t)) {
		slot_unlink(&cur_worker->wheel, t);
		cur_worker->wheel.armed--;
	}
	*t = (pt_timer_t){ .fn_ = fn, .arg_ = arg };
}

PT_API bool pt_timer_armed(const pt_timer_t *t)
{
	return t && t->expires_ != 0;
}

void pt__timer_bind_thread(struct pt_worker *w)
{
	cur_worker = w;
}

struct pt_worker *pt__current_worker(void)
{
	return cur_worker;
}

PT_API int pt_timer_arm(pt_worker_t *w, pt_timer_t *t, unsigned ms)
{
	if (!w || !t || !t->fn_ || w != cur_worker)
		return -EINVAL;
	if (t->expires_)
		pt_timer_cancel(t);
	w->wheel.armed++;
	/* from the current time, not the wheel's last run: the worker may have slept since */
	uint64_t ticks = (ms + PT_TICK_MS - 1) / PT_TICK_MS;
	t->expires_ = w->now_ms / PT_TICK_MS + (ticks ? ticks : 1);
	slot_link(&w->wheel, t);
	return 0;
}

PT_API void pt_timer_cancel(pt_timer_t *t)
{
	if (!t || !t->expires_ || !cur_worker)
		return;
	slot_unlink(&cur_worker->wheel, t);
	t->expires_ = 0;
	cur_worker->wheel.armed--;
}

/* Restarting the scan after each callback keeps it safe against callbacks that arm or cancel
 * any timer, including neighbours in the same slot. */
static bool fire_one(struct pt_worker *w, unsigned s, uint64_t tick)
{
	for (pt_timer_t *t = w->wheel.slot[s]; t; t = t->next_) {
		if (t->expires_ > tick)
			continue;
		slot_unlink(&w->wheel, t);
		t->expires_ = 0;
		w->wheel.armed--;
		t->fn_(t, t->arg_);
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
