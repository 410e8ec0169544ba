/*
 * Internals of the portico options shared by config.c and config_values.c (the value
 * parsers). Not for other files: config.h is the interface.
 */
#ifndef PT_SERVER_CONFIG_INT_H
#define PT_SERVER_CONFIG_INT_H

#include <stdbool.h>
#include <stdint.h>

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)

#define PROTOCOLS_EXPECTED "TLSv1.2, TLSv1.3 or both, comma-separated"

/* 1*DIGIT and nothing else, into *v (false on overflow or anything else). */
bool pt__parse_uint(const char *s, uint64_t *v);
/* BYTES with an optional k, m or g (1024-based) suffix. */
bool pt__parse_size(const char *s, uint64_t *v);
/* Seconds with up to three decimals, into milliseconds. */
bool pt__parse_ms(const char *s, uint64_t *ms);
/* IPv4:PORT, [IPv6]:PORT, *:PORT or PORT, normalized into out (PT_CONFIG_ADDR_MAX bytes). */
bool pt__parse_listen(const char *s, char *out);
/* on/yes/true/1 or off/no/false/0, any case. */
bool pt__parse_bool(const char *v, bool *b);
/* "TLSv1.2,TLSv1.3" into the lowest and highest version: NULL, or what is expected. */
const char *pt__parse_protocols(const char *v, unsigned *min, unsigned *max);

#endif
