/*
 * The TLS filter of a connection: handshake, decryption of what arrives, encryption of what
 * the send queue holds, close_notify. See tls_int.h for the byte flow.
 *
 * Threads: everything here runs on the connection's worker.
 */
#include "engine/tls_int.h"
#include "engine/fault.h"
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TLS_RECORD_HANDSHAKE 0x16

/* ---- ciphertext buffers (lookaside list per worker; bypassed under ASan) ---- */

static struct pt_tls_buf *buf_get(struct pt_worker *w)
{
	struct pt_tls_worker *tw = w->tlsw;
	struct pt_tls_buf *b = tw->buf_free;

	if (b) {
		tw->buf_free = b->next;
		tw->nbuf_free--;
	} else {
		if (!(b = pt__malloc(sizeof *b)))
			return NULL;
		if (!(b->base = pt__malloc(PT_TLS_BUF_CAP))) {
			free(b);
			return NULL;
		}
		b->cap = PT_TLS_BUF_CAP;
	}
	b->next = NULL;
	b->len = b->off = b->pt_bytes = 0;
	b->more = false;
	return b;
}

static void buf_put(struct pt_worker *w, struct pt_tls_buf *b)
{
	struct pt_tls_worker *tw = w->tlsw;

	if (!b)
		return;
	if (!PT_RECYCLE || b->cap != PT_TLS_BUF_CAP || tw->nbuf_free >= PT_TLS_BUF_FREE_MAX) {
		free(b->base);
		free(b);
		return;
	}
	b->next = tw->buf_free;
	tw->buf_free = b;
	tw->nbuf_free++;
}

/* Room in the open buffer (never in the kernel) for len more bytes. */
static int out_reserve(struct pt_tls_conn *t, size_t len)
{
	struct pt_tls_buf *b = t->out;

	if (!b && !(b = t->out = buf_get(t->c->w)))
		return -ENOMEM;
	if (b->cap - b->len >= len)
		return 0;
	size_t cap = b->cap * 2 > b->len + len ? b->cap * 2 : b->len + len;
	char *p = pt__realloc(b->base, cap);
	if (!p)
		return -ENOMEM;
	b->base = p;
	b->cap = cap;
	return 0;
}

/* ---- the BIO: reads from the receive buffer in hand, writes to the open buffer ---- */

static int bio_write(BIO *bio, const char *data, int len)
{
	struct pt_tls_conn *t = BIO_get_data(bio);

	BIO_clear_retry_flags(bio);
	if (len <= 0)
		return 0;
	if (out_reserve(t, (size_t)len) < 0)
		return -1;
	memcpy(t->out->base + t->out->len, data, (size_t)len);
	t->out->len += (size_t)len;
	return len;
}

static int bio_read(BIO *bio, char *out, int len)
{
	struct pt_tls_conn *t = BIO_get_data(bio);

	BIO_clear_retry_flags(bio);
	if (!t->in_len) {
		BIO_set_retry_read(bio);
		return -1;
	}
	size_t n = (size_t)len < t->in_len ? (size_t)len : t->in_len;
	memcpy(out, t->in, n);
	t->in += n;
	t->in_len -= n;
	return (int)n;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH;
}

static int bio_create(BIO *bio)
{
	BIO_set_init(bio, 1);
	return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "portico");

	if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
	    BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create))
		bio_method = m;
	else
		BIO_meth_free(m);
}

/* ---- handshakes in progress (worker list, oldest first) ---- */

static void hs_unlink(struct pt_tls_conn *t)
{
	struct pt_tls_worker *tw = t->c->w->tlsw;

	if (!t->in_handshake_list)
		return;
	if (t->hs_prev)
		t->hs_prev->hs_next = t->hs_next;
	else
		tw->hs_head = t->hs_next;
	if (t->hs_next)
		t->hs_next->hs_prev = t->hs_prev;
	else
		tw->hs_tail = t->hs_prev;
	t->hs_prev = t->hs_next = NULL;
	t->in_handshake_list = false;
	tw->nhandshakes--;
}

