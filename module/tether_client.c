/*
 * Daemon mode, Apache side: forwards a request to a daemon process group
 * over a pooled, persistent connection and relays the response.
 *
 * Each Apache child keeps, per daemon group, a stack of idle connections.
 * A request sends REQ_HEAD (the environ strings), then answers the
 * daemon's BODY_WANT frames with body read from the client, and passes
 * RESP_BODY/RESP_FILE down the output filters as they arrive, so neither
 * side ever holds a whole body.
 */
#include "tether_private.h"
#include "tether_conn.h"

#include "apr_buckets.h"
#include "apr_portable.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

/* Body bytes sent per BODY_WANT, at most: what the daemon's wsgi.input
 * asks for at a time (TETHER_INPUT_FRAME).  Fewer cost upload throughput
 * in round trips. */
#define CLIENT_READ_MAX TETHER_INPUT_FRAME
/* Response bytes gathered before they are passed on without a flush,
 * unless the group's response-buffer-size says otherwise. */
#define RELAY_BATCH (64 * 1024)
/* A RESP_BODY frame is read from the daemon this much at a time. */
#define BODY_PIECE (64 * 1024)

/*
 * Idle connections, first in first out: each request takes the one idle
 * the longest, so requests spread over all of them and so over all the
 * daemon processes that accepted them.
 */
typedef struct {
    apr_thread_mutex_t *lock;
    tether_conn_t **idle;           /* a ring of cap */
    int head;                       /* the oldest */
    int nidle;
    int cap;
} conn_pool_t;

static conn_pool_t *pools;          /* by group index, per Apache child */
static int npools;

/*
 * Buffers of CLIENT_READ_MAX for request bodies, shared by the child's
 * threads and kept once made: there are as many as bodies were ever
 * relayed at once.  A malloc per request instead left freed ones behind
 * in each of glibc's per-thread arenas.
 */
typedef struct body_buf {
    struct body_buf *next;
} body_buf_t;

static apr_thread_mutex_t *body_bufs_lock;
static body_buf_t *body_bufs;

static void tether_client_child_init(apr_pool_t *p, server_rec *s)
{
    tether_global_conf_t *g = tether_config_global();
    int i;

    tether_malloc_tune();
    apr_thread_mutex_create(&body_bufs_lock, APR_THREAD_MUTEX_DEFAULT, p);
    npools = g->daemons->nelts;
    pools = apr_pcalloc(p, sizeof(*pools) * (npools ? npools : 1));
    for (i = 0; i < npools; i++) {
        apr_thread_mutex_create(&pools[i].lock, APR_THREAD_MUTEX_DEFAULT, p);
    }
}

static tether_conn_t *pool_get(tether_daemon_group_t *g)
{
    conn_pool_t *cp = &pools[g->index];
    tether_conn_t *c = NULL;

    apr_thread_mutex_lock(cp->lock);
    if (cp->nidle > 0) {
        c = cp->idle[cp->head];
        cp->head = (cp->head + 1) % cp->cap;
        cp->nidle--;
    }
    apr_thread_mutex_unlock(cp->lock);
    return c;
}

/* An idle connection, skipping those a daemon has hung up meanwhile (an
 * idle connection has nothing to read unless it is a GOODBYE or EOF). */
static tether_conn_t *pool_get_live(tether_daemon_group_t *g)
{
    tether_conn_t *c;

    while ((c = pool_get(g)) != NULL && tether_conn_pending(c)) {
        tether_conn_close(c);
    }
    return c;
}

static void pool_put(tether_daemon_group_t *g, tether_conn_t *c)
{
    conn_pool_t *cp = &pools[g->index];

    apr_thread_mutex_lock(cp->lock);
    if (cp->nidle == cp->cap) {
        int i, cap = cp->cap ? cp->cap * 2 : 16;
        tether_conn_t **idle = malloc(sizeof(*idle) * cap);

        if (!idle) {
            apr_thread_mutex_unlock(cp->lock);
            tether_conn_close(c);
            return;
        }
        for (i = 0; i < cp->nidle; i++) {
            idle[i] = cp->idle[(cp->head + i) % cp->cap];
        }
        free(cp->idle);
        cp->idle = idle;
        cp->head = 0;
        cp->cap = cap;
    }
    cp->idle[(cp->head + cp->nidle++) % cp->cap] = c;
    apr_thread_mutex_unlock(cp->lock);
}

static apr_interval_time_t socket_timeout(request_rec *r,
                                          tether_daemon_group_t *g)
{
    return g->socket_timeout ? g->socket_timeout : r->server->timeout;
}

