/*
 * The HTTP.SYS timeouts of an HTTP/1.1 connection, as phases: one deadline per connection (the
 * engine's connection timer), chosen by what the connection waits for.
 *
 *   PH_NEW      a new connection has sent no complete head        HeaderWait (armed at accept)
 *   PH_HEAD     a head is partial                                 HeaderWait
 *   PH_IDLE     keep-alive, between requests                      IdleConnection
 *   PH_BODY     the handler reads a body                          EntityBody, from the last byte
 *   PH_DRAIN    an unread body is discarded after the response    DrainEntityBody
 *   PH_HANDLER  the application decides how long it takes         none
 *   PH_SENDING  a response waits for a slow reader                MinSendRate, per 2 s window
 *   PH_LINGER   closing after an error while the peer still sends quiet gap, bounded (below)
 *
 * Each phase also tells the engine's governor what it may shed first when it must make room
 * (pt_conn_set_state). Everything here runs on the connection's worker.
 */
#include "http/http_int.h"
#include <errno.h>

#define RATE_WINDOW_MS 2000u

/* Lingering (nginx's lingering close): closing while the peer is still sending would meet
 * unread data, and the kernel answers that with a reset, which can reach the client before it
 * has read the error response (its send fails with EPIPE, or the reset discards what it had
 * received). So the rest is read and discarded until the peer has been quiet this long, it
 * closes its side, or a bound is reached (max_drain bytes, LINGER_MAX_MS). 100 ms: a
 * peer in the middle of a send has no such gap on a LAN; the close waits no longer than this
 * after the last byte. The engine closes with a FIN, and lingers itself if data arrived
 * in between. */
#define LINGER_QUIET_MS 100u
#define LINGER_MAX_MS 30000u          /* nginx's lingering_time (or drain_entity_body if less) */

static uint32_t now32(const struct hconn *h)
{
	return (uint32_t)pt_worker_now_ms(pt_conn_worker(pt__hc(h)));
}

/* What the engine may shed first when it must make room: a head still arriving, a body being
 * discarded or a connection lingering (partial), then keep-alive (idle); never a request being
 * handled or answered. */
static enum pt_conn_state phase_state(enum hphase ph)
{
	switch (ph) {
	case PH_NEW: case PH_HEAD: case PH_DRAIN: case PH_LINGER: return PT_CONN_PARTIAL;
	case PH_IDLE: return PT_CONN_IDLE;
	default: return PT_CONN_BUSY;
	}
}

void pt__phase_set(struct hconn *h, enum hphase ph)
{
	if (ph == h->phase)
		return;
	if (ph == PH_BODY || ph == PH_LINGER) {
		h->body_win = 0;
		h->win_start = h->last_in = now32(h);
	}
	pt_conn_set_state(pt__hc(h), phase_state(ph));
	h->phase = ph;
	h->grace_armed = false;
}

static void arm(struct hconn *h, enum hphase ph, unsigned ms, bool restart)
{
	if (h->phase == ph && !restart)
		return;
	pt__phase_set(h, ph);
	pt_conn_set_timeout(pt__hc(h), ms);
}

static void idle_grace(struct hconn *h);
static unsigned grace_ms(const struct hconn *h);

/* ---- EntityBody and the body rate ---- */

/* PH_BODY runs on a rate window: EntityBody counts from the last body byte (HTTP.SYS resets it
 * on every data indication), and a body arriving slower than MinSendRate marks the connection
 * partial: sheddable before busy ones when the engine must make room. */
static unsigned body_tick_ms(const struct hconn *h)
{
	unsigned eb = h->hw->s->cfg.timeouts.entity_body;

	return eb < RATE_WINDOW_MS ? eb : RATE_WINDOW_MS;
}

static bool body_tick(struct hconn *h)
{
	const struct pt_http_timeouts *t = &h->hw->s->cfg.timeouts;
	uint32_t now = now32(h), quiet = now - h->last_in, span = now - h->win_start;

	if (quiet >= t->entity_body)
		return false;
	if (t->min_send_rate != PT_HTTP_RATE_OFF && span >= RATE_WINDOW_MS / 2) {
		bool slow = (uint64_t)h->body_win * 1000 < (uint64_t)t->min_send_rate * span;
		pt_conn_set_state(pt__hc(h), slow ? PT_CONN_PARTIAL : PT_CONN_BUSY);
		h->body_win = 0;
		h->win_start = now;
	}
	unsigned left = t->entity_body - quiet;
	pt_conn_set_timeout(pt__hc(h), left < RATE_WINDOW_MS ? left : RATE_WINDOW_MS);
	return true;
}

