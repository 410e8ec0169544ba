/*
 * Responses, whatever the protocol: what an application send means. The application's header
 * fields are checked (tokens, no CR/LF/NUL, no framing or Date: those belong to the layer),
 * fragments are resolved to memory chunks holding a reference, the body is counted, and the
 * declared length is kept: Content-Length given by the application, or the whole body of a
 * final send. The protocol (r->ops->send: HTTP/1.1 in hsend.c) then frames and sends it.
 *
 * Each public call runs on the request's worker: from a thread that owns a kept request it is
 * forwarded there and waits (pt__req_run), and without PT_HTTP_BUFFER it also waits for the
 * send to complete, so the caller may reuse its buffers when the call returns.
 */
#include "http/http_int.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

const char *pt__reason(unsigned status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" (RFC 9110 5.6.7), rebuilt once per second. The
 * clock is read at most once per millisecond of c's worker clock (taken once per loop turn):
 * the responses of one batch of pipelined requests share one read. */
void pt__date_refresh(struct hworker *hw, pt_conn_t *c)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char mons[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct timespec ts;
	struct tm tm;

	uint64_t now = pt_worker_now_ms(pt_conn_worker(c));

	if (now == hw->date_ms && hw->date_len)
		return;
	hw->date_ms = now;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	if (ts.tv_sec == hw->date_sec && hw->date_len)
		return;
	hw->date_sec = ts.tv_sec;
	gmtime_r(&ts.tv_sec, &tm);
	hw->date_len = (size_t)snprintf(hw->date, sizeof hw->date,
					"Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
					days[tm.tm_wday], tm.tm_mday, mons[tm.tm_mon],
					tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- checking the application's fields ---- */

/* Length of a token (RFC 9110 5.6.2), or 0 when s is empty or not a token. */
static size_t token_len(const char *s)
{
	const char *p = s;

	for (; *p; p++)
		if (!(pt__http_ctype[(unsigned char)*p] & PT_CT_TCHAR))
			return 0;
	return (size_t)(p - s);
}

/* Length of a field value (RFC 9110 5.5), or (size_t)-1 when it holds CR, LF or a control. */
static size_t value_len(const char *s)
{
	size_t n = strlen(s);

	return pt__scan_value(s, s + n) == s + n ? n : (size_t)-1;
}

/* what: a name whose first byte is a letter; that byte is compared first (ETag against Date,
 * Content-Type against Content-Length...) before the call. */
static bool name_is(const char *name, size_t n, const char *what, size_t wn)
{
	return n == wn && (name[0] | 0x20) == (what[0] | 0x20) && !strncasecmp(name, what, n);
}

static int parse_cl(const char *v, int64_t *out)
{
	int64_t n = 0;

	if (!*v)
		return -EINVAL;
	for (; *v; v++) {
		if (*v < '0' || *v > '9' || n > (INT64_MAX - 9) / 10)
			return -EINVAL;
		n = n * 10 + (*v - '0');
	}
	*out = n;
	return 0;
}

/* Checks field h; its name and value lengths into *nl and *vl. -EINVAL: a bad name or value,
 * or a field the layer writes itself (framing, Date). */
static int check_field(const struct pt_http_header *h, size_t *nl, size_t *vl)
{
	if (!h->name || !h->value)
		return -EINVAL;
	*nl = token_len(h->name);
	*vl = value_len(h->value);
	if (!*nl || *vl == (size_t)-1 || *nl > UINT32_MAX || *vl > UINT32_MAX)
		return -EINVAL;
	if (name_is(h->name, *nl, "Transfer-Encoding", 17) || name_is(h->name, *nl, "Date", 4))
		return -EINVAL;                   /* framing and Date belong to the layer */
	return 0;
}

static bool is_close(const struct pt_http_header *h, size_t nl, size_t vl)
{
	return name_is(h->name, nl, "Connection", 10) && name_is(h->value, vl, "close", 5);
}

static int inspect(const struct pt_http_header *hd, unsigned n, struct pt_fields *f)
{
	size_t nl, vl;

	f->user_cl = -1;
	f->user_close = false;
	f->bytes = 0;
	f->cl_index = -1;
	for (unsigned i = 0; i < n; i++) {
		if (check_field(&hd[i], &nl, &vl) < 0)
			return -EINVAL;
		if (name_is(hd[i].name, nl, "Content-Length", 14)) {
			if (parse_cl(hd[i].value, &f->user_cl) < 0 || f->cl_index >= 0)
				return -EINVAL;
			f->cl_index = (int)i;
		}
		f->user_close = f->user_close || is_close(&hd[i], nl, vl);
		if (i < LEN_KEEP) {
			f->nlen[i] = (uint32_t)nl;
			f->vlen[i] = (uint32_t)vl;
		}
		f->bytes += nl + vl + 4;
	}
	return 0;
}

/* ---- prepared fields ---- */

static void put_at(char *block, size_t *k, const char *s, size_t n)
{
	memcpy(block + *k, s, n);
	*k += n;
}

PT_API pt_http_fields_t *pt_http_fields_new(const struct pt_http_header *h, unsigned n, int *err)
{
	struct pt_fields f;
	pt_http_fields_t *pf;

	*err = -EINVAL;
	if ((n && !h) || inspect(h, n, &f) < 0 || f.cl_index >= 0 || f.bytes > UINT32_MAX)
		return NULL;                      /* Content-Length belongs to each response */
	pf = pt__fields_join(NULL, h, n, &f);
	*err = pf ? 0 : -ENOMEM;
	return pf;
}

PT_API void pt_http_fields_free(pt_http_fields_t *f)
{
	free(f);
}

pt_http_fields_t *pt__fields_join(const struct pt_http_fields *pre, const struct pt_http_header *hd,
				  unsigned n, const struct pt_fields *f)
{
	unsigned np = pre ? pre->n : 0, k = np;
	size_t pb = pre ? pre->bytes : 0, w = pb;
	struct pt_http_fields *j = calloc(1, sizeof *j + (np + n) * sizeof *j->at + f->bytes + 1);

	if (!j)
		return NULL;
	j->at = (struct pt_pre_field *)(j + 1);
	j->block = (char *)(j->at + np + n);
	j->close = f->user_close;
	if (np) {
		memcpy(j->at, pre->at, np * sizeof *j->at);
		memcpy(j->block, pre->block, pb);
	}
	for (unsigned i = 0; i < n; i++) {
		if ((int)i == f->cl_index)
			continue;
		size_t nl = i < LEN_KEEP ? f->nlen[i] : strlen(hd[i].name);
		size_t vl = i < LEN_KEEP ? f->vlen[i] : strlen(hd[i].value);
		j->at[k++] = (struct pt_pre_field){ (uint32_t)w, (uint32_t)nl, (uint32_t)(w + nl + 2),
						    (uint32_t)vl };
		put_at(j->block, &w, hd[i].name, nl);
		put_at(j->block, &w, ": ", 2);
		put_at(j->block, &w, hd[i].value, vl);
		put_at(j->block, &w, "\r\n", 2);
	}
	j->n = k;
	j->bytes = w;
	return j;
}

/* Body bytes of the chunks; a file range of length -1 runs to the end of the file. */
static int body_total(const struct pt_http_chunk *b, unsigned n, uint64_t *total)
{
	struct stat st;

	*total = 0;
	for (unsigned i = 0; i < n; i++) {
		if (b[i].kind == PT_HTTP_CHUNK_MEM) {
			if (!b[i].mem.p && b[i].mem.len)
				return -EINVAL;
			*total += b[i].mem.len;
		} else if (b[i].kind == PT_HTTP_CHUNK_FILE) {
			if (b[i].file.fd < 0 || b[i].file.offset < 0 || b[i].file.len < -1)
				return -EINVAL;
			if (b[i].file.len >= 0) {
				*total += (uint64_t)b[i].file.len;
			} else {
				if (fstat(b[i].file.fd, &st) < 0 || st.st_size < b[i].file.offset)
					return -EINVAL;
				*total += (uint64_t)(st.st_size - b[i].file.offset);
			}
		} else {
			return -EINVAL;          /* fragments are resolved before this */
		}
	}
	return 0;
}

/* ---- fragments: replaced by memory chunks holding a reference ---- */

struct resolved {
	const struct pt_http_chunk *body;
	struct pt_http_chunk *copy;
	void **refs;
	unsigned nrefs;
};

static void resolved_drop(struct resolved *rs)
{
	for (unsigned i = 0; i < rs->nrefs; i++)
		pt__fragment_unref(rs->refs[i]);
	free(rs->refs);
	free(rs->copy);
	rs->refs = NULL;
	rs->copy = NULL;
	rs->nrefs = 0;
}

static int resolve(struct pt_http_server *s, const struct pt_http_chunk *b, unsigned n,
		   struct resolved *rs)
{
	unsigned frags = 0;

	*rs = (struct resolved){ .body = b };
	for (unsigned i = 0; i < n; i++)
		frags += b[i].kind == PT_HTTP_CHUNK_FRAGMENT;
	if (!frags)
		return 0;
	rs->copy = malloc(n * sizeof *b);
	rs->refs = malloc(frags * sizeof *rs->refs);
	if (!rs->copy || !rs->refs) {
		resolved_drop(rs);
		return -ENOMEM;
	}
	memcpy(rs->copy, b, n * sizeof *b);
	for (unsigned i = 0; i < n; i++) {
		if (b[i].kind != PT_HTTP_CHUNK_FRAGMENT)
			continue;
		int err = pt__fragment_resolve(s, b[i].fragment.name, &rs->copy[i], &rs->refs[rs->nrefs]);
		if (err < 0) {
			resolved_drop(rs);
			return err;
		}
		rs->nrefs++;
	}
	rs->body = rs->copy;
	return 0;
}

/* ---- lengths ---- */

/* The Content-Length to announce (o->cl; -1 when more body follows with no length declared),
 * and how much body a declared length still expects (r->out_left). */
static int declared_length(struct pt_http_req *r, const struct pt_fields *f, struct pt_out *o)
{
	o->cl = -1;
	if (o->final) {
		if (f->user_cl >= 0 && (uint64_t)f->user_cl != o->total && !r->no_body)
			return -EINVAL;
		o->cl = f->user_cl >= 0 ? f->user_cl : (int64_t)o->total;
		return 0;
	}
	if (f->user_cl >= 0) {
		if (o->total > (uint64_t)f->user_cl)
			return -E2BIG;
		o->cl = f->user_cl;
		r->out_left = f->user_cl - (int64_t)o->total;
	}
	return 0;
}

static int check_req(const struct pt_http_req *r)
{
	if (!r)
		return -EINVAL;
	if (!r->proto)
		return -EPIPE;
	if (r->final_sent)
		return -EALREADY;
	return 0;
}

/* ---- the two sends ---- */

struct send_args {
	struct pt_http_req *r;
	bool head;                       /* pt_http_respond (else pt_http_send_body) */
	unsigned status;
	const char *reason;
	const struct pt_http_fields *pre;  /* prepared fields, or NULL */
	const struct pt_http_header *headers;
	unsigned nheaders;
	const struct pt_http_chunk *body;
	unsigned nbody, flags;
	pt_http_send_fn cb;
	void *arg;
	struct pt_call *call;            /* the caller off the worker, waiting */
};

static bool bad_reason(const char *reason)
{
	return reason && (strpbrk(reason, "\r\n") || strlen(reason) > 64);
}

static int respond(const struct send_args *a, pt_http_send_fn cb, void *arg)
{
	struct pt_http_req *r = a->r;
	struct pt_fields f;
	struct resolved rs;
	struct pt_out o = { .status = a->status, .headers = a->headers, .nheaders = a->nheaders,
			    .f = &f, .pre = a->pre, .nbody = a->nbody, .flags = a->flags,
			    .final = !(a->flags & PT_HTTP_MORE) };
	int err;

	if ((err = check_req(r)) < 0)
		return err;
	if (r->head_sent)
		return -EALREADY;
	if (a->status < 200 || a->status > 599 || (a->flags & ~15u) || (a->nheaders && !a->headers) ||
	    (a->nbody && !a->body) || a->nbody > 1000 || bad_reason(a->reason))
		return -EINVAL;
	if ((err = inspect(a->headers, a->nheaders, &f)) < 0 ||
	    (err = resolve(r->s, a->body, a->nbody, &rs)) < 0)
		return err;
	if (a->pre) {
		f.bytes += a->pre->bytes;
		f.user_close = f.user_close || a->pre->close;
	}
	o.reason = a->reason ? a->reason : pt__reason(a->status);
	o.body = rs.body;
	o.refs = rs.refs;
	o.nrefs = rs.nrefs;
	if ((err = body_total(o.body, o.nbody, &o.total)) < 0)
		goto fail;
	r->no_body = r->head.method_id == PT_METHOD_HEAD || a->status == 204 || a->status == 304;
	if ((err = declared_length(r, &f, &o)) < 0 || (err = r->ops->send(r, &o, cb, arg)) < 0)
		goto fail;
	if (r->cache_pol)
		pt__rcache_put(r, &o);
	free(rs.copy);                            /* the engine copied the chunk array */
	r->head_sent = true;
	return 0;
fail:
	resolved_drop(&rs);
	r->out_left = -1;                         /* nothing was sent: state as before */
	return err;
}

static int send_body(const struct send_args *a, pt_http_send_fn cb, void *arg)
{
	struct pt_http_req *r = a->r;
	struct resolved rs;
	struct pt_out o = { .nbody = a->nbody, .flags = a->flags, .final = !(a->flags & PT_HTTP_MORE) };
	int err;

	if ((err = check_req(r)) < 0)
		return err == -EALREADY ? -EPROTO : err;
	if (!r->head_sent)
		return -EPROTO;
	if ((a->flags & ~15u) || (a->nbody && !a->body) || a->nbody > 1000)
		return -EINVAL;
	if ((err = resolve(r->s, a->body, a->nbody, &rs)) < 0)
		return err;
	o.body = rs.body;
	o.refs = rs.refs;
	o.nrefs = rs.nrefs;
	if ((err = body_total(o.body, o.nbody, &o.total)) < 0)
		goto fail;
	err = -E2BIG;
	if (r->out_left >= 0 && o.total > (uint64_t)r->out_left)
		goto fail;
	err = -EINVAL;                            /* the declared length would not be met */
	if (r->out_left >= 0 && o.final && o.total != (uint64_t)r->out_left)
		goto fail;
	if ((err = r->ops->send(r, &o, cb, arg)) < 0)
		goto fail;
	free(rs.copy);
	if (r->out_left >= 0)
		r->out_left -= (int64_t)o.total;
	return 0;
fail:
	resolved_drop(&rs);
	return err;
}

/* The send of a waiting caller off the worker completed: its buffers are free now. */
static void sent_for_caller(pt_http_req_t *r, void *p, ssize_t res)
{
	struct send_args *a = p;

	if (a->cb)
		a->cb(r, a->arg, res);
	pt__call_done(a->call, res < 0 ? (int)res : 0);    /* a is gone after this */
}

/* Runs on the worker (pt__req_run); call is the waiting caller off the worker, or NULL. */
static int send_on_worker(struct pt_call *call, void *p)
{
	struct send_args *a = p;
	bool wait = call && !(a->flags & PT_HTTP_BUFFER);
	pt_http_send_fn cb = wait ? sent_for_caller : a->cb;
	void *arg = wait ? (void *)a : a->arg;

	a->call = call;
	int err = a->head ? respond(a, cb, arg) : send_body(a, cb, arg);
	if (err == 0 && wait)
		pt__call_defer(call);                 /* the callback cannot have run yet */
	return err;
}

static int respond_call(pt_http_req_t *r, unsigned status, const char *reason,
			const pt_http_fields_t *pre, const struct pt_http_header *headers,
			unsigned nheaders, const struct pt_http_chunk *body, unsigned nbody,
			unsigned flags, pt_http_send_fn cb, void *arg)
{
	struct send_args a = { .r = r, .head = true, .status = status, .reason = reason, .pre = pre,
			       .headers = headers, .nheaders = nheaders, .body = body, .nbody = nbody,
			       .flags = flags, .cb = cb, .arg = arg };

	return pt__req_run(r, send_on_worker, &a);
}

PT_API int pt_http_respond(pt_http_req_t *r, unsigned status, const char *reason,
			   const struct pt_http_header *headers, unsigned nheaders,
			   const struct pt_http_chunk *body, unsigned nbody, unsigned flags,
			   pt_http_send_fn cb, void *arg)
{
	return respond_call(r, status, reason, NULL, headers, nheaders, body, nbody, flags, cb, arg);
}

PT_API int pt_http_respond_fields(pt_http_req_t *r, unsigned status, const pt_http_fields_t *pre,
				  const struct pt_http_header *headers, unsigned nheaders,
				  const struct pt_http_chunk *body, unsigned nbody, unsigned flags,
				  pt_http_send_fn cb, void *arg)
{
	return respond_call(r, status, NULL, pre, headers, nheaders, body, nbody, flags, cb, arg);
}

PT_API int pt_http_send_body(pt_http_req_t *r, const struct pt_http_chunk *body, unsigned nbody,
			     unsigned flags, pt_http_send_fn cb, void *arg)
{
	struct send_args a = { .r = r, .body = body, .nbody = nbody, .flags = flags, .cb = cb,
			       .arg = arg };

	return pt__req_run(r, send_on_worker, &a);
}
