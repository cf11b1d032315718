/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The byte stream of the stream benchmarks (recvstream, sendstream,
 * sendfile): byte i is pattern[i % PERIOD]; the table holds one more chunk,
 * so any chunk of the stream is one contiguous piece of it (sent from it and
 * compared with it by memcmp, so checking costs every mechanism little and
 * the same). Include after bench.h.
 */
#ifndef STREAM_H
#define STREAM_H

#define CHUNK (64 * 1024)
#define PERIOD 65521

static unsigned char pattern[PERIOD + CHUNK];

static inline void make_pattern(void)
{
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)((i % PERIOD) * 131 + (i % PERIOD) / 251);
}

/* One loopback TCP connection carrying @total bytes (and, for sendfile, the file). */
struct stream {
	int rx, tx, file;
	uint64_t total;		/* bytes to send and receive */
	uint64_t got;		/* received and checked so far */
};

/* A thread taking the stream with blocking recv() and checking every byte. */
static inline void *checking_receiver(void *arg)
{
	struct stream *s = arg;
	unsigned char *buf = malloc(CHUNK);

	while (s->got < s->total) {
		ssize_t n = recv(s->rx, buf, CHUNK, 0);

		check(n > 0, "recv");
		check(!memcmp(buf, pattern + s->got % PERIOD, n), "received bytes");
		s->got += n;
	}
	free(buf);
	return NULL;
}

#endif /* STREAM_H */
