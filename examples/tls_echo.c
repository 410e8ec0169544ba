/*
 * tls_echo: echo over TLS on the Portico engine. Every byte a client sends comes back,
 * encrypted; only the listener differs from examples/echo.c.
 *
 *   tls_echo CERT.pem KEY.pem [-l ADDR:PORT] [-w WORKERS] [--alpn LIST]
 *
 * CERT.pem is the certificate chain (leaf first), KEY.pem its private key (PEM; they may be
 * the same file). Prints "listening on ADDR:PORT" when ready. SIGHUP reloads the certificate
 * and key from the same paths (connections stay open; a bad file keeps the old pair and the
 * reason is printed); SIGINT/SIGTERM stop gracefully, each client getting close_notify.
 *
 * Try it:
 *   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
 *       -subj /CN=localhost -keyout key.pem -out cert.pem
 *   build/examples/tls_echo cert.pem key.pem -l 127.0.0.1:7443 &
 *   openssl s_client -connect 127.0.0.1:7443 -quiet
 *
 * The handshake runs inside the engine: on_accept runs only once it is done, and from then on
 * on_data, pt_conn_send and pt_conn_close deal in plaintext, exactly as on a plaintext
 * listener. Backpressure works as in echo.c: a send refused with -EAGAIN is held, receiving
 * pauses, and on_drain sends it and resumes.
 */
#include <portico/engine.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct held {                  /* bytes that could not be queued yet (backpressure) */
	size_t len;
	char data[];
};

static int hold(pt_conn_t *c, const void *data, size_t len)
{
	struct held *h = malloc(sizeof *h + len);

	if (!h)
		return -ENOMEM;
	h->len = len;
	memcpy(h->data, data, len);
	pt_conn_set_user(c, h);
	return pt_conn_pause_recv(c);
}

/* data is plaintext, valid during the call only: PT_SEND_COPY copies it into the queue. */
static void on_data(pt_conn_t *c, const void *data, size_t len)
{
	int err = pt_conn_send(c, data, len, PT_SEND_COPY, NULL, NULL);

	if (err == -EAGAIN)
		err = hold(c, data, len);
	if (err < 0)
		pt_conn_close(c, PT_CLOSE_ABORT);
}

static void on_drain(pt_conn_t *c)
{
	struct held *h = pt_conn_user(c);

	if (!h)
		return;
	int err = pt_conn_send(c, h->data, h->len, PT_SEND_COPY, NULL, NULL);
	if (err == -EAGAIN)
		return;           /* still full: wait for the next drain */
	pt_conn_set_user(c, NULL);
	free(h);
	if (err < 0 || pt_conn_resume_recv(c) < 0)
		pt_conn_close(c, PT_CLOSE_ABORT);
}

/* err 0: the client sent close_notify (or a bare FIN); -EPROTO: a bad record or an alert. */
static void on_eof(pt_conn_t *c, int err)
{
	pt_conn_close(c, err ? PT_CLOSE_ABORT : PT_CLOSE_GRACEFUL);   /* graceful: close_notify */
}

static void on_close(pt_conn_t *c)
{
	free(pt_conn_user(c));
}

static const struct pt_conn_ops echo_ops = {
	.on_data = on_data, .on_eof = on_eof, .on_drain = on_drain, .on_close = on_close,
};

/* Runs after the handshake: what was negotiated is known here. */
static int on_accept(pt_conn_t *c, void *arg)
{
	struct pt_tls_info info;
	bool *verbose = arg;

	if (*verbose && pt_conn_tls_info(c, &info) == 0)
		fprintf(stderr, "tls_echo: TLS 1.%u %s alpn=%s sni=%s%s\n",
			info.version == PT_TLS_1_3 ? 3u : 2u, info.cipher,
			info.alpn ? info.alpn : "-", info.sni ? info.sni : "-",
			info.resumed ? " (resumed)" : "");
	pt_conn_set_ops(c, &echo_ops);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: tls_echo CERT.pem KEY.pem [-l ADDR:PORT] [-w WORKERS] [--alpn LIST] [-v]\n");
}

