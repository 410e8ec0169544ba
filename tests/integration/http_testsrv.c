/*
 * http_testsrv: an HTTP server with one route per feature of the HTTP layer, driven by
 * tests/integration/http_api.py. Timeouts are short so the timeout tests run fast.
 *
 *   http_testsrv FILE     (FILE is served by /file; prints "listening on 127.0.0.1:PORT")
 *
 * Environment: PT_TLS=1 with PT_TLS_CERT and PT_TLS_KEY: the listener is HTTPS and offers
 * ALPN "h2,http/1.1" (HTTP/2 when the client asks for it); PT_H2C=1: the plaintext listener
 * also takes HTTP/2 with prior knowledge (cfg.h2c). tests/integration/h2.py uses both.
 *
 * Routes:
 *   /hello            13-byte body                   /status?N   status N, empty body
 *   /echo-body        reads the body, answers its length and a checksum
 *   /ignore-body      answers without reading the body
 *   /async            answers 50 ms later from a timer (pipelined requests wait)
 *   /stream           3 pieces with MORE (chunked on 1.1, close-delimited on 1.0)
 *   /stream-cl        3 pieces with MORE under a declared Content-Length
 *   /buffer           BUFFER sends from a stack buffer that is overwritten right away
 *   /disconnect       DISCONNECT flag
 *   /file             the whole FILE;  /file-range  bytes 10..29 of FILE
 *   /frag             the fragment "greeting";  /frag-missing  a fragment that is not there
 *   /big              32 MiB body (MinSendRate test)
 *   /api-errors       checks the API's error returns, answers "ok" or the failed check
 *   /sync/...         runs on the sync pool; /sync/sleep blocks 300 ms
 *   /a/ and /a/b/     longest prefix wins: bodies "a" and "ab"
 *   /thread           kept by the handler, answered 20 ms later from another thread
 *   /decoded/...      answers the percent-decoded path
 *   /frag-put         stores the fragment "short" with a 200 ms time-to-live
 *   /frag-short       sends "short", or 404 once it has expired
 *   /echo-head        answers the head as the handler sees it: "method target authority",
 *                     then one "name: value" line per field in arrival order
 */
#include <portico/http.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../examples/stop.h"   /* signals; Windows: console events or the end of input */
#ifndef O_BINARY
#define O_BINARY 0
#endif

static int file_fd = -1;
static pt_http_server_t *srv;

static void text(pt_http_req_t *r, unsigned status, const char *body)
{
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, strlen(body) } };
	pt_http_respond(r, status, NULL, NULL, 0, &c, 1, PT_HTTP_BUFFER, NULL, NULL);
}

static void hello(pt_http_req_t *r, void *arg)
{
	text(r, 200, "Hello, World!");
}

/* The server's HTTP/2 counters summed over the workers (h2_limits.py: offenders counted). */
static void h2_counters(pt_http_req_t *r, void *arg)
{
	struct pt_http_counters n;
	char buf[160];

	if (pt_http_server_counters(srv, -1, &n) < 0) {
		text(r, 500, "counters refused");
		return;
	}
	snprintf(buf, sizeof buf, "floods %llu protocol_errors %llu goaways_sent %llu",
		 (unsigned long long)n.h2_floods, (unsigned long long)n.h2_protocol_errors,
		 (unsigned long long)n.h2_goaways_sent);
	text(r, 200, buf);
}

/* ---- prepared fields ---- */

static pt_http_fields_t *prep, *prep_close;

/* The refusals of pt_http_fields_new, then the two objects /prepared uses. 0 or -1. */
static int prepare_fields(void)
{
	static const struct pt_http_header bad[] = {
		{ "Content-Length", "5" }, { "Transfer-Encoding", "chunked" }, { "Date", "x" },
		{ "Bad Name", "v" }, { "X", "a\nb" }, { "", "v" }, { "X", NULL },
	};
	static const struct pt_http_header ok[] = { { "X-Pre-One", "1" },
						    { "Cache-Control", "max-age=60" } };
	static const struct pt_http_header close = { "Connection", "close" };
	pt_http_fields_t *f;
	int err;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if ((f = pt_http_fields_new(&bad[i], 1, &err)) || err != -EINVAL) {
			fprintf(stderr, "pt_http_fields_new accepted bad field %zu\n", i);
			pt_http_fields_free(f);
			return -1;
		}
	if (!(prep = pt_http_fields_new(ok, 2, &err)) || err ||
	    !(prep_close = pt_http_fields_new(&close, 1, &err)))
		return -1;
	return 0;
}

