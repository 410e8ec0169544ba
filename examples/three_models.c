/*
 * three_models: the three application I/O models of "Buffering in HTTP.SYS" (Chun Ye), each
 * streaming a large body in small pieces, with and without PT_HTTP_BUFFER (BUFFER_DATA).
 *
 *   three_models [-l ADDR:PORT] [-w WORKERS] [-p PIECE] [-k DEPTH] [-t SYNC_THREADS]
 *
 * Prints "listening on ADDR:PORT" when ready; SIGINT/SIGTERM stop it gracefully.
 *
 *   GET /sync      /sync-buffer      synchronous: a PT_ROUTE_SYNC handler loops on its pool
 *                                    thread, one blocking call per piece
 *   GET /async1    /async1-buffer    asynchronous, one send outstanding: each piece is sent
 *                                    from the previous piece's send callback
 *   GET /asyncN    /asyncN-buffer    asynchronous, many outstanding: up to DEPTH pieces in
 *                                    flight, more sent from the callbacks
 *   query: size=BYTES (default 16 MiB), piece=BYTES (default -p, 4096), depth=N (default -k, 8),
 *          zc=1: the unbuffered sends are zero-copy (PT_HTTP_ZC), which complete only when
 *          the kernel lets go of the pages, i.e. when the peer has acknowledged them: the
 *          completion of an unbuffered send in HTTP.SYS (io_uring only; epoll ignores it)
 *
 * Every response declares Content-Length up front (a "Content-Length" header together with
 * PT_HTTP_MORE) and sends the body as pieces with PT_HTTP_MORE on all but the last. Byte i of
 * every body is pattern[i % PATTERN_PERIOD] (see pattern_fill), so a client can check each byte.
 *
 * What the models show (the seed document's advice, and how it maps onto Portico):
 *  - Synchronous. Without BUFFER each call returns only when its piece has been sent, so one
 *    piece at a time is in the pipe, and every piece costs a hop from the pool thread to the
 *    connection's worker and back. HTTP.SYS recommends BUFFER always for this model: the call
 *    then returns as soon as the worker has copied the piece (one hop, no wait for the send).
 *  - Asynchronous, one outstanding. Without BUFFER the next piece starts only after the previous
 *    one completed: one kernel send per piece. HTTP.SYS recommends BUFFER on the intermediate
 *    (MORE) sends: their callbacks run at once, so the pieces queue up behind each other and the
 *    engine gathers them into large sends, at the price of a copy of every byte.
 *  - Asynchronous, many outstanding. DEPTH sends are queued at any time and gathered into large
 *    kernel sends without any copy: nothing to gain from BUFFER, which only adds the copy. The
 *    model new applications should use.
 * In HTTP.SYS an unbuffered send completes when the data is acknowledged, so a small send is
 * serialised by the round-trip time and the delayed-ACK timer; in Portico it completes when the
 * bytes are in the kernel's socket buffer, which hides the RTT while that buffer has room. What
 * remains to serialise is the application's own turn-around (a thread hop, a loop iteration and
 * one kernel send per piece): BUFFER helps where that turn-around, not the wire, is the limit.
 *
 * Pacing of buffered sends. A BUFFER send's callback runs at once, so an application that keeps
 * sending from it would fill the connection's send queue (max_send_queue) and be refused with
 * -EAGAIN; the layer then offers no callback to wait for (on_drain is the layer's own). HTTP.SYS
 * instead leaves a buffered send pending while the transport cannot take it. To get the same
 * effect, the buffered models make one piece in every PACE_BYTES an unbuffered "pacer": its
 * completion means every byte before it is in the kernel, and is the signal to go on. The send
 * queue then holds at most 2 * PACE_BYTES plus a piece, below the default 4 MiB limit.
 */
