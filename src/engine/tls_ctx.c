/*
 * TLS contexts: one SSL_CTX per certificate pair, built from a configuration into an immutable
 * generation; SNI picks the pair, ALPN picks the protocol, session tickets are sealed with keys
 * derived from one secret per generation (rotating with time, identical on every worker and
 * across reloads), and pt_tls_reload swaps generations without touching open connections.
 *
 * Threads: pt_tls_create/reload/destroy run on any thread; the callbacks below run inside
 * SSL_do_handshake on a worker and read only the generation, which does not change while a
 * handshake holds it (pt__tls_gen_get/put).
 */
#include "engine/tls_int.h"
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <openssl/core_names.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CERTS 64u
#define TICKET_PERIODS 4u                 /* keys rotate every lifetime / 4 */
#define SECRET_LEN 32u

static const char DEF_CIPHERS[] =
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char DEF_SUITES[] =
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
static const char DEF_GROUPS[] = "X25519:prime256v1:secp384r1";

struct sni_name {
	char *name;                       /* lower case; "*.example.org" for wildcards */
	unsigned ctx;
};

struct pt_tls_gen {
	atomic_uint refs;
	SSL_CTX **ctx;                    /* [0] is the default */
	unsigned nctx;
	struct sni_name *names;
	unsigned nnames;
	unsigned char alpn[256];          /* wire format: length-prefixed names */
	unsigned alpn_len;
	unsigned char secret[SECRET_LEN]; /* ticket key secret */
	uint64_t secret_id;               /* tells cached derived keys apart */
	unsigned lifetime;                /* seconds */
	unsigned hs_timeout_ms, max_handshakes, record_size;
	bool ktls;
};

struct pt_tls {
	pthread_mutex_t lock;             /* guards gen against a concurrent swap */
	struct pt_tls_gen *gen;
};

/* ---- errors ---- */

/* "what FILE: reason" from OpenSSL's error queue (which it empties). */
void pt__tls_ssl_error(char *err, size_t cap, const char *what, const char *file)
{
	unsigned long first = ERR_peek_error(), last = ERR_peek_last_error();
	const char *why = first ? ERR_reason_error_string(first) : NULL;
	const char *then = last != first ? ERR_reason_error_string(last) : NULL;

	/* the first error says what was wrong ("no start line"), the last where ("PEM lib") */
	snprintf(err, cap, "%s%s%s: %s%s%s%s", what, file ? " " : "", file ? file : "",
		 why ? why : "unknown OpenSSL error", then ? " (" : "", then ? then : "",
		 then ? ")" : "");
	ERR_clear_error();
}

/* ---- session tickets ---- */

struct tkey {
	uint64_t sid, period;
	unsigned char name[16], aes[32], hmac[32];
};

static void derive(const struct pt_tls_gen *g, uint64_t period, char label, unsigned char *out)
{
	unsigned char msg[9], md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	msg[0] = (unsigned char)label;
	for (int i = 0; i < 8; i++)
		msg[1 + i] = (unsigned char)(period >> (8 * i));
	HMAC(EVP_sha256(), g->secret, SECRET_LEN, msg, sizeof msg, md, &len);
	memcpy(out, md, 32);
}

/* The keys of a period, derived once per thread and period (each worker keeps a few). */
static const struct tkey *tkey_for(const struct pt_tls_gen *g, uint64_t period)
{
	static __thread struct tkey cache[8];
	struct tkey *k = &cache[period % 8];

	if (k->sid != g->secret_id || k->period != period) {
		unsigned char name[32];
		derive(g, period, 'n', name);
		memcpy(k->name, name, 16);
		derive(g, period, 'a', k->aes);
		derive(g, period, 'h', k->hmac);
		k->sid = g->secret_id;
		k->period = period;
	}
	return k;
}

static uint64_t period_now(const struct pt_tls_gen *g)
{
	unsigned len = g->lifetime / TICKET_PERIODS ? g->lifetime / TICKET_PERIODS : 1;

	return (uint64_t)time(NULL) / len;
}

static int mac_init(EVP_MAC_CTX *h, const struct tkey *k)
{
	OSSL_PARAM p[] = {
		OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, 32),
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	return EVP_MAC_CTX_set_params(h, p);
}

