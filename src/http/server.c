/*
 * The HTTP server object: configuration and defaults, routes, listeners, lifecycle, and the
 * per-worker state (free lists, Date cache). Connections are handled in hconn.c, requests in
 * request.c, responses in response.c and hsend.c (see http_int.h for the map).
 */
#include "http/http_int.h"
#include "util/util.h"
#include "util/defaults.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

PT_API void pt_http_config_init(struct pt_http_config *cfg)
{
	if (cfg)
		memset(cfg, 0, sizeof *cfg);
}

static unsigned or_default(unsigned v, unsigned d)
{
	return v ? v : d;
}

static void defaults(struct pt_http_config *c)
{
	struct pt_http_timeouts *t = &c->timeouts;

	/* HTTP.SYS defaults (HTTP_TIMEOUT_LIMIT_INFO): 120 s each, MinSendRate 150 B/s */
	t->header_wait = or_default(t->header_wait, PT_DEFAULT_TIMEOUT_MS);
	t->idle_connection = or_default(t->idle_connection, PT_DEFAULT_TIMEOUT_MS);
	t->entity_body = or_default(t->entity_body, PT_DEFAULT_TIMEOUT_MS);
	t->drain_entity_body = or_default(t->drain_entity_body, PT_DEFAULT_TIMEOUT_MS);
	t->request_queue = or_default(t->request_queue, PT_DEFAULT_TIMEOUT_MS);
	t->min_send_rate = or_default(t->min_send_rate, PT_DEFAULT_MIN_SEND_RATE);
	if (!c->max_head)
		c->max_head = PT_DEFAULT_MAX_HEAD;
	if (!c->max_target)
		c->max_target = PT_DEFAULT_MAX_TARGET;
	c->max_headers = or_default(c->max_headers, PT_DEFAULT_MAX_HEADERS);
	if (!c->max_body)
		c->max_body = 1ull << 30;
	if (!c->max_drain)
		c->max_drain = 1u << 20;
	c->sync_threads = or_default(c->sync_threads, 4);
	c->queue_length = or_default(c->queue_length, PT_DEFAULT_QUEUE_LENGTH);
}

static int check(const struct pt_http_config *c)
{
	if (c->max_headers > 10000 || c->max_head > (64u << 20) || c->max_target > c->max_head ||
	    c->sync_threads > 1024 || c->queue_policy > PT_QUEUE_RESET || c->defer_accept_sec < 0)
		return -EINVAL;
	if (c->server_header && (strlen(c->server_header) > 100 || strpbrk(c->server_header, "\r\n")))
		return -EINVAL;
	if (c->h2c && !pt__h2_available())
		return -ENOTSUP;             /* a build without HTTP/2 (Windows) */
	return 0;
}

static void limits_from(struct pt_http_server *s)
{
	pt_parse_limits_default(&s->limits);
	s->limits.max_head = s->cfg.max_head;
	s->limits.max_target = s->cfg.max_target;
	s->limits.max_headers = s->cfg.max_headers;
	s->limits.max_body = s->cfg.max_body;
	if (s->limits.max_field > s->cfg.max_head)
		s->limits.max_field = s->cfg.max_head;
}

/* The grace period of a stop: 1 s unless set, never beyond the stop's own deadline. */
static void grace_from(struct pt_http_server *s)
{
	unsigned shutdown = s->cfg.engine.shutdown_ms ? s->cfg.engine.shutdown_ms : 5000;
	unsigned g = s->cfg.stop_grace_ms;

	g = g == PT_HTTP_GRACE_OFF ? 0 : g ? g : 1000;
	s->grace_ms = g < shutdown ? g : shutdown;
	if (!s->cfg.engine.stop_grace_ms)          /* TLS handshakes in progress: the same */
		s->cfg.engine.stop_grace_ms = s->grace_ms ? s->grace_ms : 1;
}

