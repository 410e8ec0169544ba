/*
 * Access log, buffered per worker and written by the worker with one write(2) per 32 KiB or
 * per second, so serving never waits on the log per request. SIGHUP reopens the file (the
 * new descriptor is dup2'ed over the old number).
 *
 * Two formats: the Combined Log Format, one line written when the response starts
 * (pt_alog_write), or JSON lines (--access-log-format json), begun when the response starts
 * (pt_alog_json_begin: every field known then) and ended when its final send has completed
 * (pt_alog_json_end adds request_time_us), so the line carries the time the response took.
 */
#ifndef PT_SERVER_ALOG_H
#define PT_SERVER_ALOG_H

#include <portico/http.h>
#include <string.h>

struct pt_alog;

enum pt_alog_format { PT_ALOG_COMBINED = 0, PT_ALOG_JSON };

/* For the option table (--access-log-format): NULL when v names a format, else what is
 * expected. Pure. */
static inline const char *pt_alog_check_format(const char *v)
{
	return strcmp(v, "combined") && strcmp(v, "json") ? "combined or json" : NULL;
}

/* path: "-" for stdout, else a file (appended). NULL with *err on failure. */
struct pt_alog *pt_alog_open(const char *path, unsigned workers, int *err);
/* Logs one response. Worker thread. */
void pt_alog_write(struct pt_alog *l, pt_http_req_t *r, unsigned status, uint64_t bytes);
/* Chooses the format: "combined" or "json" (pt_alog_check_format). Before serving. */
void pt_alog_set_format(struct pt_alog *l, const char *name);
/* Whether lines are JSON (written with pt_alog_json_begin/end, not pt_alog_write). Any
 * thread. */
bool pt_alog_is_json(const struct pt_alog *l);
/* JSON: formats the fields of r's response known now (time, client, method, target, status,
 * bytes, protocol, tls, host, user_agent, referer) into a new string *line, which the caller
 * owns (free it, or hand it to pt_alog_json_end). Worker thread, while r's head is valid (in
 * the handler). Returns its length, or -ENOMEM (*line NULL). */
int pt_alog_json_begin(struct pt_alog *l, pt_http_req_t *r, unsigned status, uint64_t bytes,
		       char **line);
/* JSON: appends the line begun (len bytes) with "request_time_us" to worker wk's buffer.
 * The line stays the caller's. Worker thread of wk. */
void pt_alog_json_end(struct pt_alog *l, pt_worker_t *wk, const char *line, size_t len,
		      uint64_t usec);
/* Reopens the file (SIGHUP). Main thread. 0 or -errno. */
int pt_alog_reopen(struct pt_alog *l);
/* Flushes every worker buffer and frees everything. After the workers stopped. */
void pt_alog_close(struct pt_alog *l);

#endif
