/*
 * Daemon mode, daemon side: the request server inside a daemon process.
 *
 * The main thread polls (epoll) the group's listening socket and the idle
 * persistent connections from Apache children; a connection with a request
 * waiting goes on a queue served by `threads` worker threads.  A worker
 * reads REQ_HEAD, builds a small request_rec whose input and output filters
 * speak the wire protocol, and runs the application through the same
 * adapter as embedded mode.  The main thread also enforces the recycling
 * limits (maximum-requests, restart-interval, inactivity-timeout,
 * cpu-time-limit, memory-limit), request-timeout, queue-timeout and
 * deadlock-timeout, and turns SIGUSR1 into a graceful stop.
 */
#include "tether_private.h"
#include "tether_conn.h"
#include "tether_metrics.h"

#include "apr_buckets.h"
#include "apr_portable.h"
#include "apr_thread_cond.h"
#include "apr_thread_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Exit status of a daemon whose GIL deadlocked (a crash: respawned). */
#define TETHER_EXIT_DEADLOCK 71

/* Body bytes the daemon asks for per BODY_WANT, at most. */
#define WANT_MAX (256 * 1024)

typedef enum { DC_IDLE, DC_BUSY, DC_SHUT } dconn_state_e;

typedef struct dconn {
    tether_conn_t *c;
    dconn_state_e state;
    struct dconn *prev, *next;      /* all connections */
} dconn_t;

/* A request being served, as the monitor sees it. */
typedef struct {
    apr_thread_mutex_t *lock;       /* serializes writes on the socket */
    tether_conn_t *c;
    apr_time_t started;             /* 0 when the worker is idle */
    unsigned long thread_id;        /* Python's id of the worker thread */
    int head_sent;
    int done;                       /* RESP_END/ABORT/ERROR sent */
    int timed_out;                  /* the monitor answered for it */
    apr_status_t error;             /* writing failed: peer gone */
    int body_eof;
    apr_status_t body_error;
    const char *what;               /* for log lines */
    int ignore_activity;            /* WSGIIgnoreActivity On: the request
                                     * leaves last_activity alone */
} wreq_t;

typedef struct {
    server_rec *s;
    tether_daemon_group_t *g;
    apr_pool_t *pool;
    int listen_fd;
    int epfd;
    int sigfd;
    int slot;
    uid_t peer_uid;                 /* owner of the socket file */

    apr_thread_mutex_t *lock;       /* connection list, counters */
    int cepfd;                      /* connections; the workers wait on it */
    dconn_t *conns;
    int nconns;                     /* how many; published in the shm */
    int accept_paused;              /* leaving new connections to siblings */
    apr_time_t accept_resume;
    wreq_t *workers;                /* one per thread */
    int active;                     /* requests being served */
    apr_int64_t served;
    apr_time_t started;
    apr_time_t last_activity;
    volatile apr_time_t gil_tick;   /* last time the GIL could be taken */
    int app_loaded;                 /* a script loaded in this process */
    int load_failed;                /* and one failed to */
    int stopping;                   /* 0, or why we stop */
    const char *stop_reason;
    apr_time_t stop_deadline;
    const char *stop_timeout_name;  /* the option that set stop_deadline */
    apr_interval_time_t stop_timeout;
} dserver_t;

static dserver_t ds;

static apr_interval_time_t io_timeout(void)
{
    return ds.g->socket_timeout ? ds.g->socket_timeout : ds.s->timeout;
}

/* ------------------------------------------------------------------------
 * Wire filters: the request_rec's view of the connection
 */

static apr_status_t wreq_send(wreq_t *w, int type, int flags,
                              const void *payload, apr_size_t len,
                              int queue_only)
{
    apr_status_t rv;

    apr_thread_mutex_lock(w->lock);
    if (w->timed_out || w->error) {
        rv = w->error ? w->error : APR_TIMEUP;
    }
    else {
        rv = queue_only ? tether_conn_queue(w->c, type, flags, payload, len)
                        : tether_conn_send(w->c, type, flags, payload, len);
        if (rv != APR_SUCCESS) {
            w->error = rv;
        }
    }
    apr_thread_mutex_unlock(w->lock);
    return rv;
}

static apr_status_t wreq_flush(wreq_t *w)
{
    apr_status_t rv;

    apr_thread_mutex_lock(w->lock);
    rv = w->error ? w->error : w->timed_out ? APR_TIMEUP
         : tether_conn_flush(w->c);
    if (rv != APR_SUCCESS && !w->error) {
        w->error = rv;
    }
    apr_thread_mutex_unlock(w->lock);
    return rv;
}

/* RESP_HEAD from what the adapter put on r. */
static apr_status_t send_head(request_rec *r, wreq_t *w)
{
    const apr_array_header_t *arrs[2];
    tether_wire_pair_t *pairs;
    apr_size_t n = 0, size;
    unsigned char *buf;
    const char *status;
    int i, k, total;

    arrs[0] = apr_table_elts(r->headers_out);
    arrs[1] = apr_table_elts(r->err_headers_out);
    total = arrs[0]->nelts + arrs[1]->nelts + 2;
    pairs = apr_palloc(r->pool, sizeof(*pairs) * total);
    status = r->status_line ? r->status_line
             : apr_psprintf(r->pool, "%d", r->status);
    pairs[n].key = ":status";
    pairs[n].key_len = 7;
    pairs[n].value = status;
    pairs[n++].value_len = (uint32_t)strlen(status);
    if (r->content_type) {
        pairs[n].key = "Content-Type";
        pairs[n].key_len = 12;
        pairs[n].value = r->content_type;
        pairs[n++].value_len = (uint32_t)strlen(r->content_type);
    }
    for (k = 0; k < 2; k++) {
        const apr_table_entry_t *e = (const apr_table_entry_t *)
                                     arrs[k]->elts;

        for (i = 0; i < arrs[k]->nelts; i++) {
            if (!e[i].key || !e[i].val) {
                continue;
            }
            pairs[n].key = e[i].key;
            pairs[n].key_len = (uint32_t)strlen(e[i].key);
            pairs[n].value = e[i].val;
            pairs[n++].value_len = (uint32_t)strlen(e[i].val);
        }
    }
    size = tether_wire_pairs_size(pairs, n);
    if (!size) {
        return APR_ENOSPC;
    }
    buf = apr_palloc(r->pool, size);
    tether_wire_pairs_encode(buf, size, pairs, n);
    w->head_sent = 1;
    return wreq_send(w, TETHER_WIRE_RESP_HEAD, 0, buf, size, 1);
}

