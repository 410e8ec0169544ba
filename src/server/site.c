/*
 * Per-site settings and host-block names (see site.h): parsing each value, checking it, and
 * keeping it in a struct pt_site_conf. Every check that can be made without the file system
 * is made here, so that a bad line is reported with its FILE:LINE when the file is read (and
 * by --check-config), never later while serving.
 */
#include "server/site.h"
#include "server/path.h"
#include "util/util.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WORD_MAX PATH_MAX
#define ARRAY_MAX 4096   /* items of one kind per site: bounds the work per request */

static int __attribute__((format(printf, 3, 4))) fail(char *msg, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, cap, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* ---- words ------------------------------------------------------------------------------- */

static bool blank(char c) { return c == ' ' || c == '\t'; }

int pt_site_word(const char **p, char *out, size_t cap)
{
	const char *s = *p;
	size_t n = 0;

	while (blank(*s))
		s++;
	if (!*s)
		return 0;
	if (*s != '"') {
		while (*s && !blank(*s)) {
			if (n + 1 >= cap)
				return -EINVAL;
			out[n++] = *s++;
		}
	} else {
		for (s++; *s != '"'; s++) {
			if (!*s || n + 1 >= cap)
				return -EINVAL;
			if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
				s++;
			out[n++] = *s;
		}
		s++;
	}
	out[n] = '\0';
	*p = s;
	return 1;
}

/* The rest of the line as one value: a quoted word, or the text up to the end, trimmed. */
static int rest_value(const char **p, char *out, size_t cap)
{
	const char *s = *p;
	size_t n;

	while (blank(*s))
		s++;
	if (*s == '"') {
		int r = pt_site_word(&s, out, cap);
		while (blank(*s))
			s++;
		*p = s;
		return r < 0 || *s ? -EINVAL : r;
	}
	n = strlen(s);
	while (n && blank(s[n - 1]))
		n--;
	if (n == 0 || n >= cap)
		return n ? -EINVAL : 0;
	memcpy(out, s, n);
	out[n] = '\0';
	*p = s + strlen(s);
	return 1;
}

/* ---- lists ------------------------------------------------------------------------------- */

/* Makes room for one more item of size sz in *arr holding *n: 0 or -ENOMEM/-E2BIG. */
static int grow(void **arr, unsigned n, size_t sz)
{
	void *v;

	if (n >= ARRAY_MAX)
		return -E2BIG;
	if (n & (n - 1) && n > 4)
		return 0;                       /* capacity is the next power of two */
	v = realloc(*arr, (n < 4 ? 4 : 2 * (size_t)n) * sz);
	if (!v)
		return -ENOMEM;
	*arr = v;
	return 0;
}

static int push_str(char ***arr, unsigned *n, const char *v)
{
	char *d = strdup(v);
	int r = d ? grow((void **)arr, *n, sizeof(char *)) : -ENOMEM;

	if (r < 0) {
		free(d);
		return r;
	}
	(*arr)[(*n)++] = d;
	return 0;
}

static void free_strs(char ***arr, unsigned *n)
{
	for (unsigned i = 0; i < *n; i++)
		free((*arr)[i]);
	free(*arr);
	*arr = NULL;
	*n = 0;
}

static int set_str(char **dst, const char *v)
{
	char *d = strdup(v);

	if (!d)
		return -ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

/* ---- checks ------------------------------------------------------------------------------ */

static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!pt__is_tchar((unsigned char)*s))
			return false;
	return true;
}

/* RFC 9110 5.5: no CTL but HTAB. */
static bool is_field_value(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < ' ' && *s != '\t') || *s == 0x7f)
			return false;
	return true;
}

