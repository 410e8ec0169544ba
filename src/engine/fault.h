/*
 * The engine's fault points (test builds only): its system calls, io_uring results and
 * allocations ask pt__fault() first, which asks the one hook (pt_fault_sim, engine.h). What
 * fails is the policy of whoever installed the hook: the test harness (tests/support/fault.c,
 * PORTICO_FAULTS), not the engine.
 *
 * Compiled in when PT_TESTING is defined (the sanitizer build, SAN=1). In release builds every
 * function here is an inline constant and the wrappers are plain malloc/calloc/realloc: zero
 * cost. docs/ENGINE.md ("Fault injection") describes the points.
 *
 * The rule of a point: it asks once per real operation, at the place where the kernel (or
 * malloc) would report the error, and when told to fail it behaves exactly as if the kernel had
 * returned that error, releasing whatever the real call produced (an accepted descriptor, a
 * received buffer).
 */
#ifndef PT_ENGINE_FAULT_H
#define PT_ENGINE_FAULT_H

#include <portico/engine.h>
#include <stdlib.h>

#ifdef PT_TESTING

/* 0: go ahead; else the negative errno to inject (the hook's answer). Any thread. */
int pt__fault(enum pt_fault_point p);
/* What this thread's last pt__fault(p) returned (the epoll backend uses it to tell an injected
 * EAGAIN, after which no readiness edge would come, from a real one). */
int pt__fault_last(enum pt_fault_point p);

#else

static inline int pt__fault(enum pt_fault_point p)
{
	(void)p;
	return 0;
}

static inline int pt__fault_last(enum pt_fault_point p)
{
	(void)p;
	return 0;
}

#endif

/* malloc, calloc and realloc that PT_FAULT_ALLOC can fail (plain calls in release builds). */
static inline void *pt__malloc(size_t n)
{
	return pt__fault(PT_FAULT_ALLOC) ? NULL : malloc(n);
}

static inline void *pt__calloc(size_t n, size_t size)
{
	return pt__fault(PT_FAULT_ALLOC) ? NULL : calloc(n, size);
}

static inline void *pt__realloc(void *p, size_t n)
{
	return pt__fault(PT_FAULT_ALLOC) ? NULL : realloc(p, n);
}

#endif
