/*
 * bigread: large-file download client for `make bench` scenario S6b.
 *
 * wrk reads in small pieces, so on a 100 MiB file it measures itself as much as the server. This
 * client keeps CONNS keep-alive connections (one epoll thread) each fetching PATH again and again,
 * and reads with 1 MiB recv calls into one buffer it never looks at: per response it only parses
 * the status line and Content-Length of the head, then counts body bytes.
 *
 * Usage: bigread -c CONNS -t SECONDS [-p PATH] [-e EXPECTED_LEN] ADDR:PORT
 * Prints one JSON line:
 *   {"requests":N,"bytes":B,"mbps":M,"errors":E,"non2xx":X,"p50_us":..,"p99_us":..}
 * mbps is 10^6 bytes per second of body. Bytes of a response still in flight when the time is
 * up are counted (the measure is bytes moved, not files completed).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define RECV_SIZE (1 << 20)
#define HEAD_MAX 8192
#define MAX_SAMPLES 1000000

struct conn {
	int fd;
	int connected;
	char head[HEAD_MAX];
	size_t head_len;
	int in_body;
	uint64_t body_left;
	uint64_t t_start;
};

struct client {
	int ep;
	struct sockaddr_in sa;
	char req[512];
	size_t req_len;
	long long expect_len;
	char *buf;
	uint64_t requests, bytes, errors, non2xx;
	uint64_t *lat;
	size_t nlat;
};

static int conn_open(struct client *C, struct conn *c)
{
	int one = 1;
	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&C->sa, sizeof(C->sa)) < 0 && errno != EINPROGRESS) {
		int err = -errno;
		close(c->fd);
		c->fd = -1;
		return err;
	}
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	epoll_ctl(C->ep, EPOLL_CTL_ADD, c->fd, &ev);
	return 0;
}

/* An error closes the connection and opens a new one, so one failure does not end the run. */
static void conn_fail(struct client *C, struct conn *c)
{
	C->errors++;
	if (c->fd >= 0)
		close(c->fd);
	if (conn_open(C, c) < 0)
		c->fd = -1;
}

static int send_request(struct client *C, struct conn *c)
{
	c->t_start = now_ns();
	c->head_len = 0;
	c->in_body = 0;
	/* the request is a few dozen bytes: a fresh socket buffer always takes it whole */
	ssize_t w = send(c->fd, C->req, C->req_len, MSG_NOSIGNAL);
	return w == (ssize_t)C->req_len ? 0 : -1;
}

/* Parses a complete head: status and Content-Length. Returns -1 when unusable. */
static int parse_head(struct client *C, struct conn *c)
{
	c->head[c->head_len] = 0;
	if (strncmp(c->head, "HTTP/1.", 7) != 0 || c->head_len < 12)
		return -1;
	int status = atoi(c->head + 9);
	if (status < 200 || status > 299)
		C->non2xx++;
	char *p = strcasestr(c->head, "\r\ncontent-length:");
	if (!p)
		return -1;
	long long len = atoll(p + 17);
	if (len < 0 || (C->expect_len >= 0 && status == 200 && len != C->expect_len))
		return -1;
	c->body_left = (uint64_t)len;
	c->in_body = 1;
	return 0;
}

static void response_done(struct client *C, struct conn *c)
{
	C->requests++;
	if (C->nlat < MAX_SAMPLES)
		C->lat[C->nlat++] = (now_ns() - c->t_start) / 1000;
	if (send_request(C, c) < 0)
		conn_fail(C, c);
}

