/*
 * Fault injection: the harness's rules behind the library's one hook (tests/support/fault.c,
 * pt_fault_sim), PORTICO_FAULTS, and the engine under injected accept, receive, send, socket and
 * allocation failures (its points: src/engine/fault.h). pt-test: backends.
 *
 * The server is an echo built on the engine API (PT_SEND_COPY; a send refused with -EAGAIN or
 * -ENOMEM is held, receiving paused, and retried on on_drain or from a timer). The clients are
 * threads: each connection sends a pattern of its own while reading the echo and checks every
 * byte as it arrives, so a connection either completes byte-exact, or ends early (closed or
 * reset) with every byte it got right, or the test fails (wrong byte, or no progress: a hang).
 * Each engine test then checks that faults hit what they should (counters, callbacks), that
 * clients are served normally once the faults stop, that the engine stops with no connection
 * and no kernel operation left, and that the process has exactly the descriptors it had before
 * the engine was created. LeakSanitizer checks memory at exit (sanitizer build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <portico/engine.h>
#include "engine/fault.h"
#include "support/fault.h"
#include "support/net.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef PT_TESTING

/* ---- helpers ---- */

static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Descriptors close asynchronously in places (io_uring ring teardown): give them a moment. */
static void assert_fds(int expect)
{
	WAIT_FOR(fd_count() == expect, 2000);
	assert_int_equal(fd_count(), expect);
}

static uint8_t pat(unsigned seed, size_t i)
{
	return (uint8_t)(seed * 131u + i * 7u + i / 251u);
}

enum { C_OK, C_BROKEN, C_MISMATCH, C_HUNG };

/* One connection: sends size bytes of pattern seed while reading the echo, checking each byte. */
static int echo_once(int port, size_t size, unsigned seed)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	uint8_t out[16384], in[65536];
	size_t sent = 0, got = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = C_BROKEN;

	if (fd < 0)
		return C_BROKEN;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	while (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		if (errno != EINTR) {
			close(fd);
			return C_BROKEN;
		}
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	uint64_t deadline = now_ms() + 10000;
	while (got < size) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (sent < size ? POLLOUT : 0) };
		uint64_t now = now_ms();
		if (now >= deadline) {
			rc = C_HUNG;
			goto out;
		}
		int k = poll(&p, 1, (int)(deadline - now));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			rc = C_HUNG;
			goto out;
		}
		if ((p.revents & POLLOUT) && sent < size) {
			size_t n = size - sent < sizeof out ? size - sent : sizeof out;
			for (size_t i = 0; i < n; i++)
				out[i] = pat(seed, sent + i);
			ssize_t s = send(fd, out, n, MSG_NOSIGNAL);
			if (s > 0)
				sent += (size_t)s;
			else if (s < 0 && errno != EAGAIN && errno != EINTR)
				goto out;           /* reset: broken */
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = recv(fd, in, sizeof in, 0);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				goto out;           /* closed or reset early: broken */
			for (ssize_t i = 0; i < r; i++) {
				if (got + (size_t)i >= size || in[i] != pat(seed, got + (size_t)i)) {
					rc = C_MISMATCH;
					goto out;
				}
			}
			if (r > 0)
				got += (size_t)r;
		}
	}
	rc = C_OK;
out:
	close(fd);
	return rc;
}

struct cstat {
	atomic_int ok, broken, mismatch, hung;
};

struct cjob {
	int port, port2, conns;     /* port2 > 0: every other connection goes there */
	size_t size;
	unsigned seed;
	bool retry;                 /* broken: connect again (up to 200 times) */
	struct cstat *st;
};

static void *client_thread(void *arg)
{
	struct cjob *j = arg;

	for (int i = 0; i < j->conns && !atomic_load(&j->st->hung); i++) {   /* a hang: stop soon */
		for (int attempt = 0;; attempt++) {
			int port = j->port2 > 0 && (i + attempt) % 2 ? j->port2 : j->port;
			int r = echo_once(port, j->size, j->seed + (unsigned)i);
			if (r == C_OK) {
				atomic_fetch_add(&j->st->ok, 1);
			} else if (r == C_BROKEN) {
				atomic_fetch_add(&j->st->broken, 1);
				if (j->retry && attempt < 200) {
					usleep(2000);
					continue;
				}
			} else {
				atomic_fetch_add(r == C_MISMATCH ? &j->st->mismatch : &j->st->hung, 1);
			}
			break;
		}
	}
	return NULL;
}

/* threads x conns connections of size bytes each, to port (and port2 if > 0); returns how
 * many completed byte-exact. */
static int run_clients2(int port, int port2, int threads, int conns, size_t size, bool retry,
			struct cstat *st)
{
	pthread_t th[32];
	struct cjob jobs[32];

