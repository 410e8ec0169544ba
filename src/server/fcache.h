/*
 * Per-worker open-file and response cache of the portico server (see fcache.c).
 * Thread: a cache belongs to one worker; every call happens on that worker's thread.
 */
#ifndef PT_SERVER_FCACHE_H
#define PT_SERVER_FCACHE_H

#include "server/cond.h"
#include "portico/http.h"
#include "server/mime.h"
#include "server/path.h"
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

struct pt_fcache_opts {
	const struct pt_mime *mime;
	bool follow_symlinks;
	bool precompressed;         /* look for name.br / .zst / .gz */
	unsigned ttl_ms;            /* revalidate entries older than this (1000) */
	size_t small_max;           /* files up to this size are kept in memory (64 KiB) */
	size_t copy_max;            /* larger files up to this size may be too, for sends that
				     * copy anyway (pt_fcache_bytes) */
	size_t copy_budget;         /* bytes of such files per worker */
	unsigned max_entries;       /* per worker (4096) */
};

struct fentry {
	struct fentry *next;                    /* hash bucket */
	struct fentry *fifo_prev, *fifo_next;   /* eviction order */
	uint32_t hash;
	unsigned refs;                          /* the cache's + one per user (worker-local) */
	uint64_t checked_ms;
	int err;                                /* 0, or -errno from pt_path_open (negative entry) */
	int fd;
	struct stat st;
	char etag[PT_ETAG_MAX];
	size_t etag_len;
	char lastmod[PT_HTTP_DATE_LEN + 1];
	const char *mime;
	int8_t compressible;                    /* -1: not asked yet; else the site's compress
						   rule for mime (files.c asks once) */
	unsigned avail;                         /* PT_ENC_* variants present */
	bool with_variants;                     /* avail is kept up to date */
	char *data;                             /* whole content for small files, or NULL */
	pt_http_fields_t *plain;                /* the fields of a whole 200 of the file itself
						   (no encoding), prepared by files.c on first
						   use, or NULL; freed with the entry, dropped
						   when avail changes */
	bool small;                             /* data: read because the file is small */
	bool linked;                            /* in the cache (not evicted or replaced) */
	size_t path_len;
	char path[];                            /* normalized path, NUL-terminated */
};

/* What the caches of one worker did (metrics): written by that worker with pt_count (see
 * counter.h), read by any thread. */
struct pt_fcache_stats {
	uint64_t hits;              /* lookups answered by an entry */
	uint64_t misses;            /* lookups that opened the path (absent, or changed) */
	uint64_t revalidations;     /* hits that checked the file again (its TTL had passed) */
	uint64_t entries;           /* entries held now (a gauge) */
	uint64_t bytes;             /* bytes of small files held in memory now (a gauge) */
};

struct pt_fcache *pt_fcache_new(int rootfd, const struct pt_fcache_opts *o);
/* Counts fc's work into s (NULL: stop counting) from now on. Call it before the first
 * lookup; s must outlive fc. fc's worker only. */
void pt_fcache_set_stats(struct pt_fcache *fc, struct pt_fcache_stats *s);
void pt_fcache_free(struct pt_fcache *fc);
/* The entry for normalized path name[0..n), opened or revalidated as needed; NULL only when
 * out of memory. The caller owns one reference: drop it with pt_fentry_unref. */
struct fentry *pt_fcache_get(struct pt_fcache *fc, const char *name, size_t n, bool with_variants);

/* Out of descriptors or memory: an open that failed so is not remembered (it is retried on the
 * next request) and is answered 503 with Retry-After, not as the file's own error. */
static inline bool pt_fcache_transient(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOMEM;
}
void pt_fentry_unref(struct fentry *e);
/* e's bytes in memory for a connection whose sends copy them anyway (TLS encrypted in user
 * space; HTTP/2 over TLS): a read from memory instead of a pread per 64 KiB or per frame.
 * Read now if e is a cached regular file of at most copy_max bytes and the worker's
 * copy_budget has room, else NULL (send the file range). The bytes live as long as e. fc's
 * worker only. */
const char *pt_fcache_bytes(struct pt_fcache *fc, struct fentry *e);
/* Milliseconds until e is checked against its file again (0: at its next lookup). fc's
 * worker. */
unsigned pt_fcache_fresh_ms(const struct pt_fcache *fc, const struct fentry *e);

#endif
