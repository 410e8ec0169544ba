/*
 * The config file's syntax (see config.h and site.h): one setting per line, '#' comments,
 * and host blocks:
 *
 *   NAME [VALUE]                 a server-wide setting (config.c's table) or a site rule
 *   host NAME... {               opens a block (blocks do not nest)
 *       NAME [VALUE]             a per-site setting only (site.h lists them)
 *   }                            closes it
 *
 * The plain per-site settings of a block (root, index, autoindex, follow-symlinks,
 * cache-control, tls-cert, tls-key) are parsed by the option table itself, applied to a
 * scratch configuration and copied into the block, so a value means the same thing inside a
 * block as outside and is checked by the same code. Every error names FILE:LINE.
 */
#include "server/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct pfile {
	struct pt_server_config *c;
	struct pt_server_config *scratch;   /* for the plain settings of a block */
	struct pt_site_conf *block;         /* the open block, or NULL */
	const char *name;
	unsigned line;
	char *err;
	size_t errlen;
};

static int __attribute__((format(printf, 2, 3))) file_error(struct pfile *f, const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(f->err, f->errlen, "%s:%u: %s", f->name, f->line, msg);
	return PT_CONFIG_USAGE;
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* "host NAMES... {": opens a block appended to c->hosts. */
static int open_block(struct pfile *f, char *rest)
{
	struct pt_server_config *c = f->c;
	size_t n = strlen(rest);
	char msg[300];
	int r;

	if (f->block)
		return file_error(f, "host: blocks cannot nest (the block at line %u is not "
				  "closed with '}')", f->block->line);
	if (n == 0 || rest[n - 1] != '{')
		return file_error(f, "host: expected 'host NAME... {' with the '{' at the end of "
				  "the line");
	rest[n - 1] = '\0';
	if (c->nhosts % 8 == 0) {
		void *v = realloc(c->hosts, (c->nhosts + 8) * sizeof(*c->hosts));
		if (!v)
			return file_error(f, "out of memory");
		c->hosts = v;
	}
	f->block = &c->hosts[c->nhosts++];
	*f->block = (struct pt_site_conf){ 0 };
	r = pt_site_names(f->block, rest, f->line, msg, sizeof(msg));
	return r < 0 ? file_error(f, "host: %s", msg) : 0;
}

static int push_path(char ***arr, unsigned *n, const char *v)
{
	char **a = realloc(*arr, (*n + 1) * sizeof(char *));

	if (!a)
		return -ENOMEM;
	*arr = a;
	if (!(a[*n] = strdup(v)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* Copies the setting just applied to the scratch configuration into the block. */
static int copy_plain(struct pt_site_conf *b, const char *key, const struct pt_server_config *s,
		      unsigned line)
{
	char **dst = NULL;
	const char *v = NULL;

	if (!strcmp(key, "docroot"))
		dst = &b->root, v = s->docroot, b->set |= PT_SITE_ROOT, b->root_line = line;
	else if (!strcmp(key, "index"))
		dst = &b->index, v = s->index, b->set |= PT_SITE_INDEX;
	else if (!strcmp(key, "cache-control"))
		dst = &b->cache_control, v = s->cache_control, b->set |= PT_SITE_CACHE_CONTROL;
	else if (!strcmp(key, "autoindex"))
		b->autoindex = s->autoindex, b->set |= PT_SITE_AUTOINDEX;
	else if (!strcmp(key, "follow-symlinks"))
		b->follow_symlinks = s->follow_symlinks, b->set |= PT_SITE_SYMLINKS;
	else if (!strcmp(key, "tls-key"))
		return push_path(&b->keys, &b->nkeys, s->tls_key[0]);
	else if (!strcmp(key, "tls-cert")) {
		unsigned *l = realloc(b->cert_lines, (b->ncerts + 1) * sizeof(unsigned));
		if (!l)
			return -ENOMEM;
		b->cert_lines = l;
		l[b->ncerts] = line;
		return push_path(&b->certs, &b->ncerts, s->tls_cert[0]);
	}
	if (!dst)
		return 0;
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

/* A setting inside a block. */
static int block_line(struct pfile *f, const char *key, const char *val)
{
	char msg[300], sv[64];
	int r;

	if (!f->scratch) {                  /* the first one: ~200 KiB, so only when needed */
		if (!(f->scratch = malloc(sizeof(*f->scratch))))
			return file_error(f, "out of memory");
		pt_config_defaults(f->scratch);
	}
	if (!pt_site_is_setting(key))
		return file_error(f, pt__config_set(f->scratch, key, NULL, msg, sizeof(msg)) ==
				  PT_CONFIG_UNKNOWN ? "unknown setting '%s'" : "%s: a server-wide setting, "
				  "not allowed inside a host block", pt__config_shown(key, sv, sizeof(sv)));
	if (pt_site_is_rule(key))
		r = pt_site_apply(f->block, key, val, f->line, msg, sizeof(msg));
	else {
		const char *k = !strcmp(key, "root") ? "docroot" : key;
		f->scratch->ntls_cert = f->scratch->ntls_key = 0;
		r = pt__config_set(f->scratch, k, val, msg, sizeof(msg));
		if (r == 0 && copy_plain(f->block, k, f->scratch, f->line) < 0)
			snprintf(msg, sizeof(msg), "out of memory"), r = -ENOMEM;
	}
	return r < 0 ? file_error(f, "%s: %s", key, msg) : 0;
}

/* A setting at the top level. */
static int top_line(struct pfile *f, const char *key, const char *val)
{
	struct pt_server_config *c = f->c;
	const char *k = !strcmp(key, "root") ? "docroot" : key;
	unsigned ncert = c->ntls_cert;
	char msg[300], sv[64];
	int r = pt__config_set(c, k, val, msg, sizeof(msg));

	if (r == PT_CONFIG_UNKNOWN)
		return file_error(f, "unknown setting '%s'", pt__config_shown(key, sv, sizeof(sv)));
	if (r < 0)
		return file_error(f, "%s: %s", key, msg);
	if (!strcmp(k, "docroot"))
		c->docroot_line = f->line;
	if (c->ntls_cert > ncert)
		c->tls_cert_line[ncert] = f->line;
	return 0;
}

/* One line (without its '\n', NUL-terminated in s). */
static int file_line(struct pfile *f, char *s)
{
	char *key, *val, *e;

	while (is_blank(*s))
		s++;
	if (*s == '\0' || *s == '#')
		return 0;
	for (key = s; *s && !is_blank(*s); s++)
		;
	e = s;
	while (is_blank(*s))
		s++;
	val = s;
	*e = '\0';
	for (e = val + strlen(val); e > val && is_blank(e[-1]); e--)
		;
	*e = '\0';
	if (!strcmp(key, "host"))
		return open_block(f, val);
	if (!strcmp(key, "}")) {
		if (!f->block || *val)
			return file_error(f, f->block ? "'}' must be alone on its line"
						      : "'}' without a host block");
		f->block = NULL;
		return 0;
	}
	return f->block ? block_line(f, key, *val ? val : NULL)
			: top_line(f, key, *val ? val : NULL);
}

/* After the last line: no open block, no name used twice. */
static int file_end(struct pfile *f)
{
	char msg[300];
	unsigned line;

	if (f->block) {
		f->line = f->block->line;
		return file_error(f, "host: the block is not closed with '}'");
	}
	if (pt_site_check_names(f->c->hosts, f->c->nhosts, &line, msg, sizeof(msg)) < 0) {
		f->line = line;
		return file_error(f, "host: %s", msg);
	}
	return 0;
}

static int parse_lines(struct pfile *f, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	char buf[PATH_MAX + 256];

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((eol ? eol : end) - p);
		int r;

		f->line++;
		if (memchr(p, '\0', n))
			return file_error(f, "NUL byte in the line");
		if (n >= sizeof(buf))
			return file_error(f, "line too long");
		memcpy(buf, p, n);
		buf[n] = '\0';
		if ((r = file_line(f, buf)) < 0)
			return r;
		p = eol ? eol + 1 : end;
	}
	return file_end(f);
}

int pt_config_parse_text(struct pt_server_config *c, const char *text, size_t len,
			 const char *name, char *err, size_t errlen)
{
	struct pfile f = { c, NULL, NULL, name, 0, err, errlen };
	int r = parse_lines(&f, text, len);

	if (f.scratch)
		pt_config_free(f.scratch);
	free(f.scratch);
	return r;
}

int pt_config_parse_file(struct pt_server_config *c, const char *path, char *err,
			 size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n = 0;
	int fd, r = PT_CONFIG_USAGE;

	/* O_NONBLOCK: a FIFO given by mistake must not hang the start (it is refused below) */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "config file '%s': %s", path, strerror(errno));
		return PT_CONFIG_USAGE;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > PT_CONFIG_FILE_MAX) {
		snprintf(err, errlen, "config file '%s': not a regular file of at most 1 MiB",
			 path);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf)
		n = read(fd, buf, (size_t)st.st_size);
	if (!buf || n < 0) {
		snprintf(err, errlen, "config file '%s': %s", path,
			 strerror(buf ? errno : ENOMEM));
		goto out;
	}
	r = pt_config_parse_text(c, buf, (size_t)n, path, err, errlen);
	if (r == 0 && strlen(path) < sizeof(c->config_file))
		strcpy(c->config_file, path);
out:
	free(buf);
	close(fd);
	return r;
}
