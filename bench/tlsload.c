/*
 * tlsload: TLS handshake load for `make bench` scenarios T3 and T3r (issue 14).
 *
 * wrk and h2load keep the TLS session of a connection and resume it when they reconnect, so
 * they cannot measure full handshakes. This client keeps CONNS connections in flight (one epoll
 * thread, OpenSSL with non-blocking sockets); each makes a new TCP connection, a TLS handshake,
 * one GET with `Connection: close`, reads the whole response (status line, Content-Length, body),
 * waits for the server to close, and starts over.
 *
 *   -m full     every handshake is a full one: no session is ever offered (default)
 *   -m resume   each connection offers the newest session ticket its slot got, once each
 *   -m keep     keep-alive: one handshake per connection, then GETs without end (a check)
 *
 * The client verifies no certificate chain (that is client work a benchmark need not do) but
 * OpenSSL still checks the handshake signature, as every client must. Tickets the server sends
 * are accepted and, with -m full, dropped.
 *
 * Usage: tlsload -c CONNS -t SECONDS [-m full|resume|keep] [-p PATH] [-e EXPECTED_LEN]
 *                [-v 1.2|1.3] [-g GROUPS] [-s SNI] ADDR:PORT
 * Prints one line: BENCHJSON {"requests":N,"handshakes":H,"resumed":R,"rps":..,"errors":E,
 *   "non2xx":X,"p50_us":..,"p99_us":..,"hs_p50_us":..,"hs_p99_us":..,"protocol":"TLSv1.3",
 *   "cipher":..,"group":..,"fail_connect":..,"fail_handshake":..,"fail_io":..,"timeouts":..,
 *   "first_error":".."}
 * requests counts complete responses; with -m full/resume it equals the handshakes that carried
 * a complete response. p50/p99 run from connect() to the last byte of the body; hs_* from
 * connect() to the end of the handshake. Exit status 0 when it ran (errors are counted, not
 * fatal), 2 on bad usage or setup.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchutil.h"

#define HEAD_MAX 8192
#define MAX_SAMPLES 2000000
#define IO_TIMEOUT_NS (5ull * 1000000000ull)   /* a stage taking longer than this fails */
#define DRAIN_TIMEOUT_NS (2ull * 1000000000ull) /* waiting for the server's close */

enum mode { M_FULL, M_RESUME, M_KEEP };
enum state { ST_CONNECT, ST_HANDSHAKE, ST_SEND, ST_RECV, ST_DRAIN };

struct conn {
	int fd;
	int wait_out;                   /* the epoll interest now registered: EPOLLOUT or EPOLLIN */
	enum state st;
	SSL *ssl;
	SSL_SESSION *sess;              /* -m resume: the session to offer on the next connection */
	uint64_t t_conn, t_stage;
	size_t sent;
	char head[HEAD_MAX];
	size_t head_len;
	int in_body, status;
	long long body_left;
};

struct client {
	int ep;
	enum mode mode;
	struct sockaddr_in sa;
	SSL_CTX *ctx;
	const char *sni;
	char req[512];
	size_t req_len;
	long long expect_len;
	uint64_t requests, handshakes, resumed, non2xx;
	uint64_t fail_connect, fail_handshake, fail_io, timeouts, drain_timeouts;
	uint64_t *lat, *hs_lat;
	size_t nlat, nhs;
	char protocol[32], cipher[64], group[32], first_error[200];
};

static void note_error(struct client *C, const char *what)
{
	if (C->first_error[0])
		return;
	unsigned long e = ERR_peek_error();
	char buf[160] = "";
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(C->first_error, sizeof(C->first_error), "%s%s%s", what, buf[0] ? ": " : "", buf);
	for (char *p = C->first_error; *p; p++)    /* it goes into a JSON string */
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = ' ';
}

