/*
 * The platform layer on Windows (plat.h, plat_win.h): Winsock 2 calls behind the engine's
 * names, and Windows errors mapped to the -errno values the engine documents.
 */
#include "engine/plat.h"
#include <fcntl.h>
#include <io.h>
#include <malloc.h>

static const struct { int wsa; int err; } wsa_map[] = {
	{ WSAEWOULDBLOCK, EAGAIN },      { WSAEINTR, EINTR },
	{ WSAEINPROGRESS, EINPROGRESS }, { WSAEALREADY, EALREADY },
	{ WSAENOTSOCK, EBADF },          { WSAEBADF, EBADF },
	{ WSAEINVAL, EINVAL },           { WSAEFAULT, EFAULT },
	{ WSAEMFILE, EMFILE },           { WSAENOBUFS, ENOBUFS },
	{ WSAEADDRINUSE, EADDRINUSE },   { WSAEADDRNOTAVAIL, EADDRNOTAVAIL },
	{ WSAEAFNOSUPPORT, EAFNOSUPPORT }, { WSAEACCES, EACCES },
	{ WSAECONNRESET, ECONNRESET },   { WSAECONNABORTED, ECONNABORTED },
	{ WSAENETRESET, ECONNRESET },    { WSAESHUTDOWN, EPIPE },
	{ WSAENOTCONN, ENOTCONN },       { WSAETIMEDOUT, ETIMEDOUT },
	{ WSAECONNREFUSED, ECONNREFUSED }, { WSAEOPNOTSUPP, ENOTSUP },
	{ WSAEMSGSIZE, EMSGSIZE },       { WSA_OPERATION_ABORTED, ECANCELED },
	{ WSA_NOT_ENOUGH_MEMORY, ENOMEM }, { WSAENETDOWN, ENETDOWN },
	{ WSAEHOSTUNREACH, EHOSTUNREACH }, { WSAENETUNREACH, ENETUNREACH },
	{ WSANOTINITIALISED, EINVAL },
};

int pt__err_wsa(int wsa)
{
	for (size_t i = 0; i < sizeof wsa_map / sizeof wsa_map[0]; i++)
		if (wsa_map[i].wsa == wsa)
			return -wsa_map[i].err;
	return -EIO;
}

int pt__err_win(unsigned long e)
{
	switch (e) {
	case ERROR_OPERATION_ABORTED: return -ECANCELED;
	case ERROR_NETNAME_DELETED: return -ECONNRESET;     /* the peer reset the connection */
	case ERROR_CONNECTION_ABORTED: return -ECONNABORTED;
	case ERROR_BROKEN_PIPE: return -EPIPE;
	case ERROR_HANDLE_EOF: return -EIO;
	case ERROR_NOT_ENOUGH_MEMORY: case ERROR_OUTOFMEMORY: return -ENOMEM;
	case ERROR_INSUFFICIENT_BUFFER: return -ENOBUFS;
	case ERROR_NO_SYSTEM_RESOURCES: return -ENOBUFS;    /* the seed's non-paged pool limit */
	case ERROR_INVALID_HANDLE: return -EBADF;
	case ERROR_INVALID_PARAMETER: return -EINVAL;
	case ERROR_TOO_MANY_OPEN_FILES: return -EMFILE;
	/* what an overlapped connect (ConnectEx) ends with, as NTSTATUS -> Win32 */
	case ERROR_CONNECTION_REFUSED: return -ECONNREFUSED;
	case ERROR_NETWORK_UNREACHABLE: return -ENETUNREACH;
	case ERROR_HOST_UNREACHABLE: case ERROR_PROTOCOL_UNREACHABLE:
	case ERROR_PORT_UNREACHABLE: return -EHOSTUNREACH;
	case ERROR_SEM_TIMEOUT: return -ETIMEDOUT;
	default: return pt__err_wsa((int)e);                /* WSA codes are Win32 codes too */
	}
}

static INIT_ONCE wsa_once = INIT_ONCE_STATIC_INIT;
static int wsa_err;

static BOOL CALLBACK wsa_start(PINIT_ONCE once, PVOID p, PVOID *ctx)
{
	WSADATA d;
	int rc = WSAStartup(MAKEWORD(2, 2), &d);

	wsa_err = rc ? pt__err_wsa(rc) : 0;
	return TRUE;
}

int pt__wsa_init(void)
{
	InitOnceExecuteOnce(&wsa_once, wsa_start, NULL, NULL);
	return wsa_err;
}

int pt__sock_err(void)
{
	return pt__err_wsa(WSAGetLastError());
}

void pt__sock_close(int fd)
{
	closesocket((SOCKET)(intptr_t)fd);
}

void pt__fd_close(int fd)
{
	_close(fd);
}

int pt__fd_spare(void)
{
	return _open("NUL", _O_RDONLY | _O_NOINHERIT);
}

