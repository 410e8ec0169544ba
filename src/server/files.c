/*
 * Serving files: the portico request handler.
 *
 * GET and HEAD (OPTIONS answers the Allow list, other methods 405). The path is normalized
 * (path.c), the file looked up in the worker's open-file cache (fcache.c), then: directories
 * get a 301 to the slash form, their index file, an autoindex page or 404; a precompressed
 * variant is chosen by Accept-Encoding; conditional requests give 304/412 (cond.c); ranges
 * give 206, multipart/byteranges or 416 (range.c). Small files go out from memory, larger ones
 * as file ranges through the engine's transmit (sendfile, no user-space copy).
 * Everything runs on the connection's worker; the cache entry is referenced until the send
 * completes. On TLS connections every response may carry Strict-Transport-Security
 * (--hsts); with --redirect-https, plaintext requests get only a 301 to the https URL.
 */
#include "server/files.h"
#include "server/alog.h"
#include "server/encoding.h"
#include "server/https.h"
#include "server/range.h"
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RANGES 16
#define MAX_HEADERS 12

struct reply {                 /* the response being assembled */
	struct pt_http_header h[MAX_HEADERS];
	unsigned nh;
	char crange[96];
};

static void add(struct reply *rp, const char *name, const char *value)
{
	if (rp->nh < MAX_HEADERS && value && *value)
		rp->h[rp->nh++] = (struct pt_http_header){ name, value };
}

static bool is_tls(pt_http_req_t *r)
{
	pt_conn_t *c = pt_http_req_conn(r);

	return c && pt_conn_is_tls(c);
}

/* Every response goes through here, so the access log sees each one once, and each one on
 * a TLS connection gets the HSTS field (RFC 6797 7.2: never over plaintext). */
static int reply(struct pt_files *f, pt_http_req_t *r, unsigned status,
		 const struct pt_http_header *h, unsigned nh, const struct pt_http_chunk *c,
		 unsigned n, unsigned flags, pt_http_send_fn cb, void *arg)
{
	struct pt_http_header all[MAX_HEADERS + 1];

	if (*f->hsts && nh <= MAX_HEADERS && is_tls(r)) {
		if (nh)
			memcpy(all, h, nh * sizeof *h);
		all[nh++] = (struct pt_http_header){ "Strict-Transport-Security", f->hsts };
		h = all;
	}
	int err = pt_http_respond(r, status, NULL, h, nh, c, n, flags, cb, arg);

	if (err == 0 && f->alog) {
		uint64_t bytes = 0;
		for (unsigned i = 0; i < n && pt_http_req_method(r) != PT_HTTP_HEAD; i++)
			bytes += c[i].kind == PT_HTTP_CHUNK_MEM ? c[i].mem.len : (uint64_t)c[i].file.len;
		pt_alog_write(f->alog, r, status, bytes);
	}
	return err;
}

static void sent(pt_http_req_t *r, void *arg, ssize_t res)
{
	pt_fentry_unref(arg);
}

static void simple(struct pt_files *f, pt_http_req_t *r, unsigned status, const char *extra_name,
		   const char *extra_value)
{
	char body[64];
	int n = snprintf(body, sizeof body, "%u %s\n", status, pt_files_reason(status));
	struct pt_http_header h[2] = { { "Content-Type", "text/plain; charset=utf-8" },
				       { extra_name, extra_value } };
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, (size_t)n } };
	if (reply(f, r, status, h, extra_name ? 2 : 1, &c, 1, PT_HTTP_BUFFER, NULL, NULL) < 0)
		pt_conn_close(pt_http_req_conn(r), PT_CLOSE_ABORT);   /* never leave it unanswered */
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

static struct pt_cond_field field(pt_http_req_t *r, const char *name)
{
	struct pt_http_str s = pt_http_req_header(r, name);
	return (struct pt_cond_field){ s.p, s.n };
}

/* 304 / 412 / proceed (0), and whether a Range may be honoured. */
static int conditions(pt_http_req_t *r, const struct fentry *e, bool *use_range)
{
	struct pt_cond_req rq = {
		.if_match = field(r, "If-Match"), .if_none_match = field(r, "If-None-Match"),
		.if_modified_since = field(r, "If-Modified-Since"),
		.if_unmodified_since = field(r, "If-Unmodified-Since"),
		.if_range = field(r, "If-Range"), .has_range = pt_http_req_header(r, "Range").p != NULL,
		.method = pt_http_req_method(r) == PT_HTTP_HEAD ? PT_COND_HEAD : PT_COND_GET,
	};
	struct pt_cond_res rs = { e->etag, e->etag_len, e->st.st_mtim.tv_sec };
	return pt_cond_evaluate(&rq, &rs, use_range);
}

