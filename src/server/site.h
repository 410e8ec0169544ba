/*
 * Sites of the portico program (site.c): the per-site settings of the config file and the
 * command line, and the host blocks that group them.
 *
 *   host example.org www.example.org {      a site, chosen by the request's Host
 *       root /srv/example                   (exact names, "*.example.org" wildcards,
 *       header *.html Cache-Control no-cache "default" for the rest)
 *       ...
 *   }
 *
 * The per-site settings are root (docroot), index, autoindex, follow-symlinks, cache-control,
 * header, error-page, fallback, redirect, compress, cors, and inside a block tls-cert and
 * tls-key (their pairs join the server's certificate list; SNI picks by the certificates' own
 * names). At the top level of the file and on the command line they set the server-wide
 * values, which every block inherits unless it sets its own: a block's header and redirect
 * rules come after the inherited ones, its error pages replace the inherited page of the
 * same status, and its other settings replace the inherited value.
 *
 * Everything here is pure (no I/O) apart from memory: a struct pt_site_conf owns its strings
 * and arrays, freed by pt_site_conf_free. Messages are one line, without the "FILE:LINE: "
 * prefix (the caller adds it). Thread: any, one caller per object.
 */
#ifndef PT_SERVER_SITE_H
#define PT_SERVER_SITE_H

#include <stdbool.h>
#include <stddef.h>

/* Which settings a site (a host block, or the top level) gave itself. */
enum {
	PT_SITE_ROOT = 1u << 0,
	PT_SITE_INDEX = 1u << 1,
	PT_SITE_AUTOINDEX = 1u << 2,
	PT_SITE_SYMLINKS = 1u << 3,
	PT_SITE_CACHE_CONTROL = 1u << 4,
	PT_SITE_FALLBACK = 1u << 5,
	PT_SITE_CORS = 1u << 6,
	PT_SITE_COMPRESS = 1u << 7,
};

/* What a header rule's PATTERN matches. */
enum pt_pattern_kind {
	PT_PAT_PREFIX = 0, /* "/assets/": paths that start with it */
	PT_PAT_EXACT,      /* "/robots.txt": that path */
	PT_PAT_GLOB,       /* "*.html": the file name (last segment), fnmatch(3) */
};

struct pt_header_rule {
	char *pattern, *name, *value;
	unsigned kind;                  /* enum pt_pattern_kind */
};

struct pt_redirect_rule {
	unsigned code;                  /* 301, 302, 303, 307 or 308 */
	char *from;                     /* a normalized path; ends in '/' for a prefix */
	char *to;                       /* a path or an absolute URL, as written */
};

struct pt_error_page {
	unsigned status;                /* 400..599 */
	char *path;                     /* normalized, beneath the site's root */
};

struct pt_site_conf {
	unsigned line;                  /* of "host ... {"; 0 for the top level */
	char **names;                   /* lower-case; "*.example.org" for wildcards */
	unsigned nnames;
	bool is_default;                /* "default" was among the names */
	unsigned set;                   /* PT_SITE_* given here (the rest is inherited) */
	char *root;                     /* blocks only (the top level uses the config's) */
	unsigned root_line;
	char *index;                    /* "" = none */
	bool autoindex, follow_symlinks;
	char *cache_control;            /* "" = none */
	char *fallback;                 /* normalized path, or "" = none */
	char **cors;                    /* "*" or origins; none = off */
	unsigned ncors;
	char **compress;                /* media types ("text/html"); none = off */
	unsigned ncompress;
	struct pt_header_rule *headers;
	unsigned nheaders;
	struct pt_redirect_rule *redirects;
	unsigned nredirects;
	struct pt_error_page *errors;
	unsigned nerrors;
	char **certs, **keys;           /* blocks only: tls-cert / tls-key, in order */
	unsigned ncerts, nkeys;
	unsigned *cert_lines;           /* the line of each tls-cert */
};

/* Whether name is a per-site setting (allowed inside a host block). Pure. */
bool pt_site_is_setting(const char *name);

/* Whether name is one of the rule settings that only a site holds (header, error-page,
 * fallback, redirect, compress, cors), which the option table passes to pt_site_apply. */
bool pt_site_is_rule(const char *name);

/* Applies one setting "name value" to s. value is the rest of the line (NULL when absent);
 * root, index, ... are accepted only for blocks (the top level keeps them in the option
 * table). line is recorded where a later check needs it. Returns 0, or -EINVAL with msg set
 * ("header: a field name ..."), or -ENOMEM. */
int pt_site_apply(struct pt_site_conf *s, const char *name, const char *value, unsigned line,
		  char *msg, size_t cap);

/* Forgets what s says for the rule setting name (the command line replaces the file's). */
void pt_site_clear(struct pt_site_conf *s, const char *name);

/* Starts a host block from the rest of a "host NAMES... {" line (names without the brace):
 * fills s->names / is_default. 0, or -EINVAL with msg set, or -ENOMEM. */
int pt_site_names(struct pt_site_conf *s, const char *names, unsigned line, char *msg,
		  size_t cap);

/* Checks that no name (or "default") is used by two of the n blocks: 0, or -EINVAL with msg
 * set and *line the line of the second block. */
int pt_site_check_names(const struct pt_site_conf *blocks, unsigned n, unsigned *line,
			char *msg, size_t cap);

/* Frees what s owns and zeroes it. NULL-safe on the fields. */
void pt_site_conf_free(struct pt_site_conf *s);

/* Whether the two describe the same settings (for tests and the fuzzer). */
bool pt_site_conf_equal(const struct pt_site_conf *a, const struct pt_site_conf *b);

/* Splits the next word of *p (blanks separate words; "..." quotes one, with \" and \\) into
 * out (cap bytes) and advances *p. 1 with a word, 0 at the end, -EINVAL for an unterminated
 * quote or a word longer than cap - 1. Pure. */
int pt_site_word(const char **p, char *out, size_t cap);

/* The glob, prefix and exact forms of a header PATTERN, for path (normalized, NUL-terminated)
 * whose last segment is base: whether it matches. Pure. */
bool pt_site_pattern_match(const struct pt_header_rule *r, const char *path, const char *base);

#endif
