/*
 * Unit tests of src/server/site.c and src/server/conffile.c: the per-site rules (header,
 * error-page, fallback, redirect, compress, cors) at the top level and on the command line,
 * host blocks (the example of issue 17 as written, names, default, inheritance marks,
 * certificates), every kind of bad line with its FILE:LINE message, the checks against the
 * system (docroots with the line that named them, certificate pairs), what a reload cannot
 * change, and the man page's description of every block setting.
 */
#include "server/config.c"
#include "server/config_values.c"
#include "server/config_check.c"
#include "server/conffile.c"
#include "server/site.c"
#include "server/path.c"
#include "server/path_open.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

static struct pt_server_config g_c;
static char g_err[1024];

/* Parses text as the file "f.conf" into g_c (freed and reset first). */
static int text(const char *t)
{
	pt_config_free(&g_c);
	pt_config_defaults(&g_c);
	g_err[0] = '\0';
	return pt_config_parse_text(&g_c, t, strlen(t), "f.conf", g_err, sizeof(g_err));
}

static void text_bad(const char *t, const char *want)
{
	int r = text(t);

	if (r != PT_CONFIG_USAGE || !strstr(g_err, want))
		fail_msg("\"%s\": got %d \"%s\", want \"%s\"", t, r, g_err, want);
}

static int args(const char *first, ...)
{
	char *argv[64] = { "portico" };
	int argc = 1;
	va_list ap;

	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	pt_config_free(&g_c);
	g_err[0] = '\0';
	return pt_config_parse_args(&g_c, argc, argv, g_err, sizeof(g_err));
}

static char *write_temp(const char *t)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/pt-site.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
	close(fd);
	return path;
}

static void test_words(void **state)
{
	const char *p = "  a \"b c\"\t\"d\\\"e\\\\\" f\\g  ";
	char w[16];

	assert_int_equal(pt_site_word(&p, w, sizeof(w)), 1);
	assert_string_equal(w, "a");
	assert_int_equal(pt_site_word(&p, w, sizeof(w)), 1);
	assert_string_equal(w, "b c");
	assert_int_equal(pt_site_word(&p, w, sizeof(w)), 1);
	assert_string_equal(w, "d\"e\\");
	assert_int_equal(pt_site_word(&p, w, sizeof(w)), 1);
	assert_string_equal(w, "f\\g");
	assert_int_equal(pt_site_word(&p, w, sizeof(w)), 0);
	p = "\"open";
	assert_int_equal(pt_site_word(&p, w, sizeof(w)), -EINVAL);
	p = "0123456789abcdefg";
	assert_int_equal(pt_site_word(&p, w, sizeof(w)), -EINVAL);
}

/* The example of issue 17, as written. */
static const char *const example =
	"listen 127.0.0.1:8080\n"
	"listen-tls 127.0.0.1:8443\n"
	"tls-cert /etc/portico/example.pem\n"
	"tls-key /etc/portico/example.key\n"
	"host example.org www.example.org {\n"
	"    root /srv/example\n"
	"    header /assets/ Cache-Control \"public, max-age=31536000, immutable\"\n"
	"    header *.html Cache-Control \"no-cache\"\n"
	"    header / X-Content-Type-Options nosniff\n"
	"    error-page 404 /404.html\n"
	"    fallback /index.html\n"
	"    redirect 301 /old/ /new/\n"
	"    compress text/html text/css application/javascript application/json image/svg+xml\n"
	"    cors *\n"
	"}\n"
	"host default {\n"
	"    root /srv/default\n"
	"}\n";

