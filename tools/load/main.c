/*
 * portico-load: an HTTP load generator on Portico's engine (see load.h and --help).
 * main.c: options, the target, the run (start, sleep, stop), and the report.
 */
#include "load.h"
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

void report_print(const struct run *r, const struct stats *st, const struct hist *h, FILE *f);
int report_json(const struct run *r, const struct stats *st, const struct hist *h, FILE *f);

static const char usage_text[] =
"NAME\n"
"    portico-load - HTTP/1.1 and HTTP/2 load generator on the Portico engine\n"
"\n"
"SYNOPSIS\n"
"    portico-load [OPTIONS] URL [URL...]\n"
"\n"
"DESCRIPTION\n"
"    Opens -c connections from -t threads (one engine worker each, the connections split\n"
"    evenly) to the server of URL and keeps them busy for -d seconds: each connection sends\n"
"    its next request when a response completes (closed loop, as wrk does). Several URLs\n"
"    (same scheme, host and port) are requested in turn. At the end it prints a summary and,\n"
"    with --json, the same figures as JSON. Latency is measured from the loop iteration that\n"
"    sent a request to the one that completed its response (the engine's per-batch clock,\n"
"    microseconds), and kept in a log-linear histogram (128 buckets per power of two: every\n"
"    value within 0.8 %); with --new-conn it counts from the start of the connect. With\n"
"    --batch a response may wait up to --batch-us in the kernel before the loop sees it.\n"
"\n"
"OPTIONS\n"
"    -c, --connections N  connections in all (default 100)\n"
"    -t, --threads N      threads, i.e. engine workers (default 1)\n"
"    -d, --duration T     seconds, fractions allowed, or with a suffix s/m (default 10)\n"
"        --pipeline N     HTTP/1.1: keep N requests outstanding per connection (1..1024;\n"
"                         default 1: no pipelining)\n"
"        --new-conn       a new connection for every request (\"Connection: close\"; the\n"
"                         server closes first, so TIME_WAIT stays on its side). Over TLS the\n"
"                         worker's last session is offered (resumption).\n"
"        --h2             HTTP/2: h2 by ALPN on https URLs, h2c with prior knowledge on http\n"
"        --streams M      HTTP/2: concurrent streams per connection (1..1024; default 1)\n"
"    -H, --header 'K: V'  add a request header (repeatable, up to 32)\n"
"        --head           send HEAD instead of GET\n"
"        --batch N        io_uring: a worker with nothing to do sleeps until N completions\n"
"                         are ready or --batch-us has passed with at least one (fewer\n"
"                         wake-ups and system calls per request; needs kernel 6.12 for the\n"
"                         second condition, older kernels wait --batch-us at most). Default:\n"
"                         half a worker's connections, at most 64; 0 or 1:\n"
"                         wake at every completion (exact latencies)\n"
"        --batch-us US    see --batch (default 100; a latency can be up to this much longer\n"
"                         than the server took)\n"
"        --timeout MS     a request without progress for this long fails, its connection\n"
"                         is reset and opened again; also the connect timeout (default 5000)\n"
"        --json FILE      write the results as JSON to FILE (\"-\": standard output, and the\n"
"                         summary goes to standard error)\n"
"    -q, --quiet          no summary\n"
"    -h, --help           this text\n"
"\n"
"URL\n"
"    http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH; HOST is a name, an IPv4 address or\n"
"    [IPv6]. https: TLS 1.2/1.3, the certificate is not verified, SNI is sent for names.\n"
"\n"
"OUTPUT\n"
"    requests: responses completed within the run and their rate; sent: requests sent (some\n"
"    are still outstanding at the end); status classes; errors: connect (refused, timed out,\n"
"    TLS handshake failed), read (connection closed or reset with requests outstanding,\n"
"    stream reset), timeout, parse (malformed response), write; bytes: received on the\n"
"    sockets (ciphertext on TLS) and body bytes; latency: mean, p50, p90, p99, p99.9, max.\n"
"    The last line is \"Requests/sec: R\", as wrk prints it.\n"
"\n"
"EXIT STATUS\n"
"    0 when at least one response completed (errors, if any, are in the report, as wrk\n"
"    does), 1 when none did or the run could not start, 2 for bad usage.\n"
"\n"
"EXAMPLES\n"
"    portico-load -c 100 -t 1 -d 10 http://127.0.0.1:8080/hello.txt\n"
"    portico-load -c 16 --pipeline 16 http://127.0.0.1:8080/\n"
"    portico-load -c 50 --new-conn https://localhost:8443/\n"
"    portico-load -c 10 --h2 --streams 100 https://localhost:8443/index.html\n";

uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || errno || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_duration(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || !(v > 0) || !isfinite(v))
		return -1;
	if (*end == 'm' && !end[1])
		v *= 60;
	else if (*end && !(*end == 's' && !end[1]))
		return -1;
	*out = v;
	return 0;
}

/* scheme://host[:port]/path into o (the first URL sets the target; the others must match). */
static int parse_url(struct opts *o, const char *url, char *err, size_t cap)
{
	bool tls = !strncmp(url, "https://", 8);
	const char *p = url + (tls ? 8 : 7), *slash, *hend, *port = NULL;
	char host[256], portbuf[8];

	if (!tls && strncmp(url, "http://", 7))
		return snprintf(err, cap, "%s: not an http:// or https:// URL", url), -1;
	slash = strchr(p, '/');
	if (!slash)
		slash = p + strlen(p);
	if (*p == '[') {
		hend = memchr(p, ']', (size_t)(slash - p));
		if (!hend)
			return snprintf(err, cap, "%s: bad [IPv6] host", url), -1;
		port = hend + 1 < slash && hend[1] == ':' ? hend + 2 : NULL;
		p++;
	} else {
		hend = memchr(p, ':', (size_t)(slash - p));
		port = hend ? hend + 1 : NULL;
		if (!hend)
			hend = slash;
	}
	if (hend == p || (size_t)(hend - p) >= sizeof host || (port && (slash == port ||
	    (size_t)(slash - port) >= sizeof portbuf)))
		return snprintf(err, cap, "%s: bad host or port", url), -1;
	snprintf(host, sizeof host, "%.*s", (int)(hend - p), p);
	snprintf(portbuf, sizeof portbuf, "%.*s", port ? (int)(slash - port) : 0, port ? port : "");
	if (!port)
		strcpy(portbuf, tls ? "443" : "80");
	if (o->nurls == MAX_URLS)
		return snprintf(err, cap, "more than %u URLs", MAX_URLS), -1;
	if (o->nurls && (tls != o->tls || strcmp(host, o->host) || strcmp(portbuf, o->port)))
		return snprintf(err, cap, "%s: every URL must have the scheme, host and port of the first",
				url), -1;
	if (!o->nurls) {
		o->tls = tls;
		strcpy(o->host, host);
		strcpy(o->port, portbuf);
		snprintf(o->authority, sizeof o->authority, "%.*s", (int)(slash - (url + (tls ? 8 : 7))),
			 url + (tls ? 8 : 7));
	}
	o->urls[o->nurls++].path = strdup(*slash ? slash : "/");
	return 0;
}

static int resolve(struct opts *o, char *err, size_t cap)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int rc = getaddrinfo(o->host, o->port, &hints, &ai);

	if (rc)
		return snprintf(err, cap, "%s:%s: %s", o->host, o->port, gai_strerror(rc)), -1;
	memcpy(&o->sa, ai->ai_addr, ai->ai_addrlen);
	o->salen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* The HTTP/1.1 request bytes of every URL. */
static int build_requests(struct opts *o)
{
	for (unsigned i = 0; i < o->nurls; i++) {
		struct url *u = &o->urls[i];
		size_t cap = strlen(u->path) + strlen(o->authority) + 128;
		for (unsigned k = 0; k < o->nheaders; k++)
			cap += strlen(o->headers[k]) + 2;
		if (!(u->req = malloc(cap)))
			return -1;
		size_t n = (size_t)snprintf(u->req, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n%s",
					    o->head ? "HEAD" : "GET", u->path, o->authority,
					    o->new_conn ? "Connection: close\r\n" : "");
		for (unsigned k = 0; k < o->nheaders; k++)
			n += (size_t)snprintf(u->req + n, cap - n, "%s\r\n", o->headers[k]);
		n += (size_t)snprintf(u->req + n, cap - n, "\r\n");
		u->req_len = n;
	}
	return 0;
}

