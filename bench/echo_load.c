/*
 * echo_load: load generator for echo servers (`make bench`, scenarios E1/E2).
 *
 * Opens CONNS connections from one epoll thread; each keeps DEPTH messages of SIZE bytes in
 * flight. A connection's bytes form one stream whose byte k is pattern(conn, k); the reply stream
 * must equal it byte for byte, so a lost, duplicated or reordered byte is an error (the
 * connection is then closed and counted). A round trip is one message echoed in full; its latency
 * runs from the moment the message was queued for sending to the moment its last byte returned.
 *
 * Usage: echo_load -c CONNS -d DEPTH -s SIZE -t SECONDS ADDR:PORT
 * Prints one JSON line: {"round_trips":N,"rps":R,"errors":E,"p50_us":..,"p99_us":..,"conns":C}
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define HIST_US 100000          /* 1 us buckets up to 100 ms, then one overflow bucket */

struct conn {
	int fd;
	unsigned id;
	uint64_t sent, recvd;   /* stream offsets */
	uint64_t queued;        /* bytes queued for sending (messages * size) */
	uint64_t *t_sent;       /* queue time of message i % depth, in ns */
	int connected;
};

struct load {
	int ep;
	unsigned depth;
	size_t size;
	struct conn *c;
	uint64_t round_trips, errors;
	uint64_t *hist;
	int measuring;
	char *buf;
};

static inline uint8_t pattern(unsigned id, uint64_t k)
{
	return (uint8_t)((k * 131u) ^ (k >> 9) ^ (id * 7u));
}