static void common_headers(struct pt_files *f, struct reply *rp, const struct fentry *e,
			   const struct fentry *base, unsigned enc)
{
	add(rp, "Content-Type", base->mime);
	add(rp, "ETag", e->etag);
	add(rp, "Last-Modified", e->lastmod);
	add(rp, "Cache-Control", f->cache_control);
	if (base->avail)
		add(rp, "Vary", "Accept-Encoding");
	if (enc)
		add(rp, "Content-Encoding", pt_enc_name(enc));
}

static struct pt_http_chunk body_chunk(const struct fentry *e, uint64_t off, uint64_t len)
{
	if (e->data)
		return (struct pt_http_chunk){ .kind = PT_HTTP_CHUNK_MEM, .mem = { e->data + off, len } };
	return (struct pt_http_chunk){ .kind = PT_HTTP_CHUNK_FILE,
				       .file = { e->fd, (off_t)off, (int64_t)len } };
}

/* Sends status with the given chunks, holding a reference on e until the send completes. */
static void send_entry(struct pt_files *f, pt_http_req_t *r, struct fentry *e, unsigned status, struct reply *rp,
		       const struct pt_http_chunk *c, unsigned n)
{
	e->refs++;
	if (reply(f, r, status, rp->h, rp->nh, c, n, 0, sent, e) < 0) {
		pt_fentry_unref(e);
		pt_conn_close(pt_http_req_conn(r), PT_CLOSE_ABORT);
	}
}

static void multipart(struct pt_files *f, pt_http_req_t *r, struct fentry *e, struct reply *rp,
		      const struct pt_range *rg, unsigned n, const char *ctype)
{
	uint64_t size = (uint64_t)e->st.st_size, total;
	char boundary[PT_RANGE_BOUNDARY_LEN + 1], type[96];
	struct pt_range_part parts[MAX_RANGES + 1];
	size_t cap = PT_RANGE_MULTIPART_MAX(n, PT_RANGE_BOUNDARY_LEN, strlen(ctype ? ctype : ""));
	char *buf = malloc(cap);
	struct pt_http_chunk c[2 * MAX_RANGES + 1];

	pt_range_boundary(boundary, (uint64_t)random() << 31 ^ (uint64_t)random());
	if (!buf || pt_range_multipart(rg, n, size, boundary, ctype, buf, cap, parts, &total) < 0) {
		free(buf);
		simple(f, r, 500, NULL, NULL);
		return;
	}
	snprintf(type, sizeof type, "multipart/byteranges; boundary=%s", boundary);
	rp->h[0].value = type;                     /* Content-Type is always the first header */
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		c[k++] = (struct pt_http_chunk){ .kind = PT_HTTP_CHUNK_MEM,
						 .mem = { buf + parts[i].off, parts[i].len } };
		c[k++] = body_chunk(e, rg[i].first, rg[i].last - rg[i].first + 1);
	}
	c[k++] = (struct pt_http_chunk){ .kind = PT_HTTP_CHUNK_MEM, .mem = { buf + parts[n].off, parts[n].len } };
	e->refs++;
	/* the part heads live in buf: BUFFER copies them (the file parts are not memory) */
	if (reply(f, r, 206, rp->h, rp->nh, c, k, PT_HTTP_BUFFER, sent, e) < 0) {
		pt_fentry_unref(e);
		pt_conn_close(pt_http_req_conn(r), PT_CLOSE_ABORT);
	}
	free(buf);
}

static void serve_file(struct pt_files *f, pt_http_req_t *r, struct fentry *base)
{
	struct reply rp = { .nh = 0 };
	struct fentry *e = base;
	unsigned enc = 0;
	bool use_range = false;

	if (base->avail) {
		struct pt_http_str ae = pt_http_req_header(r, "Accept-Encoding");
		enc = pt_enc_choose(ae.p, ae.n, base->avail);
		if (enc) {
			char name[PATH_MAX];
			snprintf(name, sizeof name, "%s%s", base->path, pt_enc_suffix(enc));
			e = pt_fcache_get(f->cache[pt_worker_index(pt_conn_worker(pt_http_req_conn(r)))],
					  name, strlen(name), false);
			if (!e || e->err || !S_ISREG(e->st.st_mode)) {
				pt_fentry_unref(e);
				e = base;
				enc = 0;
			}
		}
	}
	common_headers(f, &rp, e, base, enc);
	int st = conditions(r, e, &use_range);
	if (st == 304 || st == 412) {
		if (st == 412)
			rp.nh = 0;
		reply(f, r, (unsigned)st, rp.h, rp.nh, NULL, 0, 0, NULL, NULL);
		goto out;
	}
	add(&rp, "Accept-Ranges", "bytes");
	uint64_t size = (uint64_t)e->st.st_size;
	struct pt_http_str rv = pt_http_req_header(r, "Range");
	struct pt_range rg[MAX_RANGES];
	int n = use_range && rv.p ? pt_range_parse(rv.p, rv.n, size, rg, MAX_RANGES) : 0;
	if (n == -416) {
		snprintf(rp.crange, sizeof rp.crange, "bytes */%llu", (unsigned long long)size);
		simple(f, r, 416, "Content-Range", rp.crange);
	} else if (n == 1) {
		pt_range_content_range(rp.crange, sizeof rp.crange, &rg[0], size);
		add(&rp, "Content-Range", rp.crange);
		struct pt_http_chunk c = body_chunk(e, rg[0].first, rg[0].last - rg[0].first + 1);
		send_entry(f, r, e, 206, &rp, &c, 1);
	} else if (n > 1) {
		multipart(f, r, e, &rp, rg, (unsigned)n, base->mime);
	} else {
		struct pt_http_chunk c = body_chunk(e, 0, size);
		send_entry(f, r, e, 200, &rp, &c, size ? 1 : 0);
	}
out:
	if (e != base)
		pt_fentry_unref(e);
}

