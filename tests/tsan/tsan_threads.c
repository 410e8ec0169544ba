/*
 * ThreadSanitizer test of the threaded parts of the engine and the HTTP layer (run by
 * tests/tsan/run.sh against build/tsan, where the library is built with -fsanitize=thread).
 *
 *   tsan_threads CASE      runs one case; exit 0 when its checks pass (TSan exits 66 on a race)
 *   tsan_threads --list    prints the cases
 *
 * Each case hands data between threads through the library only, with plain (non-atomic)
 * fields, so that TSan checks the library's happens-before edges:
 *   posts-foreign     foreign threads post completions to every worker (eventfd wake-ups)
 *   posts-workers     tokens hop from worker to worker by posts made on workers (MSG_RING)
 *   post-while-stopping  tokens hop from worker to worker by posts while the engine stops (a
 *                     post to a worker that has exited must fail with -ESHUTDOWN, or be
 *                     dropped, never touch the exited worker's freed state)
 *   hold-stop         a foreign thread holds a worker while the engine stops, posts to it,
 *                     releases; then posts and holds are refused with -ESHUTDOWN
 *   counters          pt_engine_counters read in a loop from another thread while workers
 *                     accept, echo and close connections
 *   http-sync         PT_ROUTE_SYNC handlers on the pool: headers, body reading, blocking and
 *                     BUFFER sends, streaming; clients that vanish mid-request
 *   sync-req-conn     the same, the handler also calling pt_http_req_conn (a request function,
 *                     so callable from the pool thread per http.h)
 *   sync-body-eof     a whole body and the client's FIN arrive before the pool thread reads the
 *                     body: the body and its end must still be delivered
 *   http-keep         requests kept on the worker and answered, streamed and released from
 *                     application threads (some after the client left); the server stops while
 *                     kept requests are still held
 *   fragments         fragment put/remove/ttl from a foreign thread while workers serve them
 *   start-stop        servers created, started, used, stopped and destroyed in a loop
 * PORTICO_BACKEND chooses the backend (run.sh runs each case on each backend it is given).
 */
#include <portico/http.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s (%s:%d)\n", #c, __FILE__, \
	__LINE__); exit(1); } } while (0)

static void quiet(void *arg, int level, const char *msg)
{
	if (level == 0)
		fprintf(stderr, "portico: %s\n", msg);
}

static void msleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static pthread_t spawn(void *(*fn)(void *), void *arg)
{
	pthread_t th;
	CHECK(pthread_create(&th, NULL, fn, arg) == 0);
	return th;
}

/* ---- a small blocking HTTP/1.1 client -------------------------------------------------------- */

struct client {
	int fd;
	char buf[1 << 16];
	size_t len;
};

static int client_open(struct client *c, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { 10, 0 };
	int one = 1;

	c->len = 0;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(c->fd >= 0);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0)
		return 0;
	if (errno != EINTR)
		return -1;
	struct pollfd p = { c->fd, POLLOUT, 0 };    /* interrupted: the connect goes on */
	int err = 0;
	socklen_t len = sizeof err;
	while (poll(&p, 1, 10000) < 0 && errno == EINTR)
		;
	return getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 ? 0 : -1;
}