static void test_issue_example(void **state)
{
	const struct pt_site_conf *a, *d;

	assert_int_equal(text(example), 0);
	assert_int_equal(g_c.nhosts, 2);
	assert_int_equal(g_c.tls_cert_line[0], 3);
	a = &g_c.hosts[0];
	d = &g_c.hosts[1];
	assert_int_equal(a->line, 5);
	assert_int_equal(a->nnames, 2);
	assert_string_equal(a->names[0], "example.org");
	assert_string_equal(a->names[1], "www.example.org");
	assert_false(a->is_default);
	assert_string_equal(a->root, "/srv/example");
	assert_int_equal(a->root_line, 6);
	assert_int_equal(a->nheaders, 3);
	assert_int_equal(a->headers[0].kind, PT_PAT_PREFIX);
	assert_string_equal(a->headers[0].value, "public, max-age=31536000, immutable");
	assert_int_equal(a->headers[1].kind, PT_PAT_GLOB);
	assert_string_equal(a->headers[1].pattern, "*.html");
	assert_string_equal(a->headers[1].value, "no-cache");
	assert_string_equal(a->headers[2].name, "X-Content-Type-Options");
	assert_string_equal(a->headers[2].value, "nosniff");
	assert_int_equal(a->nerrors, 1);
	assert_int_equal(a->errors[0].status, 404);
	assert_string_equal(a->errors[0].path, "/404.html");
	assert_string_equal(a->fallback, "/index.html");
	assert_int_equal(a->nredirects, 1);
	assert_int_equal(a->redirects[0].code, 301);
	assert_string_equal(a->redirects[0].from, "/old/");
	assert_string_equal(a->redirects[0].to, "/new/");
	assert_int_equal(a->ncompress, 5);
	assert_string_equal(a->compress[4], "image/svg+xml");
	assert_int_equal(a->ncors, 1);
	assert_string_equal(a->cors[0], "*");
	assert_true(a->set == (PT_SITE_ROOT | PT_SITE_FALLBACK | PT_SITE_COMPRESS | PT_SITE_CORS));
	assert_true(d->is_default && d->nnames == 0);
	assert_string_equal(d->root, "/srv/default");
	assert_int_equal(d->set, PT_SITE_ROOT);
	assert_int_equal(g_c.top.nheaders, 0);
}

static void test_block_settings(void **state)
{
	assert_int_equal(text("cache-control max-age=60\n"
			      "host *.Example.ORG a.test. {\n"
			      "  index start.html\n  autoindex\n  follow-symlinks off\n"
			      "  cache-control no-store\n  docroot /w\n"
			      "  tls-cert a.pem\n  tls-key a.key\n  tls-cert b.pem\n  tls-key b.key\n"
			      "  compress off\n  cors off\n  fallback off\n}\n"), PT_CONFIG_USAGE);
	assert_non_null(strstr(g_err, "f.conf:2: host: 'a.test.'"));
	assert_int_equal(text("cache-control max-age=60\n"
			      "host *.Example.ORG [::1] 10.0.0.1 {\n"
			      "  index start.html\n  autoindex\n  follow-symlinks off\n"
			      "  cache-control no-store\n  docroot /w\n"
			      "  tls-cert a.pem\n  tls-key a.key\n  tls-cert b.pem\n  tls-key b.key\n"
			      "  compress off\n  cors off\n  fallback off\n}\n"), 0);
	const struct pt_site_conf *b = &g_c.hosts[0];
	assert_string_equal(b->names[0], "*.example.org");
	assert_string_equal(b->names[1], "[::1]");
	assert_string_equal(b->index, "start.html");
	assert_true(b->autoindex && !b->follow_symlinks);
	assert_string_equal(b->cache_control, "no-store");
	assert_string_equal(g_c.cache_control, "max-age=60");   /* the top level's own */
	assert_string_equal(b->root, "/w");
	assert_int_equal(b->root_line, 7);
	assert_true(b->ncerts == 2 && b->nkeys == 2);
	assert_string_equal(b->certs[1], "b.pem");
	assert_int_equal(b->cert_lines[1], 10);
	assert_string_equal(b->keys[1], "b.key");
	assert_true(b->ncompress == 0 && b->ncors == 0 && !b->fallback[0]);
	assert_true(b->set & PT_SITE_COMPRESS && b->set & PT_SITE_CORS && b->set & PT_SITE_FALLBACK);
	assert_true(b->set & PT_SITE_INDEX && b->set & PT_SITE_AUTOINDEX &&
		    b->set & PT_SITE_SYMLINKS && b->set & PT_SITE_CACHE_CONTROL);
	/* an empty block, and "root" at the top level */
	assert_int_equal(text("root /srv\nhost x {\n}\n"), 0);
	assert_string_equal(g_c.docroot, "/srv");
	assert_int_equal(g_c.docroot_line, 1);
	assert_int_equal(g_c.hosts[0].set, 0);
}

