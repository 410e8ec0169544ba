/*
 * Latency histogram, HdrHistogram-style: log-linear buckets. Values (microseconds) in
 * [2^k, 2^(k+1)) fall into one of HIST_SUB linear sub-buckets, so every recorded value is
 * known to within 1/HIST_SUB (< 0.8 %) of itself; values below HIST_SUB are exact. Recording is
 * O(1) with no allocation. One histogram per worker, merged at the end.
 * Threads: a histogram belongs to one thread; merging is done after the workers stopped.
 */
#ifndef PT_LOAD_HIST_H
#define PT_LOAD_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7u
#define HIST_SUB (1u << HIST_SUB_BITS)                /* 128 sub-buckets per power of two */
#define HIST_TOP 40u                                  /* up to 2^40 us (12.7 days) */
#define HIST_BUCKETS ((HIST_TOP - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t count, sum, min, max;
	uint64_t b[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t us);
void hist_merge(struct hist *into, const struct hist *from);
/* The value at percentile p (0..100): the upper edge of the bucket holding it, capped by max. */
uint64_t hist_percentile(const struct hist *h, double p);
double hist_mean(const struct hist *h);

#endif
