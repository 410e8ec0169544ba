/*
 * The response cache: HTTP.SYS's kernel response cache, one per worker (no locks).
 *
 * A handler offers its response with pt_http_req_cache before responding. respond() then
 * keeps a copy of a complete 200 to a GET whose body is memory (rcache_put): the fields
 * joined into one prepared list, the body copied, under the key (TLS or not, authority,
 * request target, byte for byte), until the policy's time to live has passed. A later GET or
 * HEAD with the same key on the same worker is answered from the copy before any route is
 * looked up (pt__rcache_serve), unless it carries one of the request fields the policy names,
 * or the server's hook declines. The copy goes out through the protocol's own send, so
 * framing, Date, Connection and HTTP/2 are as for any response.
 *
 * pt_http_cache_flush makes every copy stale at once (a generation count, compared on
 * lookup). Entries are evicted oldest first when the worker holds cache_entries of them; an
 * entry a send still reads is freed when that send completes (a reference per send).
 */
#include "http/http_int.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RC_BUCKETS 1024u
#define RC_MAX_BODY_DEFAULT (16u * 1024)

struct rentry {
	struct rentry *next;              /* bucket chain */
	struct rentry *older, *newer;     /* insertion order: eviction takes the oldest */
	unsigned refs;                    /* the cache's (while linked) + one per send */
	bool linked;
	bool tls;
	uint32_t hash;
	uint64_t expires_ms;              /* worker clock */
	uint64_t gen;                     /* s->cache_gen when it was made */
	unsigned status;
	const char *reason;               /* the standard phrase of status */
	pt_http_fields_t *fields;
	struct pt_fields f;               /* what the protocol's send reads of them */
	char *unless;                     /* names, each NUL-terminated, then an empty one */
	uint64_t unless_lens;             /* bit (length % 64) of each name: most request fields
	                                     are ruled out by their length alone */
	char *body;
	size_t body_len, auth_len, target_len;
	char key[];                       /* authority then target */
};

struct pt_rcache {
	struct rentry *tab[RC_BUCKETS];
	struct rentry *oldest, *newest;
	unsigned count;
};

static uint64_t mix_word(uint64_t h, uint64_t w)
{
	h = (h ^ w) * 0x9e3779b97f4a7c15ull;
	return h ^ h >> 29;
}

/* Eight bytes at a time: a multiply and a shift per word. The tail is the last eight bytes
 * (overlapping the words before) or, for keys under eight bytes, two overlapping halves. */
static uint64_t mix(uint64_t h, const char *p, size_t n)
{
	uint64_t w = 0;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h = mix_word(h, w);
	}
	if (n >= 8) {
		w = 0;
		if (i < n)
			memcpy(&w, p + n - 8, 8);
	} else if (n >= 4) {
		uint32_t a, b;
		memcpy(&a, p, 4);
		memcpy(&b, p + n - 4, 4);
		w = a | (uint64_t)b << 32;
	} else {
		w = 0;
		for (i = 0; i < n; i++)
			w |= (uint64_t)(unsigned char)p[i] << (8 * i);
	}
	return mix_word(h, w ^ (uint64_t)n << 56);
}

static uint32_t key_hash(bool tls, struct pt_http_str a, struct pt_http_str t)
{
	return (uint32_t)(mix(mix(tls, a.p, a.n), t.p, t.n) >> 32);
}

static void entry_unref(struct rentry *e)
{
	if (--e->refs)
		return;
	pt_http_fields_free(e->fields);
	free(e->unless);
	free(e->body);
	free(e);
}

static void unlink_entry(struct pt_rcache *rc, struct rentry *e)
{
	struct rentry **p = &rc->tab[e->hash % RC_BUCKETS];

	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	if (e->older)
		e->older->newer = e->newer;
	else
		rc->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		rc->newest = e->older;
	rc->count--;
	e->linked = false;
	entry_unref(e);
}

void pt__rcache_free(struct hworker *hw)
{
	struct pt_rcache *rc = hw->rc;

	if (!rc)
		return;
	while (rc->oldest)
		unlink_entry(rc, rc->oldest);
	free(rc);
	hw->rc = NULL;
}

static uint64_t now_ms(const struct pt_http_req *r)
{
	return pt_worker_now_ms(pt_conn_worker(r->c));
}