/* ---- lingering ---- */

void pt__phase_linger(struct hconn *h)
{
	pt__phase_set(h, PH_LINGER);
	pt_conn_resume_recv(pt__hc(h));               /* the input bound may have paused it */
	pt_conn_set_timeout(pt__hc(h), LINGER_QUIET_MS);
}

/* Time to close: quiet long enough, or a bound reached. Re-arms the timer otherwise. */
static bool linger_over(struct hconn *h)
{
	uint32_t now = now32(h), quiet = now - h->last_in;

	unsigned drain = h->hw->s->cfg.timeouts.drain_entity_body;

	if (quiet >= LINGER_QUIET_MS || now - h->win_start >= (drain < LINGER_MAX_MS ? drain : LINGER_MAX_MS))
		return true;
	pt_conn_set_timeout(pt__hc(h), LINGER_QUIET_MS - quiet);
	return false;
}

void pt__phase_input(struct hconn *h, size_t len)
{
	if (h->phase != PH_BODY && h->phase != PH_LINGER)
		return;
	h->last_in = now32(h);
	h->body_win = len > UINT32_MAX - h->body_win ? UINT32_MAX : h->body_win + (uint32_t)len;
	if (h->phase == PH_LINGER && h->body_win > h->hw->s->cfg.max_drain)
		pt_conn_close(pt__hc(h), PT_CLOSE_GRACEFUL);   /* read enough: stop */
}

/* ---- choosing the phase ---- */

static bool responses_pending(const struct hconn *h)
{
	return pt_conn_send_queued(pt__hc(h)) > 0;
}

void pt__phase_update(struct hconn *h)
{
	const struct pt_http_timeouts *t = &h->hw->s->cfg.timeouts;
	struct pt_http_req *r = h->cur;

	if (h->phase == PH_LINGER || (h->closing && !responses_pending(h)))
		return;
	if (responses_pending(h) && t->min_send_rate != PT_HTTP_RATE_OFF) {
		if (h->phase != PH_SENDING) {
			h->rate_mark = pt_conn_bytes_sent(pt__hc(h));
			pt_conn_notify_empty(pt__hc(h));   /* on_drain moves on to the next phase */
		}
		arm(h, PH_SENDING, RATE_WINDOW_MS, false);
	} else if (r && !r->body_done && (r->body_reading || r->final_sent)) {
		arm(h, r->final_sent ? PH_DRAIN : PH_BODY,
		    r->final_sent ? t->drain_entity_body : body_tick_ms(h), false);
	} else if (r) {
		pt__phase_set(h, PH_HANDLER);         /* the application decides how long it takes */
		pt_conn_set_timeout(pt__hc(h), 0);
	} else if (pt__hin_len(h)) {                   /* stopping: a head gets the grace period */
		arm(h, PH_HEAD, h->hw->s->grace_ms && atomic_load_explicit(&h->hw->s->stopping,
			memory_order_relaxed) ? grace_ms(h) : t->header_wait, false);
	} else if (h->phase != PH_NEW && atomic_load_explicit(&h->hw->s->stopping, memory_order_relaxed)) {
		if (h->phase != PH_IDLE || !h->grace_armed)
			idle_grace(h);                /* a response ended during a stop */
	} else if (h->phase != PH_NEW) {
		arm(h, PH_IDLE, t->idle_connection, false);
	}
}

/* ---- the graceful stop ---- */

/* While the client has not acknowledged the whole of the last response, the grace period has
 * not begun: it still reads that response (a large one can sit in the socket buffers for
 * seconds), and its next request comes only after it. Checked this often until it has. */
#define GRACE_POLL_MS 50u

/* Bytes of responses the client has not acknowledged: queued in the engine, or in the kernel
 * (sent or not). */
static uint32_t unacked(const struct hconn *h)
{
	size_t q = pt_conn_unacked(pt__hc(h));

	return q < UINT32_MAX ? (uint32_t)q : UINT32_MAX;
}

static unsigned grace_ms(const struct hconn *h)
{
	unsigned g = h->hw->s->grace_ms, idle = h->hw->s->cfg.timeouts.idle_connection;

	return g < idle ? g : idle;
}

