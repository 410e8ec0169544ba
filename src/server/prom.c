/*
 * GET /metrics: the Prometheus text exposition format 0.0.4 of the engine's counters
 * (pt_counters) and the program's (metrics.h).
 *
 * Names follow the Prometheus conventions: one prefix (portico_, and the standard process_
 * names for what the process uses), base units (seconds, bytes) as suffixes, counters end in
 * _total, info metrics have the value 1. Labels are bounded: methods from the parser's
 * closed set, status classes, states and reasons from fixed lists, worker indices. Every
 * family has # HELP and # TYPE lines; a histogram's buckets are cumulative up to le="+Inf",
 * which equals its _count.
 */
#include "server/metrics.h"
#include "server/counter.h"
#include "server/zcache.h"

#ifndef PT_VERSION
#define PT_VERSION "unknown"
#endif

#define ULL(x) ((unsigned long long)(x))

static const char *const method_names[PT_METRICS_METHODS] = {
	[PT_HTTP_OTHER] = "other", [PT_HTTP_GET] = "GET", [PT_HTTP_HEAD] = "HEAD",
	[PT_HTTP_POST] = "POST", [PT_HTTP_PUT] = "PUT", [PT_HTTP_DELETE] = "DELETE",
	[PT_HTTP_CONNECT] = "CONNECT", [PT_HTTP_OPTIONS] = "OPTIONS", [PT_HTTP_TRACE] = "TRACE",
	[PT_HTTP_PATCH] = "PATCH",
};

/* # HELP and # TYPE of a family. */
static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample, labels "" or "{k=\"v\"}". */
static void sample(FILE *f, const char *name, const char *labels, uint64_t v)
{
	fprintf(f, "%s%s %llu\n", name, labels, ULL(v));
}

/* A family of one unlabelled sample. */
static void single(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
	family(f, name, type, help);
	sample(f, name, "", v);
}

/* A family with one label taking the values names[0..n) with the values v[0..n). */
static void labelled(FILE *f, const char *name, const char *type, const char *help,
		     const char *label, const char *const *names, const uint64_t *v, unsigned n)
{
	char l[96];

	family(f, name, type, help);
	for (unsigned i = 0; i < n; i++) {
		snprintf(l, sizeof l, "{%s=\"%s\"}", label, names[i]);
		sample(f, name, l, v[i]);
	}
}

/* Build, backend, start time, workers, drain state. */
static void info(FILE *f, const struct pt_metrics *m)
{
	char l[128];

	family(f, "portico_build_info", "gauge", "Version of the portico program (always 1).");
	snprintf(l, sizeof l, "{version=\"%s\"}", PT_VERSION);
	sample(f, "portico_build_info", l, 1);
	family(f, "portico_backend_info", "gauge",
	       "I/O backend in use, io_uring or epoll (always 1).");
	snprintf(l, sizeof l, "{backend=\"%s\"}", m->backend);
	sample(f, "portico_backend_info", l, 1);
	family(f, "process_start_time_seconds", "gauge", "Start time of the process (Unix time).");
	fprintf(f, "process_start_time_seconds %.3f\n", m->start_time);
	single(f, "portico_workers", "gauge", "Worker threads serving requests.", m->nworkers);
	single(f, "portico_draining", "gauge",
	       "1 while a SIGTERM drain runs (/healthz answers 503), else 0.",
	       atomic_load_explicit(m->draining, memory_order_relaxed));
}

/* portico_http_requests_total{method,code}: GET and HEAD always, other methods when seen. */
static void requests(FILE *f, const struct pt_metrics_sum *s)
{
	static const char *const cls[PT_METRICS_CLASSES] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
	char l[96];

	family(f, "portico_http_requests_total", "counter",
	       "Requests answered, by method and status class, counted when the response "
	       "has been sent.");
	for (unsigned i = 0; i < PT_METRICS_METHODS; i++) {
		uint64_t any = 0;
		for (unsigned c = 0; c < PT_METRICS_CLASSES; c++)
			any |= s->w.req[i][c];
		if (!any && i != PT_HTTP_GET && i != PT_HTTP_HEAD)
			continue;
		for (unsigned c = 0; c < PT_METRICS_CLASSES; c++) {
			snprintf(l, sizeof l, "{method=\"%s\",code=\"%s\"}", method_names[i], cls[c]);
			sample(f, "portico_http_requests_total", l, s->w.req[i][c]);
		}
	}
	single(f, "portico_http_requests_in_flight", "gauge",
	       "Requests handed to the handler whose response has not finished.", s->inflight);
	single(f, "portico_http_response_body_bytes_total", "counter",
	       "Body bytes of the responses answered (HEAD: none).", s->w.resp_bytes);
}