static void hs_append(struct pt_tls_worker *tw, struct pt_tls_conn *t)
{
	t->hs_next = NULL;
	t->hs_prev = tw->hs_tail;
	if (tw->hs_tail)
		tw->hs_tail->hs_next = t;
	else
		tw->hs_head = t;
	tw->hs_tail = t;
	t->in_handshake_list = true;
	tw->nhandshakes++;
}

/* A handshake ends without a connection for the application. */
static void hs_fail(struct pt_conn *c, uint64_t *reason, int how)
{
	struct pt_worker *w = c->w;
	struct pt_tls_conn *t = c->tls;

	if (reason)
		__atomic_store_n(reason, *reason + 1, __ATOMIC_RELAXED);
	CNT_ADD(w, tls_failed, 1);
	ERR_clear_error();
	hs_unlink(t);
	t->dead = t->shut = true;
	pt_conn_close(c, how);          /* graceful: a pending alert still goes out */
}

/* ---- accept ---- */

static int worker_init(struct pt_worker *w)
{
	if (w->tlsw)
		return 0;
	pthread_once(&bio_once, bio_method_init);
	if (!bio_method || !(w->tlsw = pt__calloc(1, sizeof *w->tlsw)))
		return -ENOMEM;
	return 0;
}

static int ssl_setup(struct pt_tls_conn *t, struct pt_conn *c)
{
	BIO *rb = BIO_new(bio_method), *wb = rb;

	if (!rb || !(t->ssl = pt__tls_ssl_new(t->gen))) {
		BIO_free(rb);
		return -ENOMEM;
	}
	BIO_set_data(rb, t);
	if (pt__tls_use_ktls(t->gen) && !(wb = BIO_new_socket(c->fd, BIO_NOCLOSE)))
		wb = rb;                     /* kTLS needs the socket as write BIO */
	if (wb == rb)
		SSL_set_bio(t->ssl, rb, rb);
	else
		SSL_set_bio(t->ssl, rb, wb);
	SSL_set_accept_state(t->ssl);
	return 0;
}

int pt__tls_accept(struct pt_conn *c, struct pt_listener *l)
{
	struct pt_worker *w = c->w;
	struct pt_tls_conn *t;

	if (worker_init(w) < 0 || !(t = pt__calloc(1, sizeof *t)))
		return -ENOMEM;
	t->c = c;
	t->l = l;
	t->gen = pt__tls_gen_get(l->opts.tls);
	t->record_size = pt__tls_record_size(t->gen);
	c->tls = t;
	if (ssl_setup(t, c) < 0)
		return -ENOMEM;              /* the caller frees t with the connection */
	struct pt_tls_worker *tw = w->tlsw;
	if (tw->nhandshakes >= pt__tls_max_handshakes(t->gen) && tw->hs_head)
		hs_fail(tw->hs_head->c, &w->cnt.tls_fail_shed, PT_CLOSE_ABORT);
	hs_append(tw, t);
	pt_conn_set_timeout(c, pt__tls_hs_timeout(t->gen));
	return 0;
}

/* ---- receiving ---- */

