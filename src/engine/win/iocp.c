/*
 * The IOCP backend: the engine on Windows I/O completion ports, as the seed describes them.
 *
 * Ports: one completion port per worker. The core's rule is that a connection belongs to one
 * worker thread (no locks on the hot path), which one port shared by all threads cannot give:
 * any thread would dequeue any socket's completions. So each worker waits on its own port
 * (GetQueuedCompletionStatusEx, its timeout driven by the timing wheel), exactly as each Linux
 * worker waits on its own io_uring. The one exception is the listening socket, which Windows
 * lets belong to one port only: it is associated with worker 0's port, every worker posts its
 * own AcceptEx calls on it, and worker 0 forwards a completion that belongs to another worker
 * to that worker's port with PostQueuedCompletionStatus (the accepted socket is then
 * associated with its owner's port). A worker with accepts posted holds worker 0 (so worker 0
 * outlives every forwarded completion).
 *
 * Accept (iocp_accept.c): AcceptEx with a receive buffer (the connection is handed over with its first bytes,
 * so a connection that never sends never costs a connection object), SO_UPDATE_ACCEPT_CONTEXT,
 * a pool of posted accepts per worker and listener refilled to ACCEPT_HIGH when it falls below
 * ACCEPT_LOW. Once a second the worker asks each posted accept socket for SO_CONNECT_TIME and
 * closes those connected for longer than the reap time without a byte (the seed's stale
 * AcceptEx sockets).
 *
 * Receive: a zero-byte WSARecv while idle (no buffer pinned), then non-blocking recv() into the
 * worker's buffer until it would block, then the next zero-byte WSARecv.
 *
 * Send: the core hands one gathered send (c->q->tx) at a time; it goes out as up to SEND_SPLIT
 * WSASends outstanding at once (Winsock completes sends on a socket in order), bounded by
 * WORKER_SENDS outstanding per worker; the core is told when all of them have completed. File
 * chunks: TransmitFile for a file range, TransmitPackets for a file range followed by more
 * chunks of the same request (memory or file).
 *
 * The completion rule: an operation that fails at once posts no completion on Windows, so the
 * backend posts one itself (PostQueuedCompletionStatus with the error), and every operation
 * still reports through the port. Cancellation: CancelIoEx; cancelled operations complete with
 * ERROR_OPERATION_ABORTED.
 */
#include "engine/win/iocp_int.h"
#include "engine/fault.h"
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <winternl.h>

/* Winsock extension functions: the same in every process (asked once, kept per worker). */
LPFN_ACCEPTEX pt__AcceptEx;
LPFN_CONNECTEX pt__ConnectEx;         /* NULL: pt_connect refuses with -ENOTSUP */
static LPFN_TRANSMITFILE pTransmitFile;
static LPFN_TRANSMITPACKETS pTransmitPackets;
static INIT_ONCE ext_once = INIT_ONCE_STATIC_INIT;
static int ext_err;

static int ext_get(SOCKET s, GUID id, void *fn, size_t len)
{
	DWORD n;

	return WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof id, fn, (DWORD)len, &n,
			NULL, NULL) ? pt__sock_err() : 0;
}

/* AcceptEx and TransmitFile are required; TransmitPackets is used where the system has it
 * (Wine 8 answers WSAEINVAL for it: a file range followed by more chunks then goes out as
 * TransmitFile calls and WSASends, one chunk at a time). */
static BOOL CALLBACK ext_load(PINIT_ONCE once, PVOID p, PVOID *ctx)
{
	int fd = pt__sock_stream(AF_INET);

	if (fd < 0) {
		ext_err = fd;
		return TRUE;
	}
	if (!(ext_err = ext_get(S(fd), (GUID)WSAID_ACCEPTEX, &pt__AcceptEx, sizeof pt__AcceptEx)))
		ext_err = ext_get(S(fd), (GUID)WSAID_TRANSMITFILE, &pTransmitFile,
				  sizeof pTransmitFile);
	if (ext_get(S(fd), (GUID)WSAID_TRANSMITPACKETS, &pTransmitPackets, sizeof pTransmitPackets))
		pTransmitPackets = NULL;
	if (ext_get(S(fd), (GUID)WSAID_CONNECTEX, &pt__ConnectEx, sizeof pt__ConnectEx))
		pt__ConnectEx = NULL;
	pt__sock_close(fd);
	return TRUE;
}

