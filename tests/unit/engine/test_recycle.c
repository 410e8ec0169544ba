/*
 * Recycling under AddressSanitizer (src/util/util.h PT_POISON, src/engine/conn.c): a closed
 * connection's slot stays in its block for the next accept, and its application area is
 * poisoned meanwhile, so a layer above that keeps using the area after on_close is caught
 * instead of reading (or writing) the next connection's state. pt-test: backends.
 *
 * A child process (this program with --child MODE) runs an engine with one connection that the
 * client closes at once: in mode "late" a post that runs after on_close reads the area, and the
 * child must die with an ASan report naming a use after poison; in mode "during" on_close itself
 * reads it (allowed: valid until on_close returns), and the child exits 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <portico/engine.h>
#include "support/net.h"
#include "util/util.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* ---- the child ---- */

static bool g_late;
static atomic_int g_done;
static pt_post_t g_post;

static void late_read(pt_worker_t *w, void *area)
{
	printf("area byte %d\n", ((volatile char *)area)[0]);    /* after on_close: poisoned */
	fflush(stdout);
	atomic_store(&g_done, 1);
}

static void on_eof(pt_conn_t *c, int err)
{
	pt_conn_close(c, PT_CLOSE_GRACEFUL);
}

static void on_close(pt_conn_t *c)
{
	char *area = pt_conn_area(c);

	if (g_late) {
		pt_post(pt_conn_worker(c), &g_post, late_read, area);
		return;
	}
	printf("area byte %d\n", ((volatile char *)area)[0]);
	atomic_store(&g_done, 1);
}

static const struct pt_conn_ops ops = { .on_eof = on_eof, .on_close = on_close };

static int on_accept(pt_conn_t *c, void *arg)
{
	/* pt_conn_of_area is pt_conn_area's reverse: else "area byte 8", and the test fails */
	memset(pt_conn_area(c), pt_conn_of_area(pt_conn_area(c)) == c ? 7 : 8, 64);
	pt_conn_set_ops(c, &ops);
	return 0;
}

static int child(const char *mode)
{
	int err;
	pt_engine_t *e = pt_engine_create(&(struct pt_engine_config){ .workers = 1,
					   .conn_area = 64 }, &err);

	g_late = !strcmp(mode, "late");
	if (!e)
		return 3;
	struct pt_listen_opts lo = { .on_accept = on_accept };
	int li = pt_engine_listen(e, "127.0.0.1:0", &lo);

	if (li < 0 || pt_engine_start(e) < 0)
		return 3;
	close(connect_to(pt_engine_listen_port(e, li)));
	WAIT_FOR(atomic_load(&g_done), 5000);
	pt_engine_destroy(e);
	return atomic_load(&g_done) ? 0 : 4;
}

/* ---- the test ---- */

static int run_child(const char *mode, char *out, size_t n)
{
	char self[512], cmd[600];
	ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);

	assert_true(k > 0);
	self[k] = 0;
	snprintf(cmd, sizeof cmd, "'%s' --child %s 2>&1", self, mode);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t got = fread(out, 1, n - 1, p);
	out[got] = 0;
	return pclose(p);
}

static void test_area_after_close(void **state)
{
	static char out[65536];

	int st = run_child("during", out, sizeof out);
	if (st != 0 || !strstr(out, "area byte 7"))
		fail_msg("on_close could not read its area (status %d): %s", st, out);
	st = run_child("late", out, sizeof out);
	if (st == 0 || !strstr(out, "use-after-poison") || strstr(out, "area byte"))
		fail_msg("a read after on_close was not caught (status %d): %.2000s", st, out);
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "--child"))
		return child(argv[2]);
	if (!PT_ASAN) {
		printf("1..0 # SKIP recycled memory is poisoned only under AddressSanitizer\n");
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_area_after_close),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
