/*
 * Opening beneath the docroot on Windows (see path.h): Windows has no openat2, so the path is
 * walked one component at a time, each opened with NtCreateFile relative to its parent's
 * handle (ObjectAttributes.RootDirectory: Windows' openat) with FILE_OPEN_REPARSE_POINT
 * (Windows' O_NOFOLLOW). The same guarantee as on Linux: nothing outside the docroot is
 * ever opened.
 *
 *  - Each opened component's final path (GetFinalPathNameByHandleW: links resolved, the
 *    name as stored) must be its parent's followed by a separator and the name asked for. One that resolved elsewhere is a link: beneath the docroot it is
 *    refused without --follow-symlinks (-ELOOP, 404) and followed with it; outside the
 *    docroot it is always refused (-EXDEV, 404). This also catches links the system resolves
 *    behind the walk's back: Wine shows a Unix symbolic link as the file it points to, with
 *    no reparse-point attribute.
 *  - A reparse point (symbolic link, junction, mount point) is opened as itself
 *    (FILE_OPEN_REPARSE_POINT): refused without --follow-symlinks (-ELOOP); with it, opened
 *    again through the link and held to the rule above.
 *  - Names Windows would read as something other than the file they spell are refused
 *    before any lookup (-ENOENT, 404): a ':' (alternate data streams "a.txt::$DATA", drive
 *    letters "C:"), the characters < > " | ? * and '\' (already 400 in pt_path_normalize),
 *    a trailing '.' or ' ' (Windows strips them: "a.txt." would open "a.txt"), the device
 *    names CON PRN AUX NUL COM0-9 LPT0-9 CONIN$ CONOUT$ with or without an extension, and
 *    "~" followed by a digit (an 8.3 short name such as "GIT~1" aliases ".git", which the
 *    dotfile rule would hide, and rules match the long name).
 *  - Names are matched exactly, as on Linux: Windows finds "A.TXT" for "a.txt", and the final
 *    path shows the stored name, so a name in another case is -ENOENT (404). The server's
 *    rules (headers, redirects, the dotfile rule) match request paths case-sensitively, and
 *    a case alias would slip past them.
 * Only files and directories are opened (GetFileType is FILE_TYPE_DISK): anything else is
 * -EACCES (403), as on Linux; under Wine a Unix FIFO opens at once as a pipe, and is refused.
 */
#include "server/path.h"
#include "server/fault.h"
#include "server/win/wutil.h"

#include <ctype.h>
#include <winternl.h>

#define NAME_UNITS 256               /* UTF-16 units of one component, as NTFS allows 255 */
#define WALK_DEPTH 64

/* The device names, compared case-insensitively with the part before the first '.'. */
static bool reserved(const char *name)
{
	static const char *const dev[] = { "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$" };
	size_t n = strcspn(name, ".");

	while (n && name[n - 1] == ' ')
		n--;
	for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
		if (strlen(dev[i]) == n && !_strnicmp(name, dev[i], n))
			return true;
	/* COM0-9, LPT0-9, and COM/LPT with a superscript 1, 2 or 3 (U+00B9, U+00B2, U+00B3) */
	if ((!_strnicmp(name, "COM", 3) || !_strnicmp(name, "LPT", 3)) &&
	    ((n == 4 && isdigit((unsigned char)name[3])) ||
	     (n == 5 && (unsigned char)name[3] == 0xc2 &&
	      ((unsigned char)name[4] == 0xb9 || (unsigned char)name[4] == 0xb2 ||
	       (unsigned char)name[4] == 0xb3))))
		return true;
	return false;
}

/* True if name (one component) means to Windows exactly what it spells. */
static bool name_ok(const char *name, size_t n)
{
	char c = name[n - 1];

	if (c == '.' || c == ' ')
		return false;
	for (size_t i = 0; i < n; i++) {
		c = name[i];
		if ((unsigned char)c < 0x20 || strchr(":<>\"|?*\\", c))
			return false;
		if (c == '~' && i + 1 < n && isdigit((unsigned char)name[i + 1]))
			return false;
	}
	return !reserved(name);
}

static int ntstatus_err(NTSTATUS s)
{
	return pt_werr(RtlNtStatusToDosError(s));
}

/* The final path of h (UTF-16, NUL-terminated) into out[0..cap): its length, or -errno. */
static int final_path(HANDLE h, wchar_t *out, DWORD cap)
{
	DWORD n = GetFinalPathNameByHandleW(h, out, cap, FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);

	if (n == 0)
		return pt_werr(GetLastError());
	return n >= cap ? -ENAMETOOLONG : (int)n;
}

