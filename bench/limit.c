/*
 * limit: the ceiling of any HTTP/1.1 server on this machine, for `make bench`.
 *
 * One epoll loop per thread (one thread unless -w says more), level-triggered, non-blocking.
 * It does not parse HTTP: it counts request terminators ("\r\n\r\n") in the byte stream, keeping
 * the partial match across reads so a terminator split between two reads still counts once, and
 * owes one canned 13-byte "Hello, World!" response per terminator. All responses owed after one
 * read leave in one write (pipelining). A read that contains "Connection: close" makes the
 * connection close once everything owed is sent (S3); that memmem is the only look at content.
 *
 * Invariant: every response is the same RESP_LEN bytes, so the output of a connection is a
 * periodic stream and a connection needs no buffer, only "bytes owed" and "bytes sent so far":
 * the next write starts at offset sent % RESP_LEN of a block of RESP_BATCH copies.
 *
 * Usage: limit -l 127.0.0.1:PORT [-w N]   (PORT 0 picks one; prints "listening on ADDR:PORT")
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchutil.h"

#define RESP_BATCH 256          /* copies in the write block: 256 x 85 B = 21 KiB per write max */
#define READ_BUF (64 * 1024)

static const char resp_keep[] = "HTTP/1.1 200 OK\r\nServer: limit\r\nContent-Type: text/plain\r\n"
				"Content-Length: 13\r\n\r\nHello, World!";
static const char resp_close[] = "HTTP/1.1 200 OK\r\nServer: limit\r\nContent-Type: text/plain\r\n"
				 "Content-Length: 13\r\nConnection: close\r\n\r\nHello, World!";

struct block {
	char *buf;
	size_t resp_len;
	size_t len;             /* RESP_BATCH * resp_len */
};

struct conn {
	uint64_t owed;          /* bytes still to send */
	uint64_t sent;          /* bytes sent so far (position in the periodic stream) */
	uint8_t match;          /* bytes of "\r\n\r\n" matched at the end of the last read */
	uint8_t closing;        /* close once owed == 0 */
	uint8_t use_close;      /* this connection's stream is resp_close */
	uint8_t want_out;       /* EPOLLOUT registered */
};

struct loop {
	int lfd;
	int ep;
	struct conn *conns;     /* indexed by fd; sized to RLIMIT_NOFILE, shared by all threads */
	const struct block *blk[2];
};

static struct conn *g_conns;
static size_t g_nconns;

static int build_block(struct block *b, const char *resp, size_t len)
{
	b->resp_len = len;
	b->len = len * RESP_BATCH;
	b->buf = malloc(b->len);
	if (!b->buf)
		return -ENOMEM;
	for (size_t i = 0; i < RESP_BATCH; i++)
		memcpy(b->buf + i * len, resp, len);
	return 0;
}

/* Counts "\r\n\r\n" in buf, continuing the partial match *m (0..3) from the previous read. */
static unsigned count_requests(const char *buf, size_t n, uint8_t *m)
{
	static const char pat[4] = { '\r', '\n', '\r', '\n' };
	unsigned count = 0;
	uint8_t s = *m;

	for (size_t i = 0; i < n; i++) {
		char c = buf[i];
		if (c == pat[s]) {
			if (++s == 4) {
				count++;
				s = 0;
			}
		} else {
			s = c == '\r';
		}
	}
	*m = s;
	return count;
}

static void conn_close(struct loop *l, int fd)
{
	memset(&l->conns[fd], 0, sizeof(l->conns[fd]));
	close(fd);
}

static void set_out(struct loop *l, int fd, struct conn *c, int on)
{
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = fd };

	if (c->want_out == on)
		return;
	c->want_out = (uint8_t)on;
	epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Writes what is owed. Returns -1 when the connection was closed. */
static int flush_conn(struct loop *l, int fd)
{
	struct conn *c = &l->conns[fd];
	const struct block *b = l->blk[c->use_close];

	while (c->owed) {
		size_t off = c->sent % b->resp_len;
		size_t n = b->len - off;
		if (n > c->owed)
			n = c->owed;
		ssize_t w = send(fd, b->buf + off, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN) {
				set_out(l, fd, c, 1);
				return 0;
			}
			if (errno == EINTR)
				continue;
			conn_close(l, fd);
			return -1;
		}
		c->owed -= (uint64_t)w;
		c->sent += (uint64_t)w;
	}
	set_out(l, fd, c, 0);
	if (c->closing) {
		conn_close(l, fd);
		return -1;
	}
	return 0;
}

