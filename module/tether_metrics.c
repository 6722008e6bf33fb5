/*
 * Request counters of every process that runs WSGI requests, in one
 * shared memory table, and the two readers of that table: the Prometheus
 * text endpoint (TetherMetricsURL, or SetHandler tether-metrics) and the
 * Tether section of mod_status's page (server-status).
 *
 * Writers: each Apache child (embedded mode) claims a free slot of the
 * embedded pool in child_init; each daemon process takes the slot of its
 * (group, process) pair.  Only the owner writes counters, with atomics;
 * "active" is a gauge.  Readers run in Apache's children and read the
 * slots without locks.  The parent creates a fresh table on every
 * (graceful) restart, so counters count since the last restart.
 */
#include "tether_metrics.h"

#include "apr_shm.h"
#include "mod_status.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#define METRICS_HANDLER "tether-metrics"

/* Request duration buckets (upper bounds, microseconds). */
static const apr_interval_time_t bucket_us[] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000
};
static const char *const bucket_le[] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10", "30"
};
#define NBUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]))

/* Why a daemon process ended on purpose; "crash" is derived. */
static const char *const exit_reasons[] = {
    "maximum_requests", "restart_interval", "inactivity_timeout",
    "memory_limit", "cpu_time_limit", "request_timeout",
    "startup_timeout", "deadlock_timeout", "graceful_signal",
    "shutdown_signal", "other"
};
#define NREASONS (sizeof(exit_reasons) / sizeof(exit_reasons[0]))

typedef struct {
    apr_uint64_t count;
    apr_uint64_t sum_us;
    apr_uint64_t buckets[NBUCKETS + 1];     /* not cumulative; last: +Inf */
} histogram_t;

typedef struct {
    volatile pid_t pid;             /* the process in the slot; 0: none */
    int group;                      /* daemon group index; -1: embedded */
    int process;                    /* index within the group or pool */
    int threads;                    /* request threads of the process */
    apr_uint64_t process_start;     /* apr_time_t of the current process */
    apr_uint64_t starts;            /* processes that took the slot */
    apr_uint64_t active;            /* requests in the application now */
    apr_uint64_t status[6];         /* 1xx..5xx, and none/other */
    histogram_t latency;
    histogram_t queue;
    apr_uint64_t application_us;
    apr_uint64_t exits[NREASONS];
} slot_t;

typedef struct {
    int nslots;
    int embedded_base;              /* first slot of Apache's children */
    slot_t slots[1];
} table_t;

static table_t *table;
static int *group_base;             /* first slot of each daemon group */
static slot_t *my_slot;             /* this process's, or NULL */
static const char *metrics_url;     /* TetherMetricsURL, or NULL */
static int server_metrics;          /* WSGIServerMetrics */

#define ADD(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)
#define SUB(field, n) __atomic_fetch_sub(&(field), (n), __ATOMIC_RELAXED)
#define GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

const char *tether_metrics_set_url(cmd_parms *cmd, void *dummy,
                                   const char *path)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    if (path[0] != '/') {
        return apr_psprintf(cmd->pool, "TetherMetricsURL: '%s' is not a "
                            "URL path (it must start with '/')", path);
    }
    metrics_url = path;
    return NULL;
}

const char *tether_metrics_set_server_metrics(cmd_parms *cmd, void *dummy,
                                              int on)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    server_metrics = on;
    return NULL;
}

/* ---- the table ---------------------------------------------------------- */

static int metrics_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp)
{
    metrics_url = NULL;
    server_metrics = 0;
    table = NULL;
    group_base = NULL;
    return OK;
}