/* Overlapped (IOCP-capable), not inherited by child processes, non-blocking. */
int pt__sock_stream(int family)
{
	int err = pt__wsa_init();

	if (err < 0)
		return err;
	SOCKET s = WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
			      WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
	if (s == INVALID_SOCKET)
		return pt__sock_err();
	int fd = (int)(intptr_t)s;
	if ((err = pt__sock_nonblock(fd)) < 0) {
		closesocket(s);
		return err;
	}
	return fd;
}

int pt__sock_nonblock(int fd)
{
	u_long one = 1;

	return ioctlsocket((SOCKET)(intptr_t)fd, FIONBIO, &one) ? pt__sock_err() : 0;
}

int pt__sock_opt(int fd, int level, int name, const void *v, socklen_t len)
{
	return setsockopt((SOCKET)(intptr_t)fd, level, name, v, len) ? pt__sock_err() : 0;
}

/* No TCP_DEFER_ACCEPT: the IOCP backend's AcceptEx with a receive buffer completes only when
 * the first bytes have arrived, which is the same thing (and it reaps clients that never send
 * after defer_accept_sec or the silent-connection timeout through SO_CONNECT_TIME). */
int pt__sock_defer_accept(int fd, int sec)
{
	return 0;
}

int pt__sock_reuseport(int fd)
{
	return -ENOTSUP;    /* never asked for: PT_PLAT_REUSEPORT is 0 */
}

int pt__sock_bind_listen(int fd, const struct sockaddr *sa, socklen_t len, int backlog)
{
	SOCKET s = (SOCKET)(intptr_t)fd;

	/* SO_EXCLUSIVEADDRUSE: no other socket may bind the port over ours (Windows lets
	 * SO_REUSEADDR sockets steal a bound port; the engine sets SO_REUSEADDR for Linux's
	 * TIME_WAIT meaning, which Windows has by default). */
	BOOL t = TRUE, f = FALSE;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, (const char *)&f, sizeof f);
	setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&t, sizeof t);
	if (bind(s, sa, len) || listen(s, backlog))
		return pt__sock_err();
	return 0;
}

int pt__sock_name(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
	return getsockname((SOCKET)(intptr_t)fd, (struct sockaddr *)ss, len) ? pt__sock_err() : 0;
}

int pt__sock_peer(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
	return getpeername((SOCKET)(intptr_t)fd, (struct sockaddr *)ss, len) ? pt__sock_err() : 0;
}

void pt__sock_linger0(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt((SOCKET)(intptr_t)fd, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg);
}

void pt__sock_shutdown_wr(int fd)
{
	shutdown((SOCKET)(intptr_t)fd, SD_SEND);
}

bool pt__sock_has_input(int fd)
{
	u_long n = 0;

	return ioctlsocket((SOCKET)(intptr_t)fd, FIONREAD, &n) == 0 && n > 0;
}

unsigned pt__cpu_count(void)
{
	DWORD_PTR proc, sys;

	if (GetProcessAffinityMask(GetCurrentProcess(), &proc, &sys) && proc)
		return (unsigned)__builtin_popcountll((unsigned long long)proc);
	SYSTEM_INFO si;
	GetSystemInfo(&si);
	return si.dwNumberOfProcessors ? si.dwNumberOfProcessors : 1;
}

/* Windows has no per-process socket limit to read (sockets are bounded by memory: the
 * governor then sees WSAENOBUFS): the engine's default connection limit applies. */
unsigned long pt__fd_limit(void)
{
	return 0;
}

int pt__sock_accept(int fd)
{
	SOCKET s = accept((SOCKET)(intptr_t)fd, NULL, NULL);

	if (s == INVALID_SOCKET)
		return pt__sock_err();
	int c = (int)(intptr_t)s, err = pt__sock_nonblock(c);
	if (err < 0) {
		closesocket(s);
		return err;
	}
	return c;
}

int pt__migrate_req(void)
{
	return -1;
}

/* Binding without SO_REUSEADDR fails with WSAEADDRINUSE while a socket listens there. */
bool pt__addr_listened(const struct sockaddr *sa, socklen_t len)
{
	SOCKET s = socket(sa->sa_family, SOCK_STREAM, IPPROTO_TCP);
	bool taken;

	if (s == INVALID_SOCKET)
		return false;
	taken = bind(s, sa, len) == SOCKET_ERROR && WSAGetLastError() == WSAEADDRINUSE;
	closesocket(s);
	return taken;
}

void *pt__mem_map(size_t n)
{
	return VirtualAlloc(NULL, n, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
}

void pt__mem_unmap(void *p, size_t n)
{
	(void)n;
	VirtualFree(p, 0, MEM_RELEASE);
}

void pt__mem_trim(void)
{
	_heapmin();
}

int pt__sock_pending_err(int fd)
{
	int e = 0, l = sizeof e;

	if (getsockopt((SOCKET)(intptr_t)fd, SOL_SOCKET, SO_ERROR, (char *)&e, &l) != 0)
		return pt__sock_err();
	return e ? pt__err_wsa(e) : 0;
}

int pt__sock_outq(int fd)
{
	(void)fd;
	return -ENOTSUP;
}
