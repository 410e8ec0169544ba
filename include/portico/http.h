/*
 * Portico HTTP/1.1 server layer: an HTTP.SYS-style API on the Portico engine.
 *
 * A server owns an engine, its listeners, a set of routes (URL prefixes, longest match wins)
 * and the HTTP.SYS timeouts. For each request the layer parses the head strictly (RFC 9112),
 * calls the route's handler on the connection's worker, and keeps responses in request order
 * (pipelining): the handler of request N+1 runs only after request N's final send was made.
 *
 * Responses: pt_http_respond sends the status line and headers together with zero or more body
 * chunks; pt_http_send_body sends more. Flags per send:
 *   PT_HTTP_MORE        more body follows (no length given: chunked, or close-delimited on 1.0)
 *   PT_HTTP_BUFFER      the layer copies memory chunks; the send completes at once (BUFFER_DATA)
 *   PT_HTTP_DISCONNECT  close the connection after this response
 *   PT_HTTP_ZC          zero-copy for large memory chunks (io_uring only; see engine.h)
 * The send without PT_HTTP_MORE is the final one. Each send's callback runs exactly once, on
 * the connection's worker, in send order, never inside the call that made the send.
 *
 * Request lifetime: the request handle is valid from the handler call until the final send has
 * been made and every send callback has run, or until the on_abort callback (connection lost).
 * Strings returned by the request accessors stay valid until the final send is made, except
 * that pointers obtained during the handler call must be fetched again after it returns if the
 * response is produced later (the layer moves the head out of the receive buffer then). After
 * the final send the accessors return empty strings (send callbacks must not rely on them).
 *
 * Send completion: a send completes when its bytes are in the kernel's socket buffer, not when
 * the peer acknowledged them, so sends one at a time are not serialised by round trips as
 * unbuffered sends are in HTTP.SYS; PT_HTTP_BUFFER still saves the application from waiting
 * for each callback (measured: examples/three_models.c).
 *
 * Threads: handlers run on the connection's worker and must not block, unless the route is
 * PT_ROUTE_SYNC: then they run on a bounded thread pool and may block; the request functions
 * below may then be called from that thread (they forward to the worker). Any function may be
 * called from any thread when marked so.
 */
#ifndef PORTICO_HTTP_H
#define PORTICO_HTTP_H

#include <portico/engine.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pt_http_server pt_http_server_t;
typedef struct pt_http_req pt_http_req_t;

/* HTTP.SYS timeouts, in milliseconds (0 = the default given). */
struct pt_http_timeouts {
	unsigned header_wait;        /* a request head must arrive within this: 120 s */
	unsigned idle_connection;    /* keep-alive wait for the next request: 120 s */
	unsigned entity_body;        /* gap allowed between pieces of a request body: 120 s */
	unsigned drain_entity_body;  /* to discard a body the handler did not read: 120 s */
	unsigned request_queue;      /* a request may wait this long for a sync thread: 120 s */
	unsigned min_send_rate;      /* bytes/s a client must read at while a response is
	                                pending, else it is disconnected: 150;
	                                PT_HTTP_RATE_OFF disables the check */
};

#define PT_HTTP_RATE_OFF 0xffffffffu

enum pt_queue_policy { PT_QUEUE_503 = 0, PT_QUEUE_RESET = 1 };