/* Seals a new ticket with this period's key; opens one sealed in the last TICKET_PERIODS
 * periods (2: valid, and issue a new one), else 0: full handshake. */
static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cc,
		     EVP_MAC_CTX *hc, int enc)
{
	const struct pt_tls_gen *g = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
	uint64_t now = period_now(g);

	if (enc) {
		const struct tkey *k = tkey_for(g, now);
		if (RAND_bytes(iv, 16) != 1)
			return -1;
		memcpy(name, k->name, 16);
		return EVP_EncryptInit_ex(cc, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 &&
		       mac_init(hc, k) == 1 ? 1 : -1;
	}
	for (uint64_t back = 0; back <= TICKET_PERIODS && back <= now; back++) {
		const struct tkey *k = tkey_for(g, now - back);
		if (memcmp(name, k->name, 16))
			continue;
		if (EVP_DecryptInit_ex(cc, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1 ||
		    mac_init(hc, k) != 1)
			return -1;
		/* 2 = renew: a resumed TLS 1.3 connection gets a fresh ticket (RFC 8446 C.4: a
		 * client should use each ticket once), and a TLS 1.2 one after a key rotation */
		return back || SSL_version(s) >= TLS1_3_VERSION ? 2 : 1;
	}
	return 0;
}

/* ---- SNI and ALPN ---- */

static int find_name(const struct pt_tls_gen *g, const char *name)
{
	const char *dot = strchr(name, '.');

	for (unsigned i = 0; i < g->nnames; i++)
		if (!strcasecmp(g->names[i].name, name))
			return (int)g->names[i].ctx;
	for (unsigned i = 0; dot && i < g->nnames; i++) {
		const char *n = g->names[i].name;
		if (n[0] == '*' && n[1] == '.' && !strcasecmp(n + 1, dot))
			return (int)g->names[i].ctx;
	}
	return -1;
}

static int sni_cb(SSL *s, int *alert, void *arg)
{
	const struct pt_tls_gen *g = arg;
	const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
	int i = name ? find_name(g, name) : -1;

	if (i > 0 && !SSL_set_SSL_CTX(s, g->ctx[i]))
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;        /* unknown names get the default certificate */
}

/* The first of our protocols (in our order) that the client offers; none: a fatal alert. */
static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned inlen, void *arg)
{
	const struct pt_tls_gen *g = arg;

	for (unsigned i = 0; i < g->alpn_len; i += 1u + g->alpn[i]) {
		for (unsigned j = 0; j < inlen; j += 1u + in[j]) {
			if (j + 1u + in[j] > inlen)
				break;
			if (in[j] == g->alpn[i] && !memcmp(in + j + 1, g->alpn + i + 1, in[j])) {
				*out = in + j + 1;
				*outlen = in[j];
				return SSL_TLSEXT_ERR_OK;
			}
		}
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* "h2,http/1.1" -> wire format. */
static int alpn_wire(struct pt_tls_gen *g, const char *list, char *err, size_t cap)
{
	const char *p = list ? list : "http/1.1";

	g->alpn_len = 0;
	while (*p) {
		size_t n = strcspn(p, ",");
		bool trailing = p[n] == ',' && !p[n + 1];
		if (n == 0 || n > 255 || trailing || g->alpn_len + 1 + n > sizeof g->alpn) {
			snprintf(err, cap, "bad ALPN list '%s'", list);
			return -EINVAL;
		}
		g->alpn[g->alpn_len++] = (unsigned char)n;
		memcpy(g->alpn + g->alpn_len, p, n);
		g->alpn_len += (unsigned)n;
		p += n + (p[n] == ',');
	}
	if (!g->alpn_len) {
		snprintf(err, cap, "empty ALPN list");
		return -EINVAL;
	}
	return 0;
}

/* ---- certificates ---- */

static int add_name(struct pt_tls_gen *g, const char *name, size_t len, unsigned ctx)
{
	struct sni_name *n = realloc(g->names, (g->nnames + 1) * sizeof *n);

	if (!n)
		return -ENOMEM;
	g->names = n;
	if (!(n[g->nnames].name = strndup(name, len)))
		return -ENOMEM;
	n[g->nnames++].ctx = ctx;
	return 0;
}

/* The certificate's DNS names (subjectAltName), else its common name. */
static int cert_names(struct pt_tls_gen *g, X509 *x, unsigned ctx)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int rc = 0, found = 0;

	for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && !rc; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
		if (gn->type != GEN_DNS)
			continue;
		rc = add_name(g, (const char *)ASN1_STRING_get0_data(gn->d.dNSName),
			      (size_t)ASN1_STRING_length(gn->d.dNSName), ctx);
		found++;
	}
	GENERAL_NAMES_free(sans);
	if (found || rc)
		return rc;
	X509_NAME *subj = X509_get_subject_name(x);
	int at = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (at < 0)
		return 0;
	ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, at));
	return add_name(g, (const char *)ASN1_STRING_get0_data(cn), (size_t)ASN1_STRING_length(cn), ctx);
}

