/* echo_stress: black-box stress client for the echo example (examples/echo.c).
 *
 * One thread, one epoll set, non-blocking sockets, and a wall-clock deadline
 * (--timeout) so every run ends. Each payload is a counter-mode pseudo-random
 * stream keyed by (seed, mode, connection), so a connection keeps no copy of
 * what it sent: the expected byte at any offset is recomputed. Memory therefore
 * stays O(1) per connection even at 1000 x 1 MiB, and the client never gets in
 * the way of the server's memory figures.
 *
 * Modes (usage() lists the flags):
 *   concurrent  N clients, log-uniform sizes, half-close, byte-exact echo
 *   abort       clients vanish mid-transfer (RST or close), then one must succeed
 *   noread      one client writes and never reads: server RSS must stay bounded
 *   idle        N clients after one round trip each: server RSS per connection
 *   pipeline    many 1..64-byte writes per connection, order and content checked
 * Exit: 0 all checks passed; 1 a check failed (the message names the
 * connection and the offset of the first bad byte); 2 usage or setup error.
 * Standalone on purpose: it does not link Portico, so it tests the binary only.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long long u64;	/* printf %llu without casts */

#define CHUNK (64 * 1024)	/* one send/recv; a loopback send takes about this much */
#define MAX_REPORTS 20		/* failures printed in full; the rest are only counted */

enum kind { K_ECHO, K_ABORT, K_IDLE, K_PIPE };
enum cstate { C_NEW, C_RETRY, C_CONNECTING, C_ACTIVE, C_IDLE, C_DONE };

struct opts {
	const char *mode;
	unsigned conns, msgs, sources, window, retries;
	u64 min, max, seed, bytes, max_rss_growth, max_per_conn, check_bytes;
	int pid;
	double timeout, settle, block;
	bool hold;
	struct sockaddr_in dst;
};

struct conn {
	int fd;
	enum cstate st;
	bool started, shut, abort_ready;
	unsigned tries;
	uint32_t msgs_sent, msg_off;	/* pipeline: next message, bytes of it written */
	u64 key, total, sent, recvd, abort_at;
	double retry_at;
};

/* One batch of connections. Counters (conn_open, conn_close, after_io keep them):
 * active = RETRY + CONNECTING + ACTIVE; pending = CONNECTING or ACTIVE with no
 * echoed byte yet (bounded by --window); idle = IDLE; retrying = RETRY. */
struct run {
	const struct opts *o;
	const char *name;
	enum kind kind;
	int ep;
	struct conn *c;
	unsigned n, next, pending, active, idle, retrying, failures, retries, eofs;
	bool holding;
	u64 salt, bytes_sent, bytes_recvd;
	double deadline;
	uint8_t buf[CHUNK], exp[CHUNK];
};

/* ---- deterministic streams ---------------------------------------------- */

static u64 mix64(u64 x)	/* splitmix64 finaliser */
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Bytes [off, off+len) of the stream named by key: 8-byte block b is mix64(key + b). */
static void gen(u64 key, u64 off, uint8_t *p, size_t len)
{
	u64 blk = off / 8, v;
	size_t skip = off % 8, i = 0;

	while (i < len) {
		v = mix64(key + blk++);
		if (skip == 0 && len - i >= 8) {
			memcpy(p + i, &v, 8);
			i += 8;
			continue;
		}
		for (size_t j = skip; j < 8 && i < len; j++)
			p[i++] = (uint8_t)(v >> (8 * j));
		skip = 0;
	}
}

static double unit_of(u64 x)	/* [0, 1) */
{
	return (double)(mix64(x) >> 11) * 0x1.0p-53;
}

/* Log-uniform in [min, max]: as many payloads of 1..10 B as of 100..1000 KB. */
static u64 log_uniform(u64 x, u64 min, u64 max)
{
	double lo = log((double)min), hi = log((double)max + 1.0);
	u64 v = (u64)exp(lo + unit_of(x) * (hi - lo));

	return v < min ? min : v > max ? max : v;
}

