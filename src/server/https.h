/*
 * HTTPS in the portico program (https.c): the engine's TLS context built from the
 * configuration, at start and again on SIGHUP, and the Location of --redirect-https.
 */
#ifndef PT_SERVER_HTTPS_H
#define PT_SERVER_HTTPS_H

#include <portico/http.h>
#include "server/config.h"

/* Fills *tc from c: the certificate pairs of the top level and the host blocks (into certs,
 * which has room for PT_CONFIG_MAX_ALL_CERTS; see pt_config_cert_pairs),
 * the protocol versions, ALPN "http/1.1", the handshake deadline (the header timeout: a
 * handshake is the start of the first request head) and kTLS where the kernel has it.
 * tc points into certs and c, which must outlive it. Pure. */
void pt_https_tls_config(const struct pt_server_config *c, struct pt_tls_cert *certs,
			 struct pt_tls_config *tc);

/* The TLS context for c's HTTPS listeners, or NULL with a message in err that names the
 * file and the reason. The caller owns it (pt_tls_destroy, after the server). Main thread. */
pt_tls_t *pt_https_create(const struct pt_server_config *c, char *err, size_t errlen);

/* Reloads the certificates and keys named in c into t (SIGHUP): 0, or -errno with err set,
 * and t keeps the ones it had. Main thread, while the workers run. */
int pt_https_reload(pt_tls_t *t, const struct pt_server_config *c, char *err, size_t errlen);

/* The Location of a redirect to HTTPS: "https://" HOST [":" port] PATH ["?" QUERY], where
 * HOST is authority (the request's Host, or the authority of an absolute-form target) with
 * its port removed, port is the HTTPS port (left out when 443), and PATH and QUERY are the
 * request's as received (still percent-encoded; a path that does not start with '/', as in
 * "OPTIONS *", becomes "/"). authority must be what the HTTP parser accepted
 * (RFC 3986 host [":" port]). Writes a NUL-terminated string into out and returns its
 * length, or -EINVAL when there is no host (no Host field, or an empty one), -ENOSPC when
 * cap is too small (PT_HTTPS_LOCATION_MAX bytes always suffice). Pure. */
int pt_https_location(struct pt_http_str authority, struct pt_http_str path,
		      struct pt_http_str query, unsigned port, char *out, size_t cap);

#define PT_HTTPS_LOCATION_MAX(authority_len, path_len, query_len) \
	(sizeof("https://:65535/?") + (authority_len) + (path_len) + (query_len))

#endif
