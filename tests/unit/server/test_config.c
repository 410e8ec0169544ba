/*
 * Unit tests of src/server/config.c: defaults, every option (its bounds, one below and one
 * above, garbage), units, listen addresses, on/off options, short and long forms, help and
 * version output, the config file (syntax, errors with file:line) and its precedence under
 * the command line, opening the docroot, the TLS options and their cross-checks, and
 * agreement of --help and docs/portico.1.
 */
#include "server/config.c"
#include "server/config_values.c"
#include "server/config_check.c"
#include "server/conffile.c"
#include "server/site.c"
#include "server/path.c"
#include "server/path_open.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

/* Each parse below reuses g_c: free what the previous one allocated (host blocks, rules)
 * first. Defined after the includes, so config.c itself is not affected. */
#define pt_config_parse_args(c, ...) (pt_config_free(c), pt_config_parse_args(c, __VA_ARGS__))
#define pt_config_defaults(c) (pt_config_free(c), pt_config_defaults(c))

static struct pt_server_config g_c;
static char g_err[512];

/* Parses a NULL-terminated argument list (argv[0] is added). */
static int args_v(const char *first, va_list ap)
{
	char *argv[64] = { "portico" };
	int argc = 1;

	for (const char *a = first; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	g_err[0] = '\0';
	return pt_config_parse_args(&g_c, argc, argv, g_err, sizeof(g_err));
}

static int args(const char *first, ...)
{
	va_list ap;
	int r;

	va_start(ap, first);
	r = args_v(first, ap);
	va_end(ap);
	return r;
}

/* Expects a usage error whose message contains want. */
static void bad(const char *want, const char *first, ...)
{
	va_list ap;
	int r;

	va_start(ap, first);
	r = args_v(first, ap);
	va_end(ap);
	if (r != PT_CONFIG_USAGE || !strstr(g_err, want))
		fail_msg("%s ...: got %d \"%s\", want -2 with \"%s\"", first, r, g_err, want);
}

static char *write_temp(const char *text)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/pt-config.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* Runs pt_config_parse_args with stdout captured into out. */
static int capture(char *out, size_t cap, const char *a1, const char *a2)
{
	char *argv[] = { "portico", (char *)a1, (char *)a2, NULL };
	FILE *tmp = tmpfile();
	int saved, r;
	size_t n;

	fflush(stdout);
	saved = dup(1);
	dup2(fileno(tmp), 1);
	r = pt_config_parse_args(&g_c, a2 ? 3 : 2, argv, g_err, sizeof(g_err));
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, cap - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	return r;
}

/* ---- defaults and simple options ---- */

static void test_defaults(void **state)
{
	assert_int_equal(args(NULL), 0);
	assert_string_equal(g_c.docroot, ".");
	assert_int_equal(g_c.nlisten, 1);
	assert_string_equal(g_c.listen[0], PT_CONFIG_DEFAULT_LISTEN);
	assert_int_equal(g_c.workers, 0);
	assert_int_equal(g_c.backend, PT_BACKEND_AUTO);
	assert_string_equal(g_c.index, "index.html");
	assert_false(g_c.autoindex);
	assert_false(g_c.follow_symlinks);
	assert_string_equal(g_c.cache_control, "");
	assert_string_equal(g_c.access_log, "");
	assert_string_equal(g_c.error_log, "-");
	assert_string_equal(g_c.user, "");
	assert_int_equal(g_c.max_conns, 0);
	assert_true(g_c.max_head == 16384 && g_c.max_target == 8192);
	assert_int_equal(g_c.max_headers, 100);
	assert_true(g_c.max_body == 1048576 && g_c.max_drain == 1048576);
	assert_true(g_c.send_queue == 4194304 && g_c.worker_buffer == 67108864);
	assert_int_equal(g_c.queue_length, 1000);
	assert_int_equal(g_c.backlog, 4096);
	assert_int_equal(g_c.when_full, PT_FULL_SHED);
	assert_int_equal(g_c.header_timeout_ms, 120000);
	assert_int_equal(g_c.idle_timeout_ms, 120000);
	assert_int_equal(g_c.body_timeout_ms, 120000);
	assert_int_equal(g_c.drain_timeout_ms, 120000);
	assert_int_equal(g_c.queue_timeout_ms, 120000);
	assert_int_equal(g_c.min_send_rate, 150);
	assert_int_equal(g_c.shutdown_ms, 5000);
	assert_int_equal(g_c.stop_grace_ms, 1000);
	assert_int_equal(g_c.defer_accept_sec, 0);
	assert_string_equal(g_c.config_file, "");
	assert_int_equal(g_c.nlisten_tls, 0);
	assert_true(g_c.ntls_cert == 0 && g_c.ntls_key == 0);
	assert_int_equal(g_c.tls_min_version, PT_TLS_1_2);
	assert_int_equal(g_c.tls_max_version, PT_TLS_1_3);
	assert_int_equal(g_c.hsts, PT_CONFIG_OFF);
	assert_false(g_c.redirect_https);
}

static unsigned uval(const struct opt *o)
{
	return *(unsigned *)((char *)&g_c + o->off);
}

static uint64_t sval(const struct opt *o)
{
	return *(uint64_t *)((char *)&g_c + o->off);
}

/* Every numeric option: its bounds are accepted and stored, one outside is refused with a
 * message naming the option, and so is garbage, in both --name=V and --name V forms. */
static void test_numeric_bounds(void **state)
{
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		char flag[160], v[64], want[80];
		uint64_t scale = o->kind == K_MS ? 1000 : 1, lo = o->min, hi = o->max;

		if (o->kind != K_UINT && o->kind != K_SIZE && o->kind != K_MS && o->kind != K_RATE)
			continue;
		snprintf(flag, sizeof(flag), "--%s", o->name);
		snprintf(want, sizeof(want), "--%s: invalid value", o->name);
		if (o->kind == K_MS) { /* in seconds, with millisecond decimals */
			snprintf(v, sizeof(v), "%llu.%03llu", (unsigned long long)(lo / 1000),
				 (unsigned long long)(lo % 1000));
		} else {
			snprintf(v, sizeof(v), "%llu", (unsigned long long)lo);
		}
		assert_int_equal(args(flag, v, NULL), 0);
		assert_true((o->kind == K_SIZE ? sval(o) : uval(o)) == lo);
		snprintf(v, sizeof(v), "%llu", (unsigned long long)(hi / scale));
		snprintf(flag, sizeof(flag), "--%s=%s", o->name, v);
		assert_int_equal(args(flag, NULL), 0);
		assert_true((o->kind == K_SIZE ? sval(o) : uval(o)) == hi);
		snprintf(flag, sizeof(flag), "--%s", o->name);
		if (lo > 0) {
			snprintf(v, sizeof(v), "%llu", (unsigned long long)(lo - 1));
			if (o->kind == K_MS)
				snprintf(v, sizeof(v), "0.000");
			bad(want, flag, v, NULL);
		}
		snprintf(v, sizeof(v), "%llu", (unsigned long long)(hi / scale + 1));
		bad(want, flag, v, NULL);
		bad(want, flag, "abc", NULL);
		bad(want, flag, "", NULL);
		bad(want, flag, "-1", NULL);
		bad(want, flag, "+1", NULL);
		bad(want, flag, " 1", NULL);
		bad(want, flag, "1 ", NULL);
		bad(want, flag, "99999999999999999999999", NULL);
		bad("needs a value", flag, NULL);
	}
}

