// TLS handshake load for scripts/bench_tls.py (built by it with the system's cc and libssl):
//
//   tlsload SECONDS CLIENTS NAME:PORT [NAME:PORT...]
//
// CLIENTS threads, each in a loop for SECONDS: connect to 127.0.0.1:PORT, a full TLS
// handshake with NAME as the server name (no session resumption: a new session every
// time, tickets and the session cache off), "GET /" with Connection: close, read the
// response to its end, close. Each thread takes the NAME:PORT pairs in turn, so the names
// alternate. A response that does not contain NAME (the endpoints answer with their own
// name) counts as wrong: it tells a proxy that routed to the other endpoint. Prints
// "handshakes N errors E wrong W seconds T".
//
// Peers are not verified: this measures handshakes, not trust (the tests check certificates).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { max_targets = 16 };
static struct { char name[256]; int port; } targets[max_targets];
static int target_count;
static SSL_CTX *context;
static double deadline;
static atomic_long handshakes, errors, wrong;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

// One connection: 1 when it completed with the right endpoint's answer, 0 on an error,
// -1 when the answer came from an endpoint with another name.
static int exchange(int index) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    // Every wait is bounded, so that a stuck connection cannot outlive the run by much.
    struct timeval limit = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(targets[index].port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int result = 0;
    SSL *ssl = NULL;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) goto done;
    ssl = SSL_new(context);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, targets[index].name);
    if (SSL_connect(ssl) != 1) goto done;
    char request[512];
    int length = snprintf(request, sizeof request, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", targets[index].name);
    if (SSL_write(ssl, request, length) != length) goto done;
    char response[4096];
    size_t got = 0;
    for (;;) {
        int n = SSL_read(ssl, response + got, (int)(sizeof response - 1 - got));
        if (n <= 0) {
            int reason = SSL_get_error(ssl, n);
            // The endpoint closing (with or without close_notify) ends a Connection: close response.
            if (reason != SSL_ERROR_ZERO_RETURN && reason != SSL_ERROR_SYSCALL) got = 0;
            break;
        }
        got += n;
        if (got == sizeof response - 1) break;
    }
    response[got] = 0;
    if (got > 0) result = strstr(response, targets[index].name) ? 1 : -1;
done:
    if (ssl) {
        if (result) SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    close(fd);
    ERR_clear_error();
    return result;
}

static void *client(void *argument) {
    int index = (int)(long)argument % target_count;
    while (now() < deadline) {
        int result = exchange(index);
        if (now() >= deadline && result == 0) break;  // cut off by the end of the run
        if (result == 1) atomic_fetch_add(&handshakes, 1);
        else if (result < 0) atomic_fetch_add(&wrong, 1);
        else atomic_fetch_add(&errors, 1);
        index = (index + 1) % target_count;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: tlsload SECONDS CLIENTS NAME:PORT [NAME:PORT...]\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    int clients = atoi(argv[2]);
    for (int i = 3; i < argc && target_count < max_targets; i++) {
        char *colon = strrchr(argv[i], ':');
        if (!colon || colon - argv[i] >= (long)sizeof targets[0].name) return 2;
        memcpy(targets[target_count].name, argv[i], colon - argv[i]);
        targets[target_count].port = atoi(colon + 1);
        target_count++;
    }
    context = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(context, SSL_OP_NO_TICKET);
    pthread_t threads[1024];
    if (clients < 1 || clients > 1024) return 2;
    double start = now();
    deadline = start + seconds;
    for (long i = 0; i < clients; i++) pthread_create(&threads[i], NULL, client, (void *)i);
    for (int i = 0; i < clients; i++) pthread_join(threads[i], NULL);
    printf("handshakes %ld errors %ld wrong %ld seconds %.3f\n", atomic_load(&handshakes), atomic_load(&errors),
           atomic_load(&wrong), now() - start);
    return 0;
}
