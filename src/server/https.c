/*
 * HTTPS in the portico program (see https.h). The context is built from the configuration
 * alone, so a reload reads the same file names again: replacing the files and sending SIGHUP
 * is how certificates are renewed. The engine swaps contexts atomically and keeps the old
 * one when the new files are bad, so a failed reload changes nothing.
 */
#include "server/https.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void pt_https_tls_config(const struct pt_server_config *c, struct pt_tls_cert *certs,
			 struct pt_tls_config *tc)
{
	const char *cf[PT_CONFIG_MAX_ALL_CERTS], *kf[PT_CONFIG_MAX_ALL_CERTS];
	int n = pt_config_cert_pairs(c, cf, kf);

	pt_tls_config_init(tc);
	for (int i = 0; i < n; i++)
		certs[i] = (struct pt_tls_cert){ cf[i], kf[i] };
	tc->certs = certs;
	tc->ncerts = n > 0 ? (unsigned)n : 0;     /* -E2BIG was refused by check_tls */
	tc->alpn = c->http2 ? "h2,http/1.1" : "http/1.1";   /* HTTP/2 preferred by ALPN */
	tc->min_version = c->tls_min_version;
	tc->max_version = c->tls_max_version;
	tc->handshake_timeout_ms = c->header_timeout_ms;
	tc->ktls = true;                          /* used only where the kernel probe succeeds */
}

pt_tls_t *pt_https_create(const struct pt_server_config *c, char *err, size_t errlen)
{
	struct pt_tls_cert certs[PT_CONFIG_MAX_ALL_CERTS];
	struct pt_tls_config tc;

	pt_https_tls_config(c, certs, &tc);
	return pt_tls_create(&tc, err, errlen);
}

int pt_https_reload(pt_tls_t *t, const struct pt_server_config *c, char *err, size_t errlen)
{
	struct pt_tls_cert certs[PT_CONFIG_MAX_ALL_CERTS];
	struct pt_tls_config tc;

	pt_https_tls_config(c, certs, &tc);
	return pt_tls_reload(t, &tc, err, errlen);
}

/* The host of an authority the parser accepted: an IP-literal in brackets, or up to ':'. */
static size_t host_len(const char *a, size_t n)
{
	const char *end;

	if (n && a[0] == '[') {
		end = memchr(a, ']', n);
		return end ? (size_t)(end - a) + 1 : 0;
	}
	end = memchr(a, ':', n);
	return end ? (size_t)(end - a) : n;
}

int pt_https_location(struct pt_http_str authority, struct pt_http_str path,
		      struct pt_http_str query, unsigned port, char *out, size_t cap)
{
	size_t hn = authority.p ? host_len(authority.p, authority.n) : 0;
	char portbuf[8] = "";
	int n;

	if (hn == 0)
		return -EINVAL;
	if (port != 443)
		snprintf(portbuf, sizeof portbuf, ":%u", port & 0xffff);
	if (path.n == 0 || path.p[0] != '/')
		path = (struct pt_http_str){ "/", 1 };
	n = snprintf(out, cap, "https://%.*s%s%.*s%s%.*s", (int)hn, authority.p, portbuf,
		     (int)path.n, path.p, query.n ? "?" : "", (int)query.n, query.p ? query.p : "");
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}