static void test_units(void **state)
{
	assert_int_equal(args("--max-head", "32k", "--max-body", "3M", "--worker-buffer", "2g",
			      "--send-queue", "65536", NULL), 0);
	assert_true(g_c.max_head == 32768 && g_c.max_body == 3 * MIB);
	assert_true(g_c.worker_buffer == 2 * GIB && g_c.send_queue == 65536);
	bad("--max-body: invalid value '1kb'", "--max-body", "1kb", NULL);
	bad("--max-body", "--max-body", "1.5m", NULL);
	bad("--max-body", "--max-body", "k", NULL);
	bad("--max-body", "--max-body", "17179869184g", NULL); /* overflows uint64 */
	assert_int_equal(args("--idle-timeout", "0.5", "--body-timeout", "1.25",
			      "--drain-timeout", "2.125", "--header-timeout", "7",
			      "--queue-timeout", "0.001", "--shutdown-timeout", "30.", NULL),
			 PT_CONFIG_USAGE); /* "30." has no decimals */
	assert_int_equal(args("--idle-timeout", "0.5", "--body-timeout", "1.25",
			      "--drain-timeout", "2.125", "--header-timeout", "7",
			      "--queue-timeout", "0.001", "--shutdown-timeout", "30", NULL), 0);
	assert_int_equal(g_c.idle_timeout_ms, 500);
	assert_int_equal(g_c.body_timeout_ms, 1250);
	assert_int_equal(g_c.drain_timeout_ms, 2125);
	assert_int_equal(g_c.header_timeout_ms, 7000);
	assert_int_equal(g_c.queue_timeout_ms, 1);
	assert_int_equal(g_c.shutdown_ms, 30000);
	assert_int_equal(args("--stop-grace", "2.5", NULL), 0);
	assert_int_equal(g_c.stop_grace_ms, 2500);
	assert_int_equal(args("--stop-grace", "0", NULL), 0);    /* idle connections close at once */
	assert_int_equal(g_c.stop_grace_ms, 0);
	bad("--stop-grace", "--stop-grace", "-1", NULL);
	bad("--idle-timeout", "--idle-timeout", "0.0005", NULL);     /* below a millisecond */
	bad("--idle-timeout", "--idle-timeout", "0", NULL);
	bad("--idle-timeout", "--idle-timeout", ".5", NULL);
	bad("--idle-timeout", "--idle-timeout", "1e3", NULL);
	bad("--idle-timeout", "--idle-timeout", "1,5", NULL);
	bad("--idle-timeout", "--idle-timeout", "604801", NULL);
	bad("--idle-timeout", "--idle-timeout", "5000000000", NULL);
	assert_int_equal(args("--min-send-rate", "off", NULL), 0);
	assert_int_equal(g_c.min_send_rate, PT_CONFIG_RATE_OFF);
	assert_int_equal(args("--min-send-rate", "1k", NULL), 0);
	assert_int_equal(g_c.min_send_rate, 1024);
	bad("--min-send-rate", "--min-send-rate", "0", NULL);
	bad("--min-send-rate", "--min-send-rate", "auto", NULL);
	assert_int_equal(args("--workers", "auto", "--max-conns", "auto", NULL), 0);
	assert_true(g_c.workers == 0 && g_c.max_conns == 0);
	bad("--workers", "--workers", "0", NULL);
	bad("--workers", "--workers", "off", NULL);
	bad("--max-headers", "--max-headers", "auto", NULL);
	assert_int_equal(args("--defer-accept", "0", NULL), 0);
}

static void test_listen(void **state)
{
	assert_int_equal(args("-l", "127.0.0.1:8080", "--listen", "[::1]:8080", "-l8081",
			      "--listen=*:80", "-l", "[::]:0", "-l", "[::ffff:1.2.3.4]:65535",
			      NULL), 0);
	assert_int_equal(g_c.nlisten, 6);
	assert_string_equal(g_c.listen[0], "127.0.0.1:8080");
	assert_string_equal(g_c.listen[1], "[::1]:8080");
	assert_string_equal(g_c.listen[2], "0.0.0.0:8081");
	assert_string_equal(g_c.listen[3], "0.0.0.0:80");
	assert_string_equal(g_c.listen[4], "[::]:0");
	assert_string_equal(g_c.listen[5], "[::ffff:1.2.3.4]:65535");
	static const char *bads[] = {
		"", ":80", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:x",
		"127.0.0.1:-1", "1.2.3:80", "256.1.1.1:80", "localhost:80", "::1:80", "[::1]",
		"[::1]80", "[::1]:", "[1.2.3.4]:80", "[::1%lo]:80", "[]:80", "65536",
		"127.0.0.1:000080", "[::1]:8080x", " 1.2.3.4:80",
	};
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++)
		bad("--listen: invalid value", "-l", bads[i], NULL);
}

