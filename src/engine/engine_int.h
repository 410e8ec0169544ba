/*
 * Engine internals, shared by src/engine/ only.
 *
 * Ownership and threads: everything reachable from a struct pt_worker belongs to that worker's
 * thread, except the fields marked "any thread" (the post stack, the wake flag, the counters,
 * the stop flag). A connection is recycled only when its kernel operation count (inflight) is
 * zero and it is closing; kernel completions carry (type, slot index, generation) so a late one
 * for a recycled slot is recognised and dropped.
 *
 * The backend seam: struct pt_backend is the only place io_uring, epoll and IOCP differ. The
 * core (engine.c, conn.c, sendq.c, timer.c, listen.c) never tests which backend runs; what
 * differs between Linux and Windows outside the backends is in plat.h.
 */
#ifndef PT_ENGINE_INT_H
#define PT_ENGINE_INT_H

#include <portico/engine.h>
#include "util/cidr.h"
#include "engine/plat.h"
#include "util/util.h"
#include <pthread.h>
#include <stdatomic.h>

#define PT_TICK_MS 10u
#define PT_WHEEL_SLOTS 4096u            /* 40.96 s horizon; later deadlines wait in rounds */
#define PT_CONN_BLOCK 256u              /* connection objects allocated per block */
#define PT_TX_IOV 64u                   /* iovecs gathered into one kernel send */
#define PT_SENDFILE_MAX (2u << 20)      /* per sendfile call, as nginx's sendfile_max_chunk */
#define PT_SREQ_INLINE 4u               /* chunks stored inside a send request */
#define PT_MAX_CHUNKS 1024u
#define PT_SREQ_FREE_MAX 1024u          /* lookaside depth: contexts kept for reuse */
#define PT_TXOP_FREE_MAX 128u
#define PT_TXQ_FREE_MAX 256u

struct pt_worker;
struct pt_conn;
struct pt_tls_conn;
struct pt_tls_worker;
struct pt_proxy_conn;

/* ---- counters (written by the owner, read by anyone) ---- */
#define CNT_ADD(w, f, n) \
	__atomic_store_n(&(w)->cnt.f, __atomic_load_n(&(w)->cnt.f, __ATOMIC_RELAXED) + (n), \
			 __ATOMIC_RELAXED)
#define CNT_SUB(w, f, n) CNT_ADD(w, f, -(uint64_t)(n))

/* ---- kernel-completion tags (user_data = type:8 | gen:24 | index:32) ---- */
enum pt_ktype {
	PT_K_NONE = 0,
	PT_K_ACCEPT,    /* index = worker listener slot */
	PT_K_RECV,
	PT_K_SEND,
	PT_K_POLLOUT,
	PT_K_CANCEL,
	PT_K_WAKE,
	PT_K_MSG,       /* MSG_RING wake-up from another worker's ring */
	PT_K_IGNORE,    /* completions nobody waits for */
};

static inline uint64_t pt__ud(enum pt_ktype t, uint32_t gen, uint32_t idx)
{
	return ((uint64_t)t << 56) | ((uint64_t)(gen & 0xffffff) << 32) | idx;
}
#define PT_UD_TYPE(ud) ((enum pt_ktype)((ud) >> 56))
#define PT_UD_GEN(ud) ((uint32_t)((ud) >> 32) & 0xffffff)
#define PT_UD_IDX(ud) ((uint32_t)(ud))

/* ---- send requests (the application's operations; lookaside list per worker) ---- */
enum {
	PT_SR_COPIED = 1u << 8,   /* memory chunks point into copy (owned) */
	PT_SR_NOTIFIED = 1u << 9, /* callback has run */
};

struct pt_sreq {
	struct pt_sreq *next;
	pt_send_fn cb;
	void *arg;
	struct pt_chunk *chunks;          /* inline or malloc'd (n > PT_SREQ_INLINE) */
	struct pt_chunk inline_chunks[PT_SREQ_INLINE];
	unsigned n, cur;                  /* chunk count, chunk being sent */
	unsigned flags;                   /* PT_SEND_* | PT_SR_* */
	size_t off;                       /* bytes of chunks[cur] already sent */
	size_t total;                     /* bytes of the whole request */
	size_t left;                      /* bytes not yet handed to the kernel */
	char *copy;                       /* PT_SEND_COPY storage */
	size_t copy_len;
	int err;                          /* first error, reported by the callback */
};

