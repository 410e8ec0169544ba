/*
 * HTTP/2 internals (src/http/h2.c: the connection; h2_head.c: request heads; h2_stream.c:
 * streams as requests; h2_mem.c: nghttp2's memory), on libnghttp2 1.52.
 *
 * A connection that negotiated "h2" by ALPN, or that opens with the client preface on a
 * plaintext listener with h2c enabled, runs a struct h2conn (heap, freed in on_close). Each
 * stream that carries a request gets a struct h2stream (heap) and, once its head is complete,
 * a struct pt_http_req whose ops are pt__h2_req_ops.
 *
 * Output: nghttp2_session_mem_send produces control frames and HEADERS, which are copied into
 * the connection's staging buffer and sent as one copied engine send; DATA frames are made
 * with NGHTTP2_DATA_FLAG_NO_COPY, and the send_data callback turns each into one engine
 * transmit: the 9-byte frame header (kept in a ring of slots until the transmit completes)
 * followed by the body's own memory and file chunks. File bodies thus still leave by
 * sendfile, or through the TLS encryption buffer, without a copy. Engine transmits complete in
 * order, so a slot completing tells which application sends are now wholly in the kernel.
 *
 * Lifetimes: a stream lives until nghttp2 has closed it, no frame of it is in flight and its
 * request has been freed (the request layer calls ops->detach). The connection lives until the
 * engine's on_close; streams still open then are closed first.
 *
 * Threads: everything runs on the connection's worker.
 */
#ifndef PT_H2_INT_H
#define PT_H2_INT_H

#include "http/http_int.h"
#include <nghttp2/nghttp2.h>

#define H2_OUT_HIGH (64u << 10)      /* queued engine bytes beyond which DATA waits */
#define H2_SLOTS 64u                 /* DATA frames in flight per connection */
#define H2_STAGE_CAP (16u << 10)     /* control frames, HEADERS and small DATA gathered per
					send */
#define H2_STAGE_DATA 1024u          /* DATA frames up to this long from memory are copied into
					the stage (no transmit, slot or completion of their own) */
#define H2_STAGE_ENT 64u             /* staged DATA frames per stage send */
#define H2_MAX_STREAMS 100u          /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define H2_WINDOW (64u << 10)        /* the stream receive window we advertise */
#define H2_FIELDS_MAX 256u           /* fields per header block (before max_headers) */
#define H2_OUT_INLINE 4u             /* body chunks of a send kept in the send itself */
#define H2_HEAD_INLINE 768u          /* bytes of the request head kept in the stream itself */
#define H2_FREE_MAX 1024u            /* streams and sends each worker keeps for reuse (10
					connections at 100 streams; a second without requests
					frees them: request.c pool_housekeep) */
#define H2_FRAME_CHUNKS 32u          /* body pieces in one DATA frame */
#define H2_IDLE_FRAMES 10000u        /* frames without request data, plus 64 per request */

/* One application send on a stream. */
struct h2out {
	struct h2out *next;              /* the stream's list, or the worker's free list */
	struct hworker *hw;              /* whose free list takes it back */
	struct h2stream *st;
	pt_http_send_fn cb;              /* NULL once it ran (PT_HTTP_BUFFER: early) */
	void *arg;
	struct pt_chunk *ch;             /* the body, as engine chunks (inline_ch when few) */
	struct pt_chunk inline_ch[H2_OUT_INLINE];
	unsigned n, cur;                 /* chunks; the framing cursor */
	size_t off;                      /* bytes of ch[cur] already framed */
	uint64_t total, left;            /* body bytes; not yet framed */
	char *copy;                      /* PT_HTTP_BUFFER: the memory chunks' copy */
	void **refs;                     /* fragment references, held until it completes */
	unsigned nrefs;
	bool final;
	bool early_free;                 /* nothing to frame: freed by its early completion */
	int failed;                      /* -errno: it will never be framed */
};

struct h2pseudo {                    /* a pseudo-field's value: an offset into h2stream.hbuf */
	uint32_t at, len;
	bool set;
};

struct h2stream {
	struct h2conn *h2;               /* NULL once the connection is gone */
	struct hworker *hw;              /* its worker (whose free list takes it back) */
	struct h2stream *prev, *next;    /* the connection's streams */
	struct pt_http_req *r;           /* NULL before the head is complete, and after detach */
	int32_t id;
	/* output */
	struct h2out *out, *out_tail;    /* sends with bytes not yet framed */
	struct h2out *done, *done_tail;  /* framed; completing with the frame that carried them */
	uint64_t queued;                 /* body bytes in out not yet framed */
	uint64_t promised;               /* given to nghttp2 by the read callback, not yet framed */
	unsigned inflight;               /* frames and staged heads that still refer to it */
	bool deferred;                   /* the data provider waits for more body */
	bool final_queued;
	bool closed;                     /* nghttp2 closed the stream */
	bool end_stream;                 /* the client finished sending */
	bool too_large;                  /* the header block was over max_head */
	bool aborted;                    /* it ended before its response did */
	bool head_done;                  /* its header block ended (pt__h2_request ran) */
	/* the head while it arrives, in its HTTP/1.1 form (h2_head.c) */
	uint32_t head_start;             /* its HEADERS began (ms, mod 2^32): HeaderWait */
	char *hbuf;                      /* pseudo-field values, then the head from head_at; the
					    request's slices point here (the stream outlives it) */
	uint32_t hlen, hcap;
	uint32_t head_at;                /* where the head begins; 0: request line not written */
	struct h2pseudo method, path, authority;
	bool is_head;                    /* :method is HEAD (a refusal has no body) */
	bool bad;                        /* Host and :authority disagree, or no :method */
	unsigned nfields;                /* fields so far (H2_FIELDS_MAX at most) */
	size_t head_bytes;               /* RFC 9113 6.5.2 size of the block so far */
	char *cookie;                    /* cookie crumbs, "; "-joined (RFC 9113 8.2.3) */
	uint32_t cookie_len, cookie_cap;
	/* request body received before the handler reads it (bounded by the window) */
	char *body;
	uint32_t body_len, body_cap;
	uint64_t body_total;
	uint32_t body_last;              /* last body byte or start of reading (ms, mod 2^32) */
	/* not cleared on reuse: the first fields and bytes of a head need no allocation */
	struct h2stream *free_next;      /* the worker's free list */
	char hinline[H2_HEAD_INLINE];
};

