/*
 * Server-wide request counters in shared memory (tether_metrics.c), the
 * Prometheus text endpoint and the mod_status table that read them, and
 * the in-process Python API (tether_api.c) that reports to them.
 *
 * The Apache parent creates one anonymous shared memory table in
 * post_config: a slot per daemon process (group by group, process by
 * process) and a pool of slots for Apache's children.  Every process
 * that runs WSGI requests owns one slot and writes it with atomic
 * operations only; readers take a consistent-enough snapshot without
 * locks.  Counters of a slot survive the processes that come and go in
 * it, so a scraper sees monotonic counters per slot.
 */
#ifndef TETHER_METRICS_H
#define TETHER_METRICS_H

#include "tether_private.h"

/*
 * What mod_wsgi.version and environ['mod_wsgi.version'] report: the
 * mod_wsgi release whose behaviour Tether reproduces, for applications
 * that test it.
 */
#define TETHER_MODWSGI_VERSION "6.1.1"

/* What one finished request reports (times in microseconds). */
typedef struct {
    int status;                     /* HTTP status; 0: none sent */
    apr_interval_time_t latency;    /* request arrival -> response end */
    apr_interval_time_t queue;      /* daemon mode: socket queue; -1 none */
    apr_interval_time_t application;/* the application callable */
} tether_metrics_sample_t;

/* ---- tether_metrics.c ------------------------------------------------- */
void tether_metrics_register_hooks(apr_pool_t *p);
/* TetherMetricsURL <path>: server config. */
const char *tether_metrics_set_url(cmd_parms *cmd, void *dummy,
                                   const char *path);
/* WSGIServerMetrics On|Off: server config. */
const char *tether_metrics_set_server_metrics(cmd_parms *cmd, void *dummy,
                                              int on);
/*
 * server_metrics() of the Python API: Tether's process table as a dict,
 * or None when this process may not see it (WSGIServerMetrics in
 * embedded mode, server-metrics= of the daemon group).  GIL held.
 */
PyObject *tether_metrics_server_metrics(const char *process_group);
/* In a daemon process, once Python is up: takes the slot of (g, slot). */
void tether_metrics_daemon_start(tether_daemon_group_t *g, int slot);
/* In a daemon process about to exit on purpose: records why. */
void tether_metrics_daemon_exit(const char *reason);
/* mod_wsgi's name of a daemon's stop reason ("maximum_requests", ...). */
const char *tether_metrics_reason_name(const char *why);
/* RSS (bytes) and CPU seconds (user + system) of process pid, from
 * /proc; 0, or -1 when it cannot be read. */
int tether_metrics_proc_usage(pid_t pid, apr_uint64_t *rss, double *cpu);
/* A request enters / leaves the application in this process. */
void tether_metrics_request_begin(void);
void tether_metrics_request_end(const tether_metrics_sample_t *sample);

/* ---- tether_api.c ----------------------------------------------------- */
/*
 * What the adapter measured of one request's body I/O (times in usec).
 * The counts are always kept; the times only when the request is timed
 * (tether_api_request_t.timed).
 */
typedef struct {
    apr_uint64_t input_reads;       /* reads from Apache's input filters */
    apr_off_t input_length;         /* body bytes handed to the app */
    apr_interval_time_t input_time;
    apr_uint64_t output_writes;     /* passes down the filters with data */
    apr_off_t output_length;        /* body bytes passed on */
    apr_interval_time_t output_time;
    apr_uint64_t gil_waits;         /* GIL re-acquisitions measured */
    apr_interval_time_t gil_wait_time;
    apr_interval_time_t gil_wait_min;   /* of one re-acquisition */
    apr_interval_time_t gil_wait_max;
} tether_api_io_t;

/* The per-request state the API keeps; lives on the adapter's stack. */
typedef struct {
    request_rec *r;
    const tether_request_t *req;
    PyObject *request_data;         /* the scratchpad dict, NULL until used */
    PyObject *request_id;           /* str */
    apr_time_t request_start;       /* Apache received the request */
    apr_time_t queue_start;         /* daemon mode: Apache queued it; 0 */
    apr_time_t daemon_start;        /* daemon mode: the daemon took it; 0 */
    apr_time_t application_start;
    apr_interval_time_t cpu_user;   /* thread CPU at the start, usec */
    apr_interval_time_t cpu_system;
    int events;                     /* subscribers exist: dispatch */
    int timed;                      /* events or recording: measure time */
} tether_api_request_t;

/*
 * Installs the in-process module in the current interpreter: "_tether"
 * in sys.modules, aliased as "mod_wsgi", and as "tether" when no tether
 * package can be imported there.  GIL held.  0, or -1 with an exception.
 */
int tether_api_install(const char *process_group,
                       const char *application_group);
/*
 * Around the application call (GIL held).  begin() may replace *app (a
 * request_started subscriber returned application_object): the caller
 * then owns the new reference in *app and must release the old one.
 */
void tether_api_request_begin(tether_api_request_t *ar, request_rec *r,
                              const tether_request_t *req, PyObject *environ,
                              PyObject **app);
void tether_api_response_started(PyObject *status, PyObject *headers,
                                 PyObject *exc_info);
/* The pending exception stays pending. */
void tether_api_request_exception(void);
void tether_api_request_end(tether_api_request_t *ar, int status,
                            const tether_api_io_t *io);
/* Fires process_stopping in the current interpreter.  GIL held. */
void tether_api_process_stopping(void);
/* The shutdown_reason process_stopping reports (a mod_wsgi name). */
void tether_api_set_stop_reason(const char *why);

#endif /* TETHER_METRICS_H */