static uint32_t msg_len(u64 key, uint32_t k)	/* pipeline message k: 1..64 B */
{
	return 1 + (uint32_t)(mix64(key ^ (0xa5a5ULL << 40) ^ k) % 64);
}

/* ---- small helpers -------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VmRSS of pid in bytes, or -1 if it cannot be read. */
static long long rss_bytes(int pid)
{
	char path[64], line[256];
	long long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static bool retryable(int err)	/* connect-time errors worth another try */
{
	return err == ECONNREFUSED || err == EAGAIN || err == EADDRNOTAVAIL ||
	       err == ETIMEDOUT || err == EADDRINUSE;
}

/* First index where a and b differ (n if equal). */
static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i = 0;

	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* ---- connection lifecycle ------------------------------------------------- */

static unsigned idx_of(const struct run *r, const struct conn *c)
{
	return (unsigned)(c - r->c);
}

/* Leaves c closed in state st, keeping the run's counters right. */
static void conn_close(struct run *r, struct conn *c, enum cstate st)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (!c->started && (c->st == C_CONNECTING || c->st == C_ACTIVE))
		r->pending--;
	if (c->st == C_IDLE)
		r->idle--;
	else if (c->st != C_DONE && c->st != C_NEW)
		r->active--;
	if (c->st == C_RETRY)
		r->retrying--;
	c->st = st;
	if (st == C_RETRY) {
		r->active++;
		r->retrying++;
	}
}

static void fail(struct run *r, struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (r->failures++ < MAX_REPORTS) {
		fprintf(stderr, "echo_stress %s: conn %u: ", r->name, idx_of(r, c));
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	conn_close(r, c, C_DONE);
}

static void schedule_retry(struct run *r, struct conn *c, int err)
{
	if (c->tries >= r->o->retries) {
		fail(r, c, "connect failed after %u tries: %s", c->tries, strerror(err));
		return;
	}
	conn_close(r, c, C_RETRY);
	c->started = false;
	c->retry_at = now_s() + 0.02 * (1u << c->tries);
	r->retries++;
}

/* Source address k of --sources: 127.0.x.y, skipping .0 and .255 in y. */
static struct sockaddr_in source_addr(unsigned k)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };

	sa.sin_addr.s_addr = htonl((127u << 24) | ((1 + k / 254) << 8) | (1 + k % 254));
	return sa;
}

static int bind_source(const struct run *r, int fd, unsigned i)
{
	struct sockaddr_in sa = source_addr(i % r->o->sources);
	int one = 1;

	/* Let connect() pick the port per 4-tuple, so each source has ~28k ports. */
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	return bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
}

static void conn_open(struct run *r, struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
	int one = 1, err = 0;

	c->tries++;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fail(r, c, "socket: %s", strerror(errno));
		return;
	}
	if (c->st == C_NEW)
		r->active++;
	else
		r->retrying--;
	c->st = C_CONNECTING;
	r->pending++;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (r->o->sources)
		err = bind_source(r, c->fd, idx_of(r, c));
	if (!err && connect(c->fd, (struct sockaddr *)&r->o->dst, sizeof(r->o->dst)) < 0 &&
	    errno != EINPROGRESS)
		err = -errno;
	if (err) {
		if (retryable(-err))
			schedule_retry(r, c, -err);
		else
			fail(r, c, "connect: %s", strerror(-err));
		return;
	}
	ev.data.u32 = idx_of(r, c);
	if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		fail(r, c, "epoll_ctl: %s", strerror(errno));
}

/* Opens new connections while fewer than --window are waiting for their first
 * echoed byte: that keeps the server's accept queue (backlog 4096) from
 * overflowing, which would turn into 1 s SYN retransmits instead of load. */
static void launch(struct run *r, double now)
{
	for (unsigned i = 0; r->retrying && i < r->n; i++)
		if (r->c[i].st == C_RETRY && r->c[i].retry_at <= now &&
		    r->pending < r->o->window)
			conn_open(r, &r->c[i]);
	while (r->next < r->n && r->pending < r->o->window)
		conn_open(r, &r->c[r->next++]);
}

