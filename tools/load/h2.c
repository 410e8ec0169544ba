/*
 * portico-load: HTTP/2 on a connection (libnghttp2 client session): h2 over TLS (ALPN) or h2c
 * with prior knowledge. Keeps --streams requests open per connection, starting a new stream
 * as each one closes; --new-conn makes one stream per connection, then GOAWAY and a new
 * connection. What the session writes is gathered into one copied send per flush.
 * Threads: the connection's worker.
 */
#include "load.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <nghttp2/nghttp2.h>

#define H2_WINDOW (16u << 20)      /* stream and connection windows: bodies are not throttled */
#define FLUSH_BUF (64u << 10)

struct h2nv {
	nghttp2_nv *nv;
	size_t n;
};

struct h2slot {
	uint64_t start_us;
	unsigned status;
	unsigned next_free;
};

static nghttp2_session_callbacks *callbacks;   /* built once by h2_setup, read-only after */

static nghttp2_nv mknv(const char *name, const char *value)
{
	return (nghttp2_nv){ (uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
			     NGHTTP2_NV_FLAG_NONE };
}

/* A -H "Name: value" as a lower-case name and its value (leaked with the run's options). */
static int add_header(nghttp2_nv *nv, const char *h)
{
	const char *colon = strchr(h, ':');
	char *name;

	if (!colon || !(name = strndup(h, (size_t)(colon - h))))
		return -EINVAL;
	for (char *p = name; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	colon++;
	while (*colon == ' ')
		colon++;
	*nv = mknv(name, colon);
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct h2slot *slot;

	if (f->hd.type != NGHTTP2_HEADERS || namelen != 7 || memcmp(name, ":status", 7) || valuelen != 3)
		return 0;
	slot = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (slot)
		slot->status = (unsigned)(value[0] - '0') * 100 + (unsigned)(value[1] - '0') * 10 +
			       (unsigned)(value[2] - '0');
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *ud)
{
	struct lconn *lc = ud;

	if (lc->lw->counting)
		lc->lw->st.body_in += len;
	return 0;
}

static void submit(struct lconn *lc);

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *ud)
{
	struct lconn *lc = ud;
	struct h2slot *slot = nghttp2_session_get_stream_user_data(s, id);

	if (!slot)
		return 0;
	if (error_code == NGHTTP2_NO_ERROR && slot->status >= 200)
		record(lc, slot->status, slot->start_us);
	else if (lc->lw->counting)
		lc->lw->st.err_read++;
	slot->next_free = lc->slot_free;
	lc->slot_free = (unsigned)(slot - lc->slots);
	lc->h2_open--;
	if (lc->lw->run->o.new_conn) {
		lc->want_close = true;
		nghttp2_session_terminate_session(s, NGHTTP2_NO_ERROR);
	} else {
		submit(lc);
	}
	return 0;
}

int h2_setup(struct opts *o)
{
	static const char *scheme[] = { "http", "https" };

	if (nghttp2_session_callbacks_new(&callbacks))
		return -ENOMEM;
	nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
	if (!(o->nv = calloc(o->nurls, sizeof *o->nv)))
		return -ENOMEM;
	for (unsigned i = 0; i < o->nurls; i++) {
		nghttp2_nv *nv = calloc(4 + o->nheaders, sizeof *nv);
		if (!nv)
			return -ENOMEM;
		nv[0] = mknv(":method", o->head ? "HEAD" : "GET");
		nv[1] = mknv(":scheme", scheme[o->tls]);
		nv[2] = mknv(":authority", o->authority);
		nv[3] = mknv(":path", o->urls[i].path);
		for (unsigned k = 0; k < o->nheaders; k++)
			if (add_header(&nv[4 + k], o->headers[k]) < 0)
				return -EINVAL;
		o->nv[i] = (struct h2nv){ nv, 4 + o->nheaders };
	}
	return 0;
}

/* Sends what the session has to send, gathered. */
static void flush(struct lconn *lc)
{
	char buf[FLUSH_BUF];
	size_t used = 0;
	const uint8_t *d;
	ssize_t n;

	while ((n = nghttp2_session_mem_send(lc->h2, &d)) > 0) {
		if (used + (size_t)n > sizeof buf && used) {
			struct pt_chunk ch = { .kind = PT_CHUNK_MEM, .mem = { buf, used } };
			if (lconn_send(lc, &ch, 1, true) < 0)
				return;
			used = 0;
		}
		if ((size_t)n > sizeof buf) {
			struct pt_chunk ch = { .kind = PT_CHUNK_MEM, .mem = { d, (size_t)n } };
			if (lconn_send(lc, &ch, 1, true) < 0)
				return;
			continue;
		}
		memcpy(buf + used, d, (size_t)n);
		used += (size_t)n;
	}
	if (n < 0) {
		lconn_fail(lc, &lc->lw->st.err_write);
		return;
	}
	if (used) {
		struct pt_chunk ch = { .kind = PT_CHUNK_MEM, .mem = { buf, used } };
		lconn_send(lc, &ch, 1, true);
	}
}

static void submit(struct lconn *lc)
{
	struct lworker *lw = lc->lw;
	const struct opts *o = &lw->run->o;

	if (!can_start(lc) || lc->want_close || lc->slot_free == UINT32_MAX)
		return;
	unsigned i = lc->slot_free;
	struct h2slot *slot = &lc->slots[i];
	const struct h2nv *nv = &o->nv[lc->next_url];
	lc->next_url = lc->next_url + 1 == o->nurls ? 0 : lc->next_url + 1;
	*slot = (struct h2slot){ o->new_conn ? lc->conn_start_us : pt_worker_now_us(lw->w), 0,
				 slot->next_free };
	if (nghttp2_submit_request(lc->h2, NULL, nv->nv, nv->n, NULL, slot) < 0) {
		lc->want_close = true;          /* stream ids used up: a new connection */
		nghttp2_session_terminate_session(lc->h2, NGHTTP2_NO_ERROR);
		return;
	}
	lc->slot_free = slot->next_free;
	lc->h2_open++;
	lc->h2_made++;
	if (lw->counting)
		lw->st.sent++;
}

int h2_start(struct lconn *lc)
{
	const struct opts *o = &lc->lw->run->o;
	nghttp2_settings_entry set[] = { { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
					 { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW } };
	nghttp2_session *s;
	unsigned n = o->new_conn ? 1 : o->streams;

	if (!lc->slots && !(lc->slots = calloc(PIPE_MAX, sizeof *lc->slots)))
		return -ENOMEM;
	if (nghttp2_session_client_new(&s, callbacks, lc))
		return -ENOMEM;
	lc->h2 = s;
	lc->h2_open = lc->h2_made = 0;
	lc->want_close = false;
	for (unsigned i = 0; i < n; i++)
		lc->slots[i].next_free = i + 1 < n ? i + 1 : UINT32_MAX;
	lc->slot_free = 0;
	nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, set, 2);
	nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, (int32_t)H2_WINDOW);
	for (unsigned i = 0; i < n; i++)
		submit(lc);
	flush(lc);
	return 0;
}

void h2_rx(struct lconn *lc, const char *data, size_t len)
{
	if (!lc->h2)
		return;
	if (nghttp2_session_mem_recv(lc->h2, (const uint8_t *)data, len) < 0) {
		lconn_fail(lc, &lc->lw->st.err_parse);
		return;
	}
	flush(lc);
	if (lc->c && !lc->closing && !nghttp2_session_want_read(lc->h2) &&
	    !nghttp2_session_want_write(lc->h2)) {
		lc->closing = true;             /* GOAWAY exchanged, nothing open: close */
		pt_conn_close(lc->c, PT_CLOSE_GRACEFUL);
	}
}

void h2_reset(struct lconn *lc)
{
	if (lc->h2)
		nghttp2_session_del(lc->h2);
	lc->h2 = NULL;
	lc->h2_open = 0;
}