static void set_interest(struct client *C, struct conn *c, int out)
{
	if (c->wait_out == out)
		return;
	struct epoll_event ev = { .events = out ? EPOLLOUT : EPOLLIN, .data.ptr = c };
	epoll_ctl(C->ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->wait_out = out;
}

/* The SSL object stays with the slot and is reset for the next connection (SSL_clear is
 * cheaper than SSL_free + SSL_new); free_ssl: after a failure, start from a fresh one. */
static void conn_close(struct conn *c, int free_ssl)
{
	if (c->ssl && free_ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);           /* also removes it from the epoll set */
		c->fd = -1;
	}
}

static int conn_open(struct client *C, struct conn *c)
{
	int one = 1;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->t_conn = c->t_stage = now_ns();
	c->st = ST_CONNECT;
	c->head_len = 0;
	c->in_body = 0;
	c->sent = 0;
	if (connect(c->fd, (struct sockaddr *)&C->sa, sizeof(C->sa)) < 0 && errno != EINPROGRESS) {
		int err = -errno;
		close(c->fd);
		c->fd = -1;
		return err;
	}
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	epoll_ctl(C->ep, EPOLL_CTL_ADD, c->fd, &ev);
	c->wait_out = 1;
	return 0;
}

static void conn_restart(struct client *C, struct conn *c, int free_ssl)
{
	conn_close(c, free_ssl);
	for (int i = 0; i < 3; i++)
		if (conn_open(C, c) == 0)
			return;
	C->fail_connect++;
	note_error(C, "socket/connect failed at once");
}

static void conn_fail(struct client *C, struct conn *c, uint64_t *counter, const char *what)
{
	(*counter)++;
	note_error(C, what);
	ERR_clear_error();
	conn_restart(C, c, 1);
}

/* The head is complete at head[0..end): status and Content-Length. */
static int parse_head(struct conn *c, size_t end)
{
	c->status = 0;
	c->body_left = -1;
	if (end < 12 || strncmp(c->head, "HTTP/1.", 7) != 0)
		return -1;
	c->status = atoi(c->head + 9);
	for (char *p = c->head; p && p < c->head + end; p = memchr(p, '\n', c->head + end - p)) {
		p++;
		if (strncasecmp(p, "content-length:", 15) == 0)
			c->body_left = atoll(p + 15);
	}
	return c->body_left < 0 ? -1 : 0;
}

static void record(uint64_t *arr, size_t *n, uint64_t v)
{
	if (*n < MAX_SAMPLES)
		arr[(*n)++] = v;
}

static void response_done(struct client *C, struct conn *c)
{
	uint64_t t = now_ns();
	C->requests++;
	if (c->status < 200 || c->status > 299)
		C->non2xx++;
	record(C->lat, &C->nlat, t - c->t_conn);
	if (C->mode == M_KEEP) {
		c->t_conn = c->t_stage = t;
		c->st = ST_SEND;
		c->sent = 0;
		c->head_len = 0;
		c->in_body = 0;
		return;
	}
	c->st = ST_DRAIN;
	c->t_stage = t;
}

/* -m resume, when the server has closed: the newest ticket, used once (RFC 8446 C.4; OpenSSL's
 * client marks a TLS 1.3 session used once it resumed with it, as browsers do), so a server that
 * sends no new ticket on a resumed connection gets a full handshake next time. Taken at the end,
 * not after the response: a server may send its tickets after the response (Portico does). */
static void keep_session(struct conn *c)
{
	SSL_SESSION *s = SSL_get1_session(c->ssl);
	if (c->sess)
		SSL_SESSION_free(c->sess);
	c->sess = NULL;
	if (s && SSL_SESSION_is_resumable(s))
		c->sess = s;
	else if (s)
		SSL_SESSION_free(s);
}

