// fuzz-sources: src/engine/proxy.c
/*
 * libFuzzer target for pt__proxy_parse (src/engine/proxy.c), the PROXY protocol header parser.
 *
 * Input: byte 0 picks the version mask (bits 0-1: v1, v2) and, with byte 1, a split point;
 * the rest is what a balancer sent. Invariants (a violation aborts):
 *  - the result is -EPROTO, -EMSGSIZE, 0, or 1..min(len, PT_PROXY_HDR_MAX); a version 1
 *    header is at most 107 bytes and ends in CRLF; a version 2 one is 16 + its length field;
 *  - a header of a version outside the mask is never accepted;
 *  - a header found (r > 0) parses the same from exactly its r bytes, and every strict prefix
 *    of it gives 0 (wait for more): the engine may get it in any number of pieces;
 *  - an error at the split point is final: the whole input is an error too;
 *  - an accepted non-local header names an AF_INET or AF_INET6 client; a version 1 TCP4/TCP6
 *    one printed back as a line parses to the same addresses.
 * The data is a heap copy of exactly its length, so ASan reports any overread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <portico/engine.h>
#include "engine/proxy.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
	abort(); } } while (0)

static int parse_copy(const uint8_t *p, size_t n, unsigned versions, struct pt_proxy_hdr *h)
{
	uint8_t *c = malloc(n ? n : 1);

	CHECK(c != NULL);
	memcpy(c, p, n);
	int r = pt__proxy_parse(c, n, versions, h);
	free(c);
	return r;
}

static void addr_str(const struct sockaddr_storage *ss, char *ip, size_t cap, unsigned *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)cap);
		*port = ntohs(a->sin_port);
	} else {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)cap);
		*port = ntohs(a->sin6_port);
	}
}

/* A version 1 header printed back from h parses to the same endpoints. */
static void v1_roundtrip(const struct pt_proxy_hdr *h)
{
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN], line[160];
	unsigned sp, dp;
	struct pt_proxy_hdr h2;

	addr_str(&h->src, s, sizeof s, &sp);
	addr_str(&h->dst, d, sizeof d, &dp);
	int n = snprintf(line, sizeof line, "PROXY %s %s %s %u %u\r\n",
			 h->src.ss_family == AF_INET ? "TCP4" : "TCP6", s, d, sp, dp);
	int r = pt__proxy_parse(line, (size_t)n, PT_PROXY_V1, &h2);
	CHECK(r == n);
	CHECK(h2.src_len == h->src_len && !memcmp(&h2.src, &h->src, h->src_len));
	CHECK(h2.dst_len == h->dst_len && !memcmp(&h2.dst, &h->dst, h->dst_len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pt_proxy_hdr h, h2;

	if (size < 2)
		return 0;
	unsigned versions = data[0] & 3u;
	size_t n = size - 2, split = n ? ((size_t)data[0] << 8 | data[1]) % (n + 1) : 0;
	const uint8_t *p = data + 2;

	int r = parse_copy(p, n, versions, &h);
	CHECK(r == -EPROTO || r == -EMSGSIZE || (r >= 0 && (size_t)r <= n &&
						  (size_t)r <= PT_PROXY_HDR_MAX));
	int rs = parse_copy(p, split, versions, &h2);
	if (rs < 0)
		CHECK(r < 0);
	if (r <= 0)
		return 0;
	CHECK(h.version == 1 || h.version == 2);
	CHECK(versions & (h.version == 1 ? PT_PROXY_V1 : PT_PROXY_V2));
	if (h.version == 1)
		CHECK(r <= (int)PT_PROXY_V1_MAX && p[r - 2] == '\r' && p[r - 1] == '\n');
	else
		CHECK((size_t)r == PT_PROXY_V2_FIXED + ((size_t)p[14] << 8 | p[15]));
	CHECK(parse_copy(p, (size_t)r, versions, &h2) == r);
	CHECK(h2.local == h.local && h2.src_len == h.src_len &&
	      !memcmp(&h2.src, &h.src, h.src_len));
	for (size_t k = (size_t)r > 64 ? (size_t)r - 64 : 0; k < (size_t)r; k++)
		CHECK(parse_copy(p, k, versions, &h2) == 0);
	if (!h.local) {
		CHECK(h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6);
		CHECK(h.dst.ss_family == h.src.ss_family);
		v1_roundtrip(&h);
	}
	return 0;
}
