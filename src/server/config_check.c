/*
 * Checks of a parsed configuration (see config.h): against itself (the TLS settings agree)
 * and against the system (the docroot can be opened and entered). Kept apart from config.c,
 * which only turns text into a struct pt_server_config.
 */
#include "server/config.h"
#include "server/path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

static int __attribute__((format(printf, 3, 4))) tls_error(char *err, size_t errlen,
							     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int pt_config_cert_pairs(const struct pt_server_config *c, const char **certs,
			 const char **keys)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->ntls_cert && i < c->ntls_key; i++, n++)
		certs[n] = c->tls_cert[i], keys[n] = c->tls_key[i];
	for (unsigned h = 0; h < c->nhosts; h++)
		for (unsigned i = 0; i < c->hosts[h].ncerts && i < c->hosts[h].nkeys; i++, n++) {
			if (n == PT_CONFIG_MAX_ALL_CERTS)
				return -E2BIG;
			certs[n] = c->hosts[h].certs[i], keys[n] = c->hosts[h].keys[i];
		}
	return (int)n;
}

/* The "FILE:LINE: " prefix of a setting read from the config file at line (none if 0). */
static const char *where(const struct pt_server_config *c, unsigned line, char *buf,
			 size_t cap)
{
	if (line && *c->config_file)
		snprintf(buf, cap, "%s:%u: ", c->config_file, line);
	else
		buf[0] = '\0';
	return buf;
}

/* Certificates and keys pair up within each host block too. */
static int check_block_pairs(const struct pt_server_config *c, char *err, size_t errlen)
{
	char at[PATH_MAX + 16];

	for (unsigned h = 0; h < c->nhosts; h++) {
		const struct pt_site_conf *b = &c->hosts[h];

		if (b->ncerts != b->nkeys)
			return tls_error(err, errlen, "%shost block: %u tls-cert but %u tls-key: "
					 "give each certificate its key, in the same order",
					 where(c, b->line, at, sizeof(at)), b->ncerts, b->nkeys);
	}
	return 0;
}

int pt_config_check_tls(const struct pt_server_config *c, unsigned tls_listeners, char *err,
			size_t errlen)
{
	const char *certs[PT_CONFIG_MAX_ALL_CERTS], *keys[PT_CONFIG_MAX_ALL_CERTS];
	int n;

	if (c->ntls_cert != c->ntls_key)
		return tls_error(err, errlen, "%u --tls-cert but %u --tls-key: give each "
				 "certificate its key, in the same order", c->ntls_cert,
				 c->ntls_key);
	if (check_block_pairs(c, err, errlen) < 0)
		return -EINVAL;
	if ((n = pt_config_cert_pairs(c, certs, keys)) < 0)
		return tls_error(err, errlen, "more than %d certificates (tls-cert), top level "
				 "and host blocks together", PT_CONFIG_MAX_ALL_CERTS);
	if (tls_listeners && !n)
		return tls_error(err, errlen, "--listen-tls needs a certificate and its key "
				 "(--tls-cert FILE --tls-key FILE)");
	if (c->redirect_https && !tls_listeners)
		return tls_error(err, errlen, "--redirect-https needs a --listen-tls address "
				 "to send clients to");
	return 0;
}

int pt_config_open_dir(const char *dir, char *err, size_t errlen)
{
	bool enter;
	int fd = pt_path_open_dir(dir, &enter);

	if (fd < 0)
		snprintf(err, errlen, "docroot '%s': %s%s", dir,
			 enter ? "cannot enter the directory: " : "", strerror(-fd));
	return fd;
}

int pt_config_open_docroot(const struct pt_server_config *c, char *err, size_t errlen)
{
	return pt_config_open_dir(c->docroot, err, errlen);
}

/* Opens the docroot of one site: root from line (0: the command line or the default). */
static int check_root(const struct pt_server_config *c, const char *root, unsigned line,
		      char *err, size_t errlen)
{
	char msg[PATH_MAX + 128], at[PATH_MAX + 16];
	int fd = pt_config_open_dir(root, msg, sizeof(msg));

	if (fd < 0) {
		snprintf(err, errlen, "%s%s", where(c, line, at, sizeof(at)), msg);
		return fd;
	}
	close(fd);
	return 0;
}

int pt_config_check_sites(const struct pt_server_config *c, char *err, size_t errlen)
{
	int r = 0;

	if (!c->nhosts)
		return check_root(c, c->docroot, c->docroot_line, err, errlen);
	for (unsigned h = 0; h < c->nhosts && r == 0; h++) {
		const struct pt_site_conf *b = &c->hosts[h];

		r = b->root ? check_root(c, b->root, b->root_line, err, errlen)
			    : check_root(c, c->docroot, c->docroot_line ? c->docroot_line
									: b->line, err, errlen);
	}
	return r;
}