/* Once recycling, every response tells the Apache side to hang up. */
static int close_flag(void)
{
    return ds.stopping ? TETHER_WIRE_FLAG_CLOSE : 0;
}

/*
 * When the first brigade holds the whole body (it ends with EOS and has no
 * flush before it), its length is the Content-Length, as Apache's
 * content-length filter finds it in embedded mode.  The Apache side
 * relays the body in pieces, so it has to be said in the head.
 */
static void whole_body_length(request_rec *r, apr_bucket_brigade *bb)
{
    apr_off_t total = 0;
    apr_bucket *e;

    if (apr_table_get(r->headers_out, "Content-Length")
        || r->status < 200 || r->status == HTTP_NO_CONTENT
        || r->status == HTTP_NOT_MODIFIED) {
        return;
    }
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        if (APR_BUCKET_IS_EOS(e)) {
            apr_table_setn(r->headers_out, "Content-Length",
                           apr_off_t_toa(r->pool, total));
            return;
        }
        if (APR_BUCKET_IS_FLUSH(e) || AP_BUCKET_IS_ERROR(e)
            || e->length == (apr_size_t)-1) {
            return;
        }
        total += (apr_off_t)e->length;
    }
}

static apr_status_t wire_out(ap_filter_t *f, apr_bucket_brigade *bb)
{
    wreq_t *w = f->ctx;
    request_rec *r = f->r;
    apr_status_t rv = APR_SUCCESS;
    apr_bucket *e;

    if (!w->head_sent) {
        whole_body_length(r, bb);
    }
    for (e = APR_BRIGADE_FIRST(bb);
         e != APR_BRIGADE_SENTINEL(bb) && rv == APR_SUCCESS && !w->done;
         e = APR_BUCKET_NEXT(e)) {
        if (AP_BUCKET_IS_ERROR(e)) {
            static const char why[] = "the application failed after its "
                                      "response started";

            w->done = 1;
            rv = wreq_send(w, TETHER_WIRE_RESP_ABORT, close_flag(), why,
                           sizeof(why) - 1, 1);
            break;
        }
        if (!w->head_sent && !APR_BUCKET_IS_FLUSH(e)) {
            if ((rv = send_head(r, w)) != APR_SUCCESS) {
                break;
            }
        }
        if (APR_BUCKET_IS_EOS(e)) {
            w->done = 1;
            rv = wreq_send(w, TETHER_WIRE_RESP_END, close_flag(), NULL, 0,
                           1);
        }
        else if (APR_BUCKET_IS_FLUSH(e)) {
            rv = wreq_flush(w);
        }
        else if (APR_BUCKET_IS_FILE(e)) {
            apr_bucket_file *fb = e->data;
            unsigned char raw[TETHER_WIRE_RESP_FILE_SIZE];
            apr_os_file_t fd;

            apr_os_file_get(&fd, fb->fd);
            tether_wire_resp_file_encode(raw, (uint64_t)e->start,
                                         (uint64_t)e->length);
            apr_thread_mutex_lock(w->lock);
            rv = w->error ? w->error : w->timed_out ? APR_TIMEUP
                 : tether_conn_send_fd(w->c, TETHER_WIRE_RESP_FILE, 0, raw,
                                       sizeof(raw), fd);
            if (rv != APR_SUCCESS && !w->error) {
                w->error = rv;
            }
            apr_thread_mutex_unlock(w->lock);
        }
        else if (!APR_BUCKET_IS_METADATA(e)) {
            const char *data;
            apr_size_t len;

            rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
            if (rv == APR_SUCCESS && len) {
                rv = wreq_send(w, TETHER_WIRE_RESP_BODY, 0, data, len, 1);
            }
        }
    }
    if (rv == APR_SUCCESS && w->done) {
        rv = wreq_flush(w);
    }
    apr_brigade_cleanup(bb);
    return rv;
}

/*
 * The status wsgi.input reports for a REQ_ABORT: the one Apache's side
 * read, or one that wsgi.input words the same way, as in embedded mode.
 */
static apr_status_t abort_status(request_rec *r, uint32_t reason,
                                 uint32_t detail)
{
    switch (reason) {
    case TETHER_WIRE_ABORT_CLOSED:
        return APR_INCOMPLETE;
    case TETHER_WIRE_ABORT_TIMEOUT:
        return APR_TIMEUP;
    case TETHER_WIRE_ABORT_REJECTED:
        /* Apache has answered the client: the application's response
         * goes nowhere, and its error names the status that was sent. */
        r->status = (int)detail;
        return AP_FILTER_ERROR;
    default:
        return detail && detail != (uint32_t)AP_FILTER_ERROR
               ? (apr_status_t)detail : APR_EGENERAL;
    }
}

static apr_status_t wire_in(ap_filter_t *f, apr_bucket_brigade *bb,
                            ap_input_mode_t mode, apr_read_type_e block,
                            apr_off_t readbytes)
{
    wreq_t *w = f->ctx;
    apr_bucket_alloc_t *ba = f->c->bucket_alloc;
    unsigned char raw[TETHER_WIRE_BODY_WANT_SIZE];
    tether_wire_header_t h;
    apr_status_t rv;
    char *data;

    if (w->body_error) {
        return w->body_error;
    }
    if (w->body_eof) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(ba));
        return APR_SUCCESS;
    }
    if (readbytes <= 0 || readbytes > WANT_MAX) {
        readbytes = WANT_MAX;
    }
    tether_wire_body_want_encode(raw, (uint32_t)readbytes);
    if ((rv = wreq_send(w, TETHER_WIRE_BODY_WANT, 0, raw, sizeof(raw), 0))
            != APR_SUCCESS) {
        return w->body_error = rv;
    }
    /*
     * Exactly one answer per BODY_WANT.  Apache's side answers within its
     * own client timeout (REQ_ABORT when the client stalls), and that is
     * usually the same Timeout as socket-timeout here: wait twice as long
     * so that the client's stall, not the daemon, decides the outcome.
     */
    {
        apr_interval_time_t t = w->c->timeout;

        w->c->timeout = t > 0 ? 2 * t : t;
        rv = tether_conn_wait(w->c);
        w->c->timeout = t;
    }
    if (rv != APR_SUCCESS
        || (rv = tether_conn_read_header(w->c, &h)) != APR_SUCCESS) {
        return w->body_error = rv == APR_EOF ? APR_ECONNABORTED : rv;
    }
    switch (h.type) {
    case TETHER_WIRE_REQ_END:
        w->body_eof = 1;
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(ba));
        return APR_SUCCESS;
    case TETHER_WIRE_REQ_ABORT: {
        unsigned char why[TETHER_WIRE_REQ_ABORT_SIZE];
        uint32_t reason, detail;

        if ((rv = tether_conn_read(w->c, why, sizeof(why))) != APR_SUCCESS) {
            return w->body_error = rv;
        }
        if (tether_wire_req_abort_decode(why, sizeof(why), &reason, &detail)
                != TETHER_WIRE_OK) {
            break;
        }
        return w->body_error = abort_status(f->r, reason, detail);
    }
    case TETHER_WIRE_REQ_BODY:
        if (h.length == 0 || h.length > (uint32_t)readbytes) {
            break;
        }
        /* malloc, not apr_bucket_alloc: the connection's bucket
         * allocator would keep the freed block for as long as Apache's
         * child keeps the connection, one per connection. */
        if (!(data = malloc(h.length))) {
            return w->body_error = APR_ENOMEM;
        }
        if ((rv = tether_conn_read(w->c, data, h.length)) != APR_SUCCESS) {
            free(data);
            return w->body_error = rv;
        }
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(
                                    data, h.length, free, ba));
        return APR_SUCCESS;
    default:
        break;
    }
    w->error = APR_EGENERAL;
    return w->body_error = APR_EGENERAL;
}

