/*
 * Unit tests of src/server/path.c: request path normalization and opening beneath the docroot.
 *
 * Normalization: every attack from the issue (/../, %2e%2e, %2f, //, backslashes, overlong
 * UTF-8, NUL, controls) and ordinary paths; each input sits right before a PROT_NONE page so
 * an overread faults. Opening: a temporary docroot with symlinks pointing out (absolute and
 * relative), links inside (allowed only with follow_symlinks), a link loop, a FIFO, and a
 * docroot reached through a symlink; every case runs through openat2 and through the
 * fallback walk used on kernels without openat2.
 */
#include "server/path.c"
#include "server/path_open.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <cmocka.h>

/* ---- inputs placed before a guard page ---- */

static char *g_page;
static size_t g_pagesz;

static void guard_setup(void)
{
	g_pagesz = (size_t)sysconf(_SC_PAGESIZE);
	g_page = mmap(NULL, 2 * g_pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      -1, 0);
	assert_true(g_page != MAP_FAILED);
	assert_int_equal(mprotect(g_page + g_pagesz, g_pagesz, PROT_NONE), 0);
}

static const char *guarded(const char *s, size_t n)
{
	char *p = g_page + g_pagesz - n;

	memcpy(p, s, n);
	return p;
}

/* Normalizes s (n bytes) with a buffer of exactly n + 2 bytes. */
static int norm_n(const char *s, size_t n, char *out, size_t *outlen)
{
	return pt_path_normalize(guarded(s, n), n, out, n + 2, outlen);
}

static int norm(const char *s, char *out, size_t *outlen)
{
	return norm_n(s, strlen(s), out, outlen);
}

struct ncase {
	const char *in;
	int want;          /* flags, or -status */
	const char *out;   /* expected output when want >= 0 */
};

static void run_cases(const struct ncase *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char out[512];
		size_t ol = 0;
		int r = norm(c[i].in, out, &ol);

		if (r != c[i].want)
			fail_msg("\"%s\": got %d, want %d", c[i].in, r, c[i].want);
		if (r >= 0 && (ol != strlen(c[i].out) || strcmp(out, c[i].out) != 0))
			fail_msg("\"%s\": got \"%s\", want \"%s\"", c[i].in, out, c[i].out);
	}
}

#define RUN(t) run_cases(t, sizeof(t) / sizeof((t)[0]))

/* ---- normalization ---- */

static void test_normal_paths(void **state)
{
	static const struct ncase t[] = {
		{ "/", 0, "/" },
		{ "", 0, "/" },
		{ "/index.html", 0, "/index.html" },
		{ "/a/b/c.txt", 0, "/a/b/c.txt" },
		{ "/a/b/", PT_PATH_DIR, "/a/b/" },
		{ "/a%20b.txt", 0, "/a b.txt" },
		{ "/100%25", 0, "/100%" },
		{ "/a+b~c!$&'()*,;=:@", 0, "/a+b~c!$&'()*,;=:@" },
		{ "/%41%62c", 0, "/Abc" },
		{ "/caf%C3%A9", 0, "/caf\xc3\xa9" },
		{ "/\xe2\x82\xac", 0, "/\xe2\x82\xac" },            /* raw UTF-8 euro sign */
		{ "/%F0%9F%98%80.png", 0, "/\xf0\x9f\x98\x80.png" }, /* 4-byte sequence */
		{ "/%EF%BF%BD", 0, "/\xef\xbf\xbd" },               /* U+FFFD */
		{ "/%F4%8F%BF%BF", 0, "/\xf4\x8f\xbf\xbf" },        /* U+10FFFF, the last */
		{ "/a..b", 0, "/a..b" },
		{ "/a./b.", 0, "/a./b." },
	};
	RUN(t);
}

