/*
 * Request path safety for the static-file server: turning a request-target path into a file
 * name that can only name something beneath the document root, and opening it so that no
 * symlink or ".." can leave the root.
 *
 * Two layers, both required:
 *  1. pt_path_normalize() is a pure string function. It percent-decodes, refuses anything
 *     ambiguous (NUL, encoded '/' or '\', raw '\', control bytes, invalid or overlong UTF-8)
 *     and removes dot-segments (RFC 3986 5.2.4), refusing a ".." that would climb above "/".
 *  2. pt_path_open() opens the result relative to a directory descriptor of the docroot with
 *     openat2(RESOLVE_BENEATH), so even a symlink planted inside the tree cannot escape
 *     (path_open.c). Windows has no openat2: win/path_open.c walks the path one component
 *     at a time with NtCreateFile relative to the parent's handle, never following a
 *     reparse point, and refuses the names Windows would alias (see there).
 *
 * Policy, chosen here and documented for the server:
 *  - Every rejection by pt_path_normalize is -400: the request is malformed or deliberately
 *    ambiguous. An encoded slash (%2F) or backslash (%5C) is 400, not decoded: decoding would
 *    let a client smuggle segment boundaries past anything that matched the raw path, and no
 *    file name can contain '/' anyway.
 *  - ".." above the root is 400 (not clamped to "/" as browsers do): a client that sends one
 *    is probing, and answering with the root's content would hide the probe.
 *  - A segment that begins with '.' (a "dotfile" such as .git, .env, .htpasswd) is reported
 *    with PT_PATH_DOTFILE; the server answers 404 for it by default, so that the presence of
 *    such files is not revealed. (A server that must serve /.well-known/ (RFC 8615) can test
 *    that prefix itself before applying the rule.)
 */
#ifndef PT_SERVER_PATH_H
#define PT_SERVER_PATH_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* Flags returned by pt_path_normalize (a value >= 0). */
#define PT_PATH_DOTFILE 0x1 /* some segment of the result begins with '.' */
#define PT_PATH_DIR     0x2 /* the result ends with '/' (a directory was asked for) */

/* Normalizes the path part of a request-target (the bytes before '?', still percent-encoded,
 * as the HTTP parser gives it) into out[0..*outlen), NUL-terminated.
 * The result always begins with '/', never contains "//", a "." or ".." segment, a NUL, a
 * control byte or a backslash, and is valid UTF-8. It is never longer than the input, except
 * that an empty input (absolute-form target without a path) gives "/".
 * Rules (RFC 3986 2.1, 5.2.4; RFC 3629 3):
 *  - "%XX" is decoded; a '%' not followed by two hex digits is 400;
 *  - %00, %2F ('/'), %5C ('\') and a raw '\' are 400; so is any byte < 0x20 or 0x7F, raw or
 *    decoded;
 *  - the decoded bytes must be UTF-8 (no overlong forms such as C0 AE or E0 80 AE, no
 *    surrogates, nothing above U+10FFFF, no truncated sequence): else 400;
 *  - empty segments ("//") are dropped, "." segments removed, ".." removes the previous
 *    segment; ".." at the root is 400. Dot-segments are recognised after decoding, so
 *    "%2e%2E" is "..";
 *  - the input must start with '/' (or be empty): else 400.
 * outcap >= len + 2 always suffices; a smaller buffer that turns out too small is -414.
 * Returns PT_PATH_* flags (>= 0), or -400 / -414. Pure: no allocation, any thread. */
int pt_path_normalize(const char *target_path, size_t len, char *out, size_t outcap,
		      size_t *outlen);

/* Opens rel beneath the directory rootfd for reading. rel is normally the output of
 * pt_path_normalize; its leading '/'s are skipped and an empty name means the root itself.
 * Resolution never leaves rootfd: absolute symlinks and ".." that would climb above it fail,
 * and so do all symlinks unless follow_symlinks (then only links that stay beneath the root
 * are followed). /proc-style magic links are never followed. Uses openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS [| RESOLVE_NO_SYMLINKS]); on a kernel without openat2 (ENOSYS) it
 * walks the path one component at a time with O_NOFOLLOW and gives the same guarantees
 * (the walk refuses ".." in rel itself with -EXDEV, which openat2 allows when it stays
 * beneath; normalized paths never contain "..").
 * Only regular files and directories are opened: anything else (FIFO, device, socket) is
 * -EACCES, and a FIFO cannot block the caller (the open uses O_NONBLOCK, cleared afterwards
 * for regular files so that io_uring reads are not refused with EAGAIN).
 * On success *fd_out is an O_RDONLY|O_CLOEXEC descriptor the caller owns and *st (if st is
 * not NULL) its fstat. Returns 0 or -errno; suggested mapping: ENOENT, ENOTDIR, ELOOP (a
 * symlink refused), EXDEV (an escape refused), ENAMETOOLONG -> 404; EACCES -> 403; others
 * -> 500. Thread: any; blocking (it does file-system lookups). */
int pt_path_open(int rootfd, const char *rel, bool follow_symlinks, int *fd_out,
		 struct stat *st);

/* Opens the directory dir (a docroot) for pt_path_open: a descriptor the caller owns, or
 * -errno. It must be readable and searchable: when it opens but cannot be entered,
 * *cannot_enter is set. Thread: any; blocking. */
int pt_path_open_dir(const char *dir, bool *cannot_enter);

/* A new directory stream on the directory dirfd (from pt_path_open: its own position, so
 * listing it twice lists everything twice), to closedir(); or NULL with errno set. */
DIR *pt_path_opendir(int dirfd);

#endif