/* ---- directories ---- */

/* 301 to the slash form. The normalized path is decoded, so it is re-encoded; the buffer is
 * sized for the worst case (every byte escaped) plus the query, so it cannot overflow. */
static void redirect_slash(struct pt_files *f, pt_http_req_t *r, const char *norm)
{
	struct pt_http_str q = pt_http_req_query(r);
	size_t cap = 3 * strlen(norm) + q.n + 4, k = 0;
	char *loc = malloc(cap);

	if (!loc) {
		simple(f, r, 503, NULL, NULL);
		return;
	}
	for (const char *p = norm; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch <= 0x20 || ch >= 0x7f || strchr("\"#%<>?\\^`{|}", ch))
			k += (size_t)snprintf(loc + k, cap - k, "%%%02X", ch);
		else
			loc[k++] = (char)ch;
	}
	loc[k++] = '/';
	if (q.n) {
		loc[k++] = '?';
		memcpy(loc + k, q.p, q.n);
		k += q.n;
	}
	loc[k] = 0;
	simple(f, r, 301, "Location", loc);      /* BUFFER: copied before this returns */
	free(loc);
}

static void html_escape(FILE *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '&': fputs("&amp;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&#39;", out); break;
		default: fputc(*s, out);
		}
	}
}

static void url_escape(FILE *out, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    strchr("-._~", ch))
			fputc(ch, out);
		else
			fprintf(out, "%%%02X", ch);
	}
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* An HTML listing (names escaped for HTML and for URLs; dotfiles hidden). */
static void autoindex(struct pt_files *f, pt_http_req_t *r, const struct fentry *dir)
{
	/* a new open file description: a dup() would share (and exhaust) the cached offset */
	int fd = openat(dir->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	char *page = NULL, **names = NULL;
	size_t len = 0, n = 0, cap = 0;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		simple(f, r, 500, NULL, NULL);
		return;
	}
	while ((de = readdir(d)) && n < 100000) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **v = realloc(names, cap * sizeof *v);
			if (!v)
				break;
			names = v;
		}
		bool isdir = de->d_type == DT_DIR;
		size_t l = strlen(de->d_name);
		if (!(names[n] = malloc(l + 2)))
			break;
		memcpy(names[n], de->d_name, l);
		strcpy(names[n] + l, isdir ? "/" : "");
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, cmp_names);
	FILE *out = open_memstream(&page, &len);
	if (out) {
		fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ", out);
		html_escape(out, dir->path);
		fputs("</title></head>\n<body><h1>Index of ", out);
		html_escape(out, dir->path);
		fputs("</h1>\n<ul>\n<li><a href=\"../\">../</a></li>\n", out);
		for (size_t i = 0; i < n; i++) {
			fputs("<li><a href=\"", out);
			size_t l = strlen(names[i]);
			bool isdir = l && names[i][l - 1] == '/';
			if (isdir)
				names[i][l - 1] = 0;
			url_escape(out, names[i]);
			fputs(isdir ? "/\">" : "\">", out);
			html_escape(out, names[i]);
			fputs(isdir ? "/</a></li>\n" : "</a></li>\n", out);
		}
		fputs("</ul></body></html>\n", out);
		fclose(out);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (!page) {
		simple(f, r, 500, NULL, NULL);
		return;
	}
	struct pt_http_header h = { "Content-Type", "text/html; charset=utf-8" };
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { page, len } };
	reply(f, r, 200, &h, 1, &c, 1, PT_HTTP_BUFFER, NULL, NULL);
	free(page);
}

