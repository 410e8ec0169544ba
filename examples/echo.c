/*
 * echo: the smallest server on the Portico engine. Every byte a client sends comes back.
 *
 *   echo [-l ADDR:PORT] [-w WORKERS] [--backend uring|epoll|iocp|auto] [--max-conns N] [--when-full shed|pause] [--zc]
 *
 * Prints "listening on ADDR:PORT" when ready; SIGINT/SIGTERM stop it gracefully (Windows:
 * Ctrl+C, or the end of standard input).
 * Backpressure: when a client does not read, its send queue fills, pt_conn_send refuses with
 * -EAGAIN, and the server pauses receiving from that client until on_drain, so memory stays
 * bounded however much the client sends.
 */
#include <portico/engine.h>
#include "stop.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct held {                  /* bytes that could not be queued yet (backpressure) */
	size_t len;
	char data[];
};

static unsigned send_flags = PT_SEND_COPY;

static void on_data(pt_conn_t *c, const void *data, size_t len);

static int hold(pt_conn_t *c, const void *data, size_t len)
{
	struct held *h = malloc(sizeof *h + len);

	if (!h)
		return -ENOMEM;
	h->len = len;
	memcpy(h->data, data, len);
	pt_conn_set_user(c, h);
	return pt_conn_pause_recv(c);
}

static void on_data(pt_conn_t *c, const void *data, size_t len)
{
	int err = pt_conn_send(c, data, len, send_flags, NULL, NULL);

	if (err == -EAGAIN)
		err = hold(c, data, len);
	if (err < 0)
		pt_conn_close(c, PT_CLOSE_ABORT);
}

static void on_drain(pt_conn_t *c)
{
	struct held *h = pt_conn_user(c);

	if (!h)
		return;
	int err = pt_conn_send(c, h->data, h->len, send_flags, NULL, NULL);
	if (err == -EAGAIN)
		return;           /* still full: wait for the next drain */
	pt_conn_set_user(c, NULL);
	free(h);
	if (err < 0 || pt_conn_resume_recv(c) < 0)
		pt_conn_close(c, PT_CLOSE_ABORT);
}

static void on_eof(pt_conn_t *c, int err)
{
	pt_conn_close(c, err ? PT_CLOSE_ABORT : PT_CLOSE_GRACEFUL);
}

static void on_close(pt_conn_t *c)
{
	free(pt_conn_user(c));
}

static const struct pt_conn_ops echo_ops = {
	.on_data = on_data, .on_eof = on_eof, .on_drain = on_drain, .on_close = on_close,
};

static int on_accept(pt_conn_t *c, void *arg)
{
	pt_conn_set_ops(c, &echo_ops);
	return 0;
}


static void usage(FILE *f)
{
	fprintf(f, "usage: echo [-l ADDR:PORT] [-w WORKERS] [--backend uring|epoll|iocp|auto] [--max-conns N] [--when-full shed|pause] [--zc]\n");
}

int main(int argc, char **argv)
{
	struct pt_engine_config cfg;
	const char *addr = "127.0.0.1:7000";
	int err;

	pt_engine_config_init(&cfg);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--zc")) {
			send_flags = PT_SEND_ZC;   /* reference semantics: see the note below */
		} else if (!v) {
			fprintf(stderr, "echo: %s needs a value\n", a);
			return 2;
		} else if (!strcmp(a, "-l")) {
			addr = v, i++;
		} else if (!strcmp(a, "--max-conns")) {
			cfg.max_conns = (unsigned)atoi(v), i++;
		} else if (!strcmp(a, "--when-full")) {
			i++;
			if (!strcmp(v, "pause")) cfg.full_policy = PT_FULL_PAUSE;
			else if (strcmp(v, "shed")) { fprintf(stderr, "echo: bad --when-full '%s'\n", v); return 2; }
		} else if (!strcmp(a, "-w")) {
			cfg.workers = (unsigned)atoi(v), i++;
		} else if (!strcmp(a, "--backend")) {
			i++;
			if (!strcmp(v, "uring")) cfg.backend = PT_BACKEND_URING;
			else if (!strcmp(v, "epoll")) cfg.backend = PT_BACKEND_EPOLL;
			else if (!strcmp(v, "iocp")) cfg.backend = PT_BACKEND_IOCP;
			else if (strcmp(v, "auto")) { fprintf(stderr, "echo: bad --backend '%s'\n", v); return 2; }
		} else {
			fprintf(stderr, "echo: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		}
	}
	/* With --zc the receive buffer must outlive the send; the engine's receive buffers do not,
	 * so zero-copy here sends from a copy the example keeps: it exists to exercise the path. */
	if (send_flags == PT_SEND_ZC)
		send_flags = PT_SEND_COPY | PT_SEND_ZC;

	stop_prepare();

	pt_engine_t *e = pt_engine_create(&cfg, &err);
	if (!e) {
		fprintf(stderr, "echo: cannot create the engine: %s\n", strerror(-err));
		return 1;
	}
	struct pt_listen_opts lo = { .on_accept = on_accept };
	int li = pt_engine_listen(e, addr, &lo);
	if (li < 0 || (err = pt_engine_start(e)) < 0) {
		fprintf(stderr, "echo: cannot listen on %s: %s\n", addr, strerror(li < 0 ? -li : -err));
		pt_engine_destroy(e);
		return 1;
	}
	char host[64];
	snprintf(host, sizeof host, "%.*s", (int)(strrchr(addr, ':') - addr), addr);
	printf("listening on %s:%d (%s backend, %u workers)\n", host, pt_engine_listen_port(e, li),
	       pt_engine_backend(e), pt_engine_workers(e));
	fflush(stdout);
	stop_wait();
	pt_engine_stop(e);
	struct pt_counters n;                      /* what the governor did, for the record */
	pt_engine_counters(e, -1, &n);
	fprintf(stderr, "echo: accepts %llu shed %llu (silent %llu partial %llu idle %llu) "
		"accept_paused %llu accept_errors %llu fd_reserve_used %llu\n",
		(unsigned long long)n.accepts, (unsigned long long)n.shed,
		(unsigned long long)n.shed_silent, (unsigned long long)n.shed_partial,
		(unsigned long long)n.shed_idle, (unsigned long long)n.accept_paused,
		(unsigned long long)n.accept_errors, (unsigned long long)n.fd_reserve_used);
	pt_engine_destroy(e);
	return 0;
}