#include <portico/http.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PATTERN_PERIOD 65521u      /* prime: a piece misplaced by any multiple of 4 KiB shows */
#define PIECE_MAX (1u << 20)
#define BODY_MAX (1ull << 40)     /* 1 TiB: any test size, no overflow */
#define DEPTH_MAX 1024u
#define PACE_BYTES (1u << 20)      /* a quarter of the default max_send_queue (4 MiB) */
#define RETRY_MS 10u               /* the timer resolution; see send_retry() */

enum model_kind { M_SYNC, M_ASYNC1, M_ASYNCN };

struct app;

struct model {
	const char *path;
	enum model_kind kind;
	bool buffer;
	const struct app *app;
};

struct app {
	unsigned char *pattern;    /* PATTERN_PERIOD + PIECE_MAX bytes: any piece is contiguous */
	size_t piece;              /* defaults for the query */
	unsigned depth;
	struct model models[6];
};

/* One response being streamed. Async models: on the heap, owned by the connection's worker;
 * freed by the final send's callback or by on_abort (whichever is the request's last call). */
struct stream {
	pt_http_req_t *r;
	const struct model *m;
	uint64_t size, off;        /* body size; bytes handed to the layer so far */
	size_t piece;
	unsigned depth, inflight;  /* sends whose callbacks have not run */
	size_t since_pace;         /* buffered bytes since the last pacer was made */
	bool head_sent, final_made, pacer_out, failed;
	bool zc;                   /* query zc=1: unbuffered sends are PT_HTTP_ZC */
	pt_timer_t retry;
	char clen[24];
	struct pt_http_header hdr[3];
};

/* ---- the body pattern ---- */

/* Byte i of a body is ((i % P) * 2654435761 >> 16) & 0xff, P = PATTERN_PERIOD (Knuth's
 * multiplicative hash, so neighbouring bytes differ and shifted data does not match). */
static void pattern_fill(unsigned char *p)
{
	for (size_t i = 0; i < PATTERN_PERIOD + PIECE_MAX; i++)
		p[i] = (unsigned char)((uint64_t)(i % PATTERN_PERIOD) * 2654435761u >> 16);
}

static struct pt_http_chunk piece_at(const struct app *a, uint64_t off, size_t len)
{
	return (struct pt_http_chunk){ .kind = PT_HTTP_CHUNK_MEM,
				       .mem = { a->pattern + off % PATTERN_PERIOD, len } };
}

/* ---- requests ---- */

static int parse_u64(const char *p, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9' || v > (max - (uint64_t)(p[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

/* One "key=value" of the query into st; unknown keys are ignored. */
static int parse_param(struct stream *st, const char *p, size_t n)
{
	const char *eq = memchr(p, '=', n);
	uint64_t v;

	if (!eq)
		return 0;
	size_t kn = (size_t)(eq - p), vn = n - kn - 1;
	if (kn == 4 && !memcmp(p, "size", 4))
		return parse_u64(eq + 1, vn, BODY_MAX, &st->size);
	if (kn == 5 && !memcmp(p, "piece", 5)) {
		if (parse_u64(eq + 1, vn, PIECE_MAX, &v) < 0 || v == 0)
			return -EINVAL;
		st->piece = (size_t)v;
	} else if (kn == 5 && !memcmp(p, "depth", 5)) {
		if (parse_u64(eq + 1, vn, DEPTH_MAX, &v) < 0 || v == 0)
			return -EINVAL;
		st->depth = (unsigned)v;
	} else if (kn == 2 && !memcmp(p, "zc", 2)) {
		if (parse_u64(eq + 1, vn, 1, &v) < 0)
			return -EINVAL;
		st->zc = v == 1;
	}
	return 0;
}

static int parse_query(struct stream *st, struct pt_http_str q)
{
	const char *p = q.p, *end = q.p + q.n;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		if (parse_param(st, p, (size_t)(stop - p)) < 0)
			return -EINVAL;
		p = stop + 1;
	}
	return 0;
}

static void answer(pt_http_req_t *r, unsigned status, const char *text)
{
	static const struct pt_http_header h[] = { { "Content-Type", "text/plain" } };
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { text, strlen(text) } };

	pt_http_respond(r, status, NULL, h, 1, &c, 1, 0, NULL, NULL);   /* text is static */
}

