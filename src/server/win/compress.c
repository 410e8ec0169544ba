/*
 * The codings other than gzip on Windows (see compress.h): none. Debian has zlib built for
 * mingw-w64 (libz-mingw-w64-dev) but neither brotli nor zstd, so the compress-once cache
 * (--compress) offers gzip alone here: a client that accepts only br or zstd is served the
 * identity body. Precompressed files on disk (.br, .zst) are still served: they need no codec.
 */
#include "server/compress.h"
#include "server/encoding.h"

#include <errno.h>

const unsigned pt_compress_encs = PT_ENC_GZIP;

ssize_t pt__compress_more(unsigned enc, const void *in, size_t n, void *out, size_t cap)
{
	return -EINVAL;
}