/* Visible ASCII only (a URL or an origin as written). */
static bool is_visible(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* Fields the server computes itself: a rule may not set them. */
static bool reserved_field(const char *n)
{
	static const char *const names[] = {
		"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "TE", "Trailer",
		"Upgrade", "Date", "Server", "ETag", "Last-Modified", "Content-Encoding",
		"Content-Range", "Accept-Ranges", "Vary", "Location", "Allow",
		"Strict-Transport-Security", "Access-Control-Allow-Origin",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(n, names[i]) == 0)
			return true;
	return false;
}

/* A path for error-page, fallback or a redirect's FROM: normalized into out (PATH_MAX).
 * A trailing '/' is kept. NULL, or what is wrong. */
static const char *norm_path(const char *v, char *out)
{
	size_t n;
	int f;

	if (v[0] != '/')
		return "a path that starts with '/'";
	f = pt_path_normalize(v, strlen(v), out, PATH_MAX, &n);
	if (f < 0)
		return "a valid path (no '..' above the root, no control characters)";
	if (f & PT_PATH_DOTFILE)
		return "a path without dotfiles (they are never served)";
	return NULL;
}

/* A host name: lower-cased letters, digits, '-', '.', an optional "*." first label, or an IP
 * literal; NULL, or what is wrong. */
static const char *check_host(char *h)
{
	size_t n = strlen(h);
	char *p = h;

	if (n > 253 || n == 0)
		return "a host name of at most 253 characters";
	if (h[0] == '[')
		return h[n - 1] == ']' && n > 2 ? NULL : "an IPv6 address in brackets";
	if (h[0] == '*') {
		if (h[1] != '.' || !h[2])
			return "a wildcard of the form *.example.org";
		p = h + 2;
	}
	if (*p == '.' || h[n - 1] == '.' || strstr(p, ".."))
		return "a host name without empty labels";
	for (; *p; p++) {
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '.' || *p == '_'))
			return "a host name (letters, digits, '-', '.'), *.example.org or default";
	}
	return NULL;
}

/* ---- the settings ------------------------------------------------------------------------ */

struct ctx {
	struct pt_site_conf *s;
	const char *name;
	const char *p;                  /* the value still to read */
	unsigned line;
	char *msg;
	size_t cap;
	char w[WORD_MAX];               /* the current word */
};

static int next(struct ctx *x, const char *what)
{
	int r = pt_site_word(&x->p, x->w, sizeof(x->w));

	if (r < 0)
		return fail(x->msg, x->cap, "an unterminated quote or too long a word");
	if (r == 0)
		return fail(x->msg, x->cap, "needs %s", what);
	return 0;
}

static int at_end(struct ctx *x)
{
	char w[64];

	if (pt_site_word(&x->p, w, sizeof(w)) == 0)
		return 0;
	return fail(x->msg, x->cap, "too many values");
}

static int do_header(struct ctx *x)
{
	struct pt_header_rule r = { 0 };
	char pat[WORD_MAX], name[256];
	int err;

	if ((err = next(x, "PATTERN NAME VALUE")) < 0)
		return err;
	strcpy(pat, x->w);
	r.kind = pat[0] != '/' ? PT_PAT_GLOB : pat[strlen(pat) - 1] == '/' ? PT_PAT_PREFIX
									    : PT_PAT_EXACT;
	if (r.kind == PT_PAT_GLOB && strchr(pat, '/'))
		return fail(x->msg, x->cap, "pattern '%.64s' is neither a path (/...) "
			    "nor a file-name glob (*.html)", pat);
	if ((err = next(x, "PATTERN NAME VALUE")) < 0)
		return err;
	if (!is_token(x->w) || strlen(x->w) >= sizeof(name))
		return fail(x->msg, x->cap, "'%.64s' is not a field name", x->w);
	if (reserved_field(x->w))
		return fail(x->msg, x->cap, "%s is set by the server itself", x->w);
	strcpy(name, x->w);
	err = rest_value(&x->p, x->w, sizeof(x->w));
	if (err <= 0 || !x->w[0] || !is_field_value(x->w))
		return fail(x->msg, x->cap, "needs a VALUE (printable, quoted if it "
			    "has blanks at its ends)");
	r.pattern = strdup(pat);
	r.name = strdup(name);
	r.value = strdup(x->w);
	err = r.pattern && r.name && r.value ? grow((void **)&x->s->headers, x->s->nheaders,
						  sizeof(r)) : -ENOMEM;
	if (err < 0) {
		free(r.pattern), free(r.name), free(r.value);
		return err == -E2BIG ? fail(x->msg, x->cap, "too many rules") : err;
	}
	x->s->headers[x->s->nheaders++] = r;
	return 0;
}

