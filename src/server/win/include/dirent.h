/* Windows build of the portico program: directory streams with d_type (win/posix.c), read
 * with NtQueryDirectoryFile from a directory handle (pt_path_opendir), or by name (opendir). */
#ifndef PT_WIN_DIRENT_H
#define PT_WIN_DIRENT_H
enum { DT_UNKNOWN = 0, DT_DIR = 4, DT_REG = 8, DT_LNK = 10 };
struct dirent {
	unsigned char d_type;
	char d_name[1024];              /* UTF-8 */
};
typedef struct pt_wdir DIR;
DIR *pt_wdir_open(void *handle);    /* takes the directory HANDLE */
DIR *opendir(const char *path);
struct dirent *readdir(DIR *d);
int closedir(DIR *d);
#endif
