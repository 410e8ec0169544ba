/*
 * HTTP/2 connections: the nghttp2 session, input, the output path (staging for control frames,
 * HEADERS and small DATA frames from memory; one engine transmit per larger DATA frame),
 * timeouts, GOAWAY and the limits that keep floods bounded. See h2_int.h.
 */
#include "http/h2_int.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct pt_conn_ops h2_conn_ops;
static void update_timer(struct h2conn *h2);
void pt__h2_goaway_one(struct h2conn *h2, int step);

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

bool pt__h2_available(void)
{
	return true;
}

bool pt__h2_preface(const void *data, size_t len)
{
	size_t n = len < sizeof PREFACE - 1 ? len : sizeof PREFACE - 1;

	return n > 0 && !memcmp(data, PREFACE, n);
}

/* ---- output ---- */

/* The staged bytes are in the kernel: head-only responses whose HEADERS they held complete,
 * then the sends whose last bytes rode in staged DATA frames (in framing order: a stream's
 * earlier frames, staged or transmitted, completed before, as the engine completes sends in
 * the order they were made). */
static void stage_complete(struct h2out *o, const struct h2done *e, unsigned n, ssize_t res)
{
	while (o) {
		struct h2out *next = o->next;
		struct h2stream *st = o->st;
		o->next = NULL;
		if (st->done_tail)
			st->done_tail->next = o;
		else
			st->done = o;
		st->done_tail = o;
		st->inflight--;
		pt__h2_complete(st, 1, res);
		o = next;
	}
	for (unsigned i = 0; i < n; i++) {
		e[i].st->inflight--;
		pt__h2_complete(e[i].st, e[i].ndone, res);
	}
}

static void stage_sent(pt_conn_t *c, void *arg, ssize_t res)
{
	struct h2conn *h2 = pt_conn_user(c);
	struct h2ticket *t = arg;

	stage_complete(t->heads, t->e, t->n, res);
	free(t);
	/* as data_sent: what the completions asked for goes out, and a connection whose last
	 * stream just ended gets its idle timer, not the busy tick (which, firing with no
	 * stream open, would be taken for IdleConnection and end a connection in use) */
	if (!h2->in_flush && !h2->dead)
		pt__h2_flush(h2);
}

/* Ships the staged bytes (copied: the stage is reused at once) with what completes with them. */
static int stage_flush(struct h2conn *h2)
{
	struct h2ticket *t = NULL;

	if (!h2->stage_len)
		return 0;
	if (h2->stage_done || h2->nstage_ent) {
		if (!(t = malloc(sizeof *t + h2->nstage_ent * sizeof t->e[0])))
			return -ENOMEM;
		t->heads = h2->stage_done;
		t->n = h2->nstage_ent;
		memcpy(t->e, h2->stage_ent, t->n * sizeof t->e[0]);
	}
	int rc = pt_conn_send(h2->c, h2->stage, h2->stage_len, PT_SEND_COPY, t ? stage_sent : NULL, t);
	if (rc < 0) {
		free(t);
		return rc;
	}
	h2->stage_len = 0;
	h2->stage_done = NULL;
	h2->nstage_ent = 0;
	return 0;
}

static int stage_add(struct h2conn *h2, const uint8_t *p, size_t n)
{
	while (n) {
		size_t room = H2_STAGE_CAP - h2->stage_len, k = n < room ? n : room;
		memcpy(h2->stage + h2->stage_len, p, k);
		h2->stage_len += (uint32_t)k;
		p += k;
		n -= k;
		if (h2->stage_len == H2_STAGE_CAP && stage_flush(h2) < 0)
			return -1;
	}
	return 0;
}

static void fatal(struct h2conn *h2)
{
	h2->dead = h2->closing = true;
	pt_conn_close(h2->c, PT_CLOSE_ABORT);
}

static void data_sent(pt_conn_t *c, void *arg, ssize_t res)
{
	struct h2conn *h2 = pt_conn_user(c);
	struct h2slot *sl = arg;
	struct h2stream *st = sl->st;
	unsigned ndone = sl->ndone;

	h2->slot_head = (h2->slot_head + 1) % H2_SLOTS;
	h2->nslots--;
	st->inflight--;
	pt__h2_complete(st, ndone, res);
	if (res < 0 && res != -ECANCELED && !h2->dead)
		fatal(h2);
	else if (!h2->in_flush && !h2->dead)
		pt__h2_flush(h2);
}

