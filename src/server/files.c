/*
 * Serving files: the portico request handler.
 *
 * The site is chosen by the Host field (vhost.c) in the snapshot current when the request
 * starts. GET and HEAD (OPTIONS answers the Allow list, or a CORS preflight; other methods
 * 405). The path is normalized (path.c); a redirect rule may answer it (rules.c); the file is
 * looked up in the worker's open-file cache of the site (fcache.c), then: directories get a
 * 301 to the slash form, their index file, an autoindex page or 404; a missing path without
 * an extension gets the site's fallback file; a precompressed variant on disk, or else a
 * compressed copy from the compress-once cache (zcache.c), is chosen by Accept-Encoding;
 * conditional requests give 304/412 (cond.c); ranges give 206, multipart/byteranges or 416
 * (range.c), on the representation chosen. The header rules of the site are added to 200,
 * 206 and 304 responses; an error status gets the site's error page when it has one.
 * Small files go out from memory, larger ones as file ranges through the engine's transmit
 * (sendfile, no user-space copy), compressed copies from the shared cache's memory.
 * Everything runs on the connection's worker; the cache entry or compressed copy is
 * referenced until the send completes. On TLS connections every response may carry
 * Strict-Transport-Security (--hsts); with --redirect-https, plaintext requests get only a
 * 301 to the https URL.
 */
#include "server/files.h"
#include "server/compress.h"
#include "server/alog.h"
#include "server/counter.h"
#include "server/dirlist.h"
#include "server/encoding.h"
#include "server/https.h"
#include "server/obs.h"
#include "server/range.h"
#include "server/rules.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_RANGES 16
#define MAX_HEADERS 40          /* built-in fields plus the header rules that apply */

struct rq {                     /* the request being answered */
	struct pt_files *f;
	pt_http_req_t *r;
	const struct pt_site *site;
	struct pt_fcache *fc;       /* the site's cache of this worker (NULL: out of memory) */
	unsigned w;                 /* the worker */
	uint64_t t0;                /* the worker's clock at the handler call (us), with f->obs */
	struct pt_wmetrics *wm;     /* the worker's counters, or NULL */
	bool stale;                 /* the connection predates the configuration: close it */
	bool copy;                  /* the connection's sends copy the bytes (TLS in user space;
				       set by send_ranges for files that are not small) */
	struct pt_http_cache_policy pol; /* offered to the response cache (offer) */
	bool direct;                /* the file is the request path's own (not an index page or
				       the fallback): its 200 may go to the response cache */
};

struct reply {                  /* the response being assembled */
	struct pt_http_header h[MAX_HEADERS];
	unsigned nh;
	char crange[96];
};

struct rep {                    /* the representation sent: a file's bytes or a copy */
	struct fentry *e;           /* the file whose bytes go out (the file or its .br ...) */
	struct pt_zbuf *zb;         /* or this compressed copy (referenced) */
	const char *etag;
	size_t etag_len;
	uint64_t size;
	unsigned enc;
	bool vary;                  /* the response depends on Accept-Encoding */
};

static void add(struct reply *rp, const char *name, const char *value)
{
	if (rp->nh < MAX_HEADERS && value && *value)
		rp->h[rp->nh++] = (struct pt_http_header){ name, value };
}

/* A header rule: replaces a field of the same name (an earlier rule's, Content-Type or
 * Cache-Control), else adds it. */
static void set(struct reply *rp, const char *name, const char *value)
{
	for (unsigned i = 0; i < rp->nh; i++)
		if (!strcasecmp(rp->h[i].name, name)) {
			rp->h[i].value = value;
			return;
		}
	add(rp, name, value);
}

static bool is_tls(pt_http_req_t *r)
{
	pt_conn_t *c = pt_http_req_conn(r);

	return c && pt_conn_is_tls(c);
}

/* Whether r's connection encrypts in user space, so file bytes are read and copied anyway:
 * then bytes in memory beat a file range (a pread per 64 KiB, or per HTTP/2 frame); without
 * TLS or with kernel TLS, sendfile sends larger files without a copy. */
static bool sends_copy(pt_http_req_t *r)
{
	struct pt_tls_info ti;

	return is_tls(r) && pt_conn_tls_info(pt_http_req_conn(r), &ti) == 0 && !ti.ktls;
}

/* The fields every response of the site gets: HSTS on TLS (RFC 6797 7.2: never over
 * plaintext) and CORS. */
