/*
 * Unit tests of src/engine/proxy.c: the PROXY protocol header parser (v1 TCP4, TCP6, UNKNOWN;
 * v2 PROXY and LOCAL over every family, TLVs, CRC32C; every malformed case; the version mask),
 * and pt_engine_listen's checks of the PROXY options.
 *
 * Every input is parsed whole and at every split point: a strict prefix of a valid header must
 * return 0 (wait for more), a prefix of a bad one 0 or the same error. Every input sits right
 * before a PROT_NONE page, so a read past its end faults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <cmocka.h>

#include <portico/engine.h>
#include "engine/proxy.h"

#define BOTH (PT_PROXY_V1 | PT_PROXY_V2)

/* p[0..n) copied to the end of a mapping whose next page is PROT_NONE; parsed. */
static int parse_guarded(const void *p, size_t n, unsigned versions, struct pt_proxy_hdr *h)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), size = ((n + page - 1) / page + 1) * page;
	char *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(base != MAP_FAILED);
	assert_int_equal(mprotect(base + size - page, page, PROT_NONE), 0);
	char *at = base + size - page - n;
	memcpy(at, p, n);
	int r = pt__proxy_parse(at, n, versions, h);
	munmap(base, size);
	return r;
}

/* Parses p whole (expecting want) and every strict prefix (0, or want when want < 0). */
static void check(const void *p, size_t n, unsigned versions, int want, struct pt_proxy_hdr *h)
{
	struct pt_proxy_hdr tmp;

	for (size_t k = 0; k < n; k++) {
		int r = parse_guarded(p, k, versions, &tmp);
		if (r != 0 && !(want < 0 && r == want))
			fail_msg("prefix of %zu/%zu bytes: %d (whole: %d)", k, n, r, want);
	}
	int r = parse_guarded(p, n, versions, h);
	if (r != want)
		fail_msg("whole input (%zu bytes): %d, expected %d", n, r, want);
}

static void check_str(const char *s, int want, struct pt_proxy_hdr *h)
{
	check(s, strlen(s), BOTH, want, h);
}

static void assert_v4(const struct sockaddr_storage *ss, const char *ip, unsigned port)
{
	const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
	char buf[INET_ADDRSTRLEN];

	assert_int_equal(a->sin_family, AF_INET);
	assert_string_equal(inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf), ip);
	assert_int_equal(ntohs(a->sin_port), port);
}

static void assert_v6(const struct sockaddr_storage *ss, const char *ip, unsigned port)
{
	const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(a->sin6_family, AF_INET6);
	assert_string_equal(inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf), ip);
	assert_int_equal(ntohs(a->sin6_port), port);
}

/* ---- version 1 ---- */

static void test_v1_good(void **state)
{
	struct pt_proxy_hdr h;
	const char *l4 = "PROXY TCP4 198.18.0.9 198.19.0.1 56324 443\r\n";
	char buf[256];

	check_str(l4, (int)strlen(l4), &h);
	assert_int_equal(h.version, 1);
	assert_false(h.local);
	assert_v4(&h.src, "198.18.0.9", 56324);
	assert_v4(&h.dst, "198.19.0.1", 443);
	assert_int_equal(h.src_len, sizeof(struct sockaddr_in));

	/* what follows the header is not consumed */
	snprintf(buf, sizeof buf, "%sGET / HTTP/1.1\r\n\r\n", l4);
	assert_int_equal(pt__proxy_parse(buf, strlen(buf), BOTH, &h), (int)strlen(l4));

	const char *l6 = "PROXY TCP6 2001:db8::1 ::ffff:198.18.0.1 0 65535\r\n";
	check_str(l6, (int)strlen(l6), &h);
	assert_v6(&h.src, "2001:db8::1", 0);
	assert_v6(&h.dst, "::ffff:198.18.0.1", 65535);
	assert_int_equal(h.src_len, sizeof(struct sockaddr_in6));

	/* the longest line: two full IPv6 addresses and five-digit ports, 104 bytes */
	const char *lmax = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	check_str(lmax, (int)strlen(lmax), &h);
	assert_int_equal(h.version, 1);

	check_str("PROXY UNKNOWN\r\n", 15, &h);
	assert_true(h.local);
	const char *unk = "PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 65535\r\n";
	check_str(unk, (int)strlen(unk), &h);     /* spec: the rest of an UNKNOWN line is ignored */
	assert_true(h.local);
}