int main(int argc, char **argv)
{
	struct pt_engine_config cfg;
	struct pt_tls_config tc;
	struct pt_tls_cert pair = { NULL, NULL };
	const char *addr = "127.0.0.1:7443";
	static bool verbose;
	char err[512];
	int e, sig;

	pt_engine_config_init(&cfg);
	pt_tls_config_init(&tc);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "-v")) {
			verbose = true;
		} else if (a[0] != '-') {
			if (!pair.cert_file)
				pair.cert_file = a;
			else if (!pair.key_file)
				pair.key_file = a;
			else {
				usage(stderr);
				return 2;
			}
		} else if (!v) {
			fprintf(stderr, "tls_echo: %s needs a value\n", a);
			return 2;
		} else if (!strcmp(a, "-l")) {
			addr = v, i++;
		} else if (!strcmp(a, "-w")) {
			cfg.workers = (unsigned)atoi(v), i++;
		} else if (!strcmp(a, "--alpn")) {
			tc.alpn = v, i++;
		} else {
			fprintf(stderr, "tls_echo: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (!pair.key_file) {
		usage(stderr);
		return 2;
	}
	tc.certs = &pair;
	tc.ncerts = 1;
	pt_tls_t *tls = pt_tls_create(&tc, err, sizeof err);   /* names the file and the reason */
	if (!tls) {
		fprintf(stderr, "tls_echo: %s\n", err);
		return 1;
	}

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);   /* workers inherit the mask; main waits */
	signal(SIGPIPE, SIG_IGN);

	pt_engine_t *eng = pt_engine_create(&cfg, &e);
	if (!eng) {
		fprintf(stderr, "tls_echo: cannot create the engine: %s\n", strerror(-e));
		pt_tls_destroy(tls);
		return 1;
	}
	struct pt_listen_opts lo = { .on_accept = on_accept, .arg = &verbose, .tls = tls };
	int li = pt_engine_listen(eng, addr, &lo);
	if (li < 0 || (e = pt_engine_start(eng)) < 0) {
		fprintf(stderr, "tls_echo: cannot listen on %s: %s\n", addr, strerror(li < 0 ? -li : -e));
		pt_engine_destroy(eng);
		pt_tls_destroy(tls);
		return 1;
	}
	char host[64];
	snprintf(host, sizeof host, "%.*s", (int)(strrchr(addr, ':') - addr), addr);
	printf("listening on %s:%d (TLS, %s backend, %u workers)\n", host,
	       pt_engine_listen_port(eng, li), pt_engine_backend(eng), pt_engine_workers(eng));
	fflush(stdout);
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
		if (pt_tls_reload(tls, &tc, err, sizeof err) < 0)   /* keeps the old pair */
			fprintf(stderr, "tls_echo: reload failed, keeping the old certificate: %s\n", err);
		else
			fprintf(stderr, "tls_echo: certificate reloaded\n");
	}
	pt_engine_stop(eng);
	struct pt_counters n;
	pt_engine_counters(eng, -1, &n);
	fprintf(stderr, "tls_echo: accepts %llu handshakes %llu resumed %llu failed %llu (protocol "
		"%llu plaintext %llu timeout %llu shed %llu) tls_errors %llu\n",
		(unsigned long long)n.accepts, (unsigned long long)n.tls_handshakes,
		(unsigned long long)n.tls_resumed, (unsigned long long)n.tls_failed,
		(unsigned long long)n.tls_fail_proto, (unsigned long long)n.tls_fail_plain,
		(unsigned long long)n.tls_fail_timeout, (unsigned long long)n.tls_fail_shed,
		(unsigned long long)n.tls_errors);
	pt_engine_destroy(eng);
	pt_tls_destroy(tls);                      /* after every engine using it */
	return 0;
}
