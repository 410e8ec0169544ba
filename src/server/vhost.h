/*
 * Sites at run time (vhost.c): what the request handler serves, built from a configuration,
 * and swapped as a whole when SIGHUP reloads it.
 *
 * A snapshot is immutable once built: the configuration it came from (which it owns), one
 * struct pt_site per host block (or one for the top level when there is none), each with its
 * open docroot and its rules, and the sorted host names. Each worker also keeps, per site, an
 * open-file cache that only it touches; it is created on the worker's first request for the
 * site and freed by the worker when it moves to a newer snapshot.
 *
 * Swapping (pt_vhosts_swap, main thread) publishes a new snapshot with a new generation number.
 * A worker compares the generation at the start of each request (one relaxed load of a line
 * that changes only on reload) and, when it moved, takes a reference on the new snapshot and
 * drops the old one (the mutex is taken only then); each worker is also posted a nudge so that
 * an idle one lets go of the old snapshot promptly. A request is served entirely under the
 * snapshot that was current when it started: what its responses still use after the handler
 * returns (cache entries, compressed copies) holds references of its own.
 *
 * Connections finish under the configuration they started with: the snapshot before the
 * current one stays (one reload deep) for connections accepted before the swap, for keep_ms
 * after it (the longest a connection can wait for its next request); their requests are
 * served under it and their responses close the connection, so the client comes back under
 * the new configuration (what nginx's old workers do). A connection older than two reloads
 * is served under the current snapshot and closed the same way.
 */
#ifndef PT_SERVER_VHOST_H
#define PT_SERVER_VHOST_H

#include <portico/http.h>
#include "server/config.h"
#include "server/fcache.h"
#include <pthread.h>
#include <stdatomic.h>

struct pt_site {
	int rootfd;
	struct pt_fcache_opts opts;
	const char *root;               /* for messages */
	const char *index;              /* "" = none */
	bool autoindex;
	const char *cache_control;      /* "" = none */
	const char *fallback;           /* normalized path, "" = none */
	const struct pt_site_conf *own; /* the block (or the top level) */
	const struct pt_site_conf *top; /* what it inherits from (NULL for the top level) */
	char **cors;                    /* effective: the block's or the inherited */
	unsigned ncors;
	char **compress;
	unsigned ncompress;
	struct pt_fcache **cache;       /* per worker, created by the worker on first use */
};

struct pt_snapshot {
	atomic_uint refs;
	uint64_t gen;
	uint64_t since_ms;              /* CLOCK_MONOTONIC ms when it became current (0: first) */
	struct pt_server_config *conf;  /* owned */
	struct pt_site *sites;
	unsigned nsites, default_site, nworkers;
	struct pt_hostname *exact, *wild;  /* sorted by name */
	unsigned nexact, nwild;
};

/* Builds a snapshot of conf for nworkers workers, taking ownership of conf (freed with the
 * snapshot, or at once on failure). mime must outlive the snapshot. Opens every docroot.
 * Returns it with one reference, or NULL with err set to "FILE:LINE: docroot '...': reason"
 * (or "out of memory"). Main thread. */
struct pt_snapshot *pt_snapshot_build(struct pt_server_config *conf, const struct pt_mime *mime,
				      unsigned nworkers, char *err, size_t errlen);

/* Drops a reference; the last one frees everything (the per-worker caches too: only when
 * no worker can use them any more). Any thread. */
void pt_snapshot_unref(struct pt_snapshot *s);

/* The site for a Host field value host[0..n) (NULL or empty: the default site): exact name,
 * then the longest matching "*." wildcard, then the default (a block named default, else the
 * first). Case-insensitive; a port and a trailing dot are ignored. Pure. */
const struct pt_site *pt_snapshot_site(const struct pt_snapshot *s, const char *host, size_t n);

/* Worker w's open-file cache for site, created on first use; NULL when out of memory.
 * Worker w only. */
struct pt_fcache *pt_site_cache(const struct pt_site *site, unsigned w);

struct pt_vhost_slot;

/* The current snapshot and each worker's view of it. */
struct pt_vhosts {
	pthread_mutex_t lock;
	struct pt_snapshot *current;    /* under lock */
	struct pt_snapshot *prev;       /* the one current before, or NULL (under lock) */
	unsigned keep_ms;               /* how long prev serves the connections older than current */
	atomic_uint_fast64_t gen;       /* current->gen */
	struct pt_vhost_slot *slots;
	unsigned nworkers;
	pt_engine_t *engine;            /* for the nudges; NULL before start */
};

/* Starts with snapshot s (the reference passes to v); keep_ms: see prev. 0 or -ENOMEM. Main
 * thread. */
int pt_vhosts_init(struct pt_vhosts *v, struct pt_snapshot *s, unsigned nworkers,
		   unsigned keep_ms);

/* The snapshot worker w serves its next request under (moving to the current one if it
 * changed). Valid until the worker's next call. Worker w only. */
const struct pt_snapshot *pt_vhosts_enter(struct pt_vhosts *v, unsigned w);

/* The snapshot a request of a connection accepted at start_ms (worker clock, CLOCK_MONOTONIC
 * ms) is served under, now being now_ms; *stale says the connection predates the current
 * snapshot (its response should close it). Valid until the worker's next call. Worker w
 * only. */
const struct pt_snapshot *pt_vhosts_for_conn(struct pt_vhosts *v, unsigned w, uint64_t start_ms,
					     uint64_t now_ms, bool *stale);

/* Makes s current (the reference passes to v) and nudges the workers. Main thread, while the
 * engine runs (v->engine set) or before it starts. */
void pt_vhosts_swap(struct pt_vhosts *v, struct pt_snapshot *s);

/* Frees everything. After the workers stopped. Main thread. */
void pt_vhosts_fini(struct pt_vhosts *v);

#endif