static ap_filter_rec_t wire_out_rec = {
    .name = "TETHER_WIRE_OUT",
    .filter_func.out_func = wire_out,
    .ftype = AP_FTYPE_NETWORK,
};

static ap_filter_rec_t wire_in_rec = {
    .name = "TETHER_WIRE_IN",
    .filter_func.in_func = wire_in,
    .ftype = AP_FTYPE_NETWORK,
};

/* ------------------------------------------------------------------------
 * A request_rec for the adapter, made from the environ Apache sent
 */

/* The entries of the request head the daemon itself needs, found while
 * the head is decoded (the environ has some 70 entries). */
typedef struct {
    const char *remote_addr, *remote_port, *server_addr, *server_port;
    const char *method, *protocol, *uri, *server_name;
    const char *content_length, *transfer_encoding, *request_id;
    const char *queue_start, *script_file, *script_name, *path_info;
    const char *application_group, *callable_object, *script_reloading;
    const char *script_mtime;       /* ":script_mtime", not environ */
    const char *log_level;          /* ":log_level", not environ */
    const char *ignore_activity;    /* ":ignore_activity", not environ */
} head_t;

#define HEAD_FIELD(name, field) \
    { name, sizeof(name) - 1, APR_OFFSETOF(head_t, field) }

static const struct {
    const char *name;
    apr_size_t len;
    apr_size_t offset;
} head_fields[] = {
    HEAD_FIELD("REMOTE_ADDR", remote_addr),
    HEAD_FIELD("REMOTE_PORT", remote_port),
    HEAD_FIELD("SERVER_ADDR", server_addr),
    HEAD_FIELD("SERVER_PORT", server_port),
    HEAD_FIELD("REQUEST_METHOD", method),
    HEAD_FIELD("SERVER_PROTOCOL", protocol),
    HEAD_FIELD("REQUEST_URI", uri),
    HEAD_FIELD("SERVER_NAME", server_name),
    HEAD_FIELD("CONTENT_LENGTH", content_length),
    HEAD_FIELD("HTTP_TRANSFER_ENCODING", transfer_encoding),
    HEAD_FIELD("tether.request_id", request_id),
    HEAD_FIELD("mod_wsgi.queue_start", queue_start),
    HEAD_FIELD("tether.script_file", script_file),
    HEAD_FIELD("SCRIPT_NAME", script_name),
    HEAD_FIELD("PATH_INFO", path_info),
    HEAD_FIELD("tether.application_group", application_group),
    HEAD_FIELD("tether.callable_object", callable_object),
    HEAD_FIELD("tether.script_reloading", script_reloading),
    HEAD_FIELD(":script_mtime", script_mtime),
    HEAD_FIELD(":log_level", log_level),
    HEAD_FIELD(":ignore_activity", ignore_activity),
};

static void head_note(head_t *head, const char *key, apr_size_t klen,
                      const char *value)
{
    apr_size_t i;

    for (i = 0; i < sizeof(head_fields) / sizeof(head_fields[0]); i++) {
        if (head_fields[i].len == klen
            && !memcmp(head_fields[i].name, key, klen)) {
            *(const char **)((char *)head + head_fields[i].offset) = value;
            return;
        }
    }
}

/*
 * The address Apache sent as text.  Filled by hand from inet_pton: APR's
 * resolver (getaddrinfo) costs more than the rest of a small request.
 */
static apr_sockaddr_t *addr_of(apr_pool_t *p, const char *ip,
                               const char *port)
{
    apr_sockaddr_t *sa = apr_pcalloc(p, sizeof(*sa));
    apr_port_t num = (apr_port_t)(port ? atoi(port) : 0);

    sa->pool = p;
    sa->hostname = (char *)(ip ? ip : "0.0.0.0");
    sa->port = num;
#if APR_HAVE_IPV6
    if (ip && inet_pton(AF_INET6, ip, &sa->sa.sin6.sin6_addr) == 1) {
        sa->family = sa->sa.sin6.sin6_family = AF_INET6;
        sa->sa.sin6.sin6_port = htons(num);
        sa->salen = sizeof(struct sockaddr_in6);
        sa->ipaddr_len = sizeof(struct in6_addr);
        sa->addr_str_len = INET6_ADDRSTRLEN;
        sa->ipaddr_ptr = &sa->sa.sin6.sin6_addr;
        return sa;
    }
#endif
    if (!ip || inet_pton(AF_INET, ip, &sa->sa.sin.sin_addr) != 1) {
        sa->sa.sin.sin_addr.s_addr = htonl(INADDR_ANY);
    }
    sa->family = sa->sa.sin.sin_family = AF_INET;
    sa->sa.sin.sin_port = htons(num);
    sa->salen = sizeof(struct sockaddr_in);
    sa->ipaddr_len = sizeof(struct in_addr);
    sa->addr_str_len = INET_ADDRSTRLEN;
    sa->ipaddr_ptr = &sa->sa.sin.sin_addr;
    return sa;
}

