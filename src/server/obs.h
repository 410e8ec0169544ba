/*
 * Request observation (obs.c): what the file handler does to have each response counted
 * (metrics.h) and logged as a JSON line (alog.h) once it has finished, with its duration.
 *
 * A response is observed from the loop iteration that ran its handler (pt_obs_start) to the
 * one that saw its final send complete, both read from the worker's clock (pt_worker_now_us),
 * so a request costs no clock read of its own: pt_obs_begin takes a record and returns it to be passed, with pt_obs_sent, as the
 * send's callback and argument; pt_obs_sent runs the caller's own callback, then counts and
 * logs, then recycles the record. Records come from a per-worker free list: no lock, and no
 * allocation once the list is warm (under ASan they are freed, so a use after recycling is
 * caught). Everything here runs on the request's worker.
 */
#ifndef PT_SERVER_OBS_H
#define PT_SERVER_OBS_H

#include <portico/http.h>
#include "server/metrics.h"

struct pt_alog;
struct pt_obs;
struct pt_obs_req;

/* Observation for workers workers, into m (NULL: no counters) and the JSON access log l
 * (NULL: none, or a Combined one, which files.c writes itself). NULL when both are NULL
 * (nothing to observe) or out of memory (*err = -ENOMEM, else 0). Main thread. */
struct pt_obs *pt_obs_new(unsigned workers, struct pt_metrics *m, struct pt_alog *l, int *err);
/* After the workers stopped (every record is back). NULL is allowed. */
void pt_obs_free(struct pt_obs *o);

/* The handler was called on worker w (index w): returns the request's start time for
 * pt_obs_begin, the worker's clock (pt_worker_now_us: when the batch of events that brought
 * the request arrived; no clock read here). Worker w. */
uint64_t pt_obs_start(struct pt_obs *o, unsigned w, pt_worker_t *wk);

/* The final send of r's response (status, body bytes) is about to be made with callback
 * cb(arg): returns the record to pass to the send as (pt_obs_sent, record), or NULL when
 * none could be had (the request is then counted at once and the send keeps cb, arg).
 * Worker w, in the handler (r's head is read for the JSON line). */
struct pt_obs_req *pt_obs_begin(struct pt_obs *o, pt_http_req_t *r, unsigned w, uint64_t t0,
				unsigned status, uint64_t bytes, pt_http_send_fn cb, void *arg);
/* The send callback of an observed response. Worker thread. */
void pt_obs_sent(pt_http_req_t *r, void *arg, ssize_t res);
/* The send was refused (no callback will run): the record goes back, the request counts as
 * done but not as a response. Worker thread. */
void pt_obs_cancel(struct pt_obs_req *q);

#endif
