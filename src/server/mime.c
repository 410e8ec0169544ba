/*
 * Extension -> Content-Type table (see mime.h).
 *
 * Layout: one array of slots (open addressing, linear probing, power-of-two size, load at
 * most 1/2) and one string pool. A slot holds the extension's hash, its length and the pool
 * offsets of the extension (lowercase) and of the full Content-Type value (with the charset
 * already appended). Offset 0 of the pool is the default type, so a lookup never formats
 * anything. Built once; read-only afterwards.
 */
#include "server/mime.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIME_FILE_MAX (16u << 20) /* a mime.types bigger than this is not one */
#define CHARSET "; charset=utf-8"

struct mime_slot {
	uint32_t hash;
	uint32_t ext;    /* pool offset of the extension */
	uint32_t type;   /* pool offset of the Content-Type value */
	uint8_t extlen;  /* 0: empty slot */
};

struct pt_mime {
	struct mime_slot *slots;
	uint32_t mask;   /* slots - 1 */
	uint32_t count;
	char *pool;
	size_t used, cap;
};

/* The fallback table: the types a website needs, as media-types 10 spells them, plus
 * "br" and "map", which media-types does not list. */
static const char *const builtin[][2] = {
	{ "html", "text/html" }, { "htm", "text/html" }, { "css", "text/css" },
	{ "js", "text/javascript" }, { "mjs", "text/javascript" },
	{ "json", "application/json" }, { "map", "application/json" },
	{ "txt", "text/plain" }, { "xml", "application/xml" }, { "csv", "text/csv" },
	{ "md", "text/markdown" }, { "svg", "image/svg+xml" }, { "png", "image/png" },
	{ "jpg", "image/jpeg" }, { "jpeg", "image/jpeg" }, { "gif", "image/gif" },
	{ "webp", "image/webp" }, { "avif", "image/avif" },
	{ "ico", "image/vnd.microsoft.icon" }, { "wasm", "application/wasm" },
	{ "pdf", "application/pdf" }, { "zip", "application/zip" },
	{ "gz", "application/gzip" }, { "br", "application/x-brotli" },
	{ "zst", "application/zstd" }, { "woff", "font/woff" }, { "woff2", "font/woff2" },
	{ "ttf", "font/ttf" }, { "otf", "font/otf" }, { "mp4", "video/mp4" },
	{ "webm", "video/webm" }, { "mp3", "audio/mpeg" }, { "ogg", "audio/ogg" },
	{ "wav", "audio/wav" },
};

static inline uint8_t lc(uint8_t c)
{
	return (uint8_t)(c - 'A') < 26 ? c | 0x20 : c;
}

/* ---- building ---------------------------------------------------------------------------- */

/* Appends s[0..n) plus extra (may be NULL) and a NUL to the pool. Offset, or -1 (ENOMEM). */
static int64_t pool_add(struct pt_mime *m, const char *s, size_t n, const char *extra)
{
	size_t xn = extra ? strlen(extra) : 0, need = m->used + n + xn + 1;
	size_t off = m->used;

	if (need > UINT32_MAX)
		return -1;
	if (need > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		char *p;

		while (cap < need)
			cap *= 2;
		p = realloc(m->pool, cap);
		if (!p)
			return -1;
		m->pool = p;
		m->cap = cap;
	}
	memcpy(m->pool + off, s, n);
	if (xn)
		memcpy(m->pool + off + n, extra, xn);
	m->pool[off + n + xn] = '\0';
	m->used = need;
	return (int64_t)off;
}

/* Lowercases s[0..n) into low and returns its FNV-1a hash. */
static inline uint32_t ext_lower(const char *s, size_t n, char *low)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		low[i] = (char)lc((uint8_t)s[i]);
		h = (h ^ (uint8_t)low[i]) * 16777619u;
	}
	return h;
}

/* The slot of ext (lowercase, n bytes) or the empty slot where it would go. */
static struct mime_slot *slot_find(const struct pt_mime *m, const char *ext, size_t n,
				   uint32_t h)
{
	for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
		struct mime_slot *s = &m->slots[i];

		if (s->extlen == 0)
			return s;
		if (s->hash == h && s->extlen == n && memcmp(m->pool + s->ext, ext, n) == 0)
			return s;
	}
}

static int table_grow(struct pt_mime *m)
{
	uint32_t n = m->mask ? (m->mask + 1) * 2 : 1024;
	struct mime_slot *old = m->slots;
	uint32_t oldn = m->mask ? m->mask + 1 : 0;

	m->slots = calloc(n, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old;
		return -ENOMEM;
	}
	m->mask = n - 1;
	for (uint32_t i = 0; i < oldn; i++)
		if (old[i].extlen)
			*slot_find(m, m->pool + old[i].ext, old[i].extlen, old[i].hash) = old[i];
	free(old);
	return 0;
}

/* Does the Content-Type value of this type get "; charset=utf-8"? */
static bool wants_charset(const char *t, size_t n)
{
	static const char *const exact[] = {
		"application/javascript", "application/json", "application/xml", "image/svg+xml",
	};

	if (n > 5 && strncasecmp(t, "text/", 5) == 0)
		return true;
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (n == strlen(exact[i]) && strncasecmp(t, exact[i], n) == 0)
			return true;
	return (n > 5 && strncasecmp(t + n - 5, "+json", 5) == 0) ||
	       (n > 4 && strncasecmp(t + n - 4, "+xml", 4) == 0);
}