static void test_slashes_collapse(void **state)
{
	static const struct ncase t[] = {
		{ "//", 0, "/" },
		{ "///a", 0, "/a" },
		{ "/a//b", 0, "/a/b" },
		{ "/a///b//", PT_PATH_DIR, "/a/b/" },
		{ "//etc/passwd", 0, "/etc/passwd" },
	};
	RUN(t);
}

static void test_dot_segments(void **state)
{
	static const struct ncase t[] = {
		{ "/.", 0, "/" },
		{ "/./a", 0, "/a" },
		{ "/a/./b", 0, "/a/b" },
		{ "/a/.", PT_PATH_DIR, "/a/" },
		{ "/a/b/../c", 0, "/a/c" },
		{ "/a/b/..", PT_PATH_DIR, "/a/" },
		{ "/a/..", 0, "/" },
		{ "/a/../", 0, "/" },
		{ "/a/b/c/../../d", 0, "/a/d" },
		{ "/a/./../b/./c/.", PT_PATH_DIR, "/b/c/" },
		{ "/a//..", 0, "/" },             /* "//" dropped first, then ".." */
		{ "/a/%2e%2e/b", 0, "/b" },       /* decoded dot-segments count */
		{ "/%2e/a", 0, "/a" },
		{ "/a/%2E", PT_PATH_DIR, "/a/" },
	};
	RUN(t);
}

static void test_traversal_rejected(void **state)
{
	static const struct ncase t[] = {
		{ "/..", -400, NULL },
		{ "/../", -400, NULL },
		{ "/../etc/passwd", -400, NULL },
		{ "/a/../../etc/passwd", -400, NULL },
		{ "/a/./../..", -400, NULL },
		{ "/%2e%2e/etc/passwd", -400, NULL },
		{ "/%2E%2E/", -400, NULL },
		{ "/.%2e/", -400, NULL },
		{ "/%2e./x", -400, NULL },
		{ "//../x", -400, NULL },
		{ "/a/b/../../../x", -400, NULL },
	};
	RUN(t);
}

static void test_encoded_separators(void **state)
{
	static const struct ncase t[] = {
		{ "/a%2fb", -400, NULL },
		{ "/a%2Fb", -400, NULL },
		{ "/..%2fetc%2fpasswd", -400, NULL },
		{ "/%2e%2e%2f", -400, NULL },
		{ "/a%5cb", -400, NULL },
		{ "/a%5Cb", -400, NULL },
		{ "/..%5c..%5cwindows", -400, NULL },
		{ "/a\\b", -400, NULL },
		{ "/..\\..\\etc", -400, NULL },
		{ "\\", -400, NULL },
	};
	RUN(t);
}

static void test_nul_and_controls(void **state)
{
	static const struct ncase t[] = {
		{ "/a%00", -400, NULL },
		{ "/index.html%00.txt", -400, NULL },
		{ "/a%0a", -400, NULL },
		{ "/a%0D%0Ab", -400, NULL },
		{ "/a%09", -400, NULL },
		{ "/a%1f", -400, NULL },
		{ "/a%7f", -400, NULL },
		{ "/a\x01", -400, NULL },
		{ "/a\t", -400, NULL },
		{ "/a\x7f", -400, NULL },
	};
	char out[16];
	size_t ol;

	RUN(t);
	/* a raw NUL inside the given length */
	assert_int_equal(norm_n("/a\0b", 4, out, &ol), -400);
}

static void test_bad_percent(void **state)
{
	static const struct ncase t[] = {
		{ "/%", -400, NULL },
		{ "/a%", -400, NULL },
		{ "/a%4", -400, NULL },
		{ "/%zz", -400, NULL },
		{ "/%4g", -400, NULL },
		{ "/%g4", -400, NULL },
		{ "/%%41", -400, NULL },
		{ "/% 41", -400, NULL },
		{ "/%+1", -400, NULL },
	};
	RUN(t);
}