static void test_v1_bad(void **state)
{
	static const char *const bad[] = {
		"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",          /* case matters */
		"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",         /* two spaces */
		"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",         /* trailing space */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",        /* extra field */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",            /* missing field */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",          /* unknown protocol */
		"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",            /* bad address */
		"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
		"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",              /* family mismatch */
		"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",      /* port range */
		"PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",            /* lone LF */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\r\n",       /* lone CR */
		"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",         /* a control character */
		"PROXY UNKNOWNX\r\n",
		"PROXY \r\n",
		"PROXY\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
		"PROXY UNKNOWN \x80\r\n",                      /* not ASCII */
		"GET / HTTP/1.1\r\n\r\n",                      /* not a header at all */
		"\x16\x03\x01\x02\x00",                        /* a TLS ClientHello */
	};
	struct pt_proxy_hdr h;

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int r = parse_guarded(bad[i], strlen(bad[i]), BOTH, &h);
		if (r != -EPROTO)
			fail_msg("'%s' gave %d", bad[i], r);
		check_str(bad[i], -EPROTO, &h);
	}
	/* no CRLF within 107 bytes */
	char line[200];
	memset(line, 'A', sizeof line);
	memcpy(line, "PROXY UNKNOWN ", 14);
	check(line, 107, BOTH, -EPROTO, &h);
	memcpy(line + 105, "\r\n", 2);             /* 107 bytes with the CRLF: allowed */
	check(line, 107, BOTH, 107, &h);
	memcpy(line + 106, "\r\n", 2);             /* 108: too long */
	check(line, 108, BOTH, -EPROTO, &h);
	/* the version mask */
	assert_int_equal(pt__proxy_parse("PROXY UNKNOWN\r\n", 15, PT_PROXY_V2, &h), -EPROTO);
}

/* ---- version 2 ---- */

static const uint8_t sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
				 0x54, 0x0a };

