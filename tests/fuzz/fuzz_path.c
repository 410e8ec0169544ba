// fuzz-sources: src/server/path.c
/*
 * libFuzzer target for pt_path_normalize (src/server/path.c).
 *
 * Invariants checked on every input (a violation aborts):
 *  - the result is flags >= 0, -400 or -414 (only when the buffer is too small);
 *  - an accepted output starts with '/', has no "//", "/./", "/../", no trailing "/." or
 *    "/..", no NUL, control byte or backslash, is valid UTF-8 (no overlong forms, no
 *    surrogates, nothing above U+10FFFF), is no longer than the input (or "/" for an
 *    empty input) and is NUL-terminated;
 *  - the flags agree with the output (DOTFILE iff "/." occurs, DIR iff it ends in '/');
 *  - the result equals that of a slow reference implementation written independently
 *    below (decode each segment, then a stack of segments);
 *  - output without '%' normalizes to itself;
 *  - a buffer too small for the output gives -414 (intermediate states can be longer
 *    than the output, so outlen + 1 bytes may or may not suffice).
 * The input is a heap copy of exactly its length, so ASan reports any overread.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/path.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
	abort(); } } while (0)

static int hexv(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0. Decodes and checks minimality. */
static size_t utf8_ok(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
		return 0;
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static int valid_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t l = utf8_ok(s + i, n - i);

		if (!l)
			return 0;
		i += l;
	}
	return 1;
}

/* Reference: returns 0 with out/outlen, or -400. */
static int reference(const char *in, size_t len, char *out, size_t *outlen)
{
	size_t starts[4096], nseg = 0, w = 0, i = 1;
	char *seg = malloc(len + 1);

	if (len == 0) {
		strcpy(out, "/");
		*outlen = 1;
		free(seg);
		return 0;
	}
	if (in[0] != '/')
		goto bad;
	out[w++] = '/';
	while (i <= len) {
		size_t sl = 0, j = i;

		while (j < len && in[j] != '/') {
			int c = (unsigned char)in[j];

			if (c == '%') {
				if (j + 2 >= len)
					goto bad;
				if (hexv(in[j + 1]) < 0 || hexv(in[j + 2]) < 0)
					goto bad;
				c = hexv(in[j + 1]) * 16 + hexv(in[j + 2]);
				if (c == '/')
					goto bad;
				j += 3;
			} else {
				j++;
			}
			if (c < 0x20 || c == 0x7f || c == '\\')
				goto bad;
			seg[sl++] = (char)c;
		}
		if (!valid_utf8((unsigned char *)seg, sl))
			goto bad;
		int more = j < len;

		if (sl == 0 || (sl == 1 && seg[0] == '.')) {
			/* nothing */
		} else if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
			if (nseg == 0)
				goto bad;
			w = starts[--nseg];
		} else {
			if (nseg >= sizeof(starts) / sizeof(starts[0]))
				abort();
			starts[nseg++] = w;
			memcpy(out + w, seg, sl);
			w += sl;
			if (more)
				out[w++] = '/';
		}
		i = j + 1;
	}
	out[w] = '\0';
	*outlen = w;
	free(seg);
	return 0;
bad:
	free(seg);
	return -400;
}

static void check_output(const char *in, size_t len, const char *out, size_t ol, int r)
{
	CHECK(ol >= 1 && out[0] == '/' && out[ol] == '\0');
	CHECK(ol <= (len ? len : 1));
	CHECK(!memmem(out, ol, "//", 2));
	CHECK(!memmem(out, ol, "/./", 3));
	CHECK(!memmem(out, ol, "/../", 4));
	CHECK(!(ol >= 2 && memcmp(out + ol - 2, "/.", 2) == 0));
	CHECK(!(ol >= 3 && memcmp(out + ol - 3, "/..", 3) == 0));
	for (size_t i = 0; i < ol; i++) {
		unsigned char c = (unsigned char)out[i];

		CHECK(c >= 0x20 && c != 0x7f && c != '\\');
	}
	CHECK(valid_utf8((const unsigned char *)out, ol));
	CHECK(!!(r & PT_PATH_DOTFILE) == !!memmem(out, ol, "/.", 2));
	CHECK(!!(r & PT_PATH_DIR) == (ol > 1 && out[ol - 1] == '/'));
	CHECK((r & ~(PT_PATH_DOTFILE | PT_PATH_DIR)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char *in = malloc(len ? len : 1);
	char *out = malloc(len + 2), *ref = malloc(len + 2), *again = malloc(len + 2);
	size_t ol = 0, rl = 0, al = 0;
	int r, rr;

	memcpy(in, data, len);
	r = pt_path_normalize(in, len, out, len + 2, &ol);
	rr = reference(in, len, ref, &rl);
	CHECK(r >= 0 || r == -400);
	CHECK((r >= 0) == (rr == 0));
	if (r >= 0) {
		check_output(in, len, out, ol, r);
		CHECK(rl == ol && memcmp(out, ref, ol) == 0);
		/* a buffer too small for the result is -414, never an overflow (ASan) */
		rr = pt_path_normalize(in, len, again, ol + 1, &al);
		CHECK(rr == -414 || (rr == r && al == ol));
		CHECK(pt_path_normalize(in, len, again, ol, &al) == -414);
		if (!memchr(out, '%', ol)) {
			CHECK(pt_path_normalize(out, ol, again, ol + 2, &al) == r);
			CHECK(al == ol && memcmp(again, out, ol) == 0);
		}
	}
	free(in);
	free(out);
	free(ref);
	free(again);
	return 0;
}