static void established(struct pt_conn *c)
{
	struct pt_tls_conn *t = c->tls;
	struct pt_worker *w = c->w;
	const char *sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);

	t->established = true;
	t->handshake_us = (unsigned)(pt__now_us() - t->start_us);
	hs_unlink(t);
	pt__ctimer_cancel(c);
	if (SSL_session_reused(t->ssl))
		CNT_ADD(w, tls_resumed, 1);
	else
		CNT_ADD(w, tls_handshakes, 1);
	const unsigned char *proto;
	unsigned plen = 0;
	SSL_get0_alpn_selected(t->ssl, &proto, &plen);
	if (sni)
		t->sni = strdup(sni);        /* NULL on failure: reported as no SNI */
	if (plen)
		t->alpn = strndup((const char *)proto, plen);
	if (SSL_get_wbio(t->ssl) != SSL_get_rbio(t->ssl)) {   /* the kTLS set-up */
		if (BIO_get_ktls_send(SSL_get_wbio(t->ssl)) == 1) {
			t->ktls = true;
			CNT_ADD(w, tls_ktls, 1);
		} else {
			BIO_up_ref(SSL_get_rbio(t->ssl));
			SSL_set0_wbio(t->ssl, SSL_get_rbio(t->ssl));
		}
	}
	if (!pt__conn_accept_app(c, t->l))
		pt_conn_close(c, PT_CLOSE_ABORT);   /* refused: no callback for it, not on_close */
}

static uint64_t *fail_reason(struct pt_worker *w)
{
	int r = ERR_GET_REASON(ERR_peek_error());

	switch (r) {
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
		return &w->cnt.tls_fail_plain;
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SHARED_GROUPS:
	case SSL_R_NO_SUITABLE_KEY_SHARE:
	case SSL_R_NO_APPLICATION_PROTOCOL:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
		return &w->cnt.tls_fail_proto;
	default:
		return NULL;
	}
}

static void handshake(struct pt_conn *c)
{
	struct pt_tls_conn *t = c->tls;
	int r = SSL_do_handshake(t->ssl);

	if (r == 1) {
		established(c);
		return;
	}
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return;
	hs_fail(c, e == SSL_ERROR_SSL ? fail_reason(c->w) : NULL, PT_CLOSE_GRACEFUL);
}

static void read_records(struct pt_conn *c)
{
	struct pt_tls_conn *t = c->tls;
	unsigned char *plain = c->w->tlsw->plain;

	while (!(c->flags & PT_C_CLOSING)) {
		size_t n;
		if (SSL_read_ex(t->ssl, plain, sizeof c->w->tlsw->plain, &n) == 1) {
			pt__rx_plain(c, plain, n);
			continue;
		}
		int e = SSL_get_error(t->ssl, 0);
		if (e == SSL_ERROR_WANT_READ)
			return;
		if (e == SSL_ERROR_ZERO_RETURN) {        /* close_notify: end of input */
			pt__rx_end(c, 0);
			return;
		}
		CNT_ADD(c->w, tls_errors, 1);            /* a bad record or an alert */
		ERR_clear_error();
		t->dead = t->shut = true;
		pt__rx_end(c, -EPROTO);
		return;
	}
}

void pt__tls_rx(struct pt_conn *c, const void *data, size_t len)
{
	struct pt_tls_conn *t = c->tls;

	if (t->dead || (c->flags & PT_C_CLOSING))
		return;
	if (!t->start_us) {
		t->start_us = pt__now_us();
		if (((const unsigned char *)data)[0] != TLS_RECORD_HANDSHAKE) {
			hs_fail(c, &c->w->cnt.tls_fail_plain, PT_CLOSE_GRACEFUL);
			return;
		}
	}
	t->in = data;
	t->in_len = len;
	if (!t->established)
		handshake(c);
	if (t->established && !t->dead)
		read_records(c);
	t->in = NULL;                     /* left over only after a failure: discarded */
	t->in_len = 0;
	if (t->out && t->out->len)
		pt__pending(c);           /* handshake flights, tickets, alerts go out */
}

int pt__tls_rx_end(struct pt_conn *c)
{
	struct pt_tls_conn *t = c->tls;

	if (!t->established || t->dead || !SSL_has_pending(t->ssl))
		return 0;                 /* every whole record was read: a clean end */
	CNT_ADD(c->w, tls_errors, 1);     /* truncated: part of a record is all there is */
	t->dead = t->shut = true;
	return -EPROTO;
}