static int parse_status(const char *w, unsigned lo, unsigned hi, unsigned *out)
{
	char *e;
	unsigned long v = strtoul(w, &e, 10);

	if (*e || w[0] < '0' || w[0] > '9' || v < lo || v > hi)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* Sets the page of status st (replacing one given before for the same status). */
static int put_error(struct pt_site_conf *s, unsigned st, const char *path)
{
	char *d = strdup(path);
	int r;

	if (!d)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nerrors; i++)
		if (s->errors[i].status == st) {
			free(s->errors[i].path);
			s->errors[i].path = d;
			return 0;
		}
	if ((r = grow((void **)&s->errors, s->nerrors, sizeof(*s->errors))) < 0) {
		free(d);
		return r;
	}
	s->errors[s->nerrors++] = (struct pt_error_page){ st, d };
	return 0;
}

/* error-page STATUS... PATH */
static int do_error_page(struct ctx *x)
{
	unsigned st[16], n = 0;
	char path[PATH_MAX];
	const char *why;
	int err;

	while ((err = next(x, "STATUS... PATH")) == 0 && x->w[0] != '/') {
		if (parse_status(x->w, 400, 599, &st[n]) < 0)
			return fail(x->msg, x->cap, "'%.32s' is not a status from 400 "
				    "to 599", x->w);
		if (++n == 16)
			return fail(x->msg, x->cap, "at most 15 statuses per line");
	}
	if (err < 0)
		return err;
	if (n == 0)
		return fail(x->msg, x->cap, "needs a STATUS before the PATH");
	if ((why = norm_path(x->w, path)) || path[strlen(path) - 1] == '/')
		return fail(x->msg, x->cap, "'%.64s': expected %s", x->w,
			    why ? why : "a file, not a directory");
	if ((err = at_end(x)) < 0)
		return err;
	for (unsigned i = 0; i < n; i++)
		if ((err = put_error(x->s, st[i], path)) < 0)
			return err;
	return 0;
}

static int do_fallback(struct ctx *x)
{
	char path[PATH_MAX];
	const char *why;
	int err;

	if ((err = next(x, "a PATH or off")) < 0)
		return err;
	if (strcmp(x->w, "off") == 0)
		path[0] = '\0';
	else if ((why = norm_path(x->w, path)) || path[strlen(path) - 1] == '/')
		return fail(x->msg, x->cap, "'%.64s': expected %s", x->w,
			    why ? why : "a file, not a directory");
	if ((err = at_end(x)) < 0 || (err = set_str(&x->s->fallback, path)) < 0)
		return err;
	x->s->set |= PT_SITE_FALLBACK;
	return 0;
}

/* redirect CODE FROM TO */
static int do_redirect(struct ctx *x)
{
	struct pt_redirect_rule r = { 0 };
	char from[PATH_MAX];
	const char *why;
	int err;

	if ((err = next(x, "CODE FROM TO")) < 0)
		return err;
	if (parse_status(x->w, 301, 308, &r.code) < 0 || r.code == 304 || r.code == 305 ||
	    r.code == 306)
		return fail(x->msg, x->cap, "'%.32s' is not 301, 302, 303, 307 or 308",
			    x->w);
	if ((err = next(x, "CODE FROM TO")) < 0)
		return err;
	if ((why = norm_path(x->w, from)))
		return fail(x->msg, x->cap, "FROM '%.64s': expected %s", x->w, why);
	if ((err = next(x, "CODE FROM TO")) < 0)
		return err;
	if (!is_visible(x->w) || strchr(x->w, '#'))
		return fail(x->msg, x->cap, "TO '%.64s' is not a path or URL", x->w);
	if ((err = at_end(x)) < 0)
		return err;
	r.from = strdup(from);
	r.to = strdup(x->w);
	err = r.from && r.to ? grow((void **)&x->s->redirects, x->s->nredirects, sizeof(r))
			     : -ENOMEM;
	if (err < 0) {
		free(r.from), free(r.to);
		return err == -E2BIG ? fail(x->msg, x->cap, "too many rules") : err;
	}
	x->s->redirects[x->s->nredirects++] = r;
	return 0;
}