static unsigned extra_fields(struct rq *q, struct pt_http_header *h, unsigned nh)
{
	struct pt_http_str origin = { NULL, 0 };
	bool vary = false;
	const char *acao = NULL;

	if (q->site->ncors) {                  /* no header lookup on the common path */
		origin = pt_http_req_header(q->r, "Origin");
		acao = pt_rules_cors(q->site, origin, &vary);
	}

	if (*q->f->hsts && is_tls(q->r))
		h[nh++] = (struct pt_http_header){ "Strict-Transport-Security", q->f->hsts };
	if (acao)
		h[nh++] = (struct pt_http_header){ "Access-Control-Allow-Origin", acao };
	if (vary)
		h[nh++] = (struct pt_http_header){ "Vary", "Origin" };
	return nh;
}

static uint64_t body_bytes(struct rq *q, const struct pt_http_chunk *c, unsigned n)
{
	uint64_t bytes = 0;

	for (unsigned i = 0; i < n && pt_http_req_method(q->r) != PT_HTTP_HEAD; i++)
		bytes += c[i].kind == PT_HTTP_CHUNK_MEM ? c[i].mem.len : (uint64_t)c[i].file.len;
	return bytes;
}

/* Every response goes through here, so the access log and the counters see each one once:
 * a Combined line now, counters and a JSON line when the send completes (obs.h). While
 * draining, or when the connection predates a reload, each response closes its connection. */
static int reply(struct rq *q, unsigned status, const pt_http_fields_t *pre,
		 const struct pt_http_header *h, unsigned nh, const struct pt_http_chunk *c,
		 unsigned n, unsigned flags, pt_http_send_fn cb, void *arg)
{
	struct pt_http_header all[MAX_HEADERS + 3];
	struct pt_obs_req *o = NULL;

	if (nh > MAX_HEADERS)
		nh = MAX_HEADERS;
	if (nh)
		memcpy(all, h, nh * sizeof *h);
	nh = extra_fields(q, all, nh);
	if (q->stale || atomic_load_explicit(&q->f->draining, memory_order_relaxed))
		flags |= PT_HTTP_DISCONNECT;
	if (q->f->obs && (o = pt_obs_begin(q->f->obs, q->r, q->w, q->t0, status,
					   body_bytes(q, c, n), cb, arg)))
		cb = pt_obs_sent, arg = o;
	int err = pt_http_respond_fields(q->r, status, pre, all, nh, c, n, flags, cb, arg);

	if (err < 0 && o)
		pt_obs_cancel(o);
	if (err == 0 && q->f->alog && !pt_alog_is_json(q->f->alog))
		pt_alog_write(q->f->alog, q->r, status, body_bytes(q, c, n));
	return err;
}

static void sent(pt_http_req_t *r, void *arg, ssize_t res)
{
	pt_fentry_unref(arg);
}

static void zsent(pt_http_req_t *r, void *arg, ssize_t res)
{
	pt_zbuf_unref(arg);
}

static struct pt_http_chunk entry_chunk(const struct rq *q, const struct fentry *e, uint64_t off,
				       uint64_t len)
{
	if (e->data && (e->small || q->copy))
		return (struct pt_http_chunk){ .kind = PT_HTTP_CHUNK_MEM, .mem = { e->data + off, len } };
	return (struct pt_http_chunk){ .kind = PT_HTTP_CHUNK_FILE,
				       .file = { e->fd, (off_t)off, (int64_t)len } };
}

static struct pt_http_chunk body_chunk(const struct rq *q, const struct rep *p, uint64_t off,
				      uint64_t len)
{
	if (p->zb)
		return (struct pt_http_chunk){ .kind = PT_HTTP_CHUNK_MEM,
					       .mem = { p->zb->data + off, len } };
	return entry_chunk(q, p->e, off, len);
}

/* Sends with a reference on what the chunks point into, dropped when the send completes.
 * pre: prepared fields that replace rp's (NULL: rp's). */
