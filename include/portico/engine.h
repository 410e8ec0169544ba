/*
 * Portico engine: completion-port style network I/O on Linux.
 *
 * Model (the I/O completion port of Windows, mapped to io_uring or epoll):
 *  - An engine owns N worker threads. Each worker owns one kernel queue (an io_uring created
 *    inside the worker thread, or an epoll set), a timing wheel, free lists of connection
 *    objects and operation contexts, and one SO_REUSEPORT listener per listening address.
 *  - A connection lives on the worker that accepted it. Every callback for a connection runs on
 *    that worker, so the application needs no locks for per-connection state.
 *  - The connection handle carries a user pointer (the "completion key"); each send carries a
 *    callback and an argument (the "overlapped" context).
 *
 * THE COMPLETION RULE. A function that starts an operation either returns a negative errno, in
 * which case nothing was started and no callback will run, or returns 0 (or a positive value
 * where documented), in which case the operation's callback runs exactly once, later, on the
 * connection's worker, and never inside the call that started it, even when the operation fails
 * at once. Operations still in flight when a connection closes complete with -ECANCELED (or the
 * error that ended them) before the connection's on_close callback runs. on_close is the last
 * callback for a connection; after it returns the handle is recycled and must not be used.
 *
 * Errors: functions return 0 or -errno (never set errno); constructors return NULL and set *err.
 * Threads: unless a function says "any thread", call it only on the connection's (or worker's)
 * own thread, i.e. from inside a callback the engine runs on that worker.
 */
#ifndef PORTICO_ENGINE_H
#define PORTICO_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#ifdef _WIN32                /* Windows (mingw-w64): Winsock 2; files are C runtime descriptors */
#include <winsock2.h>
#include <ws2tcpip.h>
#define PT_API
#else
#include <sys/socket.h>
#include <sys/uio.h>
#define PT_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pt_engine pt_engine_t;
typedef struct pt_worker pt_worker_t;
typedef struct pt_conn pt_conn_t;
typedef struct pt_tls pt_tls_t;

/* ---- configuration ------------------------------------------------------------------------ */

enum pt_backend_kind {
	PT_BACKEND_AUTO = 0, /* io_uring when it works here, else epoll (one log line says why) */
	PT_BACKEND_URING,    /* io_uring or fail with the reason */
	PT_BACKEND_EPOLL,
	PT_BACKEND_IOCP,     /* Windows: I/O completion ports (the only backend there) */
};

enum pt_full_policy {
	PT_FULL_SHED = 0,    /* at the connection (or descriptor) limit, make room: close the
	                        connection silent for the longest time (never sent a byte), else
	                        the oldest PT_CONN_PARTIAL one, else the oldest PT_CONN_IDLE one
	                        (see pt_conn_set_state), never a PT_CONN_BUSY one; pause accepting
	                        only when every connection is busy */
	PT_FULL_PAUSE,       /* at the connection limit, stop accepting until below low watermark */
};

/* Log sink: level 0 error, 1 warning, 2 info. Called from any thread; must be thread-safe. */
typedef void (*pt_log_fn)(void *arg, int level, const char *msg);

struct pt_engine_config {
	unsigned workers;          /* worker threads; 0 = one per CPU in the affinity mask */
	enum pt_backend_kind backend; /* AUTO also honours PORTICO_BACKEND=uring|epoll|auto */
	unsigned ring_entries;     /* io_uring SQ entries (CQ is 4x); 0 = 1024 */
	unsigned recv_buf_size;    /* bytes per provided receive buffer; 0 = 2048 */
	unsigned recv_buf_count;   /* provided buffers per worker (power of 2); 0 = 1024 */
	unsigned max_conns;        /* connections, all workers together; 0 = 90% of RLIMIT_NOFILE */
	unsigned low_watermark_pct;/* PT_FULL_PAUSE: resume accepting below this % of max; 0 = 90 */
	enum pt_full_policy full_policy;
	size_t max_send_queue;     /* queued, unsent bytes per connection before sends are refused
	                              with -EAGAIN (on_drain follows); 0 = 4 MiB */
	size_t max_worker_buffered;/* bytes of BUFFER copies per worker; 0 = 64 MiB */
	unsigned shutdown_ms;      /* graceful stop: connections still open this long after it
	                              began are reset; 0 = 5000 */
	unsigned stop_grace_ms;    /* graceful stop: a TLS handshake in progress when it begins
	                              gets at most this long more to finish (then on_stop, as
	                              for any connection); 0 = 1000 */
	size_t memlock_budget;     /* bytes of locked memory the io_uring rings of all workers may
	                              use (checked at start; rings shrink to fit, or the start fails
	                              with the KiB needed); 0 = RLIMIT_MEMLOCK (raised to its hard
	                              limit first) */
	unsigned conn_area;        /* bytes of per-connection memory for the application inside
	                              each connection object (see pt_conn_area); 0 = none */
	unsigned batch_wait;       /* io_uring: a worker with nothing to do sleeps until this many
	                              completions are ready, or batch_wait_us has passed and at
	                              least one is (fewer wake-ups and system calls per completion
	                              for clients that keep many operations outstanding, e.g. a
	                              load generator; each completion may wait up to batch_wait_us
	                              longer). 0 or 1 = wake at the first completion (servers);
	                              the epoll backend ignores it */
	unsigned batch_wait_us;    /* see batch_wait; 0 = 50 */
	pt_log_fn log;             /* NULL: messages go to stderr */
	void *log_arg;
};

