/*
 * ETag, HTTP-date and conditional request evaluation (see cond.h; RFC 9110 8.8, 13, 5.6.7).
 * Dates are converted with the days-from-civil arithmetic of the proleptic Gregorian
 * calendar, not gmtime/timegm: no locale, no time zone, no lock, and the same result on
 * every libc.
 */
#include "server/cond.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>

/* ---- ETag -------------------------------------------------------------------------------- */

size_t pt_cond_etag(char *buf, const struct stat *st)
{
	uint64_t ns = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
	char *p = buf;

	*p++ = '"';
	p += pt__fmt_hex64(p, (uint64_t)st->st_ino);
	*p++ = '-';
	p += pt__fmt_hex64(p, (uint64_t)st->st_size);
	*p++ = '-';
	p += pt__fmt_hex64(p, ns);
	*p++ = '"';
	*p = '\0';
	return (size_t)(p - buf);
}

/* ---- HTTP-date --------------------------------------------------------------------------- */

#define DATE_MIN 0                   /* 1970-01-01T00:00:00Z */
#define DATE_MAX 253402300799LL      /* 9999-12-31T23:59:59Z */

static const char wday_names[] = "SunMonTueWedThuFriSat";
static const char month_names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
static const char *const wday_long[] = {
	"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
};

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1..12). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, doe;
	unsigned yoe, doy;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = (int64_t)yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static char *put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

size_t pt_cond_date_format(char *buf, time_t t)
{
	int64_t s = t < DATE_MIN ? DATE_MIN : t > DATE_MAX ? DATE_MAX : (int64_t)t;
	int64_t days = s / 86400, y;
	unsigned sec = (unsigned)(s % 86400), m, d, wd = (unsigned)((days + 4) % 7);
	char *p = buf;

	civil_from_days(days, &y, &m, &d);
	memcpy(p, wday_names + 3 * wd, 3);
	memcpy(p + 3, ", ", 2);
	p = put2(p + 5, d);
	*p++ = ' ';
	memcpy(p, month_names + 3 * (m - 1), 3);
	p[3] = ' ';
	p = put2(p + 4, (unsigned)(y / 100));
	p = put2(p, (unsigned)(y % 100));
	*p++ = ' ';
	p = put2(p, sec / 3600);
	*p++ = ':';
	p = put2(p, sec / 60 % 60);
	*p++ = ':';
	p = put2(p, sec % 60);
	memcpy(p, " GMT", 5);
	return PT_HTTP_DATE_LEN;
}

/* n decimal digits at s, or -1. */
static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Index of the 3-letter name at s in names (3 bytes each), or -1. */
static int name3(const char *s, const char *names, int count)
{
	for (int i = 0; i < count; i++)
		if (memcmp(s, names + 3 * i, 3) == 0)
			return i;
	return -1;
}

struct hdate {
	int year, mon, day, hour, min, sec; /* mon 1..12 */
};

