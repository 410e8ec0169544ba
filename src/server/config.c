/*
 * Command line and config file of the portico program (see config.h).
 *
 * One table (opts[]) describes every option: its names, how its value is parsed and checked,
 * where it is stored, and its --help line (the per-site rules are parsed by site.c, the file's
 * syntax and host blocks by conffile.c). The command line, the config file and the help
 * text all come from it, so they cannot drift apart; docs/portico.1 mirrors it by hand and
 * tests/unit/server/test_config.c checks that every option appears in the man page.
 */
#include "server/config.h"
#include "server/config_int.h"
#include "util/defaults.h"
#include "server/alog.h"
#include "util/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PT_VERSION
#define PT_VERSION "unknown"
#endif

enum kind {
	K_HELP, K_VERSION, K_CONFIG, K_CHECK, /* command line only, handled before the rest */
	K_LISTEN, K_UINT, K_SIZE, K_MS, K_RATE, K_BACKEND, K_POLICY, K_BOOL, K_STR,
	K_PATHS,     /* a repeatable file name (a list, like K_LISTEN) */
	K_PROTOCOLS, /* TLS versions, into tls_min_version and tls_max_version */
	K_SITE,      /* a per-site rule (site.c), into the top-level site */
	K_ADDR,      /* one address as --listen takes it, or "off" ("") */
};

enum {
	F_AUTO = 1 << 0, /* "auto" stands for 0 */
	F_OFF = 1 << 1,  /* "off" stands for "" (strings) or PT_CONFIG_RATE_OFF (rates) */
};

struct opt {
	const char *name;
	char shortname;
	uint8_t kind;
	uint8_t flags;
	size_t off;                         /* offset of the field in the config */
	size_t cap;                         /* string fields: their size (lists: of one item) */
	uint64_t min, max;                  /* numbers (K_MS: milliseconds); lists: max items */
	const char *(*check)(const char *); /* strings: NULL if valid, else what is expected */
	const char *meta;                   /* value name in --help, NULL for none */
	const char *help;
};

#define FIELD(f) offsetof(struct pt_server_config, f)
#define STR(f) FIELD(f), sizeof(((struct pt_server_config *)0)->f)
#define LIST(f) FIELD(f), sizeof(((struct pt_server_config *)0)->f[0]) /* off, cap */
#define NLIST(f) (sizeof(((struct pt_server_config *)0)->f) / \
		  sizeof(((struct pt_server_config *)0)->f[0]))
#define MS_MAX 604800000ull /* one week */
#define TIMEOUT_DEFAULT PT_DEFAULT_STR(PT_DEFAULT_TIMEOUT_SEC)

static const char *check_nonempty(const char *v);
static const char *check_error_log(const char *v);
static const char *check_user(const char *v);
static const char *check_index(const char *v);
static const char *check_field_value(const char *v);
static const char *check_path(const char *v);