static int readable(const char *file, const char *what, char *err, size_t cap)
{
	FILE *f = file && *file ? fopen(file, "r") : NULL;

	if (!f) {
		snprintf(err, cap, "%s %s: %s", what, file && *file ? file : "(none)",
			 file && *file ? strerror(errno) : "no file given");
		return -EINVAL;
	}
	fclose(f);
	return 0;
}

static int load_pair(SSL_CTX *x, const struct pt_tls_cert *pc, char *err, size_t cap)
{
	if (readable(pc->cert_file, "certificate", err, cap) < 0 ||
	    readable(pc->key_file, "private key", err, cap) < 0)
		return -EINVAL;
	if (SSL_CTX_use_certificate_chain_file(x, pc->cert_file) != 1) {
		pt__tls_ssl_error(err, cap, "certificate", pc->cert_file);
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey_file(x, pc->key_file, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			snprintf(err, cap, "private key %s does not match the certificate %s",
				 pc->key_file, pc->cert_file);
		} else {
			pt__tls_ssl_error(err, cap, "private key", pc->key_file);
		}
		return -EINVAL;
	}
	if (SSL_CTX_check_private_key(x) != 1) {
		ERR_clear_error();
		snprintf(err, cap, "private key %s does not match the certificate %s", pc->key_file,
			 pc->cert_file);
		return -EINVAL;
	}
	return 0;
}

/* ---- building a generation ---- */

static int set_versions(SSL_CTX *x, const struct pt_tls_config *cfg, char *err, size_t cap)
{
	unsigned lo = cfg->min_version ? cfg->min_version : PT_TLS_1_2;
	unsigned hi = cfg->max_version ? cfg->max_version : PT_TLS_1_3;

	if ((lo != PT_TLS_1_2 && lo != PT_TLS_1_3) || (hi != PT_TLS_1_2 && hi != PT_TLS_1_3) ||
	    lo > hi) {
		snprintf(err, cap, "protocol versions: only TLS 1.2 and TLS 1.3 are supported "
			 "(minimum <= maximum)");
		return -EINVAL;
	}
	SSL_CTX_set_min_proto_version(x, (int)lo);
	SSL_CTX_set_max_proto_version(x, (int)hi);
	return 0;
}

static int set_algorithms(SSL_CTX *x, const struct pt_tls_config *cfg, char *err, size_t cap)
{
	const char *c = cfg->ciphers ? cfg->ciphers : DEF_CIPHERS;
	const char *s = cfg->ciphersuites ? cfg->ciphersuites : DEF_SUITES;
	const char *g = cfg->groups ? cfg->groups : DEF_GROUPS;

	if (SSL_CTX_set_cipher_list(x, c) != 1) {
		pt__tls_ssl_error(err, cap, "TLS 1.2 cipher list", c);
		return -EINVAL;
	}
	if (SSL_CTX_set_ciphersuites(x, s) != 1) {
		pt__tls_ssl_error(err, cap, "TLS 1.3 cipher suites", s);
		return -EINVAL;
	}
	if (SSL_CTX_set1_groups_list(x, g) != 1) {
		pt__tls_ssl_error(err, cap, "key exchange groups", g);
		return -EINVAL;
	}
	return 0;
}