static void client_close(struct client *c, bool reset)
{
	if (reset) {
		struct linger lg = { 1, 0 };
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	close(c->fd);
	c->fd = -1;
}

static int client_send(struct client *c, const void *p, size_t n)
{
	while (n) {
		ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p = (const char *)p + k;
		n -= (size_t)k;
	}
	return 0;
}

static int fill(struct client *c)
{
	if (c->len == sizeof c->buf)
		return -1;
	ssize_t k;
	do                                     /* EINTR: seen on io_uring runs under TSan */
		k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
	while (k < 0 && errno == EINTR);
	if (k <= 0)
		return -1;
	c->len += (size_t)k;
	return 0;
}

static void consume(struct client *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* Reads one response; copies up to cap-1 body bytes into body (NUL-terminated). Returns the
 * status, or -1 when the connection ended first. */
static int client_response(struct client *c, char *body, size_t cap)
{
	char *he;

	while (!(he = memmem(c->buf, c->len, "\r\n\r\n", 4)))
		if (fill(c) < 0)
			return -1;
	size_t hlen = (size_t)(he - c->buf) + 4;
	int status = atoi(c->buf + 9);
	long cl = -1;
	bool chunked = false;
	for (char *l = c->buf; l && l < he; ) {
		if (!strncasecmp(l, "content-length:", 15))
			cl = atol(l + 15);
		if (!strncasecmp(l, "transfer-encoding: chunked", 26))
			chunked = true;
		char *nl = memchr(l, '\n', (size_t)(he - l));
		l = nl ? nl + 1 : NULL;
	}
	consume(c, hlen);
	size_t out = 0;
	if (status < 200 || status == 204 || status == 304)
		cl = 0;
	if (chunked) {
		for (;;) {
			char *eol;
			while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
				if (fill(c) < 0)
					return -1;
			long n = strtol(c->buf, NULL, 16);
			consume(c, (size_t)(eol - c->buf) + 2);
			while (c->len < (size_t)n + 2)
				if (fill(c) < 0)
					return -1;
			for (long i = 0; i < n && out + 1 < cap; i++)
				body[out++] = c->buf[i];
			consume(c, (size_t)n + 2 - (n == 0 ? 2 : 0));
			if (n == 0) {         /* trailers: up to the empty line */
				while (!(eol = memmem(c->buf, c->len, "\r\n", 2)) || eol != c->buf) {
					if (eol) {
						consume(c, (size_t)(eol - c->buf) + 2);
						continue;
					}
					if (fill(c) < 0)
						return -1;
				}
				consume(c, 2);
				break;
			}
		}
	} else if (cl >= 0) {
		while (c->len < (size_t)cl)
			if (fill(c) < 0)
				return -1;
		for (long i = 0; i < cl && out + 1 < cap; i++)
			body[out++] = c->buf[i];
		consume(c, (size_t)cl);
	} else {
		while (fill(c) == 0)
			;
		out = c->len < cap - 1 ? c->len : cap - 1;
		memcpy(body, c->buf, out);
		c->len = 0;
	}
	if (cap)
		body[out] = 0;
	return status;
}

/* ---- engine: posts from foreign threads ------------------------------------------------------- */

#define MAXW 4

struct acc {                      /* written only by its worker, in post callbacks */
	uint64_t count, sum;
	char pad[48];
};

static struct acc accs[MAXW];

struct fnode {
	pt_post_t post;
	uint64_t payload;             /* plain field: published by pt_post */
	atomic_int busy;
};

static void fnode_run(pt_worker_t *w, void *arg)
{
	struct fnode *n = arg;
	struct acc *a = &accs[pt_worker_index(w)];

	a->count++;
	a->sum += n->payload;
	atomic_store_explicit(&n->busy, 0, memory_order_release);
}

struct poster {
	pt_engine_t *e;
	unsigned id, nposts;
	uint64_t sum;
};

static void *poster_main(void *arg)
{
	struct poster *p = arg;
	struct fnode nodes[32];
	unsigned nw = pt_engine_workers(p->e);

	memset(nodes, 0, sizeof nodes);
	for (unsigned i = 0; i < p->nposts; i++) {
		struct fnode *n = &nodes[i % 32];
		while (atomic_load_explicit(&n->busy, memory_order_acquire))
			sched_yield();
		n->payload = (uint64_t)p->id * 1000003u + i;
		atomic_store_explicit(&n->busy, 1, memory_order_relaxed);
		CHECK(pt_post(pt_engine_worker(p->e, (p->id + i) % nw), &n->post, fnode_run, n) == 0);
		p->sum += n->payload;
	}
	for (unsigned i = 0; i < 32; i++)
		while (atomic_load_explicit(&nodes[i].busy, memory_order_acquire))
			sched_yield();
	return NULL;
}

static pt_engine_t *engine_new(unsigned workers)
{
	struct pt_engine_config cfg;
	int err;

	pt_engine_config_init(&cfg);
	cfg.workers = workers;
	cfg.log = quiet;
	pt_engine_t *e = pt_engine_create(&cfg, &err);
	CHECK(e != NULL);
	return e;
}

static int case_posts_foreign(void)
{
	enum { NP = 4, N = 20000 };
	pt_engine_t *e = engine_new(3);
	struct poster ps[NP];
	pthread_t th[NP];
	uint64_t want = 0, got = 0, count = 0;

	memset(accs, 0, sizeof accs);
	CHECK(pt_engine_start(e) == 0);
	for (unsigned i = 0; i < NP; i++) {
		ps[i] = (struct poster){ e, i, N, 0 };
		th[i] = spawn(poster_main, &ps[i]);
	}
	for (unsigned i = 0; i < NP; i++) {
		pthread_join(th[i], NULL);
		want += ps[i].sum;
	}
	for (unsigned i = 0; i < 3; i++) {
		count += accs[i].count;
		got += accs[i].sum;
	}
	CHECK(count == (uint64_t)NP * N && got == want);
	CHECK(pt_engine_stop(e) == 0);
	pt_engine_destroy(e);
	return 0;
}

/* ---- engine: tokens hopping between workers ---------------------------------------------------- */

struct token {
	pt_post_t post;
	pt_engine_t *e;
	unsigned hops, target;        /* plain fields, moved from worker to worker by posts */
	uint64_t trail;
	pthread_mutex_t *mu;
	pthread_cond_t *cv;
	unsigned *done;
};

static void hop(pt_worker_t *w, void *arg)
{
	struct token *t = arg;
	unsigned nw = pt_engine_workers(t->e);

	CHECK(pt_worker_current() == w);
	t->trail = t->trail * 31 + pt_worker_index(w);
	if (++t->hops < t->target) {
		pt_worker_t *next = pt_engine_worker(t->e, (pt_worker_index(w) + 1 + t->hops % 2) % nw);
		CHECK(pt_post(next, &t->post, hop, t) == 0);
		return;
	}
	pthread_mutex_lock(t->mu);
	(*t->done)++;
	pthread_cond_signal(t->cv);
	pthread_mutex_unlock(t->mu);
}

static int case_posts_workers(void)
{
	enum { NT = 16, HOPS = 3000 };
	pt_engine_t *e = engine_new(3);
	struct token toks[NT];
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	unsigned done = 0;

	CHECK(pt_engine_start(e) == 0);
	for (unsigned i = 0; i < NT; i++) {
		toks[i] = (struct token){ .e = e, .target = HOPS, .mu = &mu, .cv = &cv, .done = &done };
		CHECK(pt_post(pt_engine_worker(e, i % 3), &toks[i].post, hop, &toks[i]) == 0);
	}
	pthread_mutex_lock(&mu);
	while (done < NT)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	for (unsigned i = 0; i < NT; i++)
		CHECK(toks[i].hops == HOPS);
	CHECK(pt_engine_stop(e) == 0);
	pt_engine_destroy(e);
	return 0;
}

/* ---- engine: a held worker outlives the stop --------------------------------------------------- */

struct holdctx {
	pt_engine_t *e;
	atomic_int ran;
	atomic_bool stop_returned;
	bool stop_early;              /* plain: written by the holder, read by main after joins */
};

static void count_run(pt_worker_t *w, void *arg)
{
	struct holdctx *h = arg;
	atomic_fetch_add_explicit(&h->ran, 1, memory_order_relaxed);
}

static void *stopper_main(void *arg)
{
	struct holdctx *h = arg;

	CHECK(pt_engine_stop(h->e) == 0);
	atomic_store(&h->stop_returned, true);
	return NULL;
}

static int case_hold_stop(void)
{
	struct holdctx h = { .e = engine_new(2) };
	pt_post_t nodes[500];

	CHECK(pt_engine_start(h.e) == 0);
	pt_worker_t *w = pt_engine_worker(h.e, 1);
	CHECK(pt_worker_hold(w) == 0);
	pthread_t st = spawn(stopper_main, &h);
	msleep(100);                               /* the stop is under way, waiting for us */
	h.stop_early = atomic_load(&h.stop_returned);
	for (unsigned i = 0; i < 500; i++) {
		CHECK(pt_post(w, &nodes[i], count_run, &h) == 0);
		if (i % 100 == 99)
			while (atomic_load(&h.ran) < (int)i + 1)
				sched_yield();
	}
	while (atomic_load(&h.ran) < 500)
		sched_yield();
	pt_worker_release(w);
	pthread_join(st, NULL);
	CHECK(!h.stop_early);                      /* the hold kept the worker (and the stop) */
	CHECK(atomic_load(&h.ran) == 500);
	pt_post_t late;
	CHECK(pt_post(w, &late, count_run, &h) == -ESHUTDOWN);
	CHECK(pt_worker_hold(w) == -ESHUTDOWN);
	pt_engine_destroy(h.e);
	return 0;
}

/* ---- engine: posts between workers while the engine stops ---------------------------------------- */

struct runner {
	pt_post_t post;
	pt_engine_t *e;
	unsigned hops;
	atomic_bool *ended;
};

static void run_on(pt_worker_t *w, void *arg)
{
	struct runner *t = arg;
	unsigned nw = pt_engine_workers(t->e);

	t->hops++;
	pt_worker_t *next = pt_engine_worker(t->e, (pt_worker_index(w) + 1 + t->hops % 2) % nw);
	if (pt_post(next, &t->post, run_on, t) < 0)      /* -ESHUTDOWN: the target has exited */
		atomic_store(t->ended, true);
}

static int case_post_while_stopping(void)
{
	enum { NT = 16 };
	for (int round = 0; round < 10; round++) {
		pt_engine_t *e = engine_new(3);
		struct runner toks[NT];
		atomic_bool ended[NT];

		CHECK(pt_engine_start(e) == 0);
		for (unsigned i = 0; i < NT; i++) {
			atomic_init(&ended[i], false);
			toks[i] = (struct runner){ .e = e, .ended = &ended[i] };
			CHECK(pt_post(pt_engine_worker(e, i % 3), &toks[i].post, run_on, &toks[i]) == 0);
		}
		msleep(20);                              /* the tokens hop, posting worker to worker */
		struct holdctx h = { .e = e };           /* ... until their targets exit */
		pthread_t st = spawn(stopper_main, &h);
		for (int i = 0; i < 1000 && !atomic_load(&h.stop_returned); i++)
			msleep(10);
		if (!atomic_load(&h.stop_returned)) {
			fprintf(stderr, "round %d: pt_engine_stop did not return within 10 s: a worker "
				"sleeps with posts queued (a lost wake-up)\n", round);
			_exit(1);
		}
		pthread_join(st, NULL);
		pt_engine_destroy(e);
	}
	return 0;
}

/* ---- engine: counters read while workers run ----------------------------------------------------- */

static void echo_data(pt_conn_t *c, const void *data, size_t len)
{
	if (pt_conn_send(c, data, len, PT_SEND_COPY, NULL, NULL) < 0)
		pt_conn_close(c, PT_CLOSE_ABORT);
}

static void echo_eof(pt_conn_t *c, int err)
{
	pt_conn_close(c, err ? PT_CLOSE_ABORT : PT_CLOSE_GRACEFUL);
}

static const struct pt_conn_ops echo_ops = { .on_data = echo_data, .on_eof = echo_eof };

static int echo_accept(pt_conn_t *c, void *arg)
{
	pt_conn_set_ops(c, &echo_ops);
	pt_conn_set_timeout(c, 5000);
	return 0;
}

struct echoers {
	pt_engine_t *e;
	int port;
	unsigned conns;
	atomic_bool done;
};

static void *echo_client(void *arg)
{
	struct echoers *x = arg;
	static __thread struct client c;
	char body[64];

	for (unsigned i = 0; i < x->conns; i++) {
		CHECK(client_open(&c, x->port) == 0);
		int n = snprintf(body, sizeof body, "ping %u", i);
		CHECK(client_send(&c, body, (size_t)n) == 0);
		while (c.len < (size_t)n)
			CHECK(fill(&c) == 0);
		CHECK(memcmp(c.buf, body, (size_t)n) == 0);
		client_close(&c, i % 3 == 0);
	}
	return NULL;
}

static void *counter_reader(void *arg)
{
	struct echoers *x = arg;
	pt_engine_t *e = x->e;
	uint64_t last = 0, reads = 0;

	while (!atomic_load(&x->done)) {
		struct pt_counters all, one;
		CHECK(pt_engine_counters(e, -1, &all) == 0);
		CHECK(all.accepts >= last);
		last = all.accepts;
		for (unsigned i = 0; i < pt_engine_workers(e); i++)
			CHECK(pt_engine_counters(e, (int)i, &one) == 0);
		reads++;
	}
	CHECK(reads > 0);
	return NULL;
}

static int case_counters(void)
{
	struct echoers x = { .e = engine_new(2), .conns = 300 };
	struct pt_listen_opts lo = { .on_accept = echo_accept };
	int li = pt_engine_listen(x.e, "127.0.0.1:0", &lo);

	CHECK(li >= 0);
	CHECK(pt_engine_start(x.e) == 0);
	x.port = pt_engine_listen_port(x.e, li);
	pthread_t rd = spawn(counter_reader, &x);
	pthread_t cl[3];
	for (int i = 0; i < 3; i++)
		cl[i] = spawn(echo_client, &x);
	for (int i = 0; i < 3; i++)
		pthread_join(cl[i], NULL);
	atomic_store(&x.done, true);
	pthread_join(rd, NULL);
	struct pt_counters all;
	CHECK(pt_engine_counters(x.e, -1, &all) == 0);
	CHECK(all.accepts == 900);
	CHECK(pt_engine_stop(x.e) == 0);
	pt_engine_destroy(x.e);
	return 0;
}

/* ---- HTTP ---------------------------------------------------------------------------------------- */

static pt_http_server_t *http_new(unsigned sync_threads)
{
	struct pt_http_config cfg;
	int err;

	pt_http_config_init(&cfg);
	cfg.engine.workers = 2;
	cfg.engine.log = quiet;
	cfg.engine.shutdown_ms = 2000;
	cfg.sync_threads = sync_threads;
	cfg.queue_length = 1000;
	cfg.timeouts.header_wait = cfg.timeouts.idle_connection = 5000;
	pt_http_server_t *s = pt_http_server_create(&cfg, &err);
	CHECK(s != NULL);
	return s;
}

static int http_listen_start(pt_http_server_t *s)
{
	int li = pt_http_listen(s, "127.0.0.1:0");
	CHECK(li >= 0);
	CHECK(pt_http_server_start(s) == 0);
	return pt_http_listen_port(s, li);
}

struct load {
	int port;
	unsigned threads, rounds;
	const char *const *reqs;      /* request texts, NULL-terminated; "%u" gets a number */
	unsigned nreqs;
	atomic_uint ok, lost;
};

static void *load_main(void *arg)
{
	struct load *l = arg;
	static __thread struct client c;
	static __thread char body[8192];
	char req[2048];

	for (unsigned r = 0; r < l->rounds; r++) {
		CHECK(client_open(&c, l->port) == 0);
		for (unsigned k = 0; k < l->nreqs; k++) {
			int n = snprintf(req, sizeof req, l->reqs[k], r * 100 + k);
			if (client_send(&c, req, (size_t)n) < 0)
				break;
			if ((r + k) % 7 == 3 && !strstr(l->reqs[k], "/body/")) {
				/* vanish with the request in flight (not one with a body to read:
				 * that case is sync-body-eof) */
				atomic_fetch_add(&l->lost, 1);
				break;
			}
			int st = client_response(&c, body, sizeof body);
			if (st != 200)
				break;
			atomic_fetch_add(&l->ok, 1);
		}
		client_close(&c, r % 2 == 0);
	}
	return NULL;
}

static void run_load(struct load *l)
{
	pthread_t th[8];

	for (unsigned i = 0; i < l->threads; i++)
		th[i] = spawn(load_main, l);
	for (unsigned i = 0; i < l->threads; i++)
		pthread_join(th[i], NULL);
}

/* PT_ROUTE_SYNC handlers (pool threads). */
static atomic_uint bodies_lost;      /* read_body accepted, but the end never delivered */
static atomic_uint conns_gone;       /* sync-req-conn: pt_http_req_conn gave NULL */
static _Atomic size_t body_last_n;   /* the last body read: its length and error */
static atomic_int body_last_err;
struct bodywait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int err;
	size_t n;
	unsigned sum;
};

static void sync_body_cb(pt_http_req_t *r, void *arg, const void *data, size_t len, int err)
{
	struct bodywait *b = arg;           /* runs on the worker */

	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < len; i++)
		b->sum += ((const unsigned char *)data)[i];
	b->n += len;
	if (!len) {
		b->done = true;
		b->err = err;
		pthread_cond_signal(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
}

static void h_sync(pt_http_req_t *r, void *arg)
{
	char out[256];
	struct pt_http_str ua = pt_http_req_header(r, "User-Agent");
	struct pt_http_str p = pt_http_req_path(r);
	struct pt_http_chunk ch = { .kind = PT_HTTP_CHUNK_MEM };

	if (arg && !strcmp(arg, "conn") && !pt_http_req_conn(r))   /* sync-req-conn */
		atomic_fetch_add(&conns_gone, 1);     /* the client left already */
	if (p.n >= 11 && !memcmp(p.p, "/sync/body/", 11) && pt_http_req_has_body(r)) {
		struct bodywait *b = calloc(1, sizeof *b);
		CHECK(b != NULL);
		pthread_mutex_init(&b->mu, NULL);
		pthread_cond_init(&b->cv, NULL);
		if (arg && !strcmp(arg, "eof"))
			msleep(100);                   /* the client's FIN arrives first */
		if (pt_http_req_read_body(r, sync_body_cb, b) == 0) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 2;
			pthread_mutex_lock(&b->mu);
			while (!b->done && pthread_cond_timedwait(&b->cv, &b->mu, &until) == 0)
				;
			bool lost = !b->done;
			pthread_mutex_unlock(&b->mu);
			if (lost) {                    /* the end of the body never came (the callback
							  might still run: b is left allocated) */
				atomic_fetch_add(&bodies_lost, 1);
				pt_http_respond(r, 500, NULL, NULL, 0, NULL, 0, PT_HTTP_DISCONNECT, NULL,
						NULL);
				return;
			}
		} else {
			b->err = -1;
		}
		int n = snprintf(out, sizeof out, "%zu %u %d", b->n, b->sum, b->err);
		body_last_n = b->n;
		body_last_err = b->err;
		free(b);
		ch.mem.p = out;
		ch.mem.len = (size_t)n;
		pt_http_respond(r, 200, NULL, NULL, 0, &ch, 1, 0, NULL, NULL);   /* waits for the send */
		return;
	}
	if (p.n >= 13 && !memcmp(p.p, "/sync/stream/", 13)) {
		struct pt_http_header h = { "X-Agent-Len", "1" };
		ch.mem.p = out;
		ch.mem.len = (size_t)snprintf(out, sizeof out, "part one;");
		if (pt_http_respond(r, 200, NULL, &h, 1, &ch, 1, PT_HTTP_MORE, NULL, NULL) < 0)
			return;
		ch.mem.len = (size_t)snprintf(out, sizeof out, "part two;");  /* buffer reused at once */
		if (pt_http_send_body(r, &ch, 1, PT_HTTP_MORE | PT_HTTP_BUFFER, NULL, NULL) < 0)
			return;
		ch.mem.len = (size_t)snprintf(out, sizeof out, "end");
		pt_http_send_body(r, &ch, 1, 0, NULL, NULL);
		return;
	}
	int n = snprintf(out, sizeof out, "%.*s|%zu", (int)(p.n < 100 ? p.n : 100), p.p, ua.n);
	ch.mem.p = out;
	ch.mem.len = (size_t)n;
	pt_http_respond(r, 200, NULL, NULL, 0, &ch, 1, PT_HTTP_BUFFER, NULL, NULL);
}

static const char *const sync_reqs[] = {
	"GET /sync/a/%u HTTP/1.1\r\nHost: t\r\nUser-Agent: tsan\r\n\r\n",
	"POST /sync/body/%u HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789",
	"GET /sync/stream/%u HTTP/1.1\r\nHost: t\r\n\r\n",
	"POST /sync/body/%u HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
	"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
	"POST /sync/a/%u HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nxxxxx",
};

static int run_http_sync(void *arg)
{
	pt_http_server_t *s = http_new(3);

	CHECK(pt_http_route(s, "/sync/", h_sync, arg, PT_ROUTE_SYNC) == 0);
	struct load l = { .port = http_listen_start(s), .threads = 4, .rounds = 120,
			  .reqs = sync_reqs, .nreqs = 5 };
	run_load(&l);
	CHECK(atomic_load(&l.ok) > 100);
	CHECK(atomic_load(&bodies_lost) == 0);
	CHECK(pt_http_server_stop(s) == 0);
	pt_http_server_destroy(s);
	return 0;
}

static int case_http_sync(void)
{
	return run_http_sync(NULL);
}

/* The same, with the handler asking for the request's connection (pt_http_req_conn, then
 * pt_conn_peer) on its pool thread while clients come and go. */
static int case_sync_req_conn(void)
{
	return run_http_sync("conn");
}

/* A whole body, then the client's FIN, before the pool thread calls pt_http_req_read_body:
 * the body (all received) must still be delivered, then its end. */
static int case_sync_body_eof(void)
{
	pt_http_server_t *s = http_new(2);
	struct client c;
	char body[256];
	static const char req[] = "POST /sync/body/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
				  "0123456789";

	CHECK(pt_http_route(s, "/sync/", h_sync, "eof", PT_ROUTE_SYNC) == 0);
	CHECK(client_open(&c, http_listen_start(s)) == 0);
	CHECK(client_send(&c, req, sizeof req - 1) == 0);
	shutdown(c.fd, SHUT_WR);
	int st = client_response(&c, body, sizeof body);
	client_close(&c, false);
	if (atomic_load(&bodies_lost) || body_last_n != 10 || body_last_err != 0)
		fprintf(stderr, "sync-body-eof: status %d '%s': %s (the body callback got %zu bytes, "
			"end %d)\n", st, body, atomic_load(&bodies_lost) ?
			"pt_http_req_read_body returned 0 but the body's end was never delivered" :
			"the body was not delivered whole", (size_t)body_last_n, (int)body_last_err);
	CHECK(atomic_load(&bodies_lost) == 0);
	CHECK(st == 200 && body_last_n == 10 && body_last_err == 0);
	CHECK(pt_http_server_stop(s) == 0);
	pt_http_server_destroy(s);
	return 0;
}

/* Kept requests, answered by application threads. */
struct kq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pt_http_req_t *items[4096];
	unsigned head, tail;
	bool quit;
	atomic_uint answered, refused;
};

