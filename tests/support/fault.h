/*
 * The fault policy of the test harness (SQLite's test_*.c beside sqlite3FaultSim): rules that
 * decide which calls of each fault point fail, installed as the library's one hook
 * (pt_fault_hook_set, engine.h). Linked into the test programs and into the test builds of
 * portico; in a process that links it the hook is installed, and PORTICO_FAULTS read, before
 * main (a malformed one: a message on stderr, exit status 2).
 *
 * A point is named by the engine (PT_FAULT_ACCEPT ... PT_FAULT_ALLOC, engine.h) or by the layer
 * above that declares it (PT_SRV_FAULT_OPEN, src/server/fault.h); PORTICO_FAULTS calls them
 * accept, recv, send, socket, open and alloc. Test builds only (PT_TESTING). Call counts and hit
 * counts are atomic: any thread.
 */
#ifndef PT_TEST_SUPPORT_FAULT_H
#define PT_TEST_SUPPORT_FAULT_H

#include <portico/engine.h>
#include "server/fault.h"
#include <stddef.h>
#include <stdint.h>

#ifdef PT_TESTING

/* One rule per point. A call (counted from 1 since the rule was set) fails when it is past
 * `after` and any trigger fires: it is call number after + nth, or (call - after) is a
 * multiple of every, or the seeded draw for this call number falls under rate_ppm; with no
 * trigger at all every call past `after` fails. At most `count` failures (0: no limit). */
struct fault_rule {
	int err;                /* errno to inject, positive or negative; 0 disarms the rule */
	unsigned nth;           /* fail call number after + nth (once) */
	unsigned every;         /* fail calls after + every, after + 2*every, ... */
	unsigned rate_ppm;      /* fail each call with probability rate_ppm / 1 000 000 */
	unsigned count;         /* stop after this many failures; 0 = no limit */
	unsigned after;         /* calls that always go ahead first */
};

/* Sets point's rule and resets its call and hit counts. 0, or -EINVAL (a point with no name
 * here, rate_ppm above 1 000 000, err out of range). Any thread. */
int fault_set(int point, int err, unsigned nth, unsigned every, unsigned rate_ppm, unsigned count);
int fault_set_rule(int point, const struct fault_rule *r);
/* Disarms every rule and resets every count. */
void fault_clear(void);
/* Seed of the rate draws (default 1): the same seed fails the same call numbers. */
void fault_seed(uint64_t seed);
/* Failures injected so far, and calls made, since point's rule was set. Any thread. */
uint64_t fault_hits(int point);
uint64_t fault_calls(int point);
/* Replaces every rule with those of spec (PORTICO_FAULTS syntax, docs/ENGINE.md). 0, or
 * -EINVAL with the reason, naming the bad part, in why. */
int fault_parse(const char *spec, char *why, size_t n);

#endif
#endif
