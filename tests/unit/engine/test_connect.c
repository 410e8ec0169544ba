/*
 * pt_connect (src/engine/connect.c): outbound connections on a worker. pt-test: backends.
 *
 *  - a connection to the engine's own listener carries data both ways and closes normally;
 *    on_connect runs once, never inside pt_connect;
 *  - nothing listening: on_connect(NULL, -ECONNREFUSED);
 *  - a listener whose accept queue is full (SYNs dropped): -ETIMEDOUT after timeout_ms, and
 *    -ECANCELED when the engine stops first;
 *  - on_connect returning an error closes the connection without on_close;
 *  - bad arguments and the wrong thread: -EINVAL, nothing started.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <portico/engine.h>
#include "support/net.h"
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>

struct ctx {
	struct sockaddr_in to;
	unsigned timeout_ms;
	bool refuse;                  /* on_connect returns -1 */
	atomic_int calls, err, closes, started;
	atomic_bool inside;           /* pt_connect is running */
	atomic_int start_rc;
	char got[16];
	atomic_int got_len;
	pt_post_t post;
};

/* ---- the engine's listener: echo ---- */

static void echo_data(pt_conn_t *c, const void *d, size_t n)
{
	pt_conn_send(c, d, n, PT_SEND_COPY, NULL, NULL);
}

static void echo_eof(pt_conn_t *c, int err)
{
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static const struct pt_conn_ops echo_ops = { .on_data = echo_data, .on_eof = echo_eof };

static int echo_accept(pt_conn_t *c, void *arg)
{
	pt_conn_set_ops(c, &echo_ops);
	return 0;
}

/* ---- the client side ---- */

static void cl_data(pt_conn_t *c, const void *d, size_t n)
{
	struct ctx *x = pt_conn_user(c);
	int have = atomic_load(&x->got_len);

	if (have + (int)n <= (int)sizeof x->got) {
		memcpy(x->got + have, d, n);
		atomic_store(&x->got_len, have + (int)n);
	}
	if (atomic_load(&x->got_len) == 4)
		pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void cl_close(pt_conn_t *c)
{
	struct ctx *x = pt_conn_user(c);

	atomic_fetch_add(&x->closes, 1);
}

static const struct pt_conn_ops cl_ops = { .on_data = cl_data, .on_close = cl_close };

static int on_connect(pt_conn_t *c, int err, void *arg)
{
	struct ctx *x = arg;

	assert_false(atomic_load(&x->inside));
	atomic_store(&x->err, err);
	atomic_fetch_add(&x->calls, 1);
	if (err < 0) {
		assert_null(c);
		return 0;
	}
	assert_non_null(c);
	if (x->refuse)
		return -1;
	pt_conn_set_ops(c, &cl_ops);
	pt_conn_set_user(c, x);
	assert_int_equal(pt_conn_send(c, "ping", 4, 0, NULL, NULL), 0);
	return 0;
}

static void start_connect(pt_worker_t *w, void *arg)
{
	struct ctx *x = arg;
	struct pt_connect_opts o = { .on_connect = on_connect, .arg = x, .no_delay = true,
				     .timeout_ms = x->timeout_ms };

	atomic_store(&x->inside, true);
	atomic_store(&x->start_rc, pt_connect(w, (struct sockaddr *)&x->to, sizeof x->to, &o));
	atomic_store(&x->inside, false);
	atomic_store(&x->started, 1);
}

static pt_engine_t *engine(int *port)
{
	int err;
	pt_engine_t *e = pt_engine_create(&(struct pt_engine_config){ .workers = 1 }, &err);

	assert_non_null(e);
	struct pt_listen_opts lo = { .on_accept = echo_accept };
	int li = pt_engine_listen(e, "127.0.0.1:0", &lo);
	assert_true(li >= 0);
	assert_int_equal(pt_engine_start(e), 0);
	*port = pt_engine_listen_port(e, li);
	return e;
}

static void target(struct ctx *x, int port)
{
	x->to = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &x->to.sin_addr);
}

static void go(pt_engine_t *e, struct ctx *x)
{
	assert_int_equal(pt_post(pt_engine_worker(e, 0), &x->post, start_connect, x), 0);
	WAIT_FOR(atomic_load(&x->started), 5000);
	assert_int_equal(atomic_load(&x->start_rc), 0);
}

static void test_echo(void **state)
{
	static struct ctx x;
	int port;
	pt_engine_t *e = engine(&port);

	target(&x, port);
	go(e, &x);
	WAIT_FOR(atomic_load(&x.closes) == 1, 10000);
	assert_int_equal(atomic_load(&x.calls), 1);
	assert_int_equal(atomic_load(&x.err), 0);
	assert_int_equal(atomic_load(&x.got_len), 4);
	assert_memory_equal(x.got, "ping", 4);
	assert_int_equal(atomic_load(&x.closes), 1);
	pt_engine_destroy(e);
}

static int closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

static void test_refused(void **state)
{
	static struct ctx x;
	int port;
	pt_engine_t *e = engine(&port);

	target(&x, closed_port());
	go(e, &x);
	WAIT_FOR(atomic_load(&x.calls) == 1, 10000);
	assert_int_equal(atomic_load(&x.err), -ECONNREFUSED);
	pt_engine_destroy(e);
	assert_int_equal(atomic_load(&x.calls), 1);
}

/* A listener that never accepts, its queue filled: further SYNs are dropped. */
static int full_listener(int *port, int fill[4])
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 0), 0);
	getsockname(fd, (struct sockaddr *)&a, &l);
	*port = ntohs(a.sin_port);
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof a);
	}
	usleep(100 * 1000);
	return fd;
}

