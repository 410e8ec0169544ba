/*
 * GET /status.json and GET /status (see metrics.h).
 *
 * The JSON document holds totals (counters since the start) and gauges; the page computes
 * rates from two polls a second apart, and latency percentiles from the difference of two
 * histograms, so the server keeps no history and no per-scrape state.
 *
 * The page is src/server/status.html, one self-contained document (inline CSS and script,
 * no external asset, no framework), built into the program as it is (.incbin below; the
 * Makefile makes status.o depend on it), so it can be edited and opened like any page.
 */
#include "server/metrics.h"
#include "server/counter.h"
#include "server/zcache.h"

#ifndef PT_VERSION
#define PT_VERSION "unknown"
#endif

#define ULL(x) ((unsigned long long)(x))

/* the assembler of PE (Windows) knows neither .previous nor .pushsection: there the page goes
 * in .rdata and the assembly returns to .text (top-level asm comes before any function) */
#ifdef _WIN32
#define RODATA ".section .rdata,\"dr\"\n"
#define RODATA_END ".text\n"
#else
#define RODATA ".section .rodata\n"
#define RODATA_END ".previous\n"
#endif
__asm__(RODATA
	".balign 16\n"
	"pt__status_html:\n"
	".incbin \"src/server/status.html\"\n"
	"pt__status_html_end:\n"
	".byte 0\n"
	RODATA_END);
extern const char pt__status_html[] __asm__("pt__status_html")
	__attribute__((visibility("hidden")));
extern const char pt__status_html_end[] __asm__("pt__status_html_end")
	__attribute__((visibility("hidden")));

const char *pt_status_page(size_t *len)
{
	*len = (size_t)(pt__status_html_end - pt__status_html);
	return pt__status_html;
}

/* "status": requests by status class, all methods together. */
static void classes(FILE *f, const struct pt_metrics_sum *s)
{
	uint64_t c[PT_METRICS_CLASSES] = { 0 };

	for (unsigned i = 0; i < PT_METRICS_METHODS; i++)
		for (unsigned k = 0; k < PT_METRICS_CLASSES; k++)
			c[k] += s->w.req[i][k];
	fprintf(f, "\"status\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu},",
		ULL(c[0]), ULL(c[1]), ULL(c[2]), ULL(c[3]), ULL(c[4]));
}

/* "connections" by state and the governor's counters. */
static void conns(FILE *f, const struct pt_metrics *m, const struct pt_counters *e)
{
	fprintf(f, "\"connections\":{\"open\":%llu,\"silent\":%llu,\"partial\":%llu,\"idle\":%llu,"
		"\"busy\":%llu,\"closing\":%llu,\"limit\":%u},\"accepted\":%llu,\"closed\":%llu,"
		"\"shed\":{\"silent\":%llu,\"partial\":%llu,\"idle\":%llu},\"accept_pauses\":%llu,"
		"\"accept_errors\":%llu,\"timeouts\":%llu,",
		ULL(e->conns), ULL(e->conns_silent), ULL(e->conns_partial), ULL(e->conns_idle),
		ULL(e->conns_busy), ULL(e->conns_closing), pt_engine_max_conns(m->engine),
		ULL(e->accepts), ULL(e->closes), ULL(e->shed_silent), ULL(e->shed_partial),
		ULL(e->shed_idle), ULL(e->accept_paused), ULL(e->accept_errors), ULL(e->timeouts));
}

/* "tls", "http2", "file_cache", "compress_cache". */
static void tls_h2_caches(FILE *f, const struct pt_metrics *m, const struct pt_metrics_sum *s)
{
	const struct pt_counters *e = &s->e;

	fprintf(f, "\"tls\":{\"full\":%llu,\"resumed\":%llu,\"failed\":%llu,\"errors\":%llu},"
		"\"http2\":{\"connections\":%llu,\"streams\":%llu,\"resets\":%llu,"
		"\"goaways\":%llu},"
		"\"file_cache\":{\"hits\":%llu,\"misses\":%llu,\"entries\":%llu,\"bytes\":%llu},"
		"\"compress_cache\":{\"hits\":%llu,\"misses\":%llu,\"bytes\":%llu},",
		ULL(e->tls_handshakes), ULL(e->tls_resumed), ULL(e->tls_failed), ULL(e->tls_errors),
		ULL(s->http.h2_conns), ULL(s->http.h2_streams),
		ULL(s->http.h2_resets_recv + s->http.h2_resets_sent), ULL(s->http.h2_goaways_sent), ULL(s->w.fcache.hits), ULL(s->w.fcache.misses),
		ULL(s->w.fcache.entries), ULL(s->w.fcache.bytes), ULL(s->w.zcopy_hit),
		ULL(s->w.zcopy_miss), ULL(m->zc ? pt_zcache_bytes(m->zc) : 0));
}

/* The duration histogram: bounds, cumulative counts (the last one is +Inf), sum. */
static void latency(FILE *f, const struct pt_metrics_sum *s)
{
	uint64_t cum = 0;

	fputs("\"latency\":{\"le\":[", f);
	for (unsigned i = 0; i < PT_METRICS_BUCKETS; i++)
		fprintf(f, "%s%g", i ? "," : "", pt_metrics_le[i]);
	fputs("],\"buckets\":[", f);
	for (unsigned i = 0; i <= PT_METRICS_BUCKETS; i++) {
		cum += s->w.dur[i];
		fprintf(f, "%s%llu", i ? "," : "", ULL(cum));
	}
	fprintf(f, "],\"sum\":%.6f},", (double)s->w.dur_sum_us / 1e6);
}

/* "per_worker": requests, connections and bytes sent of each worker. */
static void per_worker(FILE *f, const struct pt_metrics *m)
{
	fputs("\"per_worker\":[", f);
	for (unsigned i = 0; i < m->nworkers; i++) {
		struct pt_counters c = { 0 };

		pt_engine_counters(m->engine, (int)i, &c);
		fprintf(f, "%s{\"requests\":%llu,\"connections\":%llu,\"bytes_out\":%llu}", i ? "," : "",
			ULL(pt_metrics_worker_requests(m, i)), ULL(c.conns), ULL(c.bytes_out));
	}
	fputs("]", f);
}

void pt_status_json(const struct pt_metrics *m, FILE *f)
{
	struct pt_metrics_sum s;
	struct pt_metrics_proc p;

	pt_metrics_sum(m, &s);
	pt_metrics_proc(&p);
	fprintf(f, "{\"version\":\"%s\",\"backend\":\"%s\",\"workers\":%u,\"uptime\":%.3f,"
		"\"draining\":%s,\"requests\":%llu,\"inflight\":%llu,\"response_bytes\":%llu,"
		"\"bytes_in\":%llu,\"bytes_out\":%llu,", PT_VERSION, m->backend, m->nworkers,
		pt_metrics_uptime(m),
		atomic_load_explicit(m->draining, memory_order_relaxed) ? "true" : "false",
		ULL(s.requests), ULL(s.inflight), ULL(s.w.resp_bytes), ULL(s.e.bytes_in),
		ULL(s.e.bytes_out));
	classes(f, &s);
	conns(f, m, &s.e);
	tls_h2_caches(f, m, &s);
	latency(f, &s);
	fprintf(f, "\"process\":{\"cpu_seconds\":%.3f,\"rss_bytes\":%llu,\"open_fds\":%llu,"
		"\"max_fds\":%llu,\"start_time\":%.3f},", p.cpu_seconds, ULL(p.rss_bytes),
		ULL(p.open_fds), ULL(p.max_fds), m->start_time);
	per_worker(f, m);
	fputs("}\n", f);
}