/* A small DATA frame from memory: copied into the stage behind the HEADERS, its sends complete
 * with the stage (many small responses leave in one send, not one transmit each). */
static int stage_data(struct h2conn *h2, struct h2stream *st, const uint8_t *hd, size_t len)
{
	struct pt_chunk ch[H2_FRAME_CHUNKS];
	unsigned ndone;

	if (h2->nstage_ent == H2_STAGE_ENT && stage_flush(h2) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	int n = pt__h2_frame(st, ch, H2_FRAME_CHUNKS, len, &ndone);
	if (n < 0 || stage_add(h2, hd, 9) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	for (int i = 0; i < n; i++)
		if (ch[i].mem.len && stage_add(h2, ch[i].mem.base, ch[i].mem.len) < 0)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
	h2->stage_ent[h2->nstage_ent++] = (struct h2done){ st, ndone };
	st->inflight++;
	return 0;
}

/* nghttp2 packed a DATA frame of len bytes for a stream: its header, then the body's chunks. */
static int send_data_cb(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *hd,
			size_t len, nghttp2_data_source *src, void *user)
{
	struct h2conn *h2 = user;
	struct h2stream *st = src->ptr;

	if (len <= H2_STAGE_DATA && pt__h2_frame_mem(st, len))
		return stage_data(h2, st, hd, len);
	if (h2->nslots == H2_SLOTS || pt_conn_send_queued(h2->c) >= H2_OUT_HIGH)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (stage_flush(h2) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	struct h2slot *sl = &h2->slots[(h2->slot_head + h2->nslots) % H2_SLOTS];
	struct pt_chunk ch[1 + H2_FRAME_CHUNKS];
	memcpy(sl->hd, hd, 9);
	ch[0] = (struct pt_chunk){ .kind = PT_CHUNK_MEM, .mem = { sl->hd, 9 } };
	int n = pt__h2_frame(st, ch + 1, H2_FRAME_CHUNKS, len, &sl->ndone);
	if (n < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	sl->st = st;
	/* no PT_SEND_MORE: the engine sets MSG_MORE itself while more is queued behind */
	if (pt_conn_transmit(h2->c, ch, (unsigned)n + 1, 0, data_sent, sl) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	h2->nslots++;
	st->inflight++;
	return 0;
}

/* Runs nghttp2's output while the engine queue has room, then closes when both sides are
 * done (after GOAWAY). Reentrant calls do nothing. */
void pt__h2_flush(struct h2conn *h2)
{
	if (h2->in_flush || h2->dead)
		return;
	h2->in_flush = true;
	/* closing: all nghttp2 holds (bounded: max_outbound_ack, the GOAWAY; DATA still waits) */
	while (h2->closing || pt_conn_send_queued(h2->c) < H2_OUT_HIGH) {
		const uint8_t *p;
		ssize_t n = nghttp2_session_mem_send(h2->ng, &p);
		if (n < 0) {
			h2->in_flush = false;
			fatal(h2);
			return;
		}
		if (n == 0)
			break;
		if (stage_add(h2, p, (size_t)n) < 0)
			break;
	}
	if (stage_flush(h2) < 0)
		fatal(h2);
	h2->in_flush = false;
	update_timer(h2);
	if (!h2->dead && !nghttp2_session_want_read(h2->ng) &&
	    !nghttp2_session_want_write(h2->ng) && !h2->nslots) {
		h2->closing = true;
		pt_conn_close(h2->c, PT_CLOSE_GRACEFUL);
	} else if (pt_conn_send_queued(h2->c) >= H2_OUT_HIGH) {
		pt_conn_notify_empty(h2->c);          /* on_drain flushes again */
	}
}

/* ---- nghttp2 callbacks ---- */

/* Frames that carry no request data (SETTINGS, PING, WINDOW_UPDATE, PRIORITY, RST_STREAM,
 * empty DATA) cost work but give none: a connection gets a budget of them that grows with
 * the requests it makes (as nginx's frame limit), and beyond it GOAWAY ENHANCE_YOUR_CALM. */
static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
	struct h2conn *h2 = user;

	if (hd->type == NGHTTP2_HEADERS || (hd->type == NGHTTP2_DATA && hd->length > 0) ||
	    hd->type == NGHTTP2_CONTINUATION)
		return 0;
	if (++h2->idle_frames > H2_IDLE_FRAMES + 64u * h2->requests) {
		h2->flooded = true;
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct h2conn *h2 = user;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	/* rapid open/reset: more new streams in one read than the concurrency allows */
	if (++h2->new_streams > 2 * H2_MAX_STREAMS) {
		h2->flooded = true;                /* GOAWAY ENHANCE_YOUR_CALM, not PROTOCOL_ERROR */
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	h2->requests++;
	pt__hw_count(&h2->hw->cnt.h2_streams);
	return pt__h2_begin_headers(h2, f->hd.stream_id) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
		     size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
	struct h2conn *h2 = user;
	struct h2stream *st = f->hd.stream_id == h2->hd_id ? h2->hd_st :
			      nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);

	if (f->hd.type == NGHTTP2_HEADERS && st)
		pt__h2_header(user, st, name, nl, value, vl);
	return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct h2conn *h2 = user;
	struct h2stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);

	if (f->hd.type == NGHTTP2_RST_STREAM)
		pt__hw_count(&h2->hw->cnt.h2_resets_recv);
	else if (f->hd.type == NGHTTP2_GOAWAY)
		pt__hw_count(&h2->hw->cnt.h2_goaways_recv);
	if (!h2->preface_done && f->hd.type == NGHTTP2_SETTINGS) {
		h2->preface_done = true;
		pt_conn_set_state(h2->c, PT_CONN_IDLE);
	}
	if (f->hd.type == NGHTTP2_HEADERS && f->hd.stream_id == h2->hd_id)
		h2->hd_id = 0;                 /* the block ended */
	if (!st)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
			st->end_stream = true;
		pt__h2_request(h2, st);
		return 0;
	}
	if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		pt__h2_body_end(st);          /* DATA, or trailers, ended the request */
	return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *p,
			 size_t n, void *user)
{
	struct h2stream *st = nghttp2_session_get_stream_user_data(ng, id);

	if (!st) {
		nghttp2_session_consume(ng, id, n);   /* no request: give the window back */
		return 0;
	}
	return pt__h2_body(user, st, p, n);
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
	struct h2stream *st = nghttp2_session_get_stream_user_data(ng, id);
	struct h2conn *h2 = user;

	if (id == h2->hd_id)
		h2->hd_id = 0;
	if (st) {
		nghttp2_session_set_stream_user_data(ng, id, NULL);
		pt__h2_stream_close(st, code);
	}
	return 0;
}

/* HEADERS with END_STREAM left: a head-only final response completes with the stage.
 * The response ended before the request did and nobody reads the rest of its body: RFC 9113
 * 8.1's RST_STREAM NO_ERROR asks the client to stop; otherwise the stream, and with it the
 * connection (busy: no idle timeout, never shed), would stay open as long as the client likes. */
/* A connection ended for the client's misbehaviour, counted once, whichever side noticed: a
 * flood (ENHANCE_YOUR_CALM from our limits or nghttp2's; INTERNAL_ERROR, which only nghttp2's
 * rapid-reset limiter sends here) or a protocol error (any other code). NO_ERROR: a graceful
 * GOAWAY, not counted. */
static void count_offender(struct h2conn *h2, uint32_t code)
{
	if (code == NGHTTP2_NO_ERROR || h2->offender_counted)
		return;
	h2->offender_counted = true;
	pt__hw_count(code == NGHTTP2_ENHANCE_YOUR_CALM || code == NGHTTP2_INTERNAL_ERROR ?
		     &h2->hw->cnt.h2_floods : &h2->hw->cnt.h2_protocol_errors);
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct h2stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
	struct h2conn *h2 = user;

	if (f->hd.type == NGHTTP2_RST_STREAM) {
		pt__hw_count(&h2->hw->cnt.h2_resets_sent);
	} else if (f->hd.type == NGHTTP2_GOAWAY) {
		pt__hw_count(&h2->hw->cnt.h2_goaways_sent);
		count_offender(h2, f->goaway.error_code);
	}
	if (!st || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
	    (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA))
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS)
		pt__h2_head_sent(user, st);
	if (!st->end_stream && !(st->r && st->r->body_reading && !st->r->body_done))
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
	return 0;
}

static ssize_t read_length(nghttp2_session *ng, uint8_t type, int32_t id, int32_t window,
			   int32_t conn_window, uint32_t max_frame, void *user)
{
	struct h2conn *h2 = user;
	/* one DATA frame per TLS record: small records first, full ones in bulk */
	int32_t want = !pt_conn_is_tls(h2->c) ? (int32_t)max_frame :
		       pt_conn_bytes_sent(h2->c) < (64u << 10) ? 1369 - 9 : 16384 - 9;
	int32_t lim = window < conn_window ? window : conn_window;

	if ((uint32_t)want > max_frame)
		want = (int32_t)max_frame;
	return want < lim ? want : lim;
}

static nghttp2_session_callbacks *cbs;
static nghttp2_option *opts;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

/* Callbacks and options shared by every session (read-only once built). */
static void setup(void)
{
	if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opts) != 0)
		return;
	nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	nghttp2_session_callbacks_set_send_data_callback(cbs, send_data_cb);
	nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, read_length);
	nghttp2_option_set_no_auto_window_update(opts, 1);   /* bodies open windows as read */
	nghttp2_option_set_max_outbound_ack(opts, 1000);     /* SETTINGS/PING floods */
	nghttp2_option_set_max_settings(opts, 32);
	nghttp2_option_set_stream_reset_rate_limit(opts, 1000, 33); /* rapid reset */
	nghttp2_option_set_max_continuations(opts, 8);        /* CONTINUATION flood */
	nghttp2_option_set_max_deflate_dynamic_table_size(opts, 4096);
	nghttp2_option_set_no_closed_streams(opts, 1);      /* no RFC 7540 priority tree */
}