static request_rec *make_request(apr_pool_t *p, apr_bucket_alloc_t *ba,
                                 apr_table_t *env, const head_t *head,
                                 wreq_t *w)
{
    conn_rec *c = apr_pcalloc(p, sizeof(*c));
    request_rec *r = apr_pcalloc(p, sizeof(*r));
    server_rec *s = ds.g->server ? ds.g->server : ds.s;
    ap_filter_t *in = apr_pcalloc(p, sizeof(*in));
    ap_filter_t *out = apr_pcalloc(p, sizeof(*out));

    c->pool = p;
    c->base_server = s;
    c->bucket_alloc = ba;
    c->conn_config = ap_create_conn_config(p);
    c->notes = apr_table_make(p, 1);
    c->client_ip = (char *)head->remote_addr;
    c->client_addr = addr_of(p, c->client_ip, head->remote_port);
    c->local_ip = (char *)head->server_addr;
    c->local_addr = addr_of(p, c->local_ip, head->server_port);
    c->keepalive = AP_CONN_UNKNOWN;

    r->pool = p;
    r->connection = c;
    r->server = s;
    r->request_config = ap_create_request_config(p);
    r->per_dir_config = s->lookup_defaults;
    r->headers_in = apr_table_make(p, 2);
    r->headers_out = apr_table_make(p, 8);
    r->err_headers_out = apr_table_make(p, 2);
    r->subprocess_env = env;
    r->notes = apr_table_make(p, 2);
    r->method = head->method ? head->method : "GET";
    r->method_number = ap_method_number_of(r->method);
    r->protocol = (char *)head->protocol;
    r->uri = (char *)head->uri;
    r->unparsed_uri = r->uri;
    r->hostname = head->server_name;
    r->filename = (char *)head->script_file;
    r->handler = TETHER_HANDLER;
    r->status = HTTP_OK;
    r->useragent_ip = c->client_ip;
    r->useragent_addr = c->client_addr;
    r->log_id = head->request_id;
    r->request_time = apr_time_now();
    /* The Apache side stat'ed the script: its mtime saves a stat here. */
    if (head->script_mtime) {
        r->finfo.filetype = APR_REG;
        r->finfo.mtime = apr_atoi64(head->script_mtime);
    }
    /* The request's log level as the Apache side resolved it (with any
     * LogLevel of its <Location>/<Directory>): it applies to every line
     * logged for the request here. */
    if (head->log_level) {
        int level = atoi(head->log_level);

        if (level >= APLOG_EMERG && level <= APLOG_TRACE8) {
            struct ap_logconf *l = apr_pcalloc(p, sizeof(*l));

            l->level = level;
            r->log = l;
        }
    }
    if (head->content_length) {
        apr_table_setn(r->headers_in, "Content-Length",
                       head->content_length);
    }
    if (head->transfer_encoding) {
        apr_table_setn(r->headers_in, "Transfer-Encoding",
                       head->transfer_encoding);
    }

    in->frec = &wire_in_rec;
    in->ctx = w;
    in->r = r;
    in->c = c;
    out->frec = &wire_out_rec;
    out->ctx = w;
    out->r = r;
    out->c = c;
    r->input_filters = r->proto_input_filters = in;
    r->output_filters = r->proto_output_filters = out;
    c->input_filters = in;
    c->output_filters = out;
    return r;
}

/* ------------------------------------------------------------------------
 * Serving one request on a connection
 */

static void send_error(wreq_t *w, int status, const char *msg)
{
    unsigned char buf[512];
    apr_size_t n = tether_wire_resp_error_encode(buf, sizeof(buf),
                                                 (uint16_t)status, msg,
                                                 strlen(msg));

    if (n) {
        w->done = 1;
        wreq_send(w, TETHER_WIRE_RESP_ERROR, close_flag(), buf, n, 0);
    }
}

static apr_table_t *read_environ(apr_pool_t *p, tether_conn_t *c,
                                 head_t *head, apr_status_t *rv)
{
    tether_wire_header_t h;
    tether_wire_pair_t *pairs;
    unsigned char *buf;
    apr_table_t *env;
    apr_size_t n, i;

    if ((*rv = tether_conn_read_header(c, &h)) != APR_SUCCESS) {
        return NULL;
    }
    if (h.type != TETHER_WIRE_REQ_HEAD) {
        *rv = APR_EGENERAL;
        return NULL;
    }
    /* One byte more: the last value's NUL goes after the payload. */
    buf = apr_palloc(p, h.length + 1);
    if ((*rv = tether_conn_read(c, buf, h.length)) != APR_SUCCESS) {
        return NULL;
    }
    n = tether_wire_pairs_count(buf, h.length);
    if (n > TETHER_WIRE_MAX_PAIRS) {
        *rv = APR_EGENERAL;
        return NULL;
    }
    pairs = apr_palloc(p, sizeof(*pairs) * (n ? n : 1));
    if (tether_wire_pairs_decode(buf, h.length, pairs, n, &n)
            != TETHER_WIRE_OK) {
        *rv = APR_EGENERAL;
        return NULL;
    }
    env = apr_table_make(p, (int)n + 4);
    memset(head, 0, sizeof(*head));
    for (i = 0; i < n; i++) {
        /* The strings stay in buf, made C strings where they lie: each
         * NUL lands on the first byte of the next length field, which
         * was decoded already (or on the byte after the payload). */
        char *key = (char *)pairs[i].key, *value = (char *)pairs[i].value;

        key[pairs[i].key_len] = '\0';
        value[pairs[i].value_len] = '\0';
        head_note(head, key, pairs[i].key_len, value);
        /* ":name" entries are the protocol's, not the environ's. */
        if (pairs[i].key_len && key[0] == ':') {
            continue;
        }
        apr_table_addn(env, key, value);
    }
    return env;
}

static int queue_timed_out(const head_t *head)
{
    const char *v = head->queue_start;

    return ds.g->queue_timeout && v
           && apr_time_now() - apr_atoi64(v) > ds.g->queue_timeout;
}

/*
 * Serves one request on dc.  Returns 1 when the connection can take the
 * next request, 0 when it must be closed.
 */
