/*
 * The io_uring backend: one ring per worker, created inside the worker thread.
 *
 *  - setup flags: SINGLE_ISSUER|DEFER_TASKRUN, else COOP_TASKRUN, else none (probed here);
 *  - accept: multishot accept per listener; a final CQE (error, cancel) ends it;
 *  - receive: multishot recv selecting from a per-worker provided-buffer ring, so an idle
 *    connection holds no buffer; a buffer goes back to the ring right after on_data. A final
 *    CQE on a live connection (ENOBUFS, CQ overflow, EAGAIN, cancel for pause) re-arms; with
 *    ENOBUFS the connection waits on a starved list until buffers return. Data stays in the
 *    socket meanwhile, so nothing is lost or reordered;
 *  - send: one SEND/SENDMSG (or SEND_ZC/SENDMSG_ZC) in flight per connection, MSG_WAITALL so
 *    the kernel finishes short sends itself;
 *  - writable waits for sendfile: oneshot POLL_ADD(POLLOUT);
 *  - wake-ups from other threads: an eventfd with a multishot poll.
 * user_data = (type, connection generation, slot index): see engine_int.h.
 *
 * Fault injection (test builds, fault.h): an injected accept or receive failure arrives on a
 * CQE that still has IORING_CQE_F_MORE, where a real error would have ended the multishot; the
 * handlers cancel the multishot then, so its final CQE (-ECANCELED) leaves the state exactly
 * as a real final error would. An injected send failure replaces the send with a NOP whose
 * completion carries the error (nothing is sent, as when the kernel fails a send).
 */
#include "engine/engine_int.h"
#include "engine/fault.h"
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

struct uring_w {
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	char *bufs;
	size_t bufs_bytes;
	unsigned nbufs, buf_size, br_added;
	unsigned nposted;                /* buffers in circulation (grows on starvation) */
	uint64_t rx_bufs, trim_mark;     /* buffers received into; the count at the last check */
	bool bufs_dirty;                 /* buffer pages touched since the last trim */
	pt_timer_t trim_timer;
	struct pt_conn *starved;
	uint64_t wake_val;
	bool batch_idle;                 /* a batch wait found nothing (see batch_enter) */
};

static inline struct uring_w *U(struct pt_worker *w)
{
	return w->bd;
}

static struct io_uring_sqe *sqe_get(struct uring_w *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (!sqe) {
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

static inline void op_started(struct pt_conn *c)
{
	c->inflight++;
	CNT_ADD(c->w, ops_inflight, 1);
}

/* ---- probing ---- */

static int kernel_at_least(int maj, int min)
{
	struct utsname u;
	int a = 0, b = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &a, &b) != 2)
		return 1;   /* unknown: let setup decide */
	return a > maj || (a == maj && b >= min);
}

static int probe_opcodes(struct io_uring *ring, char *why, size_t n)
{
	static const struct { int op; const char *name; } need[] = {
		{ IORING_OP_ACCEPT, "ACCEPT" }, { IORING_OP_RECV, "RECV" },
		{ IORING_OP_SEND, "SEND" }, { IORING_OP_SENDMSG, "SENDMSG" },
		{ IORING_OP_POLL_ADD, "POLL_ADD" }, { IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL" },
		{ IORING_OP_PROVIDE_BUFFERS, "PROVIDE_BUFFERS" },
	};
	struct io_uring_probe *p = io_uring_get_probe_ring(ring);

	if (!p) {
		snprintf(why, n, "the opcode probe failed");
		return -EOPNOTSUPP;
	}
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
		if (!io_uring_opcode_supported(p, need[i].op)) {
			snprintf(why, n, "the kernel lacks IORING_OP_%s", need[i].name);
			io_uring_free_probe(p);
			return -EOPNOTSUPP;
		}
	}
	io_uring_free_probe(p);
	return 0;
}

/* Locked memory one worker's ring and buffer ring take (kernel 6.x accounting, see
 * shared/research/engine.md 2.10): SQEs 64 B + SQ index 4 B per entry, CQEs 16 B x 4, 16 B per
 * provided buffer, plus a page of ring headers for each. Buffers themselves are not counted. */
