/*
 * brotli and zstd for pt_compress (compress.c; levels explained there). Not in the Windows
 * build, whose win/compress.c has gzip only.
 */
#include "server/compress.h"
#include "server/encoding.h"

#include <brotli/encode.h>
#include <errno.h>
#include <zstd.h>
#include <zstd_errors.h>

#define BIG (1u << 20)
#define BROTLI_QUALITY(n) ((n) <= BIG ? 10 : 6)
#define ZSTD_LEVEL(n) ((n) <= BIG ? 19 : 11)

const unsigned pt_compress_encs = PT_ENC_ALL;

static ssize_t brotli_buf(const void *in, size_t n, void *out, size_t cap)
{
	size_t len = cap;

	if (!BrotliEncoderCompress(BROTLI_QUALITY(n), BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, n,
				   in, &len, out))
		return -E2BIG;  /* the library does not tell "too small" from "no memory" */
	return (ssize_t)len;
}

static ssize_t zstd_buf(const void *in, size_t n, void *out, size_t cap)
{
	size_t len = ZSTD_compress(out, cap, in, n, ZSTD_LEVEL(n));

	if (ZSTD_isError(len))
		return ZSTD_getErrorCode(len) == ZSTD_error_memory_allocation ? -ENOMEM : -E2BIG;
	return (ssize_t)len;
}

ssize_t pt__compress_more(unsigned enc, const void *in, size_t n, void *out, size_t cap)
{
	switch (enc) {
	case PT_ENC_BR:
		return brotli_buf(in, n, out, cap);
	case PT_ENC_ZSTD:
		return zstd_buf(in, n, out, cap);
	default:
		return -EINVAL;
	}
}
