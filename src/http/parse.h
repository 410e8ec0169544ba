/*
 * Strict HTTP/1.1 request-head parser and chunked body decoder (RFC 9112).
 * Internal to src/http/; not part of the public API.
 *
 * Both are pure: they read (buf, len), write only the structures the caller passes,
 * allocate nothing, do no I/O and keep no global state. Any thread may call them on its
 * own structures. They never read outside buf[0..len) (tests put the input right before a
 * PROT_NONE page to prove it).
 *
 * Strictness, chosen against request smuggling (each rule cites the RFC in parse.c):
 *  - Line endings are CRLF only. A bare LF (which RFC 9112 2.2 lets a recipient accept)
 *    and a bare CR are both 400: a front end that splits lines differently from us is
 *    the classic smuggling vector.
 *  - obs-fold, whitespace before the colon, whitespace before the first field: 400.
 *  - Content-Length must be exactly one field holding one 1*DIGIT value. "5, 5" and two
 *    fields "5" / "5" are 400 although RFC 9110 8.6 would let us accept identical
 *    values. A value too big for int64 or above max_body is 413.
 *  - Content-Length with Transfer-Encoding: 400. Transfer-Encoding on HTTP/1.0: 400.
 *    Transfer-Encoding must list tokens only (no parameters, no empty elements) ending in
 *    exactly one "chunked": otherwise 400; another coding before chunked: 501.
 *  - Host: HTTP/1.1 needs exactly one, any version may not have two, the value must be a
 *    valid uri-host [":" port]: otherwise 400.
 *  - Expect: only "100-continue" (any case) is understood; anything else is 417.
 *    On HTTP/1.0 Expect is ignored (RFC 9110 10.1.1).
 *  - Target: origin-form for every method; absolute-form ("http://a/b", http or https
 *    only, no userinfo, non-empty host) for every method but CONNECT; authority-form
 *    (host:port) only and always with CONNECT; "*" only with OPTIONS. Anything else
 *    is 400, as are characters outside RFC 3986 (plus a malformed %XX).
 */
#ifndef PT_HTTP_PARSE_H
#define PT_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A byte range inside the caller's buffer (not NUL-terminated). */
struct pt_slice {
	const char *p;
	size_t n;
};

struct pt_header {
	struct pt_slice name;  /* 1*tchar, case as received */
	struct pt_slice value; /* leading and trailing SP/HTAB removed; may be empty */
};

/* Limits. Every field must be set; pt_parse_limits_default() gives the defaults,
 * modelled on HTTP.SYS (MaxRequestBytes 16 KiB, nginx-like 8 KiB lines). */
struct pt_parse_limits {
	size_t max_head;       /* leading CRLFs + request line + fields + final CRLF: 16384 (431).
	                        * Values above INT_MAX act as INT_MAX. */
	size_t max_target;     /* request-target bytes: 8192 (414) */
	size_t max_field;      /* one field line, name to end of value: 8192 (431) */
	unsigned max_headers;  /* field lines: 100 (431) */
	uint64_t max_body;     /* Content-Length or chunked total; 0 = no limit (413) */
	uint32_t max_chunk_line; /* chunk-size line with extensions, CRLF included: 4096 (400) */
	uint32_t max_trailer;  /* chunked trailer section, final CRLF included: 8192 (431) */
};

void pt_parse_limits_default(struct pt_parse_limits *l);

enum pt_method {
	PT_METHOD_OTHER = 0, /* a valid token we do not know; the name is in head.method */
	PT_METHOD_GET,
	PT_METHOD_HEAD,
	PT_METHOD_POST,
	PT_METHOD_PUT,
	PT_METHOD_DELETE,
	PT_METHOD_CONNECT,
	PT_METHOD_OPTIONS,
	PT_METHOD_TRACE,
	PT_METHOD_PATCH,
};

enum pt_target_form {
	PT_TARGET_ORIGIN = 0, /* "/path?query"                      RFC 9112 3.2.1 */
	PT_TARGET_ABSOLUTE,   /* "http://authority/path?query"      RFC 9112 3.2.2 */
	PT_TARGET_AUTHORITY,  /* "host:port", CONNECT only          RFC 9112 3.2.3 */
	PT_TARGET_ASTERISK,   /* "*", OPTIONS only                  RFC 9112 3.2.4 */
};

/* The parsed request head. Every slice points into the buffer given to
 * pt_parse_request() and is valid as long as that buffer is. Fields are only
 * meaningful after a return > 0. */
struct pt_request_head {
	struct pt_slice method;    /* as received (methods are case-sensitive) */
	struct pt_slice target;    /* the whole request-target */
	struct pt_slice path;      /* origin/absolute-form: up to '?'; empty for absolute-form
	                            * with no path (means "/"); "*" for asterisk-form; empty
	                            * for authority-form. Still percent-encoded. */
	struct pt_slice query;     /* after '?', without it; empty if none */
	struct pt_slice authority; /* host[:port] from an absolute- or authority-form target,
	                            * otherwise the Host field value (RFC 9112 3.2.2, 3.3) */
	struct pt_slice host;      /* the Host field value as received; empty if absent */
	struct pt_header *headers; /* caller's array, in: its capacity in nheaders */
	unsigned nheaders;         /* in: capacity of headers[]; out: fields parsed. Left
	                            * alone on AGAIN, so the same head can be passed again */
	int64_t content_length;    /* -1 if absent (then no body unless chunked) */
	uint8_t method_id;         /* enum pt_method */
	uint8_t target_form;       /* enum pt_target_form */
	uint8_t minor_version;     /* 0 or 1 (major is always 1) */
	bool chunked;              /* Transfer-Encoding: chunked; use pt_chunked_* on the body */
	bool keep_alive;           /* 1.1 unless "Connection: close"; 1.0 only with keep-alive */
	bool expect_continue;      /* HTTP/1.1 "Expect: 100-continue" */
	bool upgrade;              /* HTTP/1.1, Upgrade field and "Connection: upgrade" */
};