/* Fills cfg with the defaults (all zero). Any thread. */
PT_API void pt_engine_config_init(struct pt_engine_config *cfg);

/* ---- connections ------------------------------------------------------------------------- */

/* Callbacks of a connection. All run on the connection's worker. Any may be NULL except
 * on_close when the application keeps state for the connection. */
struct pt_conn_ops {
	/* Bytes arrived. data is valid only during the call (the engine reuses the buffer
	 * afterwards): copy what must outlive it. len > 0. */
	void (*on_data)(pt_conn_t *c, const void *data, size_t len);
	/* Receiving ended: err 0 = the peer closed its side (EOF), else -errno. Sending may
	 * continue after EOF (half-close). Runs at most once per connection. */
	void (*on_eof)(pt_conn_t *c, int err);
	/* The deadline set by pt_conn_set_timeout passed. */
	void (*on_timeout)(pt_conn_t *c);
	/* The send queue dropped below half of max_send_queue after a send was refused with
	 * -EAGAIN, or became empty after pt_conn_notify_empty. */
	void (*on_drain)(pt_conn_t *c);
	/* Last callback. All operations have completed; free the user state here. */
	void (*on_close)(pt_conn_t *c);
	/* The engine began a graceful stop (pt_engine_stop_begin): finish what the connection is
	 * doing and close it (pt_conn_close) when the peer can no longer lose anything by it.
	 * Runs at most once per connection, from the worker loop; also for a connection accepted
	 * or done with its TLS handshake after the stop began, right after on_accept. Whatever
	 * is still open shutdown_ms after the stop began is reset. NULL: the engine closes the
	 * connection gracefully at once (queued sends finish, then the FIN). */
	void (*on_stop)(pt_conn_t *c);
};

/* A new connection was accepted on a listener. Set ops and the user pointer here. Return 0 to
 * keep it (receiving starts after this returns), or a negative errno to close it at once (no
 * further callback for it, not even on_close). Runs on the worker that accepted it. */
typedef int (*pt_accept_fn)(pt_conn_t *c, void *listen_arg);

struct pt_listen_opts {
	int backlog;               /* listen(2) backlog; 0 = 4096 */
	int defer_accept_sec;      /* TCP_DEFER_ACCEPT: accept only after data (or this timeout); 0 = off */
	pt_accept_fn on_accept;
	void *arg;                 /* passed to on_accept */
	pt_tls_t *tls;             /* non-NULL: a TLS listener (see "TLS" below). on_accept then runs
	                              after the handshake; the connection's data, sends and close
	                              are plaintext to the application. The context must outlive
	                              the engine. */
	unsigned proxy_protocol;   /* PT_PROXY_V1 | PT_PROXY_V2 (either is accepted when both are
	                              set); 0 = off. See "PROXY protocol" below. */
	const char *proxy_trusted; /* with proxy_protocol, required: the balancers' addresses,
	                              "CIDR[,CIDR...]" (at most 32; "10.0.0.0/8", "2001:db8::1");
	                              parsed and copied by pt_engine_listen */
	unsigned proxy_timeout_ms; /* the whole header must arrive within this from accept;
	                              0 = 10000 */
};

/* PROXY protocol (HAProxy's doc/proxy-protocol.txt, v1 text and v2 binary), enabled by
 * configuration only, never by detection. On such a listener every connection must open with a
 * PROXY header, parsed strictly by the engine before anything else (before the TLS handshake on
 * TLS listeners: the header precedes the ClientHello), within proxy_timeout_ms. A connection
 * from a source outside proxy_trusted is closed at accept; one whose header is malformed, too
 * long (over 4 KiB), incomplete at EOF or late is closed; each is counted (proxy_untrusted,
 * proxy_bad, proxy_timeout) and the application never sees it. on_accept runs once the header
 * is in (after the handshake on TLS listeners). From then on pt_conn_peer returns the client's
 * address the header carries (pt_conn_socket_peer the balancer's); a LOCAL header (v2 health
 * checks), v1 UNKNOWN or a v2 UNSPEC/UNIX family keeps the real peer. v2 TLVs are skipped (a
 * CRC32C TLV is checked). */
#define PT_PROXY_V1 1u
#define PT_PROXY_V2 2u