static void on_readable(struct loop *l, int fd, char *buf)
{
	struct conn *c = &l->conns[fd];

	for (;;) {
		ssize_t r = recv(fd, buf, READ_BUF, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_close(l, fd);
			return;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		unsigned reqs = count_requests(buf, (size_t)r, &c->match);
		if (memmem(buf, (size_t)r, "Connection: close", 17)) {
			c->closing = 1;
			if (c->owed == 0 && c->sent % l->blk[0]->resp_len == 0) {
				c->use_close = 1;
				c->sent = 0;
			}
		}
		c->owed += (uint64_t)reqs * l->blk[c->use_close]->resp_len;
		if ((size_t)r < READ_BUF)
			break;
	}
	if (c->want_out)
		return;         /* the socket is full; EPOLLOUT will flush */
	if (c->owed || c->closing)
		flush_conn(l, fd);
}

static void on_accept(struct loop *l)
{
	for (;;) {
		int fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;         /* EAGAIN, or EMFILE: try again on the next wakeup */
		if ((size_t)fd >= g_nconns) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		memset(&l->conns[fd], 0, sizeof(l->conns[fd]));
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			close(fd);
	}
}

static void *run_loop(void *arg)
{
	struct loop *l = arg;
	struct epoll_event evs[256];
	char *buf = malloc(READ_BUF);

	if (!buf)
		return NULL;
	for (;;) {
		int n = epoll_wait(l->ep, evs, 256, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == l->lfd) {
				on_accept(l);
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				on_readable(l, fd, buf);
			else if (evs[i].events & EPOLLOUT)
				flush_conn(l, fd);
		}
		if (n < 0 && errno != EINTR)
			break;
	}
	free(buf);
	return NULL;
}

static int open_listener(struct sockaddr_in *sa)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(fd, 4096) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	socklen_t len = sizeof(*sa);
	getsockname(fd, (struct sockaddr *)sa, &len);  /* learn the port when it was 0 */
	return fd;
}

static int init_loop(struct loop *l, struct sockaddr_in *sa, const struct block *blk)
{
	l->lfd = open_listener(sa);
	if (l->lfd < 0)
		return l->lfd;
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep < 0)
		return -errno;
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = l->lfd };
	if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->lfd, &ev) < 0)
		return -errno;
	l->conns = g_conns;
	l->blk[0] = &blk[0];
	l->blk[1] = &blk[1];
	return 0;
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1:8080";
	int workers = 1, opt;
	struct sockaddr_in sa;
	struct rlimit rl;
	static struct block blk[2];

	while ((opt = getopt(argc, argv, "l:w:")) != -1) {
		if (opt == 'l')
			addr = optarg;
		else if (opt == 'w')
			workers = atoi(optarg) > 0 ? atoi(optarg) : 1;
		else {
			fprintf(stderr, "usage: %s -l ADDR:PORT [-w THREADS]\n", argv[0]);
			return 2;
		}
	}
	if (parse_addr(addr, &sa) < 0) {
		fprintf(stderr, "limit: bad address '%s'\n", addr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	g_nconns = rl.rlim_cur > (1u << 22) ? (1u << 22) : rl.rlim_cur;
	g_conns = calloc(g_nconns, sizeof(*g_conns));
	if (!g_conns || build_block(&blk[0], resp_keep, sizeof(resp_keep) - 1) < 0 ||
	    build_block(&blk[1], resp_close, sizeof(resp_close) - 1) < 0) {
		fprintf(stderr, "limit: out of memory\n");
		return 1;
	}

	struct loop *loops = calloc((size_t)workers, sizeof(*loops));
	for (int i = 0; loops && i < workers; i++) {
		int err = init_loop(&loops[i], &sa, blk);  /* sa holds the real port after the first */
		if (err < 0) {
			fprintf(stderr, "limit: listen on %s: %s\n", addr, strerror(-err));
			return 1;
		}
	}
	if (!loops)
		return 1;
	char host[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
	printf("listening on %s:%u\n", host, ntohs(sa.sin_port));
	fflush(stdout);

	for (int i = 1; i < workers; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, run_loop, &loops[i]) != 0) {
			fprintf(stderr, "limit: cannot start thread %d\n", i);
			return 1;
		}
	}
	run_loop(&loops[0]);
	return 1;
}