void pt__tls_eof(struct pt_conn *c)
{
	hs_fail(c, NULL, PT_CLOSE_ABORT);
}

void pt__tls_timeout(struct pt_conn *c)
{
	hs_fail(c, &c->w->cnt.tls_fail_timeout, PT_CLOSE_ABORT);
}

/* ---- sending ---- */

struct cursor {
	struct pt_sreq *r;
	unsigned i;
	size_t off;
	/* the worker's read-ahead buffer holds bytes [ra_off, ra_off + ra_len) of file chunk
	 * ra_ch (valid during one encrypt() call) */
	const struct pt_chunk *ra_ch;
	size_t ra_off, ra_len;
};

/* Move past empty chunks and finished requests; false at the end of the queue. */
static bool cursor_settle(struct cursor *k)
{
	while (k->r) {
		while (k->i < k->r->n && k->off == pt__chunk_len(&k->r->chunks[k->i])) {
			k->i++;
			k->off = 0;
		}
		if (k->i < k->r->n)
			return true;
		k->r = k->r->next;
		k->i = 0;
		k->off = 0;
	}
	return false;
}

/* Whether the read-ahead buffer holds the byte of chunk ch at the cursor. */
static bool in_window(const struct cursor *k, const struct pt_chunk *ch)
{
	return k->ra_ch == ch && k->off >= k->ra_off && k->off < k->ra_off + k->ra_len;
}

/* Up to want bytes of the file chunk at the cursor, in the worker's read-ahead buffer (*p).
 * When the buffer does not hold them, one pread fills it with up to budget bytes of the
 * chunk (what this call may still encrypt), so a 64 KiB send costs one read, not one per
 * record. Bytes (0: interrupted, call again), or -errno (-EIO: the file is shorter than its
 * range). */
static ssize_t file_window(struct pt_conn *c, struct cursor *k, size_t want, size_t budget,
			   const unsigned char **p)
{
	const struct pt_chunk *ch = &k->r->chunks[k->i];
	unsigned char *ra = c->w->tlsw->ra;

	if (!in_window(k, ch)) {
		size_t avail = ch->file.len - k->off;
		size_t n = budget > want ? budget : want;
		n = n < avail ? n : avail;
		n = n < sizeof c->w->tlsw->ra ? n : sizeof c->w->tlsw->ra;
		ssize_t got = pread(ch->file.fd, ra, n, ch->file.offset + (off_t)k->off);
		if (got <= 0)
			return got == 0 ? -EIO : (errno == EINTR ? 0 : -errno);
		k->ra_ch = ch;
		k->ra_off = k->off;
		k->ra_len = (size_t)got;
	}
	size_t in = k->ra_off + k->ra_len - k->off, n = want < in ? want : in;
	*p = ra + (k->off - k->ra_off);
	k->off += n;
	return (ssize_t)n;
}

/* Copies up to want bytes at the cursor into dst (files through the read-ahead buffer).
 * Bytes, or -errno. */
static ssize_t cursor_copy(struct pt_conn *c, struct cursor *k, unsigned char *dst, size_t want,
			   size_t budget)
{
	const struct pt_chunk *ch = &k->r->chunks[k->i];
	size_t avail = pt__chunk_len(ch) - k->off, n = want < avail ? want : avail;
	const unsigned char *src = (const unsigned char *)ch->mem.base + k->off;

	if (ch->kind == PT_CHUNK_MEM) {
		k->off += n;
	} else if (n == avail && !in_window(k, ch)) {
		/* the chunk ends in this record (an HTTP/2 DATA frame): read it in place */
		ssize_t got = pread(ch->file.fd, dst, n, ch->file.offset + (off_t)k->off);
		if (got <= 0)
			return got == 0 ? -EIO : (errno == EINTR ? 0 : -errno);
		k->off += (size_t)got;
		return got;
	} else {
		ssize_t got = file_window(c, k, n, budget, &src);
		if (got <= 0)
			return got;
		n = (size_t)got;
	}
	memcpy(dst, src, n);
	return (ssize_t)n;
}