	assert_true(threads <= 32);
	*st = (struct cstat){ 0 };
	for (int i = 0; i < threads; i++) {
		jobs[i] = (struct cjob){ port, port2, conns, size, (unsigned)i * 1000u + 1, retry, st };
		assert_int_equal(pthread_create(&th[i], NULL, client_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	print_message("clients: %d ok, %d broken, %d mismatched, %d hung\n", atomic_load(&st->ok),
		      atomic_load(&st->broken), atomic_load(&st->mismatch), atomic_load(&st->hung));
	assert_int_equal(atomic_load(&st->mismatch), 0);
	assert_int_equal(atomic_load(&st->hung), 0);
	return atomic_load(&st->ok);
}

static int run_clients(int port, int threads, int conns, size_t size, bool retry, struct cstat *st)
{
	return run_clients2(port, 0, threads, conns, size, retry, st);
}

/* ---- the echo server ---- */

struct app {
	char *held;                 /* a refused send, retried later (receiving paused) */
	size_t held_len;
	bool eof;                   /* the peer finished: close once held is out */
	pt_timer_t retry;
};

static atomic_int g_accepts, g_closes, g_eof_errs, g_enomem, g_send_errs, g_last_eof_err;
static atomic_int g_chunked;    /* transmit echoes in 6 chunks (allocation tests) */

static int send_echo(pt_conn_t *c, const void *d, size_t n)
{
	if (!atomic_load(&g_chunked) || n < 6)
		return pt_conn_send(c, d, n, PT_SEND_COPY, NULL, NULL);
	struct pt_chunk ch[6];
	size_t step = n / 6;
	for (int i = 0; i < 6; i++) {
		ch[i].kind = PT_CHUNK_MEM;
		ch[i].mem.base = (const char *)d + (size_t)i * step;
		ch[i].mem.len = i < 5 ? step : n - 5 * step;
	}
	return pt_conn_transmit(c, ch, 6, PT_SEND_COPY, NULL, NULL);
}

static void held_retry(pt_conn_t *c);

static void retry_fn(pt_timer_t *t, void *arg)
{
	held_retry(arg);
}

static void hold(pt_conn_t *c, const void *d, size_t n, int err)
{
	struct app *a = pt_conn_area(c);

	if (err == -ENOMEM)
		atomic_fetch_add(&g_enomem, 1);
	if (!(a->held = malloc(n)))
		abort();                     /* a worker thread: no cmocka assertion here */
	memcpy(a->held, d, n);
	a->held_len = n;
	pt_conn_pause_recv(c);
	if (err == -ENOMEM)
		pt_timer_arm(pt_conn_worker(c), &a->retry, 5);   /* -EAGAIN waits for on_drain */
}

static void send_failed(pt_conn_t *c, int err)
{
	atomic_fetch_add(&g_send_errs, 1);
	pt_conn_close(c, PT_CLOSE_ABORT);
}

static void held_retry(pt_conn_t *c)
{
	struct app *a = pt_conn_area(c);

	if (!a->held)
		return;
	int err = send_echo(c, a->held, a->held_len);
	if (err == -EAGAIN)
		return;                      /* on_drain comes */
	if (err == -ENOMEM) {
		atomic_fetch_add(&g_enomem, 1);
		pt_timer_arm(pt_conn_worker(c), &a->retry, 5);
		return;
	}
	free(a->held);
	a->held = NULL;
	if (err < 0)
		send_failed(c, err);
	else if (a->eof)
		pt_conn_close(c, PT_CLOSE_GRACEFUL);
	else
		pt_conn_resume_recv(c);
}

static void echo_data(pt_conn_t *c, const void *d, size_t n)
{
	int err = send_echo(c, d, n);

	if (err == -EAGAIN || err == -ENOMEM)
		hold(c, d, n, err);
	else if (err < 0)
		send_failed(c, err);
}

static void echo_drain(pt_conn_t *c)
{
	held_retry(c);
}

static void echo_eof(pt_conn_t *c, int err)
{
	struct app *a = pt_conn_area(c);

	if (err) {
		atomic_fetch_add(&g_eof_errs, 1);
		atomic_store(&g_last_eof_err, err);
		pt_conn_close(c, PT_CLOSE_ABORT);
	} else if (a->held) {
		a->eof = true;
	} else {
		pt_conn_close(c, PT_CLOSE_GRACEFUL);
	}
}

static void echo_close(pt_conn_t *c)
{
	struct app *a = pt_conn_area(c);

	pt_timer_cancel(&a->retry);
	free(a->held);
	a->held = NULL;
	atomic_fetch_add(&g_closes, 1);
}

static const struct pt_conn_ops echo_ops = {
	.on_data = echo_data, .on_eof = echo_eof, .on_drain = echo_drain, .on_close = echo_close,
};

static int echo_accept(pt_conn_t *c, void *arg)
{
	struct app *a = pt_conn_area(c);

	atomic_fetch_add(&g_accepts, 1);
	pt_timer_init(&a->retry, retry_fn, c);
	pt_conn_set_ops(c, &echo_ops);
	return 0;
}

/* ---- file transmit (sendfile path) ---- */

static int g_file_fd = -1;
static size_t g_file_len;
static atomic_int g_file_errs;

static void file_sent(pt_conn_t *c, void *arg, ssize_t res)
{
	if (res < 0)
		atomic_fetch_add(&g_file_errs, 1);
	pt_conn_close(c, res < 0 ? PT_CLOSE_ABORT : PT_CLOSE_GRACEFUL);
}

static const struct pt_conn_ops file_ops = { .on_close = echo_close };

static int file_accept(pt_conn_t *c, void *arg)
{
	static const char head[] = "FILE\n";
	struct pt_chunk ch[2] = {
		{ .kind = PT_CHUNK_MEM, .mem = { head, 5 } },
		{ .kind = PT_CHUNK_FILE, .file = { g_file_fd, 0, g_file_len } },
	};

	echo_accept(c, arg);
	pt_conn_set_ops(c, &file_ops);
	return pt_conn_transmit(c, ch, 2, 0, file_sent, NULL);
}

/* ---- fixture ---- */

struct fix {
	pt_engine_t *e;
	bool two_listeners;         /* set before fix_start: a second echo listener on port2 */
	int port, port2, port_file;
	int fds;                    /* descriptors before the engine existed */
};

static void fix_start(struct fix *f, struct pt_engine_config *cfg)
{
	struct pt_engine_config def;
	int err;

	if (!cfg) {
		pt_engine_config_init(&def);
		cfg = &def;
	}
	if (!cfg->workers)
		cfg->workers = 2;
	cfg->conn_area = sizeof(struct app);
	fault_clear();
	atomic_store(&g_accepts, 0);
	atomic_store(&g_closes, 0);
	atomic_store(&g_eof_errs, 0);
	atomic_store(&g_last_eof_err, 0);
	atomic_store(&g_enomem, 0);
	atomic_store(&g_send_errs, 0);
	atomic_store(&g_chunked, 0);
	atomic_store(&g_file_errs, 0);
	f->fds = fd_count();
	f->e = pt_engine_create(cfg, &err);
	assert_non_null(f->e);
	struct pt_listen_opts echo = { .on_accept = echo_accept };
	int li = pt_engine_listen(f->e, "127.0.0.1:0", &echo);
	assert_true(li >= 0);
	f->port = pt_engine_listen_port(f->e, li);
	f->port2 = f->port_file = -1;
	if (f->two_listeners) {
		li = pt_engine_listen(f->e, "127.0.0.1:0", &echo);
		assert_true(li >= 0);
		f->port2 = pt_engine_listen_port(f->e, li);
	}
	if (g_file_fd >= 0) {
		li = pt_engine_listen(f->e, "127.0.0.1:0", &(struct pt_listen_opts){ .on_accept = file_accept });
		assert_true(li >= 0);
		f->port_file = pt_engine_listen_port(f->e, li);
	}
	assert_int_equal(pt_engine_start(f->e), 0);
}

static void counters(struct fix *f, struct pt_counters *c)
{
	assert_int_equal(pt_engine_counters(f->e, -1, c), 0);
}

/* Faults off: new clients are served at once, byte-exact; then a full stop leaves nothing. */
static void fix_recover_and_stop(struct fix *f)
{
	struct cstat st;
	struct pt_counters c;

	fault_clear();
	assert_int_equal(run_clients(f->port, 8, 2, 8192, false, &st), 16);
	assert_int_equal(atomic_load(&st.broken), 0);
	WAIT_FOR(atomic_load(&g_closes) == atomic_load(&g_accepts), 5000);
	assert_int_equal(atomic_load(&g_closes), atomic_load(&g_accepts));
	assert_int_equal(pt_engine_stop(f->e), 0);
	counters(f, &c);
	assert_int_equal(c.conns, 0);
	assert_int_equal(c.ops_inflight, 0);
	assert_int_equal(c.accepts, c.closes);
	pt_engine_destroy(f->e);
	assert_fds(f->fds);
}

/* ---- timers ---- */

static pt_timer_t g_ta, g_tb;
static atomic_int g_fired_a, g_fired_b, g_still_armed;

static void fired(pt_timer_t *t, void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
}

/* Re-initialising an armed timer (as a pause that is already paused does) disarms it instead
 * of leaving the wheel pointing at it. */
static void reinit_armed(pt_worker_t *w, void *arg)
{
	pt_timer_init(&g_ta, fired, &g_fired_a);
	pt_timer_arm(w, &g_ta, 20);
	pt_timer_init(&g_ta, fired, &g_fired_a);       /* armed: disarmed here */
	atomic_store(&g_still_armed, pt_timer_armed(&g_ta));
	pt_timer_arm(w, &g_ta, 20);                    /* same slot: a stale link would loop */
	pt_timer_init(&g_tb, fired, &g_fired_b);
	pt_timer_arm(w, &g_tb, 60);
}

static void test_timer_reinit(void **state)
{
	struct fix f = { 0 };
	pt_post_t node;

	fix_start(&f, NULL);
	atomic_store(&g_fired_a, 0);
	atomic_store(&g_fired_b, 0);
	assert_int_equal(pt_post(pt_engine_worker(f.e, 0), &node, reinit_armed, NULL), 0);
	WAIT_FOR(atomic_load(&g_fired_b) == 1, 3000);
	usleep(50 * 1000);
	assert_int_equal(atomic_load(&g_fired_a), 1);
	assert_int_equal(atomic_load(&g_fired_b), 1);
	assert_int_equal(atomic_load(&g_still_armed), 0);
	fix_recover_and_stop(&f);
}

/* ---- the rules ---- */

static void test_rule_triggers(void **state)
{
	fault_clear();
	/* nth */
	assert_int_equal(fault_set(PT_SRV_FAULT_OPEN, EACCES, 3, 0, 0, 0), 0);
	for (int i = 1; i <= 10; i++)
		assert_int_equal(pt_fault_sim(PT_SRV_FAULT_OPEN), i == 3 ? -EACCES : 0);
	assert_int_equal(fault_hits(PT_SRV_FAULT_OPEN), 1);
	assert_int_equal(fault_calls(PT_SRV_FAULT_OPEN), 10);
	/* every, capped by count; the errno may be given negative */
	assert_int_equal(fault_set(PT_SRV_FAULT_OPEN, -ENOENT, 0, 4, 0, 2), 0);
	for (int i = 1; i <= 16; i++)
		assert_int_equal(pt_fault_sim(PT_SRV_FAULT_OPEN), (i == 4 || i == 8) ? -ENOENT : 0);
	assert_int_equal(fault_hits(PT_SRV_FAULT_OPEN), 2);
	/* no trigger: every call, after the first `after` */
	struct fault_rule r = { .err = EMFILE, .after = 5, .count = 3 };
	assert_int_equal(fault_set_rule(PT_FAULT_SOCKET, &r), 0);
	for (int i = 1; i <= 10; i++) {
		int want = (i >= 6 && i <= 8) ? -EMFILE : 0;
		assert_int_equal(pt__fault(PT_FAULT_SOCKET), want);
		assert_int_equal(pt__fault_last(PT_FAULT_SOCKET), want);
	}
	/* nth counts from after */
	r = (struct fault_rule){ .err = EMFILE, .after = 5, .nth = 2 };
	assert_int_equal(fault_set_rule(PT_FAULT_SOCKET, &r), 0);
	for (int i = 1; i <= 10; i++)
		assert_int_equal(pt_fault_sim(PT_FAULT_SOCKET), i == 7 ? -EMFILE : 0);
	/* other operations are untouched; err 0 disarms */
	assert_int_equal(pt_fault_sim(PT_FAULT_ACCEPT), 0);
	assert_int_equal(fault_set(PT_FAULT_SOCKET, 0, 0, 0, 0, 0), 0);
	assert_int_equal(pt_fault_sim(PT_FAULT_SOCKET), 0);
	/* bad rules */
	assert_int_equal(fault_set(PT_FAULT_USER + 1, EIO, 0, 0, 0, 0), -EINVAL);
	assert_int_equal(fault_set(PT_SRV_FAULT_OPEN, EIO, 0, 0, 1000001, 0), -EINVAL);
	assert_int_equal(fault_set(PT_SRV_FAULT_OPEN, 5000, 0, 0, 0, 0), -EINVAL);
	fault_clear();
	assert_int_equal(fault_hits(PT_SRV_FAULT_OPEN), 0);
	assert_int_equal(pt_fault_sim(PT_SRV_FAULT_OPEN), 0);
}

static void test_rule_rate(void **state)
{
	static uint8_t first[100000];
	unsigned hits = 0, same = 0;

	fault_clear();
	fault_seed(7);
	assert_int_equal(fault_set(PT_SRV_FAULT_OPEN, EIO, 0, 0, 250000, 0), 0);
	for (unsigned i = 0; i < 100000; i++)
		hits += first[i] = pt_fault_sim(PT_SRV_FAULT_OPEN) != 0;
	assert_true(hits > 24000 && hits < 26000);
	assert_int_equal(fault_hits(PT_SRV_FAULT_OPEN), hits);
	/* the same seed fails the same calls; another seed others */
	assert_int_equal(fault_set(PT_SRV_FAULT_OPEN, EIO, 0, 0, 250000, 0), 0);
	for (unsigned i = 0; i < 100000; i++)
		assert_int_equal(pt_fault_sim(PT_SRV_FAULT_OPEN) != 0, first[i]);
	fault_seed(8);
	assert_int_equal(fault_set(PT_SRV_FAULT_OPEN, EIO, 0, 0, 250000, 0), 0);
	for (unsigned i = 0; i < 100000; i++)
		same += (pt_fault_sim(PT_SRV_FAULT_OPEN) != 0) == first[i];
	assert_true(same < 70000);
	/* 0 and 1 000 000 ppm */
	assert_int_equal(fault_set(PT_SRV_FAULT_OPEN, EIO, 0, 0, 1000000, 0), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(pt_fault_sim(PT_SRV_FAULT_OPEN), -EIO);
	fault_seed(1);
	fault_clear();
}

static void *hammer(void *arg)
{
	for (int i = 0; i < 50000; i++)
		pt_fault_sim((int)(intptr_t)arg);
	return NULL;
}

/* Counts are exact under contention, and count is never exceeded. */
static void test_rule_threads(void **state)
{
	pthread_t th[4];

	fault_clear();
	assert_int_equal(fault_set(PT_SRV_FAULT_OPEN, EIO, 0, 10, 0, 0), 0);
	assert_int_equal(fault_set(PT_FAULT_ALLOC, ENOMEM, 0, 0, 500000, 777), 0);
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)(i % 2 ? PT_SRV_FAULT_OPEN : PT_FAULT_ALLOC));
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(fault_calls(PT_SRV_FAULT_OPEN), 100000);
	assert_int_equal(fault_hits(PT_SRV_FAULT_OPEN), 10000);
	assert_int_equal(fault_hits(PT_FAULT_ALLOC), 777);
	fault_clear();
}

/* ---- PORTICO_FAULTS ---- */

static void bad_spec(const char *spec, const char *expect)
{
	char why[512] = "";

	assert_int_equal(fault_parse(spec, why, sizeof why), -EINVAL);
	if (!strstr(why, expect))
		fail_msg("'%s': message '%s' lacks '%s'", spec, why, expect);
}

static void test_parse(void **state)
{
	char why[512];

	assert_int_equal(fault_parse("accept=EMFILE@nth:2, recv=ECONNRESET@rate:1000 ,"
					 "send=EPIPE@every:3/count:2,alloc=ENOMEM@nth:4/after:10,"
					 "open=13,seed=42", why, sizeof why), 0);
	for (int i = 1; i <= 4; i++)
		assert_int_equal(pt_fault_sim(PT_FAULT_ACCEPT), i == 2 ? -EMFILE : 0);
	for (int i = 1; i <= 12; i++)
		assert_int_equal(pt_fault_sim(PT_FAULT_SEND), (i == 3 || i == 6) ? -EPIPE : 0);
	for (int i = 1; i <= 20; i++)
		assert_int_equal(pt_fault_sim(PT_FAULT_ALLOC), i == 14 ? -ENOMEM : 0);
	assert_int_equal(pt_fault_sim(PT_SRV_FAULT_OPEN), -EACCES);    /* no trigger: always */
	assert_int_equal(pt_fault_sim(PT_FAULT_SOCKET), 0);         /* no rule */
	unsigned hits = 0;
	for (int i = 0; i < 100000; i++)
		hits += pt_fault_sim(PT_FAULT_RECV) == -ECONNRESET;
	assert_true(hits > 50 && hits < 150);

	/* a bad spec names the bad part and leaves the rules as they were */
	bad_spec("acept=EMFILE", "unknown operation 'acept'");
	bad_spec("accept=EMFLIE@nth:1", "unknown errno 'EMFLIE'");
	bad_spec("accept", "expected OP=ERRNO");
	bad_spec("recv=ECONNRESET@rat:5", "unknown knob 'rat'");
	bad_spec("recv=ECONNRESET@rate:2000000", "'rate:2000000'");
	bad_spec("recv=ECONNRESET@rate:1x", "'rate:1x'");
	bad_spec("send=EPIPE@every", "'every' needs a value");
	bad_spec("send=EPIPE@every:0", "from 1 to 4294967295");
	bad_spec("send=EPIPE@rat:x", "unknown knob 'rat'");
	bad_spec("send=EPIPE@after:-1", "from 0 to");
	bad_spec("send=EPIPE,send=EAGAIN", "a second rule for send");
	bad_spec("seed=x", "seed");
	bad_spec("send=EPIPE@", "nothing after '@'");
	bad_spec("send=EPIPE@nth:1/", "empty knob");
	bad_spec("accept=EMFILE,alloc=0", "unknown errno '0'");
	assert_int_equal(pt_fault_sim(PT_SRV_FAULT_OPEN), -EACCES);
	/* empty: no faults */
	assert_int_equal(fault_parse("", why, sizeof why), 0);
	assert_int_equal(pt_fault_sim(PT_SRV_FAULT_OPEN), 0);
	assert_int_equal(fault_parse(" , ", why, sizeof why), 0);
	fault_seed(1);
	fault_clear();
}

/* PORTICO_FAULTS is read once, before main: a bad one stops the process with status 2 and
 * a message naming the bad part (a child process of this test: see main). */
static int run_child(const char *spec, char *out, size_t n)
{
	char self[512], cmd[600];
	ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);

	assert_true(k > 0);
	self[k] = 0;
	snprintf(cmd, sizeof cmd, "'%s' --fault-env 2>&1", self);
	setenv("PORTICO_FAULTS", spec, 1);
	FILE *p = popen(cmd, "r");
	unsetenv("PORTICO_FAULTS");
	assert_non_null(p);
	size_t got = fread(out, 1, n - 1, p);
	out[got] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_env(void **state)
{
	char out[4096];

	assert_int_equal(run_child("open=EACCES@nth:2/count:1", out, sizeof out), 0);
	if (!strstr(out, "results: 0 -13 0") || !strstr(out, "open: all 1 failures injected"))
		fail_msg("child said: %s", out);
	assert_int_equal(run_child("open=EACCES,recv=ECONNRESET@every:x", out, sizeof out), 2);
	if (!strstr(out, "PORTICO_FAULTS: 'recv=ECONNRESET@every:x'"))
		fail_msg("child said: %s", out);
	assert_null(strstr(out, "results"));
}

/* ---- accept ---- */

/* EMFILE on the 3rd accept: that client's connection is dropped, accepting pauses and resumes by
 * itself, and every client (retrying a dropped connection) is served. */
static void test_accept_nth(void **state)
{
	struct pt_engine_config cfg;
	struct fix f = { 0 };
	struct cstat st;
	struct pt_counters c;

	pt_engine_config_init(&cfg);
	cfg.full_policy = PT_FULL_PAUSE;
	fix_start(&f, &cfg);
	assert_int_equal(fault_set(PT_FAULT_ACCEPT, EMFILE, 3, 0, 0, 1), 0);
	assert_int_equal(run_clients(f.port, 1, 12, 4096, true, &st), 12);
	assert_int_equal(fault_hits(PT_FAULT_ACCEPT), 1);
	assert_int_equal(atomic_load(&st.broken), 1);
	counters(&f, &c);
	assert_int_equal(c.accept_errors, 1);
	assert_true(c.accept_paused >= 1);
	assert_int_equal(c.accepts, 12);
	fix_recover_and_stop(&f);
}

/* EMFILE on 30% of accepts (at most 8) under parallel clients, default policy. */
static void test_accept_rate(void **state)
{
	struct fix f = { 0 };
	struct cstat st;
	struct pt_counters c;

	fix_start(&f, NULL);
	assert_int_equal(fault_set(PT_FAULT_ACCEPT, EMFILE, 0, 0, 300000, 8), 0);
	assert_int_equal(run_clients(f.port, 6, 8, 16384, true, &st), 48);
	assert_int_equal(fault_hits(PT_FAULT_ACCEPT), 8);
	assert_true(atomic_load(&st.broken) >= 8);      /* more when the default policy sheds */
	counters(&f, &c);
	assert_int_equal(c.accept_errors, 8);
	fix_recover_and_stop(&f);
}

/* Two listeners on one worker, PT_FULL_PAUSE: both report accept errors in the same round
 * (as they do when the process is out of descriptors), the second while accepting is paused
 * already. The pause and its retry timer must survive that. */
static void test_accept_two_listeners(void **state)
{
	struct pt_engine_config cfg;
	struct fix f = { .two_listeners = true };
	struct cstat st;

	pt_engine_config_init(&cfg);
	cfg.workers = 1;
	cfg.full_policy = PT_FULL_PAUSE;
	fix_start(&f, &cfg);
	assert_int_equal(fault_set(PT_FAULT_ACCEPT, EMFILE, 0, 0, 500000, 40), 0);
	assert_int_equal(run_clients2(f.port, f.port2, 8, 10, 4096, true, &st), 80);
	print_message("accept: %llu failed\n", (unsigned long long)fault_hits(PT_FAULT_ACCEPT));
	fix_recover_and_stop(&f);
}

/* ---- receive ---- */

/* ECONNRESET on 5% of receives (at most 6): exactly the connections hit end with on_eof(error)
 * and close; every other one is served byte-exact. */
static void test_recv_reset(void **state)
{
	struct fix f = { 0 };
	struct cstat st;

	fix_start(&f, NULL);
	assert_int_equal(fault_set(PT_FAULT_RECV, ECONNRESET, 0, 0, 50000, 6), 0);
	int ok = run_clients(f.port, 8, 4, 65536, false, &st);
	int hits = (int)fault_hits(PT_FAULT_RECV);
	assert_true(hits >= 1);
	assert_int_equal(atomic_load(&st.broken), hits);
	assert_int_equal(ok, 32 - hits);
	WAIT_FOR(atomic_load(&g_closes) == 32, 5000);
	assert_int_equal(atomic_load(&g_eof_errs), hits);
	assert_int_equal(atomic_load(&g_last_eof_err), -ECONNRESET);
	fix_recover_and_stop(&f);
}

/* EAGAIN / ENOBUFS / EINTR on receives: the receive re-arms and nothing is lost. */
static void test_recv_retryable(void **state)
{
	static const int errs[] = { EAGAIN, ENOBUFS, EINTR };
	struct fix f = { 0 };
	struct cstat st;

	fix_start(&f, NULL);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fault_set(PT_FAULT_RECV, errs[i], 0, 2 + i, 0, 0), 0);
		assert_int_equal(run_clients(f.port, 8, 2, 65536, false, &st), 16);
		assert_true(fault_hits(PT_FAULT_RECV) > 0);
	}
	assert_int_equal(atomic_load(&g_eof_errs), 0);
	fix_recover_and_stop(&f);
}

