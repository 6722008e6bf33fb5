/*
 * Framed I/O between an Apache child and a daemon process; see
 * tether_conn.h.  Each read or write is bounded by the connection's
 * timeout: a non-blocking socket waits in poll(), one made blocking (the
 * Apache side's) through SO_RCVTIMEO/SO_SNDTIMEO.
 */
#include "tether_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define CONN_BUFSIZE (4 * 1024)
#define CONN_WBUFSIZE (4 * 1024)

tether_conn_t *tether_conn_new(int fd, apr_interval_time_t timeout)
{
    tether_conn_t *c = calloc(1, sizeof(*c));
    int flags;

    if (!c || !(c->buf = malloc(CONN_BUFSIZE))
        || !(c->wbuf = malloc(CONN_WBUFSIZE))) {
        if (c) {
            free(c->buf);
        }
        free(c);
        return NULL;
    }
    c->fd = fd;
    c->cap = CONN_BUFSIZE;
    c->timeout = timeout;
    flags = fcntl(fd, F_GETFL);
    if (flags >= 0) {
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    }
    return c;
}

static void apply_timeout(tether_conn_t *c)
{
    struct timeval tv;

    tv.tv_sec = (time_t)apr_time_sec(c->timeout);
    tv.tv_usec = (suseconds_t)apr_time_usec(c->timeout);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    c->applied = c->timeout;
}

void tether_conn_blocking(tether_conn_t *c)
{
    int flags = fcntl(c->fd, F_GETFL);

    if (flags >= 0 && fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK) == 0) {
        c->blocking = 1;
        apply_timeout(c);
    }
}

void tether_conn_set_timeout(tether_conn_t *c, apr_interval_time_t timeout)
{
    c->timeout = timeout > 0 ? timeout : 0;
    if (c->blocking && c->applied != c->timeout) {
        apply_timeout(c);
    }
}

void tether_conn_close(tether_conn_t *c)
{
    int i;

    if (!c) {
        return;
    }
    for (i = 0; i < c->nfds; i++) {
        close(c->fds[i]);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->buf);
    free(c->wbuf);
    free(c);
}

apr_status_t tether_conn_connect(const char *path, int *fdp)
{
    struct sockaddr_un sa;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        return APR_ENAMETOOLONG;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return errno;
    }
    /* Non-blocking: a Unix socket connects at once, or fails with EAGAIN
     * when the listen backlog is full (a blocking connect would wait). */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        apr_status_t rv = errno;

        close(fd);
        return rv;
    }
    *fdp = fd;
    return APR_SUCCESS;
}

void tether_conn_buffers(int fd, int sndbuf, int rcvbuf)
{
    if (sndbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
}

/* Waits until fd is ready for `events`; APR_TIMEUP after the timeout. */
static apr_status_t wait_io(tether_conn_t *c, short events)
{
    struct pollfd p;
    int ms = c->timeout > 0 ? (int)((c->timeout + 999) / 1000) : -1;
    int rc;

    p.fd = c->fd;
    p.events = events;
    do {
        rc = poll(&p, 1, ms);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        return errno;
    }
    return rc == 0 ? APR_TIMEUP : APR_SUCCESS;
}

/* Keeps the descriptors of a control message. */
static void take_rights(tether_conn_t *c, struct msghdr *msg)
{
    struct cmsghdr *cm;

    for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        int *fds, n, i;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        fds = (int *)CMSG_DATA(cm);
        n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (i = 0; i < n; i++) {
            if (c->nfds < TETHER_CONN_MAX_FDS) {
                c->fds[c->nfds++] = fds[i];
            }
            else {
                close(fds[i]);
            }
        }
    }
}

/*
 * Receives at least one byte into dst (at most len), waiting up to the
 * timeout; descriptors that come along are kept in order.
 */
