/*
 * hello: the smallest HTTP application on Portico. Every request gets "Hello, World!".
 *
 *   hello [-l ADDR:PORT] [-w WORKERS]
 *
 * Prints "listening on ADDR:PORT" when ready; SIGINT/SIGTERM stop it gracefully (Windows:
 * Ctrl+C, or the end of standard input).
 */
#include <portico/http.h>
#include "stop.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hello(pt_http_req_t *r, void *arg)
{
	static const char body[] = "Hello, World!";
	static const struct pt_http_header h[] = { { "Content-Type", "text/plain" } };
	struct pt_http_chunk c = { .kind = PT_HTTP_CHUNK_MEM, .mem = { body, sizeof body - 1 } };

	/* static memory: no copy needed, and the send needs no callback */
	pt_http_respond(r, 200, NULL, h, 1, &c, 1, 0, NULL, NULL);
}

int main(int argc, char **argv)
{
	struct pt_http_config cfg;
	const char *addr = "127.0.0.1:8080";
	int err;

	pt_http_config_init(&cfg);
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "-l"))
			addr = argv[i + 1];
		else if (!strcmp(argv[i], "-w"))
			cfg.engine.workers = (unsigned)atoi(argv[i + 1]);
		else {
			fprintf(stderr, "usage: hello [-l ADDR:PORT] [-w WORKERS]\n");
			return 2;
		}
	}
	stop_prepare();

	pt_http_server_t *s = pt_http_server_create(&cfg, &err);
	if (!s) {
		fprintf(stderr, "hello: %s\n", strerror(-err));
		return 1;
	}
	int li = pt_http_listen(s, addr);
	if (li < 0 || pt_http_route(s, "/", hello, NULL, 0) < 0 || (err = pt_http_server_start(s)) < 0) {
		fprintf(stderr, "hello: cannot serve on %s: %s\n", addr, strerror(li < 0 ? -li : -err));
		pt_http_server_destroy(s);
		return 1;
	}
	printf("listening on %.*s:%d\n", (int)(strrchr(addr, ':') - addr), addr, pt_http_listen_port(s, li));
	fflush(stdout);
	stop_wait();
	pt_http_server_destroy(s);
	return 0;
}
