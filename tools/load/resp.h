/*
 * HTTP/1.1 response parser of portico-load. Pure functions over (buf, len): no allocation, no
 * I/O (the STYLE habit 11). The head is parsed whole (the caller gathers a head split across
 * reads, up to RESP_HEAD_MAX bytes); the body is framed incrementally, byte by byte through a
 * chunked encoding and in bulk through a Content-Length body.
 * Framing (RFC 9112 6.3): no body for 1xx, 204, 304 and responses to HEAD; else chunked when
 * Transfer-Encoding ends in "chunked", else Content-Length, else until the connection closes.
 * Interim 1xx responses (100 Continue) are reported with interim = true and carry no body.
 */
#ifndef PT_LOAD_RESP_H
#define PT_LOAD_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RESP_HEAD_MAX 16384u

enum resp_body_kind { RB_NONE, RB_LENGTH, RB_CHUNKED, RB_CLOSE };

struct resp {
	unsigned status;
	bool interim;              /* 1xx other than 101: a final response follows */
	bool close;                /* Connection: close, or HTTP/1.0 without keep-alive */
	enum resp_body_kind kind;
	uint64_t left;             /* RB_LENGTH: body bytes to go; RB_CHUNKED: of this chunk */
	uint64_t body;             /* body bytes seen (chunk payload only) */
	unsigned cstate;           /* chunked framing state (resp.c) */
	unsigned hexdigits;
};

/* Parses the head at buf (len bytes). Returns its length including the blank line (> 0) and
 * fills *r, 0 when the head is incomplete (more bytes needed; the caller gives up beyond
 * RESP_HEAD_MAX), or -1 when it is malformed. head_req: the request was HEAD (no body). */
int resp_head(struct resp *r, const char *buf, size_t len, bool head_req);

/* Consumes body bytes of r from buf: returns the bytes consumed (<= len) and sets *done when
 * the body ended (the rest of buf belongs to the next response), or -1 on a framing error.
 * RB_CLOSE bodies never end here: the caller ends them at EOF. */
ssize_t resp_body(struct resp *r, const char *buf, size_t len, bool *done);

#endif
