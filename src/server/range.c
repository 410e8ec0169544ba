/*
 * Range parsing and multipart/byteranges layout (see range.h for the policy; RFC 9110 14).
 *
 * Grammar (RFC 9110 14.1.1, 14.1.2):
 *   Range            = ranges-specifier
 *   ranges-specifier = range-unit "=" range-set
 *   range-set        = 1#range-spec
 *   range-spec       = int-range / suffix-range / other-range
 *   int-range        = first-pos "-" [ last-pos ]
 *   suffix-range     = "-" suffix-length
 * other-range exists for other units; for bytes anything but the first two is invalid.
 */
#include "server/range.h"
#include "util/util.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* ---- parsing ----------------------------------------------------------------------------- */

struct spec {
	uint64_t a, b;   /* int-range: first, last (b = UINT64_MAX if absent); suffix: a = len */
	bool suffix;
};

/* 1*DIGIT, saturating at UINT64_MAX (a position past any file is still a position). */
static bool parse_num(const char **pp, const char *end, uint64_t *v)
{
	const char *p = *pp;
	uint64_t x = 0;

	if (p == end || (unsigned)(*p - '0') > 9)
		return false;
	for (; p < end && (unsigned)(*p - '0') <= 9; p++) {
		unsigned d = (unsigned)(*p - '0');

		x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
	}
	*pp = p;
	*v = x;
	return true;
}

static bool parse_spec(const char **pp, const char *end, struct spec *s)
{
	const char *p = *pp;

	s->suffix = p < end && *p == '-';
	if (s->suffix) {
		p++;
		if (!parse_num(&p, end, &s->a))
			return false;
	} else {
		if (!parse_num(&p, end, &s->a) || p == end || *p++ != '-')
			return false;
		s->b = UINT64_MAX;
		if (p < end && (unsigned)(*p - '0') <= 9)
			parse_num(&p, end, &s->b);
		if (s->b < s->a)
			return false; /* 14.1.1: last-pos < first-pos is invalid */
	}
	*pp = p;
	return true;
}

/* Turns a spec into a range of a size-byte representation. False if unsatisfiable
 * (14.1.1: an int-range starting at or past the end, or a suffix of length 0). */
static bool spec_range(const struct spec *s, uint64_t size, struct pt_range *r)
{
	if (s->suffix) {
		if (s->a == 0)
			return false;
		r->first = s->a >= size ? 0 : size - s->a;
		r->last = size - 1;
		return true;
	}
	if (s->a >= size)
		return false;
	r->first = s->a;
	r->last = s->b >= size ? size - 1 : s->b;
	return true;
}

/* Do a and b overlap, or lie closer than PT_RANGE_GAP bytes apart? */
static bool near(const struct pt_range *a, const struct pt_range *b)
{
	const struct pt_range *lo = a->first <= b->first ? a : b, *hi = lo == a ? b : a;

	return hi->first <= lo->last || hi->first - lo->last <= PT_RANGE_GAP + 1;
}

/* RFC 9110 14.6: merges ranges that overlap or nearly touch; sorts only if it merges. */
static unsigned coalesce(struct pt_range *r, unsigned n)
{
	bool any = false;
	unsigned m = 0;

	for (unsigned i = 0; i < n && !any; i++)
		for (unsigned j = i + 1; j < n && !any; j++)
			any = near(&r[i], &r[j]);
	if (!any)
		return n;
	for (unsigned i = 1; i < n; i++) { /* insertion sort: n <= max, small */
		struct pt_range x = r[i];
		unsigned j = i;

		for (; j > 0 && r[j - 1].first > x.first; j--)
			r[j] = r[j - 1];
		r[j] = x;
	}
	for (unsigned i = 1; i < n; i++) {
		if (near(&r[m], &r[i])) {
			if (r[i].last > r[m].last)
				r[m].last = r[i].last;
		} else {
			r[++m] = r[i];
		}
	}
	return m + 1;
}