static int metrics_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                               apr_pool_t *ptemp, server_rec *s)
{
    tether_global_conf_t *conf = tether_config_global();
    apr_array_header_t *daemons = conf ? conf->daemons : NULL;
    int i, total = 0, limit = 0, embedded = 0;
    apr_shm_t *shm;
    apr_status_t rv;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (daemons) {
        group_base = apr_pcalloc(pconf, sizeof(int) * (daemons->nelts + 1));
        for (i = 0; i < daemons->nelts; i++) {
            group_base[i] = total;
            total += APR_ARRAY_IDX(daemons, i,
                                   tether_daemon_group_t *)->processes;
        }
    }
    if (!conf || !conf->restrict_embedded) {
        /* Children of the previous generation may still be finishing. */
        if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit) != APR_SUCCESS
            || limit < 1) {
            limit = 16;
        }
        embedded = 2 * limit;
    }
    if (total + embedded == 0) {
        return OK;
    }
    rv = apr_shm_create(&shm, sizeof(table_t)
                              + sizeof(slot_t) * (total + embedded),
                        NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     TETHER_LOGNO(0800) "No shared memory for Tether's "
                     "metrics table (%d slots); the metrics endpoint and "
                     "the server-status section will be empty",
                     total + embedded);
        return OK;
    }
    table = apr_shm_baseaddr_get(shm);
    memset(table, 0, apr_shm_size_get(shm));
    table->nslots = total + embedded;
    table->embedded_base = total;
    for (i = 0; i < table->nslots; i++) {
        slot_t *sl = &table->slots[i];

        sl->group = -1;
        sl->process = i - total;
    }
    if (daemons) {
        for (i = 0; i < daemons->nelts; i++) {
            tether_daemon_group_t *g = APR_ARRAY_IDX(daemons, i,
                                                     tether_daemon_group_t *);
            int j;

            for (j = 0; j < g->processes; j++) {
                table->slots[group_base[i] + j].group = i;
                table->slots[group_base[i] + j].process = j;
                table->slots[group_base[i] + j].threads = g->threads;
            }
        }
    }
    return OK;
}

static int pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static apr_status_t release_slot(void *data)
{
    slot_t *sl = data;

    __atomic_store_n(&sl->pid, 0, __ATOMIC_RELEASE);
    if (sl == my_slot) {
        my_slot = NULL;
    }
    return APR_SUCCESS;
}

static void take_slot(slot_t *sl, int threads)
{
    sl->threads = threads;
    __atomic_store_n(&sl->active, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&sl->process_start, (apr_uint64_t)apr_time_now(),
                     __ATOMIC_RELAXED);
    ADD(sl->starts, 1);
    my_slot = sl;
}

static void metrics_child_init(apr_pool_t *pchild, server_rec *s)
{
    tether_global_conf_t *conf = tether_config_global();
    int i, threads = 1;
    pid_t me = getpid();

    if (!table || conf->restrict_embedded) {
        return;
    }
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS
        || threads < 1) {
        threads = 1;
    }
    for (i = table->embedded_base; i < table->nslots; i++) {
        slot_t *sl = &table->slots[i];
        pid_t old = __atomic_load_n(&sl->pid, __ATOMIC_ACQUIRE);

        if (old && pid_alive(old)) {
            continue;
        }
        if (__atomic_compare_exchange_n(&sl->pid, &old, me, 0,
                                        __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED)) {
            take_slot(sl, threads);
            apr_pool_cleanup_register(pchild, sl, release_slot,
                                      apr_pool_cleanup_null);
            return;
        }
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, TETHER_LOGNO(0801)
                 "No free metrics slot for Apache child %" APR_PID_T_FMT
                 "; its requests are not counted", me);
}

void tether_metrics_daemon_start(tether_daemon_group_t *g, int slot)
{
    slot_t *sl;

    if (!table || !group_base || slot < 0 || slot >= g->processes) {
        return;
    }
    sl = &table->slots[group_base[g->index] + slot];
    __atomic_store_n(&sl->pid, getpid(), __ATOMIC_RELEASE);
    take_slot(sl, g->threads);
}

/* Index in exit_reasons of a daemon's stop reason ("maximum-requests
 * reached", "graceful stop requested", ...). */
