/*
 * rttrelay: a userspace delay line between two network namespaces, for round-trip-time
 * experiments on kernels without netem (bench/rtt.py). Not part of Portico.
 *
 *   rttrelay -a NETNS_A:TUN_A -b NETNS_B:TUN_B -d ONE_WAY_MS [-r MBIT] [-q PACKETS]
 *
 * The two TUN devices (IFF_TUN, no packet info) must exist already (`ip tuntap add`), one in
 * each namespace, addressed point to point. Every IP packet one side's kernel routes into its
 * TUN device is read here, held for ONE_WAY_MS, and written into the other TUN device, where
 * the other kernel receives it as if from a wire. Both directions are delayed, so the round
 * trip is twice ONE_WAY_MS plus the relay's own time (tens of microseconds). TCP runs end to
 * end between the two kernels: windows, ACKs, delayed ACKs, congestion control and socket
 * buffers are all real; only the wire is emulated.
 *
 * The wire: with -r, each direction is a link of MBIT megabits per second (packets leave the
 * delay line no faster than that, serialised one after another, as on a real link of that
 * rate); without -r it is as fast as the relay can copy. Each direction has a tail-drop queue of
 * -q packets (default 8192, 16 MiB: no drops below about 1 Gbit/s at 100 ms RTT with
 * 1500-byte packets); a full queue drops the packet, as a router's full buffer would. No jitter, no
 * reordering, no random loss: it is a clean long pipe, the case the HTTP.SYS text describes.
 *
 * Prints "ready" on standard output when both devices are attached; runs until SIGTERM/SIGINT.
 * Exit 0, or 1 with a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define PKT_MAX 2048u                 /* TUN MTU 1500 (no offloads): whole packets fit */

struct pkt {
	uint64_t due_ns;              /* earliest time it may leave */
	uint16_t len;
	unsigned char data[PKT_MAX];
};

struct dir {
	int in, out;                  /* read from in, write to out */
	struct pkt *q;
	unsigned cap, head, n;
	uint64_t link_free_ns;        /* -r: when the link has finished the previous packet */
	uint64_t fwd, dropped;
};

static volatile sig_atomic_t stop;
static uint64_t delay_ns, ns_per_byte_x1000;  /* -r: link time per byte, in ns/1000 */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Opens TUN device dev inside network namespace ns ("NS:DEV"). */
static int tun_open(const char *spec)
{
	char ns[256], path[300];
	const char *colon = strchr(spec, ':');
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI };

	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof ns ||
	    strlen(colon + 1) >= IFNAMSIZ) {
		fprintf(stderr, "rttrelay: %s: want NETNS:TUN\n", spec);
		return -1;
	}
	snprintf(ns, sizeof ns, "%.*s", (int)(colon - spec), spec);
	snprintf(path, sizeof path, "/run/netns/%s", ns);
	strcpy(ifr.ifr_name, colon + 1);
	int nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
		fprintf(stderr, "rttrelay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	close(nsfd);
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "rttrelay: %s: %s\n", spec, strerror(errno));
		return -1;
	}
	return fd;
}

/* Reads every packet waiting on d->in into the delay line. */
static void take(struct dir *d, uint64_t now)
{
	for (;;) {
		struct pkt *p = &d->q[(d->head + d->n) % d->cap];
		struct pkt spare;
		if (d->n == d->cap)
			p = &spare;               /* full: read it anyway, and drop it */
		ssize_t n = read(d->in, p->data, sizeof p->data);
		if (n <= 0)
			return;
		if (p == &spare) {
			d->dropped++;
			continue;
		}
		p->len = (uint16_t)n;
		p->due_ns = now + delay_ns;
		d->n++;
	}
}

/* Writes the packets that are due (and that the link has time for). Returns ns until the next
 * one is due, or -1 when the line is empty. */
static int64_t give(struct dir *d, uint64_t now)
{
	while (d->n) {
		struct pkt *p = &d->q[d->head];
		uint64_t due = p->due_ns;
		if (ns_per_byte_x1000) {
			uint64_t start = d->link_free_ns > due ? d->link_free_ns : due;
			due = start + (uint64_t)p->len * ns_per_byte_x1000 / 1000;
		}
		if (due > now)
			return (int64_t)(due - now);
		if (write(d->out, p->data, p->len) < 0 && errno == EAGAIN)
			return 1000;              /* the other side's queue is full: try again soon */
		d->link_free_ns = due;
		d->fwd++;
		d->head = (d->head + 1) % d->cap;
		d->n--;
	}
	return -1;
}

static int relay(struct dir *d)
{
	struct pollfd pf[2] = { { d[0].in, POLLIN, 0 }, { d[1].in, POLLIN, 0 } };

	while (!stop) {
		uint64_t now = now_ns();
		int64_t wait = -1;
		for (int i = 0; i < 2; i++) {
			take(&d[i], now);
			int64_t w = give(&d[i], now);
			if (w >= 0 && (wait < 0 || w < wait))
				wait = w;
		}
		/* ppoll for sub-millisecond waits: the delay is exact to the scheduler's wake-up */
		struct timespec ts = { (time_t)(wait / 1000000000), (long)(wait % 1000000000) };
		if (ppoll(pf, 2, wait < 0 ? NULL : &ts, NULL) < 0 && errno != EINTR)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *a = NULL, *b = NULL;
	double ms = -1, mbit = 0;
	unsigned cap = 8192;
	int opt;

	while ((opt = getopt(argc, argv, "a:b:d:r:q:")) != -1) {
		switch (opt) {
		case 'a': a = optarg; break;
		case 'b': b = optarg; break;
		case 'd': ms = atof(optarg); break;
		case 'r': mbit = atof(optarg); break;
		case 'q': cap = (unsigned)atoi(optarg); break;
		default: goto usage;
		}
	}
	if (!a || !b || ms < 0 || ms > 10000 || mbit < 0 || cap < 16)
		goto usage;
	delay_ns = (uint64_t)(ms * 1e6);
	if (mbit > 0)
		ns_per_byte_x1000 = (uint64_t)(8e6 / mbit);   /* 8 bits / (mbit * 1e6) s, in ns*1000 */
	struct dir d[2] = { { 0 }, { 0 } };
	int fa = tun_open(a), fb = fa < 0 ? -1 : tun_open(b);
	if (fa < 0 || fb < 0)
		return 1;
	d[0].in = fa, d[0].out = fb, d[1].in = fb, d[1].out = fa;
	for (int i = 0; i < 2; i++) {
		d[i].cap = cap;
		if (!(d[i].q = malloc((size_t)cap * sizeof *d[i].q))) {
			fprintf(stderr, "rttrelay: out of memory\n");
			return 1;
		}
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("ready\n");
	fflush(stdout);
	if (relay(d) < 0) {
		fprintf(stderr, "rttrelay: poll: %s\n", strerror(errno));
		return 1;
	}
	fprintf(stderr, "rttrelay: forwarded %llu/%llu packets, dropped %llu/%llu (a->b/b->a)\n",
		(unsigned long long)d[0].fwd, (unsigned long long)d[1].fwd,
		(unsigned long long)d[0].dropped, (unsigned long long)d[1].dropped);
	return 0;
usage:
	fprintf(stderr, "usage: rttrelay -a NETNS_A:TUN_A -b NETNS_B:TUN_B -d ONE_WAY_MS [-r MBIT]"
			" [-q PACKETS]\n");
	return 2;
}
