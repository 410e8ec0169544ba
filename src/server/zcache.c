/*
 * The compress-once cache and its thread pool (see zcache.h).
 *
 * One mutex guards the table, the LRU list and the job queue; a lookup holds it for a hash
 * probe and a reference count increment, never across I/O or compression (a duplicate
 * descriptor is made under it, once per file and coding). Entries are PENDING from the
 * first request until a pool thread publishes them as READY (with a copy) or USELESS; only
 * READY and USELESS ones are on the LRU list and can be evicted, so a thread always finds
 * its PENDING entry when it publishes.
 */
#include "server/zcache.h"
#include "server/compress.h"
#include "server/encoding.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUCKETS 4096u

enum { Z_PENDING, Z_READY, Z_USELESS };

struct zkey {
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns;
	unsigned enc;
};

struct zent {
	struct zent *next;                 /* bucket chain */
	struct zent *prev_lru, *next_lru;  /* READY and USELESS entries, most recent first */
	struct zkey k;
	uint32_t hash;
	int state;
	struct pt_zbuf *buf;               /* READY: the cache's reference */
	size_t cost;                       /* bytes counted against the bound */
};

struct zjob {
	struct zjob *next;
	struct zkey k;
	int fd;                            /* the job's own duplicate */
	char etag[PT_ETAG_MAX];
};

struct pt_zcache {
	pthread_mutex_t lock;
	pthread_cond_t work, idle;
	struct zent *tab[BUCKETS];
	struct zent *lru_head, *lru_tail;
	size_t bytes, max;
	struct zjob *qhead, *qtail;
	unsigned queued, busy;
	bool stop;
	pthread_t *threads;
	unsigned nthreads;
};

void pt_zbuf_ref(struct pt_zbuf *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void pt_zbuf_unref(struct pt_zbuf *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		free(b);
}

static uint32_t key_hash(const struct zkey *k)
{
	uint64_t h = (uint64_t)k->ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)k->dev;

	h ^= (uint64_t)k->size * 0xff51afd7ed558ccdull ^ (uint64_t)k->mtime_ns ^ k->enc;
	h ^= h >> 29;
	return (uint32_t)(h * 0xc4ceb9fe1a85ec53ull >> 32);
}

static bool key_eq(const struct zkey *a, const struct zkey *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns && a->enc == b->enc;
}