static void test_listen_limit(void **state)
{
	char *argv[40] = { "portico" };
	char addrs[17][32];
	int argc = 1;

	for (int i = 0; i < 17; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%d", 8000 + i);
		argv[argc++] = "-l";
		argv[argc++] = addrs[i];
	}
	assert_int_equal(pt_config_parse_args(&g_c, argc - 2, argv, g_err, sizeof(g_err)), 0);
	assert_int_equal(g_c.nlisten, 16);
	assert_int_equal(pt_config_parse_args(&g_c, argc, argv, g_err, sizeof(g_err)),
			 PT_CONFIG_USAGE);
	assert_non_null(strstr(g_err, "--listen: more than 16"));
}

static void test_choices(void **state)
{
	assert_int_equal(args("--backend", "uring", NULL), 0);
	assert_int_equal(g_c.backend, PT_BACKEND_URING);
	assert_int_equal(args("--backend=epoll", NULL), 0);
	assert_int_equal(g_c.backend, PT_BACKEND_EPOLL);
	assert_int_equal(args("--backend", "auto", NULL), 0);
	assert_int_equal(g_c.backend, PT_BACKEND_AUTO);
	bad("--backend: invalid value 'kqueue' (expected uring, epoll or auto)", "--backend",
	    "kqueue", NULL);
	bad("--backend", "--backend", "URING", NULL);
	bad("--backend", "--backend", "u", NULL);
	assert_int_equal(args("--when-full", "pause", NULL), 0);
	assert_int_equal(g_c.when_full, PT_FULL_PAUSE);
	assert_int_equal(args("--when-full", "shed", NULL), 0);
	assert_int_equal(g_c.when_full, PT_FULL_SHED);
	bad("--when-full", "--when-full", "drop", NULL);
}

static void test_bools(void **state)
{
	assert_int_equal(args("--autoindex", "--follow-symlinks", NULL), 0);
	assert_true(g_c.autoindex && g_c.follow_symlinks);
	assert_int_equal(args("--autoindex=off", "--follow-symlinks=no", NULL), 0);
	assert_false(g_c.autoindex || g_c.follow_symlinks);
	assert_int_equal(args("--autoindex=on", "--follow-symlinks=TRUE", NULL), 0);
	assert_true(g_c.autoindex && g_c.follow_symlinks);
	assert_int_equal(args("--autoindex=1", "--autoindex=0", NULL), 0);
	assert_false(g_c.autoindex);
	bad("--autoindex: invalid value 'maybe' (expected on or off)", "--autoindex=maybe", NULL);
	bad("--autoindex", "--autoindex=", NULL);
	/* an on/off option does not take the next argument as its value */
	assert_int_equal(args("--autoindex", "off", NULL), 0);
	assert_true(g_c.autoindex);
	assert_string_equal(g_c.docroot, "off");
}

static void test_strings(void **state)
{
	assert_int_equal(args("--index", "home.htm", "--cache-control", "public, max-age=60",
			      "--access-log", "-", "--error-log", "/var/log/e.log", "--user",
			      "www-data", "--docroot", "/srv", NULL), 0);
	assert_string_equal(g_c.index, "home.htm");
	assert_string_equal(g_c.cache_control, "public, max-age=60");
	assert_string_equal(g_c.access_log, "-");
	assert_string_equal(g_c.error_log, "/var/log/e.log");
	assert_string_equal(g_c.user, "www-data");
	assert_string_equal(g_c.docroot, "/srv");
	assert_int_equal(args("--index", "off", "--access-log", "off", "--cache-control", "off",
			      NULL), 0);
	assert_string_equal(g_c.index, "");
	assert_string_equal(g_c.access_log, "");
	assert_string_equal(g_c.cache_control, "");
	bad("--index: invalid value 'a/b'", "--index", "a/b", NULL);
	bad("--index", "--index", "..", NULL);
	bad("--index", "--index", ".", NULL);
	bad("--index", "--index", "", NULL);
	bad("--cache-control: invalid value 'a??b'", "--cache-control", "a\r\nb", NULL);
	bad("--cache-control", "--cache-control", "x\x01", NULL);
	assert_int_equal(args("--cache-control", "a\tb", NULL), 0);
	bad("--user", "--user", "", NULL);
	bad("--user", "--user", "a b", NULL);
	bad("--user", "--user", "a:b", NULL);
	bad("--access-log", "--access-log", "", NULL);
	bad("--error-log", "--error-log", "", NULL);
	bad("--error-log: invalid value 'off' (expected a path or -", "--error-log", "off", NULL);
}

static void test_long_strings(void **state)
{
	char big[PATH_MAX + 10];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bad("DOCROOT: invalid value 'aaa", big, NULL);
	bad("--user: invalid value", "--user", big, NULL);
	bad("expected a shorter value", "--access-log", big, NULL);
	big[PATH_MAX - 1] = '\0';
	assert_int_equal(args(big, NULL), 0);
	assert_int_equal(strlen(g_c.docroot), PATH_MAX - 1);
}

static void test_forms(void **state)
{
	assert_int_equal(args("-w", "3", NULL), 0);
	assert_int_equal(g_c.workers, 3);
	assert_int_equal(args("-w7", NULL), 0);
	assert_int_equal(g_c.workers, 7);
	assert_int_equal(args("--workers=9", NULL), 0);
	assert_int_equal(g_c.workers, 9);
	assert_int_equal(args("--workers", "2", "--workers", "5", NULL), 0); /* last wins */
	assert_int_equal(g_c.workers, 5);
	assert_int_equal(args("--", "-dir-with-dash", NULL), 0);
	assert_string_equal(g_c.docroot, "-dir-with-dash");
	assert_int_equal(args("-", NULL), 0);
	assert_string_equal(g_c.docroot, "-");
	assert_int_equal(args("www", "-w", "2", NULL), 0); /* options after DOCROOT */
	assert_string_equal(g_c.docroot, "www");
	assert_int_equal(args("--workers", "-5", NULL), PT_CONFIG_USAGE); /* a value, not a flag */
	assert_non_null(strstr(g_err, "--workers: invalid value '-5'"));
}

