/* Log-linear latency histogram (see hist.h). */
#include "hist.h"
#include <string.h>

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof *h);
	h->min = UINT64_MAX;
}

/* Bucket of v: values below HIST_SUB map to themselves; above, the power of two picks a group
 * of HIST_SUB buckets and the next HIST_SUB_BITS bits below the top one pick the bucket. */
static unsigned bucket_of(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned k = 63u - (unsigned)__builtin_clzll(v);          /* v in [2^k, 2^(k+1)) */
	if (k > HIST_TOP)
		return HIST_BUCKETS - 1;
	unsigned sub = (unsigned)(v >> (k - HIST_SUB_BITS)) & (HIST_SUB - 1);
	return (k - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

/* The largest value that falls into bucket i. */
static uint64_t bucket_top(unsigned i)
{
	if (i < HIST_SUB)
		return i;
	unsigned g = i / HIST_SUB, sub = i % HIST_SUB, k = g + HIST_SUB_BITS - 1;
	uint64_t lo = ((uint64_t)HIST_SUB + sub) << (k - HIST_SUB_BITS);
	return lo + ((uint64_t)1 << (k - HIST_SUB_BITS)) - 1;
}

void hist_record(struct hist *h, uint64_t us)
{
	h->b[bucket_of(us)]++;
	h->count++;
	h->sum += us;
	if (us < h->min)
		h->min = us;
	if (us > h->max)
		h->max = us;
}

void hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->b[i] += from->b[i];
	into->count += from->count;
	into->sum += from->sum;
	if (from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	if (!h->count)
		return 0;
	uint64_t want = (uint64_t)(p / 100.0 * (double)h->count + 0.5), seen = 0;
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t v = bucket_top(i);
			return v > h->max ? h->max : v < h->min ? h->min : v;
		}
	}
	return h->max;
}

double hist_mean(const struct hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}