static void test_top_rules(void **state)
{
	assert_int_equal(text("header *.js X-A \"q\\\"uoted\"\n"
			      "header /a/ X-B two words here  \n"
			      "error-page 500 502 503 /50x.html\nerror-page 502 /502.html\n"
			      "redirect 308 /a /b\nredirect 302 /p/ https://x.example/q/\n"
			      "cors https://a.example https://b.example:8443\n"
			      "compress text/HTML\ncompress text/*\nfallback /app/./index.html\n"), 0);
	const struct pt_site_conf *t = &g_c.top;
	assert_string_equal(t->headers[0].value, "q\"uoted");
	assert_string_equal(t->headers[1].value, "two words here");
	assert_int_equal(t->nerrors, 3);
	assert_string_equal(t->errors[1].path, "/502.html");  /* replaced */
	assert_string_equal(t->errors[2].path, "/50x.html");
	assert_int_equal(t->redirects[0].code, 308);
	assert_string_equal(t->redirects[1].to, "https://x.example/q/");
	assert_int_equal(t->ncors, 2);
	assert_int_equal(t->ncompress, 2);
	assert_string_equal(t->compress[0], "text/html");      /* lower-cased */
	assert_string_equal(t->fallback, "/app/index.html");   /* normalized */
}

/* A rule given on the command line replaces the file's lines of that name. */
static void test_command_line(void **state)
{
	char *path = write_temp("header / X-File 1\nheader / X-File 2\ncompress text/html\n"
				"cors *\nhost a {\n  header / X-Block 1\n}\n");
	char cfg[80];

	snprintf(cfg, sizeof(cfg), "--config=%s", path);
	assert_int_equal(args(cfg, NULL), 0);
	assert_int_equal(g_c.top.nheaders, 2);
	assert_int_equal(args(cfg, "--header", "*.css X-Cmd yes", "--compress", "off",
			      "--fallback=/i.html", "--error-page", "404 410 /gone.html",
			      "--redirect", "301 /x /y", NULL), 0);
	assert_int_equal(g_c.top.nheaders, 1);
	assert_string_equal(g_c.top.headers[0].name, "X-Cmd");
	assert_int_equal(g_c.top.ncompress, 0);
	assert_int_equal(g_c.top.ncors, 1);                   /* not given: the file's */
	assert_string_equal(g_c.top.fallback, "/i.html");
	assert_int_equal(g_c.top.nerrors, 2);
	assert_int_equal(g_c.hosts[0].nheaders, 1);           /* blocks keep theirs */
	assert_int_equal(args("--header", "/x/ Date now", NULL), PT_CONFIG_USAGE);
	assert_non_null(strstr(g_err, "--header: Date is set by the server itself"));
	assert_int_equal(args("--cors", "nope", NULL), PT_CONFIG_USAGE);
	assert_non_null(strstr(g_err, "--cors: 'nope' is not *, off or an origin"));
	assert_int_equal(args("--compress-cache", "1m", NULL), 0);
	assert_int_equal(g_c.compress_cache, 1 << 20);
	assert_int_equal(args(NULL), 0);
	assert_int_equal(g_c.compress_cache, 64 << 20);
	unlink(path);
}