static void test_usage_errors(void **state)
{
	bad("unknown option '--bogus'", "--bogus", NULL);
	bad("unknown option '--bogus=1'", "--bogus=1", NULL);
	bad("unknown option '-x'", "-x", NULL);
	bad("unknown option '-hV'", "-hV", NULL);
	bad("unknown option '--Workers'", "--Workers", "2", NULL);
	bad("unknown option '---workers'", "---workers", "2", NULL);
	bad("option '--listen' needs a value", "-l", NULL);
	bad("option '--workers' needs a value", "--workers", NULL);
	bad("option '--help' takes no value", "--help=yes", NULL);
	bad("option '--version' takes no value", "--version=1", NULL);
	bad("unexpected argument 'b': only one DOCROOT", "a", "b", NULL);
	bad("unknown option", "www", "--nope", NULL);
	/* messages do not echo control characters */
	bad("unknown option '--a?b'", "--a\x1b" "b", NULL);
}

static void test_help_and_version(void **state)
{
	static char out[16384];

	assert_int_equal(capture(out, sizeof(out), "--help", NULL), 1);
	assert_non_null(strstr(out, "Usage: portico [OPTIONS] [DOCROOT]"));
	for (size_t i = 0; i < NOPTS; i++) {
		char name[64];

		snprintf(name, sizeof(name), "--%s", opts[i].name);
		if (!strstr(out, name))
			fail_msg("--help lacks %s", name);
	}
	for (char *line = out, *nl; (nl = strchr(line, '\n')); line = nl + 1)
		if (nl - line > HELP_WIDTH)
			fail_msg("help line over %d columns: %.*s", HELP_WIDTH, (int)(nl - line),
				 line);
	assert_int_equal(capture(out, sizeof(out), "-h", NULL), 1);
	assert_int_equal(capture(out, sizeof(out), "-V", NULL), 1);
	assert_int_equal(strncmp(out, "portico ", 8), 0);
	assert_int_equal(capture(out, sizeof(out), "--version", NULL), 1);
	/* help wins over a bad value elsewhere, and over a config file */
	assert_int_equal(capture(out, sizeof(out), "--workers=x", "-h"), 1);
	assert_int_equal(capture(out, sizeof(out), "-c", "/nonexistent"), PT_CONFIG_USAGE);
	assert_int_equal(capture(out, sizeof(out), "-c/nonexistent", "--help"), 1);
}

/* ---- the config file ---- */

static void test_config_file(void **state)
{
	char *path = write_temp(
		"# a comment\n"
		"\n"
		"   # an indented comment\n"
		"listen 127.0.0.1:9000\n"
		"listen\t[::1]:9000\n"
		"workers 3\r\n"
		"backend epoll\n"
		"docroot /srv/www\n"
		"user nobody\n"
		"index start.html\n"
		"autoindex\n"
		"follow-symlinks off\n"
		"cache-control   public, max-age=3600   \n"
		"access-log /tmp/access.log\n"
		"error-log -\n"
		"max-conns 5000\n"
		"max-head 32k\n"
		"max-target 4k\n"
		"max-headers 50\n"
		"max-body 10m\n"
		"max-drain 2m\n"
		"send-queue 1m\n"
		"worker-buffer 128m\n"
		"queue-length 10\n"
		"backlog 128\n"
		"when-full pause\n"
		"header-timeout 10\n"
		"idle-timeout 15.5\n"
		"body-timeout 20\n"
		"drain-timeout 5\n"
		"queue-timeout 1\n"
		"min-send-rate 300\n"
		"shutdown-timeout 2\n"
		"defer-accept 3");
	char cfg[80];

	snprintf(cfg, sizeof(cfg), "--config=%s", path);
	assert_int_equal(args(cfg, NULL), 0);
	unlink(path);
	assert_string_equal(g_c.config_file, path);
	assert_int_equal(g_c.nlisten, 2);
	assert_string_equal(g_c.listen[0], "127.0.0.1:9000");
	assert_string_equal(g_c.listen[1], "[::1]:9000");
	assert_int_equal(g_c.workers, 3);
	assert_int_equal(g_c.backend, PT_BACKEND_EPOLL);
	assert_string_equal(g_c.docroot, "/srv/www");
	assert_string_equal(g_c.user, "nobody");
	assert_string_equal(g_c.index, "start.html");
	assert_true(g_c.autoindex);
	assert_false(g_c.follow_symlinks);
	assert_string_equal(g_c.cache_control, "public, max-age=3600");
	assert_string_equal(g_c.access_log, "/tmp/access.log");
	assert_int_equal(g_c.max_conns, 5000);
	assert_true(g_c.max_head == 32768 && g_c.max_target == 4096);
	assert_int_equal(g_c.max_headers, 50);
	assert_true(g_c.max_body == 10 * MIB && g_c.max_drain == 2 * MIB);
	assert_true(g_c.send_queue == MIB && g_c.worker_buffer == 128 * MIB);
	assert_int_equal(g_c.queue_length, 10);
	assert_int_equal(g_c.backlog, 128);
	assert_int_equal(g_c.when_full, PT_FULL_PAUSE);
	assert_int_equal(g_c.header_timeout_ms, 10000);
	assert_int_equal(g_c.idle_timeout_ms, 15500);
	assert_int_equal(g_c.body_timeout_ms, 20000);
	assert_int_equal(g_c.drain_timeout_ms, 5000);
	assert_int_equal(g_c.queue_timeout_ms, 1000);
	assert_int_equal(g_c.min_send_rate, 300);
	assert_int_equal(g_c.shutdown_ms, 2000);
	assert_int_equal(g_c.defer_accept_sec, 3);
}

