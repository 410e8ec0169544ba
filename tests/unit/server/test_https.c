/*
 * Unit tests of src/server/https.c: the Location of --redirect-https (host with its port
 * replaced, IPv6 literals, 443 left out, path and query kept as received, no Host, buffer
 * bounds) and the TLS configuration built from the portico options.
 */
#include "server/https.c"
#include "server/config_check.c"
#include "server/path_open.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

static struct pt_http_str S(const char *s)
{
	return (struct pt_http_str){ s, s ? strlen(s) : 0 };
}

static void loc(const char *authority, const char *path, const char *query, unsigned port,
		const char *want)
{
	char out[256];
	int n = pt_https_location(S(authority), S(path), S(query), port, out, sizeof out);

	if (n < 0 || strcmp(out, want) != 0 || (size_t)n != strlen(want))
		fail_msg("%s %s ? %s :%u: got %d \"%s\", want \"%s\"", authority, path, query,
			 port, n, n < 0 ? "" : out, want);
}

static void test_location(void **state)
{
	loc("example.org", "/", NULL, 443, "https://example.org/");
	loc("example.org:80", "/a/b.html", "x=1&y=%20", 443, "https://example.org/a/b.html?x=1&y=%20");
	loc("example.org:8080", "/a", NULL, 8443, "https://example.org:8443/a");
	loc("example.org:", "/a", "", 8443, "https://example.org:8443/a");
	loc("127.0.0.1:8080", "/%2e%2E/x", NULL, 443, "https://127.0.0.1/%2e%2E/x");
	loc("[::1]:8080", "/", NULL, 8443, "https://[::1]:8443/");
	loc("[::1]", "/", "q", 443, "https://[::1]/?q");
	loc("[v1.x:y]:1", "/", NULL, 1, "https://[v1.x:y]:1/");
	loc("EXAMPLE.org", "/", NULL, 65535, "https://EXAMPLE.org:65535/");
	/* "OPTIONS *" and an empty path go to the root */
	loc("h", "*", NULL, 443, "https://h/");
	loc("h", "", "q=1", 443, "https://h/?q=1");
}

static void test_location_errors(void **state)
{
	char out[64];

	/* no Host (HTTP/1.0), an empty one, or one with a port only: 400 */
	assert_int_equal(pt_https_location(S(NULL), S("/"), S(NULL), 443, out, sizeof out),
			 -EINVAL);
	assert_int_equal(pt_https_location(S(""), S("/"), S(NULL), 443, out, sizeof out), -EINVAL);
	assert_int_equal(pt_https_location(S(":80"), S("/"), S(NULL), 443, out, sizeof out),
			 -EINVAL);
	/* exactly fits, one byte short */
	assert_int_equal(pt_https_location(S("h"), S("/abc"), S(NULL), 443, out, 14), 13);
	assert_string_equal(out, "https://h/abc");
	assert_int_equal(pt_https_location(S("h"), S("/abc"), S(NULL), 443, out, 13), -ENOSPC);
	/* the bound in the header always suffices */
	{
		const char *a = "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535";
		const char *p = "/a/very/long/path", *q = "and=a&long=query";
		size_t cap = PT_HTTPS_LOCATION_MAX(strlen(a), strlen(p), strlen(q));
		char *buf = malloc(cap);

		assert_true(pt_https_location(S(a), S(p), S(q), 65535, buf, cap) > 0);
		free(buf);
	}
}

static void test_tls_config(void **state)
{
	static struct pt_server_config c;   /* large: not on the stack */
	struct pt_tls_cert certs[PT_CONFIG_MAX_ALL_CERTS];
	struct pt_tls_config tc;

	strcpy(c.tls_cert[0], "a.pem");
	strcpy(c.tls_key[0], "a.key");
	strcpy(c.tls_cert[1], "b.pem");
	strcpy(c.tls_key[1], "b.key");
	c.ntls_cert = c.ntls_key = 2;
	c.tls_min_version = c.tls_max_version = PT_TLS_1_3;
	c.header_timeout_ms = 7500;
	pt_https_tls_config(&c, certs, &tc);
	assert_int_equal(tc.ncerts, 2);
	assert_ptr_equal(tc.certs, certs);
	assert_string_equal(tc.certs[0].cert_file, "a.pem");
	assert_string_equal(tc.certs[0].key_file, "a.key");
	assert_string_equal(tc.certs[1].cert_file, "b.pem");
	assert_string_equal(tc.certs[1].key_file, "b.key");
	assert_string_equal(tc.alpn, "http/1.1");
	assert_int_equal(tc.min_version, PT_TLS_1_3);
	assert_int_equal(tc.max_version, PT_TLS_1_3);
	assert_int_equal(tc.handshake_timeout_ms, 7500);
	assert_true(tc.ktls);
	/* the rest stays at the engine's defaults (Mozilla intermediate, tickets on) */
	assert_null(tc.ciphers);
	assert_null(tc.ciphersuites);
	assert_null(tc.groups);
	assert_false(tc.no_tickets);
	assert_null(tc.ticket_secret);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_location),
		cmocka_unit_test(test_location_errors),
		cmocka_unit_test(test_tls_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