static apr_size_t reason_index(const char *why)
{
    static const char *const prefixes[] = {
        "maximum-requests", "restart-interval", "inactivity-timeout",
        "memory-limit", "cpu-time-limit", "request-timeout",
        "startup-timeout", "deadlock-timeout", "graceful", "shutdown"
    };
    apr_size_t i;

    for (i = 0; why && i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (!strncmp(why, prefixes[i], strlen(prefixes[i]))) {
            return i;
        }
    }
    return NREASONS - 1;
}

const char *tether_metrics_reason_name(const char *why)
{
    return exit_reasons[reason_index(why)];
}

void tether_metrics_daemon_exit(const char *reason)
{
    tether_api_set_stop_reason(tether_metrics_reason_name(reason));
    if (!my_slot) {
        return;
    }
    ADD(my_slot->exits[reason_index(reason)], 1);
    release_slot(my_slot);
}

void tether_metrics_request_begin(void)
{
    if (my_slot) {
        ADD(my_slot->active, 1);
    }
}

static void observe(histogram_t *h, apr_interval_time_t us)
{
    apr_size_t i;

    if (us < 0) {
        us = 0;
    }
    for (i = 0; i < NBUCKETS && us > bucket_us[i]; i++) {
    }
    ADD(h->buckets[i], 1);
    ADD(h->sum_us, (apr_uint64_t)us);
    ADD(h->count, 1);
}

void tether_metrics_request_end(const tether_metrics_sample_t *m)
{
    slot_t *sl = my_slot;
    int cls = m->status / 100;

    if (!sl) {
        return;
    }
    ADD(sl->status[(cls >= 1 && cls <= 5) ? cls - 1 : 5], 1);
    observe(&sl->latency, m->latency);
    if (m->queue >= 0) {
        observe(&sl->queue, m->queue);
    }
    if (m->application > 0) {
        ADD(sl->application_us, (apr_uint64_t)m->application);
    }
    SUB(sl->active, 1);
}

/* ---- reading the table ------------------------------------------------ */

int tether_metrics_proc_usage(pid_t pid, apr_uint64_t *rss, double *cpu)
{
    char path[64], buf[1024];
    long pages = 0, resident = 0;
    unsigned long utime = 0, stime = 0;
    FILE *f;
    char *p;
    int rc = -1;

    *rss = 0;
    *cpu = 0;
    snprintf(path, sizeof(path), "/proc/%ld/statm", (long)pid);
    if ((f = fopen(path, "r"))) {
        if (fscanf(f, "%ld %ld", &pages, &resident) == 2) {
            *rss = (apr_uint64_t)resident
                   * (apr_uint64_t)sysconf(_SC_PAGESIZE);
            rc = 0;
        }
        fclose(f);
    }
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((f = fopen(path, "r"))) {
        if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')'))
            && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                      "%lu %lu", &utime, &stime) == 2) {
            *cpu = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
        }
        fclose(f);
    }
    return rc;
}

static const char *group_name(int group)
{
    tether_global_conf_t *conf = tether_config_global();

    if (group < 0 || !conf->daemons || group >= conf->daemons->nelts) {
        return "";
    }
    return APR_ARRAY_IDX(conf->daemons, group, tether_daemon_group_t *)->name;
}

/* A slot worth reporting: a daemon slot, or a used embedded one. */
static int slot_shown(const slot_t *sl)
{
    return sl->group >= 0 || GET(sl->starts) > 0;
}

/* Label values: backslash, double quote and newline escaped. */
static const char *label_escape(apr_pool_t *p, const char *s)
{
    char *out = apr_palloc(p, 2 * strlen(s) + 1), *o = out;

    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            *o++ = '\\';
            *o++ = *s;
        }
        else if (*s == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        }
        else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

static const char *slot_labels(apr_pool_t *p, const slot_t *sl)
{
    return apr_psprintf(p, "mode=\"%s\",group=\"%s\",process=\"%d\"",
                        sl->group >= 0 ? "daemon" : "embedded",
                        label_escape(p, group_name(sl->group)), sl->process);
}