static int serve(dconn_t *dc, wreq_t *w, apr_pool_t *tp,
                 apr_bucket_alloc_t *ba)
{
    apr_pool_t *p;
    apr_table_t *env;
    head_t head;
    request_rec *r;
    tether_request_t req;
    tether_interp_t *interp;
    PyObject *app = NULL;
    apr_status_t rv;
    int status, reusable;

    apr_pool_create(&p, tp);
    dc->c->timeout = io_timeout();
    w->ignore_activity = 0;
    env = read_environ(p, dc->c, &head, &rv);
    if (!env) {
        if (rv != APR_EOF) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, ds.s,
                         TETHER_LOGNO(0601) "daemon group '%s': dropping a "
                         "connection that sent no valid request head",
                         ds.g->name);
        }
        apr_pool_destroy(p);
        return 0;
    }

    apr_thread_mutex_lock(w->lock);
    w->c = dc->c;
    w->head_sent = w->done = w->timed_out = w->body_eof = 0;
    w->error = w->body_error = APR_SUCCESS;
    w->what = head.script_file;
    w->ignore_activity = head.ignore_activity != NULL;
    w->started = apr_time_now();
    apr_thread_mutex_unlock(w->lock);

    memset(&req, 0, sizeof(req));
    req.environ = env;
    req.script_file = head.script_file;
    req.script_name = head.script_name;
    req.path_info = head.path_info;
    req.process_group = ds.g->name;
    req.application_group = head.application_group;
    req.callable_object = head.callable_object;
    req.script_reloading = head.script_reloading
                           && !strcmp(head.script_reloading, "1");
    req.multithread = ds.g->threads > 1;
    req.multiprocess = ds.g->multiprocess || ds.g->processes > 1;
    /* Small frames only go into the connection's send queue (flushed
     * when the queue fills, on FLUSH and at the end). */
    req.small_pass_keeps_gil = 1;
    /* Each call is one BODY_WANT round trip to Apache's side. */
    req.input_step = TETHER_INPUT_FRAME;
    if (!req.script_file || !req.application_group
        || !req.callable_object) {
        send_error(w, HTTP_BAD_GATEWAY, "incomplete request head");
        goto done;
    }

    r = make_request(p, ba, env, &head, w);
    if (queue_timed_out(&head)) {
        /* Apache's side logs the message too, with its request. */
        const char *why = apr_psprintf(
            p, "queue-timeout expired: the request waited more than "
            "queue-timeout=%" APR_TIME_T_FMT "s before daemon process %"
            APR_PID_T_FMT " (socket %s) could take it; answered 504",
            apr_time_sec(ds.g->queue_timeout), getpid(),
            ds.g->socket_path ? ds.g->socket_path : "?");

        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0602) "Queue timeout expired for WSGI "
                      "daemon group '%s': %s", ds.g->name, why);
        send_error(w, HTTP_GATEWAY_TIME_OUT, why);
        goto done;
    }

    interp = tether_interp_acquire(req.application_group, r, r->server);
    if (!interp) {
        send_error(w, HTTP_INTERNAL_SERVER_ERROR, "");
        goto done;
    }
    w->thread_id = PyThread_get_thread_ident();
    tether_log_set_current(r);
    app = tether_interp_load_app(interp, req.script_file,
                                 req.callable_object, req.script_reloading,
                                 r, r->server);
    if (app) {
        ds.app_loaded = 1;
    }
    else {
        ds.load_failed = 1;
    }
    status = app ? tether_adapter_run(r, &req, app)
                 : HTTP_INTERNAL_SERVER_ERROR;
    Py_XDECREF(app);
    tether_log_set_current(NULL);
    tether_interp_release(interp);

    if (status != OK && !w->head_sent && !w->done) {
        send_error(w, status, "");
    }
    else if (!w->done && !w->error) {
        /* The adapter always ends with EOS; be safe if it did not. */
        static const char why[] = "the response did not complete";

        w->done = 1;
        wreq_send(w, TETHER_WIRE_RESP_ABORT, TETHER_WIRE_FLAG_CLOSE, why,
                  sizeof(why) - 1, 0);
    }

done:
    wreq_flush(w);
    apr_thread_mutex_lock(w->lock);
    reusable = w->done && !w->error && !w->timed_out && !w->body_error
               && !ds.stopping;
    /* No body the application left unread is on its way: the Apache side
     * only sends body in answer to BODY_WANT. */
    w->started = 0;
    w->c = NULL;
    apr_thread_mutex_unlock(w->lock);
    apr_pool_destroy(p);
    return reusable;
}

/* ------------------------------------------------------------------------
 * Connections, the ready queue and the workers
 */

static void conn_unlink(dconn_t *dc)
{
    if (dc->prev) {
        dc->prev->next = dc->next;
    }
    else {
        ds.conns = dc->next;
    }
    if (dc->next) {
        dc->next->prev = dc->prev;
    }
}

/* Closes dc; ds.lock held. */
static void conn_drop(dconn_t *dc)
{
    tether_daemon_set_conns(ds.g, ds.slot, --ds.nconns);
    conn_unlink(dc);
    epoll_ctl(ds.cepfd, EPOLL_CTL_DEL, dc->c->fd, NULL);
    tether_conn_close(dc->c);
    free(dc);
}

/*
 * Puts dc back in the poll set.  Called without ds.lock, after dc was
 * marked DC_IDLE under it: until the re-arm no other worker can get dc
 * (EPOLLONESHOT), and only workers free connections, so the system call
 * stays out of the lock every worker takes.
 */
static void conn_rearm(dconn_t *dc)
{
    struct epoll_event ev;

    ev.events = EPOLLIN | EPOLLONESHOT | EPOLLRDHUP;
    ev.data.ptr = dc;
    if (epoll_ctl(ds.cepfd, EPOLL_CTL_MOD, dc->c->fd, &ev) != 0) {
        apr_thread_mutex_lock(ds.lock);
        conn_drop(dc);
        apr_thread_mutex_unlock(ds.lock);
    }
}

/* Counts a served request; ds.lock held.  Returns whether the connection
 * may serve another.  A request under WSGIIgnoreActivity On is not
 * activity for inactivity-timeout. */
static int count_served(const wreq_t *w, int reusable)
{
    ds.served++;
    if (!w->ignore_activity) {
        ds.last_activity = apr_time_now();
    }
    if (ds.g->maximum_requests > 0
        && ds.served >= ds.g->maximum_requests && !ds.stopping) {
        ds.stopping = SIGUSR1;
        ds.stop_reason = "maximum-requests reached";
    }
    return reusable && !ds.stopping;
}

/*
 * A worker: waits on the connections itself (leader/follower; with
 * EPOLLONESHOT each ready connection goes to exactly one worker, with no
 * hand-off between threads), serves the request, re-arms the connection.
 * A busy daemon's ready connections simply wait in epoll: that is the
 * queue, and queue-timeout is measured from when Apache sent the request.
 */
