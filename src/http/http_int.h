/*
 * HTTP layer internals, shared by src/http/ only.
 *
 * Files, one job each:
 *   server.c    the server object: configuration, routes, listeners, lifecycle, per-worker state
 *   request.c   the request object: memory, head, ownership and threads, end, accessors
 *   call.c      running a function on a worker from another thread and waiting for it
 *   response.c  what an application send means, any protocol: checks, fragments, lengths
 *   hconn.c     HTTP/1.1 input: the connection's state machine, request bodies, dispatch
 *   hsend.c     HTTP/1.1 output: the response head, framing, one engine transmit per send
 *   timeouts.c  the HTTP.SYS timeout phases of an HTTP/1.1 connection
 *   sync.c      the PT_ROUTE_SYNC thread pool and its request queue
 *   fragment.c  the fragment cache
 *   parse.c, chunked.c   pure parsers (parse.h)
 *
 * Per connection (struct hconn, inside the engine's connection object): buffered input only
 * when a head is incomplete or requests wait behind an unfinished one; the request whose input
 * is being consumed (cur); the live requests (responses or callbacks outstanding).
 * Per request (struct pt_http_req, from a per-worker free list, only while a request is
 * active): the parsed head (slices into the receive buffer, or into own when the request
 * outlives the receive call), response state, body state; then the protocol's own part.
 * Per worker (struct hworker): free lists, the cached Date header.
 * Everything here runs on the connection's worker thread unless a prototype says otherwise.
 */
#ifndef PT_HTTP_INT_H
#define PT_HTTP_INT_H

#include <portico/http.h>
#include <pthread.h>
#include <stdatomic.h>
#include "http/parse.h"

#define PT_HEAD_INLINE 512u   /* response heads up to this size need no allocation */
/* Request header fields held inside the request object: browsers send 8-16, load generators
 * 1-3; a request with more gets a heap array of exactly its size (pt__req_parse). */
#define PT_REQ_HDRS 16u

struct pt_route {
	char *prefix;
	size_t len;
	pt_http_handler_fn fn;
	void *arg;
	unsigned flags;
};

struct hworker;
struct hconn;
struct pt_http_req;
struct pt_out;

enum body_mode { BODY_NONE = 0, BODY_LENGTH, BODY_CHUNKED };

/*
 * The protocol under a request: HTTP/1.1 (pt__h1_req_ops, hsend.c) now, an HTTP/2 stream next.
 * The request layer calls these on the request's worker, only while the request is attached
 * to its connection (r->proto != NULL), except detach.
 */
struct pt_req_ops {
	unsigned major;                   /* the protocol's major version: 1 or 2 */
	/* One application send (checked by response.c, fragments resolved): the head when
	 * o->status != 0, then o's body chunks; o->final ends the response. On success the
	 * protocol counts the send in r->pending until cb has run (once, later, on the worker),
	 * sets r->final_sent for the final send, and owns o->refs. Returns 0, or -errno with
	 * nothing sent, r as before and o->refs still the caller's. */
	int (*send)(struct pt_http_req *r, const struct pt_out *o, pt_http_send_fn cb, void *arg);
	/* The application has started reading the body (r->body_cb is set): send 100 Continue
	 * if asked, and deliver input already received from the loop, never inside this call.
	 * 0 or -errno. */
	int (*read_body)(struct pt_http_req *r);
	/* Ends a response that cannot be completed (a head went out, the final send never
	 * will): HTTP/1.1 resets the connection. */
	void (*reset)(struct pt_http_req *r);
	/* r is about to be freed: the protocol forgets it (it is still attached, or was never). */
	void (*detach)(struct pt_http_req *r);
};

/* HTTP/1.1 state of a request (hconn.c, hsend.c). */
struct h1req {
	bool chunked_out;                 /* the response uses chunked framing */
	bool close_after;                 /* the connection closes after this response */
	bool continue_sent;               /* 100 Continue went out */
	uint64_t body_left;               /* BODY_LENGTH: bytes still to come */
	uint64_t drained;                 /* body bytes discarded after the response */
	struct pt_chunked chunked;        /* BODY_CHUNKED: the decoder */
	char headbuf[PT_HEAD_INLINE];     /* the response head (not zeroed: keep it last) */
};