static void send_held(struct rq *q, const struct rep *p, unsigned status,
		      const pt_http_fields_t *pre, struct reply *rp, const struct pt_http_chunk *c,
		      unsigned n, unsigned flags)
{
	if (p->zb)
		pt_zbuf_ref(p->zb);
	else
		p->e->refs++;
	if (reply(q, status, pre, rp->h, pre ? 0 : rp->nh, c, n, flags, p->zb ? zsent : sent,
		  p->zb ? (void *)p->zb : (void *)p->e) < 0) {
		if (p->zb)
			pt_zbuf_unref(p->zb);
		else
			pt_fentry_unref(p->e);
		pt_conn_close(pt_http_req_conn(q->r), PT_CLOSE_ABORT);
	}
}

/* The site's page for an error status: true when it was sent. */
static bool error_page(struct rq *q, unsigned status, const char *xname, const char *xvalue)
{
	const char *path = status >= 400 ? pt_rules_error_page(q->site, status) : NULL;
	struct fentry *e = path && q->fc ? pt_fcache_get(q->fc, path, strlen(path), false) : NULL;
	struct reply rp = { .nh = 0 };
	bool ok = e && !e->err && S_ISREG(e->st.st_mode);

	if (ok) {
		struct rep p = { .e = e };
		struct pt_http_chunk c = entry_chunk(q, e, 0, (uint64_t)e->st.st_size);
		add(&rp, "Content-Type", e->mime);
		if (xname)
			add(&rp, xname, xvalue);
		send_held(q, &p, status, NULL, &rp, &c, e->st.st_size ? 1 : 0, 0);
	}
	pt_fentry_unref(e);
	return ok;
}

static void simple(struct rq *q, unsigned status, const char *extra_name,
		   const char *extra_value)
{
	char body[64];

	if (error_page(q, status, extra_name, extra_value))
		return;
	int n = snprintf(body, sizeof body, "%u %s\n", status, pt_files_reason(status));
	struct pt_http_header h[2] = { { "Content-Type", "text/plain; charset=utf-8" },
				       { extra_name, extra_value } };
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, (size_t)n } };
	if (reply(q, status, NULL, h, extra_name ? 2 : 1, &c, 1, PT_HTTP_BUFFER, NULL, NULL) < 0)
		pt_conn_close(pt_http_req_conn(q->r), PT_CLOSE_ABORT); /* never leave it unanswered */
}

static unsigned error_status(int err)
{
	switch (err) {
	case -ENOENT: case -ENOTDIR: case -ELOOP: case -EXDEV: case -ENAMETOOLONG:
		return 404;
	case -EACCES: case -EPERM:
		return 403;
	default:
		return 500;
	}
}

/* The request fields the file path reads, found in one pass over the head instead of one
 * lookup each (the first of a repeated field, as pt_http_req_header gives it). */
enum { RF_IF_MATCH, RF_IF_NONE_MATCH, RF_IF_MODIFIED, RF_IF_UNMODIFIED, RF_IF_RANGE, RF_RANGE,
       RF_N };

struct reqf {
	struct pt_http_str v[RF_N];
};

static void scan_fields(pt_http_req_t *r, struct reqf *f)
{
	static const struct { const char *name; size_t len; } want[RF_N] = {
		[RF_IF_MATCH] = { "If-Match", 8 }, [RF_IF_NONE_MATCH] = { "If-None-Match", 13 },
		[RF_IF_MODIFIED] = { "If-Modified-Since", 17 },
		[RF_IF_UNMODIFIED] = { "If-Unmodified-Since", 19 },
		[RF_IF_RANGE] = { "If-Range", 8 }, [RF_RANGE] = { "Range", 5 },
	};
	struct pt_http_str n, v;

	memset(f, 0, sizeof *f);
	for (unsigned i = 0; pt_http_req_header_at(r, i, &n, &v) == 0; i++)
		for (unsigned k = 0; k < RF_N; k++)
			if (n.n == want[k].len && !f->v[k].p && !strncasecmp(n.p, want[k].name, n.n)) {
				f->v[k] = v;
				break;
			}
}

static struct pt_cond_field cf(const struct reqf *f, unsigned k)
{
	return (struct pt_cond_field){ f->v[k].p, f->v[k].n };
}

