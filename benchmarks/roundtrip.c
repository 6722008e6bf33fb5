/*
 * roundtrip: what one request/response round trip between two processes
 * costs on this machine when nothing else is done: the least that daemon
 * mode can add to a request over embedded mode.
 *
 * Each client process sends a request-sized message (1627 bytes, the size
 * of a hello world request's frame) over its own Unix socket pair and
 * blocks in recv(); one server process waits in epoll_wait() with
 * EPOLLONESHOT, reads, answers with a response-sized message (116 bytes)
 * and re-arms the socket: the system calls, wake-ups and context switches
 * of a daemon-mode request, without the request.
 *
 * Usage: roundtrip [CLIENTS [ROUND_TRIPS_PER_CLIENT]]   (4 and 50000)
 * Prints one line:
 *   roundtrip: clients N round_trips M cpu_us X wall_us Y
 * where X is the CPU time (user + system, every process) per round trip
 * and Y the elapsed time per round trip, both in microseconds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define REQUEST_BYTES 1627
#define RESPONSE_BYTES 116

static double seconds_now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Reads until `len` bytes came; 0, or -1 when the peer went away. */
static int recv_all(int fd, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void serve(int pairs[][2], int clients, long total)
{
    static char buf[REQUEST_BYTES];
    struct epoll_event ev;
    int ep = epoll_create1(0), i;

    if (ep < 0) {
        _exit(2);
    }
    for (i = 0; i < clients; i++) {
        ev.events = EPOLLIN | EPOLLONESHOT;
        ev.data.fd = pairs[i][1];
        if (epoll_ctl(ep, EPOLL_CTL_ADD, pairs[i][1], &ev) != 0) {
            _exit(2);
        }
    }
    while (total > 0) {
        int n = epoll_wait(ep, &ev, 1, -1);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n != 1 || recv_all(ev.data.fd, buf, REQUEST_BYTES) != 0
            || send_all(ev.data.fd, buf, RESPONSE_BYTES) != 0) {
            _exit(2);
        }
        ev.events = EPOLLIN | EPOLLONESHOT;
        if (epoll_ctl(ep, EPOLL_CTL_MOD, ev.data.fd, &ev) != 0) {
            _exit(2);
        }
        total--;
    }
    _exit(0);
}

static void client(int fd, long round_trips)
{
    static char buf[REQUEST_BYTES];

    memset(buf, 'x', sizeof(buf));
    while (round_trips-- > 0) {
        if (send_all(fd, buf, REQUEST_BYTES) != 0
            || recv_all(fd, buf, RESPONSE_BYTES) != 0) {
            _exit(2);
        }
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    int clients = argc > 1 ? atoi(argv[1]) : 4;
    long round_trips = argc > 2 ? atol(argv[2]) : 50000;
    int pairs[MAX_CLIENTS][2], i, status, failed = 0;
    struct rusage ru;
    double start, wall, cpu;
    long total;

    if (clients < 1 || clients > MAX_CLIENTS || round_trips < 1) {
        fprintf(stderr, "usage: roundtrip [CLIENTS (1-%d) "
                "[ROUND_TRIPS_PER_CLIENT]]\n", MAX_CLIENTS);
        return 2;
    }
    total = (long)clients * round_trips;
    for (i = 0; i < clients; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i]) != 0) {
            perror("roundtrip: socketpair");
            return 1;
        }
    }
    start = seconds_now();
    if (fork() == 0) {
        serve(pairs, clients, total);
    }
    for (i = 0; i < clients; i++) {
        if (fork() == 0) {
            client(pairs[i][0], round_trips);
        }
    }
    for (i = 0; i < clients; i++) {
        close(pairs[i][0]);
        close(pairs[i][1]);
    }
    while (wait(&status) > 0) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed = 1;
        }
    }
    wall = seconds_now() - start;
    if (failed) {
        fprintf(stderr, "roundtrip: a process failed\n");
        return 1;
    }
    getrusage(RUSAGE_CHILDREN, &ru);
    cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6
          + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("roundtrip: clients %d round_trips %ld cpu_us %.2f wall_us %.2f\n",
           clients, total, cpu / (double)total * 1e6,
           wall / (double)total * 1e6);
    return 0;
}
