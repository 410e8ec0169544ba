/*
 * Directory listings (see dirlist.h), moved out of files.c unchanged.
 */
#include "server/dirlist.h"
#include "server/path.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void html_escape(FILE *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '&': fputs("&amp;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&#39;", out); break;
		default: fputc(*s, out);
		}
	}
}

static void url_escape(FILE *out, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    strchr("-._~", ch))
			fputc(ch, out);
		else
			fprintf(out, "%%%02X", ch);
	}
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The visible names of d, directories ending in '/', unsorted; *n of them. */
static char **read_names(DIR *d, size_t *n)
{
	char **names = NULL;
	size_t cap = 0;
	struct dirent *de;

	*n = 0;
	while ((de = readdir(d)) && *n < 100000) {
		if (de->d_name[0] == '.')
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			char **v = realloc(names, cap * sizeof *v);
			if (!v)
				break;
			names = v;
		}
		bool isdir = de->d_type == DT_DIR;
		size_t l = strlen(de->d_name);
		if (!(names[*n] = malloc(l + 2)))
			break;
		memcpy(names[*n], de->d_name, l);
		strcpy(names[*n] + l, isdir ? "/" : "");
		(*n)++;
	}
	return names;
}

static void write_page(FILE *out, const char *path, char **names, size_t n)
{
	fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ", out);
	html_escape(out, path);
	fputs("</title></head>\n<body><h1>Index of ", out);
	html_escape(out, path);
	fputs("</h1>\n<ul>\n<li><a href=\"../\">../</a></li>\n", out);
	for (size_t i = 0; i < n; i++) {
		fputs("<li><a href=\"", out);
		size_t l = strlen(names[i]);
		bool isdir = l && names[i][l - 1] == '/';
		if (isdir)
			names[i][l - 1] = 0;
		url_escape(out, names[i]);
		fputs(isdir ? "/\">" : "\">", out);
		html_escape(out, names[i]);
		fputs(isdir ? "/</a></li>\n" : "</a></li>\n", out);
	}
	fputs("</ul></body></html>\n", out);
}

int pt_dirlist_page(int dirfd, const char *path, char **page, size_t *len)
{
	DIR *d = pt_path_opendir(dirfd);
	char **names;
	size_t n;
	FILE *out;

	if (!d)
		return -errno;
	names = read_names(d, &n);
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, cmp_names);
	*page = NULL;
	out = open_memstream(page, len);
	if (out) {
		write_page(out, path, names, n);
		fclose(out);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return *page ? 0 : -ENOMEM;
}
