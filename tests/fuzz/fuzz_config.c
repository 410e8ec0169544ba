/*
 * libFuzzer target for the config file and command-line parser (src/server/config.c, the
 * file syntax and host blocks of conffile.c, the per-site rules of site.c).
 * It includes those files itself (so no "fuzz-sources" line) to check every field against
 * the option table.
 *
 * Input: the first byte selects the mode. 'A': the rest, split at '\n', is an argument
 * list for pt_config_parse_args (arguments naming a config file are dropped, so that the
 * fuzzer never reads the file system). Anything else: the rest is config file text for
 * pt_config_parse_text, applied to the defaults.
 * Invariants (a violation aborts):
 *  - the result is 0, 1 (argv mode only: help or version) or PT_CONFIG_USAGE, and an error
 *    leaves a NUL-terminated, non-empty message that in file mode starts with "NAME:LINE: ";
 *  - after success every number lies within its option's bounds (or is its auto/off
 *    value), every string is NUL-terminated inside its field and passes its check, every
 *    listen address is one the parser accepts and reproduces, and 1 <= nlisten <= 16 in
 *    argv mode;
 *  - every host block has a name or is the default, no name is used twice, names are
 *    lower-case host names or "*." wildcards, tls-cert/tls-key lines are counted with a
 *    line each; every rule (top level and blocks) has its parts: a pattern of its kind, a
 *    field name that is a token and a value without CR/LF, a status in 400..599, a
 *    redirect code of 301/302/303/307/308 with a FROM starting with '/', media types with
 *    one '/', origins or "*";
 *  - parsing the same text twice gives the same configuration (no hidden state), and
 *    freeing it leaves nothing behind (LeakSanitizer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.c"
#include "server/config_values.c"
#include "server/conffile.c"
#include "server/site.c"
#include "server/path.c"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
	abort(); } } while (0)

static bool lower_host(const char *n)
{
	if (n[0] == '*')
		n += 2;
	for (; *n; n++)
		if ((*n >= 'A' && *n <= 'Z') || (unsigned char)*n <= ' ' || *n == '/')
			return false;
	return true;
}

static void check_site(const struct pt_site_conf *s, bool block)
{
	CHECK(!block || s->nnames || s->is_default);
	CHECK(block || (!s->nnames && !s->ncerts && !s->root));
	for (unsigned i = 0; i < s->nnames; i++)
		CHECK(lower_host(s->names[i]) && strcmp(s->names[i], "default"));
	for (unsigned i = 0; i < s->nheaders; i++) {
		const struct pt_header_rule *h = &s->headers[i];
		CHECK(is_token(h->name) && !reserved_field(h->name) && is_field_value(h->value));
		CHECK(h->pattern[0] == '/' ? h->kind != PT_PAT_GLOB : h->kind == PT_PAT_GLOB);
	}
	for (unsigned i = 0; i < s->nerrors; i++)
		CHECK(s->errors[i].status >= 400 && s->errors[i].status <= 599 &&
		      s->errors[i].path[0] == '/');
	for (unsigned i = 0; i < s->nredirects; i++) {
		unsigned c = s->redirects[i].code;
		CHECK((c >= 301 && c <= 303) || c == 307 || c == 308);
		CHECK(s->redirects[i].from[0] == '/' && is_visible(s->redirects[i].to));
	}
	for (unsigned i = 0; i < s->ncompress; i++)
		CHECK(strchr(s->compress[i], '/') == strrchr(s->compress[i], '/'));
	for (unsigned i = 0; i < s->ncors; i++)
		CHECK(!strcmp(s->cors[i], "*") || is_origin(s->cors[i]));
	CHECK(!s->fallback || !s->fallback[0] || s->fallback[0] == '/');
	CHECK(s->ncerts < 1000 && s->nkeys < 1000);
}

static void check_sites(const struct pt_server_config *c)
{
	char msg[300];
	unsigned line;

	check_site(&c->top, false);
	for (unsigned i = 0; i < c->nhosts; i++) {
		check_site(&c->hosts[i], true);
		CHECK(c->hosts[i].line >= 1);
	}
	CHECK(pt_site_check_names(c->hosts, c->nhosts, &line, msg, sizeof(msg)) == 0);
}

/* a and b without their pointers are the same, and so are their sites. */
static bool same_config(const struct pt_server_config *a, const struct pt_server_config *b)
{
	static struct pt_server_config x, y;

	x = *a, y = *b;
	x.top = y.top = (struct pt_site_conf){ 0 };
	x.hosts = y.hosts = NULL;
	if (memcmp(&x, &y, sizeof(x)) || !pt_site_conf_equal(&a->top, &b->top))
		return false;
	for (unsigned i = 0; i < a->nhosts; i++)
		if (!pt_site_conf_equal(&a->hosts[i], &b->hosts[i]))
			return false;
	return true;
}

