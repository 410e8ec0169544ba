/*
 * Responses: the status line and headers built once into the request (or a heap buffer when
 * they are large), framing chosen by the layer (Content-Length, chunked, or close-delimited
 * for HTTP/1.0), and each application send turned into exactly one engine transmit:
 *   [head] [chunk-size line] body chunks... [CRLF] [last-chunk]
 * so head and body leave in one sendmsg and the application's callback runs once per send.
 */
#include "http/http_int.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define HSEND_FREE_MAX 1024u

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

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" (RFC 9110 5.6.7), rebuilt once per second. */
void pt__date_refresh(struct hworker *hw)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char mons[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct timespec ts;
	struct tm tm;

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

/* ---- send contexts ---- */

static struct hsend *hsend_alloc(struct hworker *hw)
{
	struct hsend *hs = hw->hs_free;

	if (hs) {
		hw->hs_free = hs->next;
		hw->nhs_free--;
	} else if (!(hs = malloc(sizeof *hs))) {
		return NULL;
	}
	hs->heap_head = NULL;
	hs->refs = NULL;
	hs->nrefs = 0;
	return hs;
}

static void hsend_free(struct hworker *hw, struct hsend *hs)
{
	free(hs->heap_head);
	for (unsigned i = 0; i < hs->nrefs; i++)
		pt__fragment_unref(hs->refs[i]);
	free(hs->refs);
	if (hw->nhs_free >= HSEND_FREE_MAX) {
		free(hs);
		return;
	}
	hs->next = hw->hs_free;
	hw->hs_free = hs;
	hw->nhs_free++;
}

void pt__hsend_pool_free(struct hworker *hw)
{
	while (hw->hs_free) {
		struct hsend *hs = hw->hs_free;
		hw->hs_free = hs->next;
		free(hs);
	}
}

static void send_done(pt_conn_t *c, void *arg, ssize_t res)
{
	struct hsend *hs = arg;
	struct pt_http_req *r = hs->r;
	struct hconn *h = r->h;
	pt_http_send_fn cb = hs->cb;
	void *cb_arg = hs->arg;

	hsend_free(h ? h->hw : pt__hw(r->s, c), hs);
	r->pending--;
	if (res < 0 && h && res != -ECANCELED) {
		h->closing = true;                     /* the stream is broken: end the connection */
		pt_conn_close(c, PT_CLOSE_ABORT);
	}
	if (cb)
		cb(r, cb_arg, res);
	pt__req_release(r);
	if (h)
		pt__hconn_after_send(h);
}

/* ---- validation ---- */

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
	const char *p = s;

	for (; *p; p++)
		if (!(pt__http_ctype[(unsigned char)*p] & PT_CT_VALUE))
			return (size_t)-1;
	return (size_t)(p - s);
}

#define LEN_KEEP 32u                /* header lengths remembered for the head builder */

struct framing {
	int64_t user_cl;            /* Content-Length the application gave, or -1 */
	bool user_close;            /* Connection: close given */
	size_t bytes;               /* header bytes to write */
	uint32_t nlen[LEN_KEEP], vlen[LEN_KEEP];
	int cl_index;               /* which header is Content-Length (written by the layer) */
};