/* ---- send ---- */

/* EPIPE, ENOBUFS and ECONNRESET on 10% of kernel sends (at most 5 each): the stream of a
 * connection hit is broken, so the engine resets it (on_close follows); the others are
 * byte-exact. */
static void test_send_errors(void **state)
{
	static const int errs[] = { EPIPE, ENOBUFS, ECONNRESET };
	struct fix f = { 0 };
	struct cstat st;

	fix_start(&f, NULL);
	for (int i = 0; i < 3; i++) {
		int closes = atomic_load(&g_closes);
		assert_int_equal(fault_set(PT_FAULT_SEND, errs[i], 0, 0, 100000, 5), 0);
		int ok = run_clients(f.port, 8, 4, 65536, false, &st);
		int hits = (int)fault_hits(PT_FAULT_SEND);
		print_message("%s: %d sends failed\n", strerror(errs[i]), hits);
		assert_true(hits >= 1);
		assert_int_equal(atomic_load(&st.broken), hits);
		assert_int_equal(ok, 32 - hits);
		WAIT_FOR(atomic_load(&g_closes) == closes + 32, 5000);
		assert_int_equal(atomic_load(&g_closes), closes + 32);
	}
	fix_recover_and_stop(&f);
}

/* EAGAIN on every other kernel send, memory and sendfile: the engine waits for writability
 * (which an injected EAGAIN must not leave unreported) and loses nothing. */
