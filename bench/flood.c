/*
 * flood: a connection flood with real clients measured through it, for `make bench` scenarios
 * S10 (HTTP: portico, nginx) and G1/G2 (the engine's echo example). Issue 10. Loopback only.
 *
 * Three phases, all bounded in time:
 *  1 flood   SILENT connections that never send a byte, held by --procs child processes (one
 *            process may hold at most RLIMIT_NOFILE descriptors; each child raises its soft
 *            limit to the hard one). Each connection is bound (IP_BIND_ADDRESS_NO_PORT) to one of
 *            --sources source addresses 127.0.1.1, 127.0.1.2, ... (at most 20 000 connections per
 *            address, so client port exhaustion cannot fake a result). Nonblocking connects, at
 *            most --inflight handshakes in progress per child, until all are done or
 *            --flood-timeout passes (what is still connecting then stays pending). A connection
 *            the server closes or resets is counted and never reopened.
 *            Then SLOWLORIS connections (from 127.0.200.x) send a partial request head
 *            ("GET / HTTP/1.1\r\nHost: x\r\n", then one header byte per second, never the blank
 *            line; --mode echo: one byte per second and the echo is read and dropped).
 *  2 legit   http: REQUESTS requests spread evenly over SECONDS, each on a new connection (from
 *            127.0.100.x) with a budget of BUDGET seconds for connect + "GET PATH HTTP/1.1" with
 *            Connection: close + the full response (head, then Content-Length bytes or up to
 *            EOF), which must have status 200. Latency: connect start to the last byte.
 *            echo: CLIENTS clients each do round trips for SECONDS: connect, send --size bytes,
 *            expect them back, close, again (--keep: on the same connection). Latency: connect
 *            (or send, with --keep) to the last echoed byte.
 *            Attempts still running at the end get their budget to finish.
 *  3 close   everything is closed; the children report how many the server closed.
 *
 * Prints progress on stderr ("flood: ...") and one line on stdout:
 *   BENCHJSON {"flood_opened":..,"flood_closed_by_server":..,"slowloris_open":..,"served":..,
 *              "failed":..,"timeouts":..,"p50_ms":..,"p99_ms":..,"max_ms":..,"duration_s":.., ...}
 * p50/p99/max are over the served requests (or successful round trips); -1 when none.
 *
 * Usage: flood -a ADDR:PORT [-n SILENT] [-s SLOWLORIS] [-r REQUESTS] [-c CLIENTS] [-t SECONDS]
 *              [-b BUDGET_S] [-P PATH] [--mode http|echo] [--sources K] [--procs K]
 *              [--inflight Q] [--flood-timeout S] [--size BYTES] [--keep]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"

#define PER_SOURCE   20000      /* connections per source address at most */
#define MAX_PROCS    64
#define MS           1000000ull
#define SEC          1000000000ull
#define RESP_MAX     (1u << 20) /* legit responses: enough for any small test file */
#define CTL_TAG      UINT32_MAX

enum { K_SLOW = 1, K_LEGIT = 2 };          /* what an epoll event of the parent is for */
enum { S_NEW, S_CONNECTING, S_OPEN, S_IDLE, S_CLOSED, S_FAILED };
/* why a legit attempt failed: connect refused/reset/error, send failed, the server closed or
 * reset before the whole response, a whole response that was not 200, bytes that were wrong */
enum { FAIL_CONNECT, FAIL_SEND, FAIL_CLOSED, FAIL_STATUS, FAIL_BAD };

struct opts {
	struct sockaddr_in dst;
	unsigned silent, slow, requests, clients, sources, procs, inflight, size;
	double seconds, budget, flood_timeout;
	const char *path;
	int echo, keep;
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("flood: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* 127.0.X.Y for the k-th source address of a group starting at 127.0.X0.1 (Y in 1..254) */
static uint32_t source_addr(unsigned x0, unsigned k)
{
	return (127u << 24) | ((x0 + k / 254) << 8) | (1 + k % 254);
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static unsigned nofile_max(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 1u << 30)
		return 1u << 20;
	return (unsigned)rl.rlim_max;
}

/* A nonblocking socket bound to src (host order; 0: the kernel picks) and connecting to dst.
 * Returns the descriptor or -errno. */
static int start_connect(const struct sockaddr_in *dst, uint32_t src)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1, err;

	if (fd < 0)
		return -errno;
	if (src) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(src) };
		/* the port is chosen at connect time, per destination: no exhaustion at bind */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			goto fail;
	}
	if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 && errno != EINPROGRESS)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	return -err;
}