/* /prepared: the prepared fields, then one of the call's own; ?close: a prepared
 * Connection: close and no field of the call's. */
static void prepared(pt_http_req_t *r, void *arg)
{
	static const struct pt_http_header extra = { "X-Extra", "2" };
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { "prepared", 8 } };
	bool close = pt_http_req_query(r).n == 5;

	if (pt_http_respond_fields(r, 200, close ? prep_close : prep, close ? NULL : &extra,
				   close ? 0 : 1, &c, 1, 0, NULL, NULL) < 0)
		text(r, 500, "respond_fields refused");
}

/* ---- the response cache ---- */

static atomic_uint cache_calls;         /* handler calls of the /cached routes */
static atomic_uint hook_hits, hook_sent;
static atomic_ullong hook_sent_bytes;      /* the res of the hook's callbacks, summed */

/* /cached: offered for 300 ms unless the request has X-Vary; the body counts handler calls.
 * /cached-more (PT_HTTP_MORE) and /cached-big (over cache_max_body) are offered but cannot
 * be kept. A bad policy must be refused first. */
static void cached(pt_http_req_t *r, void *arg)
{
	static const char *const unless[] = { "X-Vary" }, *const empty[] = { "" };
	static const struct pt_http_cache_policy pol = { 300, unless, 1 };
	char body[200];
	unsigned n = atomic_fetch_add(&cache_calls, 1) + 1;
	const char *kind = arg;
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, 0 } };

	if (pt_http_req_cache(r, &(struct pt_http_cache_policy){ 0, NULL, 0 }) != -EINVAL ||
	    pt_http_req_cache(r, &(struct pt_http_cache_policy){ 10, empty, 1 }) != -EINVAL ||
	    pt_http_req_cache(r, &pol) != 0) {
		text(r, 500, "policy checks failed");
		return;
	}
	c.mem.len = (size_t)snprintf(body, sizeof body, "n=%u%s", n,
				     kind && *kind == 'b' ? "........................................"
							    "........................................" : "");
	if (kind && *kind == 'm') {
		pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, PT_HTTP_MORE | PT_HTTP_BUFFER, NULL, NULL);
		pt_http_send_body(r, NULL, 0, 0, NULL, NULL);
		return;
	}
	static const struct pt_http_header h = { "X-Cached-Route", "1" };
	pt_http_respond(r, 200, NULL, &h, 1, &c, 1, PT_HTTP_BUFFER, NULL, NULL);
}

static void cache_flush(pt_http_req_t *r, void *arg)
{
	pt_http_cache_flush(srv);
	text(r, 200, "flushed");
}

static void cache_stats(pt_http_req_t *r, void *arg)
{
	struct pt_http_counters n;
	char buf[96];

	pt_http_server_counters(srv, -1, &n);
	snprintf(buf, sizeof buf, "calls %u hits %llu hook %u sent %u sentb %llu",
		 atomic_load(&cache_calls), (unsigned long long)n.cache_hits, atomic_load(&hook_hits),
		 atomic_load(&hook_sent), (unsigned long long)atomic_load(&hook_sent_bytes));
	text(r, 200, buf);
}

static void hit_sent(pt_http_req_t *r, void *arg, ssize_t res)
{
	if (res > 0 && arg == (void *)&hook_sent) {
		atomic_fetch_add(&hook_sent_bytes, (unsigned long long)res);
		atomic_fetch_add(&hook_sent, 1);
	}
}

