/*
 * portico-load internals: a load generator on Portico's own engine. One engine worker per
 * thread (-t); each worker opens its share of the connections (-c) with pt_connect and keeps
 * them busy until the run ends. Every callback of a connection runs on its worker, so the
 * per-connection and per-worker state here needs no locks; the main thread only reads the
 * per-worker statistics after the workers stopped counting (a post to each, see main.c).
 *
 * Layers inside a connection: transport (plaintext, or TLS with OpenSSL over memory BIOs:
 * tls.c) carries the protocol (HTTP/1.1: h1.c with the parser in resp.c; HTTP/2 on
 * libnghttp2: h2.c). Request bytes are built once per run and never copied per request on
 * plaintext HTTP/1.1 (sends point at them).
 */
#ifndef PT_LOAD_H
#define PT_LOAD_H

#include <portico/engine.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include "hist.h"
#include "resp.h"

#define PIPE_MAX 1024u            /* --pipeline and --streams limit (a transmit's chunk limit) */
#define MAX_HEADERS 32u
#define MAX_URLS 64u
#define BATCH_AUTO (~0u)          /* --batch not given: from the requests kept outstanding */
#define BATCH_MAX 64u             /* the automatic --batch at most */

struct h2nv;                      /* h2.c: nghttp2 name/value arrays per URL */

/* One URL: the request it stands for, prebuilt. */
struct url {
	char *path;                   /* with the query */
	char *req;                    /* HTTP/1.1 request bytes */
	size_t req_len;
};

struct opts {
	unsigned conns, threads, pipeline, streams, timeout_ms;
	unsigned batch, batch_us;     /* engine batch_wait (0: off) and batch_wait_us */
	double duration;
	bool new_conn, h2, tls, head, quiet;
	const char *json;             /* file, "-" for stdout, or NULL */
	const char *headers[MAX_HEADERS];
	unsigned nheaders;
	char host[256];               /* as in the URL (Host, :authority, SNI) */
	char authority[300];          /* host[:port] as the URL gave it */
	char port[8];
	struct sockaddr_storage sa;
	socklen_t salen;
	struct url urls[MAX_URLS];
	unsigned nurls;
	struct h2nv *nv;              /* h2 request headers per URL */
};

struct stats {
	uint64_t sent, done;          /* requests sent; responses completed */
	uint64_t bytes_in, body_in;   /* bytes received (plaintext, heads too); body bytes */
	uint64_t connects;            /* connections established */
	uint64_t err_connect, err_read, err_timeout, err_parse, err_write;
	uint64_t status[6];           /* [0] other, [1] 1xx ... [5] 5xx */
};

struct run;

struct lworker {
	struct run *run;
	pt_worker_t *w;
	unsigned index;
	struct lconn *conns;
	unsigned nconns;
	bool counting;                /* statistics are being kept (cleared by the stop post) */
	bool ending;                  /* no new connections or requests */
	struct stats st;
	struct hist hist;
	pt_timer_t tick;              /* request timeouts */
	pt_post_t post_start, post_stop;
	SSL_SESSION *session;         /* the last TLS session, for resumption (--new-conn) */
	unsigned char rbuf[16384];    /* TLS plaintext */
	char hc[256];                 /* the last response head parsed whole (h1.c), its length */
	size_t hc_len;                /* (0: none yet) and its parse */
	struct resp hc_r;
};

struct lconn {
	struct lworker *lw;
	pt_conn_t *c;                 /* NULL while not connected */
	bool connecting, closing;
	uint64_t conn_start_us;
	uint64_t last_progress_ms;
	pt_timer_t retry;             /* reconnect after a failure */
	/* HTTP/1.1 */
	unsigned outstanding;         /* requests sent, responses not complete */
	unsigned next_url;
	unsigned ring_head;           /* send times of the outstanding requests, oldest first */
	uint64_t *sent_us;            /* --pipeline entries (a ring; outstanding <= --pipeline) */
	uint64_t sent_one;            /* sent_us without pipelining */
	struct resp r;
	bool in_body;
	bool want_close;              /* the last response said close (or --new-conn) */
	char *head;                   /* a head split across reads */
	size_t head_len;
	/* TLS */
	SSL *ssl;
	BIO *rbio, *wbio;
	bool hs_done;
	/* HTTP/2 */
	void *h2;                     /* nghttp2_session */
	unsigned h2_open;             /* streams open */
	unsigned h2_made;             /* streams started on this connection */
	struct h2slot *slots;
	unsigned slot_free;
};

struct run {
	struct opts o;
	pt_engine_t *e;
	SSL_CTX *ssl_ctx;
	struct lworker *workers;
	uint64_t t_start_us, t_stop_us;
};

/* main.c */
uint64_t now_us(void);

/* conn.c: the connection life cycle and the transport */
void lconn_open(struct lconn *lc);
/* Protocol bytes (plaintext) in; the transport is ready (connected, TLS handshake done). */
void lconn_deliver(struct lconn *lc, const char *data, size_t len);
void lconn_ready(struct lconn *lc);
void lconn_fail(struct lconn *lc, uint64_t *counter);   /* count, abort, reconnect */
int lconn_send(struct lconn *lc, const struct pt_chunk *ch, unsigned n, bool copy);
void lworker_start(pt_worker_t *w, void *arg);
void lworker_stop(pt_worker_t *w, void *arg);
void record(struct lconn *lc, unsigned status, uint64_t start_us);
bool can_start(const struct lconn *lc);

/* h1.c */
void h1_start(struct lconn *lc);
void h1_rx(struct lconn *lc, const char *data, size_t len);
void h1_eof(struct lconn *lc);
void h1_reset(struct lconn *lc);

/* h2.c */
int h2_setup(struct opts *o);                 /* request headers per URL; 0 or -ENOMEM */
int h2_start(struct lconn *lc);
void h2_rx(struct lconn *lc, const char *data, size_t len);
void h2_reset(struct lconn *lc);

/* tls.c */
SSL_CTX *tls_client_ctx(bool h2, char *err, size_t cap);
int tls_start(struct lconn *lc);
void tls_rx(struct lconn *lc, const char *data, size_t len);
int tls_send(struct lconn *lc, const struct pt_chunk *ch, unsigned n);
void tls_reset(struct lconn *lc);

#endif
