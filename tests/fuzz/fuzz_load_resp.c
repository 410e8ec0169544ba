// fuzz-sources: tools/load/resp.c
/*
 * libFuzzer target for portico-load's HTTP/1.1 response parser (tools/load/resp.c).
 *
 * The input (after a first byte of flags) is a stream of responses on one connection, read
 * the way tools/load/h1.c reads it: a head gathered until complete (up to RESP_HEAD_MAX), then
 * its body framed by resp_body, then the next head. It is read three ways: whole, cut in two at
 * a point taken from the input, and one byte at a time. Invariants (a violation aborts):
 *  - resp_head returns a length within the bytes it was given, or 0 only without a complete
 *    head, and a parsed status is 100..599;
 * *  - resp_body consumes within what it was given, and something unless it is done or was
 *    given nothing (a head that ended a read);
 *  - a Content-Length body ends after exactly that many bytes;
 *  - all three ways give the same responses (count, statuses, body bytes) and the same end
 *    (error or not), i.e. the parser does not depend on how reads split the stream.
 * Each piece handed to the parser is a heap copy of exactly its length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/load/resp.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
	abort(); } } while (0)

struct reader {
	bool head_req, in_body, failed;
	struct resp r;
	char head[RESP_HEAD_MAX + 4];
	size_t head_len;
	unsigned responses;
	uint64_t body, status_sum;
};

static long take_head(struct reader *d, const char *p, size_t n)
{
	size_t prev = d->head_len, room = sizeof d->head - prev, k = n < room ? n : room;

	memcpy(d->head + prev, p, k);
	d->head_len += k;
	int hl = resp_head(&d->r, d->head, d->head_len, d->head_req);
	CHECK(hl <= (int)d->head_len);
	if (hl < 0 || (hl == 0 && k < n))
		return -1;
	if (hl == 0)
		return 0;
	CHECK((size_t)hl > prev);
	CHECK(d->r.status >= 100 && d->r.status <= 599);
	d->head_len = 0;
	return (long)((size_t)hl - prev);
}

static void feed(struct reader *d, const char *p, size_t n)
{
	size_t off = 0;

	while (off < n && !d->failed) {
		if (!d->in_body) {
			long used = take_head(d, p + off, n - off);
			if (used < 0) {
				d->failed = true;
				return;
			}
			if (used == 0)
				return;
			off += (size_t)used;
			if (d->r.interim)
				continue;
			d->in_body = true;
		}
		bool done;
		uint64_t len_before = d->r.left;
		enum resp_body_kind kind = d->r.kind;
		ssize_t k = resp_body(&d->r, p + off, n - off, &done);
		if (k < 0) {
			d->failed = true;
			return;
		}
		CHECK((size_t)k <= n - off);
		CHECK(k > 0 || done || off == n);   /* a head that ended the read */
		if (kind == RB_LENGTH)
			CHECK(done == ((uint64_t)k == len_before));
		off += (size_t)k;
		d->body += (uint64_t)k;
		if (done) {
			d->in_body = false;
			d->responses++;
			d->status_sum += d->r.status;
		}
	}
}

static void piece(struct reader *d, const uint8_t *p, size_t n)
{
	char *copy = malloc(n ? n : 1);

	memcpy(copy, p, n);
	feed(d, copy, n);
	free(copy);
}

static void same(const struct reader *a, const struct reader *b)
{
	CHECK(a->failed == b->failed);
	if (a->failed)
		return;
	CHECK(a->responses == b->responses);
	CHECK(a->status_sum == b->status_sum);
	CHECK(a->body == b->body);
	CHECK(a->in_body == b->in_body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct reader whole, split, bytes;

	if (size < 1)
		return 0;
	bool head_req = data[0] & 1;
	size_t cut = size > 2 ? (size_t)data[0] * (size - 1) / 255 : 0;
	data++;
	size--;
	whole = (struct reader){ .head_req = head_req };
	split = whole;
	bytes = whole;
	piece(&whole, data, size);
	if (cut > size)
		cut = size;
	piece(&split, data, cut);
	piece(&split, data + cut, size - cut);
	for (size_t i = 0; i < size && !bytes.failed; i++)
		piece(&bytes, data + i, 1);
	same(&whole, &split);
	same(&whole, &bytes);
	return 0;
}
