/*
 * Unit tests of src/server/fcache.c, the per-worker open-file cache: small files are read
 * whole when opened; larger ones are read into memory only on request (pt_fcache_bytes, for
 * connections whose sends copy anyway), up to copy_max each and copy_budget together; the
 * bytes are exactly the file's; eviction gives the budget back while a referenced entry keeps
 * its bytes; an entry no longer in the cache is never read in (its bytes would escape the
 * budget); the bytes gauge follows all of it.
 */
#include "server/fcache.c"
#include "server/cond.c"
#include "server/mime.c"
#include "server/path.c"
#include "server/path_open.c"
#include "server/encoding.c"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <cmocka.h>

#define KB 1024u

static char g_dir[64];
static int g_root = -1;
static char *g_data;                     /* the bytes of every file: a prefix of this */
static struct pt_mime *g_mime;

static void put(const char *name, size_t n)
{
	char path[128];

	snprintf(path, sizeof path, "%s/%s", g_dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, g_data, n), (ssize_t)n);
	close(fd);
}

static int setup(void **state)
{
	snprintf(g_dir, sizeof g_dir, "/tmp/pt-fcache.XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	g_data = malloc(400 * KB);
	for (size_t i = 0; i < 400 * KB; i++)
		g_data[i] = (char)(i * 7 + i / 251);
	put("small.txt", 100);
	put("a.bin", 100 * KB);
	put("b.bin", 100 * KB);
	put("big.bin", 300 * KB);
	g_root = open(g_dir, O_RDONLY | O_DIRECTORY);
	assert_true(g_root >= 0);
	int err;
	g_mime = pt_mime_load("/nonexistent/mime.types", &err);   /* the built-in table */
	assert_non_null(g_mime);
	return 0;
}

static int teardown(void **state)
{
	const char *names[] = { "small.txt", "a.bin", "b.bin", "big.bin" };

	for (unsigned i = 0; i < 4; i++)
		unlinkat(g_root, names[i], 0);
	close(g_root);
	rmdir(g_dir);
	free(g_data);
	pt_mime_free(g_mime);
	return 0;
}

static struct pt_fcache_opts opts(unsigned max_entries)
{
	return (struct pt_fcache_opts){ .mime = g_mime, .ttl_ms = 60000, .small_max = 16 * KB,
					.copy_max = 256 * KB, .copy_budget = 150 * KB,
					.max_entries = max_entries };
}

static struct fentry *get(struct pt_fcache *fc, const char *name)
{
	struct fentry *e = pt_fcache_get(fc, name, strlen(name), false);

	assert_non_null(e);
	assert_int_equal(e->err, 0);
	return e;
}

static void test_small_read_at_open(void **state)
{
	struct pt_fcache_opts o = opts(16);
	struct pt_fcache_stats st = { 0 };
	struct pt_fcache *fc = pt_fcache_new(g_root, &o);

	pt_fcache_set_stats(fc, &st);
	struct fentry *e = get(fc, "/small.txt");
	assert_true(e->small);
	assert_non_null(e->data);
	assert_memory_equal(e->data, g_data, 100);
	assert_int_equal(st.bytes, 100);
	assert_ptr_equal(pt_fcache_bytes(fc, e), e->data);
	assert_int_equal(fc->copied, 0);              /* small files are not on the budget */
	pt_fentry_unref(e);
	pt_fcache_free(fc);
}

static void test_bytes_on_request(void **state)
{
	struct pt_fcache_opts o = opts(16);
	struct pt_fcache_stats st = { 0 };
	struct pt_fcache *fc = pt_fcache_new(g_root, &o);

	pt_fcache_set_stats(fc, &st);
	struct fentry *a = get(fc, "/a.bin"), *big = get(fc, "/big.bin");
	assert_null(a->data);                          /* not read until asked */
	assert_false(a->small);
	const char *p = pt_fcache_bytes(fc, a);
	assert_non_null(p);
	assert_memory_equal(p, g_data, 100 * KB);
	assert_ptr_equal(pt_fcache_bytes(fc, a), p);   /* once */
	assert_int_equal(fc->copied, 100 * KB);
	assert_int_equal(st.bytes, 100 * KB);
	assert_null(pt_fcache_bytes(fc, big));         /* above copy_max */
	assert_int_equal(st.bytes, 100 * KB);
	pt_fentry_unref(a);
	pt_fentry_unref(big);
	pt_fcache_free(fc);
}

/* A budget of 150 KiB holds one 100 KiB file; evicting it makes room for the next, while the
 * send still holding the evicted entry keeps its bytes. */
static void test_budget_and_eviction(void **state)
{
	struct pt_fcache_opts o = opts(2);
	struct pt_fcache_stats st = { 0 };
	struct pt_fcache *fc = pt_fcache_new(g_root, &o);

	pt_fcache_set_stats(fc, &st);
	struct fentry *a = get(fc, "/a.bin"), *b = get(fc, "/b.bin");
	assert_non_null(pt_fcache_bytes(fc, a));
	assert_null(pt_fcache_bytes(fc, b));           /* over the budget */
	assert_int_equal(fc->copied, 100 * KB);
	struct fentry *s = get(fc, "/small.txt");      /* max 2 entries: evicts a */
	assert_false(a->linked);
	assert_int_equal(fc->copied, 0);
	assert_int_equal(st.bytes, 100);
	assert_memory_equal(a->data, g_data, 100 * KB); /* still there for its sender */
	const char *pb = pt_fcache_bytes(fc, b);
	assert_non_null(pb);
	assert_memory_equal(pb, g_data, 100 * KB);
	assert_int_equal(fc->copied, 100 * KB);
	assert_int_equal(st.bytes, 100 * KB + 100);
	pt_fentry_unref(a);
	pt_fentry_unref(b);
	pt_fentry_unref(s);
	pt_fcache_free(fc);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.entries, 0);
}

/* An entry already evicted is not read in: its bytes would be outside the budget. */
static void test_evicted_entry_not_read(void **state)
{
	struct pt_fcache_opts o = opts(1);
	struct pt_fcache *fc = pt_fcache_new(g_root, &o);
	struct fentry *a = get(fc, "/a.bin"), *b = get(fc, "/b.bin");   /* evicts a */

	assert_false(a->linked);
	assert_null(pt_fcache_bytes(fc, a));
	assert_non_null(pt_fcache_bytes(fc, b));
	assert_int_equal(fc->copied, 100 * KB);
	pt_fentry_unref(a);
	pt_fentry_unref(b);
	pt_fcache_free(fc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_read_at_open),
		cmocka_unit_test(test_bytes_on_request),
		cmocka_unit_test(test_budget_and_eviction),
		cmocka_unit_test(test_evicted_entry_not_read),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