static const struct opt opts[] = {
	{ "listen", 'l', K_LISTEN, 0, LIST(listen), 0, NLIST(listen), NULL, "ADDR:PORT",
	  "listen on IPv4:PORT, [IPv6]:PORT or PORT (all IPv4 "
	  "addresses); repeat for several (at most 16); "
	  "default " PT_CONFIG_DEFAULT_LISTEN " unless --listen-tls is given" },
	{ "listen-tls", 0, K_LISTEN, 0, LIST(listen_tls), 0, NLIST(listen_tls), NULL, "ADDR:PORT",
	  "listen for HTTPS on this address (as --listen; at most 16); needs --tls-cert "
	  "and --tls-key" },
	{ "workers", 'w', K_UINT, F_AUTO, FIELD(workers), 0, 1, 1024, NULL, "N|auto",
	  "worker threads (default auto: one per CPU)" },
	{ "backend", 0, K_BACKEND, 0, FIELD(backend), 0, 0, 0, NULL, "uring|epoll|auto",
	  "I/O backend (default auto: io_uring if usable)" },
	{ "config", 'c', K_CONFIG, 0, 0, 0, 0, 0, NULL, "FILE",
	  "read settings from FILE; options given on the command line override it" },
	{ "check-config", 0, K_CHECK, 0, 0, 0, 0, 0, NULL, "FILE",
	  "read FILE as --config does, check it (docroots, pages, certificates) and exit: 0 if "
	  "it is good, else 2 with FILE:LINE: reason" },
	{ "docroot", 0, K_STR, 0, STR(docroot), 0, 0, check_nonempty, "DIR",
	  "directory to serve, as the DOCROOT argument (default: the current directory)" },
	{ "user", 0, K_STR, 0, STR(user), 0, 0, check_user, "NAME",
	  "switch to this user after binding (default: none)" },
	{ "index", 0, K_STR, F_OFF, STR(index), 0, 0, check_index, "NAME|off",
	  "file served for a directory (default index.html)" },
	{ "autoindex", 0, K_BOOL, 0, FIELD(autoindex), 0, 0, 0, NULL, NULL,
	  "list directories without an index file (default off)" },
	{ "follow-symlinks", 0, K_BOOL, 0, FIELD(follow_symlinks), 0, 0, 0, NULL, NULL,
	  "follow symlinks that stay inside DOCROOT (default off: no symlink is followed)" },
	{ "cache-control", 0, K_STR, F_OFF, STR(cache_control), 0, 0, check_field_value, "VALUE",
	  "Cache-Control field for files (default: none)" },
	{ "header", 0, K_SITE, 0, 0, 0, 0, 0, NULL, "'PATTERN NAME VALUE'",
	  "add the field NAME: VALUE to 200, 206 and 304 responses for paths under PATTERN "
	  "(/prefix/, /exact or *.glob on the file name); repeatable, later rules win" },
	{ "error-page", 0, K_SITE, 0, 0, 0, 0, 0, NULL, "'STATUS... PATH'",
	  "send the file PATH with responses of these statuses (400-599); repeatable" },
	{ "fallback", 0, K_SITE, 0, 0, 0, 0, 0, NULL, "PATH|off",
	  "answer GET/HEAD of a missing path without an extension with PATH and 200 "
	  "(single-page apps; default off)" },
	{ "redirect", 0, K_SITE, 0, 0, 0, 0, 0, NULL, "'CODE FROM TO'",
	  "answer FROM (a path, or a prefix ending in /) with CODE (301, 302, 303, 307, 308) "
	  "to TO, keeping the rest of the path and the query; repeatable" },
	{ "compress", 0, K_SITE, 0, 0, 0, 0, 0, NULL, "'TYPE...'|off",
	  "compress files of these media types once (br, zstd, gzip) and serve the cached "
	  "copy (default off)" },
	{ "compress-cache", 0, K_SIZE, 0, FIELD(compress_cache), 0, 64 * KIB, 64 * GIB, NULL,
	  "BYTES", "memory for compressed copies, all sites together (default 64m)" },
	{ "response-cache", 0, K_UINT, 0, FIELD(response_cache), 0, 0, 1u << 20, NULL, "N",
	  "whole responses of small files kept per worker and sent again to GET and HEAD requests "
	  "with the same Host and target, without the file lookup (default 1024; 0 = off)" },
	{ "cors", 0, K_SITE, 0, 0, 0, 0, 0, NULL, "'*|ORIGIN...'|off",
	  "send Access-Control-Allow-Origin and answer CORS preflights (default off)" },
	{ "access-log", 0, K_STR, F_OFF, STR(access_log), 0, 0, check_nonempty, "PATH|-|off",
	  "access log file, - for stdout (default off)" },
	{ "error-log", 0, K_STR, 0, STR(error_log), 0, 0, check_error_log, "PATH|-",
	  "error log file, - for stderr (default -)" },
	{ "max-conns", 0, K_UINT, F_AUTO, FIELD(max_conns), 0, 1, 1u << 24, NULL, "N|auto",
	  "open connections, all workers together (default auto: 90% of the descriptor limit)" },
	{ "max-head", 0, K_SIZE, 0, FIELD(max_head), 0, 256, 16 * MIB, NULL, "BYTES",
	  "request line and header fields (default " PT_DEFAULT_STR(PT_DEFAULT_MAX_HEAD_KIB) "k)" },
	{ "max-target", 0, K_SIZE, 0, FIELD(max_target), 0, 16, 16 * MIB, NULL, "BYTES",
	  "request-target (default " PT_DEFAULT_STR(PT_DEFAULT_MAX_TARGET_KIB) "k)" },
	{ "max-headers", 0, K_UINT, 0, FIELD(max_headers), 0, 1, 10000, NULL, "N",
	  "header fields per request (default " PT_DEFAULT_STR(PT_DEFAULT_MAX_HEADERS) ")" },
	{ "max-body", 0, K_SIZE, 0, FIELD(max_body), 0, 1, 1ull << 50, NULL, "BYTES",
	  "request body (default 1m)" },
	{ "max-drain", 0, K_SIZE, 0, FIELD(max_drain), 0, 1, 1ull << 50, NULL, "BYTES",
	  "unread request body discarded to keep a connection open (default 1m)" },
	{ "send-queue", 0, K_SIZE, 0, FIELD(send_queue), 0, 4 * KIB, 1 * GIB, NULL, "BYTES",
	  "unsent bytes queued per connection (default 4m)" },
	{ "worker-buffer", 0, K_SIZE, 0, FIELD(worker_buffer), 0, 64 * KIB, 64 * GIB, NULL,
	  "BYTES", "copied send data per worker (default 64m)" },
	{ "queue-length", 0, K_UINT, 0, FIELD(queue_length), 0, 1, 1000000, NULL, "N",
	  "requests waiting for a blocking-I/O thread; 503 beyond (default "
	  PT_DEFAULT_STR(PT_DEFAULT_QUEUE_LENGTH) ")" },
	{ "backlog", 0, K_UINT, 0, FIELD(backlog), 0, 1, 65535, NULL, "N",
	  "listen backlog (default 4096)" },
	{ "when-full", 0, K_POLICY, 0, FIELD(when_full), 0, 0, 0, NULL, "shed|pause",
	  "at the connection limit: close the idlest connection, or stop accepting (default shed)" },
	{ "header-timeout", 0, K_MS, 0, FIELD(header_timeout_ms), 0, 1, MS_MAX, NULL, "SEC",
	  "time to receive a request head (default " TIMEOUT_DEFAULT ")" },
	{ "idle-timeout", 0, K_MS, 0, FIELD(idle_timeout_ms), 0, 1, MS_MAX, NULL, "SEC",
	  "keep-alive wait for the next request (default " TIMEOUT_DEFAULT ")" },
	{ "body-timeout", 0, K_MS, 0, FIELD(body_timeout_ms), 0, 1, MS_MAX, NULL, "SEC",
	  "gap allowed within a request body (default " TIMEOUT_DEFAULT ")" },
	{ "drain-timeout", 0, K_MS, 0, FIELD(drain_timeout_ms), 0, 1, MS_MAX, NULL, "SEC",
	  "time to discard an unread body (default " TIMEOUT_DEFAULT ")" },
	{ "queue-timeout", 0, K_MS, 0, FIELD(queue_timeout_ms), 0, 1, MS_MAX, NULL, "SEC",
	  "time a request may wait in the queue (default " TIMEOUT_DEFAULT ")" },
	{ "min-send-rate", 0, K_RATE, F_OFF, FIELD(min_send_rate), 0, 1, UINT_MAX - 1, NULL,
	  "BYTES_PER_SEC|off", "slowest a client may read a response before "
	  "it is disconnected (default " PT_DEFAULT_STR(PT_DEFAULT_MIN_SEND_RATE) ")" },
	{ "shutdown-timeout", 0, K_MS, 0, FIELD(shutdown_ms), 0, 1, MS_MAX, NULL, "SEC",
	  "on stop, wait this long for responses (default 5)" },
	{ "stop-grace", 0, K_MS, 0, FIELD(stop_grace_ms), 0, 0, MS_MAX, NULL, "SEC",
	  "on stop, keep an idle keep-alive connection this long for a request that may be on "
	  "its way, answered with Connection: close (default 1, at most --shutdown-timeout)" },
	{ "defer-accept", 0, K_UINT, 0, FIELD(defer_accept_sec), 0, 0, 3600, NULL, "SEC",
	  "accept a connection only once it has sent data, or after SEC (default 0: off)" },
	{ "tls-cert", 0, K_PATHS, 0, LIST(tls_cert), 0, NLIST(tls_cert), check_path, "FILE",
	  "certificate chain (PEM, leaf first); repeat for several (at most 16): "
	  "the first is the default, SNI picks the others" },
	{ "tls-key", 0, K_PATHS, 0, LIST(tls_key), 0, NLIST(tls_key), check_path, "FILE",
	  "private key (PEM) of the --tls-cert in the same position" },
	{ "tls-protocols", 0, K_PROTOCOLS, 0, 0, 0, 0, 0, NULL, "LIST",
	  "TLS versions, comma-separated: TLSv1.2, TLSv1.3 (default both)" },
	{ "hsts", 0, K_UINT, F_OFF, FIELD(hsts), 0, 0, 0x7fffffff, NULL, "SEC|off",
	  "send Strict-Transport-Security: max-age=SEC on HTTPS responses (default off)" },
	{ "redirect-https", 0, K_BOOL, 0, FIELD(redirect_https), 0, 0, 0, NULL, NULL,
	  "answer plaintext requests with a 301 to the same URL on the first --listen-tls "
	  "port (default off)" },
	{ "http2", 0, K_BOOL, 0, FIELD(http2), 0, 0, 0, NULL, NULL,
	  "offer HTTP/2 on HTTPS listeners by ALPN (default on; --http2=off: HTTP/1.1 only)" },
	{ "h2c", 0, K_BOOL, 0, FIELD(h2c), 0, 0, 0, NULL, NULL,
	  "also take HTTP/2 with prior knowledge on plaintext listeners (default off)" },
	{ "admin", 0, K_ADDR, F_OFF, STR(admin), 0, 0, NULL, "ADDR:PORT|off",
	  "admin listener: GET /metrics (Prometheus), /status (live page), /status.json and "
	  "/healthz (default off)" },
	{ "admin-allow", 0, K_STR, 0, STR(admin_allow), 0, 0, pt_cidr_check_list, "CIDR[,CIDR...]",
	  "sources the admin listener answers; others get 403 (default 127.0.0.0/8,::1)" },
	{ "drain-delay", 0, K_MS, 0, FIELD(drain_delay_ms), 0, 0, 3600000, NULL, "SEC",
	  "on SIGTERM, answer /healthz with 503 and keep serving this long before stopping "
	  "(default 0)" },
	{ "access-log-format", 0, K_STR, 0, STR(access_log_format), 0, 0, pt_alog_check_format,
	  "combined|json", "access log lines: Combined Log Format or JSON (default combined)" },
	{ "proxy-protocol", 0, K_BOOL, 0, FIELD(proxy_protocol), 0, 0, 0, NULL, NULL,
	  "connections on --listen and --listen-tls open with a PROXY protocol header (v1 or v2, "
	  "from HAProxy's send-proxy); needs --trusted-proxies (default off)" },
	{ "trusted-proxies", 0, K_STR, 0, STR(trusted_proxies), 0, 0, pt_cidr_check_list,
	  "CIDR[,CIDR...]", "balancers allowed to send the PROXY header; other sources are "
	  "closed at once" },
	{ "help", 'h', K_HELP, 0, 0, 0, 0, 0, NULL, NULL, "print this help and exit" },
	{ "version", 'V', K_VERSION, 0, 0, 0, 0, 0, NULL, NULL, "print the version and exit" },
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const struct pt_server_config defaults = {
	.docroot = ".", .index = "index.html", .error_log = "-",
	.backend = PT_BACKEND_AUTO, .when_full = PT_FULL_SHED,
	.max_head = PT_DEFAULT_MAX_HEAD, .max_target = PT_DEFAULT_MAX_TARGET,
	.max_headers = PT_DEFAULT_MAX_HEADERS,
	.max_body = 1 * MIB, .max_drain = 1 * MIB, .send_queue = 4 * MIB,
	.worker_buffer = 64 * MIB, .queue_length = PT_DEFAULT_QUEUE_LENGTH, .backlog = 4096,
	.header_timeout_ms = PT_DEFAULT_TIMEOUT_MS, .idle_timeout_ms = PT_DEFAULT_TIMEOUT_MS,
	.body_timeout_ms = PT_DEFAULT_TIMEOUT_MS, .drain_timeout_ms = PT_DEFAULT_TIMEOUT_MS,
	.queue_timeout_ms = PT_DEFAULT_TIMEOUT_MS,
	.min_send_rate = PT_DEFAULT_MIN_SEND_RATE, .shutdown_ms = 5000, .stop_grace_ms = 1000,
	.tls_min_version = PT_TLS_1_2, .tls_max_version = PT_TLS_1_3, .hsts = PT_CONFIG_OFF, .http2 = true,
	.compress_cache = 64 * MIB, .response_cache = 1024, .access_log_format = "combined",
};

void pt_config_defaults(struct pt_server_config *c)
{
	*c = defaults;
}

/* ---- string checks ----------------------------------------------------------------------- */

static const char *check_nonempty(const char *v)
{
	return *v ? NULL : "a non-empty value";
}

static const char *check_error_log(const char *v)
{
	if (!*v || strcmp(v, "off") == 0)
		return "a path or - (errors cannot be turned off)";
	return NULL;
}

static const char *check_user(const char *v)
{
	if (!*v)
		return "a user name";
	for (; *v; v++)
		if ((unsigned char)*v <= ' ' || *v == '/' || *v == ':' || *v == 0x7f)
			return "a user name";
	return NULL;
}

static const char *check_index(const char *v)
{
	if (!*v || strchr(v, '/') || strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
		return "a file name without '/', or off";
	return NULL;
}

/* A file name for messages and the engine: not empty, no control characters. */
static const char *check_path(const char *v)
{
	if (!*v)
		return "a file name";
	for (; *v; v++)
		if ((unsigned char)*v < ' ' || *v == 0x7f)
			return "a file name without control characters";
	return NULL;
}

/* RFC 9110 5.5: field-value bytes (no CR, LF, NUL or other controls but HTAB). */
static const char *check_field_value(const char *v)
{
	for (; *v; v++)
		if (((unsigned char)*v < ' ' && *v != '\t') || *v == 0x7f)
			return "printable characters only";
	return NULL;
}

/* ---- applying a value -------------------------------------------------------------------- */

const char *pt__config_shown(const char *v, char *buf, size_t cap)
{
	size_t i = 0;

	for (; v[i] && i + 4 < cap && i < 48; i++)
		buf[i] = (unsigned char)v[i] < ' ' || v[i] == 0x7f ? '?' : v[i];
	if (v[i])
		buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
	buf[i] = '\0';
	return buf;
}

static void fmt_size(char *b, size_t cap, uint64_t v)
{
	static const char suf[] = "gmk";
	static const uint64_t mul[] = { GIB, MIB, KIB };

	for (int i = 0; i < 3; i++)
		if (v >= mul[i] && v % mul[i] == 0) {
			snprintf(b, cap, "%llu%c", (unsigned long long)(v / mul[i]), suf[i]);
			return;
		}
	snprintf(b, cap, "%llu", (unsigned long long)v);
}

/* What the option expects, for messages. */
static void expected(const struct opt *o, char *b, size_t cap)
{
	char lo[32], hi[32];

	switch (o->kind) {
	case K_LISTEN: case K_ADDR:
		snprintf(b, cap, "IPv4:PORT, [IPv6]:PORT or PORT%s", o->kind == K_ADDR ? ", or off" : "");
		return;
	case K_SIZE:
		fmt_size(lo, sizeof(lo), o->min);
		fmt_size(hi, sizeof(hi), o->max);
		snprintf(b, cap, "a size from %s to %s bytes, suffix k, m or g allowed", lo, hi);
		return;
	case K_MS:
		snprintf(b, cap, "seconds from %g to %llu", (double)o->min / 1000,
			 (unsigned long long)(o->max / 1000));
		return;
	case K_BACKEND:
		snprintf(b, cap, "uring, epoll or auto");
		return;
	case K_POLICY:
		snprintf(b, cap, "shed or pause");
		return;
	case K_BOOL:
		snprintf(b, cap, "on or off");
		return;
	case K_PROTOCOLS:
		snprintf(b, cap, PROTOCOLS_EXPECTED);
		return;
	}
	snprintf(b, cap, "an integer from %llu to %llu%s", (unsigned long long)o->min,
		 (unsigned long long)o->max,
		 o->flags & F_AUTO ? ", or auto" : o->flags & F_OFF ? ", or off" : "");
}

static bool apply_number(struct pt_server_config *c, const struct opt *o, const char *v)
{
	uint64_t x;
	bool ok;

	if ((o->flags & F_AUTO) && strcmp(v, "auto") == 0) {
		*(unsigned *)((char *)c + o->off) = 0;
		return true;
	}
	if ((o->flags & F_OFF) && strcmp(v, "off") == 0) {
		*(unsigned *)((char *)c + o->off) = PT_CONFIG_RATE_OFF;
		return true;
	}
	ok = o->kind == K_MS ? pt__parse_ms(v, &x) : o->kind == K_UINT ? pt__parse_uint(v, &x)
								  : pt__parse_size(v, &x);
	if (!ok || x < o->min || x > o->max)
		return false;
	if (o->kind == K_SIZE)
		*(uint64_t *)((char *)c + o->off) = x;
	else
		*(unsigned *)((char *)c + o->off) = (unsigned)x;
	return true;
}

static bool apply_string(char *dst, const struct opt *o, const char *v, const char **why)
{
	if ((o->flags & F_OFF) && strcmp(v, "off") == 0) {
		dst[0] = '\0';
		return true;
	}
	*why = o->check ? o->check(v) : NULL;
	if (*why)
		return false;
	if (strlen(v) >= o->cap) {
		*why = "a shorter value";
		return false;
	}
	strcpy(dst, v);
	return true;
}

static bool is_list(const struct opt *o)
{
	return o->kind == K_LISTEN || o->kind == K_PATHS;
}

/* The item count of list option o. */
static unsigned *list_count(struct pt_server_config *c, const struct opt *o)
{
	static const struct { size_t list, count; } lists[] = {
		{ FIELD(listen), FIELD(nlisten) }, { FIELD(listen_tls), FIELD(nlisten_tls) },
		{ FIELD(tls_cert), FIELD(ntls_cert) }, { FIELD(tls_key), FIELD(ntls_key) },
	};
	size_t i = 0;

	while (lists[i].list != o->off)
		i++;
	return (unsigned *)((char *)c + lists[i].count);
}

/* Appends v to the list option o: -ENOSPC when it is full, else 0 with *ok and *why as for
 * a single value. */
static int apply_list(struct pt_server_config *c, const struct opt *o, const char *v,
		      bool *ok, const char **why)
{
	unsigned *n = list_count(c, o);
	char *dst = (char *)c + o->off + *n * o->cap;

	if (*n >= o->max)
		return -ENOSPC;
	*ok = o->kind == K_LISTEN ? pt__parse_listen(v, dst) : apply_string(dst, o, v, why);
	*n += *ok;
	return 0;
}

/* Sets option o from v (NULL: an on/off option given without a value). 0, or
 * PT_CONFIG_USAGE with "invalid value ..." in msg. */
static int apply(struct pt_server_config *c, const struct opt *o, const char *v,
		 char *msg, size_t cap)
{
	const char *why = NULL;
	char exp[160], sv[64];
	bool ok = true;

	switch (o->kind) {
	case K_LISTEN: case K_PATHS:
		if (apply_list(c, o, v, &ok, &why) < 0) {
			snprintf(msg, cap, "more than %llu %s", (unsigned long long)o->max,
				 o->kind == K_LISTEN ? "addresses" : "files");
			return PT_CONFIG_USAGE;
		}
		break;
	case K_UINT: case K_SIZE: case K_MS: case K_RATE:
		ok = apply_number(c, o, v);
		break;
	case K_BACKEND:
		ok = !strcmp(v, "auto") || !strcmp(v, "uring") || !strcmp(v, "epoll");
		if (ok)
			c->backend = v[0] == 'u' ? PT_BACKEND_URING
				   : v[0] == 'e' ? PT_BACKEND_EPOLL : PT_BACKEND_AUTO;
		break;
	case K_POLICY:
		ok = !strcmp(v, "shed") || !strcmp(v, "pause");
		if (ok)
			c->when_full = v[0] == 'p' ? PT_FULL_PAUSE : PT_FULL_SHED;
		break;
	case K_BOOL:
		ok = !v ? (*(bool *)((char *)c + o->off) = true)
			: pt__parse_bool(v, (bool *)((char *)c + o->off));
		break;
	case K_STR:
		ok = apply_string((char *)c + o->off, o, v, &why);
		break;
	case K_ADDR:
		if (!strcmp(v, "off"))
			*((char *)c + o->off) = '\0';
		else
			ok = pt__parse_listen(v, (char *)c + o->off);
		break;
	case K_PROTOCOLS:
		why = pt__parse_protocols(v, &c->tls_min_version, &c->tls_max_version);
		ok = !why;
		break;
	case K_SITE:
		return pt_site_apply(&c->top, o->name, v, 0, msg, cap) < 0 ? PT_CONFIG_USAGE : 0;
	}
	if (ok)
		return 0;
	if (!why)
		expected(o, exp, sizeof(exp));
	snprintf(msg, cap, "invalid value '%s' (expected %s)", pt__config_shown(v, sv, sizeof(sv)),
		 why ? why : exp);
	return PT_CONFIG_USAGE;
}

static const struct opt *find_long(const char *name, size_t n)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strlen(opts[i].name) == n && memcmp(opts[i].name, name, n) == 0)
			return &opts[i];
	return NULL;
}

