/*
 * Unit tests of src/server/metrics.c, prom.c and status.c: duration buckets at their bounds,
 * counting by method and status class, sums over workers, the Prometheus exposition's
 * grammar (every sample belongs to the family announced by the # HELP / # TYPE lines before
 * it, histogram buckets cumulative up to +Inf = _count), the status JSON, and the built-in
 * page. The engine is absent (NULL): its counters read as 0.
 */
#include "server/metrics.c"
#include "server/prom.c"
#include "server/status.c"
#include "server/compress.c"
#include "server/compress_more.c"
#include "server/zcache.c"
#include "server/encoding.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

static atomic_bool g_draining;

static struct pt_metrics *new_metrics(unsigned workers)
{
	struct pt_metrics *m = pt_metrics_new(workers);

	assert_non_null(m);
	m->draining = &g_draining;
	m->backend = "epoll";
	return m;
}

/* Renders with fn into a new string (free it). */
static char *render(struct pt_metrics *m, void (*fn)(const struct pt_metrics *, FILE *))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	fn(m, f);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void test_buckets(void **state)
{
	assert_int_equal(bucket(0), 0);
	assert_int_equal(bucket(100), 0);                    /* le is inclusive */
	assert_int_equal(bucket(101), 1);
	assert_int_equal(bucket(999), 3);
	assert_int_equal(bucket(1000), 3);
	assert_int_equal(bucket(10000000), PT_METRICS_BUCKETS - 1);
	assert_int_equal(bucket(10000001), PT_METRICS_BUCKETS);   /* +Inf */
	for (unsigned i = 0; i < PT_METRICS_BUCKETS; i++)
		assert_true(pt_metrics_le_us[i] == (uint64_t)(pt_metrics_le[i] * 1e6 + 0.5));
}

static void test_count_and_sum(void **state)
{
	struct pt_metrics *m = new_metrics(2);
	struct pt_metrics_sum s;

	pt_metrics_finish(pt_metrics_worker(m, 0), PT_HTTP_GET, 200, 100, 50);
	pt_metrics_finish(pt_metrics_worker(m, 1), PT_HTTP_GET, 206, 10, 3000);
	pt_metrics_finish(pt_metrics_worker(m, 1), PT_HTTP_HEAD, 304, 0, 1);
	pt_metrics_finish(pt_metrics_worker(m, 0), PT_HTTP_POST, 405, 20, 20000000);
	pt_metrics_finish(pt_metrics_worker(m, 0), 99, 503, 0, 1);       /* unknown method */
	pt_metrics_finish(pt_metrics_worker(m, 0), PT_HTTP_GET, 99, 0, 1); /* odd status */
	pt_metrics_finish(pt_metrics_worker(m, 0), PT_HTTP_GET, 600, 0, 1);
	pt_count(&pt_metrics_worker(m, 1)->started, 9);
	pt_metrics_encoding(pt_metrics_worker(m, 1), PT_ENC_GZIP);
	pt_metrics_sum(m, &s);
	assert_int_equal(s.requests, 7);
	assert_int_equal(s.inflight, 2);                      /* 9 started, 7 done */
	assert_int_equal(s.w.req[PT_HTTP_GET][1], 2);
	assert_int_equal(s.w.req[PT_HTTP_HEAD][2], 1);
	assert_int_equal(s.w.req[PT_HTTP_POST][3], 1);
	assert_int_equal(s.w.req[PT_HTTP_OTHER][4], 1);
	assert_int_equal(s.w.req[PT_HTTP_GET][0], 1);
	assert_int_equal(s.w.req[PT_HTTP_GET][4], 1);
	assert_int_equal(s.w.resp_bytes, 130);
	assert_int_equal(s.w.dur[0], 5);
	assert_int_equal(s.w.dur[5], 1);                      /* 3 ms: le 0.005 */
	assert_int_equal(s.w.dur[PT_METRICS_BUCKETS], 1);    /* 20 s */
	assert_int_equal(s.w.encoded[PT_MENC_GZIP], 1);
	assert_int_equal(pt_metrics_worker_requests(m, 0), 5);
	assert_int_equal(pt_metrics_worker_requests(m, 1), 2);
	pt_metrics_free(m);
}

/* The family a sample name belongs to: the name, or without _bucket/_sum/_count. */
static bool of_family(const char *sample, size_t n, const char *fam, const char *type)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	size_t fl = strlen(fam);

	if (n == fl && !memcmp(sample, fam, n))
		return strcmp(type, "histogram") != 0;
	for (size_t i = 0; i < 3 && !strcmp(type, "histogram"); i++)
		if (n == fl + strlen(sfx[i]) && !memcmp(sample, fam, fl) &&
		    !memcmp(sample + fl, sfx[i], n - fl))
			return true;
	return false;
}

/* Checks the text format: HELP then TYPE per family, every sample in the current family,
 * names [a-z_:], values numbers, no family twice. Returns the number of families. */
