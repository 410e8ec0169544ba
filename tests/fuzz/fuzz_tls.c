// fuzz-sources: src/engine/*.c
// fuzz-libs: -luring -lssl -lcrypto -lnghttp2 -lpthread
/*
 * libFuzzer target for a live TLS connection: the input goes through a real loopback socket
 * into a real engine with a TLS listener in this process (started on the first input, on
 * 127.0.0.1 port 0, one worker; PORTICO_BACKEND picks the backend). The certificates (an
 * ECDSA P-256 default for a.example.com and an RSA one for *.example.org, so SNI switches
 * contexts) are made in memory at start, written to a temporary directory for pt_tls_create
 * and removed right after.
 *
 * The first input byte chooses what the rest is:
 *   bits 0-1  0, 3: raw bytes (a ClientHello, garbage, plaintext...)
 *             1: a real handshake first, then the raw bytes (records the fuzzer writes)
 *             2: a real handshake, then the rest encrypted by the client as application
 *                data, with up to three bytes of the ciphertext flipped (input bytes 1..7
 *                say how many and where), so the fuzzer reaches the record layer with
 *                records that almost decrypt
 *   bit 2     the client speaks TLS 1.2 only (else 1.2 or 1.3)
 *   bit 3     resume the session of an earlier handshake when there is one
 *   bits 4-5  SNI: none, a.example.com, x.example.org, an unknown name
 *   bit 6     offer ALPN h2,http/1.1 (else none)
 * The bytes are written in one to three pieces (split at offsets from a hash of the input,
 * with a short pause between, so the server sees them separately), then the client sends its
 * FIN and reads until the server closes.
 *
 * The server echoes what it receives and starts each connection with a greeting made of a
 * memory chunk (PT_SEND_MORE) and a file range (the encrypt-from-file path).
 *
 * Invariants (a violation aborts, so libFuzzer saves the input):
 *  - the server survives (ASan/UBSan watch the worker too);
 *  - after the client's FIN the server closes within SERVER_CLOSE_MS;
 *  - in mode 2 without flipped bytes, the client reads back exactly the greeting and its own
 *    bytes, then close_notify.
 * Everything is freed in an atexit handler, so LeakSanitizer at exit sees no leak.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <portico/engine.h>

#define SERVER_CLOSE_MS 3000
#define IO_MS 3000
#define FILE_LEN 8192
#define GREET_LEN (6 + 3000)
#define READ_CAP (1u << 20)

#define CHECK(cond, ...) do { if (!(cond)) { \
	fprintf(stderr, "invariant failed: %s (%s:%d): ", #cond, __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); abort(); } } while (0)

static pt_engine_t *engine;
static pt_tls_t *tls;
static int port = -1;
static int file_fd = -1;
static char file_data[FILE_LEN];
static char dir[64];
static SSL_CTX *cli12, *cli13;
static SSL_SESSION *saved[2];                      /* by client context */
static unsigned char *rbuf;

/* ---- the server ---------------------------------------------------------------------------- */

static void quiet_log(void *arg, int level, const char *msg)
{
	if (level == 0)
		fprintf(stderr, "fuzz_tls server: %s\n", msg);
}

static void on_data(pt_conn_t *c, const void *d, size_t n)
{
	if (pt_conn_send(c, d, n, PT_SEND_COPY, NULL, NULL) < 0)
		pt_conn_close(c, PT_CLOSE_ABORT);
}

static void on_eof(pt_conn_t *c, int err)
{
	pt_conn_close(c, err ? PT_CLOSE_ABORT : PT_CLOSE_GRACEFUL);
}

static const struct pt_conn_ops ops = { .on_data = on_data, .on_eof = on_eof };

static int on_accept(pt_conn_t *c, void *arg)
{
	struct pt_chunk ch = { .kind = PT_CHUNK_FILE, .file = { file_fd, 1000, GREET_LEN - 6 } };

	pt_conn_set_ops(c, &ops);
	if (pt_conn_send(c, "hello\n", 6, PT_SEND_MORE, NULL, NULL) < 0 ||
	    pt_conn_transmit(c, &ch, 1, 0, NULL, NULL) < 0)
		return -1;
	return 0;
}

