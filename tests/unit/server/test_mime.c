/*
 * Unit tests of src/server/mime.c: the extension -> Content-Type table.
 * Covers the built-in table alone, the system /etc/mime.types, a custom file (first line
 * wins, comments, odd whitespace, invalid types, long extensions), case-insensitivity,
 * charset rules, names without extension and dotfiles, and growth past the initial size.
 */
#include "server/mime.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

static const char *look(const struct pt_mime *m, const char *name)
{
	return pt_mime_lookup(m, name, strlen(name));
}

static struct pt_mime *load_text(const char *text, int *err)
{
	char path[] = "/tmp/pt-mime.XXXXXX";
	int fd = mkstemp(path);
	struct pt_mime *m;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	m = pt_mime_load(path, err);
	unlink(path);
	return m;
}

static void test_builtin_only(void **state)
{
	int err = 1;
	struct pt_mime *m = pt_mime_load("", &err);

	assert_non_null(m);
	assert_int_equal(err, 0);
	assert_int_equal(pt_mime_count(m), sizeof(builtin) / sizeof(builtin[0]));
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
		char name[64];
		const char *t;

		snprintf(name, sizeof(name), "file.%s", builtin[i][0]);
		t = look(m, name);
		assert_true(strncmp(t, builtin[i][1], strlen(builtin[i][1])) == 0);
	}
	assert_string_equal(look(m, "index.html"), "text/html; charset=utf-8");
	assert_string_equal(look(m, "app.js"), "text/javascript; charset=utf-8");
	assert_string_equal(look(m, "a.json"), "application/json; charset=utf-8");
	assert_string_equal(look(m, "a.svg"), "image/svg+xml; charset=utf-8");
	assert_string_equal(look(m, "a.xml"), "application/xml; charset=utf-8");
	assert_string_equal(look(m, "a.png"), "image/png");
	assert_string_equal(look(m, "a.woff2"), "font/woff2");
	assert_string_equal(look(m, "a.wasm"), "application/wasm");
	pt_mime_free(m);
}

static void test_missing_file(void **state)
{
	int err = 0;
	struct pt_mime *m = pt_mime_load("/nonexistent/mime.types", &err);

	assert_non_null(m);
	assert_int_equal(err, -ENOENT);
	assert_string_equal(look(m, "a.css"), "text/css; charset=utf-8");
	assert_string_equal(look(m, "a.unknownext"), PT_MIME_DEFAULT_TYPE);
	pt_mime_free(m);
	m = pt_mime_load("/tmp", &err); /* a directory is not a mime.types */
	assert_non_null(m);
	assert_int_equal(err, -EINVAL);
	pt_mime_free(m);
}

static void test_system_file(void **state)
{
	int err = 1;
	struct pt_mime *m = pt_mime_load(NULL, &err);

	assert_non_null(m);
	if (access(PT_MIME_DEFAULT_PATH, R_OK) == 0) {
		assert_int_equal(err, 0);
		assert_true(pt_mime_count(m) > 500);
		assert_string_equal(look(m, "a.pdf"), "application/pdf");
		assert_string_equal(look(m, "a.md"), "text/markdown; charset=utf-8");
		assert_string_equal(look(m, "a.jpeg"), "image/jpeg");
	}
	/* builtin entries fill the gaps of the file either way */
	assert_string_equal(look(m, "a.map"), "application/json; charset=utf-8");
	assert_string_equal(look(m, "a.br"), "application/x-brotli");
	assert_string_equal(look(m, "a.html"), "text/html; charset=utf-8");
	pt_mime_free(m);
}

static void test_case_insensitive(void **state)
{
	int err;
	struct pt_mime *m = pt_mime_load("", &err);

	assert_string_equal(look(m, "INDEX.HTML"), "text/html; charset=utf-8");
	assert_string_equal(look(m, "photo.JpG"), "image/jpeg");
	assert_string_equal(look(m, "/Dir.With.Dots/Photo.PNG"), "image/png");
	pt_mime_free(m);
}

static void test_extension_rules(void **state)
{
	int err;
	struct pt_mime *m = pt_mime_load("", &err);
	const char *d = PT_MIME_DEFAULT_TYPE;

	assert_string_equal(look(m, ""), d);
	assert_string_equal(look(m, "README"), d);
	assert_string_equal(look(m, "file."), d);
	assert_string_equal(look(m, ".html"), d);            /* a dotfile, not an extension */
	assert_string_equal(look(m, "/dir/.css"), d);
	assert_string_equal(look(m, "/dir.html/README"), d); /* a dot in a directory name */
	assert_string_equal(look(m, "archive.tar.gz"), "application/gzip");
	assert_string_equal(look(m, "..html"), "text/html; charset=utf-8");
	assert_string_equal(look(m, "/a/b/c.txt"), "text/plain; charset=utf-8");
	assert_string_equal(look(m, "x.htmlx"), d);
	assert_string_equal(look(m, "x.htm"), "text/html; charset=utf-8");
	/* only the given length counts */
	assert_string_equal(pt_mime_lookup(m, "a.html", 3), d);
	assert_string_equal(pt_mime_lookup(m, "a.css.png", 5), "text/css; charset=utf-8");
	/* an extension longer than PT_MIME_EXT_MAX is unknown, however long the name */
	{
		char big[4096];

		memset(big, 'a', sizeof(big));
		big[0] = '.';
		assert_string_equal(pt_mime_lookup(m, big, sizeof(big)), d);
		big[sizeof(big) - 5] = '.';
		memcpy(big + sizeof(big) - 4, "html", 4);
		assert_string_equal(pt_mime_lookup(m, big, sizeof(big)), "text/html; charset=utf-8");
	}
	pt_mime_free(m);
}