struct pt_http_config {
	struct pt_engine_config engine;
	const char *server_header;   /* Server: value; NULL = "portico"; "" = none */
	size_t max_head;             /* request line + headers: 16 KiB (431 beyond, 414 target) */
	size_t max_target;           /* 8 KiB (414) */
	unsigned max_headers;        /* 100 (431); a request holds 16 inline and allocates only
	                                what it has beyond that, so this costs nothing until used */
	uint64_t max_body;           /* request body: 0 = 1 GiB (413) */
	uint64_t max_drain;          /* unread body bytes discarded to keep the connection: 1 MiB */
	struct pt_http_timeouts timeouts;
	unsigned sync_threads;       /* PT_ROUTE_SYNC pool: 0 = 4 */
	unsigned queue_length;       /* requests waiting for the pool: 0 = 1000 */
	enum pt_queue_policy queue_policy;
	int defer_accept_sec;        /* TCP_DEFER_ACCEPT on listeners: 0 = off */
	bool h2c;                    /* plaintext listeners also take HTTP/2 with prior knowledge
	                                (a connection that opens with the client preface); over
	                                TLS, HTTP/2 is chosen by ALPN ("h2" in the context's list).
	                                The Windows build has no HTTP/2: -ENOTSUP at create */
	int backlog;                 /* listen(2) backlog: 0 = 4096 */
	unsigned proxy_protocol;     /* PT_PROXY_V1 | PT_PROXY_V2 on every listener: connections
	                                open with a PROXY header (engine.h), read within
	                                timeouts.header_wait; 0 = off */
	const char *proxy_trusted;   /* required with proxy_protocol: "CIDR[,CIDR...]" of the
	                                balancers allowed to send it (copied by each listen) */
	unsigned stop_grace_ms;      /* graceful stop: a keep-alive connection between requests
	                                stays open this long for a request that may be on its way
	                                (answered with Connection: close); 0 = 1000, at most
	                                engine.shutdown_ms; PT_HTTP_GRACE_OFF: closed at once */
	/* The response cache (see pt_http_req_cache): entries per worker, 0 = off. */
	unsigned cache_entries;
	size_t cache_max_body;       /* bodies kept up to this size: 0 = 16 KiB */
	/* Runs before a response is sent from the cache (r's worker; r is a request no handler
	 * sees): return 0 to send it, after adding PT_HTTP_DISCONNECT to *flags if the
	 * connection must close after it, and setting *cb / *arg for a callback when the send
	 * completes (as pt_http_respond's: it runs once, also on failure); anything else sends
	 * nothing and calls the route's handler instead. NULL: every hit is sent. */
	int (*on_cache_hit)(pt_http_req_t *r, unsigned status, uint64_t body_bytes,
			    unsigned *flags, void (**cb)(pt_http_req_t *, void *, ssize_t),
			    void **arg, void *ctx);
	void *cache_arg;             /* ctx of on_cache_hit */
};

#define PT_HTTP_GRACE_OFF 0xffffffffu

/* Fills cfg with defaults (all zero). Any thread. */
PT_API void pt_http_config_init(struct pt_http_config *cfg);

/* ---- requests ------------------------------------------------------------------------------ */

struct pt_http_str {
	const char *p;               /* not NUL-terminated */
	size_t n;
};

enum pt_http_method {
	PT_HTTP_OTHER = 0, PT_HTTP_GET, PT_HTTP_HEAD, PT_HTTP_POST, PT_HTTP_PUT, PT_HTTP_DELETE,
	PT_HTTP_CONNECT, PT_HTTP_OPTIONS, PT_HTTP_TRACE, PT_HTTP_PATCH,
};

PT_API enum pt_http_method pt_http_req_method(const pt_http_req_t *r);
PT_API struct pt_http_str pt_http_req_method_name(const pt_http_req_t *r);
PT_API struct pt_http_str pt_http_req_target(const pt_http_req_t *r); /* as received */
PT_API struct pt_http_str pt_http_req_path(const pt_http_req_t *r);   /* still %-encoded */
PT_API struct pt_http_str pt_http_req_query(const pt_http_req_t *r);  /* without '?' */
/* The path percent-decoded into buf (NUL-terminated; no dot-segment removal). Returns its
 * length, -EINVAL for a malformed escape or an encoded NUL, or -ENOSPC when cap is too small. */
PT_API int pt_http_req_decoded_path(const pt_http_req_t *r, char *buf, size_t cap);
PT_API struct pt_http_str pt_http_req_authority(const pt_http_req_t *r);
PT_API int pt_http_req_minor_version(const pt_http_req_t *r);         /* 0 or 1 */
/* The protocol the request came in: 10 (HTTP/1.0), 11 (HTTP/1.1) or 20 (HTTP/2, over TLS or
 * h2c; its head reads as HTTP/1.1 through the calls above). Any thread holding r. */
PT_API int pt_http_req_version(const pt_http_req_t *r);
/* The first field named name (case-insensitive), or {NULL, 0}. */
PT_API struct pt_http_str pt_http_req_header(const pt_http_req_t *r, const char *name);
/* Field i (0-based) in arrival order: 0, or -ENOENT past the end. */
PT_API int pt_http_req_header_at(const pt_http_req_t *r, unsigned i, struct pt_http_str *name,
				 struct pt_http_str *value);
/* Declared body length, -1 when chunked or absent (0 bytes follow if absent and not chunked). */
PT_API int64_t pt_http_req_content_length(const pt_http_req_t *r);
PT_API bool pt_http_req_has_body(const pt_http_req_t *r);
/* The connection the request arrived on (peer address, worker, ...), or NULL once it has closed.
 * Any thread, but the connection belongs to its worker: on another thread (a sync-pool
 * handler) it may close at any moment, so use the result only on the worker. */