static int so_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

static int ep_set(int ep, int op, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	return epoll_ctl(ep, op, fd, &ev);
}

/* Reads and drops whatever is readable. 1: the peer closed or reset; 0: still open. */
static int drain(int fd)
{
	char buf[4096];
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r > 0)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return 1;
	}
}

/* ---- the silent flood: one child process holds connections [first, first + n*step) ---------- */

struct fconn {
	int fd;
	uint8_t st;
};

struct fcount {
	unsigned opened, failed, closed, pending, unstarted;
};

static void flood_event(int ep, struct fconn *c, uint32_t i, uint32_t events, struct fcount *n)
{
	if (c->st == S_CONNECTING) {
		int err = so_error(c->fd);
		n->pending--;
		if (err == 0 || err == ECONNRESET || err == EPIPE) {
			/* established (a reset means the server accepted it and then dropped it) */
			n->opened++;
			c->st = S_OPEN;
			if (err == 0 && ep_set(ep, EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLRDHUP, i) == 0 &&
			    !(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
				return;
			if (err == 0 && !drain(c->fd))
				return;
			n->closed++;
			c->st = S_CLOSED;
		} else {
			n->failed++;
			c->st = S_FAILED;
		}
		close(c->fd);
		c->fd = -1;
		return;
	}
	if (c->st == S_OPEN && drain(c->fd)) {
		n->closed++;
		c->st = S_CLOSED;
		close(c->fd);
		c->fd = -1;
	}
}

static void report(int fd, char tag, const struct fcount *n)
{
	char line[128];
	int len = snprintf(line, sizeof(line), "%c %u %u %u %u %u\n", tag, n->opened, n->failed,
			   n->closed, n->pending, n->unstarted);
	if (write(fd, line, (size_t)len) != len)
		_exit(3);
}

static void flood_child(const struct opts *o, unsigned first, unsigned step, unsigned share,
			int ctl, int rep, pid_t parent)
{
	struct fconn *c = calloc(share ? share : 1, sizeof(*c));
	struct epoll_event evs[512];
	struct fcount n = { 0 };
	unsigned next = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent || !c || ep < 0)
		_exit(3);
	raise_nofile();
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	uint64_t deadline = now_ns() + (uint64_t)(o->flood_timeout * SEC);
	for (;;) {
		while (next < share && n.pending < o->inflight) {
			unsigned g = first + next * step;
			struct fconn *k = &c[next];
			k->fd = start_connect(&o->dst, source_addr(1, g % o->sources));
			if (k->fd < 0) {
				if (n.failed++ < 3)
					log_msg("connection %u: %s", g, strerror(-k->fd));
				k->st = S_FAILED;
			} else if (ep_set(ep, EPOLL_CTL_ADD, k->fd, EPOLLOUT, next) < 0) {
				close(k->fd);
				k->fd = -1;
				k->st = S_FAILED;
				n.failed++;
			} else {
				k->st = S_CONNECTING;
				n.pending++;
			}
			next++;
		}
		if ((next == share && !n.pending) || now_ns() >= deadline)
			break;
		int r = epoll_wait(ep, evs, 512, 50);
		for (int j = 0; j < r; j++)
			flood_event(ep, &c[evs[j].data.u64], (uint32_t)evs[j].data.u64, evs[j].events, &n);
	}
	n.unstarted = share - next;
	report(rep, 'E', &n);
	/* hold: count what the server closes until the parent closes the control pipe */
	ep_set(ep, EPOLL_CTL_ADD, ctl, EPOLLIN, CTL_TAG);
	for (int done = 0; !done;) {
		int r = epoll_wait(ep, evs, 512, 1000);
		if (r < 0 && errno != EINTR)
			break;
		for (int j = 0; j < r; j++) {
			if (evs[j].data.u64 == CTL_TAG)
				done = 1;
			else
				flood_event(ep, &c[evs[j].data.u64], (uint32_t)evs[j].data.u64,
					    evs[j].events, &n);
		}
	}
	report(rep, 'F', &n);
	for (unsigned i = 0; i < next; i++)
		if (c[i].fd >= 0)
			close(c[i].fd);
	_exit(0);
}

struct child {
	pid_t pid;
	int ctl, rep;
	char buf[256];
	size_t len;
	struct fcount e, f;
	int got_e, got_f;
};

/* Reads the children's report lines until each has sent `tag` or the deadline passes. */
static void read_reports(struct child *ch, unsigned k, char tag, uint64_t deadline)
{
	for (;;) {
		struct pollfd p[MAX_PROCS];
		unsigned np = 0, map[MAX_PROCS];
		for (unsigned i = 0; i < k; i++) {
			if ((tag == 'E' ? ch[i].got_e : ch[i].got_f) || ch[i].rep < 0)
				continue;
			p[np].fd = ch[i].rep;
			p[np].events = POLLIN;
			map[np++] = i;
		}
		uint64_t now = now_ns();
		if (!np || now >= deadline || g_stop)
			return;
		int r = poll(p, np, (int)((deadline - now) / MS) + 1);
		if (r < 0 && errno != EINTR)
			return;
		for (unsigned j = 0; j < np && r > 0; j++) {
			if (!p[j].revents)
				continue;
			struct child *c = &ch[map[j]];
			ssize_t got = read(c->rep, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
			if (got <= 0) {
				close(c->rep);
				c->rep = -1;
				continue;
			}
			c->len += (size_t)got;
			c->buf[c->len] = 0;
			char *nl;
			while ((nl = strchr(c->buf, '\n'))) {
				struct fcount x = { 0 };
				char t = 0;
				if (sscanf(c->buf, "%c %u %u %u %u %u", &t, &x.opened, &x.failed,
					   &x.closed, &x.pending, &x.unstarted) == 6) {
					if (t == 'E')
						c->e = x, c->got_e = 1;
					else if (t == 'F')
						c->f = x, c->got_f = 1;
				}
				size_t used = (size_t)(nl + 1 - c->buf);
				memmove(c->buf, nl + 1, c->len - used + 1);
				c->len -= used;
			}
		}
	}
}

/* ---- the parent: slowloris and the legit clients in one epoll loop --------------------------- */

struct pconn {
	int fd;
	uint8_t st;
	uint64_t t0;            /* legit: attempt start; slowloris: next byte due */
	uint64_t next_start;    /* echo clients: when the next attempt may start */
	uint32_t sent;          /* slowloris: trickle bytes sent */
	uint32_t got;           /* legit: bytes received */
	uint32_t seq;           /* echo: attempt number (pattern) */
	char *buf;
};

struct stats {
	unsigned attempts, served, failed, timeouts, non200;
	unsigned slow_opened, slow_closed, slow_failed;
	unsigned status[600];   /* http: responses by status code */
	unsigned fail[5];       /* failed attempts by reason, FAIL_* */
	unsigned over_100ms, over_1s;   /* served, but slowly */
	uint64_t last_slow_ns;  /* start of the last attempt served in over 100 ms (from t_legit) */
	uint32_t *lat_us;
	size_t nlat, caplat;
};

struct run {
	const struct opts *o;
	int ep;
	struct pconn *slow, *legit;
	unsigned nlegit;        /* slots: requests (http) or clients (echo) */
	unsigned legit_src;
	char req[512];
	size_t req_len;
	uint64_t t_end;         /* echo: no attempt starts at or after this */
	uint64_t t_legit;       /* start of the legit phase */
	unsigned active;        /* legit attempts in progress */
	struct stats s;
};

static const char SLOW_HEAD[] = "GET / HTTP/1.1\r\nHost: x\r\n";
static const char SLOW_FIELD[] = "X-Slowloris: ";

static uint8_t echo_byte(uint32_t seq, uint32_t k)
{
	return (uint8_t)(seq * 131u + k * 7u + (k >> 8));
}

static void record(struct stats *s, uint64_t ns)
{
	if (s->nlat == s->caplat) {
		size_t cap = s->caplat ? s->caplat * 2 : 4096;
		uint32_t *p = realloc(s->lat_us, cap * sizeof(*p));
		if (!p)
			return;
		s->lat_us = p;
		s->caplat = cap;
	}
	uint64_t us = ns / 1000;
	s->lat_us[s->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void slow_send(struct run *R, struct pconn *c, uint64_t now)
{
	char b;
	if (R->o->echo)
		b = 'a' + (char)(c->sent % 26);
	else
		b = c->sent < sizeof(SLOW_FIELD) - 1 ? SLOW_FIELD[c->sent] : 'a';
	ssize_t w = send(c->fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w == 1)
		c->sent++;
	else if (w < 0 && errno != EAGAIN) {
		R->s.slow_closed++;
		c->st = S_CLOSED;
		close(c->fd);
		c->fd = -1;
		return;
	}
	c->t0 = now + SEC;
}

static void slow_event(struct run *R, struct pconn *c, uint32_t i, uint32_t events, uint64_t now)
{
	if (c->st == S_CONNECTING) {
		int err = so_error(c->fd);
		if (err == 0) {
			R->s.slow_opened++;
			c->st = S_OPEN;
			ep_set(R->ep, EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLRDHUP,
			       ((uint64_t)K_SLOW << 32) | i);
			if (!R->o->echo && send(c->fd, SLOW_HEAD, sizeof(SLOW_HEAD) - 1,
						MSG_NOSIGNAL) != sizeof(SLOW_HEAD) - 1)
				goto closed;
			if (R->o->echo)
				slow_send(R, c, now);
			else
				c->t0 = now + SEC;
			return;
		}
		R->s.slow_failed++;
		c->st = S_FAILED;
		close(c->fd);
		c->fd = -1;
		return;
	}
	if (c->st == S_OPEN && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && drain(c->fd))
		goto closed;
	return;
closed:
	R->s.slow_closed++;
	c->st = S_CLOSED;
	close(c->fd);
	c->fd = -1;
}

static void slow_tick(struct run *R, uint64_t now)
{
	for (unsigned i = 0; i < R->o->slow; i++) {
		struct pconn *c = &R->slow[i];
		if (c->st == S_OPEN && c->t0 <= now)
			slow_send(R, c, now);
	}
}

/* Ends the current legit attempt of slot c: outcome 1 served, 0 failed, -1 timed out. */
static void legit_end(struct run *R, struct pconn *c, int outcome, uint64_t now)
{
	R->active--;
	if (outcome > 0) {
		R->s.served++;
		record(&R->s, now - c->t0);
		if (now - c->t0 > 100 * MS) {
			R->s.over_100ms++;
			R->s.over_1s += now - c->t0 > SEC;
			R->s.last_slow_ns = c->t0 - R->t_legit;
		}
	} else if (outcome == 0) {
		R->s.failed++;
	} else {
		R->s.timeouts++;
	}
	if (outcome > 0 && R->o->keep && R->o->echo) {
		c->st = S_IDLE;         /* connected: the next attempt reuses it */
	} else {
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		c->st = S_CLOSED;
	}
	c->next_start = now + (outcome > 0 ? 0 : 10 * MS);   /* no tight loop on failures */
}

static void legit_fail(struct run *R, struct pconn *c, int why, uint64_t now)
{
	R->s.fail[why]++;
	legit_end(R, c, 0, now);
}

static void echo_send(struct run *R, struct pconn *c)
{
	char msg[65536];
	for (uint32_t k = 0; k < R->o->size; k++)
		msg[k] = (char)echo_byte(c->seq, k);
	c->got = 0;
	c->st = S_OPEN;
	if (send(c->fd, msg, R->o->size, MSG_NOSIGNAL) != (ssize_t)R->o->size)
		c->st = S_FAILED;       /* the caller ends the attempt */
}

static void legit_start(struct run *R, unsigned i, uint64_t now)
{
	struct pconn *c = &R->legit[i];

	R->s.attempts++;
	R->active++;
	c->t0 = now;
	c->got = 0;
	c->seq++;
	if (c->st == S_IDLE) {                         /* echo --keep */
		echo_send(R, c);
		if (c->st == S_FAILED)
			legit_fail(R, c, FAIL_SEND, now);
		return;
	}
	uint32_t src = source_addr(100, R->legit_src++ % 8);
	c->fd = start_connect(&R->o->dst, src);
	if (c->fd < 0 || ep_set(R->ep, EPOLL_CTL_ADD, c->fd, EPOLLOUT,
				((uint64_t)K_LEGIT << 32) | i) < 0) {
		if (R->s.failed < 3)
			log_msg("legit connect: %s", strerror(c->fd < 0 ? -c->fd : errno));
		legit_fail(R, c, FAIL_CONNECT, now);
		return;
	}
	c->st = S_CONNECTING;
}

/* http: head then Content-Length bytes (or up to EOF without one). 1 done, 0 more, -1 bad. */
static int http_complete(struct pconn *c, int eof, int *status)
{
	c->buf[c->got] = 0;
	char *end = strstr(c->buf, "\r\n\r\n");
	if (!end)
		return eof ? -1 : 0;
	if (strncmp(c->buf, "HTTP/1.", 7) != 0 || c->got < 12)
		return -1;
	*status = atoi(c->buf + 9);
	size_t head = (size_t)(end + 4 - c->buf);
	char *cl = strcasestr(c->buf, "\r\ncontent-length:");
	if (!cl || cl > end)
		return eof ? 1 : 0;
	size_t want = head + (size_t)strtoull(cl + 17, NULL, 10);
	if (c->got >= want)
		return c->got == want ? 1 : -1;
	return eof ? -1 : 0;
}

static void legit_event(struct run *R, struct pconn *c, uint32_t i, uint32_t events, uint64_t now)
{
	if (c->st == S_CONNECTING) {
		if (so_error(c->fd)) {
			legit_fail(R, c, FAIL_CONNECT, now);
			return;
		}
		ep_set(R->ep, EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLRDHUP, ((uint64_t)K_LEGIT << 32) | i);
		if (R->o->echo) {
			echo_send(R, c);
		} else {
			c->st = S_OPEN;
			if (send(c->fd, R->req, R->req_len, MSG_NOSIGNAL) != (ssize_t)R->req_len)
				c->st = S_FAILED;
		}
		if (c->st == S_FAILED)
			legit_fail(R, c, FAIL_SEND, now);
		return;
	}
	if (c->st != S_OPEN || !(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return;
	for (;;) {
		if (R->o->echo) {
			char buf[65536];
			ssize_t r = recv(c->fd, buf, R->o->size - c->got, MSG_DONTWAIT);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (r <= 0) {
				legit_fail(R, c, FAIL_CLOSED, now);
				return;
			}
			for (ssize_t k = 0; k < r; k++) {
				if ((uint8_t)buf[k] != echo_byte(c->seq, c->got + (uint32_t)k)) {
					legit_fail(R, c, FAIL_BAD, now);
					return;
				}
			}
			c->got += (uint32_t)r;
			if (c->got == R->o->size) {
				legit_end(R, c, 1, now);
				return;
			}
			continue;
		}
		int status = 0, done;
		ssize_t r = recv(c->fd, c->buf + c->got, RESP_MAX - c->got, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r > 0)
			c->got += (uint32_t)r;
		done = http_complete(c, r <= 0 || c->got == RESP_MAX, &status);
		if (done == 0)
			continue;
		if (done > 0 && status >= 100 && status < 600)
			R->s.status[status]++;
		if (done > 0 && status == 200)
			legit_end(R, c, 1, now);
		else if (done > 0)
			R->s.non200++, legit_fail(R, c, FAIL_STATUS, now);
		else
			legit_fail(R, c, c->got && r > 0 ? FAIL_BAD : FAIL_CLOSED, now);
		return;
	}
}

static void dispatch(struct run *R, struct epoll_event *ev, uint64_t now)
{
	uint32_t kind = (uint32_t)(ev->data.u64 >> 32), i = (uint32_t)ev->data.u64;
	if (kind == K_SLOW)
		slow_event(R, &R->slow[i], i, ev->events, now);
	else if (kind == K_LEGIT)
		legit_event(R, &R->legit[i], i, ev->events, now);
}

static void check_budgets(struct run *R, uint64_t now)
{
	uint64_t budget = (uint64_t)(R->o->budget * SEC);
	for (unsigned i = 0; i < R->nlegit; i++) {
		struct pconn *c = &R->legit[i];
		if ((c->st == S_CONNECTING || c->st == S_OPEN) && c->t0 + budget <= now)
			legit_end(R, c, -1, now);
	}
}

/* Opens the slowloris connections; waits (bounded) until they connected. */
static void slowloris_open(struct run *R, double timeout_s)
{
	const struct opts *o = R->o;
	struct epoll_event evs[256];
	unsigned next = 0, inflight = 0;
	uint64_t deadline = now_ns() + (uint64_t)(timeout_s * SEC);
	unsigned nsrc = (o->slow + PER_SOURCE - 1) / PER_SOURCE;

	while (!g_stop) {
		uint64_t now = now_ns();
		while (next < o->slow && inflight < o->inflight && now < deadline) {
			struct pconn *c = &R->slow[next];
			c->fd = start_connect(&o->dst, source_addr(200, next % (nsrc ? nsrc : 1)));
			if (c->fd < 0 || ep_set(R->ep, EPOLL_CTL_ADD, c->fd, EPOLLOUT,
						((uint64_t)K_SLOW << 32) | next) < 0) {
				if (c->fd >= 0)
					close(c->fd);
				c->fd = -1;
				c->st = S_FAILED;
				R->s.slow_failed++;
			} else {
				c->st = S_CONNECTING;
			}
			next++;
		}
		inflight = 0;
		for (unsigned i = 0; i < next; i++)
			inflight += R->slow[i].st == S_CONNECTING;
		if ((next == o->slow && !inflight) || now >= deadline)
			return;
		int r = epoll_wait(R->ep, evs, 256, 20);
		now = now_ns();
		for (int j = 0; j < r; j++)
			dispatch(R, &evs[j], now);
		slow_tick(R, now);
	}
}

static void legit_phase(struct run *R)
{
	const struct opts *o = R->o;
	struct epoll_event evs[256];
	uint64_t t0 = now_ns(), span = (uint64_t)(o->seconds * SEC);
	uint64_t hard_end = t0 + span + (uint64_t)(o->budget * SEC) + 2 * SEC;
	unsigned next_req = 0;

	R->t_end = t0 + span;
	R->t_legit = t0;
	for (unsigned i = 0; i < R->nlegit; i++)   /* echo clients start over the first 100 ms */
		R->legit[i].next_start = t0 + (uint64_t)i * 100 * MS / (R->nlegit ? R->nlegit : 1);
	while (!g_stop) {
		uint64_t now = now_ns();
		if (o->echo) {
			for (unsigned i = 0; i < R->nlegit && now < R->t_end; i++) {
				struct pconn *c = &R->legit[i];
				if ((c->st == S_NEW || c->st == S_CLOSED || c->st == S_IDLE) &&
				    c->next_start <= now)
					legit_start(R, i, now);
			}
		} else {
			while (next_req < o->requests &&
			       t0 + (uint64_t)((double)next_req * (double)span / o->requests) <= now)
				legit_start(R, next_req++, now);
		}
		check_budgets(R, now);
		slow_tick(R, now);
		int finished = o->echo ? (now >= R->t_end && !R->active)
				       : (next_req == o->requests && !R->active);
		if (finished || now >= hard_end)
			break;
		int r = epoll_wait(R->ep, evs, 256, R->active || o->echo ? 1 : 5);
		now = now_ns();
		for (int j = 0; j < r; j++)
			dispatch(R, &evs[j], now);
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(const struct stats *s, double p)
{
	if (!s->nlat)
		return -1;
	size_t k = (size_t)ceil(p * (double)s->nlat);
	k = k ? k - 1 : 0;
	if (k >= s->nlat)
		k = s->nlat - 1;
	return s->lat_us[k] / 1000.0;
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s -a ADDR:PORT [-n SILENT] [-s SLOWLORIS] [-r REQUESTS] [-c CLIENTS]\n"
		"          [-t SECONDS] [-b BUDGET_S] [-P PATH] [--mode http|echo] [--sources K]\n"
		"          [--procs K] [--inflight Q] [--flood-timeout S] [--size BYTES] [--keep]\n",
		prog);
}

int main(int argc, char **argv)
{
	struct opts o = { .seconds = 10, .budget = 5, .flood_timeout = 15, .path = "/hello.txt",
			  .sources = 4, .inflight = 256, .size = 64 };
	static const struct option lopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "sources", required_argument, NULL, 'S' },
		{ "procs", required_argument, NULL, 'K' },
		{ "inflight", required_argument, NULL, 'q' },
		{ "flood-timeout", required_argument, NULL, 'T' },
		{ "size", required_argument, NULL, 'z' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *addr = NULL;
	int opt, procs = 0;

	while ((opt = getopt_long(argc, argv, "a:n:s:r:c:t:b:P:h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'n': o.silent = (unsigned)atoi(optarg); break;
		case 's': o.slow = (unsigned)atoi(optarg); break;
		case 'r': o.requests = (unsigned)atoi(optarg); break;
		case 'c': o.clients = (unsigned)atoi(optarg); break;
		case 't': o.seconds = atof(optarg); break;
		case 'b': o.budget = atof(optarg); break;
		case 'P': o.path = optarg; break;
		case 'm':
			if (!strcmp(optarg, "echo"))
				o.echo = 1;
			else if (strcmp(optarg, "http"))
				goto bad;
			break;
		case 'S': o.sources = (unsigned)atoi(optarg); break;
		case 'K': procs = atoi(optarg); break;
		case 'q': o.inflight = (unsigned)atoi(optarg); break;
		case 'T': o.flood_timeout = atof(optarg); break;
		case 'z': o.size = (unsigned)atoi(optarg); break;
		case 'k': o.keep = 1; break;
		case 'h': usage(argv[0]); return 0;
		default: goto bad;
		}
	}
	if (optind != argc || !addr || parse_addr(addr, &o.dst) < 0 || o.seconds <= 0 ||
	    o.budget <= 0 || !o.inflight || !o.size || o.size > 65536 || procs < 0 ||
	    o.flood_timeout <= 0)
		goto bad;
	if (ntohl(o.dst.sin_addr.s_addr) >> 24 != 127) {
		fprintf(stderr, "flood: loopback targets only (127.0.0.0/8)\n");
		return 2;
	}
	raise_nofile();
	/* at most PER_SOURCE connections per source address; each process below its fd limit */
	if (o.sources < 1)
		o.sources = 1;
	if (o.silent / o.sources >= PER_SOURCE)
		o.sources = (o.silent + PER_SOURCE - 1) / PER_SOURCE;
	unsigned room = nofile_max() > 200 ? nofile_max() - 100 : 100;
	o.procs = procs ? (unsigned)procs : (o.silent + 14999) / 15000;
	if (o.silent && !o.procs)
		o.procs = 1;
	if (o.procs && (o.silent + o.procs - 1) / o.procs > room)
		o.procs = (o.silent + room - 1) / room;
	if (o.procs > MAX_PROCS || o.sources > 254 * 50 ||
	    o.slow + (o.echo ? o.clients : o.requests) + 100 > nofile_max()) {
		fprintf(stderr, "flood: too many connections for the descriptor limit %u\n",
			nofile_max());
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* 1: the silent flood, in child processes */
	uint64_t t_start = now_ns();
	struct child ch[MAX_PROCS];
	memset(ch, 0, sizeof(ch));
	pid_t self = getpid();
	for (unsigned i = 0; i < o.procs; i++) {
		int ctl[2], rep[2];
		if (pipe2(ctl, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
			perror("flood: pipe");
			return 1;
		}
		unsigned share = o.silent / o.procs + (i < o.silent % o.procs);
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			perror("flood: fork");
			return 1;
		}
		if (pid == 0) {
			for (unsigned j = 0; j < i; j++) {   /* not the earlier children's pipes */
				close(ch[j].ctl);
				close(ch[j].rep);
			}
			close(ctl[1]);
			close(rep[0]);
			flood_child(&o, i, o.procs, share, ctl[0], rep[1], self);
		}
		close(ctl[0]);
		close(rep[1]);
		ch[i] = (struct child){ .pid = pid, .ctl = ctl[1], .rep = rep[0] };
	}
	read_reports(ch, o.procs, 'E', now_ns() + (uint64_t)((o.flood_timeout + 10) * SEC));
	struct fcount fe = { 0 };
	for (unsigned i = 0; i < o.procs; i++) {
		fe.opened += ch[i].e.opened;
		fe.failed += ch[i].e.failed;
		fe.closed += ch[i].e.closed;
		fe.pending += ch[i].e.pending;
		fe.unstarted += ch[i].e.unstarted;
	}
	double flood_s = (double)(now_ns() - t_start) / SEC;
	log_msg("flood of %u: %u opened, %u closed by the server, %u still connecting, %u not "
		"started, %u failed, in %.1f s (%u processes, %u source addresses)", o.silent,
		fe.opened, fe.closed, fe.pending, fe.unstarted, fe.failed, flood_s, o.procs,
		o.sources);

	/* 2: slowloris, then the legit clients */
	struct run R = { .o = &o };
	R.ep = epoll_create1(EPOLL_CLOEXEC);
	R.nlegit = o.echo ? o.clients : o.requests;
	R.slow = calloc(o.slow ? o.slow : 1, sizeof(*R.slow));
	R.legit = calloc(R.nlegit ? R.nlegit : 1, sizeof(*R.legit));
	if (R.ep < 0 || !R.slow || !R.legit)
		return 1;
	for (unsigned i = 0; i < o.slow; i++)
		R.slow[i].fd = -1;
	for (unsigned i = 0; i < R.nlegit; i++) {
		R.legit[i].fd = -1;
		if (!o.echo && !(R.legit[i].buf = malloc(RESP_MAX + 1)))
			return 1;
	}
	R.req_len = (size_t)snprintf(R.req, sizeof(R.req),
				     "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", o.path);
	if (R.req_len >= sizeof(R.req))
		goto bad;
	if (o.slow && !g_stop) {
		slowloris_open(&R, 10);
		log_msg("slowloris: %u of %u connected", R.s.slow_opened, o.slow);
	}
	log_msg("legit: %u %s over %g s, budget %g s", R.nlegit, o.echo ? "echo clients" :
		"requests", o.seconds, o.budget);
	uint64_t t_legit = now_ns();
	if (!g_stop)
		legit_phase(&R);
	double legit_s = (double)(now_ns() - t_legit) / SEC;
	unsigned slow_open = R.s.slow_opened - R.s.slow_closed;

	/* 3: close everything; the children report what the server closed */
	for (unsigned i = 0; i < o.slow; i++)
		if (R.slow[i].fd >= 0)
			close(R.slow[i].fd);
	for (unsigned i = 0; i < R.nlegit; i++) {
		if (R.legit[i].fd >= 0)
			close(R.legit[i].fd);
		free(R.legit[i].buf);
	}
	for (unsigned i = 0; i < o.procs; i++)
		close(ch[i].ctl);
	read_reports(ch, o.procs, 'F', now_ns() + 20 * SEC);
	struct fcount ff = { 0 };
	int lost = 0;
	for (unsigned i = 0; i < o.procs; i++) {
		ff.opened += ch[i].got_f ? ch[i].f.opened : ch[i].e.opened;
		ff.failed += ch[i].got_f ? ch[i].f.failed : ch[i].e.failed;
		ff.closed += ch[i].got_f ? ch[i].f.closed : ch[i].e.closed;
		ff.pending += ch[i].got_f ? ch[i].f.pending : ch[i].e.pending;
		lost += !ch[i].got_e || !ch[i].got_f;
		if (!ch[i].got_f)
			kill(ch[i].pid, SIGKILL);
		waitpid(ch[i].pid, NULL, 0);
		if (ch[i].rep >= 0)
			close(ch[i].rep);
	}
	if (lost)
		log_msg("%d flood process(es) did not report", lost);

	qsort(R.s.lat_us, R.s.nlat, sizeof(*R.s.lat_us), cmp_u32);
	struct stats *s = &R.s;
	char statuses[600 * 16] = "", *sp = statuses;
	for (unsigned k = 100; k < 600; k++)
		if (s->status[k])
			sp += sprintf(sp, "%s\"%u\":%u", sp == statuses ? "" : ",", k, s->status[k]);
	printf("BENCHJSON {\"mode\":\"%s\",\"flood_target\":%u,\"flood_procs\":%u,"
	       "\"flood_sources\":%u,\"flood_opened\":%u,\"flood_failed\":%u,"
	       "\"flood_pending\":%u,\"flood_not_started\":%u,\"flood_held\":%u,"
	       "\"flood_setup_s\":%.2f,\"flood_closed_during_setup\":%u,"
	       "\"flood_opened_final\":%u,\"flood_closed_by_server\":%u,"
	       "\"slowloris_target\":%u,\"slowloris_opened\":%u,\"slowloris_open\":%u,"
	       "\"slowloris_closed_by_server\":%u,\"requests\":%u,\"served\":%u,\"failed\":%u,"
	       "\"timeouts\":%u,\"non200\":%u,\"success_pct\":%.2f,\"p50_ms\":%.2f,"
	       "\"p99_ms\":%.2f,\"max_ms\":%.2f,\"duration_s\":%.2f,\"total_s\":%.2f,"
	       "\"budget_s\":%g,\"lost_procs\":%d,\"statuses\":{%s},\"fail_connect\":%u,"
	       "\"fail_send\":%u,\"fail_closed\":%u,\"fail_status\":%u,\"fail_bad\":%u,"
	       "\"over_100ms\":%u,\"over_1s\":%u,\"last_over_100ms_at_s\":%.2f}\n",
	       o.echo ? "echo" : "http", o.silent, o.procs, o.sources, fe.opened, fe.failed,
	       fe.pending, fe.unstarted, fe.opened - fe.closed, flood_s, fe.closed, ff.opened,
	       ff.closed, o.slow, s->slow_opened, slow_open, s->slow_closed, s->attempts, s->served,
	       s->failed, s->timeouts, s->non200,
	       s->attempts ? 100.0 * s->served / s->attempts : 0.0, pct_ms(s, 0.5),
	       pct_ms(s, 0.99), s->nlat ? s->lat_us[s->nlat - 1] / 1000.0 : -1.0, legit_s,
	       (double)(now_ns() - t_start) / SEC, o.budget, lost, statuses, s->fail[FAIL_CONNECT],
	       s->fail[FAIL_SEND], s->fail[FAIL_CLOSED], s->fail[FAIL_STATUS], s->fail[FAIL_BAD],
	       s->over_100ms, s->over_1s, s->over_100ms ? (double)s->last_slow_ns / SEC : -1.0);
	fflush(stdout);
	free(s->lat_us);
	return g_stop ? 130 : 0;
bad:
	usage(argv[0]);
	return 2;
}