static int iocp_probe(struct pt_engine *e, char *why, size_t n)
{
	int err = pt__wsa_init();

	if (!err) {
		InitOnceExecuteOnce(&ext_once, ext_load, NULL, NULL);
		err = ext_err;
	}
	if (err)
		snprintf(why, n, "AcceptEx or TransmitFile unavailable: %s", strerror(-err));
	else if (!pTransmitPackets)
		pt__log(e, 2, "TransmitPackets unavailable: chunk lists go out chunk by chunk");
	return err;
}

/* ---- operation contexts (lookaside list) ---- */

struct iop *pt__iop_get(struct pt_worker *w, int kind)
{
	struct iocp_w *p = I(w);
	struct iop *o = p->free;

	if (pt__fault(PT_FAULT_ALLOC))
		return NULL;
	if (o) {
		p->free = o->next;
		p->nfree--;
	} else if (!(o = malloc(sizeof *o))) {
		return NULL;
	}
	memset(&o->ov, 0, sizeof o->ov);
	o->next = o->lead = NULL;
	o->kind = (uint8_t)kind;
	o->worker = w->index;
	o->err = 0;
	o->s = INVALID_SOCKET;
	return o;
}

void pt__iop_put(struct pt_worker *w, struct iop *o)
{
	struct iocp_w *p = I(w);

	if (!PT_RECYCLE || p->nfree >= PT_TXOP_FREE_MAX) {
		free(o);
		return;
	}
	o->next = p->free;
	p->free = o;
	p->nfree++;
}

/* An operation that failed at once still completes through the port (the completion rule). */
static void post_failed(struct pt_worker *w, struct iop *o, int err)
{
	o->err = err;
	PostQueuedCompletionStatus(I(w)->port, 0, K_FAILED, &o->ov);
}

/* The result of a WSA call that may complete later: 0 pending or done (a completion follows),
 * else the error, posted as the operation's completion. */
void pt__iocp_submitted(struct pt_worker *w, struct iop *o, int rc, int wsa_err)
{
	if (rc == 0 || wsa_err == WSA_IO_PENDING)
		return;
	post_failed(w, o, pt__err_wsa(wsa_err));
}

void pt__iocp_op_count(struct pt_worker *w, struct pt_conn *c, struct iop *o)
{
	o->idx = c->idx;
	o->gen = c->gen;
	c->inflight++;
	CNT_ADD(w, ops_inflight, 1);
}

/* ---- worker ---- */

static void iocp_fini(struct pt_worker *w)
{
	struct iocp_w *p = I(w);

	if (!p)
		return;
	pt_timer_cancel(&p->reap);
	__atomic_store_n(&w->bd, NULL, __ATOMIC_RELEASE);
	if (p->port)
		CloseHandle(p->port);
	while (p->free) {
		struct iop *o = p->free;
		p->free = o->next;
		free(o);
	}
	free(p->pools);
	free(p->rx);
	free(p);
}

static int iocp_init(struct pt_worker *w)
{
	struct iocp_w *p = pt__calloc(1, sizeof *p);

	if (!p)
		return -ENOMEM;
	w->zc_ok = false;
	p->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
	p->rx = pt__malloc(RX_BYTES);
	p->pools = pt__calloc(w->nwl ? w->nwl : 1, sizeof *p->pools);
	if (!p->port || !p->rx || !p->pools) {
		int err = p->port ? -ENOMEM : pt__err_win(GetLastError());
		w->bd = p;
		iocp_fini(w);
		return err;
	}
	pt_timer_init(&p->reap, pt__iocp_reap, w);
	/* worker 0's port receives every listening socket's completions (see the top) */
	for (unsigned i = 0; w->index == 0 && i < w->nwl; i++)
		if (w->wl[i].fd >= 0 &&
		    !CreateIoCompletionPort((HANDLE)S(w->wl[i].fd), p->port, K_OP, 0)) {
			int err = pt__err_win(GetLastError());
			w->bd = p;
			iocp_fini(w);
			return err;
		}
	__atomic_store_n(&w->bd, p, __ATOMIC_RELEASE);   /* other workers wait for worker 0's */
	return 0;
}

