/*
 * Small helpers every layer (engine, http, server) shares, each written once: invariants and
 * the sanitizer's view of recycled memory, the monotonic clock, the RFC 9110 character classes
 * (tchar, OWS), hex digits, and decimal or hex formatting of a u64 (h2o's lib/common, nginx's
 * ngx_string.c).
 *
 * Private to the sources (src/): no public header includes it. Everything is static inline, so
 * a target that compiles a few sources by itself (the fuzzers) needs nothing more, and nothing
 * here is exported. Pure functions of their arguments, any thread (the clocks read the kernel's).
 */
#ifndef PT_UTIL_H
#define PT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <string.h>

/* ---- what the Windows C runtime (mingw-w64) lacks ----------------------------------------- */
#ifdef _WIN32
#include <malloc.h>
#ifndef CLOCK_MONOTONIC_COARSE
#define CLOCK_MONOTONIC_COARSE CLOCK_MONOTONIC    /* QueryPerformanceCounter */
#endif
#ifndef CLOCK_REALTIME_COARSE
#define CLOCK_REALTIME_COARSE CLOCK_REALTIME
#endif
/* aligned memory has its own free on Windows */
#define pt__aligned_alloc(align, n) _aligned_malloc((n), (align))
#define pt__aligned_free(p) _aligned_free(p)
/* free heap pages back to the system */
#define pt__heap_trim() _heapmin()

static inline void *memmem(const void *h, size_t hl, const void *n, size_t nl)
{
	const char *p = h;

	if (!nl)
		return (void *)h;
	for (; hl >= nl; p++, hl--)
		if (*p == *(const char *)n && !memcmp(p, n, nl))
			return (void *)p;
	return NULL;
}
#else
#include <malloc.h>
#define pt__aligned_alloc(align, n) aligned_alloc((align), (n))
#define pt__aligned_free(p) free(p)
/* under ASan the heap is ASan's (which gives pages back itself): glibc's trim would only touch
 * glibc's arenas, which ASan's threads do not use, and it upsets glibc's arena accounting at
 * thread exit */
#define pt__heap_trim() do { if (!PT_ASAN) malloc_trim(0); } while (0)
#endif

/* ---- invariants and recycling ---------------------------------------------------------------
 * PT_ASSERT(x) states an invariant where a comment would say "cannot happen" (libuv). It is
 * checked in test builds (PT_TESTING: make SAN=1 and SAN=tsan) and debug builds (make DEBUG=1:
 * PT_DEBUG), and compiled out (but still type-checked) in release builds. A failure prints the
 * place and the expression and aborts, so the sanitizer or a core dump shows the stack. */
#if defined(PT_TESTING) || defined(PT_DEBUG)
#include <stdio.h>
#include <stdlib.h>

__attribute__((noreturn, cold)) static inline void pt__assert_fail(const char *what,
								  const char *file, int line)
{
	fprintf(stderr, "portico: %s:%d: invariant broken: %s\n", file, line, what);
	abort();
}

#define PT_ASSERT(x) ((x) ? (void)0 : pt__assert_fail(#x, __FILE__, __LINE__))
#define PT_ASSERTS 1
#else
#define PT_ASSERT(x) ((void)sizeof(!(x)))
#define PT_ASSERTS 0
#endif

/* Under AddressSanitizer (gcc says so with __SANITIZE_ADDRESS__, clang with __has_feature)
 * lookaside lists do not recycle: every object goes back to free(), so a use after recycling is
 * a use after free that ASan reports instead of a silent read of the next owner's object (h2o's
 * lib/common/memory.c). Memory that must stay allocated while unused (a connection slot in its
 * block) is poisoned instead: PT_POISON / PT_UNPOISON, no-ops without ASan. */
#if defined(__SANITIZE_ADDRESS__)
#define PT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PT_ASAN 1
#endif
#endif
#ifndef PT_ASAN
#define PT_ASAN 0
#endif
#define PT_RECYCLE (!PT_ASAN)

#if PT_ASAN
#include <sanitizer/asan_interface.h>
#define PT_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define PT_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
/* LeakSanitizer scans the heap, stacks and globals, not our own mappings: what a connection
 * block points to (a TLS state, a PROXY state) would look leaked while the connection lives.
 * Register such mappings as roots. */
#include <sanitizer/lsan_interface.h>
#define PT_LSAN_ROOT(p, n)   __lsan_register_root_region((p), (n))
#define PT_LSAN_UNROOT(p, n) __lsan_unregister_root_region((p), (n))
#else
#define PT_POISON(p, n)   ((void)(p), (void)(n))
#define PT_UNPOISON(p, n) ((void)(p), (void)(n))
#define PT_LSAN_ROOT(p, n)   ((void)(p), (void)(n))
#define PT_LSAN_UNROOT(p, n) ((void)(p), (void)(n))
#endif

/* ---- monotonic clock ------------------------------------------------------------------------ */

static inline uint64_t pt__clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Milliseconds and microseconds of CLOCK_MONOTONIC (vDSO: no system call). */
static inline uint64_t pt__now_ms(void)
{
	return pt__clock_us(CLOCK_MONOTONIC) / 1000u;
}

static inline uint64_t pt__now_us(void)
{
	return pt__clock_us(CLOCK_MONOTONIC);
}

/* Milliseconds of CLOCK_MONOTONIC_COARSE: the last tick's time (1 to 4 ms old), cheaper still;
 * for cache ages, where a tick does not matter. */
static inline uint64_t pt__now_coarse_ms(void)
{
	return pt__clock_us(CLOCK_MONOTONIC_COARSE) / 1000u;
}

/* ---- character classes (RFC 9110 5.6) ------------------------------------------------------- */

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" /
 * "~" / DIGIT / ALPHA (5.6.2), as two 64-bit masks over ASCII (bit c, then bit c - 64);
 * tests/unit/util/test_util.c checks them against that list. */
static inline bool pt__is_tchar(unsigned char c)
{
	static const uint64_t lo = 0x03ff6cfa00000000ull, hi = 0x57ffffffc7fffffeull;

	return c < 64 ? (lo >> c) & 1 : c < 128 ? (hi >> (c - 64)) & 1 : false;
}

/* OWS = *( SP / HTAB ) (5.6.3). */
static inline bool pt__is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* The first byte of [p, end) that is not OWS (end if none). */
static inline const char *pt__skip_ows(const char *p, const char *end)
{
	while (p < end && pt__is_ows(*p))
		p++;
	return p;
}

/* Narrows [*p, *end) to drop OWS on both sides. */
static inline void pt__trim_ows(const char **p, const char **end)
{
	*p = pt__skip_ows(*p, *end);
	while (*end > *p && pt__is_ows((*end)[-1]))
		(*end)--;
}

/* ---- hex and decimal ------------------------------------------------------------------------ */

/* Value of the hex digit c (HEXDIG, either case), or -1. */
static inline int pt__hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

#define PT_U64_DEC_MAX 20   /* digits of UINT64_MAX */
#define PT_U64_HEX_MAX 16

/* Writes the digits of v in base 10 (or 16, lowercase) to p, no leading zeros and no NUL;
 * returns how many (at most PT_U64_DEC_MAX / PT_U64_HEX_MAX). */
static inline size_t pt__fmt_base(char *p, uint64_t v, unsigned base)
{
	char tmp[PT_U64_DEC_MAX];
	size_t n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

static inline size_t pt__fmt_u64(char *p, uint64_t v)
{
	return pt__fmt_base(p, v, 10);
}

static inline size_t pt__fmt_hex64(char *p, uint64_t v)
{
	return pt__fmt_base(p, v, 16);
}

#endif
