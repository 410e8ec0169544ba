/*
 * The engine on the IOCP backend (Windows build, run under Wine by tests/win/run.sh).
 * cmocka is not packaged for mingw-w64, so this is a small TAP program: each case prints
 * "ok N - name" or "not ok N - name" with the failed check. The server side runs on the
 * engine's workers; the test thread is the client (blocking Winsock sockets) and checks every
 * byte. Cases mirror tests/unit/engine/ where they apply on Windows.
 */
#include <portico/engine.h>
#include <portico/http.h>
#include <fcntl.h>
#include <io.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

static int ntest, nfail;
static const char *cur_fail;

#define CHECK(x) do { if (!(x) && !cur_fail) cur_fail = #x " (line " PT_STR(__LINE__) ")"; } while (0)
#define PT_STR(x) PT_STR2(x)
#define PT_STR2(x) #x

static void run(const char *name, void (*fn)(void))
{
	cur_fail = NULL;
	fn();
	ntest++;
	if (cur_fail) {
		nfail++;
		printf("not ok %d - %s\n# failed: %s\n", ntest, name, cur_fail);
	} else {
		printf("ok %d - %s\n", ntest, name);
	}
	fflush(stdout);
}

/* ---- server side ---- */

static atomic_int g_closed, g_accepted, g_timers, g_posts, g_inside, g_ncb;
static ssize_t g_cb_res[64];
static intptr_t g_cb_arg[64];
static void (*g_script)(pt_conn_t *c);
static int g_file_fd = -1;
static char *g_file;
static size_t g_file_len;
static atomic_int g_sending;

static void record_cb(pt_conn_t *c, void *arg, ssize_t res)
{
	int i = atomic_fetch_add(&g_ncb, 1);

	if (atomic_load(&g_sending))
		atomic_store(&g_inside, 1);     /* the completion rule: never inside the call */
	if (i < 64) {
		g_cb_res[i] = res;
		g_cb_arg[i] = (intptr_t)arg;
	}
}

static void on_close(pt_conn_t *c)
{
	atomic_fetch_add(&g_closed, 1);
}

static void on_eof(pt_conn_t *c, int err)
{
	pt_conn_close(c, err ? PT_CLOSE_ABORT : PT_CLOSE_GRACEFUL);
}

static void echo_data(pt_conn_t *c, const void *d, size_t n)
{
	if (pt_conn_send(c, d, n, PT_SEND_COPY, NULL, NULL) < 0)
		pt_conn_close(c, PT_CLOSE_ABORT);
}

static void script_data(pt_conn_t *c, const void *d, size_t n)
{
	if (g_script)
		g_script(c);
	g_script = NULL;
}

static void on_timeout(pt_conn_t *c)
{
	atomic_fetch_add(&g_timers, 1);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static const struct pt_conn_ops echo_ops = { .on_data = echo_data, .on_eof = on_eof,
					     .on_close = on_close, .on_timeout = on_timeout };
static const struct pt_conn_ops script_ops = { .on_data = script_data, .on_eof = on_eof,
					       .on_close = on_close };

static int accept_echo(pt_conn_t *c, void *arg)
{
	atomic_fetch_add(&g_accepted, 1);
	pt_conn_set_ops(c, arg ? arg : &echo_ops);
	return 0;
}

static pt_engine_t *start(unsigned workers, int defer, const struct pt_conn_ops *ops, int *port)
{
	struct pt_engine_config cfg;
	int err;

	pt_engine_config_init(&cfg);
	cfg.workers = workers;
	cfg.shutdown_ms = 2000;
	pt_engine_t *e = pt_engine_create(&cfg, &err);
	if (!e)
		return NULL;
	struct pt_listen_opts o = { .on_accept = accept_echo, .arg = (void *)ops,
				    .defer_accept_sec = defer };
	int li = pt_engine_listen(e, "127.0.0.1:0", &o);
	if (li < 0 || pt_engine_start(e) < 0) {
		pt_engine_destroy(e);
		return NULL;
	}
	*port = pt_engine_listen_port(e, li);
	atomic_store(&g_closed, 0);
	atomic_store(&g_accepted, 0);
	atomic_store(&g_ncb, 0);
	atomic_store(&g_inside, 0);
	return e;
}

/* ---- client side ---- */

static SOCKET dial(int port)
{
	SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((u_short)port) };
	DWORD tmo = 20000;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (char *)&tmo, sizeof tmo);
	if (connect(s, (struct sockaddr *)&a, sizeof a)) {
		closesocket(s);
		return INVALID_SOCKET;
	}
	return s;
}

