/*
 * SIGHUP and --check-config (see reload.h). A reload is all or nothing: the new snapshot is
 * built (docroots opened) and the certificates loaded before anything is swapped, and
 * pt_tls_reload itself changes nothing when it fails.
 */
#include "server/reload.h"
#include "server/https.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reload_failed(const char *msg)
{
	fprintf(stderr, "portico: reload failed, keeping the running configuration: %s\n", msg);
}

/* The certificates alone, from the running configuration (no config file). */
static void reload_certs(struct pt_reload *r)
{
	char msg[512];

	if (!r->tls)
		return;
	if (pt_https_reload(r->tls, r->files->vh.current->conf, msg, sizeof msg) < 0)
		fprintf(stderr, "portico: TLS reload failed, keeping the current certificates: "
			"%s\n", msg);
	else
		fprintf(stderr, "portico: TLS certificates reloaded\n");
}

/* The new configuration, parsed and checked, or NULL after logging why. */
static struct pt_server_config *parse_again(struct pt_reload *r)
{
	struct pt_server_config *n = malloc(sizeof(*n));
	char msg[1024] = "";

	if (!n) {
		reload_failed("out of memory");
		return NULL;
	}
	if (pt_config_parse_args(n, r->argc, r->argv, msg, sizeof msg) != 0 ||
	    pt_config_check_tls(n, r->tls_listeners, msg, sizeof msg) < 0) {
		reload_failed(msg);
		pt_config_free(n);
		free(n);
		return NULL;
	}
	pt_config_static_diff(r->boot, n, msg, sizeof msg);
	if (*msg)
		fprintf(stderr, "portico: reload: %s changed: these take effect only after a "
			"restart\n", msg);
	return n;
}

void pt_reload(struct pt_reload *r)
{
	struct pt_server_config *n;
	struct pt_snapshot *s;
	char msg[PATH_MAX + 256];

	if (!*r->boot->config_file) {
		reload_certs(r);
		return;
	}
	if (!(n = parse_again(r)))
		return;
	if (!(s = pt_snapshot_build(n, r->mime, r->workers, msg, sizeof msg))) {
		reload_failed(msg);
		return;
	}
	if (r->tls && pt_https_reload(r->tls, s->conf, msg, sizeof msg) < 0) {
		reload_failed(msg);
		pt_snapshot_unref(s);
		return;
	}
	pt_vhosts_swap(&r->files->vh, s);
	pt_http_cache_flush(r->files->srv);        /* responses made under the old sites */
	fprintf(stderr, "portico: configuration reloaded from %s (%u site%s)\n",
		r->boot->config_file, s->nsites, s->nsites == 1 ? "" : "s");
}

/* The config file line of the tls-cert whose certificate or key msg names (0: none). */
static unsigned cert_line(const struct pt_server_config *c, const char *msg)
{
	for (unsigned i = 0; i < c->ntls_cert && i < c->ntls_key; i++)
		if (strstr(msg, c->tls_cert[i]) || strstr(msg, c->tls_key[i]))
			return c->tls_cert_line[i];
	for (unsigned h = 0; h < c->nhosts; h++)
		for (unsigned i = 0; i < c->hosts[h].ncerts && i < c->hosts[h].nkeys; i++)
			if (strstr(msg, c->hosts[h].certs[i]) || strstr(msg, c->hosts[h].keys[i]))
				return c->hosts[h].cert_lines[i];
	return 0;
}

/* The certificates of c load (a trial context, destroyed at once). The message of a file
 * that does not load gets the FILE:LINE of its tls-cert. */
static int check_certs(const struct pt_server_config *c, char *msg, size_t cap)
{
	char why[PATH_MAX + 128];
	unsigned line;
	pt_tls_t *t;

	if (pt_config_check_tls(c, c->nlisten_tls, msg, cap) < 0)
		return -1;
	if (!c->nlisten_tls)
		return 0;
	if (!(t = pt_https_create(c, why, sizeof why))) {
		line = cert_line(c, why);
		if (line)
			snprintf(msg, cap, "%s:%u: %s", c->config_file, line, why);
		else
			snprintf(msg, cap, "%s", why);
		return -1;
	}
	pt_tls_destroy(t);
	return 0;
}

int pt_check_config(const struct pt_server_config *c)
{
	char msg[2 * PATH_MAX + 512];        /* FILE:LINE: and a message naming another file */
	unsigned sites = c->nhosts ? c->nhosts : 1;

	if (pt_config_check_sites(c, msg, sizeof msg) < 0 || check_certs(c, msg, sizeof msg) < 0) {
		fprintf(stderr, "portico: %s\n", msg);
		return 2;
	}
	printf("portico: %s: configuration OK (%u site%s)\n", c->config_file, sites,
	       sites == 1 ? "" : "s");
	return 0;
}
