/* portico-load: the human summary and the JSON document (see --help, OUTPUT). */
#include "load.h"
#include <stdio.h>

static const double PCT[] = { 50, 90, 99, 99.9 };

static const char *mode(const struct opts *o, char *buf, size_t cap)
{
	if (o->h2)
		snprintf(buf, cap, "%s, %u stream%s per connection%s", o->tls ? "h2" : "h2c",
			 o->streams, o->streams > 1 ? "s" : "", o->new_conn ? ", new connection each" : "");
	else if (o->new_conn)
		snprintf(buf, cap, "HTTP/1.1, a new connection per request");
	else if (o->pipeline > 1)
		snprintf(buf, cap, "HTTP/1.1 keep-alive, pipeline %u", o->pipeline);
	else
		snprintf(buf, cap, "HTTP/1.1 keep-alive");
	return buf;
}

static double secs(const struct run *r)
{
	return (double)(r->t_stop_us - r->t_start_us) / 1e6;
}

void report_print(const struct run *r, const struct stats *st, const struct hist *h, FILE *f)
{
	const struct opts *o = &r->o;
	double s = secs(r);
	char m[128];

	fprintf(f, "portico-load: %s%s://%s%s, %.1f s, %u thread%s, %u connection%s, %s, %s backend",
		"", o->tls ? "https" : "http", o->authority, o->urls[0].path, s, o->threads,
		o->threads > 1 ? "s" : "", o->conns, o->conns > 1 ? "s" : "", mode(o, m, sizeof m),
		pt_engine_backend(r->e));
	if (o->batch)
		fprintf(f, ", batch %u in %u us", o->batch, o->batch_us);
	fputc('\n', f);
	fprintf(f, "  requests  %llu completed (%.1f/s), %llu sent, %llu connections made\n",
		(unsigned long long)st->done, (double)st->done / s, (unsigned long long)st->sent,
		(unsigned long long)st->connects);
	fprintf(f, "  status    1xx %llu, 2xx %llu, 3xx %llu, 4xx %llu, 5xx %llu, other %llu\n",
		(unsigned long long)st->status[1], (unsigned long long)st->status[2],
		(unsigned long long)st->status[3], (unsigned long long)st->status[4],
		(unsigned long long)st->status[5], (unsigned long long)st->status[0]);
	fprintf(f, "  errors    connect %llu, read %llu, timeout %llu, parse %llu, write %llu\n",
		(unsigned long long)st->err_connect, (unsigned long long)st->err_read,
		(unsigned long long)st->err_timeout, (unsigned long long)st->err_parse,
		(unsigned long long)st->err_write);
	fprintf(f, "  bytes     %.2f MB received (%.2f MB/s), %.2f MB of bodies\n",
		(double)st->bytes_in / 1e6, (double)st->bytes_in / 1e6 / s, (double)st->body_in / 1e6);
	fprintf(f, "  latency   mean %.0f us, p50 %llu, p90 %llu, p99 %llu, p99.9 %llu, max %llu us\n",
		hist_mean(h), (unsigned long long)hist_percentile(h, 50),
		(unsigned long long)hist_percentile(h, 90), (unsigned long long)hist_percentile(h, 99),
		(unsigned long long)hist_percentile(h, 99.9), (unsigned long long)h->max);
	fprintf(f, "Requests/sec: %.2f\n", (double)st->done / s);
}

/* The results as one line of JSON (a JSON-lines record). */
int report_json(const struct run *r, const struct stats *st, const struct hist *h, FILE *f)
{
	const struct opts *o = &r->o;
	double s = secs(r);
	char m[128];

	fprintf(f, "{\"tool\": \"portico-load\", \"url\": \"%s://%s%s\", \"mode\": \"%s\", "
		"\"backend\": \"%s\", \"threads\": %u, \"connections\": %u, \"pipeline\": %u, "
		"\"h2\": %s, \"streams\": %u, \"new_conn\": %s, \"tls\": %s, \"batch\": %u, "
		"\"batch_us\": %u, \"seconds\": %.6f, ",
		o->tls ? "https" : "http", o->authority, o->urls[0].path, mode(o, m, sizeof m),
		pt_engine_backend(r->e), o->threads, o->conns, o->pipeline, o->h2 ? "true" : "false",
		o->streams, o->new_conn ? "true" : "false", o->tls ? "true" : "false", o->batch,
		o->batch_us, s);
	fprintf(f, " \"requests\": %llu, \"sent\": %llu, \"rps\": %.2f, \"connects\": %llu, "
		"\"bytes_in\": %llu, \"body_bytes\": %llu, ", (unsigned long long)st->done,
		(unsigned long long)st->sent, (double)st->done / s, (unsigned long long)st->connects,
		(unsigned long long)st->bytes_in, (unsigned long long)st->body_in);
	fprintf(f, " \"status\": {\"1xx\": %llu, \"2xx\": %llu, \"3xx\": %llu, \"4xx\": %llu, "
		"\"5xx\": %llu, \"other\": %llu}, ", (unsigned long long)st->status[1],
		(unsigned long long)st->status[2], (unsigned long long)st->status[3],
		(unsigned long long)st->status[4], (unsigned long long)st->status[5],
		(unsigned long long)st->status[0]);
	fprintf(f, " \"errors\": {\"connect\": %llu, \"read\": %llu, \"timeout\": %llu, "
		"\"parse\": %llu, \"write\": %llu}, ", (unsigned long long)st->err_connect,
		(unsigned long long)st->err_read, (unsigned long long)st->err_timeout,
		(unsigned long long)st->err_parse, (unsigned long long)st->err_write);
	fprintf(f, " \"latency_us\": {\"count\": %llu, \"mean\": %.1f, \"min\": %llu, ",
		(unsigned long long)h->count, hist_mean(h),
		(unsigned long long)(h->count ? h->min : 0));
	for (unsigned i = 0; i < sizeof PCT / sizeof PCT[0]; i++)
		fprintf(f, "\"p%g\": %llu, ", PCT[i], (unsigned long long)hist_percentile(h, PCT[i]));
	fprintf(f, "\"max\": %llu}}\n", (unsigned long long)h->max);
	return ferror(f) ? -1 : 0;
}