/* 304 / 412 / proceed (0), and whether a Range may be honoured. */
static int conditions(pt_http_req_t *r, const struct reqf *f, const struct rep *p, time_t mtime,
		      bool *use_range)
{
	struct pt_cond_req rq = {
		.if_match = cf(f, RF_IF_MATCH), .if_none_match = cf(f, RF_IF_NONE_MATCH),
		.if_modified_since = cf(f, RF_IF_MODIFIED),
		.if_unmodified_since = cf(f, RF_IF_UNMODIFIED),
		.if_range = cf(f, RF_IF_RANGE), .has_range = f->v[RF_RANGE].p != NULL,
		.method = pt_http_req_method(r) == PT_HTTP_HEAD ? PT_COND_HEAD : PT_COND_GET,
	};
	struct pt_cond_res rs = { p->etag, p->etag_len, mtime };
	return pt_cond_evaluate(&rq, &rs, use_range);
}

/* The fields of a 200, 206 or 304 for file base sent as p, then the site's header rules
 * for the file's path. */
static void common_headers(struct rq *q, struct reply *rp, const struct rep *p,
			   const struct fentry *base)
{
	const struct pt_header_rule *hr;
	const char *name = strrchr(base->path, '/');

	add(rp, "Content-Type", base->mime);
	add(rp, "ETag", p->etag);
	add(rp, "Last-Modified", base->lastmod);
	add(rp, "Cache-Control", q->site->cache_control);
	if (p->vary)
		add(rp, "Vary", "Accept-Encoding");
	if (p->enc)
		add(rp, "Content-Encoding", pt_enc_name(p->enc));
	name = name ? name + 1 : base->path;
	for (unsigned i = 0; (hr = pt_rules_header_at(q->site, i)); i++)
		if (pt_site_pattern_match(hr, base->path, name))
			set(rp, hr->name, hr->value);
}

static void multipart(struct rq *q, const struct rep *p, struct reply *rp,
		      const struct pt_range *rg, unsigned n, const char *ctype)
{
	char boundary[PT_RANGE_BOUNDARY_LEN + 1], type[96];
	struct pt_range_part parts[MAX_RANGES + 1];
	size_t cap = PT_RANGE_MULTIPART_MAX(n, PT_RANGE_BOUNDARY_LEN, strlen(ctype ? ctype : ""));
	char *buf = malloc(cap);
	struct pt_http_chunk c[2 * MAX_RANGES + 1];
	uint64_t total;

	pt_range_boundary(boundary, (uint64_t)random() << 31 ^ (uint64_t)random());
	if (!buf || pt_range_multipart(rg, n, p->size, boundary, ctype, buf, cap, parts, &total) < 0) {
		free(buf);
		simple(q, 500, NULL, NULL);
		return;
	}
	snprintf(type, sizeof type, "multipart/byteranges; boundary=%s", boundary);
	rp->h[0].value = type;                     /* Content-Type is always the first header */
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		c[k++] = (struct pt_http_chunk){ .kind = PT_HTTP_CHUNK_MEM,
						 .mem = { buf + parts[i].off, parts[i].len } };
		c[k++] = body_chunk(q, p, rg[i].first, rg[i].last - rg[i].first + 1);
	}
	c[k++] = (struct pt_http_chunk){ .kind = PT_HTTP_CHUNK_MEM, .mem = { buf + parts[n].off, parts[n].len } };
	/* the part heads live in buf: BUFFER copies them (the file parts are not memory) */
	send_held(q, p, 206, NULL, rp, c, k, PT_HTTP_BUFFER);
	free(buf);
}

/* A precompressed file on disk (file.br ...) for the request, if one exists and is
 * acceptable: into p. */
static void choose_variant(struct rq *q, struct fentry *base, struct rep *p)
{
	struct pt_http_str ae = pt_http_req_header(q->r, "Accept-Encoding");
	unsigned enc = pt_enc_choose(ae.p, ae.n, base->avail);
	char name[PATH_MAX];
	struct fentry *e;

	p->vary = true;
	if (!enc || !q->fc)
		return;
	snprintf(name, sizeof name, "%s%s", base->path, pt_enc_suffix(enc));
	e = pt_fcache_get(q->fc, name, strlen(name), false);
	if (!e || e->err || !S_ISREG(e->st.st_mode)) {
		pt_fentry_unref(e);
		return;
	}
	*p = (struct rep){ e, NULL, e->etag, e->etag_len, (uint64_t)e->st.st_size, enc, true };
}

/* The compressed copy for the request, if the site compresses this type and the copy is
 * ready (else the copy is queued and identity goes out this time): into p. */
