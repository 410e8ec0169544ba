/* Windows build of the portico program: the part of <sys/resource.h> it uses (win/posix.c). */
#ifndef PT_WIN_SYS_RESOURCE_H
#define PT_WIN_SYS_RESOURCE_H
#include <winsock2.h>   /* struct timeval */
typedef unsigned long long rlim_t;
struct rlimit { rlim_t rlim_cur, rlim_max; };
struct rusage { struct timeval ru_utime, ru_stime; };
#define RLIMIT_NOFILE 7
#define RLIM_INFINITY (~0ull)
#define RUSAGE_SELF 0
int getrlimit(int what, struct rlimit *rl);  /* RLIMIT_NOFILE: the C runtime's _getmaxstdio */
int setrlimit(int what, const struct rlimit *rl);
int getrusage(int who, struct rusage *ru);   /* GetProcessTimes */
#endif
