/*
 * The portico program's operating-system events, behind one set of names (main.c): how it
 * is told to stop, reload or log its counters, and how it gives up privileges.
 *
 * Linux (sys_posix.c): signals, blocked in every thread and taken by sigwait in the main
 * thread: SIGTERM stops (after --drain-delay), SIGINT stops at once, SIGHUP reloads, SIGUSR1 logs the counters; --user drops to
 * that user. Windows (win/sys.c): the console control handler (Ctrl+C, Ctrl+Break, closing
 * the console, log-off, shut-down) stops at once (Ctrl+Break as SIGTERM); when standard input
 * is a pipe, the lines "stop", "reload" and "counters" do what SIGTERM, SIGHUP and SIGUSR1 do,
 * and its end is "stop" (how a supervisor, or a test under Wine, drives the program); --user
 * is refused.
 */
#ifndef PT_SERVER_SYS_H
#define PT_SERVER_SYS_H

#include "server/config.h"
#include <stdbool.h>
#include <stddef.h>

/* STOP: a graceful stop after --drain-delay (SIGTERM); INTERRUPT: a graceful stop at once
 * (SIGINT) */
enum pt_sys_event { PT_SYS_STOP = 1, PT_SYS_INTERRUPT, PT_SYS_RELOAD, PT_SYS_COUNTERS };

/* Before any thread starts: the events go to pt_sys_wait only (signals blocked in the threads
 * that inherit the mask; SIGPIPE ignored), and the descriptor limit raised. Main thread. */
void pt_sys_prepare(void);

/* Blocks until the next event and returns it (PT_SYS_*). Main thread. */
int pt_sys_wait(void);

/* Waits up to ms for a stop event: true if one came (it is consumed), false at the end of
 * the time. Main thread. */
bool pt_sys_wait_stop(unsigned ms);

/* The system's MIME types file read before the built-in table: "/etc/mime.types" on Linux,
 * "" on Windows (which keeps its map in the registry: the built-in table alone). */
extern const char pt_sys_mime_types[];

/* Refuses the options this build cannot honour: 0, or -1 with err naming the option (the
 * Windows build: --listen-tls, --h2c, --user). Any thread. */
int pt_sys_check(const struct pt_server_config *c, char *err, size_t errlen);

/* Gives up root for user (after binding, before the workers start): 0, or -1 after printing
 * why. Main thread. */
int pt_sys_drop_user(const char *user);

#endif
