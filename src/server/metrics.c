/*
 * The portico program's counters (see metrics.h): per-worker blocks, their sums, and what
 * the process uses. Writers are the workers, each on its own block; readers are the admin
 * listener's thread (the scrape) and SIGUSR1.
 */
#include "server/metrics.h"
#include "server/counter.h"
#include "server/encoding.h"
#include "util/util.h"
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

const double pt_metrics_le[PT_METRICS_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

const uint64_t pt_metrics_le_us[PT_METRICS_BUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000,
	50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

struct pt_metrics *pt_metrics_new(unsigned workers)
{
	struct pt_metrics *m = calloc(1, sizeof *m);
	struct timespec ts;

	if (!m)
		return NULL;
	m->w = pt__aligned_alloc(64, workers * sizeof *m->w);
	if (!m->w) {
		free(m);
		return NULL;
	}
	memset(m->w, 0, workers * sizeof *m->w);
	m->nworkers = workers;
	clock_gettime(CLOCK_REALTIME, &ts);
	m->start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	m->start_us = pt__now_us();
	m->backend = "";
	return m;
}

void pt_metrics_free(struct pt_metrics *m)
{
	if (!m)
		return;
	pt__aligned_free(m->w);
	free(m);
}

/* The bucket of a duration: the first bound it does not exceed, or +Inf. */
static unsigned bucket(uint64_t us)
{
	unsigned i = 0;

	while (i < PT_METRICS_BUCKETS && us > pt_metrics_le_us[i])
		i++;
	return i;
}

void pt_metrics_finish(struct pt_wmetrics *wm, unsigned method, unsigned status,
		       uint64_t bytes, uint64_t us)
{
	unsigned cls = status < 100 ? 0 : status >= 600 ? 4 : status / 100 - 1;

	if (method >= PT_METRICS_METHODS)
		method = PT_HTTP_OTHER;
	pt_count(&wm->req[method][cls], 1);
	pt_count(&wm->resp_bytes, bytes);
	pt_count(&wm->dur[bucket(us)], 1);
	pt_count(&wm->dur_sum_us, us);
	pt_count(&wm->done, 1);
}

void pt_metrics_encoding(struct pt_wmetrics *wm, unsigned enc)
{
	unsigned i = enc == PT_ENC_BR ? PT_MENC_BR : enc == PT_ENC_ZSTD ? PT_MENC_ZSTD
		   : enc == PT_ENC_GZIP ? PT_MENC_GZIP : PT_MENC_IDENTITY;

	pt_count(&wm->encoded[i], 1);
}

/* ---- sums ---- */

/* Adds every counter of a worker block to out (both are arrays of uint64_t). */
static void add_block(struct pt_wmetrics *out, const struct pt_wmetrics *in)
{
	const uint64_t *src = (const uint64_t *)in;
	uint64_t *dst = (uint64_t *)out;

	for (size_t k = 0; k < sizeof *in / sizeof(uint64_t); k++)
		dst[k] += pt_count_get(&src[k]);
}

uint64_t pt_metrics_worker_requests(const struct pt_metrics *m, unsigned w)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < PT_METRICS_METHODS; i++)
		for (unsigned c = 0; c < PT_METRICS_CLASSES; c++)
			n += pt_count_get(&m->w[w].req[i][c]);
	return n;
}

void pt_metrics_sum(const struct pt_metrics *m, struct pt_metrics_sum *out)
{
	memset(out, 0, sizeof *out);
	for (unsigned i = 0; i < m->nworkers; i++)
		add_block(&out->w, &m->w[i]);
	if (m->engine)
		pt_engine_counters(m->engine, -1, &out->e);
	if (m->http)
		pt_http_server_counters(m->http, -1, &out->http);
	for (unsigned i = 0; i < PT_METRICS_METHODS; i++)
		for (unsigned c = 0; c < PT_METRICS_CLASSES; c++)
			out->requests += out->w.req[i][c];
	out->inflight = out->w.started > out->w.done ? out->w.started - out->w.done : 0;
}

double pt_metrics_uptime(const struct pt_metrics *m)
{
	return (double)(pt__now_us() - m->start_us) / 1e6;
}

/* ---- the process ---- */

/* Descriptors open now: the entries of /proc/self/fd, less the one reading it. */
static uint64_t count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	uint64_t n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n ? n - 1 : 0;                 /* not the directory's own descriptor */
}

/* Resident memory, from /proc/self/statm (pages). */
static uint64_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	unsigned long long size = 0, rss = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &rss) != 2)
		rss = 0;
	fclose(f);
	return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

void pt_metrics_proc(struct pt_metrics_proc *p)
{
	struct rusage ru;
	struct rlimit rl;

	memset(p, 0, sizeof *p);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		p->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
				 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	p->rss_bytes = rss_bytes();
	p->open_fds = count_fds();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		p->max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : (uint64_t)rl.rlim_cur;
}
