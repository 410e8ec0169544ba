/*
 * libFuzzer target for the config file and command-line parser (src/server/config.c).
 * It includes config.c itself (so no "fuzz-sources" line) to check every field against the
 * option table.
 *
 * Input: the first byte selects the mode. 'A': the rest, split at '\n', is an argument
 * list for pt_config_parse_args (arguments naming a config file are dropped, so that the
 * fuzzer never reads the file system). Anything else: the rest is config file text for
 * pt_config_parse_text, applied to the defaults.
 * Invariants (a violation aborts):
 *  - the result is 0, 1 (argv mode only: help or version) or PT_CONFIG_USAGE, and an error
 *    leaves a NUL-terminated, non-empty message that in file mode starts with "NAME:LINE: ";
 *  - after success every number lies within its option's bounds (or is its auto/off
 *    value), every string is NUL-terminated inside its field and passes its check, every
 *    listen address is one the parser accepts and reproduces, and 1 <= nlisten <= 16 in
 *    argv mode;
 *  - parsing the same text twice gives the same configuration (no hidden state).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.c"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
	abort(); } } while (0)

static void check_config(const struct pt_server_config *c)
{
	CHECK(c->nlisten <= PT_CONFIG_MAX_LISTEN);
	for (unsigned i = 0; i < c->nlisten; i++) {
		char again[PT_CONFIG_ADDR_MAX];

		CHECK(memchr(c->listen[i], '\0', PT_CONFIG_ADDR_MAX));
		CHECK(parse_listen(c->listen[i], again) && strcmp(again, c->listen[i]) == 0);
	}
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		const char *base = (const char *)c + o->off;

		switch (o->kind) {
		case K_UINT: case K_MS: case K_RATE: {
			unsigned v = *(const unsigned *)base;
			bool special = ((o->flags & F_AUTO) && v == 0) ||
				       ((o->flags & F_OFF) && v == PT_CONFIG_RATE_OFF);

			CHECK(special || (v >= o->min && v <= o->max) ||
			      (o->kind == K_MS && v == 0 && o->min == 0));
			break;
		}
		case K_SIZE: {
			uint64_t v = *(const uint64_t *)base;

			CHECK(v >= o->min && v <= o->max);
			break;
		}
		case K_STR:
			CHECK(memchr(base, '\0', o->cap));
			/* "" is a default ("no user") or "off"; anything else was checked */
			if (*base)
				CHECK(!o->check || !o->check(base));
			break;
		}
	}
	CHECK(c->backend == PT_BACKEND_AUTO || c->backend == PT_BACKEND_URING ||
	      c->backend == PT_BACKEND_EPOLL);
	CHECK(c->when_full == PT_FULL_SHED || c->when_full == PT_FULL_PAUSE);
}

static int run_args(const char *text, size_t len, struct pt_server_config *c, char *err,
		    size_t errlen)
{
	char *copy = malloc(len + 1), *argv[256] = { "portico" };
	int argc = 1, r;

	memcpy(copy, text, len);
	copy[len] = '\0';
	for (char *p = copy, *nl; p && argc < 255; p = nl) {
		nl = memchr(p, '\n', len - (size_t)(p - copy));
		if (nl)
			*nl++ = '\0';
		if (strncmp(p, "-c", 2) == 0 || strncmp(p, "--config", 8) == 0)
			continue;
		argv[argc++] = p;
		if (!nl)
			break;
	}
	argv[argc] = NULL;
	r = pt_config_parse_args(c, argc, argv, err, errlen);
	free(copy);
	return r;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* --help and --version print: keep the fuzzer's output readable */
	return freopen("/dev/null", "w", stdout) ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static struct pt_server_config c1, c2;
	char err1[512], err2[512];
	bool argv_mode;
	const char *text;
	int r1, r2;

	if (len == 0)
		return 0;
	argv_mode = data[0] == 'A';
	text = (const char *)data + 1;
	len--;
	err1[0] = err2[0] = '\0';
	if (argv_mode) {
		r1 = run_args(text, len, &c1, err1, sizeof(err1));
		r2 = run_args(text, len, &c2, err2, sizeof(err2));
	} else {
		char *copy = malloc(len ? len : 1);

		memcpy(copy, text, len);
		pt_config_defaults(&c1);
		pt_config_defaults(&c2);
		r1 = pt_config_parse_text(&c1, copy, len, "fuzz.conf", err1, sizeof(err1));
		r2 = pt_config_parse_text(&c2, copy, len, "fuzz.conf", err2, sizeof(err2));
		free(copy);
	}
	CHECK(r1 == r2 && strcmp(err1, err2) == 0);
	CHECK(r1 == 0 || r1 == PT_CONFIG_USAGE || (argv_mode && r1 == 1));
	if (r1 == PT_CONFIG_USAGE) {
		CHECK(memchr(err1, '\0', sizeof(err1)) && err1[0]);
		if (!argv_mode)
			CHECK(strncmp(err1, "fuzz.conf:", 10) == 0);
	}
	if (r1 == 0) {
		check_config(&c1);
		CHECK(memcmp(&c1, &c2, sizeof(c1)) == 0);
		if (argv_mode)
			CHECK(c1.nlisten + c1.nlisten_tls >= 1);
	}
	return 0;
}