static void *APR_THREAD_FUNC worker_main(apr_thread_t *thread, void *data)
{
    wreq_t *w = data;
    apr_pool_t *tp;
    apr_bucket_alloc_t *ba;

    apr_pool_create_unmanaged_ex(&tp, NULL, NULL);
    ba = apr_bucket_alloc_create(tp);
    for (;;) {
        struct epoll_event ev;
        dconn_t *dc;
        int reusable;

        if (epoll_wait(ds.cepfd, &ev, 1, -1) != 1) {
            continue;
        }
        dc = ev.data.ptr;
        apr_thread_mutex_lock(ds.lock);
        if (dc->state == DC_BUSY) {
            apr_thread_mutex_unlock(ds.lock);
            continue;
        }
        if (dc->state == DC_SHUT || !(ev.events & EPOLLIN)) {
            conn_drop(dc);
            apr_thread_mutex_unlock(ds.lock);
            continue;
        }
        dc->state = DC_BUSY;
        ds.active++;
        apr_thread_mutex_unlock(ds.lock);

        for (;;) {
            reusable = serve(dc, w, tp, ba);
            apr_thread_mutex_lock(ds.lock);
            reusable = count_served(w, reusable);
            /* The next request may already be buffered. */
            if (reusable && dc->c->pos < dc->c->len) {
                apr_thread_mutex_unlock(ds.lock);
                continue;
            }
            ds.active--;
            if (!reusable) {
                conn_drop(dc);
                apr_thread_mutex_unlock(ds.lock);
                break;
            }
            dc->state = DC_IDLE;
            apr_thread_mutex_unlock(ds.lock);
            conn_rearm(dc);
            break;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * The main thread: accept, poll, enforce limits
 */

/*
 * Accepts the waiting connections.  Apache keeps its connections open, so
 * whoever accepts one serves its requests for a long time: a process that
 * holds more connections than a serving sibling leaves new ones to it
 * (every process of the group is woken for each), unless `force`.
 * Returns 1 when it left some.
 */
static int accept_all(int force)
{
    for (;;) {
        struct epoll_event ev;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        dconn_t *dc;
        int fd, fewest = tether_daemon_fewest_conns(ds.g, ds.slot);

        if (!force && fewest >= 0 && ds.nconns > fewest) {
            return 1;
        }
        force = 0;
        fd = accept4(ds.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return 0;       /* EAGAIN, or another process took it */
        }
        /* Only Apache's children may talk to us. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0
            || (cred.uid != ds.peer_uid && cred.uid != 0)) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, ds.s,
                         TETHER_LOGNO(0603) "daemon group '%s': refused a "
                         "connection from uid %ld, pid %ld (only uid %ld "
                         "may connect to socket %s)", ds.g->name,
                         (long)cred.uid, (long)cred.pid, (long)ds.peer_uid,
                         ds.g->socket_path);
            close(fd);
            continue;
        }
        tether_conn_buffers(fd, ds.g->send_buffer_size,
                            ds.g->receive_buffer_size);
        dc = calloc(1, sizeof(*dc));
        if (!dc || !(dc->c = tether_conn_new(fd, io_timeout()))) {
            free(dc);
            close(fd);
            continue;
        }
        /* Tell the Apache side who we are, for its log lines. */
        {
            unsigned char hello[TETHER_WIRE_HELLO_SIZE];

            tether_wire_hello_encode(hello, (uint32_t)getpid());
            tether_conn_queue(dc->c, TETHER_WIRE_HELLO, 0, hello,
                              sizeof(hello));
            if (tether_conn_flush(dc->c) != APR_SUCCESS) {
                tether_conn_close(dc->c);
                free(dc);
                continue;
            }
        }
        apr_thread_mutex_lock(ds.lock);
        dc->next = ds.conns;
        if (ds.conns) {
            ds.conns->prev = dc;
        }
        ds.conns = dc;
        tether_daemon_set_conns(ds.g, ds.slot, ++ds.nconns);
        dc->state = DC_IDLE;
        ev.events = EPOLLIN | EPOLLONESHOT | EPOLLRDHUP;
        ev.data.ptr = dc;
        if (epoll_ctl(ds.cepfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            conn_drop(dc);
        }
        apr_thread_mutex_unlock(ds.lock);
    }
}

/* Writes the Python stack of a stuck worker to the error log. */
static void log_stack(wreq_t *w)
{
    tether_interp_t *interp = tether_interp_acquire("", NULL, ds.s);
    PyObject *frames = NULL, *frame, *mod = NULL, *lines = NULL, *key;
    Py_ssize_t i;

    if (!interp) {
        return;
    }
    mod = PyImport_ImportModule("sys");
    frames = mod ? PyObject_CallMethod(mod, "_current_frames", NULL) : NULL;
    Py_XDECREF(mod);
    key = PyLong_FromUnsignedLong(w->thread_id);
    frame = frames && key ? PyDict_GetItem(frames, key) : NULL;
    mod = frame ? PyImport_ImportModule("traceback") : NULL;
    lines = mod ? PyObject_CallMethod(mod, "format_stack", "O", frame)
                : NULL;
    for (i = 0; lines && i < PyList_GET_SIZE(lines); i++) {
        const char *text = PyUnicode_AsUTF8(PyList_GET_ITEM(lines, i));

        if (text) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, ds.s,
                         TETHER_LOGNO(0605) "%s", text);
        }
    }
    PyErr_Clear();
    Py_XDECREF(lines);
    Py_XDECREF(mod);
    Py_XDECREF(key);
    Py_XDECREF(frames);
    tether_interp_release(interp);
}

/* request-timeout: answer for the stuck request and recycle. */
static void check_request_timeouts(apr_time_t now)
{
    int i;

    if (!ds.g->request_timeout) {
        return;
    }
    for (i = 0; i < ds.g->threads; i++) {
        wreq_t *w = &ds.workers[i];
        int expired;

        apr_thread_mutex_lock(w->lock);
        expired = w->started && !w->timed_out && w->c
                  && now - w->started > ds.g->request_timeout;
        if (expired) {
            unsigned char buf[64];
            apr_size_t n;

            w->timed_out = 1;
            if (!w->head_sent && !w->done) {
                n = tether_wire_resp_error_encode(buf, sizeof(buf),
                                                  HTTP_GATEWAY_TIME_OUT,
                                                  "request-timeout", 15);
                w->c->wlen = 0;
                tether_conn_send(w->c, TETHER_WIRE_RESP_ERROR,
                                 TETHER_WIRE_FLAG_CLOSE, buf, n);
            }
            else if (!w->done) {
                tether_conn_send(w->c, TETHER_WIRE_RESP_ABORT,
                                 TETHER_WIRE_FLAG_CLOSE, "request-timeout",
                                 15);
            }
            /* Whatever the worker writes from now on goes nowhere. */
            shutdown(w->c->fd, SHUT_RDWR);
        }
        apr_thread_mutex_unlock(w->lock);
        if (expired) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, ds.s,
                         TETHER_LOGNO(0604) "daemon group '%s' process %"
                         APR_PID_T_FMT ": request-timeout of %" APR_TIME_T_FMT
                         "s expired for %s; answered 504, stack of the "
                         "request's thread follows, process will recycle",
                         ds.g->name, getpid(),
                         apr_time_sec(ds.g->request_timeout),
                         w->what ? w->what : "a request");
            log_stack(w);
            apr_thread_mutex_lock(ds.lock);
            if (!ds.stopping) {
                ds.stopping = SIGUSR1;
                ds.stop_reason = "request-timeout expired";
            }
            apr_thread_mutex_unlock(ds.lock);
        }
    }
}