static bool name_is(const char *name, size_t n, const char *what, size_t wn)
{
	return n == wn && !strncasecmp(name, what, n);
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

static int inspect(const struct pt_http_header *hd, unsigned n, struct framing *f)
{
	f->user_cl = -1;
	f->user_close = false;
	f->bytes = 0;
	f->cl_index = -1;
	for (unsigned i = 0; i < n; i++) {
		if (!hd[i].name || !hd[i].value)
			return -EINVAL;
		size_t nl = token_len(hd[i].name), vl = value_len(hd[i].value);
		if (!nl || vl == (size_t)-1 || nl > UINT32_MAX || vl > UINT32_MAX)
			return -EINVAL;
		const char *nm = hd[i].name;
		if (name_is(nm, nl, "Transfer-Encoding", 17) || name_is(nm, nl, "Date", 4))
			return -EINVAL;           /* framing and Date belong to the layer */
		if (name_is(nm, nl, "Content-Length", 14)) {
			if (parse_cl(hd[i].value, &f->user_cl) < 0 || f->cl_index >= 0)
				return -EINVAL;
			f->cl_index = (int)i;
		}
		if (name_is(nm, nl, "Connection", 10) && name_is(hd[i].value, vl, "close", 5))
			f->user_close = true;
		if (i < LEN_KEEP) {
			f->nlen[i] = (uint32_t)nl;
			f->vlen[i] = (uint32_t)vl;
		}
		f->bytes += nl + vl + 4;
	}
	return 0;
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

/* ---- building the head ---- */

static size_t put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return n;
}

static size_t put_str(char *p, const char *s)
{
	return put(p, s, strlen(s));
}

/* Decimal digits of v into p; returns how many. */
static size_t put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

static size_t status_line(char *p, unsigned status, const char *reason)
{
	size_t k = put(p, "HTTP/1.1 ", 9);

	p[k++] = (char)('0' + status / 100);
	p[k++] = (char)('0' + status / 10 % 10);
	p[k++] = (char)('0' + status % 10);
	p[k++] = ' ';
	k += put_str(p + k, reason);
	return k + put(p + k, "\r\n", 2);
}

static size_t build_head(struct pt_http_req *r, char *p, unsigned status, const char *reason,
			 const struct pt_http_header *hd, unsigned n, const struct framing *f,
			 int64_t cl)
{
	struct hworker *hw = r->h->hw;
	struct pt_http_server *s = r->s;
	size_t k = status_line(p, status, reason);

	pt__date_refresh(hw);
	k += put(p + k, hw->date, hw->date_len);
	k += put(p + k, s->server_line, s->server_line_len);
	for (unsigned i = 0; i < n; i++) {
		if ((int)i == f->cl_index)
			continue;                  /* written below, once */
		size_t nl = i < LEN_KEEP ? f->nlen[i] : strlen(hd[i].name);
		size_t vl = i < LEN_KEEP ? f->vlen[i] : strlen(hd[i].value);
		k += put(p + k, hd[i].name, nl);
		k += put(p + k, ": ", 2);
		k += put(p + k, hd[i].value, vl);
		k += put(p + k, "\r\n", 2);
	}
	if (r->chunked_out) {
		k += put_str(p + k, "Transfer-Encoding: chunked\r\n");
	} else if (cl >= 0 && status != 204 && status != 304) {
		k += put(p + k, "Content-Length: ", 16);
		k += put_u64(p + k, (uint64_t)cl);
		k += put(p + k, "\r\n", 2);
	}
	if (r->close_after)
		k += put_str(p + k, "Connection: close\r\n");
	else if (r->head.minor_version == 0)
		k += put_str(p + k, "Connection: keep-alive\r\n");
	k += put(p + k, "\r\n", 2);
	return k;
}

/* ---- one engine transmit per application send ---- */

struct emit {
	const char *head;
	size_t head_len;
	char *heap_head;
	const struct pt_http_chunk *body;
	unsigned nbody;
	uint64_t total;
	unsigned flags;
	bool final;
	void **refs;                /* fragment references: the send owns them from here */
	unsigned nrefs;
};

static unsigned engine_flags(unsigned f)
{
	return ((f & PT_HTTP_BUFFER) ? PT_SEND_COPY : 0) | ((f & PT_HTTP_MORE) ? PT_SEND_MORE : 0) |
	       ((f & PT_HTTP_ZC) ? PT_SEND_ZC : 0);
}

static unsigned fill_chunks(struct pt_http_req *r, struct hsend *hs, const struct emit *em,
			    struct pt_chunk *ch)
{
	unsigned k = 0;
	bool framed = r->chunked_out && em->total > 0;

	if (em->head)
		ch[k++] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { em->head, em->head_len } };
	if (r->no_body)
		return k;
	if (framed) {
		int n = snprintf(hs->sizeline, sizeof hs->sizeline, "%llx\r\n", (unsigned long long)em->total);
		ch[k++] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { hs->sizeline, (size_t)n } };
	}
	for (unsigned i = 0; i < em->nbody; i++) {
		const struct pt_http_chunk *b = &em->body[i];
		if (b->kind == PT_HTTP_CHUNK_MEM) {
			ch[k++] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { b->mem.p, b->mem.len } };
			continue;
		}
		struct stat st;
		int64_t len = b->file.len;
		if (len < 0 && fstat(b->file.fd, &st) == 0)
			len = st.st_size - b->file.offset;
		ch[k++] = (struct pt_chunk){ .kind = PT_CHUNK_FILE,
					     .file = { b->file.fd, b->file.offset, (size_t)len } };
	}
	if (framed)
		ch[k++] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { "\r\n", 2 } };
	if (r->chunked_out && em->final)
		ch[k++] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { "0\r\n\r\n", 5 } };
	return k;
}