static const struct opt *find_short(char c)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].shortname && opts[i].shortname == c)
			return &opts[i];
	return NULL;
}

static bool takes_value(const struct opt *o)
{
	return o->kind != K_HELP && o->kind != K_VERSION && o->kind != K_BOOL;
}

/* ---- settings by name (the config file, conffile.c) -------------------------------------- */

int pt__config_set(struct pt_server_config *c, const char *name, const char *value, char *msg,
		   size_t cap)
{
	const struct opt *o = find_long(name, strlen(name));

	if (!o || o->kind <= K_CHECK)
		return PT_CONFIG_UNKNOWN;
	if (!value && o->kind != K_BOOL) {
		snprintf(msg, cap, "needs a value");
		return PT_CONFIG_USAGE;
	}
	return apply(c, o, value, msg, cap);
}

/* Whether option o has the same value in a and b. */
static bool same_value(const struct pt_server_config *a, const struct pt_server_config *b,
		       const struct opt *o)
{
	const char *x = (const char *)a + o->off, *y = (const char *)b + o->off;

	switch (o->kind) {
	case K_LISTEN: case K_PATHS: {
		unsigned n = *list_count((struct pt_server_config *)a, o);
		return n == *list_count((struct pt_server_config *)b, o) && !memcmp(x, y, n * o->cap);
	}
	case K_STR: case K_ADDR:
		return strcmp(x, y) == 0;
	case K_SIZE:
		return *(const uint64_t *)x == *(const uint64_t *)y;
	case K_BOOL:
		return *(const bool *)x == *(const bool *)y;
	case K_BACKEND: case K_POLICY:
		return *(const int *)x == *(const int *)y;
	case K_UINT: case K_MS: case K_RATE:
		return *(const unsigned *)x == *(const unsigned *)y;
	default:
		return true;
	}
}