static unsigned check_grammar(char *text)
{
	char fam[128] = "", type[16] = "", seen[8192] = ",";
	unsigned families = 0;

	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char name[128], kind[16];

		if (sscanf(line, "# HELP %127s", name) == 1) {
			snprintf(fam, sizeof fam, "%s", name);
			continue;
		}
		if (sscanf(line, "# TYPE %127s %15s", name, kind) == 2) {
			char key[140];

			assert_string_equal(name, fam);
			snprintf(key, sizeof key, ",%s,", name);
			if (strstr(seen, key))
				fail_msg("family %s twice", name);
			strcat(seen, key + 1);
			snprintf(type, sizeof type, "%s", kind);
			families++;
			continue;
		}
		size_t n = strcspn(line, "{ ");
		for (size_t i = 0; i < n; i++)
			assert_true((line[i] >= 'a' && line[i] <= 'z') || line[i] == '_' ||
				    (line[i] >= '0' && line[i] <= '9' && i));
		if (!of_family(line, n, fam, type))
			fail_msg("sample '%s' outside family %s (%s)", line, fam, type);
		char *v = strrchr(line, ' ');
		char *end;
		assert_non_null(v);
		strtod(v + 1, &end);
		assert_true(*end == '\0' && end > v + 1);
	}
	return families;
}

static void test_prometheus(void **state)
{
	struct pt_metrics *m = new_metrics(2);

	pt_metrics_finish(pt_metrics_worker(m, 0), PT_HTTP_GET, 200, 13, 50);
	pt_metrics_finish(pt_metrics_worker(m, 1), PT_HTTP_GET, 404, 14, 400);
	pt_metrics_finish(pt_metrics_worker(m, 1), PT_HTTP_DELETE, 405, 0, 20000000);
	pt_count(&m->admin_refused, 2);
	atomic_store(&g_draining, true);
	char *text = render(m, pt_prom_render);
	static const char *const want[] = {
		"portico_http_requests_total{method=\"GET\",code=\"2xx\"} 1\n",
		"portico_http_requests_total{method=\"GET\",code=\"4xx\"} 1\n",
		"portico_http_requests_total{method=\"HEAD\",code=\"2xx\"} 0\n",
		"portico_http_requests_total{method=\"DELETE\",code=\"4xx\"} 1\n",
		"portico_http_request_duration_seconds_bucket{le=\"0.0001\"} 1\n",
		"portico_http_request_duration_seconds_bucket{le=\"0.0005\"} 2\n",
		"portico_http_request_duration_seconds_bucket{le=\"10\"} 2\n",
		"portico_http_request_duration_seconds_bucket{le=\"+Inf\"} 3\n",
		"portico_http_request_duration_seconds_count 3\n",
		"portico_http_request_duration_seconds_sum 20.000450\n",
		"portico_http_response_body_bytes_total 27\n",
		"portico_backend_info{backend=\"epoll\"} 1\n",
		"portico_draining 1\n",
		"portico_admin_refused_total 2\n",
		"portico_worker_requests_total{worker=\"1\"} 2\n",
		"portico_http2_goaways_total{direction=\"sent\"} 0\n",
		"portico_connections{state=\"partial\"} 0\n",
		"# TYPE portico_http_request_duration_seconds histogram\n",
		"# TYPE portico_connections_shed_total counter\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		if (!strstr(text, want[i]))
			fail_msg("missing: %s", want[i]);
	assert_null(strstr(text, "method=\"PUT\""));          /* unseen methods are left out */
	assert_true(check_grammar(text) > 40);
	free(text);
	atomic_store(&g_draining, false);
	pt_metrics_free(m);
}

static void test_status_json(void **state)
{
	struct pt_metrics *m = new_metrics(3);

	pt_metrics_finish(pt_metrics_worker(m, 2), PT_HTTP_GET, 200, 13, 50);
	pt_metrics_finish(pt_metrics_worker(m, 2), PT_HTTP_GET, 500, 13, 200);
	char *j = render(m, pt_status_json);
	static const char *const want[] = {
		"\"backend\":\"epoll\"", "\"workers\":3", "\"draining\":false", "\"requests\":2,",
		"\"status\":{\"1xx\":0,\"2xx\":1,\"3xx\":0,\"4xx\":0,\"5xx\":1}",
		"\"buckets\":[1,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2]", "\"le\":[0.0001,0.00025,",
		"\"per_worker\":[{\"requests\":0,", "{\"requests\":2,\"connections\":0,",
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		if (!strstr(j, want[i]))
			fail_msg("missing %s in %s", want[i], j);
	int depth = 0;
	for (const char *p = j; *p; p++) {
		depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
		assert_true(depth >= 0);
	}
	assert_int_equal(depth, 0);
	free(j);
	pt_metrics_free(m);
}

static void test_page(void **state)
{
	size_t len;
	const char *p = pt_status_page(&len);

	assert_true(len > 4000);
	assert_memory_equal(p, "<!doctype html>", 15);
	assert_int_equal(p[len], '\0');
	assert_non_null(strstr(p, "fetch(\"status.json\""));
	assert_null(strstr(p, "src=\"http"));                /* no external asset */
	assert_null(strstr(p, "href=\"http"));
	assert_non_null(strstr(p, "</html>"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_count_and_sum),
		cmocka_unit_test(test_prometheus),
		cmocka_unit_test(test_status_json),
		cmocka_unit_test(test_page),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
