/*
 * Send and transmit tests over loopback. pt-test: backends.
 * The server side runs a script chosen per test in on_accept; the test thread is the client
 * and checks every byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <portico/engine.h>
#include "support/net.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


/* Reads until EOF comparing against expect; returns bytes read (stops at the first mismatch). */
static size_t recv_compare(int fd, const char *expect, size_t len)
{
	static char buf[1 << 20];
	size_t got = 0;

	for (;;) {
		ssize_t k = recv_r(fd, buf, sizeof buf, 0);
		if (k <= 0)
			return got;
		if (got + (size_t)k > len || memcmp(buf, expect + got, (size_t)k) != 0) {
			print_error("mismatch or excess at offset %zu\n", got);
			return (size_t)-1;
		}
		got += (size_t)k;
	}
}

/* ---- server scripts ---- */

#define MAXCB 256
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static intptr_t g_cb_order[MAXCB];
static ssize_t g_cb_res[MAXCB];
static int g_ncb;
static atomic_int g_closed;
static void (*g_script)(pt_conn_t *c);
static char *g_file_data;
static size_t g_file_len;
static int g_file_fd = -1;

static void record_cb(pt_conn_t *c, void *arg, ssize_t res)
{
	pthread_mutex_lock(&g_mu);
	if (g_ncb < MAXCB) {
		g_cb_order[g_ncb] = (intptr_t)arg;
		g_cb_res[g_ncb++] = res;
	}
	pthread_mutex_unlock(&g_mu);
}

static void on_close(pt_conn_t *c)
{
	atomic_fetch_add(&g_closed, 1);
}

static void on_eof(pt_conn_t *c, int err)
{
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static const struct pt_conn_ops ops = { .on_eof = on_eof, .on_close = on_close };

static int script_accept(pt_conn_t *c, void *arg)
{
	pt_conn_set_ops(c, &ops);
	g_script(c);
	return 0;
}

static pt_engine_t *start(struct pt_engine_config *cfg, int *port)
{
	struct pt_engine_config def;
	int err;

	if (!cfg) {
		pt_engine_config_init(&def);
		cfg = &def;
	}
	cfg->workers = 1;
	g_ncb = 0;
	atomic_store(&g_closed, 0);
	pt_engine_t *e = pt_engine_create(cfg, &err);
	assert_non_null(e);
	int li = pt_engine_listen(e, "127.0.0.1:0", &(struct pt_listen_opts){ .on_accept = script_accept });
	assert_true(li >= 0);
	*port = pt_engine_listen_port(e, li);
	assert_int_equal(pt_engine_start(e), 0);
	return e;
}

static void make_file(size_t len)
{
	char path[] = "/tmp/pt-transmit-XXXXXX";
	g_file_fd = mkstemp(path);
	assert_true(g_file_fd >= 0);
	unlink(path);
	g_file_data = malloc(len);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		g_file_data[i] = (char)x;
	}
	for (size_t off = 0; off < len;) {
		ssize_t k = write(g_file_fd, g_file_data + off, len - off);
		assert_true(k > 0);
		off += (size_t)k;
	}
	g_file_len = len;
}

static void drop_file(void)
{
	close(g_file_fd);
	free(g_file_data);
	g_file_fd = -1;
	g_file_data = NULL;
}

/* ---- ordered sends: copy, reference, MORE, callbacks in order ---- */

static char g_big[3 << 20];

static void script_many(pt_conn_t *c)
{
	size_t off = 0;
	for (intptr_t i = 0; i < 100; i++) {
		size_t n = (size_t)(i * 997 % 30000) + 1;
		unsigned flags = (i % 3 == 0) ? PT_SEND_COPY : 0;
		if (i % 5 == 0)
			flags |= PT_SEND_MORE;
		assert_int_equal(pt_conn_send(c, g_big + off, n, flags, record_cb, (void *)i), 0);
		off += n;
	}
	g_file_len = off;
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void test_ordered_sends(void **state)
{
	int port;

	for (size_t i = 0; i < sizeof g_big; i++)
		g_big[i] = (char)(i % 253);
	g_script = script_many;
	pt_engine_t *e = start(NULL, &port);
	int fd = connect_to(port);
	size_t got = recv_compare(fd, g_big, sizeof g_big);
	WAIT_FOR(atomic_load(&g_closed) == 1, 5000);
	assert_int_equal(got, g_file_len);
	pthread_mutex_lock(&g_mu);
	assert_int_equal(g_ncb, 100);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(g_cb_order[i], i);
		assert_int_equal(g_cb_res[i], (ssize_t)(i * 997 % 30000) + 1);
	}
	pthread_mutex_unlock(&g_mu);
	close(fd);
	pt_engine_destroy(e);
}

