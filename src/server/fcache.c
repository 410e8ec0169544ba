/*
 * The open-file cache of the portico server, one per worker (no locks): normalized path ->
 * open descriptor, stat, validators, MIME type, available precompressed variants, and for
 * small files their bytes (the response cache: a hit needs no system call but the send).
 *
 * Entries are revalidated by path after PT_FCACHE_TTL_MS (re-resolved with pt_path_open and
 * compared by inode, size and mtime), so a replaced or rewritten file is noticed within that
 * time. Missing files are cached too (negative entries), which keeps floods of 404s cheap.
 * An entry in use by a send holds a reference; eviction only unlinks it, and the last
 * reference frees it.
 */
#include "server/fcache.h"
#include "server/cond.h"
#include "server/counter.h"
#include "server/encoding.h"
#include "util/util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUCKETS 4096u

struct pt_fcache {
	struct fentry *tab[BUCKETS];
	struct fentry *fifo_head, *fifo_tail;   /* eviction order */
	unsigned count, max;
	uint64_t copied;                        /* bytes read by pt_fcache_bytes, linked entries */
	int rootfd;
	const struct pt_fcache_opts *o;
	struct pt_fcache_stats *stats;          /* or NULL: not counted */
};

/* Adds n to the counter f of fc's stats, if it has some. */
#define STAT(fc, f, n) do { if ((fc)->stats) pt_count(&(fc)->stats->f, (uint64_t)(n)); } while (0)

void pt_fcache_set_stats(struct pt_fcache *fc, struct pt_fcache_stats *s)
{
	fc->stats = s;
}

/* Bytes of e held in memory, for the bytes gauge. */
static uint64_t held(const struct fentry *e)
{
	return e->data ? (uint64_t)e->st.st_size : 0;
}

static uint32_t hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;              /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

struct pt_fcache *pt_fcache_new(int rootfd, const struct pt_fcache_opts *o)
{
	struct pt_fcache *fc = calloc(1, sizeof *fc);

	if (fc) {
		fc->rootfd = rootfd;
		fc->o = o;
		fc->max = o->max_entries ? o->max_entries : 4096;
	}
	return fc;
}

static void entry_free(struct fentry *e)
{
	if (e->fd >= 0)
		close(e->fd);
	free(e->data);
	pt_http_fields_free(e->plain);
	free(e);
}

void pt_fentry_unref(struct fentry *e)
{
	if (e && --e->refs == 0)
		entry_free(e);
}

static void unlink_entry(struct pt_fcache *fc, struct fentry *e)
{
	struct fentry **p = &fc->tab[e->hash % BUCKETS];

	while (*p && *p != e)
		p = &(*p)->next;
	if (*p)
		*p = e->next;
	if (e->fifo_prev)
		e->fifo_prev->fifo_next = e->fifo_next;
	else
		fc->fifo_head = e->fifo_next;
	if (e->fifo_next)
		e->fifo_next->fifo_prev = e->fifo_prev;
	else
		fc->fifo_tail = e->fifo_prev;
	fc->count--;
	e->linked = false;
	if (e->data && !e->small)
		fc->copied -= (uint64_t)e->st.st_size;
	STAT(fc, entries, -1);
	STAT(fc, bytes, -held(e));
	pt_fentry_unref(e);                     /* the cache's own reference */
}

void pt_fcache_free(struct pt_fcache *fc)
{
	if (!fc)
		return;
	while (fc->fifo_head)
		unlink_entry(fc, fc->fifo_head);
	free(fc);
}

/* Reads a regular file of at most max bytes whole. Leaves data NULL on any doubt. */
static bool load(struct fentry *e, size_t max)
{
	if (!S_ISREG(e->st.st_mode) || (uint64_t)e->st.st_size > max || e->st.st_size == 0)
		return false;
	size_t n = (size_t)e->st.st_size;
	char *buf = malloc(n);
	if (!buf)
		return false;
	ssize_t k = pread(e->fd, buf, n, 0);
	if (k != (ssize_t)n) {
		free(buf);
		return false;
	}
	e->data = buf;
	return true;
}

const char *pt_fcache_bytes(struct pt_fcache *fc, struct fentry *e)
{
	if (e->data || e->err || !e->linked || fc->copied + (uint64_t)e->st.st_size > fc->o->copy_budget)
		return e->data;
	if (load(e, fc->o->copy_max)) {
		fc->copied += (uint64_t)e->st.st_size;
		STAT(fc, bytes, held(e));
	}
	return e->data;
}

unsigned pt_fcache_fresh_ms(const struct pt_fcache *fc, const struct fentry *e)
{
	uint64_t age = pt__now_coarse_ms() - e->checked_ms;

	return e->linked && age < fc->o->ttl_ms ? (unsigned)(fc->o->ttl_ms - age) : 0;
}

