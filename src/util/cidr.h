/*
 * Address prefixes (CIDR) for the admin listener's allow-list and the PROXY protocol's trusted
 * balancers: "127.0.0.0/8", "::1/128", "10.1.2.3" (a single address), comma-separated lists.
 * Pure functions over strings and addresses, no allocation; header-only so that config.c
 * (which the unit and fuzz tests include as source) checks --admin-allow and
 * --trusted-proxies with the same parser admin.c and the engine (src/engine/proxy_conn.c) use.
 * An IPv4-mapped IPv6 peer (::ffff:a.b.c.d, from a dual-stack socket) matches IPv4 prefixes.
 */
#ifndef PT_UTIL_CIDR_H
#define PT_UTIL_CIDR_H

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define PT_CIDR_MAX 32                 /* prefixes in one list */

struct pt_cidr {
	int family;                        /* AF_INET or AF_INET6 */
	unsigned bits;                     /* prefix length */
	uint8_t addr[16];                  /* network byte order, host bits cleared */
};

/* Clears the bits of a past the first bits. Pure. */
static inline void pt_cidr_mask(uint8_t *a, unsigned len, unsigned bits)
{
	for (unsigned i = 0; i < len; i++) {
		unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
		a[i] &= (uint8_t)(0xff00u >> keep);
	}
}

/* Parses one prefix, s[0..n) ("ADDR" or "ADDR/BITS", no blanks), into *out: true if valid. */
static inline bool pt_cidr_parse_one(const char *s, size_t n, struct pt_cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = memchr(s, '/', n);
	size_t an = slash ? (size_t)(slash - s) : n;
	unsigned bits = 0, digits = 0;

	if (an == 0 || an >= INET6_ADDRSTRLEN)
		return false;
	memcpy(buf, s, an);
	buf[an] = '\0';
	out->family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(out->family, buf, out->addr) != 1)
		return false;
	unsigned max = out->family == AF_INET ? 32 : 128;
	for (const char *p = slash ? slash + 1 : s + n; p < s + n; p++, digits++) {
		if (*p < '0' || *p > '9' || digits >= 3)
			return false;
		bits = bits * 10 + (unsigned)(*p - '0');
	}
	if (slash && (digits == 0 || bits > max))
		return false;
	out->bits = slash ? bits : max;
	pt_cidr_mask(out->addr, max / 8, out->bits);
	return true;
}

/* Parses a comma-separated list (blanks around items allowed) into out (cap entries).
 * Returns the number of prefixes (>= 1), or -1 when an item is bad, the list is empty, or
 * it has more than cap items. Pure. */
static inline int pt_cidr_parse_list(const char *s, struct pt_cidr *out, unsigned cap)
{
	unsigned n = 0;

	for (;;) {
		s += strspn(s, " \t");
		size_t len = strcspn(s, ", \t");
		if (n >= cap || !pt_cidr_parse_one(s, len, &out[n]))
			return -1;
		n++;
		s += len;
		s += strspn(s, " \t");
		if (*s == '\0')
			return (int)n;
		if (*s++ != ',')
			return -1;
	}
}

/* For the option table: NULL when v is a valid list, else what is expected. Pure. */
static inline const char *pt_cidr_check_list(const char *v)
{
	struct pt_cidr list[PT_CIDR_MAX];

	return pt_cidr_parse_list(v, list, PT_CIDR_MAX) < 0
		       ? "addresses or prefixes such as 127.0.0.0/8 or ::1, comma-separated" : NULL;
}

/* Whether the address sa (AF_INET or AF_INET6) lies inside one of the n prefixes. Pure. */
static inline bool pt_cidr_match(const struct pt_cidr *list, unsigned n,
				 const struct sockaddr *sa)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	uint8_t a[16];
	int fam = sa->sa_family;

	if (fam == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (fam == AF_INET6) {
		memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		if (!memcmp(a, v4mapped, 12)) {
			memmove(a, a + 12, 4);
			fam = AF_INET;
		}
	} else {
		return false;
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t m[16];
		unsigned len = list[i].family == AF_INET ? 4 : 16;

		if (list[i].family != fam)
			continue;
		memcpy(m, a, len);
		pt_cidr_mask(m, len, list[i].bits);
		if (!memcmp(m, list[i].addr, len))
			return true;
	}
	return false;
}

#endif