static void serve_dir(struct pt_files *f, pt_http_req_t *r, struct fentry *dir, int flags,
		      struct pt_fcache *fc)
{
	if (!(flags & PT_PATH_DIR) && strcmp(dir->path, "/")) {
		redirect_slash(f, r, dir->path);
		return;
	}
	if (*f->index) {
		char name[PATH_MAX];
		int k = snprintf(name, sizeof name, "%s%s%s", dir->path,
				 dir->path[dir->path_len - 1] == '/' ? "" : "/", f->index);
		struct fentry *e = k < (int)sizeof name ? pt_fcache_get(fc, name, (size_t)k, true) : NULL;
		if (e && !e->err && S_ISREG(e->st.st_mode)) {
			serve_file(f, r, e);
			pt_fentry_unref(e);
			return;
		}
		pt_fentry_unref(e);
	}
	if (f->autoindex)
		autoindex(f, r, dir);
	else
		simple(f, r, 404, NULL, NULL);
}

/* ---- the handler ---- */

/* --redirect-https on a plaintext connection: 301 to the same host and target on the HTTPS
 * port, or 400 without a usable Host (RFC 9112 3.2: HTTP/1.0 may omit it). */
static void redirect_https(struct pt_files *f, pt_http_req_t *r)
{
	struct pt_http_str a = pt_http_req_authority(r), p = pt_http_req_path(r),
			   q = pt_http_req_query(r);
	size_t cap = PT_HTTPS_LOCATION_MAX(a.n, p.n, q.n);
	char *loc = malloc(cap);
	int n;

	if (!loc) {
		simple(f, r, 503, "Retry-After", "1");
		return;
	}
	n = pt_https_location(a, p, q, f->https_port, loc, cap);
	if (n < 0)
		simple(f, r, 400, NULL, NULL);
	else
		simple(f, r, 301, "Location", loc);   /* BUFFER: copied before this returns */
	free(loc);
}

static bool method_ok(struct pt_files *f, pt_http_req_t *r)
{
	enum pt_http_method m = pt_http_req_method(r);

	if (m == PT_HTTP_GET || m == PT_HTTP_HEAD)
		return true;
	if (m == PT_HTTP_OPTIONS) {
		struct pt_http_header h = { "Allow", "GET, HEAD, OPTIONS" };
		reply(f, r, 204, &h, 1, NULL, 0, 0, NULL, NULL);
	} else {
		simple(f, r, 405, "Allow", "GET, HEAD, OPTIONS");
	}
	return false;
}

void pt_files_handle(pt_http_req_t *r, void *arg)
{
	struct pt_files *f = arg;
	char norm[PATH_MAX];
	size_t nlen;

	if (f->redirect_https && !is_tls(r)) {
		redirect_https(f, r);
		return;
	}
	if (!method_ok(f, r))
		return;
	struct pt_http_str p = pt_http_req_path(r);
	int flags = pt_path_normalize(p.p, p.n, norm, sizeof norm, &nlen);
	if (flags < 0) {
		simple(f, r, (unsigned)-flags, NULL, NULL);
		return;
	}
	if ((flags & PT_PATH_DOTFILE)) {         /* .git, .env ...: as if absent */
		simple(f, r, 404, NULL, NULL);
		return;
	}
	struct pt_fcache *fc = f->cache[pt_worker_index(pt_conn_worker(pt_http_req_conn(r)))];
	size_t keylen = nlen > 1 && norm[nlen - 1] == '/' ? nlen - 1 : nlen;
	struct fentry *e = pt_fcache_get(fc, norm, keylen, true);
	if (!e) {
		simple(f, r, 503, NULL, NULL);
		return;
	}
	if (pt_fcache_transient(e->err))
		simple(f, r, 503, "Retry-After", "1");
	else if (e->err)
		simple(f, r, error_status(e->err), NULL, NULL);
	else if (S_ISDIR(e->st.st_mode))
		serve_dir(f, r, e, flags, fc);
	else if (flags & PT_PATH_DIR)            /* "file.txt/" */
		simple(f, r, 404, NULL, NULL);
	else
		serve_file(f, r, e);
	pt_fentry_unref(e);
}

const char *pt_files_reason(unsigned status)
{
	switch (status) {
	case 301: return "Moved Permanently";
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

int pt_files_init(struct pt_files *f, unsigned workers, int rootfd)
{
	if (!(f->cache = calloc(workers, sizeof *f->cache)))
		return -ENOMEM;
	f->nworkers = workers;
	for (unsigned i = 0; i < workers; i++)
		if (!(f->cache[i] = pt_fcache_new(rootfd, &f->opts)))
			return -ENOMEM;
	return 0;
}

void pt_files_fini(struct pt_files *f)
{
	for (unsigned i = 0; f->cache && i < f->nworkers; i++)
		pt_fcache_free(f->cache[i]);
	free(f->cache);
	f->cache = NULL;
}