/* ---- receive ---- */

static bool want_rx(const struct pt_conn *c)
{
	return (c->flags & PT_C_RX_ARMED) && !(c->flags & (PT_C_PAUSED | PT_C_EOF | PT_C_FINAL));
}

/* A zero-byte WSARecv: completes when data (or EOF, or an error) is there, holding no buffer. */
static void recv0_post(struct pt_worker *w, struct pt_conn *c)
{
	if ((c->flags & PT_C_BE_RX) || !want_rx(c))
		return;
	struct iop *o = pt__iop_get(w, OP_RECV0);
	if (!o) {
		c->flags &= ~PT_C_RX_ARMED;
		pt__rx_end(c, -ENOMEM);
		return;
	}
	pt__iocp_op_count(w, c, o);
	c->flags |= PT_C_BE_RX;
	WSABUF b = { 0, NULL };
	DWORD fl = 0;
	int rc = WSARecv(S(c->fd), &b, 1, NULL, &fl, &o->ov, NULL);
	pt__iocp_submitted(w, o, rc, rc ? WSAGetLastError() : 0);
}

/* Data is waiting: read it into the worker's buffer until the socket would block. */
static void do_read(struct pt_worker *w, struct pt_conn *c)
{
	size_t budget = READ_BUDGET;

	while (want_rx(c) && budget) {
		int n = recv(S(c->fd), I(w)->rx, RX_BYTES, 0);
		if (n > 0) {
			CNT_ADD(w, recvs, 1);
			budget = budget > (size_t)n ? budget - (size_t)n : 0;
			pt__rx_data(c, I(w)->rx, (size_t)n);
			continue;
		}
		int e = n == 0 ? 0 : WSAGetLastError();
		if (e == WSAEWOULDBLOCK || e == WSAEINTR)
			break;
		c->flags &= ~PT_C_RX_ARMED;
		pt__rx_end(c, n == 0 ? 0 : pt__err_wsa(e));
		return;
	}
	recv0_post(w, c);                     /* budget spent: the zero-byte receive completes at
	                                         once, so other connections get their turn */
}

/* The ready list holds a reference (inflight), as the epoll backend's does. */
static void make_ready(struct pt_worker *w, struct pt_conn *c)
{
	if (c->flags & PT_C_STARVED)
		return;
	c->flags |= PT_C_STARVED;
	c->inflight++;
	CNT_ADD(w, ops_inflight, 1);
	c->starve_next = pt__cref(I(w)->ready);
	I(w)->ready = c;
}

static void serve_ready(struct pt_worker *w)
{
	struct pt_conn *c = I(w)->ready;

	I(w)->ready = NULL;
	while (c) {
		struct pt_conn *next = pt__cderef(w, c->starve_next);
		c->starve_next = 0;
		c->flags &= ~PT_C_STARVED;
		if (c->flags & PT_C_TX_BUSY && !c->q->tx)
			pt__tx_writable(c);
		if (!(c->flags & PT_C_BE_RX))
			do_read(w, c);
		pt__op_done(c);
		c = next;
	}
}

static void iocp_rx_start(struct pt_worker *w, struct pt_conn *c)
{
	if (c->flags & PT_C_FINAL)
		return;
	c->flags |= PT_C_RX_ARMED;
	make_ready(w, c);   /* bytes may be waiting already: read them from the loop */
}

static void iocp_rx_stop(struct pt_worker *w, struct pt_conn *c)
{
	c->flags &= ~PT_C_RX_ARMED;       /* a posted zero-byte receive takes nothing: it stays */
}

static int iocp_conn_start(struct pt_worker *w, struct pt_conn *c)
{
	struct iop *o = I(w)->cur_accept;

	if (!CreateIoCompletionPort((HANDLE)S(c->fd), I(w)->port, K_OP, 0))
		return pt__err_win(GetLastError());
	if (!(c->flags & PT_C_PAUSED))
		c->flags |= PT_C_RX_ARMED;
	if (o) {                           /* AcceptEx's first bytes: delivered from the loop */
		I(w)->cur_accept = NULL;
		o->kind = OP_FIRST;
		pt__iocp_op_count(w, c, o);
		PostQueuedCompletionStatus(I(w)->port, (DWORD)o->ov.InternalHigh, K_OP, &o->ov);
	}
	return 0;
}

