/*
 * Accept-Encoding parsing and the choice of a precompressed variant (see encoding.h).
 *
 * Grammar (RFC 9110 12.5.3, 12.4.2, 5.6.1):
 *   Accept-Encoding = #( codings [ weight ] )
 *   codings         = content-coding / "identity" / "*"
 *   weight          = OWS ";" OWS "q=" qvalue
 *   qvalue          = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
 * ABNF literals are case-insensitive, so "Q=0.5" is a weight too.
 */
#include "server/encoding.h"
#include "util/util.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* Index of each coding we track in struct prefs. */
enum { K_BR, K_ZSTD, K_GZIP, K_IDENTITY, K_STAR, K_COUNT };

struct prefs {
	int16_t q[K_COUNT]; /* weight 0..1000, or -1 when not listed */
};

static const char *skip_token(const char *p, const char *end)
{
	while (p < end && pt__is_tchar((uint8_t)*p))
		p++;
	return p;
}

/* Which tracked coding is the token t[0..n)? -1 for any other. */
static int coding_kind(const char *t, size_t n)
{
	static const struct { const char *name; uint8_t len, kind; } names[] = {
		{ "br", 2, K_BR }, { "zstd", 4, K_ZSTD }, { "gzip", 4, K_GZIP },
		{ "x-gzip", 6, K_GZIP }, { "identity", 8, K_IDENTITY }, { "*", 1, K_STAR },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (n == names[i].len && strncasecmp(t, names[i].name, n) == 0)
			return names[i].kind;
	return -1;
}

/* qvalue at [*pp, end), scaled to 0..1000. False if malformed. */
static bool parse_qvalue(const char **pp, const char *end, int *q)
{
	const char *p = *pp;
	int v, scale = 100;

	if (p == end || (*p != '0' && *p != '1'))
		return false;
	v = (*p++ - '0') * 1000;
	if (p < end && *p == '.') {
		for (p++; p < end && (unsigned)(*p - '0') <= 9 && scale > 0; p++, scale /= 10)
			v += (*p - '0') * scale;
	}
	if (v > 1000)
		return false; /* "1.5" or "1.001" */
	*pp = p;
	*q = v;
	return true;
}

/* The weight parameters after a coding: ( OWS ";" OWS "q=" qvalue ), at most one.
 * Leaves *pp after them. False if the element is malformed. */
static bool parse_weight(const char **pp, const char *end, int *q)
{
	const char *p = pt__skip_ows(*pp, end);

	*q = 1000;
	if (p < end && *p == ';') {
		p = pt__skip_ows(p + 1, end);
		if (end - p < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=')
			return false;
		p += 2;
		if (!parse_qvalue(&p, end, q))
			return false;
		p = pt__skip_ows(p, end);
	}
	*pp = p;
	return p == end || *p == ',';
}

static void parse_prefs(const char *p, size_t len, struct prefs *pf)
{
	const char *end = p + len;

	for (int k = 0; k < K_COUNT; k++)
		pf->q[k] = -1;
	while (p < end) {
		const char *tok, *tend;
		int q, kind;

		p = pt__skip_ows(p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		tok = p;
		tend = skip_token(p, end);
		p = tend;
		if (tend > tok && parse_weight(&p, end, &q)) {
			kind = coding_kind(tok, (size_t)(tend - tok));
			if (kind >= 0 && pf->q[kind] < 0) /* the first element counts */
				pf->q[kind] = (int16_t)q;
			continue;
		}
		p = memchr(p, ',', (size_t)(end - p)); /* ignore the malformed element */
		if (!p)
			break;
	}
}

/* The weight of coding k: its own, else that of "*", else 0 (not acceptable). */
static int weight(const struct prefs *pf, int k)
{
	if (pf->q[k] >= 0)
		return pf->q[k];
	return pf->q[K_STAR] >= 0 ? pf->q[K_STAR] : 0;
}

unsigned pt_enc_choose(const char *ae, size_t len, unsigned avail)
{
	static const unsigned bit[3] = { PT_ENC_BR, PT_ENC_ZSTD, PT_ENC_GZIP };
	struct prefs pf;
	unsigned best = PT_ENC_IDENTITY;
	int bestq = 0;

	if (!ae || !(avail & PT_ENC_ALL))
		return PT_ENC_IDENTITY;
	parse_prefs(ae, len, &pf);
	for (int k = K_BR; k <= K_GZIP; k++) { /* in preference order: ties keep the first */
		int q = weight(&pf, k);

		if ((avail & bit[k]) && q > bestq) {
			best = bit[k];
			bestq = q;
		}
	}
	if (best != PT_ENC_IDENTITY && pf.q[K_IDENTITY] > bestq)
		return PT_ENC_IDENTITY; /* "identity" explicitly preferred */
	return best;
}

const char *pt_enc_suffix(unsigned enc)
{
	switch (enc) {
	case PT_ENC_BR:
		return ".br";
	case PT_ENC_ZSTD:
		return ".zst";
	case PT_ENC_GZIP:
		return ".gz";
	}
	return "";
}

const char *pt_enc_name(unsigned enc)
{
	switch (enc) {
	case PT_ENC_BR:
		return "br";
	case PT_ENC_ZSTD:
		return "zstd";
	case PT_ENC_GZIP:
		return "gzip";
	}
	return NULL;
}