static void choose_copy(struct rq *q, struct fentry *base, struct rep *p)
{
	struct pt_http_str ae;
	unsigned enc;
	struct pt_zbuf *zb;

	if (!q->f->zc)
		return;
	if (base->compressible < 0)          /* the entry belongs to this site's cache */
		base->compressible = pt_rules_compressible(q->site, base->mime);
	if (!base->compressible)
		return;
	p->vary = true;
	ae = pt_http_req_header(q->r, "Accept-Encoding");
	enc = pt_enc_choose(ae.p, ae.n, pt_compress_encs);
	if (!enc)
		return;
	zb = pt_zcache_get(q->f->zc, &base->st, base->etag, enc, base->fd);
	if (q->wm)
		pt_count(zb ? &q->wm->zcopy_hit : &q->wm->zcopy_miss, 1);
	if (!zb)
		return;
	*p = (struct rep){ base, zb, zb->etag, zb->etag_len, zb->len, enc, true };
}

/* pre: the prepared fields of a whole 200 (then no range is asked for), or NULL: rp's. */
static void send_ranges(struct rq *q, struct rep *p, const pt_http_fields_t *pre,
			struct reply *rp, const char *ctype, struct pt_http_str rv, bool use_range)
{
	struct pt_range rg[MAX_RANGES];
	int n = use_range && rv.p ? pt_range_parse(rv.p, rv.n, p->size, rg, MAX_RANGES) : 0;

	/* decided here, not per request: only files past the small ones can take this path */
	if (!p->zb && !p->e->small && q->fc && (q->copy = sends_copy(q->r)))
		pt_fcache_bytes(q->fc, p->e);

	if (n == -416) {
		snprintf(rp->crange, sizeof rp->crange, "bytes */%llu", (unsigned long long)p->size);
		simple(q, 416, "Content-Range", rp->crange);
	} else if (n == 1) {
		pt_range_content_range(rp->crange, sizeof rp->crange, &rg[0], p->size);
		add(rp, "Content-Range", rp->crange);
		struct pt_http_chunk c = body_chunk(q, p, rg[0].first, rg[0].last - rg[0].first + 1);
		send_held(q, p, 206, NULL, rp, &c, 1, 0);
	} else if (n > 1) {
		multipart(q, p, rp, rg, (unsigned)n, ctype);
	} else {
		struct pt_http_chunk c = body_chunk(q, p, 0, p->size);
		send_held(q, p, 200, pre, rp, &c, p->size ? 1 : 0, 0);
	}
}

/* The fields of a whole 200 of base itself (p: no encoding chosen): common_headers and
 * Accept-Ranges, checked and formatted once per cache entry. What they depend on is fixed
 * for the entry (its file, the site's rules and its compression of the type), except
 * whether precompressed variants exist, and fcache.c drops them when that changes. NULL
 * when they cannot be made: the caller builds the fields itself. */
static const pt_http_fields_t *plain_fields(struct rq *q, const struct rep *p,
					    struct fentry *base)
{
	struct reply rp;
	int err;

	if (!base->plain) {
		rp.nh = 0;
		common_headers(q, &rp, p, base);
		add(&rp, "Accept-Ranges", "bytes");
		base->plain = pt_http_fields_new(rp.h, rp.nh, &err);
	}
	return base->plain;
}

/* The request fields a whole 200 of a file depends on: the conditionals and Range always,
 * Accept-Encoding when the file has other encodings, Origin when the site answers CORS. */
static const char *const vary_none[] = { "If-Match", "If-None-Match", "If-Modified-Since",
	"If-Unmodified-Since", "If-Range", "Range", "Accept-Encoding", "Origin" };
static const char *const vary_origin[] = { "If-Match", "If-None-Match", "If-Modified-Since",
	"If-Unmodified-Since", "If-Range", "Range", "Origin" };

/* Offers the whole 200 of base about to go out to the response cache (http.h), for as long
 * as the open-file cache would answer from the same entry: a small file, sent from memory,
 * on a connection that stays open, looked up for the request's own path. */
static void offer(struct rq *q, const struct rep *p, const struct fentry *base)
{
	static const struct { const char *const *names; unsigned n; } lists[4] = {
		{ vary_none, 6 }, { vary_none, 7 }, { vary_origin, 7 }, { vary_none, 8 },
	};
	unsigned ttl = q->fc ? pt_fcache_fresh_ms(q->fc, base) : 0,
		 k = (p->vary ? 1 : 0) | (q->site->ncors ? 2 : 0);

	if (!q->direct || !base->small || !base->data || !ttl || q->stale ||
	    atomic_load_explicit(&q->f->draining, memory_order_relaxed))
		return;
	q->pol = (struct pt_http_cache_policy){ ttl, lists[k].names, lists[k].n };
	pt_http_req_cache(q->r, &q->pol);       /* read when the response is sent, below */
}

