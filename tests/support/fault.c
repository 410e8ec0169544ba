/*
 * Fault rules and PORTICO_FAULTS for the test harness (see fault.h, and docs/ENGINE.md, "Fault
 * injection"). The library has one hook (pt_fault_sim); this is the policy behind it.
 *
 * One rule per named point, each field atomic. The hook counts the call, decides from the call
 * number alone (so the same rule and seed fail the same call numbers whatever the threads do)
 * and takes a hit only while the rule's count allows it (compare-and-swap), so `count` is never
 * exceeded even when several threads race for the last one.
 */
#ifdef PT_TESTING

#include "fault.h"
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The points PORTICO_FAULTS names, in the order of their slots (a slot number is part of the
 * seeded draw, so this order keeps the draws of earlier builds). */
static const struct { const char *name; int point; } points[] = {
	{ "accept", PT_FAULT_ACCEPT }, { "recv", PT_FAULT_RECV }, { "send", PT_FAULT_SEND },
	{ "socket", PT_FAULT_SOCKET }, { "open", PT_SRV_FAULT_OPEN }, { "alloc", PT_FAULT_ALLOC },
};
#define NSLOTS ((int)(sizeof points / sizeof points[0]))

struct rule {
	atomic_int err;                  /* positive errno; 0 = disarmed */
	atomic_uint nth, every, rate, count, after;
	atomic_bool always;              /* no trigger given: every call past `after` fails */
	atomic_bool from_env;            /* say so on stderr when the count is spent */
	_Atomic uint64_t calls, hits;
};

static struct rule rules[NSLOTS];
static atomic_uint armed;                /* bit per op: a rule is set */
static _Atomic uint64_t seed = 1;

#define E(x) { #x, x }
static const struct { const char *name; int val; } errnos[] = {
	E(EPERM), E(ENOENT), E(EINTR), E(EIO), E(ENXIO), E(EBADF), E(EAGAIN), E(EWOULDBLOCK),
	E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY), E(EEXIST), E(ENODEV), E(ENOTDIR), E(EISDIR),
	E(EINVAL), E(ENFILE), E(EMFILE), E(EFBIG), E(ENOSPC), E(ESPIPE), E(EROFS), E(EPIPE),
	E(ENAMETOOLONG), E(ENOSYS), E(ELOOP), E(EOVERFLOW), E(EPROTO), E(EMSGSIZE),
	E(EOPNOTSUPP), E(EADDRINUSE), E(EADDRNOTAVAIL), E(ENETDOWN), E(ENETUNREACH),
	E(ENETRESET), E(ECONNABORTED), E(ECONNRESET), E(ENOBUFS), E(ENOTCONN), E(ESHUTDOWN),
	E(ETIMEDOUT), E(ECONNREFUSED), E(EHOSTUNREACH), E(EALREADY), E(ECANCELED), E(ESTALE),
	E(EDQUOT),
};
#undef E

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The draw for call number i of a slot: uniform in [0, 1 000 000), a pure function of
 * (seed, slot, i). */
static unsigned draw(int slot, uint64_t i)
{
	uint64_t s = atomic_load_explicit(&seed, memory_order_relaxed);

	return (unsigned)(splitmix64(splitmix64(s ^ ((uint64_t)slot << 56)) ^ i) % 1000000u);
}

static void rule_store(int slot, const struct fault_rule *p, bool from_env)
{
	struct rule *r = &rules[slot];
	int err = p->err < 0 ? -p->err : p->err;

	/* disarm first: a racing hook call sees either the old rule, nothing, or the new one
	 * (a field of the old one mixed with the new at worst, which a test never relies on) */
	atomic_fetch_and(&armed, ~(1u << slot));
	atomic_store(&r->err, 0);
	atomic_store(&r->nth, p->nth);
	atomic_store(&r->every, p->every);
	atomic_store(&r->rate, p->rate_ppm);
	atomic_store(&r->count, p->count);
	atomic_store(&r->after, p->after);
	atomic_store(&r->always, !p->nth && !p->every && !p->rate_ppm);
	atomic_store(&r->from_env, from_env);
	atomic_store(&r->calls, 0);
	atomic_store(&r->hits, 0);
	if (err) {
		atomic_store_explicit(&r->err, err, memory_order_release);
		atomic_fetch_or(&armed, 1u << slot);
	}
}

static void clear_all(void)
{
	static const struct fault_rule none;

	for (int i = 0; i < NSLOTS; i++)
		rule_store(i, &none, false);
}

/* ---- PORTICO_FAULTS ---- */