static size_t ring_bytes(unsigned entries, unsigned nbufs)
{
	size_t page = 4096;
	size_t sq = (size_t)entries * (64 + 4) + page, cq = (size_t)entries * 4 * 16 + page;
	size_t br = ((size_t)nbufs * 16 + page - 1) / page * page;

	return sq + cq + br;
}

/* Sizes the rings to fit RLIMIT_MEMLOCK (raising the soft limit to the hard one first), halving
 * ring entries and then receive buffers down to 64 each. -ENOMEM with what is needed when even
 * that does not fit. */
static int memlock_budget(struct pt_engine *e, char *why, size_t n)
{
	struct pt_engine_config *c = &e->cfg;
	struct rlimit rl;

	/* root is charged too unless it has CAP_IPC_LOCK, and a server may drop to another user
	 * before its workers create their rings: budget whenever the limit is finite */
	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
		rl.rlim_cur = RLIM_INFINITY;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_MEMLOCK, &rl);
		getrlimit(RLIMIT_MEMLOCK, &rl);
	}
	if (c->memlock_budget && (rl.rlim_cur == RLIM_INFINITY || c->memlock_budget < rl.rlim_cur))
		rl.rlim_cur = c->memlock_budget;    /* the configured budget is the tighter bound */
	if (rl.rlim_cur == RLIM_INFINITY)
		return 0;
	size_t budget = rl.rlim_cur / 10 * 9;   /* leave room for rings still being torn down */
	unsigned ent = c->ring_entries, bufs = c->recv_buf_count;
	while (c->workers * ring_bytes(ent, bufs) > budget && (ent > 64 || bufs > 64)) {
		if (ent > 64)
			ent /= 2;
		else
			bufs /= 2;
	}
	size_t need = c->workers * ring_bytes(ent, bufs);
	if (need > budget) {
		snprintf(why, n, "%s is %llu KiB but %u workers need %zu KiB of locked memory for their "
			 "rings (raise it: ulimit -l, or LimitMEMLOCK= in systemd; or use fewer workers)",
			 rl.rlim_cur == c->memlock_budget ? "the memlock budget" : "RLIMIT_MEMLOCK",
			 (unsigned long long)rl.rlim_cur / 1024, c->workers, need / 1024 + 1);
		return -ENOMEM;
	}
	if (ent != c->ring_entries || bufs != c->recv_buf_count)
		pt__log(e, 1, "%s %llu KiB: rings shrunk to %u entries and %u receive buffers per worker",
			rl.rlim_cur == c->memlock_budget ? "memlock budget" : "RLIMIT_MEMLOCK",
			(unsigned long long)rl.rlim_cur / 1024, ent, bufs);
	c->ring_entries = ent;
	c->recv_buf_count = bufs;
	return 0;
}

static int uring_probe(struct pt_engine *e, char *why, size_t n)
{
	struct io_uring ring;
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
	int disabled = 0, err;

	if (f) {
		if (fscanf(f, "%d", &disabled) != 1)
			disabled = 0;
		fclose(f);
	}
	if (disabled == 2) {
		snprintf(why, n, "disabled by kernel.io_uring_disabled=2");
		return -EPERM;
	}
	if (!kernel_at_least(6, 1)) {
		snprintf(why, n, "kernel older than 6.1 (multishot receive and DEFER_TASKRUN needed)");
		return -ENOSYS;
	}
	if ((err = io_uring_queue_init(8, &ring, 0)) < 0) {
		snprintf(why, n, "io_uring_setup failed: %s%s", strerror(-err),
			 err == -EPERM ? (disabled ? " (kernel.io_uring_disabled=1)" :
					  " (blocked, e.g. by a seccomp profile)") :
			 err == -ENOMEM ? " (RLIMIT_MEMLOCK too small)" :
			 err == -ENOSYS ? " (no io_uring in this kernel)" : "");
		return err;
	}
	err = probe_opcodes(&ring, why, n);
	io_uring_queue_exit(&ring);
	return err < 0 ? err : memlock_budget(e, why, n);
}

/* ---- worker setup ---- */

