/*
 * The engine's graceful stop (src/engine/stop.c, listen.c, engine.c) over real loopback
 * sockets. pt-test: backends (run once per engine backend).
 *
 *  - pt_engine_stop_begin returns at once; every connection gets on_stop once, from its worker,
 *    and closes when the application says so; pt_engine_stop then joins.
 *  - connections the kernel had queued on a listener (accepting paused at the limit) are
 *    accepted and told, not reset, when the listener closes.
 *  - a connection whose application never closes it is reset at shutdown_ms.
 * Server callbacks only record (atomics); the test thread plays the clients.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <portico/engine.h>
#include "support/net.h"
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define recv recv_r

static atomic_int g_accepts, g_stops, g_closes, g_wrong_thread;
static bool g_close_on_stop;

static void on_stop(pt_conn_t *c)
{
	atomic_fetch_add(&g_stops, 1);
	if (pt_worker_current() != pt_conn_worker(c))
		atomic_fetch_add(&g_wrong_thread, 1);
	if (!g_close_on_stop)
		return;                        /* never closes: the deadline resets it */
	pt_conn_send(c, "bye", 3, PT_SEND_COPY, NULL, NULL);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void on_close(pt_conn_t *c)
{
	atomic_fetch_add(&g_closes, 1);
}

static const struct pt_conn_ops ops = { .on_stop = on_stop, .on_close = on_close };

static int on_accept(pt_conn_t *c, void *arg)
{
	atomic_fetch_add(&g_accepts, 1);
	pt_conn_set_ops(c, &ops);
	return 0;
}

static pt_engine_t *start(struct pt_engine_config *cfg, int *port)
{
	int err;

	atomic_store(&g_accepts, 0);
	atomic_store(&g_stops, 0);
	atomic_store(&g_closes, 0);
	atomic_store(&g_wrong_thread, 0);
	pt_engine_t *e = pt_engine_create(cfg, &err);
	assert_non_null(e);
	int li = pt_engine_listen(e, "127.0.0.1:0", &(struct pt_listen_opts){ .on_accept = on_accept });
	assert_true(li >= 0);
	*port = pt_engine_listen_port(e, li);
	assert_int_equal(pt_engine_start(e), 0);
	return e;
}

/* Each client reads "bye" and then EOF (a FIN, not a reset). */
static void expect_bye(int fd)
{
	char b[8];

	assert_int_equal(recv(fd, b, sizeof b, MSG_WAITALL), 3);
	assert_memory_equal(b, "bye", 3);
	assert_int_equal(recv(fd, b, 1, 0), 0);
	close(fd);
}

static void test_on_stop(void **state)
{
	int port, fds[6];

	g_close_on_stop = true;
	pt_engine_t *e = start(&(struct pt_engine_config){ .workers = 2 }, &port);
	for (int i = 0; i < 6; i++)
		fds[i] = connect_to(port);
	WAIT_FOR(atomic_load(&g_accepts) == 6, 5000);
	uint64_t t0 = now_ms();
	assert_int_equal(pt_engine_stop_begin(e), 0);
	assert_true(now_ms() - t0 < 1000);           /* returns at once */
	assert_int_equal(pt_engine_stop_begin(e), 0); /* idempotent */
	for (int i = 0; i < 6; i++)
		expect_bye(fds[i]);
	assert_int_equal(pt_engine_stop(e), 0);
	assert_int_equal(atomic_load(&g_stops), 6);
	assert_int_equal(atomic_load(&g_closes), 6);
	assert_int_equal(atomic_load(&g_wrong_thread), 0);
	pt_engine_destroy(e);
}

/* At the limit with PT_FULL_PAUSE, two clients wait in the listener's queue; the stop accepts
 * them (and tells them) before it closes the listener, instead of resetting them. */
static void test_queued_taken(void **state)
{
	int port, fds[3];

	g_close_on_stop = true;
	pt_engine_t *e = start(&(struct pt_engine_config){ .workers = 1, .max_conns = 1,
							  .full_policy = PT_FULL_PAUSE }, &port);
	for (int i = 0; i < 3; i++)
		fds[i] = connect_to(port);
	WAIT_FOR(atomic_load(&g_accepts) == 1, 5000);
	usleep(100 * 1000);             /* epoll: the others are queued; io_uring near the limit
	                                   may have taken them with its single-shot accepts */
	assert_int_equal(pt_engine_stop(e), 0);
	for (int i = 0; i < 3; i++)
		expect_bye(fds[i]);
	assert_int_equal(atomic_load(&g_accepts), 3);
	assert_int_equal(atomic_load(&g_stops), 3);
	pt_engine_destroy(e);
}

/* An application that never closes: the connection is reset at shutdown_ms. */
static void test_deadline(void **state)
{
	int port;
	char b;

	g_close_on_stop = false;
	pt_engine_t *e = start(&(struct pt_engine_config){ .workers = 1, .shutdown_ms = 300 },
			       &port);
	int fd = connect_to(port);
	WAIT_FOR(atomic_load(&g_accepts) == 1, 5000);
	uint64_t t0 = now_ms();
	assert_int_equal(pt_engine_stop(e), 0);
	uint64_t took = now_ms() - t0;
	assert_true(took >= 250 && took < 5000);
	assert_int_equal(atomic_load(&g_stops), 1);
	assert_int_equal(atomic_load(&g_closes), 1);
	ssize_t k = recv(fd, &b, 1, 0);
	assert_true(k == 0 || (k < 0 && errno == ECONNRESET));
	close(fd);
	pt_engine_destroy(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_on_stop),
		cmocka_unit_test(test_queued_taken),
		cmocka_unit_test(test_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