static int emit(struct pt_http_req *r, const struct emit *em, pt_http_send_fn cb, void *arg)
{
	struct hconn *h = r->h;
	struct pt_chunk stack[8], *ch = stack;
	struct hsend *hs = hsend_alloc(h->hw);
	int err = -ENOMEM;

	if (!hs)
		goto fail;
	if (em->nbody + 4 > 8 && !(ch = malloc((em->nbody + 4) * sizeof *ch)))
		goto fail;
	*hs = (struct hsend){ .r = r, .cb = cb, .arg = arg, .heap_head = em->heap_head,
			      .refs = em->refs, .nrefs = em->nrefs };
	unsigned n = fill_chunks(r, hs, em, ch);
	if (n == 0)
		ch[n++] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { NULL, 0 } };
	err = pt_conn_transmit(h->c, ch, n, engine_flags(em->flags), send_done, hs);
	if (ch != stack)
		free(ch);
	if (err < 0) {
		hs->heap_head = NULL;          /* the caller still owns these on failure */
		hs->refs = NULL;
		hs->nrefs = 0;
		hsend_free(h->hw, hs);
		return err;
	}
	r->pending++;
	if (em->final) {
		r->final_sent = true;
		if (r->close_after)
			h->closing = true;
	}
	pt__hconn_after_send(h);
	return 0;
fail:
	if (hs)
		hsend_free(h->hw, hs);
	return err;
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

/* ---- the public API ---- */

static bool keep_alive(struct pt_http_req *r, const struct framing *f, unsigned flags)
{
	if (!r->head.keep_alive || f->user_close || (flags & PT_HTTP_DISCONNECT) ||
	    r->h->closing || atomic_load(&r->s->stopping))
		return false;
	if (!r->body_done && !r->body_reading) {   /* an unread body must be discarded first */
		if (r->head.expect_continue)
			return false;              /* the client may never send it */
		if (r->body_mode == BODY_LENGTH && r->body_left > r->s->cfg.max_drain)
			return false;
	}
	return true;
}

/* Chooses the framing; fills *cl with the Content-Length to write, or -1. */
static int choose_framing(struct pt_http_req *r, const struct framing *f, uint64_t total,
			  unsigned flags, int64_t *cl)
{
	*cl = -1;
	if (!(flags & PT_HTTP_MORE)) {
		if (f->user_cl >= 0 && (uint64_t)f->user_cl != total && !r->no_body)
			return -EINVAL;
		*cl = f->user_cl >= 0 ? f->user_cl : (int64_t)total;
		return 0;
	}
	if (f->user_cl >= 0) {
		if (total > (uint64_t)f->user_cl)
			return -E2BIG;
		*cl = f->user_cl;
		r->out_left = f->user_cl - (int64_t)total;
	} else if (r->head.minor_version >= 1) {
		r->chunked_out = true;
	} else {
		r->close_after = true;             /* HTTP/1.0: the body ends with the connection */
	}
	return 0;
}

static int check_req(const struct pt_http_req *r)
{
	if (!r)
		return -EINVAL;
	if (!r->h)
		return -EPIPE;
	if (r->final_sent)
		return -EALREADY;
	return 0;
}

PT_API int pt_http_respond(pt_http_req_t *r, unsigned status, const char *reason,
			   const struct pt_http_header *headers, unsigned nheaders,
			   const struct pt_http_chunk *body, unsigned nbody, unsigned flags,
			   pt_http_send_fn cb, void *arg)
{
	bool fwd;
	int err = pt__sync_respond(r, status, reason, headers, nheaders, body, nbody, flags, cb, arg, &fwd);

	return fwd ? err : pt__respond_local(r, status, reason, headers, nheaders, body, nbody, flags, cb, arg);
}