static void test_timeout_and_stop(void **state)
{
	static struct ctx x, y;
	int port, lport, fill[4];
	pt_engine_t *e = engine(&port);
	int lfd = full_listener(&lport, fill);

	target(&x, lport);
	x.timeout_ms = 300;
	go(e, &x);
	WAIT_FOR(atomic_load(&x.calls) == 1, 10000);
	assert_int_equal(atomic_load(&x.err), -ETIMEDOUT);
	target(&y, lport);
	y.timeout_ms = 60000;
	go(e, &y);
	usleep(50 * 1000);
	assert_int_equal(atomic_load(&y.calls), 0);
	pt_engine_stop(e);
	assert_int_equal(atomic_load(&y.calls), 1);
	assert_int_equal(atomic_load(&y.err), -ECANCELED);
	pt_engine_destroy(e);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
}

static void test_refused_by_app(void **state)
{
	static struct ctx x;
	int port;
	pt_engine_t *e = engine(&port);

	target(&x, port);
	x.refuse = true;
	go(e, &x);
	WAIT_FOR(atomic_load(&x.calls) == 1, 10000);
	assert_int_equal(atomic_load(&x.err), 0);
	usleep(50 * 1000);
	pt_engine_destroy(e);
	assert_int_equal(atomic_load(&x.closes), 0);
	assert_int_equal(atomic_load(&x.calls), 1);
}

static void bad_args(pt_worker_t *w, void *arg)
{
	struct ctx *x = arg;
	struct pt_connect_opts o = { .on_connect = on_connect, .arg = x };
	struct sockaddr_un { sa_family_t f; char p[108]; } un = { AF_UNIX, "x" };
	int bad = 0;

	bad += pt_connect(w, (struct sockaddr *)&x->to, sizeof x->to, NULL) == -EINVAL;
	bad += pt_connect(w, (struct sockaddr *)&un, sizeof un, &o) == -EINVAL;
	bad += pt_connect(w, (struct sockaddr *)&x->to, 4, &o) == -EINVAL;
	o.on_connect = NULL;
	bad += pt_connect(w, (struct sockaddr *)&x->to, sizeof x->to, &o) == -EINVAL;
	atomic_store(&x->start_rc, bad);
	atomic_store(&x->started, 1);
}

static void test_bad_args(void **state)
{
	static struct ctx x;
	int port;
	pt_engine_t *e = engine(&port);
	struct pt_connect_opts o = { .on_connect = on_connect, .arg = &x };

	target(&x, port);
	/* not the worker's thread */
	assert_int_equal(pt_connect(pt_engine_worker(e, 0), (struct sockaddr *)&x.to, sizeof x.to, &o),
			 -EINVAL);
	assert_int_equal(pt_post(pt_engine_worker(e, 0), &x.post, bad_args, &x), 0);
	WAIT_FOR(atomic_load(&x.started), 5000);
	assert_int_equal(atomic_load(&x.start_rc), 4);
	pt_engine_destroy(e);
	assert_int_equal(atomic_load(&x.calls), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_timeout_and_stop),
		cmocka_unit_test(test_refused_by_app),
		cmocka_unit_test(test_bad_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
