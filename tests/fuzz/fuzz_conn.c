// fuzz-sources: src/engine/*.c src/http/*.c
// fuzz-libs: -luring -lssl -lcrypto -lnghttp2 -lpthread
/*
 * libFuzzer target for a whole HTTP connection: the input is sent through a real loopback
 * socket into a real engine and HTTP server running in this process (started once, on the
 * first input, on 127.0.0.1 port 0; PORTICO_BACKEND picks the backend, auto by default).
 *
 * Per input: connect, write the input (in one, two or three writes, split at offsets derived
 * from a hash of the input, with a short pause between them so the server sees the pieces
 * separately), shutdown(SHUT_WR), read until EOF, close. The routes cover the layer's
 * paths: an answer from memory, a body reader (Content-Length and chunked, Expect), a
 * streamed response whose send flags (MORE, BUFFER, DISCONNECT, ZC, a declared length) come
 * from the query, a request kept and answered later from a post (pt_http_req_keep/release),
 * a PT_ROUTE_SYNC handler on the blocking pool, a file range (sendfile) and a 256 KiB answer.
 *
 * Invariants (a violation aborts, so libFuzzer saves the input):
 *  - the server process survives (ASan/UBSan watch the server threads too);
 *  - everything the server sends is a sequence of responses, each starting with
 *    "HTTP/1.1 " and a 3-digit status 100..599 and a reason phrase, with CRLF-terminated
 *    "name: value" header lines, and a well-formed chunked body when it says chunked (the
 *    walk stops where a body's length cannot be known: close-delimited bodies, HEAD);
 *  - after the client's FIN the server closes the connection within SERVER_CLOSE_MS: every
 *    handler here finishes at once, so a connection left open is a stuck request.
 * The server is stopped and destroyed in an atexit handler, so LeakSanitizer at exit sees
 * everything freed. FUZZ_CONN_VERBOSE=1 prints each exchange (for triage).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <portico/http.h>

#define SERVER_CLOSE_MS 3000   /* the server must close within this after the client's FIN */
#define RESP_CAP (1u << 20)    /* response bytes kept for checking (the rest is read, dropped) */
#define BIG_LEN (256u << 10)
#define FILE_LEN 100000

#define CHECK(cond, ...) do { if (!(cond)) { \
	fprintf(stderr, "invariant failed: %s (%s:%d): ", #cond, __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); abort(); } } while (0)

static pt_http_server_t *srv;
static int port;
static int file_fd = -1;
static char *big;

/* ---- the server ---------------------------------------------------------------------------- */

static void quiet_log(void *arg, int level, const char *msg)
{
	if (level == 0)
		fprintf(stderr, "fuzz_conn server: %s\n", msg);
}

static void fail_close(pt_http_req_t *r)
{
	pt_conn_t *c = pt_http_req_conn(r);

	if (c)
		pt_conn_close(c, PT_CLOSE_ABORT);
}

static void respond_text(pt_http_req_t *r, unsigned status, const char *text, unsigned flags)
{
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { text, strlen(text) } };
	struct pt_http_header h = { "Content-Type", "text/plain" };

	if (pt_http_respond(r, status, NULL, &h, 1, &c, 1, flags | PT_HTTP_BUFFER, NULL, NULL) < 0)
		fail_close(r);
}

/* "/": a constant answer from memory (no copy), with a header built from the request. */
static void h_hello(pt_http_req_t *r, void *arg)
{
	static const char body[] = "hello, fuzz\n";
	char n[32], path[256];
	struct pt_http_str p = pt_http_req_path(r);
	int k = pt_http_req_decoded_path(r, path, sizeof path);

	snprintf(n, sizeof n, "%zu/%d", p.n, k);
	struct pt_http_header h[] = { { "X-Path-Len", n }, { "Content-Type", "text/plain" } };
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, sizeof body - 1 } };
	if (pt_http_respond(r, 200, NULL, h, 2, &c, 1, 0, NULL, NULL) < 0)
		fail_close(r);
}

/* "/echo": reads the body, answers "<bytes> <sum>" or 400 on a body error. */
struct echo {
	uint64_t n, sum;
};

static void echo_abort(pt_http_req_t *r, void *arg)
{
	free(pt_http_req_user(r));
	pt_http_req_set_user(r, NULL);
}