struct pt_http_req {
	/* ---- the request object (request.c), whatever the protocol ---- */
	struct pt_http_server *s;
	struct hworker *hw;               /* the worker's free lists */
	pt_conn_t *c;                     /* the connection it arrived on (never cleared) */
	const struct pt_req_ops *ops;
	union {                           /* the protocol's side; NULL once the connection is gone
	                                     (atomic store: pt_http_req_conn may read it on a pool
	                                     thread) */
		void *proto;
		struct hconn *h;          /* HTTP/1.1 */
	};
	struct pt_http_req *next;         /* the protocol's live list, or the free list */
	struct pt_request_head head;
	char *own;                        /* owned copy of the head bytes, or NULL (borrowed) */
	const char *head_base;            /* where the head's slices point */
	size_t head_len;
	void *user;
	pt_http_abort_fn on_abort;
	void *abort_arg;
	pt_http_writable_fn on_writable;
	void *writable_arg;
	/* response */
	bool head_sent, final_sent, no_body;
	const struct pt_http_cache_policy *cache_pol; /* offered to the response cache */
	pt_http_send_fn rc_cb;            /* answered from the cache: the hook's callback */
	void *rc_arg;
	bool held;                        /* the protocol still feeds it input (HTTP/1.1: cur) */
	bool kept;                        /* owned off the worker (pt_http_req_keep, the sync pool)
	                                     until pt_http_req_release: only then is it freed */
	int64_t out_left;                 /* declared Content-Length still to send; -1: none */
	unsigned pending;                 /* sends whose callbacks have not run */
	/* kept: the worker it must come back to, and the sync pool's queue */
	pt_worker_t *worker;
	pt_post_t post;
	struct pt_http_req *qnext;
	const struct pt_route *route;
	uint64_t queued_ms;
	/* request body */
	uint8_t body_mode;
	bool body_done, body_reading;
	pt_http_body_fn body_cb;
	void *body_arg;
	/* header fields: inline for the usual request, a heap array beyond PT_REQ_HDRS fields */
	struct pt_header *hdrs_heap;
	struct pt_header hdrs[PT_REQ_HDRS];
	/* ---- the protocol's part ---- */
	struct h1req h1;
};

/* Header facts response.c finds while checking the application's fields. */
#define LEN_KEEP 32u                      /* field lengths remembered for the head builder */
struct pt_fields {
	int64_t user_cl;                  /* Content-Length the application gave, or -1 */
	bool user_close;                  /* Connection: close given */
	int cl_index;                     /* which field is Content-Length (the protocol writes it) */
	size_t bytes;                     /* "name: value\r\n" bytes of all fields */
	uint32_t nlen[LEN_KEEP], vlen[LEN_KEEP];
};

/* Fields checked and formatted once (pt_http_fields_new): the HTTP/1.1 block
 * "Name: value\r\n"..., and where each name and value sits in it for HTTP/2. Immutable. */
struct pt_http_fields {
	size_t bytes;                     /* length of block */
	unsigned n;
	bool close;                       /* Connection: close is among them */
	struct pt_pre_field { uint32_t name, nlen, value, vlen; } *at;   /* offsets into block */
	char *block;
};

/* One application send, as handed to the protocol (pt_req_ops.send). */
struct pt_out {
	unsigned status;                  /* 0: body only (pt_http_send_body) */
	const char *reason;               /* status != 0: the reason phrase to send */
	const struct pt_http_header *headers;
	unsigned nheaders;
	const struct pt_fields *f;        /* status != 0 (bytes and user_close include pre's) */
	const struct pt_http_fields *pre; /* status != 0: prepared fields sent before headers,
	                                     or NULL */
	int64_t cl;                       /* status != 0: Content-Length to announce, -1: unknown
	                                     (more body follows, no length declared) */
	const struct pt_http_chunk *body; /* memory and file chunks (fragments resolved) */
	unsigned nbody;
	uint64_t total;                   /* body bytes in these chunks */
	unsigned flags;                   /* PT_HTTP_* */
	bool final;                       /* no PT_HTTP_MORE */
	void **refs;                      /* fragment references the send holds until it completes */
	unsigned nrefs;
};