/* The duration histogram: cumulative buckets, +Inf, _sum (seconds), _count. */
static void duration(FILE *f, const struct pt_metrics_sum *s)
{
	const char *name = "portico_http_request_duration_seconds";
	uint64_t cum = 0;

	family(f, name, "histogram", "From the event-loop pass that received the request to the "
	       "one that saw its response's final send complete.");
	for (unsigned i = 0; i < PT_METRICS_BUCKETS; i++) {
		cum += s->w.dur[i];
		fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, pt_metrics_le[i], ULL(cum));
	}
	cum += s->w.dur[PT_METRICS_BUCKETS];
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, ULL(cum));
	fprintf(f, "%s_sum %.6f\n", name, (double)s->w.dur_sum_us / 1e6);
	fprintf(f, "%s_count %llu\n", name, ULL(cum));
}

/* The governor: connections by state, the limit, accepts, closes, sheds, pauses. */
static void connections(FILE *f, const struct pt_metrics *m, const struct pt_counters *e)
{
	static const char *const states[] = { "silent", "partial", "idle", "busy", "closing" };
	static const char *const reasons[] = { "silent", "partial", "idle" };
	const uint64_t st[] = { e->conns_silent, e->conns_partial, e->conns_idle, e->conns_busy,
				e->conns_closing };
	const uint64_t shed[] = { e->shed_silent, e->shed_partial, e->shed_idle };

	labelled(f, "portico_connections", "gauge", "Connections open, by state (silent: nothing "
		 "received yet; partial: part of a request or a handshake; idle: keep-alive; busy: "
		 "being served; closing).", "state", states, st, 5);
	single(f, "portico_connections_limit", "gauge",
	       "Connection limit (--max-conns, or 90% of the descriptor limit).",
	       pt_engine_max_conns(m->engine));
	single(f, "portico_connections_accepted_total", "counter", "Connections accepted.",
	       e->accepts);
	single(f, "portico_connections_closed_total", "counter", "Connections closed.", e->closes);
	labelled(f, "portico_connections_shed_total", "counter", "Connections closed to make "
		 "room at the connection or descriptor limit, by the state they were in.", "reason",
		 reasons, shed, 3);
	single(f, "portico_accept_pauses_total", "counter",
	       "Times accepting was paused (limit reached, or out of descriptors or memory).",
	       e->accept_paused);
	single(f, "portico_accept_errors_total", "counter",
	       "Accepts that failed for lack of descriptors or memory.", e->accept_errors);
	single(f, "portico_fd_reserve_used_total", "counter",
	       "Times the spare descriptor was given up to recover from EMFILE.",
	       e->fd_reserve_used);
}

/* Bytes through the sockets and the engine's trouble counters. */
static void traffic(FILE *f, const struct pt_counters *e)
{
	single(f, "portico_received_bytes_total", "counter",
	       "Bytes received on client connections (TLS: ciphertext).", e->bytes_in);
	single(f, "portico_sent_bytes_total", "counter",
	       "Bytes sent on client connections (TLS: ciphertext).", e->bytes_out);
	single(f, "portico_timeouts_total", "counter",
	       "Connection deadlines that passed (header, idle, body, send-rate, handshake).",
	       e->timeouts);
	single(f, "portico_send_refused_total", "counter",
	       "Sends refused because a connection's send queue was full.", e->send_refused);
	single(f, "portico_receive_buffers_starved_total", "counter",
	       "Receives that found no free receive buffer (io_uring).", e->buf_starved);
}