static void family(request_rec *r, const char *name, const char *type,
                   const char *help)
{
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram_lines(request_rec *r, const char *name,
                            const char *labels, const histogram_t *h)
{
    apr_uint64_t cum = 0;
    apr_size_t i;

    for (i = 0; i <= NBUCKETS; i++) {
        cum += GET(h->buckets[i]);
        ap_rprintf(r, "%s_bucket{%s,le=\"%s\"} %" APR_UINT64_T_FMT "\n",
                   name, labels, i < NBUCKETS ? bucket_le[i] : "+Inf", cum);
    }
    ap_rprintf(r, "%s_sum{%s} %.6f\n", name, labels,
               (double)GET(h->sum_us) / 1e6);
    ap_rprintf(r, "%s_count{%s} %" APR_UINT64_T_FMT "\n", name, labels, cum);
}

/* Restarts of a daemon slot that no exit reason explains: crashes. */
static apr_uint64_t slot_crashes(const slot_t *sl)
{
    apr_uint64_t starts = GET(sl->starts), known = 0;
    apr_size_t k;

    for (k = 0; k < NREASONS; k++) {
        known += GET(sl->exits[k]);
    }
    if (pid_alive(__atomic_load_n(&sl->pid, __ATOMIC_ACQUIRE))) {
        starts = starts ? starts - 1 : 0;
    }
    return starts > known ? starts - known : 0;
}

static void render_prometheus(request_rec *r)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx",
                                          "5xx", "other"};
    const char **labels;
    apr_uint64_t *rss;
    double *cpu;
    int i, k;

    labels = apr_pcalloc(r->pool, sizeof(char *) * table->nslots);
    for (i = 0; i < table->nslots; i++) {
        if (slot_shown(&table->slots[i])) {
            labels[i] = slot_labels(r->pool, &table->slots[i]);
        }
    }

    family(r, "tether_requests_total", "counter",
           "Requests that reached the WSGI application, by status class.");
    for (i = 0; i < table->nslots; i++) {
        for (k = 0; labels[i] && k < 6; k++) {
            ap_rprintf(r, "tether_requests_total{%s,code=\"%s\"} %"
                       APR_UINT64_T_FMT "\n", labels[i], classes[k],
                       GET(table->slots[i].status[k]));
        }
    }
    family(r, "tether_request_duration_seconds", "histogram",
           "Time from Apache receiving a request to its response end.");
    for (i = 0; i < table->nslots; i++) {
        if (labels[i]) {
            histogram_lines(r, "tether_request_duration_seconds", labels[i],
                            &table->slots[i].latency);
        }
    }
    family(r, "tether_request_queue_seconds", "histogram",
           "Daemon mode: time a request waited between the Apache child "
           "and a daemon thread.");
    for (i = 0; i < table->nslots; i++) {
        if (labels[i] && table->slots[i].group >= 0) {
            histogram_lines(r, "tether_request_queue_seconds", labels[i],
                            &table->slots[i].queue);
        }
    }
    family(r, "tether_application_seconds_total", "counter",
           "Time spent inside the WSGI application callable.");
    for (i = 0; i < table->nslots; i++) {
        if (labels[i]) {
            ap_rprintf(r, "tether_application_seconds_total{%s} %.6f\n",
                       labels[i],
                       (double)GET(table->slots[i].application_us) / 1e6);
        }
    }
    family(r, "tether_threads", "gauge",
           "Request threads of a process, busy in a request or idle.");
    for (i = 0; i < table->nslots; i++) {
        const slot_t *sl = &table->slots[i];
        long active;

        if (!labels[i]) {
            continue;
        }
        active = pid_alive(sl->pid) ? (long)GET(sl->active) : 0;
        ap_rprintf(r, "tether_threads{%s,state=\"active\"} %ld\n"
                   "tether_threads{%s,state=\"idle\"} %ld\n", labels[i],
                   active, labels[i],
                   pid_alive(sl->pid) && sl->threads > active
                   ? sl->threads - active : 0);
    }
    family(r, "tether_process_restarts_total", "counter",
           "Daemon processes replaced, by reason (crash: died without "
           "saying why).");
    for (i = 0; i < table->nslots; i++) {
        const slot_t *sl = &table->slots[i];

        if (!labels[i] || sl->group < 0) {
            continue;
        }
        for (k = 0; k < (int)NREASONS; k++) {
            ap_rprintf(r, "tether_process_restarts_total{%s,reason=\"%s\"} %"
                       APR_UINT64_T_FMT "\n", labels[i], exit_reasons[k],
                       GET(sl->exits[k]));
        }
        ap_rprintf(r, "tether_process_restarts_total{%s,reason=\"crash\"} %"
                   APR_UINT64_T_FMT "\n", labels[i], slot_crashes(sl));
    }
    /* One read of /proc per live process for both families. */
    rss = apr_pcalloc(r->pool, sizeof(*rss) * table->nslots);
    cpu = apr_pcalloc(r->pool, sizeof(*cpu) * table->nslots);
    for (i = 0; i < table->nslots; i++) {
        pid_t pid = table->slots[i].pid;

        if (labels[i] && pid_alive(pid)
            && tether_metrics_proc_usage(pid, &rss[i], &cpu[i]) < 0) {
            rss[i] = 0;
        }
    }
    family(r, "tether_process_resident_memory_bytes", "gauge",
           "Resident set size of the process now in the slot.");
    for (i = 0; i < table->nslots; i++) {
        if (rss[i]) {
            ap_rprintf(r, "tether_process_resident_memory_bytes{%s} %"
                       APR_UINT64_T_FMT "\n", labels[i], rss[i]);
        }
    }
    family(r, "tether_process_cpu_seconds", "gauge",
           "CPU time (user + system) of the process now in the slot.");
    for (i = 0; i < table->nslots; i++) {
        if (rss[i]) {
            ap_rprintf(r, "tether_process_cpu_seconds{%s} %.2f\n",
                       labels[i], cpu[i]);
        }
    }
    family(r, "tether_process_start_time_seconds", "gauge",
           "Start time of the process now in the slot (Unix time).");
    for (i = 0; i < table->nslots; i++) {
        const slot_t *sl = &table->slots[i];

        if (labels[i] && pid_alive(sl->pid)) {
            ap_rprintf(r, "tether_process_start_time_seconds{%s,pid=\"%ld\"}"
                       " %.3f\n", labels[i], (long)sl->pid,
                       (double)GET(sl->process_start) / 1e6);
        }
    }
}

