/*
 * bad_echo.c - a deliberately wrong echo server, for testing that echo-bench
 * notices: `flip` echoes with one byte changed at stream offset 100; `hangup`
 * echoes 100 bytes, then closes. One connection at a time, on 127.0.0.1,
 * port 0 (printed as "listening on 127.0.0.1:PORT"); exits after 5 s idle.
 * `udpflip`: a UDP echo that changes byte 20 of every tenth datagram.
 */
#include <config.h>

#include <arpa/inet.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int udp_flip(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET }, peer;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	unsigned count = 0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		return 1;
	getsockname(fd, (struct sockaddr *)&sa, &len);
	printf("bad-echo: listening on 127.0.0.1:%u\n", ntohs(sa.sin_port));
	fflush(stdout);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char buf[65536];
		ssize_t n;

		if (poll(&p, 1, 5000) <= 0)
			return 0;
		len = sizeof(peer);
		n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &len);
		if (n > 20 && ++count % 10 == 0)
			buf[20] ^= 0x40;
		if (n >= 0)
			sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, len);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	bool flip = argc > 1 && strcmp(argv[1], "flip") == 0;

	if (argc > 1 && strcmp(argv[1], "udpflip") == 0)
		return udp_flip();

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(lfd, 16) == -1)
		return 1;
	getsockname(lfd, (struct sockaddr *)&sa, &len);
	printf("bad-echo: listening on 127.0.0.1:%u\n", ntohs(sa.sin_port));
	fflush(stdout);
	for (;;) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		char buf[65536];
		size_t offset = 0;
		ssize_t n;
		int fd;

		if (poll(&p, 1, 5000) <= 0)
			return 0;
		fd = accept(lfd, NULL, NULL);
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			if (flip && offset <= 100 && offset + (size_t)n > 100)
				buf[100 - offset] ^= 0x40;
			if (!flip && offset + (size_t)n > 100) {
				write(fd, buf, 100 - offset);
				break;
			}
			write(fd, buf, (size_t)n);
			offset += (size_t)n;
		}
		close(fd);
	}
}