static int ring_init(struct pt_worker *w, struct uring_w *u)
{
	static const unsigned modes[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		0,
	};
	unsigned entries = w->e->cfg.ring_entries;
	int err = -EINVAL, injected = pt__fault(PT_FAULT_SOCKET);   /* test builds: setup fails */

	for (size_t i = 0; i < sizeof modes / sizeof modes[0] && !injected; i++) {
		struct io_uring_params p = { 0 };
		p.flags = modes[i] | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		err = io_uring_queue_init_params(entries, &u->ring, &p);
		if (err == 0) {
			/* every worker stores it (the same value): atomically, they race */
			__atomic_store_n(&w->e->setup_flags, p.flags, __ATOMIC_RELAXED);
			break;
		}
		if (err != -EINVAL)
			break;
	}
	if (injected)
		err = injected;
	if (err < 0) {
		pt__log(w->e, 0, "worker %u: io_uring_setup: %s%s", w->index, strerror(-err),
			err == -ENOMEM ? " (RLIMIT_MEMLOCK too small for the ring; lower ring_entries)" : "");
		return err;
	}
	io_uring_register_ring_fd(&u->ring);
	unsigned iowq[2] = { 2, 2 };   /* we never want io-wq threads; cap them if something punts */
	io_uring_register_iowq_max_workers(&u->ring, iowq);
	struct io_uring_probe *pr = io_uring_get_probe_ring(&u->ring);
	w->zc_ok = pr && io_uring_opcode_supported(pr, IORING_OP_SEND_ZC) &&
		   io_uring_opcode_supported(pr, IORING_OP_SENDMSG_ZC);
	if (pr)
		io_uring_free_probe(pr);
	return 0;
}

static void buf_return(struct uring_w *u, unsigned bid)
{
	io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * u->buf_size, u->buf_size, (unsigned short)bid,
			      io_uring_buf_ring_mask(u->nbufs), (int)u->br_added++);
}

static void buf_flush(struct uring_w *u)
{
	if (u->br_added) {
		io_uring_buf_ring_advance(u->br, (int)u->br_added);
		u->br_added = 0;
	}
}

/* Buffers enter circulation 64 at a time, more only when the ring runs dry: the ring is FIFO,
 * so every buffer in it gets touched in turn, and memory then follows the load instead of the
 * configured maximum (an idle server touches 256 KiB, not recv_buf_count x recv_buf_size). */
#define BUF_STEP 64u

static bool buf_grow(struct uring_w *u)
{
	unsigned end = u->nposted + BUF_STEP < u->nbufs ? u->nposted + BUF_STEP : u->nbufs;

	if (end == u->nposted)
		return false;
	for (unsigned i = u->nposted; i < end; i++)
		buf_return(u, i);
	u->nposted = end;
	buf_flush(u);
	return true;
}

/* A burst (thousands of connections sending at once) grows the buffer ring, and FIFO reuse
 * then keeps every page of it resident. Once a worker has received nothing for a second, the
 * pages go back to the kernel (MADV_DONTNEED; the ring still names the buffers, and a receive
 * into one faults in a zero page). Safe: between completion batches no buffer is ours, and the
 * kernel fills provided buffers only inside this thread's io_uring_enter. */
#define TRIM_MS 1000u

static void buf_trim(pt_timer_t *t, void *arg)
{
	struct pt_worker *w = arg;
	struct uring_w *u = U(w);

	if (u->rx_bufs == u->trim_mark && u->bufs_dirty) {
		madvise(u->bufs, u->bufs_bytes, MADV_DONTNEED);
		u->bufs_dirty = false;
	} else if (u->rx_bufs != u->trim_mark) {
		u->bufs_dirty = true;
	}
	u->trim_mark = u->rx_bufs;
	pt_timer_arm(w, t, TRIM_MS);
}