static struct kq kq = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void h_keep(pt_http_req_t *r, void *arg)
{
	if (pt_http_req_keep(r) < 0) {
		struct pt_http_chunk ch = { .kind = PT_HTTP_CHUNK_MEM, .mem = { "no", 2 } };
		pt_http_respond(r, 503, NULL, NULL, 0, &ch, 1, 0, NULL, NULL);
		return;
	}
	pthread_mutex_lock(&kq.mu);
	CHECK(kq.tail - kq.head < 4096);
	kq.items[kq.tail++ % 4096] = r;
	pthread_cond_signal(&kq.cv);
	pthread_mutex_unlock(&kq.mu);
}

static void *keeper_main(void *arg)
{
	char out[128];

	for (;;) {
		pthread_mutex_lock(&kq.mu);
		while (kq.head == kq.tail && !kq.quit)
			pthread_cond_wait(&kq.cv, &kq.mu);
		if (kq.head == kq.tail) {
			pthread_mutex_unlock(&kq.mu);
			return NULL;
		}
		unsigned idx = kq.head++;
		pt_http_req_t *r = kq.items[idx % 4096];
		pthread_mutex_unlock(&kq.mu);
		if (idx % 5 == 0)
			msleep(2);                     /* let some clients leave first */
		struct pt_http_str q = pt_http_req_query(r);
		unsigned mode = q.n ? (unsigned)(q.p[0] - '0') : 0;
		int n = snprintf(out, sizeof out, "kept %.*s", (int)(q.n < 40 ? q.n : 40), q.p);
		struct pt_http_chunk ch = { .kind = PT_HTTP_CHUNK_MEM, .mem = { out, (size_t)n } };
		int err;
		if (mode % 3 == 0) {
			err = pt_http_respond(r, 200, NULL, NULL, 0, &ch, 1, 0, NULL, NULL);
		} else if (mode % 3 == 1) {
			err = pt_http_respond(r, 200, NULL, NULL, 0, &ch, 1, PT_HTTP_BUFFER, NULL, NULL);
		} else {
			err = pt_http_respond(r, 200, NULL, NULL, 0, &ch, 1, PT_HTTP_MORE, NULL, NULL);
			if (err == 0)
				err = pt_http_send_body(r, &ch, 1, PT_HTTP_BUFFER, NULL, NULL);
		}
		atomic_fetch_add(err == 0 ? &kq.answered : &kq.refused, 1);
		pt_http_req_release(r);
	}
}

