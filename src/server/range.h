/*
 * Range requests for static files (RFC 9110 14): parsing "Range: bytes=..." against the
 * representation's length, and laying out multipart/byteranges responses.
 *
 * Policy (RFC 9110 14.2 lets a server ignore a Range field, and 14.1.1 and 17.15 warn that
 * overlapping or numerous ranges are a denial-of-service vector):
 *  - an unknown range unit or a syntactically invalid set (including "5-3") is ignored:
 *    the whole representation is sent with 200;
 *  - more than max range-specs (PT_RANGE_MAX = 16 is the recommended max) is ignored too,
 *    whatever they are, so the work per request is bounded before anything is computed;
 *  - unsatisfiable specs are dropped; if none is left the answer is 416 with
 *    "Content-Range: bytes * /LENGTH" (RFC 9110 15.5.17);
 *  - ranges that overlap, or are separated by fewer than PT_RANGE_GAP bytes (less than the
 *    cost of another part's header), are coalesced (RFC 9110 14.6 allows it) and the result
 *    is sorted by position; ranges that need no coalescing keep the client's order. So no
 *    byte of the file is sent twice and a response is at most the file plus 16 part headers:
 *    "bytes=0-,0-,0-..." cannot multiply the response;
 *  - a zero-length representation has no expressible range: the Range is ignored (200).
 * A single range is answered with 206 and Content-Range; several with 206
 * multipart/byteranges (pt_range_multipart).
 */
#ifndef PT_SERVER_RANGE_H
#define PT_SERVER_RANGE_H

#include <stddef.h>
#include <stdint.h>

#define PT_RANGE_MAX 16          /* recommended max for pt_range_parse */
#define PT_RANGE_GAP 80          /* ranges closer than this are merged */
#define PT_RANGE_CR_MAX 72       /* buffer for pt_range_content_range */
#define PT_RANGE_BOUNDARY_LEN 20 /* length of a boundary from pt_range_boundary */

/* A satisfiable byte range: first and last are inclusive positions, first <= last < size. */
struct pt_range {
	uint64_t first;
	uint64_t last;
};

/* Parses the Range field value v[0..len) (RFC 9110 14.1.2: the unit "bytes" is
 * case-insensitive; OWS and empty elements are allowed around commas) for a representation
 * of size bytes. Stores at most max ranges in r[], clamped to the representation.
 * Returns the number of ranges (> 0: answer 206), 0 (ignore the Range: answer 200 with the
 * whole representation), or -416. Pure: no allocation, any thread. */
int pt_range_parse(const char *v, size_t len, uint64_t size, struct pt_range *r,
		   unsigned max);

/* Writes the Content-Range value "bytes FIRST-LAST/SIZE", or "bytes * /SIZE" (no space)
 * when r is NULL (for 416), NUL-terminated, into buf (PT_RANGE_CR_MAX bytes suffice).
 * Returns its length, or 0 if cap is too small. */
size_t pt_range_content_range(char *buf, size_t cap, const struct pt_range *r, uint64_t size);

/* Writes a multipart boundary made from 64 random bits (the caller's), NUL-terminated:
 * PT_RANGE_BOUNDARY_LEN characters, all valid bchars (RFC 2046 5.1.1). buf must hold
 * PT_RANGE_BOUNDARY_LEN + 1 bytes. Returns PT_RANGE_BOUNDARY_LEN. */
size_t pt_range_boundary(char *buf, uint64_t random);

/* Where one piece of a multipart body's framing lies in the caller's buffer. */
struct pt_range_part {
	size_t off;
	size_t len;
};

/* Bytes of buffer enough for the framing of n parts (heads plus the closing delimiter). */
#define PT_RANGE_MULTIPART_MAX(n, boundary_len, ctype_len) \
	(((size_t)(n) + 1) * ((boundary_len) + (ctype_len) + 128))

/* Lays out a multipart/byteranges body (RFC 9110 14.6) for the n ranges r[] of a
 * representation of size bytes with Content-Type ctype (NULL or "": no Content-Type line
 * in the parts). The body is, in order:
 *   head[0] data[0] head[1] data[1] ... head[n-1] data[n-1] close
 * where data[i] are the bytes r[i].first..r[i].last of the file, and each head and close
 * is a piece of buf described by parts[i] (parts must hold n + 1 entries; parts[n] is the
 * closing delimiter). The response's Content-Type is then
 * "multipart/byteranges; boundary=<boundary>" and its Content-Length *total.
 * Returns 0, -ENOBUFS if cap is too small (PT_RANGE_MULTIPART_MAX suffices), or -EINVAL
 * (n == 0, an empty boundary, or a range outside size). Pure; any thread. */
int pt_range_multipart(const struct pt_range *r, unsigned n, uint64_t size,
		       const char *boundary, const char *ctype, char *buf, size_t cap,
		       struct pt_range_part *parts, uint64_t *total);

#endif
