/*
 * Validators and conditional requests for static files (RFC 9110 8.8 and 13).
 *
 *  - ETag: a strong entity tag built from the file's inode, size and modification time in
 *    nanoseconds, "<ino>-<size>-<mtime ns>" in lowercase hex inside quotes. It changes
 *    whenever the file is replaced or rewritten. A precompressed variant (file.gz) is a
 *    different file, so it gets a different tag, as RFC 9110 8.8.3 requires of different
 *    content codings: always compute the tag from the stat of the file actually sent.
 *  - Last-Modified and every HTTP-date: IMF-fixdate out; IMF-fixdate, RFC 850 and asctime
 *    in (RFC 9110 5.6.7).
 *  - pt_cond_evaluate applies If-Match, If-Unmodified-Since, If-None-Match,
 *    If-Modified-Since and If-Range in the order of RFC 9110 13.2.2.
 * All functions are pure: no allocation, no I/O, any thread.
 */
#ifndef PT_SERVER_COND_H
#define PT_SERVER_COND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#define PT_ETAG_MAX 64      /* buffer size for pt_cond_etag (the tag is at most 52 bytes) */
#define PT_HTTP_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* A request header field value (not NUL-terminated). p == NULL: the field is absent.
 * When a field was received more than once, pass the values joined by ", " (RFC 9110 5.3),
 * or the first one. */
struct pt_cond_field {
	const char *p;
	size_t n;
};

enum pt_cond_method {
	PT_COND_GET = 0,
	PT_COND_HEAD,
	PT_COND_OTHER, /* any other method: preconditions fail with 412, never 304 */
};

struct pt_cond_req {
	struct pt_cond_field if_match;
	struct pt_cond_field if_none_match;
	struct pt_cond_field if_modified_since;
	struct pt_cond_field if_unmodified_since;
	struct pt_cond_field if_range;
	bool has_range;   /* the request has a Range field */
	uint8_t method;   /* enum pt_cond_method */
	time_t now;       /* the current time, for RFC 850 two-digit years; 0 = time(NULL) */
};

/* The selected representation. */
struct pt_cond_res {
	const char *etag; /* as sent in ETag, quotes included (e.g. from pt_cond_etag); NULL:
	                     the resource has no entity tag */
	size_t etag_len;
	time_t mtime;     /* as sent in Last-Modified (whole seconds) */
};

/* Writes the strong ETag of st, quotes included, NUL-terminated, into buf (at least
 * PT_ETAG_MAX bytes). Returns its length. */
size_t pt_cond_etag(char *buf, const struct stat *st);

/* Writes t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into buf (at least
 * PT_HTTP_DATE_LEN + 1 bytes), NUL-terminated. Times before 1970 are written as the
 * epoch, times after 9999 as the last second of 9999. Returns PT_HTTP_DATE_LEN. */
size_t pt_cond_date_format(char *buf, time_t t);

/* Parses an HTTP-date (RFC 9110 5.6.7): IMF-fixdate, or the obsolete RFC 850
 * ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994") forms.
 * The whole of s[0..n) must be the date (a list of dates is invalid); names and "GMT" are
 * case-sensitive as the grammar says; the day of the week is checked for spelling, not
 * against the date; second 60 (a leap second) is accepted. An RFC 850 year more than 50
 * years after now's year is taken as the previous century's (now 0: time(NULL)).
 * Returns 0 with *out set, or -EINVAL. */
int pt_cond_date_parse(const char *s, size_t n, time_t now, time_t *out);

/* Evaluates the preconditions of rq against rs (RFC 9110 13.2.2):
 *  1. If-Match (strong comparison; "*" matches any current representation): false -> 412;
 *  2. else If-Unmodified-Since (ignored if not a valid HTTP-date): modified after -> 412;
 *  3. If-None-Match (weak comparison; "*" matches): a match -> 304 for GET/HEAD, else 412;
 *  4. else If-Modified-Since, GET/HEAD only (ignored if invalid): not modified after the
 *     date (mtime <= date) -> 304;
 *  5. GET with Range: *use_range is true when there is no If-Range, or when If-Range holds
 *     (a strong entity tag equal to ours, or a date equal to mtime); otherwise the Range is
 *     to be ignored and the full representation sent with 200.
 * Returns 0 (perform the method), 304 or 412. *use_range is always set (false unless the
 * method is GET and has_range). Call it only when the response would otherwise be 2xx
 * (RFC 9110 13.2.1): not for a 404. */
int pt_cond_evaluate(const struct pt_cond_req *rq, const struct pt_cond_res *rs,
		     bool *use_range);

#endif
