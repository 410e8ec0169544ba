/*
 * Fragment cache (HttpAddFragmentToCache): named, immutable byte strings the application
 * stores once and sends by name. Entries are reference counted: a send holds a reference until
 * its completion, so replacing or removing a fragment never pulls memory from under a send.
 * Any thread may put or remove; lookups take a read lock (the table is small and read-mostly).
 */
#include "http/http_int.h"
#include "util/util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct frag {
	struct frag *next;
	atomic_uint refs;
	uint64_t expires_ms;        /* 0 = until removed */
	size_t len;
	char *name;
	char data[];
};

struct pt_fragcache {
	pthread_rwlock_t lock;
	struct frag *head;
};

static struct pt_fragcache *cache(struct pt_http_server *s)
{
	return s->frags;
}

int pt__fragcache_init(struct pt_http_server *s)
{
	if (!(s->frags = calloc(1, sizeof *s->frags)))
		return -ENOMEM;
	pthread_rwlock_init(&s->frags->lock, NULL);
	return 0;
}

void pt__fragment_unref(void *ref)
{
	struct frag *f = ref;

	if (f && atomic_fetch_sub(&f->refs, 1) == 1) {
		free(f->name);
		free(f);
	}
}

void pt__fragcache_free(struct pt_http_server *s)
{
	struct pt_fragcache *fc = cache(s);

	if (!fc)
		return;
	while (fc->head) {
		struct frag *f = fc->head;
		fc->head = f->next;
		pt__fragment_unref(f);
	}
	pthread_rwlock_destroy(&fc->lock);
	free(fc);
}

static struct frag **find(struct pt_fragcache *fc, const char *name)
{
	struct frag **p = &fc->head;

	while (*p && strcmp((*p)->name, name))
		p = &(*p)->next;
	return p;
}

PT_API int pt_http_fragment_put(pt_http_server_t *s, const char *name, const void *data,
				size_t len, unsigned ttl_ms)
{
	if (!s || !name || !*name || (!data && len))
		return -EINVAL;
	struct frag *f = malloc(sizeof *f + len);
	if (!f || !(f->name = strdup(name))) {
		free(f);
		return -ENOMEM;
	}
	memcpy(f->data, data, len);
	f->len = len;
	atomic_init(&f->refs, 1);
	f->expires_ms = ttl_ms ? pt__now_coarse_ms() + ttl_ms : 0;
	pthread_rwlock_wrlock(&cache(s)->lock);
	struct frag **p = find(cache(s), name), *old = *p;
	f->next = old ? old->next : NULL;
	*p = f;
	pthread_rwlock_unlock(&cache(s)->lock);
	pt__fragment_unref(old);
	return 0;
}

PT_API int pt_http_fragment_remove(pt_http_server_t *s, const char *name)
{
	if (!s || !name)
		return -EINVAL;
	pthread_rwlock_wrlock(&cache(s)->lock);
	struct frag **p = find(cache(s), name), *old = *p;
	if (old)
		*p = old->next;
	pthread_rwlock_unlock(&cache(s)->lock);
	if (!old)
		return -ENOENT;
	pt__fragment_unref(old);
	return 0;
}

/* A memory chunk for fragment name and a reference to drop when the send completes;
 * -ENOENT when it is absent or expired. */
int pt__fragment_resolve(struct pt_http_server *s, const char *name, struct pt_http_chunk *out,
			 void **ref)
{
	int err = -ENOENT;

	if (!name)
		return -EINVAL;
	pthread_rwlock_rdlock(&cache(s)->lock);
	struct frag *f = *find(cache(s), name);
	if (f && (!f->expires_ms || pt__now_coarse_ms() < f->expires_ms)) {
		atomic_fetch_add(&f->refs, 1);
		*out = (struct pt_http_chunk){ .kind = PT_HTTP_CHUNK_MEM, .mem = { f->data, f->len } };
		*ref = f;
		err = 0;
	}
	pthread_rwlock_unlock(&cache(s)->lock);
	return err;
}