/* Fills st from the request, or answers it (404, 405, 400, HEAD) and returns false. */
static bool stream_init(struct stream *st, pt_http_req_t *r, const struct model *m)
{
	struct pt_http_str path = pt_http_req_path(r);
	enum pt_http_method meth = pt_http_req_method(r);

	*st = (struct stream){ .r = r, .m = m, .size = 16u << 20, .piece = m->app->piece,
			       .depth = m->app->depth };
	if (path.n != strlen(m->path) || memcmp(path.p, m->path, path.n)) {
		answer(r, 404, "not found\n");
		return false;
	}
	if (meth != PT_HTTP_GET && meth != PT_HTTP_HEAD) {
		answer(r, 405, "GET or HEAD\n");
		return false;
	}
	if (parse_query(st, pt_http_req_query(r)) < 0) {
		answer(r, 400, "bad query: size=BYTES&piece=1..1048576&depth=1..1024&zc=0|1\n");
		return false;
	}
	if (m->kind != M_ASYNCN)
		st->depth = 1;
	snprintf(st->clen, sizeof st->clen, "%llu", (unsigned long long)st->size);
	st->hdr[0] = (struct pt_http_header){ "Content-Type", "application/octet-stream" };
	st->hdr[1] = (struct pt_http_header){ "Content-Length", st->clen };
	st->hdr[2] = (struct pt_http_header){ "X-Model", m->path + 1 };
	if (meth == PT_HTTP_HEAD) {     /* the declared length, no body */
		pt_http_respond(r, 200, NULL, st->hdr, 3, NULL, 0, 0, NULL, NULL);
		return false;
	}
	return true;
}

static size_t next_len(const struct stream *st)
{
	uint64_t left = st->size - st->off;

	return left < st->piece ? (size_t)left : st->piece;
}

/* The flags of the next piece: BUFFER on buffered models except on a pacer (see the top). */
static unsigned next_flags(const struct stream *st, size_t len, bool *pacer)
{
	*pacer = st->m->buffer && st->since_pace + len > PACE_BYTES;
	return st->m->buffer && !*pacer ? PT_HTTP_BUFFER : st->zc ? PT_HTTP_ZC : 0;
}

/* Sends the piece at st->off (with the head when it is the first): MORE unless it is the last.
 * 0 or the layer's error; on 0, the piece counts as made. */
static int send_piece(struct stream *st, unsigned flags, pt_http_send_fn cb, void *arg)
{
	size_t len = next_len(st);
	struct pt_http_chunk c = piece_at(st->m->app, st->off, len);
	bool last = st->off + len == st->size;
	unsigned fl = flags | (last ? 0 : PT_HTTP_MORE);
	int err;

	if (!st->head_sent)
		err = pt_http_respond(st->r, 200, NULL, st->hdr, 3, &c, len ? 1 : 0, fl, cb, arg);
	else
		err = pt_http_send_body(st->r, &c, 1, fl, cb, arg);
	if (err < 0)
		return err;
	st->head_sent = true;
	st->off += len;
	st->final_made = last;
	return 0;
}

/* ---- model 1: synchronous (pool thread) ---- */

static void sync_sent(pt_http_req_t *r, void *arg, ssize_t res)
{
	*(ssize_t *)arg = res;          /* runs before the blocked call returns */
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { 0, (long)ms * 1000000L };

	nanosleep(&ts, NULL);
}