int pt__respond_local(pt_http_req_t *r, unsigned status, const char *reason,
		      const struct pt_http_header *headers, unsigned nheaders,
		      const struct pt_http_chunk *body, unsigned nbody, unsigned flags,
		      pt_http_send_fn cb, void *arg)
{
	struct framing f;
	struct resolved rs;
	uint64_t total;
	int64_t cl;
	int err;

	if ((err = check_req(r)) < 0)
		return err;
	bool was_close = r->close_after, was_chunked = r->chunked_out;
	if (r->head_sent)
		return -EALREADY;
	if (status < 200 || status > 599 || (flags & ~15u) || (nheaders && !headers) ||
	    (nbody && !body) || nbody > 1000 || (reason && (strpbrk(reason, "\r\n") || strlen(reason) > 64)))
		return -EINVAL;
	if ((err = inspect(headers, nheaders, &f)) < 0 || (err = resolve(r->s, body, nbody, &rs)) < 0)
		return err;
	body = rs.body;
	if ((err = body_total(body, nbody, &total)) < 0)
		goto fail;
	r->no_body = r->head.method_id == PT_METHOD_HEAD || status == 204 || status == 304;
	if ((err = choose_framing(r, &f, total, flags, &cl)) < 0)
		goto fail;
	r->close_after = r->close_after || !keep_alive(r, &f, flags);
	size_t need = 96 + r->h->hw->date_len + 48 + r->s->server_line_len + f.bytes + 64;
	char *heap = need > PT_HEAD_INLINE ? malloc(need) : NULL;
	err = -ENOMEM;
	if (need > PT_HEAD_INLINE && !heap)
		goto fail;
	char *p = heap ? heap : r->headbuf;
	size_t len = build_head(r, p, status, reason ? reason : pt__reason(status), headers, nheaders,
				&f, cl);
	struct emit em = { p, len, heap, body, nbody, total, flags, !(flags & PT_HTTP_MORE),
			   rs.refs, rs.nrefs };
	if ((err = emit(r, &em, cb, arg)) < 0) {
		free(heap);
		goto fail;
	}
	free(rs.copy);                        /* the engine copied the chunk array */
	r->head_sent = true;
	return 0;
fail:
	resolved_drop(&rs);
	r->close_after = was_close;               /* nothing was sent: state as before */
	r->chunked_out = was_chunked;
	r->out_left = -1;
	return err;
}

PT_API int pt_http_send_body(pt_http_req_t *r, const struct pt_http_chunk *body, unsigned nbody,
			     unsigned flags, pt_http_send_fn cb, void *arg)
{
	bool fwd;
	int err = pt__sync_send_body(r, body, nbody, flags, cb, arg, &fwd);

	return fwd ? err : pt__send_body_local(r, body, nbody, flags, cb, arg);
}

int pt__send_body_local(pt_http_req_t *r, const struct pt_http_chunk *body, unsigned nbody,
			unsigned flags, pt_http_send_fn cb, void *arg)
{
	struct resolved rs;
	uint64_t total;
	int err;

	if ((err = check_req(r)) < 0)
		return err == -EALREADY ? -EPROTO : err;
	if (!r->head_sent)
		return -EPROTO;
	if ((flags & ~15u) || (nbody && !body) || nbody > 1000)
		return -EINVAL;
	if ((err = resolve(r->s, body, nbody, &rs)) < 0)
		return err;
	body = rs.body;
	bool final = !(flags & PT_HTTP_MORE);
	if ((err = body_total(body, nbody, &total)) < 0)
		goto fail;
	err = -E2BIG;
	if (r->out_left >= 0 && total > (uint64_t)r->out_left)
		goto fail;
	err = -EINVAL;                            /* the declared length would not be met */
	if (r->out_left >= 0 && final && total != (uint64_t)r->out_left)
		goto fail;
	struct emit em = { NULL, 0, NULL, body, nbody, total, flags, final, rs.refs, rs.nrefs };
	if (flags & PT_HTTP_DISCONNECT)
		r->close_after = true;
	if ((err = emit(r, &em, cb, arg)) < 0)
		goto fail;
	free(rs.copy);
	if (r->out_left >= 0)
		r->out_left -= (int64_t)total;
	return 0;
fail:
	resolved_drop(&rs);
	return err;
}

PT_API int pt_http_req_on_writable(pt_http_req_t *r, pt_http_writable_fn cb, void *arg)
{
	if (!r || !cb)
		return -EINVAL;
	r->on_writable = cb;
	r->writable_arg = arg;
	return 0;
}

PT_API void pt_http_req_on_abort(pt_http_req_t *r, pt_http_abort_fn cb, void *arg)
{
	if (!r)
		return;
	r->on_abort = cb;
	r->abort_arg = arg;
}

int pt__send_continue(struct pt_http_req *r)
{
	static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";

	if (!r->head.expect_continue || r->continue_sent || r->head_sent)
		return 0;
	r->continue_sent = true;
	return pt_conn_send(r->h->c, msg, sizeof msg - 1, 0, NULL, NULL);
}

/* Errors found before a request exists (bad head): answer and close. */
void pt__req_send_error(struct hconn *h, unsigned status)
{
	char buf[512];
	const char *reason = pt__reason(status);

	pt__date_refresh(h->hw);
	int n = snprintf(buf, sizeof buf,
			 "HTTP/1.1 %u %s\r\n%s%sContent-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
			 status, reason, h->hw->date, h->s->server_line, strlen(reason) + 1, reason);
	pt_conn_send(h->c, buf, (size_t)n, PT_SEND_COPY, NULL, NULL);
	h->closing = true;
}