struct hsend {                        /* one engine transmit made for the application */
	struct hsend *next;
	struct pt_http_req *r;
	pt_http_send_fn cb;
	void *arg;
	char *heap_head;                  /* response head too big for headbuf */
	void **refs;                      /* fragment references held until completion */
	unsigned nrefs;
	char sizeline[24];                /* chunked framing */
};

enum hphase { PH_NEW, PH_IDLE, PH_HEAD, PH_BODY, PH_DRAIN, PH_HANDLER, PH_SENDING, PH_LINGER };

/* Buffered input (hconn.in): only while a head is incomplete or requests wait behind an
 * unfinished one; an idle connection holds none (issue 19: bytes per idle connection). */
struct hin {
	uint32_t len, cap;                /* bytes held, bytes of data[] */
	struct pt_parse_state pst;        /* the incomplete head at data[0]: validated so far */
	char data[];
};

/* An HTTP/1.1 connection: the engine's connection area (48 bytes, checked in server.c). The
 * server is hw->s; the connection is pt__hc(h). */
struct hconn {
	struct hworker *hw;
	struct hin *in;                   /* buffered input, or NULL */
	struct pt_http_req *cur;          /* request whose input is being consumed */
	struct pt_http_req *live;         /* requests not yet freed: a ring through r->next, live
	                                     is the newest, live->next the oldest (pt__live_*) */
	uint8_t phase;                    /* the timer phase armed now */
	uint8_t nlive;                    /* requests on the live list (<= PIPE_LIVE_MAX + 1) */
	bool closing : 1;                 /* no more requests: close after the responses */
	bool linger : 1;                  /* closing while the peer may still be sending: read and
	                                     discard before closing (timeouts.c) */
	bool eof : 1;
	bool grace_armed : 1;             /* PH_IDLE while stopping: the grace period runs, or waits
	                                     (grace_drain) for the client to acknowledge the last
	                                     response (timeouts.c) */
	bool grace_drain : 1;
	bool in_consume : 1;              /* consume() is on the stack */
	bool resume : 1;                  /* input waits for the loop (on_drain) */
	bool tx_wait : 1;                 /* dispatching waits for the send queue to empty */
	bool pipelined : 1;               /* input follows the request being dispatched: its
	                                     response may start a joined send (hsend.c) */
	bool joined : 1;                  /* this process() call made or grew a joined send */
	uint32_t last_in;                 /* PH_BODY, PH_LINGER: last byte in (ms, mod 2^32) */
	union {
		uint64_t rate_mark;           /* PH_SENDING: bytes sent at the window's start */
		struct {
			uint32_t body_win;    /* PH_BODY: body bytes in this rate window;
			                         PH_LINGER: bytes discarded */
			uint32_t win_start;   /* PH_BODY: the window's start; PH_LINGER: its start
			                         (ms, mod 2^32) */
		};
	};
};

/* The live requests, oldest first: for (r = pt__live_first(h); r; r = pt__live_next(h, r)). */
static inline struct pt_http_req *pt__live_first(const struct hconn *h)
{
	return h->live ? h->live->next : NULL;
}

static inline struct pt_http_req *pt__live_next(const struct hconn *h,
						const struct pt_http_req *r)
{
	return r == h->live ? NULL : r->next;
}

/* h's connection (h is its area). */
static inline pt_conn_t *pt__hc(const struct hconn *h)
{
	return pt_conn_of_area((void *)h);
}

struct h2conn;