/* Optional resume hint, so that re-parsing after each small receive costs only the new
 * bytes plus the current incomplete line instead of the whole head. Zero it before the
 * first call for each request and pass the same one until the call returns non-zero.
 * The buffer may move between calls but must start with the same bytes. It affects only
 * speed: the head is always fully parsed again from byte 0 once its end has arrived. */
struct pt_parse_state {
	size_t line;     /* offset of the first field line not yet validated; 0: none */
	unsigned fields; /* field lines before it */
};

#define PT_PARSE_AGAIN 0
/* The head is complete and every field line is valid, but there are more of them than
 * h->headers holds (and no more than max_headers): h->nheaders is set to the number needed.
 * Call again with an array that large (the rules between fields are checked then). */
#define PT_PARSE_FIELDS (-1)

/* Parses the request head at the start of buf[0..len).
 * Returns the head's length in bytes (> 0; the body or the next request starts there),
 * PT_PARSE_AGAIN if the head is incomplete and every byte so far is valid and within
 * limits, PT_PARSE_FIELDS (h->headers too small, see above), or -status: -400, -413, -414, -417,
 * -431, -501 or -505. Syntax and limit
 * errors are reported as soon as the bytes that cause them have arrived, rules between
 * fields (Host, Content-Length, Transfer-Encoding, Expect) once the head is complete; a
 * prefix of an input never returns an error the whole input would not return.
 * h->headers and h->nheaders (capacity) are inputs; the rest of *h is output. Fields
 * beyond max_headers are 431; beyond the capacity (but within max_headers),
 * PT_PARSE_FIELDS. st may be NULL (each call then re-parses
 * from byte 0). Cost: O(len) without st; with st, O(new bytes + the incomplete line).
 * Ownership: nothing is kept; slices in *h point into buf. Thread: any, on its own data. */
int pt_parse_request(const char *buf, size_t len, struct pt_request_head *h,
		     const struct pt_parse_limits *l, struct pt_parse_state *st);

/* Incremental decoder of a chunked request body (RFC 9112 7.1). Caller-owned, 40 bytes;
 * initialise with pt_chunked_init() for each body. */
struct pt_chunked {
	uint64_t left;      /* data bytes left in the current chunk */
	uint64_t total;     /* body bytes declared so far (sum of chunk sizes) */
	uint64_t max_body;  /* limit for total; INT64_MAX when the limits say 0 */
	uint32_t line;      /* bytes of the current chunk-size line or trailer section */
	uint32_t max_line;
	uint32_t max_trailer;
	uint8_t state;
	uint8_t digits;     /* hex digits of the current chunk size */
};

#define PT_CHUNKED_MORE 0 /* not finished: feed the rest of the input, or more input */
#define PT_CHUNKED_DONE 1 /* the last chunk, trailers and final CRLF are consumed */

void pt_chunked_init(struct pt_chunked *c, const struct pt_parse_limits *l);

/* Decodes from buf[0..len) without copying: it consumes framing and returns at most one
 * span of body data, a slice of buf, in *data (n == 0 if none). *used is set to the bytes
 * consumed, data included; call again with buf + *used for the rest. It stops after one
 * data span or at the end of the body, so bytes after the body (a pipelined request) are
 * never consumed. With *used == len and no data, all input was framing: wait for more.
 * Returns PT_CHUNKED_MORE, PT_CHUNKED_DONE, or -400 (malformed), -413 (total above
 * max_body) or -431 (trailer section too long). After an error or DONE, further calls
 * return the same value and consume nothing. */
int pt_chunked_feed(struct pt_chunked *c, const char *buf, size_t len, size_t *used,
		    struct pt_slice *data);

/* Byte classes shared by parse.c and chunked.c (the table is in parse.c). */
#define PT_CT_TCHAR   0x01 /* token: RFC 9110 5.6.2 */
#define PT_CT_VALUE   0x02 /* field-vchar / obs-text / SP / HTAB: RFC 9110 5.5 */
#define PT_CT_TARGET  0x04 /* RFC 3986 pchar / "/" / "?" / "%" / "[" / "]" */
#define PT_CT_SPECIAL 0x08 /* target bytes that need a second look: '%' '?' '[' ']' */
#define PT_CT_HEX     0x20 /* HEXDIG */
#define PT_CT_REGNAME 0x40 /* RFC 3986 reg-name: unreserved / sub-delims / "%" */
#define PT_CT_QDTEXT  0x80 /* quoted-string text: RFC 9110 5.6.4 */
extern const uint8_t pt__http_ctype[256];

/* The end of the run of field-value bytes (PT_CT_VALUE) from p, at most stop; eight bytes at
 * a time. Any thread. */
const char *pt__scan_value(const char *p, const char *stop);

#endif
