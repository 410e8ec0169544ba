/*
 * The PROXY protocol header parser: see proxy.h. Every rule cites HAProxy's
 * doc/proxy-protocol.txt (the specification, "spec" below).
 */
#include "engine/proxy.h"
#include <portico/engine.h>
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif
#include <errno.h>
#include <string.h>

/* spec 2.2: the twelve bytes no HTTP, TLS or version 1 stream can start with */
static const uint8_t v2_sig[PT_PROXY_V2_SIG_LEN] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
						     0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
static const char v1_prefix[] = "PROXY ";

enum { V2_LOCAL = 0x0, V2_PROXY = 0x1 };
enum { TLV_CRC32C = 0x03 };

uint32_t pt__crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return ~crc;
}

/* ---- version 1 (spec 2.1) ---- */

/* One space-delimited token of line[*at..end) into out (NUL-terminated, < cap bytes); the
 * token must be followed by exactly one space, or by the end when last. true if so. */
static bool v1_token(const char *line, size_t end, size_t *at, char *out, size_t cap,
		     bool last)
{
	size_t i = *at, n = 0;

	while (i < end && line[i] != ' ') {
		if (n + 1 >= cap)
			return false;
		out[n++] = line[i++];
	}
	out[n] = '\0';
	if (n == 0 || (last ? i != end : (i == end || line[i] != ' ')))
		return false;
	*at = i + 1;
	return true;
}

/* "0".."65535" in decimal (spec: "a decimal integer in the range 0..65535"). */
static bool v1_port(const char *s, uint16_t *port)
{
	unsigned v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* An address of family fam and a port into ss. */
static bool v1_addr(int fam, const char *ip, const char *port, struct sockaddr_storage *ss,
		    socklen_t *len)
{
	uint16_t p;

	memset(ss, 0, sizeof *ss);
	if (!v1_port(port, &p))
		return false;
	if (fam == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(p);
		*len = sizeof *a;
		return inet_pton(AF_INET, ip, &a->sin_addr) == 1;
	}
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
	a->sin6_family = AF_INET6;
	a->sin6_port = htons(p);
	*len = sizeof *a;
	return inet_pton(AF_INET6, ip, &a->sin6_addr) == 1;
}

/* The fields after "PROXY " up to (not including) the CRLF at line[end]. */
static int v1_fields(const char *line, size_t end, struct pt_proxy_hdr *h)
{
	char proto[8], src[48], dst[48], sport[8], dport[8];
	size_t at = 0;

	if (end >= 7 && !memcmp(line, "UNKNOWN", 7) && (end == 7 || line[7] == ' ')) {
		h->local = true;                 /* spec: the rest of the line is ignored */
		return 0;
	}
	if (!v1_token(line, end, &at, proto, sizeof proto, false))
		return -EPROTO;
	int fam = !strcmp(proto, "TCP4") ? AF_INET : !strcmp(proto, "TCP6") ? AF_INET6 : 0;
	if (!fam || !v1_token(line, end, &at, src, sizeof src, false) ||
	    !v1_token(line, end, &at, dst, sizeof dst, false) ||
	    !v1_token(line, end, &at, sport, sizeof sport, false) ||
	    !v1_token(line, end, &at, dport, sizeof dport, true))
		return -EPROTO;
	if (!v1_addr(fam, src, sport, &h->src, &h->src_len) ||
	    !v1_addr(fam, dst, dport, &h->dst, &h->dst_len))
		return -EPROTO;
	return 0;
}

static int v1_parse(const uint8_t *p, size_t len, struct pt_proxy_hdr *h)
{
	size_t plen = sizeof v1_prefix - 1;

	if (memcmp(p, v1_prefix, len < plen ? len : plen))
		return -EPROTO;
	/* spec 2.1: printable US-ASCII up to the CRLF, within 107 bytes; a lone CR or LF is bad */
	for (size_t i = 0; i < len && i < PT_PROXY_V1_MAX; i++) {
		if (p[i] == '\r') {
			if (i + 1 < len && p[i + 1] != '\n')
				return -EPROTO;
			continue;
		}
		if (p[i] == '\n') {
			if (i == 0 || p[i - 1] != '\r' || i < plen)
				return -EPROTO;
			h->version = 1;
			if (v1_fields((const char *)p + plen, i - 1 - plen, h) < 0)
				return -EPROTO;
			return (int)(i + 1);
		}
		if (p[i] < 0x20 || p[i] > 0x7e)
			return -EPROTO;
	}
	return len >= PT_PROXY_V1_MAX ? -EPROTO : 0;
}

/* ---- version 2 (spec 2.2) ---- */

/* Walks the TLVs in p[off..total): each is type, 16-bit length, value, and must fit. A
 * CRC32C TLV must hold the checksum of the whole header with its own value zeroed. */
static int v2_tlvs(const uint8_t *p, size_t off, size_t total, struct pt_proxy_hdr *h)
{
	static const uint8_t zero[4];

	while (off < total) {
		if (total - off < 3)
			return -EPROTO;
		size_t vlen = (size_t)p[off + 1] << 8 | p[off + 2];
		if (total - off - 3 < vlen)
			return -EPROTO;
		if (p[off] == TLV_CRC32C) {
			size_t v = off + 3;
			if (vlen != 4)
				return -EPROTO;
			uint32_t crc = pt__crc32c(0, p, v);
			crc = pt__crc32c(crc, zero, 4);
			crc = pt__crc32c(crc, p + v + 4, total - v - 4);
			uint32_t got = (uint32_t)p[v] << 24 | (uint32_t)p[v + 1] << 16 |
				       (uint32_t)p[v + 2] << 8 | p[v + 3];
			if (crc != got)
				return -EPROTO;
		}
		h->ntlv++;
		off += 3 + vlen;
	}
	return 0;
}

/* One endpoint: ip (4 or 16 bytes) and port (2 bytes), both in network order, into ss. */
static void v2_endpoint(int fam, const uint8_t *ip, const uint8_t *port,
			struct sockaddr_storage *ss, socklen_t *len)
{
	if (fam == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, ip, 4);
		memcpy(&a->sin_port, port, 2);
		*len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, ip, 16);
		memcpy(&a->sin6_port, port, 2);
		*len = sizeof *a;
	}
}