static void echo_body(pt_http_req_t *r, void *arg, const void *data, size_t len, int err)
{
	struct echo *e = pt_http_req_user(r);
	char out[64];

	if (!e)
		return;
	if (len) {
		for (size_t i = 0; i < len; i++)
			e->sum += ((const uint8_t *)data)[i];
		e->n += len;
		return;
	}
	if (err == 0)
		snprintf(out, sizeof out, "%" PRIu64 " %" PRIu64 "\n", e->n, e->sum);
	else
		snprintf(out, sizeof out, "error %d\n", err);
	free(e);
	pt_http_req_set_user(r, NULL);
	respond_text(r, err ? 400 : 200, out, err ? PT_HTTP_DISCONNECT : 0);
}

static void h_echo(pt_http_req_t *r, void *arg)
{
	if (!pt_http_req_has_body(r)) {
		respond_text(r, 200, "0 0\n", 0);
		return;
	}
	struct echo *e = calloc(1, sizeof *e);
	if (!e) {
		fail_close(r);
		return;
	}
	pt_http_req_set_user(r, e);
	pt_http_req_on_abort(r, echo_abort, NULL);
	int err = pt_http_req_read_body(r, echo_body, NULL);
	if (err < 0) {
		free(e);
		pt_http_req_set_user(r, NULL);
		respond_text(r, 500, "read_body failed\n", 0);
	}
}

/* "/stream?X": head with MORE, then body pieces; the bits of X choose the flags. */
static void h_stream(pt_http_req_t *r, void *arg)
{
	static const char p1[] = "one,", p2[] = "two,", p3[] = "three";
	struct pt_http_str q = pt_http_req_query(r);
	unsigned x = q.n ? (unsigned char)q.p[0] : 0;
	char cl[16];
	struct pt_http_header h[2] = { { "Content-Type", "text/plain" }, { "Content-Length", cl } };
	struct pt_http_chunk c1 = { .kind = PT_HTTP_CHUNK_MEM, .mem = { p1, 4 } };
	struct pt_http_chunk c2 = { .kind = PT_HTTP_CHUNK_MEM, .mem = { p2, 4 } };
	struct pt_http_chunk c3 = { .kind = PT_HTTP_CHUNK_MEM, .mem = { p3, 5 } };
	unsigned more = PT_HTTP_MORE | ((x & 1) ? PT_HTTP_BUFFER : 0);
	unsigned last = ((x & 2) ? PT_HTTP_DISCONNECT : 0) | ((x & 8) ? PT_HTTP_ZC : 0);

	snprintf(cl, sizeof cl, "%d", (x & 16) ? 12 : 13); /* 12: one byte short, refused */
	if (pt_http_respond(r, 200, NULL, h, (x & 4) ? 2 : 1, &c1, 1, more, NULL, NULL) < 0 ||
	    pt_http_send_body(r, &c2, 1, more, NULL, NULL) < 0) {
		fail_close(r);
		return;
	}
	int err = pt_http_send_body(r, &c3, 1, last, NULL, NULL);
	if (err < 0 && (err = pt_http_send_body(r, NULL, 0, last, NULL, NULL)) < 0)
		fail_close(r);       /* a wrong declared length: the last send ends it empty, or not */
}

/* "/async": kept, answered from a post on the same worker, released. */
struct later {
	pt_post_t post;
	pt_http_req_t *r;
};

static void later_run(pt_worker_t *w, void *arg)
{
	struct later *l = arg;
	static const char body[] = "later\n";
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, sizeof body - 1 } };

	int err = pt_http_respond(l->r, 202, NULL, NULL, 0, &c, 1, 0, NULL, NULL);
	if (err < 0 && err != -EPIPE)
		fail_close(l->r);
	pt_http_req_release(l->r);
	free(l);
}

static void h_async(pt_http_req_t *r, void *arg)
{
	struct later *l = malloc(sizeof *l);

	if (!l || pt_http_req_keep(r) < 0) {
		free(l);
		respond_text(r, 500, "keep failed\n", 0);
		return;
	}
	l->r = r;
	if (pt_post(pt_conn_worker(pt_http_req_conn(r)), &l->post, later_run, l) < 0) {
		respond_text(r, 500, "post failed\n", 0);
		pt_http_req_release(r);
		free(l);
	}
}

