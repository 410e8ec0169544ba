/*
 * Unit tests of src/http/h2_mem.c, the allocator handed to nghttp2: each size gets a block of
 * its class (or malloc's own above 4096 bytes), blocks are aligned for any type, calloc zeroes
 * and refuses an overflowing count, realloc keeps the bytes when it moves a block from class
 * to class and into and out of the big blocks, realloc to 0 frees, and a trim gives every kept
 * block back (LeakSanitizer checks at exit). Under ASan nothing is kept (PT_RECYCLE), so the
 * free lists are checked by the class arithmetic here and by make bench H1 in release builds.
 */
#include "http/h2_mem.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 31 + seed);
}

static void check(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 31 + seed))
			fail_msg("byte %zu of %zu", i, n);
}

static void test_classes(void **state)
{
	assert_int_equal(class_of(0), 0);
	assert_int_equal(class_of(1), 0);
	assert_int_equal(class_of(64), 0);
	assert_int_equal(class_of(65), 1);
	assert_int_equal(class_of(4096), H2M_CLASSES - 1);
	assert_int_equal(class_of(4097), H2M_BIG);
	assert_int_equal(class_size(H2M_CLASSES - 1), 4096);
}

static void test_malloc_free(void **state)
{
	struct h2pool p;
	const size_t sizes[] = { 1, 63, 64, 65, 200, 1000, 4096, 4097, 100000 };

	pt__h2_mem_init(&p);
	for (unsigned round = 0; round < 3; round++) {
		void *m[sizeof sizes / sizeof *sizes];
		for (unsigned i = 0; i < sizeof sizes / sizeof *sizes; i++) {
			m[i] = p.mem.malloc(sizes[i], p.mem.mem_user_data);
			assert_non_null(m[i]);
			assert_int_equal((uintptr_t)m[i] % _Alignof(max_align_t), 0);
			fill(m[i], sizes[i], i);
		}
		for (unsigned i = 0; i < sizeof sizes / sizeof *sizes; i++) {
			check(m[i], sizes[i], i);
			p.mem.free(m[i], p.mem.mem_user_data);
		}
	}
	p.mem.free(NULL, p.mem.mem_user_data);
	pt__h2_mem_trim(&p);
	for (unsigned c = 0; c < H2M_CLASSES; c++)
		assert_true(!p.free[c] && !p.nfree[c]);
}

static void test_zeroed(void **state)
{
	struct h2pool p;

	pt__h2_mem_init(&p);
	unsigned char *a = p.mem.malloc(128, p.mem.mem_user_data);
	memset(a, 0xab, 128);
	p.mem.free(a, p.mem.mem_user_data);               /* may come back from the list */
	unsigned char *b = p.mem.calloc(4, 32, p.mem.mem_user_data);
	assert_non_null(b);
	for (unsigned i = 0; i < 128; i++)
		assert_int_equal(b[i], 0);
	assert_null(p.mem.calloc(SIZE_MAX / 2, 4, p.mem.mem_user_data));
	p.mem.free(b, p.mem.mem_user_data);
	pt__h2_mem_trim(&p);
}

static void test_resize(void **state)
{
	struct h2pool p;
	void *ud;

	pt__h2_mem_init(&p);
	ud = p.mem.mem_user_data;
	unsigned char *m = p.mem.realloc(NULL, 40, ud);    /* NULL: a malloc */
	fill(m, 40, 7);
	assert_ptr_equal(p.mem.realloc(m, 60, ud), m);    /* fits its class: stays */
	m = p.mem.realloc(m, 3000, ud);                   /* class to class */
	check(m, 40, 7);
	fill(m, 3000, 8);
	m = p.mem.realloc(m, 50000, ud);                  /* into a big block */
	check(m, 3000, 8);
	fill(m, 50000, 9);
	m = p.mem.realloc(m, 70000, ud);                  /* big to big */
	check(m, 50000, 9);
	assert_null(p.mem.realloc(m, 0, ud));             /* 0: freed */
	pt__h2_mem_trim(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classes),
		cmocka_unit_test(test_malloc_free),
		cmocka_unit_test(test_zeroed),
		cmocka_unit_test(test_resize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
