/*
 * The portico program on Windows: the few POSIX interfaces src/server/ uses that the C runtime
 * of Windows (mingw-w64 over msvcrt) lacks or does differently, given their POSIX names so that
 * the server's sources build unchanged. The Windows build force-includes this header
 * (-include) before every src/server/ file; src/server/win/include/ holds the POSIX headers
 * that do not exist there (arpa/inet.h, dirent.h, fnmatch.h, ...), each a thin redirection to
 * this one. Implemented in win/posix.c. What has no Windows meaning is not here: the program's
 * operating-system services (signals, privileges, the docroot walk) are behind their own seams
 * (server/sys.h, server/path.h), with Windows twins in win/sys.c and win/path_open.c.
 *
 * Differences a caller sees: descriptors are C runtime descriptors (a docroot or a directory
 * is a directory handle wrapped by _open_osfhandle); struct stat is this file's, filled from
 * GetFileInformationByHandle (st_ino is the file index, st_mtim has 100 ns resolution, st_mode
 * only tells files from directories); every file is opened in binary mode.
 */
#ifndef PT_SERVER_WIN_POSIX_H
#define PT_SERVER_WIN_POSIX_H

#define _CRT_RAND_S                 /* rand_s, for random() */

#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#undef near                        /* <windows.h>'s 16-bit pointer qualifiers */
#undef far

#define O_CLOEXEC _O_NOINHERIT     /* not inherited by child processes */
#define O_NONBLOCK 0               /* no FIFOs to guard against: the walk opens files itself */
#define O_NOCTTY 0

/* struct stat with nanosecond times (st_mtim), as the server reads them */
#undef stat
#undef fstat
struct pt_wstat {
	uint64_t st_dev;           /* volume serial number */
	uint64_t st_ino;           /* file index */
	unsigned st_mode;          /* _S_IFREG or _S_IFDIR, and permission bits */
	unsigned st_nlink;
	int64_t st_size;
	struct timespec st_atim, st_mtim, st_ctim;
};
#define stat pt_wstat
#define fstat pt_wfstat
int pt_wstat(const char *path, struct pt_wstat *st);
int pt_wfstat(int fd, struct pt_wstat *st);

/* open with every sharing mode (FILE_SHARE_READ | WRITE | DELETE, as POSIX files behave): a
 * log can be renamed by a rotation tool while the server writes it, as on Linux; O_APPEND
 * opens for FILE_APPEND_DATA only, so each write lands at the end (atomic append). Binary. */
int pt_wopen(const char *path, int flags, ...);
#define open pt_wopen

ssize_t pread(int fd, void *buf, size_t n, off_t off);
long random(void);
int asprintf(char **out, const char *fmt, ...) __attribute__((format(gnu_printf, 2, 3)));

/* strftime with %z ("+0200"), which msvcrt's gives as a zone name or nothing */
size_t pt_wstrftime(char *s, size_t max, const char *fmt, const struct tm *tm);
#define strftime pt_wstrftime

/* strerror that knows the POSIX values msvcrt's does not (ENOTSUP, ECONNRESET, ...) */
char *pt_wstrerror(int e);
#define strerror pt_wstrerror

/* open_memstream: a FILE on a temporary file deleted on close; fclose (a macro here) copies
 * its content into a malloc'ed buffer and sets *buf and *len, as POSIX's does. */
FILE *open_memstream(char **buf, size_t *len);
int pt_wfclose(FILE *f);
#define fclose pt_wfclose

/* fcntl: only the duplication the server does (a descriptor of its own on an open file) */
#define F_DUPFD_CLOEXEC 1030
static inline int fcntl(int fd, int cmd, int arg)
{
	if (cmd != F_DUPFD_CLOEXEC) {
		errno = EINVAL;
		return -1;
	}
	return _dup(fd);
}

/* sysconf: the page size and the number of processors */
#define _SC_PAGESIZE 30
#define _SC_NPROCESSORS_ONLN 84
static inline long sysconf(int name)
{
	SYSTEM_INFO si;

	GetSystemInfo(&si);
	return name == _SC_PAGESIZE ? (long)si.dwPageSize
	       : name == _SC_NPROCESSORS_ONLN ? (long)si.dwNumberOfProcessors : -1;
}

static inline void *memrchr(const void *s, int c, size_t n)
{
	const unsigned char *p = (const unsigned char *)s + n;

	while (n--)
		if (*--p == (unsigned char)c)
			return (void *)p;
	return NULL;
}

static inline char *strchrnul(const char *s, int c)
{
	while (*s && *s != (char)c)
		s++;
	return (char *)s;
}

#endif