static void on_first(struct pt_worker *w, struct pt_conn *c, struct iop *o, DWORD n)
{
	if (n == 0) {                      /* connected and closed without a byte */
		c->flags &= ~PT_C_RX_ARMED;
		pt__rx_end(c, 0);
		return;
	}
	CNT_ADD(w, recvs, 1);
	pt__rx_data(c, o->abuf, n);
	if (want_rx(c))
		do_read(w, c);
}

/* ---- send ---- */

/* Cuts c->q->tx's gather list into up to `pieces` WSASends of about equal size. */
static unsigned send_cut(struct pt_txop *t, struct iop **ops, unsigned pieces)
{
	size_t target = t->len / pieces + 1, i = 0, off = 0;
	unsigned k = 0;

	for (unsigned p = 0; p < pieces && i < t->msg.msg_iovlen; p++, k++) {
		struct iop *o = ops[p];
		size_t got = 0;
		unsigned nb = 0;
		while (i < t->msg.msg_iovlen && nb < PT_TX_IOV && (got < target || p == pieces - 1)) {
			size_t take = t->iov[i].iov_len - off;
			if (p < pieces - 1 && got + take > target)
				take = target - got;
			o->buf[nb].buf = (char *)t->iov[i].iov_base + off;
			o->buf[nb++].len = (ULONG)take;
			got += take;
			off += take;
			if (off == t->iov[i].iov_len) {
				i++;
				off = 0;
			}
		}
		o->left = nb;             /* WSABUF count, until posted */
	}
	return k;
}

static ssize_t iocp_send(struct pt_worker *w, struct pt_conn *c, int flags)
{
	struct iocp_w *p = I(w);
	struct pt_txop *t = c->q->tx;
	unsigned pieces = (unsigned)(t->len / SEND_PIECE);
	struct iop *ops[SEND_SPLIT];
	int f = pt__fault(PT_FAULT_SEND);

	if (f)
		return f == -EINTR ? -EAGAIN : f;
	pieces = pieces < 1 ? 1 : pieces > SEND_SPLIT ? SEND_SPLIT : pieces;
	if (p->sends + pieces > WORKER_SENDS)
		pieces = 1;                   /* the worker's bound: one at a time */
	for (unsigned i = 0; i < pieces; i++)
		if (!(ops[i] = pt__iop_get(w, OP_SEND))) {
			while (i--)
				pt__iop_put(w, ops[i]);
			return -ENOMEM;
		}
	pieces = send_cut(t, ops, pieces);
	struct iop *lead = ops[0];
	lead->sum = 0;
	lead->send_err = 0;
	for (unsigned i = 0; i < pieces; i++) {
		struct iop *o = ops[i];
		DWORD nb = o->left;
		o->lead = lead;
		pt__iocp_op_count(w, c, o);
		p->sends++;
		int rc = WSASend(S(c->fd), o->buf, nb, NULL, 0, &o->ov, NULL);
		pt__iocp_submitted(w, o, rc, rc ? WSAGetLastError() : 0);
	}
	lead->left = pieces;
	return 0;
}

/* One WSASend piece completed. The core hears of the send when the last one has. */
static void on_send(struct pt_worker *w, struct pt_conn *c, struct iop *o, DWORD n, int err)
{
	struct iop *lead = o->lead;

	I(w)->sends--;                        /* pt__tx_done counts the send */
	if (err && !lead->send_err)
		lead->send_err = err;
	lead->sum += n;
	bool last = --lead->left == 0;
	if (last && c)
		pt__tx_done(c, lead->send_err ? lead->send_err : (ssize_t)lead->sum);
	if (o != lead)
		pt__iop_put(w, o);
	if (last)
		pt__iop_put(w, lead);
}

/* The file chunk at c's cursor, and following chunks of the same request while they fit:
 * TransmitFile for a lone range, TransmitPackets for a list. */
