/*
 * Directory listings of the portico program (dirlist.c, --autoindex).
 */
#ifndef PT_SERVER_DIRLIST_H
#define PT_SERVER_DIRLIST_H

#include <stddef.h>

/* An HTML listing of the open directory dirfd, whose normalized path is path: names sorted,
 * escaped for HTML and for URLs, dotfiles hidden, directories with a trailing '/', at most
 * 100000 entries. Returns 0 with *page (malloc'd, the caller frees it) and *len, or -errno.
 * Reads the directory through a descriptor of its own (dirfd's offset is untouched).
 * Any thread; blocking (readdir). */
int pt_dirlist_page(int dirfd, const char *path, char **page, size_t *len);

#endif
