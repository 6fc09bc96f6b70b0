// UDP load for scripts/bench_udp.py (built by it with the system's cc):
//
//   udpload echo PORT                       a UDP echo server on 127.0.0.1:PORT
//   udpload load PORT CLIENTS SECONDS SIZE  CLIENTS sockets, each with one SIZE-byte request
//                                           outstanding at a time, for SECONDS; prints
//                                           "exchanges N lost M" (a request unanswered for
//                                           100 ms counts as lost and is sent again)
//
// Traffic stays on 127.0.0.1; both modes stop by themselves (echo when its parent exits).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int echo(int port) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int size = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    struct sockaddr_in a = loopback(port);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
    printf("listening %d\n", port);
    fflush(stdout);
    enum { batch = 64 };
    static char buffers[batch][65536];
    struct mmsghdr messages[batch];
    struct iovec vectors[batch];
    struct sockaddr_in peers[batch];
    for (;;) {
        for (int i = 0; i < batch; i++) {
            vectors[i] = (struct iovec){buffers[i], sizeof buffers[i]};
            messages[i].msg_hdr = (struct msghdr){.msg_name = &peers[i], .msg_namelen = sizeof peers[i], .msg_iov = &vectors[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, messages, batch, MSG_WAITFORONE, NULL);
        if (n <= 0) continue;
        for (int i = 0; i < n; i++) vectors[i].iov_len = messages[i].msg_len;
        sendmmsg(fd, messages, n, 0);
    }
}

static int load(int port, int clients, double seconds, int size) {
    int epoll = epoll_create1(0);
    int *fds = calloc(clients, sizeof *fds);
    double *sent = calloc(clients, sizeof *sent);
    char *payload = calloc(1, size), reply[65536];
    struct sockaddr_in a = loopback(port);
    for (int i = 0; i < clients; i++) {
        fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (connect(fds[i], (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(epoll, EPOLL_CTL_ADD, fds[i], &e);
    }
    double start = now(), end = start + seconds;
    for (int i = 0; i < clients; i++) { send(fds[i], payload, size, 0); sent[i] = start; }
    long exchanges = 0, lost = 0;
    struct epoll_event events[256];
    double lastSweep = start;
    while (now() < end) {
        int n = epoll_wait(epoll, events, 256, 10);
        double t = now();
        for (int k = 0; k < n; k++) {
            int i = events[k].data.u32;
            while (recv(fds[i], reply, sizeof reply, 0) > 0) {
                exchanges++;
                send(fds[i], payload, size, 0);
                sent[i] = t;
            }
        }
        if (t - lastSweep > 0.05) {
            for (int i = 0; i < clients; i++) {
                if (t - sent[i] > 0.1) { lost++; send(fds[i], payload, size, 0); sent[i] = t; }
            }
            lastSweep = t;
        }
    }
    printf("exchanges %ld lost %ld seconds %.3f\n", exchanges, lost, now() - start);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "echo") == 0) return echo(atoi(argv[2]));
    if (argc == 6 && strcmp(argv[1], "load") == 0) return load(atoi(argv[2]), atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: udpload echo PORT | udpload load PORT CLIENTS SECONDS SIZE\n");
    return 2;
}