static void check_config(const struct pt_server_config *c)
{
	CHECK(c->nlisten <= PT_CONFIG_MAX_LISTEN);
	for (unsigned i = 0; i < c->nlisten; i++) {
		char again[PT_CONFIG_ADDR_MAX];

		CHECK(memchr(c->listen[i], '\0', PT_CONFIG_ADDR_MAX));
		CHECK(pt__parse_listen(c->listen[i], again) && strcmp(again, c->listen[i]) == 0);
	}
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		const char *base = (const char *)c + o->off;

		switch (o->kind) {
		case K_UINT: case K_MS: case K_RATE: {
			unsigned v = *(const unsigned *)base;
			bool special = ((o->flags & F_AUTO) && v == 0) ||
				       ((o->flags & F_OFF) && v == PT_CONFIG_RATE_OFF);

			CHECK(special || (v >= o->min && v <= o->max) ||
			      (o->kind == K_MS && v == 0 && o->min == 0));
			break;
		}
		case K_SIZE: {
			uint64_t v = *(const uint64_t *)base;

			CHECK(v >= o->min && v <= o->max);
			break;
		}
		case K_ADDR: {                 /* "" (off) or an address the parser reproduces */
			char again[PT_CONFIG_ADDR_MAX];

			CHECK(memchr(base, '\0', o->cap));
			CHECK(!*base || (pt__parse_listen(base, again) && strcmp(again, base) == 0));
			break;
		}
		case K_STR:
			CHECK(memchr(base, '\0', o->cap));
			/* "" is a default ("no user") or "off"; anything else was checked */
			if (*base)
				CHECK(!o->check || !o->check(base));
			break;
		}
	}
	CHECK(c->backend == PT_BACKEND_AUTO || c->backend == PT_BACKEND_URING ||
	      c->backend == PT_BACKEND_EPOLL);
	CHECK(c->when_full == PT_FULL_SHED || c->when_full == PT_FULL_PAUSE);
	check_sites(c);
}

static int run_args(const char *text, size_t len, struct pt_server_config *c, char *err,
		    size_t errlen)
{
	char *copy = malloc(len + 1), *argv[256] = { "portico" };
	int argc = 1, r;

	memcpy(copy, text, len);
	copy[len] = '\0';
	for (char *p = copy, *nl; p && argc < 255; p = nl) {
		nl = memchr(p, '\n', len - (size_t)(p - copy));
		if (nl)
			*nl++ = '\0';
		if (strncmp(p, "-c", 2) == 0 || strncmp(p, "--config", 8) == 0)
			continue;
		argv[argc++] = p;
		if (!nl)
			break;
	}
	argv[argc] = NULL;
	r = pt_config_parse_args(c, argc, argv, err, errlen);
	free(copy);
	return r;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* --help and --version print: keep the fuzzer's output readable */
	return freopen("/dev/null", "w", stdout) ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static struct pt_server_config c1, c2;
	char err1[512], err2[512];
	bool argv_mode;
	const char *text;
	int r1, r2;

	if (len == 0)
		return 0;
	argv_mode = data[0] == 'A';
	text = (const char *)data + 1;
	len--;
	err1[0] = err2[0] = '\0';
	if (argv_mode) {
		r1 = run_args(text, len, &c1, err1, sizeof(err1));
		r2 = run_args(text, len, &c2, err2, sizeof(err2));
	} else {
		char *copy = malloc(len ? len : 1);

		memcpy(copy, text, len);
		pt_config_defaults(&c1);
		pt_config_defaults(&c2);
		r1 = pt_config_parse_text(&c1, copy, len, "fuzz.conf", err1, sizeof(err1));
		r2 = pt_config_parse_text(&c2, copy, len, "fuzz.conf", err2, sizeof(err2));
		free(copy);
	}
	CHECK(r1 == r2 && strcmp(err1, err2) == 0);
	CHECK(r1 == 0 || r1 == PT_CONFIG_USAGE || (argv_mode && r1 == 1));
	if (r1 == PT_CONFIG_USAGE) {
		CHECK(memchr(err1, '\0', sizeof(err1)) && err1[0]);
		if (!argv_mode)
			CHECK(strncmp(err1, "fuzz.conf:", 10) == 0);
	}
	if (r1 == 0) {
		check_config(&c1);
		CHECK(same_config(&c1, &c2));
		if (argv_mode)
			CHECK(c1.nlisten + c1.nlisten_tls >= 1);
	}
	pt_config_free(&c1);
	pt_config_free(&c2);
	return 0;
}