static void serve_file(struct rq *q, struct fentry *base)
{
	struct rep p = { base, NULL, base->etag, base->etag_len, (uint64_t)base->st.st_size, 0,
			 false };
	struct reply rp;                   /* not zeroed: h[] is read up to nh only */
	struct reqf rf;
	bool use_range = false;
	const pt_http_fields_t *pre = NULL;

	rp.nh = 0;
	scan_fields(q->r, &rf);

	if (base->avail)
		choose_variant(q, base, &p);       /* files on disk win over compressed copies */
	else
		choose_copy(q, base, &p);
	int st = conditions(q->r, &rf, &p, base->st.st_mtim.tv_sec, &use_range);
	if (st == 304) {
		common_headers(q, &rp, &p, base);
		reply(q, 304, NULL, rp.h, rp.nh, NULL, 0, 0, NULL, NULL);
	} else if (st == 412) {
		reply(q, 412, NULL, NULL, 0, NULL, 0, 0, NULL, NULL);
	} else {
		if (p.e == base && !p.zb && !(use_range && rf.v[RF_RANGE].p))
			pre = plain_fields(q, &p, base);
		if (pre)
			offer(q, &p, base);
		if (!pre) {
			common_headers(q, &rp, &p, base);
			add(&rp, "Accept-Ranges", "bytes");
		}
		if (q->wm)
			pt_metrics_encoding(q->wm, p.enc);
		send_ranges(q, &p, pre, &rp, base->mime, rf.v[RF_RANGE], use_range);
	}
	if (p.e != base)
		pt_fentry_unref(p.e);
	pt_zbuf_unref(p.zb);
}

/* ---- directories ---- */

/* 301 to the slash form. The normalized path is decoded, so it is re-encoded; the buffer is
 * sized for the worst case (every byte escaped) plus the query, so it cannot overflow. */
static void redirect_slash(struct rq *q, const char *norm)
{
	struct pt_http_str qs = pt_http_req_query(q->r);
	size_t cap = 3 * strlen(norm) + qs.n + 4;
	char *loc = malloc(cap);
	int k;

	if (!loc || (k = pt_rules_encode_path(norm, loc, cap)) < 0) {
		free(loc);
		simple(q, 503, NULL, NULL);
		return;
	}
	loc[k++] = '/';
	if (qs.n) {
		loc[k++] = '?';
		memcpy(loc + k, qs.p, qs.n);
		k += (int)qs.n;
	}
	loc[k] = 0;
	simple(q, 301, "Location", loc);         /* BUFFER: copied before this returns */
	free(loc);
}

/* An HTML listing, with the header rules of the directory's path. */
static void autoindex(struct rq *q, const struct fentry *dir)
{
	struct reply rp = { .nh = 0 };
	const struct pt_header_rule *hr;
	char *page;
	size_t len;

	if (pt_dirlist_page(dir->fd, dir->path, &page, &len) < 0) {
		simple(q, 500, NULL, NULL);
		return;
	}
	add(&rp, "Content-Type", "text/html; charset=utf-8");
	for (unsigned i = 0; (hr = pt_rules_header_at(q->site, i)); i++)
		if (pt_site_pattern_match(hr, dir->path, ""))
			set(&rp, hr->name, hr->value);
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { page, len } };
	reply(q, 200, NULL, rp.h, rp.nh, &c, 1, PT_HTTP_BUFFER, NULL, NULL);
	free(page);
}

static void serve_dir(struct rq *q, struct fentry *dir, int flags)
{
	const char *index = q->site->index;

	if (!(flags & PT_PATH_DIR) && strcmp(dir->path, "/")) {
		redirect_slash(q, dir->path);
		return;
	}
	if (*index) {
		char name[PATH_MAX];
		int k = snprintf(name, sizeof name, "%s%s%s", dir->path,
				 dir->path[dir->path_len - 1] == '/' ? "" : "/", index);
		struct fentry *e = k < (int)sizeof name ? pt_fcache_get(q->fc, name, (size_t)k, true)
							: NULL;
		if (e && !e->err && S_ISREG(e->st.st_mode)) {
			serve_file(q, e);
			pt_fentry_unref(e);
			return;
		}
		pt_fentry_unref(e);
	}
	if (q->site->autoindex)
		autoindex(q, dir);
	else
		simple(q, 404, NULL, NULL);
}