/* The addresses of the PROXY command: family 0x11 (TCP over IPv4: source, destination, then
 * the two ports) or 0x21 (TCP over IPv6); UNIX streams keep the real endpoints (an address
 * this socket cannot have); datagram and unknown families are refused on a stream. Returns
 * the address block's length, or -EPROTO. */
static int v2_addrs(const uint8_t *p, size_t alen, struct pt_proxy_hdr *h)
{
	const uint8_t *a = p + PT_PROXY_V2_FIXED;
	int fam = p[13] == 0x11 ? AF_INET : p[13] == 0x21 ? AF_INET6 : 0;
	size_t n = fam == AF_INET ? 4 : 16;

	if (p[13] == 0x31) {
		if (alen < 216)
			return -EPROTO;
		h->local = true;
		return 216;
	}
	if (!fam || alen < 2 * n + 4)
		return -EPROTO;
	v2_endpoint(fam, a, a + 2 * n, &h->src, &h->src_len);
	v2_endpoint(fam, a + n, a + 2 * n + 2, &h->dst, &h->dst_len);
	return (int)(2 * n + 4);
}

static int v2_parse(const uint8_t *p, size_t len, struct pt_proxy_hdr *h)
{
	if (memcmp(p, v2_sig, len < PT_PROXY_V2_SIG_LEN ? len : PT_PROXY_V2_SIG_LEN))
		return -EPROTO;
	/* spec 2.2: the version nibble is 2; commands LOCAL and PROXY; others are refused */
	if (len > 12 && (p[12] >> 4 != 2 || (p[12] & 0xf) > V2_PROXY))
		return -EPROTO;
	if (len < PT_PROXY_V2_FIXED)
		return 0;
	size_t total = PT_PROXY_V2_FIXED + ((size_t)p[14] << 8 | p[15]);
	if (total > PT_PROXY_HDR_MAX)
		return -EMSGSIZE;
	if (len < total)
		return 0;
	h->version = 2;
	/* spec: LOCAL, and PROXY with UNSPEC, use the real endpoints; the block is skipped */
	if ((p[12] & 0xf) == V2_LOCAL || p[13] == 0x00) {
		h->local = true;
		return (int)total;
	}
	int alen = v2_addrs(p, total - PT_PROXY_V2_FIXED, h);
	if (alen < 0 || v2_tlvs(p, PT_PROXY_V2_FIXED + (size_t)alen, total, h) < 0)
		return -EPROTO;
	return (int)total;
}

int pt__proxy_parse(const void *buf, size_t len, unsigned versions, struct pt_proxy_hdr *h)
{
	const uint8_t *p = buf;

	memset(h, 0, sizeof *h);
	if (len == 0)
		return 0;
	if (p[0] == 'P' && (versions & PT_PROXY_V1))
		return v1_parse(p, len, h);
	if (p[0] == v2_sig[0] && (versions & PT_PROXY_V2))
		return v2_parse(p, len, h);
	return -EPROTO;
}