PT_API pt_conn_t *pt_http_req_conn(const pt_http_req_t *r);
PT_API void pt_http_req_set_user(pt_http_req_t *r, void *user);
PT_API void *pt_http_req_user(const pt_http_req_t *r);

/* Body streaming: cb receives the request body in pieces as it arrives (data valid during the
 * call), then once with len 0 and err 0 at its end, or err < 0 (-ETIMEDOUT, -EPROTO for a
 * malformed chunked body, -EMSGSIZE over max_body, -ECONNRESET). Calling this sends
 * "100 Continue" when the client asked for it. Worker thread (or the sync thread of the
 * request). 0, or -EINVAL (no body, or already reading), -EALREADY (response already final). */
typedef void (*pt_http_body_fn)(pt_http_req_t *r, void *arg, const void *data, size_t len, int err);
PT_API int pt_http_req_read_body(pt_http_req_t *r, pt_http_body_fn cb, void *arg);

/* ---- responses ----------------------------------------------------------------------------- */

enum {
	PT_HTTP_MORE = 1u << 0,
	PT_HTTP_BUFFER = 1u << 1,
	PT_HTTP_DISCONNECT = 1u << 2,
	PT_HTTP_ZC = 1u << 3,
};

enum pt_http_chunk_kind { PT_HTTP_CHUNK_MEM = 0, PT_HTTP_CHUNK_FILE, PT_HTTP_CHUNK_FRAGMENT };

/* A body chunk: memory, a file range, or a named fragment from the server's fragment cache. */
struct pt_http_chunk {
	enum pt_http_chunk_kind kind;
	union {
		struct { const void *p; size_t len; } mem;
		struct { int fd; off_t offset; int64_t len; } file;   /* len -1: to end of file */
		struct { const char *name; } fragment;
	};
};

struct pt_http_header {
	const char *name;            /* NUL-terminated; copied during the call */
	const char *value;
};

/* Send callback: res = bytes of this send (body and head) or -errno. */
typedef void (*pt_http_send_fn)(pt_http_req_t *r, void *arg, ssize_t res);

/* Sends the response head (status line, Date, Server, the given headers, and Content-Length or
 * Transfer-Encoding chosen by the layer unless a Content-Length header is given) and the body
 * chunks. reason NULL = the standard phrase. Without PT_HTTP_MORE the response ends here and
 * Content-Length is the chunks' total. HEAD requests and 1xx/204/304 responses send no body
 * (chunks are then only counted for HEAD's Content-Length).
 * Header names and values are checked (tchar names; no CR, LF or NUL in values) and copied.
 * Returns 0 (cb runs once), or -EINVAL (bad status, header, chunk), -EALREADY (head already
 * sent), -ENOENT (a fragment is not cached: nothing was sent, fall back), -EPIPE (connection
 * gone), -EAGAIN (send queue full: retry after a send callback), -ENOMEM. */
PT_API int pt_http_respond(pt_http_req_t *r, unsigned status, const char *reason,
			   const struct pt_http_header *headers, unsigned nheaders,
			   const struct pt_http_chunk *body, unsigned nbody, unsigned flags,
			   pt_http_send_fn cb, void *arg);

/* Prepared fields: a list of response header fields checked (as pt_http_respond checks them),
 * copied and formatted once, for the many responses that share them (a static file's
 * Content-Type, ETag, Last-Modified...). Content-Length, Transfer-Encoding and Date are not
 * allowed among them. Returns the object, or NULL with *err set (-EINVAL: a bad field;
 * -ENOMEM). Any thread. The object is immutable: any thread may use it in
 * pt_http_respond_fields at the same time. The caller owns it and frees it with
 * pt_http_fields_free (NULL is ignored) once no call is using it; sends copy the bytes, so a
 * completed call no longer needs it. */
typedef struct pt_http_fields pt_http_fields_t;
PT_API pt_http_fields_t *pt_http_fields_new(const struct pt_http_header *h, unsigned n, int *err);
PT_API void pt_http_fields_free(pt_http_fields_t *f);

/* pt_http_respond with the standard reason phrase and the prepared fields pre (NULL: none)
 * sent before headers[0..nheaders). Same threads, flags, callback and results. */
PT_API int pt_http_respond_fields(pt_http_req_t *r, unsigned status, const pt_http_fields_t *pre,
				  const struct pt_http_header *headers, unsigned nheaders,
				  const struct pt_http_chunk *body, unsigned nbody, unsigned flags,
				  pt_http_send_fn cb, void *arg);