static SSL_CTX *build_ctx(struct pt_tls_gen *g, const struct pt_tls_config *cfg, unsigned i,
			  char *err, size_t cap)
{
	SSL_CTX *x = SSL_CTX_new(TLS_server_method());
	/* server order (our list puts AES-GCM first), but ChaCha20 for clients that prefer it
	 * (no AES hardware): testssl.sh rates a missing server order NOT ok */
	uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
			SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE |
			SSL_OP_PRIORITIZE_CHACHA;

	if (!x) {
		pt__tls_ssl_error(err, cap, "creating a TLS context", NULL);
		return NULL;
	}
	SSL_CTX_set_app_data(x, g);
	if (set_versions(x, cfg, err, cap) < 0 || set_algorithms(x, cfg, err, cap) < 0 ||
	    load_pair(x, &cfg->certs[i], err, cap) < 0 ||
	    cert_names(g, SSL_CTX_get0_certificate(x), i) < 0) {
		SSL_CTX_free(x);
		return NULL;
	}
	if (cfg->no_tickets)
		opts |= SSL_OP_NO_TICKET;
	if (g->ktls)
		opts |= SSL_OP_ENABLE_KTLS;
	SSL_CTX_set_options(x, opts);
	SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(x, 1);
	SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);   /* tickets only: no shared lock */
	SSL_CTX_set_session_id_context(x, (const unsigned char *)"portico", 7);
	SSL_CTX_set_timeout(x, g->lifetime);
	SSL_CTX_set_max_early_data(x, 0);
	SSL_CTX_set_num_tickets(x, 1);
	SSL_CTX_set_tlsext_ticket_key_evp_cb(x, ticket_cb);
	SSL_CTX_set_tlsext_servername_callback(x, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(x, g);
	SSL_CTX_set_alpn_select_cb(x, alpn_cb, g);
	return x;
}

static void gen_free(struct pt_tls_gen *g)
{
	if (!g)
		return;
	for (unsigned i = 0; i < g->nctx; i++)
		SSL_CTX_free(g->ctx[i]);
	for (unsigned i = 0; i < g->nnames; i++)
		free(g->names[i].name);
	free(g->names);
	free(g->ctx);
	OPENSSL_cleanse(g->secret, sizeof g->secret);
	free(g);
}

static bool ktls_probe(void)
{
	static int result = -1;          /* probed once per process */
	int r = __atomic_load_n(&result, __ATOMIC_RELAXED);

	if (r < 0) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		/* unconnected: the kernel says ENOTCONN if the "tls" ULP exists, ENOENT if not */
		r = fd >= 0 && (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof "tls") == 0 ||
				errno == ENOTCONN);
		if (fd >= 0)
			close(fd);
		__atomic_store_n(&result, r, __ATOMIC_RELAXED);
	}
	return r == 1;
}

static int set_secret(struct pt_tls_gen *g, const struct pt_tls_config *cfg,
		      const struct pt_tls_gen *prev, char *err, size_t cap)
{
	if (cfg->ticket_secret) {
		if (cfg->ticket_secret_len < SECRET_LEN) {
			snprintf(err, cap, "ticket secret: at least %u bytes are needed", SECRET_LEN);
			return -EINVAL;
		}
		unsigned len = 0;
		HMAC(EVP_sha256(), "portico ticket secret", 21, cfg->ticket_secret,
		     cfg->ticket_secret_len, g->secret, &len);
	} else if (prev) {
		memcpy(g->secret, prev->secret, SECRET_LEN);
	} else if (RAND_bytes(g->secret, SECRET_LEN) != 1) {
		pt__tls_ssl_error(err, cap, "random ticket secret", NULL);
		return -EIO;
	}
	memcpy(&g->secret_id, g->secret, sizeof g->secret_id);
	g->secret_id |= 1;                /* never 0, the empty cache slot */
	return 0;
}

static int check_config(const struct pt_tls_config *cfg, char *err, size_t cap)
{
	if (!cfg || !cfg->certs || cfg->ncerts == 0 || cfg->ncerts > MAX_CERTS) {
		snprintf(err, cap, "TLS needs 1 to %u certificate/key pairs", MAX_CERTS);
		return -EINVAL;
	}
	if (cfg->record_size && (cfg->record_size < 512 || cfg->record_size > PT_TLS_REC_MAX)) {
		snprintf(err, cap, "record size %u: use 512..16384 (0: dynamic)", cfg->record_size);
		return -EINVAL;
	}
	return 0;
}

