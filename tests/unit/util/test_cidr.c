/*
 * Unit tests of src/util/cidr.h: prefixes and lists of the admin allow-list (IPv4, IPv6,
 * single addresses, host bits, bad syntax, limits) and matching peers (IPv4, IPv6,
 * IPv4-mapped IPv6, other families).
 */
#include "util/cidr.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

static struct sockaddr_storage v4(const char *a)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;

	s->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, a, &s->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *a)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

	s->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, a, &s->sin6_addr), 1);
	return ss;
}

static bool in(const char *list, struct sockaddr_storage ss)
{
	struct pt_cidr c[PT_CIDR_MAX];
	int n = pt_cidr_parse_list(list, c, PT_CIDR_MAX);

	assert_true(n > 0);
	return pt_cidr_match(c, (unsigned)n, (const struct sockaddr *)&ss);
}

static void test_parse(void **state)
{
	static const char *const good[] = { "127.0.0.1", "127.0.0.0/8", "0.0.0.0/0", "::1",
		"::/0", "fe80::/10", "10.1.2.3/32", "2001:db8::1/128", " 10.0.0.0/8 ,::1 ",
		"1.2.3.4,5.6.7.8\t,\t9.9.9.9/24" };
	static const char *const badv[] = { "", " ", ",", "10.0.0.0/", "10.0.0.0/33", "::/129",
		"10.0.0.0/8,", ",10.0.0.0/8", "10.0.0.0/8;1.2.3.4", "256.0.0.1", "host.test",
		"10.0.0.0/-1", "10.0.0.0/1000", "10.0.0.0 /8", "[::1]", "1.2.3.4 5.6.7.8",
		"10.0.0.0/8/8", "10.0.0.0/0x8" };
	struct pt_cidr c[PT_CIDR_MAX];

	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		if (pt_cidr_parse_list(good[i], c, PT_CIDR_MAX) < 1 || pt_cidr_check_list(good[i]))
			fail_msg("'%s' refused", good[i]);
	for (size_t i = 0; i < sizeof badv / sizeof *badv; i++)
		if (pt_cidr_parse_list(badv[i], c, PT_CIDR_MAX) >= 0 || !pt_cidr_check_list(badv[i]))
			fail_msg("'%s' accepted", badv[i]);
	assert_int_equal(pt_cidr_parse_list("10.9.8.7/12", c, 1), 1);
	assert_int_equal(c[0].family, AF_INET);
	assert_int_equal(c[0].bits, 12);
	assert_memory_equal(c[0].addr, "\x0a\x00\x00\x00", 4);      /* host bits cleared */
	assert_int_equal(pt_cidr_parse_list("1.1.1.1,2.2.2.2", c, 1), -1);  /* over the cap */
}

static void test_match(void **state)
{
	assert_true(in("127.0.0.0/8,::1", v4("127.0.0.1")));
	assert_true(in("127.0.0.0/8,::1", v4("127.255.0.9")));
	assert_false(in("127.0.0.0/8,::1", v4("128.0.0.1")));
	assert_true(in("127.0.0.0/8,::1", v6("::1")));
	assert_false(in("127.0.0.0/8,::1", v6("::2")));
	assert_true(in("127.0.0.1/32", v4("127.0.0.1")));
	assert_false(in("127.0.0.1/32", v4("127.0.0.2")));
	assert_true(in("10.0.0.0/23", v4("10.0.1.255")));
	assert_false(in("10.0.0.0/23", v4("10.0.2.0")));
	assert_true(in("0.0.0.0/0", v4("203.0.113.7")));
	assert_false(in("0.0.0.0/0", v6("2001:db8::1")));     /* families do not mix ... */
	assert_true(in("127.0.0.0/8", v6("::ffff:127.0.0.5")));  /* ... but v4-mapped is v4 */
	assert_false(in("::/0", v6("::ffff:127.0.0.5")));
	assert_true(in("2001:db8::/33", v6("2001:db8:7fff::1")));
	assert_false(in("2001:db8::/33", v6("2001:db8:8000::1")));
	struct sockaddr_storage un = { .ss_family = AF_UNIX };
	assert_false(in("0.0.0.0/0,::/0", un));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_match),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
