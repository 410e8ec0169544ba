/*
 * Per-worker counters of the portico program (metrics.h, fcache.h): each is written by one
 * thread only, its owner, with a plain load and store (relaxed atomics: no locked
 * instruction, no fence, so an increment costs what ++ costs), and read by any thread (the
 * admin listener sums them when it is scraped). A reader sees every counter individually
 * consistent, not a transaction over several.
 */
#ifndef PT_SERVER_COUNTER_H
#define PT_SERVER_COUNTER_H

#include <stdint.h>

/* Adds n (which may be (uint64_t)-1 for a gauge going down) to *p. Owner thread only. */
static inline void pt_count(uint64_t *p, uint64_t n)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* Reads a counter another thread owns. Any thread. */
static inline uint64_t pt_count_get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

#endif