int pt_range_parse(const char *v, size_t len, uint64_t size, struct pt_range *r,
		   unsigned max)
{
	const char *p, *end = v + len;
	unsigned n = 0, specs = 0;

	/* 14.1: range units are case-insensitive; an unknown unit means "ignore" (14.2) */
	if (len < 6 || strncasecmp(v, "bytes=", 6) != 0)
		return 0;
	p = v + 6;
	for (;;) {
		struct spec s;

		p = pt__skip_ows(p, end);
		if (p < end && *p == ',') { /* 5.6.1: empty list elements are allowed */
			p++;
			continue;
		}
		if (p == end)
			break;
		if (!parse_spec(&p, end, &s))
			return 0;
		p = pt__skip_ows(p, end);
		if ((p < end && *p != ',') || ++specs > max)
			return 0;
		if (size > 0 && spec_range(&s, size, &r[n]))
			n++;
	}
	if (specs == 0 || size == 0)
		return 0;
	if (n == 0)
		return -416;
	return (int)coalesce(r, n);
}

/* ---- response framing -------------------------------------------------------------------- */

size_t pt_range_content_range(char *buf, size_t cap, const struct pt_range *r, uint64_t size)
{
	char tmp[PT_RANGE_CR_MAX], *p = tmp;
	size_t n;

	memcpy(p, "bytes ", 6);
	p += 6;
	if (r) {
		p += pt__fmt_u64(p, r->first);
		*p++ = '-';
		p += pt__fmt_u64(p, r->last);
	} else {
		*p++ = '*';
	}
	*p++ = '/';
	p += pt__fmt_u64(p, size);
	n = (size_t)(p - tmp);
	if (n + 1 > cap)
		return 0;
	memcpy(buf, tmp, n);
	buf[n] = '\0';
	return n;
}

size_t pt_range_boundary(char *buf, uint64_t random)
{
	memcpy(buf, "pt", 2);
	for (int i = 0; i < 16; i++)
		buf[2 + i] = "0123456789abcdef"[(random >> (60 - 4 * i)) & 15];
	memcpy(buf + 18, "zz", 3); /* letters hex cannot produce, ending the boundary */
	return PT_RANGE_BOUNDARY_LEN;
}

/* Appends s[0..n) at *p if it fits before end. */
static bool put(char **p, const char *end, const char *s, size_t n)
{
	if ((size_t)(end - *p) < n)
		return false;
	memcpy(*p, s, n);
	*p += n;
	return true;
}

/* One part head: [CRLF] "--" boundary CRLF [Content-Type CRLF] Content-Range CRLF CRLF. */
static bool part_head(char **p, const char *end, bool first, const char *boundary,
		      const char *ctype, const struct pt_range *r, uint64_t size)
{
	char cr[PT_RANGE_CR_MAX];
	size_t crn = pt_range_content_range(cr, sizeof(cr), r, size);

	return (first || put(p, end, "\r\n", 2)) && put(p, end, "--", 2) &&
	       put(p, end, boundary, strlen(boundary)) && put(p, end, "\r\n", 2) &&
	       (!ctype || !*ctype || (put(p, end, "Content-Type: ", 14) &&
				      put(p, end, ctype, strlen(ctype)) &&
				      put(p, end, "\r\n", 2))) &&
	       put(p, end, "Content-Range: ", 15) && put(p, end, cr, crn) &&
	       put(p, end, "\r\n\r\n", 4);
}

int pt_range_multipart(const struct pt_range *r, unsigned n, uint64_t size,
		       const char *boundary, const char *ctype, char *buf, size_t cap,
		       struct pt_range_part *parts, uint64_t *total)
{
	char *p = buf, *end = buf + cap;
	uint64_t body = 0;

	if (n == 0 || !boundary || !*boundary)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		char *start = p;

		if (r[i].first > r[i].last || r[i].last >= size)
			return -EINVAL;
		if (!part_head(&p, end, i == 0, boundary, ctype, &r[i], size))
			return -ENOBUFS;
		parts[i] = (struct pt_range_part){ (size_t)(start - buf), (size_t)(p - start) };
		body += parts[i].len + (r[i].last - r[i].first + 1);
	}
	parts[n].off = (size_t)(p - buf);
	if (!put(&p, end, "\r\n--", 4) || !put(&p, end, boundary, strlen(boundary)) ||
	    !put(&p, end, "--\r\n", 4))
		return -ENOBUFS;
	parts[n].len = (size_t)(p - buf) - parts[n].off;
	*total = body + parts[n].len;
	return 0;
}