static apr_status_t recv_some(tether_conn_t *c, void *dst, apr_size_t len,
                              apr_size_t *got)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * TETHER_CONN_MAX_FDS)];
    } control;
    struct msghdr msg;
    struct iovec iov;
    ssize_t n;
    apr_status_t rv;

    for (;;) {
        memset(&msg, 0, sizeof(msg));
        iov.iov_base = dst;
        iov.iov_len = len;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
        if (n > 0) {
            take_rights(c, &msg);
            *got = (apr_size_t)n;
            return APR_SUCCESS;
        }
        if (n == 0) {
            c->peer_closed = 1;
            return APR_EOF;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return errno;
        }
        if (c->blocking) {
            return APR_TIMEUP;      /* SO_RCVTIMEO ran out */
        }
        if ((rv = wait_io(c, POLLIN)) != APR_SUCCESS) {
            return rv;
        }
    }
}

/* Refills the (empty) read buffer. */
static apr_status_t fill(tether_conn_t *c)
{
    apr_size_t got;
    apr_status_t rv;

    c->pos = c->len = 0;
    if ((rv = recv_some(c, c->buf, c->cap, &got)) == APR_SUCCESS) {
        c->len = got;
    }
    return rv;
}

apr_status_t tether_conn_read(tether_conn_t *c, void *dst, apr_size_t len)
{
    unsigned char *out = dst;

    while (len > 0) {
        apr_size_t avail = c->len - c->pos;
        apr_status_t rv;

        if (avail == 0) {
            /* Large reads bypass the buffer. */
            if (len >= c->cap) {
                if ((rv = recv_some(c, out, len, &avail)) != APR_SUCCESS) {
                    return rv;
                }
                out += avail;
                len -= avail;
                continue;
            }
            if ((rv = fill(c)) != APR_SUCCESS) {
                return rv;
            }
            continue;
        }
        if (avail > len) {
            avail = len;
        }
        memcpy(out, c->buf + c->pos, avail);
        c->pos += avail;
        out += avail;
        len -= avail;
    }
    return APR_SUCCESS;
}

apr_status_t tether_conn_skip(tether_conn_t *c, apr_size_t len)
{
    while (len > 0) {
        apr_size_t avail = c->len - c->pos;
        apr_status_t rv;

        if (avail == 0) {
            if ((rv = fill(c)) != APR_SUCCESS) {
                return rv;
            }
            continue;
        }
        if (avail > len) {
            avail = len;
        }
        c->pos += avail;
        len -= avail;
    }
    return APR_SUCCESS;
}

apr_status_t tether_conn_read_header(tether_conn_t *c,
                                     tether_wire_header_t *h)
{
    unsigned char raw[TETHER_WIRE_HEADER_SIZE];
    apr_status_t rv;

    /* A clean close between frames is EOF; inside one it is an error. */
    if (c->pos == c->len) {
        if ((rv = fill(c)) != APR_SUCCESS) {
            return rv;
        }
    }
    if ((rv = tether_conn_read(c, raw, sizeof(raw))) != APR_SUCCESS) {
        return rv == APR_EOF ? APR_ECONNRESET : rv;
    }
    if (tether_wire_header_decode(raw, h) != TETHER_WIRE_OK) {
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t tether_conn_wait(tether_conn_t *c)
{
    /* A blocking socket's next read does the waiting. */
    return c->pos < c->len || c->blocking ? APR_SUCCESS : wait_io(c, POLLIN);
}

int tether_conn_take_fd(tether_conn_t *c)
{
    int fd;

    if (c->nfds == 0) {
        return -1;
    }
    fd = c->fds[0];
    memmove(c->fds, c->fds + 1, sizeof(int) * (c->nfds - 1));
    c->nfds--;
    return fd;
}

int tether_conn_pending(tether_conn_t *c)
{
    struct pollfd p;

    if (c->pos < c->len) {
        return 1;
    }
    p.fd = c->fd;
    p.events = POLLIN;
    return poll(&p, 1, 0) > 0;
}

/* Writes the whole iovec, waiting (bounded) when the socket is full. */
static apr_status_t send_all(tether_conn_t *c, struct msghdr *msg)
{
    while (msg->msg_iovlen > 0) {
        ssize_t n = sendmsg(c->fd, msg, MSG_NOSIGNAL);
        apr_status_t rv;

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                return errno;
            }
            if (c->blocking) {
                return APR_TIMEUP;  /* SO_SNDTIMEO ran out */
            }
            if ((rv = wait_io(c, POLLOUT)) != APR_SUCCESS) {
                return rv;
            }
            continue;
        }
        /* The descriptor went with the first bytes. */
        msg->msg_control = NULL;
        msg->msg_controllen = 0;
        while (n > 0 && msg->msg_iovlen > 0) {
            if ((size_t)n >= msg->msg_iov->iov_len) {
                n -= (ssize_t)msg->msg_iov->iov_len;
                msg->msg_iov++;
                msg->msg_iovlen--;
            }
            else {
                msg->msg_iov->iov_base = (char *)msg->msg_iov->iov_base + n;
                msg->msg_iov->iov_len -= (size_t)n;
                n = 0;
            }
        }
    }
    return APR_SUCCESS;
}