static void test_bad_utf8(void **state)
{
	static const struct ncase t[] = {
		{ "/%c0%ae%c0%ae/", -400, NULL },     /* overlong '.' */
		{ "/%c0%af", -400, NULL },            /* overlong '/' */
		{ "/%c1%bf", -400, NULL },
		{ "/%e0%80%ae", -400, NULL },         /* 3-byte overlong '.' */
		{ "/%e0%9f%bf", -400, NULL },
		{ "/%f0%80%80%ae", -400, NULL },      /* 4-byte overlong */
		{ "/%f0%8f%bf%bf", -400, NULL },
		{ "/%ed%a0%80", -400, NULL },         /* surrogate U+D800 */
		{ "/%ed%bf%bf", -400, NULL },
		{ "/%f4%90%80%80", -400, NULL },      /* above U+10FFFF */
		{ "/%f5%80%80%80", -400, NULL },
		{ "/%ff", -400, NULL },
		{ "/%fe", -400, NULL },
		{ "/%80", -400, NULL },               /* stray continuation */
		{ "/a%bf", -400, NULL },
		{ "/%e2%82", -400, NULL },            /* truncated at the end */
		{ "/%e2%82/x", -400, NULL },          /* truncated by '/' */
		{ "/%e2%82x", -400, NULL },           /* ASCII inside a sequence */
		{ "/%e2%82%", -400, NULL },
		{ "/%c3%a9%a9", -400, NULL },         /* one continuation too many */
		{ "/\xc0\xae\xc0\xae/", -400, NULL }, /* raw overlong */
		{ "/\xe0\x80\xae", -400, NULL },
		{ "/\xc3", -400, NULL },
		{ "/\xc3/", -400, NULL },
		{ "/%c3\xa9", 0, "/\xc3\xa9" },       /* mixed raw and encoded is fine */
	};
	RUN(t);
}

static void test_not_absolute(void **state)
{
	static const struct ncase t[] = {
		{ "a/b", -400, NULL },
		{ "index.html", -400, NULL },
		{ "%2findex.html", -400, NULL },
		{ ".", -400, NULL },
		{ "*", -400, NULL },
	};
	RUN(t);
}

static void test_dotfiles(void **state)
{
	static const struct ncase t[] = {
		{ "/.git/config", PT_PATH_DOTFILE, "/.git/config" },
		{ "/a/.env", PT_PATH_DOTFILE, "/a/.env" },
		{ "/%2egit/HEAD", PT_PATH_DOTFILE, "/.git/HEAD" },
		{ "/.well-known/acme", PT_PATH_DOTFILE, "/.well-known/acme" },
		{ "/a/.hidden/", PT_PATH_DOTFILE | PT_PATH_DIR, "/a/.hidden/" },
		{ "/...", PT_PATH_DOTFILE, "/..." },
		{ "/.git/../a", 0, "/a" },            /* removed before the check */
		{ "/a/./b", 0, "/a/b" },
		{ "/a.b/c", 0, "/a.b/c" },
	};
	RUN(t);
}

static void test_capacity(void **state)
{
	char out[64];
	size_t ol;

	/* outcap 0 and 1 cannot even hold "/" */
	assert_int_equal(pt_path_normalize("/", 1, out, 0, &ol), -414);
	assert_int_equal(pt_path_normalize("/", 1, out, 1, &ol), -414);
	assert_int_equal(pt_path_normalize("/", 1, out, 2, &ol), 0);
	assert_int_equal(pt_path_normalize("/abc", 4, out, 4, &ol), -414);
	assert_int_equal(pt_path_normalize("/abc", 4, out, 5, &ol), 0);
	assert_string_equal(out, "/abc");
	assert_int_equal(pt_path_normalize("/a/", 3, out, 3, &ol), -414);
	assert_int_equal(pt_path_normalize("/a/", 3, out, 4, &ol), PT_PATH_DIR);
	/* decoding shrinks: a buffer smaller than the input can be enough */
	assert_int_equal(pt_path_normalize("/%41%42", 7, out, 4, &ol), 0);
	assert_string_equal(out, "/AB");
	assert_int_equal(pt_path_normalize("/%c3%a9", 7, out, 3, &ol), -414);
}