/* ---- the handler ---- */

/* --redirect-https on a plaintext connection: 301 to the same host and target on the HTTPS
 * port, or 400 without a usable Host (RFC 9112 3.2: HTTP/1.0 may omit it). */
static void redirect_https(struct rq *q)
{
	struct pt_http_str a = pt_http_req_authority(q->r), p = pt_http_req_path(q->r),
			   qs = pt_http_req_query(q->r);
	size_t cap = PT_HTTPS_LOCATION_MAX(a.n, p.n, qs.n);
	char *loc = malloc(cap);
	int n;

	if (!loc) {
		simple(q, 503, "Retry-After", "1");
		return;
	}
	n = pt_https_location(a, p, qs, q->f->https_port, loc, cap);
	if (n < 0)
		simple(q, 400, NULL, NULL);
	else
		simple(q, 301, "Location", loc);   /* BUFFER: copied before this returns */
	free(loc);
}

/* The site's redirect rules: true when one answered. */
static bool redirect_rule(struct rq *q, const char *norm, size_t nlen)
{
	struct pt_http_str qs = pt_http_req_query(q->r);
	unsigned code;

	if (pt_rules_redirect(q->site, norm, qs, NULL, 0, &code) == 0)
		return false;       /* no rule matches (every request asks): no buffer */
	size_t cap = PT_RULES_LOCATION_MAX(nlen, qs.n);
	char *loc = malloc(cap);
	int n = loc ? pt_rules_redirect(q->site, norm, qs, loc, cap, &code) : -ENOMEM;

	if (n > 0)
		simple(q, code, "Location", loc);
	else if (n < 0)
		simple(q, 500, NULL, NULL);
	free(loc);
	return n != 0;
}

/* OPTIONS: a CORS preflight (Origin and Access-Control-Request-Method) gets 204 with the
 * methods allowed when the site allows the origin; any other OPTIONS the Allow list. */
static void options(struct rq *q)
{
	struct pt_http_str acrh = pt_http_req_header(q->r, "Access-Control-Request-Headers");
	struct pt_http_header h[4] = { { "Allow", "GET, HEAD, OPTIONS" } };
	char hdrs[256];
	unsigned n = 1;
	bool vary;

	if (pt_http_req_header(q->r, "Access-Control-Request-Method").p &&
	    pt_rules_cors(q->site, pt_http_req_header(q->r, "Origin"), &vary)) {
		h[n++] = (struct pt_http_header){ "Access-Control-Allow-Methods", "GET, HEAD" };
		h[n++] = (struct pt_http_header){ "Access-Control-Max-Age", "86400" };
		if (acrh.p && acrh.n < sizeof hdrs) {  /* any request header: the content is public */
			memcpy(hdrs, acrh.p, acrh.n);
			hdrs[acrh.n] = '\0';
			h[n++] = (struct pt_http_header){ "Access-Control-Allow-Headers", hdrs };
		}
	}
	reply(q, 204, NULL, h, n, NULL, 0, 0, NULL, NULL);
}

static bool method_ok(struct rq *q)
{
	enum pt_http_method m = pt_http_req_method(q->r);

	if (m == PT_HTTP_GET || m == PT_HTTP_HEAD)
		return true;
	if (m == PT_HTTP_OPTIONS)
		options(q);
	else
		simple(q, 405, "Allow", "GET, HEAD, OPTIONS");
	return false;
}

/* A missing path without an extension: the site's fallback file with 200, if it has one. */
static bool fallback(struct rq *q, const char *norm)
{
	const char *fb = q->site->fallback;
	struct fentry *e;
	bool ok;

	if (!*fb || !pt_rules_no_extension(norm))
		return false;
	e = pt_fcache_get(q->fc, fb, strlen(fb), true);
	ok = e && !e->err && S_ISREG(e->st.st_mode);
	if (ok)
		serve_file(q, e);
	pt_fentry_unref(e);
	return ok;
}