static const char *const keep_reqs[] = {
	"GET /keep?%u HTTP/1.1\r\nHost: t\r\n\r\n",
	"GET /keep?%u HTTP/1.1\r\nHost: t\r\n\r\n",
	"GET /keep?%u HTTP/1.1\r\nHost: t\r\n\r\n",
};

static int case_http_keep(void)
{
	pt_http_server_t *s = http_new(0);
	pthread_t kt[2];

	kq.head = kq.tail = 0;
	kq.quit = false;
	CHECK(pt_http_route(s, "/keep", h_keep, NULL, 0) == 0);
	struct load l = { .port = http_listen_start(s), .threads = 4, .rounds = 150,
			  .reqs = keep_reqs, .nreqs = 3 };
	for (int i = 0; i < 2; i++)
		kt[i] = spawn(keeper_main, NULL);
	run_load(&l);
	/* a last batch still held by the application when the server stops */
	struct client c[8];
	for (int i = 0; i < 8; i++) {
		CHECK(client_open(&c[i], l.port) == 0);
		CHECK(client_send(&c[i], "GET /keep?9 HTTP/1.1\r\nHost: t\r\n\r\n", 33) == 0);
	}
	msleep(20);
	CHECK(pt_http_server_stop(s) == 0);        /* waits for every kept request's release */
	pthread_mutex_lock(&kq.mu);
	kq.quit = true;
	pthread_cond_broadcast(&kq.cv);
	pthread_mutex_unlock(&kq.mu);
	for (int i = 0; i < 2; i++)
		pthread_join(kt[i], NULL);
	for (int i = 0; i < 8; i++)
		client_close(&c[i], false);
	CHECK(kq.head == kq.tail);
	CHECK(atomic_load(&l.ok) > 100 && atomic_load(&kq.answered) > 100);
	pt_http_server_destroy(s);
	return 0;
}

