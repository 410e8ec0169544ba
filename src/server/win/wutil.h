/*
 * Helpers shared by the Windows files of the portico program (src/server/win/): UTF-8 names to
 * UTF-16, Win32 errors to -errno, stat from a handle.
 */
#ifndef PT_SERVER_WIN_WUTIL_H
#define PT_SERVER_WIN_WUTIL_H

#include "server/win/posix.h"

#define PT_WPATH_MAX 32768          /* UTF-16 units of the longest path Windows takes */

/* s (UTF-8, NUL-terminated) into out[0..cap) as UTF-16: its length without the NUL, or
 * -EINVAL (not UTF-8) / -ENAMETOOLONG. */
int pt_wutf16(const char *s, wchar_t *out, size_t cap);

/* A Win32 error (GetLastError) as -errno: not found -> -ENOENT, denied -> -EACCES, ... */
int pt_werr(unsigned long e);

/* *st of the open file or directory h: 0 or -errno. */
int pt_wstat_handle(HANDLE h, struct pt_wstat *st);

#endif