/* ---- the connection ---- */

static void h2_free(struct h2conn *h2)
{
	if (h2->hw_prev || h2->hw->h2conns == h2) {   /* linked: unlink */
		if (h2->hw_prev)
			h2->hw_prev->hw_next = h2->hw_next;
		else
			h2->hw->h2conns = h2->hw_next;
		if (h2->hw_next)
			h2->hw_next->hw_prev = h2->hw_prev;
		atomic_fetch_sub(&h2->s->h2_conns, 1);
	}
	nghttp2_session_del(h2->ng);
	free(h2->stage);
	free(h2);
}

static int submit_settings(struct h2conn *h2)
{
	const struct pt_http_config *cfg = &h2->s->cfg;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->max_head },
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		/* RFC 9218: no RFC 7540 dependency tree; streams are scheduled by urgency */
		{ NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1 },
	};
	return nghttp2_submit_settings(h2->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
}

/* The connection becomes HTTP/2: from on_accept (ALPN h2) with no data, or from the HTTP/1
 * input path when the client preface arrived on an h2c listener (data = what arrived). */
int pt__h2_start(struct pt_http_server *s, pt_conn_t *c, const void *data, size_t len)
{
	pthread_once(&setup_once, setup);
	struct h2conn *h2 = cbs && opts ? calloc(1, sizeof *h2) : NULL;

	if (!h2 || !(h2->stage = malloc(H2_STAGE_CAP))) {
		free(h2);
		return -ENOMEM;
	}
	h2->s = s;
	h2->c = c;
	h2->hw = pt__hw(s, c);
	if (!h2->hw->h2mem && (h2->hw->h2mem = malloc(sizeof *h2->hw->h2mem)))
		pt__h2_mem_init(h2->hw->h2mem);
	if (!h2->hw->h2mem ||
	    nghttp2_session_server_new3(&h2->ng, cbs, h2, opts, &h2->hw->h2mem->mem) != 0 ||
	    submit_settings(h2) != 0) {
		h2_free(h2);
		return -ENOMEM;
	}
	pt_conn_set_user(c, h2);
	pt_conn_set_ops(c, &h2_conn_ops);
	h2->hw_next = h2->hw->h2conns;
	if (h2->hw_next)
		h2->hw_next->hw_prev = h2;
	h2->hw->h2conns = h2;
	atomic_fetch_add(&s->h2_conns, 1);
	pt__hw_count(&h2->hw->cnt.h2_conns);
	if (atomic_load(&s->stopping))
		pt__h2_goaway_one(h2, 1);         /* stopping already: no new requests here */
	pt_conn_set_state(c, PT_CONN_PARTIAL);     /* until the client's preface and SETTINGS */
	if (len)
		h2_conn_ops.on_data(c, data, len);
	else
		pt__h2_flush(h2);
	return 0;
}