/*
 * A new connection to the group's socket, retrying with back-off while
 * the daemons are not there or their backlog is full, up to
 * connect-timeout.
 */
static tether_conn_t *connect_daemon(request_rec *r,
                                     tether_daemon_group_t *g,
                                     apr_status_t *why)
{
    apr_time_t deadline = apr_time_now() + (g->connect_timeout
                                            ? g->connect_timeout
                                            : apr_time_from_sec(15));
    apr_interval_time_t pause = apr_time_from_msec(5);
    apr_status_t rv;
    int fd;

    for (;;) {
        rv = tether_conn_connect(g->socket_path, &fd);
        if (rv == APR_SUCCESS) {
            tether_conn_buffers(fd, g->send_buffer_size,
                                g->receive_buffer_size);
            tether_conn_t *c = tether_conn_new(fd, socket_timeout(r, g));

            if (!c) {
                close(fd);
                *why = APR_ENOMEM;
                return NULL;
            }
            /* Only the thread serving a request uses a connection. */
            tether_conn_blocking(c);
            return c;
        }
        *why = rv;
        if (apr_time_now() + pause > deadline
            || !(rv == ECONNREFUSED || rv == ENOENT || rv == EAGAIN
                 || rv == ECONNRESET)) {
            return NULL;
        }
        apr_sleep(pause);
        if (pause < apr_time_from_msec(500)) {
            pause *= 2;
        }
    }
}

/* REQ_HEAD: the environ strings as a pair list. */
static apr_status_t send_head(request_rec *r, tether_conn_t *c,
                              apr_table_t *env)
{
    const apr_array_header_t *arr = apr_table_elts(env);
    const apr_table_entry_t *elts = (const apr_table_entry_t *)arr->elts;
    tether_wire_pair_t *pairs;
    unsigned char *buf;
    apr_size_t size, n = 0;
    int i;

    pairs = apr_palloc(r->pool, sizeof(*pairs) * (arr->nelts + 4));
    /* Not environ: this module's log level for the request, which a
     * LogLevel in <Location>/<Directory> may set and the daemon, without
     * the request's per-directory configuration, cannot find itself. */
    pairs[n].key = ":log_level";
    pairs[n].key_len = 10;
    pairs[n].value = apr_itoa(r->pool, ap_get_request_module_loglevel(
                                           r, APLOG_MODULE_INDEX));
    pairs[n].value_len = (uint32_t)strlen(pairs[n].value);
    n++;
    /* Not environ: the script's mtime, which spares the daemon a stat
     * when it checks whether to reload the script. */
    if (r->finfo.filetype == APR_REG) {
        pairs[n].key = ":script_mtime";
        pairs[n].key_len = 13;
        pairs[n].value = apr_psprintf(r->pool, "%" APR_TIME_T_FMT,
                                      r->finfo.mtime);
        pairs[n].value_len = (uint32_t)strlen(pairs[n].value);
        n++;
    }
    /* Not environ: WSGIIgnoreActivity On, for inactivity-timeout. */
    if (tether_config_dir(r)->ignore_activity == 1) {
        pairs[n].key = ":ignore_activity";
        pairs[n].key_len = 16;
        pairs[n].value = "1";
        pairs[n].value_len = 1;
        n++;
    }
    for (i = 0; i < arr->nelts; i++) {
        if (!elts[i].key || !elts[i].val) {
            continue;
        }
        pairs[n].key = elts[i].key;
        pairs[n].key_len = (uint32_t)strlen(elts[i].key);
        pairs[n].value = elts[i].val;
        pairs[n].value_len = (uint32_t)strlen(elts[i].val);
        n++;
    }
    size = tether_wire_pairs_size(pairs, n);
    if (size == 0) {
        return APR_ENOSPC;
    }
    buf = apr_palloc(r->pool, size);
    tether_wire_pairs_encode(buf, size, pairs, n);
    return tether_conn_send(c, TETHER_WIRE_REQ_HEAD, 0, buf, size);
}

/*
 * Reads up to `want` body bytes into buf: the first filter call blocks,
 * the others take only what has already arrived, so a slow client's
 * first bytes are not held back.  Each call asks for at most one of
 * Apache's socket buckets, and the buckets are freed before the next: the
 * connection's bucket allocator keeps what it handed out, for as long as
 * the connection lives, so reading the whole frame in one call left some
 * 40 KiB behind on every keep-alive connection.  Returns the filter
 * chain's status; *got and *eos say what came before it.
 */
