/*
 * TLS transport tests over loopback. pt-test: backends (run once per engine backend).
 *
 * The group setup makes certificates with the openssl command line in a mkdtemp directory
 * (removed at the end): three ECDSA P-256 certificates with different names (one with a
 * subjectAltName, one with a common name only, one "*.example.org" wildcard), an RSA one, a
 * replacement for reloads, and a key that matches none of them. The server is a real engine
 * with a TLS listener (and a plaintext one) on port 0; the test thread is the client, with
 * OpenSSL over a non-blocking loopback socket, every wait bounded by poll and a deadline.
 * Server callbacks only record what happened (atomics, or under g_mu); assertions run on the
 * test thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <portico/engine.h>
#include "support/net.h"
#include "support/fault.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define IO_MS 10000            /* bound on any single client wait */

/* ---- certificates ---- */

static char g_dir[64];

static const char *path(const char *name)
{
	static char buf[8][128];
	static unsigned at;
	char *p = buf[at++ % 8];

	snprintf(p, 128, "%s/%s", g_dir, name);
	return p;
}

static int mkcert(const char *name, const char *alg, const char *cn, const char *san)
{
	char cmd[1024];

	snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey %s -nodes -days 7 -keyout %s/%s.key "
		 "-out %s/%s.pem -subj /CN=%s%s%s >/dev/null 2>&1", alg, g_dir, name, g_dir, name,
		 cn, san ? " -addext subjectAltName=" : "", san ? san : "");
	return system(cmd);
}

