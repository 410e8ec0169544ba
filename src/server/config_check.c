/*
 * Checks of a parsed configuration (see config.h): against itself (the TLS settings agree)
 * and against the system (the docroot can be opened and entered). Kept apart from config.c,
 * which only turns text into a struct pt_server_config.
 */
#include "server/config.h"

#include <errno.h>
#include <fcntl.h>
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

int pt_config_check_tls(const struct pt_server_config *c, unsigned tls_listeners, char *err,
			size_t errlen)
{
	if (c->ntls_cert != c->ntls_key)
		return tls_error(err, errlen, "%u --tls-cert but %u --tls-key: give each "
				 "certificate its key, in the same order", c->ntls_cert,
				 c->ntls_key);
	if (tls_listeners && !c->ntls_cert)
		return tls_error(err, errlen, "--listen-tls needs a certificate and its key "
				 "(--tls-cert FILE --tls-key FILE)");
	if (c->redirect_https && !tls_listeners)
		return tls_error(err, errlen, "--redirect-https needs a --listen-tls address "
				 "to send clients to");
	return 0;
}

int pt_config_open_docroot(const struct pt_server_config *c, char *err, size_t errlen)
{
	int fd = open(c->docroot, O_RDONLY | O_DIRECTORY | O_CLOEXEC), e;

	if (fd < 0) {
		e = errno;
		snprintf(err, errlen, "docroot '%s': %s", c->docroot, strerror(e));
		return -e;
	}
	/* serving needs search permission, listing and index lookups need read (checked
	 * by the open above) */
	if (faccessat(fd, ".", X_OK, AT_EACCESS) < 0) {
		e = errno;
		snprintf(err, errlen, "docroot '%s': cannot enter the directory: %s", c->docroot,
			 strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}