static apr_status_t read_client_body(request_rec *r, apr_bucket_brigade *bb,
                                     char *buf, apr_size_t want,
                                     apr_size_t *got, int *eos)
{
    apr_read_type_e block = APR_BLOCK_READ;

    *got = 0;
    while (*got < want && !*eos) {
        apr_size_t step = want - *got;
        apr_status_t rv;
        apr_bucket *e;

        if (step > APR_BUCKET_BUFF_SIZE) {
            step = APR_BUCKET_BUFF_SIZE;
        }
        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, block,
                            (apr_off_t)step);
        if (block == APR_NONBLOCK_READ && APR_STATUS_IS_EAGAIN(rv)) {
            apr_brigade_cleanup(bb);
            return APR_SUCCESS;
        }
        if (rv != APR_SUCCESS) {
            apr_brigade_cleanup(bb);
            return rv;
        }
        if (APR_BRIGADE_EMPTY(bb)) {
            /* Nothing yet (non-blocking), or a filter with nothing to
             * say: what we have goes now. */
            return APR_SUCCESS;
        }
        while (!APR_BRIGADE_EMPTY(bb)) {
            const char *data;
            apr_size_t len;

            e = APR_BRIGADE_FIRST(bb);
            if (APR_BUCKET_IS_EOS(e)) {
                *eos = 1;
            }
            else if (!APR_BUCKET_IS_METADATA(e)) {
                rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
                if (rv == APR_SUCCESS && len > want - *got) {
                    rv = APR_EGENERAL;  /* more than asked for */
                }
                if (rv != APR_SUCCESS) {
                    apr_brigade_cleanup(bb);
                    return rv;
                }
                memcpy(buf + *got, data, len);
                *got += len;
            }
            apr_bucket_delete(e);
        }
        block = APR_NONBLOCK_READ;
    }
    return APR_SUCCESS;
}

/*
 * Tells the daemon why the body could not be read (rv), in the terms
 * wsgi.input uses in embedded mode: the client closed the connection, it
 * stalled past Timeout, Apache refused the body and answered the client
 * itself (with r->status), or another error.
 */
static apr_status_t send_abort(request_rec *r, tether_conn_t *c,
                               apr_status_t rv)
{
    unsigned char why[TETHER_WIRE_REQ_ABORT_SIZE];
    uint32_t reason = TETHER_WIRE_ABORT_ERROR, detail = (uint32_t)rv;

    if (rv == AP_FILTER_ERROR && r->status >= 400 && r->status <= 599) {
        reason = TETHER_WIRE_ABORT_REJECTED;
        detail = (uint32_t)r->status;
    }
    else if (APR_STATUS_IS_TIMEUP(rv)) {
        reason = TETHER_WIRE_ABORT_TIMEOUT;
        detail = 0;
    }
    else if (APR_STATUS_IS_EOF(rv) || APR_STATUS_IS_INCOMPLETE(rv)) {
        reason = TETHER_WIRE_ABORT_CLOSED;
        detail = 0;
    }
    tether_wire_req_abort_encode(why, reason, detail);
    return tether_conn_send(c, TETHER_WIRE_REQ_ABORT, 0, why, sizeof(why));
}

static char *body_buf_get(void)
{
    body_buf_t *b;

    apr_thread_mutex_lock(body_bufs_lock);
    if ((b = body_bufs) != NULL) {
        body_bufs = b->next;
    }
    apr_thread_mutex_unlock(body_bufs_lock);
    return b ? (char *)b : malloc(CLIENT_READ_MAX);
}

static apr_status_t body_buf_put(void *buf)
{
    body_buf_t *b = buf;

    apr_thread_mutex_lock(body_bufs_lock);
    b->next = body_bufs;
    body_bufs = b;
    apr_thread_mutex_unlock(body_bufs_lock);
    return APR_SUCCESS;
}

/*
 * Answers BODY_WANT with exactly one frame: REQ_BODY with up to `want`
 * bytes from the client, REQ_END at the end of the body, or REQ_ABORT.
 * The bytes are gathered in *buf, taken on the first BODY_WANT and given
 * back with the request (a block of the request pool would stay with the
 * connection for its life).
 */