/* Adds a listening address, "IP:PORT" or "[IPv6]:PORT" (port 0 = pick one; see
 * pt_engine_listen_port). Creates one SO_REUSEPORT socket per worker now, so bind errors are
 * reported here. Call before pt_engine_start, from the thread that created the engine.
 * Returns a listener index >= 0, or -EINVAL (bad address or options), -EADDRINUSE, -errno. */
PT_API int pt_engine_listen(pt_engine_t *e, const char *addr, const struct pt_listen_opts *o);

/* The bound port of listener idx (useful after port 0), or -EINVAL. Any thread. */
PT_API int pt_engine_listen_port(pt_engine_t *e, int idx);

/* Like pt_engine_listen, for a socket that is already listening (systemd socket activation).
 * Every worker accepts on this one socket. The engine takes ownership of fd (closes it when
 * destroyed), also on failure. Returns a listener index >= 0 or -errno. */
PT_API int pt_engine_listen_fd(pt_engine_t *e, int fd, const struct pt_listen_opts *o);

/* The connection's application area (conn_area bytes, zeroed at accept, 16-byte aligned), or
 * NULL when conn_area is 0. Valid until on_close returns; no allocation per connection. */
PT_API void *pt_conn_area(pt_conn_t *c);
/* The connection whose area (pt_conn_area) area is: its reverse, so the application's state
 * needs no pointer back to its connection. area must be a live connection's area. Any
 * thread. */
PT_API pt_conn_t *pt_conn_of_area(void *area);
PT_API void pt_conn_set_ops(pt_conn_t *c, const struct pt_conn_ops *ops);
PT_API void pt_conn_set_user(pt_conn_t *c, void *user);
PT_API void *pt_conn_user(const pt_conn_t *c);
PT_API pt_worker_t *pt_conn_worker(const pt_conn_t *c);
/* Peer address into *ss (length in *len): on a PROXY protocol listener, the client address
 * the header carried (unless it was LOCAL/UNKNOWN). 0 or -errno. Worker thread. */
PT_API int pt_conn_peer(const pt_conn_t *c, struct sockaddr_storage *ss, socklen_t *len);
/* The socket's own peer (getpeername: the balancer, behind a PROXY header). 0 or -errno. */
PT_API int pt_conn_socket_peer(const pt_conn_t *c, struct sockaddr_storage *ss, socklen_t *len);
/* The socket, for setsockopt/getsockname only: never read, write or close it. */
PT_API int pt_conn_fd(const pt_conn_t *c);

/* What a connection is doing, as far as shedding goes. The engine itself knows one more state:
 * silent (nothing received yet), the first to go. After its first byte a connection is
 * PT_CONN_BUSY until the application says otherwise. */
enum pt_conn_state {
	PT_CONN_BUSY = 0,    /* a message is being handled: never shed */
	PT_CONN_PARTIAL,     /* part of a message received and the rest is not here, or it arrives
	                        slower than the application's minimum rate: shed after silent ones */
	PT_CONN_IDLE,        /* between messages (keep-alive): shed after partial ones */
};

/* Sets c's state; connections are shed oldest first within a state, the age counting from the
 * last change of state. O(1). Worker thread. */
PT_API void pt_conn_set_state(pt_conn_t *c, enum pt_conn_state s);
/* Shorthand: pt_conn_set_state(c, idle ? PT_CONN_IDLE : PT_CONN_BUSY). */
PT_API void pt_conn_set_idle(pt_conn_t *c, bool idle);

/* Stops delivering on_data (backpressure from the application). Bytes already taken from the
 * kernel are kept, in order, and delivered after pt_conn_resume_recv. 0 or -EINVAL. */
PT_API int pt_conn_pause_recv(pt_conn_t *c);
PT_API int pt_conn_resume_recv(pt_conn_t *c);

/* Arms the connection's single deadline: on_timeout runs after ms milliseconds (resolution
 * 10 ms). ms == 0 disarms it. Re-arming replaces the previous deadline. 0 or -EINVAL. */
PT_API int pt_conn_set_timeout(pt_conn_t *c, unsigned ms);

/* ---- outbound connections ------------------------------------------------------------------
 *
 * A worker can open connections of its own (a client, a proxy's upstream, a load generator).
 * Once connected they are ordinary connections: the same callbacks, sends, timeouts, close and
 * completion rule. They count against max_conns and are never shed (the governor sheds what
 * clients opened, not what the application asked for). */

/* The result of a connect. c is the new connection (err == 0): set its ops and user pointer
 * here; receiving starts after this returns 0; a negative return closes c at once (abortively,
 * no further callback, not even on_close). On failure c is NULL and err is -errno
 * (-ECONNREFUSED, -ETIMEDOUT for timeout_ms, -ECANCELED when the engine stopped first, ...);
 * the return value is then ignored. Runs on the worker the connect was started on. */
