/*
 * Access log (see alog.h). Each worker appends to its own buffer: no locks; lines from
 * different workers interleave only at buffer boundaries, each write being whole lines.
 * JSON strings keep valid UTF-8 and escape everything else (\u00XX), so every line parses
 * whatever bytes a client sent.
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
	long jsec;                  /* JSON: the second jstr/jzone hold */
	char jstr[24], jzone[8];    /* "2024-05-01T12:34:56", "+02:00" */
	struct pt_alog *l;
};

struct pt_alog {
	int fd;
	enum pt_alog_format format;
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

/* Appends one whole line (ending in '\n') to wk's buffer; flushes within a second. */
static void append(struct pt_alog *l, pt_worker_t *wk, const char *line, size_t n)
{
	struct wlog *w = &l->w[pt_worker_index(wk)];

	if (w->len + n > BUF_BYTES)
		flush(w);
	if (n > BUF_BYTES)
		return;
	memcpy(w->buf + w->len, line, n);
	w->len += n;
	if (!pt_timer_armed(&w->timer))
		pt_timer_arm(wk, &w->timer, 1000);
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
	int v = pt_http_req_version(r);       /* HTTP/2 as nginx writes it: "HTTP/2.0" */
	int n = snprintf(line, sizeof line, "%s - - [%s] \"%s %s HTTP/%d.%d\" %u %llu \"%s\" \"%s\"\n",
			 ip, w->tstr, method, target, v / 10, v % 10, status,
			 (unsigned long long)bytes, ref, ua);
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof line)
		n = sizeof line - 1, line[n - 1] = '\n';
	append(l, wk, line, (size_t)n);
}

/* ---- JSON lines ---- */

void pt_alog_set_format(struct pt_alog *l, const char *name)
{
	l->format = name && !strcmp(name, "json") ? PT_ALOG_JSON : PT_ALOG_COMBINED;
}

bool pt_alog_is_json(const struct pt_alog *l)
{
	return l && l->format == PT_ALOG_JSON;
}

/* The length of the valid UTF-8 sequence at p (n bytes left), or 0 (RFC 3629 section 4:
 * no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len = p[0] >= 0xf5 ? 0 : p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;

	if (!len || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return len;
}

/* s as a JSON string value (quotes included) at out, at most cap bytes (cut short, still
 * closed, when longer), or null for an absent field. Valid UTF-8 is kept; controls, DEL and
 * bytes that are not UTF-8 become \u00XX, so every line is valid JSON whatever was sent.
 * Returns the bytes written. */
static size_t jstr(char *out, size_t cap, struct pt_http_str s)
{
	const unsigned char *p = (const unsigned char *)s.p;
	size_t k = 0, u;

	if (!s.p)
		return (size_t)snprintf(out, cap, "null");
	out[k++] = '"';
	for (size_t i = 0; i < s.n && k + 8 < cap; i++) {
		if (p[i] >= 0x80 && (u = utf8_len(p + i, s.n - i))) {
			memcpy(out + k, p + i, u);
			k += u;
			i += u - 1;
		} else if (p[i] < 0x20 || p[i] >= 0x7f) {
			k += (size_t)snprintf(out + k, cap - k, "\\u%04x", p[i]);
		} else {
			if (p[i] == '"' || p[i] == '\\')
				out[k++] = '\\';
			out[k++] = (char)p[i];
		}
	}
	out[k++] = '"';
	out[k] = '\0';
	return k;
}

/* "2024-05-01T12:34:56.789+02:00" (local time, milliseconds) into out (64 bytes). */
static void iso_time(struct wlog *w, char *out, size_t cap)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != w->jsec) {
		struct tm tm;
		char z[8];
		w->jsec = ts.tv_sec;
		localtime_r(&ts.tv_sec, &tm);
		strftime(w->jstr, sizeof w->jstr, "%Y-%m-%dT%H:%M:%S", &tm);
		strftime(z, sizeof z, "%z", &tm);             /* "+0200" */
		snprintf(w->jzone, sizeof w->jzone, "%.3s:%.2s", z, z + 3);
	}
	snprintf(out, cap, "%s.%03ld%s", w->jstr, ts.tv_nsec / 1000000, w->jzone);
}

/* The TLS version of r's connection as a JSON value ("TLSv1.3"), or null. */
static const char *tls_version(pt_http_req_t *r)
{
	struct pt_tls_info ti;
	pt_conn_t *c = pt_http_req_conn(r);

	if (!c || pt_conn_tls_info(c, &ti) < 0)
		return "null";
	return ti.version == PT_TLS_1_3 ? "\"TLSv1.3\"" : "\"TLSv1.2\"";
}

/* "2" for HTTP/2 (ALPN h2 or h2c), else "1.0" or "1.1". */
static const char *protocol(pt_http_req_t *r)
{
	int v = pt_http_req_version(r);

	return v == 20 ? "2" : v == 10 ? "1.0" : "1.1";
}

/* Field caps (escaped bytes): the line stays under 16 KiB whatever the request held. */
#define J_TARGET 8192
#define J_FIELD 2048

int pt_alog_json_begin(struct pt_alog *l, pt_http_req_t *r, unsigned status, uint64_t bytes,
		       char **line)
{
	struct wlog *w = &l->w[pt_worker_index(pt_conn_worker(pt_http_req_conn(r)))];
	char t[64], ip[64], method[J_FIELD], target[J_TARGET], host[J_FIELD], ua[J_FIELD],
		ref[J_FIELD], proto[16];
	struct pt_http_str none = { NULL, 0 }, a = pt_http_req_authority(r);

	iso_time(w, t, sizeof t);
	peer(r, ip, sizeof ip);
	jstr(method, sizeof method, pt_http_req_method_name(r));
	jstr(target, sizeof target, pt_http_req_target(r));
	jstr(host, sizeof host, a.n ? a : none);
	jstr(ua, sizeof ua, pt_http_req_header(r, "User-Agent"));
	jstr(ref, sizeof ref, pt_http_req_header(r, "Referer"));
	snprintf(proto, sizeof proto, "HTTP/%s", protocol(r));
	int n = asprintf(line, "{\"time\":\"%s\",\"client\":\"%s\",\"method\":%s,\"target\":%s,"
			 "\"status\":%u,\"bytes\":%llu,\"protocol\":\"%s\",\"tls\":%s,\"host\":%s,"
			 "\"user_agent\":%s,\"referer\":%s", t, ip, method, target, status,
			 (unsigned long long)bytes, proto, tls_version(r), host, ua, ref);
	if (n < 0) {
		*line = NULL;
		return -ENOMEM;
	}
	return n;
}

void pt_alog_json_end(struct pt_alog *l, pt_worker_t *wk, const char *line, size_t len,
		      uint64_t usec)
{
	char tail[48];
	int k = snprintf(tail, sizeof tail, ",\"request_time_us\":%llu}\n", (unsigned long long)usec);
	struct wlog *w = &l->w[pt_worker_index(wk)];

	if (w->len + len + (size_t)k > BUF_BYTES)
		flush(w);
	append(l, wk, line, len);               /* fits now: the two halves stay together */
	append(l, wk, tail, (size_t)k);
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
