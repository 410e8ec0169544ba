/*
 * The admin listener (--admin ADDR:PORT, admin.c): GET /metrics (Prometheus text), /status
 * (the live page), /status.json and /healthz, answered only to sources inside --admin-allow
 * (default loopback: 127.0.0.0/8 and ::1); any other source gets 403 and is counted.
 *
 * It is a server of its own (pt_http_server with one worker on the same backend) rather than
 * one more listener of the file server: the HTTP layer routes by path, not by listener, so a
 * shared server would answer /metrics on the public ports too. Being separate also keeps the
 * admin port answering when the data plane is saturated or at its connection limit, and its
 * connections out of the data plane's counters (a scrape does not count itself).
 */
#ifndef PT_SERVER_ADMIN_H
#define PT_SERVER_ADMIN_H

#include <portico/http.h>
#include "server/config.h"
#include "server/metrics.h"

struct pt_admin;

/* Creates the admin server for c->admin and binds it (so a busy port fails the start, before
 * privileges are dropped), reading counters from m, on the backend the data plane uses
 * ("io_uring" or "epoll"). NULL on failure with a message in err. Main thread. */
struct pt_admin *pt_admin_new(const struct pt_server_config *c, struct pt_metrics *m,
			      char *err, size_t cap);
/* Starts its worker. 0 or -errno. Main thread. */
int pt_admin_start(struct pt_admin *a);
/* The bound port (after port 0). Any thread. */
int pt_admin_port(const struct pt_admin *a);
/* Stops it (gracefully) and frees it. NULL is allowed. Main thread. */
void pt_admin_free(struct pt_admin *a);

#endif
