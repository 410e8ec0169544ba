/*
 * Compression codecs of the portico program (compress.c): gzip (zlib), brotli (libbrotli)
 * and zstd (libzstd) over whole buffers, for the compress-once cache (zcache.c). Levels are
 * high because each file is compressed once and served many times (see compress.c).
 */
#ifndef PT_SERVER_COMPRESS_H
#define PT_SERVER_COMPRESS_H

#include <stddef.h>
#include <sys/types.h>

/* Compresses in[0..n) with coding enc (PT_ENC_GZIP, PT_ENC_BR or PT_ENC_ZSTD) into out[0..cap).
 * Returns the compressed length, -E2BIG when it does not fit in cap (pass cap < n to keep only
 * results that save something), -ENOMEM, or -EINVAL for another coding. Pure apart from
 * the codec's own scratch memory; any thread, concurrently; blocking (CPU). */
ssize_t pt_compress(unsigned enc, const void *in, size_t n, void *out, size_t cap);

/* The codings pt_compress produces in this build (PT_ENC_* bits): all three on Linux, gzip
 * only on Windows (win/compress.c: Debian has zlib for mingw-w64, not brotli or zstd). */
extern const unsigned pt_compress_encs;

/* The codings other than gzip (compress_more.c; on Windows win/compress.c: -EINVAL). */
ssize_t pt__compress_more(unsigned enc, const void *in, size_t n, void *out, size_t cap);

#endif