struct hworker {
	struct pt_http_counters cnt;       /* written by this worker only (hw_count) */
	struct pt_http_server *s;
	struct h2conn *h2conns;           /* the worker's HTTP/2 connections (graceful stop) */
	pt_post_t goaway_post[2];         /* the two GOAWAY steps of a graceful stop */
	struct pt_http_req *req_free;
	struct hsend *hs_free;
	struct hjoin *hj_free;            /* joined sends kept for reuse (hsend.c) */
	unsigned nhj_free;
	unsigned nreq_free, nhs_free;
	struct h2stream *st_free;         /* HTTP/2 streams and sends for reuse (h2_stream.c) */
	struct h2out *out_free;
	unsigned nst_free, nout_free;
	struct h2pool *h2mem;             /* nghttp2's memory (h2_mem.c), made with the first
					     HTTP/2 connection */
	pt_timer_t trim;                  /* empties the free lists once requests stop (request.c) */
	uint64_t nreqs, trim_mark;        /* requests made; the count at the last trim check */
	struct pt_rcache *rc;             /* the response cache (rcache.c), made on first use */
	long date_sec;
	uint64_t date_ms;                  /* the worker's clock when the date was checked */
	char date[48];                    /* "Date: ...\r\n" */
	size_t date_len;
} __attribute__((aligned(64)));    /* no false sharing of the counters */

/* Adds 1 to one of hw's counters: a plain load and store (one writer), readable by any thread. */
static inline void pt__hw_count(uint64_t *p)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

struct pt_http_server {
	struct pt_http_config cfg;
	pt_engine_t *e;
	struct pt_parse_limits limits;
	struct pt_route *routes;          /* longest prefix first */
	unsigned nroutes;
	char server_line[128];            /* "Server: ...\r\n" or "" */
	size_t server_line_len;
	struct hworker *hw;               /* one per engine worker */
	atomic_bool stopping;
	atomic_uint_fast64_t cache_gen;   /* pt_http_cache_flush count (rcache.c) */
	unsigned grace_ms;                /* stop_grace_ms in effect (0: close idle at once) */
	atomic_uint h2_conns;             /* HTTP/2 connections open (any thread reads) */
	struct pt_sync *sync;             /* PT_ROUTE_SYNC pool, or NULL */
	struct pt_fragcache *frags;
};

/* ---- server.c ---- */
/* Counts a request the layer refused with status (hw's worker). */
void pt__count_reject(struct hworker *hw, unsigned status);
/* The per-worker state of c's worker. c's worker. */
struct hworker *pt__hw(struct pt_http_server *s, pt_conn_t *c);
/* The route with the longest prefix of path, or NULL. Any thread (routes are frozen). */
const struct pt_route *pt__route_find(const struct pt_http_server *s, struct pt_slice path);
/* Frees a worker's free lists. After the workers have exited. */
void pt__hworker_free(struct hworker *hw);

/* ---- rcache.c: the response cache ---- */
/* Answers r from its worker's cache: true when it did (r's response is sent, or the
 * connection closed because the send failed); false: dispatch r as usual. r's worker. */
bool pt__rcache_serve(struct pt_http_req *r);
/* After r's send o succeeded with r->cache_pol set: keeps a copy when it may (a whole 200 to
 * a GET with a memory body). Clears r->cache_pol. r's worker. */
void pt__rcache_put(struct pt_http_req *r, const struct pt_out *o);
/* Frees hw's cache. After the workers have exited. */
void pt__rcache_free(struct hworker *hw);
/* response.c: pre's fields then hd's (f: their lengths; the Content-Length field, if any,
 * left out) as one new prepared list, or NULL (no memory). */
pt_http_fields_t *pt__fields_join(const struct pt_http_fields *pre, const struct pt_http_header *hd,
				  unsigned n, const struct pt_fields *f);
/* The HTTP/2 part of it (h2_stream.c). */
void pt__h2_worker_free(struct hworker *hw);

/* ---- request.c: the request object ---- */
/* A new request on connection c, attached to the protocol's proto, or NULL (no memory). The
 * head is empty: the protocol parses into r->head with pt__req_parse. */
struct pt_http_req *pt__req_new(struct pt_http_server *s, struct hworker *hw, pt_conn_t *c,
				const struct pt_req_ops *ops, void *proto);