static apr_status_t send_body(request_rec *r, tether_conn_t *c,
                              apr_bucket_brigade *bb, char **buf,
                              apr_size_t want, int *body_done,
                              int *rejected)
{
    apr_size_t got = 0;
    apr_status_t rv;

    if (*body_done) {
        return tether_conn_send(c, TETHER_WIRE_REQ_END, 0, NULL, 0);
    }
    if (want > CLIENT_READ_MAX) {
        want = CLIENT_READ_MAX;
    }
    if (want == 0) {
        want = 1;
    }
    if (!*buf) {
        if (!(*buf = body_buf_get())) {
            *body_done = 1;
            return send_abort(r, c, APR_ENOMEM);
        }
        apr_pool_cleanup_register(r->pool, *buf, body_buf_put,
                                  apr_pool_cleanup_null);
    }
    rv = read_client_body(r, bb, *buf, want, &got, body_done);
    if (rv != APR_SUCCESS) {
        *body_done = 1;
        /* Apache refused the body (bad chunk, LimitRequestBody) and has
         * already answered the client. */
        *rejected = rv == AP_FILTER_ERROR;
        r->connection->keepalive = AP_CONN_CLOSE;
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, TETHER_LOGNO(0501)
                      "reading the request body for the daemon failed");
        return send_abort(r, c, rv);
    }
    if (got == 0) {
        /* No data: the body ended (the daemon learns it now). */
        *body_done = 1;
        return tether_conn_send(c, TETHER_WIRE_REQ_END, 0, NULL, 0);
    }
    /* With data, an end seen alongside is told on the next BODY_WANT. */
    return tether_conn_send(c, TETHER_WIRE_REQ_BODY, 0, *buf, got);
}

/* Applies RESP_HEAD to r.  Returns OK or an HTTP status. */
static int apply_head(request_rec *r, tether_daemon_group_t *g,
                      const unsigned char *buf, apr_size_t len)
{
    tether_wire_pair_t *pairs;
    apr_size_t n, i;
    const char *status_line;

    n = tether_wire_pairs_count(buf, len);
    if (n == 0 || n > TETHER_WIRE_MAX_PAIRS) {
        return HTTP_BAD_GATEWAY;
    }
    pairs = apr_palloc(r->pool, sizeof(*pairs) * n);
    if (tether_wire_pairs_decode(buf, len, pairs, n, &n) != TETHER_WIRE_OK
        || n == 0
        || pairs[0].key_len != 7 || memcmp(pairs[0].key, ":status", 7)) {
        return HTTP_BAD_GATEWAY;
    }
    status_line = apr_pstrmemdup(r->pool, pairs[0].value,
                                 pairs[0].value_len);
    r->status = atoi(status_line);
    if (r->status < 100 || r->status > 999) {
        return HTTP_BAD_GATEWAY;
    }
    r->status_line = status_line;
    for (i = 1; i < n; i++) {
        const char *k = apr_pstrmemdup(r->pool, pairs[i].key,
                                       pairs[i].key_len);
        const char *v = apr_pstrmemdup(r->pool, pairs[i].value,
                                       pairs[i].value_len);

        if (!strcasecmp(k, "Content-Type")) {
            ap_set_content_type(r, v);
        }
        else if (!strcasecmp(k, "Content-Length")) {
            apr_off_t cl;
            char *end;

            if (apr_strtoff(&cl, v, &end, 10) != APR_SUCCESS || *end
                || cl < 0) {
                return HTTP_BAD_GATEWAY;
            }
            ap_set_content_length(r, cl);
        }
        else {
            apr_table_addn(r->headers_out, k, v);
        }
    }
    return OK;
}