struct h2done {                      /* a staged DATA frame: the last bytes of ndone sends of st */
	struct h2stream *st;
	unsigned ndone;
};

/* What completes when one stage send is in the kernel (allocated per stage send). */
struct h2ticket {
	struct h2out *heads;             /* head-only final responses */
	unsigned n;
	struct h2done e[];               /* staged DATA frames, in order */
};

struct h2slot {
	uint8_t hd[9];                   /* the DATA frame header */
	struct h2stream *st;
	unsigned ndone;                  /* sends of st whose last byte this frame carries */
};

struct h2conn {
	struct h2conn *hw_prev, *hw_next; /* the worker's HTTP/2 connections */
	struct pt_http_server *s;
	struct hworker *hw;
	pt_conn_t *c;
	nghttp2_session *ng;
	struct h2stream *streams;        /* streams with state here (open or completing) */
	unsigned nstreams;               /* ... of which carry a request not yet finished */
	unsigned nactive;
	char *stage;                     /* control frames and HEADERS not yet sent */
	uint32_t stage_len;
	struct h2out *stage_done;        /* head-only sends completing with the stage */
	struct h2done stage_ent[H2_STAGE_ENT]; /* DATA frames staged since the last stage send */
	unsigned nstage_ent;
	struct h2slot slots[H2_SLOTS];
	unsigned slot_head, nslots;
	unsigned new_streams;            /* streams opened in this read (rapid reset guard) */
	int32_t hd_id;                   /* the request header block being received (0: none) */
	struct h2stream *hd_st;          /* ... and its stream, saving a lookup per field */
	uint64_t requests;               /* streams opened */
	uint64_t idle_frames;            /* frames that carried no request data */
	bool flooded;
	bool offender_counted;           /* counted as a flood or a protocol error (h2.c) */
	bool ticking;                    /* the 2-second stream tick is armed */
	uint64_t rate_mark;              /* bytes sent at the last tick */
	bool in_recv, in_flush;
	bool closing;                    /* the connection is being closed */
	bool dead;                       /* closing: no more nghttp2 calls but freeing */
	bool preface_done;
};

/* h2_mem.c: the nghttp2 allocator of one worker's sessions (worker thread only) */
#define H2M_CLASSES 7u                /* 64 ... 4096 bytes */
struct h2pool {
	nghttp2_mem mem;              /* passed to nghttp2_session_server_new3 */
	struct h2m_free *free[H2M_CLASSES];
	unsigned nfree[H2M_CLASSES];
};
void pt__h2_mem_init(struct h2pool *p);
/* Gives the kept blocks back to malloc (the pool stays usable). */
void pt__h2_mem_trim(struct h2pool *p);

/* h2.c (its entry points for the HTTP/1.1 side are in http_int.h) */
/* Runs nghttp2's output while the connection can take it. */
void pt__h2_flush(struct h2conn *h2);

/* h2_head.c: the request head. One field of st's header block, appended to its head. */
void pt__h2_header(struct h2conn *h2, struct h2stream *st, const uint8_t *name, size_t nl,
		   const uint8_t *value, size_t vl);
/* The block ended: the head is parsed and the request dispatched, or the stream refused. */
void pt__h2_request(struct h2conn *h2, struct h2stream *st);
/* *buf grown (realloc, doubling from first) to hold need bytes; -1 without memory. */
int pt__h2_grow(char **buf, uint32_t *cap, size_t need, size_t first);

/* h2_stream.c */
int pt__h2_begin_headers(struct h2conn *h2, int32_t id);
/* Answers st with status (a bad or too large head) and ends it. */
void pt__h2_refuse(struct h2stream *st, unsigned status);
int pt__h2_body(struct h2conn *h2, struct h2stream *st, const uint8_t *p, size_t n);
void pt__h2_body_end(struct h2stream *st);
/* A body being read has not moved for longer than limit_ms (EntityBody). */
bool pt__h2_body_stalled(const struct h2stream *st, uint32_t now, unsigned limit_ms);
/* Whether st's header block has been open for limit_ms: only its CONTINUATION frames may come
 * meanwhile (RFC 9113 6.10), so the whole connection waits on it. */
bool pt__h2_head_stalled(const struct h2stream *st, uint32_t now, unsigned limit_ms);
void pt__h2_stream_close(struct h2stream *st, uint32_t code);
void pt__h2_streams_gone(struct h2conn *h2);
ssize_t pt__h2_read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
		       uint32_t *flags, nghttp2_data_source *src, void *user);
int pt__h2_frame(struct h2stream *st, struct pt_chunk *ch, unsigned cap, size_t len,
		 unsigned *ndone);
void pt__h2_complete(struct h2stream *st, unsigned ndone, ssize_t res);
/* Whether the next len bytes of st's body are all in memory (a DATA frame that can be
 * copied into the stage). */
bool pt__h2_frame_mem(const struct h2stream *st, size_t len);
void pt__h2_head_sent(struct h2conn *h2, struct h2stream *st);

extern const struct pt_req_ops pt__h2_req_ops;

#endif