typedef int (*pt_connect_fn)(pt_conn_t *c, int err, void *arg);

struct pt_connect_opts {
	pt_connect_fn on_connect;  /* required */
	void *arg;                 /* passed to on_connect */
	unsigned timeout_ms;       /* fail with -ETIMEDOUT after this long; 0 = 10000 */
	bool no_delay;             /* TCP_NODELAY on the socket */
};

/* Starts a non-blocking TCP connect from worker w to sa (AF_INET or AF_INET6). Worker w's
 * thread only (post to it from elsewhere). Returns 0 (on_connect runs exactly once, later, on
 * w, never inside this call, even if the connect fails at once), or -EINVAL (bad arguments),
 * -ESHUTDOWN (the engine is stopping), -EMFILE/-ENOMEM and other socket(2) errors, with
 * nothing started. */
PT_API int pt_connect(pt_worker_t *w, const struct sockaddr *sa, socklen_t len,
		      const struct pt_connect_opts *o);

/* ---- sending ----------------------------------------------------------------------------- */

enum {
	PT_SEND_MORE   = 1u << 0, /* more data follows soon: hold partial segments (MSG_MORE) */
	PT_SEND_COPY   = 1u << 1, /* BUFFER_DATA: copy memory chunks now; complete at once */
	PT_SEND_ZC     = 1u << 2, /* zero-copy (io_uring SEND_ZC): completes when the kernel has
	                             released the pages; ignored on epoll and for file chunks */
};

enum pt_chunk_kind { PT_CHUNK_MEM = 0, PT_CHUNK_FILE = 1 };

/* One piece of a transmit: memory, or a byte range of a file (TransmitPackets element). */
struct pt_chunk {
	enum pt_chunk_kind kind;
	union {
		struct { const void *base; size_t len; } mem;
		struct { int fd; off_t offset; size_t len; } file; /* len bytes from offset */
	};
};

/* Send callback: res = bytes sent (the whole request) or -errno (-ECANCELED when the connection
 * closed first, -EPIPE/-ECONNRESET when the peer went away, -EIO for a short file). A send that
 * fails after the engine accepted it breaks the byte stream: the connection is then reset
 * (every later send fails too, and on_close follows). */
typedef void (*pt_send_fn)(pt_conn_t *c, void *arg, ssize_t res);

/* Sends n chunks in order as one operation (TransmitPackets). The chunk array is copied; the
 * memory and file descriptors it names stay the caller's and must stay valid (and the file open)
 * until cb runs, except memory chunks under PT_SEND_COPY, which are copied before this returns.
 * Sends on a connection complete in the order they were made. Several may be outstanding; the
 * engine gathers queued memory into one kernel send and keeps one kernel send in flight.
 * Returns 0 (cb will run exactly once; cb may be NULL), or:
 *  -EINVAL   bad arguments (n == 0, n > 1024, bad chunk), nothing queued
 *  -EPIPE    the connection is closing or its send side is shut
 *  -EAGAIN   more than max_send_queue bytes would be queued: wait for on_drain
 *  -ENOMEM   no memory for a copy or for the operation context */
PT_API int pt_conn_transmit(pt_conn_t *c, const struct pt_chunk *chunks, unsigned n,
			    unsigned flags, pt_send_fn cb, void *arg);

/* pt_conn_transmit of one memory chunk. len may be 0: a send of nothing is a step in the
 * connection's order, the way to run something from the worker loop while the connection is
 * known to be alive: its callback runs once every earlier send's callback has run (without
 * waiting for PT_SEND_COPY bytes to leave), never inside this call, and before on_close (with
 * -ECANCELED) if the connection closes first. The HTTP layer continues with input that waited
 * behind a response this way (src/http/hconn.c, pt__hconn_kick). */
PT_API int pt_conn_send(pt_conn_t *c, const void *buf, size_t len, unsigned flags,
			pt_send_fn cb, void *arg);

/* Joining sends (the HTTP layer's pipelined responses: one operation for a batch). The
 * connection's newest send, when it was made with cb, ends in a memory chunk, was not made
 * with PT_SEND_COPY or PT_SEND_ZC and its callback has not run: its arg, else NULL. Then
 * pt_conn_transmit_extend(c, cb, arg, more) lengthens that last memory chunk by more bytes,
 * which the caller has written right after it (they must stay valid until cb runs, like the
 * rest); they leave after the chunk's other bytes, in the same order as any send made then, and
 * cb's res counts them. Bytes already handed to the kernel are not touched, so a send in flight
 * may grow. Returns 0, or -EBUSY when that send cannot grow (it is no longer the newest, or cb
 * and arg do not match it), -EPIPE (closing), -EAGAIN (max_send_queue): then make a new send.
 * Worker thread of c only. */
