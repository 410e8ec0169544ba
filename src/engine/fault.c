/*
 * The one fault hook (see engine.h, "fault simulation", and fault.h). The engine keeps only the
 * hook pointer and, per thread, what each of its own points last answered; the rules live with
 * whoever installs the hook (the test harness: tests/support/fault.c).
 */
#include "engine/fault.h"

#include <errno.h>
#include <stdatomic.h>

#ifdef PT_TESTING

static _Atomic(pt_fault_hook_fn) hook;
static __thread int last[PT_FAULT_USER];

PT_API int pt_fault_hook_set(pt_fault_hook_fn fn)
{
	atomic_store_explicit(&hook, fn, memory_order_release);
	return 0;
}

PT_API int pt_fault_sim(int point)
{
	pt_fault_hook_fn fn = atomic_load_explicit(&hook, memory_order_acquire);

	return fn ? fn(point) : 0;
}

int pt__fault(enum pt_fault_point p)
{
	int r = pt_fault_sim((int)p);

	if ((unsigned)p < PT_FAULT_USER)
		last[p] = r;
	return r;
}

int pt__fault_last(enum pt_fault_point p)
{
	return (unsigned)p < PT_FAULT_USER ? last[p] : 0;
}

#else

PT_API int pt_fault_hook_set(pt_fault_hook_fn fn)
{
	(void)fn;
	return -ENOTSUP;
}

PT_API int pt_fault_sim(int point)
{
	(void)point;
	return 0;
}

#endif
