/*
 * Connection objects' memory: allocation in blocks (recycled, not freed, while connections come
 * and go: the TF_REUSE_SOCKET idea; a block whose slots are all free is given back once a burst
 * is over, see pt__conns_trim), the application's area, and the state only some connections
 * need (struct pt_conn_rare).
 *
 * A recycled slot stays in its block; under ASan its application area (conn_area) is poisoned
 * until the slot is accepted again, so a layer above that touches the area of a connection it
 * was told is closed is caught.
 */
#include "engine/engine_int.h"
#include "engine/fault.h"
#include "engine/plat.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Issue 19: an idle keep-alive connection costs its slot (this object plus the application's
 * area) and nothing else; what only some connections need is allocated while they need it
 * (the send queue, struct pt_conn_rare, TLS). This keeps the object from silently regrowing. */
_Static_assert(sizeof(struct pt_conn) <= 128, "struct pt_conn grew: see issue 19");

/* Where the application's area starts in a connection object (pt_conn_area). */
#define AREA_OFF ((sizeof(struct pt_conn) + 15) & ~(size_t)15)

static inline struct pt_conn *slot(const struct pt_worker *w, char *blk, unsigned i)
{
	return (struct pt_conn *)(blk + (size_t)i * w->conn_stride);
}

/* ASan: the application area of a free slot is poisoned (see the top of the file). */
static void area_poison(struct pt_conn *c, bool poison)
{
	size_t n = c->w->e->cfg.conn_area;

	if (!n)
		return;
	if (poison)
		PT_POISON(pt_conn_area(c), n);
	else
		PT_UNPOISON(pt_conn_area(c), n);
}

/* Blocks are mapped, not malloc'd: a block given back is returned to the kernel at once, and
 * blocks never sit between short-lived allocations (requests, send contexts) in the malloc
 * arena, where they kept the pages of a burst's freed objects resident (issue 19). The
 * mapping is zero-filled. */
static size_t block_bytes(const struct pt_worker *w)
{
	return PT_CONN_BLOCK * w->conn_stride;
}

static char *block_map(struct pt_worker *w)
{
	if (pt__fault(PT_FAULT_ALLOC))
		return NULL;
	char *blk = pt__mem_map(block_bytes(w));
	if (blk)
		PT_LSAN_ROOT(blk, block_bytes(w));
	return blk;
}

static void block_unmap(struct pt_worker *w, char *blk)
{
	PT_UNPOISON(blk, block_bytes(w));
	PT_LSAN_UNROOT(blk, block_bytes(w));
	pt__mem_unmap(blk, block_bytes(w));
}

static int grow_blocks(struct pt_worker *w)
{
	if (!w->conn_stride)
		w->conn_stride = (AREA_OFF + w->e->cfg.conn_area + 15) & ~(size_t)15;
	unsigned b = 0;
	while (b < w->nblocks && w->blocks[b])     /* a hole left by a trim first */
		b++;
	if (b == w->blocks_cap) {
		unsigned cap = w->blocks_cap ? w->blocks_cap * 2 : 16;
		char **bl = pt__realloc(w->blocks, cap * sizeof *bl);
		if (!bl)
			return -ENOMEM;
		w->blocks = bl;
		w->blocks_cap = cap;
	}
	char *blk = block_map(w);
	if (!blk)
		return -ENOMEM;
	/* slots of a block given back and made again start at a new generation */
	uint32_t gen = w->gen_seed++ << 12;
	for (unsigned i = PT_CONN_BLOCK; i-- > 0;) {
		struct pt_conn *c = slot(w, blk, i);
		c->idx = b * PT_CONN_BLOCK + i;
		c->gen = gen;
		c->w = w;
		c->fd = -1;
		c->q = &w->txq_none;
		c->free_next = w->conn_free;
		w->conn_free = c;
		area_poison(c, true);
	}
	w->nconn_free += PT_CONN_BLOCK;
	w->blocks[b] = blk;
	if (b == w->nblocks)
		w->nblocks++;
	return 0;
}

/* Gives back every block whose slots are all free (after a burst: thousands of connections
 * came and went). O(free slots); skipped while nothing was freed since a trim that found no
 * whole block. Returns the bytes freed. Worker thread. */