PT_API void *pt_conn_tail_arg(const pt_conn_t *c, pt_send_fn cb);
PT_API int pt_conn_transmit_extend(pt_conn_t *c, pt_send_fn cb, void *arg, size_t more);

/* Queued bytes not yet handed to the kernel. */
PT_API size_t pt_conn_send_queued(const pt_conn_t *c);
/* Bytes of c's output the peer has not acknowledged: queued here, plus what the kernel holds
 * (sent or not; Linux SIOCOUTQ; Windows has no such query and counts the queue only). Worker
 * thread. */
PT_API size_t pt_conn_unacked(const pt_conn_t *c);
/* Asks for one on_drain when every queued byte has been handed to the kernel (at once, from
 * the loop, if nothing is queued). Useful after PT_SEND_COPY sends, whose callbacks run before
 * their bytes leave. 0 or -EINVAL. */
PT_API int pt_conn_notify_empty(pt_conn_t *c);

/* Bytes handed to the kernel on c so far (for send-rate checks). */
PT_API uint64_t pt_conn_bytes_sent(const pt_conn_t *c);

/* ---- closing ----------------------------------------------------------------------------- */

enum {
	PT_CLOSE_GRACEFUL = 0,    /* finish queued sends, FIN, wait briefly for the peer's FIN */
	PT_CLOSE_ABORT = 1,       /* cancel everything, reset the connection (RST) */
};

/* Starts closing c. No further on_data/on_eof/on_timeout/on_drain; queued sends finish
 * (graceful) or complete with -ECANCELED (abort); then on_close runs. Calling it again only
 * upgrades graceful to abort. 0, or -EINVAL. */
PT_API int pt_conn_close(pt_conn_t *c, int how);

/* ---- timers ------------------------------------------------------------------------------ */

typedef struct pt_timer pt_timer_t;
typedef void (*pt_timer_fn)(pt_timer_t *t, void *arg);

/* A timer owned by the caller (embed it in your struct); fields are private. */
struct pt_timer_node_ {
	struct pt_timer_node_ *next_, *prev_;
	uint64_t expires_;
};
struct pt_timer {
	struct pt_timer_node_ n_;
	pt_timer_fn fn_;
	void *arg_;
};

/* Prepares t. Any thread. */
PT_API void pt_timer_init(pt_timer_t *t, pt_timer_fn fn, void *arg);
/* Runs fn on worker w after ms milliseconds (10 ms resolution). Re-arming an armed timer moves
 * it. The timer belongs to w until it fires or is cancelled. w's thread only. 0 or -EINVAL. */
PT_API int pt_timer_arm(pt_worker_t *w, pt_timer_t *t, unsigned ms);
/* Disarms t if armed (no-op otherwise). The owning worker's thread only. */
PT_API void pt_timer_cancel(pt_timer_t *t);
PT_API bool pt_timer_armed(const pt_timer_t *t);

/* ---- posting (PostQueuedCompletionStatus) ------------------------------------------------ */

typedef struct pt_post pt_post_t;
typedef void (*pt_post_fn)(pt_worker_t *w, void *arg);
/* A post node owned by the caller; fields are private. Reusable once fn has started. */
struct pt_post {
	struct pt_post *next_;
	pt_post_fn fn_;
	void *arg_;
};

/* Runs fn(w, arg) on worker w, soon. Any thread, including other workers and threads the
 * engine does not know. The node must stay valid until fn starts; no allocation takes place.
 * Returns 0 (fn runs exactly once, never inside this call, even when posting from w itself),
 * -EINVAL, or -ESHUTDOWN when the worker has exited (fn will not run). While the engine stops,
 * posts still run until the worker exits; a thread that must be sure its posts run holds the
 * worker (pt_worker_hold) until its last post has run. */
PT_API int pt_post(pt_worker_t *w, pt_post_t *node, pt_post_fn fn, void *arg);

/* Keeps worker w from exiting (even when the engine stops) until the matching release, so that
 * posts to it keep running. Any thread. 0, or -ESHUTDOWN when it has exited already. */
PT_API int pt_worker_hold(pt_worker_t *w);
PT_API void pt_worker_release(pt_worker_t *w);

/* ---- TLS (a transport under the connection API; OpenSSL 3) ----------------------------------
 *
 * A TLS context holds certificates and keys, the protocol versions and ciphers, the ALPN list
 * and the session-ticket keys. Attached to listeners (pt_listen_opts.tls), it makes every
 * connection accepted there a TLS connection: the engine runs the handshake on the worker
 * (never blocking), and only then calls on_accept. From then on on_data delivers plaintext,
 * sends take plaintext chunks (memory and file ranges; PT_SEND_MORE and PT_SEND_COPY keep their
 * meaning, PT_SEND_ZC is ignored), pt_conn_bytes_sent and the send-queue limits count
 * plaintext, and a graceful close sends close_notify before the FIN. Callback order and the
 * completion rule are unchanged.
 *
 * A connection whose handshake has not finished is "partial" for the governor once it has sent
 * a byte (shed after silent ones), is closed when handshake_timeout_ms passes, and counts
 * against max_handshakes of its worker (beyond it the oldest handshake in progress is shed).
 * A failed handshake closes the connection without calling the application.
 *
 * Sending: records are small (about one TCP segment) for the first 64 KiB of a connection and
 * after a second without sends, 16 KiB otherwise. File chunks are read into a per-worker buffer
 * and encrypted, or, where the kernel has TLS offload (kTLS, probed once per process) and
 * cfg.ktls is set, sent with sendfile(2) and encrypted by the kernel. */

