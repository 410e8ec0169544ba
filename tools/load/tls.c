/*
 * portico-load: TLS as a client, with OpenSSL over memory BIOs on top of a plaintext engine
 * connection. Ciphertext that arrives goes into the read BIO; what OpenSSL writes (handshake
 * flights, records) is taken from the write BIO and sent as one copied send per flush.
 * Certificates are not verified (a load generator measures a server it was pointed at).
 * With --new-conn the worker keeps the last session and offers it (resumption), as a browser
 * would. Threads: the connection's worker; the SSL_CTX is shared (OpenSSL locks it).
 */
#include "load.h"
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>

SSL_CTX *tls_client_ctx(bool h2, char *err, size_t cap)
{
	static const unsigned char alpn_h2[] = "\x02h2", alpn_h1[] = "\x08http/1.1";
	SSL_CTX *x = SSL_CTX_new(TLS_client_method());

	if (!x) {
		snprintf(err, cap, "SSL_CTX_new: %s", ERR_reason_error_string(ERR_get_error()));
		return NULL;
	}
	SSL_CTX_set_verify(x, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
	if (h2 ? SSL_CTX_set_alpn_protos(x, alpn_h2, sizeof alpn_h2 - 1)
	       : SSL_CTX_set_alpn_protos(x, alpn_h1, sizeof alpn_h1 - 1)) {
		snprintf(err, cap, "cannot set ALPN");
		SSL_CTX_free(x);
		return NULL;
	}
	return x;
}

/* Sends what OpenSSL wrote (one copied send). */
static void flush(struct lconn *lc)
{
	char *p;
	long n = BIO_get_mem_data(lc->wbio, &p);

	if (n <= 0 || !lc->c || lc->closing)
		return;
	int err = pt_conn_send(lc->c, p, (size_t)n, PT_SEND_COPY, NULL, NULL);
	(void)BIO_reset(lc->wbio);
	if (err < 0)
		lconn_fail(lc, &lc->lw->st.err_write);
}

static bool is_ip(const char *h)
{
	unsigned char b[16];

	return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

static void handshake(struct lconn *lc)
{
	int r = SSL_do_handshake(lc->ssl);

	flush(lc);
	if (r == 1) {
		const unsigned char *proto = NULL;
		unsigned plen = 0;
		lc->hs_done = true;
		SSL_get0_alpn_selected(lc->ssl, &proto, &plen);
		if (lc->lw->run->o.h2 && !(plen == 2 && !memcmp(proto, "h2", 2)))
			lconn_fail(lc, &lc->lw->st.err_connect);   /* the server did not pick h2 */
		else
			lconn_ready(lc);
	} else if (SSL_get_error(lc->ssl, r) != SSL_ERROR_WANT_READ) {
		lconn_fail(lc, &lc->lw->st.err_connect);
	}
}

int tls_start(struct lconn *lc)
{
	struct lworker *lw = lc->lw;
	const char *host = lw->run->o.host;

	if (!(lc->ssl = SSL_new(lw->run->ssl_ctx)))
		return -ENOMEM;
	lc->rbio = BIO_new(BIO_s_mem());
	lc->wbio = BIO_new(BIO_s_mem());
	if (!lc->rbio || !lc->wbio) {
		BIO_free(lc->rbio);
		BIO_free(lc->wbio);
		lc->rbio = lc->wbio = NULL;
		return -ENOMEM;
	}
	SSL_set_bio(lc->ssl, lc->rbio, lc->wbio);     /* the SSL owns them now */
	BIO_set_mem_eof_return(lc->rbio, -1);         /* empty: "retry", not EOF */
	SSL_set_connect_state(lc->ssl);
	if (!is_ip(host))
		SSL_set_tlsext_host_name(lc->ssl, host);
	if (lw->session)
		SSL_set_session(lc->ssl, lw->session);
	lc->hs_done = false;
	handshake(lc);
	return 0;
}

void tls_rx(struct lconn *lc, const char *data, size_t len)
{
	struct lworker *lw = lc->lw;
	int n = 0;

	if (BIO_write(lc->rbio, data, (int)len) != (int)len) {
		lconn_fail(lc, &lw->st.err_read);
		return;
	}
	if (!lc->hs_done) {
		handshake(lc);
		if (!lc->hs_done)
			return;
	}
	while (lc->c && !lc->closing && (n = SSL_read(lc->ssl, lw->rbuf, sizeof lw->rbuf)) > 0)
		lconn_deliver(lc, (const char *)lw->rbuf, (size_t)n);
	if (!lc->c || lc->closing)
		return;
	int e = SSL_get_error(lc->ssl, n);
	if (e == SSL_ERROR_ZERO_RETURN) {             /* close_notify: as the peer's FIN */
		if (!lw->run->o.h2)
			h1_eof(lc);
		lconn_fail(lc, lc->outstanding || lc->h2_open ? &lw->st.err_read : NULL);
		return;
	}
	if (e != SSL_ERROR_WANT_READ)
		lconn_fail(lc, &lw->st.err_read);
	else
		flush(lc);
}

int tls_send(struct lconn *lc, const struct pt_chunk *ch, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (ch[i].mem.len && SSL_write(lc->ssl, ch[i].mem.base, (int)ch[i].mem.len) <= 0)
			return -EIO;
	flush(lc);
	return 0;
}

void tls_reset(struct lconn *lc)
{
	struct lworker *lw = lc->lw;

	if (!lc->ssl)
		return;
	if (lc->hs_done && lw->run->o.new_conn) {
		SSL_SESSION *s = SSL_get1_session(lc->ssl);
		if (s && SSL_SESSION_is_resumable(s)) {
			SSL_SESSION_free(lw->session);
			lw->session = s;
		} else {
			SSL_SESSION_free(s);
		}
	}
	SSL_free(lc->ssl);
	lc->ssl = NULL;
	lc->rbio = lc->wbio = NULL;
	lc->hs_done = false;
}
