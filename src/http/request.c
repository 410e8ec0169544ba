/*
 * Request accessors and body reading. Everything here reads the parsed head; nothing copies.
 */
#include "http/http_int.h"
#include <errno.h>
#include <string.h>
#include <strings.h>

static struct pt_http_str str(struct pt_slice s)
{
	return (struct pt_http_str){ s.p, s.n };
}

PT_API enum pt_http_method pt_http_req_method(const pt_http_req_t *r)
{
	return r ? (enum pt_http_method)r->head.method_id : PT_HTTP_OTHER;
}

PT_API struct pt_http_str pt_http_req_method_name(const pt_http_req_t *r)
{
	return r ? str(r->head.method) : (struct pt_http_str){ 0 };
}

PT_API struct pt_http_str pt_http_req_target(const pt_http_req_t *r)
{
	return r ? str(r->head.target) : (struct pt_http_str){ 0 };
}

PT_API struct pt_http_str pt_http_req_path(const pt_http_req_t *r)
{
	return r ? str(r->head.path) : (struct pt_http_str){ 0 };
}

PT_API struct pt_http_str pt_http_req_query(const pt_http_req_t *r)
{
	return r ? str(r->head.query) : (struct pt_http_str){ 0 };
}

PT_API struct pt_http_str pt_http_req_authority(const pt_http_req_t *r)
{
	return r ? str(r->head.authority) : (struct pt_http_str){ 0 };
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

PT_API int pt_http_req_decoded_path(const pt_http_req_t *r, char *buf, size_t cap)
{
	if (!r || !buf || !cap)
		return -EINVAL;
	struct pt_slice p = r->head.path;
	size_t k = 0;
	for (size_t i = 0; i < p.n; i++) {
		char c = p.p[i];
		if (c == '%') {
			if (i + 2 >= p.n)
				return -EINVAL;          /* truncated escape */
			int a = hexval(p.p[i + 1]), b = hexval(p.p[i + 2]);
			if (a < 0 || b < 0 || (a | b) == 0)
				return -EINVAL;          /* malformed, or %00 */
			c = (char)(a << 4 | b);
			i += 2;
		}
		if (k + 1 >= cap)
			return -ENOSPC;
		buf[k++] = c;
	}
	buf[k] = 0;
	return (int)k;
}

PT_API int pt_http_req_minor_version(const pt_http_req_t *r)
{
	return r ? r->head.minor_version : -EINVAL;
}

PT_API struct pt_http_str pt_http_req_header(const pt_http_req_t *r, const char *name)
{
	if (!r || !name)
		return (struct pt_http_str){ 0 };
	size_t n = strlen(name);
	for (unsigned i = 0; i < r->head.nheaders; i++) {
		const struct pt_header *h = &r->head.headers[i];
		if (h->name.n == n && !strncasecmp(h->name.p, name, n))
			return str(h->value);
	}
	return (struct pt_http_str){ 0 };
}

PT_API int pt_http_req_header_at(const pt_http_req_t *r, unsigned i, struct pt_http_str *name,
				 struct pt_http_str *value)
{
	if (!r || !name || !value)
		return -EINVAL;
	if (i >= r->head.nheaders)
		return -ENOENT;
	*name = str(r->head.headers[i].name);
	*value = str(r->head.headers[i].value);
	return 0;
}

PT_API int64_t pt_http_req_content_length(const pt_http_req_t *r)
{
	return r && !r->head.chunked ? r->head.content_length : -1;
}

PT_API bool pt_http_req_has_body(const pt_http_req_t *r)
{
	return r && r->body_mode != BODY_NONE;
}

PT_API pt_conn_t *pt_http_req_conn(const pt_http_req_t *r)
{
	return r && __atomic_load_n(&r->h, __ATOMIC_ACQUIRE) ? r->c : NULL;
}

PT_API void pt_http_req_set_user(pt_http_req_t *r, void *user)
{
	if (r)
		r->user = user;
}

PT_API void *pt_http_req_user(const pt_http_req_t *r)
{
	return r ? r->user : NULL;
}

PT_API int pt_http_req_read_body(pt_http_req_t *r, pt_http_body_fn cb, void *arg)
{
	bool fwd;
	int err = pt__sync_read_body(r, cb, arg, &fwd);

	return fwd ? err : pt__read_body_local(r, cb, arg);
}

int pt__read_body_local(pt_http_req_t *r, pt_http_body_fn cb, void *arg)
{
	if (!r || !cb || r->body_mode == BODY_NONE || r->body_reading)
		return -EINVAL;
	if (!r->h)
		return -EPIPE;
	if (r->final_sent)
		return -EALREADY;
	if (r->body_done)
		return -ECONNRESET;          /* it ended before anyone read it: nothing will come */
	r->body_cb = cb;
	r->body_arg = arg;
	r->body_reading = true;
	int err = pt__send_continue(r);
	if (err < 0)
		return err;
	pt__hconn_kick(r->h);        /* deliver bytes already buffered, from the loop */
	return 0;
}