/* A connection between requests while the server stops: a client may have sent its next
 * request already (it cannot know yet), so the connection waits for it this long, at most,
 * from the moment the client has the last response, and that request is answered with
 * Connection: close. */
static void idle_grace(struct hconn *h)
{
	if (!h->hw->s->grace_ms) {
		h->closing = true;
		pt_conn_close(pt__hc(h), PT_CLOSE_GRACEFUL);
		return;
	}
	uint32_t q = unacked(h);
	h->grace_drain = q > 0;
	h->body_win = q;                          /* PH_IDLE: bytes unacknowledged, and since */
	h->win_start = now32(h);                  /* when that number stands */
	pt__phase_set(h, PH_IDLE);
	h->grace_armed = true;
	pt_conn_set_timeout(pt__hc(h), h->grace_drain ? GRACE_POLL_MS : grace_ms(h));
}

/* PH_IDLE's deadline while waiting for the acknowledgement: poll again, or begin the grace
 * period, once the client has it all or has taken nothing for a grace period (it does not
 * read: a stalled client must not hold the stop until shutdown_ms). false: the deadline is
 * the real one (close). */
static bool grace_tick(struct hconn *h)
{
	if (!h->grace_drain)
		return false;
	uint32_t q = unacked(h), now = now32(h);
	if (q != h->body_win) {
		h->body_win = q;
		h->win_start = now;
	}
	if (q && now - h->win_start < grace_ms(h)) {
		pt_conn_set_timeout(pt__hc(h), GRACE_POLL_MS);
		return true;
	}
	h->grace_drain = false;
	pt_conn_set_timeout(pt__hc(h), grace_ms(h));
	return true;
}

void pt__phase_stop(struct hconn *h)
{
	if (h->closing || h->phase == PH_LINGER)
		return;
	for (const struct pt_http_req *r = pt__live_first(h); r; r = pt__live_next(h, r))
		if (!r->final_sent)
			return;                   /* a request in progress ends the connection */
	if (h->phase == PH_HEAD) {            /* a head arriving: it gets the grace period */
		if (h->hw->s->grace_ms)
			pt_conn_set_timeout(pt__hc(h), grace_ms(h));
	} else if (h->phase == PH_IDLE && !pt__hin_len(h)) {  /* a response may still be on its way */
		idle_grace(h);
	} else if (h->phase == PH_NEW) {      /* accepted, nothing received: HeaderWait runs */
		unsigned age = pt_conn_age_ms(pt__hc(h)), wait = h->hw->s->cfg.timeouts.header_wait;
		unsigned left = age < wait ? wait - age : 1;
		if (!h->hw->s->grace_ms) {
			h->closing = true;
			pt_conn_close(pt__hc(h), PT_CLOSE_GRACEFUL);
		} else if (h->hw->s->grace_ms < left) {
			pt_conn_set_timeout(pt__hc(h), h->hw->s->grace_ms);
		}
	}
}

/* ---- the deadline ---- */

/* MinSendRate: the client must have read this much in the window, else it is cut off. */
static void sending_tick(struct hconn *h)
{
	uint64_t sent = pt_conn_bytes_sent(pt__hc(h));
	uint64_t need = (uint64_t)h->hw->s->cfg.timeouts.min_send_rate * RATE_WINDOW_MS / 1000;

	if (sent - h->rate_mark >= need) {            /* fast enough: next window */
		h->rate_mark = sent;
		pt_conn_set_timeout(pt__hc(h), RATE_WINDOW_MS);
		return;
	}
	pt_conn_close(pt__hc(h), PT_CLOSE_ABORT);         /* slower than MinSendRate */
}

void pt__phase_timeout(pt_conn_t *c)
{
	struct hconn *h = pt_conn_user(c);

	if (h->phase == PH_LINGER) {
		if (linger_over(h))
			pt_conn_close(c, PT_CLOSE_GRACEFUL);
		return;
	}
	if (h->phase == PH_SENDING && responses_pending(h)) {
		sending_tick(h);
		return;
	}
	if (h->phase == PH_SENDING) {
		pt__phase_set(h, PH_HANDLER);
		pt__phase_update(h);
		return;
	}
	if (h->phase == PH_BODY && body_tick(h))
		return;
	if (h->phase == PH_IDLE && grace_tick(h))
		return;
	pt__hconn_body_abort(h, -ETIMEDOUT);
	h->closing = true;
	pt_conn_close(c, PT_CLOSE_GRACEFUL);     /* HeaderWait, Idle, EntityBody, Drain */
}