/* A v2 header: ver_cmd, fam, then body[0..n) (addresses and TLVs). Returns its length. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body, size_t n)
{
	memcpy(out, sig, 12);
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (uint8_t)(n >> 8);
	out[15] = (uint8_t)n;
	if (n)
		memcpy(out + 16, body, n);
	return 16 + n;
}

static const uint8_t a4[12] = { 198, 18, 0, 7, 10, 0, 0, 1, 0x11, 0x11, 0x00, 0x50 };

static void test_v2_good(void **state)
{
	uint8_t b[5000], body[400];
	struct pt_proxy_hdr h;
	size_t n;

	n = v2(b, 0x21, 0x11, a4, sizeof a4);
	check(b, n, BOTH, 28, &h);
	assert_int_equal(h.version, 2);
	assert_false(h.local);
	assert_v4(&h.src, "198.18.0.7", 0x1111);
	assert_v4(&h.dst, "10.0.0.1", 80);

	memset(body, 0, 36);
	body[0] = 0x20, body[1] = 0x01, body[2] = 0x0d, body[3] = 0xb8, body[15] = 1;
	body[31] = 2, body[32] = 0xff, body[33] = 0xff, body[34] = 0x01, body[35] = 0xbb;
	n = v2(b, 0x21, 0x21, body, 36);
	check(b, n, BOTH, 52, &h);
	assert_v6(&h.src, "2001:db8::1", 65535);
	assert_v6(&h.dst, "::2", 443);

	/* LOCAL (health checks): the block is skipped whatever the family says */
	n = v2(b, 0x20, 0x00, NULL, 0);
	check(b, n, BOTH, 16, &h);
	assert_true(h.local);
	n = v2(b, 0x20, 0x77, "junk", 4);
	check(b, n, BOTH, 20, &h);
	assert_true(h.local);
	/* PROXY with UNSPEC, and a UNIX stream: the real endpoints are kept */
	n = v2(b, 0x21, 0x00, "xyz", 3);
	check(b, n, BOTH, 19, &h);
	assert_true(h.local);
	memset(body, 'u', 216);
	n = v2(b, 0x21, 0x31, body, 216);
	check(b, n, BOTH, 232, &h);
	assert_true(h.local);

	/* TLVs: ALPN, AUTHORITY, NOOP of length 0, UNIQUE_ID, SSL with sub-TLVs, an unknown type */
	static const uint8_t tlvs[] = { 0x01, 0, 2, 'h', '2', 0x02, 0, 4, 'a', '.', 'b', 'c',
		0x04, 0, 0, 0x05, 0, 3, 1, 2, 3, 0x20, 0, 10, 0x01, 0, 0, 0, 0, 0x21, 0, 2, '1', '3',
		0xee, 0, 1, 9 };
	memcpy(body, a4, 12);
	memcpy(body + 12, tlvs, sizeof tlvs);
	n = v2(b, 0x21, 0x11, body, 12 + sizeof tlvs);
	check(b, n, BOTH, (int)n, &h);
	assert_int_equal(h.ntlv, 6);
	assert_v4(&h.src, "198.18.0.7", 0x1111);

	/* address block longer than needed (spec: the rest is TLVs, here a NOOP) */
	memcpy(body + 12, "\x04\x00\x01z", 4);
	n = v2(b, 0x21, 0x11, body, 16);
	check(b, n, BOTH, 32, &h);
	assert_int_equal(h.ntlv, 1);

	/* CRC32C: the checksum of the header with the value zeroed */
	memcpy(body + 12, "\x03\x00\x04\x00\x00\x00\x00", 7);
	n = v2(b, 0x21, 0x11, body, 19);
	uint32_t crc = pt__crc32c(0, b, n);
	b[n - 4] = (uint8_t)(crc >> 24), b[n - 3] = (uint8_t)(crc >> 16);
	b[n - 2] = (uint8_t)(crc >> 8), b[n - 1] = (uint8_t)crc;
	check(b, n, BOTH, (int)n, &h);

	/* the largest header allowed, and data after it */
	memcpy(body, a4, 12);
	size_t tl = PT_PROXY_HDR_MAX - 16 - 12 - 3;
	uint8_t *big = malloc(PT_PROXY_HDR_MAX + 10);
	assert_non_null(big);
	n = v2(big, 0x21, 0x11, a4, 12);
	big[15] = (uint8_t)(12 + 3 + tl), big[14] = (uint8_t)((12 + 3 + tl) >> 8);
	big[28] = 0x04, big[29] = (uint8_t)(tl >> 8), big[30] = (uint8_t)tl;
	memset(big + 31, 'n', tl);
	memcpy(big + PT_PROXY_HDR_MAX, "GET /", 5);
	assert_int_equal(pt__proxy_parse(big, PT_PROXY_HDR_MAX + 5, BOTH, &h), PT_PROXY_HDR_MAX);
	free(big);
}