/* Fragments changed from a foreign thread while workers send them. */
struct fragctl {
	pt_http_server_t *s;
	atomic_bool stop;
};

static void h_frag(pt_http_req_t *r, void *arg)
{
	struct pt_http_chunk ch = { .kind = PT_HTTP_CHUNK_FRAGMENT, .fragment = { "frag" } };

	if (pt_http_respond(r, 200, NULL, NULL, 0, &ch, 1, 0, NULL, NULL) == -ENOENT) {
		struct pt_http_chunk m = { .kind = PT_HTTP_CHUNK_MEM, .mem = { "none", 4 } };
		pt_http_respond(r, 200, NULL, NULL, 0, &m, 1, 0, NULL, NULL);
	}
}

static void *frag_main(void *arg)
{
	struct fragctl *f = arg;
	char data[3000];
	unsigned i = 0;

	while (!atomic_load(&f->stop)) {
		memset(data, 'a' + (int)(i % 26), sizeof data);
		CHECK(pt_http_fragment_put(f->s, "frag", data, 100 + (i * 37) % 2900,
					   i % 4 == 0 ? 1 : 0) == 0);
		if (i % 3 == 0)
			pt_http_fragment_remove(f->s, "frag");
		i++;
		sched_yield();
	}
	return NULL;
}