/* Declines requests with X-Decline; otherwise counts, and asks for a callback. */
static int on_hit(pt_http_req_t *r, unsigned status, uint64_t bytes, unsigned *flags,
		  pt_http_send_fn *cb, void **arg, void *ctx)
{
	if (pt_http_req_header(r, "X-Decline").p)
		return 1;
	atomic_fetch_add(&hook_hits, 1);
	*cb = hit_sent;
	*arg = &hook_sent;
	return 0;
}

static void status(pt_http_req_t *r, void *arg)
{
	struct pt_http_str q = pt_http_req_query(r);
	char buf[8] = { 0 };
	memcpy(buf, q.p, q.n < 7 ? q.n : 7);
	unsigned st = (unsigned)atoi(buf);
	static const struct pt_http_header h[] = { { "X-Test", "1" } };
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { "body", 4 } };
	if (pt_http_respond(r, st, NULL, h, 1, &c, 1, 0, NULL, NULL) < 0)
		text(r, 500, "respond refused");
}

/* ---- bodies ---- */

struct sum { uint64_t len; uint32_t ck; char out[64]; };

static void body_cb(pt_http_req_t *r, void *arg, const void *data, size_t len, int err)
{
	struct sum *s = arg;
	if (len) {
		for (size_t i = 0; i < len; i++)
			s->ck = s->ck * 31 + ((const unsigned char *)data)[i];
		s->len += len;
		return;
	}
	if (err)
		snprintf(s->out, sizeof s->out, "error %d", err);
	else
		snprintf(s->out, sizeof s->out, "%llu %u", (unsigned long long)s->len, s->ck);
	text(r, err ? 400 : 200, s->out);
	free(s);
}

static void echo_body(pt_http_req_t *r, void *arg)
{
	struct sum *s = calloc(1, sizeof *s);
	if (pt_http_req_read_body(r, body_cb, s) < 0) {
		free(s);
		text(r, 200, "0 0");
	}
}

static void echo_head(pt_http_req_t *r, void *arg)
{
	struct pt_http_str m = pt_http_req_method_name(r), t = pt_http_req_target(r),
			   a = pt_http_req_authority(r), n, v;
	enum { CAP = 64 << 10 };
	char *body = malloc(CAP);
	if (!body) {
		text(r, 503, "no memory");
		return;
	}
	int at = snprintf(body, CAP, "%.*s %.*s %.*s\n", (int)m.n, m.p, (int)t.n, t.p, (int)a.n, a.p);

	for (unsigned i = 0; pt_http_req_header_at(r, i, &n, &v) == 0 && at < CAP; i++)
		at += snprintf(body + at, CAP - (size_t)at, "%.*s: %.*s\n", (int)n.n, n.p, (int)v.n,
			       v.p);
	text(r, 200, body);                /* PT_HTTP_BUFFER: copied */
	free(body);
}

static void ignore_body(pt_http_req_t *r, void *arg)
{
	text(r, 200, "ignored");
}

/* ---- later responses ---- */

struct later { pt_timer_t t; pt_http_req_t *r; };

static void later_fire(pt_timer_t *t, void *arg)
{
	struct later *l = arg;
	pt_http_req_on_abort(l->r, NULL, NULL);
	char body[128];
	struct pt_http_str p = pt_http_req_path(l->r);   /* fetched again after the handler */
	snprintf(body, sizeof body, "async %.*s", (int)p.n, p.p);
	text(l->r, 200, body);
	free(l);
}

/* The connection went away first (an h2 client that broke its connection): no answer. */
static void later_abort(pt_http_req_t *r, void *arg)
{
	struct later *l = arg;
	pt_timer_cancel(&l->t);
	free(l);
}

static void async_h(pt_http_req_t *r, void *arg)
{
	struct later *l = malloc(sizeof *l);
	l->r = r;
	pt_http_req_on_abort(r, later_abort, l);
	pt_timer_init(&l->t, later_fire, l);
	pt_timer_arm(pt_conn_worker(pt_http_req_conn(r)), &l->t, 50);
}

/* ---- streaming ---- */