/* A self-signed certificate for name (a DNS subjectAltName), in dir/base.pem and .key. */
static void make_cert(const char *base, const char *name, bool rsa)
{
	char path[128], san[128];
	EVP_PKEY *k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
	X509 *x = X509_new();

	CHECK(k && x, "key generation");
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400);
	X509_set_pubkey(x, k);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
	X509_set_issuer_name(x, n);
	snprintf(san, sizeof san, "DNS:%s", name);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
	CHECK(ext && X509_add_ext(x, ext, -1), "subjectAltName");
	X509_EXTENSION_free(ext);
	CHECK(X509_sign(x, k, EVP_sha256()) > 0, "X509_sign");
	snprintf(path, sizeof path, "%s/%s.pem", dir, base);
	FILE *f = fopen(path, "w");
	CHECK(f && PEM_write_X509(f, x), "write %s", path);
	fclose(f);
	snprintf(path, sizeof path, "%s/%s.key", dir, base);
	f = fopen(path, "w");
	CHECK(f && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), "write %s", path);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void cleanup(void)
{
	if (engine)
		pt_engine_destroy(engine);
	engine = NULL;
	pt_tls_destroy(tls);
	tls = NULL;
	for (int i = 0; i < 2; i++)
		SSL_SESSION_free(saved[i]);
	SSL_CTX_free(cli12);
	SSL_CTX_free(cli13);
	free(rbuf);
	if (file_fd >= 0)
		close(file_fd);
}