PT_API pt_http_server_t *pt_http_server_create(const struct pt_http_config *cfg, int *err)
{
	int dummy, rc;
	struct pt_http_server *s = calloc(1, sizeof *s);

	err = err ? err : &dummy;
	if (!s) {
		*err = -ENOMEM;
		return NULL;
	}
	if (cfg)
		s->cfg = *cfg;
	defaults(&s->cfg);
	if ((rc = check(&s->cfg)) < 0)
		goto fail;
	limits_from(s);
	grace_from(s);
	const char *name = s->cfg.server_header ? s->cfg.server_header : "portico";
	if (*name)
		s->server_line_len = (size_t)snprintf(s->server_line, sizeof s->server_line,
						      "Server: %s\r\n", name);
	if ((rc = pt__fragcache_init(s)) < 0)
		goto fail;
	s->cfg.engine.conn_area = sizeof(struct hconn);   /* no allocation per connection */
	_Static_assert(sizeof(struct hconn) <= 48, "an idle HTTP/1.1 connection's state grew (issue 19)");
	if (!(s->e = pt_engine_create(&s->cfg.engine, &rc)))
		goto fail;
	pt_engine_set_user(s->e, s);
	size_t hwsize = pt_engine_workers(s->e) * sizeof *s->hw;   /* a multiple of 64 */
	if (!(s->hw = pt__aligned_alloc(_Alignof(struct hworker), hwsize))) {
		rc = -ENOMEM;
		goto fail;
	}
	memset(s->hw, 0, hwsize);
	for (unsigned i = 0; i < pt_engine_workers(s->e); i++)
		s->hw[i].s = s;
	*err = 0;
	return s;
fail:
	if (s->e)
		pt_engine_destroy(s->e);
	pt__fragcache_free(s);
	free(s);
	*err = rc;
	return NULL;
}

struct hworker *pt__hw(struct pt_http_server *s, pt_conn_t *c)
{
	return &s->hw[pt_worker_index(pt_conn_worker(c))];
}

static int on_accept(pt_conn_t *c, void *arg)
{
	struct pt_http_server *s = arg;
	const char *alpn = pt_conn_alpn(c);

	/* a silent client is dropped; the wait runs from accept (a TLS handshake counts) */
	unsigned age = pt_conn_age_ms(c), wait = s->cfg.timeouts.header_wait;
	pt_conn_set_timeout(c, age < wait ? wait - age : 1);
	if (alpn && !strcmp(alpn, "h2"))
		return pt__h2_start(s, c, NULL, 0);
	pt__hconn_init(pt_conn_area(c), s, c);     /* the area is zeroed by the engine */
	return 0;
}

/* PROXY protocol: the header counts against the header wait, as a TLS handshake does. */
static void proxy_opts(const struct pt_http_server *s, struct pt_listen_opts *o)
{
	o->proxy_protocol = s->cfg.proxy_protocol;
	o->proxy_trusted = s->cfg.proxy_trusted;
	o->proxy_timeout_ms = s->cfg.timeouts.header_wait;
}

PT_API int pt_http_listen_tls(pt_http_server_t *s, const char *addr, pt_tls_t *tls)
{
	if (!s)
		return -EINVAL;
	struct pt_listen_opts o = { .on_accept = on_accept, .arg = s, .backlog = s->cfg.backlog,
				    .defer_accept_sec = s->cfg.defer_accept_sec, .tls = tls };
	proxy_opts(s, &o);
	return pt_engine_listen(s->e, addr, &o);
}

PT_API int pt_http_listen(pt_http_server_t *s, const char *addr)
{
	return pt_http_listen_tls(s, addr, NULL);
}

PT_API int pt_http_listen_fd_tls(pt_http_server_t *s, int fd, pt_tls_t *tls)
{
	if (!s)
		return -EINVAL;
	struct pt_listen_opts o = { .on_accept = on_accept, .arg = s, .tls = tls };
	proxy_opts(s, &o);
	return pt_engine_listen_fd(s->e, fd, &o);
}

PT_API int pt_http_listen_fd(pt_http_server_t *s, int fd)
{
	return pt_http_listen_fd_tls(s, fd, NULL);
}

PT_API int pt_http_listen_port(pt_http_server_t *s, int idx)
{
	return s ? pt_engine_listen_port(s->e, idx) : -EINVAL;
}

PT_API int pt_http_route(pt_http_server_t *s, const char *prefix, pt_http_handler_fn fn,
			 void *arg, unsigned flags)
{
	if (!s || !prefix || prefix[0] != '/' || !fn || (flags & ~PT_ROUTE_SYNC))
		return -EINVAL;
	size_t len = strlen(prefix);
	unsigned at = 0;
	for (; at < s->nroutes; at++) {
		if (s->routes[at].len == len && !memcmp(s->routes[at].prefix, prefix, len))
			return -EEXIST;
		if (s->routes[at].len < len)
			break;
	}
	struct pt_route *v = realloc(s->routes, (s->nroutes + 1) * sizeof *v);
	if (!v)
		return -ENOMEM;
	s->routes = v;
	char *copy = strdup(prefix);
	if (!copy)
		return -ENOMEM;
	memmove(&v[at + 1], &v[at], (s->nroutes - at) * sizeof *v);
	v[at] = (struct pt_route){ copy, len, fn, arg, flags };
	s->nroutes++;
	return 0;
}

