/*
 * idle: holds many idle keep-alive connections open, for `make bench` scenario S7 (server memory
 * per idle connection).
 *
 * Opens N connections (one epoll thread, at most -q handshakes and requests in progress at a
 * time so the server's listen queue never overflows), sends one GET on each, reads the whole
 * response (head, then Content-Length bytes), then leaves the connection open and silent. Once
 * every connection has finished or failed it prints "ready OK FAILED" on stdout and waits until
 * stdin reaches EOF or a signal arrives; then it closes everything and exits.
 *
 * One source address gives about 28 000 ephemeral ports towards one server port. With -b COUNT
 * the connections are spread over COUNT source addresses (BASE, BASE+1, ... from -B, default
 * 127.1.0.1; the whole 127/8 is loopback on Linux); above 25 000 connections spreading is on by
 * default. Raises its own RLIMIT_NOFILE to the hard limit.
 *
 * With -L (late reads) each connection sends its GET and is left unread: responses are read
 * only once every connection is open and has sent its request (the burst pattern of issue 19:
 * the server answers thousands of connections whose client does not read yet). -q then bounds
 * only the handshakes in progress.
 *
 * Usage: idle -c N [-L] [-p PATH] [-b COUNT] [-B BASE] [-q INFLIGHT] [-T TIMEOUT_S] ADDR:PORT
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define HEAD_MAX 4096

enum state { ST_NONE, ST_CONNECTING, ST_SENT, ST_READING, ST_IDLE, ST_FAILED };

struct conn {
	int fd;
	enum state st;
	uint16_t head_len;
	int64_t body_left;      /* -1 until the head is complete */
	char *head;
};

struct idle {
	int ep;
	struct sockaddr_in dst;
	uint32_t src_base;      /* host order; 0 = let the kernel pick */
	unsigned src_count;
	char req[512];
	size_t req_len;
	struct conn *c;
	unsigned n, next, inflight, ok, failed;
	bool late;              /* -L: read responses only after every request is sent */
	unsigned sent;          /* -L: connections whose request is sent, not yet read */
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void finish(struct idle *I, struct conn *c, int ok)
{
	I->inflight--;
	free(c->head);
	c->head = NULL;
	if (ok) {
		c->st = ST_IDLE;
		I->ok++;
		epoll_ctl(I->ep, EPOLL_CTL_DEL, c->fd, NULL);
		return;
	}
	c->st = ST_FAILED;
	I->failed++;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int open_one(struct idle *I, unsigned i)
{
	struct conn *c = &I->c[i];
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (I->src_count) {
		struct sockaddr_in src = { .sin_family = AF_INET };
		src.sin_addr.s_addr = htonl(I->src_base + i % I->src_count);
		/* the port is chosen at connect time, per destination: no port exhaustion at bind */
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0)
			return -errno;
	}
	if (connect(c->fd, (struct sockaddr *)&I->dst, sizeof(I->dst)) < 0 && errno != EINPROGRESS)
		return -errno;
	c->st = ST_CONNECTING;
	c->body_left = -1;
	c->head = malloc(HEAD_MAX);
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = i };
	if (!c->head || epoll_ctl(I->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		return -ENOMEM;
	return 0;
}

static void on_connected(struct idle *I, struct conn *c, unsigned i)
{
	int err = 0;
	socklen_t len = sizeof(err);
	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
	if (err || send(c->fd, I->req, I->req_len, MSG_NOSIGNAL) != (ssize_t)I->req_len ||
	    epoll_ctl(I->ep, EPOLL_CTL_MOD, c->fd, I->late ? &(struct epoll_event){ .data.u32 = i }
		      : &ev) < 0) {
		finish(I, c, 0);
		return;
	}
	c->st = ST_READING;
	if (I->late) {          /* not read yet: frees a handshake slot */
		c->st = ST_SENT;
		I->inflight--;
		I->sent++;
	}
}

/* -L: every request is out; now read every response. */
static void arm_reads(struct idle *I)
{
	for (unsigned i = 0; i < I->n; i++) {
		struct conn *c = &I->c[i];
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
		if (c->st != ST_SENT)
			continue;
		I->sent--;
		I->inflight++;
		c->st = ST_READING;
		if (epoll_ctl(I->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
			finish(I, c, 0);
	}
}

/* Reads the response: head into c->head, then counts down Content-Length body bytes. */
static void on_readable(struct idle *I, struct conn *c)
{
	char buf[16384];
	ssize_t r = recv(c->fd, buf, sizeof(buf), 0);

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		finish(I, c, 0);
		return;
	}
	size_t n = (size_t)r, off = 0;
	if (c->body_left < 0) {
		size_t take = n < (size_t)(HEAD_MAX - 1 - c->head_len) ? n : (size_t)(HEAD_MAX - 1 - c->head_len);
		memcpy(c->head + c->head_len, buf, take);
		size_t old = c->head_len;
		c->head_len = (uint16_t)(c->head_len + take);
		c->head[c->head_len] = 0;
		char *end = strstr(c->head, "\r\n\r\n");
		if (!end) {
			if (c->head_len >= HEAD_MAX - 1)
				finish(I, c, 0);
			return;
		}
		char *cl = strcasestr(c->head, "\r\ncontent-length:");
		if (strncmp(c->head, "HTTP/1.1 200", 12) != 0 || !cl || cl > end) {
			finish(I, c, 0);
			return;
		}
		c->body_left = atoll(cl + 17);
		off = (size_t)(end + 4 - c->head) - old;
	}
	c->body_left -= (int64_t)(n - off);
	if (c->body_left < 0)
		finish(I, c, 0);
	else if (c->body_left == 0)
		finish(I, c, 1);
}

static void fill(struct idle *I, unsigned max_inflight)
{
	while (I->next < I->n && I->inflight < max_inflight) {
		unsigned i = I->next++;
		I->inflight++;
		int err = open_one(I, i);
		if (err < 0) {
			fprintf(stderr, "idle: connection %u: %s\n", i, strerror(-err));
			finish(I, &I->c[i], 0);
		}
	}
}

static void wait_for_end(void)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };
	char b[256];

	while (!g_stop) {
		int r = poll(&p, 1, 1000);
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0) {
			ssize_t n = read(0, b, sizeof(b));
			if (n <= 0)
				break;
		}
	}
}

