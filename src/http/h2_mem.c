/*
 * Memory for the nghttp2 sessions of one worker (nghttp2_mem): blocks in power-of-two size
 * classes from 64 to 4096 bytes, kept on the worker's free lists when freed. nghttp2 allocates
 * several small objects per stream (the stream, its outbound frames, header copies); with 100
 * streams in flight per connection they overflow glibc's per-thread cache, and malloc/free took
 * 12 % of the server's CPU in make bench H1. A session is only used on its worker's thread, so
 * the lists take no lock. Larger blocks go straight to malloc. Under ASan nothing is kept
 * (PT_RECYCLE), so a use after free is still reported. The lists are emptied with the other
 * free lists once requests stop (request.c pool_housekeep).
 */
#include "http/h2_int.h"
#include "util/util.h"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define H2M_MIN_SHIFT 6u                    /* 64 bytes */
#define H2M_BIG 0xffu                       /* a block of malloc's own */
#define H2M_FREE_MAX 4096u                  /* blocks kept per class */

/* Before every block: its class (and, for big blocks, nothing else); the size keeps the
 * payload aligned for any type. */
union h2m_head {
	max_align_t align;
	unsigned cls;
};

struct h2m_free {
	struct h2m_free *next;
};

static unsigned class_of(size_t n)
{
	if (n <= (size_t)1 << H2M_MIN_SHIFT)
		return 0;
	/* the smallest power of two >= n, as a class */
	unsigned c = 64u - (unsigned)__builtin_clzll((unsigned long long)(n - 1)) - H2M_MIN_SHIFT;
	return c < H2M_CLASSES ? c : H2M_BIG;
}

static size_t class_size(unsigned c)
{
	return (size_t)1 << (H2M_MIN_SHIFT + c);
}

static void *h2m_malloc(size_t n, void *ud)
{
	struct h2pool *p = ud;
	unsigned c = class_of(n);
	union h2m_head *h;

	if (c != H2M_BIG && p->free[c]) {
		struct h2m_free *f = p->free[c];
		p->free[c] = f->next;
		p->nfree[c]--;
		h = (union h2m_head *)f - 1;
	} else {
		if (n > SIZE_MAX - sizeof *h)
			return NULL;
		if (!(h = malloc(sizeof *h + (c == H2M_BIG ? n : class_size(c)))))
			return NULL;
		h->cls = c;
	}
	return h + 1;
}

static void h2m_free(void *ptr, void *ud)
{
	struct h2pool *p = ud;

	if (!ptr)
		return;
	union h2m_head *h = (union h2m_head *)ptr - 1;
	unsigned c = h->cls;
	if (c == H2M_BIG || !PT_RECYCLE || p->nfree[c] >= H2M_FREE_MAX) {
		free(h);
		return;
	}
	struct h2m_free *f = ptr;
	f->next = p->free[c];
	p->free[c] = f;
	p->nfree[c]++;
}

static void *h2m_calloc(size_t nmemb, size_t size, void *ud)
{
	if (size && nmemb > SIZE_MAX / size)
		return NULL;
	void *m = h2m_malloc(nmemb * size, ud);
	if (m)
		memset(m, 0, nmemb * size);
	return m;
}

static void *h2m_realloc(void *ptr, size_t size, void *ud)
{
	if (!ptr)
		return h2m_malloc(size, ud);
	if (!size) {
		h2m_free(ptr, ud);
		return NULL;
	}
	union h2m_head *h = (union h2m_head *)ptr - 1;
	if (h->cls == H2M_BIG) {
		if (size > SIZE_MAX - sizeof *h)
			return NULL;
		union h2m_head *n = realloc(h, sizeof *h + size);
		return n ? n + 1 : NULL;
	}
	size_t have = class_size(h->cls);
	if (size <= have)
		return ptr;
	void *m = h2m_malloc(size, ud);
	if (m) {
		memcpy(m, ptr, have);
		h2m_free(ptr, ud);
	}
	return m;
}

void pt__h2_mem_init(struct h2pool *p)
{
	memset(p, 0, sizeof *p);
	p->mem = (nghttp2_mem){ p, h2m_malloc, h2m_free, h2m_calloc, h2m_realloc };
}

void pt__h2_mem_trim(struct h2pool *p)
{
	for (unsigned c = 0; c < H2M_CLASSES; c++) {
		while (p->free[c]) {
			struct h2m_free *f = p->free[c];
			p->free[c] = f->next;
			free((union h2m_head *)f - 1);
		}
		p->nfree[c] = 0;
	}
}
