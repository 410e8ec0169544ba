/*
 * Internals of the IOCP backend (src/engine/win/), shared by iocp.c (workers, receive, send,
 * dispatch), iocp_accept.c (the AcceptEx pools) and iocp_connect.c (ConnectEx). Everything here belongs to one worker's
 * thread, except the extension function pointers (set once per process).
 */
#ifndef PT_ENGINE_IOCP_INT_H
#define PT_ENGINE_IOCP_INT_H

#include "engine/engine_int.h"

#define RX_BYTES (64u << 10)           /* the worker's receive buffer */
#define READ_BUDGET (256u << 10)       /* per connection per completion */
#define ACCEPT_LOW 4u                  /* refill the pool below this many posted accepts */
#define ACCEPT_HIGH 16u                /* ... up to this many */
#define ACCEPT_DATA 2048u              /* the first receive of AcceptEx */
#define ACCEPT_ADDR ((DWORD)sizeof(struct sockaddr_in6) + 16)
#define REAP_SEC 10u                   /* connected without a byte: reaped (defer_accept_sec
                                          overrides) */
#define SEND_SPLIT 4u                  /* WSASends outstanding per connection */
#define SEND_PIECE (64u << 10)         /* smallest piece worth a WSASend of its own */
#define WORKER_SENDS 1024u             /* WSASends outstanding per worker */
#define TP_MAX 16u                     /* TransmitPackets elements per call */
#define MAX_EVENTS 256u

enum { K_OP = 0, K_WAKE = 1, K_FAILED = 2 };   /* completion keys */
enum { OP_ACCEPT = 1, OP_FIRST, OP_RECV0, OP_SEND, OP_FILE, OP_CONNECT };

struct iop {
	OVERLAPPED ov;                    /* first: the OVERLAPPED is the operation */
	struct iop *next;                 /* free list; the accept pool */
	struct iop *lead;                 /* OP_SEND: the first piece, which counts for all */
	uint8_t kind;
	unsigned worker;                  /* the worker that posted it */
	uint32_t idx, gen;                /* the connection; OP_ACCEPT: idx = listener slot */
	int err;                          /* K_FAILED: the immediate failure, -errno */
	unsigned left;                    /* OP_SEND lead: pieces not yet completed */
	size_t sum;                       /* OP_SEND lead: bytes of completed pieces */
	int send_err;                     /* OP_SEND lead: first error */
	SOCKET s;                         /* OP_ACCEPT: the socket to accept into */
	union {
		char abuf[ACCEPT_DATA + 2 * ACCEPT_ADDR];
		WSABUF buf[PT_TX_IOV];
		TRANSMIT_PACKETS_ELEMENT tp[TP_MAX];
	};
};

struct pool {                             /* posted accepts of one listener on one worker */
	struct iop *head;
	unsigned n;
	bool on;                          /* refilling */
};

struct iocp_w {
	HANDLE port;
	char *rx;
	struct iop *free;
	unsigned nfree;
	unsigned sends;                   /* WSASends outstanding on this worker */
	unsigned accepts;                 /* accepts posted, all listeners */
	bool holding;                     /* accepts posted: holds this worker and worker 0 (whose
	                                     port gets them) until they have all completed */
	struct pool *pools;               /* one per listener slot */
	struct iop *cur_accept;           /* the accept being handed to pt__accepted */
	struct pt_conn *ready;            /* to read (resumed), or to tell writable */
	pt_timer_t reap;
	OVERLAPPED_ENTRY ev[MAX_EVENTS];
};


static inline struct iocp_w *I(struct pt_worker *w)
{
	return w->bd;
}

static inline SOCKET S(int fd)
{
	return (SOCKET)(intptr_t)fd;
}

extern LPFN_ACCEPTEX pt__AcceptEx;
extern LPFN_CONNECTEX pt__ConnectEx;

/* A per-operation context from the worker's lookaside list (NULL: no memory), and back. */
struct iop *pt__iop_get(struct pt_worker *w, int kind);
void pt__iop_put(struct pt_worker *w, struct iop *o);
/* After a WSA call that may complete later (rc 0 or SOCKET_ERROR with wsa_err): an immediate
 * failure is posted to the worker's port as the operation's completion. */
void pt__iocp_submitted(struct pt_worker *w, struct iop *o, int rc, int wsa_err);

/* o is c's operation now (c->inflight counts it until pt__op_done). */
void pt__iocp_op_count(struct pt_worker *w, struct pt_conn *c, struct iop *o);

/* iocp_connect.c */
int pt__iocp_connect(struct pt_worker *w, struct pt_conn *c, const struct sockaddr *sa,
		     socklen_t len);
void pt__iocp_connect_done(struct pt_worker *w, struct pt_conn *c, int err);

/* iocp_accept.c */
int pt__iocp_accept_start(struct pt_worker *w, struct pt_wlisten *wl);
void pt__iocp_accept_stop(struct pt_worker *w, struct pt_wlisten *wl);
void pt__iocp_accept_done(struct pt_worker *w, struct iop *o, DWORD n, int err);
void pt__iocp_reap(pt_timer_t *t, void *arg);   /* the once-a-second SO_CONNECT_TIME check */

#endif
