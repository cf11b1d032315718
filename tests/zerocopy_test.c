// SPDX-License-Identifier: GPL-2.0
/*
 * Whether aio_send() really sends from the caller's pages: KEVENT_RET_COPIED
 * tells. The guest kernel has a dummy netdev (dummy0), which transmits by
 * freeing the skb, so a large UDP send routed to it is never copied; over
 * loopback the receiving side copies the pages, and small sends are copied
 * at submission. Pins are counted in /proc/vmstat.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

#define EVENT_MS 3000

/* dummy0 up as 10.78.0.1/24 with a 64 KiB MTU; 0, or -1 if there is no dummy0. */
static int dummy_up(void)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *sin = (void *)&ifr.ifr_addr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = -1;

	strcpy(ifr.ifr_name, "dummy0");
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr))
		goto out;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = inet_addr("10.78.0.1");
	if (ioctl(fd, SIOCSIFADDR, &ifr))
		goto out;
	sin->sin_addr.s_addr = inet_addr("255.255.255.0");
	if (ioctl(fd, SIOCSIFNETMASK, &ifr))
		goto out;
	ifr.ifr_mtu = 65535;
	if (ioctl(fd, SIOCSIFMTU, &ifr) || ioctl(fd, SIOCGIFFLAGS, &ifr))
		goto out;
	ifr.ifr_flags |= IFF_UP;
	ret = ioctl(fd, SIOCSIFFLAGS, &ifr);
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* A UDP socket connected to an address behind dummy0. */
static int udp_to_dummy(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(9) };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = inet_addr("10.78.0.2");
	if (fd < 0 || connect(fd, (void *)&sa, sizeof(sa))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The completion of request @id, harvested within EVENT_MS; false if none came. */
static bool completion(int q, long id, struct ukevent *e)
{
	return harvest(q, 1, 1, e, EVENT_MS) == 1 && e->id.raw_u64 == (uint64_t)id;
}

FIXTURE(zc) {
	int q;
	int u;
	unsigned char *buf;
	long base;
};

FIXTURE_SETUP(zc)
{
	self->q = self->u = -1;
	self->buf = NULL;
	ASSERT_EQ(0, dummy_up()) TH_LOG("dummy0: %s (kernel without CONFIG_DUMMY?)",
					 strerror(errno));
	self->u = udp_to_dummy();
	ASSERT_LE(0, self->u);
	self->q = kevent_init(0, 0);
	ASSERT_LE(0, self->q);
	self->buf = malloc(1 << 20);
	ASSERT_NE(NULL, self->buf);
	memset(self->buf, 0x77, 1 << 20);
	self->base = pins_held();
	ASSERT_NE(LONG_MIN, self->base);
}

FIXTURE_TEARDOWN(zc)
{
	if (self->q >= 0)
		close(self->q);
	if (self->u >= 0)
		close(self->u);
	free(self->buf);
}

/* Large datagrams to dummy0 leave from the user's pages: no KEVENT_RET_COPIED. */
TEST_F(zc, dummy_large_not_copied)
{
	static const size_t sizes[] = { 4097, 8192, 30000, 64000 };
	struct ukevent e;

	for (int i = 0; i < 4; i++) {
		long id = aio_send(self->q, self->u, self->buf, sizes[i], 0);

		ASSERT_LT(0, id) TH_LOG("aio_send %zu: %s", sizes[i], strerror(errno));
		ASSERT_TRUE(completion(self->q, id, &e));
		EXPECT_EQ((uint32_t)KEVENT_SOCKET_SEND, e.event);
		EXPECT_EQ(sizes[i], e.ret_data[0]);
		EXPECT_EQ(0u, e.ret_data[1]);
		EXPECT_EQ(0u, e.ret_flags & KEVENT_RET_COPIED) TH_LOG("%zu bytes copied", sizes[i]);
	}
	EXPECT_EQ(self->base, pins_back_to(self->base));
}

/* Up to a page, a send is copied at submission and says so; no page is pinned. */
TEST_F(zc, small_copied)
{
	struct ukevent e;
	long before = pins_held();
	long id = aio_send(self->q, self->u, self->buf, 4096, 0);

	ASSERT_LT(0, id);
	ASSERT_TRUE(completion(self->q, id, &e));
	EXPECT_EQ(4096u, e.ret_data[0]);
	EXPECT_EQ((uint32_t)KEVENT_RET_COPIED, e.ret_flags & KEVENT_RET_COPIED);
	EXPECT_EQ(before, pins_held());
}

/* Many in flight at once, one event each, none copied, every pin given back. */
TEST_F(zc, dummy_many_in_flight)
{
	enum { N = 64 };
	long ids[N];
	int seen[N] = { 0 }, got = 0;
	struct ukevent e[N];

	for (int i = 0; i < N; i++) {
		ids[i] = aio_send(self->q, self->u, self->buf + (i % 8) * 4096, 16384, 0);
		ASSERT_LT(0, ids[i]);
	}
	while (got < N) {
		int n = harvest(self->q, 1, N, e, EVENT_MS);

		ASSERT_LT(0, n);
		for (int k = 0; k < n; k++) {
			int i = (int)(e[k].id.raw_u64 - ids[0]);

			ASSERT_TRUE(i >= 0 && i < N);
			EXPECT_EQ(0, seen[i]++);
			EXPECT_EQ(16384u, e[k].ret_data[0]);
			EXPECT_EQ(0u, e[k].ret_flags & KEVENT_RET_COPIED);
		}
		got += n;
	}
	EXPECT_EQ(self->base, pins_back_to(self->base));
}

TEST_HARNESS_MAIN