static void text_bad(const char *text, const char *want)
{
	int r;

	pt_config_defaults(&g_c);
	g_err[0] = '\0';
	r = pt_config_parse_text(&g_c, text, strlen(text), "f.conf", g_err, sizeof(g_err));
	if (r != PT_CONFIG_USAGE || !strstr(g_err, want))
		fail_msg("\"%s\": got %d \"%s\", want \"%s\"", text, r, g_err, want);
}

static void test_config_file_errors(void **state)
{
	text_bad("workers 2\nbogus 1\n", "f.conf:2: unknown setting 'bogus'");
	text_bad("\n\n\nworkers x\n", "f.conf:4: workers: invalid value 'x'");
	text_bad("workers\n", "f.conf:1: workers: needs a value");
	text_bad("config other.conf\n", "f.conf:1: unknown setting 'config'");
	text_bad("help\n", "f.conf:1: unknown setting 'help'");
	text_bad("version\n", "f.conf:1: unknown setting 'version'");
	text_bad("--workers 2\n", "f.conf:1: unknown setting '--workers'");
	text_bad("workers=2\n", "f.conf:1: unknown setting 'workers=2'");
	text_bad("autoindex maybe\n", "f.conf:1: autoindex: invalid value 'maybe'");
	text_bad("listen 1.2.3.4\n", "f.conf:1: listen: invalid value");
	text_bad("workers 2 # comment\n", "f.conf:1: workers: invalid value '2 # comment'");
	text_bad("a\0b\n", "f.conf:1: unknown setting 'a'");
	{
		static const char nul[] = "workers 2\nwork\0ers 3\n";

		pt_config_defaults(&g_c);
		assert_int_equal(pt_config_parse_text(&g_c, nul, sizeof(nul) - 1, "f.conf",
						      g_err, sizeof(g_err)), PT_CONFIG_USAGE);
		assert_non_null(strstr(g_err, "f.conf:2: NUL byte"));
	}
	{
		size_t n = PATH_MAX + 300;
		char *big = malloc(n + 1);

		memset(big, ' ', n);
		big[n] = '\0';
		text_bad(big, "f.conf:1: line too long");
		free(big);
	}
	/* a file that is empty or only comments changes nothing */
	pt_config_defaults(&g_c);
	assert_int_equal(pt_config_parse_text(&g_c, "", 0, "f", g_err, sizeof(g_err)), 0);
	assert_int_equal(pt_config_parse_text(&g_c, "#x\n\n  \n\t#y", 10, "f", g_err,
					      sizeof(g_err)), 0);
	assert_int_equal(g_c.nlisten, 0);
}

static void test_config_file_unreadable(void **state)
{
	bad("config file '/nonexistent/p.conf': No such file or directory", "-c",
	    "/nonexistent/p.conf", NULL);
	bad("config file '/tmp': not a regular file", "-c", "/tmp", NULL);
	bad("option '--config' needs a value", "-c", NULL);
	{
		char *path = write_temp("workers 2\nnope\n");

		bad(":2: unknown setting 'nope'", "-c", path, NULL);
		unlink(path);
	}
}

static void test_precedence(void **state)
{
	char *path = write_temp("workers 3\nlisten 127.0.0.1:1\nlisten 127.0.0.1:2\n"
				"docroot /from/file\nautoindex\n");

	/* the command line wins whatever the order */
	assert_int_equal(args("--workers", "5", "-c", path, NULL), 0);
	assert_int_equal(g_c.workers, 5);
	assert_int_equal(args("-c", path, "--workers", "6", NULL), 0);
	assert_int_equal(g_c.workers, 6);
	/* the file's value stays when the command line says nothing */
	assert_int_equal(args("-c", path, NULL), 0);
	assert_int_equal(g_c.workers, 3);
	assert_string_equal(g_c.docroot, "/from/file");
	assert_true(g_c.autoindex);
	assert_int_equal(g_c.nlisten, 2);
	/* -l replaces the file's addresses as a whole */
	assert_int_equal(args("-c", path, "-l", "127.0.0.1:3", NULL), 0);
	assert_int_equal(g_c.nlisten, 1);
	assert_string_equal(g_c.listen[0], "127.0.0.1:3");
	assert_int_equal(args("-l", "127.0.0.1:3", "-c", path, "-l", "127.0.0.1:4", NULL), 0);
	assert_int_equal(g_c.nlisten, 2);
	assert_string_equal(g_c.listen[1], "127.0.0.1:4");
	/* DOCROOT and --autoindex=off override the file */
	assert_int_equal(args("-c", path, "/from/args", "--autoindex=off", NULL), 0);
	assert_string_equal(g_c.docroot, "/from/args");
	assert_false(g_c.autoindex);
	/* two -c: the last one is read */
	assert_int_equal(args("-c", "/nonexistent", "-c", path, NULL), 0);
	unlink(path);
}

/* ---- TLS ---- */

static void test_listen_tls(void **state)
{
	/* HTTPS only: no default plaintext address */
	assert_int_equal(args("--listen-tls", "127.0.0.1:8443", "--listen-tls=[::1]:443",
			      "--listen-tls", "8444", NULL), 0);
	assert_int_equal(g_c.nlisten, 0);
	assert_int_equal(g_c.nlisten_tls, 3);
	assert_string_equal(g_c.listen_tls[0], "127.0.0.1:8443");
	assert_string_equal(g_c.listen_tls[1], "[::1]:443");
	assert_string_equal(g_c.listen_tls[2], "0.0.0.0:8444");
	/* beside --listen, in any order */
	assert_int_equal(args("--listen-tls", "*:443", "-l", "80", NULL), 0);
	assert_int_equal(g_c.nlisten, 1);
	assert_int_equal(g_c.nlisten_tls, 1);
	assert_string_equal(g_c.listen[0], "0.0.0.0:80");
	assert_string_equal(g_c.listen_tls[0], "0.0.0.0:443");
	bad("--listen-tls: invalid value 'localhost:443' (expected IPv4:PORT, [IPv6]:PORT or PORT)",
	    "--listen-tls", "localhost:443", NULL);
	bad("--listen-tls: invalid value", "--listen-tls", "1.2.3.4:65536", NULL);
	bad("--listen-tls: invalid value", "--listen-tls", "", NULL);
	bad("option '--listen-tls' needs a value", "--listen-tls", NULL);
}

