/*
 * Configuration changes of a running portico (reload.c): SIGHUP reloads the config file,
 * and --check-config checks one without serving it.
 */
#ifndef PT_SERVER_RELOAD_H
#define PT_SERVER_RELOAD_H

#include "server/config.h"
#include "server/files.h"

struct pt_reload {
	int argc;                           /* the command line, parsed again on each reload */
	char **argv;
	const struct pt_server_config *boot; /* the settings the server started with */
	const struct pt_mime *mime;
	unsigned workers;
	unsigned tls_listeners;             /* HTTPS listeners (0: no certificates are loaded) */
	pt_tls_t *tls;                      /* NULL without HTTPS */
	struct pt_files *files;
};

/* SIGHUP: reads the command line and the config file again and, if everything is good
 * (the settings parse, the TLS settings agree, every docroot opens, the certificates load),
 * makes the new sites current at once: requests that start afterwards use them, requests in
 * progress finish under the old ones. Otherwise nothing changes and the error log gets
 * "portico: reload failed, keeping the running configuration: FILE:LINE: reason".
 * Settings that need a restart (listen addresses, workers, limits, ...) are named in a
 * warning and keep their running values. Without a config file, only the certificates are
 * read again. Main thread, while the server runs. */
void pt_reload(struct pt_reload *r);

/* --check-config: checks c (parsed from the command line and FILE) against the system:
 * the TLS settings agree and the certificates load, every docroot opens. Prints
 * "portico: FILE: configuration OK (N sites)" to stdout and returns 0, or prints
 * "portico: FILE:LINE: reason" (or the reason alone when the setting did not come from the
 * file) to stderr and returns 2. Main thread. */
int pt_check_config(const struct pt_server_config *c);

#endif
