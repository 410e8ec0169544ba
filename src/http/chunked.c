/*
 * Incremental, zero-copy decoder of the chunked transfer coding (RFC 9112 7.1).
 *
 * A byte-at-a-time state machine for the framing (chunk-size lines, the CRLF after each
 * chunk, the trailer section) and whole spans for chunk data, which are returned as
 * slices of the caller's buffer, never copied. All state lives in struct pt_chunked, so
 * the input may be split at any byte and the buffer may be reused between calls.
 *
 * Strictness (smuggling defence): CRLF only (bare CR or LF: 400); at most 16 hex digits
 * per size; extensions follow RFC 9112 7.1.1 exactly, BWS included, and the size line is
 * bounded; trailer fields are validated like header fields (no obs-fold) and bounded,
 * then discarded (RFC 9112 7.1.2 allows it). The declared total is checked against
 * max_body as each size digit arrives, before any of that chunk's data.
 */
#include "http/parse.h"
#include "util/util.h"

#define CT(c) pt__http_ctype[(uint8_t)(c)]

enum {
	S_SIZE,       /* chunk-size hex digits */
	S_SIZE_BWS,   /* BWS after the size or an extension: ';' must follow */
	S_EXT_NAME0,  /* after ';': BWS, then ext-name */
	S_EXT_NAME,
	S_EXT_NAME_BWS, /* BWS after ext-name: '=' or ';' must follow */
	S_EXT_VAL0,   /* after '=': BWS, then token or quoted-string */
	S_EXT_TOKEN,
	S_EXT_QUOTED,
	S_EXT_QPAIR,  /* after a backslash in a quoted-string */
	S_EXT_END,    /* after the size, a closing quote or a token: BWS ";" or CRLF */
	S_SIZE_LF,    /* CR seen at the end of the size line */
	S_DATA,
	S_DATA_CR,
	S_DATA_LF,
	S_TRAILER,    /* start of a trailer field line, or the final CRLF */
	S_TR_NAME,
	S_TR_VALUE,
	S_TR_LF,
	S_FINAL_LF,
	S_DONE,
	S_ERR_400,
	S_ERR_413,
	S_ERR_431,
};

void pt_chunked_init(struct pt_chunked *c, const struct pt_parse_limits *l)
{
	*c = (struct pt_chunked){ 0 };
	c->max_body = l->max_body && l->max_body < INT64_MAX ? l->max_body : INT64_MAX;
	c->max_line = l->max_chunk_line;
	c->max_trailer = l->max_trailer;
	c->state = S_SIZE;
}

static int fail(struct pt_chunked *c, int status)
{
	c->state = status == 413 ? S_ERR_413 : status == 431 ? S_ERR_431 : S_ERR_400;
	return -status;
}

/* chunk-size = 1*HEXDIG (RFC 9112 7.1). More than 16 digits would overflow: 400. The
 * declared total may not pass max_body (RFC 9110 15.5.14: 413). */
static int size_digit(struct pt_chunked *c, int v)
{
	if (c->digits == 16)
		return fail(c, 400);
	c->digits++;
	c->left = c->left << 4 | (uint64_t)v;
	if (c->left > c->max_body - c->total)
		return fail(c, 413);
	return 0;
}

/* The end of a chunk-size line: data follows, or the trailer section if the size was 0. */
static void size_line_done(struct pt_chunked *c)
{
	c->total += c->left;
	c->state = c->left ? S_DATA : S_TRAILER;
	c->line = 0;
}

/* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ) (RFC 9112 7.1.1),
 * ext-val = token / quoted-string (RFC 9110 5.6.4): the state after byte ch. */
static uint8_t ext_next(uint8_t s, uint8_t ch)
{
	const bool tch = CT(ch) & PT_CT_TCHAR, ws = ch == ' ' || ch == '\t';

	switch (s) {
	case S_SIZE_BWS:   /* BWS ";" */
		return ws ? s : ch == ';' ? S_EXT_NAME0 : S_ERR_400;
	case S_EXT_NAME0:  /* BWS ext-name */
		return ws ? s : tch ? S_EXT_NAME : S_ERR_400;
	case S_EXT_NAME:   /* more of the name, or the end of the line */
		if (tch)
			return s;
		if (ch == '\r')
			return S_SIZE_LF;
		/* fall through */
	case S_EXT_NAME_BWS: /* BWS "=", or BWS ";" */
		return ws ? S_EXT_NAME_BWS : ch == '=' ? S_EXT_VAL0 : ch == ';' ? S_EXT_NAME0
		     : S_ERR_400;
	case S_EXT_VAL0:   /* BWS ext-val */
		return ws ? s : ch == '"' ? S_EXT_QUOTED : tch ? S_EXT_TOKEN : S_ERR_400;
	case S_EXT_QUOTED: /* qdtext, a quoted-pair, or the closing quote */
		return ch == '"' ? S_EXT_END : ch == '\\' ? S_EXT_QPAIR
		     : (CT(ch) & PT_CT_QDTEXT) ? s : S_ERR_400;
	case S_EXT_QPAIR:  /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
		return (CT(ch) & PT_CT_VALUE) ? S_EXT_QUOTED : S_ERR_400;
	case S_EXT_TOKEN:
		if (tch)
			return s;
		/* fall through */
	default:           /* S_EXT_END */
		return ws ? S_SIZE_BWS : ch == ';' ? S_EXT_NAME0 : ch == '\r' ? S_SIZE_LF
		     : S_ERR_400;
	}
}

