/*
 * Configuration of the portico program: defaults, the command line and the config file.
 *
 *   portico [OPTIONS] [DOCROOT]
 *
 * Every option has a long name; the config file (-c FILE) uses the same names without the
 * dashes, one "name value" per line ("name" alone for on/off options means on), with '#'
 * starting a comment line. The command line overrides the file, whatever the order of the
 * arguments; a repeatable option (--listen, --listen-tls, --tls-cert, --tls-key) given on the
 * command line replaces the file's lines of that name as a whole.
 * pt_config_usage() prints the option list (the --help text); docs/portico.1 documents the
 * same options.
 *
 * The config file may also hold host blocks ("host NAMES... { ... }", see site.h), and both the
 * file and the command line take the per-site rules (header, error-page, fallback, redirect,
 * compress, cors), which are kept in the top-level struct pt_site_conf.
 *
 * Units: durations are seconds, decimals allowed down to the millisecond ("0.5"), stored in
 * milliseconds; sizes are bytes with an optional k, m or g suffix (powers of 1024).
 * The configuration is filled once at startup and read-only afterwards (STYLE.md 7).
 */
#ifndef PT_SERVER_CONFIG_H
#define PT_SERVER_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <portico/engine.h>
#include "server/site.h"

#define PT_CONFIG_MAX_LISTEN 16        /* --listen addresses; --listen-tls has as many more */
#define PT_CONFIG_MAX_CERTS 16         /* --tls-cert/--tls-key pairs */
#define PT_CONFIG_ADDR_MAX 64          /* "[ffff:...:255.255.255.255]:65535" fits */
#define PT_CONFIG_DEFAULT_LISTEN "0.0.0.0:8080"
#define PT_CONFIG_RATE_OFF UINT_MAX    /* --min-send-rate off (HTTP.SYS: MAXULONG) */
#define PT_CONFIG_OFF UINT_MAX         /* any other number option that is "off" (--hsts) */
#define PT_CONFIG_FILE_MAX (1u << 20)  /* bigger config files are refused */
#define PT_CONFIG_MAX_ALL_CERTS 64     /* pairs of the top level and the host blocks together
                                          (the engine's limit) */

/* Exit status for a usage error (bad flag or value), as the program's contract says. */
#define PT_CONFIG_USAGE (-2)
/* pt__config_set: no such setting. */
#define PT_CONFIG_UNKNOWN 1

struct pt_server_config {
	/* what to serve, and where */
	char docroot[PATH_MAX];           /* "." */
	char listen[PT_CONFIG_MAX_LISTEN][PT_CONFIG_ADDR_MAX]; /* "IP:PORT" / "[IPv6]:PORT" */
	unsigned nlisten;                 /* the default address is added when neither
	                                     --listen nor --listen-tls is given */
	char listen_tls[PT_CONFIG_MAX_LISTEN][PT_CONFIG_ADDR_MAX]; /* HTTPS, same syntax */
	unsigned nlisten_tls;             /* 0 = no HTTPS */
	unsigned workers;                 /* 0 = one per CPU ("auto") */
	enum pt_backend_kind backend;     /* PT_BACKEND_AUTO */
	char user[64];                    /* "" = stay who we are */
	char config_file[PATH_MAX];       /* the file read, "" if none */

	/* files */
	char index[256];                  /* "index.html"; "" = none ("off") */
	bool autoindex;                   /* false */
	bool follow_symlinks;             /* false */
	char cache_control[256];          /* "" = no Cache-Control field */
	char access_log[PATH_MAX];        /* "" = off (default), "-" = stdout, else a path */
	char error_log[PATH_MAX];         /* "-" = stderr (default), else a path */

	/* limits (engine and HTTP layer) */
	unsigned max_conns;               /* 0 = 90% of RLIMIT_NOFILE ("auto") */
	uint64_t max_head;                /* request line + fields: 16 KiB */
	uint64_t max_target;              /* request-target: 8 KiB */
	unsigned max_headers;             /* 100 */
	uint64_t max_body;                /* request body: 1 MiB */
	uint64_t max_drain;               /* unread body discarded to keep a connection: 1 MiB */
	uint64_t send_queue;              /* unsent bytes per connection: 4 MiB */
	uint64_t worker_buffer;           /* copied send bytes per worker: 64 MiB */
	unsigned queue_length;            /* requests waiting for a thread: 1000 */
	unsigned backlog;                 /* listen(2) backlog: 4096 */
	enum pt_full_policy when_full;    /* PT_FULL_SHED */

	/* HTTP.SYS timeouts, in milliseconds (all >= 1) */
	unsigned header_timeout_ms;       /* HeaderWait: 120 s */
	unsigned idle_timeout_ms;         /* IdleConnection: 120 s */
	unsigned body_timeout_ms;         /* EntityBody: 120 s */
	unsigned drain_timeout_ms;        /* DrainEntityBody: 120 s */
	unsigned queue_timeout_ms;        /* RequestQueue: 120 s */
	unsigned min_send_rate;           /* MinSendRate, bytes/s: 150; PT_CONFIG_RATE_OFF */
	unsigned shutdown_ms;             /* graceful stop: 5 s */
	unsigned stop_grace_ms;           /* graceful stop: keep-alive wait for a last request, 1 s */
	unsigned defer_accept_sec;        /* TCP_DEFER_ACCEPT: 0 = off */

	/* TLS (pt_config_check_tls checks that these agree) */
	char tls_cert[PT_CONFIG_MAX_CERTS][PATH_MAX]; /* PEM chains; [0] is the default */
	unsigned ntls_cert;
	char tls_key[PT_CONFIG_MAX_CERTS][PATH_MAX];  /* PEM keys, tls_key[i] for tls_cert[i] */
	unsigned ntls_key;
	unsigned tls_min_version;         /* enum pt_tls_version: PT_TLS_1_2 */
	unsigned tls_max_version;         /* PT_TLS_1_3 */
	unsigned hsts;                    /* Strict-Transport-Security max-age on TLS responses:
	                                     PT_CONFIG_OFF (none) */
	bool redirect_https;              /* plaintext requests get a 301 to https: false */
	bool http2;                       /* ALPN offers h2 on HTTPS listeners: true */
	bool h2c;                         /* HTTP/2 with prior knowledge on plaintext: false */

	/* sites (site.h) */
	uint64_t compress_cache;          /* memory for compressed copies: 64 MiB */
	unsigned response_cache;          /* response cache entries per worker: 1024, 0 = off */
	struct pt_site_conf top;          /* the rules of the top level and the command line */
	struct pt_site_conf *hosts;       /* host blocks in file order (owned), or NULL */
	unsigned nhosts;

	/* observability (admin.h, metrics.h) */
	char admin[PT_CONFIG_ADDR_MAX];   /* admin listener "IP:PORT": "" = none (default) */
	char admin_allow[512];            /* CIDRs allowed on it, comma-separated: "" = loopback
	                                     (127.0.0.0/8 and ::1) */
	unsigned drain_delay_ms;          /* SIGTERM: /healthz answers 503 this long before the
	                                     graceful stop: 0 */
	char access_log_format[16];       /* "combined" (default) or "json" */

	/* behind a balancer (engine.h, "PROXY protocol") */
	bool proxy_protocol;              /* listeners expect a PROXY header (v1 or v2): false */
	char trusted_proxies[512];        /* CIDRs allowed to send it (required with it): "" */

	/* where settings came from, for messages ("FILE:LINE: ..."; 0 = not from the file) */
	unsigned docroot_line;
	unsigned tls_cert_line[PT_CONFIG_MAX_CERTS];
	bool check_only;                  /* --check-config FILE: check, then exit */
};

/* Fills c with the defaults above (nlisten 0: the default address is added by
 * pt_config_parse_args when nothing else is given). c must hold no allocation (fresh, or
 * after pt_config_free): the previous content is overwritten, not freed. */
void pt_config_defaults(struct pt_server_config *c);

/* Frees what c owns (host blocks, rules) and leaves it empty (not the defaults). Any
 * thread, one caller. */
void pt_config_free(struct pt_server_config *c);

/* Names the options whose values differ between a and b among those a reload cannot change
 * (listen addresses, workers, limits, timeouts, logs, user, ...: all but the per-site
 * settings, host blocks and the TLS certificates and protocols), comma-separated, into out;
 * "" when none. Pure. */
void pt_config_static_diff(const struct pt_server_config *a, const struct pt_server_config *b,
			   char *out, size_t cap);

/* Applies the setting name (the long option name, as in the file; value NULL for an on/off
 * setting given alone) to c. Returns 0, PT_CONFIG_USAGE with a message "invalid value ..."
 * in msg, or PT_CONFIG_UNKNOWN when name is not a setting of the file (unknown, or
 * command-line only such as config). For conffile.c. */
int pt__config_set(struct pt_server_config *c, const char *name, const char *value, char *msg,
		   size_t cap);

/* Parses the command line (argv[0] is the program name) into c, which it first fills with
 * the defaults (c must hold no allocation; free the result with pt_config_free); reads the config file named by -c/--config before applying the other
 * arguments, so that they override it. -h/--help and -V/--version print to stdout.
 * Returns 0 (c is ready), 1 (help or version printed: exit 0), or PT_CONFIG_USAGE (-2):
 * err holds a one-line message naming the bad flag, value or file line (print it and
 * exit 2). Does not check that the docroot exists (pt_config_open_docroot does). */
int pt_config_parse_args(struct pt_server_config *c, int argc, char **argv, char *err,
			 size_t errlen);

/* Applies the settings in the config file text[0..len) to c (name: the file name used in
 * messages): top-level lines, host blocks (appended to c->hosts), per-site rules. Returns 0
 * or PT_CONFIG_USAGE with err set to "NAME:LINE: message" (c may then hold part of the
 * file: free it). Pure apart from c, err and memory (conffile.c). */
int pt_config_parse_text(struct pt_server_config *c, const char *text, size_t len,
			 const char *name, char *err, size_t errlen);

/* Copies v into buf for a message: at most 48 bytes ("..." after), controls shown as '?'.
 * Returns buf. Pure. */
const char *pt__config_shown(const char *v, char *buf, size_t cap);

/* Reads the file at path (at most PT_CONFIG_FILE_MAX bytes) and applies it to c.
 * Returns 0 or PT_CONFIG_USAGE with err set (including when the file cannot be read). */
int pt_config_parse_file(struct pt_server_config *c, const char *path, char *err,
			 size_t errlen);

/* Opens c->docroot as the directory all files are served from (following a symlink to
 * it, which is how a docroot that is itself a symlink works). Returns the descriptor
 * (O_RDONLY|O_DIRECTORY|O_CLOEXEC; the caller owns it), or -errno with err set to a
 * message such as "docroot 'www': No such file or directory" (print it and exit 1). */
int pt_config_open_docroot(const struct pt_server_config *c, char *err, size_t errlen);

/* The same for any directory (a host block's root). */
int pt_config_open_dir(const char *dir, char *err, size_t errlen);

/* Checks what can be checked of c against the system, for --check-config and a reload: every
 * site's docroot opens, and its error pages and fallback exist as regular files (warnings
 * are not errors: a missing page falls back to the built-in text). 0, or -errno with err set
 * to "FILE:LINE: reason" when the setting came from the file. Main thread. */
int pt_config_check_sites(const struct pt_server_config *c, char *err, size_t errlen);

/* The certificate pairs of c: the top level's, then each host block's, in order, into certs
 * and keys (room for PT_CONFIG_MAX_ALL_CERTS; pointers into c). Returns their number, or
 * -E2BIG when there are more. Pure. */
int pt_config_cert_pairs(const struct pt_server_config *c, const char **certs,
			 const char **keys);

/* Checks that the TLS settings agree with each other: certificates and keys come in pairs,
 * HTTPS listeners (tls_listeners: --listen-tls addresses plus sockets from systemd) have a
 * certificate, and --redirect-https has an HTTPS port to send clients to. Does not read the
 * files (pt_tls_create does). 0, or -EINVAL with err set (print it and exit 1). Pure. */
int pt_config_check_tls(const struct pt_server_config *c, unsigned tls_listeners, char *err,
			size_t errlen);

/* Writes the --help text to f. */
void pt_config_usage(FILE *f);

#endif