enum pt_tls_version { PT_TLS_1_2 = 0x0303, PT_TLS_1_3 = 0x0304 };

/* A certificate chain and its private key, both PEM files (they may be the same file). */
struct pt_tls_cert {
	const char *cert_file;     /* leaf first, then intermediates */
	const char *key_file;
};

struct pt_tls_config {
	const struct pt_tls_cert *certs; /* 1..64 pairs; the first is the default. The client's
	                                    SNI name picks the pair whose certificate names it
	                                    (subjectAltName DNS names, else the CN; exact, then
	                                    "*.example.org" one-label wildcards). */
	unsigned ncerts;
	const char *alpn;          /* protocols in preference order, comma-separated, e.g.
	                              "h2,http/1.1"; NULL = "http/1.1". A client offering ALPN
	                              with none of them fails the handshake
	                              (no_application_protocol); one offering none is accepted. */
	unsigned min_version;      /* enum pt_tls_version; 0 = TLS 1.2 */
	unsigned max_version;      /* 0 = TLS 1.3 */
	const char *ciphers;       /* TLS 1.2 list (OpenSSL syntax); NULL = Mozilla intermediate */
	const char *ciphersuites;  /* TLS 1.3 suites; NULL = Mozilla intermediate */
	const char *groups;        /* NULL = "X25519:prime256v1:secp384r1" */
	unsigned ticket_lifetime;  /* seconds a session ticket is accepted; 0 = 3600. Ticket keys
	                              rotate every lifetime/4 and are derived from one secret held
	                              by the context, so all workers (and reloads) share them. */
	const void *ticket_secret; /* >= 32 bytes shared by several servers behind one balancer
	                              (copied), or NULL for a random secret of this process */
	size_t ticket_secret_len;
	bool no_tickets;           /* disable resumption */
	unsigned handshake_timeout_ms; /* from accept to the end of the handshake; 0 = 10000 */
	unsigned max_handshakes;   /* handshakes in progress per worker; 0 = 1024 */
	unsigned record_size;      /* 0 = dynamic (see above); else a fixed plaintext size per
	                              record, 512..16384 */
	bool ktls;                 /* use kernel TLS offload for sends where the kernel has it */
};

/* Fills cfg with the defaults (all zero). Any thread. */
PT_API void pt_tls_config_init(struct pt_tls_config *cfg);

/* Loads the certificates and keys and builds a context. NULL on failure, with a message in
 * err (cap bytes, NUL-terminated) that names the file and the reason (unreadable, not PEM, key
 * does not match the certificate, ...) or the bad option. Strings in cfg are copied. The
 * caller owns the result; free it with pt_tls_destroy after every engine using it is
 * destroyed. Any thread. */
PT_API pt_tls_t *pt_tls_create(const struct pt_tls_config *cfg, char *err, size_t cap);

/* Replaces the certificates, keys and settings of t with those of cfg, atomically: handshakes
 * that start afterwards use them, connections already open keep what they negotiated, and
 * session tickets issued before stay valid (the ticket secret is kept unless cfg gives one).
 * On any error nothing changes and err says why. Any thread, while workers run. 0 or -errno. */
PT_API int pt_tls_reload(pt_tls_t *t, const struct pt_tls_config *cfg, char *err, size_t cap);

/* Frees t. No engine may still use it. Any thread. */
PT_API void pt_tls_destroy(pt_tls_t *t);

/* Whether sends on t's connections use kernel TLS offload (the probe succeeded and cfg.ktls
 * was set). Any thread. */
PT_API bool pt_tls_ktls(const pt_tls_t *t);

/* What a TLS connection negotiated. Strings are NUL-terminated and valid until on_close. */
struct pt_tls_info {
	unsigned version;          /* enum pt_tls_version */
	const char *cipher;        /* OpenSSL name, e.g. "TLS_AES_128_GCM_SHA256" */
	const char *alpn;          /* negotiated protocol, or NULL (none) */
	const char *sni;           /* server name the client asked for, or NULL */
	bool resumed;              /* session resumed from a ticket */
	bool ktls;                 /* sends go through kernel TLS */
	unsigned handshake_us;     /* from the first byte received to the end of the handshake */
};