static void test_send_eagain(void **state)
{
	struct fix f = { 0 };
	struct cstat st;
	char path[] = "/tmp/pt-fault-XXXXXX";
	int fd0 = fd_count();

	g_file_len = (3u << 20) + 77;
	g_file_fd = mkstemp(path);
	assert_true(g_file_fd >= 0);
	unlink(path);
	uint8_t *data = malloc(g_file_len);
	for (size_t i = 0; i < g_file_len; i++)
		data[i] = pat(5, i);
	assert_int_equal(write(g_file_fd, data, g_file_len), (ssize_t)g_file_len);
	fix_start(&f, NULL);
	assert_int_equal(fault_set(PT_FAULT_SEND, EAGAIN, 0, 2, 0, 0), 0);
	assert_int_equal(run_clients(f.port, 8, 3, 131072, false, &st), 24);
	uint64_t hits = fault_hits(PT_FAULT_SEND);
	assert_true(hits > 0);
	assert_int_equal(fault_set(PT_FAULT_SEND, EINTR, 0, 3, 0, 0), 0);
	assert_int_equal(run_clients(f.port, 4, 2, 65536, false, &st), 8);
	assert_true(fault_hits(PT_FAULT_SEND) > 0);
	/* the file: "FILE\n" then g_file_len bytes, by sendfile */
	assert_int_equal(fault_set(PT_FAULT_SEND, EAGAIN, 0, 2, 0, 0), 0);
	for (int n = 0; n < 3; n++) {
		int s = connect_to(f.port_file);
		static uint8_t buf[(3u << 20) + 200];
		size_t got = 0;
		for (;;) {
			ssize_t k = recv_r(s, buf + got, sizeof buf - got, 0);
			if (k <= 0)
				break;
			got += (size_t)k;
		}
		close(s);
		assert_int_equal(got, g_file_len + 5);
		assert_memory_equal(buf, "FILE\n", 5);
		assert_memory_equal(buf + 5, data, g_file_len);
	}
	assert_true(fault_hits(PT_FAULT_SEND) > 0);
	assert_int_equal(atomic_load(&g_file_errs), 0);
	fix_recover_and_stop(&f);
	close(g_file_fd);
	g_file_fd = -1;
	free(data);
	assert_fds(fd0);
}