static void serve_path(struct rq *q, const char *norm, size_t nlen, int flags)
{
	size_t keylen = nlen > 1 && norm[nlen - 1] == '/' ? nlen - 1 : nlen;
	struct fentry *e = pt_fcache_get(q->fc, norm, keylen, true);

	if (!e) {
		simple(q, 503, NULL, NULL);
		return;
	}
	if (pt_fcache_transient(e->err)) {
		simple(q, 503, "Retry-After", "1");
	} else if (e->err) {
		if (error_status(e->err) != 404 || !fallback(q, norm))
			simple(q, error_status(e->err), NULL, NULL);
	} else if (S_ISDIR(e->st.st_mode))
		serve_dir(q, e, flags);
	else if (flags & PT_PATH_DIR)            /* "file.txt/" */
		simple(q, 404, NULL, NULL);
	else {
		q->direct = true;
		serve_file(q, e);
	}
	pt_fentry_unref(e);
}

void pt_files_handle(pt_http_req_t *r, void *arg)
{
	struct pt_files *f = arg;
	pt_worker_t *wk = pt_conn_worker(pt_http_req_conn(r));
	unsigned w = pt_worker_index(wk);
	uint64_t now = pt_worker_now_ms(wk);
	bool stale;
	const struct pt_snapshot *snap = pt_vhosts_for_conn(&f->vh, w,
		now - pt_conn_age_ms(pt_http_req_conn(r)), now, &stale);
	struct pt_http_str host = pt_http_req_authority(r);
	struct rq q = { f, r, pt_snapshot_site(snap, host.p, host.n), NULL, w, 0, NULL, stale, false,
		      { 0, NULL, 0 }, false };
	char norm[PATH_MAX];
	size_t nlen;

	q.fc = pt_site_cache(q.site, w);
	if (f->obs)
		q.t0 = pt_obs_start(f->obs, w, wk);
	if (f->metrics && (q.wm = pt_metrics_worker(f->metrics, w)) && q.fc)
		pt_fcache_set_stats(q.fc, &q.wm->fcache);
	if (f->redirect_https && !is_tls(r)) {
		redirect_https(&q);
		return;
	}
	if (!method_ok(&q))
		return;
	struct pt_http_str p = pt_http_req_path(r);
	int flags = pt_path_normalize(p.p, p.n, norm, sizeof norm, &nlen);
	if (flags < 0)
		simple(&q, (unsigned)-flags, NULL, NULL);
	else if (flags & PT_PATH_DOTFILE)        /* .git, .env ...: as if absent */
		simple(&q, 404, NULL, NULL);
	else if (redirect_rule(&q, norm, nlen))
		;
	else if (!q.fc)
		simple(&q, 503, "Retry-After", "1");
	else
		serve_path(&q, norm, nlen, flags);
}

int pt_files_cache_hit(pt_http_req_t *r, unsigned status, uint64_t bytes, unsigned *flags,
		       pt_http_send_fn *cb, void **arg, void *ctx)
{
	struct pt_files *f = ctx;
	pt_worker_t *wk = pt_conn_worker(pt_http_req_conn(r));
	unsigned w = pt_worker_index(wk);
	uint64_t now = pt_worker_now_ms(wk);
	bool stale;
	struct pt_obs_req *o;

	pt_vhosts_for_conn(&f->vh, w, now - pt_conn_age_ms(pt_http_req_conn(r)), now, &stale);
	if (stale || atomic_load_explicit(&f->draining, memory_order_relaxed))
		return -1;                         /* the handler answers, and closes */
	if (f->obs && (o = pt_obs_begin(f->obs, r, w, pt_obs_start(f->obs, w, wk), status, bytes,
					NULL, NULL))) {
		*cb = pt_obs_sent;
		*arg = o;
	}
	if (f->alog && !pt_alog_is_json(f->alog))
		pt_alog_write(f->alog, r, status, bytes);
	if (f->metrics)
		pt_metrics_encoding(pt_metrics_worker(f->metrics, w), 0);   /* an identity body */
	return 0;
}

const char *pt_files_reason(unsigned status)
{
	switch (status) {
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

int pt_files_init(struct pt_files *f, unsigned workers, struct pt_snapshot *s, unsigned keep_ms)
{
	return pt_vhosts_init(&f->vh, s, workers, keep_ms);
}

void pt_files_fini(struct pt_files *f)
{
	pt_vhosts_fini(&f->vh);
}