static SSL_CTX *client_ctx(int max_version)
{
	static const unsigned char alpn[] = "\x02h2\x08http/1.1";
	SSL_CTX *x = SSL_CTX_new(TLS_client_method());

	CHECK(x, "SSL_CTX_new");
	SSL_CTX_set_verify(x, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_max_proto_version(x, max_version);
	SSL_CTX_set_alpn_protos(x, alpn, sizeof alpn - 1);
	return x;
}

static void server_start(void)
{
	char err[256], path[128];
	int e;

	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof dir, "/tmp/pt-fuzz-tls.XXXXXX");
	CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	/* OpenSSL registers its own atexit cleanup when it initialises: ours must be registered
	 * after it so that it runs first, while the workers can still free their thread state */
	CHECK(OPENSSL_init_ssl(0, NULL) == 1, "OPENSSL_init_ssl");
	atexit(cleanup);
	make_cert("a", "a.example.com", false);
	make_cert("w", "*.example.org", true);
	snprintf(path, sizeof path, "%s/data", dir);
	CHECK((file_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0, "open %s", path);
	unlink(path);
	for (unsigned i = 0; i < FILE_LEN; i++)
		file_data[i] = (char)('A' + i % 53);
	CHECK(write(file_fd, file_data, FILE_LEN) == FILE_LEN, "write");

	char ac[128], ak[128], wc[128], wk[128];
	snprintf(ac, sizeof ac, "%s/a.pem", dir);
	snprintf(ak, sizeof ak, "%s/a.key", dir);
	snprintf(wc, sizeof wc, "%s/w.pem", dir);
	snprintf(wk, sizeof wk, "%s/w.key", dir);
	struct pt_tls_cert certs[] = { { ac, ak }, { wc, wk } };
	struct pt_tls_config tc;
	pt_tls_config_init(&tc);
	tc.certs = certs;
	tc.ncerts = 2;
	tc.alpn = "h2,http/1.1";
	tc.handshake_timeout_ms = 2000;
	CHECK((tls = pt_tls_create(&tc, err, sizeof err)) != NULL, "pt_tls_create: %s", err);
	unlink(ac), unlink(ak), unlink(wc), unlink(wk);   /* loaded: nothing left behind */
	rmdir(dir);

	struct pt_engine_config cfg;
	pt_engine_config_init(&cfg);
	cfg.workers = 1;
	cfg.log = quiet_log;
	cfg.shutdown_ms = 1000;
	CHECK((engine = pt_engine_create(&cfg, &e)) != NULL, "engine: %s", strerror(-e));
	struct pt_listen_opts lo = { .on_accept = on_accept, .tls = tls };
	int li = pt_engine_listen(engine, "127.0.0.1:0", &lo);
	CHECK(li >= 0, "listen: %s", strerror(-li));
	CHECK((e = pt_engine_start(engine)) == 0, "start: %s", strerror(-e));
	port = pt_engine_listen_port(engine, li);
	cli12 = client_ctx(TLS1_2_VERSION);
	cli13 = client_ctx(TLS1_3_VERSION);
	CHECK((rbuf = malloc(READ_CAP)) != NULL, "malloc");
}

/* ---- the client ---------------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t fnv(const uint8_t *d, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 1099511628211ull;
	return h;
}

/* A non-blocking connection (libFuzzer's SIGALRM must not interrupt a blocking connect). */
static int connect_nb(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1, err = 0;
	socklen_t len = sizeof err;

	CHECK(fd >= 0, "socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
		return fd;
	CHECK(errno == EINPROGRESS || errno == EINTR, "connect: %s", strerror(errno));
	struct pollfd p = { fd, POLLOUT, 0 };
	uint64_t deadline = now_ms() + IO_MS;
	while (poll(&p, 1, 100) <= 0 || !(p.revents & (POLLOUT | POLLERR | POLLHUP)))
		CHECK(now_ms() < deadline, "connect: no answer");
	CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0,
	      "connect: %s", strerror(err));
	return fd;
}

static bool ssl_wait(SSL *s, int fd, int r, uint64_t deadline)
{
	int e = SSL_get_error(s, r);
	short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
	struct pollfd p = { fd, ev, 0 };

	if (!ev || now_ms() >= deadline)
		return false;
	poll(&p, 1, 50);
	return true;
}

/* A real handshake; the client keeps the session for later resumption. */
static SSL *handshake(int fd, uint8_t ctl)
{
	unsigned v = (ctl >> 2) & 1;
	SSL *s = SSL_new(v ? cli12 : cli13);
	static const char *snis[] = { NULL, "a.example.com", "x.example.org", "unknown.test" };
	uint64_t deadline = now_ms() + IO_MS;

	CHECK(s, "SSL_new");
	SSL_set_fd(s, fd);
	if (snis[(ctl >> 4) & 3])
		SSL_set_tlsext_host_name(s, snis[(ctl >> 4) & 3]);
	if (!(ctl & 0x40))
		SSL_set_alpn_protos(s, NULL, 0);
	if ((ctl & 8) && saved[v])
		SSL_set_session(s, saved[v]);
	for (;;) {
		ERR_clear_error();
		int r = SSL_connect(s);
		if (r == 1)
			break;
		CHECK(ssl_wait(s, fd, r, deadline), "handshake failed: ssl error %d, %s",
		      SSL_get_error(s, r), ERR_reason_error_string(ERR_peek_error()));
	}
	return s;
}

static void keep_session(SSL *s, uint8_t ctl)
{
	SSL_SESSION *sess = SSL_get1_session(s);
	unsigned v = (ctl >> 2) & 1;

	if (sess && SSL_SESSION_is_resumable(sess)) {
		SSL_SESSION_free(saved[v]);
		saved[v] = sess;
	} else {
		SSL_SESSION_free(sess);
	}
	SSL_set_shutdown(s, SSL_SENT_SHUTDOWN);            /* SSL_free: keep the session good */
}

/* Writes data in pieces, then FIN; reads (raw) what comes back until the server closes. */
static void send_raw(int fd, const uint8_t *data, size_t size, size_t *got)
{
	uint64_t h = fnv(data, size);
	size_t cuts[2] = { size, size }, off = 0;
	unsigned pieces = 1 + (unsigned)(h % 3), at = 0;
	bool shut = false, eof = false;

	if (size > 1 && pieces > 1) {
		cuts[0] = 1 + (size_t)((h >> 8) % (size - 1));
		if (pieces > 2)
			cuts[1] = cuts[0] + (size_t)((h >> 32) % (size - cuts[0] + 1));
	}
	uint64_t deadline = now_ms() + SERVER_CLOSE_MS;
	while (!eof && now_ms() < deadline) {
		if (!shut && at < 2 && off == cuts[at] && cuts[at] < size) {
			usleep(300);
			at++;
		}
		if (!shut && off == size) {
			shutdown(fd, SHUT_WR);
			shut = true;
			deadline = now_ms() + SERVER_CLOSE_MS;
		}
		struct pollfd p = { fd, (short)(POLLIN | (shut ? 0 : POLLOUT)), 0 };
		int left = (int)(deadline - now_ms());
		if (poll(&p, 1, left > 0 ? left : 0) < 0)
			continue;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, rbuf, READ_CAP, MSG_DONTWAIT);
			if (n > 0 && got)
				*got += (size_t)n;
			else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				eof = true;
		}
		if (!shut && (p.revents & POLLOUT)) {
			size_t end = at < 2 ? cuts[at] : size;
			ssize_t n = send(fd, data + off, end - off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				off = size;
		}
	}
	CHECK(eof, "the server did not close within %d ms of the client's FIN", SERVER_CLOSE_MS);
}

/* Mode 2: the payload as application data records, some bytes flipped, sent raw; then the
 * client decrypts what comes back (when nothing was flipped: greeting + echo + close_notify). */
