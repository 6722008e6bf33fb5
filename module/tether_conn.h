/*
 * Framed I/O on one Unix stream socket between an Apache child and a
 * daemon process (daemon mode): buffered reads of tether_wire frames,
 * whole-frame writes, descriptors passed with SCM_RIGHTS, and timeouts.
 * Used by both sides; no Python and no request_rec here.
 */
#ifndef TETHER_CONN_H
#define TETHER_CONN_H

#include "apr.h"
#include "apr_errno.h"
#include "apr_time.h"

#include "tether_wire.h"

#define TETHER_CONN_MAX_FDS 8

typedef struct {
    int fd;
    unsigned char *buf;             /* read buffer, malloc'd */
    apr_size_t cap;
    apr_size_t pos;                 /* next unread byte */
    apr_size_t len;                 /* bytes in buf */
    int fds[TETHER_CONN_MAX_FDS];   /* descriptors received, in order */
    int nfds;
    apr_interval_time_t timeout;    /* per read/write wait; 0: none */
    int blocking;                   /* tether_conn_blocking() was called */
    apr_interval_time_t applied;    /* the timeout the socket has */
    int peer_closed;
    long peer_pid;                  /* from the daemon's HELLO, or 0 */
    unsigned char *wbuf;            /* frames queued, not yet written */
    apr_size_t wlen;
} tether_conn_t;

/* Wraps a connected socket (made non-blocking here). NULL if no memory. */
tether_conn_t *tether_conn_new(int fd, apr_interval_time_t timeout);
/* Closes the socket and any received descriptors, frees everything. */
void tether_conn_close(tether_conn_t *c);
/*
 * Makes the socket blocking, its waits bounded by SO_RCVTIMEO/SO_SNDTIMEO
 * instead of poll(): a read that waits for the peer's answer is then one
 * system call, not three.  For a connection one thread uses at a time.
 */
void tether_conn_blocking(tether_conn_t *c);
/* Sets the per read/write timeout (0: none). */
void tether_conn_set_timeout(tether_conn_t *c, apr_interval_time_t timeout);

/*
 * Connects to the Unix socket at `path`.  Returns APR_SUCCESS, or the
 * errno-based status (ECONNREFUSED, ENOENT, EAGAIN when the backlog is
 * full, ...).
 */
apr_status_t tether_conn_connect(const char *path, int *fd);

/* Sets SO_SNDBUF/SO_RCVBUF when > 0 (send/receive-buffer-size). */
void tether_conn_buffers(int fd, int sndbuf, int rcvbuf);

/* Reads the next frame header.  APR_EOF when the peer closed cleanly
 * between frames; APR_TIMEUP; APR_EGENERAL for a malformed header. */
apr_status_t tether_conn_read_header(tether_conn_t *c,
                                     tether_wire_header_t *h);
/* Reads exactly len payload bytes into dst. */
apr_status_t tether_conn_read(tether_conn_t *c, void *dst, apr_size_t len);
/* Discards len payload bytes. */
apr_status_t tether_conn_skip(tether_conn_t *c, apr_size_t len);
/*
 * Waits (bounded by the timeout) until a frame byte can be read; call it
 * after sending a frame the peer must answer, when the answer cannot be
 * there yet: it saves a read that would only find nothing.
 */
apr_status_t tether_conn_wait(tether_conn_t *c);
/* The oldest descriptor received and not yet taken, or -1. */
int tether_conn_take_fd(tether_conn_t *c);
/* True when a frame byte is already buffered or readable right now. */
int tether_conn_pending(tether_conn_t *c);

/* Sends one frame: header and payload (payload may be NULL for len 0). */
apr_status_t tether_conn_send(tether_conn_t *c, int type, int flags,
                              const void *payload, apr_size_t len);
/*
 * Queues one frame to go out with the next send or flush; a frame too big
 * for the queue flushes it and goes out at once.
 */
apr_status_t tether_conn_queue(tether_conn_t *c, int type, int flags,
                               const void *payload, apr_size_t len);
/* Writes out what tether_conn_queue() holds. */
apr_status_t tether_conn_flush(tether_conn_t *c);

/* Sends one frame with descriptor `fd` attached (SCM_RIGHTS). */
apr_status_t tether_conn_send_fd(tether_conn_t *c, int type, int flags,
                                 const void *payload, apr_size_t len,
                                 int fd);

#endif /* TETHER_CONN_H */