static const char *const frag_reqs[] = {
	"GET /frag?%u HTTP/1.1\r\nHost: t\r\n\r\n",
	"GET /frag?%u HTTP/1.1\r\nHost: t\r\n\r\n",
	"GET /frag?%u HTTP/1.1\r\nHost: t\r\n\r\n",
	"GET /frag?%u HTTP/1.1\r\nHost: t\r\n\r\n",
};

static int case_fragments(void)
{
	pt_http_server_t *s = http_new(0);
	struct fragctl f = { .s = s };

	CHECK(pt_http_route(s, "/frag", h_frag, NULL, 0) == 0);
	struct load l = { .port = http_listen_start(s), .threads = 3, .rounds = 150,
			  .reqs = frag_reqs, .nreqs = 4 };
	pthread_t ft = spawn(frag_main, &f);
	run_load(&l);
	atomic_store(&f.stop, true);
	pthread_join(ft, NULL);
	CHECK(atomic_load(&l.ok) > 100);
	CHECK(pt_http_server_stop(s) == 0);
	pt_http_server_destroy(s);
	return 0;
}

/* Servers started and stopped in a loop, with a request each time and a foreign poster. */
static void h_hello(pt_http_req_t *r, void *arg)
{
	struct pt_http_chunk ch = { .kind = PT_HTTP_CHUNK_MEM, .mem = { "hello", 5 } };
	pt_http_respond(r, 200, NULL, NULL, 0, &ch, 1, 0, NULL, NULL);
}

