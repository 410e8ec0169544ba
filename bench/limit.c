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
 * With -u the loop is io_uring instead (issue 19: the ceiling of an io_uring server): a
 * multishot accept, a multishot receive per connection into a provided-buffer ring, and one
 * send in flight per connection, the same counting and the same canned responses.
 *
 * Usage: limit -l 127.0.0.1:PORT [-w N] [-u]   (PORT 0 picks one; prints "listening on ADDR:PORT")
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <liburing.h>

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
	uint8_t want_out;       /* EPOLLOUT registered (-u: a send in flight) */
	uint16_t gen;           /* -u: this fd's connection number, in each completion */
};

struct loop {
	int lfd;
	int ep;
	struct io_uring ring;   /* -u */
	struct io_uring_buf_ring *br;
	char *bufs;
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

/* ---- -u: the io_uring loop ---- */

#define U_BUFS 256u
#define U_BUF_SIZE (16 * 1024)
enum { U_ACCEPT = 1, U_RECV, U_SEND };

static inline uint64_t u_ud(struct loop *l, unsigned type, int fd)
{
	return ((uint64_t)type << 48) | ((uint64_t)l->conns[fd].gen << 32) | (uint32_t)fd;
}

static struct io_uring_sqe *u_sqe(struct loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

static void u_accept(struct loop *l)
{
	struct io_uring_sqe *sqe = u_sqe(l);

	io_uring_prep_multishot_accept(sqe, l->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, (uint64_t)U_ACCEPT << 48);
}

static void u_recv(struct loop *l, int fd)
{
	struct io_uring_sqe *sqe = u_sqe(l);

	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
	io_uring_sqe_set_data64(sqe, u_ud(l, U_RECV, fd));
}

static void u_buf_return(struct loop *l, unsigned bid)
{
	io_uring_buf_ring_add(l->br, l->bufs + (size_t)bid * U_BUF_SIZE, U_BUF_SIZE,
			      (unsigned short)bid, io_uring_buf_ring_mask(U_BUFS), 0);
	io_uring_buf_ring_advance(l->br, 1);
}

/* One send of what is owed, if none is in flight (want_out marks one in flight here). */
static void u_send(struct loop *l, int fd)
{
	struct conn *c = &l->conns[fd];
	const struct block *b = l->blk[c->use_close];

	if (c->want_out || !c->owed)
		return;
	size_t off = c->sent % b->resp_len, n = b->len - off;
	if (n > c->owed)
		n = c->owed;
	struct io_uring_sqe *sqe = u_sqe(l);
	io_uring_prep_send(sqe, fd, b->buf + off, n, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, u_ud(l, U_SEND, fd));
	c->want_out = 1;
}

/* Synchronous: shutdown ends the multishot receive (its final completion then carries an
 * old generation and is ignored, but for its buffer). */
static void u_close(struct loop *l, int fd)
{
	uint16_t gen = l->conns[fd].gen;

	memset(&l->conns[fd], 0, sizeof(l->conns[fd]));
	l->conns[fd].gen = (uint16_t)(gen + 1);
	shutdown(fd, SHUT_RDWR);
	close(fd);
}

static void u_on_recv(struct loop *l, int fd, bool live, struct io_uring_cqe *cqe)
{
	struct conn *c = &l->conns[fd];

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		if (cqe->res > 0 && live) {
			const char *buf = l->bufs + (size_t)bid * U_BUF_SIZE;
			unsigned reqs = count_requests(buf, (size_t)cqe->res, &c->match);
			if (memmem(buf, (size_t)cqe->res, "Connection: close", 17)) {
				c->closing = 1;
				if (c->owed == 0 && c->sent % l->blk[0]->resp_len == 0) {
					c->use_close = 1;
					c->sent = 0;
				}
			}
			c->owed += (uint64_t)reqs * l->blk[c->use_close]->resp_len;
			u_send(l, fd);
		}
		u_buf_return(l, bid);
	}
	if (!live)
		return;
	if (cqe->res == -ENOBUFS && !(cqe->flags & IORING_CQE_F_MORE))
		u_recv(l, fd);              /* the ring ran dry: the data waits in the socket */
	else if (cqe->res <= 0 && !(c->want_out))
		u_close(l, fd);             /* EOF or error */
	else if (cqe->res <= 0)
		c->closing = 1;             /* close once the send in flight ends */
	else if (!(cqe->flags & IORING_CQE_F_MORE))
		u_recv(l, fd);
}

static void u_on_send(struct loop *l, int fd, int res)
{
	struct conn *c = &l->conns[fd];

	c->want_out = 0;
	if (res < 0) {
		u_close(l, fd);
		return;
	}
	c->owed -= (uint64_t)res;
	c->sent += (uint64_t)res;
	if (c->owed)
		u_send(l, fd);
	else if (c->closing)
		u_close(l, fd);
}

static void u_on_accept(struct loop *l, struct io_uring_cqe *cqe)
{
	int fd = cqe->res, one = 1;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		u_accept(l);
	if (fd < 0)
		return;
	if ((size_t)fd >= g_nconns) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	uint16_t gen = l->conns[fd].gen;
	memset(&l->conns[fd], 0, sizeof(l->conns[fd]));
	l->conns[fd].gen = (uint16_t)(gen + 1);
	u_recv(l, fd);
}

static int u_init(struct loop *l)
{
	struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN };
	int err = io_uring_queue_init_params(4096, &l->ring, &p);