void pt_config_static_diff(const struct pt_server_config *a, const struct pt_server_config *b,
			   char *out, size_t cap)
{
	static const char *const reloadable[] = { "docroot", "index", "autoindex",
		"follow-symlinks", "cache-control", "tls-cert", "tls-key", "tls-protocols" };
	size_t k = 0;

	out[0] = '\0';
	for (size_t i = 0; i < NOPTS; i++) {
		bool skip = opts[i].kind <= K_CHECK || opts[i].kind == K_SITE;

		for (size_t j = 0; j < sizeof(reloadable) / sizeof(reloadable[0]); j++)
			skip |= !strcmp(opts[i].name, reloadable[j]);
		if (skip || same_value(a, b, &opts[i]) || k + strlen(opts[i].name) + 3 > cap)
			continue;
		k += (size_t)snprintf(out + k, cap - k, "%s%s", k ? ", " : "", opts[i].name);
	}
}

void pt_config_free(struct pt_server_config *c)
{
	pt_site_conf_free(&c->top);
	for (unsigned i = 0; i < c->nhosts; i++)
		pt_site_conf_free(&c->hosts[i]);
	free(c->hosts);
	c->hosts = NULL;
	c->nhosts = 0;
}

/* ---- the command line -------------------------------------------------------------------- */

