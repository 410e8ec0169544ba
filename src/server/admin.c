/*
 * The admin listener (see admin.h). One route, "/", on a server of one worker; the handler
 * checks the source against the allow-list first, then answers from the counters. Every
 * response is built in memory on the admin worker (a scrape costs the data plane's workers
 * nothing but the relaxed loads of their counters) and sent with PT_HTTP_BUFFER, except the
 * page, which is static.
 */
#include "server/admin.h"
#include "util/cidr.h"
#include "server/counter.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_ALLOW "127.0.0.0/8,::1"

struct pt_admin {
	pt_http_server_t *s;
	struct pt_metrics *m;
	struct pt_cidr allow[PT_CIDR_MAX];
	unsigned nallow;
	int li;                            /* listener index */
};

static const struct pt_http_header no_store = { "Cache-Control", "no-store" };

/* Sends a short text body with status. */
static void text(pt_http_req_t *r, unsigned status, const char *body, const char *xname,
		 const char *xvalue)
{
	struct pt_http_header h[3] = { { "Content-Type", "text/plain; charset=utf-8" }, no_store,
				       { xname, xvalue } };
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, strlen(body) } };

	if (pt_http_respond(r, status, NULL, h, xname ? 3 : 2, &c, 1, PT_HTTP_BUFFER, NULL,
			    NULL) < 0)
		pt_conn_close(pt_http_req_conn(r), PT_CLOSE_ABORT);
}

/* Sends what render writes, as type; 503 when out of memory. */
static void rendered(pt_http_req_t *r, struct pt_metrics *m, const char *type,
		     void (*render)(const struct pt_metrics *, FILE *))
{
	struct pt_http_header h[2] = { { "Content-Type", type }, no_store };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f) {
		text(r, 503, "503 Service Unavailable\n", "Retry-After", "1");
		return;
	}
	render(m, f);
	if (fclose(f) != 0) {
		free(buf);
		text(r, 503, "503 Service Unavailable\n", "Retry-After", "1");
		return;
	}
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { buf, len } };
	if (pt_http_respond(r, 200, NULL, h, 2, &c, 1, PT_HTTP_BUFFER, NULL, NULL) < 0)
		pt_conn_close(pt_http_req_conn(r), PT_CLOSE_ABORT);
	free(buf);                         /* BUFFER: copied before the call returned */
}

/* The status page, sent from the program's read-only data (no copy). */
static void page(pt_http_req_t *r)
{
	struct pt_http_header h[2] = { { "Content-Type", "text/html; charset=utf-8" }, no_store };
	size_t len;
	const char *html = pt_status_page(&len);
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { html, len } };

	if (pt_http_respond(r, 200, NULL, h, 2, &c, 1, 0, NULL, NULL) < 0)   /* static memory */
		pt_conn_close(pt_http_req_conn(r), PT_CLOSE_ABORT);
}

/* 200 while serving, 503 while a SIGTERM drain runs. */
static void healthz(pt_http_req_t *r, const struct pt_metrics *m)
{
	if (atomic_load_explicit(m->draining, memory_order_relaxed))
		text(r, 503, "draining\n", NULL, NULL);
	else
		text(r, 200, "ok\n", NULL, NULL);
}

/* Whether r's peer is inside the allow-list (a closed connection is not). */
static bool allowed(const struct pt_admin *a, pt_http_req_t *r)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	pt_conn_t *c = pt_http_req_conn(r);

	return c && pt_conn_peer(c, &ss, &len) == 0 &&
	       pt_cidr_match(a->allow, a->nallow, (const struct sockaddr *)&ss);
}

/* Whether the path p is exactly s. */
static bool is(struct pt_http_str p, const char *s)
{
	return p.n == strlen(s) && !memcmp(p.p, s, p.n);
}

/* The route handler (arg = struct pt_admin *). Admin worker. */
static void handle(pt_http_req_t *r, void *arg)
{
	struct pt_admin *a = arg;
	struct pt_http_str p = pt_http_req_path(r);
	enum pt_http_method m = pt_http_req_method(r);

	pt_count(&a->m->admin_requests, 1);
	if (!allowed(a, r)) {
		pt_count(&a->m->admin_refused, 1);
		text(r, 403, "403 Forbidden\n", NULL, NULL);
	} else if (m != PT_HTTP_GET && m != PT_HTTP_HEAD) {
		text(r, 405, "405 Method Not Allowed\n", "Allow", "GET, HEAD");
	} else if (is(p, "/metrics")) {
		rendered(r, a->m, "text/plain; version=0.0.4; charset=utf-8", pt_prom_render);
	} else if (is(p, "/status.json")) {
		rendered(r, a->m, "application/json", pt_status_json);
	} else if (is(p, "/status") || is(p, "/status/")) {
		page(r);
	} else if (is(p, "/healthz")) {
		healthz(r, a->m);
	} else if (is(p, "/")) {
		text(r, 302, "/status\n", "Location", "/status");
	} else {
		text(r, 404, "404 Not Found\n", NULL, NULL);
	}
}

/* The admin server's settings: one worker, few connections, short timeouts. */
static void admin_config(const struct pt_server_config *c, const struct pt_metrics *m,
			 struct pt_http_config *h)
{
	pt_http_config_init(h);
	h->engine.workers = 1;
	h->engine.backend = !strcmp(m->backend, "epoll") ? PT_BACKEND_EPOLL : PT_BACKEND_URING;
	h->engine.max_conns = 256;                 /* scrapers and browsers, not clients */
	h->engine.ring_entries = 256;
	h->engine.recv_buf_count = 64;
	h->engine.shutdown_ms = 1000;
	h->max_body = 4096;
	h->timeouts.header_wait = 10000;
	h->timeouts.idle_connection = 60000;       /* the page polls every second */
	h->timeouts.entity_body = 10000;
	h->timeouts.drain_entity_body = 10000;
	h->backlog = (int)c->backlog;
}

struct pt_admin *pt_admin_new(const struct pt_server_config *c, struct pt_metrics *m,
			      char *err, size_t cap)
{
	struct pt_admin *a = calloc(1, sizeof *a);
	struct pt_http_config hc;
	const char *allow = *c->admin_allow ? c->admin_allow : DEFAULT_ALLOW;
	int n, e = 0;

	if (!a) {
		snprintf(err, cap, "out of memory");
		return NULL;
	}
	if ((n = pt_cidr_parse_list(allow, a->allow, PT_CIDR_MAX)) < 0) {
		snprintf(err, cap, "--admin-allow '%s': bad list", allow);  /* checked before */
		free(a);
		return NULL;
	}
	a->nallow = (unsigned)n;
	a->m = m;
	admin_config(c, m, &hc);
	if (!(a->s = pt_http_server_create(&hc, &e)) ||
	    (e = pt_http_route(a->s, "/", handle, a, 0)) < 0 ||
	    (e = a->li = pt_http_listen(a->s, c->admin)) < 0) {
		snprintf(err, cap, "admin listener %s: %s", c->admin, strerror(-e));
		pt_admin_free(a);
		return NULL;
	}
	return a;
}

int pt_admin_start(struct pt_admin *a)
{
	return pt_http_server_start(a->s);
}

int pt_admin_port(const struct pt_admin *a)
{
	return pt_http_listen_port(a->s, a->li);
}

void pt_admin_free(struct pt_admin *a)
{
	if (!a)
		return;
	pt_http_server_destroy(a->s);
	free(a);
}