static void stream(pt_http_req_t *r, void *arg)
{
	static const char *parts[] = { "one,", "two,", "three" };
	struct pt_http_chunk c[3];
	for (int i = 0; i < 3; i++)
		c[i] = (struct pt_http_chunk){ .kind = PT_HTTP_CHUNK_MEM, .mem = { parts[i], strlen(parts[i]) } };
	if (arg) {
		static const struct pt_http_header h[] = { { "Content-Length", "13" } };
		pt_http_respond(r, 200, NULL, h, 1, &c[0], 1, PT_HTTP_MORE, NULL, NULL);
	} else {
		pt_http_respond(r, 200, NULL, NULL, 0, &c[0], 1, PT_HTTP_MORE, NULL, NULL);
	}
	pt_http_send_body(r, &c[1], 1, PT_HTTP_MORE, NULL, NULL);
	pt_http_send_body(r, &c[2], 1, 0, NULL, NULL);
}

static void buffer(pt_http_req_t *r, void *arg)
{
	char tmp[64];
	strcpy(tmp, "buffered-1,");
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { tmp, strlen(tmp) } };
	pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, PT_HTTP_MORE | PT_HTTP_BUFFER, NULL, NULL);
	strcpy(tmp, "buffered-2");            /* overwritten at once: BUFFER copied it */
	c.mem.len = strlen(tmp);
	pt_http_send_body(r, &c, 1, PT_HTTP_BUFFER, NULL, NULL);
	memset(tmp, 'X', sizeof tmp);
}

static void disconnect(pt_http_req_t *r, void *arg)
{
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { "bye", 3 } };
	pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, PT_HTTP_DISCONNECT, NULL, NULL);
}

static void file(pt_http_req_t *r, void *arg)
{
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_FILE, .file = { file_fd, 0, -1 } };
	if (arg) {
		c.file.offset = 10;
		c.file.len = 20;
	}
	pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, 0, NULL, NULL);
}

static void frag(pt_http_req_t *r, void *arg)
{
	struct pt_http_chunk c[2] = {
		{ .kind = PT_HTTP_CHUNK_MEM, .mem = { "<", 1 } },
		{ .kind = PT_HTTP_CHUNK_FRAGMENT, .fragment = { arg ? "nope" : "greeting" } },
	};
	int err = pt_http_respond(r, 200, NULL, NULL, 0, c, 2, 0, NULL, NULL);
	if (err == -ENOENT)
		text(r, 404, "fragment missing");
}

static char big[32 << 20];   /* more than the kernel socket buffers hold */

static void big_h(pt_http_req_t *r, void *arg)
{
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { big, sizeof big } };
	pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, 0, NULL, NULL);
}

/* ---- the API's error returns ---- */

#define CHECK(cond, what) do { if (!(cond)) { text(r, 500, what); return; } } while (0)

static void api_errors(pt_http_req_t *r, void *arg)
{
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { "x", 1 } };
	struct pt_http_header bad_name = { "Bad Name", "v" }, bad_value = { "X", "a\r\nb" };
	struct pt_http_header te = { "Transfer-Encoding", "chunked" };

	CHECK(pt_http_respond(r, 99, NULL, NULL, 0, NULL, 0, 0, NULL, NULL) == -EINVAL, "status 99");
	CHECK(pt_http_respond(r, 600, NULL, NULL, 0, NULL, 0, 0, NULL, NULL) == -EINVAL, "status 600");
	CHECK(pt_http_respond(r, 200, NULL, &bad_name, 1, NULL, 0, 0, NULL, NULL) == -EINVAL, "name");
	CHECK(pt_http_respond(r, 200, NULL, &bad_value, 1, NULL, 0, 0, NULL, NULL) == -EINVAL, "value");
	CHECK(pt_http_respond(r, 200, NULL, &te, 1, NULL, 0, 0, NULL, NULL) == -EINVAL, "te");
	CHECK(pt_http_respond(r, 200, "a\nb", NULL, 0, NULL, 0, 0, NULL, NULL) == -EINVAL, "reason");
	CHECK(pt_http_send_body(r, &c, 1, 0, NULL, NULL) == -EPROTO, "body before head");
	CHECK(pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, 0xff00, NULL, NULL) == -EINVAL, "flags");
	CHECK(pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, PT_HTTP_MORE, NULL, NULL) == 0, "head");
	CHECK(pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, 0, NULL, NULL) == -EALREADY, "head twice");
	CHECK(pt_http_send_body(r, &c, 1, 0, NULL, NULL) == 0, "final");
	CHECK(pt_http_send_body(r, &c, 1, 0, NULL, NULL) == -EPROTO, "after final");
}