static int bufring_init(struct pt_worker *w, struct uring_w *u)
{
	long page = sysconf(_SC_PAGESIZE);

	u->nbufs = w->e->cfg.recv_buf_count;
	u->buf_size = w->e->cfg.recv_buf_size;
	u->br_bytes = ((size_t)u->nbufs * sizeof(struct io_uring_buf) + (size_t)page - 1) & ~((size_t)page - 1);
	u->bufs_bytes = (size_t)u->nbufs * u->buf_size;
	u->br = mmap(NULL, u->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	u->bufs = mmap(NULL, u->bufs_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (u->br == MAP_FAILED || u->bufs == MAP_FAILED)
		return -ENOMEM;
	struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)u->br, .ring_entries = u->nbufs, .bgid = 0 };
	int err = io_uring_register_buf_ring(&u->ring, &reg, 0);
	if (err < 0) {
		pt__log(w->e, 0, "worker %u: registering the receive buffer ring (%u x %u B) failed: %s%s",
			w->index, u->nbufs, u->buf_size, strerror(-err),
			err == -ENOMEM ? " (RLIMIT_MEMLOCK: raise it or lower recv_buf_count)" : "");
		return err;
	}
	io_uring_buf_ring_init(u->br);
	buf_grow(u);
	return 0;
}

static void wake_arm(struct pt_worker *w)
{
	struct io_uring_sqe *sqe = sqe_get(U(w));

	io_uring_prep_poll_multishot(sqe, w->wake_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, pt__ud(PT_K_WAKE, 0, 0));
}

static void uring_fini(struct pt_worker *w)
{
	struct uring_w *u = U(w);

	if (!u)
		return;
	atomic_store_explicit(&w->msg_fd, -1, memory_order_release);
	pt_timer_cancel(&u->trim_timer);
	if (u->ring.ring_fd >= 0) {
		io_uring_submit(&u->ring);   /* wake-ups this worker queued for others on its way out */
		io_uring_queue_exit(&u->ring);
	}
	if (u->br && u->br != MAP_FAILED)
		munmap(u->br, u->br_bytes);
	if (u->bufs && u->bufs != MAP_FAILED)
		munmap(u->bufs, u->bufs_bytes);
	/* wake_fd stays open until pt_engine_destroy: other threads may still write to it */
	free(u);
	w->bd = NULL;
}