static void sync_model(pt_http_req_t *r, void *arg)
{
	struct stream st;

	if (!stream_init(&st, r, arg))
		return;
	while (!st.final_made) {
		size_t len = next_len(&st);
		bool pacer;
		unsigned fl = next_flags(&st, len, &pacer);
		ssize_t res = 0;
		/* unbuffered: the call blocks until the piece is sent; the callback says how it went
		 * (the call itself returns 0 once the send was accepted, even if it fails later) */
		bool buffered = fl & PT_HTTP_BUFFER;
		int err = send_piece(&st, fl, buffered ? NULL : sync_sent, &res);
		if (err == -EAGAIN) {   /* the worker's BUFFER budget is spent: nothing to wait on */
			sleep_ms(1);
			continue;
		}
		if (err < 0 || res < 0)
			return;         /* returning unfinished: the layer resets the connection */
		st.since_pace = pacer ? 0 : st.since_pace + (buffered ? len : 0);
	}
}

/* ---- models 2 and 3: asynchronous (worker) ---- */

static void pump(struct stream *st);

static void stream_free(struct stream *st)
{
	pt_timer_cancel(&st->retry);
	free(st);
}

/* Something failed: stop sending and reset the connection, so that on_abort follows (a send
 * error alone does not end the request, and the layer has no call to abandon one). */
static void stream_fail(struct stream *st)
{
	if (st->failed)
		return;
	st->failed = true;
	pt_conn_close(pt_http_req_conn(st->r), PT_CLOSE_ABORT);
}

static void sent(pt_http_req_t *r, void *arg, ssize_t res)
{
	struct stream *st = arg;

	st->inflight--;
	if (res < 0)
		stream_fail(st);
	if (st->final_made && st->inflight == 0) {   /* the request's last callback */
		stream_free(st);
		return;
	}
	pump(st);
}

static void pacer_sent(pt_http_req_t *r, void *arg, ssize_t res)
{
	struct stream *st = arg;

	st->pacer_out = false;
	sent(r, arg, res);
}

static void aborted(pt_http_req_t *r, void *arg)
{
	stream_free(arg);
}

static void retry_fire(pt_timer_t *t, void *arg)
{
	pump(arg);
}

/* -EAGAIN with no send outstanding: no callback will come, so poll (the worker's BUFFER budget,
 * max_worker_buffered, is shared by its connections and frees up as their copies drain). */
static void send_retry(struct stream *st)
{
	if (st->inflight == 0 && pt_timer_arm(pt_conn_worker(pt_http_req_conn(st->r)), &st->retry,
					      RETRY_MS) < 0)
		stream_fail(st);
}

/* Sends pieces while the model allows: depth outstanding, one pacer at a time. */
static void pump(struct stream *st)
{
	while (!st->final_made && !st->failed && st->inflight < st->depth) {
		size_t len = next_len(st);
		bool pacer;
		unsigned fl = next_flags(st, len, &pacer);
		if (pacer && st->pacer_out)
			return;                   /* its callback resumes */
		int err = send_piece(st, fl, pacer ? pacer_sent : sent, st);
		if (err == -EAGAIN) {
			send_retry(st);
			return;
		}
		if (err < 0) {
			stream_fail(st);
			return;
		}
		st->inflight++;
		st->pacer_out |= pacer;
		st->since_pace = pacer ? 0 : st->since_pace + ((fl & PT_HTTP_BUFFER) ? len : 0);
	}
}

static void async_model(pt_http_req_t *r, void *arg)
{
	struct stream *st = malloc(sizeof *st);

	if (!st) {
		answer(r, 503, "out of memory\n");
		return;
	}
	if (!stream_init(st, r, arg)) {
		free(st);
		return;
	}
	pt_timer_init(&st->retry, retry_fire, st);
	pt_http_req_on_abort(r, aborted, st);
	pump(st);         /* if the first send failed, the reset's on_abort frees st */
}

/* ---- server ---- */

static void index_page(pt_http_req_t *r, void *arg)
{
	struct pt_http_str path = pt_http_req_path(r);

	if (path.n != 1)
		answer(r, 404, "not found\n");
	else
		answer(r, 200, "/sync /sync-buffer /async1 /async1-buffer /asyncN /asyncN-buffer"
			       " ?size=BYTES&piece=BYTES&depth=N\n");
}

