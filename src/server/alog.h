/*
 * Access log in the Combined Log Format, buffered per worker and written by the worker with
 * one write(2) per 32 KiB or per second, so serving never waits on the log per request.
 * SIGHUP reopens the file (the new descriptor is dup2'ed over the old number).
 */
#ifndef PT_SERVER_ALOG_H
#define PT_SERVER_ALOG_H

#include <portico/http.h>

struct pt_alog;

/* path: "-" for stdout, else a file (appended). NULL with *err on failure. */
struct pt_alog *pt_alog_open(const char *path, unsigned workers, int *err);
/* Logs one response. Worker thread. */
void pt_alog_write(struct pt_alog *l, pt_http_req_t *r, unsigned status, uint64_t bytes);
/* Reopens the file (SIGHUP). Main thread. 0 or -errno. */
int pt_alog_reopen(struct pt_alog *l);
/* Flushes every worker buffer and frees everything. After the workers stopped. */
void pt_alog_close(struct pt_alog *l);

#endif
