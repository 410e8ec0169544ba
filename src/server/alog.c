/*
 * Access log (see alog.h). Each worker appends to its own buffer: no locks; lines from
 * different workers interleave only at buffer boundaries, each write being whole lines.
 */
#include "server/alog.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUF_BYTES (32u << 10)

struct wlog {
	char *buf;
	size_t len;
	pt_timer_t timer;
	long tsec;
	char tstr[32];
	struct pt_alog *l;
};

struct pt_alog {
	int fd;
	char path[4096];
	unsigned n;
	struct wlog *w;
};

static void flush(struct wlog *w)
{
	size_t off = 0;

	while (off < w->len) {
		ssize_t k = write(w->l->fd, w->buf + off, w->len - off);
		if (k <= 0)
			break;                  /* a full disk loses log lines, never requests */
		off += (size_t)k;
	}
	w->len = 0;
}

static void flush_timer(pt_timer_t *t, void *arg)
{
	flush(arg);
}

static int open_file(const char *path)
{
	if (!strcmp(path, "-"))
		return dup(STDOUT_FILENO);
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

struct pt_alog *pt_alog_open(const char *path, unsigned workers, int *err)
{
	struct pt_alog *l = calloc(1, sizeof *l);

	if (!l || !(l->w = calloc(workers, sizeof *l->w)))
		goto nomem;
	l->n = workers;
	snprintf(l->path, sizeof l->path, "%s", path);
	for (unsigned i = 0; i < workers; i++) {
		if (!(l->w[i].buf = malloc(BUF_BYTES)))
			goto nomem;
		l->w[i].l = l;
		pt_timer_init(&l->w[i].timer, flush_timer, &l->w[i]);
	}
	if ((l->fd = open_file(path)) < 0) {
		*err = -errno;
		pt_alog_close(l);
		return NULL;
	}
	return l;
nomem:
	*err = -ENOMEM;
	pt_alog_close(l);
	return NULL;
}

static void peer(pt_http_req_t *r, char *buf, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len;

	snprintf(buf, n, "-");
	if (pt_conn_peer(pt_http_req_conn(r), &ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)n);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)n);
}

/* Copies s into the log escaping '"', '\\' and bytes outside printable ASCII. */
static size_t esc(char *out, size_t cap, struct pt_http_str s)
{
	size_t k = 0;

	if (!s.p)
		return (size_t)snprintf(out, cap, "-");
	for (size_t i = 0; i < s.n && k + 5 < cap; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			k += (size_t)snprintf(out + k, cap - k, "\\x%02x", c);
		else
			out[k++] = (char)c;
	}
	out[k] = 0;
	return k;
}

void pt_alog_write(struct pt_alog *l, pt_http_req_t *r, unsigned status, uint64_t bytes)
{
	pt_worker_t *wk = pt_conn_worker(pt_http_req_conn(r));
	struct wlog *w = &l->w[pt_worker_index(wk)];
	char ip[64], method[64], target[2048], ref[512], ua[512];
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	if (ts.tv_sec != w->tsec) {
		struct tm tm;
		w->tsec = ts.tv_sec;
		localtime_r(&ts.tv_sec, &tm);
		strftime(w->tstr, sizeof w->tstr, "%d/%b/%Y:%H:%M:%S %z", &tm);
	}
	peer(r, ip, sizeof ip);
	esc(method, sizeof method, pt_http_req_method_name(r));
	esc(target, sizeof target, pt_http_req_target(r));
	esc(ref, sizeof ref, pt_http_req_header(r, "Referer"));
	esc(ua, sizeof ua, pt_http_req_header(r, "User-Agent"));
	char line[4096];
	int n = snprintf(line, sizeof line, "%s - - [%s] \"%s %s HTTP/1.%d\" %u %llu \"%s\" \"%s\"\n",
			 ip, w->tstr, method, target, pt_http_req_minor_version(r), status,
			 (unsigned long long)bytes, ref, ua);
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof line)
		n = sizeof line - 1, line[n - 1] = '\n';
	if (w->len + (size_t)n > BUF_BYTES)
		flush(w);
	memcpy(w->buf + w->len, line, (size_t)n);
	w->len += (size_t)n;
	if (!pt_timer_armed(&w->timer))
		pt_timer_arm(wk, &w->timer, 1000);
}

int pt_alog_reopen(struct pt_alog *l)
{
	int fd = open_file(l->path);

	if (fd < 0)
		return -errno;
	int rc = dup2(fd, l->fd) < 0 ? -errno : 0;     /* atomic for the writers */
	close(fd);
	return rc;
}

void pt_alog_close(struct pt_alog *l)
{
	if (!l)
		return;
	for (unsigned i = 0; l->w && i < l->n; i++) {
		if (l->w[i].buf && l->fd > 0)
			flush(&l->w[i]);
		free(l->w[i].buf);
	}
	if (l->fd > 0)
		close(l->fd);
	free(l->w);
	free(l);
}
