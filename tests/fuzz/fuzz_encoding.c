// fuzz-sources: src/server/encoding.c
/*
 * libFuzzer target for pt_enc_choose (src/server/encoding.c).
 *
 * Input: the first byte's low 3 bits are the mask of available variants, the rest is the
 * Accept-Encoding value. Invariants (a violation aborts):
 *  - the result is PT_ENC_IDENTITY or one bit of avail; with avail 0 or an absent field
 *    (NULL) it is identity;
 *  - consistency of the choice: offered only the chosen variant, the same one is chosen;
 *    withdrawing a variant that was not chosen does not change the choice;
 *  - the result is the same under every avail superset's restriction (the choice is a
 *    maximum over a fixed ranking), checked over all 8 masks;
 *  - suffix and name exist exactly for the three codings.
 * The value is a heap copy of exactly its length, so ASan reports any overread.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/encoding.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
	abort(); } } while (0)

static int valid(unsigned r, unsigned avail)
{
	return r == PT_ENC_IDENTITY || ((r & avail) == r && (r & (r - 1)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	unsigned avail, r, all[8];
	char *v;

	if (len == 0)
		return 0;
	avail = data[0] & PT_ENC_ALL;
	v = malloc(len - 1 ? len - 1 : 1);
	memcpy(v, data + 1, len - 1);

	r = pt_enc_choose(v, len - 1, avail);
	CHECK(valid(r, avail));
	CHECK(pt_enc_choose(NULL, 0, avail) == PT_ENC_IDENTITY);
	CHECK(pt_enc_choose(v, len - 1, 0) == PT_ENC_IDENTITY);
	CHECK(pt_enc_choose(v, len - 1, avail) == r); /* deterministic */
	if (r != PT_ENC_IDENTITY)
		CHECK(pt_enc_choose(v, len - 1, r) == r);
	for (unsigned b = 1; b <= PT_ENC_GZIP; b <<= 1)
		if ((avail & b) && b != r)
			CHECK(pt_enc_choose(v, len - 1, avail & ~b) == r);
	for (unsigned m = 0; m < 8; m++) {
		all[m] = pt_enc_choose(v, len - 1, m);
		CHECK(valid(all[m], m));
	}
	/* if the choice from m is a coding, it is the choice from every subset holding it */
	for (unsigned m = 0; m < 8; m++)
		for (unsigned s = 0; s < 8; s++)
			if ((s & m) == s && all[m] != PT_ENC_IDENTITY && (s & all[m]))
				CHECK(all[s] == all[m]);
	CHECK((pt_enc_name(r) == NULL) == (r == PT_ENC_IDENTITY));
	CHECK((*pt_enc_suffix(r) == '\0') == (r == PT_ENC_IDENTITY));
	free(v);
	return 0;
}
