/* Windows build of the portico program: fnmatch (win/posix.c), POSIX's rules: '*', '?',
 * bracket expressions with '!' or '^' and ranges, '\' escapes; FNM_PERIOD. */
#ifndef PT_WIN_FNMATCH_H
#define PT_WIN_FNMATCH_H
#define FNM_NOMATCH 1
#define FNM_PERIOD 0x4
int fnmatch(const char *pattern, const char *string, int flags);
#endif