/* Fills *info for a TLS connection: 0, or -ENOTCONN (not TLS), -EINVAL. Worker thread. */
PT_API int pt_conn_tls_info(const pt_conn_t *c, struct pt_tls_info *info);
/* The negotiated ALPN protocol ("h2", "http/1.1") or NULL (plaintext, or none negotiated).
 * Valid until on_close. Worker thread. */
PT_API const char *pt_conn_alpn(const pt_conn_t *c);
/* The SNI name the client sent, or NULL. Valid until on_close. Worker thread. */
PT_API const char *pt_conn_sni(const pt_conn_t *c);
/* Whether c is a TLS connection. Worker thread. */
PT_API bool pt_conn_is_tls(const pt_conn_t *c);
/* Milliseconds since c was accepted (so a timeout can run from accept, not from on_accept,
 * which on TLS listeners runs after the handshake). Worker thread. */
PT_API unsigned pt_conn_age_ms(const pt_conn_t *c);

/* ---- engine lifecycle -------------------------------------------------------------------- */

/* Creates an engine (no threads yet). cfg may be NULL for defaults. Selects and probes the
 * backend: with PT_BACKEND_URING a kernel without usable io_uring fails here with *err set and
 * a message logged naming the reason. Caller owns the result; free with pt_engine_destroy. */
PT_API pt_engine_t *pt_engine_create(const struct pt_engine_config *cfg, int *err);

/* Starts the worker threads. Each creates its kernel queue and starts accepting. Returns 0 when
 * every worker is running, else -errno (the reason is logged) and no worker is left running. */
PT_API int pt_engine_start(pt_engine_t *e);

/* Begins a graceful stop and returns at once. Each worker stops accepting and closes its
 * listening sockets, after taking the connections the kernel had already queued on them (the
 * kernel moves those still arriving to another socket on the port, such as a new instance's,
 * when net.ipv4.tcp_migrate_req is 1; socket-activated sockets stay open, with their queue, for
 * the next process). Every connection then gets on_stop (or is closed gracefully without one),
 * connections accepted meanwhile included; shutdown_ms after this call, whatever is still open
 * is reset. Any thread. Idempotent. 0 or -errno. */
PT_API int pt_engine_stop_begin(pt_engine_t *e);

/* Graceful stop: pt_engine_stop_begin if not done yet, then waits until every connection has
 * closed (on_close runs for each, on its worker; at most shutdown_ms after the stop began) and
 * joins the threads. Any thread except a worker. Idempotent. 0 or -errno. */
PT_API int pt_engine_stop(pt_engine_t *e);

/* Stops if needed, then frees everything, including listeners. */
PT_API void pt_engine_destroy(pt_engine_t *e);

PT_API unsigned pt_engine_workers(const pt_engine_t *e);
PT_API pt_worker_t *pt_engine_worker(pt_engine_t *e, unsigned i);
PT_API unsigned pt_worker_index(const pt_worker_t *w);
/* The worker whose thread is calling, or NULL on any other thread. Any thread. */
PT_API pt_worker_t *pt_worker_current(void);
PT_API pt_engine_t *pt_worker_engine(const pt_worker_t *w);
/* The worker's clock (CLOCK_MONOTONIC, ms), read once per loop iteration. Worker thread. */
PT_API uint64_t pt_worker_now_ms(const pt_worker_t *w);
/* The same reading in microseconds (taken after each wait for events, so every completion of
 * one batch sees the time the batch arrived): durations without a clock read per request.
 * Worker thread. */
PT_API uint64_t pt_worker_now_us(const pt_worker_t *w);
/* "io_uring" or "epoll". Any thread. */
PT_API const char *pt_engine_backend(const pt_engine_t *e);
/* Per-engine user pointer. Any thread. */
PT_API void pt_engine_set_user(pt_engine_t *e, void *user);
PT_API void *pt_engine_user(const pt_engine_t *e);

/* ---- counters ---------------------------------------------------------------------------- */