/* ---- allocation ---- */

/* One connection; the Nth allocation after a message arrives fails. A 6-chunk PT_SEND_COPY
 * transmit on an idle connection asks for: 1 its send queue (issue 19: an idle connection has
 * none), 2 its send request, 3 its chunk array, 4 the copy, then the kernel send needs 5 a send
 * context. 1-4: the transmit is refused with -ENOMEM and nothing is queued; the application
 * retries later and the echo arrives intact. 5: the bytes were accepted, so the stream is
 * broken: the engine resets the connection and on_close runs. */
static void test_alloc_nth(void **state)
{
	struct fix f = { 0 };
	char buf[600], msg[600];

	fix_start(&f, NULL);
	atomic_store(&g_chunked, 1);
	for (unsigned nth = 1; nth <= 5; nth++) {
		WAIT_FOR(atomic_load(&g_closes) == (int)nth - 1, 3000);   /* the last one is gone */
		assert_int_equal(atomic_load(&g_closes), nth - 1);
		int s = connect_to(f.port);
		send_all(s, "warm", 4);
		assert_int_equal(recv_r(s, buf, 4, MSG_WAITALL), 4);
		int enomem = atomic_load(&g_enomem), closes = atomic_load(&g_closes);
		assert_int_equal(fault_set(PT_FAULT_ALLOC, ENOMEM, nth, 0, 0, 1), 0);
		for (size_t i = 0; i < sizeof msg; i++)
			msg[i] = (char)pat(nth, i);
		send_all(s, msg, sizeof msg);
		if (nth <= 4) {
			assert_int_equal(recv_r(s, buf, sizeof msg, MSG_WAITALL), (ssize_t)sizeof msg);
			assert_memory_equal(buf, msg, sizeof msg);
			assert_int_equal(atomic_load(&g_enomem), enomem + 1);
			send_all(s, "more", 4);                     /* and the connection goes on */
			assert_int_equal(recv_r(s, buf, 4, MSG_WAITALL), 4);
			assert_memory_equal(buf, "more", 4);
		} else {
			assert_true(recv_r(s, buf, sizeof buf, 0) <= 0);   /* reset, nothing sent */
			WAIT_FOR(atomic_load(&g_closes) == closes + 1, 3000);
			assert_int_equal(atomic_load(&g_closes), closes + 1);
			assert_int_equal(atomic_load(&g_enomem), enomem);
		}
		assert_int_equal(fault_hits(PT_FAULT_ALLOC), 1);
		close(s);
	}
	fix_recover_and_stop(&f);
}