/* 16 --listen and 16 --listen-tls together; the 17th of either is refused. */
static void test_listen_tls_limit(void **state)
{
	char *argv[80] = { "portico" };
	char addrs[34][32];
	int argc = 1;

	for (int i = 0; i < 34; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%d", 8000 + i);
		argv[argc++] = i < 17 ? "--listen-tls" : "-l";
		argv[argc++] = addrs[i];
	}
	assert_int_equal(pt_config_parse_args(&g_c, argc, argv, g_err, sizeof(g_err)),
			 PT_CONFIG_USAGE);
	assert_non_null(strstr(g_err, "--listen-tls: more than 16 addresses"));
	memmove(argv + 33, argv + 35, 32 * sizeof(argv[0])); /* drop the 17th --listen-tls */
	assert_int_equal(pt_config_parse_args(&g_c, argc - 4, argv, g_err, sizeof(g_err)), 0);
	assert_true(g_c.nlisten_tls == 16 && g_c.nlisten == 16);
	assert_string_equal(g_c.listen_tls[15], "127.0.0.1:8015");
	assert_string_equal(g_c.listen[15], "127.0.0.1:8032");
}

static void test_tls_files(void **state)
{
	assert_int_equal(args("--tls-cert", "/etc/a.pem", "--tls-key", "/etc/a.key",
			      "--tls-cert=b.pem", "--tls-key=b.key", NULL), 0);
	assert_true(g_c.ntls_cert == 2 && g_c.ntls_key == 2);
	assert_string_equal(g_c.tls_cert[0], "/etc/a.pem");
	assert_string_equal(g_c.tls_key[0], "/etc/a.key");
	assert_string_equal(g_c.tls_cert[1], "b.pem");
	assert_string_equal(g_c.tls_key[1], "b.key");
	bad("--tls-cert: invalid value '' (expected a file name)", "--tls-cert", "", NULL);
	bad("--tls-key: invalid value 'a?b'", "--tls-key", "a\nb", NULL);
	{
		char big[PATH_MAX + 1];

		memset(big, 'a', PATH_MAX);
		big[PATH_MAX] = '\0';
		bad("--tls-cert: invalid value 'aaa", "--tls-cert", big, NULL);
		big[PATH_MAX - 1] = '\0';
		assert_int_equal(args("--tls-key", big, NULL), 0);
		assert_int_equal(strlen(g_c.tls_key[0]), PATH_MAX - 1);
	}
	{
		char *argv[40] = { "portico" };
		int argc = 1;

		for (int i = 0; i < 17; i++) {
			argv[argc++] = "--tls-cert";
			argv[argc++] = "c.pem";
		}
		assert_int_equal(pt_config_parse_args(&g_c, argc - 2, argv, g_err, sizeof(g_err)), 0);
		assert_int_equal(g_c.ntls_cert, 16);
		assert_int_equal(pt_config_parse_args(&g_c, argc, argv, g_err, sizeof(g_err)),
				 PT_CONFIG_USAGE);
		assert_non_null(strstr(g_err, "--tls-cert: more than 16 files"));
	}
}

static void protocols(const char *v, unsigned min, unsigned max)
{
	if (args("--tls-protocols", v, NULL) != 0)
		fail_msg("--tls-protocols '%s': %s", v, g_err);
	assert_int_equal(g_c.tls_min_version, min);
	assert_int_equal(g_c.tls_max_version, max);
}

static void test_tls_protocols(void **state)
{
	protocols("TLSv1.2,TLSv1.3", PT_TLS_1_2, PT_TLS_1_3);
	protocols("TLSv1.3,TLSv1.2", PT_TLS_1_2, PT_TLS_1_3);
	protocols("TLSv1.2, TLSv1.3", PT_TLS_1_2, PT_TLS_1_3);
	protocols("TLSv1.2 TLSv1.3", PT_TLS_1_2, PT_TLS_1_3);    /* nginx's spelling */
	protocols("TLSv1.3", PT_TLS_1_3, PT_TLS_1_3);
	protocols("tlsv1.2", PT_TLS_1_2, PT_TLS_1_2);
	protocols("TLSv1.2,TLSv1.2", PT_TLS_1_2, PT_TLS_1_2);
	static const char *const old[] = {
		"TLSv1", "TLSv1.0", "TLSv1.1", "SSLv3", "SSLv2", "TLSv1.1,TLSv1.2", "TLSv1.3,tlsv1",
	};
	for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++)
		bad("TLSv1, TLSv1.1 and SSL are insecure (RFC 8996) and not supported",
		    "--tls-protocols", old[i], NULL);
	static const char *const garbage[] = {
		"", ",", " ", "TLSv1.4", "TLSv1.2;TLSv1.3", "TLSv12", "TLS1.2", "TLSv1.2x", "all",
		"TLSv1.2\n",
	};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
		bad("--tls-protocols: invalid value", "--tls-protocols", garbage[i], NULL);
	bad("(expected TLSv1.2, TLSv1.3 or both, comma-separated)", "--tls-protocols", "x", NULL);
}

static void test_hsts_redirect(void **state)
{
	assert_int_equal(args("--hsts", "63072000", "--redirect-https", NULL), 0);
	assert_int_equal(g_c.hsts, 63072000);
	assert_true(g_c.redirect_https);
	assert_int_equal(args("--hsts", "0", "--redirect-https=off", NULL), 0);
	assert_int_equal(g_c.hsts, 0);                /* max-age=0: clients forget the host */
	assert_false(g_c.redirect_https);
	assert_int_equal(args("--hsts", "2147483647", NULL), 0);
	assert_int_equal(args("--hsts", "off", NULL), 0);
	assert_int_equal(g_c.hsts, PT_CONFIG_OFF);
	bad("--hsts: invalid value '2147483648' (expected an integer from 0 to 2147483647, or off)",
	    "--hsts", "2147483648", NULL);
	bad("--hsts: invalid value", "--hsts", "1y", NULL);
	bad("--hsts: invalid value", "--hsts", "auto", NULL);
	bad("--redirect-https: invalid value 'https' (expected on or off)",
	    "--redirect-https=https", NULL);
}