/* "HH:MM:SS" at s. */
static bool parse_time(const char *s, struct hdate *h)
{
	if (s[2] != ':' || s[5] != ':')
		return false;
	h->hour = digits(s, 2);
	h->min = digits(s + 3, 2);
	h->sec = digits(s + 6, 2);
	return h->hour >= 0 && h->min >= 0 && h->sec >= 0;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool hdate_valid(const struct hdate *h)
{
	static const uint8_t mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (h->mon < 1 || h->day < 1 || h->day > mdays[h->mon - 1] || h->year < 0)
		return false;
	if (h->mon == 2 && h->day == 29 && !is_leap(h->year))
		return false;
	return h->hour <= 23 && h->min <= 59 && h->sec <= 60;
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 5.6.7). */
static bool parse_imf(const char *s, size_t n, struct hdate *h)
{
	if (n != 29 || name3(s, wday_names, 7) < 0 || memcmp(s + 3, ", ", 2) != 0 ||
	    s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || memcmp(s + 25, " GMT", 4) != 0)
		return false;
	h->day = digits(s + 5, 2);
	h->mon = name3(s + 8, month_names, 12) + 1;
	h->year = digits(s + 12, 4);
	return parse_time(s + 17, h);
}

/* asctime-date: "Sun Nov  6 08:49:37 1994". */
static bool parse_asctime(const char *s, size_t n, struct hdate *h)
{
	if (n != 24 || name3(s, wday_names, 7) < 0 || s[3] != ' ' || s[7] != ' ' ||
	    s[10] != ' ' || s[19] != ' ')
		return false;
	h->mon = name3(s + 4, month_names, 12) + 1;
	h->day = s[8] == ' ' ? digits(s + 9, 1) : digits(s + 8, 2);
	if (s[8] == ' ' && h->day == 0)
		return false;
	h->year = digits(s + 20, 4);
	return parse_time(s + 11, h);
}

/* rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT"; the century comes from now. */
static bool parse_rfc850(const char *s, size_t n, time_t now, struct hdate *h)
{
	const char *comma = memchr(s, ',', n);
	size_t k = comma ? (size_t)(comma - s) : 0;
	int wd, yy, cur;

	for (wd = 0; wd < 7; wd++)
		if (k == strlen(wday_long[wd]) && memcmp(s, wday_long[wd], k) == 0)
			break;
	if (wd == 7 || n != k + 24)
		return false;
	s += k;
	if (memcmp(s, ", ", 2) != 0 || s[4] != '-' || s[8] != '-' || s[11] != ' ' ||
	    memcmp(s + 20, " GMT", 4) != 0)
		return false;
	h->day = digits(s + 2, 2);
	h->mon = name3(s + 5, month_names, 12) + 1;
	yy = digits(s + 9, 2);
	if (yy < 0 || !parse_time(s + 12, h))
		return false;
	{
		int64_t y;
		unsigned m, d;

		civil_from_days((int64_t)now / 86400, &y, &m, &d);
		cur = (int)y;
	}
	/* RFC 9110 5.6.7: more than 50 years in the future means the previous century */
	h->year = cur - cur % 100 + yy;
	if (h->year > cur + 50)
		h->year -= 100;
	return true;
}

int pt_cond_date_parse(const char *s, size_t n, time_t now, time_t *out)
{
	struct hdate h = { .mon = 0 };
	bool ok;

	if (n < 4)
		return -EINVAL;
	if (s[3] == ',')
		ok = parse_imf(s, n, &h);
	else if (s[3] == ' ')
		ok = parse_asctime(s, n, &h);
	else
		ok = parse_rfc850(s, n, now ? now : time(NULL), &h);
	if (!ok || !hdate_valid(&h))
		return -EINVAL;
	*out = (time_t)(days_from_civil(h.year, (unsigned)h.mon, (unsigned)h.day) * 86400 +
			h.hour * 3600 + h.min * 60 + h.sec);
	return 0;
}

/* ---- entity-tag lists -------------------------------------------------------------------- */

struct etag {
	const char *p; /* the opaque-tag, quotes included */
	size_t n;
	bool weak;
};

/* Parses one entity-tag at [*p, end) (RFC 9110 8.8.3): [ "W/" ] DQUOTE *etagc DQUOTE with
 * etagc = %x21 / %x23-7E / obs-text. Advances *p past it. */
static bool etag_parse(const char **p, const char *end, struct etag *t)
{
	const char *s = *p;

	t->weak = end - s >= 2 && s[0] == 'W' && s[1] == '/';
	if (t->weak)
		s += 2;
	if (s == end || *s != '"')
		return false;
	t->p = s++;
	while (s < end && *s != '"') {
		unsigned char c = (unsigned char)*s++;

		if (c <= 0x20 || c == 0x7f)
			return false;
	}
	if (s == end)
		return false;
	t->n = (size_t)(++s - t->p);
	*p = s;
	return true;
}

/* RFC 9110 8.8.3.2: strong comparison needs both tags strong; weak compares opaque-tags. */
static bool etag_eq(const struct etag *a, const struct etag *b, bool strong)
{
	if (strong && (a->weak || b->weak))
		return false;
	return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
}

/* The representation's tag, or false if it has none (or it is malformed). */
static bool res_etag(const struct pt_cond_res *rs, struct etag *t)
{
	const char *p = rs->etag;

	if (!p || !etag_parse(&p, rs->etag + rs->etag_len, t))
		return false;
	return p == rs->etag + rs->etag_len;
}

/* Does the If-Match / If-None-Match value f match? ("*" / #entity-tag, RFC 9110 13.1.1-2.)
 * Empty list elements are skipped (RFC 9110 5.6.1); a malformed element matches nothing and
 * the scan resumes after the next comma. */
static bool etag_list_match(struct pt_cond_field f, const struct pt_cond_res *rs, bool strong)
{
	const char *p = f.p, *end = f.p + f.n;
	struct etag mine, t;
	bool have = res_etag(rs, &mine);

	pt__trim_ows(&p, &end);
	if (end - p == 1 && *p == '*')
		return true; /* a static file that we are about to serve has a representation */
	while (p < end) {
		bool ok;

		while (p < end && (pt__is_ows(*p) || *p == ','))
			p++;
		if (p == end)
			break;
		ok = etag_parse(&p, end, &t);
		while (ok && p < end && pt__is_ows(*p))
			p++;
		if (ok && (p == end || *p == ',')) {
			if (have && etag_eq(&t, &mine, strong))
				return true;
			continue;
		}
		p = memchr(p, ',', (size_t)(end - p));
		if (!p)
			break;
	}
	return false;
}

/* ---- evaluation (RFC 9110 13.2.2) --------------------------------------------------------- */

static bool date_field(struct pt_cond_field f, time_t now, time_t *t)
{
	const char *p = f.p, *end = f.p + f.n;

	pt__trim_ows(&p, &end);
	return pt_cond_date_parse(p, (size_t)(end - p), now, t) == 0;
}

/* RFC 9110 13.1.5: an entity-tag (strong comparison) or a date equal to Last-Modified. */
static bool if_range_holds(const struct pt_cond_req *rq, const struct pt_cond_res *rs,
			   time_t now)
{
	const char *p = rq->if_range.p, *end = p + rq->if_range.n;
	struct etag t, mine;
	time_t d;

	pt__trim_ows(&p, &end);
	if (p < end && (*p == '"' || (end - p >= 2 && p[0] == 'W' && p[1] == '/'))) {
		if (!etag_parse(&p, end, &t) || p != end)
			return false;
		return res_etag(rs, &mine) && etag_eq(&t, &mine, true);
	}
	return pt_cond_date_parse(p, (size_t)(end - p), now, &d) == 0 && d == rs->mtime;
}

int pt_cond_evaluate(const struct pt_cond_req *rq, const struct pt_cond_res *rs,
		     bool *use_range)
{
	bool safe = rq->method == PT_COND_GET || rq->method == PT_COND_HEAD;
	time_t now = rq->now ? rq->now : time(NULL), d;

	*use_range = false;
	/* step 1, 13.1.1 */
	if (rq->if_match.p) {
		if (!etag_list_match(rq->if_match, rs, true))
			return 412;
	} else if (rq->if_unmodified_since.p) { /* step 2, 13.1.4 */
		if (date_field(rq->if_unmodified_since, now, &d) && rs->mtime > d)
			return 412;
	}
	/* step 3, 13.1.2 */
	if (rq->if_none_match.p) {
		if (etag_list_match(rq->if_none_match, rs, false))
			return safe ? 304 : 412;
	} else if (rq->if_modified_since.p && safe) { /* step 4, 13.1.3 */
		if (date_field(rq->if_modified_since, now, &d) && rs->mtime <= d)
			return 304;
	}
	/* step 5, 13.1.5: If-Range without Range is ignored; Range applies to GET only */
	if (rq->has_range && rq->method == PT_COND_GET)
		*use_range = !rq->if_range.p || if_range_holds(rq, rs, now);
	return 0;
}
