/*
 * The per-site rules applied to one request (rules.c): which redirect, error page, CORS
 * origin and compression apply. The handler (files.c) asks; nothing here sends anything.
 * A host block's own rules come before the ones it inherits (the first redirect that
 * matches wins); for header rules, which files.c applies in order with the later one
 * winning, the inherited ones come first (pt_rules_header_at).
 * All functions are pure: no allocation, any thread.
 */
#ifndef PT_SERVER_RULES_H
#define PT_SERVER_RULES_H

#include <portico/http.h>
#include "server/vhost.h"

/* The i-th header rule of site s (inherited ones first), or NULL past the end. */
const struct pt_header_rule *pt_rules_header_at(const struct pt_site *s, unsigned i);

/* The redirect for the normalized path norm: writes the Location (TO, then for a prefix rule
 * the rest of norm percent-encoded, then "?" and query when there is one) into out and
 * returns its length with *code set; 0 when no rule matches; -ENOSPC when cap is too small
 * (PT_RULES_LOCATION_MAX suffices). */
int pt_rules_redirect(const struct pt_site *s, const char *norm, struct pt_http_str query,
		      char *out, size_t cap, unsigned *code);

#define PT_RULES_LOCATION_MAX(norm_len, query_len) (4096 + 3 * (norm_len) + (query_len) + 2)

/* Percent-encodes the decoded path p (bytes that cannot stand in a path, and '%', '?', '#')
 * into out; returns the length, or -ENOSPC (3 * strlen(p) + 1 always suffices). */
int pt_rules_encode_path(const char *p, char *out, size_t cap);

/* The error page path of site s for status, or NULL. */
const char *pt_rules_error_page(const struct pt_site *s, unsigned status);

/* The Access-Control-Allow-Origin value for a request whose Origin field is origin (p NULL:
 * absent): "*", the configured origin equal to it, or NULL (CORS off, or not listed).
 * *vary is set when the answer depends on Origin (a list of origins). */
const char *pt_rules_cors(const struct pt_site *s, struct pt_http_str origin, bool *vary);

/* Whether site s compresses files of Content-Type mime ("text/html; charset=utf-8"):
 * its type matches a compress entry exactly or as "type/ *". */
bool pt_rules_compressible(const struct pt_site *s, const char *mime);

/* Whether the last segment of the normalized path has no extension (no '.' after its first
 * byte): such paths get the fallback (a single-page app's routes), others stay 404. */
bool pt_rules_no_extension(const char *norm);

#endif