/* Frees the worker's free lists of requests and sends. The worker's thread, or after it. */
void pt__req_pool_free(struct hworker *hw);
/* Frees r at once (a request the application never saw: a bad head). */
void pt__req_drop(struct pt_http_req *r);
/* Frees r if nothing needs it any more: not held by the protocol, final send made (or the
 * connection gone), no send callback pending, not kept. Call after any of these changed. */
void pt__req_maybe_free(struct pt_http_req *r);
/* Hands r to its route's handler (a 404 when none matches; the pool for PT_ROUTE_SYNC). */
void pt__req_dispatch(struct pt_http_req *r);
/* pt_parse_request into r->head, growing the header array when the request has more than
 * PT_REQ_HDRS fields (-503 when that allocation fails). Returns what pt_parse_request does,
 * never PT_PARSE_FIELDS. r's worker. */
int pt__req_parse(struct pt_http_req *r, const char *buf, size_t n, struct pt_parse_state *st);
/* Copies the head out of the receive buffer (before the buffer is reused). 0 or -ENOMEM. */
int pt__req_own_head(struct pt_http_req *r);
/* After the final send: the head is no longer available (http.h); clears its slices. */
void pt__req_forget_head(struct pt_http_req *r);
/* Takes r off the worker (the sync pool): the head is copied, the worker held, r kept until
 * pt_http_req_release. 0 or -errno (nothing changed). */
int pt__req_keep(struct pt_http_req *r);
/* The connection is gone: detaches r, ends a body being read (-ECONNRESET), runs on_abort
 * if the request had not completed, and frees r unless it is kept. */
void pt__req_lost(struct pt_http_req *r);
/* Runs r's on_writable callback if one is registered (once per registration). */
bool pt__req_wake_writable(struct pt_http_req *r);
/* Ends the body being read: the reader's callback gets (NULL, 0, err) if it is reading. */
void pt__req_body_end(struct pt_http_req *r, int err);

/* ---- call.c: run on a worker, wait for it ---- */
struct pt_call;
/* Runs on the worker; call is NULL when the caller was on the worker already (no waiting). */
typedef int (*pt_call_fn)(struct pt_call *call, void *arg);
/* Runs fn(call, arg) on worker w and waits until it has run, and until every completion it
 * announced with pt__call_defer has come. Returns fn's result, or when that is 0 the first
 * error a completion reported, or -EPIPE when w has exited. Any thread but w's. */
int pt__call(pt_worker_t *w, pt_call_fn fn, void *arg);
/* From fn (on the worker): the caller also waits for one pt__call_done. */
void pt__call_defer(struct pt_call *call);
/* A deferred completion came, with err (0 or -errno). Worker thread. */
void pt__call_done(struct pt_call *call, int err);
/* Runs fn on r's worker: directly when the caller is there (or r is not kept), else through
 * pt__call. Any thread, for a kept request; the worker otherwise. */
int pt__req_run(struct pt_http_req *r, pt_call_fn fn, void *arg);

/* ---- response.c ---- */
/* The standard reason phrase of status ("Unknown" if none). Any thread. */
const char *pt__reason(unsigned status);
/* Rebuilds hw's Date header if the second changed. Worker thread. */
void pt__date_refresh(struct hworker *hw, pt_conn_t *c);

/* ---- hconn.c: HTTP/1.1 input ---- */
/* Bytes of buffered input. */
static inline size_t pt__hin_len(const struct hconn *h)
{
	return h->in ? h->in->len : 0;
}
extern const struct pt_conn_ops pt__http_conn_ops;
extern const struct pt_req_ops pt__h1_req_ops;
/* Sets up h on a new connection c (on_accept). */
void pt__hconn_init(struct hconn *h, struct pt_http_server *s, pt_conn_t *c);
/* A response made progress (a send made or completed): the phase, or the input that waited
 * behind it. Never re-enters the application. */
void pt__hconn_after_send(struct hconn *h);
/* h is closing: once every live request has made its final send, linger or close. */
void pt__hconn_maybe_close(struct hconn *h);
/* Input waits that the state just changed for: process it from the loop (a zero-byte send,
 * see engine.h pt_conn_send), never inside the caller's call. */