/* The response cache: HTTP.SYS's kernel response cache, one per worker thread. A handler offers
 * the response it is about to send; if that response is a complete 200 to a GET, sent by one
 * call (no PT_HTTP_MORE, no PT_HTTP_DISCONNECT, no Connection: close), with a body from memory
 * of at most cache_max_body bytes, the layer keeps a copy of its fields and body. Later GET
 * and HEAD requests on the same worker with the same key (whether the connection is TLS, the
 * authority (Host), and the request-target, byte for byte) get the copy, with a fresh Date,
 * without any handler being called, for ttl_ms after it was made, unless the request carries
 * one of the fields named in unless (case-insensitive): the request fields the response
 * depends on, such as If-None-Match or Accept-Encoding. Everything else about the response
 * must be the same for every such request. The server's on_cache_hit sees each hit.
 * Call before responding, on r's worker (a handler's thread). The policy and its names are read
 * when the response is sent (copied then): they must stay valid until then. Returns 0,
 * -EINVAL (ttl_ms 0, a NULL or empty name), -ENOTSUP (cache_entries is 0). */
struct pt_http_cache_policy {
	unsigned ttl_ms;
	const char *const *unless;
	unsigned nunless;
};
PT_API int pt_http_req_cache(pt_http_req_t *r, const struct pt_http_cache_policy *p);

/* Makes every response kept so far unusable (each worker drops its copies as it meets them),
 * e.g. after the configuration changed. Any thread. */
PT_API void pt_http_cache_flush(pt_http_server_t *s);

/* Sends more body after a head sent with PT_HTTP_MORE. Same flags and results, plus -EPROTO
 * when no head was sent or the final send was already made, and -E2BIG when the body would
 * exceed a Content-Length the handler declared. */
PT_API int pt_http_send_body(pt_http_req_t *r, const struct pt_http_chunk *body, unsigned nbody,
			     unsigned flags, pt_http_send_fn cb, void *arg);

/* After a send returned -EAGAIN (the connection's send queue is full, typically with
 * PT_HTTP_BUFFER sends whose callbacks run at once), cb runs once on the worker when the queue
 * has drained below half, so the application can continue. Worker thread. 0 or -EINVAL. */
typedef void (*pt_http_writable_fn)(pt_http_req_t *r, void *arg);
PT_API int pt_http_req_on_writable(pt_http_req_t *r, pt_http_writable_fn cb, void *arg);

/* Responding from another thread: pt_http_req_keep (on the worker, usually in the handler)
 * hands the request to the application; from then on respond, send_body and read_body may be
 * called from any thread (calls from other threads run on the worker and wait for it, and
 * without PT_HTTP_BUFFER for the send to complete), and the handle stays valid, even after the
 * connection is lost (calls then return -EPIPE), until pt_http_req_release (any thread, once).
 * A request released without its final send gets a 500 or, after a head, a reset.
 * PT_ROUTE_SYNC handlers need neither call: the pool does both. 0, -EINVAL, -ESHUTDOWN. */
PT_API int pt_http_req_keep(pt_http_req_t *r);
PT_API void pt_http_req_release(pt_http_req_t *r);

/* Called when the connection is lost before the request completed: no further callbacks, and
 * the handle is invalid after this returns. A send that fails (the peer reset the connection)
 * ends the connection too, so an application streaming a body learns it here. Worker thread. */
typedef void (*pt_http_abort_fn)(pt_http_req_t *r, void *arg);
PT_API void pt_http_req_on_abort(pt_http_req_t *r, pt_http_abort_fn cb, void *arg);

/* ---- fragment cache (HttpAddFragmentToCache) ----------------------------------------------- */

/* Stores a copy of data under name, replacing any previous one. ttl_ms 0 = until removed.
 * Any thread. 0 or -EINVAL/-ENOMEM. */
PT_API int pt_http_fragment_put(pt_http_server_t *s, const char *name, const void *data,
				size_t len, unsigned ttl_ms);
/* Removes it; sends already made keep their reference. Any thread. 0 or -ENOENT. */
PT_API int pt_http_fragment_remove(pt_http_server_t *s, const char *name);

/* ---- server -------------------------------------------------------------------------------- */

typedef void (*pt_http_handler_fn)(pt_http_req_t *r, void *arg);

enum { PT_ROUTE_SYNC = 1u << 0 };

