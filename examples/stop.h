/*
 * How the examples wait for their stop: SIGINT or SIGTERM on Linux (blocked in every thread,
 * taken by sigwait in main); on Windows the console control handler (Ctrl+C, Ctrl+Break,
 * closing the console) or the end of standard input, which is how a test harness stops a
 * program under Wine. Call stop_prepare() before creating the engine (its threads inherit the
 * signal mask), then stop_wait() from main.
 */
#ifndef PT_EXAMPLES_STOP_H
#define PT_EXAMPLES_STOP_H

#include <stdio.h>

#ifdef _WIN32
#include <windows.h>

static HANDLE stop_event;

static BOOL WINAPI on_console(DWORD ev)
{
	SetEvent(stop_event);
	return TRUE;
}

static DWORD WINAPI stdin_watch(void *arg)
{
	char b[64];

	while (fgets(b, sizeof b, stdin))
		;
	SetEvent(stop_event);
	return 0;
}

static void stop_prepare(void)
{
	stop_event = CreateEventW(NULL, TRUE, FALSE, NULL);
	SetConsoleCtrlHandler(on_console, TRUE);
	CloseHandle(CreateThread(NULL, 0, stdin_watch, NULL, 0, NULL));
}

static void stop_wait(void)
{
	WaitForSingleObject(stop_event, INFINITE);
}
#else
#include <pthread.h>
#include <signal.h>

static sigset_t stop_set;

static void stop_prepare(void)
{
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGINT);
	sigaddset(&stop_set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_set, NULL);   /* workers inherit the mask; main waits */
	signal(SIGPIPE, SIG_IGN);
}

static void stop_wait(void)
{
	int sig;

	sigwait(&stop_set, &sig);
}
#endif

#endif
