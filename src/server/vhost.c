/*
 * Sites at run time: snapshots built from a configuration, the Host lookup, and the swap that
 * SIGHUP makes (see vhost.h for the rules on threads and lifetimes).
 */
#include "server/vhost.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct pt_hostname {
	const char *name;               /* exact name, or ".example.org" for "*.example.org" */
	unsigned site;
};

struct pt_vhost_slot {
	struct pt_snapshot *snap;       /* the worker's reference */
	struct pt_snapshot *prev;       /* and to the one before it, or NULL */
	uint64_t gen;
	pt_post_t post;
	atomic_bool posted;
	struct pt_vhosts *v;
	unsigned w;
} __attribute__((aligned(64)));  /* one cache line each: workers never share one */

/* ---- building ---------------------------------------------------------------------------- */

/* The settings of site i: a host block inherits what it does not set from the top level. */
static void site_settings(struct pt_site *st, const struct pt_server_config *c,
			  const struct pt_site_conf *own, const struct pt_site_conf *top)
{
	bool blk = top != NULL;

	st->own = own;
	st->top = top;
	st->root = blk && (own->set & PT_SITE_ROOT) ? own->root : c->docroot;
	st->index = blk && (own->set & PT_SITE_INDEX) ? own->index : c->index;
	st->autoindex = blk && (own->set & PT_SITE_AUTOINDEX) ? own->autoindex : c->autoindex;
	st->opts.follow_symlinks = blk && (own->set & PT_SITE_SYMLINKS) ? own->follow_symlinks
									 : c->follow_symlinks;
	st->cache_control = blk && (own->set & PT_SITE_CACHE_CONTROL) ? own->cache_control
									 : c->cache_control;
	const struct pt_site_conf *fb = (own->set & PT_SITE_FALLBACK) || !blk ? own : top;
	st->fallback = fb->fallback ? fb->fallback : "";
	const struct pt_site_conf *co = (own->set & PT_SITE_CORS) || !blk ? own : top;
	st->cors = co->cors, st->ncors = co->ncors;
	const struct pt_site_conf *cz = (own->set & PT_SITE_COMPRESS) || !blk ? own : top;
	st->compress = cz->compress, st->ncompress = cz->ncompress;
}

/* Opens site i's docroot: 0, or -errno with err naming FILE:LINE. */
static int site_open(struct pt_snapshot *s, struct pt_site *st, char *err, size_t errlen)
{
	const struct pt_server_config *c = s->conf;
	unsigned line = st->top && (st->own->set & PT_SITE_ROOT) ? st->own->root_line
		      : c->docroot_line ? c->docroot_line : st->top ? st->own->line : 0;
	char msg[PATH_MAX + 128];

	st->rootfd = pt_config_open_dir(st->root, msg, sizeof(msg));
	if (st->rootfd >= 0)
		return 0;
	if (line && *c->config_file)
		snprintf(err, errlen, "%s:%u: %s", c->config_file, line, msg);
	else
		snprintf(err, errlen, "%s", msg);
	return st->rootfd;
}

static int cmp_hostname(const void *a, const void *b)
{
	return strcmp(((const struct pt_hostname *)a)->name, ((const struct pt_hostname *)b)->name);
}

/* The sorted name tables. 0 or -ENOMEM. */
static int index_names(struct pt_snapshot *s)
{
	const struct pt_server_config *c = s->conf;
	size_t n = 0;

	for (unsigned i = 0; i < c->nhosts; i++)
		n += c->hosts[i].nnames;
	s->exact = calloc(n + 1, sizeof(*s->exact));
	s->wild = calloc(n + 1, sizeof(*s->wild));
	if (!s->exact || !s->wild)
		return -ENOMEM;
	for (unsigned i = 0; i < c->nhosts; i++) {
		const struct pt_site_conf *b = &c->hosts[i];
		if (b->is_default)
			s->default_site = i;    /* pt_site_check_names allows one */
		for (unsigned j = 0; j < b->nnames; j++) {
			if (b->names[j][0] == '*')
				s->wild[s->nwild++] = (struct pt_hostname){ b->names[j] + 1, i };
			else
				s->exact[s->nexact++] = (struct pt_hostname){ b->names[j], i };
		}
	}
	qsort(s->exact, s->nexact, sizeof(*s->exact), cmp_hostname);
	qsort(s->wild, s->nwild, sizeof(*s->wild), cmp_hostname);
	return 0;
}

