/*
 * Opening beneath the docroot on Linux: openat2(RESOLVE_BENEATH), or a component walk with
 * O_NOFOLLOW on kernels without it. See path.h for the guarantees; the Windows twin is
 * win/path_open.c.
 */
#include "server/path.h"
#include "server/fault.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- opening beneath the root ------------------------------------------------------------ */

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
#define WALK_DEPTH 64 /* directories deep, in the fallback walk */
#define WALK_LINKS 40 /* symlinks followed per lookup, as the kernel's MAXSYMLINKS */

/* Checks what fd is and prepares it for the caller. Consumes fd on failure. */
static int open_finish(int fd, int *fd_out, struct stat *st)
{
	struct stat tmp;
	int err;

	if (!st)
		st = &tmp;
	if (fstat(fd, st) < 0)
		goto fail_errno;
	if (S_ISREG(st->st_mode)) {
		/* O_NONBLOCK only guarded the open against FIFOs; io_uring would refuse reads
		 * of an O_NONBLOCK file with EAGAIN instead of waiting for the disk. */
		if (fcntl(fd, F_SETFL, 0) < 0)
			goto fail_errno;
	} else if (!S_ISDIR(st->st_mode)) {
		err = -EACCES;
		goto fail;
	}
	*fd_out = fd;
	return 0;
fail_errno:
	err = -errno;
fail:
	close(fd);
	return err;
}

struct walk {
	int dir[WALK_DEPTH]; /* dir[0] is the root (not ours); the rest are O_PATH fds */
	unsigned top;
	unsigned links;
	bool follow;
	char buf[2][PATH_MAX];
	unsigned cur;        /* which buf holds the rest of the path after a link */
};

static void walk_close(struct walk *w)
{
	while (w->top > 0)
		close(w->dir[w->top--]);
}

/* True if rel has a ".." component (the walk only follows ".." found in links). */
static bool has_dotdot(const char *p)
{
	for (;;) {
		while (*p == '/')
			p++;
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0'))
			return true;
		p = strchrnul(p, '/');
		if (!*p)
			return false;
	}
}

/* name in the current directory is (maybe) a symlink: put its target in front of rest.
 * *rest is updated. 0, or -errno (openerr when name is not a link after all). */
static int walk_link(struct walk *w, const char *name, const char **rest, int openerr)
{
	char *nb = w->buf[w->cur ^ 1];
	size_t restlen = strlen(*rest);
	ssize_t n;

	n = readlinkat(w->dir[w->top], name, nb, PATH_MAX);
	if (n < 0)
		return errno == EINVAL ? openerr : -errno;
	if (!w->follow)
		return -ELOOP;
	if (++w->links > WALK_LINKS)
		return -ELOOP;
	if (n == 0 || nb[0] == '/')
		return -EXDEV;            /* absolute links leave the root by definition */
	if ((size_t)n + restlen + 1 > PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(nb + n, *rest, restlen + 1); /* rest is "" or starts with '/' */
	w->cur ^= 1;
	*rest = nb;
	return 0;
}

/* One step of the walk: component name (NUL-terminated) in the current directory. *fd is set
 * when it was the last component. 0 or -errno. */
static int walk_step(struct walk *w, const char *name, const char **rest, int *fd)
{
	bool last = **rest == '\0';
	int flags, d;

	if (name[0] == '.' && name[1] == '\0')
		return 0;
	if (name[0] == '.' && name[1] == '.' && name[2] == '\0') {
		if (w->top == 0)
			return -EXDEV;    /* a link climbing above the root */
		close(w->dir[w->top--]);
		return 0;
	}
	flags = last ? OPEN_FLAGS | O_NOFOLLOW : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	d = openat(w->dir[w->top], name, flags);
	if (d < 0) {
		int err = -errno;

		/* O_NOFOLLOW: a symlink is ELOOP as the last component, ENOTDIR with
		 * O_PATH|O_DIRECTORY. readlinkat tells which. */
		if (err == -ELOOP || err == -ENOTDIR)
			return walk_link(w, name, rest, err);
		return err;
	}
	if (last) {
		*fd = d;
		return 0;
	}
	if (w->top + 1 >= WALK_DEPTH) {
		close(d);
		return -ENAMETOOLONG;
	}
	w->dir[++w->top] = d;
	return 0;
}

/* The fallback for kernels without openat2 (before 5.6): the same guarantees, built from
 * openat(O_NOFOLLOW) on one component at a time and readlinkat. */
static int path_walk(int rootfd, const char *rel, bool follow, int *fd_out)
{
	struct walk w = { .dir = { rootfd }, .follow = follow };
	char name[NAME_MAX + 1];
	int fd = -1, r = 0;

	if (has_dotdot(rel))
		return -EXDEV;
	while (r == 0 && fd < 0) {
		const char *end;

		while (*rel == '/')
			rel++;
		if (*rel == '\0') {   /* the path named a directory (or was empty) */
			fd = openat(w.dir[w.top], ".", OPEN_FLAGS | O_DIRECTORY);
			r = fd < 0 ? -errno : 0;
			break;
		}
		end = strchrnul(rel, '/');
		if ((size_t)(end - rel) > NAME_MAX) {
			r = -ENAMETOOLONG;
			break;
		}
		memcpy(name, rel, (size_t)(end - rel));
		name[end - rel] = '\0';
		rel = end;
		r = walk_step(&w, name, &rel, &fd);
	}
	walk_close(&w);
	if (r == 0)
		*fd_out = fd;
	return r;
}

static int path_openat2(int rootfd, const char *rel, bool follow)
{
	struct open_how how = {
		.flags = OPEN_FLAGS,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
			   (follow ? 0 : RESOLVE_NO_SYMLINKS),
	};
	int tries = 0;
	long fd;

	do {
		fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
		/* EAGAIN: a concurrent rename made the kernel unsure that ".." stayed
		 * beneath the root (openat2(2)); retrying is the documented answer. */
	} while (fd < 0 && errno == EAGAIN && ++tries < 4);
	return fd < 0 ? -errno : (int)fd;
}

int pt_path_open(int rootfd, const char *rel, bool follow_symlinks, int *fd_out,
		 struct stat *st)
{
	int fd;

	while (*rel == '/')
		rel++;
	if ((fd = pt_srv_fault(PT_SRV_FAULT_OPEN)) < 0)   /* test builds: injected open failures */
		return fd;
	fd = path_openat2(rootfd, *rel ? rel : ".", follow_symlinks);
	if (fd == -ENOSYS) {
		int r = path_walk(rootfd, rel, follow_symlinks, &fd);

		if (r < 0)
			return r;
	}
	if (fd < 0)
		return fd;
	return open_finish(fd, fd_out, st);
}

int pt_path_open_dir(const char *dir, bool *cannot_enter)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	*cannot_enter = false;
	if (fd < 0)
		return -errno;
	/* serving needs search permission, listing and index lookups need read (checked
	 * by the open above) */
	if (faccessat(fd, ".", X_OK, AT_EACCESS) < 0) {
		int e = -errno;

		close(fd);
		*cannot_enter = true;
		return e;
	}
	return fd;
}

DIR *pt_path_opendir(int dirfd)
{
	/* a new open file description: a dup() would share (and exhaust) the cached offset */
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d && fd >= 0) {
		close(fd);
		errno = ENOMEM;
	}
	return d;
}