static size_t record_size(struct pt_tls_conn *t, uint64_t now)
{
	if (t->record_size)
		return t->record_size;
	if (now - t->last_tx_ms >= PT_TLS_IDLE_MS)
		t->enc_bytes = 0;                 /* after a pause, ramp up again */
	return t->enc_bytes < PT_TLS_SMALL_UNTIL ? PT_TLS_REC_SMALL : PT_TLS_REC_MAX;
}

/* One record's plaintext at the cursor: straight from memory, or from the read-ahead
 * buffer, when one chunk holds it all, else gathered into the worker's record buffer.
 * budget: plaintext bytes this encrypt() call may still take. Bytes (0 at the end), or
 * -errno. */
static ssize_t record_plain(struct pt_conn *c, struct cursor *k, size_t rec, size_t budget,
			    const unsigned char **p)
{
	unsigned char *buf = c->w->tlsw->rec;
	size_t n = 0;

	if (!cursor_settle(k))
		return 0;
	const struct pt_chunk *ch = &k->r->chunks[k->i];
	if (ch->kind == PT_CHUNK_MEM && ch->mem.len - k->off >= rec) {
		*p = (const unsigned char *)ch->mem.base + k->off;
		k->off += rec;
		return (ssize_t)rec;
	}
	if (ch->kind == PT_CHUNK_FILE && ch->file.len - k->off >= rec) {
		size_t at = k->off;
		ssize_t got = file_window(c, k, rec, budget, p);
		if (got == (ssize_t)rec || got < 0)
			return got;
		k->off = at;               /* the window ends inside the record: gather it */
	}
	while (n < rec && cursor_settle(k)) {
		ssize_t got = cursor_copy(c, k, buf + n, rec - n, budget > n ? budget - n : 0);
		if (got < 0)
			return got;
		n += (size_t)got;
	}
	*p = buf;
	return (ssize_t)n;
}

/* Bytes queued at the cursor, counted up to limit. */
static size_t cursor_rest(struct cursor k, size_t limit)
{
	size_t n = 0;

	while (n < limit && cursor_settle(&k)) {
		n += pt__chunk_len(&k.r->chunks[k.i]) - k.off;
		k.off = pt__chunk_len(&k.r->chunks[k.i]);
	}
	return n;
}

/* Encrypts PT_TLS_FILL plaintext bytes from the send cursor into the open buffer, or all that
 * is queued when that is at most PT_TLS_TAIL more: a response's last bytes (a 64 KiB file
 * after its header) then leave in the same send, not in one of their own. */
static int encrypt(struct pt_conn *c)
{
	struct pt_tls_conn *t = c->tls;
	struct cursor k = { .r = c->q->sq_send, .i = c->q->sq_send->cur, .off = c->q->sq_send->off };
	struct pt_sreq *last = k.r;
	size_t total = 0, limit = cursor_rest(k, PT_TLS_FILL + PT_TLS_TAIL + 1);

	if (limit > PT_TLS_FILL + PT_TLS_TAIL)
		limit = PT_TLS_FILL;
	while (total < limit) {
		size_t rec = record_size(t, c->w->now_ms);
		rec = rec < limit - total ? rec : limit - total;
		if (out_reserve(t, 0) < 0)
			return -ENOMEM;
		if (t->out->cap - t->out->len < rec + PT_TLS_REC_OVERHEAD && total)
			break;                    /* full: the rest goes in the next buffer */
		if (out_reserve(t, rec + PT_TLS_REC_OVERHEAD) < 0)
			return -ENOMEM;
		const unsigned char *p = NULL;
		ssize_t n = record_plain(c, &k, rec, limit - total, &p);
		if (n <= 0) {
			if (n < 0)
				return (int)n;
			break;
		}
		size_t done;
		if (SSL_write_ex(t->ssl, p, (size_t)n, &done) != 1 || done != (size_t)n) {
			ERR_clear_error();
			t->dead = true;
			return -EIO;
		}
		last = k.r ? k.r : last;
		total += (size_t)n;
		t->enc_bytes += (size_t)n;
		t->last_tx_ms = c->w->now_ms;
	}
	t->out->pt_bytes = total;
	t->out->more = cursor_settle(&k) || (last && (last->flags & PT_SEND_MORE));
	return 0;
}