static bool send_all(SOCKET s, const char *p, size_t n)
{
	while (n) {
		int k = send(s, p, n > (1u << 20) ? 1 << 20 : (int)n, 0);
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

/* Reads until EOF (or an error); returns the bytes read, comparing with expect. */
static size_t recv_compare(SOCKET s, const char *expect, size_t len, bool *same)
{
	static char buf[1 << 16];
	size_t got = 0;

	*same = true;
	for (;;) {
		int k = recv(s, buf, sizeof buf, 0);
		if (k <= 0)
			return got;
		if (got + (size_t)k > len || memcmp(buf, expect + got, (size_t)k))
			*same = false;
		got += (size_t)k;
	}
}

static bool wait_for(atomic_int *v, int want, int ms)
{
	for (int i = 0; i < ms / 10 && atomic_load(v) < want; i++)
		Sleep(10);
	return atomic_load(v) >= want;
}

static char *pattern(size_t n, unsigned seed)
{
	char *p = malloc(n);

	for (size_t i = 0; p && i < n; i++)
		p[i] = (char)((i * 2654435761u + seed) >> 13);
	return p;
}

/* ---- cases ---- */

static void t_echo(void)
{
	int port;
	pt_engine_t *e = start(2, 0, NULL, &port);
	CHECK(e);
	if (!e)
		return;
	CHECK(!strcmp(pt_engine_backend(e), "iocp"));
	size_t n = 3u << 20;
	char *p = pattern(n, 1);
	SOCKET s = dial(port);
	CHECK(s != INVALID_SOCKET);
	CHECK(send_all(s, p, n));                /* the first bytes come with AcceptEx */
	shutdown(s, SD_SEND);
	bool same;
	CHECK(recv_compare(s, p, n, &same) == n);
	CHECK(same);
	closesocket(s);
	CHECK(wait_for(&g_closed, 1, 5000));
	pt_engine_destroy(e);
	free(p);
}

static void t_many_clients(void)
{
	int port;
	pt_engine_t *e = start(2, 0, NULL, &port);
	CHECK(e);
	if (!e)
		return;
	enum { N = 100 };
	SOCKET s[N];
	for (int i = 0; i < N; i++) {
		s[i] = dial(port);
		char b[16];
		int k = snprintf(b, sizeof b, "client %d", i);
		CHECK(s[i] != INVALID_SOCKET && send_all(s[i], b, (size_t)k));
	}
	for (int i = 0; i < N; i++) {
		char b[16], r[16] = "";
		int k = snprintf(b, sizeof b, "client %d", i), got = 0;
		while (got < k) {
			int x = recv(s[i], r + got, k - got, 0);
			if (x <= 0)
				break;
			got += x;
		}
		CHECK(got == k && !memcmp(b, r, (size_t)k));
		closesocket(s[i]);
	}
	CHECK(wait_for(&g_closed, N, 10000));
	struct pt_counters c;
	pt_engine_counters(e, -1, &c);
	CHECK(c.accepts == N);
	pt_engine_destroy(e);
}

static void script_ordered(pt_conn_t *c)
{
	static const char *parts[] = { "alpha ", "beta ", "", "gamma ", "delta" };

	atomic_store(&g_sending, 1);
	for (int i = 0; i < 5; i++)
		pt_conn_send(c, parts[i], strlen(parts[i]), i == 1 ? PT_SEND_COPY : 0, record_cb,
			     (void *)(intptr_t)i);
	atomic_store(&g_sending, 0);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void t_ordered_sends(void)
{
	static const char *parts[] = { "alpha ", "beta ", "", "gamma ", "delta" };
	int port;
	pt_engine_t *e = start(1, 0, &script_ops, &port);
	CHECK(e);
	if (!e)
		return;
	g_script = script_ordered;
	SOCKET s = dial(port);
	send_all(s, "go", 2);
	bool same;
	const char *want = "alpha beta gamma delta";
	CHECK(recv_compare(s, want, strlen(want), &same) == strlen(want) && same);
	CHECK(atomic_load(&g_ncb) == 5);
	for (int i = 0; i < 5; i++)
		CHECK(g_cb_arg[i] == i && g_cb_res[i] == (ssize_t)strlen(parts[i]));
	CHECK(!atomic_load(&g_inside));
	closesocket(s);
	pt_engine_destroy(e);
}


static void script_file(pt_conn_t *c)
{
	struct pt_chunk ch = { .kind = PT_CHUNK_FILE,
			       .file = { .fd = g_file_fd, .offset = 1000, .len = g_file_len - 2000 } };
	pt_conn_transmit(c, &ch, 1, 0, record_cb, (void *)0);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void script_mixed(pt_conn_t *c)
{
	struct pt_chunk ch[4] = {
		{ .kind = PT_CHUNK_MEM, .mem = { "head:", 5 } },
		{ .kind = PT_CHUNK_FILE, .file = { .fd = g_file_fd, .offset = 7, .len = 100000 } },
		{ .kind = PT_CHUNK_MEM, .mem = { ":mid:", 5 } },
		{ .kind = PT_CHUNK_FILE, .file = { .fd = g_file_fd, .offset = 0, .len = 10 } },
	};
	pt_conn_transmit(c, ch, 4, 0, record_cb, (void *)0);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void script_short(pt_conn_t *c)
{
	struct pt_chunk ch = { .kind = PT_CHUNK_FILE,
			       .file = { .fd = g_file_fd, .offset = g_file_len - 10, .len = 100 } };
	pt_conn_transmit(c, &ch, 1, 0, record_cb, (void *)0);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static char *g_big;
static size_t g_big_len;

static void script_big(pt_conn_t *c)
{
	pt_conn_send(c, g_big, g_big_len, 0, record_cb, (void *)0);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static char g_path[MAX_PATH];

/* The test file, in the temporary directory; removed by file_cleanup (Windows cannot delete
 * a file that is open without FILE_SHARE_DELETE, which _open does not ask for). */
static bool file_setup(void)
{
	char dir[MAX_PATH];

	if (!GetTempPathA(sizeof dir, dir))
		return false;
	snprintf(g_path, sizeof g_path, "%spt-test-%lu.bin", dir, (unsigned long)GetCurrentProcessId());
	g_file_len = 5u << 20;
	g_file = pattern(g_file_len, 7);
	int fd = _open(g_path, _O_CREAT | _O_TRUNC | _O_RDWR | _O_BINARY, 0600);
	if (fd < 0)
		return false;
	bool ok = _write(fd, g_file, (unsigned)g_file_len) == (int)g_file_len;
	_close(fd);
	g_file_fd = ok ? _open(g_path, _O_RDONLY | _O_BINARY) : -1;
	return g_file_fd >= 0;
}

static void file_cleanup(void)
{
	if (g_file_fd >= 0)
		_close(g_file_fd);
	_unlink(g_path);
	free(g_file);
}

static void transmit_case(void (*scr)(pt_conn_t *), const char *want, size_t n, ssize_t res)
{
	int port;
	pt_engine_t *e = start(1, 0, &script_ops, &port);
	CHECK(e);
	if (!e)
		return;
	g_script = scr;
	SOCKET s = dial(port);
	send_all(s, "go", 2);
	bool same;
	size_t got = recv_compare(s, want, n, &same);
	if (res >= 0)
		CHECK(got == n && same);
	CHECK(wait_for(&g_ncb, 1, 5000));
	CHECK(g_cb_res[0] == res);
	closesocket(s);
	CHECK(wait_for(&g_closed, 1, 5000));
	pt_engine_destroy(e);
}

static void t_transmit_file(void)
{
	CHECK(g_file_fd >= 0);
	transmit_case(script_file, g_file + 1000, g_file_len - 2000, (ssize_t)(g_file_len - 2000));
}

static void t_transmit_mixed(void)
{
	size_t n = 5 + 100000 + 5 + 10;
	char *want = malloc(n);
	memcpy(want, "head:", 5);
	memcpy(want + 5, g_file + 7, 100000);
	memcpy(want + 100005, ":mid:", 5);
	memcpy(want + 100010, g_file, 10);
	transmit_case(script_mixed, want, n, (ssize_t)n);
	free(want);
}

static void t_transmit_short(void)
{
	transmit_case(script_short, g_file + g_file_len - 10, 10, -EIO);
}

/* One 4 MiB memory send: the backend cuts it into 4 WSASends outstanding at once. */
static void t_big_send(void)
{
	g_big_len = 4u << 20;
	g_big = pattern(g_big_len, 3);
	transmit_case(script_big, g_big, g_big_len, (ssize_t)g_big_len);
	free(g_big);
}

/* Connects and closes without a byte: AcceptEx completes with 0 bytes, so the application
 * sees a connection that ends at once (or none); nothing leaks and the server goes on. */
static void t_connect_close(void)
{
	int port;
	pt_engine_t *e = start(1, 0, NULL, &port);
	CHECK(e);
	if (!e)
		return;
	for (int i = 0; i < 10; i++)
		closesocket(dial(port));
	Sleep(500);
	printf("# connect+close: %d accepted, %d closed\n", atomic_load(&g_accepted),
	       atomic_load(&g_closed));
	CHECK(wait_for(&g_closed, atomic_load(&g_accepted), 5000));
	SOCKET s = dial(port);
	char b[2];
	send_all(s, "ok", 2);
	CHECK(recv(s, b, 2, 0) == 2);
	closesocket(s);
	pt_engine_destroy(e);
}

static void timer_fn(pt_timer_t *t, void *arg)
{
	atomic_fetch_add(&g_timers, (int)(intptr_t)arg);
}

static void arm_timers(pt_worker_t *w, void *arg)
{
	static pt_timer_t t[3];

	for (int i = 0; i < 3; i++) {
		pt_timer_init(&t[i], timer_fn, (void *)(intptr_t)(1 << i));
		pt_timer_arm(w, &t[i], 50u * (unsigned)(i + 1));
	}
}

static void post_fn(pt_worker_t *w, void *arg)
{
	atomic_fetch_add(&g_posts, 1);
}

static void t_timers_and_posts(void)
{
	int port;
	pt_engine_t *e = start(2, 0, NULL, &port);
	CHECK(e);
	if (!e)
		return;
	static pt_post_t p[2], tp;
	atomic_store(&g_timers, 0);
	atomic_store(&g_posts, 0);
	CHECK(pt_post(pt_engine_worker(e, 0), &tp, arm_timers, NULL) == 0);
	CHECK(pt_post(pt_engine_worker(e, 0), &p[0], post_fn, NULL) == 0);
	CHECK(pt_post(pt_engine_worker(e, 1), &p[1], post_fn, NULL) == 0);
	CHECK(wait_for(&g_posts, 2, 5000));
	CHECK(wait_for(&g_timers, 7, 5000));   /* GetQueuedCompletionStatusEx's timeout */
	pt_engine_destroy(e);
}

static void t_client_close(void)
{
	int port;
	pt_engine_t *e = start(1, 0, NULL, &port);
	CHECK(e);
	if (!e)
		return;
	SOCKET s = dial(port);
	send_all(s, "x", 1);
	char b[4];
	CHECK(recv(s, b, 1, 0) == 1);
	closesocket(s);
	CHECK(wait_for(&g_closed, 1, 5000));
	pt_engine_destroy(e);
}

/* A client that connects and never sends stays in AcceptEx: the application never sees it,
 * and SO_CONNECT_TIME reaps it after defer_accept_sec. */
static void t_reap_silent(void)
{
	int port;
	pt_engine_t *e = start(1, 1, NULL, &port);
	CHECK(e);
	if (!e)
		return;
	SOCKET s = dial(port);
	CHECK(s != INVALID_SOCKET);
	DWORD t0 = GetTickCount();
	char b[4];
	int k = recv(s, b, 1, 0);               /* EOF or reset when reaped */
	DWORD dt = GetTickCount() - t0;
	CHECK(k <= 0);
	CHECK(dt >= 900 && dt < 10000);
	CHECK(atomic_load(&g_accepted) == 0);
	closesocket(s);
	SOCKET s2 = dial(port);                 /* the pool was refilled */
	send_all(s2, "ok", 2);
	CHECK(recv(s2, b, 2, 0) == 2);
	closesocket(s2);
	pt_engine_destroy(e);
}

static void t_shutdown_open(void)
{
	int port;
	pt_engine_t *e = start(2, 0, NULL, &port);
	CHECK(e);
	if (!e)
		return;
	SOCKET s[20];
	char b[4];
	for (int i = 0; i < 20; i++) {
		s[i] = dial(port);
		send_all(s[i], "x", 1);
		CHECK(recv(s[i], b, 1, 0) == 1);
	}
	DWORD t0 = GetTickCount();
	CHECK(pt_engine_stop(e) == 0);
	CHECK(GetTickCount() - t0 < 10000);
	CHECK(atomic_load(&g_closed) == 20);
	for (int i = 0; i < 20; i++) {
		CHECK(recv(s[i], b, 1, 0) <= 0);
		closesocket(s[i]);
	}
	pt_engine_destroy(e);
}

/* ---- outbound connections: ConnectEx (pt_connect) ---- */

#define CX_BYTES (256u << 10)
static struct {
	struct sockaddr_in to;
	unsigned timeout_ms;
	atomic_int done, inside, calling;
	atomic_int err, start_rc;
	char *want, got[CX_BYTES];
	size_t ngot;
	atomic_int same;
} cx;

static void cx_data(pt_conn_t *c, const void *d, size_t n)
{
	if (cx.ngot + n > CX_BYTES) {
		pt_conn_close(c, PT_CLOSE_ABORT);
		return;
	}
	memcpy(cx.got + cx.ngot, d, n);
	cx.ngot += n;
	if (cx.ngot == CX_BYTES) {
		atomic_store(&cx.same, !memcmp(cx.got, cx.want, CX_BYTES));
		pt_conn_close(c, PT_CLOSE_GRACEFUL);
	}
}

static void cx_close(pt_conn_t *c)
{
	atomic_store(&cx.done, 2);
}

static const struct pt_conn_ops cx_ops = { .on_data = cx_data, .on_eof = on_eof,
					   .on_close = cx_close };

static int cx_connected(pt_conn_t *c, int err, void *arg)
{
	if (atomic_load(&cx.calling))
		atomic_store(&cx.inside, 1);
	atomic_store(&cx.err, err);
	if (err) {
		atomic_store(&cx.done, 1);
		return 0;
	}
	pt_conn_set_ops(c, &cx_ops);
	if (!cx.want) {                   /* not meant to connect: say so, and close */
		atomic_store(&cx.err, 2);
		atomic_store(&cx.done, 1);
		return -1;
	}
	return pt_conn_send(c, cx.want, CX_BYTES, 0, NULL, NULL) < 0 ? -1 : 0;
}

static void cx_start(pt_worker_t *w, void *arg)
{
	struct pt_connect_opts o = { .on_connect = cx_connected, .timeout_ms = cx.timeout_ms,
				     .no_delay = true };

	atomic_store(&cx.calling, 1);
	atomic_store(&cx.start_rc, pt_connect(w, (struct sockaddr *)&cx.to, sizeof cx.to, &o));
	atomic_store(&cx.calling, 0);
}

/* Connects from worker 0 to addr:port; returns on_connect's error (1 = never called). */
static int cx_run(pt_engine_t *e, unsigned long addr, int port, unsigned timeout_ms, int want_done)
{
	static pt_post_t p;

	cx.to = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((u_short)port) };
	cx.to.sin_addr.s_addr = htonl(addr);
	cx.timeout_ms = timeout_ms;
	cx.ngot = 0;
	atomic_store(&cx.done, 0);
	atomic_store(&cx.inside, 0);
	atomic_store(&cx.same, 0);
	atomic_store(&cx.err, 1);
	CHECK(pt_post(pt_engine_worker(e, 0), &p, cx_start, NULL) == 0);
	CHECK(wait_for(&cx.done, want_done, 20000));
	CHECK(atomic_load(&cx.start_rc) == 0 && !atomic_load(&cx.inside));
	return atomic_load(&cx.err);
}

static void t_connect_echo(void)
{
	int port;
	pt_engine_t *e = start(2, 0, NULL, &port);
	CHECK(e);
	if (!e)
		return;
	cx.want = pattern(CX_BYTES, 11);
	CHECK(cx_run(e, INADDR_LOOPBACK, port, 0, 2) == 0);
	CHECK(atomic_load(&cx.same));
	CHECK(wait_for(&g_closed, 1, 5000));          /* the server side closed too */
	pt_engine_destroy(e);
	free(cx.want);
	cx.want = NULL;
}

static void t_connect_refused(void)
{
	int port;
	pt_engine_t *e = start(1, 0, NULL, &port);
	SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
	struct sockaddr_in a = { .sin_family = AF_INET };
	int len = sizeof a;

	CHECK(e);
	if (!e)
		return;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);     /* a port nobody listens on */
	bind(s, (struct sockaddr *)&a, sizeof a);
	getsockname(s, (struct sockaddr *)&a, &len);
	closesocket(s);
	int err = cx_run(e, INADDR_LOOPBACK, ntohs(a.sin_port), 0, 1);
	printf("# connect to a closed port: %d (-ECONNREFUSED is %d)\n", err, -ECONNREFUSED);
	CHECK(err == -ECONNREFUSED);
	pt_engine_destroy(e);
}

/* A connect that cannot complete ends at its deadline with -ETIMEDOUT: a listener whose
 * accept queue is full (backlog 1, never accepting) makes the kernel drop the next SYN. (No
 * blackhole address: the network this runs on may answer every address.) */
static void t_connect_deadline(void)
{
	int port;
	pt_engine_t *e = start(1, 0, NULL, &port);
	SOCKET l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP), fill[8];
	struct sockaddr_in a = { .sin_family = AF_INET };
	int len = sizeof a;
	u_long nb = 1;

	CHECK(e);
	if (!e)
		return;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 1) == 0);
	getsockname(l, (struct sockaddr *)&a, &len);
	for (int i = 0; i < 8; i++) {           /* fill the queue (those beyond it hang too) */
		fill[i] = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
		ioctlsocket(fill[i], FIONBIO, &nb);
		connect(fill[i], (struct sockaddr *)&a, sizeof a);
	}
	Sleep(200);
	DWORD t0 = GetTickCount();
	int err = cx_run(e, INADDR_LOOPBACK, ntohs(a.sin_port), 300, 1);
	DWORD dt = GetTickCount() - t0;
	printf("# connect to a full accept queue with a 300 ms deadline: %d after %lu ms "
	       "(-ETIMEDOUT is %d; 2: connected, 1: no callback)\n", err, (unsigned long)dt, -ETIMEDOUT);
	CHECK(err == -ETIMEDOUT && dt >= 250);
	for (int i = 0; i < 8; i++)
		closesocket(fill[i]);
	closesocket(l);
	pt_engine_destroy(e);
}

/* What the Windows build does not have is refused, never faked. */
static void t_refused(void)
{
	struct pt_http_config hc;
	struct pt_tls_config tc;
	char msg[200] = "";
	int err = 0;

	pt_http_config_init(&hc);
	hc.h2c = true;
	CHECK(!pt_http_server_create(&hc, &err) && err == -ENOTSUP);
	pt_tls_config_init(&tc);
	CHECK(!pt_tls_create(&tc, msg, sizeof msg) && strstr(msg, "Windows"));
	struct pt_engine_config ec;
	pt_engine_config_init(&ec);
	ec.backend = PT_BACKEND_EPOLL;
	CHECK(!pt_engine_create(&ec, &err) && err == -ENOTSUP);
}

int main(void)
{
	WSADATA d;

	WSAStartup(MAKEWORD(2, 2), &d);
	if (!file_setup())
		printf("# cannot create the test file\n");
	run("echo 3 MiB byte-exact, first bytes through AcceptEx", t_echo);
	run("100 clients, each echoed", t_many_clients);
	run("sends complete in order, never inside the call", t_ordered_sends);
	run("file range (TransmitFile) byte-exact", t_transmit_file);
	run("memory + file + memory + file list byte-exact", t_transmit_mixed);
	run("a short file fails the send with -EIO", t_transmit_short);
	run("a 4 MiB send as several WSASends, byte-exact", t_big_send);
	run("clients that connect and close without a byte", t_connect_close);
	run("timers (completion-port timeout) and posts to two workers", t_timers_and_posts);
	run("close from the client: on_close", t_client_close);
	run("silent client reaped by SO_CONNECT_TIME, never accepted", t_reap_silent);
	run("stop with 20 connections open", t_shutdown_open);
	run("pt_connect (ConnectEx): 256 KiB echoed byte-exact, on_connect never inside the call",
	    t_connect_echo);
	run("pt_connect to a closed port: -ECONNREFUSED", t_connect_refused);
	run("pt_connect deadline (a full accept queue): -ETIMEDOUT", t_connect_deadline);
	run("HTTP/2, TLS and the Linux backends are refused, not faked", t_refused);
	file_cleanup();
	printf("1..%d\n", ntest);
	return nfail != 0;
}
