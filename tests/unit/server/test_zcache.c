/*
 * Unit tests of src/server/compress.c and src/server/zcache.c: each coding round-trips
 * through its own decoder (zlib, libbrotlidec, libzstd), a result that would not save a byte
 * is refused, and the cache: a first request queues the file and gets nothing, the copy is
 * served after the pool made it, with the file's tag plus the coding; incompressible data is
 * remembered as useless; a changed file is a new key; files outside the size bounds are not
 * queued; the memory bound evicts least recently used copies while a copy still referenced
 * stays valid; freeing with work queued leaks nothing.
 */
#include "server/compress.c"
#include "server/compress_more.c"
#include "server/zcache.c"
#include "server/encoding.c"

#include <brotli/decode.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#define TEXT_LEN 100000

static char *g_text;

/* Compressible text: JavaScript-like lines. */
static int setup(void **state)
{
	g_text = malloc(TEXT_LEN);
	for (size_t i = 0; i < TEXT_LEN; i++)
		g_text[i] = "function f(a){return a+1;}\nvar x = f(2); // portico\n"[i % 52];
	return 0;
}

static int teardown(void **state)
{
	free(g_text);
	return 0;
}

static size_t decode(unsigned enc, const char *in, size_t n, char *out, size_t cap)
{
	if (enc == PT_ENC_GZIP) {
		z_stream z = { 0 };
		assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
		z.next_in = (Bytef *)in, z.avail_in = (uInt)n;
		z.next_out = (Bytef *)out, z.avail_out = (uInt)cap;
		assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
		size_t len = z.total_out;
		inflateEnd(&z);
		return len;
	}
	if (enc == PT_ENC_BR) {
		size_t len = cap;
		assert_int_equal(BrotliDecoderDecompress(n, (const uint8_t *)in, &len, (uint8_t *)out),
				 BROTLI_DECODER_RESULT_SUCCESS);
		return len;
	}
	size_t len = ZSTD_decompress(out, cap, in, n);
	assert_false(ZSTD_isError(len));
	return len;
}

static void test_codecs(void **state)
{
	static const unsigned encs[] = { PT_ENC_GZIP, PT_ENC_BR, PT_ENC_ZSTD };
	char *out = malloc(TEXT_LEN), *back = malloc(TEXT_LEN + 1);

	for (size_t i = 0; i < 3; i++) {
		ssize_t n = pt_compress(encs[i], g_text, TEXT_LEN, out, TEXT_LEN - 1);
		assert_true(n > 0 && n < TEXT_LEN / 20);
		assert_int_equal(decode(encs[i], out, (size_t)n, back, TEXT_LEN + 1), TEXT_LEN);
		assert_memory_equal(back, g_text, TEXT_LEN);
		/* no room for the result */
		assert_int_equal(pt_compress(encs[i], g_text, TEXT_LEN, out, 8), -E2BIG);
	}
	assert_int_equal(pt_compress(PT_ENC_IDENTITY, g_text, 10, out, 10), -EINVAL);
	free(out);
	free(back);
}

/* A temporary file with data; its descriptor, fstat in *st. */
static int temp_file(const void *data, size_t n, struct stat *st)
{
	char path[] = "/tmp/pt-zc.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	assert_int_equal(fstat(fd, st), 0);
	return fd;
}

static void test_cache(void **state)
{
	int err;
	struct pt_zcache *z = pt_zcache_new(16 << 20, 2, &err);
	struct stat st;
	int fd = temp_file(g_text, TEXT_LEN, &st);
	struct pt_zbuf *b;
	char *back = malloc(TEXT_LEN + 1);

	assert_non_null(z);
	assert_null(pt_zcache_get(z, &st, "\"1-2-3\"", PT_ENC_BR, fd));   /* queued */
	assert_null(pt_zcache_get(z, &st, "\"1-2-3\"", PT_ENC_BR, fd));   /* still pending */
	pt_zcache_drain(z);
	b = pt_zcache_get(z, &st, "\"1-2-3\"", PT_ENC_BR, fd);
	assert_non_null(b);
	assert_string_equal(b->etag, "\"1-2-3-br\"");
	assert_int_equal(b->etag_len, 10);
	assert_int_equal(decode(PT_ENC_BR, b->data, b->len, back, TEXT_LEN + 1), TEXT_LEN);
	assert_memory_equal(back, g_text, TEXT_LEN);
	assert_true(pt_zcache_bytes(z) >= b->len);
	pt_zbuf_unref(b);
	/* another coding of the same file is another copy */
	assert_null(pt_zcache_get(z, &st, "\"1-2-3\"", PT_ENC_GZIP, fd));
	pt_zcache_drain(z);
	b = pt_zcache_get(z, &st, "\"1-2-3\"", PT_ENC_GZIP, fd);
	assert_string_equal(b->etag, "\"1-2-3-gz\"");
	pt_zbuf_unref(b);
	/* the file changed (another mtime): a new key, compressed afresh */
	st.st_mtim.tv_nsec++;
	assert_null(pt_zcache_get(z, &st, "\"1-2-4\"", PT_ENC_BR, fd));
	pt_zcache_drain(z);
	assert_null(pt_zcache_get(z, &st, "\"1-2-4\"", PT_ENC_BR, fd));  /* fstat disagrees */
	pt_zcache_free(z);
	close(fd);
	free(back);
}