/* Cuts the client's response short so it can tell it is incomplete. */
static void abort_client(request_rec *r, apr_bucket_brigade *out)
{
    conn_rec *c = r->connection;

    /* Body already relayed goes out first: an error bucket in the same
     * brigade as the first data would become an error page instead. */
    if (!APR_BRIGADE_EMPTY(out)) {
        APR_BRIGADE_INSERT_TAIL(out, apr_bucket_flush_create(
                                    c->bucket_alloc));
        ap_pass_brigade(r->output_filters, out);
        apr_brigade_cleanup(out);
    }
    c->keepalive = AP_CONN_CLOSE;
    APR_BRIGADE_INSERT_TAIL(out, ap_bucket_error_create(HTTP_BAD_GATEWAY,
                                                        NULL, r->pool,
                                                        c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(out, apr_bucket_eos_create(c->bucket_alloc));
    ap_pass_brigade(r->output_filters, out);
}

static apr_status_t close_fd(void *data)
{
    close((int)(apr_uintptr_t)data);
    return APR_SUCCESS;
}

/* True while `pid` exists and is not a zombie waiting to be reaped. */
static int process_running(long pid)
{
    char path[64], buf[512], *s;
    apr_size_t n;
    FILE *f;

    apr_snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if (!(f = fopen(path, "r"))) {
        return 0;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    s = strrchr(buf, ')');
    return s && s[1] == ' ' && s[2] != 'Z' && s[2] != 'X';
}

/*
 * What became of the daemon process `pid` that just closed a connection:
 * "was killed by signal 9 (Killed)" or "exited with status 1", as the
 * Apache parent records it (it notices within about a second), or a plain
 * description when that is not known in time.
 */
static const char *daemon_fate(apr_pool_t *p, long pid)
{
    int tries, status, signalled;

    if (pid <= 0) {
        return "died or closed the connection";
    }
    for (tries = 0; tries < 150; tries++) {
        if (tether_daemon_death((pid_t)pid, &status, &signalled)) {
            if (signalled) {
                return apr_psprintf(p, "was killed by signal %d (%s)",
                                    status, strsignal(status));
            }
            return apr_psprintf(p, "exited with status %d", status);
        }
        if (tries > 5 && process_running(pid)) {
            /* Alive: it closed the connection itself. */
            return "closed the connection";
        }
        apr_sleep(apr_time_from_msec(10));
    }
    return "died (how is not known yet)";
}

/* What one exchange with the daemon ended in. */
typedef enum {
    X_DONE,             /* response relayed; connection reusable */
    X_DONE_CLOSE,       /* response relayed; close the connection */
    X_STATUS,           /* nothing sent to the client; return *status */
    X_RETRY,            /* reused connection was dead: try a new one */
    X_GOODBYE,          /* the daemon hung up without reading: resend */
    X_ABORTED           /* response cut short; connection unusable */
} exchange_t;

static const char *status_text(apr_status_t rv)
{
    static __thread char buf[120];

    return apr_strerror(rv, buf, sizeof(buf));
}

/* Passes the gathered response data on, with a flush. */
static apr_status_t relay_flush(request_rec *r, apr_bucket_brigade *out,
                                apr_size_t *batched)
{
    apr_status_t rv;

    APR_BRIGADE_INSERT_TAIL(out, apr_bucket_flush_create(
                                r->connection->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, out);
    apr_brigade_cleanup(out);
    *batched = 0;
    return rv;
}

/* Passes the gathered response data on when nothing more is waiting on
 * the daemon connection, or enough has been gathered. */
static apr_status_t relay(request_rec *r, tether_daemon_group_t *g,
                          tether_conn_t *c, apr_bucket_brigade *out,
                          apr_size_t *batched)
{
    apr_size_t limit = g->response_buffer_size > 0
                       ? (apr_size_t)g->response_buffer_size : RELAY_BATCH;

    if (!tether_conn_pending(c) || *batched >= limit) {
        return relay_flush(r, out, batched);
    }
    return APR_SUCCESS;
}

/* The client went away while its response was relayed: the daemon is
 * mid-response, so the connection to it cannot be reused. */
static exchange_t client_gone(request_rec *r, tether_daemon_group_t *g,
                              apr_status_t rv)
{
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, TETHER_LOGNO(0504)
                  "client gone while relaying the response of daemon group "
                  "'%s'", g->name);
    return X_ABORTED;
}

static exchange_t exchange(request_rec *r, tether_request_t *req,
                           tether_daemon_group_t *g, tether_conn_t *c,
                           int reused, int *status)
{
    conn_rec *cc = r->connection;
    apr_bucket_alloc_t *ba = cc->bucket_alloc;
    apr_bucket_brigade *in = apr_brigade_create(r->pool, ba);
    apr_bucket_brigade *out = apr_brigade_create(r->pool, ba);
    apr_size_t batched = 0;
    int body_done = 0, body_asked = 0, head_seen = 0, rejected = 0;
    int unsent = 0;
    char *body_buf = NULL;
    tether_wire_header_t h;
    apr_status_t rv;

    rv = send_head(r, c, req->environ);
    if (rv == APR_ENOSPC) {
        /* Nothing was sent: the connection stays usable. */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0513) "The request's environ does not "
                      "fit in one frame to daemon group '%s' (at most %u "
                      "variables and %u bytes): lower LimitRequestFields "
                      "or LimitRequestFieldSize", g->name,
                      TETHER_WIRE_MAX_PAIRS, TETHER_WIRE_MAX_PAYLOAD);
        *status = HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE;
        return X_STATUS;
    }
    if (rv == EPIPE || rv == APR_ECONNRESET) {
        /* The daemon may have hung up with a GOODBYE: read it. */
        unsent = 1;
        rv = APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        rv = tether_conn_wait(c);
    }
    for (;;) {
        if (rv == APR_SUCCESS) {
            rv = tether_conn_read_header(c, &h);
        }
        if (rv != APR_SUCCESS) {
            break;
        }
        if (rejected && h.type != TETHER_WIRE_HELLO
            && h.type != TETHER_WIRE_BODY_WANT) {
            /* Apache answered already: the daemon's response goes
             * nowhere, but is read to keep the connection in step. */
            int fd;

            rv = tether_conn_skip(c, h.length);
            while ((fd = tether_conn_take_fd(c)) >= 0) {
                close(fd);
            }
            if (rv != APR_SUCCESS) {
                break;
            }
            if (h.type == TETHER_WIRE_RESP_END
                || h.type == TETHER_WIRE_RESP_ERROR
                || h.type == TETHER_WIRE_RESP_ABORT) {
                return (h.flags & TETHER_WIRE_FLAG_CLOSE) ? X_DONE_CLOSE
                                                          : X_DONE;
            }
            continue;
        }
        switch (h.type) {
        case TETHER_WIRE_GOODBYE:
            /* The daemon is going away and did not read the request. */
            if (head_seen || body_asked) {
                rv = APR_EGENERAL;
                break;
            }
            return X_GOODBYE;
        case TETHER_WIRE_HELLO: {
            unsigned char raw[TETHER_WIRE_HELLO_SIZE];
            uint32_t pid = 0;

            rv = tether_conn_read(c, raw, sizeof(raw));
            if (rv == APR_SUCCESS
                && tether_wire_hello_decode(raw, sizeof(raw), &pid)
                   == TETHER_WIRE_OK) {
                c->peer_pid = (long)pid;
            }
            continue;
        }
        case TETHER_WIRE_BODY_WANT: {
            unsigned char raw[TETHER_WIRE_BODY_WANT_SIZE];
            uint32_t want = 0;

            body_asked = 1;
            rv = tether_conn_read(c, raw, sizeof(raw));
            if (rv == APR_SUCCESS
                && tether_wire_body_want_decode(raw, sizeof(raw), &want)
                   != TETHER_WIRE_OK) {
                rv = APR_EGENERAL;
            }
            /* What the application wrote before it asked for more body
             * goes to the client first: it may be what the client waits
             * for before it sends more. */
            if (rv == APR_SUCCESS && !APR_BRIGADE_EMPTY(out)
                && (rv = relay_flush(r, out, &batched)) != APR_SUCCESS) {
                return client_gone(r, g, rv);
            }
            if (rv == APR_SUCCESS) {
                rv = send_body(r, c, in, &body_buf, want, &body_done,
                               &rejected);
            }
            continue;
        }
        case TETHER_WIRE_RESP_HEAD: {
            unsigned char *buf;
            int st;

            if (head_seen) {
                rv = APR_EGENERAL;
                break;
            }
            if (g->header_buffer_size > 0
                && h.length > (uint32_t)g->header_buffer_size) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              TETHER_LOGNO(0502) "Response headers of %u "
                              "bytes from daemon group '%s' (socket %s, "
                              "pid %ld) exceed header-buffer-size=%d; raise "
                              "that option of WSGIDaemonProcess", h.length,
                              g->name, g->socket_path, c->peer_pid,
                              g->header_buffer_size);
                *status = HTTP_BAD_GATEWAY;
                return X_ABORTED;
            }
            buf = apr_palloc(r->pool, h.length ? h.length : 1);
            if ((rv = tether_conn_read(c, buf, h.length)) != APR_SUCCESS) {
                break;
            }
            if ((st = apply_head(r, g, buf, h.length)) != OK) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              TETHER_LOGNO(0503) "Malformed response head "
                              "from daemon group '%s' (socket %s)",
                              g->name, g->socket_path);
                *status = st;
                return X_ABORTED;
            }
            head_seen = 1;
            continue;
        }
        case TETHER_WIRE_RESP_BODY: {
            char *data;
            apr_bucket *e;
            apr_size_t left;

            if (!head_seen) {
                rv = APR_EGENERAL;
                break;
            }
            /* A frame can be as large as the application's item (up to
             * 16 MiB): it is read and passed on in pieces, so Apache
             * never holds more than a piece and a batch of it. */
            for (left = h.length; left > 0 && rv == APR_SUCCESS; ) {
                apr_size_t n = left < BODY_PIECE ? left : BODY_PIECE;

                /* malloc, not apr_bucket_alloc: the bucket allocator
                 * keeps freed 64 KiB blocks for its connection, so each
                 * keep-alive connection would hold a piece for good. */
                if (!(data = malloc(n))) {
                    rv = APR_ENOMEM;
                    break;
                }
                if ((rv = tether_conn_read(c, data, n)) != APR_SUCCESS) {
                    free(data);
                    break;
                }
                e = apr_bucket_heap_create(data, n, free, ba);
                APR_BRIGADE_INSERT_TAIL(out, e);
                batched += n;
                left -= n;
                if ((rv = relay(r, g, c, out, &batched)) != APR_SUCCESS) {
                    return client_gone(r, g, rv);
                }
            }
            if (rv != APR_SUCCESS) {
                break;
            }
            continue;
        }
        case TETHER_WIRE_RESP_FILE: {
            unsigned char raw[TETHER_WIRE_RESP_FILE_SIZE];
            uint64_t off, len;
            apr_file_t *file;
            int fd;

            if (!head_seen
                || (rv = tether_conn_read(c, raw, sizeof(raw)))
                   != APR_SUCCESS
                || tether_wire_resp_file_decode(raw, sizeof(raw), &off,
                                                &len) != TETHER_WIRE_OK
                || (fd = tether_conn_take_fd(c)) < 0) {
                rv = rv == APR_SUCCESS ? APR_EGENERAL : rv;
                break;
            }
            apr_pool_cleanup_register(r->pool, (void *)(apr_uintptr_t)fd,
                                      close_fd, apr_pool_cleanup_null);
            apr_os_file_put(&file, &fd, APR_FOPEN_READ
                            | (tether_dispatch_sendfile(r, 1)
                               ? APR_FOPEN_SENDFILE_ENABLED : 0), r->pool);
            apr_brigade_insert_file(out, file, (apr_off_t)off,
                                    (apr_off_t)len, r->pool);
            if ((rv = relay(r, g, c, out, &batched)) != APR_SUCCESS) {
                return X_ABORTED;
            }
            continue;
        }
        case TETHER_WIRE_RESP_END:
            if (!head_seen) {
                rv = APR_EGENERAL;
                break;
            }
            APR_BRIGADE_INSERT_TAIL(out, apr_bucket_eos_create(ba));
            ap_pass_brigade(r->output_filters, out);
            return (h.flags & TETHER_WIRE_FLAG_CLOSE) ? X_DONE_CLOSE
                                                      : X_DONE;
        case TETHER_WIRE_RESP_ABORT: {
            char *why = apr_palloc(r->pool, h.length + 1);

            if ((rv = tether_conn_read(c, why, h.length)) != APR_SUCCESS) {
                break;
            }
            why[h.length] = '\0';
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          TETHER_LOGNO(0505) "daemon group '%s' cut its "
                          "response short (%s); closing the client "
                          "connection", g->name, why);
            if (!head_seen) {
                *status = HTTP_BAD_GATEWAY;
                return (h.flags & TETHER_WIRE_FLAG_CLOSE) ? X_ABORTED
                                                          : X_STATUS;
            }
            abort_client(r, out);
            return (h.flags & TETHER_WIRE_FLAG_CLOSE) ? X_ABORTED
                                                      : X_DONE;
        }
        case TETHER_WIRE_RESP_ERROR: {
            unsigned char *buf = apr_palloc(r->pool, h.length);
            uint16_t st;
            const char *msg;
            apr_size_t mlen;

            if ((rv = tether_conn_read(c, buf, h.length)) != APR_SUCCESS) {
                break;
            }
            if (head_seen || tether_wire_resp_error_decode(
                    buf, h.length, &st, &msg, &mlen) != TETHER_WIRE_OK) {
                rv = APR_EGENERAL;
                break;
            }
            if (mlen) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              TETHER_LOGNO(0506) "daemon group '%s': %.*s",
                              g->name, (int)mlen, msg);
            }
            *status = st;
            return (h.flags & TETHER_WIRE_FLAG_CLOSE) ? X_ABORTED
                                                      : X_STATUS;
        }
        default:
            rv = APR_EGENERAL;
            break;
        }
        break;
    }

    /*
     * The connection failed.  A reused connection that the daemon closed
     * without reading the request (it was idle when the daemon went, or
     * the daemon dropped it after its last response) is tried again: the
     * request could not be written (EPIPE), or the daemon closed it with
     * the request unread (the kernel reports ECONNRESET, where a frame cut
     * short is a clean EOF first).  A clean EOF after the request went
     * out means the daemon read it, and may have run it: a daemon that
     * dies or is cut off by graceful-timeout in the middle of a request
     * must not have that request run again elsewhere.
     */
    if (!head_seen && reused && !body_asked
        && ((unsent && (rv == APR_EOF || rv == APR_ECONNRESET
                        || rv == EPIPE))
            || (rv == APR_ECONNRESET && !c->peer_closed))) {
        return X_RETRY;
    }
    if (head_seen) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      TETHER_LOGNO(0507) "daemon group '%s' (socket %s, "
                      "pid %ld) failed in the middle of the response: %s",
                      g->name, g->socket_path, c->peer_pid,
                      APR_STATUS_IS_TIMEUP(rv) ? "socket-timeout expired"
                      : rv == APR_EGENERAL ? "protocol error"
                      : apr_pstrcat(r->pool, "the daemon process ",
                                    daemon_fate(r->pool, c->peer_pid),
                                    NULL));
        abort_client(r, out);
        return X_ABORTED;
    }
    if (APR_STATUS_IS_TIMEUP(rv)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0508) "Timeout waiting for the response "
                      "of daemon group '%s' (socket %s, pid %ld): "
                      "socket-timeout of %" APR_TIME_T_FMT "s expired",
                      g->name, g->socket_path, c->peer_pid,
                      apr_time_sec(socket_timeout(r, g)));
        *status = HTTP_GATEWAY_TIME_OUT;
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      TETHER_LOGNO(0509) "Daemon process of group '%s' "
                      "(socket %s, pid %ld) %s before sending response "
                      "headers", g->name, g->socket_path, c->peer_pid,
                      rv == APR_EGENERAL ? "broke the protocol"
                      : daemon_fate(r->pool, c->peer_pid));
        *status = HTTP_BAD_GATEWAY;
    }
    return X_ABORTED;
}