/* Runs the connection as far as it goes without blocking. */
static void conn_step(struct client *C, struct conn *c)
{
	char buf[16384];
	for (;;) {
		int r, err;
		switch (c->st) {
		case ST_CONNECT: {
			int soerr = 0;
			socklen_t len = sizeof(soerr);
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
			if (soerr) {
				conn_fail(C, c, &C->fail_connect, strerror(soerr));
				return;
			}
			if (c->ssl && !SSL_clear(c->ssl)) {
				SSL_free(c->ssl);
				c->ssl = NULL;
			}
			if (!c->ssl) {
				c->ssl = SSL_new(C->ctx);
				if (c->ssl)
					SSL_set_read_ahead(c->ssl, 1);  /* fewer read calls */
			}
			if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
				conn_fail(C, c, &C->fail_handshake, "SSL_new");
				return;
			}
			SSL_set_tlsext_host_name(c->ssl, C->sni);
			/* SSL_clear keeps the last session: offer it only with -m resume */
			SSL_set_session(c->ssl, C->mode == M_RESUME ? c->sess : NULL);
			c->st = ST_HANDSHAKE;
			c->t_stage = now_ns();
			continue;
		}
		case ST_HANDSHAKE:
			r = SSL_connect(c->ssl);
			if (r == 1) {
				uint64_t t = now_ns();
				C->handshakes++;
				if (SSL_session_reused(c->ssl))
					C->resumed++;
				record(C->hs_lat, &C->nhs, t - c->t_conn);
				if (!C->protocol[0]) {
					int nid = SSL_get_negotiated_group(c->ssl);
					snprintf(C->protocol, sizeof(C->protocol), "%s",
						 SSL_get_version(c->ssl));
					snprintf(C->cipher, sizeof(C->cipher), "%s",
						 SSL_get_cipher_name(c->ssl));
					snprintf(C->group, sizeof(C->group), "%s",
						 nid > 0 && OBJ_nid2sn(nid) ? OBJ_nid2sn(nid) : "?");
				}
				c->st = ST_SEND;
				c->t_stage = t;
				continue;
			}
			err = SSL_get_error(c->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				set_interest(C, c, err == SSL_ERROR_WANT_WRITE);
				return;
			}
			conn_fail(C, c, &C->fail_handshake, "handshake failed");
			return;
		case ST_SEND:
			r = SSL_write(c->ssl, C->req, (int)C->req_len);
			if (r > 0) {
				c->st = ST_RECV;
				c->t_stage = now_ns();
				continue;
			}
			err = SSL_get_error(c->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				set_interest(C, c, err == SSL_ERROR_WANT_WRITE);
				return;
			}
			conn_fail(C, c, &C->fail_io, "write failed");
			return;
		case ST_RECV:
		case ST_DRAIN:
			r = SSL_read(c->ssl, buf, sizeof(buf));
			if (r <= 0) {
				err = SSL_get_error(c->ssl, r);
				if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
					set_interest(C, c, err == SSL_ERROR_WANT_WRITE);
					return;
				}
				if (c->st == ST_DRAIN) {        /* the server closed: done */
					ERR_clear_error();
					/* a clean end: else SSL_free marks the session not resumable */
					SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
					if (C->mode == M_RESUME)
						keep_session(c);
					conn_restart(C, c, 0);
					return;
				}
				conn_fail(C, c, &C->fail_io, "closed before the whole response");
				return;
			}
			if (c->st == ST_DRAIN) {
				conn_fail(C, c, &C->fail_io, "bytes after the response");
				return;
			}
			size_t off = 0;
			while (off < (size_t)r) {
				if (!c->in_body) {
					size_t n = (size_t)r - off;
					if (n > HEAD_MAX - c->head_len)
						n = HEAD_MAX - c->head_len;
					memcpy(c->head + c->head_len, buf + off, n);
					size_t scan = c->head_len > 3 ? c->head_len - 3 : 0;
					c->head_len += n;
					char *e = memmem(c->head + scan, c->head_len - scan, "\r\n\r\n", 4);
					if (!e) {
						if (c->head_len == HEAD_MAX) {
							conn_fail(C, c, &C->fail_io, "head too large");
							return;
						}
						off += n;
						continue;
					}
					size_t hend = (size_t)(e - c->head) + 4;
					off += n - (c->head_len - hend);   /* bytes after the head */
					if (parse_head(c, hend) < 0) {
						conn_fail(C, c, &C->fail_io, "bad response head");
						return;
					}
					if (C->expect_len >= 0 && c->status == 200 &&
					    c->body_left != C->expect_len) {
						conn_fail(C, c, &C->fail_io, "unexpected Content-Length");
						return;
					}
					c->in_body = 1;
				} else {
					long long n = (long long)((size_t)r - off);
					if (n > c->body_left)
						n = c->body_left;
					c->body_left -= n;
					off += (size_t)n;
				}
				if (c->in_body && c->body_left == 0) {
					if (off != (size_t)r) {
						conn_fail(C, c, &C->fail_io, "bytes beyond Content-Length");
						return;
					}
					response_done(C, c);
					break;
				}
			}
			continue;
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static long long pct(uint64_t *arr, size_t n, double p)
{
	if (!n)
		return -1;
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return (long long)(arr[i] / 1000);
}

static void usage(void)
{
	fprintf(stderr, "usage: tlsload -c CONNS -t SECONDS [-m full|resume|keep] [-p PATH] "
			"[-e EXPECTED_LEN] [-v 1.2|1.3] [-g GROUPS] [-s SNI] ADDR:PORT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct client C = { .expect_len = -1, .sni = "localhost" };
	int conns = 100, opt;
	double seconds = 5;
	const char *path = "/hello.txt", *groups = NULL, *version = NULL;

	while ((opt = getopt(argc, argv, "c:t:m:p:e:v:g:s:")) != -1) {
		switch (opt) {
		case 'c': conns = atoi(optarg); break;
		case 't': seconds = atof(optarg); break;
		case 'p': path = optarg; break;
		case 'e': C.expect_len = atoll(optarg); break;
		case 'v': version = optarg; break;
		case 'g': groups = optarg; break;
		case 's': C.sni = optarg; break;
		case 'm':
			if (!strcmp(optarg, "full"))
				C.mode = M_FULL;
			else if (!strcmp(optarg, "resume"))
				C.mode = M_RESUME;
			else if (!strcmp(optarg, "keep"))
				C.mode = M_KEEP;
			else
				usage();
			break;
		default: usage();
		}
	}
	if (optind != argc - 1 || conns <= 0 || seconds <= 0 || parse_addr(argv[optind], &C.sa))
		usage();
	signal(SIGPIPE, SIG_IGN);

	C.ctx = SSL_CTX_new(TLS_client_method());
	if (!C.ctx) {
		fprintf(stderr, "tlsload: SSL_CTX_new failed\n");
		return 2;
	}
	SSL_CTX_set_verify(C.ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(C.ctx, TLS1_2_VERSION);
	if (version) {
		int v = !strcmp(version, "1.2") ? TLS1_2_VERSION : !strcmp(version, "1.3") ? TLS1_3_VERSION : 0;
		if (!v)
			usage();
		SSL_CTX_set_min_proto_version(C.ctx, v);
		SSL_CTX_set_max_proto_version(C.ctx, v);
	}
	if (groups && !SSL_CTX_set1_groups_list(C.ctx, groups)) {
		fprintf(stderr, "tlsload: bad groups '%s'\n", groups);
		return 2;
	}
	/* the client's own cache is never used: -m resume keeps one session per slot itself */
	SSL_CTX_set_session_cache_mode(C.ctx, C.mode == M_RESUME ?
				       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE :
				       SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(C.ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_alpn_protos(C.ctx, (const unsigned char *)"\x08http/1.1", 9);   /* as browsers */

	char host[64];
	inet_ntop(AF_INET, &C.sa.sin_addr, host, sizeof(host));
	C.req_len = (size_t)snprintf(C.req, sizeof(C.req),
				     "GET %s HTTP/1.1\r\nHost: %s:%u\r\n%s\r\n", path, host,
				     ntohs(C.sa.sin_port),
				     C.mode == M_KEEP ? "" : "Connection: close\r\n");
	C.lat = malloc(MAX_SAMPLES * sizeof(uint64_t));
	C.hs_lat = malloc(MAX_SAMPLES * sizeof(uint64_t));
	struct conn *cs = calloc((size_t)conns, sizeof(*cs));
	C.ep = epoll_create1(EPOLL_CLOEXEC);
	if (!C.lat || !C.hs_lat || !cs || C.ep < 0) {
		fprintf(stderr, "tlsload: out of memory\n");
		return 2;
	}
	for (int i = 0; i < conns; i++) {
		cs[i].fd = -1;
		if (conn_open(&C, &cs[i]) < 0) {
			fprintf(stderr, "tlsload: connect: %s\n", strerror(errno));
			return 2;
		}
	}

	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), last_scan = t0;
	struct epoll_event evs[256];
	for (;;) {
		uint64_t now = now_ns();
		if (now >= end)
			break;
		int left_ms = (int)((end - now) / 1000000) + 1;
		int n = epoll_wait(C.ep, evs, 256, left_ms < 100 ? left_ms : 100);
		if (n < 0 && errno != EINTR) {
			perror("tlsload: epoll_wait");
			return 2;
		}
		for (int i = 0; i < n; i++)
			conn_step(&C, evs[i].data.ptr);
		now = now_ns();
		if (now - last_scan >= 100000000ull) {  /* stages that take too long */
			last_scan = now;
			for (int i = 0; i < conns; i++) {
				struct conn *c = &cs[i];
				uint64_t lim = c->st == ST_DRAIN ? DRAIN_TIMEOUT_NS : IO_TIMEOUT_NS;
				if (c->fd < 0) {
					conn_restart(&C, c, 1);
				} else if (now - c->t_stage > lim) {
					if (c->st == ST_DRAIN) {
						C.drain_timeouts++;
						conn_restart(&C, c, 1);
					} else {
						conn_fail(&C, c, &C.timeouts, c->st == ST_CONNECT ?
							  "connect timed out" : c->st == ST_HANDSHAKE ?
							  "handshake timed out" : "response timed out");
					}
				}
			}
		}
	}
	double dur = (double)(now_ns() - t0) / 1e9;
	for (int i = 0; i < conns; i++) {
		conn_close(&cs[i], 1);
		if (cs[i].sess)
			SSL_SESSION_free(cs[i].sess);
	}
	qsort(C.lat, C.nlat, sizeof(uint64_t), cmp_u64);
	qsort(C.hs_lat, C.nhs, sizeof(uint64_t), cmp_u64);
	uint64_t errors = C.fail_connect + C.fail_handshake + C.fail_io + C.timeouts;
	printf("BENCHJSON {\"requests\":%llu,\"handshakes\":%llu,\"resumed\":%llu,\"rps\":%.1f,"
	       "\"hps\":%.1f,\"duration_s\":%.3f,\"errors\":%llu,\"non2xx\":%llu,"
	       "\"p50_us\":%lld,\"p99_us\":%lld,\"hs_p50_us\":%lld,\"hs_p99_us\":%lld,"
	       "\"protocol\":\"%s\",\"cipher\":\"%s\",\"group\":\"%s\",\"fail_connect\":%llu,"
	       "\"fail_handshake\":%llu,\"fail_io\":%llu,\"timeouts\":%llu,"
	       "\"drain_timeouts\":%llu,\"first_error\":\"%s\"}\n",
	       (unsigned long long)C.requests, (unsigned long long)C.handshakes,
	       (unsigned long long)C.resumed, (double)C.requests / dur,
	       (double)C.handshakes / dur, dur, (unsigned long long)errors,
	       (unsigned long long)C.non2xx, pct(C.lat, C.nlat, 50), pct(C.lat, C.nlat, 99),
	       pct(C.hs_lat, C.nhs, 50), pct(C.hs_lat, C.nhs, 99), C.protocol, C.cipher, C.group,
	       (unsigned long long)C.fail_connect, (unsigned long long)C.fail_handshake,
	       (unsigned long long)C.fail_io, (unsigned long long)C.timeouts,
	       (unsigned long long)C.drain_timeouts, C.first_error);
	SSL_CTX_free(C.ctx);
	free(C.lat);
	free(C.hs_lat);
	free(cs);
	close(C.ep);
	return 0;
}