/* ---- responses from another thread ---- */

static void *answer_later(void *arg)
{
	pt_http_req_t *r = arg;
	char body[] = "from another thread";      /* stack memory: the call waits for the send */

	usleep(20 * 1000);
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, strlen(body) } };
	if (pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, 0, NULL, NULL) < 0)
		fprintf(stderr, "thread respond failed\n");
	pt_http_req_release(r);
	return NULL;
}

static void thread_h(pt_http_req_t *r, void *arg)
{
	pthread_t t;
	if (pt_http_req_keep(r) < 0 || pthread_create(&t, NULL, answer_later, r) != 0) {
		text(r, 500, "keep failed");
		return;
	}
	pthread_detach(t);
}

static void decoded(pt_http_req_t *r, void *arg)
{
	char buf[256];
	int n = pt_http_req_decoded_path(r, buf, sizeof buf);
	if (n < 0)
		snprintf(buf, sizeof buf, "error %d", n);
	text(r, n < 0 ? 400 : 200, buf);
}

static void frag_put(pt_http_req_t *r, void *arg)
{
	pt_http_fragment_put(srv, "short", "short-lived", 11, 200);
	text(r, 200, "stored");
}

static void frag_short(pt_http_req_t *r, void *arg)
{
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_FRAGMENT, .fragment = { "short" } };
	if (pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, 0, NULL, NULL) == -ENOENT)
		text(r, 404, "expired");
}

/* ---- sync pool ---- */

static void sync_h(pt_http_req_t *r, void *arg)
{
	struct pt_http_str p = pt_http_req_path(r);
	char body[64];
	if (p.n >= 11 && !memcmp(p.p, "/sync/sleep", 11))
		usleep(300 * 1000);
	/* without BUFFER: this call waits until the data is sent; the stack buffer is safe */
	snprintf(body, sizeof body, "sync %.*s", (int)p.n, p.p);
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, strlen(body) } };
	int err = pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, 0, NULL, NULL);
	if (err < 0)
		fprintf(stderr, "sync respond: %d\n", err);
}

static void prefix(pt_http_req_t *r, void *arg)
{
	text(r, 200, arg);
}