/* ---- data path ------------------------------------------------------------ */

static void mark_started(struct run *r, struct conn *c)
{
	if (!c->started) {
		c->started = true;
		r->pending--;
	}
}

/* Where a pipeline offset falls, for the failure message. */
static void pipe_where(const struct conn *c, u64 off, uint32_t *msg, uint32_t *in)
{
	uint32_t k = 0, len;

	while (off >= (len = msg_len(c->key, k))) {
		off -= len;
		k++;
	}
	*msg = k;
	*in = (uint32_t)off;
}

static bool check_bytes(struct run *r, struct conn *c, size_t n)
{
	size_t d;
	uint32_t msg, in;

	if (c->recvd + n > c->total) {
		fail(r, c, "%llu bytes echoed past the %llu sent (first extra at offset %llu)",
		     c->recvd + n - c->total, c->total, c->total);
		return false;
	}
	gen(c->key, c->recvd, r->exp, n);
	d = first_diff(r->buf, r->exp, n);
	if (d == n)
		return true;
	if (r->kind == K_PIPE) {
		pipe_where(c, c->recvd + d, &msg, &in);
		fail(r, c, "mismatch at offset %llu (message %u, byte %u): expected 0x%02x got 0x%02x",
		     c->recvd + d, msg, in, r->exp[d], r->buf[d]);
	} else {
		fail(r, c, "mismatch at offset %llu of %llu: expected 0x%02x got 0x%02x",
		     c->recvd + d, c->total, r->exp[d], r->buf[d]);
	}
	return false;
}

static void on_eof(struct run *r, struct conn *c)
{
	if (!c->shut) {
		fail(r, c, "server closed first, after echoing %llu of %llu bytes (we had sent %llu)",
		     c->recvd, c->total, c->sent);
		return;
	}
	if (c->recvd != c->total) {
		fail(r, c, "EOF after %llu of %llu bytes (first missing at offset %llu)",
		     c->recvd, c->total, c->recvd);
		return;
	}
	conn_close(r, c, C_DONE);
}

