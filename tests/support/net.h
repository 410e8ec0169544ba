/*
 * Client-side helpers for engine and HTTP tests (cmocka): a monotonic clock, a bounded
 * wait, and blocking loopback sockets whose calls retry EINTR (io_uring task work, such as a
 * probe ring's teardown on the test thread, interrupts socket calls that have timeouts).
 * Include after <cmocka.h>.
 */
#ifndef PT_TEST_NET_H
#define PT_TEST_NET_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls cond every millisecond for at most ms milliseconds. */
#define WAIT_FOR(cond, ms)                                                  \
	do {                                                                \
		uint64_t until_ = now_ms() + (ms);                          \
		while (!(cond) && now_ms() < until_)                        \
			usleep(1000);                                       \
	} while (0)

/* A blocking connection to 127.0.0.1:port with 30 s receive and send timeouts. */
static inline int connect_to(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 30 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_true(fd >= 0);
	/* timeouts after connect: a connect with SO_SNDTIMEO reports EINTR instead of restarting */
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

static inline ssize_t recv_r(int fd, void *buf, size_t n, int flags)
{
	ssize_t k;
	while ((k = recv(fd, buf, n, flags)) < 0 && errno == EINTR)
		;
	return k;
}

static inline void send_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		assert_true(k > 0);
		p = (const char *)p + k;
		n -= (size_t)k;
	}
}

#endif
