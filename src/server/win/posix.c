/*
 * The POSIX interfaces of win/posix.h and win/include/ for the Windows build of the portico
 * program: stat from file handles, pread, random, open_memstream, fnmatch, getrlimit,
 * getrusage, directory streams. Each does what the server needs of its POSIX namesake and
 * says where it differs.
 */
#include "server/win/wutil.h"
#include <dirent.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/resource.h>

/* ---- names and errors -------------------------------------------------------------------- */

int pt_wutf16(const char *s, wchar_t *out, size_t cap)
{
	int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, out, (int)cap);

	return n > 0 ? n - 1 : GetLastError() == ERROR_INSUFFICIENT_BUFFER ? -ENAMETOOLONG : -EINVAL;
}

int pt_werr(unsigned long e)
{
	switch (e) {
	case ERROR_FILE_NOT_FOUND: case ERROR_PATH_NOT_FOUND: case ERROR_INVALID_NAME:
	case ERROR_BAD_PATHNAME: case ERROR_INVALID_DRIVE: case ERROR_BAD_NETPATH:
		return -ENOENT;
	case ERROR_DIRECTORY:
		return -ENOTDIR;
	case ERROR_ACCESS_DENIED: case ERROR_SHARING_VIOLATION: case ERROR_LOCK_VIOLATION:
		return -EACCES;
	case ERROR_FILENAME_EXCED_RANGE:
		return -ENAMETOOLONG;
	case ERROR_NOT_ENOUGH_MEMORY: case ERROR_OUTOFMEMORY:
		return -ENOMEM;
	case ERROR_TOO_MANY_OPEN_FILES:
		return -EMFILE;
	case ERROR_HANDLE_EOF:
		return 0;
	default:
		return -EIO;
	}
}

/* ---- stat -------------------------------------------------------------------------------- */

static struct timespec ts_of(FILETIME ft)
{
	/* 100 ns intervals since 1601-01-01 -> since 1970-01-01 */
	int64_t t = (int64_t)((uint64_t)ft.dwHighDateTime << 32 | ft.dwLowDateTime) -
		    116444736000000000LL;

	return (struct timespec){ .tv_sec = t / 10000000, .tv_nsec = (long)(t % 10000000) * 100 };
}