static void send_records(int fd, SSL *s, const uint8_t *data, size_t size)
{
	unsigned flips = size ? data[0] % 4 : 0;
	const uint8_t *payload = data + (size >= 7 ? 7 : size);
	size_t plen = size - (size_t)(payload - data);
	BIO *mem = BIO_new(BIO_s_mem());
	size_t w;

	CHECK(mem, "BIO_new");
	SSL_set0_wbio(s, mem);   /* records go to memory first (SSL_set_fd gave rbio a ref each) */
	for (size_t off = 0; off < plen; off += w)
		CHECK(SSL_write_ex(s, payload + off, plen - off, &w) == 1, "SSL_write_ex");
	char *ct;
	long clen = BIO_get_mem_data(mem, &ct);
	uint8_t *buf = malloc(clen > 0 ? (size_t)clen : 1);
	CHECK(buf, "malloc");
	if (clen > 0)
		memcpy(buf, ct, (size_t)clen);
	for (unsigned i = 0; i < flips && clen > 0; i++) {
		unsigned at = ((unsigned)data[1 + 2 * i] << 8 | data[2 + 2 * i]) % (unsigned)clen;
		buf[at] ^= (uint8_t)(data[0] | 1);
	}
	size_t got = 0;
	if (flips) {
		send_raw(fd, buf, (size_t)clen, &got);
		free(buf);
		return;
	}
	/* intact: send, FIN, and read back through TLS */
	size_t off = 0;
	uint64_t deadline = now_ms() + IO_MS;
	while (off < (size_t)clen) {
		ssize_t n = send(fd, buf + off, (size_t)clen - off, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		else
			CHECK((errno == EAGAIN || errno == EINTR) && now_ms() < deadline,
			      "send: %s", strerror(errno));
		if (n <= 0) {
			struct pollfd p = { fd, POLLOUT, 0 };
			poll(&p, 1, 50);
		}
	}
	free(buf);
	shutdown(fd, SHUT_WR);
	size_t want = GREET_LEN + plen;
	deadline = now_ms() + SERVER_CLOSE_MS;
	for (;;) {
		size_t r;
		ERR_clear_error();
		int rc = SSL_read_ex(s, rbuf + got, READ_CAP - got, &r);
		if (rc == 1) {
			got += r;
			continue;
		}
		int e = SSL_get_error(s, rc);
		if (e == SSL_ERROR_ZERO_RETURN)
			break;
		CHECK(ssl_wait(s, fd, rc, deadline), "reading the echo: ssl error %d after %zu of "
		      "%zu bytes", e, got, want);
	}
	CHECK(got == want, "echo: %zu bytes, want %zu", got, want);
	CHECK(!memcmp(rbuf, "hello\n", 6) && !memcmp(rbuf + 6, file_data + 1000, GREET_LEN - 6),
	      "the greeting differs");
	CHECK(!memcmp(rbuf + GREET_LEN, payload, plen), "the echo differs");
}

static void one(const uint8_t *data, size_t size)
{
	uint8_t ctl = data[0];
	int fd = connect_nb();
	unsigned mode = ctl & 3;

	if (mode == 0 || mode == 3) {
		send_raw(fd, data + 1, size - 1, NULL);
	} else {
		SSL *s = handshake(fd, ctl);
		if (mode == 1)
			send_raw(fd, data + 1, size - 1, NULL);
		else
			send_records(fd, s, data + 1, size - 1);
		keep_session(s, ctl);
		SSL_free(s);
	}
	close(fd);
	ERR_clear_error();
}

/* A few exchanges of each kind before the first input: OpenSSL's per-thread and per-context
 * state (error queue, random generators, the client's session) is then allocated before
 * libFuzzer starts counting allocations per input. */
static void warm_up(void)
{
	static const uint8_t in[][24] = {
		{ 0x5a, 0, 0, 0, 0, 0, 0, 0, 'w', 'a', 'r', 'm' },        /* 1.3, a.example.com */
		{ 0x1e, 0, 0, 0, 0, 0, 0, 0, 'w', 'a', 'r', 'm' },        /* 1.2 */
		{ 0x2e, 0, 0, 0, 0, 0, 0, 0, 'w', 'a', 'r', 'm' },        /* 1.2, RSA (SNI) */
		{ 0x5a, 0, 0, 0, 0, 0, 0, 0, 'w', 'a', 'r', 'm' },        /* 1.3 resumed */
		{ 0x22, 3, 0, 5, 0, 9, 0, 1, 'f', 'l', 'i', 'p' },        /* flipped: alert */
		{ 0x00, 'G', 'E', 'T', ' ', '/' },                         /* plaintext */
	};
	for (unsigned i = 0; i < sizeof in / sizeof in[0]; i++)
		one(in[i], sizeof in[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (port < 0) {
		server_start();
		warm_up();
	}
	if (size)
		one(data, size);
	return 0;
}
