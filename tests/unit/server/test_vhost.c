/*
 * Unit tests of src/server/vhost.c and src/server/rules.c: building a snapshot from a
 * configuration (docroots opened, the settings a block inherits, the error naming FILE:LINE),
 * choosing the site by Host (exact, case, port, trailing dot, IPv6, longest wildcard,
 * default, first block), the per-worker switch to a new snapshot, and the rules of one
 * request: header rule order, redirects (exact, prefix, the bare prefix, query, encoding,
 * own before inherited), error pages, CORS origins, compressible types, extensions.
 */
#include "server/vhost.c"
#include "server/rules.c"
#include "server/config.c"
#include "server/config_values.c"
#include "server/config_check.c"
#include "server/conffile.c"
#include "server/site.c"
#include "server/path.c"
#include "server/path_open.c"
#include "server/fcache.c"
#include "server/cond.c"
#include "server/mime.c"
#include "server/encoding.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

static char g_dir[64], g_err[1024];

/* A configuration from text (as file "v.conf"), on the heap: the snapshot takes it. */
static struct pt_server_config *conf(const char *fmt, ...)
{
	struct pt_server_config *c = malloc(sizeof(*c));
	char t[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t, sizeof(t), fmt, ap);
	va_end(ap);
	pt_config_defaults(c);
	strcpy(c->docroot, g_dir);
	if (pt_config_parse_text(c, t, strlen(t), "v.conf", g_err, sizeof(g_err)) != 0)
		fail_msg("%s", g_err);
	strcpy(c->config_file, "v.conf");
	return c;
}

static struct pt_snapshot *build(struct pt_server_config *c)
{
	struct pt_snapshot *s = pt_snapshot_build(c, NULL, 2, g_err, sizeof(g_err));

	if (!s)
		fail_msg("%s", g_err);
	return s;
}

static unsigned site_of(const struct pt_snapshot *s, const char *host)
{
	return (unsigned)(pt_snapshot_site(s, host, host ? strlen(host) : 0) - s->sites);
}