static int build_sites(struct pt_snapshot *s, const struct pt_mime *mime, char *err,
		       size_t errlen)
{
	struct pt_server_config *c = s->conf;

	s->nsites = c->nhosts ? c->nhosts : 1;
	if (!(s->sites = calloc(s->nsites, sizeof(*s->sites))))
		return -ENOMEM;
	for (unsigned i = 0; i < s->nsites; i++)
		s->sites[i].rootfd = -1;
	for (unsigned i = 0; i < s->nsites; i++) {
		struct pt_site *st = &s->sites[i];

		site_settings(st, c, c->nhosts ? &c->hosts[i] : &c->top, c->nhosts ? &c->top : NULL);
		/* small_max: above ~16 KiB sendfile beats a copy from memory (S5, 64 KiB: 31.6 ->
		 * 19.8 us of server CPU per request in make bench) */
		st->opts.mime = mime;
		st->opts.precompressed = true;
		st->opts.ttl_ms = 1000;
		st->opts.small_max = 16384;
		/* TLS in user space reads every byte anyway: up to 256 KiB from memory, within
		 * 32 MiB per worker and site (T2 and H2 in make bench) */
		st->opts.copy_max = 256u << 10;
		st->opts.copy_budget = 32u << 20;
		if (!(st->cache = calloc(s->nworkers, sizeof(*st->cache))))
			return -ENOMEM;
		int r = site_open(s, st, err, errlen);
		if (r < 0)
			return r;
	}
	return index_names(s);
}

struct pt_snapshot *pt_snapshot_build(struct pt_server_config *conf, const struct pt_mime *mime,
				      unsigned nworkers, char *err, size_t errlen)
{
	struct pt_snapshot *s = calloc(1, sizeof(*s));
	int r;

	if (!s) {
		pt_config_free(conf);
		free(conf);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&s->refs, 1);
	s->conf = conf;
	s->nworkers = nworkers;
	s->gen = 1;
	err[0] = '\0';
	if ((r = build_sites(s, mime, err, errlen)) < 0) {
		if (!err[0])
			snprintf(err, errlen, "%s", strerror(-r));
		pt_snapshot_unref(s);
		return NULL;
	}
	return s;
}

void pt_snapshot_unref(struct pt_snapshot *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (unsigned i = 0; s->sites && i < s->nsites; i++) {
		struct pt_site *st = &s->sites[i];

		for (unsigned w = 0; st->cache && w < s->nworkers; w++)
			pt_fcache_free(st->cache[w]);
		free(st->cache);
		if (st->rootfd >= 0)
			close(st->rootfd);
	}
	free(s->sites);
	free(s->exact);
	free(s->wild);
	pt_config_free(s->conf);
	free(s->conf);
	free(s);
}

/* ---- lookup ------------------------------------------------------------------------------ */

static const struct pt_hostname *find(const struct pt_hostname *v, unsigned n, const char *name)
{
	struct pt_hostname key = { name, 0 };

	return n ? bsearch(&key, v, n, sizeof(*v), cmp_hostname) : NULL;
}

/* host without its port and trailing dot, lower-cased, into out (256 bytes): its length, or
 * 0 when it does not fit (no site can have such a name). */
static size_t host_key(const char *h, size_t n, char *out)
{
	const char *end = h[0] == '[' ? memchr(h, ']', n) : memchr(h, ':', n);
	size_t k;

	if (end)
		n = (size_t)(end - h) + (h[0] == '[');
	while (n && h[n - 1] == '.')
		n--;
	if (n == 0 || n > 255)
		return 0;
	for (k = 0; k < n; k++)
		out[k] = (char)(h[k] >= 'A' && h[k] <= 'Z' ? h[k] + 32 : h[k]);
	out[k] = '\0';
	return k;
}

const struct pt_site *pt_snapshot_site(const struct pt_snapshot *s, const char *host, size_t n)
{
	const struct pt_hostname *hit;
	char key[256];

	if (s->nsites == 1 || !host || !host_key(host, n, key))
		return &s->sites[s->default_site];
	if ((hit = find(s->exact, s->nexact, key)))
		return &s->sites[hit->site];
	for (const char *dot = strchr(key, '.'); dot; dot = strchr(dot + 1, '.'))
		if ((hit = find(s->wild, s->nwild, dot)))  /* leftmost dot: the longest suffix */
			return &s->sites[hit->site];
	return &s->sites[s->default_site];
}

struct pt_fcache *pt_site_cache(const struct pt_site *site, unsigned w)
{
	if (!site->cache[w])
		site->cache[w] = pt_fcache_new(site->rootfd, &site->opts);
	return site->cache[w];
}

/* ---- swapping ---------------------------------------------------------------------------- */