/* A kernel send in flight (io_uring needs the msghdr/iovec until the CQE). */
struct pt_txop {                     /* the scalars first: a completion reads only them */
	struct pt_txop *next;             /* free list */
	size_t len;
	bool zc;
	ssize_t zc_res;                   /* result held until the zero-copy notification */
	struct msghdr msg;
	struct iovec iov[PT_TX_IOV];
};

/* The send queue of a connection (sendq.c), allocated while it has requests queued or a kernel
 * send in flight; an idle connection points at its worker's empty txq_none (read-only), so
 * readers never test for NULL (issue 19: bytes per idle connection). */
struct pt_txq {
	struct pt_sreq *sq_head, *sq_tail;/* send requests in order */
	struct pt_sreq *sq_notify;        /* first request whose callback has not run */
	struct pt_sreq *sq_send;          /* first request with bytes not handed to the kernel */
	size_t sq_bytes;                  /* bytes not handed to the kernel */
	struct pt_txop *tx;               /* kernel send in flight */
};

/* ---- connections ---- */
enum {
	PT_C_LIVE      = 1u << 0,   /* accepted and kept (on_close owed) */
	PT_C_CLOSING   = 1u << 1,
	PT_C_ABORT     = 1u << 2,
	PT_C_EOF       = 1u << 3,   /* receiving ended (on_eof delivered or due) */
	PT_C_PAUSED    = 1u << 4,   /* application paused receiving */
	PT_C_RX_ARMED  = 1u << 5,   /* backend receive active (uring: multishot in flight) */
	PT_C_TX_BUSY   = 1u << 6,   /* a kernel send or writable-wait is in flight */
	PT_C_SHUT_WR   = 1u << 7,   /* FIN sent */
	PT_C_WANT_DRAIN= 1u << 8,   /* a send was refused: on_drain owed */
	PT_C_PENDING   = 1u << 9,   /* on the worker's pending list */
	PT_C_STARVED   = 1u << 10,  /* receive waits for provided buffers */
	PT_C_FINAL     = 1u << 11,  /* cancelling kernel ops; fd closes when inflight == 0 */
	PT_C_PREACCEPT = 1u << 12,  /* TLS handshake or PROXY header pending: the app has not seen c */
	PT_C_GOT_DATA  = 1u << 13,  /* at least one byte received */
	PT_C_LINGER    = 1u << 14,  /* FIN sent, discarding input until the peer's FIN */
	PT_C_EOF_DONE  = 1u << 15,  /* on_eof delivered */
	PT_C_WANT_EMPTY= 1u << 16,  /* on_drain owed when the send queue is empty */
	PT_C_BE_RX     = 1u << 17,  /* backend: a receive is posted (IOCP: zero-byte WSARecv) */
	PT_C_SHED      = 1u << 18,  /* closed to make room (counted in shedding) */
	PT_C_PROXY     = 1u << 20,  /* PROXY header awaited (with PT_C_PREACCEPT): proxy_conn.c */
	PT_C_CONNECTING= 1u << 21,  /* outbound, connect in progress (connect.c) */
	PT_C_STOP_OWED = 1u << 19,  /* the engine stops: on_stop (or a graceful close) is due */
	PT_C_ACKWAIT   = 1u << 22,  /* closing: FIN sent, the peer has not acknowledged all data */
};