static void conn_fail(struct load *L, struct conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(L->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	L->errors++;
}

static void queue_msg(struct load *L, struct conn *c)
{
	uint64_t msg = c->queued / L->size;
	c->t_sent[msg % L->depth] = now_ns();
	c->queued += L->size;
}

/* Sends queued bytes; registers EPOLLOUT interest when the socket is full. */
static void pump_send(struct load *L, struct conn *c)
{
	const size_t cap = 64 * 1024;
	uint32_t events = EPOLLIN;

	while (c->sent < c->queued) {
		size_t n = c->queued - c->sent;
		if (n > cap)
			n = cap;
		for (size_t i = 0; i < n; i++)
			L->buf[i] = (char)pattern(c->id, c->sent + i);
		ssize_t w = send(c->fd, L->buf, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			events |= EPOLLOUT;
			break;
		}
		if (w < 0) {
			conn_fail(L, c);
			return;
		}
		c->sent += (uint64_t)w;
	}
	struct epoll_event ev = { .events = events, .data.ptr = c };
	epoll_ctl(L->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void record(struct load *L, uint64_t ns)
{
	uint64_t us = ns / 1000;
	L->hist[us < HIST_US ? us : HIST_US]++;
}

static void on_readable(struct load *L, struct conn *c)
{
	for (;;) {
		ssize_t r = recv(c->fd, L->buf, 64 * 1024, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0 || c->recvd + (uint64_t)r > c->sent) {
			conn_fail(L, c);      /* closed, failed, or more bytes than we sent */
			return;
		}
		for (ssize_t i = 0; i < r; i++) {
			if ((uint8_t)L->buf[i] != pattern(c->id, c->recvd + (uint64_t)i)) {
				conn_fail(L, c);
				return;
			}
		}
		uint64_t before = c->recvd / L->size;
		c->recvd += (uint64_t)r;
		uint64_t done = c->recvd / L->size;
		uint64_t t = now_ns();
		for (uint64_t m = before; m < done; m++) {
			if (L->measuring) {
				L->round_trips++;
				record(L, t - c->t_sent[m % L->depth]);
			}
			queue_msg(L, c);
		}
	}
	pump_send(L, c);
}

static int start_conn(struct load *L, struct conn *c, const struct sockaddr_in *sa)
{
	int one = 1;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 && errno != EINPROGRESS) {
		int err = -errno;
		close(c->fd);
		c->fd = -1;
		return err;
	}
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	epoll_ctl(L->ep, EPOLL_CTL_ADD, c->fd, &ev);
	return 0;
}

static void on_event(struct load *L, struct conn *c, uint32_t events)
{
	if (c->fd < 0)
		return;
	if (!c->connected) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			conn_fail(L, c);
			return;
		}
		c->connected = 1;
		for (unsigned i = 0; i < L->depth; i++)
			queue_msg(L, c);
		pump_send(L, c);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		on_readable(L, c);
	else if (events & EPOLLOUT)
		pump_send(L, c);
}

static uint64_t percentile(const uint64_t *hist, uint64_t total, double p)
{
	uint64_t want = (uint64_t)(p * (double)total), seen = 0;

	if (!total)
		return 0;
	for (unsigned i = 0; i <= HIST_US; i++) {
		seen += hist[i];
		if (seen > want)
			return i;
	}
	return HIST_US;
}

static void run(struct load *L, unsigned nconn, double secs)
{
	struct epoll_event evs[512];
	uint64_t t0 = now_ns(), warm = t0 + 200000000u;   /* 200 ms to connect and warm up */
	uint64_t start = 0, end = 0;

	for (;;) {
		uint64_t t = now_ns();
		if (!L->measuring && t >= warm) {
			L->measuring = 1;
			start = t;
			end = t + (uint64_t)(secs * 1e9);
		}
		if (L->measuring && t >= end)
			break;
		int n = epoll_wait(L->ep, evs, 512, 10);
		for (int i = 0; i < n; i++)
			on_event(L, evs[i].data.ptr, evs[i].events);
	}
	double dur = (double)(now_ns() - start) / 1e9;
	uint64_t alive = 0;
	for (unsigned i = 0; i < nconn; i++)
		alive += L->c[i].fd >= 0 && L->c[i].connected;
	printf("{\"round_trips\":%llu,\"rps\":%.1f,\"errors\":%llu,\"p50_us\":%llu,"
	       "\"p99_us\":%llu,\"conns\":%llu,\"duration_s\":%.3f}\n",
	       (unsigned long long)L->round_trips, (double)L->round_trips / dur,
	       (unsigned long long)L->errors,
	       (unsigned long long)percentile(L->hist, L->round_trips, 0.50),
	       (unsigned long long)percentile(L->hist, L->round_trips, 0.99),
	       (unsigned long long)alive, dur);
}

int main(int argc, char **argv)
{
	unsigned nconn = 100;
	double secs = 5;
	struct load L = { .depth = 1, .size = 64 };
	struct sockaddr_in sa;
	struct rlimit rl;
	int opt;

	while ((opt = getopt(argc, argv, "c:d:s:t:")) != -1) {
		switch (opt) {
		case 'c': nconn = (unsigned)atoi(optarg); break;
		case 'd': L.depth = (unsigned)atoi(optarg); break;
		case 's': L.size = (size_t)atol(optarg); break;
		case 't': secs = atof(optarg); break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || !nconn || !L.depth || !L.size || secs <= 0 ||
	    parse_addr(argv[optind], &sa) < 0)
		goto usage;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);

	L.ep = epoll_create1(EPOLL_CLOEXEC);
	L.c = calloc(nconn, sizeof(*L.c));
	L.hist = calloc(HIST_US + 1, sizeof(*L.hist));
	L.buf = malloc(64 * 1024);
	if (L.ep < 0 || !L.c || !L.hist || !L.buf)
		return 1;
	for (unsigned i = 0; i < nconn; i++) {
		L.c[i].id = i;
		L.c[i].t_sent = calloc(L.depth, sizeof(uint64_t));
		if (!L.c[i].t_sent)
			return 1;
		int err = start_conn(&L, &L.c[i], &sa);
		if (err < 0) {
			fprintf(stderr, "echo_load: connect: %s\n", strerror(-err));
			L.errors++;
		}
	}
	run(&L, nconn, secs);
	return 0;
usage:
	fprintf(stderr, "usage: %s -c CONNS -d DEPTH -s SIZE -t SECONDS ADDR:PORT\n", argv[0]);
	return 2;
}