static void test_tls_config_file(void **state)
{
	char *path = write_temp("listen-tls 127.0.0.1:8443\n"
				"listen-tls [::1]:8443\n"
				"tls-cert /etc/ssl/a.pem\n"
				"tls-key /etc/ssl/private/a.key\n"
				"tls-cert /etc/ssl/b.pem\n"
				"tls-key /etc/ssl/private/b.key\n"
				"tls-protocols TLSv1.2, TLSv1.3\n"
				"hsts 31536000\n"
				"redirect-https\n"
				"listen 127.0.0.1:8080\n");

	assert_int_equal(args("-c", path, NULL), 0);
	assert_true(g_c.nlisten == 1 && g_c.nlisten_tls == 2);
	assert_string_equal(g_c.listen_tls[1], "[::1]:8443");
	assert_true(g_c.ntls_cert == 2 && g_c.ntls_key == 2);
	assert_string_equal(g_c.tls_cert[1], "/etc/ssl/b.pem");
	assert_string_equal(g_c.tls_key[0], "/etc/ssl/private/a.key");
	assert_true(g_c.tls_min_version == PT_TLS_1_2 && g_c.tls_max_version == PT_TLS_1_3);
	assert_int_equal(g_c.hsts, 31536000);
	assert_true(g_c.redirect_https);
	/* each list given on the command line replaces the file's lines of that name only */
	assert_int_equal(args("-c", path, "--tls-cert", "new.pem", "--tls-key", "new.key",
			      "--listen-tls", "9443", NULL), 0);
	assert_true(g_c.ntls_cert == 1 && g_c.ntls_key == 1 && g_c.nlisten_tls == 1);
	assert_string_equal(g_c.tls_cert[0], "new.pem");
	assert_string_equal(g_c.listen_tls[0], "0.0.0.0:9443");
	assert_string_equal(g_c.listen[0], "127.0.0.1:8080");
	assert_int_equal(args("-c", path, "--tls-key", "k2", NULL), 0);
	assert_true(g_c.ntls_cert == 2 && g_c.ntls_key == 1);
	unlink(path);
	text_bad("tls-protocols TLSv1.1\n", "f.conf:1: tls-protocols: invalid value 'TLSv1.1'");
	text_bad("tls-cert\n", "f.conf:1: tls-cert: needs a value");
	text_bad("hsts forever\n", "f.conf:1: hsts: invalid value 'forever'");
	text_bad("listen-tls host:443\n", "f.conf:1: listen-tls: invalid value");
}

static void check_tls(const char *want, unsigned listeners)
{
	g_err[0] = '\0';
	if (!want) {
		if (pt_config_check_tls(&g_c, listeners, g_err, sizeof(g_err)) != 0)
			fail_msg("unexpected: %s", g_err);
		return;
	}
	assert_int_equal(pt_config_check_tls(&g_c, listeners, g_err, sizeof(g_err)), -EINVAL);
	if (!strstr(g_err, want))
		fail_msg("got \"%s\", want \"%s\"", g_err, want);
}

static void test_check_tls(void **state)
{
	assert_int_equal(args(NULL), 0);
	check_tls(NULL, 0);                               /* plaintext only */
	check_tls("--listen-tls needs a certificate and its key", 1);
	assert_int_equal(args("--listen-tls", "443", "--tls-cert", "c", NULL), 0);
	check_tls("1 --tls-cert but 0 --tls-key: give each certificate its key", 1);
	assert_int_equal(args("--tls-key", "k", "--tls-cert", "c", "--tls-key", "k2", NULL), 0);
	check_tls("1 --tls-cert but 2 --tls-key", 1);
	check_tls("1 --tls-cert but 2 --tls-key", 0);     /* checked even without HTTPS */
	assert_int_equal(args("--listen-tls", "443", "--tls-cert", "c", "--tls-key", "k", NULL), 0);
	check_tls(NULL, 1);
	assert_int_equal(args("--tls-cert", "c", "--tls-key", "k", NULL), 0);
	check_tls(NULL, 0);                               /* unused pair: a warning in main */
	assert_int_equal(args("--redirect-https", "--tls-cert", "c", "--tls-key", "k", NULL), 0);
	check_tls("--redirect-https needs a --listen-tls address", 0);
	check_tls(NULL, 2);                               /* e.g. sockets from systemd */
}

/* ---- docroot ---- */

static void test_open_docroot(void **state)
{
	char dir[] = "/tmp/pt-docroot.XXXXXX", p[128];
	static struct pt_server_config c;   /* large: not on the stack */
	int fd;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0711), 0);
	pt_config_defaults(&c);
	strcpy(c.docroot, dir);
	fd = pt_config_open_docroot(&c, g_err, sizeof(g_err));
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	/* through a symlink */
	snprintf(p, sizeof(p), "%s.link", dir);
	assert_int_equal(symlink(dir, p), 0);
	strcpy(c.docroot, p);
	fd = pt_config_open_docroot(&c, g_err, sizeof(g_err));
	assert_true(fd >= 0);
	close(fd);
	unlink(p);
	/* missing */
	snprintf(c.docroot, sizeof(c.docroot), "%s/missing", dir);
	assert_int_equal(pt_config_open_docroot(&c, g_err, sizeof(g_err)), -ENOENT);
	assert_non_null(strstr(g_err, "docroot '"));
	assert_non_null(strstr(g_err, "/missing': No such file or directory"));
	/* a file */
	snprintf(p, sizeof(p), "%s/file", dir);
	close(open(p, O_CREAT | O_WRONLY, 0644));
	strcpy(c.docroot, p);
	assert_int_equal(pt_config_open_docroot(&c, g_err, sizeof(g_err)), -ENOTDIR);
	assert_non_null(strstr(g_err, "Not a directory"));
	unlink(p);
	/* not readable, or not searchable (checked as "nobody" when running as root) */
	snprintf(p, sizeof(p), "%s/closed", dir);
	assert_int_equal(mkdir(p, 0), 0);
	assert_int_equal(chmod(p, 0333), 0); /* search, no read, for anyone */
	strcpy(c.docroot, p);
	if (geteuid() == 0)
		assert_int_equal(seteuid(65534), 0);
	assert_int_equal(pt_config_open_docroot(&c, g_err, sizeof(g_err)), -EACCES);
	assert_non_null(strstr(g_err, "Permission denied"));
	if (geteuid() != getuid())
		assert_int_equal(seteuid(0), 0);
	assert_int_equal(chmod(p, 0666), 0); /* read, no search */
	if (geteuid() == 0)
		assert_int_equal(seteuid(65534), 0);
	fd = pt_config_open_docroot(&c, g_err, sizeof(g_err));
	if (geteuid() != getuid())
		assert_int_equal(seteuid(0), 0);
	assert_int_equal(fd, -EACCES);
	if (!strstr(g_err, "cannot enter"))
		fail_msg("%s", g_err);
	rmdir(p);
	rmdir(dir);
}

