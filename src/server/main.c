/*
 * portico: the static-file web server.
 *
 *   portico [OPTIONS] [DOCROOT]        (see --help and docs/portico.1)
 *
 * Start-up order: parse options (exit 2 on a bad one), open logs and the docroot (exit 1 when
 * unusable), raise the descriptor limit, create the server and bind every address (or take
 * systemd's sockets), drop privileges (--user), then start the workers (their rings are
 * created unprivileged). The main thread then only waits for signals: SIGTERM/SIGINT stop
 * gracefully, SIGHUP reopens the log files, SIGUSR1 logs the counters.
 */
#include <portico/http.h>
#include "server/alog.h"
#include "server/config.h"
#include "server/files.h"
#include "server/mime.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

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
	h->defer_accept_sec = (int)c->defer_accept_sec;
	h->backlog = (int)c->backlog;
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

/* systemd socket activation: LISTEN_PID/LISTEN_FDS, descriptors from 3. They replace the -l
 * addresses (also in the start-up lines). Returns how many. */
static int socket_activation(pt_http_server_t *s, struct pt_server_config *c)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");

	if (!pid || !fds || atol(pid) != (long)getpid())
		return 0;
	int n = atoi(fds);
	if (n > PT_CONFIG_MAX_LISTEN) {
		fprintf(stderr, "portico: LISTEN_FDS=%d: at most %d sockets\n", n, PT_CONFIG_MAX_LISTEN);
		return -1;
	}
	c->nlisten = 0;
	for (int i = 0; i < n; i++) {
		socket_name(3 + i, c->listen[c->nlisten++], sizeof c->listen[0]);
		int err = pt_http_listen_fd(s, 3 + i);
		if (err < 0) {
			fprintf(stderr, "portico: socket-activated fd %d: %s\n", 3 + i, strerror(-err));
			return -1;
		}
	}
	return n;
}

static int drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (!pw) {
		fprintf(stderr, "portico: --user %s: no such user\n", user);
		return -1;
	}
	/* the user's own groups (from the group database), not root's, not none */
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		fprintf(stderr, "portico: --user %s: %s\n", user, strerror(errno));
		return -1;
	}
	return 0;
}

static int listen_all(pt_http_server_t *s, struct pt_server_config *c)
{
	int n = socket_activation(s, c);

	if (n < 0)
		return -1;
	for (unsigned i = 0; n == 0 && i < c->nlisten; i++) {
		int li = pt_http_listen(s, c->listen[i]);
		if (li < 0) {
			fprintf(stderr, "portico: cannot listen on %s: %s\n", c->listen[i], strerror(-li));
			return -1;
		}
	}
	return 0;
}

static void announce(pt_http_server_t *s, const struct pt_server_config *c)
{
	int port;

	for (int i = 0; (unsigned)i < c->nlisten && (port = pt_http_listen_port(s, i)) >= 0; i++) {
		const char *a = c->listen[i];
		printf("portico: serving %s at http://%.*s:%d/\n", c->docroot,
		       (int)(strrchr(a, ':') - a), a, port);
	}
	printf("portico: %s backend, %u workers\n", pt_engine_backend(pt_http_server_engine(s)),
	       pt_engine_workers(pt_http_server_engine(s)));
	fflush(stdout);
}

/* SIGUSR1: the engine's counters, summed over the workers, as one line of the error log. */
static void log_counters(pt_http_server_t *s)
{
	struct pt_counters n;

	if (pt_engine_counters(pt_http_server_engine(s), -1, &n) < 0)
		return;
	fprintf(stderr, "portico: counters: conns %llu accepts %llu closes %llu bytes_in %llu "
		"bytes_out %llu shed %llu (silent %llu partial %llu idle %llu) accept_paused %llu "
		"accept_errors %llu fd_reserve_used %llu timeouts %llu send_refused %llu "
		"buf_starved %llu\n",
		(unsigned long long)n.conns, (unsigned long long)n.accepts,
		(unsigned long long)n.closes, (unsigned long long)n.bytes_in,
		(unsigned long long)n.bytes_out, (unsigned long long)n.shed,
		(unsigned long long)n.shed_silent, (unsigned long long)n.shed_partial,
		(unsigned long long)n.shed_idle, (unsigned long long)n.accept_paused,
		(unsigned long long)n.accept_errors, (unsigned long long)n.fd_reserve_used,
		(unsigned long long)n.timeouts, (unsigned long long)n.send_refused,
		(unsigned long long)n.buf_starved);
	fflush(stderr);
}