void pt__hconn_kick(struct hconn *h);
/* Ends the current request's body with err (a timeout, a reset). */
void pt__hconn_body_abort(struct hconn *h, int err);

/* ---- hsend.c: HTTP/1.1 output ---- */
/* pt_req_ops.send of an HTTP/1.1 request. */
int pt__h1_send(struct pt_http_req *r, const struct pt_out *o, pt_http_send_fn cb, void *arg);
/* Sends "100 Continue" if the request asked for it and no response started. 0 or -errno. */
int pt__h1_send_continue(struct pt_http_req *r);
/* An error found before a request exists (bad head, bad framing in hand): answers status
 * (Connection: close) and marks the connection closing. */
void pt__h1_send_error(struct hconn *h, unsigned status);
/* Frees hw's send contexts. After the workers have exited. */
void pt__hsend_pool_free(struct hworker *hw);

/* ---- timeouts.c: the HTTP.SYS phases of an HTTP/1.1 connection ---- */
/* Enters phase ph (and the governor state that goes with it); the deadline is the caller's. */
void pt__phase_set(struct hconn *h, enum hphase ph);
/* Picks the phase (and deadline) the connection's state calls for now. */
void pt__phase_update(struct hconn *h);
/* Bytes arrived (rate windows, lingering). */
void pt__phase_input(struct hconn *h, size_t len);
/* The connection's deadline passed (pt_conn_ops.on_timeout). */
void pt__phase_timeout(pt_conn_t *c);
/* Closing while the peer may still be sending: read and discard, then close (PH_LINGER). */
void pt__phase_linger(struct hconn *h);
/* The server stops (pt_conn_ops.on_stop): a connection between requests waits for one more
 * only for the grace period; one in the middle of a request is left to finish it. */
void pt__phase_stop(struct hconn *h);

/* ---- fragment.c (any thread) ---- */
/* Creates / frees s's fragment cache. 0 or -ENOMEM. */
int pt__fragcache_init(struct pt_http_server *s);
void pt__fragcache_free(struct pt_http_server *s);
/* A memory chunk for fragment name in *out, holding a reference (*ref) that keeps its bytes
 * until pt__fragment_unref. 0, -ENOENT (not cached, or expired) or -EINVAL. */
int pt__fragment_resolve(struct pt_http_server *s, const char *name, struct pt_http_chunk *out,
			 void **ref);
void pt__fragment_unref(void *ref);

/* ---- sync.c ---- */
/* Starts the pool if a route is PT_ROUTE_SYNC (server start). 0 or -ENOMEM/-EAGAIN. */
int pt__sync_start(struct pt_http_server *s);
/* Stops and joins the pool threads (after the engine stopped). */
void pt__sync_stop(struct pt_http_server *s);
/* Queues r for the pool (the pool keeps it), or answers 503 (queue full). Worker thread. */
void pt__sync_dispatch(struct pt_http_req *r, const struct pt_route *rt);

/* ---- HTTP/2 entry points (h2.c; the HTTP/1.1 side calls them without nghttp2's header) ---- */
/* Makes c an HTTP/2 connection: from on_accept after ALPN "h2" (data NULL), or from the
 * HTTP/1.1 input path when an h2c client preface arrived (data: the bytes so far, preface
 * included). 0 or -ENOMEM (c is left as it was). Worker thread. */
int pt__h2_start(struct pt_http_server *s, pt_conn_t *c, const void *data, size_t len);
/* Whether data (len bytes, possibly fewer than 24) is a prefix of the client preface. */
bool pt__h2_preface(const void *data, size_t len);
/* Graceful stop, on the worker: step 0 tells every HTTP/2 client of hw that the server is
 * going away (GOAWAY with the largest stream id: requests in flight are still taken), step 1
 * a round trip later sends the final GOAWAY (the last stream processed); connections close
 * when their streams are done. */
void pt__h2_goaway_all(struct hworker *hw, int step);
/* Whether this build has HTTP/2 (h2.c: yes; the Windows build: no, see win/h2_none.c). */
bool pt__h2_available(void);

#endif