/* ---- the man page ---- */

static char *read_man(void)
{
	static const char *const where[] = { "docs/portico.1", "../../../docs/portico.1" };
	char *buf = malloc(1 << 17);

	for (size_t i = 0; i < 2; i++) {
		FILE *f = fopen(where[i], "r");

		if (f) {
			size_t n = fread(buf, 1, (1 << 17) - 1, f);

			buf[n] = '\0';
			fclose(f);
			return buf;
		}
	}
	free(buf);
	return NULL;
}

/* Issue 18: --admin (an address or off), --admin-allow (CIDR lists), --drain-delay,
 * --access-log-format, in the file too; all of them need a restart to change. */
static void test_observability(void **state)
{
	char diff[256];
	struct pt_server_config b;

	assert_int_equal(args(NULL), 0);
	assert_string_equal(g_c.admin, "");
	assert_string_equal(g_c.admin_allow, "");
	assert_int_equal(g_c.drain_delay_ms, 0);
	assert_string_equal(g_c.access_log_format, "combined");
	assert_int_equal(args("--admin", "9145", "--admin-allow", "10.0.0.0/8, ::1,192.168.1.7",
			      "--drain-delay", "2.5", "--access-log-format", "json", NULL), 0);
	assert_string_equal(g_c.admin, "0.0.0.0:9145");
	assert_string_equal(g_c.admin_allow, "10.0.0.0/8, ::1,192.168.1.7");
	assert_int_equal(g_c.drain_delay_ms, 2500);
	assert_string_equal(g_c.access_log_format, "json");
	assert_int_equal(args("--admin", "[::1]:0", NULL), 0);
	assert_string_equal(g_c.admin, "[::1]:0");
	assert_int_equal(args("--admin", "127.0.0.1:1", "--admin=off", NULL), 0);
	assert_string_equal(g_c.admin, "");
	bad("--admin: invalid value 'x' (expected IPv4:PORT, [IPv6]:PORT or PORT, or off)",
	    "--admin", "x", NULL);
	bad("--admin: invalid value", "--admin", "1.2.3.4:70000", NULL);
	bad("--admin-allow: invalid value '10.0.0.0/33'", "--admin-allow", "10.0.0.0/33", NULL);
	bad("--admin-allow: invalid value", "--admin-allow", "10.0.0.0/8,", NULL);
	bad("--admin-allow: invalid value", "--admin-allow", "host.example", NULL);
	bad("--admin-allow: invalid value", "--admin-allow", "::1/129", NULL);
	bad("--access-log-format: invalid value 'xml' (expected combined or json)",
	    "--access-log-format", "xml", NULL);
	bad("--drain-delay: invalid value", "--drain-delay", "3601", NULL);
	assert_int_equal(args("-c", write_temp("admin 127.0.0.1:9145\nadmin-allow 127.0.0.1\n"
					      "drain-delay 1\naccess-log-format json\n"), NULL), 0);
	assert_string_equal(g_c.admin, "127.0.0.1:9145");
	assert_int_equal(g_c.drain_delay_ms, 1000);
	b = g_c;
	b.drain_delay_ms = 0;
	strcpy(b.admin, "127.0.0.1:1");
	pt_config_static_diff(&g_c, &b, diff, sizeof diff);
	assert_string_equal(diff, "admin, drain-delay");
}

static void test_man_page(void **state)
{
	char *man = read_man();

	if (!man)
		fail_msg("docs/portico.1 not found (run from the repository root)");
	for (size_t i = 0; i < NOPTS; i++) {
		char want[80], *d = want;

		/* "--follow-symlinks" is written \fB\-\-follow\-symlinks\fR in roff */
		d += sprintf(d, "\\fB\\-\\-");
		for (const char *s = opts[i].name; *s; s++) {
			if (*s == '-')
				*d++ = '\\';
			*d++ = *s;
		}
		*d = '\0';
		if (!strstr(man, want))
			fail_msg("docs/portico.1 lacks %s", want);
		if (opts[i].shortname) {
			char sh[112];

			snprintf(sh, sizeof(sh), "\\fB\\-%c\\fR, %s", opts[i].shortname, want);
			if (!strstr(man, sh))
				fail_msg("docs/portico.1 lacks %s", sh);
		}
	}
	free(man);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_numeric_bounds),
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_listen_limit),
		cmocka_unit_test(test_choices),
		cmocka_unit_test(test_bools),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_long_strings),
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_help_and_version),
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_config_file_errors),
		cmocka_unit_test(test_config_file_unreadable),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_listen_tls),
		cmocka_unit_test(test_listen_tls_limit),
		cmocka_unit_test(test_tls_files),
		cmocka_unit_test(test_tls_protocols),
		cmocka_unit_test(test_hsts_redirect),
		cmocka_unit_test(test_tls_config_file),
		cmocka_unit_test(test_check_tls),
		cmocka_unit_test(test_open_docroot),
		cmocka_unit_test(test_observability),
		cmocka_unit_test(test_man_page),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