/* ---- joining sends: pt_conn_tail_arg, pt_conn_transmit_extend ---- */

static void other_cb(pt_conn_t *c, void *arg, ssize_t res)
{
}

static void script_extend(pt_conn_t *c)
{
	assert_null(pt_conn_tail_arg(c, record_cb));              /* nothing queued */
	assert_int_equal(pt_conn_transmit_extend(c, record_cb, (void *)1, 5), -EBUSY);
	assert_int_equal(pt_conn_send(c, g_big, 100, 0, record_cb, (void *)1), 0);
	assert_ptr_equal(pt_conn_tail_arg(c, record_cb), (void *)1);
	assert_null(pt_conn_tail_arg(c, other_cb));               /* made with another callback */
	assert_int_equal(pt_conn_transmit_extend(c, record_cb, (void *)1, 50), 0);
	assert_int_equal(pt_conn_transmit_extend(c, record_cb, (void *)2, 5), -EBUSY);
	assert_int_equal(pt_conn_send(c, g_big + 150, 10, PT_SEND_COPY, record_cb, (void *)2), 0);
	assert_null(pt_conn_tail_arg(c, record_cb));              /* a copy cannot grow */
	assert_int_equal(pt_conn_transmit_extend(c, record_cb, (void *)2, 5), -EBUSY);
	assert_int_equal(pt_conn_send(c, g_big + 160, 40, 0, record_cb, (void *)3), 0);
	assert_int_equal(pt_conn_transmit_extend(c, record_cb, (void *)1, 5), -EBUSY); /* not newest */
	assert_int_equal(pt_conn_transmit_extend(c, record_cb, (void *)3, 1000), 0);
	assert_int_equal(pt_conn_send_queued(c), 1200);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
	assert_int_equal(pt_conn_transmit_extend(c, record_cb, (void *)3, 5), -EPIPE);
}

static void test_transmit_extend(void **state)
{
	int port;

	for (size_t i = 0; i < sizeof g_big; i++)
		g_big[i] = (char)(i % 251);
	g_script = script_extend;
	pt_engine_t *e = start(NULL, &port);
	int fd = connect_to(port);
	assert_int_equal(recv_compare(fd, g_big, 1200), 1200);
	WAIT_FOR(atomic_load(&g_closed) == 1, 5000);
	pthread_mutex_lock(&g_mu);
	assert_int_equal(g_ncb, 3);
	assert_int_equal(g_cb_order[0], 1);
	assert_int_equal(g_cb_res[0], 150);              /* the callback counts the added bytes */
	assert_int_equal(g_cb_order[1], 2);
	assert_int_equal(g_cb_res[1], 10);
	assert_int_equal(g_cb_order[2], 3);
	assert_int_equal(g_cb_res[2], 1040);
	pthread_mutex_unlock(&g_mu);
	close(fd);
	pt_engine_destroy(e);
}

/* ---- file transmit: 100 MiB, and mixed memory + file ranges ---- */