/* ENOMEM on 2% of allocations (at most 20) under load: refused sends are retried, connections
 * whose stream broke are reset, nothing hangs and nothing leaks. */
static void test_alloc_rate(void **state)
{
	struct fix f = { 0 };
	struct cstat st;

	fix_start(&f, NULL);
	atomic_store(&g_chunked, 1);
	assert_int_equal(fault_set(PT_FAULT_ALLOC, ENOMEM, 0, 0, 20000, 20), 0);
	int ok = run_clients(f.port, 8, 4, 32768, false, &st);
	assert_true(fault_hits(PT_FAULT_ALLOC) >= 1);
	assert_int_equal(ok + atomic_load(&st.broken), 32);
	assert_true(atomic_load(&st.broken) <= (int)fault_hits(PT_FAULT_ALLOC));
	print_message("alloc: %llu failed, %d sends refused and retried\n",
		      (unsigned long long)fault_hits(PT_FAULT_ALLOC), atomic_load(&g_enomem));
	fix_recover_and_stop(&f);
}

/* ---- descriptors and memory at setup ---- */

static enum pt_backend_kind env_backend(void)
{
	const char *b = getenv("PORTICO_BACKEND");

	return b && !strcmp(b, "epoll") ? PT_BACKEND_EPOLL :
	       b && (!strcmp(b, "uring") || !strcmp(b, "io_uring")) ? PT_BACKEND_URING : PT_BACKEND_AUTO;
}

