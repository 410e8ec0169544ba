/*
 * Compress once, serve many (zcache.c): the compressed copies of files, shared by every
 * worker and every site, made by a small pool of threads of its own.
 *
 * A copy is keyed by the file's identity (device, inode, size, mtime) and the coding, so a
 * changed file is a different key and is compressed afresh; copies of old versions age out.
 * A worker asks with pt_zcache_get: a ready copy comes back referenced; otherwise the file
 * is queued for compression (once) and the worker serves the identity body meanwhile.
 * Compression never runs on a worker: the pool's threads read the file (through a
 * descriptor duplicated at queueing time), compress it and publish the copy.
 *
 * Bounds: copies take at most max_bytes together (least recently used first out; a copy
 * being sent stays alive through its reference until the send completes); a file larger
 * than max_bytes / 4 or PT_ZCACHE_FILE_MAX is never compressed; at most PT_ZCACHE_QUEUE
 * files wait for the pool (beyond that a request just gets identity and asks again later).
 * A copy that is not smaller than the file is remembered as useless and never sent.
 */
#ifndef PT_SERVER_ZCACHE_H
#define PT_SERVER_ZCACHE_H

#include "server/cond.h"
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define PT_ZCACHE_FILE_MAX (64u << 20)
#define PT_ZCACHE_FILE_MIN 64          /* smaller files gain nothing (gzip's framing is 18) */
#define PT_ZCACHE_QUEUE 256

/* A compressed copy: read-only once published; freed by its last reference. */
struct pt_zbuf {
	atomic_uint refs;
	size_t len;
	char etag[PT_ETAG_MAX + 8];     /* the file's tag with "-br", "-zst" or "-gz" inside */
	size_t etag_len;
	char data[];
};

struct pt_zcache;

/* A cache of at most max_bytes of copies, with threads compression threads (started now).
 * NULL with *err = -ENOMEM or -errno from pthread_create. Main thread. */
struct pt_zcache *pt_zcache_new(size_t max_bytes, unsigned threads, int *err);

/* Stops the threads (a compression in progress finishes first) and frees everything.
 * Copies still referenced by sends stay alive until their last reference. Main thread,
 * after the workers stopped. NULL is allowed. */
void pt_zcache_free(struct pt_zcache *z);

/* The copy of the file open as fd (st its fstat, etag its strong tag) in coding enc
 * (one PT_ENC_* bit), referenced for the caller (pt_zbuf_unref), or NULL: not ready yet (it
 * is then queued, with a duplicate of fd), being made, useless, or the file is outside the
 * size bounds. Never blocks on compression. Any thread (workers). */
struct pt_zbuf *pt_zcache_get(struct pt_zcache *z, const struct stat *st, const char *etag,
			      unsigned enc, int fd);

/* Waits until nothing is queued or being compressed (tests and benchmarks). Any thread but
 * the pool's. */
void pt_zcache_drain(struct pt_zcache *z);

/* Bytes of copies held (for tests and the counters line). Any thread. */
size_t pt_zcache_bytes(struct pt_zcache *z);

/* Takes / drops a reference. Any thread. */
void pt_zbuf_ref(struct pt_zbuf *b);
void pt_zbuf_unref(struct pt_zbuf *b);

#endif
