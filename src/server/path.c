/*
 * Request path safety: normalization (pure; the same on every platform). Opening beneath the
 * docroot is platform code: path_open.c (openat2) on Linux, win/path_open.c on Windows.
 * See path.h for the policy. Invariants of pt_path_normalize's output, checked by the fuzz
 * target tests/fuzz/fuzz_path.c: it starts with '/', contains no "//", "/./", "/../", NUL,
 * control byte or backslash, does not end in "/." or "/..", and is no longer than the input.
 */
#include "server/path.h"
#include "server/fault.h"
#include "util/util.h"

#include <stdint.h>
#include <string.h>

/* ---- normalization ----------------------------------------------------------------------- */

/* Byte classes of the raw input. */
enum { C_OK = 0, C_SLASH, C_PCT, C_BAD, C_HIGH };

static const uint8_t path_class[256] = {
	[0x00 ... 0x1f] = C_BAD,  /* controls: never in a file name we serve */
	['/'] = C_SLASH,
	['%'] = C_PCT,
	['\\'] = C_BAD,           /* Windows separator: ambiguous on any server that maps it */
	[0x7f] = C_BAD,
	[0x80 ... 0xff] = C_HIGH, /* part of a UTF-8 sequence, validated below */
};

/* UTF-8 lead bytes (RFC 3629 4, Unicode table 3-7): index into utf8_lead, 0 = not a lead.
 * The second byte's range is narrowed for E0, ED, F0 and F4: that is what rejects overlong
 * forms (C0, C1 are never leads; E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code
 * points above U+10FFFF (F4 90.., F5..FF). */
static const uint8_t utf8_kind[256] = {
	[0xc2 ... 0xdf] = 1,
	[0xe0] = 2, [0xe1 ... 0xec] = 3, [0xed] = 4, [0xee ... 0xef] = 3,
	[0xf0] = 5, [0xf1 ... 0xf3] = 6, [0xf4] = 7,
};

static const struct { uint8_t need, lo, hi; } utf8_lead[8] = {
	{ 0, 0, 0 },
	{ 1, 0x80, 0xbf },
	{ 2, 0xa0, 0xbf },
	{ 2, 0x80, 0xbf },
	{ 2, 0x80, 0x9f },
	{ 3, 0x90, 0xbf },
	{ 3, 0x80, 0xbf },
	{ 3, 0x80, 0x8f },
};

struct norm {
	char *out;
	size_t w;      /* bytes written */
	size_t cap;    /* usable bytes: outcap - 1, for the NUL */
	uint8_t need;  /* continuation bytes still expected */
	uint8_t lo, hi;/* range of the next continuation byte */
};

/* Appends one byte of a segment (decoded, never '/'), checking UTF-8. 0 or -status. */
static inline int norm_put(struct norm *n, uint8_t c)
{
	if (n->need) {
		if (c < n->lo || c > n->hi)
			return -400;
		n->need--;
		n->lo = 0x80;
		n->hi = 0xbf;
	} else if (c >= 0x80) {
		uint8_t k = utf8_kind[c];

		if (!k)
			return -400;
		n->need = utf8_lead[k].need;
		n->lo = utf8_lead[k].lo;
		n->hi = utf8_lead[k].hi;
	}
	if (n->w >= n->cap)
		return -414;
	n->out[n->w++] = (char)c;
	return 0;
}

/* Decodes "%XX" at in[i] (in[i] == '%'). Sets *c. 0 or -400. */
static inline int norm_pct(const char *in, size_t len, size_t i, uint8_t *c)
{
	int h, l;

	if (len - i < 3)
		return -400;
	h = pt__hexval((uint8_t)in[i + 1]);
	l = pt__hexval((uint8_t)in[i + 2]);
	if (h < 0 || l < 0)
		return -400;
	*c = (uint8_t)(h << 4 | l);
	/* RFC 3986 2.1: %2F and %5C would change the segment structure after decoding;
	 * %00 and other controls are never part of a file name we serve. */
	switch (path_class[*c]) {
	case C_SLASH:
	case C_BAD:
		return -400;
	}
	return 0;
}

/* Copies one segment, decoded, from in[*i] up to the next '/' or the end. 0 or -status. */
static int norm_segment(struct norm *n, const char *in, size_t len, size_t *i)
{
	size_t k = *i;
	int r = 0;

	while (k < len && r == 0) {
		uint8_t c = (uint8_t)in[k];

		switch (path_class[c]) {
		case C_OK: {                          /* a run of plain bytes, copied at once */
			size_t e = k + 1;
			if (n->need)
				return -400;
			while (e < len && path_class[(uint8_t)in[e]] == C_OK)
				e++;
			if (e - k > n->cap - n->w)
				return -414;
			memcpy(n->out + n->w, in + k, e - k);
			n->w += e - k;
			k = e;
			continue;
		}
		case C_SLASH:
			goto done;
		case C_PCT:
			r = norm_pct(in, len, k, &c);
			if (r == 0)
				r = norm_put(n, c);
			k += 3;
			continue;
		case C_HIGH:
			r = norm_put(n, c);
			k++;
			continue;
		default:
			return -400;
		}
	}
done:
	*i = k;
	if (r == 0 && n->need) /* a UTF-8 sequence cut by '/' or the end */
		r = -400;
	return r;
}

/* Applies RFC 3986 5.2.4 to the segment just written at out[seg..w). more: a '/' follows
 * it in the input. 0 or -400 (".." at the root). */
static int norm_dots(struct norm *n, size_t seg, bool more)
{
	size_t sl = n->w - seg;
	const char *s = n->out + seg;

	if (sl == 0)
		return 0;                         /* "//": dropped */
	if (sl == 1 && s[0] == '.') {
		n->w = seg;                       /* "." */
		return 0;
	}
	if (sl == 2 && s[0] == '.' && s[1] == '.') {
		if (seg == 1)
			return -400;              /* above the root: never clamped */
		n->w = (size_t)((const char *)memrchr(n->out, '/', seg - 1) - n->out) + 1;
		return 0;
	}
	if (more) {
		if (n->w >= n->cap)
			return -414;
		n->out[n->w++] = '/';
	}
	return 0;
}

int pt_path_normalize(const char *in, size_t len, char *out, size_t outcap, size_t *outlen)
{
	struct norm n = { .out = out, .w = 1, .lo = 0x80, .hi = 0xbf };
	size_t i = 1;
	int r, flags = 0;
	bool dot = false;                 /* some segment started with '.' */

	if (outcap < 2)
		return -414;
	n.cap = outcap - 1;
	out[0] = '/';
	if (len > 0 && in[0] != '/')
		return -400;
	while (i < len) {
		size_t seg = n.w;

		r = norm_segment(&n, in, len, &i);
		dot = dot || (n.w > seg && out[seg] == '.');
		if (r == 0)
			r = norm_dots(&n, seg, i < len);
		if (r < 0)
			return r;
		i++; /* the '/' */
	}
	out[n.w] = '\0';
	*outlen = n.w;
	for (const char *d = out; dot && (d = memchr(d, '.', n.w - (size_t)(d - out))); d++)
		if (d[-1] == '/') {              /* out[0] is '/': d > out */
			flags |= PT_PATH_DOTFILE;
			break;
		}
	if (n.w > 1 && out[n.w - 1] == '/')
		flags |= PT_PATH_DIR;
	return flags;
}
