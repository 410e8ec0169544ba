/*
 * Value parsers of the portico options (see config_int.h), moved out of config.c: numbers with
 * their units, listen addresses, on/off, TLS protocol lists. Pure: no allocation, any thread.
 */
#include "server/config.h"
#include "server/config_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* 1*DIGIT, then *end. False on overflow or no digits. */
static bool parse_digits(const char *s, const char **end, uint64_t *v)
{
	uint64_t x = 0;

	if (!is_digit(*s))
		return false;
	for (; is_digit(*s); s++) {
		if (x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*end = s;
	*v = x;
	return true;
}

bool pt__parse_uint(const char *s, uint64_t *v)
{
	return parse_digits(s, &s, v) && *s == '\0';
}

/* BYTES with an optional k, m or g (1024-based) suffix. */
bool pt__parse_size(const char *s, uint64_t *v)
{
	uint64_t mul = 1;

	if (!parse_digits(s, &s, v))
		return false;
	switch (*s) {
	case 'k': case 'K': mul = KIB; s++; break;
	case 'm': case 'M': mul = MIB; s++; break;
	case 'g': case 'G': mul = GIB; s++; break;
	}
	if (*s != '\0' || *v > UINT64_MAX / mul)
		return false;
	*v *= mul;
	return true;
}

/* Seconds with up to three decimals, into milliseconds. */
bool pt__parse_ms(const char *s, uint64_t *ms)
{
	uint64_t sec, frac = 0;
	int digits = 0;

	if (!parse_digits(s, &s, &sec) || sec > UINT32_MAX)
		return false;
	if (*s == '.') {
		for (s++; is_digit(*s) && digits < 3; s++, digits++)
			frac = frac * 10 + (uint64_t)(*s - '0');
		if (digits == 0)
			return false;
		for (int i = digits; i < 3; i++)
			frac *= 10;
	}
	*ms = sec * 1000 + frac;
	return *s == '\0';
}

/* IPv4:PORT, [IPv6]:PORT, *:PORT or PORT, normalized into out. */
bool pt__parse_listen(const char *s, char *out)
{
	char host[PT_CONFIG_ADDR_MAX], probe[16];
	const char *port;
	uint64_t p;
	size_t hn;
	bool v6 = s[0] == '[';

	if (pt__parse_uint(s, &p)) {
		port = s;
		strcpy(host, "0.0.0.0");
	} else {
		const char *colon = v6 ? strstr(s, "]:") : strrchr(s, ':');

		if (!colon)
			return false;
		hn = (size_t)(colon - s) - v6;
		if (hn == 0 || hn >= sizeof(host))
			return false;
		memcpy(host, s + v6, hn);
		host[hn] = '\0';
		port = colon + 1 + v6;
		if (!v6 && strcmp(host, "*") == 0)
			strcpy(host, "0.0.0.0");
		if (inet_pton(v6 ? AF_INET6 : AF_INET, host, probe) != 1 || !pt__parse_uint(port, &p))
			return false;
	}
	if (p > 65535 || strlen(port) > 5)
		return false;
	snprintf(out, PT_CONFIG_ADDR_MAX, v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)p);
	return true;
}

bool pt__parse_bool(const char *v, bool *b)
{
	static const char *const on[] = { "on", "yes", "true", "1" };
	static const char *const off[] = { "off", "no", "false", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, on[i]) == 0)
			return *b = true, true;
		if (strcasecmp(v, off[i]) == 0)
			return *b = false, true;
	}
	return false;
}

/* "TLSv1.2,TLSv1.3" (commas or blanks between, any case, any order) into the lowest and
 * highest version. NULL, or what is expected: TLS 1.0 and 1.1 are refused by name (RFC 8996
 * deprecates them; Mozilla's intermediate profile leaves them out). */
const char *pt__parse_protocols(const char *v, unsigned *min, unsigned *max)
{
	unsigned lo = 0, hi = 0;

	while (*v) {
		size_t n = strcspn(v, ", \t");
		unsigned ver = 0;

		if (n == 7 && strncasecmp(v, "TLSv1.2", 7) == 0)
			ver = PT_TLS_1_2;
		else if (n == 7 && strncasecmp(v, "TLSv1.3", 7) == 0)
			ver = PT_TLS_1_3;
		else if ((n == 5 && strncasecmp(v, "TLSv1", 5) == 0) ||
			 (n == 7 && (strncasecmp(v, "TLSv1.0", 7) == 0 ||
				     strncasecmp(v, "TLSv1.1", 7) == 0)) ||
			 (n == 5 && strncasecmp(v, "SSLv", 4) == 0))
			return PROTOCOLS_EXPECTED "; TLSv1, TLSv1.1 and SSL are insecure "
			       "(RFC 8996) and not supported";
		else if (n > 0)
			return PROTOCOLS_EXPECTED;
		if (ver && (!lo || ver < lo))
			lo = ver;
		if (ver > hi)
			hi = ver;
		v += n;
		v += strspn(v, ", \t");
	}
	if (!lo)
		return PROTOCOLS_EXPECTED;
	*min = lo;
	*max = hi;
	return NULL;
}