void pt__h2_goaway_one(struct h2conn *h2, int step)
{
	if (h2->dead)
		return;
	if (step == 0)
		nghttp2_submit_shutdown_notice(h2->ng);
	else
		nghttp2_submit_goaway(h2->ng, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(h2->ng),
				      NGHTTP2_NO_ERROR, NULL, 0);
	pt__h2_flush(h2);
}

void pt__h2_goaway_all(struct hworker *hw, int step)
{
	for (struct h2conn *h2 = hw->h2conns, *next; h2; h2 = next) {
		next = h2->hw_next;               /* flushing may close (not free) h2 */
		pt__h2_goaway_one(h2, step);
	}
}

#define H2_TICK_MS 2000u                   /* MinSendRate and EntityBody checks */

/* No stream: the connection is idle (IdleConnection runs). Streams open: a tick every two
 * seconds checks MinSendRate while responses wait to be sent, and EntityBody for bodies
 * being read; a handler that is only working has no deadline, as on HTTP/1.1. */
static void update_timer(struct h2conn *h2)
{
	const struct pt_http_timeouts *t = &h2->s->cfg.timeouts;

	if (!h2->preface_done || h2->dead)
		return;                              /* HeaderWait from accept is still armed */
	if (h2->nstreams == 0) {
		h2->ticking = false;
		pt_conn_set_state(h2->c, PT_CONN_IDLE);
		pt_conn_set_timeout(h2->c, t->idle_connection);
	} else if (!h2->ticking) {
		h2->ticking = true;
		h2->rate_mark = pt_conn_bytes_sent(h2->c);
		pt_conn_set_state(h2->c, PT_CONN_BUSY);
		pt_conn_set_timeout(h2->c, H2_TICK_MS);
	}
}

