/*
 * Fault injection (test builds only): the engine's system calls, io_uring results and
 * allocations ask pt__fault() first, so tests can make them fail with a chosen errno, on the
 * Nth call, on every Kth call, at a rate (deterministic, seeded) and at most a number of times.
 *
 * Compiled in when PT_TESTING is defined (the sanitizer build, SAN=1). In release builds every
 * function here is an inline constant and the wrappers are plain malloc/calloc/realloc: zero
 * cost. docs/ENGINE.md ("Fault injection") describes the hook points and PORTICO_FAULTS.
 *
 * The rule of a hook point: it asks once per real operation, at the place where the kernel
 * (or malloc) would report the error, and when told to fail it behaves exactly as if the
 * kernel had returned that error, releasing whatever the real call produced (an accepted
 * descriptor, a received buffer). Call counts and hit counts are atomic: any thread.
 */
#ifndef PT_ENGINE_FAULT_H
#define PT_ENGINE_FAULT_H

#include <stdint.h>
#include <stdlib.h>

enum pt_fault_op {
	PT_F_ACCEPT,    /* each accepted connection (io_uring accept CQE, epoll accept4) */
	PT_F_RECV,      /* each receive that returned data (recv CQE, recv(2)) */
	PT_F_SEND,      /* each kernel send attempt (send/sendmsg SQE, sendmsg(2), sendfile(2)) */
	PT_F_SOCKET,    /* each descriptor the engine creates: listening sockets, eventfd, epoll,
	                   io_uring rings */
	PT_F_OPEN,      /* file opens (the server's files) */
	PT_F_ALLOC,     /* each allocation the engine asks for, including send contexts taken
	                   from a lookaside list */
	PT_F__COUNT
};

#ifdef PT_TESTING

/* One rule per operation. A call (counted from 1 since the rule was set) fails when it is past
 * `after` and any trigger fires: it is call number after + nth, or (call - after) is a
 * multiple of every, or the seeded draw for this call number falls under rate_ppm; with no
 * trigger at all every call past `after` fails. At most `count` failures (0: no limit). */
struct pt_fault_rule {
	int err;                /* errno to inject, positive or negative; 0 disarms the rule */
	unsigned nth;           /* fail call number after + nth (once) */
	unsigned every;         /* fail calls after + every, after + 2*every, ... */
	unsigned rate_ppm;      /* fail each call with probability rate_ppm / 1 000 000 */
	unsigned count;         /* stop after this many failures; 0 = no limit */
	unsigned after;         /* calls that always go ahead first */
};

/* 0: go ahead; else the negative errno to inject. Any thread. Reads PORTICO_FAULTS the first
 * time any function here is called (bad syntax: a message on stderr, exit status 2). */
int pt__fault(enum pt_fault_op op);

/* Sets op's rule and resets its call and hit counts. 0, or -EINVAL (bad op, rate_ppm above
 * 1 000 000, err out of range). Any thread. */
int pt__fault_set(enum pt_fault_op op, int err, unsigned nth, unsigned every, unsigned rate_ppm,
		  unsigned count);
int pt__fault_set_rule(enum pt_fault_op op, const struct pt_fault_rule *r);
/* Disarms every rule and resets every count. */
void pt__fault_clear(void);
/* Seed of the rate draws (default 1): the same seed fails the same call numbers. */
void pt__fault_seed(uint64_t seed);
/* Failures injected so far, and calls made, since op's rule was set. Any thread. */
uint64_t pt__fault_hits(enum pt_fault_op op);
uint64_t pt__fault_calls(enum pt_fault_op op);
/* What this thread's last pt__fault(op) returned (the epoll backend uses it to tell an
 * injected EAGAIN, after which no readiness edge would come, from a real one). */
int pt__fault_last(enum pt_fault_op op);
/* Replaces every rule with those of spec (PORTICO_FAULTS syntax). 0, or -EINVAL with the
 * reason, naming the bad part, in why. */
int pt__fault_parse(const char *spec, char *why, size_t n);
/* Reads PORTICO_FAULTS now if it has not been read (idempotent; pt__fault does it lazily). */
void pt__fault_env(void);

#else

static inline int pt__fault(enum pt_fault_op op)
{
	(void)op;
	return 0;
}

static inline int pt__fault_last(enum pt_fault_op op)
{
	(void)op;
	return 0;
}

static inline void pt__fault_env(void)
{
}

#endif

/* malloc, calloc and realloc that PT_F_ALLOC can fail (plain calls in release builds). */
static inline void *pt__malloc(size_t n)
{
	return pt__fault(PT_F_ALLOC) ? NULL : malloc(n);
}

static inline void *pt__calloc(size_t n, size_t size)
{
	return pt__fault(PT_F_ALLOC) ? NULL : calloc(n, size);
}

static inline void *pt__realloc(void *p, size_t n)
{
	return pt__fault(PT_F_ALLOC) ? NULL : realloc(p, n);
}

#endif
