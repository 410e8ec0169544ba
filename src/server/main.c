/*
 * portico: the static-file web server.
 *
 *   portico [OPTIONS] [DOCROOT]        (see --help and docs/portico.1)
 *
 * Start-up order: parse options (exit 2 on a bad one), open logs and the docroot (exit 1 when
 * unusable), raise the descriptor limit, load the TLS certificates and keys (exit 1 naming the
 * file when one is unusable), create the server and bind every address (or take systemd's
 * sockets), drop privileges (--user), then start the workers (their rings are created
 * unprivileged). The main thread then only waits for signals (sys.h: on Windows the console
 * control handler and standard input): SIGTERM/SIGINT stop gracefully, SIGHUP reopens the
 * log files and reloads the configuration (sites, rules, certificates: all or nothing, see
 * reload()), SIGUSR1 logs the counters. The TLS context
 * outlives the server: it is destroyed after it.
 *
 * The configuration is parsed twice at start: one copy for the server-wide settings, which
 * main keeps, and one that the first site snapshot owns (a snapshot owns its configuration,
 * which is how a reload replaces it while requests still use the old one).
 * --check-config FILE checks and exits instead (0, or 2 with FILE:LINE: reason).
 */
#include <portico/http.h>
#include "server/admin.h"
#include "server/alog.h"
#include "server/config.h"
#include "server/files.h"
#include "server/https.h"
#include "server/metrics.h"
#include "server/mime.h"
#include "server/obs.h"
#include "server/reload.h"
#include "server/sys.h"
#include "server/vhost.h"
#include "server/zcache.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Opens (or, on SIGHUP, reopens) the error log onto stderr. */
static int open_error_log(const struct pt_server_config *c)
{
	if (!strcmp(c->error_log, "-"))
		return 0;
	int fd = open(c->error_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
		fprintf(stderr, "portico: error log '%s': %s\n", c->error_log, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void http_config(const struct pt_server_config *c, struct pt_http_config *h)
{
	pt_http_config_init(h);
	h->engine.workers = c->workers;
	h->engine.backend = c->backend;
	h->engine.max_conns = c->max_conns;
	h->engine.full_policy = c->when_full;
	h->engine.max_send_queue = c->send_queue;
	h->engine.max_worker_buffered = c->worker_buffer;
	h->engine.shutdown_ms = c->shutdown_ms;
	h->max_head = c->max_head;
	h->max_target = c->max_target;
	h->max_headers = c->max_headers;
	h->max_body = c->max_body;
	h->max_drain = c->max_drain;
	h->queue_length = c->queue_length;
	h->cache_entries = c->response_cache;
	h->defer_accept_sec = (int)c->defer_accept_sec;
	h->h2c = c->h2c;
	h->backlog = (int)c->backlog;
	h->proxy_protocol = c->proxy_protocol ? PT_PROXY_V1 | PT_PROXY_V2 : 0;
	h->proxy_trusted = c->trusted_proxies;
	h->stop_grace_ms = c->stop_grace_ms ? c->stop_grace_ms : PT_HTTP_GRACE_OFF;
	h->timeouts = (struct pt_http_timeouts){
		.header_wait = c->header_timeout_ms, .idle_connection = c->idle_timeout_ms,
		.entity_body = c->body_timeout_ms, .drain_entity_body = c->drain_timeout_ms,
		.request_queue = c->queue_timeout_ms,
		.min_send_rate = c->min_send_rate == PT_CONFIG_RATE_OFF ? PT_HTTP_RATE_OFF : c->min_send_rate,
	};
}

/* "IP:PORT" or "[IPv6]:PORT" of a bound socket, for the start-up lines. */
static void socket_name(int fd, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char ip[INET6_ADDRSTRLEN] = "?";

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		snprintf(out, n, "?:0");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
		snprintf(out, n, "[%s]:%u", ip, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
		snprintf(out, n, "%s:%u", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
	}
}

/* systemd socket activation: LISTEN_PID/LISTEN_FDS, descriptors from 3. A socket whose
 * FileDescriptorName= (LISTEN_FDNAMES, colon-separated) is "https" is a TLS listener. */
struct activation {
	int n;                                /* inherited sockets, 0 = not activated */
	unsigned ntls;                        /* of which TLS */
	bool tls[2 * PT_CONFIG_MAX_LISTEN];
};

/* Reads the environment into *a: 0, or -1 after printing why. */
static int activation_read(struct activation *a)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");

	*a = (struct activation){ 0 };
	if (!pid || !fds || atol(pid) != (long)getpid())
		return 0;
	a->n = atoi(fds);
	if (a->n < 0 || a->n > 2 * PT_CONFIG_MAX_LISTEN) {
		fprintf(stderr, "portico: LISTEN_FDS=%d: at most %d sockets\n", a->n,
			2 * PT_CONFIG_MAX_LISTEN);
		return -1;
	}
	for (int i = 0; names && *names && i < a->n; i++) {
		size_t len = strcspn(names, ":");
		a->tls[i] = len == 5 && memcmp(names, "https", 5) == 0;
		a->ntls += a->tls[i];
		names += len + (names[len] == ':');
	}
	if (a->n - (int)a->ntls > PT_CONFIG_MAX_LISTEN || a->ntls > PT_CONFIG_MAX_LISTEN) {
		fprintf(stderr, "portico: LISTEN_FDS=%d: at most %d plaintext and %d https sockets\n",
			a->n, PT_CONFIG_MAX_LISTEN, PT_CONFIG_MAX_LISTEN);
		return -1;
	}
	return 0;
}

/* Serves the inherited sockets: they replace the --listen addresses, and the --listen-tls
 * ones too when any is named "https" (also in the start-up lines). Plaintext ones are added
 * first, so the listener indices match listen_all's. 0 or -1. */
static int socket_activation(pt_http_server_t *s, struct pt_server_config *c,
			     const struct activation *a, pt_tls_t *tls)
{
	c->nlisten = 0;
	if (a->ntls)
		c->nlisten_tls = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < a->n; i++) {
			if (a->tls[i] != (pass == 1))
				continue;
			char *name = a->tls[i] ? c->listen_tls[c->nlisten_tls++] : c->listen[c->nlisten++];
			socket_name(3 + i, name, PT_CONFIG_ADDR_MAX);
			int err = a->tls[i] ? pt_http_listen_fd_tls(s, 3 + i, tls) : pt_http_listen_fd(s, 3 + i);
			if (err < 0) {
				fprintf(stderr, "portico: socket-activated fd %d: %s\n", 3 + i, strerror(-err));
				return -1;
			}
		}
	return 0;
}

static int listen_addr(pt_http_server_t *s, const char *addr, pt_tls_t *tls)
{
	int li = tls ? pt_http_listen_tls(s, addr, tls) : pt_http_listen(s, addr);

	if (li < 0)
		fprintf(stderr, "portico: cannot listen on %s: %s\n", addr, strerror(-li));
	return li;
}

/* Plaintext listeners first (indices 0..nlisten-1), then the TLS ones. */
static int listen_all(pt_http_server_t *s, struct pt_server_config *c,
		      const struct activation *a, pt_tls_t *tls)
{
	if (a->n && socket_activation(s, c, a, tls) < 0)
		return -1;
	for (unsigned i = 0; !a->n && i < c->nlisten; i++)
		if (listen_addr(s, c->listen[i], NULL) < 0)
			return -1;
	for (unsigned i = 0; !a->ntls && i < c->nlisten_tls; i++)
		if (listen_addr(s, c->listen_tls[i], tls) < 0)
			return -1;
	return 0;
}

static void announce_addr(const struct pt_server_config *c, const char *a, bool tls, int port)
{
	char what[PATH_MAX + 32];

	if (c->nhosts)
		snprintf(what, sizeof what, "%u sites", c->nhosts);
	else
		snprintf(what, sizeof what, "%s", c->docroot);
	printf("portico: serving %s at %s://%.*s:%d/\n", what, tls ? "https" : "http",
	       (int)(strrchr(a, ':') - a), a, port);
}

static void announce(pt_http_server_t *s, const struct pt_server_config *c, pt_tls_t *tls)
{
	unsigned n = c->nlisten + (tls ? c->nlisten_tls : 0);
	int port;

	for (unsigned i = 0; i < n && (port = pt_http_listen_port(s, (int)i)) >= 0; i++)
		announce_addr(c, i < c->nlisten ? c->listen[i] : c->listen_tls[i - c->nlisten],
			      i >= c->nlisten, port);
	printf("portico: %s backend, %u workers\n", pt_engine_backend(pt_http_server_engine(s)),
	       pt_engine_workers(pt_http_server_engine(s)));
	if (tls)
		printf("portico: TLS: %u certificate%s, %s, file bodies %s\n", c->ntls_cert,
		       c->ntls_cert == 1 ? "" : "s",
		       c->tls_min_version == c->tls_max_version
			       ? (c->tls_min_version == PT_TLS_1_3 ? "TLSv1.3" : "TLSv1.2")
			       : "TLSv1.2 and TLSv1.3",
		       pt_tls_ktls(tls) ? "sent with kernel TLS (kTLS)"
					: "encrypted in userspace (no kernel TLS)");
	fflush(stdout);
}

#define ULL(x) ((unsigned long long)(x))

/* The TLS part of the SIGUSR1 line: handshakes full, resumed and failed (by reason), errors
 * on established connections, connections sent through kTLS. */
static void log_tls_counters(const struct pt_counters *n)
{
	fprintf(stderr, " tls_handshakes %llu tls_resumed %llu tls_failed %llu (proto %llu plain "
		"%llu timeout %llu shed %llu) tls_errors %llu tls_ktls %llu",
		ULL(n->tls_handshakes), ULL(n->tls_resumed), ULL(n->tls_failed),
		ULL(n->tls_fail_proto), ULL(n->tls_fail_plain), ULL(n->tls_fail_timeout),
		ULL(n->tls_fail_shed), ULL(n->tls_errors), ULL(n->tls_ktls));
}

/* SIGUSR1: the engine's counters, summed over the workers, as one line of the error log
 * (with the TLS counters when there are HTTPS listeners). */
static void log_counters(pt_http_server_t *s, bool tls)
{
	struct pt_counters n;

	if (pt_engine_counters(pt_http_server_engine(s), -1, &n) < 0)
		return;
	fprintf(stderr, "portico: counters: conns %llu accepts %llu closes %llu bytes_in %llu "
		"bytes_out %llu shed %llu (silent %llu partial %llu idle %llu) accept_paused %llu "
		"accept_errors %llu fd_reserve_used %llu timeouts %llu send_refused %llu "
		"buf_starved %llu",
		(unsigned long long)n.conns, (unsigned long long)n.accepts,
		(unsigned long long)n.closes, (unsigned long long)n.bytes_in,
		(unsigned long long)n.bytes_out, (unsigned long long)n.shed,
		(unsigned long long)n.shed_silent, (unsigned long long)n.shed_partial,
		(unsigned long long)n.shed_idle, (unsigned long long)n.accept_paused,
		(unsigned long long)n.accept_errors, (unsigned long long)n.fd_reserve_used,
		(unsigned long long)n.timeouts, (unsigned long long)n.send_refused,
		(unsigned long long)n.buf_starved);
	if (tls)
		log_tls_counters(&n);
	fputc('\n', stderr);
	fflush(stderr);
}

/* Serves SIGHUP and SIGUSR1 (or their Windows twins, sys.h) until a stop: returns it
 * (PT_SYS_STOP or PT_SYS_INTERRUPT). */
static int wait_for_stop(pt_http_server_t *s, struct pt_alog *alog,
			 const struct pt_server_config *c, struct pt_reload *rl)
{
	int ev, err;

	for (;;) {
		ev = pt_sys_wait();
		if (ev != PT_SYS_RELOAD && ev != PT_SYS_COUNTERS)
			return ev;
		if (ev == PT_SYS_COUNTERS) {
			log_counters(s, rl->tls != NULL);
			continue;
		}
		open_error_log(c);                    /* SIGHUP: reopen both logs (rotation) */
		if (alog && (err = pt_alog_reopen(alog)) < 0)
			fprintf(stderr, "portico: reopening the access log '%s': %s\n", c->access_log,
				strerror(-err));
		pt_reload(rl);
		fflush(stderr);
	}
}

/* SIGTERM with --drain-delay: /healthz answers 503 and every response closes its connection
 * for the delay while serving goes on (a load balancer notices and stops sending), then the
 * graceful stop follows. Another SIGTERM or a SIGINT cuts the delay short. */
static void drain(struct pt_files *f, const struct pt_server_config *c)
{
	if (!c->drain_delay_ms)
		return;
	atomic_store(&f->draining, true);
	fprintf(stderr, "portico: draining for %u.%03u s (/healthz answers 503), then stopping\n",
		c->drain_delay_ms / 1000, c->drain_delay_ms % 1000);
	fflush(stderr);
	pt_sys_wait_stop(c->drain_delay_ms);
}

/* The counters, the request observation and the admin listener (--admin), bound now.
 * 0, or -1 after printing why. */
static int setup_obs(struct pt_files *f, const struct pt_server_config *c,
		     pt_http_server_t *s, struct pt_admin **admin)
{
	pt_engine_t *e = pt_http_server_engine(s);
	unsigned workers = pt_engine_workers(e);
	char msg[256];
	int err;

	if (f->alog)
		pt_alog_set_format(f->alog, c->access_log_format);
	if (*c->admin) {
		if (!(f->metrics = pt_metrics_new(workers))) {
			fprintf(stderr, "portico: out of memory\n");
			return -1;
		}
		f->metrics->engine = e;
		f->metrics->http = s;
		f->metrics->backend = pt_engine_backend(e);
		f->metrics->draining = &f->draining;
		f->metrics->zc = f->zc;
		if (!(*admin = pt_admin_new(c, f->metrics, msg, sizeof msg))) {
			fprintf(stderr, "portico: %s\n", msg);
			return -1;
		}
	}
	if (!(f->obs = pt_obs_new(workers, f->metrics, f->alog, &err)) && err < 0) {
		fprintf(stderr, "portico: out of memory\n");
		return -1;
	}
	return 0;
}

/* Starts the admin listener and prints where it is. 0, or -1 after printing why. */
static int start_admin(struct pt_admin *a, const struct pt_server_config *c)
{
	int err;

	if (!a)
		return 0;
	if ((err = pt_admin_start(a)) < 0) {
		fprintf(stderr, "portico: cannot start the admin listener: %s\n", strerror(-err));
		return -1;
	}
	printf("portico: admin at http://%.*s:%d/ (/metrics, /status, /healthz)\n",
	       (int)(strrchr(c->admin, ':') - c->admin), c->admin, pt_admin_port(a));
	fflush(stdout);
	return 0;
}

/* Checks the TLS settings and loads the certificates (before --user drops the right to read
 * the keys). *tls stays NULL without HTTPS listeners. 0, or -1 after printing why. */
static int setup_tls(const struct pt_server_config *c, const struct activation *a,
		     pt_tls_t **tls)
{
	unsigned listeners = a->ntls ? a->ntls : c->nlisten_tls;
	char msg[512];

	*tls = NULL;
	if (pt_config_check_tls(c, listeners, msg, sizeof msg) < 0) {
		fprintf(stderr, "portico: %s\n", msg);
		return -1;
	}
	if (!listeners) {
		if (c->ntls_cert)
			fprintf(stderr, "portico: warning: --tls-cert without --listen-tls: no HTTPS\n");
		return 0;
	}
	if (!(*tls = pt_https_create(c, msg, sizeof msg))) {
		fprintf(stderr, "portico: %s\n", msg);
		return -1;
	}
	return 0;
}

/* What the file handler needs to know about HTTPS (after the listeners are bound: the
 * redirect goes to the first HTTPS listener's actual port). */
static void files_https(struct pt_files *f, pt_http_server_t *s,
			const struct pt_server_config *c, pt_tls_t *tls)
{
	if (!tls)
		return;
	if (c->hsts != PT_CONFIG_OFF)
		snprintf(f->hsts, sizeof f->hsts, "max-age=%u", c->hsts);
	f->redirect_https = c->redirect_https;
	f->https_port = (unsigned)pt_http_listen_port(s, (int)c->nlisten);
}

/* The compression threads: one per four CPUs, 1 to 4 (they run beside the workers). */
static unsigned compress_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n <= 4 ? 1 : n >= 16 ? 4 : (unsigned)(n + 3) / 4;
}

/* The sites (a second parse: the snapshot owns its configuration) and the compression
 * cache. 0, or -1 after printing why. */
static int setup_files(struct pt_files *f, struct pt_reload *rl, unsigned workers)
{
	struct pt_server_config *c2 = malloc(sizeof(*c2));
	struct pt_snapshot *snap;
	char msg[PATH_MAX + 256];
	int err;

	if (!c2 || pt_config_parse_args(c2, rl->argc, rl->argv, msg, sizeof msg) != 0) {
		fprintf(stderr, "portico: %s\n", c2 ? msg : "out of memory");
		free(c2);
		return -1;
	}
	if (!(snap = pt_snapshot_build(c2, rl->mime, workers, msg, sizeof msg))) {
		fprintf(stderr, "portico: %s\n", msg);
		return -1;
	}
	/* a connection accepted before a reload waits at most this long for its next request */
	unsigned keep_ms = rl->boot->idle_timeout_ms + rl->boot->header_timeout_ms + 1000;
	if (pt_files_init(f, workers, snap, keep_ms) < 0) {
		pt_snapshot_unref(snap);
		fprintf(stderr, "portico: out of memory\n");
		return -1;
	}
	if (!(f->zc = pt_zcache_new(rl->boot->compress_cache, compress_threads(), &err))) {
		fprintf(stderr, "portico: compression threads: %s\n", strerror(-err));
		return -1;
	}
	return 0;
}

static int serve(struct pt_server_config *c, struct pt_reload *rl)
{
	struct pt_http_config hc;
	struct pt_files files = { 0 };
	struct pt_admin *admin = NULL;
	struct pt_alog *alog = NULL;
	struct activation act;
	pt_tls_t *tls = NULL;
	int err, rc = 1;

	if (activation_read(&act) < 0 || setup_tls(c, &act, &tls) < 0)
		return 1;
	http_config(c, &hc);
	hc.on_cache_hit = pt_files_cache_hit;
	hc.cache_arg = &files;
	pt_http_server_t *s = pt_http_server_create(&hc, &err);
	if (!s) {
		fprintf(stderr, "portico: %s\n", strerror(-err));
		if (tls)
			pt_tls_destroy(tls);
		return 1;
	}
	unsigned workers = pt_engine_workers(pt_http_server_engine(s));
	struct pt_mime *mime = pt_mime_load(pt_sys_mime_types, &err);
	*rl = (struct pt_reload){ rl->argc, rl->argv, c, mime, workers,
				  act.ntls ? act.ntls : c->nlisten_tls, tls, &files };
	if (*c->access_log && !(alog = pt_alog_open(c->access_log, workers, &err)))
		fprintf(stderr, "portico: access log '%s': %s\n", c->access_log, strerror(-err));
	files.alog = alog;
	if ((*c->access_log && !alog) || listen_all(s, c, &act, tls) < 0 ||
	    setup_files(&files, rl, workers) < 0 || setup_obs(&files, c, s, &admin) < 0 ||
	    (*c->user && pt_sys_drop_user(c->user) < 0) ||
	    pt_http_route(s, "/", pt_files_handle, &files, 0) < 0)
		goto out;
	files_https(&files, s, c, tls);
	files.vh.engine = pt_http_server_engine(s);
	files.srv = s;
	if ((err = pt_http_server_start(s)) < 0) {
		fprintf(stderr, "portico: cannot start: %s\n", strerror(-err));
		goto out;
	}
	announce(s, c, tls);
	if (start_admin(admin, c) < 0)
		goto out;
	if (wait_for_stop(s, alog, c, rl) == PT_SYS_STOP)
		drain(&files, c);
	pt_http_server_stop(s);                    /* the admin listener answers meanwhile */
	rc = 0;
out:
	pt_admin_free(admin);                      /* before the engine its counters come from */
	pt_http_server_destroy(s);
	if (tls)
		pt_tls_destroy(tls);                   /* after every engine using it */
	pt_files_fini(&files);
	pt_zcache_free(files.zc);                  /* after every send of a copy completed */
	pt_alog_close(alog);
	pt_obs_free(files.obs);
	pt_metrics_free(files.metrics);
	pt_mime_free(mime);
	return rc;
}

/* Parses the command line into *c: 0 to go on, else the exit status (after printing). */
static int parse(struct pt_server_config *c, int argc, char **argv)
{
	char err[PATH_MAX + 256];
	int rc = pt_config_parse_args(c, argc, argv, err, sizeof err);

	if (rc == 1)
		return -1;                     /* help or version printed: exit 0 */
	if (rc < 0) {
		fprintf(stderr, "portico: %s\n", err);
		if (!c->check_only)
			fprintf(stderr, "Try 'portico --help' for more information.\n");
		return 2;
	}
	return 0;
}

/* Before anything is started: every docroot opens (exit 1 naming the first that does not). */
static int check_docroots(const struct pt_server_config *c)
{
	char err[PATH_MAX + 256];

	if (pt_config_check_sites(c, err, sizeof err) < 0) {
		fprintf(stderr, "portico: %s\n", err);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct pt_server_config *c = calloc(1, sizeof(*c));   /* large: not on the stack */
	struct pt_reload rl = { .argc = argc, .argv = argv };
	char err[256];
	int rc;

	if (!c)
		return 1;
	rc = parse(c, argc, argv);
	if (rc == 0 && c->check_only)
		rc = pt_check_config(c);
	else if (rc == 0 && pt_sys_check(c, err, sizeof err) < 0) {
		fprintf(stderr, "portico: %s\n", err);
		rc = 1;
	} else if (rc == 0 && open_error_log(c) < 0)
		rc = 1;
	else if (rc == 0 && (rc = check_docroots(c)) == 0) {
		pt_sys_prepare();      /* before any thread: the workers inherit the signal mask */
		rc = serve(c, &rl);
	}
	pt_config_free(c);
	free(c);
	return rc < 0 ? 0 : rc;
}
