/*
 * TLS transport internals, shared by src/engine/ only (tls_ctx.c: contexts, certificates,
 * SNI, ALPN, tickets; tls_conn.c: the per-connection filter; conn.c and sendq.c call in).
 *
 * Ownership and threads: a pt_tls_t is shared by every worker; its current generation (the
 * SSL_CTXs built from one configuration) is replaced by pt_tls_reload and freed when the last
 * handshake that uses it ends. Everything reachable from a struct pt_tls_conn or a struct
 * pt_tls_worker belongs to the connection's (worker's) thread.
 *
 * Byte flow of a TLS connection:
 *   receive: provided buffer -> pt__tls_rx (the BIO reads straight from it) -> SSL_read into
 *            the worker's plaintext buffer -> pt__rx_plain (stash or on_data)
 *   send:    plaintext requests (the ordinary send queue) -> pt__tls_take encrypts up to four
 *            records from the send cursor into a ciphertext buffer -> sendq.c sends it ->
 *            pt__tls_sent; when a buffer is fully in the kernel, its plaintext bytes complete
 *            (tx_advance), so callbacks keep their order and "complete when in the kernel".
 *   Records OpenSSL writes on its own (handshake flights, tickets, alerts, close_notify) join
 *   the same ciphertext stream, in order, carrying no plaintext.
 */
#ifndef PT_TLS_INT_H
#define PT_TLS_INT_H

#include "engine/engine_int.h"

/* OpenSSL's SSL, named without its header so that the core (conn.c, sendq.c, engine.c) builds
 * where OpenSSL is not available (the Windows build: win/tls_win.c) */
struct ssl_st;

#define PT_TLS_REC_MAX 16384u          /* plaintext bytes per full record */
#define PT_TLS_REC_SMALL 1369u         /* one TCP segment with the record overhead */
#define PT_TLS_REC_OVERHEAD 256u       /* bound on header + nonce + tag + padding */
#define PT_TLS_FILL (4u * PT_TLS_REC_MAX) /* plaintext encrypted per ciphertext buffer */
#define PT_TLS_TAIL 4096u              /* the last bytes of the queue may join a full buffer */
#define PT_TLS_BUF_CAP (4u * (PT_TLS_REC_MAX + PT_TLS_REC_OVERHEAD) + PT_TLS_TAIL + PT_TLS_REC_OVERHEAD)
#define PT_TLS_SMALL_UNTIL (64u * 1024) /* small records for the first bytes of a connection */
#define PT_TLS_IDLE_MS 1000u           /* ... and again after this long without a send */
#define PT_TLS_BUF_FREE_MAX 64u        /* ciphertext buffers kept per worker for reuse */

/* A ciphertext buffer: bytes [off, len) still to go to the kernel. */
struct pt_tls_buf {
	struct pt_tls_buf *next;          /* worker free list */
	char *base;
	size_t cap, len, off;
	size_t pt_bytes;                  /* plaintext bytes whose records it holds */
	bool more;                        /* more plaintext follows (MSG_MORE) */
};

struct pt_tls_gen;

struct pt_tls_conn {
	struct ssl_st *ssl;
	struct pt_tls_gen *gen;           /* held while the connection lives (SNI and ticket
	                                     callbacks read it; reloads free it after) */
	struct pt_listener *l;            /* whose on_accept runs after the handshake */
	struct pt_tls_buf *out;           /* BIO writes append here (not in the kernel) */
	struct pt_tls_buf *fly;           /* being sent: bytes may be in a kernel operation */
	const unsigned char *in;          /* BIO reads take from here (inside pt__tls_rx) */
	size_t in_len;
	struct pt_tls_conn *hs_prev, *hs_next; /* worker list of handshakes in progress */
	struct pt_conn *c;
	uint64_t enc_bytes;               /* plaintext encrypted so far (record sizing) */
	uint64_t last_tx_ms;
	uint64_t start_us;                /* first byte received (handshake duration) */
	unsigned record_size;             /* fixed plaintext per record, 0 = dynamic */
	unsigned handshake_us;
	bool established;
	bool in_handshake_list;
	bool dead;                        /* a fatal TLS error: no more SSL calls but free */
	bool shut;                        /* close_notify queued (or not wanted) */
	bool ktls;                        /* sends are encrypted by the kernel */
	char *sni;                        /* copy of the server name, or NULL */
	char *alpn;                       /* copy of the negotiated protocol, or NULL */
};

/* Per-worker TLS state, created with the worker's first TLS connection. */
struct pt_tls_worker {
	unsigned char plain[PT_TLS_REC_MAX];     /* SSL_read output */
	unsigned char rec[PT_TLS_REC_MAX];       /* a record gathered from small pieces */
	unsigned char ra[PT_TLS_FILL + PT_TLS_TAIL]; /* file bytes read ahead: one pread per buffer */
	struct pt_tls_buf *buf_free;
	unsigned nbuf_free;
	struct pt_tls_conn *hs_head, *hs_tail;   /* handshakes in progress, oldest first */
	unsigned nhandshakes;
};

/* tls_ctx.c */
struct pt_tls_gen *pt__tls_gen_get(struct pt_tls *t);   /* a counted reference */
void pt__tls_gen_put(struct pt_tls_gen *g);
struct ssl_st *pt__tls_ssl_new(struct pt_tls_gen *g);
bool pt__tls_use_ktls(const struct pt_tls_gen *g);
unsigned pt__tls_hs_timeout(const struct pt_tls_gen *g);
unsigned pt__tls_max_handshakes(const struct pt_tls_gen *g);
unsigned pt__tls_record_size(const struct pt_tls_gen *g);    /* 0 = dynamic */
void pt__tls_ssl_error(char *err, size_t cap, const char *what, const char *file);

/* tls_conn.c */
int pt__tls_accept(struct pt_conn *c, struct pt_listener *l);   /* 0 or -errno */
void pt__tls_rx(struct pt_conn *c, const void *data, size_t len);
void pt__tls_eof(struct pt_conn *c);           /* the peer closed before the handshake ended */
int pt__tls_rx_end(struct pt_conn *c);         /* the peer's FIN: 0, or -EPROTO mid-record */
void pt__tls_timeout(struct pt_conn *c);       /* the handshake deadline passed */
/* The ciphertext buffer to send next into *b (encrypting from the send cursor if needed; NULL
 * when there is nothing to send). 0, or -errno when the stream broke (a short file, a read
 * error, a TLS failure): the caller resets the connection. */
int pt__tls_take(struct pt_conn *c, struct pt_tls_buf **b);
/* n ciphertext bytes of the buffer pt__tls_take returned reached the kernel; returns the
 * plaintext bytes that are now completely sent. */
size_t pt__tls_sent(struct pt_conn *c, size_t n);
/* Graceful close: queues close_notify once; true while ciphertext is still to be sent. */
bool pt__tls_shutdown(struct pt_conn *c);
void pt__tls_free(struct pt_conn *c);          /* the connection is finished */
void pt__tls_worker_free(struct pt_worker *w);

/* conn.c: run the application's on_accept (after a TLS handshake). false: it refused. */
bool pt__conn_accept_app(struct pt_conn *c, struct pt_listener *l);

#endif