static int case_start_stop(void)
{
	for (int round = 0; round < 8; round++) {
		pt_http_server_t *s = http_new(round % 2 ? 2 : 0);
		struct client c;
		char body[64];

		CHECK(pt_http_route(s, "/", h_hello, NULL, round % 2 ? PT_ROUTE_SYNC : 0) == 0);
		int port = http_listen_start(s);
		struct holdctx h = { .e = pt_http_server_engine(s) };
		pt_post_t nodes[64];
		for (int i = 0; i < 64; i++)
			CHECK(pt_post(pt_engine_worker(h.e, (unsigned)i % 2), &nodes[i], count_run, &h) == 0);
		CHECK(client_open(&c, port) == 0);
		CHECK(client_send(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", 27) == 0);
		int st = client_response(&c, body, sizeof body);
		if (st != 200 || strcmp(body, "hello"))
			fprintf(stderr, "round %d: status %d body '%s' errno %s\n", round, st, body,
				strerror(errno));
		CHECK(st == 200 && !strcmp(body, "hello"));
		if (round % 2)
			client_close(&c, false);          /* else: stopped with a keep-alive connection */
		while (atomic_load(&h.ran) < 64)
			sched_yield();
		CHECK(pt_http_server_stop(s) == 0);
		pt_http_server_destroy(s);
		if (!(round % 2))
			client_close(&c, false);
	}
	return 0;
}

/* ---- main ---------------------------------------------------------------------------------------- */

static const struct {
	const char *name;
	int (*fn)(void);
} cases[] = {
	{ "posts-foreign", case_posts_foreign },
	{ "posts-workers", case_posts_workers },
	{ "post-while-stopping", case_post_while_stopping },
	{ "hold-stop", case_hold_stop },
	{ "counters", case_counters },
	{ "http-sync", case_http_sync },
	{ "sync-req-conn", case_sync_req_conn },
	{ "sync-body-eof", case_sync_body_eof },
	{ "http-keep", case_http_keep },
	{ "fragments", case_fragments },
	{ "start-stop", case_start_stop },
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
			printf("%s\n", cases[i].name);
		return 0;
	}
	for (size_t i = 0; argc == 2 && i < sizeof cases / sizeof cases[0]; i++)
		if (!strcmp(argv[1], cases[i].name))
			return cases[i].fn();
	fprintf(stderr, "usage: %s CASE|--list\n", argv[0]);
	return 2;
}