int pt_wstat_handle(HANDLE h, struct pt_wstat *st)
{
	BY_HANDLE_FILE_INFORMATION fi;

	if (!GetFileInformationByHandle(h, &fi))
		return pt_werr(GetLastError());
	*st = (struct pt_wstat){
		.st_dev = fi.dwVolumeSerialNumber,
		.st_ino = (uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow,
		.st_mode = (fi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY ? _S_IFDIR | 0555 : _S_IFREG | 0444) |
			   (fi.dwFileAttributes & FILE_ATTRIBUTE_READONLY ? 0 : 0200),
		.st_nlink = fi.nNumberOfLinks,
		.st_size = (int64_t)((uint64_t)fi.nFileSizeHigh << 32 | fi.nFileSizeLow),
		.st_atim = ts_of(fi.ftLastAccessTime),
		.st_mtim = ts_of(fi.ftLastWriteTime),
		.st_ctim = ts_of(fi.ftCreationTime),
	};
	return 0;
}

int pt_wfstat(int fd, struct pt_wstat *st)
{
	HANDLE h = (HANDLE)_get_osfhandle(fd);
	int r;

	if (h == INVALID_HANDLE_VALUE) {
		errno = EBADF;
		return -1;
	}
	if ((r = pt_wstat_handle(h, st)) < 0) {
		errno = -r;
		return -1;
	}
	return 0;
}

int pt_wstat(const char *path, struct pt_wstat *st)
{
	wchar_t w[PT_WPATH_MAX];
	HANDLE h;
	int r = pt_wutf16(path, w, PT_WPATH_MAX);

	if (r >= 0) {
		h = CreateFileW(w, FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE |
				FILE_SHARE_DELETE, NULL, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
		r = h == INVALID_HANDLE_VALUE ? pt_werr(GetLastError()) : pt_wstat_handle(h, st);
		if (h != INVALID_HANDLE_VALUE)
			CloseHandle(h);
	}
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return 0;
}

/* ---- open ---------------------------------------------------------------------------------- */

#undef open
int pt_wopen(const char *path, int flags, ...)
{
	wchar_t *w = malloc(PT_WPATH_MAX * sizeof *w);
	int acc = flags & (_O_RDONLY | _O_WRONLY | _O_RDWR), r, fd = -1;
	DWORD access = acc == _O_RDONLY ? GENERIC_READ : acc == _O_WRONLY ? GENERIC_WRITE
		       : GENERIC_READ | GENERIC_WRITE;
	DWORD disp = flags & _O_CREAT ? (flags & _O_EXCL ? CREATE_NEW : flags & _O_TRUNC ?
		     CREATE_ALWAYS : OPEN_ALWAYS) : flags & _O_TRUNC ? TRUNCATE_EXISTING : OPEN_EXISTING;
	SECURITY_ATTRIBUTES sa = { sizeof sa, NULL, !(flags & _O_NOINHERIT) };
	HANDLE h = INVALID_HANDLE_VALUE;

	if (flags & _O_APPEND)
		access = (access & ~(DWORD)GENERIC_WRITE) | FILE_APPEND_DATA | SYNCHRONIZE;
	if (!w)
		r = -ENOMEM;
	else if ((r = pt_wutf16(path, w, PT_WPATH_MAX)) >= 0) {
		h = CreateFileW(w, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
				&sa, disp, FILE_ATTRIBUTE_NORMAL, NULL);
		r = h == INVALID_HANDLE_VALUE ? pt_werr(GetLastError()) : 0;
	}
	free(w);
	if (r == 0 && (fd = _open_osfhandle((intptr_t)h, (flags & (_O_APPEND | _O_RDONLY | _O_WRONLY |
					      _O_RDWR)) | _O_BINARY)) < 0) {
		CloseHandle(h);
		r = -EMFILE;
	}
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return fd;
}

/* ---- reading at an offset, random numbers ------------------------------------------------ */

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	HANDLE h = (HANDLE)_get_osfhandle(fd);
	OVERLAPPED ov = { .Offset = (DWORD)off, .OffsetHigh = (DWORD)((uint64_t)off >> 32) };
	DWORD got = 0;

	if (h == INVALID_HANDLE_VALUE) {
		errno = EBADF;
		return -1;
	}
	if (n > 1u << 30)
		n = 1u << 30;
	/* a handle opened for synchronous I/O reads at ov's offset (its file position moves,
	 * which nothing here uses: every read gives its offset) */
	if (!ReadFile(h, buf, (DWORD)n, &got, &ov) && GetLastError() != ERROR_HANDLE_EOF) {
		errno = -pt_werr(GetLastError());
		return -1;
	}
	return (ssize_t)got;
}

long random(void)
{
	unsigned v = 0;

	rand_s(&v);
	return (long)(v & 0x7fffffff);
}

int asprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(*out = malloc((size_t)n + 1)))
		return -1;
	va_start(ap, fmt);
	vsnprintf(*out, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return n;
}