/* Which of name.br, name.zst, name.gz exist as regular files. */
static unsigned variants(int rootfd, const char *name, size_t n, bool follow)
{
	static const unsigned encs[] = { PT_ENC_BR, PT_ENC_ZSTD, PT_ENC_GZIP };
	char buf[PATH_MAX];
	unsigned mask = 0;

	for (size_t i = 0; i < 3; i++) {
		const char *suf = pt_enc_suffix(encs[i]);
		size_t sl = strlen(suf);
		if (n + sl >= sizeof buf)
			continue;
		memcpy(buf, name, n);
		memcpy(buf + n, suf, sl + 1);
		struct stat st;
		int fd;
		if (pt_path_open(rootfd, buf, follow, &fd, &st) == 0) {
			if (S_ISREG(st.st_mode))
				mask |= encs[i];
			close(fd);
		}
	}
	return mask;
}

static struct fentry *entry_open(struct pt_fcache *fc, const char *name, size_t n, uint32_t h,
				 bool with_variants)
{
	struct fentry *e = calloc(1, sizeof *e + n + 1);

	if (!e)
		return NULL;
	memcpy(e->path, name, n);
	e->path_len = n;
	e->hash = h;
	e->refs = 1;
	e->fd = -1;
	e->checked_ms = pt__now_coarse_ms();
	e->err = pt_path_open(fc->rootfd, e->path, fc->o->follow_symlinks, &e->fd, &e->st);
	if (e->err < 0)
		return e;                       /* negative entry */
	e->etag_len = pt_cond_etag(e->etag, &e->st);
	pt_cond_date_format(e->lastmod, e->st.st_mtim.tv_sec);
	if (S_ISREG(e->st.st_mode)) {
		const char *base = strrchr(e->path, '/');
		base = base ? base + 1 : e->path;
		e->mime = pt_mime_lookup(fc->o->mime, base, strlen(base));
		e->compressible = -1;
		e->with_variants = with_variants;
		if (fc->o->precompressed && with_variants)
			e->avail = variants(fc->rootfd, e->path, n, fc->o->follow_symlinks);
		e->small = load(e, fc->o->small_max);
	}
	return e;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_mode == b->st_mode;
}

/* Still the same file at that path? Cheap for the common case: one open and fstat. */
static bool still_valid(struct pt_fcache *fc, struct fentry *e, uint64_t now)
{
	struct stat st;
	int fd;

	if (now - e->checked_ms < fc->o->ttl_ms)
		return true;
	STAT(fc, revalidations, 1);
	int err = pt_path_open(fc->rootfd, e->path, fc->o->follow_symlinks, &fd, &st);
	if (err == 0)
		close(fd);
	if (err != e->err || (err == 0 && !same_file(&st, &e->st)))
		return false;
	/* a precompressed variant may have appeared or gone since */
	if (err == 0 && S_ISREG(st.st_mode) && fc->o->precompressed && e->with_variants) {
		unsigned avail = variants(fc->rootfd, e->path, e->path_len, fc->o->follow_symlinks);
		if (avail != e->avail) {        /* Vary: Accept-Encoding may come or go */
			pt_http_fields_free(e->plain);
			e->plain = NULL;
		}
		e->avail = avail;
	}
	e->checked_ms = now;
	return true;
}

static void insert(struct pt_fcache *fc, struct fentry *e)
{
	struct fentry **b = &fc->tab[e->hash % BUCKETS];

	e->next = *b;
	*b = e;
	e->fifo_next = NULL;
	e->fifo_prev = fc->fifo_tail;
	if (fc->fifo_tail)
		fc->fifo_tail->fifo_next = e;
	else
		fc->fifo_head = e;
	fc->fifo_tail = e;
	e->linked = true;
	STAT(fc, entries, 1);
	STAT(fc, bytes, held(e));
	if (++fc->count > fc->max)
		unlink_entry(fc, fc->fifo_head);
}

struct fentry *pt_fcache_get(struct pt_fcache *fc, const char *name, size_t n, bool with_variants)
{
	uint32_t h = hash(name, n);
	uint64_t now = pt__now_coarse_ms();

	for (struct fentry *e = fc->tab[h % BUCKETS]; e; e = e->next) {
		if (e->hash != h || e->path_len != n || memcmp(e->path, name, n))
			continue;
		if (!pt_fcache_transient(e->err) && still_valid(fc, e, now)) {
			e->refs++;
			STAT(fc, hits, 1);
			return e;
		}
		unlink_entry(fc, e);
		break;
	}
	STAT(fc, misses, 1);
	struct fentry *e = entry_open(fc, name, n, h, with_variants);
	if (!e)
		return NULL;
	insert(fc, e);
	e->refs++;                              /* the caller's reference */
	return e;
}