/* Every prefix of every case gives a result without reading past the prefix (guard page),
 * and the output is never longer than the input. */
static void test_all_prefixes(void **state)
{
	static const char *in[] = {
		"/a/b/../c/%2e%2e/d%20e//f/.",
		"/caf%C3%A9/%F0%9F%98%80/x",
		"/%2e%2e%2f%5c%00",
		"/.git/./../.x/",
	};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		size_t n = strlen(in[i]);

		for (size_t k = 0; k <= n; k++) {
			char out[64];
			size_t ol = 0;
			int r = norm_n(in[i], k, out, &ol);

			assert_true(r >= -414);
			if (r >= 0)
				assert_true(ol <= (k ? k : 1) && out[ol] == '\0');
		}
	}
}

/* ---- opening beneath the root ---- */

static char g_tmp[64];   /* the temp directory: root/, outside/, rootlink */
static int g_rootfd = -1;

static void mkfile(const char *rel, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", g_tmp, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void mklink(const char *target, const char *rel)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", g_tmp, rel);
	assert_int_equal(symlink(target, p), 0);
}

static void mkdir_rel(const char *rel)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", g_tmp, rel);
	assert_int_equal(mkdir(p, 0755), 0);
}

static int tree_setup(void **state)
{
	char p[256];

	strcpy(g_tmp, "/tmp/pt-path.XXXXXX");
	assert_non_null(mkdtemp(g_tmp));
	mkdir_rel("root");
	mkdir_rel("outside");
	mkdir_rel("root/sub");
	mkfile("outside/secret.txt", "secret");
	mkfile("root/index.html", "index");
	mkfile("root/sub/file.txt", "file");
	mkfile("root/.hidden", "hidden");
	snprintf(p, sizeof(p), "%s/outside/secret.txt", g_tmp);
	mklink(p, "root/abs_out");                   /* absolute, pointing out */
	snprintf(p, sizeof(p), "%s/root/index.html", g_tmp);
	mklink(p, "root/abs_in");                    /* absolute, pointing in: still refused */
	mklink("../outside/secret.txt", "root/rel_out");
	mklink("..", "root/dir_out");
	mklink("../../outside", "root/sub/deep_out");
	mklink("sub/file.txt", "root/link_in");
	mklink("sub", "root/dir_in");
	mklink("../index.html", "root/sub/up_in");  /* ".." that stays beneath */
	mklink("loop2", "root/loop1");
	mklink("loop1", "root/loop2");
	mklink("nowhere", "root/dangling");
	mklink("root", "rootlink");                  /* a docroot that is a symlink */
	snprintf(p, sizeof(p), "%s/root/fifo", g_tmp);
	assert_int_equal(mkfifo(p, 0644), 0);
	snprintf(p, sizeof(p), "%s/root", g_tmp);
	g_rootfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(g_rootfd >= 0);
	guard_setup();
	return 0;
}

