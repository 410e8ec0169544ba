/*
 * Per-site rules for one request (see rules.h).
 */
#include "server/rules.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const struct pt_header_rule *pt_rules_header_at(const struct pt_site *s, unsigned i)
{
	unsigned ntop = s->top ? s->top->nheaders : 0;

	if (i < ntop)
		return &s->top->headers[i];
	i -= ntop;
	return i < s->own->nheaders ? &s->own->headers[i] : NULL;
}

int pt_rules_encode_path(const char *p, char *out, size_t cap)
{
	size_t k = 0;

	for (; *p; p++) {
		unsigned char ch = (unsigned char)*p;

		if (k + 4 > cap)
			return -ENOSPC;
		if (ch <= 0x20 || ch >= 0x7f || strchr("\"#%<>?\\^`{|}", ch))
			k += (size_t)snprintf(out + k, cap - k, "%%%02X", ch);
		else
			out[k++] = (char)ch;
	}
	if (k >= cap)
		return -ENOSPC;
	out[k] = '\0';
	return (int)k;
}

/* The first rule of list r[0..n) matching norm. */
static const struct pt_redirect_rule *match(const struct pt_redirect_rule *r, unsigned n,
					    const char *norm)
{
	for (unsigned i = 0; i < n; i++) {
		size_t fl = strlen(r[i].from);
		bool prefix = fl && r[i].from[fl - 1] == '/';

		if (prefix ? strncmp(norm, r[i].from, fl) == 0 ||
			     (strncmp(norm, r[i].from, fl - 1) == 0 && norm[fl - 1] == '\0')
			   : strcmp(norm, r[i].from) == 0)
			return &r[i];
	}
	return NULL;
}

int pt_rules_redirect(const struct pt_site *s, const char *norm, struct pt_http_str query,
		      char *out, size_t cap, unsigned *code)
{
	const struct pt_redirect_rule *r = match(s->own->redirects, s->own->nredirects, norm);
	size_t k, fl;
	int n;

	if (!r && s->top)
		r = match(s->top->redirects, s->top->nredirects, norm);
	if (!r)
		return 0;
	fl = strlen(r->from);
	k = strlen(r->to);
	if (k + 1 > cap)
		return -ENOSPC;
	memcpy(out, r->to, k + 1);
	if (r->from[fl - 1] == '/' && strlen(norm) >= fl) {      /* the rest of a prefix */
		if ((n = pt_rules_encode_path(norm + fl, out + k, cap - k)) < 0)
			return n;
		k += (size_t)n;
	}
	if (query.n) {
		if (k + 2 + query.n > cap)
			return -ENOSPC;
		out[k++] = '?';
		memcpy(out + k, query.p, query.n);
		k += query.n;
		out[k] = '\0';
	}
	*code = r->code;
	return (int)k;
}

const char *pt_rules_error_page(const struct pt_site *s, unsigned status)
{
	for (unsigned i = 0; i < s->own->nerrors; i++)
		if (s->own->errors[i].status == status)
			return s->own->errors[i].path;
	for (unsigned i = 0; s->top && i < s->top->nerrors; i++)
		if (s->top->errors[i].status == status)
			return s->top->errors[i].path;
	return NULL;
}

const char *pt_rules_cors(const struct pt_site *s, struct pt_http_str origin, bool *vary)
{
	*vary = false;
	if (!s->ncors)
		return NULL;
	if (!strcmp(s->cors[0], "*"))
		return "*";
	*vary = true;
	for (unsigned i = 0; origin.p && i < s->ncors; i++)
		if (strlen(s->cors[i]) == origin.n && !strncasecmp(s->cors[i], origin.p, origin.n))
			return s->cors[i];
	return NULL;
}

/* JavaScript has had several media types; RFC 9239 makes text/javascript the one, and
 * /etc/mime.types says so, while configurations (and nginx's) often name
 * application/javascript: they are the same type here. Others map to themselves. */
static void canon(const char **t, size_t *n)
{
	static const char *const js[] = { "application/javascript", "application/x-javascript",
					  "application/ecmascript", "text/ecmascript" };

	for (size_t i = 0; i < sizeof(js) / sizeof(js[0]); i++)
		if (*n == strlen(js[i]) && !strncasecmp(*t, js[i], *n)) {
			*t = "text/javascript";
			*n = 15;
			return;
		}
}

bool pt_rules_compressible(const struct pt_site *s, const char *mime)
{
	size_t n = mime ? strcspn(mime, "; \t") : 0;
	const char *slash = mime ? memchr(mime, '/', n) : NULL;

	if (!slash)
		return false;
	canon(&mime, &n);
	slash = memchr(mime, '/', n);
	for (unsigned i = 0; i < s->ncompress; i++) {
		const char *t = s->compress[i];
		size_t tl = strlen(t);

		canon(&t, &tl);
		if ((tl == n && !strncasecmp(t, mime, n)) ||
		    (tl >= 2 && t[tl - 1] == '*' && t[tl - 2] == '/' &&
		     (size_t)(slash - mime) == tl - 2 && !strncasecmp(t, mime, tl - 1)))
			return true;
	}
	return false;
}

bool pt_rules_no_extension(const char *norm)
{
	const char *base = strrchr(norm, '/');

	base = base ? base + 1 : norm;
	return *base && !strchr(base + 1, '.');
}