int main(int argc, char **argv)
{
	struct pt_http_config cfg;
	int err;

	if (argc < 2 || (file_fd = open(argv[1], O_RDONLY | O_BINARY)) < 0) {
		fprintf(stderr, "usage: http_testsrv FILE [MAX_CONNS]\n");
		return 2;
	}
	memset(big, 'b', sizeof big);
	pt_http_config_init(&cfg);
	cfg.engine.workers = 2;
	cfg.cache_entries = 64;
	cfg.cache_max_body = 64;                   /* /cached-big is over it */
	cfg.on_cache_hit = on_hit;
	cfg.timeouts.header_wait = 400;
	cfg.timeouts.idle_connection = 600;
	cfg.timeouts.entity_body = 400;
	cfg.timeouts.drain_entity_body = 400;
	cfg.timeouts.request_queue = 200;
	cfg.timeouts.min_send_rate = 1u << 20;     /* 1 MiB/s: a client that stops reading fails */
	cfg.max_body = 1u << 20;
	cfg.sync_threads = 1;
	cfg.queue_length = 1;
	cfg.server_header = "portico-test";
	const char *h2c = getenv("PT_H2C");
	cfg.h2c = h2c && *h2c && strcmp(h2c, "0");
	if (argc > 2) {            /* shedding tests: one worker, a small limit, room for slowness */
		cfg.engine.workers = 1;
		cfg.engine.max_conns = (unsigned)atoi(argv[2]);
		cfg.timeouts.header_wait = cfg.timeouts.idle_connection = 10000;
		cfg.timeouts.entity_body = 10000;
		cfg.timeouts.min_send_rate = 1000;
	}
	stop_prepare();
	if (!(srv = pt_http_server_create(&cfg, &err)))
		return 1;
	static const struct { const char *p; pt_http_handler_fn fn; void *arg; unsigned fl; } routes[] = {
		{ "/hello", hello, NULL, 0 }, { "/status", status, NULL, 0 },
		{ "/echo-body", echo_body, NULL, 0 }, { "/ignore-body", ignore_body, NULL, 0 },
		{ "/async", async_h, NULL, 0 }, { "/stream-cl", stream, "cl", 0 },
		{ "/stream", stream, NULL, 0 }, { "/buffer", buffer, NULL, 0 },
		{ "/disconnect", disconnect, NULL, 0 }, { "/file-range", file, "r", 0 },
		{ "/file", file, NULL, 0 }, { "/frag-missing", frag, "x", 0 }, { "/frag", frag, NULL, 0 },
		{ "/big", big_h, NULL, 0 }, { "/api-errors", api_errors, NULL, 0 },
		{ "/sync/", sync_h, NULL, PT_ROUTE_SYNC }, { "/a/", prefix, "a", 0 },
		{ "/a/b/", prefix, "ab", 0 }, { "/thread", thread_h, NULL, 0 },
		{ "/decoded/", decoded, NULL, 0 }, { "/frag-put", frag_put, NULL, 0 },
		{ "/frag-short", frag_short, NULL, 0 }, { "/echo-head", echo_head, NULL, 0 },
		{ "/h2-counters", h2_counters, NULL, 0 }, { "/prepared", prepared, NULL, 0 },
		{ "/cached-more", cached, "m", 0 }, { "/cached-big", cached, "b", 0 },
		{ "/cached", cached, NULL, 0 }, { "/cache-flush", cache_flush, NULL, 0 },
		{ "/cache-stats", cache_stats, NULL, 0 },
	};
	if (prepare_fields() < 0)
		return 1;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (pt_http_route(srv, routes[i].p, routes[i].fn, routes[i].arg, routes[i].fl) < 0)
			return 1;
	if (pt_http_route(srv, "/a/", prefix, "dup", 0) != -EEXIST || pt_http_route(srv, "x", prefix, NULL, 0) != -EINVAL)
		return 1;
	pt_http_fragment_put(srv, "greeting", "fragment>", 9, 0);
	/* PT_TLS=1 with PT_TLS_CERT and PT_TLS_KEY: the listener is HTTPS (tls_suites.py runs
	 * conformance.py that way) and the line says "(tls)". */
	const char *tls_on = getenv("PT_TLS"), *cert = getenv("PT_TLS_CERT"), *key = getenv("PT_TLS_KEY");
	pt_tls_t *tls = NULL;
	if (tls_on && *tls_on && strcmp(tls_on, "0") && cert && key) {
		struct pt_tls_config tc;
		struct pt_tls_cert pair = { cert, key };
		char msg[512];
		pt_tls_config_init(&tc);
		tc.certs = &pair;
		tc.ncerts = 1;
		tc.alpn = "h2,http/1.1";      /* HTTP/2 for clients that ask (h2.py) */
		if (!(tls = pt_tls_create(&tc, msg, sizeof msg))) {
			fprintf(stderr, "http_testsrv: %s\n", msg);
			return 1;
		}
	}
	int li = tls ? pt_http_listen_tls(srv, "127.0.0.1:0", tls) : pt_http_listen(srv, "127.0.0.1:0");
	if (li < 0 || pt_http_server_start(srv) < 0)
		return 1;
	printf("listening on 127.0.0.1:%d%s\n", pt_http_listen_port(srv, li), tls ? " (tls)" : "");
	fflush(stdout);
	stop_wait();
	pt_http_server_destroy(srv);
	pt_http_fields_free(prep);
	pt_http_fields_free(prep_close);
	if (tls)
		pt_tls_destroy(tls);
	close(file_fd);
	return 0;
}
