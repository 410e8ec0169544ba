/*
 * echo_epoll: the plain epoll echo loop that the engine's echo example is measured against
 * (`make bench`, scenarios E1/E2). One thread, level-triggered, non-blocking.
 *
 * Each read is written straight back. When the socket will not take all of it, the rest waits in
 * a per-connection buffer and the connection stops reading until it drains (EPOLLOUT), so a
 * client that does not read cannot make the server buffer without bound.
 *
 * Usage: echo_epoll -l 127.0.0.1:PORT [-w N]   (PORT 0 picks one; prints "listening on ADDR:PORT";
 * -w is accepted for a command line like the other servers' and ignored: one thread)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

#define BUF_SIZE (64 * 1024)

struct conn {
	char *pend;             /* unsent bytes (malloc'd BUF_SIZE), or NULL */
	size_t off, len;
};

struct loop {
	int lfd, ep;
	struct conn *conns;     /* indexed by fd */
	size_t nconns;
	char *buf;
};

static void conn_close(struct loop *l, int fd)
{
	free(l->conns[fd].pend);
	memset(&l->conns[fd], 0, sizeof(l->conns[fd]));
	close(fd);
}

static void watch(struct loop *l, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };
	epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Sends buf; keeps what does not fit. Returns -1 on a dead connection, 1 if bytes are pending. */
static int send_or_keep(struct loop *l, int fd, const char *buf, size_t n)
{
	struct conn *c = &l->conns[fd];

	while (n) {
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN)
			return -1;
		if (w < 0) {
			if (!c->pend && !(c->pend = malloc(BUF_SIZE)))
				return -1;
			memmove(c->pend, buf, n);  /* n <= BUF_SIZE: it came from one read */
			c->off = 0;
			c->len = n;
			watch(l, fd, EPOLLOUT);
			return 1;
		}
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

static void on_writable(struct loop *l, int fd)
{
	struct conn *c = &l->conns[fd];
	size_t n = c->len - c->off;
	int r = send_or_keep(l, fd, c->pend + c->off, n);

	if (r < 0) {
		conn_close(l, fd);
		return;
	}
	if (r == 0) {
		c->len = c->off = 0;
		watch(l, fd, EPOLLIN);
	}
}

static void on_readable(struct loop *l, int fd)
{
	for (;;) {
		ssize_t r = recv(fd, l->buf, BUF_SIZE, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			conn_close(l, fd);
			return;
		}
		int s = send_or_keep(l, fd, l->buf, (size_t)r);
		if (s < 0)
			conn_close(l, fd);
		if (s != 0 || r < BUF_SIZE)
			return;
	}
}

static void on_accept(struct loop *l)
{
	for (;;) {
		int fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if ((size_t)fd >= l->nconns) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			close(fd);
	}
}

static int setup(struct loop *l, struct sockaddr_in *sa)
{
	int one = 1;
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	l->nconns = rl.rlim_cur > (1u << 22) ? (1u << 22) : rl.rlim_cur;
	l->conns = calloc(l->nconns, sizeof(*l->conns));
	l->buf = malloc(BUF_SIZE);
	if (!l->conns || !l->buf)
		return -ENOMEM;
	l->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->lfd < 0)
		return -errno;
	setsockopt(l->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l->lfd, (struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(l->lfd, 4096) < 0)
		return -errno;
	socklen_t len = sizeof(*sa);
	getsockname(l->lfd, (struct sockaddr *)sa, &len);
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep < 0)
		return -errno;
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = l->lfd };
	return epoll_ctl(l->ep, EPOLL_CTL_ADD, l->lfd, &ev) < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1:7000";
	struct sockaddr_in sa;
	struct loop l;
	int opt;

	while ((opt = getopt(argc, argv, "l:w:")) != -1) {
		if (opt == 'l')
			addr = optarg;
		else if (opt != 'w') {
			fprintf(stderr, "usage: %s -l ADDR:PORT [-w N]\n", argv[0]);
			return 2;
		}
	}
	if (parse_addr(addr, &sa) < 0) {
		fprintf(stderr, "echo_epoll: bad address '%s'\n", addr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	int err = setup(&l, &sa);
	if (err < 0) {
		fprintf(stderr, "echo_epoll: %s: %s\n", addr, strerror(-err));
		return 1;
	}
	char host[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
	printf("listening on %s:%u\n", host, ntohs(sa.sin_port));
	fflush(stdout);

	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(l.ep, evs, 256, -1);
		if (n < 0 && errno != EINTR)
			return 1;
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == l.lfd)
				on_accept(&l);
			else if (l.conns[fd].len)
				on_writable(&l, fd);
			else
				on_readable(&l, fd);
		}
	}
}