/* Reads until EAGAIN. Returns false once c is closed. */
static bool do_read(struct run *r, struct conn *c)
{
	ssize_t n;

	for (;;) {
		n = recv(c->fd, r->buf, CHUNK, 0);
		if (n > 0) {
			mark_started(r, c);
			if (!check_bytes(r, c, (size_t)n))
				return false;
			c->recvd += (u64)n;
			r->bytes_recvd += (u64)n;
			continue;
		}
		if (n == 0) {
			on_eof(r, c);
			return false;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return true;
		fail(r, c, "recv at offset %llu of %llu: %s", c->recvd, c->total, strerror(errno));
		return false;
	}
}

/* An aborting client writes abort_at bytes, and the rest of its payload only
 * once the echo has started; it vanishes right after that second write, so
 * the server still has unread input and undelivered echo when it goes (on
 * loopback a single write would be echoed in full before the client woke). */
static u64 send_limit(const struct run *r, const struct conn *c)
{
	return r->kind == K_ABORT && c->recvd == 0 ? c->abort_at : c->total;
}

/* Bytes of the next write: the rest of the payload, or of one pipeline message. */
static size_t next_write(const struct run *r, const struct conn *c)
{
	u64 left = send_limit(r, c) - c->sent;

	if (r->kind == K_PIPE)
		return msg_len(c->key, c->msgs_sent) - c->msg_off;
	return left < CHUNK ? (size_t)left : CHUNK;
}

static void wrote(struct run *r, struct conn *c, size_t w)
{
	c->sent += w;
	r->bytes_sent += w;
	if (r->kind != K_PIPE)
		return;
	c->msg_off += (uint32_t)w;
	if (c->msg_off == msg_len(c->key, c->msgs_sent)) {
		c->msgs_sent++;
		c->msg_off = 0;
	}
}

/* Writes until EAGAIN or the end; then half-closes unless the kind keeps it open. */
static bool do_write(struct run *r, struct conn *c)
{
	size_t len;
	ssize_t w;

	while (c->sent < send_limit(r, c)) {
		len = next_write(r, c);
		gen(c->key, c->sent, r->buf, len);
		w = send(c->fd, r->buf, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return true;
		if (w < 0) {
			fail(r, c, "send at offset %llu of %llu: %s", c->sent, c->total,
			     strerror(errno));
			return false;
		}
		wrote(r, c, (size_t)w);
	}
	if (!c->shut && r->kind != K_IDLE && r->kind != K_ABORT) {
		if (shutdown(c->fd, SHUT_WR) < 0) {
			fail(r, c, "shutdown: %s", strerror(errno));
			return false;
		}
		c->shut = true;
	}
	return true;
}

/* Abort styles, by index: even = SO_LINGER {1,0} (RST); 1 mod 4 = close at the
 * next event before reading, so echoed data usually sits unread (Linux then
 * sends RST itself); 3 mod 4 = close right after draining (FIN while the server
 * still has echo data to write, so its next send fails). */
static void do_abort(struct run *r, struct conn *c)
{
	struct linger lg = { 1, 0 };

	if (idx_of(r, c) % 2 == 0)
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	conn_close(r, c, C_DONE);
}

static void after_io(struct run *r, struct conn *c)
{
	if (r->kind == K_ABORT && c->sent > c->abort_at && c->recvd > 0) {
		/* Deferring is safe only while echo data is still due: it raises the event. */
		if (idx_of(r, c) % 4 != 1 || c->recvd == c->sent)
			do_abort(r, c);
		else
			c->abort_ready = true;
		return;
	}
	if (r->kind == K_IDLE && c->recvd == c->total) {
		c->st = C_IDLE;		/* round trip done: hold the socket open */
		r->active--;
		r->idle++;
	}
}

static void on_idle_event(struct run *r, struct conn *c)
{
	ssize_t n = recv(c->fd, r->buf, CHUNK, 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (!r->holding) {
		fail(r, c, "idle connection %s", n == 0 ? "closed by the server" :
		     n > 0 ? "got unexpected bytes" : strerror(errno));
		return;
	}
	if (n != 0) {
		fail(r, c, "expected EOF at shutdown, got %s", n > 0 ? "bytes" : strerror(errno));
		return;
	}
	r->eofs++;
	conn_close(r, c, C_DONE);
}

static void on_connecting(struct run *r, struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		if (retryable(err) || err == ECONNRESET)
			schedule_retry(r, c, err);
		else
			fail(r, c, "connect: %s", strerror(err));
		return;
	}
	c->st = C_ACTIVE;
}

static void conn_event(struct run *r, struct conn *c, uint32_t events)
{
	if (c->st == C_IDLE) {
		on_idle_event(r, c);
		return;
	}
	if (c->st == C_CONNECTING)
		on_connecting(r, c);
	if (c->st != C_ACTIVE)
		return;
	if (c->abort_ready) {
		do_abort(r, c);
		return;
	}
	(void)events;	/* edge-triggered: always try both directions */
	if (do_read(r, c) && do_write(r, c))
		after_io(r, c);
}

/* ---- the loop ------------------------------------------------------------- */

static void report_stuck(struct run *r)
{
	unsigned shown = 0;

	fprintf(stderr, "echo_stress %s: deadline passed with %u connections unfinished\n",
		r->name, r->active + (r->n - r->next));
	for (unsigned i = 0; i < r->n && shown < 5; i++) {
		struct conn *c = &r->c[i];

		if (c->st == C_DONE || c->st == C_IDLE || c->st == C_NEW)
			continue;
		fprintf(stderr, "  conn %u: %s, sent %llu/%llu echoed %llu%s\n", i,
			c->st == C_RETRY ? "retrying connect" : c->st == C_CONNECTING ?
			"connecting" : "open",
			c->sent, c->total, c->recvd, c->shut ? " (half-closed)" : "");
		shown++;
	}
	r->failures++;
}

/* Runs until every connection is done (or idle), or the deadline. */
static void run_loop(struct run *r, bool until_all_eof)
{
	struct epoll_event ev[256];
	double now;
	int n;

	for (;;) {
		now = now_s();
		if (until_all_eof ? r->idle == 0 : (r->next == r->n && r->active == 0))
			return;
		if (now >= r->deadline) {
			if (!until_all_eof)
				report_stuck(r);	/* hold() reports its own */
			return;
		}
		launch(r, now);
		n = epoll_wait(r->ep, ev, 256, r->retrying ? 10 : 100);
		if (n < 0 && errno != EINTR) {
			perror("epoll_wait");
			r->failures++;
			return;
		}
		for (int i = 0; i < n; i++)
			conn_event(r, &r->c[ev[i].data.u32], ev[i].events);
	}
}

static void conn_setup(struct run *r, struct conn *c, unsigned i)
{
	const struct opts *o = r->o;

	c->fd = -1;
	c->key = mix64(o->seed * 0x100000001b3ULL + r->salt + i);
	switch (r->kind) {
	case K_ECHO:
		c->total = log_uniform(c->key ^ 1, o->min, o->max);
		break;
	case K_ABORT:	/* abort_at in [1, total-1]: somewhere in the middle half */
		c->total = log_uniform(c->key ^ 1, o->min, o->max);
		c->abort_at = 1 + (c->total - 2) / 4 +
			      (u64)(unit_of(c->key ^ 2) * (double)(c->total - 2) / 2);
		break;
	case K_IDLE:
		c->total = 1 + mix64(c->key ^ 3) % 64;
		break;
	case K_PIPE:
		for (uint32_t k = 0; k < o->msgs; k++)
			c->total += msg_len(c->key, k);
		break;
	}
}

static struct run *run_new(const struct opts *o, const char *name, enum kind kind,
			   unsigned n, u64 salt)
{
	struct run *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->c = calloc(n ? n : 1, sizeof(*r->c));
	r->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!r->c || r->ep < 0) {
		free(r->c);
		if (r->ep >= 0)
			close(r->ep);
		free(r);
		return NULL;
	}
	r->o = o;
	r->name = name;
	r->kind = kind;
	r->n = n;
	r->salt = salt;
	r->deadline = o->timeout;
	for (unsigned i = 0; i < n; i++)
		conn_setup(r, &r->c[i], i);
	return r;
}

static unsigned run_free(struct run *r)
{
	unsigned failures = r->failures;

	for (unsigned i = 0; i < r->n; i++)
		if (r->c[i].fd >= 0)
			close(r->c[i].fd);
	close(r->ep);
	free(r->c);
	free(r);
	return failures;
}

static void summary(const struct run *r, double t0)
{
	printf("%s: conns=%u bytes_sent=%llu bytes_echoed=%llu retries=%u failures=%u seconds=%.2f\n",
	       r->name, r->n, r->bytes_sent,
	       r->bytes_recvd, r->retries, r->failures, now_s() - t0);
	fflush(stdout);
}

/* ---- modes ---------------------------------------------------------------- */

static int simple_mode(const struct opts *o, const char *name, enum kind kind)
{
	double t0 = now_s();
	struct run *r = run_new(o, name, kind, o->conns, kind == K_PIPE ? 7 : 0);

	if (!r)
		return 2;
	run_loop(r, false);
	summary(r, t0);
	return run_free(r) ? 1 : 0;
}

static int mode_abort(const struct opts *o)
{
	double t0 = now_s();
	struct run *r = run_new(o, "abort", K_ABORT, o->conns, 3);
	struct opts chk = *o;
	unsigned bad;

	if (!r)
		return 2;
	run_loop(r, false);
	summary(r, t0);
	bad = run_free(r);
	/* The survivor: one ordinary client after every abort has been sent. */
	usleep(200 * 1000);
	chk.min = chk.max = o->check_bytes;
	r = run_new(&chk, "abort-survivor", K_ECHO, 1, 5);
	if (!r)
		return 2;
	run_loop(r, false);
	summary(r, t0);
	bad += run_free(r);
	return bad ? 1 : 0;
}

/* Dispatches events for `secs` while the connections sit idle, so a server
 * that drops idle connections is caught, not just measured. */
static void pump(struct run *r, double secs)
{
	struct epoll_event ev[256];
	double end = now_s() + secs;
	int n;

	while (now_s() < end && r->failures == 0) {
		n = epoll_wait(r->ep, ev, 256, 50);
		for (int i = 0; i < n; i++)
			conn_event(r, &r->c[ev[i].data.u32], ev[i].events);
	}
}

static int idle_report(const struct run *r, long long before, long long after)
{
	long long delta = after - before;
	long long per = r->n ? delta / (long long)r->n : 0;

	if (before < 0 || after < 0) {
		printf("idle_conns=%u rss_delta_bytes=n/a per_conn_bytes=n/a (no --pid)\n", r->idle);
		return 0;
	}
	printf("idle_conns=%u rss_delta_bytes=%lld per_conn_bytes=%lld\n", r->idle, delta, per);
	fflush(stdout);
	if (!r->o->max_per_conn || per <= (long long)r->o->max_per_conn)
		return 0;
	fprintf(stderr, "echo_stress idle: %lld bytes per connection > --max-per-conn %llu\n",
		per, r->o->max_per_conn);
	return 1;
}

/* After the figure: wait for the server's shutdown to close every connection. */
static void hold(struct run *r)
{
	printf("holding %u connections until EOF\n", r->idle);
	fflush(stdout);
	r->holding = true;
	run_loop(r, true);
	if (r->idle) {
		fprintf(stderr, "echo_stress idle: %u of %u connections saw no EOF before the deadline\n",
			r->idle, r->n);
		r->failures++;
	}
	printf("hold: eof=%u of %u\n", r->eofs, r->n);
}

static int mode_idle(const struct opts *o)
{
	double t0 = now_s();
	long long before = o->pid ? rss_bytes(o->pid) : -1;
	struct run *r = run_new(o, "idle", K_IDLE, o->conns, 11);
	int bad = 0;

	if (!r)
		return 2;
	run_loop(r, false);
	if (r->failures == 0 && r->idle == r->n) {
		pump(r, o->settle);
		if (r->failures == 0)
			bad = idle_report(r, before, o->pid ? rss_bytes(o->pid) : -1);
	}
	summary(r, t0);
	if (o->hold && r->failures == 0)
		hold(r);
	return run_free(r) || bad ? 1 : 0;
}

static void wait_connected(struct run *r, struct conn *c)
{
	struct epoll_event ev;

	while ((c->st == C_NEW || c->st == C_RETRY || c->st == C_CONNECTING) &&
	       now_s() < r->deadline) {
		launch(r, now_s());
		if (c->st == C_CONNECTING && epoll_wait(r->ep, &ev, 1, 10) == 1)
			on_connecting(r, c);
		else if (c->st == C_RETRY)
			usleep(10 * 1000);
	}
	if (c->st != C_ACTIVE && c->st != C_DONE)
		fail(r, c, "connect did not complete before the deadline");
}

struct rss_track { long long before, peak, end; double next; };

static void rss_sample(const struct opts *o, struct rss_track *t, double now)
{
	long long v;

	if (!o->pid || now < t->next)
		return;
	t->next = now + 0.1;
	v = rss_bytes(o->pid);
	t->end = v;
	if (v > t->peak)
		t->peak = v;
}

/* Phase 1 of noread: write without reading until --bytes or --block-ms stalled. */
static void flood(struct run *r, struct conn *c, struct rss_track *t)
{
	struct epoll_event ev;
	double last = now_s(), now;
	ssize_t w;
	size_t len;

	while (c->st == C_ACTIVE && c->sent < c->total) {
		now = now_s();
		rss_sample(r->o, t, now);
		if (now - last >= r->o->block || now >= r->deadline)
			break;
		len = next_write(r, c);
		gen(c->key, c->sent, r->buf, len);
		w = send(c->fd, r->buf, len, MSG_NOSIGNAL);
		if (w > 0) {
			wrote(r, c, (size_t)w);
			last = now;
		} else if (w < 0 && errno == EAGAIN) {
			epoll_wait(r->ep, &ev, 1, 100);
		} else if (!(w < 0 && errno == EINTR)) {
			fail(r, c, "send at offset %llu: %s", c->sent,
			     w < 0 ? strerror(errno) : "zero");
		}
	}
	t->next = 0;
	rss_sample(r->o, t, now_s());
	printf("noread: wrote %llu bytes without reading (%s)\n", c->sent,
	       c->sent == c->total ? "all of --bytes" : "then blocked");
}

static int noread_verdict(const struct opts *o, const struct rss_track *t)
{
	long long growth = t->peak - t->before;

	if (!o->pid || t->before < 0 || t->peak < 0) {
		printf("noread: server RSS not sampled (no --pid)\n");
		return 0;
	}
	printf("noread: rss_before=%lld rss_peak=%lld rss_end=%lld growth=%lld limit=%llu\n",
	       t->before, t->peak, t->end, growth, o->max_rss_growth);
	if (growth <= (long long)o->max_rss_growth)
		return 0;
	fprintf(stderr, "echo_stress noread: server RSS grew by %lld bytes (> %llu) while the "
		"client did not read: no backpressure?\n", growth,
		o->max_rss_growth);
	return 1;
}

static int mode_noread(const struct opts *o)
{
	double t0 = now_s();
	struct run *r = run_new(o, "noread", K_ECHO, 1, 13);
	struct rss_track t = { -1, -1, -1, 0 };
	struct conn *c;
	int bad = 0;

	if (!r)
		return 2;
	c = &r->c[0];
	c->total = o->bytes;
	t.before = t.peak = o->pid ? rss_bytes(o->pid) : -1;
	wait_connected(r, c);
	if (c->st == C_ACTIVE) {
		flood(r, c, &t);
		bad = noread_verdict(o, &t);
	}
	if (c->st == C_ACTIVE) {
		/* Phase 2: everything written so far must come back, byte-exact. */
		c->total = c->sent;
		conn_event(r, c, 0);	/* data already queued raises no new edge */
		run_loop(r, false);
	}
	summary(r, t0);
	return run_free(r) || bad ? 1 : 0;
}

/* ---- command line ----------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: echo_stress MODE [options] ADDR:PORT\n"
		"  concurrent [-c 1000] [--min 1] [--max 1048576] [--seed S]\n"
		"  abort      [-c 200] [--min 65536] [--max 1048576] [--check-bytes 1048576]\n"
		"  noread     [--bytes 268435456] [--pid P] [--max-rss-growth 67108864] [--block-ms 2000]\n"
		"  idle       [-c 10000] [--pid P] [--max-per-conn B] [--settle-ms 1000]\n"
		"             [--sources K] [--hold]\n"
		"  pipeline   [-c 50] [-n 2000]\n"
		"common: --seed S  --timeout SECS (default 120)  --window W (connections\n"
		"        awaiting their first echo, default 256)  --retries R (default 5)\n"
		"        --sources K (bind to K source addresses 127.0.x.y)\n");
	exit(2);
}

static u64 num(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		usage();
	return v;
}

static void parse_addr(struct opts *o, const char *s)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	u64 port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		usage();
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	port = num(colon + 1);
	o->dst.sin_family = AF_INET;
	o->dst.sin_port = htons((uint16_t)port);
	if (port == 0 || port > 65535 || inet_pton(AF_INET, host, &o->dst.sin_addr) != 1)
		usage();
}

static void mode_defaults(struct opts *o)
{
	bool abort_mode = strcmp(o->mode, "abort") == 0;

	if (!o->conns)
		o->conns = abort_mode ? 200 : !strcmp(o->mode, "idle") ? 10000 :
			   !strcmp(o->mode, "pipeline") ? 50 : 1000;
	if (!o->min)
		o->min = abort_mode ? 65536 : 1;
	if (abort_mode && o->min < 2)
		o->min = 2;	/* abort_at must fall strictly inside the payload */
	if (!o->max)
		o->max = 1048576;
	if (o->min > o->max || !o->window || !o->bytes)
		usage();
}