/* TLS handshakes by outcome and failures by reason ("other": the rest of tls_failed). */
static void tls(FILE *f, const struct pt_counters *e)
{
	static const char *const results[] = { "full", "resumed" };
	static const char *const reasons[] = { "protocol", "plaintext", "timeout", "shed", "other" };
	const uint64_t ok[] = { e->tls_handshakes, e->tls_resumed };
	uint64_t known = e->tls_fail_proto + e->tls_fail_plain + e->tls_fail_timeout +
			 e->tls_fail_shed;
	const uint64_t bad[] = { e->tls_fail_proto, e->tls_fail_plain, e->tls_fail_timeout,
				 e->tls_fail_shed, e->tls_failed > known ? e->tls_failed - known : 0 };

	labelled(f, "portico_tls_handshakes_total", "counter", "TLS handshakes completed, full "
		 "or resumed from a session ticket.", "result", results, ok, 2);
	labelled(f, "portico_tls_handshake_failures_total", "counter", "TLS handshakes that "
		 "failed, by reason.", "reason", reasons, bad, 5);
	single(f, "portico_tls_errors_total", "counter",
	       "Established TLS connections ended by a TLS error.", e->tls_errors);
	single(f, "portico_tls_ktls_connections_total", "counter",
	       "TLS connections whose sends went through kernel TLS.", e->tls_ktls);
}

/* PROXY protocol listeners (--proxy-protocol): headers taken, connections refused by reason. */
static void proxy(FILE *f, const struct pt_counters *e)
{
	static const char *const reasons[] = { "untrusted", "malformed", "timeout" };
	const uint64_t bad[] = { e->proxy_untrusted, e->proxy_bad, e->proxy_timeout };

	single(f, "portico_proxy_headers_total", "counter",
	       "PROXY protocol headers accepted (--proxy-protocol).", e->proxy_headers);
	labelled(f, "portico_proxy_rejected_total", "counter", "Connections closed before their "
		 "PROXY header was accepted: the source is not in --trusted-proxies, the header is "
		 "malformed (or the peer closed first), or it did not arrive within --header-timeout.",
		 "reason", reasons, bad, 3);
}

/* Requests the HTTP layer refused itself (bad or too large heads, no memory), by status. */
static void rejected(FILE *f, const struct pt_http_counters *h)
{
	char names[PT_HTTP_REJ__COUNT][12];
	const char *np[PT_HTTP_REJ__COUNT];

	for (unsigned i = 0; i < PT_HTTP_REJ__COUNT; i++) {
		unsigned st = pt_http_reject_status(i);
		if (st)
			snprintf(names[i], sizeof names[i], "%u", st % 1000);
		else
			snprintf(names[i], sizeof names[i], "other");
		np[i] = names[i];
	}
	labelled(f, "portico_http_requests_rejected_total", "counter", "Requests answered by the "
		 "HTTP layer itself (bad or too large head, no memory), never by a handler, by "
		 "status.", "code", np, h->rejected, PT_HTTP_REJ__COUNT);
}

/* HTTP/2 connections, streams, resets, GOAWAY frames, connections ended for misbehaving. */
static void http2(FILE *f, const struct pt_http_counters *h)
{
	static const char *const by[] = { "client", "server" };
	static const char *const dir[] = { "sent", "received" };
	static const char *const why[] = { "flood", "protocol_error" };
	const uint64_t rst[] = { h->h2_resets_recv, h->h2_resets_sent };
	const uint64_t ga[] = { h->h2_goaways_sent, h->h2_goaways_recv };
	const uint64_t bad[] = { h->h2_floods, h->h2_protocol_errors };

	single(f, "portico_http2_connections_total", "counter", "Connections that spoke HTTP/2.",
	       h->h2_conns);
	single(f, "portico_http2_streams_total", "counter", "HTTP/2 request streams opened.",
	       h->h2_streams);
	labelled(f, "portico_http2_stream_resets_total", "counter", "HTTP/2 streams reset "
		 "(RST_STREAM), by the side that reset them.", "by", by, rst, 2);
	labelled(f, "portico_http2_goaways_total", "counter", "HTTP/2 GOAWAY frames.",
		 "direction", dir, ga, 2);
	labelled(f, "portico_http2_connection_errors_total", "counter", "HTTP/2 connections "
		 "ended for the client's misbehaviour: floods (ENHANCE_YOUR_CALM, rapid reset) or "
		 "protocol errors.", "reason", why, bad, 2);
}