/* pt_engine_listen: a socket or allocation failure is returned and leaves nothing behind. */
static void test_listen_faults(void **state)
{
	struct pt_listen_opts lo = { .on_accept = echo_accept };
	int err, fds = fd_count();

	fault_clear();
	pt_engine_t *e = pt_engine_create(&(struct pt_engine_config){ .workers = 2,
				.conn_area = sizeof(struct app) }, &err);
	assert_non_null(e);
	int fd_engine = fd_count();
	assert_int_equal(fault_set(PT_FAULT_SOCKET, EMFILE, 2, 0, 0, 1), 0);   /* 2nd worker's */
	assert_int_equal(pt_engine_listen(e, "127.0.0.1:0", &lo), -EMFILE);
	assert_int_equal(fd_count(), fd_engine);
	assert_int_equal(fault_set(PT_FAULT_SOCKET, ENFILE, 1, 0, 0, 1), 0);
	assert_int_equal(pt_engine_listen(e, "[::1]:0", &lo), -ENFILE);
	assert_int_equal(fd_count(), fd_engine);
	for (unsigned nth = 1; nth <= 3; nth++) {       /* listener, socket table, listener table */
		assert_int_equal(fault_set(PT_FAULT_ALLOC, ENOMEM, nth, 0, 0, 1), 0);
		assert_int_equal(pt_engine_listen(e, "127.0.0.1:0", &lo), -ENOMEM);
		assert_int_equal(fault_hits(PT_FAULT_ALLOC), 1);
		assert_int_equal(fd_count(), fd_engine);
	}
	fault_clear();
	int li = pt_engine_listen(e, "127.0.0.1:0", &lo);
	assert_int_equal(li, 0);                        /* the failed ones left no listener */
	assert_int_equal(pt_engine_start(e), 0);
	int s = connect_to(pt_engine_listen_port(e, li));
	char b[2];
	send_all(s, "ok", 2);
	assert_int_equal(recv_r(s, b, 2, MSG_WAITALL), 2);
	close(s);
	pt_engine_destroy(e);
	assert_fds(fds);
}