/*
 * response-socket-timeout: how long each write of the response to the
 * client may wait, instead of Apache's Timeout, while relaying.
 */
static void client_timeout(request_rec *r, tether_daemon_group_t *g, int on)
{
    apr_socket_t *csd;

    if (!g->response_socket_timeout
        || !(csd = ap_get_conn_socket(r->connection))) {
        return;
    }
    apr_socket_timeout_set(csd, on ? g->response_socket_timeout
                                   : r->server->timeout);
}

/* How often one request moves on after a GOODBYE: the daemons of a group
 * can all be recycling at once. */
#define GOODBYE_RETRIES 8

int tether_client_run(request_rec *r, tether_request_t *req,
                      tether_daemon_group_t *g)
{
    int status = OK, dead_conns = 0, goodbyes = 0;
    exchange_t outcome;

    if (!g->socket_path) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0510) "Daemon group '%s' has no socket "
                      "(its processes were not started)", g->name);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    apr_table_setn(req->environ, "mod_wsgi.queue_start",
                   apr_psprintf(r->pool, "%" APR_TIME_T_FMT,
                                apr_time_now()));
    for (;;) {
        tether_conn_t *c = dead_conns ? NULL
                           : goodbyes ? pool_get_live(g) : pool_get(g);
        int reused = c != NULL;
        apr_status_t why = APR_SUCCESS;

        if (!c && !(c = connect_daemon(r, g, &why))) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, why, r,
                          TETHER_LOGNO(0511) "Unable to connect to daemon "
                          "group '%s' on socket %s within connect-timeout "
                          "(%s)", g->name, g->socket_path,
                          why == EAGAIN ? "listen backlog full"
                          : status_text(why));
            return HTTP_SERVICE_UNAVAILABLE;
        }
        tether_conn_set_timeout(c, socket_timeout(r, g));
        client_timeout(r, g, 1);
        status = OK;
        outcome = exchange(r, req, g, c, reused && !dead_conns, &status);
        client_timeout(r, g, 0);
        switch (outcome) {
        case X_DONE:
            pool_put(g, c);
            return OK;
        case X_STATUS:
            pool_put(g, c);
            return status;
        case X_DONE_CLOSE:
            tether_conn_close(c);
            return OK;
        case X_RETRY:
            tether_conn_close(c);
            /* A connection that a daemon closed while idle: it never saw
             * the request.  Its other idle ones are likely dead too, so
             * from now on only new connections. */
            dead_conns = 1;
            while ((c = pool_get(g)) != NULL) {
                tether_conn_close(c);
            }
            continue;
        case X_GOODBYE:
            tether_conn_close(c);
            if (++goodbyes <= GOODBYE_RETRIES) {
                continue;
            }
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          TETHER_LOGNO(0512) "Daemon processes of group "
                          "'%s' (socket %s) hung up %d connections in a "
                          "row without reading the request; giving up",
                          g->name, g->socket_path, goodbyes);
            return HTTP_SERVICE_UNAVAILABLE;
        case X_ABORTED:
            tether_conn_close(c);
            return status == OK ? OK : status;
        }
    }
}

void tether_client_register_hooks(apr_pool_t *p)
{
    ap_hook_child_init(tether_client_child_init, NULL, NULL,
                       APR_HOOK_MIDDLE);
}