int main(int argc, char **argv)
{
	struct idle I = { .n = 10000 };
	const char *path = "/hello.txt", *base = "127.1.0.1";
	unsigned max_inflight = 256, timeout_s = 60;
	int spread = -1, opt;
	struct rlimit rl;

	while ((opt = getopt(argc, argv, "c:Lp:b:B:q:T:")) != -1) {
		switch (opt) {
		case 'L': I.late = true; break;
		case 'c': I.n = (unsigned)atoi(optarg); break;
		case 'p': path = optarg; break;
		case 'b': spread = atoi(optarg); break;
		case 'B': base = optarg; break;
		case 'q': max_inflight = (unsigned)atoi(optarg); break;
		case 'T': timeout_s = (unsigned)atoi(optarg); break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || !I.n || !max_inflight || parse_addr(argv[optind], &I.dst) < 0)
		goto usage;
	if (spread < 0)
		spread = I.n > 25000 ? (int)(I.n / 20000 + 1) : 0;
	if (spread > 0) {
		struct in_addr a;
		if (inet_pton(AF_INET, base, &a) != 1)
			goto usage;
		I.src_base = ntohl(a.s_addr);
		I.src_count = (unsigned)spread;
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	I.req_len = (size_t)snprintf(I.req, sizeof(I.req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
				     path, argv[optind]);
	I.ep = epoll_create1(EPOLL_CLOEXEC);
	I.c = calloc(I.n, sizeof(*I.c));
	if (I.ep < 0 || !I.c || I.req_len >= sizeof(I.req))
		return 1;
	for (unsigned i = 0; i < I.n; i++)
		I.c[i].fd = -1;

	struct epoll_event evs[256];
	time_t deadline = time(NULL) + timeout_s;
	fill(&I, max_inflight);
	while ((I.inflight || I.next < I.n || I.sent) && !g_stop && time(NULL) < deadline) {
		if (I.late && I.sent && !I.inflight && I.next == I.n)
			arm_reads(&I);
		int n = epoll_wait(I.ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			unsigned k = evs[i].data.u32;
			struct conn *c = &I.c[k];
			if (c->st == ST_CONNECTING)
				on_connected(&I, c, k);
			else if (c->st == ST_READING)
				on_readable(&I, c);
		}
		fill(&I, max_inflight);
	}
	/* whatever is still in progress at the deadline counts as failed */
	for (unsigned i = 0; i < I.n; i++)
		if (I.c[i].st == ST_SENT) {
			I.inflight++;
			finish(&I, &I.c[i], 0);
		} else if (I.c[i].st == ST_CONNECTING || I.c[i].st == ST_READING) {
			finish(&I, &I.c[i], 0);
		}
	printf("ready %u %u\n", I.ok, I.failed + (I.n - I.next));
	fflush(stdout);
	wait_for_end();
	for (unsigned i = 0; i < I.n; i++)
		if (I.c[i].fd >= 0)
			close(I.c[i].fd);
	return 0;
usage:
	fprintf(stderr, "usage: %s -c N [-L] [-p PATH] [-b COUNT] [-B BASE] [-q INFLIGHT] [-T SECS] "
		"ADDR:PORT\n", argv[0]);
	return 2;
}
