/*
 * Content negotiation of precompressed variants (RFC 9110 12.5.3 Accept-Encoding).
 *
 * The server looks for "file.br", "file.zst" and "file.gz" next to "file"; the mask of the
 * ones that exist, and the request's Accept-Encoding value, go to pt_enc_choose, which
 * returns the coding to send. Whenever a variant exists the response must carry
 * "Vary: Accept-Encoding" (RFC 9110 12.5.5), whichever coding was chosen, so that caches
 * keep the variants apart; with a coding, "Content-Encoding: <pt_enc_name>".
 *
 * Policy:
 *  - no Accept-Encoding field, or an empty one: identity (RFC 9110 12.5.3 lets a server
 *    assume any coding is acceptable when the field is absent; sending compressed bytes to
 *    a client that did not ask is what breaks scripts, so we do not);
 *  - codings are compared case-insensitively; "x-gzip" is gzip (RFC 9110 8.4.1.3);
 *  - a coding's weight is its own q, else that of "*", else it is not acceptable;
 *    q=0 means "not acceptable" (RFC 9110 12.4.2);
 *  - an element with an invalid qvalue or another parameter is ignored as a whole;
 *    if a coding is listed twice, the first element counts;
 *  - among acceptable available codings the highest q wins, ties go br > zstd > gzip
 *    (smallest first, the order h2o uses). Identity is sent instead only when no available
 *    coding is acceptable, or when "identity" is listed with a higher q than the best one;
 *  - when nothing acceptable is available (even "identity;q=0"), identity is sent anyway:
 *    RFC 9110 12.5.3 allows disregarding the field instead of answering 406.
 */
#ifndef PT_SERVER_ENCODING_H
#define PT_SERVER_ENCODING_H

#include <stddef.h>

enum pt_enc {
	PT_ENC_IDENTITY = 0,
	PT_ENC_BR = 1u << 0,
	PT_ENC_ZSTD = 1u << 1,
	PT_ENC_GZIP = 1u << 2,
};

#define PT_ENC_ALL (PT_ENC_BR | PT_ENC_ZSTD | PT_ENC_GZIP)

/* Chooses the coding for a response. ae[0..len) is the Accept-Encoding value (ae NULL: the
 * field is absent); avail is a mask of the PT_ENC_* variants that exist. Returns one
 * PT_ENC_* value, which is PT_ENC_IDENTITY or one bit of avail. When the field appears more
 * than once, pass the values joined by ", " (RFC 9110 5.3). Pure: no allocation, any
 * thread. */
unsigned pt_enc_choose(const char *ae, size_t len, unsigned avail);

/* The file-name suffix of a variant: ".br", ".zst", ".gz", or "" for identity. */
const char *pt_enc_suffix(unsigned enc);

/* The Content-Encoding value: "br", "zstd", "gzip", or NULL for identity (send none). */
const char *pt_enc_name(unsigned enc);

#endif