/* Creates a server and its engine (cfg may be NULL). Caller owns it. NULL with *err set. */
PT_API pt_http_server_t *pt_http_server_create(const struct pt_http_config *cfg, int *err);
/* Adds a listening address ("IP:PORT", "[IPv6]:PORT"). Before start. Index >= 0 or -errno. */
PT_API int pt_http_listen(pt_http_server_t *s, const char *addr);
/* Adds an already listening socket (systemd socket activation). Before start. */
PT_API int pt_http_listen_fd(pt_http_server_t *s, int fd);
/* The same, for HTTPS: connections are TLS with context tls (see engine.h; it must outlive the
 * server). The header-wait timeout runs from accept, handshake included. Before start. */
PT_API int pt_http_listen_tls(pt_http_server_t *s, const char *addr, pt_tls_t *tls);
PT_API int pt_http_listen_fd_tls(pt_http_server_t *s, int fd, pt_tls_t *tls);
PT_API int pt_http_listen_port(pt_http_server_t *s, int idx);
/* Routes requests whose path starts with prefix (e.g. "/", "/api/") to fn. The longest prefix
 * wins; no match answers 404. Before start. 0, -EINVAL or -EEXIST. */
PT_API int pt_http_route(pt_http_server_t *s, const char *prefix, pt_http_handler_fn fn,
			 void *arg, unsigned flags);
PT_API int pt_http_server_start(pt_http_server_t *s);
/* Graceful stop. The listeners close (pt_engine_stop_begin) and no connection is closed under
 * a client that may be sending: a request in progress is answered with Connection: close, and
 * so is the next request on a keep-alive connection that arrives within stop_grace_ms of the
 * client acknowledging the last response; connections silent that long are closed. HTTP/2 connections get a
 * GOAWAY, a round trip later the final GOAWAY naming the last stream taken, and close when
 * those streams are done. Whatever is still open engine.shutdown_ms after the call is reset.
 * Returns when every connection is closed. Any thread but a worker. Idempotent. */
PT_API int pt_http_server_stop(pt_http_server_t *s);
PT_API void pt_http_server_destroy(pt_http_server_t *s);
PT_API pt_engine_t *pt_http_server_engine(pt_http_server_t *s);

/* ---- counters -------------------------------------------------------------------------------
 * What the HTTP layer decides on its own, before or beside the handlers: requests it refuses
 * (a bad or too large head, no memory for a request, an unsupported version), and the HTTP/2
 * connections, streams, resets and GOAWAY frames. The engine's counters (pt_engine_counters)
 * hold connections and bytes; requests that reach a handler are the application's to count.
 * Each worker writes its own counters with plain stores; any thread reads them. */

/* Refused requests by the status they were answered with (index by pt_http_reject_index). */
enum {
	PT_HTTP_REJ_400, PT_HTTP_REJ_413, PT_HTTP_REJ_414, PT_HTTP_REJ_431,
	PT_HTTP_REJ_501, PT_HTTP_REJ_503, PT_HTTP_REJ_505, PT_HTTP_REJ_OTHER, PT_HTTP_REJ__COUNT
};

struct pt_http_counters {
	uint64_t rejected[PT_HTTP_REJ__COUNT]; /* answered by the layer itself, never a handler */
	uint64_t h2_conns;            /* connections that became HTTP/2 (ALPN h2 or h2c) */
	uint64_t h2_streams;          /* request streams opened by clients */
	uint64_t h2_resets_recv;      /* RST_STREAM frames received */
	uint64_t h2_resets_sent;      /* RST_STREAM frames sent */
	uint64_t h2_goaways_recv;     /* GOAWAY frames received */
	uint64_t h2_goaways_sent;     /* GOAWAY frames sent (a graceful stop sends two) */
	uint64_t h2_floods;           /* connections ended with ENHANCE_YOUR_CALM (floods, rapid
	                                 reset) */
	uint64_t h2_protocol_errors;  /* connections ended by a protocol error of the client */
	uint64_t cache_hits;          /* responses sent from the response cache */
};

/* The status a rejected[] index stands for (0 for PT_HTTP_REJ_OTHER), and the index of a
 * status. Pure functions, any thread. */
PT_API unsigned pt_http_reject_status(unsigned index);
PT_API unsigned pt_http_reject_index(unsigned status);

/* Snapshot of worker i's counters (i < workers), or of their sum (i == -1). Any thread, at any
 * time between create and destroy; each value is consistent by itself, the set is not a
 * transaction. 0 or -EINVAL. */
PT_API int pt_http_server_counters(const pt_http_server_t *s, int i, struct pt_http_counters *out);

#ifdef __cplusplus
}
#endif
#endif