static bool parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static bool match(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && !strncmp(s, word, n);
}

static int parse_errno(const char *s, size_t n)
{
	uint64_t v;

	for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
		if (match(s, n, errnos[i].name))
			return errnos[i].val;
	if (parse_uint(s, n, 4095, &v) && v > 0)
		return (int)v;
	return 0;
}

#define BAD(...) do { snprintf(why, wn, __VA_ARGS__); return -EINVAL; } while (0)

/* One "OP=ERR[@knob[/knob]...]" or "seed=N" item of len n. */
static int parse_item(const char *it, size_t n, struct fault_rule *out, bool *have,
		      uint64_t *seed_out, bool *have_seed, char *why, size_t wn)
{
	const char *eq = memchr(it, '=', n);
	int ni = (int)n;

	if (!eq)
		BAD("PORTICO_FAULTS: '%.*s': expected OP=ERRNO[@KNOB:N[/KNOB:N]...] or seed=N", ni, it);
	size_t kl = (size_t)(eq - it);
	const char *val = eq + 1, *end = it + n;
	if (match(it, kl, "seed")) {
		uint64_t v;
		if (!parse_uint(val, (size_t)(end - val), UINT64_MAX, &v))
			BAD("PORTICO_FAULTS: '%.*s': the seed must be a decimal number", ni, it);
		*seed_out = v;
		*have_seed = true;
		return 0;
	}
	int op = -1;
	for (int i = 0; i < NSLOTS; i++)
		if (match(it, kl, points[i].name))
			op = i;
	if (op < 0)
		BAD("PORTICO_FAULTS: '%.*s': unknown operation '%.*s' (accept, recv, send, socket, open, "
		    "alloc, or seed)", ni, it, (int)kl, it);
	if (have[op])
		BAD("PORTICO_FAULTS: '%.*s': a second rule for %s", ni, it, points[op].name);
	struct fault_rule r = { 0 };
	const char *at = memchr(val, '@', (size_t)(end - val));
	const char *eend = at ? at : end;
	if (!(r.err = parse_errno(val, (size_t)(eend - val))))
		BAD("PORTICO_FAULTS: '%.*s': unknown errno '%.*s' (a name such as EMFILE, or a number "
		    "from 1 to 4095)", ni, it, (int)(eend - val), val);
	for (const char *k = at ? at + 1 : end; k < end;) {
		const char *slash = memchr(k, '/', (size_t)(end - k));
		const char *kend = slash ? slash : end;
		const char *colon = memchr(k, ':', (size_t)(kend - k));
		int kn = (int)(kend - k);
		uint64_t v;
		if (!colon)
			BAD("PORTICO_FAULTS: '%.*s': knob '%.*s' needs a value (nth:N, every:N, rate:PPM, "
			    "count:N, after:N)", ni, it, kn, k);
		size_t name_len = (size_t)(colon - k);
		static const char *const knobs[] = { "nth", "every", "rate", "count", "after" };
		unsigned *field[] = { &r.nth, &r.every, &r.rate_ppm, &r.count, &r.after };
		int kx = -1;
		for (int i = 0; i < 5; i++)
			if (match(k, name_len, knobs[i]))
				kx = i;
		if (kx < 0)
			BAD("PORTICO_FAULTS: '%.*s': unknown knob '%.*s' (nth, every, rate, count, after)",
			    ni, it, (int)name_len, k);
		bool rate = kx == 2, zero_ok = kx == 4;
		if (!parse_uint(colon + 1, (size_t)(kend - colon - 1), rate ? 1000000 : UINT32_MAX, &v) ||
		    (!v && !zero_ok))
			BAD("PORTICO_FAULTS: '%.*s': knob '%.*s': the value must be a whole number from %d to %s",
			    ni, it, kn, k, zero_ok ? 0 : 1, rate ? "1000000 (parts per million)" : "4294967295");
		*field[kx] = (unsigned)v;
		k = slash ? slash + 1 : end;
		if (slash && k == end)
			BAD("PORTICO_FAULTS: '%.*s': empty knob after '/'", ni, it);
	}
	if (at && at + 1 == end)
		BAD("PORTICO_FAULTS: '%.*s': nothing after '@'", ni, it);
	out[op] = r;
	have[op] = true;
	return 0;
}