struct pt_conn {
	struct pt_worker *w;
	const struct pt_conn_ops *ops;
	union {
		void *user;               /* while in use */
		struct pt_conn *free_next;/* free list, while recycled */
	};
	int fd;
	uint32_t idx, gen;
	uint32_t flags;
	uint32_t inflight;                /* kernel operations not yet finally completed */
	uint8_t list;                     /* enum pt_clist: the worker list holding c */
	uint8_t state;                    /* enum pt_conn_state the application last set */
	int16_t eof_err;                  /* on_eof argument owed (-errno) */
	/* links as pt__cref (slot index + 1, 0: none): 4 bytes each, not 8 */
	uint32_t pend_next;               /* pending list (deferred work) */
	uint32_t l_prev, l_next;          /* the worker list holding c, oldest first */
	uint32_t starve_next;             /* backend: waiting for receive buffers */
	struct pt_timer_node_ timer;      /* the deadline (timer.c: pt__ctimer_*) */
	struct pt_txq *q;                 /* send queue, or &w->txq_none (never NULL) */
	uint64_t sent;                    /* bytes handed to the kernel */
	struct pt_tls_conn *tls;          /* TLS transport state, or NULL (plaintext) */
	struct pt_conn_rare *rare;        /* state few connections need, or NULL */
	uint32_t accept_ms;               /* worker clock at accept (low 32 bits) */
	uint32_t close_by;                /* closing: when the close must be over (same clock) */
};

/* What only some connections need, allocated on first use and freed when c is recycled
 * (issue 19: bytes per idle connection). */
struct pt_conn_rare {
	char *stash;                      /* received while paused, delivered on resume */
	uint32_t stash_len, stash_cap;
	struct pt_proxy_conn *px;         /* PROXY listener: header state and the client address */
};

/* Every accepted connection is on exactly one worker list, ordered by the time it entered it:
 * shedding takes the head of the first non-empty list in this order, so each shed is O(1). */
enum pt_clist {
	PT_L_SILENT,                      /* not a byte received yet */
	PT_L_PARTIAL,                     /* PT_CONN_PARTIAL: part of a message, or too slow */
	PT_L_IDLE,                        /* PT_CONN_IDLE: between messages */
	PT_L_BUSY,                        /* PT_CONN_BUSY: never shed */
	PT_L_CLOSING,
	PT_L__COUNT
};

struct pt_clist_head {
	struct pt_conn *head, *tail;
};

/* ---- listeners ---- */
struct pt_listener {
	int idx;
	int port;
	int shared_fd;                    /* >= 0: one socket for all workers (socket activation) */
	int *fds;                         /* per worker (SO_REUSEPORT) */
	struct pt_listen_opts opts;       /* opts.proxy_trusted is parsed into trusted (NULL) */
	struct pt_cidr trusted[PT_CIDR_MAX];
	unsigned ntrusted;
};

struct pt_wlisten {
	struct pt_listener *l;
	int fd;
	bool armed;                       /* accept active in the backend */
	bool want;                        /* should be accepting (not paused) */
	bool multi;                       /* io_uring: a multishot accept is armed */
	bool ending;                      /* io_uring: ... and being cancelled */
	uint8_t nsingle;                  /* io_uring: single-shot accepts in flight */
};

/* ---- timer wheel ---- */
struct pt_wheel {
	uint64_t now;                     /* current tick (now_ms / PT_TICK_MS) */
	uint64_t done;                    /* ticks up to this one have been run */
	unsigned armed;
	uint64_t bits[PT_WHEEL_SLOTS / 64];
	struct pt_timer_node_ *slot[PT_WHEEL_SLOTS];
};