static int setup(void **state)
{
	strcpy(g_dir, "/tmp/pt-vhost.XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	return 0;
}

static int teardown(void **state)
{
	rmdir(g_dir);
	return 0;
}

static void test_lookup(void **state)
{
	struct pt_snapshot *s = build(conf(
		"host a.example www.a.example {\n}\n"
		"host *.b.example {\n}\n"
		"host *.x.b.example [::1] {\n}\n"
		"host default {\n}\n"));

	assert_int_equal(s->nsites, 4);
	assert_int_equal(site_of(s, "a.example"), 0);
	assert_int_equal(site_of(s, "WWW.A.Example:8080"), 0);
	assert_int_equal(site_of(s, "a.example."), 0);
	assert_int_equal(site_of(s, "c.b.example"), 1);
	assert_int_equal(site_of(s, "d.c.b.example"), 1);
	assert_int_equal(site_of(s, "y.x.b.example"), 2);   /* the longest wildcard */
	assert_int_equal(site_of(s, "b.example"), 3);       /* *. needs a label */
	assert_int_equal(site_of(s, "[::1]:443"), 2);
	assert_int_equal(site_of(s, "other"), 3);
	assert_int_equal(site_of(s, NULL), 3);
	assert_int_equal(site_of(s, ""), 3);
	assert_int_equal(site_of(s, ":80"), 3);
	pt_snapshot_unref(s);
	/* no default: the first block */
	s = build(conf("host a {\n}\nhost b {\n}\n"));
	assert_int_equal(site_of(s, "zzz"), 0);
	assert_int_equal(site_of(s, "b"), 1);
	pt_snapshot_unref(s);
	/* no block: one site */
	s = build(conf("index i.html\n"));
	assert_int_equal(s->nsites, 1);
	assert_string_equal(pt_snapshot_site(s, "x", 1)->index, "i.html");
	pt_snapshot_unref(s);
}

static void test_inherit(void **state)
{
	char sub[128];

	snprintf(sub, sizeof(sub), "%s/sub", g_dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	struct pt_snapshot *s = build(conf(
		"index top.html\ncache-control max-age=1\nfallback /app.html\ncors *\n"
		"compress text/html\nautoindex\n"
		"host a {\n}\n"
		"host b {\n  root %s\n  index off\n  cache-control off\n  fallback off\n"
		"  cors https://o.example\n  compress off\n  autoindex off\n  follow-symlinks\n}\n",
		sub));
	const struct pt_site *a = &s->sites[0], *b = &s->sites[1];

	assert_string_equal(a->root, g_dir);
	assert_string_equal(a->index, "top.html");
	assert_string_equal(a->cache_control, "max-age=1");
	assert_string_equal(a->fallback, "/app.html");
	assert_true(a->ncors == 1 && a->ncompress == 1 && a->autoindex);
	assert_false(a->opts.follow_symlinks);
	assert_string_equal(b->root, sub);
	assert_string_equal(b->index, "");
	assert_string_equal(b->cache_control, "");
	assert_string_equal(b->fallback, "");
	assert_string_equal(b->cors[0], "https://o.example");
	assert_true(b->ncompress == 0 && !b->autoindex && b->opts.follow_symlinks);
	assert_true(a->rootfd >= 0 && b->rootfd >= 0);
	pt_snapshot_unref(s);
	rmdir(sub);
}

static void test_build_error(void **state)
{
	struct pt_server_config *c = conf("host a {\n}\nhost b {\n  root %s/nope\n}\n", g_dir);

	assert_null(pt_snapshot_build(c, NULL, 2, g_err, sizeof(g_err)));
	assert_non_null(strstr(g_err, "v.conf:4: docroot '"));
	assert_non_null(strstr(g_err, "/nope': No such file or directory"));
}

/* Worker 0 moves to a new snapshot at its next request; the one before stays (one reload
 * deep) for the connections that predate the swap. */
static void test_swap(void **state)
{
	struct pt_vhosts v;
	struct pt_snapshot *s1 = build(conf("index one.html\n")), *s2 = build(conf("index two.html\n"));
	struct pt_snapshot *s3 = build(conf("index three.html\n"));
	const struct pt_snapshot *seen;

	assert_int_equal(pt_vhosts_init(&v, s1, 2, 1000), 0);
	seen = pt_vhosts_enter(&v, 0);
	assert_ptr_equal(seen, s1);
	assert_non_null(pt_site_cache(&seen->sites[0], 0));
	assert_int_equal(atomic_load(&s1->refs), 2);
	pt_vhosts_swap(&v, s2);                   /* no engine: no nudge */
	assert_int_equal(s2->gen, 2);
	assert_int_equal(atomic_load(&s1->refs), 2);   /* worker 0, and v as the previous one */
	assert_ptr_equal(pt_vhosts_enter(&v, 0), s2);  /* s1 kept as worker 0's previous */
	assert_non_null(s1->sites[0].cache[0]);        /* with its cache */
	assert_ptr_equal(pt_vhosts_enter(&v, 0), s2);
	assert_ptr_equal(pt_vhosts_enter(&v, 1), s2);
	assert_int_equal(atomic_load(&s2->refs), 3);
	assert_int_equal(atomic_load(&s1->refs), 3);   /* v and both workers */
	pt_vhosts_swap(&v, s3);                        /* s1 is two reloads old now */
	assert_ptr_equal(pt_vhosts_enter(&v, 0), s3);
	assert_ptr_equal(pt_vhosts_enter(&v, 1), s3);
	assert_int_equal(atomic_load(&s2->refs), 3);   /* previous of v and both workers */
	pt_vhosts_fini(&v);
}

/* A connection accepted before the swap is served under the snapshot it started with and
 * told to close; after keep_ms the previous snapshot is let go. */
static void test_for_conn(void **state)
{
	struct pt_vhosts v;
	struct pt_snapshot *s1 = build(conf("index one.html\n")), *s2 = build(conf("index two.html\n"));
	bool stale = true;

	assert_int_equal(pt_vhosts_init(&v, s1, 1, 1000), 0);
	assert_ptr_equal(pt_vhosts_for_conn(&v, 0, 5, 10, &stale), s1);
	assert_false(stale);
	pt_vhosts_swap(&v, s2);
	uint64_t t = s2->since_ms;
	assert_true(t > 0);
	assert_ptr_equal(pt_vhosts_for_conn(&v, 0, t - 5, t + 10, &stale), s1);   /* older conn */
	assert_true(stale);
	assert_non_null(pt_site_cache(&s1->sites[0], 0));
	assert_ptr_equal(pt_vhosts_for_conn(&v, 0, t + 1, t + 10, &stale), s2);   /* newer conn */
	assert_false(stale);
	assert_int_equal(atomic_load(&s1->refs), 2);
	assert_ptr_equal(pt_vhosts_for_conn(&v, 0, t - 5, t + 1001, &stale), s2); /* kept long enough */
	assert_true(stale);                            /* still closed: it predates s2 */
	assert_int_equal(atomic_load(&s1->refs), 1);   /* only v's: the worker let go */
	assert_null(s1->sites[0].cache[0]);            /* and freed its cache */
	pt_vhosts_fini(&v);
}

static struct pt_http_str S(const char *s)
{
	return (struct pt_http_str){ s, s ? strlen(s) : 0 };
}

static void test_rules(void **state)
{
	struct pt_snapshot *s = build(conf(
		"header / X-Top 1\nheader *.css X-Both top\n"
		"redirect 301 /t /top\nredirect 302 /p/ /top-p/\nerror-page 404 /404.html\n"
		"error-page 500 /500.html\n"
		"host a {\n  header *.css X-Both block\n  redirect 308 /p/ https://n.example/x/\n"
		"  error-page 404 /a404.html\n  cors https://o.example https://p.example:8443\n"
		"  compress application/javascript text/* image/svg+xml\n}\n"));
	const struct pt_site *a = &s->sites[0];
	char loc[256];
	unsigned code = 0;
	bool vary;

	assert_string_equal(pt_rules_header_at(a, 0)->name, "X-Top");
	assert_string_equal(pt_rules_header_at(a, 1)->value, "top");
	assert_string_equal(pt_rules_header_at(a, 2)->value, "block");  /* last: it wins */
	assert_null(pt_rules_header_at(a, 3));
	assert_true(pt_site_pattern_match(pt_rules_header_at(a, 1), "/d/x.css", "x.css"));
	assert_false(pt_site_pattern_match(pt_rules_header_at(a, 1), "/d/x.cssx", "x.cssx"));
	assert_true(pt_site_pattern_match(pt_rules_header_at(a, 0), "/any", "any"));
	/* redirects: the block's prefix first, the rest and the query appended */
	assert_int_equal(pt_rules_redirect(a, "/p/a b/c", S("q=1"), loc, sizeof(loc), &code), 31);
	assert_string_equal(loc, "https://n.example/x/a%20b/c?q=1");
	assert_int_equal(code, 308);
	assert_true(pt_rules_redirect(a, "/p", S(NULL), loc, sizeof(loc), &code) > 0);
	assert_string_equal(loc, "https://n.example/x/");
	assert_true(pt_rules_redirect(a, "/t", S(NULL), loc, sizeof(loc), &code) > 0);
	assert_string_equal(loc, "/top");
	assert_int_equal(code, 301);
	assert_int_equal(pt_rules_redirect(a, "/t/", S(NULL), loc, sizeof(loc), &code), 0);
	assert_int_equal(pt_rules_redirect(a, "/px", S(NULL), loc, sizeof(loc), &code), 0);
	assert_int_equal(pt_rules_redirect(a, "/p/x", S(NULL), loc, 10, &code), -ENOSPC);
	/* error pages: own, then inherited */
	assert_string_equal(pt_rules_error_page(a, 404), "/a404.html");
	assert_string_equal(pt_rules_error_page(a, 500), "/500.html");
	assert_null(pt_rules_error_page(a, 403));
	/* CORS */
	assert_string_equal(pt_rules_cors(a, S("https://p.example:8443"), &vary),
			    "https://p.example:8443");
	assert_true(vary);
	assert_null(pt_rules_cors(a, S("https://evil.example"), &vary));
	assert_null(pt_rules_cors(a, S(NULL), &vary));
	/* compression */
	assert_true(pt_rules_compressible(a, "text/javascript; charset=utf-8"));
	assert_true(pt_rules_compressible(a, "text/css; charset=utf-8"));
	assert_true(pt_rules_compressible(a, "image/svg+xml; charset=utf-8"));
	assert_false(pt_rules_compressible(a, "image/png"));
	assert_false(pt_rules_compressible(a, "application/json"));
	assert_false(pt_rules_compressible(a, NULL));
	pt_snapshot_unref(s);
	/* the top level's site */
	s = build(conf("cors *\n"));
	assert_string_equal(pt_rules_cors(&s->sites[0], S(NULL), &vary), "*");
	assert_false(vary);
	assert_false(pt_rules_compressible(&s->sites[0], "text/html"));
	pt_snapshot_unref(s);
}

static void test_extension(void **state)
{
	assert_true(pt_rules_no_extension("/app/route"));
	assert_true(pt_rules_no_extension("/.hidden"));     /* a leading dot is no extension */
	assert_false(pt_rules_no_extension("/app/main.js"));
	assert_false(pt_rules_no_extension("/"));
	assert_false(pt_rules_no_extension("/a.b/"));
	assert_true(pt_rules_no_extension("/a.b/c"));
}

static void test_encode(void **state)
{
	char out[32];

	assert_int_equal(pt_rules_encode_path("/a b?#%", out, sizeof(out)), 15);
	assert_string_equal(out, "/a%20b%3F%23%25");
	assert_int_equal(pt_rules_encode_path("/\xc3\xa9", out, sizeof(out)), 7);
	assert_string_equal(out, "/%C3%A9");
	assert_int_equal(pt_rules_encode_path("/aaaa", out, 4), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_inherit),
		cmocka_unit_test(test_build_error),
		cmocka_unit_test(test_swap),
		cmocka_unit_test(test_for_conn),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_extension),
		cmocka_unit_test(test_encode),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