PyObject *tether_metrics_server_metrics(const char *process_group)
{
    tether_daemon_group_t *g = process_group && *process_group
                               ? tether_config_daemon(process_group) : NULL;
    PyObject *procs, *res;
    apr_time_t now = apr_time_now();
    int i;

    if (!table || (g ? !g->server_metrics : !server_metrics)) {
        Py_RETURN_NONE;
    }
    if (!(procs = PyList_New(0))) {
        return NULL;
    }
    for (i = 0; i < table->nslots; i++) {
        const slot_t *sl = &table->slots[i];
        pid_t pid = sl->pid;
        int alive = pid_alive(pid);
        apr_uint64_t served = 0;
        PyObject *d;
        int k;

        if (!slot_shown(sl)) {
            continue;
        }
        for (k = 0; k < 6; k++) {
            served += GET(sl->status[k]);
        }
        d = Py_BuildValue("{s:i,s:s,s:s,s:i,s:i,s:K,s:K,s:K,s:d}",
                          "process_num", sl->process,
                          "mode", sl->group >= 0 ? "daemon" : "embedded",
                          "process_group", group_name(sl->group),
                          "pid", alive ? (int)pid : 0,
                          "threads", sl->threads,
                          "active_requests",
                          (unsigned long long)(alive ? GET(sl->active) : 0),
                          "request_count", (unsigned long long)served,
                          "restarts", (unsigned long long)
                          (GET(sl->starts) ? GET(sl->starts) - 1 : 0),
                          "process_start",
                          (double)GET(sl->process_start) / 1e6);
        if (!d || PyList_Append(procs, d) < 0) {
            Py_XDECREF(d);
            Py_DECREF(procs);
            return NULL;
        }
        Py_DECREF(d);
    }
    res = Py_BuildValue("{s:d,s:O}", "current_time", (double)now / 1e6,
                        "processes", procs);
    Py_DECREF(procs);
    return res;
}

