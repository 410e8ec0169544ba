/*
 * Fault injection for test builds (see fault.h and docs/ENGINE.md, "Fault injection").
 *
 * One rule per operation, each field atomic. pt__fault counts the call, decides from the call
 * number alone (so the same rule and seed fail the same call numbers whatever the threads do)
 * and takes a hit only while the rule's count allows it (compare-and-swap), so `count` is never
 * exceeded even when several threads race for the last one.
 */
#ifdef PT_TESTING

#include "engine/fault.h"
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct rule {
	atomic_int err;                  /* positive errno; 0 = disarmed */
	atomic_uint nth, every, rate, count, after;
	atomic_bool always;              /* no trigger given: every call past `after` fails */
	atomic_bool from_env;            /* say so on stderr when the count is spent */
	_Atomic uint64_t calls, hits;
};

static struct rule rules[PT_F__COUNT];
static atomic_uint armed;                /* bit per op: a rule is set */
static _Atomic uint64_t seed = 1;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static __thread int last[PT_F__COUNT];

static const char *const op_names[PT_F__COUNT] = {
	[PT_F_ACCEPT] = "accept", [PT_F_RECV] = "recv", [PT_F_SEND] = "send",
	[PT_F_SOCKET] = "socket", [PT_F_OPEN] = "open", [PT_F_ALLOC] = "alloc",
};

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

/* The draw for call number i of op: uniform in [0, 1 000 000), a pure function of
 * (seed, op, i). */
static unsigned draw(enum pt_fault_op op, uint64_t i)
{
	uint64_t s = atomic_load_explicit(&seed, memory_order_relaxed);

	return (unsigned)(splitmix64(splitmix64(s ^ ((uint64_t)op << 56)) ^ i) % 1000000u);
}

static void rule_store(enum pt_fault_op op, const struct pt_fault_rule *p, bool from_env)
{
	struct rule *r = &rules[op];
	int err = p->err < 0 ? -p->err : p->err;

	/* disarm first: a racing pt__fault sees either the old rule, nothing, or the new one
	 * (a field of the old one mixed with the new at worst, which a test never relies on) */
	atomic_fetch_and(&armed, ~(1u << op));
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
		atomic_fetch_or(&armed, 1u << op);
	}
}

static void clear_all(void)
{
	static const struct pt_fault_rule none;

	for (int op = 0; op < PT_F__COUNT; op++)
		rule_store((enum pt_fault_op)op, &none, false);
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
static int parse_item(const char *it, size_t n, struct pt_fault_rule *out, bool *have,
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
	for (int i = 0; i < PT_F__COUNT; i++)
		if (match(it, kl, op_names[i]))
			op = i;
	if (op < 0)
		BAD("PORTICO_FAULTS: '%.*s': unknown operation '%.*s' (accept, recv, send, socket, open, "
		    "alloc, or seed)", ni, it, (int)kl, it);
	if (have[op])
		BAD("PORTICO_FAULTS: '%.*s': a second rule for %s", ni, it, op_names[op]);
	struct pt_fault_rule r = { 0 };
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
	struct pt_fault_rule r[PT_F__COUNT] = { { 0 } };
	bool have[PT_F__COUNT] = { false }, have_seed = false;
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
	for (int op = 0; op < PT_F__COUNT; op++)
		if (have[op])
			rule_store((enum pt_fault_op)op, &r[op], from_env);
	return 0;
}

static void env_read(void)
{
	const char *spec = getenv("PORTICO_FAULTS");
	char why[512];

	if (!spec || !*spec)
		return;
	if (parse_apply(spec, why, sizeof why, true) < 0) {
		fprintf(stderr, "portico: %s\n", why);
		exit(2);
	}
	fprintf(stderr, "portico: fault injection: PORTICO_FAULTS=%s\n", spec);
}

/* ---- the interface ---- */

void pt__fault_env(void)
{
	pthread_once(&env_once, env_read);
}

int pt__fault(enum pt_fault_op op)
{
	if ((unsigned)op >= PT_F__COUNT)
		return 0;
	pt__fault_env();
	if (!(atomic_load_explicit(&armed, memory_order_acquire) & (1u << op)))
		return last[op] = 0;
	struct rule *r = &rules[op];
	int err = atomic_load_explicit(&r->err, memory_order_acquire);
	if (!err)
		return last[op] = 0;
	uint64_t i = atomic_fetch_add_explicit(&r->calls, 1, memory_order_relaxed) + 1;
	uint64_t after = atomic_load_explicit(&r->after, memory_order_relaxed);
	if (i <= after)
		return last[op] = 0;
	uint64_t k = i - after;
	unsigned nth = atomic_load_explicit(&r->nth, memory_order_relaxed);
	unsigned every = atomic_load_explicit(&r->every, memory_order_relaxed);
	unsigned rate = atomic_load_explicit(&r->rate, memory_order_relaxed);
	bool fire = atomic_load_explicit(&r->always, memory_order_relaxed) ||
		    (nth && k == nth) || (every && k % every == 0) || (rate && draw(op, i) < rate);
	if (!fire)
		return last[op] = 0;
	unsigned count = atomic_load_explicit(&r->count, memory_order_relaxed);
	uint64_t h = atomic_load_explicit(&r->hits, memory_order_relaxed);
	do {
		if (count && h >= count)
			return last[op] = 0;
	} while (!atomic_compare_exchange_weak_explicit(&r->hits, &h, h + 1, memory_order_relaxed,
							memory_order_relaxed));
	if (count && h + 1 == count && atomic_load_explicit(&r->from_env, memory_order_relaxed))
		fprintf(stderr, "portico: fault injection: %s: all %u failures injected\n",
			op_names[op], count);
	return last[op] = -err;
}

int pt__fault_set_rule(enum pt_fault_op op, const struct pt_fault_rule *p)
{
	if ((unsigned)op >= PT_F__COUNT || !p || p->rate_ppm > 1000000 || p->err > 4095 ||
	    p->err < -4095)
		return -EINVAL;
	pt__fault_env();
	rule_store(op, p, false);
	return 0;
}

int pt__fault_set(enum pt_fault_op op, int err, unsigned nth, unsigned every, unsigned rate_ppm,
		  unsigned count)
{
	struct pt_fault_rule r = { .err = err, .nth = nth, .every = every, .rate_ppm = rate_ppm,
				   .count = count };

	return pt__fault_set_rule(op, &r);
}

void pt__fault_clear(void)
{
	pt__fault_env();
	clear_all();
}

void pt__fault_seed(uint64_t s)
{
	pt__fault_env();
	atomic_store(&seed, s);
}

uint64_t pt__fault_hits(enum pt_fault_op op)
{
	pt__fault_env();
	return (unsigned)op < PT_F__COUNT ? atomic_load(&rules[op].hits) : 0;
}

uint64_t pt__fault_calls(enum pt_fault_op op)
{
	pt__fault_env();
	return (unsigned)op < PT_F__COUNT ? atomic_load(&rules[op].calls) : 0;
}

int pt__fault_last(enum pt_fault_op op)
{
	return (unsigned)op < PT_F__COUNT ? last[op] : 0;
}

int pt__fault_parse(const char *spec, char *why, size_t n)
{
	char scratch[8];

	pt__fault_env();
	if (!why || !n) {
		why = scratch;
		n = sizeof scratch;
	}
	why[0] = 0;
	return parse_apply(spec, why, n, false);
}

#else

typedef int pt__fault_release_build; /* nothing here without PT_TESTING (an empty unit is not C) */

#endif