/* pt_engine_start: a worker whose descriptor or memory cannot be had fails the start with that
 * error, the others are stopped, and destroy leaves nothing behind. */
static void test_start_faults(void **state)
{
	struct pt_listen_opts lo = { .on_accept = echo_accept };
	int err, fds = fd_count();

	for (int round = 0; round < 4; round++) {
		fault_clear();
		pt_engine_t *e = pt_engine_create(&(struct pt_engine_config){ .workers = 2,
					.backend = env_backend(), .conn_area = sizeof(struct app) }, &err);
		assert_non_null(e);
		assert_int_equal(pt_engine_listen(e, "127.0.0.1:0", &lo), 0);
		bool alloc = round >= 2;
		assert_int_equal(fault_set(alloc ? PT_FAULT_ALLOC : PT_FAULT_SOCKET, alloc ? ENOMEM : EMFILE,
					       round % 2 ? 2 : 1, 0, 0, 1), 0);
		int rc = pt_engine_start(e);
		if (rc == 0) {
			/* only an automatic choice may fall back to epoll after io_uring failed */
			assert_int_equal(env_backend(), PT_BACKEND_AUTO);
			assert_string_equal(pt_engine_backend(e), "epoll");
		} else {
			assert_int_equal(rc, alloc ? -ENOMEM : -EMFILE);
		}
		assert_int_equal(fault_hits(alloc ? PT_FAULT_ALLOC : PT_FAULT_SOCKET), 1);
		pt_engine_destroy(e);
		assert_fds(fds);
	}
	fault_clear();
}

#endif /* PT_TESTING */

int main(int argc, char **argv)
{
#ifdef PT_TESTING
	if (argc > 1 && !strcmp(argv[1], "--fault-env")) {    /* test_env's child */
		int a = pt_fault_sim(PT_SRV_FAULT_OPEN), b = pt_fault_sim(PT_SRV_FAULT_OPEN);
		int c = pt_fault_sim(PT_SRV_FAULT_OPEN);
		printf("results: %d %d %d\n", a, b, c);
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule_triggers),
		cmocka_unit_test(test_rule_rate),
		cmocka_unit_test(test_rule_threads),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_timer_reinit),
		cmocka_unit_test(test_accept_nth),
		cmocka_unit_test(test_accept_rate),
		cmocka_unit_test(test_accept_two_listeners),
		cmocka_unit_test(test_recv_reset),
		cmocka_unit_test(test_recv_retryable),
		cmocka_unit_test(test_send_errors),
		cmocka_unit_test(test_send_eagain),
		cmocka_unit_test(test_alloc_nth),
		cmocka_unit_test(test_alloc_rate),
		cmocka_unit_test(test_listen_faults),
		cmocka_unit_test(test_start_faults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
#else
	(void)argc;
	(void)argv;
	printf("1..0 # SKIP fault injection needs a test build (PT_TESTING: make SAN=1)\n");
	return 0;
#endif
}
