/*
 * The platform layer on Windows (see plat.h), Winsock 2 through mingw-w64. Implemented in
 * win/plat.c. Sockets are SOCKET handles kept in ints (Windows guarantees that handles fit in
 * 32 bits); files are C runtime descriptors (_open), and _get_osfhandle gives their HANDLE.
 */
#ifndef PT_ENGINE_PLAT_WIN_H
#define PT_ENGINE_PLAT_WIN_H

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

/* One listening socket that every worker's AcceptEx pool draws from (no SO_REUSEPORT). */
#define PT_PLAT_REUSEPORT 0

/* The engine's documented errors that the C runtime of Windows does not define. */
#ifndef ESHUTDOWN
#define ESHUTDOWN 4001
#endif
#ifndef EPROTO
#define EPROTO 4002
#endif

/* Windows has no MSG_MORE or SIGPIPE: segments are not held back (TCP_NODELAY is set), and
 * a send to a closed peer fails with WSAECONNRESET/WSAECONNABORTED instead of a signal. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif
#ifndef MSG_MORE
#define MSG_MORE 0
#endif

/* The gather list of a kernel send (struct pt_txop): the IOCP backend turns it into WSABUFs. */
struct iovec {
	void *iov_base;
	size_t iov_len;
};

struct msghdr {
	struct iovec *msg_iov;
	size_t msg_iovlen;
};

int pt__err_wsa(int wsa);          /* a Winsock error (WSAGetLastError) as -errno */
int pt__err_win(unsigned long e);  /* a Win32 error (GetLastError) as -errno */
int pt__wsa_init(void);            /* WSAStartup, once per process: 0 or -errno */

int pt__sock_err(void);
void pt__sock_close(int fd);
void pt__fd_close(int fd);
int pt__fd_spare(void);
int pt__sock_stream(int family);
int pt__sock_nonblock(int fd);
int pt__sock_opt(int fd, int level, int name, const void *v, socklen_t len);
int pt__sock_defer_accept(int fd, int sec);
int pt__sock_reuseport(int fd);
int pt__sock_bind_listen(int fd, const struct sockaddr *sa, socklen_t len, int backlog);
int pt__sock_name(int fd, struct sockaddr_storage *ss, socklen_t *len);
int pt__sock_peer(int fd, struct sockaddr_storage *ss, socklen_t *len);
void pt__sock_linger0(int fd);
void pt__sock_shutdown_wr(int fd);
bool pt__sock_has_input(int fd);
unsigned pt__cpu_count(void);
int pt__sock_accept(int fd);
int pt__sock_outq(int fd);          /* -ENOTSUP: no such query */
int pt__sock_pending_err(int fd);
int pt__migrate_req(void);         /* -1: Windows has no such setting */
bool pt__addr_listened(const struct sockaddr *sa, socklen_t len);
void *pt__mem_map(size_t n);
void pt__mem_unmap(void *p, size_t n);
void pt__mem_trim(void);
unsigned long pt__fd_limit(void);

#endif