enum { O_MIN = 256, O_MAX, O_SEED, O_BYTES, O_PID, O_RSS, O_PER, O_SRC, O_TMO,
       O_WIN, O_RETRY, O_SETTLE, O_BLOCK, O_HOLD, O_CHECK };

static const struct option longopts[] = {
	{ "min", 1, 0, O_MIN }, { "max", 1, 0, O_MAX }, { "seed", 1, 0, O_SEED },
	{ "bytes", 1, 0, O_BYTES }, { "pid", 1, 0, O_PID }, { "max-rss-growth", 1, 0, O_RSS },
	{ "max-per-conn", 1, 0, O_PER }, { "sources", 1, 0, O_SRC }, { "timeout", 1, 0, O_TMO },
	{ "window", 1, 0, O_WIN }, { "retries", 1, 0, O_RETRY }, { "settle-ms", 1, 0, O_SETTLE },
	{ "block-ms", 1, 0, O_BLOCK }, { "hold", 0, 0, O_HOLD }, { "check-bytes", 1, 0, O_CHECK },
	{ 0, 0, 0, 0 }
};

static void parse_one(struct opts *o, int ch, const char *arg)
{
	switch (ch) {
	case 'c': o->conns = (unsigned)num(arg); break;
	case 'n': o->msgs = (unsigned)num(arg); break;
	case O_MIN: o->min = num(arg); break;
	case O_MAX: o->max = num(arg); break;
	case O_SEED: o->seed = num(arg); break;
	case O_BYTES: o->bytes = num(arg); break;
	case O_PID: o->pid = (int)num(arg); break;
	case O_RSS: o->max_rss_growth = num(arg); break;
	case O_PER: o->max_per_conn = num(arg); break;
	case O_SRC: o->sources = (unsigned)num(arg); break;
	case O_TMO: o->timeout = (double)num(arg); break;
	case O_WIN: o->window = (unsigned)num(arg); break;
	case O_RETRY: o->retries = (unsigned)num(arg); break;
	case O_SETTLE: o->settle = (double)num(arg) / 1000; break;
	case O_BLOCK: o->block = (double)num(arg) / 1000; break;
	case O_HOLD: o->hold = true; break;
	case O_CHECK: o->check_bytes = num(arg); break;
	default: usage();
	}
}