/* The open-file caches, the compressed copies, file bodies by content coding. */
static void caches(FILE *f, const struct pt_metrics *m, const struct pt_metrics_sum *s)
{
	static const char *const res[] = { "hit", "miss" };
	static const char *const enc[PT_MENC__COUNT] = { "identity", "br", "zstd", "gzip" };
	const uint64_t fc[] = { s->w.fcache.hits, s->w.fcache.misses };
	const uint64_t zc[] = { s->w.zcopy_hit, s->w.zcopy_miss };

	labelled(f, "portico_file_cache_lookups_total", "counter", "Open-file cache lookups: "
		 "hit (cached) or miss (the path was opened).", "result", res, fc, 2);
	single(f, "portico_file_cache_revalidations_total", "counter",
	       "Cache hits that checked the file again (its entry was older than the TTL).",
	       s->w.fcache.revalidations);
	single(f, "portico_file_cache_entries", "gauge", "Entries in the open-file caches.",
	       s->w.fcache.entries);
	single(f, "portico_file_cache_bytes", "gauge",
	       "Bytes of small files held in memory by the open-file caches.", s->w.fcache.bytes);
	labelled(f, "portico_compress_cache_lookups_total", "counter", "Compressed copies asked "
		 "for: hit (sent) or miss (queued for compression; identity sent).", "result", res,
		 zc, 2);
	single(f, "portico_compress_cache_bytes", "gauge", "Bytes of compressed copies held.",
	       m->zc ? pt_zcache_bytes(m->zc) : 0);
	single(f, "portico_response_cache_hits_total", "counter", "Responses sent again from the "
	       "response cache (--response-cache), without a file lookup.", s->http.cache_hits);
	labelled(f, "portico_http_responses_encoded_total", "counter", "File bodies sent, by "
		 "content coding.", "encoding", enc, s->w.encoded, PT_MENC__COUNT);
}

/* Per-worker series: requests, connections, bytes sent. */
static void workers(FILE *f, const struct pt_metrics *m)
{
	static const char *const names[3] = { "portico_worker_requests_total",
					      "portico_worker_connections",
					      "portico_worker_sent_bytes_total" };
	static const char *const types[3] = { "counter", "gauge", "counter" };
	static const char *const helps[3] = { "Requests answered by each worker.",
					      "Connections open on each worker.",
					      "Bytes sent by each worker." };

	for (unsigned k = 0; k < 3; k++) {
		family(f, names[k], types[k], helps[k]);
		for (unsigned i = 0; i < m->nworkers; i++) {
			struct pt_counters c = { 0 };
			char l[32];

			pt_engine_counters(m->engine, (int)i, &c);
			snprintf(l, sizeof l, "{worker=\"%u\"}", i);
			sample(f, names[k], l, k == 0 ? pt_metrics_worker_requests(m, i)
					      : k == 1 ? c.conns : c.bytes_out);
		}
	}
}

/* The standard process_* metrics and the admin listener's own counters. */
static void process(FILE *f, const struct pt_metrics *m)
{
	struct pt_metrics_proc p;

	pt_metrics_proc(&p);
	family(f, "process_cpu_seconds_total", "counter", "User and system CPU time, all threads.");
	fprintf(f, "process_cpu_seconds_total %.3f\n", p.cpu_seconds);
	single(f, "process_resident_memory_bytes", "gauge", "Resident memory.", p.rss_bytes);
	single(f, "process_open_fds", "gauge", "Descriptors open.", p.open_fds);
	single(f, "process_max_fds", "gauge", "Descriptor limit (RLIMIT_NOFILE).", p.max_fds);
	single(f, "portico_admin_requests_total", "counter", "Requests to the admin listener.",
	       pt_count_get(&m->admin_requests));
	single(f, "portico_admin_refused_total", "counter",
	       "Admin requests refused (403): source outside --admin-allow.",
	       pt_count_get(&m->admin_refused));
}

void pt_prom_render(const struct pt_metrics *m, FILE *f)
{
	struct pt_metrics_sum s;

	pt_metrics_sum(m, &s);
	info(f, m);
	requests(f, &s);
	duration(f, &s);
	connections(f, m, &s.e);
	traffic(f, &s.e);
	tls(f, &s.e);
	proxy(f, &s.e);
	rejected(f, &s.http);
	http2(f, &s.http);
	caches(f, m, &s);
	workers(f, m);
	process(f, m);
}