int pt_vhosts_init(struct pt_vhosts *v, struct pt_snapshot *s, unsigned nworkers,
		   unsigned keep_ms)
{
	v->slots = pt__aligned_alloc(64, nworkers * sizeof(*v->slots));
	if (!v->slots)
		return -ENOMEM;
	memset(v->slots, 0, nworkers * sizeof(*v->slots));
	for (unsigned i = 0; i < nworkers; i++)
		v->slots[i].v = v, v->slots[i].w = i;
	pthread_mutex_init(&v->lock, NULL);
	v->current = s;
	v->prev = NULL;
	v->keep_ms = keep_ms;
	atomic_init(&v->gen, s->gen);
	v->nworkers = nworkers;
	v->engine = NULL;
	return 0;
}

/* Worker w lets go of its reference to old: its caches first (only it touches them) unless
 * the slot still holds old, then the reference. */
static void drop(struct pt_vhost_slot *sl, struct pt_snapshot *old)
{
	if (!old)
		return;
	for (unsigned i = 0; old != sl->snap && old != sl->prev && i < old->nsites; i++) {
		pt_fcache_free(old->sites[i].cache[sl->w]);
		old->sites[i].cache[sl->w] = NULL;
	}
	pt_snapshot_unref(old);
}

static void leave(struct pt_vhost_slot *sl)
{
	struct pt_snapshot *s = sl->snap, *p = sl->prev;

	sl->snap = sl->prev = NULL;
	drop(sl, s);
	drop(sl, p);
}

const struct pt_snapshot *pt_vhosts_enter(struct pt_vhosts *v, unsigned w)
{
	struct pt_vhost_slot *sl = &v->slots[w];
	struct pt_snapshot *cur, *prev, *old = sl->snap, *old_prev = sl->prev;

	if (sl->gen == atomic_load_explicit(&v->gen, memory_order_acquire))
		return sl->snap;
	pthread_mutex_lock(&v->lock);
	cur = v->current;
	prev = v->prev;
	atomic_fetch_add_explicit(&cur->refs, 1, memory_order_relaxed);
	if (prev)
		atomic_fetch_add_explicit(&prev->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&v->lock);
	sl->snap = cur;
	sl->prev = prev;
	sl->gen = cur->gen;
	drop(sl, old);
	drop(sl, old_prev);
	return cur;
}

const struct pt_snapshot *pt_vhosts_for_conn(struct pt_vhosts *v, unsigned w, uint64_t start_ms,
					     uint64_t now_ms, bool *stale)
{
	const struct pt_snapshot *cur = pt_vhosts_enter(v, w);
	struct pt_vhost_slot *sl = &v->slots[w];

	*stale = start_ms < cur->since_ms;
	if (sl->prev && now_ms - cur->since_ms > v->keep_ms) {
		struct pt_snapshot *p = sl->prev;   /* no connection can need it any more */
		sl->prev = NULL;
		drop(sl, p);
	}
	if (*stale && sl->prev && start_ms >= sl->prev->since_ms)
		return sl->prev;
	return cur;
}

static void nudge(pt_worker_t *w, void *arg)
{
	struct pt_vhost_slot *sl = arg;

	atomic_store(&sl->posted, false);
	pt_vhosts_enter(sl->v, sl->w);
}

void pt_vhosts_swap(struct pt_vhosts *v, struct pt_snapshot *s)
{
	struct pt_snapshot *old;

	s->since_ms = pt_worker_now_ms(NULL);
	pthread_mutex_lock(&v->lock);
	old = v->prev;
	v->prev = v->current;
	s->gen = v->current->gen + 1;
	v->current = s;
	atomic_store_explicit(&v->gen, s->gen, memory_order_release);
	pthread_mutex_unlock(&v->lock);
	pt_snapshot_unref(old);
	for (unsigned i = 0; v->engine && i < v->nworkers; i++) {
		struct pt_vhost_slot *sl = &v->slots[i];

		if (!atomic_exchange(&sl->posted, true) &&
		    pt_post(pt_engine_worker(v->engine, i), &sl->post, nudge, sl) < 0)
			atomic_store(&sl->posted, false);
	}
}

void pt_vhosts_fini(struct pt_vhosts *v)
{
	if (!v->slots)
		return;
	for (unsigned i = 0; i < v->nworkers; i++)
		leave(&v->slots[i]);
	pt_snapshot_unref(v->current);
	pt_snapshot_unref(v->prev);
	pt__aligned_free(v->slots);
	v->slots = NULL;
	pthread_mutex_destroy(&v->lock);
}