size_t pt__conns_trim(struct pt_worker *w)
{
	if (w->nconn_free < PT_CONN_BLOCK || w->nconn_free == w->trim_nfree)
		return 0;
	uint16_t *nfree = calloc(w->nblocks, sizeof *nfree);
	if (!nfree)
		return 0;
	for (struct pt_conn *c = w->conn_free; c; c = c->free_next)
		nfree[c->idx / PT_CONN_BLOCK]++;
	struct pt_conn **pp = &w->conn_free, *next;
	for (struct pt_conn *c = w->conn_free; c; c = next) {   /* unlink the whole blocks' slots */
		next = c->free_next;
		if (nfree[c->idx / PT_CONN_BLOCK] == PT_CONN_BLOCK) {
			w->nconn_free--;
			continue;
		}
		*pp = c;
		pp = &c->free_next;
	}
	*pp = NULL;
	size_t freed = 0;
	for (unsigned b = 0; b < w->nblocks; b++) {
		if (nfree[b] != PT_CONN_BLOCK)
			continue;
		block_unmap(w, w->blocks[b]);
		w->blocks[b] = NULL;
		freed += block_bytes(w);
	}
	while (w->nblocks && !w->blocks[w->nblocks - 1])
		w->nblocks--;
	free(nfree);
	w->trim_nfree = w->nconn_free;
	return freed;
}

struct pt_conn *pt__conn_alloc(struct pt_worker *w)
{
	if (!w->conn_free && grow_blocks(w) < 0)
		return NULL;
	struct pt_conn *c = w->conn_free;
	w->conn_free = c->free_next;
	w->nconn_free--;
	c->free_next = NULL;
	PT_ASSERT(c->fd == -1 && !c->flags && !c->q->sq_head && !c->l_prev && !c->l_next);
	area_poison(c, false);
	return c;
}

struct pt_conn *pt__conn_get(struct pt_worker *w, uint32_t idx, uint32_t gen)
{
	uint32_t b = idx / PT_CONN_BLOCK;

	if (b >= w->nblocks || !w->blocks[b])
		return NULL;
	struct pt_conn *c = slot(w, w->blocks[b], idx % PT_CONN_BLOCK);
	return (c->gen & 0xffffff) == gen && (c->flags & PT_C_LIVE) ? c : NULL;
}

struct pt_conn_rare *pt__conn_rare(struct pt_conn *c)
{
	if (!c->rare)
		c->rare = pt__calloc(1, sizeof *c->rare);
	return c->rare;
}

void pt__conn_recycle(struct pt_worker *w, struct pt_conn *c)
{
	/* nothing may reach c once it is free: no deferred work, deadline, send or kernel op */
	PT_ASSERT(!(c->flags & (PT_C_LIVE | PT_C_PENDING)) && !pt__ctimer_armed(c));
	PT_ASSERT(!c->q->sq_head && !c->q->tx && c->inflight == 0);
	if (c->rare) {
		PT_ASSERT(!c->rare->px);
		free(c->rare->stash);
		free(c->rare);
		c->rare = NULL;
	}
	c->fd = -1;
	c->flags = 0;
	pt__txq_release(c);
	c->ops = NULL;
	c->user = NULL;
	c->gen++;
	c->free_next = w->conn_free;
	w->conn_free = c;
	w->nconn_free++;
	area_poison(c, true);
}

/* Worker exit: every connection is closed by now; free the blocks. */
void pt__conns_free(struct pt_worker *w)
{
	for (unsigned b = 0; b < w->nblocks; b++) {
		if (!w->blocks[b])
			continue;
		for (unsigned i = 0; i < PT_CONN_BLOCK; i++) {
			struct pt_conn_rare *x = slot(w, w->blocks[b], i)->rare;
			if (x)
				free(x->stash);
			free(x);
		}
		block_unmap(w, w->blocks[b]);
	}
	free(w->blocks);
	w->blocks = NULL;
	w->nblocks = w->blocks_cap = 0;
	w->conn_free = NULL;
	w->nconn_free = 0;
}

PT_API void *pt_conn_area(pt_conn_t *c)
{
	if (!c || !c->w->e->cfg.conn_area)
		return NULL;
	return (char *)c + AREA_OFF;
}

PT_API pt_conn_t *pt_conn_of_area(void *area)
{
	return area ? (pt_conn_t *)((char *)area - AREA_OFF) : NULL;
}