struct walk {
	HANDLE dir[WALK_DEPTH];          /* dir[0]: the docroot's handle (not ours) */
	unsigned top;
	wchar_t root[PT_WPATH_MAX];      /* the docroot's final path */
	int rootlen;
	wchar_t cur[PT_WPATH_MAX];       /* the current directory's final path */
	int curlen;
	wchar_t path[PT_WPATH_MAX];      /* scratch: a component's final path */
	bool follow;
};

/* Opens wname (len UTF-16 units) in the walk's current directory, the reparse point itself
 * unless through: *h, or -errno. */
static int walk_open(struct walk *w, wchar_t *wname, int len, bool last, bool through,
		     HANDLE *h)
{
	UNICODE_STRING us = { (USHORT)(len * 2), (USHORT)(len * 2), wname };
	OBJECT_ATTRIBUTES oa;
	IO_STATUS_BLOCK io;
	NTSTATUS s;

	InitializeObjectAttributes(&oa, &us, OBJ_CASE_INSENSITIVE, w->dir[w->top], NULL);
	s = NtCreateFile(h, last ? GENERIC_READ | SYNCHRONIZE
			    : FILE_TRAVERSE | FILE_READ_ATTRIBUTES | SYNCHRONIZE,
			 &oa, &io, NULL, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
			 FILE_OPEN, (through ? 0 : FILE_OPEN_REPARSE_POINT) | FILE_SYNCHRONOUS_IO_NONALERT |
			 (last ? 0 : FILE_DIRECTORY_FILE), NULL, 0);
	return NT_SUCCESS(s) ? 0 : ntstatus_err(s);
}

/* Equality of a[0..n) and b[0..n), exact or ignoring case. */
static bool same(const wchar_t *a, const wchar_t *b, int n, bool nocase)
{
	return CompareStringOrdinal(a, n, b, n, nocase) == CSTR_EQUAL;
}

/* h was opened as the component wname (len units) of the current directory: refuses what
 * resolved outside the root; what resolved to the name asked for in another case (-ENOENT:
 * names are matched exactly, as on Linux); and, without follow, what resolved anywhere else
 * (a link). Then the walk's current path is h's. 0 or -errno. */
static int walk_check(struct walk *w, HANDLE h, const wchar_t *wname, int len)
{
	int n = final_path(h, w->path, PT_WPATH_MAX);
	bool here;

	if (n < 0)
		return n;
	if (n <= w->rootlen || w->path[w->rootlen] != L'\\' ||
	    !same(w->path, w->root, w->rootlen, false))
		return -EXDEV;
	here = n == w->curlen + 1 + len && w->path[w->curlen] == L'\\' &&
	       same(w->path, w->cur, w->curlen, false);
	if (here && !same(w->path + w->curlen + 1, wname, len, false))
		return same(w->path + w->curlen + 1, wname, len, true) ? -ENOENT : -ELOOP;
	if (!here && !w->follow)
		return -ELOOP;
	memcpy(w->cur, w->path, (size_t)(n + 1) * sizeof *w->path);
	w->curlen = n;
	return 0;
}

/* Opens and checks one component (UTF-8 name, n bytes): *h, or -errno. */
static int walk_one(struct walk *w, const char *name, size_t n, bool last, HANDLE *h)
{
	wchar_t wname[NAME_UNITS];
	int len = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, (int)n, wname, NAME_UNITS);
	FILE_ATTRIBUTE_TAG_INFO tag;
	int r;

	if (len <= 0)
		return GetLastError() == ERROR_INSUFFICIENT_BUFFER ? -ENAMETOOLONG : -ENOENT;
	if ((r = walk_open(w, wname, len, last, false, h)) < 0)
		return r;
	if (!GetFileInformationByHandleEx(*h, FileAttributeTagInfo, &tag, sizeof tag))
		r = pt_werr(GetLastError());
	else if (tag.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) {
		CloseHandle(*h);
		if (!w->follow)
			return -ELOOP;
		if ((r = walk_open(w, wname, len, last, true, h)) < 0)
			return r;
	}
	if (r == 0)
		r = walk_check(w, *h, wname, len);
	if (r < 0)
		CloseHandle(*h);
	return r;
}