/* Routes are sorted longest first, so the first match is the longest prefix. */
const struct pt_route *pt__route_find(const struct pt_http_server *s, struct pt_slice path)
{
	for (unsigned i = 0; i < s->nroutes; i++) {
		const struct pt_route *r = &s->routes[i];
		if (r->len <= path.n && !memcmp(r->prefix, path.p, r->len))
			return r;
	}
	return NULL;
}

PT_API int pt_http_server_start(pt_http_server_t *s)
{
	if (!s)
		return -EINVAL;
	int err = pt__sync_start(s);
	if (err < 0)
		return err;
	return pt_engine_start(s->e);
}

static void goaway_step0(pt_worker_t *w, void *arg)
{
	pt__h2_goaway_all(arg, 0);
}

static void goaway_step1(pt_worker_t *w, void *arg)
{
	pt__h2_goaway_all(arg, 1);
}

static void h2_goaway_step(struct pt_http_server *s, int step)
{
	for (unsigned i = 0; i < pt_engine_workers(s->e); i++)
		pt_post(pt_engine_worker(s->e, i), &s->hw[i].goaway_post[step],
			step ? goaway_step1 : goaway_step0, &s->hw[i]);
}

/* The stop (http.h): from here on every response head says Connection: close (hsend.c); the
 * engine closes the listeners and tells each connection (on_stop): HTTP/1.1 ones finish their
 * request or wait out the grace period (timeouts.c), HTTP/2 ones end by HTTP/2's graceful stop
 * (RFC 9113 6.8): a GOAWAY that still admits requests in flight, a round trip, then the final
 * GOAWAY naming the last stream processed; each closes when its streams are done (h2.c), so a
 * download in progress completes. The engine's deadline (shutdown_ms) bounds all of it. */
static void stop_begin(struct pt_http_server *s)
{
	bool h2 = atomic_load(&s->h2_conns) > 0;

	if (h2)
		h2_goaway_step(s, 0);
	pt_engine_stop_begin(s->e);
	if (h2) {
		usleep(100 * 1000);
		h2_goaway_step(s, 1);
	}
}

PT_API int pt_http_server_stop(pt_http_server_t *s)
{
	if (!s)
		return -EINVAL;
	if (!atomic_exchange(&s->stopping, true))
		stop_begin(s);
	int err = pt_engine_stop(s->e);
	pt__sync_stop(s);
	return err;
}

void pt__hworker_free(struct hworker *hw)
{
	pt__req_pool_free(hw);
	pt__rcache_free(hw);
	pt__h2_worker_free(hw);
	free(hw->h2mem);
	hw->h2mem = NULL;
}

PT_API void pt_http_server_destroy(pt_http_server_t *s)
{
	if (!s)
		return;
	pt_http_server_stop(s);
	for (unsigned i = 0; i < pt_engine_workers(s->e); i++)
		pt__hworker_free(&s->hw[i]);
	pt_engine_destroy(s->e);
	for (unsigned i = 0; i < s->nroutes; i++)
		free(s->routes[i].prefix);
	free(s->routes);
	pt__aligned_free(s->hw);
	pt__fragcache_free(s);
	free(s);
}

PT_API pt_engine_t *pt_http_server_engine(pt_http_server_t *s)
{
	return s ? s->e : NULL;
}

static const unsigned reject_status[PT_HTTP_REJ__COUNT] = {
	400, 413, 414, 431, 501, 503, 505, 0
};

PT_API unsigned pt_http_reject_status(unsigned index)
{
	return index < PT_HTTP_REJ__COUNT ? reject_status[index] : 0;
}

PT_API unsigned pt_http_reject_index(unsigned status)
{
	for (unsigned i = 0; i < PT_HTTP_REJ_OTHER; i++)
		if (reject_status[i] == status)
			return i;
	return PT_HTTP_REJ_OTHER;
}

void pt__count_reject(struct hworker *hw, unsigned status)
{
	pt__hw_count(&hw->cnt.rejected[pt_http_reject_index(status)]);
}

PT_API int pt_http_server_counters(const pt_http_server_t *s, int i, struct pt_http_counters *out)
{
	unsigned n = s ? pt_engine_workers(s->e) : 0;

	if (!s || !out || i < -1 || (i >= 0 && (unsigned)i >= n))
		return -EINVAL;
	memset(out, 0, sizeof *out);
	uint64_t *dst = (uint64_t *)out;
	for (unsigned k = 0; k < n; k++) {
		if (i >= 0 && (unsigned)i != k)
			continue;
		const uint64_t *src = (const uint64_t *)&s->hw[k].cnt;
		for (size_t j = 0; j < sizeof *out / sizeof(uint64_t); j++)
			dst[j] += __atomic_load_n(&src[j], __ATOMIC_RELAXED);
	}
	return 0;
}