static int parse_apply(const char *spec, char *why, size_t wn, bool from_env)
{
	struct fault_rule r[NSLOTS] = { { 0 } };
	bool have[NSLOTS] = { false }, have_seed = false;
	uint64_t sd = 1;
	int err;

	if (!spec)
		spec = "";
	for (const char *p = spec; *p;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		while (p < end && isspace((unsigned char)*p))
			p++;
		const char *e = end;
		while (e > p && isspace((unsigned char)e[-1]))
			e--;
		if (e > p && (err = parse_item(p, (size_t)(e - p), r, have, &sd, &have_seed, why, wn)) < 0)
			return err;
		p = comma ? comma + 1 : end;
	}
	clear_all();
	if (have_seed)
		atomic_store(&seed, sd);
	for (int i = 0; i < NSLOTS; i++)
		if (have[i])
			rule_store(i, &r[i], from_env);
	return 0;
}

/* ---- the hook ---- */

static int slot_of(int point)
{
	for (int i = 0; i < NSLOTS; i++)
		if (points[i].point == point)
			return i;
	return -1;
}

/* The hook: 0, or -errno when the rule of point's slot fires. Any thread. */
static int hook(int point)
{
	int s = slot_of(point);

	if (s < 0 || !(atomic_load_explicit(&armed, memory_order_acquire) & (1u << s)))
		return 0;
	struct rule *r = &rules[s];
	int err = atomic_load_explicit(&r->err, memory_order_acquire);
	if (!err)
		return 0;
	uint64_t i = atomic_fetch_add_explicit(&r->calls, 1, memory_order_relaxed) + 1;
	uint64_t after = atomic_load_explicit(&r->after, memory_order_relaxed);
	if (i <= after)
		return 0;
	uint64_t k = i - after;
	unsigned nth = atomic_load_explicit(&r->nth, memory_order_relaxed);
	unsigned every = atomic_load_explicit(&r->every, memory_order_relaxed);
	unsigned rate = atomic_load_explicit(&r->rate, memory_order_relaxed);
	bool fire = atomic_load_explicit(&r->always, memory_order_relaxed) ||
		    (nth && k == nth) || (every && k % every == 0) || (rate && draw(s, i) < rate);
	if (!fire)
		return 0;
	unsigned count = atomic_load_explicit(&r->count, memory_order_relaxed);
	uint64_t h = atomic_load_explicit(&r->hits, memory_order_relaxed);
	do {
		if (count && h >= count)
			return 0;
	} while (!atomic_compare_exchange_weak_explicit(&r->hits, &h, h + 1, memory_order_relaxed,
							memory_order_relaxed));
	if (count && h + 1 == count && atomic_load_explicit(&r->from_env, memory_order_relaxed))
		fprintf(stderr, "portico: fault injection: %s: all %u failures injected\n",
			points[s].name, count);
	return -err;
}

/* Before main: the hook goes in, and PORTICO_FAULTS is read (bad: stderr, exit status 2). */
__attribute__((constructor)) static void install(void)
{
	const char *spec = getenv("PORTICO_FAULTS");
	char why[512];

	pt_fault_hook_set(hook);
	if (!spec || !*spec)
		return;
	if (parse_apply(spec, why, sizeof why, true) < 0) {
		fprintf(stderr, "portico: %s\n", why);
		exit(2);
	}
	fprintf(stderr, "portico: fault injection: PORTICO_FAULTS=%s\n", spec);
}

/* ---- the interface ---- */

int fault_set_rule(int point, const struct fault_rule *p)
{
	int s = slot_of(point);

	if (s < 0 || !p || p->rate_ppm > 1000000 || p->err > 4095 || p->err < -4095)
		return -EINVAL;
	rule_store(s, p, false);
	return 0;
}

int fault_set(int point, int err, unsigned nth, unsigned every, unsigned rate_ppm, unsigned count)
{
	struct fault_rule r = { .err = err, .nth = nth, .every = every, .rate_ppm = rate_ppm,
				.count = count };

	return fault_set_rule(point, &r);
}

void fault_clear(void)
{
	clear_all();
}

void fault_seed(uint64_t s)
{
	atomic_store(&seed, s);
}

uint64_t fault_hits(int point)
{
	int s = slot_of(point);

	return s < 0 ? 0 : atomic_load(&rules[s].hits);
}

uint64_t fault_calls(int point)
{
	int s = slot_of(point);

	return s < 0 ? 0 : atomic_load(&rules[s].calls);
}

int fault_parse(const char *spec, char *why, size_t n)
{
	char scratch[8];

	if (!why || !n) {
		why = scratch;
		n = sizeof scratch;
	}
	why[0] = 0;
	return parse_apply(spec, why, n, false);
}

#else

typedef int pt__fault_support_release_build; /* nothing here without PT_TESTING */

#endif