static struct pt_tls_gen *gen_build(const struct pt_tls_config *cfg,
				    const struct pt_tls_gen *prev, char *err, size_t cap)
{
	struct pt_tls_gen *g = check_config(cfg, err, cap) < 0 ? NULL : calloc(1, sizeof *g);

	if (!g || !(g->ctx = calloc(cfg->ncerts, sizeof *g->ctx))) {
		if (g)
			snprintf(err, cap, "out of memory");
		free(g);
		return NULL;
	}
	atomic_init(&g->refs, 1);
	g->lifetime = cfg->ticket_lifetime ? cfg->ticket_lifetime : 3600;
	g->hs_timeout_ms = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : 10000;
	g->max_handshakes = cfg->max_handshakes ? cfg->max_handshakes : 1024;
	g->record_size = cfg->record_size;
	g->ktls = cfg->ktls && ktls_probe();
	if (alpn_wire(g, cfg->alpn, err, cap) < 0 || set_secret(g, cfg, prev, err, cap) < 0)
		goto fail;
	for (unsigned i = 0; i < cfg->ncerts; i++, g->nctx++)
		if (!(g->ctx[i] = build_ctx(g, cfg, i, err, cap)))
			goto fail;
	return g;
fail:
	gen_free(g);
	return NULL;
}

/* ---- generations in use ---- */

struct pt_tls_gen *pt__tls_gen_get(struct pt_tls *t)
{
	pthread_mutex_lock(&t->lock);
	struct pt_tls_gen *g = t->gen;
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&t->lock);
	return g;
}

void pt__tls_gen_put(struct pt_tls_gen *g)
{
	if (g && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
		gen_free(g);
}

SSL *pt__tls_ssl_new(struct pt_tls_gen *g)
{
	return SSL_new(g->ctx[0]);
}

bool pt__tls_use_ktls(const struct pt_tls_gen *g) { return g->ktls; }
unsigned pt__tls_hs_timeout(const struct pt_tls_gen *g) { return g->hs_timeout_ms; }
unsigned pt__tls_max_handshakes(const struct pt_tls_gen *g) { return g->max_handshakes; }
unsigned pt__tls_record_size(const struct pt_tls_gen *g) { return g->record_size; }

/* ---- public API ---- */

PT_API void pt_tls_config_init(struct pt_tls_config *cfg)
{
	if (cfg)
		memset(cfg, 0, sizeof *cfg);
}

PT_API pt_tls_t *pt_tls_create(const struct pt_tls_config *cfg, char *err, size_t cap)
{
	char dummy[8];

	if (!err || !cap) {
		err = dummy;
		cap = sizeof dummy;
	}
	*err = 0;
	struct pt_tls *t = calloc(1, sizeof *t);
	if (!t) {
		snprintf(err, cap, "out of memory");
		return NULL;
	}
	if (!(t->gen = gen_build(cfg, NULL, err, cap))) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

PT_API int pt_tls_reload(pt_tls_t *t, const struct pt_tls_config *cfg, char *err, size_t cap)
{
	char dummy[8];

	if (!err || !cap) {
		err = dummy;
		cap = sizeof dummy;
	}
	if (!t)
		return -EINVAL;
	struct pt_tls_gen *cur = pt__tls_gen_get(t);
	struct pt_tls_gen *g = gen_build(cfg, cur, err, cap);
	pt__tls_gen_put(cur);
	if (!g)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	struct pt_tls_gen *old = t->gen;
	t->gen = g;
	pthread_mutex_unlock(&t->lock);
	pt__tls_gen_put(old);             /* freed when its last handshake ends */
	return 0;
}

PT_API void pt_tls_destroy(pt_tls_t *t)
{
	if (!t)
		return;
	pt__tls_gen_put(t->gen);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

PT_API bool pt_tls_ktls(const pt_tls_t *t)
{
	if (!t)
		return false;
	struct pt_tls_gen *g = pt__tls_gen_get((struct pt_tls *)t);
	bool k = g->ktls;
	pt__tls_gen_put(g);
	return k;
}