static int metrics_handler(request_rec *r)
{
    int wanted = r->handler && !strcmp(r->handler, METRICS_HANDLER);

    if (!wanted && (!metrics_url || r->main || strcmp(r->uri, metrics_url))) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->header_only) {
        return OK;
    }
    if (!table) {
        ap_rputs("# Tether runs no WSGI processes: nothing to report\n", r);
        return OK;
    }
    render_prometheus(r);
    return OK;
}

/* ---- mod_status ------------------------------------------------------- */

static int metrics_status(request_rec *r, int flags)
{
    tether_global_conf_t *conf = tether_config_global();
    int i, j, short_report = (flags & AP_STATUS_SHORT) != 0;

    if (!table || !conf->daemons || !conf->daemons->nelts) {
        return OK;
    }
    if (!short_report) {
        ap_rputs("<hr />\n<h2>Tether daemon process groups</h2>\n"
                 "<table border=\"0\"><tr><th>Group</th><th>Process</th>"
                 "<th>PID</th><th>Threads busy</th><th>Threads idle</th>"
                 "<th>Requests served</th><th>Restarts</th></tr>\n", r);
    }
    for (i = 0; i < conf->daemons->nelts; i++) {
        tether_daemon_group_t *g = APR_ARRAY_IDX(conf->daemons, i,
                                                 tether_daemon_group_t *);
        long busy_total = 0, idle_total = 0;
        apr_uint64_t served_total = 0;

        for (j = 0; j < g->processes; j++) {
            const slot_t *sl = &table->slots[group_base[i] + j];
            pid_t pid = sl->pid;
            int alive = pid_alive(pid);
            long busy = alive ? (long)GET(sl->active) : 0;
            long idle = alive && sl->threads > busy ? sl->threads - busy : 0;
            apr_uint64_t served = 0, starts = GET(sl->starts);
            int k;

            for (k = 0; k < 6; k++) {
                served += GET(sl->status[k]);
            }
            busy_total += busy;
            idle_total += idle;
            served_total += served;
            if (!short_report) {
                ap_rprintf(r, "<tr><td>%s</td><td>%d</td><td>%ld</td>"
                           "<td>%ld</td><td>%ld</td><td>%" APR_UINT64_T_FMT
                           "</td><td>%" APR_UINT64_T_FMT "</td></tr>\n",
                           ap_escape_html(r->pool, g->name), j,
                           alive ? (long)pid : 0L, busy, idle, served,
                           starts ? starts - 1 : 0);
            }
        }
        if (short_report) {
            ap_rprintf(r, "TetherGroup: %s\nTetherGroupBusyThreads: %ld\n"
                       "TetherGroupIdleThreads: %ld\n"
                       "TetherGroupRequests: %" APR_UINT64_T_FMT "\n",
                       g->name, busy_total, idle_total, served_total);
        }
    }
    if (!short_report) {
        ap_rputs("</table>\n", r);
    }
    return OK;
}

void tether_metrics_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(metrics_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* Before tether_daemon.c forks the daemons (APR_HOOK_LAST). */
    ap_hook_post_config(metrics_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(metrics_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(metrics_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    APR_OPTIONAL_HOOK(ap, status_hook, metrics_status, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