static ssize_t iocp_send_file(struct pt_worker *w, struct pt_conn *c, int fd, off_t off, size_t len)
{
	struct pt_sreq *r = c->q->sq_send;
	HANDLE h = (HANDLE)_get_osfhandle(fd);
	struct iop *o;
	int f = pt__fault(PT_FAULT_SEND);

	if (f)
		return f == -EINTR ? -EAGAIN : f;
	if (h == INVALID_HANDLE_VALUE)
		return -EBADF;
	if (!(o = pt__iop_get(w, OP_FILE)))
		return -ENOMEM;
	pt__iocp_op_count(w, c, o);
	unsigned k = 0;
	o->tp[k].dwElFlags = TP_ELEMENT_FILE;
	o->tp[k].cLength = (ULONG)len;
	o->tp[k].nFileOffset.QuadPart = off;
	o->tp[k++].hFile = h;
	bool whole = len == r->chunks[r->cur].file.len - r->off;
	for (unsigned i = r->cur + 1; pTransmitPackets && whole && i < r->n && k < TP_MAX; i++) {
		const struct pt_chunk *ch = &r->chunks[i];
		if (ch->kind == PT_CHUNK_MEM && ch->mem.len <= PT_SENDFILE_MAX) {
			o->tp[k].dwElFlags = TP_ELEMENT_MEMORY;
			o->tp[k].cLength = (ULONG)ch->mem.len;
			o->tp[k++].pBuffer = (void *)ch->mem.base;
		} else if (ch->kind == PT_CHUNK_FILE && ch->file.len <= PT_SENDFILE_MAX &&
			   (HANDLE)_get_osfhandle(ch->file.fd) != INVALID_HANDLE_VALUE) {
			o->tp[k].dwElFlags = TP_ELEMENT_FILE;
			o->tp[k].cLength = (ULONG)ch->file.len;
			o->tp[k].nFileOffset.QuadPart = ch->file.offset;
			o->tp[k++].hFile = (HANDLE)_get_osfhandle(ch->file.fd);
		} else {
			break;
		}
	}
	BOOL ok;
	if (k == 1) {
		o->ov.Offset = (DWORD)(uint64_t)off;
		o->ov.OffsetHigh = (DWORD)((uint64_t)off >> 32);
		ok = pTransmitFile(S(c->fd), h, (DWORD)len, 0, &o->ov, NULL, 0);
	} else {
		ok = pTransmitPackets(S(c->fd), o->tp, k, 0, &o->ov, 0);
	}
	pt__iocp_submitted(w, o, ok ? 0 : -1, ok ? 0 : WSAGetLastError());
	return -EINPROGRESS;
}

static void on_file(struct pt_worker *w, struct pt_conn *c, DWORD n, int err)
{
	if (c)
		pt__tx_done(c, err ? err : n ? (ssize_t)n : -EIO);   /* 0 bytes: the file was short */
}

/* Sends complete through the port; nothing waits for room. A backend-level retry (an injected
 * EAGAIN in test builds) comes back from the loop. */
static void iocp_wait_writable(struct pt_worker *w, struct pt_conn *c)
{
	make_ready(w, c);
}

static void iocp_cancel(struct pt_worker *w, struct pt_conn *c)
{
	CancelIoEx((HANDLE)S(c->fd), NULL);   /* each operation completes, aborted */
}

static void iocp_conn_closed(struct pt_worker *w, struct pt_conn *c)
{
	/* closesocket ends the port association */
}

static void iocp_wake(struct pt_worker *w)
{
	struct iocp_w *p = __atomic_load_n(&w->bd, __ATOMIC_ACQUIRE);

	if (p)
		PostQueuedCompletionStatus(p->port, 0, K_WAKE, NULL);
}

/* ---- dispatch ---- */