static apr_size_t rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    return (apr_size_t)rss * (apr_size_t)sysconf(_SC_PAGESIZE);
}

/* The recycling limits; sets ds.stopping when one is reached. */
static void check_limits(apr_time_t now)
{
    tether_daemon_group_t *g = ds.g;
    const char *why = NULL;

    if (g->restart_interval && now - ds.started > g->restart_interval) {
        why = "restart-interval reached";
    }
    else if (g->startup_timeout && ds.load_failed && !ds.app_loaded
             && now - ds.started > g->startup_timeout) {
        why = "startup-timeout reached: the WSGI application did not load";
    }
    else if (g->inactivity_timeout && ds.active == 0
             && now - ds.last_activity > g->inactivity_timeout) {
        why = "inactivity-timeout reached";
    }
    else if (g->memory_limit && rss_bytes() > g->memory_limit) {
        why = "memory-limit exceeded";
    }
    else if (g->cpu_time_limit) {
        struct rusage ru;

        if (getrusage(RUSAGE_SELF, &ru) == 0
            && ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
               >= g->cpu_time_limit) {
            why = "cpu-time-limit reached";
        }
    }
    if (why) {
        ds.stopping = SIGUSR1;
        ds.stop_reason = why;
    }
}

/* deadlock-timeout: a thread that takes the GIL every second. */
static void *APR_THREAD_FUNC gil_ticker(apr_thread_t *thread, void *data)
{
    for (;;) {
        tether_interp_t *interp = tether_interp_acquire("", NULL, ds.s);

        if (!interp) {
            return NULL;
        }
        ds.gil_tick = apr_time_now();
        tether_interp_release(interp);
        apr_sleep(apr_time_from_sec(1));
    }
    return NULL;
}

/* Stops the process for `why`, giving the requests in flight `t`, the
 * value of the option `tname` (5 s when 0), or what is left of an
 * earlier, shorter allowance. */
static void start_stopping(int sig, const char *why, const char *tname,
                           apr_interval_time_t t)
{
    apr_time_t now = apr_time_now();

    apr_thread_mutex_lock(ds.lock);
    if (!ds.stopping || sig == SIGTERM) {
        ds.stopping = sig;
        ds.stop_reason = why;
    }
    apr_thread_mutex_unlock(ds.lock);
    if (!t) {
        t = apr_time_from_sec(5);
    }
    if (!ds.stop_deadline || now + t < ds.stop_deadline) {
        ds.stop_deadline = now + t;
        ds.stop_timeout_name = tname;
        ds.stop_timeout = t;
    }
}

/*
 * Stops accepting and hangs up idle connections, each with a GOODBYE
 * frame (the Apache side sends its request again elsewhere).  Returns
 * how many connections still have a request waiting or being served.
 */
static int drain(void)
{
    dconn_t *dc;
    int left = 0;

    epoll_ctl(ds.epfd, EPOLL_CTL_DEL, ds.listen_fd, NULL);
    apr_thread_mutex_lock(ds.lock);
    for (dc = ds.conns; dc; dc = dc->next) {
        if (dc->state == DC_BUSY) {
            left++;
        }
        else if (dc->state == DC_IDLE) {
            if (tether_conn_pending(dc->c)) {
                left++;
            }
            else {
                /* GOODBYE tells Apache that a request it may be sending
                 * right now was never read, so it can safely send it
                 * elsewhere.  A worker reaps the connection when epoll
                 * reports the hang-up. */
                dc->state = DC_SHUT;
                tether_conn_queue(dc->c, TETHER_WIRE_GOODBYE, 0, NULL, 0);
                tether_conn_flush(dc->c);
                shutdown(dc->c->fd, SHUT_RDWR);
            }
        }
    }
    apr_thread_mutex_unlock(ds.lock);
    return left;
}

/*
 * shutdown-timeout, once the process has decided to exit: Python's exit
 * functions get that long (tether_daemon_exit_allowance), then the process
 * is killed, so that a hung atexit function cannot keep the slot from its
 * replacement.
 */
static void *APR_THREAD_FUNC exit_watchdog(apr_thread_t *thread, void *data)
{
    apr_interval_time_t t = tether_daemon_exit_allowance(ds.g);

    apr_sleep(t);
    /* Should the log line itself block, the alarm still ends it. */
    alarm(2);
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, ds.s,
                 TETHER_LOGNO(0608) "daemon process %" APR_PID_T_FMT " of "
                 "group '%s' (socket %s) did not finish exiting within "
                 "shutdown-timeout=%" APR_TIME_T_FMT "s after it stopped "
                 "serving (%s): Python's exit functions are still running; "
                 "killing it", getpid(), ds.g->name,
                 ds.g->socket_path ? ds.g->socket_path : "?",
                 apr_time_sec(t),
                 ds.stop_reason ? ds.stop_reason : "stopped");
    kill(getpid(), SIGKILL);
    return NULL;
}

static void start_exit_watchdog(void)
{
    apr_threadattr_t *attr;
    apr_thread_t *thread;

    if (apr_threadattr_create(&attr, ds.pool) != APR_SUCCESS
        || apr_threadattr_detach_set(attr, 1) != APR_SUCCESS
        || apr_thread_create(&thread, attr, exit_watchdog, NULL, ds.pool)
           != APR_SUCCESS) {
        /* No thread: SIGALRM's default action ends the process instead,
         * silently (the parent logs the death). */
        alarm((unsigned int)apr_time_sec(tether_daemon_exit_allowance(ds.g))
              + 1);
    }
}