	if (err < 0) {
		memset(&p, 0, sizeof(p));
		if ((err = io_uring_queue_init_params(4096, &l->ring, &p)) < 0)
			return err;
	}
	size_t brlen = U_BUFS * sizeof(struct io_uring_buf);
	if (posix_memalign((void **)&l->br, 4096, brlen) || !(l->bufs = malloc((size_t)U_BUFS * U_BUF_SIZE)))
		return -ENOMEM;
	struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)l->br, .ring_entries = U_BUFS };
	if ((err = io_uring_register_buf_ring(&l->ring, &reg, 0)) < 0)
		return err;
	io_uring_buf_ring_init(l->br);
	for (unsigned i = 0; i < U_BUFS; i++)
		u_buf_return(l, i);
	u_accept(l);
	return 0;
}

static void *run_uring(void *arg)
{
	struct loop *l = arg;
	struct io_uring_cqe *cqe;

	if (u_init(l) < 0) {
		fprintf(stderr, "limit: io_uring setup failed\n");
		exit(1);
	}
	for (;;) {
		if (io_uring_submit_and_wait(&l->ring, 1) < 0 && errno != EINTR)
			continue;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&l->ring, head, cqe) {
			int fd = (int)(uint32_t)cqe->user_data;
			bool live = (cqe->user_data >> 48) != U_ACCEPT &&
				    l->conns[fd].gen == (uint16_t)(cqe->user_data >> 32);
			switch (cqe->user_data >> 48) {
			case U_ACCEPT: u_on_accept(l, cqe); break;
			case U_RECV: u_on_recv(l, fd, live, cqe); break;
			case U_SEND: if (live) u_on_send(l, fd, cqe->res); break;
			default: break;
			}
			n++;
		}
		io_uring_cq_advance(&l->ring, n);
	}
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
	int workers = 1, opt, use_uring = 0;
	void *(*loop_fn)(void *) = run_loop;
	struct sockaddr_in sa;
	struct rlimit rl;
	static struct block blk[2];

	while ((opt = getopt(argc, argv, "l:w:u")) != -1) {
		if (opt == 'l')
			addr = optarg;
		else if (opt == 'u')
			use_uring = 1;
		else if (opt == 'w')
			workers = atoi(optarg) > 0 ? atoi(optarg) : 1;
		else {
			fprintf(stderr, "usage: %s -l ADDR:PORT [-w THREADS] [-u]\n", argv[0]);
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

	if (use_uring)
		loop_fn = run_uring;
	for (int i = 1; i < workers; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, loop_fn, &loops[i]) != 0) {
			fprintf(stderr, "limit: cannot start thread %d\n", i);
			return 1;
		}
	}
	loop_fn(&loops[0]);
	return 1;
}
