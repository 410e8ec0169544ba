/*
 * HTTP layer internals, shared by src/http/ only.
 *
 * Per connection (struct hconn, small, kept while the connection lives): buffered input only
 * when a head is incomplete or requests wait behind an unfinished one; the request whose input
 * is being consumed (cur); the live requests (responses or callbacks outstanding).
 * Per request (struct pt_http_req, from a per-worker pool, only while a request is active):
 * the parsed head (slices into the receive buffer, or into own when the request outlives the
 * receive call), response state, body state.
 * Per worker (struct hworker): pools, the cached Date header.
 * Everything here runs on the connection's worker thread.
 */
#ifndef PT_HTTP_INT_H
#define PT_HTTP_INT_H

#include <portico/http.h>
#include <pthread.h>
#include <stdatomic.h>
#include "http/parse.h"

#define PT_HEAD_INLINE 512u   /* response heads up to this size need no allocation */

struct pt_route {
	char *prefix;
	size_t len;
	pt_http_handler_fn fn;
	void *arg;
	unsigned flags;
};

struct hworker;
struct hconn;

enum body_mode { BODY_NONE = 0, BODY_LENGTH, BODY_CHUNKED };

struct pt_http_req {
	struct pt_http_server *s;
	struct hconn *h;                  /* NULL once the connection is gone (atomic store:
	                                     pt_http_req_conn may read it on a pool thread) */
	pt_conn_t *c;                     /* the connection it arrived on (never cleared) */
	struct pt_http_req *next;         /* hconn's live list / free list */
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
	bool head_sent, final_sent, no_body, chunked_out, close_after, sync_route;
	int64_t out_left;                 /* declared Content-Length still to send; -1: none */
	unsigned pending;                 /* engine sends whose callbacks have not run */
	char headbuf[PT_HEAD_INLINE];
	/* PT_ROUTE_SYNC: queued for, or running on, a pool thread */
	struct pt_http_req *qnext;
	const struct pt_route *route;
	pt_worker_t *worker;
	uint64_t queued_ms;
	pt_post_t post;
	/* request body */
	uint8_t body_mode;
	bool body_done, body_reading, body_draining, continue_sent;
	uint64_t body_left;               /* BODY_LENGTH: bytes still to come */
	uint64_t drained;
	struct pt_chunked chunked;
	pt_http_body_fn body_cb;
	void *body_arg;
	struct pt_header hdrs[];          /* max_headers entries */
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

enum hphase { PH_NEW, PH_IDLE, PH_HEAD, PH_BODY, PH_DRAIN, PH_HANDLER, PH_SENDING };

struct hconn {
	struct pt_http_server *s;
	struct hworker *hw;
	pt_conn_t *c;
	char *in;                         /* buffered input */
	uint32_t in_len, in_cap;
	struct pt_http_req *cur;          /* request whose input is being consumed */
	struct pt_http_req *live;         /* requests not yet freed (oldest first) */
	struct pt_parse_state pst;
	uint8_t phase;                    /* the timer phase armed now */
	bool closing;                     /* no more requests: close after the responses */
	bool eof;
	bool in_consume;                  /* consume() is on the stack */
	bool resume_queued;
	bool tx_wait;                     /* dispatching waits for the send queue to empty */
	uint16_t nlive;                   /* requests on the live list */
	uint32_t last_in;                 /* PH_BODY: last body byte (ms, mod 2^32) */
	union {
		uint64_t rate_mark;           /* PH_SENDING: bytes sent at the window's start */
		struct {
			uint32_t body_win;    /* PH_BODY: body bytes in this rate window */
			uint32_t win_start;   /* PH_BODY: the window's start (ms, mod 2^32) */
		};
	};
};

struct hworker {
	struct pt_http_req *req_free;
	struct hsend *hs_free;
	unsigned nreq_free, nhs_free;
	long date_sec;
	char date[48];                    /* "Date: ...\r\n" */
	size_t date_len;
};

struct pt_http_server {
	struct pt_http_config cfg;
	pt_engine_t *e;
	struct pt_parse_limits limits;
	struct pt_route *routes;          /* longest prefix first */
	unsigned nroutes;
	char server_line[128];            /* "Server: ...\r\n" or "" */
	size_t server_line_len;
	struct hworker *hw;               /* one per engine worker */
	size_t req_size;
	atomic_bool stopping;
	struct pt_sync *sync;             /* PT_ROUTE_SYNC pool, or NULL */
	struct pt_fragcache *frags;
};

/* server.c */
struct hworker *pt__hw(struct pt_http_server *s, pt_conn_t *c);
const struct pt_route *pt__route_find(const struct pt_http_server *s, struct pt_slice path);

/* hconn.c */
extern const struct pt_conn_ops pt__http_conn_ops;
void pt__hconn_after_send(struct hconn *h);   /* a response made progress: phase, next input */
void pt__hconn_maybe_close(struct hconn *h);
void pt__hconn_kick(struct hconn *h);
void pt__req_release(struct pt_http_req *r);  /* drop the request if nothing needs it */
int pt__own_head(struct pt_http_req *r);      /* copy the head out of the receive buffer */
void pt__req_send_error(struct hconn *h, unsigned status);

/* fragment.c */
int pt__fragcache_init(struct pt_http_server *s);
void pt__fragcache_free(struct pt_http_server *s);
int pt__fragment_resolve(struct pt_http_server *s, const char *name, struct pt_http_chunk *out,
			 void **ref);
void pt__fragment_unref(void *ref);

/* sync.c */
int pt__sync_start(struct pt_http_server *s);
void pt__sync_stop(struct pt_http_server *s);
void pt__sync_dispatch(struct pt_http_req *r, const struct pt_route *rt);
int pt__sync_respond(pt_http_req_t *r, unsigned status, const char *reason,
		     const struct pt_http_header *headers, unsigned nheaders,
		     const struct pt_http_chunk *body, unsigned nbody, unsigned flags,
		     pt_http_send_fn cb, void *arg, bool *forwarded);
int pt__sync_send_body(pt_http_req_t *r, const struct pt_http_chunk *body, unsigned nbody,
		       unsigned flags, pt_http_send_fn cb, void *arg, bool *forwarded);
int pt__sync_read_body(pt_http_req_t *r, pt_http_body_fn cb, void *arg, bool *forwarded);
int pt__respond_local(pt_http_req_t *r, unsigned status, const char *reason,
		      const struct pt_http_header *headers, unsigned nheaders,
		      const struct pt_http_chunk *body, unsigned nbody, unsigned flags,
		      pt_http_send_fn cb, void *arg);
int pt__send_body_local(pt_http_req_t *r, const struct pt_http_chunk *body, unsigned nbody,
			unsigned flags, pt_http_send_fn cb, void *arg);
int pt__read_body_local(pt_http_req_t *r, pt_http_body_fn cb, void *arg);

/* response.c */
const char *pt__reason(unsigned status);
void pt__date_refresh(struct hworker *hw);
int pt__send_continue(struct pt_http_req *r);
void pt__hsend_pool_free(struct hworker *hw);

#endif