apr_status_t tether_conn_flush(tether_conn_t *c);

/* Sends what is queued, then one frame, with the descriptor fd (if >= 0)
 * on the frame's first byte. */
static apr_status_t send_frame(tether_conn_t *c, int type, int flags,
                               const void *payload, apr_size_t len, int fd)
{
    unsigned char head[TETHER_WIRE_HEADER_SIZE];
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct iovec iov[3];
    struct msghdr msg;
    int n = 0;
    apr_status_t rv;

    if (len > TETHER_WIRE_MAX_PAYLOAD) {
        return APR_EINVAL;
    }
    /* A descriptor must ride on its own frame's bytes. */
    if (fd >= 0 && c->wlen) {
        if ((rv = tether_conn_flush(c)) != APR_SUCCESS) {
            return rv;
        }
    }
    if (c->wlen) {
        iov[n].iov_base = c->wbuf;
        iov[n++].iov_len = c->wlen;
    }
    tether_wire_header_encode(head, (uint8_t)type, (uint8_t)flags,
                              (uint32_t)len);
    iov[n].iov_base = head;
    iov[n++].iov_len = sizeof(head);
    if (len) {
        iov[n].iov_base = (void *)payload;
        iov[n++].iov_len = len;
    }
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    c->wlen = 0;
    if (fd >= 0) {
        struct cmsghdr *cm;

        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    return send_all(c, &msg);
}

apr_status_t tether_conn_send(tether_conn_t *c, int type, int flags,
                              const void *payload, apr_size_t len)
{
    return send_frame(c, type, flags, payload, len, -1);
}

apr_status_t tether_conn_send_fd(tether_conn_t *c, int type, int flags,
                                 const void *payload, apr_size_t len,
                                 int fd)
{
    return send_frame(c, type, flags, payload, len, fd);
}

apr_status_t tether_conn_queue(tether_conn_t *c, int type, int flags,
                               const void *payload, apr_size_t len)
{
    if (c->wlen + TETHER_WIRE_HEADER_SIZE + len > CONN_WBUFSIZE) {
        return send_frame(c, type, flags, payload, len, -1);
    }
    tether_wire_header_encode(c->wbuf + c->wlen, (uint8_t)type,
                              (uint8_t)flags, (uint32_t)len);
    c->wlen += TETHER_WIRE_HEADER_SIZE;
    if (len) {
        memcpy(c->wbuf + c->wlen, payload, len);
        c->wlen += len;
    }
    return APR_SUCCESS;
}

apr_status_t tether_conn_flush(tether_conn_t *c)
{
    struct iovec iov;
    struct msghdr msg;

    if (!c->wlen) {
        return APR_SUCCESS;
    }
    iov.iov_base = c->wbuf;
    iov.iov_len = c->wlen;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    c->wlen = 0;
    return send_all(c, &msg);
}