#undef strftime
size_t pt_wstrftime(char *s, size_t max, const char *fmt, const struct tm *tm)
{
	char f[256], *o = f;

	for (const char *p = fmt; *p && o < f + sizeof f - 8; p++) {
		if (p[0] == '%' && p[1] == 'z') {
			struct tm l = *tm, u = *tm;
			long off = (long)(_mkgmtime(&u) - mktime(&l)) / 60;   /* tm is local time */

			o += sprintf(o, "%c%02ld%02ld", off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
			p++;
		} else if (p[0] == '%' && p[1]) {
			*o++ = *p++;
			*o++ = *p;
		} else
			*o++ = *p;
	}
	*o = '\0';
	return strftime(s, max, f, tm);
}

#undef strerror
char *pt_wstrerror(int e)
{
	static const struct { int e; const char *s; } more[] = {
		{ ENOTSUP, "Operation not supported" }, { EOPNOTSUPP, "Operation not supported" },
		{ ECONNRESET, "Connection reset by peer" }, { ECONNREFUSED, "Connection refused" },
		{ ECONNABORTED, "Connection aborted" }, { EADDRINUSE, "Address already in use" },
		{ EADDRNOTAVAIL, "Cannot assign requested address" }, { ETIMEDOUT, "Timed out" },
		{ ELOOP, "Too many levels of symbolic links" }, { EAFNOSUPPORT, "Address family not supported" },
		{ ENOTCONN, "Transport endpoint is not connected" }, { EWOULDBLOCK, "Resource temporarily unavailable" },
		{ EINPROGRESS, "Operation now in progress" }, { EMSGSIZE, "Message too long" },
		{ ENETUNREACH, "Network is unreachable" }, { EHOSTUNREACH, "No route to host" },
		{ ENOBUFS, "No buffer space available" }, { EOVERFLOW, "Value too large" },
		{ EPROTO, "Protocol error" },
	};

	for (size_t i = 0; i < sizeof more / sizeof *more; i++)
		if (more[i].e == e)
			return (char *)more[i].s;
	return strerror(e);
}

/* ---- open_memstream ------------------------------------------------------------------------ */

#define MEMSTREAMS 64

static struct { FILE *f; char **buf; size_t *len; } ms[MEMSTREAMS];
static pthread_mutex_t ms_lock = PTHREAD_MUTEX_INITIALIZER;

FILE *open_memstream(char **buf, size_t *len)
{
	wchar_t dir[MAX_PATH + 1], name[MAX_PATH + 16];
	HANDLE h;
	FILE *f = NULL;
	int fd, slot = -1;

	pthread_mutex_lock(&ms_lock);
	for (int i = 0; i < MEMSTREAMS && slot < 0; i++)
		if (!ms[i].f)
			slot = i;
	if (slot >= 0)
		ms[slot].f = (FILE *)1;       /* reserved */
	pthread_mutex_unlock(&ms_lock);
	if (slot < 0) {
		errno = EMFILE;
		return NULL;
	}
	if (GetTempPathW(MAX_PATH + 1, dir) && GetTempFileNameW(dir, L"pt", 0, name) &&
	    (h = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
			     FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE, NULL)) !=
		    INVALID_HANDLE_VALUE) {
		if ((fd = _open_osfhandle((intptr_t)h, _O_RDWR | _O_BINARY)) < 0)
			CloseHandle(h);
		else if (!(f = _fdopen(fd, "w+b")))
			_close(fd);
	}
	pthread_mutex_lock(&ms_lock);
	ms[slot].f = f;
	ms[slot].buf = buf;
	ms[slot].len = len;
	pthread_mutex_unlock(&ms_lock);
	if (!f)
		errno = ENOMEM;
	return f;
}

#undef fclose
int pt_wfclose(FILE *f)
{
	char **buf = NULL;
	size_t *len = NULL;
	long n;
	int r = 0;

	pthread_mutex_lock(&ms_lock);
	for (int i = 0; i < MEMSTREAMS; i++)
		if (ms[i].f == f) {
			buf = ms[i].buf;
			len = ms[i].len;
			ms[i].f = NULL;
			break;
		}
	pthread_mutex_unlock(&ms_lock);
	if (buf) {
		*buf = NULL;
		*len = 0;
		if (fflush(f) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
		    !(*buf = malloc((size_t)n + 1)) || fread(*buf, 1, (size_t)n, f) != (size_t)n) {
			free(*buf);
			*buf = NULL;
			r = EOF;
		} else {
			(*buf)[n] = '\0';
			*len = (size_t)n;
		}
	}
	return fclose(f) != 0 ? EOF : r;
}

/* ---- fnmatch ------------------------------------------------------------------------------- */

/* A bracket expression at p (after '['): *matched, and the pattern after ']'; NULL when the
 * bracket is not closed (then '[' is an ordinary character). */
static const char *bracket(const char *p, char c, bool *matched)
{
	bool neg = *p == '!' || *p == '^', m = false;

	if (neg)
		p++;
	for (bool first = true; *p && (first || *p != ']'); first = false) {
		char lo = *p == '\\' && p[1] ? *++p : *p, hi = lo;

		p++;
		if (*p == '-' && p[1] && p[1] != ']') {
			hi = p[1] == '\\' && p[2] ? p[2] : p[1];
			p += p[1] == '\\' && p[2] ? 3 : 2;
		}
		if ((unsigned char)c >= (unsigned char)lo && (unsigned char)c <= (unsigned char)hi)
			m = true;
	}
	if (*p != ']')
		return NULL;
	*matched = m != neg;
	return p + 1;
}

static int fnm(const char *p, const char *s, const char *start, int flags)
{
	for (; *p; p++, s++) {
		bool lead_dot = *s == '.' && (flags & FNM_PERIOD) && s == start;
		const char *q;
		bool m;

		switch (*p) {
		case '?':
			if (!*s || lead_dot)
				return FNM_NOMATCH;
			break;
		case '*':
			if (lead_dot)
				return FNM_NOMATCH;
			while (p[1] == '*')
				p++;
			for (const char *t = s;; t++) {
				if (fnm(p + 1, t, start, flags) == 0)
					return 0;
				if (!*t)
					return FNM_NOMATCH;
			}
		case '[':
			if (!*s || lead_dot)
				return FNM_NOMATCH;
			if ((q = bracket(p + 1, *s, &m))) {
				if (!m)
					return FNM_NOMATCH;
				p = q - 1;
				break;
			}
			if (*s != '[')
				return FNM_NOMATCH;
			break;
		case '\\':
			if (p[1])
				p++;
			/* fall through */
		default:
			if (*p != *s)
				return FNM_NOMATCH;
		}
	}
	return *s ? FNM_NOMATCH : 0;
}