static int walk(struct walk *w, const char *rel, HANDLE *out)
{
	for (;;) {
		const char *end;
		HANDLE h;
		bool last;
		int r;

		while (*rel == '/')
			rel++;
		end = strchrnul(rel, '/');
		last = *end == '\0' || end[strspn(end, "/")] == '\0';
		if (end - rel > NAME_UNITS * 3)
			return -ENAMETOOLONG;
		if ((end - rel == 2 && rel[0] == '.' && rel[1] == '.') ||
		    (end - rel == 1 && rel[0] == '.'))
			return -EXDEV;        /* normalized paths have none */
		if (!name_ok(rel, (size_t)(end - rel)))
			return -ENOENT;
		if ((r = walk_one(w, rel, (size_t)(end - rel), last, &h)) < 0)
			return r;
		if (last) {
			*out = h;
			return 0;
		}
		if (w->top + 1 >= WALK_DEPTH) {
			CloseHandle(h);
			return -ENAMETOOLONG;
		}
		w->dir[++w->top] = h;
		rel = end;
	}
}

/* A handle of its own on the directory h (the docroot itself was asked for), or NULL. */
static HANDLE reopen(HANDLE h)
{
	HANDLE r = ReOpenFile(h, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE |
			      FILE_SHARE_DELETE, FILE_FLAG_BACKUP_SEMANTICS);

	return r == INVALID_HANDLE_VALUE ? NULL : r;
}

int pt_path_open(int rootfd, const char *rel, bool follow_symlinks, int *fd_out,
		 struct stat *st)
{
	struct walk *w;
	struct stat tmp;
	HANDLE h = NULL;
	int r, fd;

	while (*rel == '/')
		rel++;
	if ((r = pt_srv_fault(PT_SRV_FAULT_OPEN)) < 0)   /* test builds: injected open failures */
		return r;
	if (!(w = malloc(sizeof *w)))
		return -ENOMEM;
	w->top = 0;
	w->dir[0] = (HANDLE)_get_osfhandle(rootfd);
	if (w->dir[0] == INVALID_HANDLE_VALUE)
		r = -EBADF;
	else if ((r = w->rootlen = final_path(w->dir[0], w->root, PT_WPATH_MAX)) >= 0) {
		while (w->rootlen && w->root[w->rootlen - 1] == L'\\')
			w->rootlen--;         /* a drive's root ends in '\' */
		memcpy(w->cur, w->root, sizeof w->root);
		w->curlen = w->rootlen;
		w->follow = follow_symlinks;
		if (*rel)
			r = walk(w, rel, &h);
		else
			r = (h = reopen(w->dir[0])) ? 0 : pt_werr(GetLastError());
	}
	while (w->top > 0)
		CloseHandle(w->dir[w->top--]);
	free(w);
	if (r == 0 && GetFileType(h) != FILE_TYPE_DISK) {
		CloseHandle(h);           /* a pipe or a device (Wine: a Unix FIFO is a pipe) */
		r = -EACCES;
	}
	if (r < 0)
		return r;
	if (!st)
		st = &tmp;
	if ((r = pt_wstat_handle(h, st)) < 0 ||
	    (fd = _open_osfhandle((intptr_t)h, _O_RDONLY | _O_BINARY)) < 0) {
		CloseHandle(h);
		return r < 0 ? r : -EMFILE;
	}
	*fd_out = fd;
	return 0;
}

int pt_path_open_dir(const char *dir, bool *cannot_enter)
{
	wchar_t *w = malloc(PT_WPATH_MAX * sizeof *w);
	struct stat st;
	HANDLE h = INVALID_HANDLE_VALUE;
	int r, fd;

	*cannot_enter = false;
	if (!w)
		return -ENOMEM;
	if ((r = pt_wutf16(dir, w, PT_WPATH_MAX)) >= 0) {
		h = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE |
				FILE_SHARE_DELETE, NULL, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
		r = h == INVALID_HANDLE_VALUE ? pt_werr(GetLastError()) : pt_wstat_handle(h, &st);
	}
	free(w);
	if (r == 0 && !S_ISDIR(st.st_mode))
		r = -ENOTDIR;
	if (r == 0 && (fd = _open_osfhandle((intptr_t)h, _O_RDONLY | _O_BINARY)) >= 0)
		return fd;
	if (h != INVALID_HANDLE_VALUE)
		CloseHandle(h);
	return r < 0 ? r : -EMFILE;
}

DIR *pt_path_opendir(int dirfd)
{
	HANDLE h = (HANDLE)_get_osfhandle(dirfd), r;

	if (h == INVALID_HANDLE_VALUE) {
		errno = EBADF;
		return NULL;
	}
	if (!(r = reopen(h))) {
		errno = -pt_werr(GetLastError());
		return NULL;
	}
	return pt_wdir_open(r);
}