static void test_custom_file(void **state)
{
	int err = 1;
	struct pt_mime *m = load_text(
		"# comment line\n"
		"text/x-first\tfoo bar   # trailing comment ext\n"
		"application/x-second foo baz\n"      /* foo: first wins */
		"   \t\n"
		"type-without-extensions\n"
		"application/with-no-ext\n"
		"bad type qux\n"                        /* "bad" has no '/': skipped */
		"a/b/c quux\n"                          /* tchar only, one '/' */
		"/nosub corge\n"
		"image/x-CaseKept JPX\r\n"              /* CRLF; type keeps its case */
		"application/ld+json jsonld\n"
		"application/atom+xml atom\n"
		"application/x-ext aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b\n" /* 34 bytes: skipped */
		"application/x-last last", &err);

	assert_non_null(m);
	assert_int_equal(err, 0);
	assert_string_equal(look(m, "a.foo"), "text/x-first; charset=utf-8");
	assert_string_equal(look(m, "a.bar"), "text/x-first; charset=utf-8");
	assert_string_equal(look(m, "a.baz"), "application/x-second");
	assert_string_equal(look(m, "a.ext"), PT_MIME_DEFAULT_TYPE);
	assert_string_equal(look(m, "a.comment"), PT_MIME_DEFAULT_TYPE);
	assert_string_equal(look(m, "a.qux"), PT_MIME_DEFAULT_TYPE);
	assert_string_equal(look(m, "a.type"), PT_MIME_DEFAULT_TYPE);
	assert_string_equal(look(m, "a.quux"), PT_MIME_DEFAULT_TYPE);
	assert_string_equal(look(m, "a.corge"), PT_MIME_DEFAULT_TYPE);
	assert_string_equal(look(m, "a.jpx"), "image/x-CaseKept");
	assert_string_equal(look(m, "a.jsonld"), "application/ld+json; charset=utf-8");
	assert_string_equal(look(m, "a.atom"), "application/atom+xml; charset=utf-8");
	assert_string_equal(look(m, "a.b"), "application/x-ext");
	assert_string_equal(look(m, "a.last"), "application/x-last");
	assert_string_equal(look(m, "a.html"), "text/html; charset=utf-8"); /* builtin */
	pt_mime_free(m);
}

static void test_file_overrides_builtin(void **state)
{
	int err;
	struct pt_mime *m = load_text("application/x-my-html html\nimage/x-icon ico\n", &err);

	assert_string_equal(look(m, "a.html"), "application/x-my-html");
	assert_string_equal(look(m, "a.ico"), "image/x-icon");
	assert_string_equal(look(m, "a.htm"), "text/html; charset=utf-8");
	pt_mime_free(m);
}

static void test_charset_rules(void **state)
{
	assert_true(wants_charset("text/plain", 10));
	assert_true(wants_charset("TEXT/html", 9));
	assert_true(wants_charset("application/javascript", 22));
	assert_true(wants_charset("application/json", 16));
	assert_true(wants_charset("application/xml", 15));
	assert_true(wants_charset("image/svg+xml", 13));
	assert_true(wants_charset("application/manifest+json", 25));
	assert_false(wants_charset("application/jsonx", 17));
	assert_false(wants_charset("image/png", 9));
	assert_false(wants_charset("text/", 5));
	assert_false(wants_charset("application/octet-stream", 24));
}

/* Many extensions: the table grows and every one is still found. */
static void test_growth(void **state)
{
	size_t cap = 64 * 5000, n = 0;
	char *text = malloc(cap);
	int err;
	struct pt_mime *m;

	for (int i = 0; i < 5000; i++)
		n += (size_t)snprintf(text + n, cap - n, "application/x-t%d e%d f%d\n", i, i, i);
	m = load_text(text, &err);
	assert_non_null(m);
	assert_true(pt_mime_count(m) >= 10000);
	for (int i = 0; i < 5000; i += 7) {
		char name[32], want[48];

		snprintf(name, sizeof(name), "x.F%d", i);
		snprintf(want, sizeof(want), "application/x-t%d", i);
		assert_string_equal(look(m, name), want);
	}
	pt_mime_free(m);
	free(text);
}

static void test_parse_garbage(void **state)
{
	static const char junk[] = "\0\0text/x\0 a\n\xff\xfe/\x01 b\n\n\n#\n \t";
	struct pt_mime *m = calloc(1, sizeof(*m));

	assert_int_equal(pool_add(m, "d", 1, NULL), 0);
	assert_int_equal(table_grow(m), 0);
	assert_int_equal(mime_parse(m, junk, sizeof(junk) - 1), 0);
	assert_int_equal(pt_mime_count(m), 0);
	pt_mime_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_only),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_system_file),
		cmocka_unit_test(test_case_insensitive),
		cmocka_unit_test(test_extension_rules),
		cmocka_unit_test(test_custom_file),
		cmocka_unit_test(test_file_overrides_builtin),
		cmocka_unit_test(test_charset_rules),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_parse_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