enum { O_PIPELINE = 256, O_NEWCONN, O_H2, O_STREAMS, O_TIMEOUT, O_JSON, O_HEAD, O_BATCH,
       O_BATCH_US };

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "connections", 1, 0, 'c' }, { "threads", 1, 0, 't' }, { "duration", 1, 0, 'd' },
		{ "pipeline", 1, 0, O_PIPELINE }, { "new-conn", 0, 0, O_NEWCONN }, { "h2", 0, 0, O_H2 },
		{ "streams", 1, 0, O_STREAMS }, { "header", 1, 0, 'H' }, { "head", 0, 0, O_HEAD },
		{ "timeout", 1, 0, O_TIMEOUT }, { "json", 1, 0, O_JSON }, { "quiet", 0, 0, 'q' },
		{ "help", 0, 0, 'h' }, { "batch", 1, 0, O_BATCH }, { "batch-us", 1, 0, O_BATCH_US },
		{ 0, 0, 0, 0 } };
	char err[512];
	int c;

	*o = (struct opts){ .conns = 100, .threads = 1, .pipeline = 1, .streams = 1,
			    .timeout_ms = 5000, .duration = 10, .batch = BATCH_AUTO, .batch_us = 100 };
	while ((c = getopt_long(argc, argv, "c:t:d:H:qh", lo, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case 'c': bad = parse_uint(optarg, 1, 1000000, &o->conns); break;
		case 't': bad = parse_uint(optarg, 1, 1024, &o->threads); break;
		case 'd': bad = parse_duration(optarg, &o->duration); break;
		case O_PIPELINE: bad = parse_uint(optarg, 1, PIPE_MAX, &o->pipeline); break;
		case O_STREAMS: bad = parse_uint(optarg, 1, PIPE_MAX, &o->streams); break;
		case O_TIMEOUT: bad = parse_uint(optarg, 10, 3600000, &o->timeout_ms); break;
		case O_BATCH: bad = parse_uint(optarg, 0, 1024, &o->batch); break;
		case O_BATCH_US: bad = parse_uint(optarg, 1, 1000000, &o->batch_us); break;
		case O_NEWCONN: o->new_conn = true; break;
		case O_H2: o->h2 = true; break;
		case O_HEAD: o->head = true; break;
		case O_JSON: o->json = optarg; break;
		case 'q': o->quiet = true; break;
		case 'H':
			bad = o->nheaders == MAX_HEADERS || !strchr(optarg, ':') || strpbrk(optarg, "\r\n");
			if (!bad)
				o->headers[o->nheaders++] = optarg;
			break;
		case 'h': fputs(usage_text, stdout); exit(0);
		default: return -1;
		}
		if (bad) {
			const char *name = NULL;
			for (const struct option *x = lo; x->name && !name; x++)
				name = x->val == c ? x->name : NULL;
			fprintf(stderr, "portico-load: bad value for -%s%s: %s\n", name ? "-" : "",
				name ? name : (char[]){ (char)c, 0 }, optarg);
			return -1;
		}
	}
	if (optind == argc) {
		fprintf(stderr, "portico-load: no URL\n");
		return -1;
	}
	for (; optind < argc; optind++)
		if (parse_url(o, argv[optind], err, sizeof err) < 0) {
			fprintf(stderr, "portico-load: %s\n", err);
			return -1;
		}
	if (o->conns < o->threads)
		o->threads = o->conns;
	if (o->batch == BATCH_AUTO) {
		/* per connection, not per request: one receive usually carries all the responses
		 * a pipelined or h2 connection had outstanding */
		unsigned q = (o->conns + o->threads - 1) / o->threads / 2;
		o->batch = q > BATCH_MAX ? BATCH_MAX : q;
	}
	if (o->batch < 2)
		o->batch = 0;
	if (o->pipeline > 1 && o->h2)
		fprintf(stderr, "portico-load: --pipeline is for HTTP/1.1; with --h2 use --streams\n");
	return 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int setup(struct run *r)
{
	struct opts *o = &r->o;
	char err[512];

	if (resolve(o, err, sizeof err) < 0 || build_requests(o) < 0 ||
	    (o->h2 && h2_setup(o) < 0)) {
		fprintf(stderr, "portico-load: %s\n", err);
		return -1;
	}
	if (o->tls && !(r->ssl_ctx = tls_client_ctx(o->h2, err, sizeof err))) {
		fprintf(stderr, "portico-load: %s\n", err);
		return -1;
	}
	if (!(r->workers = calloc(o->threads, sizeof *r->workers)))
		return -1;
	for (unsigned i = 0; i < o->threads; i++) {
		struct lworker *lw = &r->workers[i];
		lw->run = r;
		lw->index = i;
		lw->nconns = o->conns / o->threads + (i < o->conns % o->threads);
		hist_init(&lw->hist);
		if (!(lw->conns = calloc(lw->nconns, sizeof *lw->conns)))
			return -1;
		for (unsigned k = 0; k < lw->nconns; k++)
			lw->conns[k].lw = lw;
	}
	return 0;
}

static int engine_run(struct run *r)
{
	struct pt_engine_config cfg;
	int err;

	pt_engine_config_init(&cfg);
	cfg.workers = r->o.threads;
	cfg.recv_buf_size = 65536;     /* whole responses, large bodies in few receives */
	cfg.recv_buf_count = 256;
	cfg.shutdown_ms = 200;
	cfg.batch_wait = r->o.batch;
	cfg.batch_wait_us = r->o.batch_us;
	if (!(r->e = pt_engine_create(&cfg, &err)) || (err = pt_engine_start(r->e)) < 0) {
		fprintf(stderr, "portico-load: engine: %s\n", strerror(-err));
		return -1;
	}
	r->t_start_us = now_us();
	for (unsigned i = 0; i < r->o.threads; i++)
		pt_post(pt_engine_worker(r->e, i), &r->workers[i].post_start, lworker_start,
			&r->workers[i]);
	uint64_t end = r->t_start_us + (uint64_t)(r->o.duration * 1e6);
	for (uint64_t t; (t = now_us()) < end;) {
		struct timespec ts = { (time_t)((end - t) / 1000000u), (long)((end - t) % 1000000u) * 1000 };
		nanosleep(&ts, NULL);
	}
	r->t_stop_us = now_us();
	for (unsigned i = 0; i < r->o.threads; i++)
		pt_post(pt_engine_worker(r->e, i), &r->workers[i].post_stop, lworker_stop,
			&r->workers[i]);
	pt_engine_stop(r->e);           /* joins the workers: their statistics are final */
	return 0;
}

static void stats_add(struct stats *a, const struct stats *b)
{
	const uint64_t *s = (const uint64_t *)b;
	uint64_t *d = (uint64_t *)a;

	for (size_t i = 0; i < sizeof *a / sizeof(uint64_t); i++)
		d[i] += s[i];
}

int main(int argc, char **argv)
{
	static struct run run;
	struct stats st = { 0 };
	static struct hist h;

	signal(SIGPIPE, SIG_IGN);
	if (parse_opts(argc, argv, &run.o) < 0) {
		fprintf(stderr, "usage: portico-load [-c N] [-t N] [-d SEC] [--pipeline N] [--new-conn]"
				" [--h2 [--streams M]] [-H 'K: V'] [--batch N] [--json FILE] URL...  (--help)\n");
		return 2;
	}
	raise_nofile();
	if (setup(&run) < 0 || engine_run(&run) < 0)
		return 1;
	hist_init(&h);
	for (unsigned i = 0; i < run.o.threads; i++) {
		stats_add(&st, &run.workers[i].st);
		hist_merge(&h, &run.workers[i].hist);
	}
	bool json_stdout = run.o.json && !strcmp(run.o.json, "-");
	if (!run.o.quiet)
		report_print(&run, &st, &h, json_stdout ? stderr : stdout);
	if (run.o.json) {
		FILE *f = json_stdout ? stdout : fopen(run.o.json, "w");
		if (!f || report_json(&run, &st, &h, f) < 0 || (!json_stdout && fclose(f))) {
			fprintf(stderr, "portico-load: %s: %s\n", run.o.json, strerror(errno));
			return 1;
		}
	}
	pt_engine_destroy(run.e);
	return st.done ? 0 : 1;
}
