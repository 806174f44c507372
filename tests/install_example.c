/*
 * install_example.c - a program built against the *installed* library, with
 * nothing but `pkg-config --cflags --libs mtserver` (tests/test_install.sh).
 * Its protocol answers every read with the bytes upper-cased. It starts a
 * server on 127.0.0.1 port 0, talks to it, posts a function to every worker,
 * and stops: exit 0 if all of that worked.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <mtserver.h>

struct upper {
	struct event *ev;
};

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct mts_conn *c = arg;
	char buf[512];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n <= 0) {
		mts_conn_close(c);
		return;
	}
	for (ssize_t i = 0; i < n; i++)
		buf[i] = (char)toupper((unsigned char)buf[i]);
	(void)write(fd, buf, (size_t)n);	/* small replies: no backpressure needed */
}

static int on_open(struct mts_conn *c, void *arg)
{
	struct upper *u = mts_conn_data(c);

	u->ev = event_new(mts_conn_base(c), mts_conn_fd(c), EV_READ | EV_PERSIST, on_read, c);
	return u->ev != NULL && event_add(u->ev, NULL) == 0 ? 0 : -1;
}

static void on_shutdown(struct mts_conn *c, void *arg)
{
	mts_conn_close(c);
}

static void on_close(struct mts_conn *c, void *arg)
{
	event_free(((struct upper *)mts_conn_data(c))->ev);
}

static atomic_uint visited;

static void visit(struct event_base *base, void *arg, int cancelled)
{
	if (!cancelled)
		atomic_fetch_add(&visited, 1);
}

static void *runner(void *arg)
{
	return (void *)(intptr_t)mts_run(arg);
}

int main(void)
{
	const char *listen[] = { "127.0.0.1" };
	struct mts_handler h = { .data_size = sizeof(struct upper), .on_open = on_open,
				 .on_shutdown = on_shutdown, .on_close = on_close };
	struct mts_config cfg;
	struct mts_server *s;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char why[256], reply[6] = "";
	pthread_t t;
	void *rc;
	int fd;

	mts_config_defaults(&cfg);
	cfg.listen = listen;
	cfg.n_listen = 1;
	cfg.port = "0";
	cfg.threads = 2;
	if (mts_new(&s, &cfg, &h, why, sizeof(why)) != 0) {
		fprintf(stderr, "mts_new: %s\n", why);
		return 1;
	}
	pthread_create(&t, NULL, runner, s);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)atoi(strrchr(mts_listener_name(s, 0), ':') + 1));
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || write(fd, "hello", 5) != 5 ||
	    recv(fd, reply, 5, MSG_WAITALL) != 5 || strcmp(reply, "HELLO") != 0) {
		fprintf(stderr, "no upper-cased reply (got '%s')\n", reply);
		return 1;
	}
	close(fd);
	mts_post_all(s, visit, NULL);
	for (int i = 0; i < 200 && atomic_load(&visited) < 2; i++)
		usleep(10000);
	mts_stop(s);
	pthread_join(t, &rc);
	mts_free(s);
	if (atomic_load(&visited) != 2 || rc != NULL) {
		fprintf(stderr, "post_all reached %u of 2 workers\n", atomic_load(&visited));
		return 1;
	}
	printf("install_example: HELLO, both workers visited\n");
	return 0;
}