static struct zkey key_of(const struct stat *st, unsigned enc)
{
	return (struct zkey){ st->st_dev, st->st_ino, st->st_size,
			      (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec, enc };
}

static struct zent *lookup(struct pt_zcache *z, const struct zkey *k, uint32_t h)
{
	for (struct zent *e = z->tab[h % BUCKETS]; e; e = e->next)
		if (e->hash == h && key_eq(&e->k, k))
			return e;
	return NULL;
}

/* ---- the LRU list ------------------------------------------------------------------------ */

static void lru_unlink(struct pt_zcache *z, struct zent *e)
{
	if (e->prev_lru)
		e->prev_lru->next_lru = e->next_lru;
	else
		z->lru_head = e->next_lru;
	if (e->next_lru)
		e->next_lru->prev_lru = e->prev_lru;
	else
		z->lru_tail = e->prev_lru;
	e->prev_lru = e->next_lru = NULL;
}

static void lru_push(struct pt_zcache *z, struct zent *e)
{
	e->prev_lru = NULL;
	e->next_lru = z->lru_head;
	if (z->lru_head)
		z->lru_head->prev_lru = e;
	else
		z->lru_tail = e;
	z->lru_head = e;
}

/* Unlinks e from its bucket and frees it (the copy lives on while sends hold it). */
static void remove_entry(struct pt_zcache *z, struct zent *e)
{
	struct zent **p = &z->tab[e->hash % BUCKETS];

	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	if (e->state != Z_PENDING) {
		lru_unlink(z, e);
		z->bytes -= e->cost;
	}
	pt_zbuf_unref(e->buf);
	free(e);
}

static void evict(struct pt_zcache *z)
{
	while (z->bytes > z->max && z->lru_tail)
		remove_entry(z, z->lru_tail);
}

/* ---- compressing (pool threads) ---------------------------------------------------------- */

/* Whether fd is still the file k names. */
static bool same_file(int fd, const struct zkey *k)
{
	struct stat st;

	return fstat(fd, &st) == 0 && key_eq(k, &(struct zkey){ st.st_dev, st.st_ino, st.st_size,
		(int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec, k->enc });
}

/* The whole file, if it is the one the key names before and after the read (a file rewritten
 * in place meanwhile has another mtime). NULL otherwise. */
static char *read_file(const struct zjob *j)
{
	size_t n = (size_t)j->k.size, got = 0;
	char *buf;

	if (!same_file(j->fd, &j->k) || !(buf = malloc(n)))
		return NULL;
	while (got < n) {
		ssize_t r = pread(j->fd, buf + got, n - got, (off_t)got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got < n || !same_file(j->fd, &j->k)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The tag of the copy: the file's with "-br" (etc.) before the closing quote. */
static void copy_etag(struct pt_zbuf *b, const char *etag, unsigned enc)
{
	size_t n = strlen(etag);
	const char *suf = pt_enc_suffix(enc);          /* ".br", ".zst", ".gz" */

	if (n < 2 || n + strlen(suf) + 1 > sizeof(b->etag)) {
		b->etag_len = 0;
		b->etag[0] = '\0';
		return;
	}
	b->etag_len = (size_t)snprintf(b->etag, sizeof(b->etag), "%.*s-%s\"", (int)(n - 1), etag,
				       suf + 1);
}

/* The copy for job j, or NULL (useless, or the file changed or could not be read). */
static struct pt_zbuf *make_copy(const struct zjob *j)
{
	size_t n = (size_t)j->k.size;
	char *in = read_file(j);
	struct pt_zbuf *b = in ? malloc(sizeof(*b) + n) : NULL, *small;
	ssize_t len = b ? pt_compress(j->k.enc, in, n, b->data, n - 1) : -ENOMEM;

	free(in);
	if (len <= 0) {
		free(b);
		return NULL;
	}
	small = realloc(b, sizeof(*b) + (size_t)len);
	b = small ? small : b;
	atomic_init(&b->refs, 1);
	b->len = (size_t)len;
	copy_etag(b, j->etag, j->k.enc);
	return b;
}

/* Publishes the result of job j (under the lock). */
static void publish(struct pt_zcache *z, const struct zjob *j, struct pt_zbuf *b)
{
	struct zent *e = lookup(z, &j->k, key_hash(&j->k));

	if (!e || e->state != Z_PENDING) {             /* cannot happen: see the top */
		pt_zbuf_unref(b);
		return;
	}
	e->state = b && b->etag_len ? Z_READY : Z_USELESS;
	if (e->state == Z_USELESS) {
		pt_zbuf_unref(b);
		b = NULL;
	}
	e->buf = b;
	e->cost = sizeof(*e) + (b ? sizeof(*b) + b->len : 0);
	z->bytes += e->cost;
	lru_push(z, e);
	evict(z);
}

static void *pool_main(void *arg)
{
	struct pt_zcache *z = arg;

	pthread_mutex_lock(&z->lock);
	for (;;) {
		while (!z->qhead && !z->stop)
			pthread_cond_wait(&z->work, &z->lock);
		if (z->stop)
			break;
		struct zjob *j = z->qhead;
		z->qhead = j->next;
		if (!z->qhead)
			z->qtail = NULL;
		z->queued--;
		z->busy++;
		pthread_mutex_unlock(&z->lock);
		struct pt_zbuf *b = make_copy(j);
		close(j->fd);
		pthread_mutex_lock(&z->lock);
		publish(z, j, b);
		free(j);
		if (--z->busy == 0 && !z->qhead)
			pthread_cond_broadcast(&z->idle);
	}
	pthread_mutex_unlock(&z->lock);
	return NULL;
}

/* ---- the workers' side ------------------------------------------------------------------- */

/* Queues the compression of k (under the lock): a PENDING entry and a job. */
static void enqueue(struct pt_zcache *z, const struct zkey *k, uint32_t h, const char *etag,
		    int fd)
{
	struct zent *e = calloc(1, sizeof(*e));
	struct zjob *j = malloc(sizeof(*j));
	int dupfd = e && j ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;

	if (dupfd < 0 || strlen(etag) >= sizeof(j->etag)) {
		if (dupfd >= 0)
			close(dupfd);
		free(e);
		free(j);
		return;                 /* out of memory or descriptors: identity, ask again */
	}
	*e = (struct zent){ .next = z->tab[h % BUCKETS], .k = *k, .hash = h, .state = Z_PENDING };
	z->tab[h % BUCKETS] = e;
	*j = (struct zjob){ .k = *k, .fd = dupfd };
	strcpy(j->etag, etag);
	if (z->qtail)
		z->qtail->next = j;
	else
		z->qhead = j;
	z->qtail = j;
	z->queued++;
	pthread_cond_signal(&z->work);
}

struct pt_zbuf *pt_zcache_get(struct pt_zcache *z, const struct stat *st, const char *etag,
			      unsigned enc, int fd)
{
	struct zkey k = key_of(st, enc);
	uint32_t h = key_hash(&k);
	struct pt_zbuf *b = NULL;
	struct zent *e;

	if (!S_ISREG(st->st_mode) || st->st_size < PT_ZCACHE_FILE_MIN ||
	    (uint64_t)st->st_size > PT_ZCACHE_FILE_MAX || (size_t)st->st_size > z->max / 4)
		return NULL;
	pthread_mutex_lock(&z->lock);
	if ((e = lookup(z, &k, h))) {
		if (e->state == Z_READY) {
			b = e->buf;
			pt_zbuf_ref(b);
		}
		if (e->state != Z_PENDING && e != z->lru_head) {
			lru_unlink(z, e);
			lru_push(z, e);
		}
	} else if (z->queued < PT_ZCACHE_QUEUE && !z->stop) {
		enqueue(z, &k, h, etag, fd);
	}
	pthread_mutex_unlock(&z->lock);
	return b;
}

/* ---- life -------------------------------------------------------------------------------- */

struct pt_zcache *pt_zcache_new(size_t max_bytes, unsigned threads, int *err)
{
	struct pt_zcache *z = calloc(1, sizeof(*z));

	if (!z || !(z->threads = calloc(threads, sizeof(pthread_t)))) {
		free(z);
		*err = -ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&z->lock, NULL);
	pthread_cond_init(&z->work, NULL);
	pthread_cond_init(&z->idle, NULL);
	z->max = max_bytes;
	for (; z->nthreads < threads; z->nthreads++) {
		int e = pthread_create(&z->threads[z->nthreads], NULL, pool_main, z);
		if (e) {
			*err = -e;
			pt_zcache_free(z);
			return NULL;
		}
	}
	return z;
}

void pt_zcache_free(struct pt_zcache *z)
{
	if (!z)
		return;
	pthread_mutex_lock(&z->lock);
	z->stop = true;
	pthread_cond_broadcast(&z->work);
	pthread_mutex_unlock(&z->lock);
	for (unsigned i = 0; i < z->nthreads; i++)
		pthread_join(z->threads[i], NULL);
	while (z->qhead) {
		struct zjob *j = z->qhead;
		z->qhead = j->next;
		close(j->fd);
		free(j);
	}
	for (unsigned i = 0; i < BUCKETS; i++)
		while (z->tab[i])
			remove_entry(z, z->tab[i]);
	pthread_cond_destroy(&z->work);
	pthread_cond_destroy(&z->idle);
	pthread_mutex_destroy(&z->lock);
	free(z->threads);
	free(z);
}

void pt_zcache_drain(struct pt_zcache *z)
{
	pthread_mutex_lock(&z->lock);
	while (z->queued || z->busy)
		pthread_cond_wait(&z->idle, &z->lock);
	pthread_mutex_unlock(&z->lock);
}

size_t pt_zcache_bytes(struct pt_zcache *z)
{
	pthread_mutex_lock(&z->lock);
	size_t n = z->bytes;
	pthread_mutex_unlock(&z->lock);
	return n;
}