struct pt_counters {
	uint64_t conns;            /* open now */
	uint64_t accepts;          /* accepted in total */
	uint64_t closes;
	uint64_t bytes_in, bytes_out;  /* bytes through the sockets (ciphertext on TLS) */
	uint64_t ops_inflight;     /* kernel operations in flight now */
	uint64_t sends, recvs;     /* completed kernel send/receive operations */
	uint64_t recv_bufs;        /* receive buffers consumed (io_uring provided buffers; each
	                              goes back to the ring right after on_data returns) */
	uint64_t buf_starved;      /* receives that found the buffer ring empty (ENOBUFS) */
	uint64_t accept_paused;    /* times accepting was paused (limit or resource error) */
	uint64_t accept_errors;    /* EMFILE/ENFILE/ENOMEM/ENOBUFS on accept */
	uint64_t shed;             /* connections closed to make room (the three below) */
	uint64_t shed_silent;      /* ... that had sent nothing */
	uint64_t shed_partial;     /* ... that had sent part of a message, or were too slow */
	uint64_t shed_idle;        /* ... idle between messages */
	uint64_t fd_reserve_used;  /* EMFILE/ENFILE met by giving up the spare descriptor */
	uint64_t timeouts;         /* on_timeout deliveries */
	uint64_t posts;            /* posted completions run */
	uint64_t send_refused;     /* sends refused with -EAGAIN (backpressure) */
	/* TLS */
	uint64_t tls_handshakes;   /* completed full handshakes */
	uint64_t tls_resumed;      /* completed handshakes that resumed a session (ticket) */
	uint64_t tls_failed;       /* handshakes that failed (the four below, and other errors) */
	uint64_t tls_fail_proto;   /* ... no common version, cipher, group or ALPN protocol */
	uint64_t tls_fail_plain;   /* ... plaintext (not a TLS record) sent to a TLS port */
	uint64_t tls_fail_timeout; /* ... handshake_timeout_ms passed */
	uint64_t tls_fail_shed;    /* ... shed: more than max_handshakes in progress */
	uint64_t tls_errors;       /* established connections ended by a TLS error (bad record,
	                              alert, truncation) */
	uint64_t tls_ktls;         /* connections whose sends went through kernel TLS */
	/* connections open now by governor state (gauges, maintained where the worker lists
	   change; their sum is conns) */
	uint64_t conns_silent;     /* nothing received yet (TLS: no handshake byte) */
	uint64_t conns_partial;    /* PT_CONN_PARTIAL, and TLS handshakes under way */
	uint64_t conns_idle;       /* PT_CONN_IDLE */
	uint64_t conns_busy;       /* PT_CONN_BUSY */
	uint64_t conns_closing;    /* closing: finishing sends, or waiting for the peer's FIN */
	/* PROXY protocol listeners */
	uint64_t proxy_headers;    /* headers accepted */
	uint64_t proxy_untrusted;  /* connections closed at accept: source not in proxy_trusted */
	uint64_t proxy_bad;        /* ... closed: malformed or too long header, or EOF before it */
	uint64_t proxy_timeout;    /* ... closed: the header did not arrive in proxy_timeout_ms */
};

/* Snapshot of worker i's counters (i < workers), or of the sum over all workers (i == -1).
 * Any thread; values are individually consistent, not a transaction. 0 or -EINVAL. */
PT_API int pt_engine_counters(const pt_engine_t *e, int i, struct pt_counters *out);

/* The connection limit in force (max_conns, or the default computed from RLIMIT_NOFILE when
 * the engine was created). Any thread. */
PT_API unsigned pt_engine_max_conns(const pt_engine_t *e);

/* ---- fault simulation (test builds) ----------------------------------------------------------
 * One hook, the policy elsewhere (SQLite's sqlite3FaultSim): at each point where the kernel or
 * malloc could fail, the engine asks pt_fault_sim(point), and a hook that a test harness
 * installs decides whether the operation fails and with which errno; the point then behaves
 * exactly as if the kernel had returned that error. A layer above declares its own points from
 * PT_FAULT_USER up and asks pt_fault_sim at them. Compiled in test builds only (PT_TESTING,
 * make SAN=1); in other builds the engine's points are constants with no cost,
 * pt_fault_hook_set returns -ENOTSUP and pt_fault_sim returns 0. docs/ENGINE.md ("Fault
 * injection") lists the points. */

enum pt_fault_point {
	PT_FAULT_ACCEPT,   /* each accepted connection (io_uring accept CQE, epoll accept4) */
	PT_FAULT_RECV,     /* each receive that returned data (recv CQE, recv(2)) */
	PT_FAULT_SEND,     /* each kernel send attempt (send/sendmsg SQE, sendmsg(2), sendfile(2)) */
	PT_FAULT_SOCKET,   /* each descriptor the engine creates: listening sockets, eventfd, epoll,
	                      io_uring rings */
	PT_FAULT_ALLOC,    /* each allocation the engine asks for, including operation contexts
	                      taken from a lookaside list */
	PT_FAULT_USER = 64 /* the first point of the layers above */
};

/* Returns 0 to let the operation at point go ahead, or the negative errno it fails with. Runs
 * on whatever thread reached the point (any thread), at every point, so it must be thread-safe
 * and must not call into the engine. */
typedef int (*pt_fault_hook_fn)(int point);

/* Installs fn as the hook (NULL: none; nothing fails). Any thread; takes effect at the next
 * point reached. 0, or -ENOTSUP in a build without fault simulation. */
PT_API int pt_fault_hook_set(pt_fault_hook_fn fn);

/* What the hook says of point: 0 (no hook, or go ahead) or a negative errno. Any thread. */
PT_API int pt_fault_sim(int point);

#ifdef __cplusplus
}
#endif
#endif