static bool same_key(const struct rentry *e, uint32_t h, bool tls, struct pt_http_str a,
		     struct pt_http_str t)
{
	return e->hash == h && e->tls == tls && e->auth_len == a.n && e->target_len == t.n &&
	       !memcmp(e->key, a.p, a.n) && !memcmp(e->key + a.n, t.p, t.n);
}

static struct rentry *lookup(struct pt_rcache *rc, const struct pt_http_req *r, bool tls,
			     struct pt_http_str a, struct pt_http_str t)
{
	uint32_t h = key_hash(tls, a, t);

	for (struct rentry *e = rc->tab[h % RC_BUCKETS]; e; e = e->next) {
		if (!same_key(e, h, tls, a, t))
			continue;
		if (e->gen != atomic_load_explicit(&r->s->cache_gen, memory_order_relaxed) ||
		    now_ms(r) >= e->expires_ms) {
			unlink_entry(rc, e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

/* ---- keeping a response ---- */

static bool has_unless(const struct pt_http_req *r, const struct rentry *e);

PT_API int pt_http_req_cache(pt_http_req_t *r, const struct pt_http_cache_policy *p)
{
	if (!r || !p || !p->ttl_ms || (p->nunless && !p->unless))
		return -EINVAL;
	for (unsigned i = 0; i < p->nunless; i++)
		if (!p->unless[i] || !*p->unless[i])
			return -EINVAL;
	if (!r->s->cfg.cache_entries)
		return -ENOTSUP;
	r->cache_pol = p;
	return 0;
}

static char *copy_unless(const struct pt_http_cache_policy *p)
{
	size_t n = 1;
	char *s, *w;

	for (unsigned i = 0; i < p->nunless; i++)
		n += strlen(p->unless[i]) + 1;       /* the names were checked non-empty */
	if (!(s = malloc(n)))
		return NULL;
	w = s;
	for (unsigned i = 0; i < p->nunless; i++) {
		size_t k = strlen(p->unless[i]) + 1;
		memcpy(w, p->unless[i], k);
		w += k;
	}
	*w = '\0';
	return s;
}

static bool body_copy(struct rentry *e, const struct pt_http_chunk *b, unsigned n, uint64_t total)
{
	size_t k = 0;

	if (total && !(e->body = malloc(total)))
		return false;
	for (unsigned i = 0; i < n; i++) {
		memcpy(e->body + k, b[i].mem.p, b[i].mem.len);
		k += b[i].mem.len;
	}
	e->body_len = k;
	return true;
}

static void link_entry(struct pt_rcache *rc, struct rentry *e, unsigned max)
{
	struct rentry **b = &rc->tab[e->hash % RC_BUCKETS];

	struct pt_http_str a = { e->key, e->auth_len }, t = { e->key + e->auth_len, e->target_len };

	for (struct rentry *x = *b; x; x = x->next)
		if (same_key(x, e->hash, e->tls, a, t)) {
			unlink_entry(rc, x);          /* the newer copy replaces it */
			break;
		}
	b = &rc->tab[e->hash % RC_BUCKETS];
	e->next = *b;
	*b = e;
	e->older = rc->newest;
	if (rc->newest)
		rc->newest->newer = e;
	else
		rc->oldest = e;
	rc->newest = e;
	e->linked = true;
	if (++rc->count > max)
		unlink_entry(rc, rc->oldest);
}

/* Whether the send just made may be kept: see pt_http_req_cache. */
static bool keepable(const struct pt_http_req *r, const struct pt_out *o)
{
	size_t max = r->s->cfg.cache_max_body ? r->s->cfg.cache_max_body : RC_MAX_BODY_DEFAULT;

	if (!o->final || o->status != 200 || (o->flags & PT_HTTP_DISCONNECT) || o->nrefs ||
	    r->head.method_id != PT_METHOD_GET || o->total > max || o->f->user_close)
		return false;
	for (unsigned i = 0; i < o->nbody; i++)
		if (o->body[i].kind != PT_HTTP_CHUNK_MEM)
			return false;
	return true;
}

void pt__rcache_put(struct pt_http_req *r, const struct pt_out *o)
{
	const struct pt_http_cache_policy *p = r->cache_pol;
	struct hworker *hw = r->hw;
	struct pt_http_str a = pt_http_req_authority(r), t = { r->head.target.p, r->head.target.n };
	struct rentry *e;

	r->cache_pol = NULL;
	if (!keepable(r, o) || (!hw->rc && !(hw->rc = calloc(1, sizeof *hw->rc))) ||
	    !(e = calloc(1, sizeof *e + a.n + t.n)))
		return;
	e->refs = 1;
	e->tls = pt_conn_is_tls(r->c);
	e->hash = key_hash(e->tls, a, t);
	e->expires_ms = now_ms(r) + p->ttl_ms;
	e->gen = atomic_load_explicit(&r->s->cache_gen, memory_order_relaxed);
	e->status = o->status;
	e->reason = pt__reason(o->status);
	e->auth_len = a.n;
	e->target_len = t.n;
	memcpy(e->key, a.p, a.n);
	memcpy(e->key + a.n, t.p, t.n);
	e->fields = pt__fields_join(o->pre, o->headers, o->nheaders, o->f);
	e->unless = copy_unless(p);
	for (unsigned i = 0; i < p->nunless; i++)
		e->unless_lens |= 1ull << (strlen(p->unless[i]) % 64);
	/* a response made for a request with one of the fields may differ: not kept */
	if (!e->fields || !e->unless || has_unless(r, e) ||
	    !body_copy(e, o->body, o->nbody, o->total)) {
		entry_unref(e);
		return;
	}
	e->f.user_cl = -1;                  /* no fields of the call: only the prepared ones */
	e->f.cl_index = -1;
	e->f.bytes = e->fields->bytes;
	e->f.user_close = e->fields->close;
	link_entry(hw->rc, e, r->s->cfg.cache_entries);
}

/* ---- answering from it ---- */

/* Whether r has a field named in e's list. */
static bool has_unless(const struct pt_http_req *r, const struct rentry *e)
{
	struct pt_http_str n, v;

	if (!e->unless_lens)
		return false;
	for (unsigned i = 0; pt_http_req_header_at((pt_http_req_t *)r, i, &n, &v) == 0; i++) {
		if (!(e->unless_lens & 1ull << (n.n % 64)))
			continue;
		for (const char *u = e->unless; *u; u += strlen(u) + 1)
			if (strlen(u) == n.n && !strncasecmp(u, n.p, n.n))
				return true;
	}
	return false;
}

static void rc_sent(pt_http_req_t *r, void *arg, ssize_t res)
{
	struct rentry *e = arg;
	pt_http_send_fn cb = r->rc_cb;

	entry_unref(e);
	if (cb)
		cb(r, r->rc_arg, res);
}

bool pt__rcache_serve(struct pt_http_req *r)
{
	struct pt_http_str a = pt_http_req_authority(r), t = { r->head.target.p, r->head.target.n };
	unsigned m = r->head.method_id, flags = 0;
	struct rentry *e;

	if ((m != PT_METHOD_GET && m != PT_METHOD_HEAD) || r->body_mode != BODY_NONE ||
	    !(e = lookup(r->hw->rc, r, pt_conn_is_tls(r->c), a, t)) || has_unless(r, e))
		return false;
	r->rc_cb = NULL;
	r->rc_arg = NULL;
	if (r->s->cfg.on_cache_hit &&
	    r->s->cfg.on_cache_hit(r, e->status, m == PT_METHOD_HEAD ? 0 : e->body_len, &flags,
				   &r->rc_cb, &r->rc_arg, r->s->cfg.cache_arg) != 0)
		return false;
	struct pt_http_chunk ch = { .kind = PT_HTTP_CHUNK_MEM, .mem = { e->body, e->body_len } };
	struct pt_out o = { .status = e->status, .reason = e->reason, .f = &e->f,
			    .pre = e->fields, .cl = (int64_t)e->body_len, .body = &ch,
			    .nbody = e->body_len ? 1 : 0, .total = e->body_len,
			    .flags = flags & PT_HTTP_DISCONNECT, .final = true };
	r->no_body = m == PT_METHOD_HEAD;
	e->refs++;
	pt__hw_count(&r->hw->cnt.cache_hits);
	int err = r->ops->send(r, &o, rc_sent, e);
	if (err < 0) {                 /* nothing went out: the connection cannot go on */
		entry_unref(e);
		if (r->rc_cb)
			r->rc_cb(r, r->rc_arg, err);
		pt_conn_close(r->c, PT_CLOSE_ABORT);
	}
	r->head_sent = true;
	return true;
}

PT_API void pt_http_cache_flush(pt_http_server_t *s)
{
	if (s)
		atomic_fetch_add_explicit(&s->cache_gen, 1, memory_order_relaxed);
}