/* Consumes n received bytes at buf: head bytes go to c->head, body bytes are only counted. */
static int consume(struct client *C, struct conn *c, const char *buf, size_t n)
{
	while (n) {
		if (!c->in_body) {
			size_t room = HEAD_MAX - 1 - c->head_len, take = n < room ? n : room;
			memcpy(c->head + c->head_len, buf, take);
			size_t old = c->head_len;
			c->head_len += take;
			c->head[c->head_len] = 0;
			size_t from = old >= 3 ? old - 3 : 0;
			char *end = memmem(c->head + from, c->head_len - from, "\r\n\r\n", 4);
			if (!end) {
				if (c->head_len >= HEAD_MAX - 1)
					return -1;
				return 0;
			}
			size_t used = (size_t)(end + 4 - c->head) - old;
			c->head_len = (size_t)(end + 4 - c->head);
			if (parse_head(C, c) < 0)
				return -1;
			buf += used;
			n -= used;
			if (c->body_left == 0)
				response_done(C, c);
			continue;
		}
		size_t take = n < c->body_left ? n : (size_t)c->body_left;
		C->bytes += take;
		c->body_left -= take;
		buf += take;
		n -= take;
		if (c->body_left == 0) {
			if (n)
				return -1;    /* we never pipeline: extra bytes are a protocol error */
			response_done(C, c);
		}
	}
	return 0;
}

static void on_event(struct client *C, struct conn *c)
{
	if (c->fd < 0)
		return;
	if (!c->connected) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (err || epoll_ctl(C->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0 || send_request(C, c) < 0) {
			conn_fail(C, c);
			return;
		}
		c->connected = 1;
		return;
	}
	ssize_t r = recv(c->fd, C->buf, RECV_SIZE, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0 || consume(C, c, C->buf, (size_t)r) < 0)
		conn_fail(C, c);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)ceil(p * (double)n) - 1;
	return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
	unsigned nconn = 8;
	double secs = 5;
	const char *path = "/100m.bin";
	struct client C = { .expect_len = -1 };
	int opt;

	while ((opt = getopt(argc, argv, "c:t:p:e:")) != -1) {
		switch (opt) {
		case 'c': nconn = (unsigned)atoi(optarg); break;
		case 't': secs = atof(optarg); break;
		case 'p': path = optarg; break;
		case 'e': C.expect_len = atoll(optarg); break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || !nconn || secs <= 0 || parse_addr(argv[optind], &C.sa) < 0)
		goto usage;
	C.req_len = (size_t)snprintf(C.req, sizeof(C.req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
				     path, argv[optind]);
	C.ep = epoll_create1(EPOLL_CLOEXEC);
	C.buf = malloc(RECV_SIZE);
	C.lat = malloc(MAX_SAMPLES * sizeof(*C.lat));
	struct conn *conns = calloc(nconn, sizeof(*conns));
	if (C.ep < 0 || !C.buf || !C.lat || !conns || C.req_len >= sizeof(C.req))
		return 1;
	for (unsigned i = 0; i < nconn; i++)
		if (conn_open(&C, &conns[i]) < 0)
			C.errors++;

	struct epoll_event evs[64];
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9);
	while (now_ns() < end) {
		int n = epoll_wait(C.ep, evs, 64, 10);
		for (int i = 0; i < n; i++)
			on_event(&C, evs[i].data.ptr);
	}
	double dur = (double)(now_ns() - t0) / 1e9;
	qsort(C.lat, C.nlat, sizeof(*C.lat), cmp_u64);
	printf("{\"requests\":%llu,\"bytes\":%llu,\"mbps\":%.1f,\"errors\":%llu,\"non2xx\":%llu,"
	       "\"p50_us\":%llu,\"p99_us\":%llu,\"duration_s\":%.3f}\n",
	       (unsigned long long)C.requests, (unsigned long long)C.bytes,
	       (double)C.bytes / dur / 1e6, (unsigned long long)C.errors,
	       (unsigned long long)C.non2xx, (unsigned long long)pct(C.lat, C.nlat, 0.50),
	       (unsigned long long)pct(C.lat, C.nlat, 0.99), dur);
	return 0;
usage:
	fprintf(stderr, "usage: %s -c CONNS -t SECONDS [-p PATH] [-e LEN] ADDR:PORT\n", argv[0]);
	return 2;
}
