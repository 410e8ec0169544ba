/*
 * The program's operating-system events on Linux: signals (see sys.h).
 */
#include "server/sys.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static sigset_t events(bool stop_only)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (!stop_only) {
		sigaddset(&set, SIGHUP);
		sigaddset(&set, SIGUSR1);
	}
	return set;
}

void pt_sys_prepare(void)
{
	sigset_t set = events(false);   /* blocked in every thread; the main thread waits */
	struct rlimit rl;

	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int pt_sys_wait(void)
{
	sigset_t set = events(false);
	int sig = 0;

	if (sigwait(&set, &sig) != 0)
		return PT_SYS_STOP;
	return sig == SIGHUP ? PT_SYS_RELOAD : sig == SIGUSR1 ? PT_SYS_COUNTERS
	       : sig == SIGINT ? PT_SYS_INTERRUPT : PT_SYS_STOP;
}

bool pt_sys_wait_stop(unsigned ms)
{
	sigset_t set = events(true);
	struct timespec end, now, left;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000;
	if (end.tv_nsec >= 1000000000)
		end.tv_sec++, end.tv_nsec -= 1000000000;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = end.tv_sec - now.tv_sec;
		left.tv_nsec = end.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0)
			left.tv_sec--, left.tv_nsec += 1000000000;
		if (left.tv_sec < 0)
			return false;
		if (sigtimedwait(&set, NULL, &left) >= 0)
			return true;
		if (errno != EINTR)
			return false;
	}
}

const char pt_sys_mime_types[] = "/etc/mime.types";

int pt_sys_check(const struct pt_server_config *c, char *err, size_t errlen)
{
	return 0;                       /* every option is built on Linux */
}

int pt_sys_drop_user(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (!pw) {
		fprintf(stderr, "portico: --user %s: no such user\n", user);
		return -1;
	}
	/* the user's own groups (from the group database), not root's, not none */
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		fprintf(stderr, "portico: --user %s: %s\n", user, strerror(errno));
		return -1;
	}
	return 0;
}