static void dispatch(struct pt_worker *w, OVERLAPPED_ENTRY *ev)
{
	struct iop *o = (struct iop *)ev->lpOverlapped;
	DWORD n = ev->dwNumberOfBytesTransferred;
	int err = 0;

	if (!o)
		return;                       /* K_WAKE */
	if (o->worker != w->index) {          /* worker 0: another worker's accept */
		struct iocp_w *to = __atomic_load_n(&w->e->workers[o->worker].bd, __ATOMIC_ACQUIRE);
		if (to)
			PostQueuedCompletionStatus(to->port, n, ev->lpCompletionKey, &o->ov);
		return;
	}
	if (ev->lpCompletionKey == K_FAILED)
		err = o->err;
	else if (o->ov.Internal != 0)         /* NTSTATUS: ask Winsock for the error */
		err = pt__err_win(RtlNtStatusToDosError((NTSTATUS)o->ov.Internal));
	if (o->kind == OP_ACCEPT) {
		pt__iocp_accept_done(w, o, n, err);
		return;
	}
	struct pt_conn *c = pt__conn_get(w, o->idx, o->gen);
	switch (o->kind) {
	case OP_FIRST:
		if (c && !err)
			on_first(w, c, o, n);
		pt__iop_put(w, o);
		break;
	case OP_RECV0:
		pt__iop_put(w, o);
		if (!c)
			break;
		c->flags &= ~PT_C_BE_RX;
		if (err && err != -ECANCELED) {
			c->flags &= ~PT_C_RX_ARMED;
			pt__rx_end(c, err);
		} else if (!err) {
			do_read(w, c);
		}
		break;
	case OP_SEND:
		on_send(w, c, o, n, err);
		break;
	case OP_FILE:
		on_file(w, c, n, err);
		pt__iop_put(w, o);
		break;
	case OP_CONNECT:
		pt__iop_put(w, o);
		if (c)
			pt__iocp_connect_done(w, c, err);
		break;
	}
	if (c)
		pt__op_done(c);
}

static int iocp_poll(struct pt_worker *w, int timeout_ms)
{
	struct iocp_w *p = I(w);
	ULONG n = 0;

	if (p->ready) {
		serve_ready(w);
		timeout_ms = (p->ready || w->pend_head || pt__posts_waiting(w)) ? 0 : pt__wheel_timeout(w);
	}
	BOOL ok = GetQueuedCompletionStatusEx(p->port, p->ev, MAX_EVENTS, &n,
					      timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms, FALSE);
	pt__worker_clock(w);
	if (!ok) {
		DWORD e = GetLastError();
		return e == WAIT_TIMEOUT || e == WAIT_IO_COMPLETION ? 0 : pt__err_win(e);
	}
	for (ULONG i = 0; i < n; i++)
		dispatch(w, &p->ev[i]);
	return 0;
}

/* ---- the choice of backend on Windows: IOCP, the only one ---- */

int pt__backend_choose(struct pt_engine *e)
{
	const char *env = getenv("PORTICO_BACKEND");
	char why[256] = "";
	bool env_other = e->cfg.backend == PT_BACKEND_AUTO && env && *env && strcmp(env, "auto") &&
			 strcmp(env, "iocp");

	if (e->cfg.backend == PT_BACKEND_URING || e->cfg.backend == PT_BACKEND_EPOLL || env_other) {
		pt__log(e, 0, "backend %s: Windows has only the iocp backend",
			env_other ? env : e->cfg.backend == PT_BACKEND_URING ? "uring" : "epoll");
		return -ENOTSUP;
	}
	int err = pt__iocp_backend.probe(e, why, sizeof why);
	if (err < 0) {
		pt__log(e, 0, "IOCP backend unavailable: %s", why);
		return err;
	}
	e->be = &pt__iocp_backend;
	return 0;
}

const struct pt_backend *pt__backend_fallback(struct pt_engine *e, int err)
{
	return NULL;
}

const struct pt_backend pt__iocp_backend = {
	.name = "iocp",
	.probe = iocp_probe,
	.worker_init = iocp_init,
	.worker_fini = iocp_fini,
	.accept_start = pt__iocp_accept_start,
	.accept_stop = pt__iocp_accept_stop,
	.conn_start = iocp_conn_start,
	.rx_stop = iocp_rx_stop,
	.rx_start = iocp_rx_start,
	.send = iocp_send,
	.send_file = iocp_send_file,
	.connect = pt__iocp_connect,
	.wait_writable = iocp_wait_writable,
	.cancel = iocp_cancel,
	.conn_closed = iocp_conn_closed,
	.poll = iocp_poll,
	.wake = iocp_wake,
};