/* ---- the backend seam ---- */
struct pt_backend {
	const char *name;
	/* Can this backend run here? 0, or -errno with a reason in why. Creator's thread. */
	int (*probe)(struct pt_engine *e, char *why, size_t n);
	int (*worker_init)(struct pt_worker *w);     /* worker thread, before anything else */
	void (*worker_fini)(struct pt_worker *w);    /* worker thread, after every conn is gone */
	int (*accept_start)(struct pt_worker *w, struct pt_wlisten *wl);
	void (*accept_stop)(struct pt_worker *w, struct pt_wlisten *wl);
	/* New connection: register it and start receiving unless paused. */
	int (*conn_start)(struct pt_worker *w, struct pt_conn *c);
	void (*rx_stop)(struct pt_worker *w, struct pt_conn *c);   /* pause or closing */
	void (*rx_start)(struct pt_worker *w, struct pt_conn *c);  /* resume */
	/* Send the gathered iovecs of c->q->tx. Returns bytes sent now (> 0), 0 when submitted (the
	 * backend calls pt__tx_done later), -EAGAIN when the socket is full (the backend waits for
	 * writability and calls pt__tx_writable), or -errno. */
	ssize_t (*send)(struct pt_worker *w, struct pt_conn *c, int msg_flags);
	/* Send up to len bytes of file fd from off: the file chunk at c's send cursor. Returns
	 * bytes sent now (> 0), 0 when the file ended first, -EINPROGRESS when submitted (the
	 * backend calls pt__tx_done later, with c->q->tx NULL), -EAGAIN when the socket is full,
	 * -EINTR to try again, or -errno. */
	ssize_t (*send_file)(struct pt_worker *w, struct pt_conn *c, int fd, off_t off, size_t len);
	/* Optional: start the outbound connect of c (pt_connect) as one operation of the backend
	 * (IOCP: ConnectEx). When it ends the backend clears PT_C_TX_BUSY, after
	 * pt__connect_failed(c, err) if it failed, and makes c pending. 0, or -errno when it
	 * could not start. Without it connect.c uses connect(2) and wait_writable. */
	int (*connect)(struct pt_worker *w, struct pt_conn *c, const struct sockaddr *sa,
		       socklen_t len);
	/* Wait until c is writable, then call pt__tx_writable (file chunks). */
	void (*wait_writable)(struct pt_worker *w, struct pt_conn *c);
	/* Cancel every kernel operation of c; each ends through its normal completion. */
	void (*cancel)(struct pt_worker *w, struct pt_conn *c);
	/* Called just before close(fd) (epoll: deregister). */
	void (*conn_closed)(struct pt_worker *w, struct pt_conn *c);
	/* Submit, wait up to timeout_ms (-1 = forever), dispatch completions. 0 or -errno. */
	int (*poll)(struct pt_worker *w, int timeout_ms);
	/* Make a sleeping poll return. Any thread. */
	void (*wake)(struct pt_worker *w);
	/* Optional: wake target from worker self's own thread without a system call of its own
	 * (io_uring MSG_RING, submitted with self's next batch). */
	void (*wake_from)(struct pt_worker *self, struct pt_worker *target);
};

extern const struct pt_backend pt__uring_backend;
extern const struct pt_backend pt__epoll_backend;
extern const struct pt_backend pt__iocp_backend;

/* backend_linux.c / iocp.c: the platform's choice of backend (config, PORTICO_BACKEND,
 * probing), 0 or -errno; and the one to fall back to when the chosen one's workers failed to
 * start with err, or NULL. Creator's thread. */
int pt__backend_choose(struct pt_engine *e);
const struct pt_backend *pt__backend_fallback(struct pt_engine *e, int err);

/* ---- worker ---- */
struct pt_worker {
	struct pt_engine *e;
	unsigned index;
	pthread_t thread;
	const struct pt_backend *be;
	void *bd;                         /* backend data */
	bool zc_ok;                       /* the backend does zero-copy sends */
	uint64_t now_ms;
	uint64_t now_us;                  /* the same reading, in microseconds */
	struct pt_wheel wheel;
	/* connections */
	char **blocks;                    /* blocks of PT_CONN_BLOCK objects of conn_stride bytes;
	                                     NULL: given back after a burst (pt__conns_trim) */
	size_t conn_stride;               /* sizeof(struct pt_conn) + conn_area, aligned */
	unsigned nblocks, blocks_cap;
	struct pt_conn *conn_free;
	unsigned nconn_free;              /* slots on conn_free */
	unsigned trim_nfree;              /* nconn_free when a trim last found no whole block */
	uint32_t gen_seed;                /* first generation of a new block's slots */
	pt_timer_t trim_timer;            /* housekeeping: gives memory back after a burst */
	uint64_t trim_accepts, trim_ops;  /* counters at the last housekeeping tick */
	struct pt_clist_head lists[PT_L__COUNT];
	unsigned nconns;                  /* live + closing */
	unsigned shedding;                /* shed connections still closing */
	uint64_t shed_log_ms[PT_L_BUSY];  /* last log line per shed cause (rate limit) */
	uint64_t shed_logged[PT_L_BUSY];  /* counter value at that line */
	int reserve_fd;                   /* spare descriptor, given up at EMFILE; -1 = in use */
	bool fd_short;                    /* accept hit EMFILE/ENFILE: resume when one closes */
	struct pt_conn *pend_head, *pend_tail;
	struct pt_sreq *sreq_free;
	struct pt_txop *txop_free;
	unsigned nsreq_free, ntxop_free;
	struct pt_txq txq_none;           /* every idle connection's empty send queue (all zero) */
	struct pt_txq *txq_free;          /* lookaside, linked through sq_head */
	unsigned ntxq_free;
	size_t buffered;                  /* PT_SEND_COPY bytes held */
	struct pt_tls_worker *tlsw;       /* TLS buffers, from the first TLS connection on */
	/* listeners */
	struct pt_wlisten *wl;
	unsigned nwl;
	bool accept_paused;
	pt_timer_t accept_timer;          /* back-off after accept resource errors */
	/* posting (any thread) */
	_Atomic(pt_post_t *) posts;
	atomic_int wake_pending;
	int wake_fd;                      /* eventfd */
	atomic_int msg_fd;                /* io_uring: ring fd for MSG_RING wake-ups from other
	                                     workers; -1 before and after the ring (any thread) */
	/* lifecycle */
	atomic_uint holds;                /* pt_worker_hold: may not exit while > 0 (any thread) */
	atomic_bool exited;               /* the loop ended: posts are refused (any thread) */
	bool stopping;
	bool stop_abort;
	pt_timer_t stop_timer;
	pt_post_t stop_post;
	int start_err;
	struct pt_counters cnt;
};