/* Bytes of responses not yet sent: queued on streams (e.g. behind a closed window) or in
 * the engine. */
static bool output_waiting(const struct h2conn *h2)
{
	if (pt_conn_send_queued(h2->c))
		return true;
	for (const struct h2stream *st = h2->streams; st; st = st->next)
		if (st->queued)
			return true;
	return false;
}

/* Streams are open: responses must move at MinSendRate; a header block must end within
 * HeaderWait (else the connection closes, as before the preface); a body being read must not
 * pause longer than EntityBody (its stream is reset and the reader gets -ETIMEDOUT). */
static void tick(struct h2conn *h2)
{
	const struct pt_http_timeouts *t = &h2->s->cfg.timeouts;
	uint64_t sent = pt_conn_bytes_sent(h2->c), need = (uint64_t)t->min_send_rate * H2_TICK_MS / 1000;
	uint32_t now = (uint32_t)pt_worker_now_ms(pt_conn_worker(h2->c));

	if (t->min_send_rate != PT_HTTP_RATE_OFF && output_waiting(h2) && sent - h2->rate_mark < need) {
		h2->dead = true;                 /* slower than MinSendRate: cut it */
		pt_conn_close(h2->c, PT_CLOSE_ABORT);
		return;
	}
	h2->rate_mark = sent;
	for (struct h2stream *st = h2->streams; st; st = st->next) {
		if (!pt__h2_head_stalled(st, now, t->header_wait))
			continue;
		h2->ticking = false;             /* HeaderWait: a header block that never ends */
		nghttp2_submit_goaway(h2->ng, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(h2->ng),
				      NGHTTP2_NO_ERROR, NULL, 0);
		pt__h2_flush(h2);
		h2->closing = true;
		pt_conn_close(h2->c, PT_CLOSE_GRACEFUL);
		return;
	}
	for (struct h2stream *st = h2->streams; st; st = st->next) {
		if (!pt__h2_body_stalled(st, now, t->entity_body))
			continue;
		pt__req_body_end(st->r, -ETIMEDOUT);
		nghttp2_submit_rst_stream(h2->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
	}
	pt_conn_set_timeout(h2->c, H2_TICK_MS);
	pt__h2_flush(h2);
}

static void on_data(pt_conn_t *c, const void *data, size_t len)
{
	struct h2conn *h2 = pt_conn_user(c);

	if (h2->dead)
		return;
	h2->in_recv = true;
	h2->new_streams = 0;
	ssize_t n = nghttp2_session_mem_recv(h2->ng, data, len);
	h2->in_recv = false;
	if (n < 0) {
		/* a protocol error (nghttp2 queued GOAWAY with its code) or a flood: say so, close */
		uint32_t code = h2->flooded || n == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM :
				NGHTTP2_PROTOCOL_ERROR;
		if (n != NGHTTP2_ERR_BAD_CLIENT_MAGIC)
			nghttp2_session_terminate_session(h2->ng, code);
		count_offender(h2, code);
		h2->closing = true;      /* the GOAWAY leaves even behind a full queue of ACKs */
	}
	pt__h2_flush(h2);
	if (n < 0 && !h2->dead) {
		h2->closing = true;
		pt_conn_close(c, PT_CLOSE_GRACEFUL);
		return;
	}
	update_timer(h2);
	/* the peer keeps sending while its answers cannot leave: stop reading until they do */
	if (pt_conn_send_queued(c) > 4 * H2_OUT_HIGH)
		pt_conn_pause_recv(c);
}

static void on_eof(pt_conn_t *c, int err)
{
	struct h2conn *h2 = pt_conn_user(c);

	if (err || h2->nstreams == 0) {
		h2->closing = true;
		pt_conn_close(c, err ? PT_CLOSE_ABORT : PT_CLOSE_GRACEFUL);
		return;
	}
	/* the client stopped sending: answer what it asked, accept nothing new, then close. A
	 * request it had not finished (no END_STREAM; a header block cut short) never will be:
	 * its stream is reset now, as an HTTP/1.1 body cut by EOF ends at once, instead of
	 * waiting for EntityBody or HeaderWait */
	for (struct h2stream *st = h2->streams; st; st = st->next)
		if (!st->end_stream && !st->closed)
			nghttp2_submit_rst_stream(h2->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
	nghttp2_submit_goaway(h2->ng, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(h2->ng), NGHTTP2_NO_ERROR, NULL, 0);
	pt__h2_flush(h2);
}

static void on_timeout(pt_conn_t *c)
{
	struct h2conn *h2 = pt_conn_user(c);

	if (h2->preface_done && h2->nstreams) {
		tick(h2);
		return;
	}
	if (h2->preface_done && h2->ticking) {  /* the busy tick, and the last stream has just
						   ended: IdleConnection counts from now */
		update_timer(h2);
		return;
	}
	/* HeaderWait (no preface yet) or IdleConnection */
	h2->ticking = false;
	nghttp2_submit_goaway(h2->ng, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(h2->ng), NGHTTP2_NO_ERROR, NULL, 0);
	pt__h2_flush(h2);
	h2->closing = true;
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void on_drain(pt_conn_t *c)
{
	struct h2conn *h2 = pt_conn_user(c);

	pt_conn_resume_recv(c);
	pt__h2_flush(h2);
}

static void on_close(pt_conn_t *c)
{
	struct h2conn *h2 = pt_conn_user(c);

	h2->dead = true;
	/* staged but never sent (a stage send failed): those sends fail now */
	stage_complete(h2->stage_done, h2->stage_ent, h2->nstage_ent, -ECANCELED);
	h2->stage_done = NULL;
	h2->nstage_ent = 0;
	pt__h2_streams_gone(h2);              /* aborts reach the handlers; streams detach */
	h2_free(h2);
}

/* The engine stops: nothing to do here, the server's two GOAWAYs (server.c) end the
 * connection once its streams are done (pt__h2_flush); shutdown_ms bounds them. */
static void on_stop(pt_conn_t *c)
{
}

static const struct pt_conn_ops h2_conn_ops = {
	.on_data = on_data,
	.on_eof = on_eof,
	.on_timeout = on_timeout,
	.on_drain = on_drain,
	.on_close = on_close,
	.on_stop = on_stop,
};