static void test_check_config_flag(void **state)
{
	char *path = write_temp("workers 2\n");

	assert_int_equal(args("--check-config", path, NULL), 0);
	assert_true(g_c.check_only);
	assert_string_equal(g_c.config_file, path);
	assert_int_equal(g_c.workers, 2);
	unlink(path);
	assert_int_equal(args("--check-config", "/nonexistent.conf", NULL), PT_CONFIG_USAGE);
	assert_non_null(strstr(g_err, "config file '/nonexistent.conf'"));
	text_bad("check-config x\n", "f.conf:1: unknown setting 'check-config'");
}

/* Every kind of bad line, with its line number. */
static void test_bad_lines(void **state)
{
	static const char *const cases[][2] = {
		{ "host {\n", "f.conf:1: host: needs at least one name (or default)" },
		{ "host a.example\n", "f.conf:1: host: expected 'host NAME... {'" },
		{ "host a {\nhost b {\n", "f.conf:2: host: blocks cannot nest (the block at line 1" },
		{ "workers 2\n}\n", "f.conf:2: '}' without a host block" },
		{ "\nhost a {\nindex x\n", "f.conf:2: host: the block is not closed" },
		{ "host a {\n} x\n", "f.conf:2: '}' must be alone on its line" },
		{ "host a {\n}\nhost A {\n}\n", "f.conf:3: host: 'a' is already used at line 1" },
		{ "host a b a {\n}\n", "f.conf:1: host: 'a' is already used at line 1" },
		{ "host default {\n}\nhost x default {\n}\n",
		  "f.conf:3: host: a second default (the first is at line 1)" },
		{ "host default default {\n", "f.conf:1: host: default given twice" },
		{ "host default {\n}\nhost DeFault {\n}\n", "f.conf:3: host: a second default" },
		{ "host a..b {\n", "f.conf:1: host: 'a..b': expected a host name without empty" },
		{ "host *a.b {\n", "f.conf:1: host: '*a.b': expected a wildcard of the form" },
		{ "host a/b {\n", "f.conf:1: host: 'a/b': expected a host name" },
		{ "host a {\nworkers 2\n}\n", "f.conf:2: workers: a server-wide setting, not "
		  "allowed inside a host block" },
		{ "host a {\nbogus 1\n}\n", "f.conf:2: unknown setting 'bogus'" },
		{ "host a {\nroot\n}\n", "f.conf:2: root: needs a value" },
		{ "host a {\nindex a/b\n}\n", "f.conf:2: index: invalid value 'a/b'" },
		{ "host a {\nautoindex maybe\n}\n", "f.conf:2: autoindex: invalid value 'maybe'" },
		{ "header /x/\n", "f.conf:1: header: needs PATTERN NAME VALUE" },
		{ "header /x/ Bad:Name v\n", "f.conf:1: header: 'Bad:Name' is not a field name" },
		{ "header /x/ content-length 5\n", "header: content-length is set by the server" },
		{ "header a/b X v\n", "header: pattern 'a/b' is neither a path" },
		{ "header / X \"open\n", "f.conf:1: header: needs a VALUE" },
		{ "header / X \"a\" b\n", "f.conf:1: header: needs a VALUE" },
		{ "header / X \"\"\n", "f.conf:1: header: needs a VALUE" },
		{ "error-page 404\n", "f.conf:1: error-page: needs STATUS... PATH" },
		{ "error-page 399 /x.html\n", "error-page: '399' is not a status from 400 to 599" },
		{ "error-page 600 /x.html\n", "error-page: '600' is not a status from 400" },
		{ "error-page /x.html\n", "error-page: needs a STATUS before the PATH" },
		{ "error-page 404 /../x\n", "error-page: '/../x': expected a valid path" },
		{ "error-page 404 /d/\n", "error-page: '/d/': expected a file, not a directory" },
		{ "error-page 404 /.x\n", "error-page: '/.x': expected a path without dotfiles" },
		{ "error-page 404 /a.html b\n", "f.conf:1: error-page: too many values" },
		{ "fallback index.html\n", "fallback: 'index.html': expected a path that starts" },
		{ "fallback\n", "f.conf:1: fallback: needs a value" },
		{ "redirect 300 /a /b\n", "redirect: '300' is not 301, 302, 303, 307 or 308" },
		{ "redirect 304 /a /b\n", "redirect: '304' is not 301" },
		{ "redirect 301 a /b\n", "redirect: FROM 'a': expected a path that starts" },
		{ "redirect 301 /a\n", "f.conf:1: redirect: needs CODE FROM TO" },
		{ "redirect 301 /a /b#f\n", "redirect: TO '/b#f' is not a path or URL" },
		{ "redirect 301 /a /b c\n", "f.conf:1: redirect: too many values" },
		{ "compress text\n", "compress: 'text' is not a media type" },
		{ "compress text/html/x\n", "compress: 'text/html/x' is not a media type" },
		{ "cors ftp:\n", "cors: 'ftp:' is not *, off or an origin" },
		{ "cors https://a.example/path\n", "cors: 'https://a.example/path' is not" },
		{ "cors * x\n", "f.conf:1: cors: too many values" },
		{ "\n\n\nhost a {\n  tls-cert\n}\n", "f.conf:5: tls-cert: needs a value" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		text_bad(cases[i][0], cases[i][1]);
}

static void test_cert_pairs(void **state)
{
	const char *certs[PT_CONFIG_MAX_ALL_CERTS], *keys[PT_CONFIG_MAX_ALL_CERTS];
	char big[8192] = "", *p = big;

	assert_int_equal(text("tls-cert t.pem\ntls-key t.key\nhost a {\ntls-cert a.pem\n"
			      "tls-key a.key\n}\nhost b {\n}\nhost c {\ntls-cert c.pem\n"
			      "tls-key c.key\n}\n"), 0);
	assert_int_equal(pt_config_cert_pairs(&g_c, certs, keys), 3);
	assert_string_equal(certs[0], "t.pem");
	assert_string_equal(certs[1], "a.pem");
	assert_string_equal(keys[2], "c.key");
	assert_int_equal(pt_config_check_tls(&g_c, 1, g_err, sizeof(g_err)), 0);
	/* a block's pairs are checked alone */
	assert_int_equal(text("host a {\ntls-cert a.pem\n}\n"), 0);
	assert_int_equal(pt_config_check_tls(&g_c, 1, g_err, sizeof(g_err)), -EINVAL);
	assert_non_null(strstr(g_err, "host block: 1 tls-cert but 0 tls-key"));
	/* certificates only in blocks are enough for HTTPS */
	assert_int_equal(text("host a {\ntls-cert a.pem\ntls-key a.key\n}\n"), 0);
	assert_int_equal(pt_config_check_tls(&g_c, 1, g_err, sizeof(g_err)), 0);
	/* 65 pairs */
	for (int i = 0; i < 65; i++)
		p += sprintf(p, "host h%d {\ntls-cert %d.pem\ntls-key %d.key\n}\n", i, i, i);
	assert_int_equal(text(big), 0);
	assert_int_equal(pt_config_cert_pairs(&g_c, certs, keys), -E2BIG);
	assert_int_equal(pt_config_check_tls(&g_c, 1, g_err, sizeof(g_err)), -EINVAL);
	assert_non_null(strstr(g_err, "more than 64 certificates"));
}

static void test_check_sites(void **state)
{
	char dir[] = "/tmp/pt-sites.XXXXXX", conf[4096], *path;

	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "docroot %s\nhost a {\n}\nhost b {\n  root %s/missing\n}\n",
		 dir, dir);
	path = write_temp(conf);
	assert_int_equal(args("-c", path, NULL), 0);
	assert_int_equal(pt_config_check_sites(&g_c, g_err, sizeof(g_err)), -ENOENT);
	snprintf(conf, sizeof(conf), "%s:5: docroot '%s/missing': No such file", path, dir);
	if (!strstr(g_err, conf))
		fail_msg("got \"%s\", want \"%s\"", g_err, conf);
	unlink(path);
	/* a block inheriting a bad top-level docroot: the docroot line */
	snprintf(conf, sizeof(conf), "\ndocroot %s/nope\nhost a {\n}\n", dir);
	path = write_temp(conf);
	assert_int_equal(args("-c", path, NULL), 0);
	assert_true(pt_config_check_sites(&g_c, g_err, sizeof(g_err)) < 0);
	snprintf(conf, sizeof(conf), "%s:2: docroot '%s/nope'", path, dir);
	assert_non_null(strstr(g_err, conf));
	/* ... given on the command line: no line */
	assert_int_equal(args("-c", path, "--docroot", dir, NULL), 0);
	assert_int_equal(pt_config_check_sites(&g_c, g_err, sizeof(g_err)), 0);
	unlink(path);
	rmdir(dir);
}

static void test_static_diff(void **state)
{
	static struct pt_server_config a, b;
	char out[512];

	pt_config_defaults(&a);
	pt_config_defaults(&b);
	pt_config_static_diff(&a, &b, out, sizeof(out));
	assert_string_equal(out, "");
	b.workers = 3;
	strcpy(b.index, "x.html");
	strcpy(b.docroot, "/elsewhere");
	b.nlisten = 1;
	strcpy(b.listen[0], "127.0.0.1:1");
	b.hsts = 5;
	pt_config_static_diff(&a, &b, out, sizeof(out));
	assert_string_equal(out, "listen, workers, hsts");
}

/* Every setting allowed in a block, and the block syntax, are in the man page. */
static void test_man_page(void **state)
{
	static const char *const want[] = {
		"\\fBhost\\fR \\fINAME\\fR... \\fB{\\fR", "\\fBroot\\fR", "\\fBdefault\\fR",
		"\\fBindex\\fR", "\\fBautoindex\\fR", "\\fBfollow\\-symlinks\\fR",
		"\\fBcache\\-control\\fR", "\\fBheader\\fR", "\\fBerror\\-page\\fR",
		"\\fBfallback\\fR", "\\fBredirect\\fR", "\\fBcompress\\fR", "\\fBcors\\fR",
		"\\fBtls\\-cert\\fR", "\\fBtls\\-key\\fR", ".SH SITES",
	};
	const char *where[] = { "docs/portico.1", "../../../docs/portico.1" };
	char *man = malloc(1 << 17);
	FILE *f = NULL;

	for (size_t i = 0; i < 2 && !f; i++)
		f = fopen(where[i], "r");
	if (!f)
		fail_msg("docs/portico.1 not found (run from the repository root)");
	man[fread(man, 1, (1 << 17) - 1, f)] = '\0';
	fclose(f);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(man, want[i]))
			fail_msg("docs/portico.1 lacks %s", want[i]);
	free(man);
}

static int teardown(void **state)
{
	pt_config_free(&g_c);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_words, teardown),
		cmocka_unit_test_teardown(test_issue_example, teardown),
		cmocka_unit_test_teardown(test_block_settings, teardown),
		cmocka_unit_test_teardown(test_top_rules, teardown),
		cmocka_unit_test_teardown(test_command_line, teardown),
		cmocka_unit_test_teardown(test_check_config_flag, teardown),
		cmocka_unit_test_teardown(test_bad_lines, teardown),
		cmocka_unit_test_teardown(test_cert_pairs, teardown),
		cmocka_unit_test_teardown(test_check_sites, teardown),
		cmocka_unit_test_teardown(test_static_diff, teardown),
		cmocka_unit_test_teardown(test_man_page, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