/* A media type "type/subtype", lower-cased in place. */
static bool media_type(char *w)
{
	char *slash = strchr(w, '/');

	if (!slash || slash == w || !slash[1] || strchr(slash + 1, '/'))
		return false;
	*slash = '\0';
	bool ok = is_token(w) && is_token(slash + 1);
	*slash = '/';
	for (char *p = w; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	return ok;
}

/* compress TYPES... | off (several lines add up) */
static int do_compress(struct ctx *x)
{
	int err, r;

	if ((err = next(x, "media types (text/html ...) or off")) < 0)
		return err;
	x->s->set |= PT_SITE_COMPRESS;
	if (strcmp(x->w, "off") == 0) {
		free_strs(&x->s->compress, &x->s->ncompress);
		return at_end(x);
	}
	do {
		if (!media_type(x->w))
			return fail(x->msg, x->cap, "'%.64s' is not a media type "
				    "(type/subtype)", x->w);
		if ((err = push_str(&x->s->compress, &x->s->ncompress, x->w)) < 0)
			return err == -E2BIG ? fail(x->msg, x->cap, "too many types") : err;
	} while ((r = pt_site_word(&x->p, x->w, sizeof(x->w))) > 0);
	return r < 0 ? fail(x->msg, x->cap, "an unterminated quote") : 0;
}

/* An origin: "scheme://host[:port]" (RFC 6454), no path. */
static bool is_origin(const char *w)
{
	const char *p = strstr(w, "://");

	return p && p > w && is_visible(w) && p[3] && !strchr(p + 3, '/');
}

/* cors * | ORIGIN... | off */
static int do_cors(struct ctx *x)
{
	int err, r;

	if ((err = next(x, "*, origins or off")) < 0)
		return err;
	free_strs(&x->s->cors, &x->s->ncors);
	x->s->set |= PT_SITE_CORS;
	if (strcmp(x->w, "off") == 0 || strcmp(x->w, "*") == 0) {
		bool star = x->w[0] == '*';

		if ((err = at_end(x)) < 0)
			return err;
		return star ? push_str(&x->s->cors, &x->s->ncors, "*") : 0;
	}
	do {
		if (!is_origin(x->w))
			return fail(x->msg, x->cap, "'%.64s' is not *, off or an origin "
				    "(https://example.org)", x->w);
		if ((err = push_str(&x->s->cors, &x->s->ncors, x->w)) < 0)
			return err == -E2BIG ? fail(x->msg, x->cap, "too many origins") : err;
	} while ((r = pt_site_word(&x->p, x->w, sizeof(x->w))) > 0);
	return r < 0 ? fail(x->msg, x->cap, "an unterminated quote") : 0;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static const struct rule {
	const char *name;
	int (*fn)(struct ctx *);
} rules[] = {
	{ "header", do_header }, { "error-page", do_error_page }, { "fallback", do_fallback },
	{ "redirect", do_redirect }, { "compress", do_compress }, { "cors", do_cors },
};

#define NRULES (sizeof(rules) / sizeof(rules[0]))

bool pt_site_is_rule(const char *name)
{
	for (size_t i = 0; i < NRULES; i++)
		if (strcmp(name, rules[i].name) == 0)
			return true;
	return false;
}

bool pt_site_is_setting(const char *name)
{
	static const char *const plain[] = {
		"root", "docroot", "index", "autoindex", "follow-symlinks", "cache-control",
		"tls-cert", "tls-key",
	};

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if (strcmp(name, plain[i]) == 0)
			return true;
	return pt_site_is_rule(name);
}

int pt_site_apply(struct pt_site_conf *s, const char *name, const char *value, unsigned line,
		  char *msg, size_t cap)
{
	struct ctx *x;
	int r = -EINVAL;

	for (size_t i = 0; i < NRULES; i++) {
		if (strcmp(name, rules[i].name))
			continue;
		if (!(x = malloc(sizeof(*x))))
			return -ENOMEM;
		*x = (struct ctx){ s, name, value ? value : "", line, msg, cap, "" };
		r = rules[i].fn(x);
		free(x);
		if (r == -ENOMEM)
			fail(msg, cap, "out of memory");
		return r;
	}
	return fail(msg, cap, "unknown setting '%.64s'", name);
}

void pt_site_clear(struct pt_site_conf *s, const char *name)
{
	if (!strcmp(name, "header")) {
		for (unsigned i = 0; i < s->nheaders; i++)
			free(s->headers[i].pattern), free(s->headers[i].name), free(s->headers[i].value);
		free(s->headers), s->headers = NULL, s->nheaders = 0;
	} else if (!strcmp(name, "redirect")) {
		for (unsigned i = 0; i < s->nredirects; i++)
			free(s->redirects[i].from), free(s->redirects[i].to);
		free(s->redirects), s->redirects = NULL, s->nredirects = 0;
	} else if (!strcmp(name, "error-page")) {
		for (unsigned i = 0; i < s->nerrors; i++)
			free(s->errors[i].path);
		free(s->errors), s->errors = NULL, s->nerrors = 0;
	} else if (!strcmp(name, "compress")) {
		free_strs(&s->compress, &s->ncompress);
		s->set &= ~PT_SITE_COMPRESS;
	} else if (!strcmp(name, "cors")) {
		free_strs(&s->cors, &s->ncors);
		s->set &= ~PT_SITE_CORS;
	} else if (!strcmp(name, "fallback")) {
		free(s->fallback), s->fallback = NULL;
		s->set &= ~PT_SITE_FALLBACK;
	}
}

/* ---- host names -------------------------------------------------------------------------- */

int pt_site_names(struct pt_site_conf *s, const char *names, unsigned line, char *msg,
		  size_t cap)
{
	char w[300];
	const char *why;
	int r;

	s->line = line;
	while ((r = pt_site_word(&names, w, sizeof(w))) > 0) {
		if (strcasecmp(w, "default") == 0) {   /* a name is case-insensitive */
			if (s->is_default)
				return fail(msg, cap, "default given twice");
			s->is_default = true;
			continue;
		}
		if ((why = check_host(w)))
			return fail(msg, cap, "'%.64s': expected %s", w, why);
		if ((r = push_str(&s->names, &s->nnames, w)) < 0)
			return r == -E2BIG ? fail(msg, cap, "too many names") : r;
	}
	if (r < 0)
		return fail(msg, cap, "a name too long or an unterminated quote");
	if (!s->nnames && !s->is_default)
		return fail(msg, cap, "needs at least one name (or default) before '{'");
	return 0;
}

struct named {
	const char *name;
	unsigned line, order;
};

static int cmp_named(const void *a, const void *b)
{
	const struct named *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* Sorted (name, line) pairs of every block; "default" stands for the default flag. */
static struct named *all_names(const struct pt_site_conf *b, unsigned n, size_t *total)
{
	struct named *v;
	size_t k = 0;

	*total = 0;
	for (unsigned i = 0; i < n; i++)
		*total += b[i].nnames + b[i].is_default;
	if (!(v = malloc((*total ? *total : 1) * sizeof(*v))))
		return NULL;
	for (unsigned i = 0; i < n; i++) {
		if (b[i].is_default)
			v[k] = (struct named){ "default", b[i].line, (unsigned)k }, k++;
		for (unsigned j = 0; j < b[i].nnames; j++)
			v[k] = (struct named){ b[i].names[j], b[i].line, (unsigned)k }, k++;
	}
	qsort(v, k, sizeof(*v), cmp_named);
	return v;
}

int pt_site_check_names(const struct pt_site_conf *b, unsigned n, unsigned *line, char *msg,
			size_t cap)
{
	size_t total;
	struct named *v = all_names(b, n, &total), *dup = NULL;

	if (!v)
		return fail(msg, cap, "out of memory");
	for (size_t i = 1; i < total; i++)
		if (!strcmp(v[i].name, v[i - 1].name) && (!dup || v[i].order < dup->order))
			dup = &v[i];
	if (dup) {
		*line = dup->line;
		if (!strcmp(dup->name, "default"))
			fail(msg, cap, "a second default (the first is at line %u)",
			     dup[-1].line);
		else
			fail(msg, cap, "'%.64s' is already used at line %u", dup->name,
			     dup[-1].line);
	}
	free(v);
	return dup ? -EINVAL : 0;
}

/* ---- whole sites ------------------------------------------------------------------------- */

void pt_site_conf_free(struct pt_site_conf *s)
{
	static const char *const lists[] = { "header", "redirect", "error-page", "compress",
					     "cors", "fallback" };

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		pt_site_clear(s, lists[i]);
	free_strs(&s->names, &s->nnames);
	free_strs(&s->certs, &s->ncerts);
	free_strs(&s->keys, &s->nkeys);
	free(s->cert_lines);
	free(s->root);
	free(s->index);
	free(s->cache_control);
	*s = (struct pt_site_conf){ 0 };
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool strs_eq(char **a, char **b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!str_eq(a[i], b[i]))
			return false;
	return true;
}

static bool rules_eq(const struct pt_site_conf *a, const struct pt_site_conf *b)
{
	for (unsigned i = 0; i < a->nheaders; i++)
		if (!str_eq(a->headers[i].pattern, b->headers[i].pattern) ||
		    !str_eq(a->headers[i].name, b->headers[i].name) ||
		    !str_eq(a->headers[i].value, b->headers[i].value) ||
		    a->headers[i].kind != b->headers[i].kind)
			return false;
	for (unsigned i = 0; i < a->nredirects; i++)
		if (a->redirects[i].code != b->redirects[i].code ||
		    !str_eq(a->redirects[i].from, b->redirects[i].from) ||
		    !str_eq(a->redirects[i].to, b->redirects[i].to))
			return false;
	for (unsigned i = 0; i < a->nerrors; i++)
		if (a->errors[i].status != b->errors[i].status ||
		    !str_eq(a->errors[i].path, b->errors[i].path))
			return false;
	return true;
}

bool pt_site_conf_equal(const struct pt_site_conf *a, const struct pt_site_conf *b)
{
	return a->line == b->line && a->nnames == b->nnames && a->is_default == b->is_default &&
	       a->set == b->set && a->root_line == b->root_line && a->autoindex == b->autoindex &&
	       a->follow_symlinks == b->follow_symlinks && a->ncors == b->ncors &&
	       a->ncompress == b->ncompress && a->nheaders == b->nheaders &&
	       a->nredirects == b->nredirects && a->nerrors == b->nerrors &&
	       a->ncerts == b->ncerts && a->nkeys == b->nkeys &&
	       str_eq(a->root, b->root) && str_eq(a->index, b->index) &&
	       str_eq(a->cache_control, b->cache_control) && str_eq(a->fallback, b->fallback) &&
	       strs_eq(a->names, b->names, a->nnames) && strs_eq(a->cors, b->cors, a->ncors) &&
	       strs_eq(a->compress, b->compress, a->ncompress) &&
	       strs_eq(a->certs, b->certs, a->ncerts) && strs_eq(a->keys, b->keys, a->nkeys) &&
	       (!a->ncerts || !memcmp(a->cert_lines, b->cert_lines, a->ncerts * sizeof(unsigned))) &&
	       rules_eq(a, b);
}

bool pt_site_pattern_match(const struct pt_header_rule *r, const char *path, const char *base)
{
	switch (r->kind) {
	case PT_PAT_PREFIX:
		return strncmp(path, r->pattern, strlen(r->pattern)) == 0;
	case PT_PAT_EXACT:
		return strcmp(path, r->pattern) == 0;
	default:
		return fnmatch(r->pattern, base, FNM_PERIOD) == 0;
	}
}