static int uring_init(struct pt_worker *w)
{
	struct uring_w *u = pt__calloc(1, sizeof *u);
	int err;

	if (!u)
		return -ENOMEM;
	u->ring.ring_fd = -1;
	w->bd = u;
	if ((err = ring_init(w, u)) < 0 || (err = bufring_init(w, u)) < 0)
		goto fail;
	atomic_store_explicit(&w->msg_fd, u->ring.ring_fd, memory_order_release);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	w->wake_fd = -1;
	if ((err = pt__fault(PT_FAULT_SOCKET)) < 0)
		goto fail;
	if ((w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		err = -errno;
		goto fail;
	}
	wake_arm(w);
	pt_timer_init(&u->trim_timer, buf_trim, w);
	pt_timer_arm(w, &u->trim_timer, TRIM_MS);
	return 0;
fail:
	uring_fini(w);
	return err;
}

/* ---- operations ---- */

/* Accepting runs as one multishot accept, or near the connection limit as a few single-shot
 * accepts (see on_accept); the generation field of user_data tells which. */
enum { ACC_MULTI = 0, ACC_SINGLE = 1 };
#define ACCEPT_BATCH 32u                /* single-shot accepts in flight per listener */

static uint64_t accept_ud(const struct pt_worker *w, const struct pt_wlisten *wl, unsigned kind)
{
	return pt__ud(PT_K_ACCEPT, kind, (uint32_t)(wl - w->wl));
}

static int uring_accept_start(struct pt_worker *w, struct pt_wlisten *wl)
{
	struct io_uring_sqe *sqe;

	if (wl->multi)
		return 0;
	if (!pt__accept_near_limit(w)) {
		if (wl->nsingle)
			return 0;               /* switch back once the singles are in */
		if (!(sqe = sqe_get(U(w))))
			return -EBUSY;
		io_uring_prep_multishot_accept(sqe, wl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		io_uring_sqe_set_data64(sqe, accept_ud(w, wl, ACC_MULTI));
		wl->multi = true;
		return 0;
	}
	while (wl->nsingle < ACCEPT_BATCH && (sqe = sqe_get(U(w)))) {
		io_uring_prep_accept(sqe, wl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		io_uring_sqe_set_data64(sqe, accept_ud(w, wl, ACC_SINGLE));
		wl->nsingle++;
	}
	return wl->nsingle ? 0 : -EBUSY;
}

static void cancel_accepts(struct pt_worker *w, struct pt_wlisten *wl, unsigned kind)
{
	struct io_uring_sqe *sqe = sqe_get(U(w));

	io_uring_prep_cancel64(sqe, accept_ud(w, wl, kind), IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, pt__ud(PT_K_IGNORE, 0, 0));
}

/* Ends the multishot accept; its final completion (-ECANCELED) re-arms if still wanted. */
static void end_multi(struct pt_worker *w, struct pt_wlisten *wl)
{
	if (wl->multi && !wl->ending) {
		wl->ending = true;
		cancel_accepts(w, wl, ACC_MULTI);
	}
}

static void uring_accept_stop(struct pt_worker *w, struct pt_wlisten *wl)
{
	end_multi(w, wl);
	if (wl->nsingle)
		cancel_accepts(w, wl, ACC_SINGLE);
}

static void starve(struct uring_w *u, struct pt_conn *c)
{
	buf_grow(u);                     /* more buffers first: starvation is the signal */
	c->flags |= PT_C_STARVED;
	op_started(c);          /* hold: the connection is not recycled while listed */
	c->starve_next = pt__cref(u->starved);
	u->starved = c;
	CNT_ADD(c->w, buf_starved, 1);
}

static void uring_rx_start(struct pt_worker *w, struct pt_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->flags & (PT_C_RX_ARMED | PT_C_STARVED | PT_C_FINAL))
		return;
	sqe = sqe_get(U(w));
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
	io_uring_sqe_set_data64(sqe, pt__ud(PT_K_RECV, c->gen, c->idx));
	c->flags |= PT_C_RX_ARMED;
	op_started(c);
}

static int uring_conn_start(struct pt_worker *w, struct pt_conn *c)
{
	if (!(c->flags & PT_C_PAUSED))
		uring_rx_start(w, c);
	return 0;
}

/* Cancels by exact user_data: the kernel finds it in a hash table. (Cancelling by descriptor
 * walks every pending request of the ring: 88% of the CPU when shedding under a flood.) */
static void cancel_sqe(struct pt_worker *w, struct pt_conn *c, enum pt_ktype type)
{
	struct io_uring_sqe *sqe = sqe_get(U(w));

	io_uring_prep_cancel64(sqe, pt__ud(type, c->gen, c->idx), 0);
	io_uring_sqe_set_data64(sqe, pt__ud(PT_K_CANCEL, c->gen, c->idx));
	op_started(c);
}

static void uring_rx_stop(struct pt_worker *w, struct pt_conn *c)
{
	if (c->flags & PT_C_RX_ARMED)
		cancel_sqe(w, c, PT_K_RECV);
}

static ssize_t uring_send(struct pt_worker *w, struct pt_conn *c, int flags)
{
	struct pt_txop *t = c->q->tx;
	struct io_uring_sqe *sqe = sqe_get(U(w));
	int injected = pt__fault(PT_FAULT_SEND);

	flags |= MSG_WAITALL;
	if (injected) {         /* test builds: a NOP completes in its place with the error */
		t->zc = false;
		t->zc_res = injected;
		io_uring_prep_nop(sqe);
	} else if (t->zc)
		io_uring_prep_sendmsg_zc(sqe, c->fd, &t->msg, (unsigned)flags);
	else if (t->msg.msg_iovlen == 1)
		io_uring_prep_send(sqe, c->fd, t->iov[0].iov_base, t->iov[0].iov_len, flags);
	else
		io_uring_prep_sendmsg(sqe, c->fd, &t->msg, (unsigned)flags);
	io_uring_sqe_set_data64(sqe, pt__ud(PT_K_SEND, c->gen, c->idx));
	op_started(c);
	return 0;
}

static void uring_wait_writable(struct pt_worker *w, struct pt_conn *c)
{
	struct io_uring_sqe *sqe = sqe_get(U(w));

	io_uring_prep_poll_add(sqe, c->fd, POLLOUT);
	io_uring_sqe_set_data64(sqe, pt__ud(PT_K_POLLOUT, c->gen, c->idx));
	op_started(c);
}

/* Every kernel operation c may have: its receive, and a send or a writable-wait (TX_BUSY is no
 * guide here: failing the queue clears it for a writable-wait still in the kernel). */
static void uring_cancel(struct pt_worker *w, struct pt_conn *c)
{
	unsigned rx = (c->flags & PT_C_RX_ARMED) ? 1 : 0, others = c->inflight - rx;

	if (rx)
		cancel_sqe(w, c, PT_K_RECV);
	if (others) {
		cancel_sqe(w, c, PT_K_SEND);
		cancel_sqe(w, c, PT_K_POLLOUT);
	}
}

static void uring_conn_closed(struct pt_worker *w, struct pt_conn *c)
{
	(void)w;
	(void)c;
}

static void uring_wake(struct pt_worker *w)
{
	uint64_t one = 1;

	if (write(w->wake_fd, &one, sizeof one) < 0) {
		/* EAGAIN: the counter is saturated, so a wake-up is pending anyway */
	}
}

/* The target's ring fd comes from msg_fd, never from its backend data (freed when it exits).
 * If the target closes its ring before this SQE is submitted, MSG_RING fails on a closed or
 * foreign descriptor (an ignored error CQE), and an exited worker needs no wake-up anyway. */
static void uring_wake_from(struct pt_worker *self, struct pt_worker *target)
{
	int fd = atomic_load_explicit(&target->msg_fd, memory_order_acquire);
	struct io_uring_sqe *sqe = fd >= 0 ? sqe_get(U(self)) : NULL;

	if (!sqe) {
		uring_wake(target);
		return;
	}
	io_uring_prep_msg_ring(sqe, fd, 0, pt__ud(PT_K_MSG, 0, 0), 0);
	io_uring_sqe_set_data64(sqe, pt__ud(PT_K_IGNORE, 0, 0));
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* ---- completions ---- */

static bool want_rx(const struct pt_conn *c)
{
	return !(c->flags & (PT_C_PAUSED | PT_C_EOF | PT_C_FINAL));
}

/* Receive errors after which the receive just starts again (nothing is lost). */
static bool rx_retryable(int err)
{
	return err == -ENOBUFS || err == -EAGAIN || err == -EINTR;
}

static void on_recv(struct pt_worker *w, struct pt_conn *c, struct io_uring_cqe *cqe)
{
	struct uring_w *u = U(w);
	int res = cqe->res;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		CNT_ADD(w, recv_bufs, 1);
		/* after the end of input (only an injected error leaves the multishot running, until
		 * its cancellation lands) bytes are dropped */
		if (c && res > 0 && !(c->flags & PT_C_EOF)) {
			int f = pt__fault(PT_FAULT_RECV);
			if (!f || rx_retryable(f)) {
				CNT_ADD(w, recvs, 1);
				pt__rx_data(c, u->bufs + (size_t)bid * u->buf_size, (size_t)res);
			}
			if (f && (cqe->flags & IORING_CQE_F_MORE)) {
				/* test builds: as if the multishot had ended with f. A retryable f: the
				 * -ECANCELED end re-arms. Else the bytes are lost with the connection. */
				if (!rx_retryable(f))
					pt__rx_end(c, f);
				uring_rx_stop(w, c);
			} else if (f && !rx_retryable(f)) {
				res = f;        /* the final CQE: end with f instead */
			}
		}
		buf_return(u, bid);
		u->rx_bufs++;
	}
	if (!c || (cqe->flags & IORING_CQE_F_MORE))
		return;
	c->flags &= ~PT_C_RX_ARMED;
	if (res == -ENOBUFS && want_rx(c))
		starve(u, c);
	else if (res == 0)
		pt__rx_end(c, 0);
	else if (res < 0 && res != -ECANCELED && res != -ENOBUFS && res != -EAGAIN && res != -EINTR)
		pt__rx_end(c, res);
	else if (want_rx(c))
		uring_rx_start(w, c);
	pt__op_done(c);
}

static void on_send(struct pt_conn *c, struct io_uring_cqe *cqe)
{
	struct pt_txop *t = c->q->tx;

	if (t && t->zc) {
		if (!(cqe->flags & IORING_CQE_F_NOTIF)) {
			t->zc_res = cqe->res;
			if (cqe->flags & IORING_CQE_F_MORE)
				return;     /* the notification ends this operation */
		}
		pt__tx_done(c, t->zc_res);
	} else {
		ssize_t res = cqe->res;
#ifdef PT_TESTING
		if (t && t->zc_res)
			res = t->zc_res;    /* the NOP of an injected failure (uring_send) */
#endif
		pt__tx_done(c, res);
	}
	pt__op_done(c);
}

/* Near the connection limit a multishot accept would let the kernel accept a whole backlog in
 * one batch (thousands of descriptors before the worker sees one: past the limit and into
 * EMFILE under a connection flood). There the multishot ends and ACCEPT_BATCH single-shot
 * accepts take its place, re-armed one per completion: the worker sheds as it accepts, with
 * at most a batch of descriptors beyond what it has seen. */
static void on_accept(struct pt_worker *w, uint32_t idx, bool single, struct io_uring_cqe *cqe)
{
	if (idx >= w->nwl) {
		if (cqe->res >= 0)
			close(cqe->res);
		return;
	}
	struct pt_wlisten *wl = &w->wl[idx];
	bool more = cqe->flags & IORING_CQE_F_MORE;
	int res = cqe->res, f;

	/* after an injected failure the multishot is being cancelled: connections it still
	 * delivers are real and accepted as usual, but no second failure is injected into it
	 * (a real error ends a multishot, so it reports at most one) */
	if (res >= 0 && !(more && wl->ending) && (f = pt__fault(PT_FAULT_ACCEPT)) < 0) {
		close(res);             /* test builds: as if this accept had failed with f */
		if (more) {
			/* a real error would have ended the multishot: end it; its final -ECANCELED
			 * re-arms only if accepting is still wanted then */
			end_multi(w, wl);
			pt__accept_error(w, wl, f);
			return;
		}
		res = f;
	}
	if (res >= 0)
		pt__accepted(w, wl, res);
	if (more) {
		if (pt__accept_near_limit(w))
			end_multi(w, wl);
		return;
	}
	if (single) {
		wl->nsingle--;
	} else {
		wl->multi = false;
		wl->ending = false;
	}
	wl->armed = wl->multi || wl->nsingle;
	if (res == -EAGAIN || res == -EINTR || res == -ECONNABORTED)
		res = 0;                /* nothing to accept after all: re-arm */
	if (res < 0 && res != -ECANCELED)
		pt__accept_error(w, wl, res);
	else if (wl->want && uring_accept_start(w, wl) == 0)
		wl->armed = true;
}

static void on_wake(struct pt_worker *w, struct io_uring_cqe *cqe)
{
	if (read(w->wake_fd, &U(w)->wake_val, sizeof U(w)->wake_val) < 0) {
		/* EAGAIN: already drained */
	}
	if (!(cqe->flags & IORING_CQE_F_MORE))
		wake_arm(w);
}

static void dispatch(struct pt_worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	enum pt_ktype type = PT_UD_TYPE(ud);
	struct pt_conn *c = NULL;

	if (type == PT_K_RECV || type == PT_K_SEND || type == PT_K_POLLOUT || type == PT_K_CANCEL) {
		c = pt__conn_get(w, PT_UD_IDX(ud), PT_UD_GEN(ud));
		if (!c && type != PT_K_RECV)
			return;         /* stale: cannot happen while the inflight rule holds */
	}
	switch (type) {
	case PT_K_ACCEPT: on_accept(w, PT_UD_IDX(ud), PT_UD_GEN(ud) == ACC_SINGLE, cqe); break;
	case PT_K_RECV: on_recv(w, c, cqe); break;
	case PT_K_SEND: on_send(c, cqe); break;
	case PT_K_POLLOUT: pt__tx_writable(c); pt__op_done(c); break;
	case PT_K_CANCEL: pt__op_done(c); break;
	case PT_K_WAKE: on_wake(w, cqe); break;
	default: break;
	}
}

static void rearm_starved(struct pt_worker *w)
{
	struct uring_w *u = U(w);
	struct pt_conn *c = u->starved;

	u->starved = NULL;
	while (c) {
		struct pt_conn *next = pt__cderef(w, c->starve_next);
		c->starve_next = 0;
		c->flags &= ~PT_C_STARVED;
		if (want_rx(c))
			uring_rx_start(w, c);
		pt__op_done(c);   /* the starvation hold (see starve) */
		c = next;
	}
}

#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)   /* kernel 6.12; liburing 2.3 predates it */
#endif

/* Submits and sleeps until cfg.batch_wait completions are ready, or cfg.batch_wait_us has
 * passed with at least one ready, or timeout_ms (-1: none). Kernels with MIN_TIMEOUT do it
 * in one io_uring_enter (the min-wait of io_uring_getevents_arg, a field liburing 2.3 calls
 * pad). Older ones wait for the batch with batch_wait_us as the whole timeout; when that
 * ends with nothing ready, the next wait is a plain one (an idle worker does not spin). */
static int batch_enter(struct pt_worker *w, struct uring_w *u, int timeout_ms)
{
	struct io_uring *r = &u->ring;
	unsigned us = w->e->cfg.batch_wait_us, tail = r->sq.sqe_tail;
	bool min_wait = r->features & IORING_FEAT_MIN_TIMEOUT;
	long long ns = timeout_ms < 0 ? 3600LL * 1000000000 : timeout_ms * 1000000LL;

	if (!min_wait && (long long)us * 1000 < ns)
		ns = (long long)us * 1000;
	struct __kernel_timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
	struct io_uring_getevents_arg arg = { .sigmask_sz = _NSIG / 8, .pad = min_wait ? us : 0,
					      .ts = (uint64_t)(uintptr_t)&ts };
	unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
	int fd = r->ring_fd;

	if (r->sq.sqe_head != tail) {              /* what io_uring_submit does first */
		r->sq.sqe_head = tail;
		__atomic_store_n(r->sq.ktail, tail, __ATOMIC_RELEASE);
	}
	if (r->int_flags & 1) {                    /* liburing's INT_FLAG_REG_RING */
		flags |= IORING_ENTER_REGISTERED_RING;
		fd = r->enter_ring_fd;
	}
	/* the SQEs submitted now (sends) mostly complete inline: their CQEs are not what the
	 * batch waits for, so they are added to the count */
	unsigned n = tail - *r->sq.khead;
	long rc = syscall(__NR_io_uring_enter, fd, n, w->e->cfg.batch_wait + n, flags, &arg,
			  sizeof arg);
	if (rc < 0 && errno == ETIME && !min_wait && !io_uring_cq_ready(r))
		u->batch_idle = true;
	return rc < 0 ? -errno : 0;
}

static int uring_poll(struct pt_worker *w, int timeout_ms)
{
	struct uring_w *u = U(w);
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int err;

	buf_flush(u);
	if (u->starved)
		rearm_starved(w);
	if (timeout_ms == 0) {
		err = io_uring_submit_and_get_events(&u->ring);
	} else if (w->e->cfg.batch_wait > 1 && !u->batch_idle) {
		err = batch_enter(w, u, timeout_ms);
	} else {
		u->batch_idle = false;
		struct __kernel_timespec ts = { .tv_sec = timeout_ms / 1000,
						.tv_nsec = (timeout_ms % 1000) * 1000000L };
		err = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, timeout_ms < 0 ? NULL : &ts, NULL);
	}
	if (err < 0 && err != -ETIME && err != -EINTR && err != -EBUSY)
		return err;
	pt__worker_clock(w);
	io_uring_for_each_cqe(&u->ring, head, cqe) {
		dispatch(w, cqe);
		n++;
	}
	io_uring_cq_advance(&u->ring, n);
	return 0;
}

static ssize_t uring_send_file(struct pt_worker *w, struct pt_conn *c, int fd, off_t off, size_t len)
{
	return pt__file_send(c->fd, fd, off, len);   /* synchronous; EAGAIN waits for room */
}

const struct pt_backend pt__uring_backend = {
	.name = "io_uring",
	.probe = uring_probe,
	.worker_init = uring_init,
	.worker_fini = uring_fini,
	.accept_start = uring_accept_start,
	.accept_stop = uring_accept_stop,
	.conn_start = uring_conn_start,
	.rx_stop = uring_rx_stop,
	.rx_start = uring_rx_start,
	.send = uring_send,
	.send_file = uring_send_file,
	.wait_writable = uring_wait_writable,
	.cancel = uring_cancel,
	.conn_closed = uring_conn_closed,
	.poll = uring_poll,
	.wake = uring_wake,
	.wake_from = uring_wake_from,
};