static int tree_teardown(void **state)
{
	char cmd[128];

	close(g_rootfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
	assert_int_equal(system(cmd), 0);
	munmap(g_page, 2 * g_pagesz);
	return 0;
}

enum { VIA_OPENAT2, VIA_WALK };

static int open_via(int how, int rootfd, const char *rel, bool follow, int *fd,
		    struct stat *st)
{
	int r;

	if (how == VIA_OPENAT2)
		return pt_path_open(rootfd, rel, follow, fd, st);
	while (*rel == '/')
		rel++;
	r = path_walk(rootfd, rel, follow, fd);
	return r < 0 ? r : open_finish(*fd, fd, st);
}

/* Opens rel both ways, checks the result and, for files, the content. */
static void expect_open(int rootfd, const char *rel, bool follow, int want, const char *text)
{
	for (int how = VIA_OPENAT2; how <= VIA_WALK; how++) {
		struct stat st;
		int fd = -1;
		int r = open_via(how, rootfd, rel, follow, &fd, &st);

		if (r != want)
			fail_msg("%s \"%s\" follow=%d: got %d (%s), want %d", how ? "walk" : "openat2",
				 rel, follow, r, strerror(-r), want);
		if (r < 0)
			continue;
		if (text) {
			char buf[64] = { 0 };

			assert_true(S_ISREG(st.st_mode));
			assert_int_equal(read(fd, buf, sizeof(buf) - 1), (ssize_t)strlen(text));
			assert_string_equal(buf, text);
			assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
		} else {
			assert_true(S_ISDIR(st.st_mode));
		}
		assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		close(fd);
	}
}

static void test_open_plain(void **state)
{
	expect_open(g_rootfd, "/index.html", false, 0, "index");
	expect_open(g_rootfd, "index.html", false, 0, "index");
	expect_open(g_rootfd, "/sub/file.txt", false, 0, "file");
	expect_open(g_rootfd, "//sub//file.txt", false, 0, "file");
	expect_open(g_rootfd, "/", false, 0, NULL);
	expect_open(g_rootfd, "", false, 0, NULL);
	expect_open(g_rootfd, "/sub/", false, 0, NULL);
	expect_open(g_rootfd, "/sub", false, 0, NULL);
	expect_open(g_rootfd, "/.hidden", false, 0, "hidden"); /* policy is the caller's */
	expect_open(g_rootfd, "/missing", false, -ENOENT, NULL);
	expect_open(g_rootfd, "/missing/x", false, -ENOENT, NULL);
	expect_open(g_rootfd, "/index.html/", false, -ENOTDIR, NULL);
	expect_open(g_rootfd, "/index.html/x", false, -ENOTDIR, NULL);
	expect_open(g_rootfd, "/etc/passwd", false, -ENOENT, NULL); /* never absolute */
}

static void test_open_dotdot(void **state)
{
	expect_open(g_rootfd, "../outside/secret.txt", false, -EXDEV, NULL);
	expect_open(g_rootfd, "../outside/secret.txt", true, -EXDEV, NULL);
	expect_open(g_rootfd, "/../outside/secret.txt", true, -EXDEV, NULL);
	expect_open(g_rootfd, "..", true, -EXDEV, NULL);
	expect_open(g_rootfd, "sub/../../outside/secret.txt", true, -EXDEV, NULL);
	/* ".." that stays beneath: openat2 allows it, the walk refuses it (see path.h) */
	{
		int fd;

		assert_int_equal(open_via(VIA_OPENAT2, g_rootfd, "sub/../index.html", false,
					  &fd, NULL), 0);
		close(fd);
		assert_int_equal(open_via(VIA_WALK, g_rootfd, "sub/../index.html", false,
					  &fd, NULL), -EXDEV);
	}
}

static void test_open_symlinks_out(void **state)
{
	for (int follow = 0; follow <= 1; follow++) {
		int esc = follow ? -EXDEV : -ELOOP;

		expect_open(g_rootfd, "/abs_out", follow, esc, NULL);
		expect_open(g_rootfd, "/rel_out", follow, esc, NULL);
		expect_open(g_rootfd, "/abs_in", follow, esc, NULL);
		expect_open(g_rootfd, "/dir_out/outside/secret.txt", follow, esc, NULL);
		expect_open(g_rootfd, "/dir_out", follow, esc, NULL);
		expect_open(g_rootfd, "/sub/deep_out/secret.txt", follow, esc, NULL);
	}
}

static void test_open_symlinks_in(void **state)
{
	expect_open(g_rootfd, "/link_in", false, -ELOOP, NULL);
	expect_open(g_rootfd, "/dir_in/file.txt", false, -ELOOP, NULL);
	expect_open(g_rootfd, "/sub/up_in", false, -ELOOP, NULL);
	expect_open(g_rootfd, "/link_in", true, 0, "file");
	expect_open(g_rootfd, "/dir_in/file.txt", true, 0, "file");
	expect_open(g_rootfd, "/dir_in/", true, 0, NULL);
	expect_open(g_rootfd, "/dir_in/up_in", true, 0, "index");
	expect_open(g_rootfd, "/sub/up_in", true, 0, "index");
	expect_open(g_rootfd, "/loop1", true, -ELOOP, NULL);
	expect_open(g_rootfd, "/loop1", false, -ELOOP, NULL);
	expect_open(g_rootfd, "/dangling", true, -ENOENT, NULL);
	expect_open(g_rootfd, "/link_in/", true, -ENOTDIR, NULL);
}

static void test_open_special_files(void **state)
{
	/* a FIFO must neither block the open nor be served */
	expect_open(g_rootfd, "/fifo", false, -EACCES, NULL);
	expect_open(g_rootfd, "/fifo", true, -EACCES, NULL);
}

static void test_open_unreadable(void **state)
{
	char p[256];
	bool root = geteuid() == 0;

	mkfile("root/noread", "x");
	snprintf(p, sizeof(p), "%s/root/noread", g_tmp);
	assert_int_equal(chmod(p, 0), 0);
	/* root reads anything: check as "nobody" (no skip: the runner counts a skip as not ok) */
	if (root)
		assert_int_equal(seteuid(65534), 0);
	expect_open(g_rootfd, "/noread", false, -EACCES, NULL);
	if (root)
		assert_int_equal(seteuid(0), 0);
}

static void test_docroot_is_symlink(void **state)
{
	char p[256];
	int fd;

	/* The server opens its docroot once with open(), which follows the link. */
	snprintf(p, sizeof(p), "%s/rootlink", g_tmp);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	expect_open(fd, "/index.html", false, 0, "index");
	expect_open(fd, "/sub/file.txt", false, 0, "file");
	expect_open(fd, "/../rootlink/index.html", true, -EXDEV, NULL);
	expect_open(fd, "/rel_out", true, -EXDEV, NULL);
	close(fd);
}

/* Normalization feeding the open: the attack strings never reach a file outside. */
static void test_normalize_then_open(void **state)
{
	static const char *attacks[] = {
		"/../outside/secret.txt", "/%2e%2e/outside/secret.txt", "/..%2foutside",
		"/%2e%2e%2foutside%2fsecret.txt", "/sub/../../outside/secret.txt",
		"/..\\outside\\secret.txt", "/%c0%ae%c0%ae/outside/secret.txt",
		"/%e0%80%ae%e0%80%ae/outside/secret.txt",
	};
	for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
		char out[128];
		size_t ol;

		assert_int_equal(norm(attacks[i], out, &ol), -400);
	}
	{
		char out[128];
		size_t ol;
		int fd;

		assert_int_equal(norm("/sub/./x/../file.txt", out, &ol), 0);
		assert_int_equal(pt_path_open(g_rootfd, out, false, &fd, NULL), 0);
		close(fd);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normal_paths),
		cmocka_unit_test(test_slashes_collapse),
		cmocka_unit_test(test_dot_segments),
		cmocka_unit_test(test_traversal_rejected),
		cmocka_unit_test(test_encoded_separators),
		cmocka_unit_test(test_nul_and_controls),
		cmocka_unit_test(test_bad_percent),
		cmocka_unit_test(test_bad_utf8),
		cmocka_unit_test(test_not_absolute),
		cmocka_unit_test(test_dotfiles),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_all_prefixes),
		cmocka_unit_test(test_open_plain),
		cmocka_unit_test(test_open_dotdot),
		cmocka_unit_test(test_open_symlinks_out),
		cmocka_unit_test(test_open_symlinks_in),
		cmocka_unit_test(test_open_special_files),
		cmocka_unit_test(test_open_unreadable),
		cmocka_unit_test(test_docroot_is_symlink),
		cmocka_unit_test(test_normalize_then_open),
	};
	return cmocka_run_group_tests(tests, tree_setup, tree_teardown);
}