static void app_init(struct app *a)
{
	static const struct { const char *path; enum model_kind kind; bool buffer; } m[6] = {
		{ "/sync", M_SYNC, false }, { "/sync-buffer", M_SYNC, true },
		{ "/async1", M_ASYNC1, false }, { "/async1-buffer", M_ASYNC1, true },
		{ "/asyncN", M_ASYNCN, false }, { "/asyncN-buffer", M_ASYNCN, true },
	};
	for (int i = 0; i < 6; i++)
		a->models[i] = (struct model){ m[i].path, m[i].kind, m[i].buffer, a };
}

static int add_routes(pt_http_server_t *s, struct app *a)
{
	int err = pt_http_route(s, "/", index_page, NULL, 0);

	for (int i = 0; i < 6 && err == 0; i++) {
		const struct model *m = &a->models[i];
		err = pt_http_route(s, m->path, m->kind == M_SYNC ? sync_model : async_model,
				    (void *)m, m->kind == M_SYNC ? PT_ROUTE_SYNC : 0);
	}
	return err;
}

static int usage(void)
{
	fprintf(stderr, "usage: three_models [-l ADDR:PORT] [-w WORKERS] [-p PIECE] [-k DEPTH]"
			" [-t SYNC_THREADS]\n");
	return 2;
}

static int parse_args(int argc, char **argv, struct pt_http_config *cfg, struct app *a,
		      const char **addr)
{
	for (int i = 1; i < argc; i += 2) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;
		long n = v ? strtol(v, &end, 10) : -1;
		if (!v)
			return -EINVAL;
		if (end == v || *end)
			n = -1;                   /* not a number: only -l accepts it */
		if (!strcmp(o, "-l"))
			*addr = v;
		else if (!strcmp(o, "-w") && n >= 0)
			cfg->engine.workers = (unsigned)n;
		else if (!strcmp(o, "-p") && n >= 1 && n <= (long)PIECE_MAX)
			a->piece = (size_t)n;
		else if (!strcmp(o, "-k") && n >= 1 && n <= (long)DEPTH_MAX)
			a->depth = (unsigned)n;
		else if (!strcmp(o, "-t") && n >= 1 && n <= 1024)
			cfg->sync_threads = (unsigned)n;
		else
			return -EINVAL;
	}
	return 0;
}

static int serve(struct pt_http_config *cfg, struct app *a, const char *addr)
{
	sigset_t set;
	int err, sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);      /* before any thread starts */
	signal(SIGPIPE, SIG_IGN);
	pt_http_server_t *s = pt_http_server_create(cfg, &err);
	if (!s) {
		fprintf(stderr, "three_models: %s\n", strerror(-err));
		return 1;
	}
	int li = pt_http_listen(s, addr);
	if (li < 0 || (err = add_routes(s, a)) < 0 || (err = pt_http_server_start(s)) < 0) {
		fprintf(stderr, "three_models: cannot serve on %s: %s\n", addr,
			strerror(li < 0 ? -li : -err));
		pt_http_server_destroy(s);
		return 1;
	}
	printf("listening on %.*s:%d\n", (int)(strrchr(addr, ':') - addr), addr,
	       pt_http_listen_port(s, li));
	fflush(stdout);
	sigwait(&set, &sig);
	pt_http_server_destroy(s);
	return 0;
}

int main(int argc, char **argv)
{
	struct pt_http_config cfg;
	struct app a = { .piece = 4096, .depth = 8 };
	const char *addr = "127.0.0.1:8080";

	pt_http_config_init(&cfg);
	if (parse_args(argc, argv, &cfg, &a, &addr) < 0 || !strrchr(addr, ':'))
		return usage();
	if (!(a.pattern = malloc(PATTERN_PERIOD + PIECE_MAX))) {
		fprintf(stderr, "three_models: out of memory\n");
		return 1;
	}
	pattern_fill(a.pattern);
	app_init(&a);
	int rc = serve(&cfg, &a, addr);
	free(a.pattern);
	return rc;
}