/* "/sync/...": on the blocking pool; answers the target (copied). */
static void h_sync(pt_http_req_t *r, void *arg)
{
	struct pt_http_str t = pt_http_req_target(r);
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { t.p, t.n } };

	if (pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, PT_HTTP_BUFFER, NULL, NULL) < 0)
		fail_close(r);
}

/* "/file?A-B": bytes A..B of a file (clamped), through the file-chunk path. */
static void h_file(pt_http_req_t *r, void *arg)
{
	struct pt_http_str q = pt_http_req_query(r);
	char tmp[64];
	unsigned long a = 0, b = FILE_LEN - 1;

	if (q.n && q.n < sizeof tmp) {
		memcpy(tmp, q.p, q.n);
		tmp[q.n] = 0;
		if (sscanf(tmp, "%lu-%lu", &a, &b) < 1)
			a = 0;
	}
	if (a >= FILE_LEN)
		a = FILE_LEN - 1;
	if (b < a || b >= FILE_LEN)
		b = FILE_LEN - 1;
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_FILE,
				   .file = { file_fd, (off_t)a, (int64_t)(b - a + 1) } };
	if (pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, 0, NULL, NULL) < 0)
		fail_close(r);
}

/* "/big": 256 KiB from memory. */
static void h_big(pt_http_req_t *r, void *arg)
{
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { big, BIG_LEN } };

	if (pt_http_respond(r, 200, NULL, NULL, 0, &c, 1, 0, NULL, NULL) < 0)
		fail_close(r);
}

static void server_stop(void)
{
	if (srv) {
		pt_http_server_destroy(srv);
		srv = NULL;
	}
	free(big);
	big = NULL;
	if (file_fd >= 0)
		close(file_fd);
	file_fd = -1;
}