/* Adds ext -> the type at pool offset type, unless ext is already there. 0 or -ENOMEM. */
static int mime_add(struct pt_mime *m, const char *ext, size_t n, uint32_t type)
{
	char low[PT_MIME_EXT_MAX];
	struct mime_slot *s;
	uint32_t h;
	int64_t off;

	if (n == 0 || n > PT_MIME_EXT_MAX)
		return 0;
	h = ext_lower(ext, n, low);
	if ((m->count + 1) * 2 > m->mask + 1 && table_grow(m) < 0)
		return -ENOMEM;
	s = slot_find(m, low, n, h);
	if (s->extlen)
		return 0; /* first wins */
	off = pool_add(m, low, n, NULL);
	if (off < 0)
		return -ENOMEM;
	*s = (struct mime_slot){ .hash = h, .ext = (uint32_t)off, .type = type,
				 .extlen = (uint8_t)n };
	m->count++;
	return 0;
}

/* Stores the type t[0..n) with its charset. Pool offset, -1 (skip: not a valid type) or
 * -2 (ENOMEM). */
static int64_t type_add(struct pt_mime *m, const char *t, size_t n)
{
	const char *slash = memchr(t, '/', n);
	int64_t off;

	if (n > PT_MIME_TYPE_MAX || !slash || slash == t || slash == t + n - 1)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (t + i != slash && !pt__is_tchar((uint8_t)t[i]))
			return -1;
	off = pool_add(m, t, n, wants_charset(t, n) ? CHARSET : NULL);
	return off < 0 ? -2 : off;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Next whitespace-separated word of the line [*p, end). False at the end of the line. */
static bool next_word(const char **p, const char *end, const char **w, size_t *n)
{
	const char *s = *p;

	while (s < end && is_space(*s))
		s++;
	if (s == end || *s == '#')
		return false;
	*w = s;
	while (s < end && !is_space(*s))
		s++;
	*n = (size_t)(s - *w);
	*p = s;
	return true;
}

/* Parses mime.types text. 0 or -ENOMEM. Pure apart from growing m. */
static int mime_parse(struct pt_mime *m, const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end;
		const char *t, *w;
		size_t tn, n;
		int64_t type = -3; /* stored once the line turns out to have an extension */

		if (next_word(&p, le, &t, &tn)) {
			while (next_word(&p, le, &w, &n)) {
				if (type == -3)
					type = type_add(m, t, tn);
				if (type == -1)
					break;          /* invalid type: skip the line */
				if (type < 0 || mime_add(m, w, n, (uint32_t)type) < 0)
					return -ENOMEM;
			}
		}
		p = eol ? eol + 1 : end;
	}
	return 0;
}

/* ---- public ------------------------------------------------------------------------------ */

/* Reads the whole file. 0 with *buf (caller frees) or -errno. */
static int read_file(const char *path, char **buf, size_t *len)
{
	struct stat st;
	size_t got = 0;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MIME_FILE_MAX) {
		err = -EINVAL;
		goto out;
	}
	*buf = malloc((size_t)st.st_size + 1);
	if (!*buf) {
		err = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, *buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) { /* error, or the file shrank: use what was read */
			err = n < 0 ? -errno : 0;
			break;
		}
		got += (size_t)n;
	}
	if (err) {
		free(*buf);
		*buf = NULL;
	}
	*len = got;
out:
	close(fd);
	return err;
}

static int add_builtin(struct pt_mime *m)
{
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
		int64_t t = type_add(m, builtin[i][1], strlen(builtin[i][1]));

		if (t < 0 || mime_add(m, builtin[i][0], strlen(builtin[i][0]), (uint32_t)t) < 0)
			return -ENOMEM;
	}
	return 0;
}

struct pt_mime *pt_mime_load(const char *path, int *err)
{
	struct pt_mime *m = calloc(1, sizeof(*m));
	char *buf = NULL;
	size_t len = 0;
	int ferr = 0;

	if (!m || pool_add(m, PT_MIME_DEFAULT_TYPE, strlen(PT_MIME_DEFAULT_TYPE), NULL) != 0 ||
	    table_grow(m) < 0)
		goto nomem;
	if (!path)
		path = PT_MIME_DEFAULT_PATH;
	if (*path) {
		ferr = read_file(path, &buf, &len);
		if (ferr == -ENOMEM)
			goto nomem;
		if (ferr == 0 && mime_parse(m, buf, len) < 0)
			goto nomem;
		free(buf);
		buf = NULL;
	}
	if (add_builtin(m) < 0)
		goto nomem;
	*err = ferr;
	return m;
nomem:
	free(buf);
	pt_mime_free(m);
	*err = -ENOMEM;
	return NULL;
}

void pt_mime_free(struct pt_mime *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m->pool);
	free(m);
}

const char *pt_mime_lookup(const struct pt_mime *m, const char *name, size_t len)
{
	const char *end = name + len, *p = end;
	char low[PT_MIME_EXT_MAX];
	const struct mime_slot *s;
	size_t n;

	while (p > name && p[-1] != '.' && p[-1] != '/' && end - p <= PT_MIME_EXT_MAX)
		p--;
	n = (size_t)(end - p);
	/* no dot, an empty or long extension, or a dotfile's only dot ("/.bashrc") */
	if (p == name || p[-1] != '.' || n == 0 || n > PT_MIME_EXT_MAX ||
	    p - 1 == name || p[-2] == '/')
		return m->pool;
	s = slot_find(m, low, n, ext_lower(p, n, low));
	return s->extlen ? m->pool + s->type : m->pool;
}

size_t pt_mime_count(const struct pt_mime *m)
{
	return m->count;
}