/* One byte of a chunk-size line: size, extensions, CRLF. */
static int size_line_byte(struct pt_chunked *c, uint8_t ch)
{
	if (++c->line > c->max_line) /* bounds extensions too: RFC 9112 7.1.1 */
		return fail(c, 400);
	if (c->state == S_SIZE_LF) {
		if (ch != '\n')
			return fail(c, 400);
		size_line_done(c);
		return 0;
	}
	if (c->state == S_SIZE) {
		int v = pt__hexval(ch);
		if (v >= 0)
			return size_digit(c, v);
		if (c->digits == 0)
			return fail(c, 400);
		c->state = S_EXT_END; /* the size is complete */
	}
	c->state = ext_next(c->state, ch);
	return c->state == S_ERR_400 ? -400 : 0;
}

/* One byte of the trailer section (RFC 9112 7.1.2): field lines like the head's, no
 * obs-fold, then CRLF. Bounded by max_trailer (431, as for header fields). */
static int trailer_byte(struct pt_chunked *c, uint8_t ch)
{
	bool ok;

	if (++c->line > c->max_trailer)
		return fail(c, 431);
	switch (c->state) {
	case S_TRAILER:
		ok = (CT(ch) & PT_CT_TCHAR) || ch == '\r';
		c->state = ch == '\r' ? S_FINAL_LF : S_TR_NAME;
		break;
	case S_TR_NAME:
		ok = (CT(ch) & PT_CT_TCHAR) || ch == ':';
		c->state = ch == ':' ? S_TR_VALUE : S_TR_NAME;
		break;
	case S_TR_VALUE:
		ok = (CT(ch) & PT_CT_VALUE) || ch == '\r';
		c->state = ch == '\r' ? S_TR_LF : S_TR_VALUE;
		break;
	case S_TR_LF:
		ok = ch == '\n';
		c->state = S_TRAILER;
		break;
	default: /* S_FINAL_LF */
		ok = ch == '\n';
		c->state = S_DONE;
		break;
	}
	return ok ? 0 : fail(c, 400);
}

/* One framing byte in any state but S_DATA. */
static int framing_byte(struct pt_chunked *c, uint8_t ch)
{
	switch (c->state) {
	case S_DATA_CR:
		c->state = S_DATA_LF;
		return ch == '\r' ? 0 : fail(c, 400);
	case S_DATA_LF:
		c->state = S_SIZE;
		c->digits = 0;
		c->left = 0;
		return ch == '\n' ? 0 : fail(c, 400);
	case S_TRAILER:
	case S_TR_NAME:
	case S_TR_VALUE:
	case S_TR_LF:
	case S_FINAL_LF:
		return trailer_byte(c, ch);
	default:
		return size_line_byte(c, ch);
	}
}

/* A finished decoder's answer: DONE or the error it stopped on. */
static int final_status(const struct pt_chunked *c)
{
	switch (c->state) {
	case S_DONE:
		return PT_CHUNKED_DONE;
	case S_ERR_413:
		return -413;
	case S_ERR_431:
		return -431;
	default:
		return -400;
	}
}

int pt_chunked_feed(struct pt_chunked *c, const char *buf, size_t len, size_t *used,
		    struct pt_slice *data)
{
	size_t i = 0;

	*data = (struct pt_slice){ buf, 0 };
	while (i < len && c->state < S_DONE) {
		if (c->state == S_DATA) {
			size_t n = c->left < len - i ? (size_t)c->left : len - i;
			*data = (struct pt_slice){ buf + i, n };
			c->left -= n;
			if (c->left == 0)
				c->state = S_DATA_CR;
			i += n;
			break;
		}
		if (framing_byte(c, (uint8_t)buf[i++]) < 0)
			break;
	}
	*used = i;
	return c->state < S_DONE ? PT_CHUNKED_MORE : final_status(c);
}