static void test_useless_and_bounds(void **state)
{
	int err;
	struct pt_zcache *z = pt_zcache_new(1 << 20, 1, &err);
	unsigned char rnd[4096];
	struct stat st;
	uint32_t x = 12345;

	for (size_t i = 0; i < sizeof(rnd); i++)
		x = x * 1103515245 + 12345, rnd[i] = (unsigned char)(x >> 16);
	int fd = temp_file(rnd, sizeof(rnd), &st);
	assert_null(pt_zcache_get(z, &st, "\"r\"", PT_ENC_ZSTD, fd));
	pt_zcache_drain(z);
	assert_null(pt_zcache_get(z, &st, "\"r\"", PT_ENC_ZSTD, fd));    /* useless */
	close(fd);
	/* too small, too big (more than a quarter of the bound) */
	fd = temp_file("tiny", 4, &st);
	assert_null(pt_zcache_get(z, &st, "\"t\"", PT_ENC_GZIP, fd));
	pt_zcache_drain(z);
	assert_null(pt_zcache_get(z, &st, "\"t\"", PT_ENC_GZIP, fd));
	close(fd);
	st.st_size = (1 << 20) / 4 + 1;
	assert_null(pt_zcache_get(z, &st, "\"t\"", PT_ENC_GZIP, 0));
	assert_int_equal(z->queued + z->busy, 0);
	pt_zcache_free(z);
}

/* 64 KiB of copies at most: the oldest ones go; one still referenced stays readable. */
static void test_evict(void **state)
{
	int err;
	struct pt_zcache *z = pt_zcache_new(64 << 10, 1, &err);
	struct pt_zbuf *first = NULL;
	struct stat st;
	char *buf = malloc(16000);
	int fds[40];

	for (int i = 0; i < 40; i++) {
		for (int k = 0; k < 16000; k++)       /* different files, each ~4 KiB compressed */
			buf[k] = (char)('a' + (k * 7 + i * 13 + (k / 97) * (i + 1)) % 26);
		fds[i] = temp_file(buf, 16000, &st);
		assert_null(pt_zcache_get(z, &st, "\"e\"", PT_ENC_GZIP, fds[i]));
		pt_zcache_drain(z);
		struct pt_zbuf *b = pt_zcache_get(z, &st, "\"e\"", PT_ENC_GZIP, fds[i]);
		assert_non_null(b);
		if (i == 0)
			first = b;
		else
			pt_zbuf_unref(b);
		assert_true(pt_zcache_bytes(z) <= 64 << 10);
	}
	assert_true(first->len > 0 && first->data[0] == 0x1f);  /* gzip magic, still valid */
	pt_zbuf_unref(first);
	for (int i = 0; i < 40; i++)
		close(fds[i]);
	pt_zcache_free(z);
	free(buf);
}

/* Freed with jobs still queued: their descriptors closed, nothing leaks. */
static void test_free_busy(void **state)
{
	int err, fd;
	struct pt_zcache *z = pt_zcache_new(16 << 20, 1, &err);
	struct stat st;

	fd = temp_file(g_text, TEXT_LEN, &st);
	for (unsigned e = 0; e < 3; e++)
		assert_null(pt_zcache_get(z, &st, "\"b\"", 1u << e, fd));
	pt_zcache_free(z);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codecs),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_useless_and_bounds),
		cmocka_unit_test(test_evict),
		cmocka_unit_test(test_free_busy),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