struct pt_engine {
	struct pt_engine_config cfg;
	const struct pt_backend *be;
	struct pt_worker *workers;
	unsigned nworkers;
	struct pt_listener **listeners;
	unsigned nlisteners;
	atomic_uint conns;                /* governor: live connections, all workers */
	atomic_bool stopping;
	bool started, stopped;
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	unsigned started_workers;
	void *user;
	unsigned setup_flags;             /* io_uring flags that worked (for the log) */
	bool backend_auto;                /* chosen by probing: may still fall back to epoll */
	atomic_bool final_stop;           /* pt_engine_stop (not a failed start): close listeners */
	atomic_bool stop_begun;           /* pt_engine_stop_begin ran: the stop posts are out */
};

/* A connection as a 4-byte link (its slot index + 1; 0: none), and back. w's thread. */
static inline uint32_t pt__cref(const struct pt_conn *c)
{
	return c ? c->idx + 1 : 0;
}

static inline struct pt_conn *pt__cderef(const struct pt_worker *w, uint32_t ref)
{
	if (!ref--)
		return NULL;
	return (struct pt_conn *)(w->blocks[ref / PT_CONN_BLOCK] +
				  (size_t)(ref % PT_CONN_BLOCK) * w->conn_stride);
}

/* engine.c */
void pt__log(struct pt_engine *e, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void pt__pending(struct pt_conn *c);          /* queue c for deferred work in this loop */

/* Reads the clock for this loop iteration: now_us, and now_ms from the same reading. */
static inline void pt__worker_clock(struct pt_worker *w)
{
	w->now_us = pt__now_us();
	w->now_ms = w->now_us / 1000;
}

/* conn_mem.c */
struct pt_conn *pt__conn_alloc(struct pt_worker *w);          /* a free slot, or NULL */
void pt__conn_recycle(struct pt_worker *w, struct pt_conn *c); /* back to the free list */

/* conn.c */
struct pt_conn *pt__conn_get(struct pt_worker *w, uint32_t idx, uint32_t gen);
void pt__accepted(struct pt_worker *w, struct pt_wlisten *wl, int fd);
void pt__accept_error(struct pt_worker *w, struct pt_wlisten *wl, int err);
void pt__rx_data(struct pt_conn *c, const void *data, size_t len);
void pt__rx_plain(struct pt_conn *c, const void *data, size_t len); /* after the transport */
void pt__rx_end(struct pt_conn *c, int err);  /* 0 = EOF */
void pt__op_done(struct pt_conn *c);          /* one kernel op finally completed */
void pt__conn_process(struct pt_conn *c);     /* deferred work */
void pt__conn_timer(struct pt_conn *c);       /* c's deadline passed (timer.c) */
void pt__conn_close_all(struct pt_worker *w, int how);
void pt__conns_free(struct pt_worker *w);
size_t pt__conns_trim(struct pt_worker *w);    /* frees wholly free blocks: bytes freed */
void pt__fd_reserve(struct pt_worker *w);     /* (re)open the spare descriptor if it is used */
bool pt__accept_near_limit(struct pt_worker *w); /* accept one connection at a time */
struct pt_conn *pt__conn_outbound(struct pt_worker *w, int fd); /* pt_connect's object, or NULL */
struct pt_conn_rare *pt__conn_rare(struct pt_conn *c);  /* c->rare, allocated if NULL (or NULL) */

/* connect.c */
void pt__connect_done(struct pt_conn *c);     /* the socket became writable (or failed) */
void pt__connect_failed(struct pt_conn *c, int err); /* backend's connect op failed: -errno */

/* sendq.c */
void pt__tx_run(struct pt_conn *c);           /* push queued bytes to the kernel */
void pt__tx_done(struct pt_conn *c, ssize_t res);
void pt__tx_writable(struct pt_conn *c);
void pt__tx_notify(struct pt_conn *c);        /* run callbacks that are due, in order */
void pt__tx_fail(struct pt_conn *c, int err); /* fail everything queued */
size_t pt__chunk_len(const struct pt_chunk *ch);
void pt__sreq_pool_free(struct pt_worker *w);
void pt__txq_release(struct pt_conn *c);      /* an empty queue goes back: c->q = txq_none */

/* timer.c */
void pt__wheel_init(struct pt_wheel *wh, uint64_t now_ms);
int pt__wheel_timeout(struct pt_worker *w);   /* ms until the next due slot, -1 none */
void pt__wheel_run(struct pt_worker *w);
void pt__timer_bind_thread(struct pt_worker *w); /* this thread runs w */
struct pt_worker *pt__current_worker(void);
/* A connection's deadline: a bare wheel node that calls pt__conn_timer. c's worker thread
 * (arm: -EINVAL on another thread, as pt_timer_arm). */
int pt__ctimer_arm(struct pt_conn *c, unsigned ms);
void pt__ctimer_cancel(struct pt_conn *c);
static inline bool pt__ctimer_armed(const struct pt_conn *c)
{
	return c->timer.expires_ != 0;
}

/* listen.c */
int pt__listen_socket(const struct sockaddr *sa, socklen_t len, const struct pt_listen_opts *o,
		      bool reuseport);
void pt__listeners_free(struct pt_engine *e);
void pt__accept_set(struct pt_worker *w, bool on);   /* pause or resume all listeners */
void pt__listeners_close_stopped(struct pt_worker *w);

/* proxy_conn.c: the PROXY protocol pre-filter (before TLS and on_accept) */
int pt__proxy_listen_opts(struct pt_listener *l);  /* parse l->opts' proxy settings: 0|-EINVAL */
int pt__proxy_accept(struct pt_conn *c, struct pt_listener *l); /* -EACCES: untrusted source */
void pt__proxy_rx(struct pt_conn *c, const void *data, size_t len);
void pt__proxy_eof(struct pt_conn *c);        /* the peer closed before the header ended */
void pt__proxy_timeout(struct pt_conn *c);    /* the header deadline passed */
void pt__proxy_free(struct pt_conn *c);       /* the connection is finished */
/* stop.c: the graceful stop of connections, and the handover hint */
void pt__stop_conns(struct pt_worker *w);     /* owe on_stop to every accepted connection */
void pt__stop_owe(struct pt_conn *c);         /* ... to c, if the worker stops (after accept) */
void pt__stop_deliver(struct pt_conn *c);     /* deferred work: on_stop, or a graceful close */
/* Before binding sa: another socket listens there (a handover) while the kernel would reset
 * the connections queued on a listener that closes: say how to avoid it, once. */
void pt__handover_hint(struct pt_engine *e, const struct sockaddr *sa, socklen_t len);

/* post.c */
void pt__posts_run(struct pt_worker *w);
bool pt__posts_waiting(struct pt_worker *w);

#endif