static void __attribute__((noreturn)) finish(void)
{
    int busy;

    apr_thread_mutex_lock(ds.lock);
    busy = ds.active;
    apr_thread_mutex_unlock(ds.lock);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, ds.s,
                 TETHER_LOGNO(0606) "daemon process %" APR_PID_T_FMT " of "
                 "group '%s' exits (%s; %" APR_INT64_T_FMT " requests "
                 "served%s)", getpid(), ds.g->name,
                 ds.stop_reason ? ds.stop_reason : "stopped", ds.served,
                 !busy ? "" : apr_psprintf(
                     ds.pool, ", in-flight requests cut off after "
                     "%s=%" APR_TIME_T_FMT "s",
                     ds.stop_timeout_name ? ds.stop_timeout_name
                                          : "graceful-timeout",
                     apr_time_sec(ds.stop_timeout)));
    tether_metrics_daemon_exit(ds.stop_reason);
    tether_daemon_mark_exiting(ds.g, ds.slot);
    if (!busy) {
        start_exit_watchdog();
        tether_interp_stop();
    }
    _exit(0);
}

void tether_dserver_main(server_rec *s, tether_daemon_group_t *g,
                         int listen_fd, int slot)
{
    struct epoll_event ev, events[64];
    apr_threadattr_t *attr;
    apr_thread_t *thread;
    struct stat st;
    sigset_t sigs;
    int i;

    tether_malloc_tune();
    memset(&ds, 0, sizeof(ds));
    ds.s = s;
    ds.g = g;
    ds.listen_fd = listen_fd;
    ds.slot = slot;
    ds.started = ds.last_activity = apr_time_now();
    apr_pool_create(&ds.pool, NULL);
    ds.peer_uid = g->socket_path && stat(g->socket_path, &st) == 0
                  ? st.st_uid : getuid();

    /* Signals come through signalfd to the main thread only. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    ds.sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);

    if (tether_interp_start(ds.pool, s, g->name, g->python_home,
                            g->python_path && g->python_path->nelts
                            ? g->python_path : NULL,
                            g->switch_interval) == 0) {
        tether_interp_preload(s);
    }

    apr_thread_mutex_create(&ds.lock, APR_THREAD_MUTEX_DEFAULT, ds.pool);
    ds.epfd = epoll_create1(EPOLL_CLOEXEC);
    ds.cepfd = epoll_create1(EPOLL_CLOEXEC);
    /* Not EPOLLEXCLUSIVE: each process weighs each new connection. */
    ev.events = EPOLLIN;
    ev.data.ptr = &ds.listen_fd;
    epoll_ctl(ds.epfd, EPOLL_CTL_ADD, listen_fd, &ev);
    ev.events = EPOLLIN;
    ev.data.ptr = &ds.sigfd;
    epoll_ctl(ds.epfd, EPOLL_CTL_ADD, ds.sigfd, &ev);
    {
        int flags = fcntl(listen_fd, F_GETFL);

        fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK);
    }

    apr_threadattr_create(&attr, ds.pool);
    apr_threadattr_detach_set(attr, 1);
    if (g->stack_size) {
        apr_threadattr_stacksize_set(attr, g->stack_size);
    }
    ds.workers = apr_pcalloc(ds.pool, sizeof(wreq_t) * g->threads);
    for (i = 0; i < g->threads; i++) {
        apr_thread_mutex_create(&ds.workers[i].lock,
                                APR_THREAD_MUTEX_DEFAULT, ds.pool);
        apr_thread_create(&thread, attr, worker_main, &ds.workers[i],
                          ds.pool);
    }
    if (g->deadlock_timeout) {
        ds.gil_tick = apr_time_now();
        apr_thread_create(&thread, attr, gil_ticker, NULL, ds.pool);
    }
    tether_metrics_daemon_start(g, slot);
    tether_daemon_mark_ready(g, slot);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 TETHER_LOGNO(0600) "daemon process %d of group '%s' ready "
                 "(pid %" APR_PID_T_FMT ", uid %ld, %d threads, socket %s)",
                 slot, g->name, getpid(), (long)getuid(), g->threads,
                 g->socket_path ? g->socket_path : "?");

    for (;;) {
        int n = epoll_wait(ds.epfd, events, 64, ds.accept_paused ? 2
                                                 : ds.stopping ? 50 : 1000);
        apr_time_t now = apr_time_now();

        for (i = 0; i < n; i++) {
            void *ptr = events[i].data.ptr;

            if (ptr == &ds.listen_fd) {
                if (!ds.stopping && accept_all(0)) {
                    /* A sibling has fewer: give it 2 ms to take them. */
                    epoll_ctl(ds.epfd, EPOLL_CTL_DEL, listen_fd, NULL);
                    ds.accept_paused = 1;
                    ds.accept_resume = now + apr_time_from_msec(2);
                }
            }
            else if (ptr == &ds.sigfd) {
                struct signalfd_siginfo si;

                while (read(ds.sigfd, &si, sizeof(si)) == sizeof(si)) {
                    if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGHUP) {
                        start_stopping(SIGUSR1, "graceful stop requested",
                                       g->eviction_timeout
                                       ? "eviction-timeout"
                                       : "graceful-timeout",
                                       g->eviction_timeout
                                       ? g->eviction_timeout
                                       : g->graceful_timeout);
                    }
                    else {
                        start_stopping(SIGTERM, "shutdown requested",
                                       "shutdown-timeout",
                                       g->shutdown_timeout);
                    }
                }
            }
        }

        if (ds.accept_paused && now >= ds.accept_resume && !ds.stopping) {
            /* What the siblings left (busy, or gone) is ours. */
            ds.accept_paused = 0;
            accept_all(1);
            ev.events = EPOLLIN;
            ev.data.ptr = &ds.listen_fd;
            epoll_ctl(ds.epfd, EPOLL_CTL_ADD, listen_fd, &ev);
        }
        check_request_timeouts(now);
        apr_thread_mutex_lock(ds.lock);
        if (!ds.stopping) {
            check_limits(now);
        }
        apr_thread_mutex_unlock(ds.lock);
        if (g->deadlock_timeout && now - ds.gil_tick > g->deadlock_timeout) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                         TETHER_LOGNO(0607) "daemon process %" APR_PID_T_FMT
                         " of group '%s': Python's GIL was not released "
                         "for deadlock-timeout=%" APR_TIME_T_FMT "s; "
                         "restarting the process", getpid(), g->name,
                         apr_time_sec(g->deadlock_timeout));
            /* Above 64: Apache gives some low exit codes a meaning. */
            tether_metrics_daemon_exit("deadlock-timeout");
            tether_daemon_mark_exiting(ds.g, ds.slot);
            _exit(TETHER_EXIT_DEADLOCK);
        }
        if (ds.stopping) {
            if (!ds.stop_deadline) {
                start_stopping(ds.stopping, ds.stop_reason,
                               "graceful-timeout", g->graceful_timeout);
            }
            if (drain() == 0 || now > ds.stop_deadline) {
                finish();
            }
        }
    }
}