static void parse(struct opts *o, int argc, char **argv)
{
	int ch;

	*o = (struct opts){ .msgs = 2000, .window = 256, .retries = 5, .seed = 1,
			    .bytes = 256ULL << 20, .max_rss_growth = 64ULL << 20,
			    .check_bytes = 1 << 20, .timeout = 120, .settle = 1, .block = 2 };
	if (argc < 2)
		usage();
	o->mode = argv[1];
	optind = 2;
	while ((ch = getopt_long(argc, argv, "c:n:", longopts, NULL)) != -1)
		parse_one(o, ch, optarg);
	if (optind != argc - 1)
		usage();
	parse_addr(o, argv[optind]);
	mode_defaults(o);
	o->timeout += now_s();	/* from here on: the absolute deadline */
}

static bool enough_fds(unsigned conns)
{
	struct rlimit rl;

	raise_nofile();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)conns + 16) {
		fprintf(stderr, "echo_stress: %u connections need more than RLIMIT_NOFILE %llu\n",
			conns, (u64)rl.rlim_cur);
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	struct opts o;

	signal(SIGPIPE, SIG_IGN);
	parse(&o, argc, argv);
	if (!enough_fds(o.conns))
		return 2;
	if (!strcmp(o.mode, "concurrent"))
		return simple_mode(&o, "concurrent", K_ECHO);
	if (!strcmp(o.mode, "pipeline"))
		return simple_mode(&o, "pipeline", K_PIPE);
	if (!strcmp(o.mode, "abort"))
		return mode_abort(&o);
	if (!strcmp(o.mode, "noread"))
		return mode_noread(&o);
	if (!strcmp(o.mode, "idle"))
		return mode_idle(&o);
	usage();
	return 2;
}
