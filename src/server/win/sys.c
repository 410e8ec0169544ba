/*
 * The program's operating-system events on Windows (see sys.h): the console control handler
 * and, when standard input is a pipe, its lines ("stop", "reload", "counters") and its end.
 * Both post to one queue that the main thread waits on.
 */
#include "server/sys.h"
#include "server/win/posix.h"

#include <pthread.h>
#include <stdbool.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned pending[PT_SYS_COUNTERS + 1];   /* events posted, by kind */

static void post(int ev)
{
	pthread_mutex_lock(&lock);
	pending[ev]++;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

/* Takes one pending event (stops first), or 0. Under lock. */
static int take(bool stop_only)
{
	static const int order[] = { PT_SYS_INTERRUPT, PT_SYS_STOP, PT_SYS_RELOAD, PT_SYS_COUNTERS };

	for (unsigned i = 0; i < (stop_only ? 2u : 4u); i++)
		if (pending[order[i]]) {
			pending[order[i]]--;
			return order[i];
		}
	return 0;
}

/* Runs on a thread the system creates; returning TRUE says the event is handled. After a
 * close, log-off or shut-down event the system ends the process when this returns, so it
 * waits (a few seconds at most) for main to have stopped the server. */
static BOOL WINAPI on_console(DWORD ev)
{
	post(ev == CTRL_BREAK_EVENT ? PT_SYS_STOP : PT_SYS_INTERRUPT);
	if (ev == CTRL_CLOSE_EVENT || ev == CTRL_LOGOFF_EVENT || ev == CTRL_SHUTDOWN_EVENT)
		Sleep(4000);
	return TRUE;
}

static void *stdin_reader(void *arg)
{
	char line[64];

	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!strcmp(line, "stop"))
			post(PT_SYS_STOP);
		else if (!strcmp(line, "reload"))
			post(PT_SYS_RELOAD);
		else if (!strcmp(line, "counters"))
			post(PT_SYS_COUNTERS);
		else if (*line)
			fprintf(stderr, "portico: standard input: '%s' is not stop, reload or "
				"counters\n", line);
	}
	post(PT_SYS_STOP);
	return NULL;
}

void pt_sys_prepare(void)
{
	HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
	pthread_t t;

	_setmode(_fileno(stdout), _O_BINARY);   /* the access log on stdout: "\n", not "\r\n" */
	_setmode(_fileno(stderr), _O_BINARY);
	SetConsoleCtrlHandler(on_console, TRUE);
	if (in && in != INVALID_HANDLE_VALUE && GetFileType(in) == FILE_TYPE_PIPE &&
	    pthread_create(&t, NULL, stdin_reader, NULL) == 0)
		pthread_detach(t);
}

int pt_sys_wait(void)
{
	int ev;

	pthread_mutex_lock(&lock);
	while (!(ev = take(false)))
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	return ev;
}

bool pt_sys_wait_stop(unsigned ms)
{
	ULONGLONG end = GetTickCount64() + ms;
	int ev;

	pthread_mutex_lock(&lock);
	while (!(ev = take(true))) {
		ULONGLONG now = GetTickCount64();
		struct timespec ts;

		if (now >= end)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)((end - now) / 1000);
		ts.tv_nsec += (long)((end - now) % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000)
			ts.tv_sec++, ts.tv_nsec -= 1000000000;
		pthread_cond_timedwait(&cond, &lock, &ts);
	}
	pthread_mutex_unlock(&lock);
	return ev != 0;
}

const char pt_sys_mime_types[] = "";

int pt_sys_check(const struct pt_server_config *c, char *err, size_t errlen)
{
	const char *why = c->nlisten_tls ? "--listen-tls: TLS is not in the Windows build (Debian "
					   "has no OpenSSL for mingw-w64)"
			  : c->h2c ? "--h2c: HTTP/2 is not in the Windows build (Debian has no "
				     "nghttp2 for mingw-w64)"
			  : *c->user ? "--user: not supported on Windows (run the service under the "
				       "account it should have)"
			  : NULL;

	if (why)
		snprintf(err, errlen, "%s", why);
	return why ? -1 : 0;
}

int pt_sys_drop_user(const char *user)
{
	fprintf(stderr, "portico: --user is not supported on Windows\n");
	return -1;
}