static void server_start(void)
{
	struct pt_http_config cfg;
	int err;
	char path[] = "/tmp/pt-fuzz-conn.XXXXXX";

	signal(SIGPIPE, SIG_IGN);
	CHECK((file_fd = mkstemp(path)) >= 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	CHECK((big = malloc(BIG_LEN)) != NULL, "malloc");
	for (unsigned i = 0; i < BIG_LEN; i++)
		big[i] = (char)('a' + i % 26);
	for (unsigned off = 0; off < FILE_LEN; off += 4096) {
		unsigned n = FILE_LEN - off < 4096 ? FILE_LEN - off : 4096;
		CHECK(write(file_fd, big, n) == (ssize_t)n, "write: %s", strerror(errno));
	}
	pt_http_config_init(&cfg);
	cfg.engine.workers = 2;
	cfg.engine.log = quiet_log;
	cfg.engine.shutdown_ms = 1000;
	cfg.max_body = 4096;          /* small limits, so that inputs reach them */
	cfg.max_drain = 1024;
	cfg.max_head = 4096;
	cfg.max_target = 1024;
	cfg.max_headers = 20;
	cfg.sync_threads = 2;
	cfg.queue_length = 8;
	cfg.timeouts = (struct pt_http_timeouts){ .header_wait = 1000, .idle_connection = 1000,
		.entity_body = 1000, .drain_entity_body = 1000, .request_queue = 1000 };
	srv = pt_http_server_create(&cfg, &err);
	CHECK(srv != NULL, "pt_http_server_create: %s", strerror(-err));
	int li = pt_http_listen(srv, "127.0.0.1:0");
	CHECK(li >= 0, "listen: %s", strerror(-li));
	CHECK(pt_http_route(srv, "/", h_hello, NULL, 0) == 0, "route");
	CHECK(pt_http_route(srv, "/echo", h_echo, NULL, 0) == 0, "route");
	CHECK(pt_http_route(srv, "/stream", h_stream, NULL, 0) == 0, "route");
	CHECK(pt_http_route(srv, "/async", h_async, NULL, 0) == 0, "route");
	CHECK(pt_http_route(srv, "/sync/", h_sync, NULL, PT_ROUTE_SYNC) == 0, "route");
	CHECK(pt_http_route(srv, "/file", h_file, NULL, 0) == 0, "route");
	CHECK(pt_http_route(srv, "/big", h_big, NULL, 0) == 0, "route");
	CHECK((err = pt_http_server_start(srv)) == 0, "start: %s", strerror(-err));
	port = pt_http_listen_port(srv, li);
	CHECK(port > 0, "port %d", port);
	atexit(server_stop);
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

struct resp {
	char *buf;
	size_t len;
	size_t total;   /* bytes received, including those beyond RESP_CAP */
	bool eof;
};

/* Reads what is available (non-blocking socket). */
static void pull(int fd, struct resp *rs)
{
	char tmp[65536];

	for (;;) {
		ssize_t n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
		if (n > 0) {
			size_t keep = rs->len + (size_t)n <= RESP_CAP ? (size_t)n : RESP_CAP - rs->len;
			memcpy(rs->buf + rs->len, tmp, keep);
			rs->len += keep;
			rs->total += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			rs->eof = true;   /* FIN, or reset */
		return;
	}
}

/* Non-blocking connect: libFuzzer's SIGALRM must not interrupt it half-way. */
static void connect_nb(int fd, const struct sockaddr_in *sa)
{
	int one = 1, err = 0;
	socklen_t len = sizeof err;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
		return;
	CHECK(errno == EINPROGRESS || errno == EINTR, "connect: %s", strerror(errno));
	struct pollfd p = { fd, POLLOUT, 0 };
	uint64_t deadline = now_ms() + 5000;
	while (poll(&p, 1, 100) <= 0 || !(p.revents & (POLLOUT | POLLERR | POLLHUP)))
		CHECK(now_ms() < deadline, "connect: no answer in 5 s");
	CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0,
	      "connect: %s", strerror(err));
}

static void exchange(const uint8_t *data, size_t size, struct resp *rs)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint64_t h = fnv(data, size);
	size_t cuts[3] = { size, size, size };
	unsigned pieces = 1 + (unsigned)(h % 3), at = 0;
	size_t off = 0;

	CHECK(fd >= 0, "socket: %s", strerror(errno));
	connect_nb(fd, &sa);
	if (size > 1 && pieces > 1) {
		cuts[0] = 1 + (size_t)((h >> 8) % (size - 1));
		if (pieces > 2)
			cuts[1] = cuts[0] + (size_t)((h >> 32) % (size - cuts[0] + 1));
	}
	uint64_t deadline = now_ms() + SERVER_CLOSE_MS;
	bool shut = false;
	while (!rs->eof && now_ms() < deadline) {
		if (!shut && off == cuts[at] && at < 2 && cuts[at] < size) {
			usleep(300);                  /* let the server read the piece alone */
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
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			pull(fd, rs);
		if (!shut && (p.revents & POLLOUT)) {
			size_t end = at < 2 ? cuts[at] : size;
			ssize_t n = send(fd, data + off, end - off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				off = size;               /* the server closed: stop writing */
		}
	}
	if (!rs->eof) {
		struct linger lg = { 1, 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	close(fd);
}

/* ---- checking what came back --------------------------------------------------------------- */

static const char *find(const char *p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	return (size_t)(end - p) >= n ? memmem(p, (size_t)(end - p), lit, n) : NULL;
}

static bool name_is(const char *p, size_t n, const char *lit)
{
	return n == strlen(lit) && strncasecmp(p, lit, n) == 0;
}

/* Walks a chunked body from p; returns where it ends, or NULL when the data stops first. */
static const char *walk_chunked(const char *p, const char *end, const struct resp *rs)
{
	for (;;) {
		const char *eol = find(p, end, "\r\n");
		if (!eol)
			return NULL;
		uint64_t size = 0;
		const char *q = p;
		for (; q < eol && strchr("0123456789abcdefABCDEF", *q) && *q; q++) {
			CHECK(size < (1ull << 40), "chunk size too large");
			size = size * 16 + (uint64_t)(*q <= '9' ? *q - '0' : (*q | 0x20) - 'a' + 10);
		}
		CHECK(q > p && (q == eol || *q == ';'), "bad chunk-size line at %zu: %.40s",
		      (size_t)(p - rs->buf), p);
		p = eol + 2;
		if (size == 0)
			break;
		if ((uint64_t)(end - p) < size + 2)
			return NULL;
		p += size;
		CHECK(p[0] == '\r' && p[1] == '\n', "chunk data not followed by CRLF at %zu",
		      (size_t)(p - rs->buf));
		p += 2;
	}
	for (;;) {                                  /* trailer section */
		const char *eol = find(p, end, "\r\n");
		if (!eol)
			return NULL;
		if (eol == p)
			return p + 2;
		p = eol + 2;
	}
}

static void check_responses(const struct resp *rs, bool head_seen)
{
	const char *p = rs->buf, *end = rs->buf + rs->len;
	unsigned nresp = 0;

	while (p < end) {
		size_t avail = (size_t)(end - p);
		static const char proto[] = "HTTP/1.1 ";
		CHECK(memcmp(p, proto, avail < 9 ? avail : 9) == 0,
		      "response %u does not start with \"HTTP/1.1 \": %.40s", nresp, p);
		const char *he = find(p, end, "\r\n\r\n");
		if (!he)
			return;                             /* cut short (reset): nothing more to say */
		he += 4;
		CHECK(he - p >= 16 && p[9] >= '1' && p[9] <= '5' && p[10] >= '0' && p[10] <= '9' &&
		      p[11] >= '0' && p[11] <= '9' && p[12] == ' ',
		      "response %u: bad status line: %.40s", nresp, p);
		unsigned status = (unsigned)((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
		int64_t cl = -1;
		bool chunked = false;
		const char *line = find(p, he, "\r\n") + 2;
		while (line < he - 2) {
			const char *eol = find(line, he, "\r\n");
			const char *colon = memchr(line, ':', (size_t)(eol - line));
			CHECK(colon && colon > line, "response %u: header line without a name: %.*s",
			      nresp, (int)(eol - line), line);
			for (const char *c = line; c < eol; c++)
				CHECK(*c != '\n' && *c != '\r' && *c != 0,
				      "response %u: control byte in a header line", nresp);
			const char *v = colon + 1;
			while (v < eol && *v == ' ')
				v++;
			if (name_is(line, (size_t)(colon - line), "content-length")) {
				CHECK(cl < 0, "response %u: two Content-Length fields", nresp);
				cl = 0;
				for (; v < eol; v++) {
					CHECK(*v >= '0' && *v <= '9', "response %u: bad Content-Length", nresp);
					cl = cl * 10 + (*v - '0');
				}
			} else if (name_is(line, (size_t)(colon - line), "transfer-encoding")) {
				CHECK(eol - v == 7 && !strncasecmp(v, "chunked", 7),
				      "response %u: Transfer-Encoding %.*s", nresp, (int)(eol - v), v);
				chunked = true;
			}
			line = eol + 2;
		}
		CHECK(!(chunked && cl >= 0), "response %u: both Content-Length and chunked", nresp);
		nresp++;
		p = he;
		if (status < 200 || status == 204 || status == 304)
			continue;
		if (head_seen)
			return;              /* a HEAD answer has no body: lengths say nothing here */
		if (chunked) {
			if (!(p = walk_chunked(p, end, rs)))
				return;
		} else if (cl >= 0) {
			if ((uint64_t)(end - p) < (uint64_t)cl)
				return;
			p += cl;
		} else {
			return;              /* close-delimited (HTTP/1.0): the rest is its body */
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct resp rs;
	static bool verbose;

	if (!srv) {
		server_start();
		verbose = getenv("FUZZ_CONN_VERBOSE") != NULL;
	}
	if (!rs.buf)
		CHECK((rs.buf = malloc(RESP_CAP)) != NULL, "malloc");
	rs.len = rs.total = 0;
	rs.eof = false;
	exchange(data, size, &rs);
	CHECK(rs.eof, "the server did not close the connection within %d ms of the client's FIN "
	      "(%zu bytes received)", SERVER_CLOSE_MS, rs.total);
	if (verbose)
		fprintf(stderr, "---- %zu bytes in, %zu out:\n%.*s\n", size, rs.total,
			(int)(rs.len < 2000 ? rs.len : 2000), rs.buf);
	check_responses(&rs, memmem(data, size, "HEAD", 4) != NULL);
	return 0;
}