int pt__tls_take(struct pt_conn *c, struct pt_tls_buf **b)
{
	struct pt_tls_conn *t = c->tls;
	int rc = 0;

	*b = t->fly;
	if (t->fly)
		return 0;
	if (c->q->sq_send && t->established) {
		if (t->dead)
			return -EPROTO;
		rc = encrypt(c);
	}
	if (t->out && t->out->len) {
		*b = t->fly = t->out;
		t->out = NULL;
	}
	return rc;
}

size_t pt__tls_sent(struct pt_conn *c, size_t n)
{
	struct pt_tls_conn *t = c->tls;
	struct pt_tls_buf *b = t->fly;

	b->off += n;
	if (b->off < b->len)
		return 0;
	size_t pt = b->pt_bytes;
	t->fly = NULL;
	buf_put(c->w, b);
	return pt;
}

bool pt__tls_shutdown(struct pt_conn *c)
{
	struct pt_tls_conn *t = c->tls;

	if (!t->shut) {
		t->shut = true;
		if (t->established && !t->dead && SSL_shutdown(t->ssl) < 0)
			ERR_clear_error();
	}
	return t->fly || (t->out && t->out->len);
}

void pt__tls_free(struct pt_conn *c)
{
	struct pt_tls_conn *t = c->tls;

	if (!t)
		return;
	hs_unlink(t);
	SSL_free(t->ssl);
	buf_put(c->w, t->out);
	buf_put(c->w, t->fly);
	pt__tls_gen_put(t->gen);
	free(t->sni);
	free(t->alpn);
	free(t);
	c->tls = NULL;
	ERR_clear_error();
}

void pt__tls_worker_free(struct pt_worker *w)
{
	struct pt_tls_worker *tw = w->tlsw;

	if (!tw)
		return;
	while (tw->buf_free) {
		struct pt_tls_buf *b = tw->buf_free;
		tw->buf_free = b->next;
		free(b->base);
		free(b);
	}
	free(tw);
	w->tlsw = NULL;
	OPENSSL_thread_stop();
}

/* ---- public accessors ---- */

static const struct pt_tls_conn *tls_of(const pt_conn_t *c)
{
	return c && (c->flags & PT_C_LIVE) && c->tls && c->tls->established ? c->tls : NULL;
}

PT_API bool pt_conn_is_tls(const pt_conn_t *c)
{
	return c && c->tls;
}

PT_API const char *pt_conn_alpn(const pt_conn_t *c)
{
	const struct pt_tls_conn *t = tls_of(c);

	return t ? t->alpn : NULL;
}

PT_API const char *pt_conn_sni(const pt_conn_t *c)
{
	const struct pt_tls_conn *t = tls_of(c);

	return t ? t->sni : NULL;
}

PT_API int pt_conn_tls_info(const pt_conn_t *c, struct pt_tls_info *info)
{
	if (!c || !info)
		return -EINVAL;
	const struct pt_tls_conn *t = tls_of(c);
	if (!t)
		return -ENOTCONN;
	info->version = (unsigned)SSL_version(t->ssl);
	info->cipher = SSL_get_cipher_name(t->ssl);
	info->alpn = pt_conn_alpn(c);
	info->sni = t->sni;
	info->resumed = SSL_session_reused(t->ssl);
	info->ktls = t->ktls;
	info->handshake_us = t->handshake_us;
	return 0;
}