static int group_setup(void **state)
{
	static const char *ec = "ec -pkeyopt ec_paramgen_curve:P-256";

	signal(SIGPIPE, SIG_IGN);
	snprintf(g_dir, sizeof g_dir, "/tmp/pt-tls.XXXXXX");
	if (!mkdtemp(g_dir))
		return -1;
	if (mkcert("a", ec, "a.example.com", "DNS:a.example.com,DNS:localhost") ||
	    mkcert("b", ec, "b.example.net", NULL) ||             /* the common name only */
	    mkcert("w", ec, "wild.example.org", "DNS:*.example.org") ||
	    mkcert("r", "rsa:2048", "rsa.example.com", "DNS:rsa.example.com") ||
	    mkcert("n", ec, "new.example.com", "DNS:a.example.com") ||
	    mkcert("x", ec, "other.example.com", NULL)) {
		print_error("openssl req failed: is the openssl command installed?\n");
		return -1;
	}
	FILE *f = fopen(path("garbage.pem"), "w");
	if (!f)
		return -1;
	fputs("this is not a PEM file\n", f);
	fclose(f);
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	if (g_dir[0]) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

/* ---- the server: scripts chosen per test in on_accept, recording what happens ---- */

enum mode { M_ECHO, M_TRANSMIT, M_SHORT_FILE, M_REFUSE, M_BYE, M_PAUSE, M_BACKPRESSURE, M_SEND_BIG,
	    M_IDLE, M_HALF_CLOSE };

struct seen {                              /* what on_accept saw of the last connection */
	bool is_tls;
	int info_rc;
	unsigned version;
	bool resumed, has_alpn, has_sni, ktls;
	unsigned handshake_us, age_ms;
	char alpn[32], sni[64], cipher[64];
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_mode;
static atomic_int g_accepts, g_closes, g_eofs, g_eof_err, g_send_errs;
static struct seen g_seen;
static char g_events[256];                 /* A accept, D data (runs folded), E eof, C close */
static int g_nev;
static intptr_t g_cb_id[32];
static ssize_t g_cb_res[32];
static int g_ncb;
static uint64_t g_bytes_sent;              /* pt_conn_bytes_sent at on_close */

static void event(char k)
{
	pthread_mutex_lock(&g_mu);
	if (!(k == 'D' && g_nev && g_events[g_nev - 1] == 'D') && g_nev < (int)sizeof g_events - 1)
		g_events[g_nev++] = k;
	pthread_mutex_unlock(&g_mu);
}

static void record_cb(pt_conn_t *c, void *arg, ssize_t res)
{
	pthread_mutex_lock(&g_mu);
	if (g_ncb < 32) {
		g_cb_id[g_ncb] = (intptr_t)arg;
		g_cb_res[g_ncb++] = res;
	}
	pthread_mutex_unlock(&g_mu);
}

static void echo_data(pt_conn_t *c, const void *d, size_t n)
{
	event('D');
	if (pt_conn_send(c, d, n, PT_SEND_COPY, NULL, NULL) < 0) {
		atomic_fetch_add(&g_send_errs, 1);              /* only under injected faults */
		pt_conn_close(c, PT_CLOSE_ABORT);
	}
}

static void on_eof(pt_conn_t *c, int err)
{
	event('E');
	atomic_store(&g_eof_err, err);
	atomic_fetch_add(&g_eofs, 1);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void on_close(pt_conn_t *c)
{
	event('C');
	pthread_mutex_lock(&g_mu);
	g_bytes_sent = pt_conn_bytes_sent(c);
	pthread_mutex_unlock(&g_mu);
	atomic_fetch_add(&g_closes, 1);
}

static const struct pt_conn_ops g_ops = { .on_data = echo_data, .on_eof = on_eof,
					  .on_close = on_close };

/* Half-close: after the peer's close_notify, one more reply, then close_notify. */
static void half_eof(pt_conn_t *c, int err)
{
	event('E');
	atomic_store(&g_eof_err, err);
	if (pt_conn_send(c, "after eof", 9, 0, record_cb, (void *)1) < 0)
		atomic_fetch_add(&g_send_errs, 1);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static const struct pt_conn_ops g_half_ops = { .on_data = echo_data, .on_eof = half_eof,
					       .on_close = on_close };

static void copy_str(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s ? s : "");
}

static void see(pt_conn_t *c)
{
	struct pt_tls_info info;
	struct seen s = { .is_tls = pt_conn_is_tls(c), .age_ms = pt_conn_age_ms(c) };

	s.info_rc = pt_conn_tls_info(c, &info);
	if (s.info_rc == 0) {
		s.version = info.version;
		s.resumed = info.resumed;
		s.handshake_us = info.handshake_us;
		s.ktls = info.ktls;
		copy_str(s.cipher, sizeof s.cipher, info.cipher);
		if ((info.alpn != NULL) != (pt_conn_alpn(c) != NULL) ||
		    (info.sni != NULL) != (pt_conn_sni(c) != NULL))
			s.info_rc = -1000;             /* the accessors disagree with the info */
	}
	s.has_alpn = pt_conn_alpn(c) != NULL;
	s.has_sni = pt_conn_sni(c) != NULL;
	copy_str(s.alpn, sizeof s.alpn, pt_conn_alpn(c));
	copy_str(s.sni, sizeof s.sni, pt_conn_sni(c));
	pthread_mutex_lock(&g_mu);
	g_seen = s;
	pthread_mutex_unlock(&g_mu);
}

/* ---- the transmit script: memory, file ranges, COPY and MORE, then a graceful close ---- */

#define FILE_LEN (3u << 20)
static char *g_file;                       /* the file's content */
static int g_file_fd = -1;
static char *g_expect;
static size_t g_expect_len;

static void expect_add(const void *p, size_t n)
{
	memcpy(g_expect + g_expect_len, p, n);
	g_expect_len += n;
}

static const char HEAD[] = "HEADER\n", MID[] = "--", END[] = "END\n";
static const struct { off_t off; size_t len; } RANGES[] = {
	{ 0, (1u << 20) + 7 }, { (3u << 19) + 3, 1u << 20 }, { FILE_LEN - 100000, 100000 },
	{ 5, 1 },
};

static void copy_chunk(char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)('a' + i % 23);
}

static void script_transmit(pt_conn_t *c)
{
	char stack[100000];
	struct pt_chunk two[] = {
		{ .kind = PT_CHUNK_FILE, .file = { g_file_fd, RANGES[0].off, RANGES[0].len } },
		{ .kind = PT_CHUNK_MEM, .mem = { MID, 2 } },
		{ .kind = PT_CHUNK_FILE, .file = { g_file_fd, RANGES[1].off, RANGES[1].len } },
	};
	struct pt_chunk tail[] = {
		{ .kind = PT_CHUNK_FILE, .file = { g_file_fd, RANGES[2].off, RANGES[2].len } },
		{ .kind = PT_CHUNK_FILE, .file = { g_file_fd, RANGES[3].off, RANGES[3].len } },
	};
	int rc = 0;

	rc |= pt_conn_send(c, HEAD, sizeof HEAD - 1, PT_SEND_MORE, record_cb, (void *)0);
	rc |= pt_conn_transmit(c, two, 3, 0, record_cb, (void *)1);
	copy_chunk(stack, sizeof stack);
	rc |= pt_conn_send(c, stack, sizeof stack, PT_SEND_COPY | PT_SEND_MORE, record_cb, (void *)2);
	memset(stack, 'X', sizeof stack);          /* copied: must not show */
	rc |= pt_conn_transmit(c, tail, 2, PT_SEND_MORE, record_cb, (void *)3);
	rc |= pt_conn_send(c, END, sizeof END - 1, 0, record_cb, (void *)4);
	if (rc)
		atomic_fetch_add(&g_send_errs, 1);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

/* A file range past the end of the file: -EIO, and the connection is reset. */
static void script_short_file(pt_conn_t *c)
{
	struct pt_chunk ch = { .kind = PT_CHUNK_FILE, .file = { g_file_fd, FILE_LEN - 10, 100 } };

	if (pt_conn_transmit(c, &ch, 1, 0, record_cb, (void *)1) < 0)
		atomic_fetch_add(&g_send_errs, 1);
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

/* Receives with pause/resume on every piece (the stash under TLS), a timer resuming. */
static char g_rx[1 << 20];
static atomic_size_t g_rx_len, g_rx_at_eof;
static pt_timer_t g_resume_timer;

static void resume_fn(pt_timer_t *t, void *arg)
{
	pt_conn_resume_recv(arg);
}

static void pause_data(pt_conn_t *c, const void *d, size_t n)
{
	size_t at = atomic_load(&g_rx_len);

	event('D');
	if (at + n <= sizeof g_rx)
		memcpy(g_rx + at, d, n);
	atomic_store(&g_rx_len, at + n);
	pt_conn_pause_recv(c);
	pt_timer_arm(pt_conn_worker(c), &g_resume_timer, 1);
}

static void pause_eof(pt_conn_t *c, int err)
{
	atomic_store(&g_rx_at_eof, atomic_load(&g_rx_len));
	pt_timer_cancel(&g_resume_timer);
	on_eof(c, err);
}

static const struct pt_conn_ops g_pause_ops = { .on_data = pause_data, .on_eof = pause_eof,
						.on_close = on_close };

/* An echo that honours backpressure (as examples/echo.c): a refused send is held, receiving
 * pauses, and on_drain sends it and resumes. */
struct held {
	size_t len;
	char data[];
};
static atomic_int g_refused, g_drains;

static void bp_data(pt_conn_t *c, const void *d, size_t n)
{
	event('D');
	int err = pt_conn_send(c, d, n, PT_SEND_COPY, NULL, NULL);
	if (err == -EAGAIN) {
		struct held *h = malloc(sizeof *h + n);
		if (!h) {
			atomic_fetch_add(&g_send_errs, 1);
			return;
		}
		h->len = n;
		memcpy(h->data, d, n);
		pt_conn_set_user(c, h);
		pt_conn_pause_recv(c);
		atomic_fetch_add(&g_refused, 1);
	} else if (err < 0) {
		atomic_fetch_add(&g_send_errs, 1);
	}
}

static void bp_drain(pt_conn_t *c)
{
	struct held *h = pt_conn_user(c);

	if (!h)
		return;
	int err = pt_conn_send(c, h->data, h->len, PT_SEND_COPY, NULL, NULL);
	if (err == -EAGAIN)
		return;
	if (err < 0)
		atomic_fetch_add(&g_send_errs, 1);
	pt_conn_set_user(c, NULL);
	free(h);
	atomic_fetch_add(&g_drains, 1);
	pt_conn_resume_recv(c);
}

static void bp_close(pt_conn_t *c)
{
	free(pt_conn_user(c));
	on_close(c);
}

static const struct pt_conn_ops g_bp_ops = { .on_data = bp_data, .on_eof = on_eof,
					     .on_drain = bp_drain, .on_close = bp_close };

/* 1 MiB from memory (by reference), then a graceful close. */
#define BIG_SEND (1u << 20)
static char g_big[BIG_SEND];

static int on_accept(pt_conn_t *c, void *arg)
{
	event('A');
	see(c);
	atomic_fetch_add(&g_accepts, 1);
	switch (atomic_load(&g_mode)) {
	case M_REFUSE:
		return -1;
	case M_TRANSMIT:
		pt_conn_set_ops(c, &g_ops);
		script_transmit(c);
		break;
	case M_SHORT_FILE:
		pt_conn_set_ops(c, &g_ops);
		script_short_file(c);
		break;
	case M_PAUSE:
		pt_conn_set_ops(c, &g_pause_ops);
		pt_timer_init(&g_resume_timer, resume_fn, c);
		pt_conn_pause_recv(c);                         /* resumed 100 ms later */
		pt_timer_arm(pt_conn_worker(c), &g_resume_timer, 100);
		break;
	case M_BACKPRESSURE:
		pt_conn_set_ops(c, &g_bp_ops);
		break;
	case M_HALF_CLOSE:
		pt_conn_set_ops(c, &g_half_ops);
		break;
	case M_IDLE:
		pt_conn_set_ops(c, &g_ops);
		pt_conn_set_idle(c, true);                     /* keep-alive: shed after partial */
		break;
	case M_SEND_BIG:
		pt_conn_set_ops(c, &g_ops);
		if (pt_conn_send(c, g_big, sizeof g_big, 0, record_cb, (void *)9) < 0)
			atomic_fetch_add(&g_send_errs, 1);
		pt_conn_close(c, PT_CLOSE_GRACEFUL);
		break;
	case M_BYE:
		pt_conn_set_ops(c, &g_ops);
		if (pt_conn_send(c, "bye", 3, 0, NULL, NULL) < 0)
			atomic_fetch_add(&g_send_errs, 1);
		pt_conn_close(c, PT_CLOSE_GRACEFUL);
		break;
	default:
		pt_conn_set_ops(c, &g_ops);
	}
	return 0;
}

struct srv {
	pt_engine_t *e;
	pt_tls_t *tls;
	int port, plain_port;
};

static void reset_records(enum mode m)
{
	atomic_store(&g_mode, m);
	atomic_store(&g_accepts, 0);
	atomic_store(&g_closes, 0);
	atomic_store(&g_eofs, 0);
	atomic_store(&g_eof_err, 1);
	atomic_store(&g_send_errs, 0);
	pthread_mutex_lock(&g_mu);
	memset(&g_seen, 0, sizeof g_seen);
	g_nev = 0;
	memset(g_events, 0, sizeof g_events);
	g_ncb = 0;
	g_bytes_sent = 0;
	pthread_mutex_unlock(&g_mu);
}

static struct pt_tls_cert g_cert_a[] = { { NULL, NULL } };

static void tls_config(struct pt_tls_config *tc)
{
	g_cert_a[0] = (struct pt_tls_cert){ strdup(path("a.pem")), strdup(path("a.key")) };
	pt_tls_config_init(tc);
	tc->certs = g_cert_a;
	tc->ncerts = 1;
}

static void free_certs(void)
{
	free((char *)g_cert_a[0].cert_file);
	free((char *)g_cert_a[0].key_file);
	g_cert_a[0] = (struct pt_tls_cert){ NULL, NULL };
}

static unsigned g_hello_delay_ms;          /* client: pause between connect and ClientHello */
static size_t g_max_send_queue;            /* 0: 64 MiB (the plain echo never meets the limit) */
static unsigned g_max_conns;
static unsigned g_recv_buf_size, g_recv_buf_count;

static void srv_start(struct srv *s, const struct pt_tls_config *tc, unsigned workers, enum mode m)
{
	struct pt_engine_config cfg;
	char err[256];
	int e;

	reset_records(m);
	s->tls = pt_tls_create(tc, err, sizeof err);
	if (!s->tls)
		print_error("pt_tls_create: %s\n", err);
	assert_non_null(s->tls);
	pt_engine_config_init(&cfg);
	cfg.workers = workers;
	cfg.max_send_queue = g_max_send_queue ? g_max_send_queue : 64u << 20;
	cfg.recv_buf_size = g_recv_buf_size;
	cfg.recv_buf_count = g_recv_buf_count;
	cfg.max_conns = g_max_conns;
	cfg.shutdown_ms = 2000;
	s->e = pt_engine_create(&cfg, &e);
	assert_non_null(s->e);
	int li = pt_engine_listen(s->e, "127.0.0.1:0",
				  &(struct pt_listen_opts){ .on_accept = on_accept, .tls = s->tls });
	int lp = pt_engine_listen(s->e, "127.0.0.1:0", &(struct pt_listen_opts){ .on_accept = on_accept });
	assert_true(li >= 0 && lp >= 0);
	s->port = pt_engine_listen_port(s->e, li);
	s->plain_port = pt_engine_listen_port(s->e, lp);
	assert_int_equal(pt_engine_start(s->e), 0);
}

static struct pt_counters counters(struct srv *s)
{
	struct pt_counters n;

	assert_int_equal(pt_engine_counters(s->e, -1, &n), 0);
	return n;
}

#define WAIT_CNT(s, field, val) do { \
	WAIT_FOR(counters(s).field == (val), IO_MS); \
	assert_int_equal(counters(s).field, (val)); } while (0)

static void srv_stop(struct srv *s)
{
	assert_int_equal(pt_engine_stop(s->e), 0);
	struct pt_counters n = counters(s);
	assert_int_equal(n.conns, 0);
	assert_int_equal(n.ops_inflight, 0);
	assert_int_equal(atomic_load(&g_send_errs), 0);
	pt_engine_destroy(s->e);
	pt_tls_destroy(s->tls);
	free_certs();
	g_max_send_queue = 0;
	g_recv_buf_size = g_recv_buf_count = g_max_conns = 0;
	g_hello_delay_ms = 0;
}

/* ---- the client: OpenSSL over a non-blocking socket ---- */

static unsigned g_io_ms = IO_MS;            /* client waits (shorter under fault injection) */

struct cli {
	int fd;
	SSL *ssl;
	int err;                               /* SSL_get_error of the last failure, or -errno */
};

/* alpn: comma-separated list or NULL; version: 0 any, else min = max = version. */
static SSL_CTX *cli_ctx(int version, const char *alpn)
{
	SSL_CTX *x = SSL_CTX_new(TLS_client_method());
	unsigned char wire[256];
	size_t n = 0;

	assert_non_null(x);
	SSL_CTX_set_verify(x, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (version) {
		if (version < TLS1_2_VERSION) {
			SSL_CTX_set_security_level(x, 0);
			SSL_CTX_set_cipher_list(x, "DEFAULT:@SECLEVEL=0");
		}
		SSL_CTX_set_min_proto_version(x, version);
		SSL_CTX_set_max_proto_version(x, version);
	}
	for (const char *p = alpn; p && *p;) {
		size_t k = strcspn(p, ",");
		wire[n++] = (unsigned char)k;
		memcpy(wire + n, p, k);
		n += k;
		p += k + (p[k] == ',');
	}
	if (n)
		assert_int_equal(SSL_CTX_set_alpn_protos(x, wire, (unsigned)n), 0);
	return x;
}

static int tcp_connect(int port)
{
	int fd = connect_to(port);

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Waits for what the last SSL call asked for; false (k->err set) on an error or timeout. */
static bool cli_wait(struct cli *k, int r, uint64_t deadline)
{
	int e = SSL_get_error(k->ssl, r);
	short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;

	if (!ev) {
		k->err = e;
		return false;
	}
	int left = (int)(deadline - now_ms());
	if (left <= 0) {
		k->err = -ETIMEDOUT;
		return false;
	}
	struct pollfd p = { k->fd, ev, 0 };
	poll(&p, 1, left < 100 ? left : 100);
	return true;
}

/* Connects and runs the handshake; true when it succeeded (k->fd is open either way). */
static bool cli_open(struct cli *k, int port, SSL_CTX *x, const char *sni, SSL_SESSION *sess)
{
	k->fd = tcp_connect(port);
	if (g_hello_delay_ms)
		usleep(g_hello_delay_ms * 1000);
	uint64_t deadline = now_ms() + g_io_ms;
	k->ssl = SSL_new(x);
	k->err = 0;
	assert_non_null(k->ssl);
	SSL_set_fd(k->ssl, k->fd);
	if (sni)
		SSL_set_tlsext_host_name(k->ssl, sni);
	if (sess)
		SSL_set_session(k->ssl, sess);
	for (;;) {
		ERR_clear_error();
		int r = SSL_connect(k->ssl);
		if (r == 1)
			return true;
		if (!cli_wait(k, r, deadline))
			return false;
	}
}

/* Frees the client. Its session stays resumable (SSL_free after an unfinished close would
 * mark it "bad"): the tests decide what the server sees by what they send. */
static void cli_close(struct cli *k)
{
	SSL_set_shutdown(k->ssl, SSL_SENT_SHUTDOWN);
	SSL_free(k->ssl);
	close(k->fd);
	k->ssl = NULL;
	k->fd = -1;
	ERR_clear_error();
}

static bool cli_write(struct cli *k, const void *p, size_t n)
{
	uint64_t deadline = now_ms() + g_io_ms;
	size_t done = 0, w;

	while (done < n) {
		ERR_clear_error();
		int r = SSL_write_ex(k->ssl, (const char *)p + done, n - done, &w);
		if (r == 1)
			done += w;
		else if (!cli_wait(k, r, deadline))
			return false;
	}
	return true;
}

/* Reads up to n bytes, stopping early at the end of the stream (k->err says how it ended).
 * Returns the bytes read. */
static size_t cli_read(struct cli *k, void *p, size_t n)
{
	uint64_t deadline = now_ms() + g_io_ms;
	size_t got = 0, r;

	while (got < n) {
		ERR_clear_error();
		int rc = SSL_read_ex(k->ssl, (char *)p + got, n - got, &r);
		if (rc == 1) {
			got += r;
			deadline = now_ms() + g_io_ms;   /* a bound on stalls, not on the total */
		} else if (!cli_wait(k, rc, deadline)) {
			break;
		}
	}
	if (got < n && k->err == -ETIMEDOUT)
		print_message("# cli_read: %zu of %zu bytes, then %u ms without progress\n", got, n,
			      g_io_ms);
	return got;
}

/* Reads until the stream ends; returns how (SSL_ERROR_ZERO_RETURN for close_notify), or -1
 * when data arrived instead, -ETIMEDOUT. */
static int cli_end(struct cli *k)
{
	char b;

	if (cli_read(k, &b, 1) == 1)
		return -1;
	return k->err;
}

/* Sends n bytes and reads them back at the same time (the server echoes), in 64 KiB steps;
 * reading starts after hold_ms (so that the server meets backpressure meanwhile). */
static bool cli_pump(struct cli *k, const char *out, size_t n, char *in, unsigned hold_ms)
{
	uint64_t read_from = now_ms() + hold_ms, deadline = now_ms() + hold_ms + g_io_ms;
	size_t sent = 0, got = 0, w, r;

	while (got < n) {
		short ev = POLLIN;
		bool progress = false;
		if (sent < n) {
			ERR_clear_error();
			if (SSL_write_ex(k->ssl, out + sent, n - sent < 65536 ? n - sent : 65536, &w) == 1) {
				sent += w;
				progress = true;
			} else {
				int e = SSL_get_error(k->ssl, 0);
				if (e == SSL_ERROR_WANT_WRITE)
					ev |= POLLOUT;
				else if (e != SSL_ERROR_WANT_READ)
					return k->err = e, false;
			}
		}
		ERR_clear_error();
		if (now_ms() < read_from) {
			if (!progress)
				usleep(1000);
			continue;
		}
		if (SSL_read_ex(k->ssl, in + got, n - got, &r) == 1) {
			got += r;
			progress = true;
		} else {
			int e = SSL_get_error(k->ssl, 0);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				return k->err = e, false;
		}
		if (progress) {
			deadline = now_ms() + g_io_ms;             /* a bound on stalls, not on the total */
			continue;
		}
		if (now_ms() > deadline)
			return k->err = -ETIMEDOUT, false;
		struct pollfd p = { k->fd, ev, 0 };
		poll(&p, 1, 100);
	}
	return true;
}

static bool cli_echo(struct cli *k, const char *msg)
{
	char buf[256];
	size_t n = strlen(msg);

	return cli_write(k, msg, n) && cli_read(k, buf, n) == n && !memcmp(buf, msg, n);
}

/* The common name of the certificate the server presented. */
static const char *peer_cn(struct cli *k)
{
	static char cn[128];
	X509 *x = SSL_get1_peer_certificate(k->ssl);

	cn[0] = 0;
	if (x) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
		X509_free(x);
	}
	return cn;
}

/* A ClientHello as a client would send it (from a memory BIO). Returns its length. */
static size_t client_hello(unsigned char *out, size_t cap, const char *sni)
{
	SSL_CTX *x = cli_ctx(0, "http/1.1");
	SSL *s = SSL_new(x);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());

	SSL_set_bio(s, rb, wb);
	if (sni)
		SSL_set_tlsext_host_name(s, sni);
	assert_int_equal(SSL_connect(s), -1);  /* wants the ServerHello */
	int n = BIO_read(wb, out, (int)cap);
	assert_true(n > 100);
	SSL_free(s);
	SSL_CTX_free(x);
	ERR_clear_error();
	return (size_t)n;
}

/* Whether the server closed fd (FIN or reset) within ms. */
static bool closed_within(int fd, unsigned ms)
{
	uint64_t deadline = now_ms() + ms;
	char buf[4096];

	for (;;) {
		int left = (int)(deadline - now_ms());
		if (left <= 0)
			return false;
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, left) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
}

static bool still_open(int fd, unsigned ms)
{
	struct pollfd p = { fd, POLLIN, 0 };

	return poll(&p, 1, (int)ms) == 0;
}

static struct seen seen(void)
{
	pthread_mutex_lock(&g_mu);
	struct seen s = g_seen;
	pthread_mutex_unlock(&g_mu);
	return s;
}

static void expect_events(const char *want)
{
	WAIT_FOR(({ pthread_mutex_lock(&g_mu); bool d = !strcmp(g_events, want);
		    pthread_mutex_unlock(&g_mu); d; }), IO_MS);
	pthread_mutex_lock(&g_mu);
	char got[sizeof g_events];
	memcpy(got, g_events, sizeof got);
	pthread_mutex_unlock(&g_mu);
	assert_string_equal(got, want);
}

/* ---- pt_tls_create errors ---- */

static pt_tls_t *create_pair(const char *cert, const char *key, char *err, size_t cap)
{
	struct pt_tls_cert pc = { cert, key };
	struct pt_tls_config tc;

	pt_tls_config_init(&tc);
	tc.certs = &pc;
	tc.ncerts = 1;
	return pt_tls_create(&tc, err, cap);
}

static void assert_has(const char *err, const char *part)
{
	if (!strstr(err, part))
		print_error("'%s' does not contain '%s'\n", err, part);
	assert_non_null(strstr(err, part));
}

static void test_create_errors(void **state)
{
	struct pt_tls_config tc;
	char err[512];
	pt_tls_t *t;

	assert_null(create_pair(path("missing.pem"), path("a.key"), err, sizeof err));
	assert_has(err, path("missing.pem"));
	assert_has(err, "No such file");
	assert_null(create_pair(path("a.pem"), path("missing.key"), err, sizeof err));
	assert_has(err, path("missing.key"));
	assert_null(create_pair(path("garbage.pem"), path("a.key"), err, sizeof err));
	assert_has(err, path("garbage.pem"));
	assert_null(create_pair(path("a.pem"), path("garbage.pem"), err, sizeof err));
	assert_has(err, path("garbage.pem"));
	assert_null(create_pair(path("a.pem"), path("b.key"), err, sizeof err));
	assert_has(err, "match");
	assert_has(err, path("b.key"));
	assert_null(create_pair(NULL, path("a.key"), err, sizeof err));
	assert_has(err, "certificate");

	tls_config(&tc);
	tc.min_version = 0x0301;                               /* TLS 1.0 */
	assert_null(pt_tls_create(&tc, err, sizeof err));
	assert_has(err, "versions");
	tc.min_version = PT_TLS_1_3;
	tc.max_version = PT_TLS_1_2;
	assert_null(pt_tls_create(&tc, err, sizeof err));
	assert_has(err, "versions");
	tc.min_version = tc.max_version = 0;

	tc.ncerts = 0;
	assert_null(pt_tls_create(&tc, err, sizeof err));
	assert_has(err, "certificate");
	tc.ncerts = 1;
	tc.certs = NULL;
	assert_null(pt_tls_create(&tc, err, sizeof err));
	tc.certs = g_cert_a;
	assert_null(pt_tls_create(NULL, err, sizeof err));

	static const char *bad_alpn[] = { "", ",h2", "h2,,http/1.1", NULL };
	for (int i = 0; bad_alpn[i]; i++) {
		tc.alpn = bad_alpn[i];
		err[0] = 0;
		assert_null(pt_tls_create(&tc, err, sizeof err));
		assert_has(err, "ALPN");
	}
	char longname[300];
	memset(longname, 'p', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	tc.alpn = longname;
	assert_null(pt_tls_create(&tc, err, sizeof err));
	assert_has(err, "ALPN");
	tc.alpn = NULL;

	tc.record_size = 100;
	assert_null(pt_tls_create(&tc, err, sizeof err));
	assert_has(err, "record size");
	tc.record_size = 0;
	tc.ticket_secret = "short";
	tc.ticket_secret_len = 5;
	assert_null(pt_tls_create(&tc, err, sizeof err));
	assert_has(err, "secret");
	tc.ticket_secret = NULL;
	tc.ticket_secret_len = 0;
	tc.ciphers = "NOT-A-CIPHER";
	assert_null(pt_tls_create(&tc, err, sizeof err));
	assert_has(err, "cipher");
	tc.ciphers = NULL;

	/* a NULL or empty error buffer is allowed */
	tc.ncerts = 0;
	assert_null(pt_tls_create(&tc, NULL, 0));
	tc.ncerts = 1;

	/* and the good configuration works, also with a certificate in a combined file */
	tc.alpn = "h2,http/1.1";
	assert_non_null(t = pt_tls_create(&tc, err, sizeof err));
	assert_false(pt_tls_ktls(t));                          /* cfg.ktls not set */
	assert_int_equal(pt_tls_reload(NULL, &tc, err, sizeof err), -EINVAL);
	pt_tls_destroy(t);
	pt_tls_destroy(NULL);
	free_certs();
}

/* ---- echo over TLS 1.2 and 1.3; callbacks in order; close_notify both ways ---- */

static void echo_version(int version, unsigned expect)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;

	tls_config(&tc);
	srv_start(&s, &tc, 2, M_ECHO);
	SSL_CTX *x = cli_ctx(version, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_int_equal(SSL_version(k.ssl), (int)expect);
	assert_true(cli_echo(&k, "hello, tls"));
	assert_true(cli_echo(&k, "and again"));
	WAIT_FOR(atomic_load(&g_accepts) == 1, IO_MS);
	assert_int_equal(seen().version, expect);
	/* the peer's close_notify ends the input with on_eof(0); the server's graceful close
	 * answers with its own close_notify before the FIN */
	assert_int_equal(SSL_shutdown(k.ssl), 0);
	assert_int_equal(cli_end(&k), SSL_ERROR_ZERO_RETURN);
	expect_events("ADEC");
	assert_int_equal(atomic_load(&g_eof_err), 0);
	pthread_mutex_lock(&g_mu);
	assert_int_equal(g_bytes_sent, 19);                   /* plaintext bytes */
	pthread_mutex_unlock(&g_mu);
	cli_close(&k);
	struct pt_counters n = counters(&s);
	assert_int_equal(n.tls_handshakes, 1);
	assert_int_equal(n.tls_failed, 0);
	assert_int_equal(n.tls_errors, 0);
	SSL_CTX_free(x);
	srv_stop(&s);
}

static void test_echo_tls12(void **state) { echo_version(TLS1_2_VERSION, PT_TLS_1_2); }
static void test_echo_tls13(void **state) { echo_version(TLS1_3_VERSION, PT_TLS_1_3); }

/* The server closes first: "bye", close_notify, FIN. */
static void test_server_close_notify(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	char buf[8];

	tls_config(&tc);
	srv_start(&s, &tc, 1, M_BYE);
	SSL_CTX *x = cli_ctx(0, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_int_equal(cli_read(&k, buf, 3), 3);
	assert_memory_equal(buf, "bye", 3);
	assert_int_equal(cli_end(&k), SSL_ERROR_ZERO_RETURN);
	assert_true(SSL_get_shutdown(k.ssl) & SSL_RECEIVED_SHUTDOWN);
	cli_close(&k);
	expect_events("AC");
	SSL_CTX_free(x);
	srv_stop(&s);
}

/* Several MiB both ways at once, every byte checked. */
static void big_echo(int version)
{
	const size_t n = 6u << 20;
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	char *out = malloc(n), *in = malloc(n);

	assert_true(out && in);
	for (size_t i = 0; i < n; i++)
		out[i] = (char)(i * 7 + i / 4099);
	tls_config(&tc);
	srv_start(&s, &tc, 2, M_ECHO);
	SSL_CTX *x = cli_ctx(version, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_true(cli_pump(&k, out, n, in, 0));
	assert_memory_equal(in, out, n);
	SSL_shutdown(k.ssl);
	assert_int_equal(cli_end(&k), SSL_ERROR_ZERO_RETURN);
	cli_close(&k);
	WAIT_FOR(atomic_load(&g_closes) == 1, IO_MS);
	pthread_mutex_lock(&g_mu);
	assert_int_equal(g_bytes_sent, n);
	pthread_mutex_unlock(&g_mu);
	struct pt_counters c = counters(&s);
	assert_true(c.bytes_in > n && c.bytes_out >= n);
	SSL_CTX_free(x);
	srv_stop(&s);
	free(out);
	free(in);
}

static void test_big_echo_tls12(void **state) { big_echo(TLS1_2_VERSION); }
static void test_big_echo_tls13(void **state) { big_echo(TLS1_3_VERSION); }

/* ---- transmit: file ranges, memory, COPY, MORE ---- */

static void make_file(void)
{
	int fd = open(path("data.bin"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	uint64_t x = 88172645463325252ull;

	assert_true(fd >= 0);
	g_file = malloc(FILE_LEN);
	assert_non_null(g_file);
	for (size_t i = 0; i < FILE_LEN; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		g_file[i] = (char)x;
	}
	assert_int_equal(write(fd, g_file, FILE_LEN), FILE_LEN);
	g_file_fd = fd;
}

static void drop_file(void)
{
	close(g_file_fd);
	g_file_fd = -1;
	free(g_file);
	g_file = NULL;
}

static void transmit_version(int version)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	char stack[100000];

	make_file();
	g_expect = malloc(4u << 20);
	g_expect_len = 0;
	expect_add(HEAD, sizeof HEAD - 1);
	expect_add(g_file + RANGES[0].off, RANGES[0].len);
	expect_add(MID, 2);
	expect_add(g_file + RANGES[1].off, RANGES[1].len);
	copy_chunk(stack, sizeof stack);
	expect_add(stack, sizeof stack);
	expect_add(g_file + RANGES[2].off, RANGES[2].len);
	expect_add(g_file + RANGES[3].off, RANGES[3].len);
	expect_add(END, sizeof END - 1);

	tls_config(&tc);
	srv_start(&s, &tc, 1, M_TRANSMIT);
	SSL_CTX *x = cli_ctx(version, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	char *got = malloc(g_expect_len);
	assert_int_equal(cli_read(&k, got, g_expect_len), g_expect_len);
	assert_memory_equal(got, g_expect, g_expect_len);
	assert_int_equal(cli_end(&k), SSL_ERROR_ZERO_RETURN);  /* nothing more, then close_notify */
	cli_close(&k);
	WAIT_FOR(atomic_load(&g_closes) == 1, IO_MS);
	pthread_mutex_lock(&g_mu);
	assert_int_equal(g_ncb, 5);
	const ssize_t want[5] = { sizeof HEAD - 1, (ssize_t)(RANGES[0].len + 2 + RANGES[1].len),
				  sizeof stack, (ssize_t)(RANGES[2].len + RANGES[3].len), sizeof END - 1 };
	for (int i = 0; i < 5; i++) {
		assert_int_equal(g_cb_id[i], i);
		assert_int_equal(g_cb_res[i], want[i]);
	}
	assert_int_equal(g_bytes_sent, g_expect_len);
	pthread_mutex_unlock(&g_mu);
	free(got);
	free(g_expect);
	SSL_CTX_free(x);
	srv_stop(&s);
	drop_file();
}

static void test_transmit_tls12(void **state) { transmit_version(TLS1_2_VERSION); }
static void test_transmit_tls13(void **state) { transmit_version(TLS1_3_VERSION); }

static void test_transmit_short_file(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	char buf[256];

	make_file();
	tls_config(&tc);
	srv_start(&s, &tc, 1, M_SHORT_FILE);
	SSL_CTX *x = cli_ctx(0, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	cli_read(&k, buf, sizeof buf);                         /* ends without close_notify */
	assert_int_not_equal(k.err, SSL_ERROR_ZERO_RETURN);
	cli_close(&k);
	WAIT_FOR(atomic_load(&g_closes) == 1, IO_MS);
	pthread_mutex_lock(&g_mu);
	assert_int_equal(g_ncb, 1);
	assert_int_equal(g_cb_res[0], -EIO);
	pthread_mutex_unlock(&g_mu);
	SSL_CTX_free(x);
	srv_stop(&s);
	drop_file();
}

/* ---- what the connection negotiated: ALPN, SNI, info ---- */

static void alpn_case(struct srv *s, const char *offer, const char *sni, const char *want)
{
	struct cli k;
	SSL_CTX *x = cli_ctx(0, offer);

	atomic_store(&g_accepts, 0);
	assert_true(cli_open(&k, s->port, x, sni, NULL));
	assert_true(cli_echo(&k, "x"));
	WAIT_FOR(atomic_load(&g_accepts) == 1, IO_MS);
	struct seen v = seen();
	assert_true(v.is_tls);
	assert_int_equal(v.info_rc, 0);
	assert_int_equal(v.has_alpn, want != NULL);
	if (want)
		assert_string_equal(v.alpn, want);
	const unsigned char *p;
	unsigned plen = 0;
	SSL_get0_alpn_selected(k.ssl, &p, &plen);
	assert_int_equal(plen, want ? strlen(want) : 0);
	assert_int_equal(v.has_sni, sni != NULL);
	if (sni)
		assert_string_equal(v.sni, sni);
	assert_int_equal(v.version, PT_TLS_1_3);
	assert_string_equal(v.cipher, SSL_get_cipher_name(k.ssl));
	assert_false(v.resumed);
	assert_true(v.handshake_us > 0 && v.handshake_us < 10000000);
	cli_close(&k);
	SSL_CTX_free(x);
}

static void test_alpn_sni_info(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;

	tls_config(&tc);
	tc.alpn = "h2,http/1.1";
	srv_start(&s, &tc, 2, M_ECHO);
	alpn_case(&s, "http/1.1,h2", NULL, "h2");              /* our preference wins */
	alpn_case(&s, "http/1.1", "a.example.com", "http/1.1");
	alpn_case(&s, "foo,http/1.1", "unknown.test", "http/1.1");
	alpn_case(&s, NULL, "localhost", NULL);                /* no ALPN: accepted, none */

	/* only an unknown protocol: no_application_protocol, no on_accept */
	SSL_CTX *x = cli_ctx(0, "spdy/3,foo");
	atomic_store(&g_accepts, 0);
	assert_false(cli_open(&k, s.port, x, NULL, NULL));
	assert_int_equal(k.err, SSL_ERROR_SSL);
	cli_close(&k);
	WAIT_CNT(&s, tls_fail_proto, 1);
	assert_int_equal(counters(&s).tls_failed, 1);
	SSL_CTX_free(x);

	/* TLS 1.1 is refused by version */
	x = cli_ctx(TLS1_1_VERSION, NULL);
	assert_false(cli_open(&k, s.port, x, NULL, NULL));
	cli_close(&k);
	WAIT_CNT(&s, tls_fail_proto, 2);
	SSL_CTX_free(x);

	/* the plaintext listener of the same engine: not TLS */
	int fd = connect_to(s.plain_port);
	char b;
	send_all(fd, "p", 1);
	assert_int_equal(recv_r(fd, &b, 1, 0), 1);
	close(fd);
	WAIT_FOR(atomic_load(&g_accepts) == 1, IO_MS);
	struct seen v = seen();
	assert_false(v.is_tls);
	assert_int_equal(v.info_rc, -ENOTCONN);
	assert_false(v.has_alpn);
	assert_false(v.has_sni);
	assert_int_equal(atomic_load(&g_accepts), 1);          /* the failed ones never got here */
	srv_stop(&s);
}

/* SNI picks the certificate: subjectAltName, common name, one-label wildcard; else the
 * default. The RSA certificate is served over TLS 1.2 and 1.3. */
static void sni_case(struct srv *s, SSL_CTX *x, const char *sni, const char *cn)
{
	struct cli k;

	assert_true(cli_open(&k, s->port, x, sni, NULL));
	assert_string_equal(peer_cn(&k), cn);
	assert_true(cli_echo(&k, "sni"));
	cli_close(&k);
}

static void test_sni(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	char *files[8];
	const char *names[4] = { "a", "b", "w", "r" };
	struct pt_tls_cert certs[4];

	for (int i = 0; i < 4; i++) {
		char f[16];
		snprintf(f, sizeof f, "%s.pem", names[i]);
		files[2 * i] = strdup(path(f));
		snprintf(f, sizeof f, "%s.key", names[i]);
		files[2 * i + 1] = strdup(path(f));
		certs[i] = (struct pt_tls_cert){ files[2 * i], files[2 * i + 1] };
	}
	tls_config(&tc);
	tc.certs = certs;
	tc.ncerts = 4;
	srv_start(&s, &tc, 2, M_ECHO);
	SSL_CTX *x13 = cli_ctx(TLS1_3_VERSION, NULL), *x12 = cli_ctx(TLS1_2_VERSION, NULL);
	for (int v = 0; v < 2; v++) {
		SSL_CTX *x = v ? x12 : x13;
		sni_case(&s, x, NULL, "a.example.com");
		sni_case(&s, x, "a.example.com", "a.example.com");
		sni_case(&s, x, "b.example.net", "b.example.net");        /* common name */
		sni_case(&s, x, "B.Example.NET", "b.example.net");        /* case-insensitive */
		sni_case(&s, x, "x.example.org", "wild.example.org");     /* wildcard */
		sni_case(&s, x, "y.x.example.org", "a.example.com");      /* one label only */
		sni_case(&s, x, "example.org", "a.example.com");
		sni_case(&s, x, "rsa.example.com", "rsa.example.com");
		sni_case(&s, x, "nowhere.test", "a.example.com");         /* unknown: default */
	}
	SSL_CTX_free(x13);
	SSL_CTX_free(x12);
	assert_int_equal(counters(&s).tls_failed, 0);
	srv_stop(&s);
	for (int i = 0; i < 8; i++)
		free(files[i]);
}

/* ---- resumption by ticket, across reloads ---- */

static SSL_SESSION *full_then_session(struct srv *s, SSL_CTX *x, bool tickets)
{
	struct cli k;

	assert_true(cli_open(&k, s->port, x, NULL, NULL));
	assert_true(cli_echo(&k, "ticket please"));            /* TLS 1.3 tickets come after */
	assert_false(SSL_session_reused(k.ssl));
	SSL_SESSION *sess = SSL_get1_session(k.ssl);
	assert_non_null(sess);
	cli_close(&k);
	if (tickets)
		assert_true(SSL_SESSION_is_resumable(sess));
	return sess;
}

static bool resumes(struct srv *s, SSL_CTX *x, SSL_SESSION *sess)
{
	struct cli k;

	atomic_store(&g_accepts, 0);
	assert_true(cli_open(&k, s->port, x, NULL, sess));
	assert_true(cli_echo(&k, "again"));
	bool r = SSL_session_reused(k.ssl);
	WAIT_FOR(atomic_load(&g_accepts) == 1, IO_MS);
	assert_int_equal(seen().resumed, r);
	cli_close(&k);
	return r;
}

static void resumption(int version)
{
	struct pt_tls_config tc;
	struct srv s;
	char err[256];

	tls_config(&tc);
	srv_start(&s, &tc, 2, M_ECHO);
	SSL_CTX *x = cli_ctx(version, NULL);
	SSL_SESSION *sess = full_then_session(&s, x, true);
	assert_true(resumes(&s, x, sess));
	WAIT_CNT(&s, tls_resumed, 1);
	assert_int_equal(counters(&s).tls_handshakes, 1);
	/* a reload keeps the ticket secret: old tickets stay valid */
	assert_int_equal(pt_tls_reload(s.tls, &tc, err, sizeof err), 0);
	assert_true(resumes(&s, x, sess));
	WAIT_CNT(&s, tls_resumed, 2);
	/* a reload with a new secret: old tickets are refused (full handshake), new ones work */
	static const char secret[] = "0123456789abcdef0123456789abcdef-balancer";
	tc.ticket_secret = secret;
	tc.ticket_secret_len = sizeof secret - 1;
	assert_int_equal(pt_tls_reload(s.tls, &tc, err, sizeof err), 0);
	assert_false(resumes(&s, x, sess));
	SSL_SESSION_free(sess);
	sess = full_then_session(&s, x, true);
	assert_true(resumes(&s, x, sess));
	WAIT_CNT(&s, tls_resumed, 3);
	assert_int_equal(counters(&s).tls_handshakes, 3);
	SSL_SESSION_free(sess);
	/* tickets off: no resumption */
	tc.no_tickets = true;
	assert_int_equal(pt_tls_reload(s.tls, &tc, err, sizeof err), 0);
	sess = full_then_session(&s, x, false);
	if (SSL_SESSION_is_resumable(sess))        /* TLS 1.3: a ticket the server cannot open */
		assert_false(resumes(&s, x, sess));
	SSL_SESSION_free(sess);
	SSL_CTX_free(x);
	srv_stop(&s);
}

static void test_resumption_tls12(void **state) { resumption(TLS1_2_VERSION); }
static void test_resumption_tls13(void **state) { resumption(TLS1_3_VERSION); }

/* ---- reload: a bad certificate keeps the old one; a good one is served to new clients ---- */

static void test_reload(void **state)
{
	struct pt_tls_config tc;
	struct pt_tls_cert pc;
	struct srv s;
	struct cli old, k;
	char err[512];

	tls_config(&tc);
	srv_start(&s, &tc, 2, M_ECHO);
	SSL_CTX *x = cli_ctx(0, NULL);
	assert_true(cli_open(&old, s.port, x, NULL, NULL));
	assert_string_equal(peer_cn(&old), "a.example.com");
	assert_true(cli_echo(&old, "before"));

	char *nc = strdup(path("n.pem")), *nk = strdup(path("n.key"));
	char *mc = strdup(path("missing.pem")), *bk = strdup(path("b.key"));
	tc.certs = &pc;
	pc = (struct pt_tls_cert){ mc, nk };
	assert_int_equal(pt_tls_reload(s.tls, &tc, err, sizeof err), -EINVAL);
	assert_has(err, mc);
	pc = (struct pt_tls_cert){ nc, bk };                   /* key of another certificate */
	assert_int_equal(pt_tls_reload(s.tls, &tc, err, sizeof err), -EINVAL);
	assert_has(err, "match");
	tc.ncerts = 0;
	assert_true(pt_tls_reload(s.tls, &tc, err, sizeof err) < 0);
	tc.ncerts = 1;
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_string_equal(peer_cn(&k), "a.example.com");    /* still the old one */
	cli_close(&k);

	pc = (struct pt_tls_cert){ nc, nk };
	assert_int_equal(pt_tls_reload(s.tls, &tc, err, sizeof err), 0);
	for (int i = 0; i < 4; i++) {                          /* on every worker */
		assert_true(cli_open(&k, s.port, x, "a.example.com", NULL));
		assert_string_equal(peer_cn(&k), "new.example.com");
		assert_true(cli_echo(&k, "after"));
		cli_close(&k);
	}
	assert_true(cli_echo(&old, "still here"));            /* open connections are untouched */
	cli_close(&old);
	tc.certs = g_cert_a;
	SSL_CTX_free(x);
	srv_stop(&s);
	free(nc), free(nk), free(mc), free(bk);
}

/* ---- on_accept refusing after the handshake ---- */

static void test_accept_refused(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	char buf[16];

	tls_config(&tc);
	srv_start(&s, &tc, 1, M_REFUSE);
	SSL_CTX *x = cli_ctx(TLS1_3_VERSION, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));     /* 1.3: done before the server */
	cli_write(&k, "x", 1);
	assert_int_equal(cli_read(&k, buf, sizeof buf), 0);
	assert_int_not_equal(k.err, SSL_ERROR_ZERO_RETURN);    /* reset, no close_notify */
	cli_close(&k);
	WAIT_CNT(&s, closes, 1);
	assert_int_equal(atomic_load(&g_accepts), 1);
	assert_int_equal(atomic_load(&g_closes), 0);           /* no on_close */
	expect_events("A");
	SSL_CTX_free(x);
	srv_stop(&s);
}

/* ---- handshakes that do not finish: deadline and limit ---- */

static void test_handshake_timeout(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	unsigned char hello[2048];
	size_t n = client_hello(hello, sizeof hello, "a.example.com");

	tls_config(&tc);
	tc.handshake_timeout_ms = 300;
	srv_start(&s, &tc, 1, M_ECHO);
	uint64_t t0 = now_ms();
	int silent = connect_to(s.port), half = connect_to(s.port);
	send_all(half, hello, n / 2);
	assert_true(closed_within(silent, 5000));
	assert_true(closed_within(half, 5000));
	assert_true(now_ms() - t0 >= 250);
	WAIT_CNT(&s, tls_fail_timeout, 2);
	assert_int_equal(counters(&s).tls_failed, 2);
	assert_int_equal(counters(&s).timeouts, 0);           /* not the application's deadline */
	close(silent);
	close(half);
	/* a client that finishes in time is not affected by the deadline afterwards */
	struct cli k;
	SSL_CTX *x = cli_ctx(0, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	usleep(500 * 1000);
	assert_true(cli_echo(&k, "in time"));
	cli_close(&k);
	SSL_CTX_free(x);
	assert_int_equal(atomic_load(&g_accepts), 1);
	srv_stop(&s);
}

static void test_max_handshakes(void **state)
{
	enum { N = 3 };
	struct pt_tls_config tc;
	struct srv s;
	unsigned char hello[2048];
	size_t n = client_hello(hello, sizeof hello, NULL);
	int fds[N + 1];

	tls_config(&tc);
	tc.max_handshakes = N;
	srv_start(&s, &tc, 1, M_ECHO);
	for (unsigned i = 0; i <= N; i++) {
		fds[i] = connect_to(s.port);
		send_all(fds[i], hello, n / 2);                /* stalled half-way */
		WAIT_CNT(&s, accepts, i + 1);
	}
	assert_true(closed_within(fds[0], 5000));              /* the oldest is shed */
	for (unsigned i = 1; i <= N; i++)
		assert_true(still_open(fds[i], 200));
	WAIT_CNT(&s, tls_fail_shed, 1);
	assert_int_equal(counters(&s).tls_failed, 1);
	/* a real client still gets through (shedding the next oldest) */
	struct cli k;
	SSL_CTX *x = cli_ctx(0, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_true(cli_echo(&k, "through"));
	assert_true(closed_within(fds[1], 5000));
	WAIT_CNT(&s, tls_fail_shed, 2);
	/* stopping with handshakes in progress and an established connection open: the
	 * established one gets close_notify, the others are closed, nothing leaks */
	srv_stop(&s);
	assert_int_equal(cli_end(&k), SSL_ERROR_ZERO_RETURN);
	cli_close(&k);
	for (unsigned i = 0; i <= N; i++) {
		assert_true(i < 2 || closed_within(fds[i], 5000));
		close(fds[i]);
	}
	SSL_CTX_free(x);
}

/* ---- bad input: plaintext, garbage handshakes, corrupted and truncated records ---- */

static void test_plaintext_to_tls_port(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

	tls_config(&tc);
	srv_start(&s, &tc, 1, M_ECHO);
	SSL_CTX *x = cli_ctx(0, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));     /* a client in the middle of it */
	assert_true(cli_echo(&k, "one"));
	int fd = connect_to(s.port);
	send_all(fd, req, sizeof req - 1);
	assert_true(closed_within(fd, 5000));
	close(fd);
	WAIT_CNT(&s, tls_fail_plain, 1);
	/* a record header of the handshake type with garbage after it */
	fd = connect_to(s.port);
	send_all(fd, "\x16\x03\x01\x00\x05hello", 10);
	assert_true(closed_within(fd, 5000));
	close(fd);
	WAIT_CNT(&s, tls_failed, 2);
	assert_true(cli_echo(&k, "two"));                      /* unaffected */
	cli_close(&k);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));     /* and new ones still work */
	assert_true(cli_echo(&k, "three"));
	cli_close(&k);
	assert_int_equal(atomic_load(&g_accepts), 2);
	SSL_CTX_free(x);
	srv_stop(&s);
}

/* After the handshake, an application-data record that does not decrypt. */
static void test_corrupt_record(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	unsigned char rec[5 + 48] = { 0x17, 0x03, 0x03, 0x00, 48 };

	tls_config(&tc);
	srv_start(&s, &tc, 1, M_ECHO);
	SSL_CTX *x = cli_ctx(0, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_true(cli_echo(&k, "fine so far"));
	for (size_t i = 5; i < sizeof rec; i++)
		rec[i] = (unsigned char)(i * 29);
	send_all(k.fd, rec, sizeof rec);
	char buf[16];
	assert_int_equal(cli_read(&k, buf, sizeof buf), 0);   /* an alert, then the close */
	assert_int_not_equal(k.err, SSL_ERROR_ZERO_RETURN);
	cli_close(&k);
	expect_events("ADEC");
	assert_int_equal(atomic_load(&g_eof_err), -EPROTO);
	assert_int_equal(counters(&s).tls_errors, 1);
	SSL_CTX_free(x);
	srv_stop(&s);
}

/* A record cut short by the peer's FIN: engine.h counts truncation among tls_errors, so the
 * input should end with -EPROTO, not as a clean end of stream. */
static void test_truncated_record(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;

	tls_config(&tc);
	srv_start(&s, &tc, 1, M_ECHO);
	SSL_CTX *x = cli_ctx(0, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_true(cli_echo(&k, "fine so far"));
	send_all(k.fd, "\x17\x03\x03\x01\x00partial", 12);
	shutdown(k.fd, SHUT_WR);
	assert_true(closed_within(k.fd, 5000));
	cli_close(&k);
	WAIT_FOR(atomic_load(&g_closes) == 1, IO_MS);
	expect_events("ADEC");
	int err = atomic_load(&g_eof_err);
	uint64_t errors = counters(&s).tls_errors;
	SSL_CTX_free(x);
	srv_stop(&s);
	assert_int_equal(err, -EPROTO);        /* a record cut short by FIN is not a clean end */
	assert_int_equal(errors, 1);
}

/* The client goes away in the middle of the handshake. */
static void test_eof_during_handshake(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	unsigned char hello[2048];
	size_t n = client_hello(hello, sizeof hello, NULL);

	tls_config(&tc);
	srv_start(&s, &tc, 1, M_ECHO);
	for (int i = 0; i < 20; i++) {
		int fd = connect_to(s.port);
		send_all(fd, hello, i % 2 ? n : n / 3);
		if (i % 4 == 3) {                               /* reset instead of FIN */
			struct linger lg = { 1, 0 };
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
		close(fd);
	}
	WAIT_CNT(&s, tls_failed, 20);
	WAIT_CNT(&s, conns, 0);
	assert_int_equal(atomic_load(&g_accepts), 0);
	srv_stop(&s);
}

/* ---- flow control under TLS: pause/resume, backpressure, tiny receive buffers ---- */

static void test_pause_resume(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	static char data[sizeof g_rx];

	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (char)(i * 13 + i / 509);
	atomic_store(&g_rx_len, 0);
	atomic_store(&g_rx_at_eof, 0);
	tls_config(&tc);
	srv_start(&s, &tc, 1, M_PAUSE);
	SSL_CTX *x = cli_ctx(0, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_true(cli_write(&k, data, sizeof data));
	SSL_shutdown(k.ssl);                                   /* close_notify right behind */
	assert_int_equal(cli_end(&k), SSL_ERROR_ZERO_RETURN);
	cli_close(&k);
	WAIT_FOR(atomic_load(&g_closes) == 1, IO_MS);
	assert_int_equal(atomic_load(&g_rx_len), sizeof data);
	assert_memory_equal(g_rx, data, sizeof data);
	assert_int_equal(atomic_load(&g_rx_at_eof), sizeof data);   /* EOF after every byte */
	assert_int_equal(atomic_load(&g_eof_err), 0);
	expect_events("ADEC");
	SSL_CTX_free(x);
	srv_stop(&s);
}

static void test_backpressure(void **state)
{
	const size_t n = 4u << 20;
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	char *out = malloc(n), *in = malloc(n);

	assert_true(out && in);
	for (size_t i = 0; i < n; i++)
		out[i] = (char)(i * 11 + i / 8191);
	atomic_store(&g_refused, 0);
	atomic_store(&g_drains, 0);
	g_max_send_queue = 128u << 10;
	tls_config(&tc);
	srv_start(&s, &tc, 1, M_BACKPRESSURE);
	SSL_CTX *x = cli_ctx(0, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_true(cli_pump(&k, out, n, in, 300));           /* reads only after 300 ms */
	assert_memory_equal(in, out, n);
	assert_true(atomic_load(&g_refused) > 0);
	assert_int_equal(atomic_load(&g_drains), atomic_load(&g_refused));
	assert_true(counters(&s).send_refused > 0);
	SSL_shutdown(k.ssl);
	assert_int_equal(cli_end(&k), SSL_ERROR_ZERO_RETURN);
	cli_close(&k);
	SSL_CTX_free(x);
	srv_stop(&s);
	free(out);
	free(in);
}

/* Receive buffers of 64 bytes, 8 of them: records arrive in many pieces (and, on io_uring,
 * the ring runs dry); nothing is lost or reordered. */
static void test_tiny_receive_buffers(void **state)
{
	const size_t n = 1u << 20;
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	char *out = malloc(n), *in = malloc(n);

	assert_true(out && in);
	for (size_t i = 0; i < n; i++)
		out[i] = (char)(i * 5 + i / 127);
	g_recv_buf_size = 64;
	g_recv_buf_count = 8;
	tls_config(&tc);
	srv_start(&s, &tc, 1, M_ECHO);
	SSL_CTX *x = cli_ctx(0, NULL);
	for (int i = 0; i < 3; i++) {
		assert_true(cli_open(&k, s.port, x, NULL, NULL));
		assert_true(cli_pump(&k, out, n >> (2 * i), in, 0));
		assert_memory_equal(in, out, n >> (2 * i));
		SSL_shutdown(k.ssl);
		assert_int_equal(cli_end(&k), SSL_ERROR_ZERO_RETURN);
		cli_close(&k);
	}
	SSL_CTX_free(x);
	srv_stop(&s);
	free(out);
	free(in);
}

/* ---- record sizes: small for the first 64 KiB, then 16 KiB; or fixed ---- */

static unsigned g_rec_len[2048];
static unsigned g_nrec;

static void msg_cb(int write_p, int version, int type, const void *buf, size_t len, SSL *ssl,
		   void *arg)
{
	const unsigned char *h = buf;

	if (!write_p && type == SSL3_RT_HEADER && len == 5 && h[0] == SSL3_RT_APPLICATION_DATA &&
	    g_nrec < 2048)
		g_rec_len[g_nrec++] = (unsigned)h[3] << 8 | h[4];
}

static void record_sizes(unsigned fixed, int version)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	static char got[BIG_SEND];

	for (size_t i = 0; i < sizeof g_big; i++)
		g_big[i] = (char)(i * 3 + i / 1001);
	tls_config(&tc);
	tc.record_size = fixed;
	tc.no_tickets = true;                  /* only application data in 0x17 records */
	srv_start(&s, &tc, 1, M_SEND_BIG);
	SSL_CTX *x = cli_ctx(version, NULL);
	SSL_CTX_set_msg_callback(x, msg_cb);
	g_nrec = 0;
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_int_equal(cli_read(&k, got, sizeof got), sizeof got);
	assert_memory_equal(got, g_big, sizeof got);
	assert_int_equal(cli_end(&k), SSL_ERROR_ZERO_RETURN);
	cli_close(&k);
	size_t plain = 0, max = 0;
	unsigned small_until = 0;
	for (unsigned i = 0; i < g_nrec; i++) {
		unsigned len = g_rec_len[i];
		if (len > 16384 + 256)
			fail_msg("record %u is %u bytes", i, len);
		if (fixed)
			assert_true(len <= fixed + 256);
		else if (plain < (64u << 10))
			assert_true(len <= 1369 + 256);        /* the first 64 KiB: one segment each */
		else if (!small_until)
			small_until = i;
		max = len > max ? len : max;
		plain += len;
	}
	if (!fixed)
		assert_true(max > 16000);                       /* bulk: full records */
	print_message("record size %u: %u records, largest %zu\n", fixed, g_nrec, max);
	WAIT_FOR(atomic_load(&g_closes) == 1, IO_MS);
	pthread_mutex_lock(&g_mu);
	assert_int_equal(g_ncb, 1);
	assert_int_equal(g_cb_res[0], BIG_SEND);
	pthread_mutex_unlock(&g_mu);
	SSL_CTX_free(x);
	srv_stop(&s);
}

static void test_record_sizes(void **state)
{
	record_sizes(0, TLS1_3_VERSION);
	record_sizes(0, TLS1_2_VERSION);
	record_sizes(512, 0);
	record_sizes(16384, 0);
}

/* ---- post-handshake messages: key update (1.3), renegotiation refused (1.2) ---- */

static void test_key_update(void **state)
{
	const size_t n = 300000;
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	char *out = malloc(n), *in = malloc(n);

	for (size_t i = 0; i < n; i++)
		out[i] = (char)(i % 241);
	tls_config(&tc);
	srv_start(&s, &tc, 1, M_ECHO);
	SSL_CTX *x = cli_ctx(TLS1_3_VERSION, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(SSL_key_update(k.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
		assert_true(cli_pump(&k, out, n, in, 0));      /* the server answers with its own */
		assert_memory_equal(in, out, n);
	}
	SSL_shutdown(k.ssl);
	assert_int_equal(cli_end(&k), SSL_ERROR_ZERO_RETURN);
	cli_close(&k);
	assert_int_equal(counters(&s).tls_errors, 0);
	SSL_CTX_free(x);
	srv_stop(&s);
	free(out);
	free(in);
}

static void test_renegotiation_refused(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	char buf[8];

	tls_config(&tc);
	srv_start(&s, &tc, 1, M_ECHO);
	SSL_CTX *x = cli_ctx(TLS1_2_VERSION, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_true(cli_echo(&k, "before"));
	assert_int_equal(SSL_renegotiate(k.ssl), 1);
	cli_write(&k, "during", 6);
	size_t got = cli_read(&k, buf, 6);
	cli_close(&k);
	WAIT_FOR(atomic_load(&g_closes) == 1 || got == 6, IO_MS);
	print_message("renegotiation: %zu bytes back, end %d; server: eof %d, tls_errors %llu, "
		      "events %s\n", got, k.err, atomic_load(&g_eof_err),
		      (unsigned long long)counters(&s).tls_errors, g_events);
	/* refused: the exchange goes on, or the connection ends as a TLS error */
	assert_true(got == 6 || (atomic_load(&g_eof_err) == -EPROTO && counters(&s).tls_errors == 1));
	assert_true(cli_open(&k, s.port, x, NULL, NULL));     /* the server goes on */
	assert_true(cli_echo(&k, "after"));
	cli_close(&k);
	SSL_CTX_free(x);
	srv_stop(&s);
}

/* pt_conn_age_ms counts from accept, not from on_accept (after the handshake); cfg.ktls on a
 * kernel without TLS offload is simply off. */
static void test_age_and_ktls(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;

	tls_config(&tc);
	tc.ktls = true;
	srv_start(&s, &tc, 1, M_ECHO);
	bool ktls = pt_tls_ktls(s.tls);
	print_message("kernel TLS offload: %s\n", ktls ? "yes" : "no");
	SSL_CTX *x = cli_ctx(0, NULL);
	g_hello_delay_ms = 1500;               /* long beside a handshake even on a loaded machine */
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_true(cli_echo(&k, "aged"));
	WAIT_FOR(atomic_load(&g_accepts) == 1, IO_MS);
	struct seen v = seen();
	print_message("age %u ms, handshake %u us\n", (unsigned)v.age_ms, (unsigned)v.handshake_us);
	assert_true(v.age_ms >= 1450);
	assert_true(v.handshake_us < 1400000);                 /* from the first byte, not accept */
	assert_int_equal(v.ktls, ktls);
	assert_int_equal(counters(&s).tls_ktls, ktls ? 1 : 0);
	cli_close(&k);
	SSL_CTX_free(x);
	srv_stop(&s);
}

/* At the connection limit a handshake in progress is "partial": shed before idle ones. */
static void test_governor_sheds_handshakes_first(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli a, c, d;
	unsigned char hello[2048];
	size_t n = client_hello(hello, sizeof hello, NULL);

	g_max_conns = 2;
	tls_config(&tc);
	srv_start(&s, &tc, 1, M_IDLE);
	SSL_CTX *x = cli_ctx(0, NULL);
	assert_true(cli_open(&a, s.port, x, NULL, NULL));     /* established, idle */
	assert_true(cli_echo(&a, "a"));
	int b = connect_to(s.port);
	send_all(b, hello, n / 2);                             /* a handshake in progress */
	WAIT_CNT(&s, accepts, 2);
	usleep(50 * 1000);
	assert_true(cli_open(&c, s.port, x, NULL, NULL));     /* over the limit */
	assert_true(cli_echo(&c, "c"));
	assert_true(closed_within(b, 5000));                   /* the handshake went first */
	assert_true(cli_echo(&a, "a still here"));
	WAIT_CNT(&s, shed_partial, 1);
	assert_int_equal(counters(&s).shed_idle, 0);
	assert_true(cli_open(&d, s.port, x, NULL, NULL));     /* next: the oldest idle one */
	assert_true(cli_echo(&d, "d"));
	WAIT_CNT(&s, shed_idle, 1);
	assert_int_equal(cli_end(&a), SSL_ERROR_SYSCALL);      /* reset: no close_notify */
	assert_true(cli_echo(&c, "c still here"));
	assert_int_equal(counters(&s).tls_fail_shed, 0);       /* not the handshake limit */
	cli_close(&a);
	cli_close(&c);
	cli_close(&d);
	close(b);
	SSL_CTX_free(x);
	srv_stop(&s);
}

/* The peer's close_notify ends its side only: the server may still answer (half-close). */
static void half_close(int version)
{
	struct pt_tls_config tc;
	struct srv s;
	struct cli k;
	char buf[16];

	tls_config(&tc);
	srv_start(&s, &tc, 1, M_HALF_CLOSE);
	SSL_CTX *x = cli_ctx(version, NULL);
	assert_true(cli_open(&k, s.port, x, NULL, NULL));
	assert_true(cli_echo(&k, "question"));
	SSL_shutdown(k.ssl);
	assert_int_equal(cli_read(&k, buf, 9), 9);
	assert_memory_equal(buf, "after eof", 9);
	assert_int_equal(cli_end(&k), SSL_ERROR_ZERO_RETURN);
	cli_close(&k);
	expect_events("ADEC");
	assert_int_equal(atomic_load(&g_eof_err), 0);
	pthread_mutex_lock(&g_mu);
	assert_int_equal(g_ncb, 1);
	assert_int_equal(g_cb_res[0], 9);
	pthread_mutex_unlock(&g_mu);
	SSL_CTX_free(x);
	srv_stop(&s);
}

static void test_half_close_tls12(void **state) { half_close(TLS1_2_VERSION); }
static void test_half_close_tls13(void **state) { half_close(TLS1_3_VERSION); }

/* ---- segmentation: a client over memory BIOs decides how its bytes hit the wire ---- */

struct mcli {
	int fd;
	SSL *ssl;
	BIO *in, *out;                         /* the network side of the client */
};

/* Sends what the client wrote: all in one send, or one byte per segment. */
static void mcli_flush(struct mcli *k, bool dribble)
{
	char buf[16384];
	int n;

	while ((n = BIO_read(k->out, buf, sizeof buf)) > 0) {
		if (!dribble) {
			send_all(k->fd, buf, (size_t)n);
			continue;
		}
		for (int i = 0; i < n; i++) {
			send_all(k->fd, buf + i, 1);
			usleep(50);
		}
	}
}

/* Moves what arrived into the client (waiting up to 100 ms); false at EOF. */
static bool mcli_feed(struct mcli *k)
{
	char buf[16384];
	struct pollfd p = { k->fd, POLLIN, 0 };

	if (poll(&p, 1, 100) <= 0)
		return true;
	ssize_t n = recv(k->fd, buf, sizeof buf, MSG_DONTWAIT);
	if (n > 0)
		BIO_write(k->in, buf, (int)n);
	return n != 0 && !(n < 0 && errno != EAGAIN && errno != EINTR);
}

static void mcli_open(struct mcli *k, int port, SSL_CTX *x, bool dribble)
{
	uint64_t deadline = now_ms() + IO_MS;

	k->fd = connect_to(port);
	int one = 1;
	setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	k->ssl = SSL_new(x);
	k->in = BIO_new(BIO_s_mem());
	k->out = BIO_new(BIO_s_mem());
	BIO_up_ref(k->in);
	BIO_up_ref(k->out);
	SSL_set_bio(k->ssl, k->in, k->out);
	SSL_set_connect_state(k->ssl);
	for (;;) {
		int r = SSL_do_handshake(k->ssl);
		if (r == 1)
			return;
		assert_int_equal(SSL_get_error(k->ssl, r), SSL_ERROR_WANT_READ);
		mcli_flush(k, dribble);
		assert_true(mcli_feed(k));
		assert_true(now_ms() < deadline);
	}
}

/* Reads n plaintext bytes, then expects close_notify. */
static void mcli_expect(struct mcli *k, const char *want, size_t n)
{
	char buf[256];
	size_t got = 0, r;
	uint64_t deadline = now_ms() + IO_MS;

	for (;;) {
		int rc = SSL_read_ex(k->ssl, buf + got, sizeof buf - got, &r);
		if (rc == 1) {
			got += r;
			continue;
		}
		int e = SSL_get_error(k->ssl, rc);
		if (e == SSL_ERROR_ZERO_RETURN)
			break;
		assert_int_equal(e, SSL_ERROR_WANT_READ);
		mcli_flush(k, false);
		assert_true(mcli_feed(k));
		assert_true(now_ms() < deadline);
	}
	assert_int_equal(got, n);
	assert_memory_equal(buf, want, n);
}

static void mcli_close(struct mcli *k)
{
	SSL_free(k->ssl);
	BIO_free(k->in);
	BIO_free(k->out);
	close(k->fd);
}

/* Every byte of the handshake and the data in its own TCP segment. */
static void test_dribbled_bytes(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct mcli k;

	tls_config(&tc);
	srv_start(&s, &tc, 1, M_ECHO);
	for (int v = 0; v < 2; v++) {
		SSL_CTX *x = cli_ctx(v ? TLS1_2_VERSION : TLS1_3_VERSION, NULL);
		reset_records(M_ECHO);
		mcli_open(&k, s.port, x, true);
		assert_int_equal(SSL_write(k.ssl, "dribble", 7), 7);
		SSL_shutdown(k.ssl);
		mcli_flush(&k, true);
		mcli_expect(&k, "dribble", 7);
		mcli_close(&k);
		expect_events("ADEC");
		SSL_CTX_free(x);
	}
	srv_stop(&s);
}

/* TLS 1.3: the client's Finished, its data and its close_notify in one segment; TLS 1.2: the
 * data and close_notify together. One receive then completes the handshake, runs on_accept,
 * delivers the data and ends the input, in that order. */
static void test_coalesced_flight(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct mcli k;

	tls_config(&tc);
	srv_start(&s, &tc, 1, M_ECHO);
	for (int v = 0; v < 2; v++) {
		SSL_CTX *x = cli_ctx(v ? TLS1_2_VERSION : TLS1_3_VERSION, NULL);
		reset_records(M_ECHO);
		mcli_open(&k, s.port, x, false);               /* 1.3: Finished not sent yet */
		assert_int_equal(SSL_write(k.ssl, "all at once", 11), 11);
		SSL_shutdown(k.ssl);
		mcli_flush(&k, false);
		mcli_expect(&k, "all at once", 11);
		mcli_close(&k);
		expect_events("ADEC");
		assert_int_equal(atomic_load(&g_eof_err), 0);
		SSL_CTX_free(x);
	}
	srv_stop(&s);
}

/* ---- injected faults: allocations, receives and sends failing under TLS ---- */

/* Clients under a fault rule: each handshake and echo succeeds or fails, but none hangs (a
 * failure resets the connection), and after the rule is lifted everything works again. */
static void faulty_round(struct srv *s, SSL_CTX *x, enum pt_fault_point op, int err, unsigned ppm)
{
	const size_t n = 200000;
	char *out = malloc(n), *in = malloc(n);
	unsigned ok = 0, failed = 0;

	for (size_t i = 0; i < n; i++)
		out[i] = (char)(i * 17 + i / 333);
	assert_int_equal(fault_set(op, err, 0, 0, ppm, 0), 0);
	for (int i = 0; i < 30; i++) {
		struct cli k;
		bool good = cli_open(&k, s->port, x, NULL, NULL) && cli_pump(&k, out, n, in, 0) &&
			    !memcmp(in, out, n);
		if (!good && k.err == -ETIMEDOUT)
			fail_msg("fault %d (%d at %u ppm): client %d stalled", op, err, ppm, i);
		good ? ok++ : failed++;
		cli_close(&k);
	}
	uint64_t hits = fault_hits(op);
	fault_clear();
	print_message("fault %d at %u ppm: %llu injected, %u clients ok, %u failed\n", op, ppm,
		      (unsigned long long)hits, ok, failed);
	struct cli k;
	assert_true(cli_open(&k, s->port, x, NULL, NULL));
	assert_true(cli_pump(&k, out, n, in, 0));
	assert_memory_equal(in, out, n);
	cli_close(&k);
	free(out);
	free(in);
}

static void test_faults(void **state)
{
	struct pt_tls_config tc;
	struct srv s;

	g_io_ms = 3000;
	tls_config(&tc);
	srv_start(&s, &tc, 2, M_ECHO);
	for (int v = 0; v < 2; v++) {
		SSL_CTX *x = cli_ctx(v ? TLS1_2_VERSION : TLS1_3_VERSION, NULL);
		faulty_round(&s, x, PT_FAULT_ALLOC, ENOMEM, 10000);
		faulty_round(&s, x, PT_FAULT_RECV, ECONNRESET, 3000);
		faulty_round(&s, x, PT_FAULT_SEND, ECONNRESET, 20000);
		faulty_round(&s, x, PT_FAULT_SEND, EAGAIN, 300000);   /* short of room: no failure */
		SSL_CTX_free(x);
	}
	g_io_ms = IO_MS;
	WAIT_CNT(&s, conns, 0);
	atomic_store(&g_send_errs, 0);                         /* refused under ENOMEM */
	srv_stop(&s);
}

/* pt_tls_reload from another thread while both workers run handshakes (alternating two
 * certificates): every handshake gets one of them whole, resumption keeps working. */
struct reloader {
	pt_tls_t *tls;
	atomic_bool stop;
	atomic_uint reloads;
	char *files[4];
};

static void *reload_loop(void *arg)
{
	struct reloader *r = arg;
	char err[256];

	for (unsigned i = 0; !atomic_load(&r->stop); i++) {
		struct pt_tls_cert pc = { r->files[2 * (i % 2)], r->files[2 * (i % 2) + 1] };
		struct pt_tls_config tc;
		pt_tls_config_init(&tc);
		tc.certs = &pc;
		tc.ncerts = 1;
		if (pt_tls_reload(r->tls, &tc, err, sizeof err) == 0)
			atomic_fetch_add(&r->reloads, 1);
	}
	return NULL;
}

static void test_reload_under_load(void **state)
{
	struct pt_tls_config tc;
	struct srv s;
	struct reloader r = { .files = { strdup(path("a.pem")), strdup(path("a.key")),
					 strdup(path("n.pem")), strdup(path("n.key")) } };
	pthread_t th;
	unsigned seen_a = 0, seen_n = 0, resumed = 0;

	tls_config(&tc);
	srv_start(&s, &tc, 2, M_ECHO);
	r.tls = s.tls;
	SSL_CTX *x = cli_ctx(0, NULL);
	SSL_SESSION *sess = full_then_session(&s, x, true);
	assert_int_equal(pthread_create(&th, NULL, reload_loop, &r), 0);
	/* at least 60 handshakes, and as many as it takes (bounded) to overlap 10 reloads: a
	 * loaded machine may run the reloading thread seldom */
	uint64_t until = now_ms() + 30000;
	for (int i = 0; i < 60 || (atomic_load(&r.reloads) <= 10 && now_ms() < until); i++) {
		struct cli k;
		resumed += i % 3 == 0;
		assert_true(cli_open(&k, s.port, x, NULL, i % 3 ? NULL : sess));
		assert_true(cli_echo(&k, "reloading"));
		const char *cn = peer_cn(&k);
		if (!SSL_session_reused(k.ssl)) {
			assert_true(!strcmp(cn, "a.example.com") || !strcmp(cn, "new.example.com"));
			cn[0] == 'a' ? seen_a++ : seen_n++;
		}
		cli_close(&k);
	}
	atomic_store(&r.stop, true);
	pthread_join(th, NULL);
	print_message("%u reloads; a: %u, new: %u; resumed %llu\n", atomic_load(&r.reloads),
		      seen_a, seen_n, (unsigned long long)counters(&s).tls_resumed);
	assert_true(atomic_load(&r.reloads) > 10);
	assert_int_equal(counters(&s).tls_resumed, resumed);   /* the ticket outlives reloads */
	SSL_SESSION_free(sess);
	SSL_CTX_free(x);
	srv_stop(&s);
	for (int i = 0; i < 4; i++)
		free(r.files[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_errors),
		cmocka_unit_test(test_echo_tls12),
		cmocka_unit_test(test_echo_tls13),
		cmocka_unit_test(test_server_close_notify),
		cmocka_unit_test(test_big_echo_tls12),
		cmocka_unit_test(test_big_echo_tls13),
		cmocka_unit_test(test_transmit_tls12),
		cmocka_unit_test(test_transmit_tls13),
		cmocka_unit_test(test_transmit_short_file),
		cmocka_unit_test(test_alpn_sni_info),
		cmocka_unit_test(test_sni),
		cmocka_unit_test(test_resumption_tls12),
		cmocka_unit_test(test_resumption_tls13),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_accept_refused),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_max_handshakes),
		cmocka_unit_test(test_plaintext_to_tls_port),
		cmocka_unit_test(test_corrupt_record),
		cmocka_unit_test(test_truncated_record),
		cmocka_unit_test(test_eof_during_handshake),
		cmocka_unit_test(test_pause_resume),
		cmocka_unit_test(test_backpressure),
		cmocka_unit_test(test_tiny_receive_buffers),
		cmocka_unit_test(test_record_sizes),
		cmocka_unit_test(test_key_update),
		cmocka_unit_test(test_renegotiation_refused),
		cmocka_unit_test(test_age_and_ktls),
		cmocka_unit_test(test_governor_sheds_handshakes_first),
		cmocka_unit_test(test_half_close_tls12),
		cmocka_unit_test(test_half_close_tls13),
		cmocka_unit_test(test_dribbled_bytes),
		cmocka_unit_test(test_coalesced_flight),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_reload_under_load),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
