/*
 * The platform layer on Linux (see plat.h): inline wrappers, no code of their own.
 */
#ifndef PT_ENGINE_PLAT_POSIX_H
#define PT_ENGINE_PLAT_POSIX_H

#include "util/util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* One listening socket per worker (the kernel spreads connections by 4-tuple hash). */
#define PT_PLAT_REUSEPORT 1

/* -errno of the last failed socket call on this thread. */
static inline int pt__sock_err(void)
{
	return -errno;
}

static inline void pt__sock_close(int fd)
{
	close(fd);
}

/* A descriptor that is not a socket (eventfd, the spare descriptor, a file). */
static inline void pt__fd_close(int fd)
{
	close(fd);
}

/* The spare descriptor given up at EMFILE, or -1. */
static inline int pt__fd_spare(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* A TCP socket of the family, non-blocking, close-on-exec; or -errno. */
static inline int pt__sock_stream(int family)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	return fd < 0 ? -errno : fd;
}

static inline int pt__sock_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

static inline int pt__sock_opt(int fd, int level, int name, const void *v, socklen_t len)
{
	return setsockopt(fd, level, name, v, len) < 0 ? -errno : 0;
}

/* TCP_DEFER_ACCEPT: accept only once data arrived (or after sec). */
static inline int pt__sock_defer_accept(int fd, int sec)
{
	return pt__sock_opt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &sec, sizeof sec);
}

static inline int pt__sock_reuseport(int fd)
{
	int one = 1;

	return pt__sock_opt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
}

static inline int pt__sock_bind_listen(int fd, const struct sockaddr *sa, socklen_t len, int backlog)
{
	return bind(fd, sa, len) < 0 || listen(fd, backlog) < 0 ? -errno : 0;
}

static inline int pt__sock_name(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
	return getsockname(fd, (struct sockaddr *)ss, len) < 0 ? -errno : 0;
}

static inline int pt__sock_peer(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
	return getpeername(fd, (struct sockaddr *)ss, len) < 0 ? -errno : 0;
}

/* Abortive close: the next close sends RST. */
static inline void pt__sock_linger0(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

static inline void pt__sock_shutdown_wr(int fd)
{
	shutdown(fd, SHUT_WR);
}

/* Unread input waits on the socket (peek, never blocks). */
static inline bool pt__sock_has_input(int fd)
{
	char b;

	return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Up to len bytes of file fd from off to socket sock, synchronously (sendfile(2)): bytes sent,
 * 0 at the end of the file, or -errno. The Linux backends' send_file. */
static inline ssize_t pt__file_send(int sock, int fd, off_t off, size_t len)
{
	ssize_t n = sendfile(sock, fd, &off, len);

	return n < 0 ? -errno : n;
}

/* Zeroed pages straight from the kernel, given back whole by pt__mem_unmap; NULL when out of
 * memory. */
static inline void *pt__mem_map(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static inline void pt__mem_unmap(void *p, size_t n)
{
	munmap(p, n);
}

/* One connection waiting on listening socket fd, non-blocking: its descriptor, or -errno. */
static inline int pt__sock_accept(int fd)
{
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	return c >= 0 ? c : -errno;
}

/* net.ipv4.tcp_migrate_req (Linux 5.14): 1 when set, 0 when not, -1 when the system has no
 * such setting. */
static inline int pt__migrate_req(void)
{
	char v = 0;
	int fd = open("/proc/sys/net/ipv4/tcp_migrate_req", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	ssize_t n = read(fd, &v, 1);
	close(fd);
	return n == 1 ? v != '0' : -1;
}

/* Whether a socket already listens on sa: binding it without SO_REUSEPORT says so (only a
 * listening socket refuses SO_REUSEADDR). */
static inline bool pt__addr_listened(const struct sockaddr *sa, socklen_t len)
{
	int one = 1, fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool taken;

	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	taken = bind(fd, sa, len) < 0 && errno == EADDRINUSE;
	close(fd);
	return taken;
}

/* The error pending on socket fd (a failed non-blocking connect) as -errno, 0 if none. */
static inline int pt__sock_pending_err(int fd)
{
	int e = 0;
	socklen_t l = sizeof e;

	return getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0 ? -errno : -e;
}

/* Bytes in fd's send buffer not yet acknowledged by the peer, or -errno. */
static inline int pt__sock_outq(int fd)
{
	int n = 0;

	return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : -errno;
}

/* Returns the heap's free pages to the kernel. */
static inline void pt__mem_trim(void)
{
	pt__heap_trim();                   /* util.h: not under ASan */
}

/* CPUs this process may run on. */
static inline unsigned pt__cpu_count(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* The descriptor limit (RLIMIT_NOFILE), or 0 when there is none. */
static inline unsigned long pt__fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		return (unsigned long)rl.rlim_cur;
	return 0;
}

#endif