static void script_file(pt_conn_t *c)
{
	struct pt_chunk ch = { .kind = PT_CHUNK_FILE, .file = { g_file_fd, 0, g_file_len } };
	assert_int_equal(pt_conn_transmit(c, &ch, 1, 0, record_cb, (void *)1), 0);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void test_transmit_100mib_file(void **state)
{
	int port;

	make_file(100u << 20);
	g_script = script_file;
	pt_engine_t *e = start(NULL, &port);
	int fd = connect_to(port);
	size_t got = recv_compare(fd, g_file_data, g_file_len);
	assert_int_equal(got, g_file_len);
	WAIT_FOR(atomic_load(&g_closed) == 1, 5000);
	assert_int_equal(g_ncb, 1);
	assert_int_equal(g_cb_res[0], (ssize_t)g_file_len);
	close(fd);
	pt_engine_destroy(e);
	drop_file();
}

static char g_expect[1 << 20];
static size_t g_expect_len;

static void script_mixed(pt_conn_t *c)
{
	static const char head[] = "HEAD-", mid[] = "-MID-", tail[] = "-TAIL";
	struct pt_chunk ch[] = {
		{ .kind = PT_CHUNK_MEM, .mem = { head, 5 } },
		{ .kind = PT_CHUNK_FILE, .file = { g_file_fd, 1000, 5000 } },
		{ .kind = PT_CHUNK_MEM, .mem = { mid, 5 } },
		{ .kind = PT_CHUNK_FILE, .file = { g_file_fd, 0, 10 } },
		{ .kind = PT_CHUNK_MEM, .mem = { "", 0 } },
		{ .kind = PT_CHUNK_FILE, .file = { g_file_fd, 70000, 0 } },
		{ .kind = PT_CHUNK_MEM, .mem = { tail, 5 } },
	};
	assert_int_equal(pt_conn_transmit(c, ch, 7, PT_SEND_COPY, record_cb, (void *)7), 0);
	/* a second transmit right behind, with a long file range, must follow in order */
	struct pt_chunk ch2[] = {
		{ .kind = PT_CHUNK_FILE, .file = { g_file_fd, 12345, 200000 } },
		{ .kind = PT_CHUNK_MEM, .mem = { "!", 1 } },
	};
	assert_int_equal(pt_conn_transmit(c, ch2, 2, 0, record_cb, (void *)8), 0);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void test_transmit_mixed(void **state)
{
	int port;
	size_t n = 0;

	make_file(300000);
	memcpy(g_expect + n, "HEAD-", 5), n += 5;
	memcpy(g_expect + n, g_file_data + 1000, 5000), n += 5000;
	memcpy(g_expect + n, "-MID-", 5), n += 5;
	memcpy(g_expect + n, g_file_data, 10), n += 10;
	memcpy(g_expect + n, "-TAIL", 5), n += 5;
	memcpy(g_expect + n, g_file_data + 12345, 200000), n += 200000;
	memcpy(g_expect + n, "!", 1), n += 1;
	g_expect_len = n;
	g_script = script_mixed;
	pt_engine_t *e = start(NULL, &port);
	int fd = connect_to(port);
	assert_int_equal(recv_compare(fd, g_expect, g_expect_len), g_expect_len);
	WAIT_FOR(atomic_load(&g_closed) == 1, 5000);
	assert_int_equal(g_ncb, 2);
	assert_int_equal(g_cb_order[0], 7);
	assert_int_equal(g_cb_res[0], 5 + 5000 + 5 + 10 + 5);
	assert_int_equal(g_cb_order[1], 8);
	assert_int_equal(g_cb_res[1], 200001);
	close(fd);
	pt_engine_destroy(e);
	drop_file();
}

/* A file shorter than the range: the request fails with -EIO, nothing hangs. */
static void script_short_file(pt_conn_t *c)
{
	struct pt_chunk ch = { .kind = PT_CHUNK_FILE, .file = { g_file_fd, 0, g_file_len + 100 } };
	assert_int_equal(pt_conn_transmit(c, &ch, 1, 0, record_cb, (void *)1), 0);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void test_transmit_short_file(void **state)
{
	int port;

	make_file(4096);
	g_script = script_short_file;
	pt_engine_t *e = start(NULL, &port);
	int fd = connect_to(port);
	assert_int_equal(recv_compare(fd, g_file_data, g_file_len), g_file_len);
	WAIT_FOR(atomic_load(&g_closed) == 1, 5000);
	assert_int_equal(g_ncb, 1);
	assert_int_equal(g_cb_res[0], -EIO);
	close(fd);
	pt_engine_destroy(e);
	drop_file();
}

/* ---- zero-copy sends (io_uring SEND_ZC; epoll copies) ---- */

static void script_zc(pt_conn_t *c)
{
	for (intptr_t i = 0; i < 3; i++)
		assert_int_equal(pt_conn_send(c, g_big + (size_t)i * (1 << 20), 1 << 20, PT_SEND_ZC,
					      record_cb, (void *)i), 0);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void test_zero_copy(void **state)
{
	int port;

	for (size_t i = 0; i < sizeof g_big; i++)
		g_big[i] = (char)(i * 31 % 251);
	g_script = script_zc;
	pt_engine_t *e = start(NULL, &port);
	int fd = connect_to(port);
	assert_int_equal(recv_compare(fd, g_big, 3 << 20), 3 << 20);
	WAIT_FOR(atomic_load(&g_closed) == 1, 5000);
	assert_int_equal(g_ncb, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(g_cb_res[i], 1 << 20);
	close(fd);
	pt_engine_destroy(e);
}

/* ---- backpressure and closing with sends in flight ---- */

static atomic_int g_refused, g_drained;
static atomic_size_t g_pumped, g_max_queued;
#define PUMP_TOTAL (32u << 20)

static void pump(pt_conn_t *c)
{
	while (atomic_load(&g_pumped) < PUMP_TOTAL) {
		int err = pt_conn_send(c, g_big, 64 << 10, PT_SEND_COPY, NULL, NULL);
		if (err == -EAGAIN) {
			atomic_fetch_add(&g_refused, 1);
			return;
		}
		if (err < 0)
			return;
		atomic_fetch_add(&g_pumped, 64 << 10);
		if (pt_conn_send_queued(c) > atomic_load(&g_max_queued))
			atomic_store(&g_max_queued, pt_conn_send_queued(c));
	}
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void bp_drain(pt_conn_t *c)
{
	atomic_fetch_add(&g_drained, 1);
	pump(c);
}

static const struct pt_conn_ops bp_ops = { .on_drain = bp_drain, .on_close = on_close };

static void script_fill(pt_conn_t *c)
{
	pt_conn_set_ops(c, &bp_ops);
	pump(c);
}

/* A client that does not read: the server is refused, stops queueing, and memory stays within
 * max_send_queue; when the client reads, on_drain resumes the flow and every byte arrives. */
static void test_backpressure_drain(void **state)
{
	struct pt_engine_config cfg;
	int port;

	pt_engine_config_init(&cfg);
	cfg.max_send_queue = 256 << 10;
	atomic_store(&g_refused, 0);
	atomic_store(&g_drained, 0);
	atomic_store(&g_pumped, 0);
	atomic_store(&g_max_queued, 0);
	g_script = script_fill;
	pt_engine_t *e = start(&cfg, &port);
	int fd = connect_to(port);
	usleep(300 * 1000);
	int d1 = atomic_load(&g_drained);
	size_t p1 = atomic_load(&g_pumped);
	usleep(200 * 1000);
	assert_true(atomic_load(&g_refused) >= 1);
	assert_int_equal(atomic_load(&g_drained), d1);       /* stuck while the client sleeps */
	assert_int_equal(atomic_load(&g_pumped), p1);
	assert_true(p1 < PUMP_TOTAL);
	assert_true(atomic_load(&g_max_queued) <= (256u << 10) + (64u << 10));
	static char buf[1 << 16];
	size_t total = 0;
	ssize_t k;
	while ((k = recv_r(fd, buf, sizeof buf, 0)) > 0)
		total += (size_t)k;
	assert_int_equal(total, PUMP_TOTAL);
	assert_true(atomic_load(&g_drained) > d1);
	WAIT_FOR(atomic_load(&g_closed) == 1, 5000);
	close(fd);
	pt_engine_destroy(e);
}

/* Abort with a large send stuck behind a client that never reads: the send completes with an
 * error (its memory is the caller's until then), on_close follows, nothing leaks. */
static void abort_now(pt_timer_t *t, void *arg)
{
	pt_conn_close(arg, PT_CLOSE_ABORT);
}
static pt_timer_t g_abort_timer;

static void script_stuck(pt_conn_t *c)
{
	struct pt_chunk ch[8];
	for (int i = 0; i < 8; i++)   /* 24 MiB: more than loopback socket buffers hold */
		ch[i] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { g_big, sizeof g_big } };
	assert_int_equal(pt_conn_transmit(c, ch, 8, 0, record_cb, (void *)1), 0);
	assert_int_equal(pt_conn_send(c, g_big, 100, PT_SEND_COPY, record_cb, (void *)2), 0);
	pt_timer_init(&g_abort_timer, abort_now, c);
	pt_timer_arm(pt_conn_worker(c), &g_abort_timer, 100);
}

static void test_abort_with_sends_in_flight(void **state)
{
	int port;
	char b;

	struct pt_engine_config cfg;
	pt_engine_config_init(&cfg);
	cfg.max_send_queue = 64u << 20;    /* room for both sends */
	g_script = script_stuck;
	pt_engine_t *e = start(&cfg, &port);
	int fd = connect_to(port);
	WAIT_FOR(atomic_load(&g_closed) == 1, 5000);
	assert_int_equal(atomic_load(&g_closed), 1);
	pthread_mutex_lock(&g_mu);
	assert_int_equal(g_ncb, 2);
	assert_int_equal(g_cb_order[0], 1);
	assert_true(g_cb_res[0] < 0);
	assert_int_equal(g_cb_order[1], 2);   /* behind the failed one, in order: failed too */
	assert_true(g_cb_res[1] < 0);
	pthread_mutex_unlock(&g_mu);
	/* the connection was reset: reading ends with an error or EOF after the buffered bytes */
	while (recv_r(fd, &b, 1, 0) > 0)
		;
	close(fd);
	struct pt_counters cnt;
	pt_engine_counters(e, -1, &cnt);
	assert_int_equal(cnt.ops_inflight, 0);
	pt_engine_destroy(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ordered_sends),
		cmocka_unit_test(test_transmit_extend),
		cmocka_unit_test(test_transmit_100mib_file),
		cmocka_unit_test(test_transmit_mixed),
		cmocka_unit_test(test_transmit_short_file),
		cmocka_unit_test(test_zero_copy),
		cmocka_unit_test(test_backpressure_drain),
		cmocka_unit_test(test_abort_with_sends_in_flight),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