static void wait_for_stop(pt_http_server_t *s, struct pt_alog *alog,
			  const struct pt_server_config *c)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	int err;
	for (;;) {
		if (sigwait(&set, &sig) != 0 || (sig != SIGHUP && sig != SIGUSR1))
			return;
		if (sig == SIGUSR1) {
			log_counters(s);
			continue;
		}
		open_error_log(c);                    /* SIGHUP: reopen both logs (rotation) */
		if (alog && (err = pt_alog_reopen(alog)) < 0)
			fprintf(stderr, "portico: reopening the access log '%s': %s\n", c->access_log,
				strerror(-err));
	}
}

static int serve(struct pt_server_config *c, int rootfd)
{
	struct pt_http_config hc;
	struct pt_files files = { 0 };
	struct pt_alog *alog = NULL;
	int err, rc = 1;

	http_config(c, &hc);
	pt_http_server_t *s = pt_http_server_create(&hc, &err);
	if (!s) {
		fprintf(stderr, "portico: %s\n", strerror(-err));
		return 1;
	}
	unsigned workers = pt_engine_workers(pt_http_server_engine(s));
	struct pt_mime *mime = pt_mime_load("/etc/mime.types", &err);
	/* small_max: above ~16 KiB sendfile beats a copy from memory (S5, 64 KiB: 31.6 -> 19.8 µs
	 * of server CPU per request in make bench) */
	files.opts = (struct pt_fcache_opts){ .mime = mime, .follow_symlinks = c->follow_symlinks,
					      .precompressed = true, .ttl_ms = 1000, .small_max = 16384 };
	files.index = c->index;
	files.autoindex = c->autoindex;
	files.cache_control = c->cache_control;
	if (*c->access_log && !(alog = pt_alog_open(c->access_log, workers, &err)))
		fprintf(stderr, "portico: access log '%s': %s\n", c->access_log, strerror(-err));
	files.alog = alog;
	if ((*c->access_log && !alog) || listen_all(s, c) < 0 ||
	    (*c->user && drop_privileges(c->user) < 0) || pt_files_init(&files, workers, rootfd) < 0 ||
	    pt_http_route(s, "/", pt_files_handle, &files, 0) < 0)
		goto out;
	if ((err = pt_http_server_start(s)) < 0) {
		fprintf(stderr, "portico: cannot start: %s\n", strerror(-err));
		goto out;
	}
	announce(s, c);
	wait_for_stop(s, alog, c);
	rc = 0;
out:
	pt_http_server_destroy(s);
	pt_files_fini(&files);
	pt_alog_close(alog);
	pt_mime_free(mime);
	return rc;
}

int main(int argc, char **argv)
{
	struct pt_server_config c;
	char err[512];

	int rc = pt_config_parse_args(&c, argc, argv, err, sizeof err);
	if (rc == 1)
		return 0;
	if (rc < 0) {
		fprintf(stderr, "portico: %s\n", err);
		fprintf(stderr, "Try 'portico --help' for more information.\n");
		return 2;
	}
	if (open_error_log(&c) < 0)
		return 1;
	int rootfd = pt_config_open_docroot(&c, err, sizeof err);
	if (rootfd < 0) {
		fprintf(stderr, "portico: %s\n", err);
		return 1;
	}
	sigset_t set;                  /* blocked in every thread; the main thread waits for them */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	rc = serve(&c, rootfd);
	close(rootfd);
	return rc;
}