struct cursor {
	int argc, i;
	char **argv;
	bool no_more_options; /* after "--" */
};

enum { ARG_END, ARG_OPTION, ARG_POSITIONAL };

/* The next argument: an option with its value (NULL if none), or a positional argument in
 * *val. ARG_END, ARG_OPTION, ARG_POSITIONAL, or PT_CONFIG_USAGE with err set. */
static int next_arg(struct cursor *cu, const struct opt **o, const char **val, char *err,
		    size_t errlen)
{
	const char *a, *eq, *attached = NULL;
	char sv[64];

	if (cu->i >= cu->argc)
		return ARG_END;
	a = cu->argv[cu->i++];
	if (!cu->no_more_options && strcmp(a, "--") == 0) {
		cu->no_more_options = true;
		return next_arg(cu, o, val, err, errlen);
	}
	if (cu->no_more_options || a[0] != '-' || a[1] == '\0') {
		*val = a;
		return ARG_POSITIONAL;
	}
	if (a[1] == '-') {
		eq = strchr(a + 2, '=');
		*o = find_long(a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
		attached = eq ? eq + 1 : NULL;
	} else {
		*o = find_short(a[1]);
		attached = a[2] ? a + 2 : NULL;
		if (*o && attached && !takes_value(*o))
			*o = NULL; /* "-hV": no bundling */
	}
	if (!*o) {
		snprintf(err, errlen, "unknown option '%s' (see --help)", pt__config_shown(a, sv, sizeof(sv)));
		return PT_CONFIG_USAGE;
	}
	if (attached && (*o)->kind != K_BOOL && !takes_value(*o)) {
		snprintf(err, errlen, "option '--%s' takes no value", (*o)->name);
		return PT_CONFIG_USAGE;
	}
	if (!attached && takes_value(*o)) {
		if (cu->i >= cu->argc) {
			snprintf(err, errlen, "option '--%s' needs a value", (*o)->name);
			return PT_CONFIG_USAGE;
		}
		attached = cu->argv[cu->i++];
	}
	*val = attached;
	return ARG_OPTION;
}

/* First pass: --help, --version and --config, before anything else is applied. Stops at
 * the first malformed argument (the second pass reports it). */
static int first_pass(struct pt_server_config *c, int argc, char **argv, char *err,
		      size_t errlen)
{
	struct cursor cu = { argc, 1, argv, false };
	const char *config = NULL, *val;
	const struct opt *o;
	char scratch[8];
	int r;

	while ((r = next_arg(&cu, &o, &val, scratch, sizeof(scratch))) > ARG_END) {
		if (r != ARG_OPTION)
			continue;
		if (o->kind == K_HELP) {
			pt_config_usage(stdout);
			return 1;
		}
		if (o->kind == K_VERSION) {
			printf("portico %s\n", PT_VERSION);
			return 1;
		}
		if (o->kind == K_CONFIG || o->kind == K_CHECK)
			config = val;
		c->check_only |= o->kind == K_CHECK;
	}
	return config ? pt_config_parse_file(c, config, err, errlen) : 0;
}

int pt_config_parse_args(struct pt_server_config *c, int argc, char **argv, char *err,
			 size_t errlen)
{
	struct cursor cu = { argc, 1, argv, false };
	bool list_seen[NOPTS] = { false }, docroot_seen = false;
	const struct opt *o;
	const char *val;
	char msg[200];
	int r;

	pt_config_defaults(c);
	r = first_pass(c, argc, argv, err, errlen);
	if (r != 0)
		return r;
	while ((r = next_arg(&cu, &o, &val, err, errlen)) > ARG_END) {
		if (r == ARG_POSITIONAL) {
			if (docroot_seen) {
				snprintf(err, errlen, "unexpected argument '%s': only one DOCROOT",
					 pt__config_shown(val, msg, 64));
				return PT_CONFIG_USAGE;
			}
			docroot_seen = true;
			o = find_long("docroot", 7);
		} else if (o->kind <= K_CHECK) {
			continue;
		} else if ((is_list(o) || o->kind == K_SITE) && !list_seen[o - opts]) {
			list_seen[o - opts] = true; /* the command line replaces the file's list */
			if (o->kind == K_SITE)
				pt_site_clear(&c->top, o->name);
			else
				*list_count(c, o) = 0;
		}
		if (apply(c, o, val, msg, sizeof(msg)) < 0) {
			snprintf(err, errlen, "%s%s: %s", r == ARG_POSITIONAL ? "" : "--",
				 r == ARG_POSITIONAL ? "DOCROOT" : o->name, msg);
			return PT_CONFIG_USAGE;
		}
	}
	if (r < 0)
		return r;
	if (c->nlisten == 0 && c->nlisten_tls == 0)
		strcpy(c->listen[c->nlisten++], PT_CONFIG_DEFAULT_LISTEN);
	if (c->proxy_protocol && !*c->trusted_proxies) {
		snprintf(err, errlen, "--proxy-protocol needs --trusted-proxies CIDR[,CIDR...]: "
			 "the addresses of the balancers allowed to send the PROXY header");
		return PT_CONFIG_USAGE;
	}
	return 0;
}

#define HELP_COL 34   /* where the help text starts */
#define HELP_WIDTH 79 /* and where it wraps */

/* Prints text from column HELP_COL, wrapped at word boundaries. */
static void usage_wrap(FILE *f, const char *h)
{
	int col = HELP_COL;

	while (*h) {
		int w = (int)strcspn(h, " ");

		if (col > HELP_COL && col + 1 + w > HELP_WIDTH) {
			fprintf(f, "\n%-*s", HELP_COL, "");
			col = HELP_COL;
		} else if (col > HELP_COL) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", w, h);
		col += w;
		h += w;
		h += *h == ' ';
	}
	fputc('\n', f);
}

void pt_config_usage(FILE *f)
{
	fputs("Usage: portico [OPTIONS] [DOCROOT]\n"
	      "Serve the files under DOCROOT (default: the current directory) over HTTP/1.1,\n"
	      "and over HTTPS with --listen-tls.\n"
	      "\nOptions:\n", f);
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		char left[64];
		const char *h = o->help;

		snprintf(left, sizeof(left), "  %c%c%s--%s%s%s", o->shortname ? '-' : ' ',
			 o->shortname ? o->shortname : ' ', o->shortname ? ", " : "  ", o->name,
			 o->meta ? " " : "", o->meta ? o->meta : "");
		fprintf(f, "%-*s", HELP_COL, left);
		if (strlen(left) >= HELP_COL)
			fprintf(f, "\n%-*s", HELP_COL, "");
		usage_wrap(f, h);
	}
	fputs("\nDurations (SEC) are seconds and may have up to three decimals (0.5).\n"
	      "Sizes (BYTES) may end in k, m or g (1024, 1024^2, 1024^3).\n"
	      "On/off options also accept --NAME=on|off.\n"
	      "A config file (-c) holds the same settings, one \"NAME VALUE\" per line,\n"
	      "without the leading dashes; '#' starts a comment line. The command line\n"
	      "overrides the file. The file may group per-site settings in host blocks,\n"
	      "\"host NAME... {\" ... \"}\", chosen by the request's Host (see portico(1)).\n"
	      "Exit status: 0 after a normal stop, 1 when the docroot cannot be opened or\n"
	      "the server cannot start, 2 for a bad option or value (or a config file that\n"
	      "--check-config finds bad).\n", f);
}
