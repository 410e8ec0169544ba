/*
 * Whole-buffer compression with the three codings browsers accept (see compress.h).
 *
 * Levels, for text of the web compressed once and served many times. Measured on jquery.js
 * (283 KiB) on one core: gzip 6 / 9: 85460 / 85028 bytes, 25 / 57 ms; brotli 9 / 10 / 11:
 * 77652 / 71873 / 70598 bytes, 425 / 475 / 1428 ms; zstd 15 / 19: 79060 / 74374 bytes,
 * 78 / 310 ms. So files up to 1 MiB get gzip 9, brotli 10 and zstd 19 (brotli 11 costs three
 * times as long for 2%, and the identity body is served until the copy is ready); larger
 * ones get gzip 6, brotli 6 and zstd 11 (about 10x faster) so that a big bundle does not hold a
 * compression thread for seconds.
 *
 * gzip is here; brotli and zstd are in compress_more.c, which the Windows build replaces with
 * win/compress.c (Debian has zlib for mingw-w64, not brotli or zstd).
 */
#include "server/compress.h"
#include "server/encoding.h"

#include <errno.h>
#include <stdint.h>
#include <zlib.h>

#define BIG (1u << 20)
#define GZIP_LEVEL(n) ((n) <= BIG ? 9 : 6)

static ssize_t gzip_buf(const void *in, size_t n, void *out, size_t cap)
{
	z_stream z = { 0 };
	ssize_t r;
	int e;

	/* windowBits 15 + 16: a gzip wrapper (RFC 1952), not zlib's */
	if (n > UINT32_MAX || cap > UINT32_MAX ||
	    deflateInit2(&z, GZIP_LEVEL(n), Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return n > UINT32_MAX || cap > UINT32_MAX ? -E2BIG : -ENOMEM;
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	e = deflate(&z, Z_FINISH);
	r = e == Z_STREAM_END ? (ssize_t)z.total_out : e == Z_MEM_ERROR ? -ENOMEM : -E2BIG;
	deflateEnd(&z);
	return r;
}

ssize_t pt_compress(unsigned enc, const void *in, size_t n, void *out, size_t cap)
{
	switch (enc) {
	case PT_ENC_GZIP:
		return gzip_buf(in, n, out, cap);
	default:
		return pt__compress_more(enc, in, n, out, cap);
	}
}