int fnmatch(const char *pattern, const char *string, int flags)
{
	return fnm(pattern, string, string, flags);
}

/* ---- limits and usage ---------------------------------------------------------------------- */

int getrlimit(int what, struct rlimit *rl)
{
	if (what != RLIMIT_NOFILE) {
		errno = EINVAL;
		return -1;
	}
	/* sockets and file handles are only bounded by memory; the C runtime's table is */
	rl->rlim_cur = rl->rlim_max = (rlim_t)_getmaxstdio();
	return 0;
}

int setrlimit(int what, const struct rlimit *rl)
{
	if (what != RLIMIT_NOFILE || _setmaxstdio((int)rl->rlim_cur) < 0) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static struct timeval tv_of(FILETIME ft)
{
	uint64_t t = (uint64_t)ft.dwHighDateTime << 32 | ft.dwLowDateTime;   /* 100 ns */

	return (struct timeval){ .tv_sec = (long)(t / 10000000), .tv_usec = (long)(t % 10000000 / 10) };
}

int getrusage(int who, struct rusage *ru)
{
	FILETIME c, e, k, u;

	if (!GetProcessTimes(GetCurrentProcess(), &c, &e, &k, &u)) {
		errno = EINVAL;
		return -1;
	}
	ru->ru_utime = tv_of(u);
	ru->ru_stime = tv_of(k);
	return 0;
}

/* ---- directory streams --------------------------------------------------------------------- */

struct pt_wdir {
	HANDLE h;
	bool started, done;
	DWORD off;                 /* next entry in buf, or ~0: read more */
	struct dirent de;
	_Alignas(8) unsigned char buf[32768];
};

DIR *pt_wdir_open(void *handle)
{
	DIR *d = calloc(1, sizeof *d);

	if (!d) {
		CloseHandle(handle);
		errno = ENOMEM;
		return NULL;
	}
	d->h = handle;
	d->off = ~(DWORD)0;
	return d;
}

DIR *opendir(const char *path)
{
	wchar_t w[PT_WPATH_MAX];
	HANDLE h;
	int r = pt_wutf16(path, w, PT_WPATH_MAX);

	if (r < 0) {
		errno = -r;
		return NULL;
	}
	h = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
			NULL, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
	if (h == INVALID_HANDLE_VALUE) {
		errno = -pt_werr(GetLastError());
		return NULL;
	}
	return pt_wdir_open(h);
}

struct dirent *readdir(DIR *d)
{
	for (;;) {
		FILE_ID_BOTH_DIR_INFO *e;

		if (d->off == ~(DWORD)0) {
			if (d->done || !GetFileInformationByHandleEx(d->h, d->started ?
					FileIdBothDirectoryInfo : FileIdBothDirectoryRestartInfo,
					d->buf, sizeof d->buf)) {
				d->done = true;
				return NULL;      /* ERROR_NO_MORE_FILES, or an error: the end */
			}
			d->started = true;
			d->off = 0;
		}
		e = (FILE_ID_BOTH_DIR_INFO *)(d->buf + d->off);
		d->off = e->NextEntryOffset ? d->off + e->NextEntryOffset : ~(DWORD)0;
		int n = WideCharToMultiByte(CP_UTF8, 0, e->FileName, (int)(e->FileNameLength / 2),
					    d->de.d_name, sizeof d->de.d_name - 1, NULL, NULL);
		if (n <= 0)
			continue;         /* a name too long for d_name: skipped */
		d->de.d_name[n] = '\0';
		if (!strcmp(d->de.d_name, ".") || !strcmp(d->de.d_name, ".."))
			continue;
		d->de.d_type = e->FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT ? DT_LNK
			       : e->FileAttributes & FILE_ATTRIBUTE_DIRECTORY ? DT_DIR : DT_REG;
		return &d->de;
	}
}

int closedir(DIR *d)
{
	CloseHandle(d->h);
	free(d);
	return 0;
}

/* Every file the program opens is binary (the C runtime's default is text: "\n" -> "\r\n"). */
__attribute__((constructor)) static void binary_mode(void)
{
	_fmode = _O_BINARY;
}