static void test_v2_bad(void **state)
{
	uint8_t b[5000], body[64];
	struct pt_proxy_hdr h;
	size_t n;

	n = v2(b, 0x21, 0x11, a4, 12);
	b[11] = 0x0b;                                   /* signature */
	check(b, n, BOTH, -EPROTO, &h);
	n = v2(b, 0x11, 0x11, a4, 12);                  /* version 1 nibble */
	check(b, n, BOTH, -EPROTO, &h);
	n = v2(b, 0x31, 0x11, a4, 12);                  /* version 3 */
	check(b, n, BOTH, -EPROTO, &h);
	n = v2(b, 0x22, 0x11, a4, 12);                  /* command 2 */
	check(b, n, BOTH, -EPROTO, &h);
	static const uint8_t fams[] = { 0x12, 0x22, 0x32, 0x10, 0x13, 0x41, 0x01, 0xff };
	for (size_t i = 0; i < sizeof fams; i++) {      /* datagrams, unknown families */
		memset(body, 0, sizeof body);
		n = v2(b, 0x21, fams[i], body, 60);
		check(b, n, BOTH, -EPROTO, &h);
	}
	n = v2(b, 0x21, 0x11, a4, 11);                  /* address block too short */
	check(b, n, BOTH, -EPROTO, &h);
	n = v2(b, 0x21, 0x21, body, 35);
	check(b, n, BOTH, -EPROTO, &h);
	memset(body, 0, sizeof body);
	n = v2(b, 0x21, 0x31, body, 60);                /* UNIX needs 216 */
	check(b, n, BOTH, -EPROTO, &h);

	/* TLVs that do not fit */
	static const uint8_t *const tl[] = { (const uint8_t *)"\x01", (const uint8_t *)"\x01\x00",
		(const uint8_t *)"\x01\x00\x02h", (const uint8_t *)"\x04\x00\x00\x01\x00\x05xxxx",
		(const uint8_t *)"\x01\xff\xffh" };
	static const size_t tlen[] = { 1, 2, 4, 10, 4 };
	for (size_t i = 0; i < sizeof tlen / sizeof *tlen; i++) {
		memcpy(body, a4, 12);
		memcpy(body + 12, tl[i], tlen[i]);
		n = v2(b, 0x21, 0x11, body, 12 + tlen[i]);
		check(b, n, BOTH, -EPROTO, &h);
	}
	/* CRC32C wrong, or of the wrong length */
	memcpy(body, a4, 12);
	memcpy(body + 12, "\x03\x00\x04\x01\x02\x03\x04", 7);
	n = v2(b, 0x21, 0x11, body, 19);
	check(b, n, BOTH, -EPROTO, &h);
	memcpy(body + 12, "\x03\x00\x03\x01\x02\x03", 6);
	n = v2(b, 0x21, 0x11, body, 18);
	check(b, n, BOTH, -EPROTO, &h);

	/* longer than PT_PROXY_HDR_MAX: refused as soon as the length is known */
	n = v2(b, 0x21, 0x11, a4, 12);
	b[14] = 0x10, b[15] = 0x00;                     /* 16 + 4096 */
	assert_int_equal(pt__proxy_parse(b, 16, BOTH, &h), -EMSGSIZE);
	b[14] = 0xff, b[15] = 0xff;
	assert_int_equal(pt__proxy_parse(b, 16, BOTH, &h), -EMSGSIZE);
	/* the version mask */
	n = v2(b, 0x21, 0x11, a4, 12);
	assert_int_equal(pt__proxy_parse(b, n, PT_PROXY_V1, &h), -EPROTO);
	assert_int_equal(pt__proxy_parse(b, n, PT_PROXY_V2, &h), 28);
	assert_int_equal(pt__proxy_parse(b, 0, BOTH, &h), 0);
}

static void test_crc32c(void **state)
{
	assert_int_equal(pt__crc32c(0, "123456789", 9), 0xe3069283u);  /* the check value */
	assert_int_equal(pt__crc32c(pt__crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

static int accept_none(pt_conn_t *c, void *arg)
{
	return -1;
}

/* pt_engine_listen refuses PROXY settings it cannot use, before binding anything. */
static void test_listen_opts(void **state)
{
	struct pt_engine_config cfg;
	int err;

	pt_engine_config_init(&cfg);
	cfg.workers = 1;
	pt_engine_t *e = pt_engine_create(&cfg, &err);
	assert_non_null(e);
	struct pt_listen_opts o = { .on_accept = accept_none, .proxy_protocol = BOTH };
	assert_int_equal(pt_engine_listen(e, "127.0.0.1:0", &o), -EINVAL);   /* no trusted list */
	o.proxy_trusted = "10.0.0.0/33";
	assert_int_equal(pt_engine_listen(e, "127.0.0.1:0", &o), -EINVAL);
	o.proxy_trusted = "";
	assert_int_equal(pt_engine_listen(e, "127.0.0.1:0", &o), -EINVAL);
	o.proxy_trusted = "127.0.0.1, ::1";
	o.proxy_protocol = 4;
	assert_int_equal(pt_engine_listen(e, "127.0.0.1:0", &o), -EINVAL);
	o.proxy_protocol = PT_PROXY_V2;
	assert_int_equal(pt_engine_listen(e, "127.0.0.1:0", &o), 0);
	o.proxy_protocol = 0;
	o.proxy_trusted = "not even parsed when off";
	assert_int_equal(pt_engine_listen(e, "127.0.0.1:0", &o), 1);
	pt_engine_destroy(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_good),
		cmocka_unit_test(test_v1_bad),
		cmocka_unit_test(test_v2_good),
		cmocka_unit_test(test_v2_bad),
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_listen_opts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
