/*
 * The in-process Python API: a module installed in every interpreter
 * Tether runs (Apache children and daemon processes), as "_tether" in
 * sys.modules and under the alias "mod_wsgi", so that code written for
 * mod_wsgi keeps working.  When no "tether" package can be imported in the
 * interpreter it is also "tether"; when the package is there (the venv of
 * tether-express), the package re-exports this module's names.
 *
 * It offers what mod_wsgi's module documents: version, process_group,
 * application_group, maximum_processes, threads_per_process,
 * request_data(), subscribe_events(), subscribe_shutdown(), the events
 * request_started, response_started, request_finished, request_exception
 * and process_stopping, start_recording_metrics(), request_metrics() and
 * process_metrics(); plus ApacheHandler, a logging handler that writes
 * records to the error log at the matching Apache level.
 */
#include "tether_metrics.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#define STATE_KEY "tether.api"

/* The request this thread is running, if any. */
static __thread tether_api_request_t *current;
static __thread int thread_number;      /* 1-based, per process */
static int threads_seen;

static const char *stop_reason = "shutdown_signal";

/*
 * The phases request_metrics() reports a mean, extremes and a histogram
 * of, in mod_wsgi's names.  The histogram has 65 buckets: 16 octaves from
 * 1 ms to 65536 ms, each cut in 4 equal parts (below 1 ms: bucket 0), and
 * one for 65536 ms and over.
 */
enum {
    PH_SERVER, PH_QUEUE, PH_DAEMON, PH_APPLICATION, PH_REQUEST, PH_INPUT,
    PH_OUTPUT, PH_GIL, NPHASES
};
static const char *const phase_names[NPHASES] = {
    "server_time", "queue_time", "daemon_time", "application_time",
    "request_time", "input_read_time", "output_write_time", "gil_wait_time"
};
#define NBUCKETS 65

typedef struct {
    double sum;                     /* seconds */
    apr_uint64_t n;
    apr_interval_time_t min, max;   /* usec, when n > 0 */
    apr_uint64_t buckets[NBUCKETS];
} phase_t;

/* One request thread of the process (thread_number - 1). */
typedef struct {
    apr_time_t current_start;       /* its request's start; 0: idle */
    apr_uint64_t completed;         /* in the window */
    double busy, cpu, max_duration; /* in the window, seconds */
    double elapsed;                 /* request_metrics(): current request */
    apr_uint64_t total;             /* since recording started */
} thread_acc_t;

/* Process-wide accounting for request_metrics()/process_metrics(). */
typedef struct {
    int recording;
    apr_time_t window_start;
    apr_uint64_t count;
    apr_uint64_t status[5];
    double busy;                    /* thread time in requests, clipped */
    phase_t phase[NPHASES];
    apr_uint64_t input_bytes, input_reads, output_bytes, output_writes;
    apr_uint64_t gil_waits;
    apr_interval_time_t gil_min, gil_max;   /* of one wait, usec */
    double cpu_user, cpu_system;    /* process CPU at window start */
    apr_uint64_t total_count;
    double total_busy;
} accounting_t;

static pthread_mutex_t acc_lock = PTHREAD_MUTEX_INITIALIZER;
static accounting_t acc;
/* Per-thread accounting, allocated when recording starts and kept for the
 * life of the process: one per thread of threads_per_process. */
static thread_acc_t *thread_slots;
static int nthread_slots;
static apr_time_t process_start;
static int active_requests;

/* ---- helpers ------------------------------------------------------------ */

static double seconds(apr_time_t t)
{
    return (double)t / 1e6;
}

static void process_cpu(double *user, double *system)
{
    struct rusage ru;

    *user = *system = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
        *system = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    }
}

static void thread_cpu(apr_interval_time_t *user, apr_interval_time_t *sys)
{
#ifdef RUSAGE_THREAD
    struct rusage ru;

    if (getrusage(RUSAGE_THREAD, &ru) == 0) {
        *user = ru.ru_utime.tv_sec * APR_USEC_PER_SEC + ru.ru_utime.tv_usec;
        *sys = ru.ru_stime.tv_sec * APR_USEC_PER_SEC + ru.ru_stime.tv_usec;
        return;
    }
#endif
    *user = *sys = 0;
}

static void memory(apr_uint64_t *rss, apr_uint64_t *max_rss)
{
    struct rusage ru;
    double cpu;

    tether_metrics_proc_usage(getpid(), rss, &cpu);
    *max_rss = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        *max_rss = (apr_uint64_t)ru.ru_maxrss * 1024;   /* Linux: KiB */
    }
    if (*max_rss < *rss) {
        *max_rss = *rss;    /* the two sources count pages differently */
    }
}

/* This interpreter's module, borrowed; NULL when not installed. */
static PyObject *api_module(void)
{
    PyObject *state = PyInterpreterState_GetDict(PyInterpreterState_Get());

    return state ? PyDict_GetItemString(state, STATE_KEY) : NULL;
}

/* A list attribute of the module, borrowed; NULL when absent. */
static PyObject *module_list(PyObject *mod, const char *name)
{
    PyObject *list = mod ? PyDict_GetItemString(PyModule_GetDict(mod), name)
                         : NULL;

    return list && PyList_Check(list) ? list : NULL;
}

static int set_item(PyObject *d, const char *key, PyObject *v)
{
    int rc;

    if (!v) {
        return -1;
    }
    rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

static void log_failure(const char *what)
{
    request_rec *r = current ? current->r : tether_log_current();

    tether_log_python_error(r, r ? r->server : ap_server_conf, what);
}

/*
 * Calls each subscriber in `list` with (name, **event); a dict returned is
 * merged into event for the subscribers after it.  A failing subscriber is
 * logged and skipped.  GIL held; the pending exception state is kept.
 */
static void dispatch(PyObject *list, const char *name, PyObject *event)
{
    PyObject *callbacks, *pyname;
    Py_ssize_t i;

    if (!list || PyList_GET_SIZE(list) == 0) {
        return;
    }
    callbacks = PyList_GetSlice(list, 0, PyList_GET_SIZE(list));
    pyname = PyUnicode_FromString(name);
    if (!callbacks || !pyname) {
        Py_XDECREF(callbacks);
        Py_XDECREF(pyname);
        log_failure("dispatching a Tether event");
        return;
    }
    for (i = 0; i < PyList_GET_SIZE(callbacks); i++) {
        PyObject *args = PyTuple_Pack(1, pyname);
        PyObject *res = args ? PyObject_Call(PyList_GET_ITEM(callbacks, i),
                                             args, event) : NULL;

        Py_XDECREF(args);
        if (!res) {
            log_failure(apr_psprintf(current ? current->r->pool
                                             : ap_server_conf->process->pool,
                                     "calling a subscriber of event '%s'",
                                     name));
            continue;
        }
        if (PyDict_Check(res) && PyDict_Update(event, res) < 0) {
            log_failure("merging what an event subscriber returned");
        }
        Py_DECREF(res);
    }
    Py_DECREF(callbacks);
    Py_DECREF(pyname);
}

/* The scratchpad of the current request, created on first use; borrowed. */
static PyObject *scratchpad(tether_api_request_t *ar)
{
    if (!ar->request_data) {
        ar->request_data = PyDict_New();
    }
    return ar->request_data;
}

/* ---- the module's functions --------------------------------------------- */

static PyObject *api_request_data(PyObject *self, PyObject *unused)
{
    PyObject *d;

    if (!current) {
        PyErr_SetString(PyExc_RuntimeError, "no request is active in this "
                        "thread");
        return NULL;
    }
    d = scratchpad(current);
    return d ? Py_NewRef(d) : NULL;
}

static PyObject *subscribe(PyObject *self, PyObject *callback,
                           const char *list_name)
{
    PyObject *list = module_list(self, list_name);

    if (!PyCallable_Check(callback)) {
        PyErr_Format(PyExc_TypeError, "the subscriber must be callable, "
                     "not %.200s", Py_TYPE(callback)->tp_name);
        return NULL;
    }
    if (!list || PyList_Append(list, callback) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_RuntimeError, "%s is missing from the "
                         "module", list_name);
        }
        return NULL;
    }
    return Py_NewRef(callback);
}

static PyObject *api_subscribe_events(PyObject *self, PyObject *callback)
{
    return subscribe(self, callback, "event_callbacks");
}

static PyObject *api_subscribe_shutdown(PyObject *self, PyObject *callback)
{
    return subscribe(self, callback, "shutdown_callbacks");
}

/* Request threads of this process (threads_per_process). */
static long request_threads(PyObject *mod)
{
    PyObject *v = PyDict_GetItemString(PyModule_GetDict(mod),
                                       "threads_per_process");
    long n = v ? PyLong_AsLong(v) : 1;

    if (n < 1) {
        PyErr_Clear();
        n = 1;
    }
    return n;
}

static PyObject *api_start_recording(PyObject *self, PyObject *unused)
{
    long n = request_threads(self);
    thread_acc_t *slots = NULL;

    if (!__atomic_load_n(&acc.recording, __ATOMIC_ACQUIRE)
        && !(slots = calloc((size_t)n, sizeof(*slots)))) {
        return PyErr_NoMemory();
    }
    pthread_mutex_lock(&acc_lock);
    if (!acc.recording) {
        /* Kept for the life of the process: request threads use it. */
        thread_slots = slots;
        nthread_slots = (int)n;
        slots = NULL;
        acc.window_start = apr_time_now();
        process_cpu(&acc.cpu_user, &acc.cpu_system);
        __atomic_store_n(&acc.recording, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&acc_lock);
    free(slots);        /* another thread started recording first */
    Py_RETURN_NONE;
}

/* The histogram bucket of a duration in usec (see phase_names). */
static int bucket_of(apr_interval_time_t us)
{
    apr_interval_time_t base = 1000;
    int octave;

    if (us < base) {
        return 0;
    }
    for (octave = 0; octave < 16; octave++, base *= 2) {
        if (us < 2 * base) {
            return octave * 4 + (int)((us - base) * 4 / base);
        }
    }
    return NBUCKETS - 1;
}

static void observe(phase_t *ph, apr_interval_time_t us)
{
    if (us < 0) {
        us = 0;
    }
    if (ph->n == 0 || us < ph->min) {
        ph->min = us;
    }
    if (ph->n == 0 || us > ph->max) {
        ph->max = us;
    }
    ph->n++;
    ph->sum += seconds(us);
    ph->buckets[bucket_of(us)]++;
}

/* A list of the `n` doubles (or counters, with `counts`) found at
 * `offset` in each of t[0..n-1]. */
static PyObject *thread_list(const thread_acc_t *t, int n, size_t offset,
                             int counts)
{
    PyObject *list = PyList_New(n);
    int i;

    for (i = 0; list && i < n; i++) {
        const char *field = (const char *)&t[i] + offset;
        PyObject *v = counts
                      ? PyLong_FromUnsignedLongLong(
                            *(const apr_uint64_t *)field)
                      : PyFloat_FromDouble(*(const double *)field);

        if (!v) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

static PyObject *usec_or_none(int have, apr_interval_time_t us)
{
    return have ? PyLong_FromLongLong((long long)us) : Py_NewRef(Py_None);
}

/*
 * Adds each phase's mean, NAME_min_us, NAME_max_us and NAME_buckets to a
 * request_metrics() dict.  Means are per request (`nreq`), except
 * queue_time (per request that queued); the daemon-only phases are None
 * (and their buckets zero) in embedded mode.  gil_wait_time's extremes
 * are of single waits, its mean and buckets per request.
 */
static int add_phases(PyObject *d, const accounting_t *a, double nreq,
                      int daemon)
{
    char key[64];
    int i, k;

    for (i = 0; i < NPHASES; i++) {
        const phase_t *ph = &a->phase[i];
        int shown = daemon || (i != PH_QUEUE && i != PH_DAEMON);
        int have = shown && ph->n > 0;
        apr_interval_time_t min = ph->min, max = ph->max;
        PyObject *mean, *buckets = PyList_New(NBUCKETS);

        for (k = 0; buckets && k < NBUCKETS; k++) {
            PyObject *v = PyLong_FromUnsignedLongLong(
                              shown ? ph->buckets[k] : 0);

            if (!v) {
                Py_CLEAR(buckets);
                break;
            }
            PyList_SET_ITEM(buckets, k, v);
        }
        if (!shown) {
            mean = Py_NewRef(Py_None);
        }
        else if (i == PH_QUEUE || i == PH_DAEMON) {
            mean = have ? PyFloat_FromDouble(ph->sum / ph->n)
                        : Py_NewRef(Py_None);
        }
        else {
            mean = PyFloat_FromDouble(ph->sum / nreq);
        }
        if (i == PH_GIL) {
            have = a->gil_waits > 0;
            min = a->gil_min;
            max = a->gil_max;
        }
        if (set_item(d, phase_names[i], mean) < 0) {
            Py_XDECREF(buckets);
            return -1;
        }
        snprintf(key, sizeof(key), "%s_buckets", phase_names[i]);
        if (set_item(d, key, buckets) < 0) {
            return -1;
        }
        snprintf(key, sizeof(key), "%s_min_us", phase_names[i]);
        if (set_item(d, key, usec_or_none(have, min)) < 0) {
            return -1;
        }
        snprintf(key, sizeof(key), "%s_max_us", phase_names[i]);
        if (set_item(d, key, usec_or_none(have, max)) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Adds the request_threads_* lists (one entry per request thread). */
static int add_thread_lists(PyObject *d, const thread_acc_t *t, int n)
{
    return set_item(d, "request_threads_completed",
                    thread_list(t, n, offsetof(thread_acc_t, completed), 1))
           || set_item(d, "request_threads_buckets",
                       thread_list(t, n, offsetof(thread_acc_t, completed),
                                   1))
           || set_item(d, "request_threads_busy_time",
                       thread_list(t, n, offsetof(thread_acc_t, busy), 0))
           || set_item(d, "request_threads_cpu_time",
                       thread_list(t, n, offsetof(thread_acc_t, cpu), 0))
           || set_item(d, "request_threads_current_elapsed",
                       thread_list(t, n, offsetof(thread_acc_t, elapsed), 0))
           || set_item(d, "request_threads_max_duration",
                       thread_list(t, n, offsetof(thread_acc_t,
                                                  max_duration), 0))
           ? -1 : 0;
}

static PyObject *api_request_metrics(PyObject *self, PyObject *unused)
{
    accounting_t a;
    apr_time_t now = apr_time_now();
    double period, user, system, n;
    apr_uint64_t rss, max_rss;
    long threads_max = request_threads(self);
    int daemon = 0, active = 0, nt = 0, i;
    thread_acc_t *t = NULL;
    PyObject *d, *pg;

    pthread_mutex_lock(&acc_lock);
    a = acc;
    if (acc.recording) {
        /* A fresh window; "recording" stays 1 throughout (it is read
         * without the lock). */
        accounting_t fresh;

        memset(&fresh, 0, sizeof(fresh));
        fresh.recording = 1;
        fresh.window_start = now;
        fresh.total_count = a.total_count + a.count;
        process_cpu(&fresh.cpu_user, &fresh.cpu_system);
        /* Threads in a request: their time so far belongs here. */
        nt = nthread_slots;
        t = nt ? malloc(sizeof(*t) * (size_t)nt) : NULL;
        for (i = 0; i < nt; i++) {
            thread_acc_t *slot = &thread_slots[i];
            apr_time_t start = __atomic_load_n(&slot->current_start,
                                               __ATOMIC_RELAXED);
            double tail = 0;

            if (start) {
                tail = seconds(now - (start > a.window_start
                                      ? start : a.window_start));
                slot->elapsed = seconds(now - start);
            }
            slot->busy += tail;
            a.busy += tail;
            if (t) {
                t[i] = *slot;
            }
            slot->completed = 0;
            slot->busy = slot->cpu = slot->max_duration = 0;
            slot->elapsed = 0;
        }
        fresh.total_busy = a.total_busy + a.busy;
        acc = fresh;
    }
    pthread_mutex_unlock(&acc_lock);
    if (!a.recording) {
        Py_RETURN_NONE;
    }
    if (nt && !t) {
        return PyErr_NoMemory();
    }
    for (i = 0; i < nt; i++) {
        active += t[i].completed > 0 || t[i].current_start != 0;
    }
    pg = PyDict_GetItemString(PyModule_GetDict(self), "process_group");
    daemon = pg && PyUnicode_Check(pg) && PyUnicode_GET_LENGTH(pg) > 0;
    period = seconds(now - a.window_start);
    n = a.count ? (double)a.count : 1.0;
    process_cpu(&user, &system);
    user -= a.cpu_user;
    system -= a.cpu_system;
    memory(&rss, &max_rss);
    if (period <= 0) {
        period = 1e-6;
    }
    d = Py_BuildValue(
        "{s:i,s:d,s:d,s:d,s:K,s:d,s:l,s:i,s:i,s:d,s:K,s:K,s:K,s:K,s:K,"
        "s:K,s:K,s:K,s:K,s:K,s:d,s:d,s:d,s:d,s:d,s:d,s:K,s:K}",
        "pid", (int)getpid(),
        "start_time", seconds(a.window_start),
        "stop_time", seconds(now),
        "sample_period", period,
        "request_count", (unsigned long long)a.count,
        "request_throughput", a.count / period,
        "request_threads_maximum", threads_max,
        "request_threads_started",
        __atomic_load_n(&threads_seen, __ATOMIC_RELAXED),
        "request_threads_active", active,
        "capacity_utilization", a.busy / (period * threads_max),
        "status_1xx", (unsigned long long)a.status[0],
        "status_2xx", (unsigned long long)a.status[1],
        "status_3xx", (unsigned long long)a.status[2],
        "status_4xx", (unsigned long long)a.status[3],
        "status_5xx", (unsigned long long)a.status[4],
        "input_bytes", (unsigned long long)a.input_bytes,
        "input_reads", (unsigned long long)a.input_reads,
        "output_bytes", (unsigned long long)a.output_bytes,
        "output_writes", (unsigned long long)a.output_writes,
        "gil_wait_count", (unsigned long long)a.gil_waits,
        "cpu_user_utilization", user / period,
        "cpu_system_utilization", system / period,
        "cpu_utilization", (user + system) / period,
        /* mod_wsgi's deprecated aliases of the three above */
        "cpu_user_time", user / period,
        "cpu_system_time", system / period,
        "cpu_time", (user + system) / period,
        "memory_rss", (unsigned long long)rss,
        "memory_max_rss", (unsigned long long)max_rss);
    if (d && (add_phases(d, &a, n, daemon) < 0
              || add_thread_lists(d, t, nt) < 0)) {
        Py_CLEAR(d);
    }
    free(t);
    return d;
}

static PyObject *api_process_metrics(PyObject *self, PyObject *unused)
{
    accounting_t a;
    apr_time_t now = apr_time_now();
    double user, system;
    apr_uint64_t rss, max_rss;
    apr_uint64_t *counts = NULL;
    int started = __atomic_load_n(&threads_seen, __ATOMIC_RELAXED);
    int nt, i;
    PyObject *d, *list;

    pthread_mutex_lock(&acc_lock);
    a = acc;
    nt = started < nthread_slots ? started : nthread_slots;
    if (a.recording && nt > 0
        && (counts = malloc(sizeof(*counts) * (size_t)nt))) {
        for (i = 0; i < nt; i++) {
            counts[i] = thread_slots[i].total;
        }
    }
    pthread_mutex_unlock(&acc_lock);
    if (!a.recording) {
        Py_RETURN_NONE;
    }
    if (nt > 0 && !counts) {
        return PyErr_NoMemory();
    }
    process_cpu(&user, &system);
    memory(&rss, &max_rss);
    d = Py_BuildValue(
        "{s:i,s:d,s:d,s:L,s:K,s:d,s:i,s:i,s:d,s:d,s:d,s:K,s:K}",
        "pid", (int)getpid(),
        "restart_time", seconds(process_start),
        "current_time", seconds(now),
        "running_time", (long long)apr_time_sec(now - process_start),
        "request_count", (unsigned long long)(a.total_count + a.count),
        "request_busy_time", a.total_busy + a.busy,
        "request_threads", started,
        "active_requests", __atomic_load_n(&active_requests,
                                           __ATOMIC_RELAXED),
        "cpu_user_time", user,
        "cpu_system_time", system,
        "cpu_time", user + system,
        "memory_rss", (unsigned long long)rss,
        "memory_max_rss", (unsigned long long)max_rss);
    list = d ? PyList_New(nt) : NULL;
    for (i = 0; list && i < nt; i++) {
        PyObject *entry = Py_BuildValue("{s:i,s:K}", "thread_id", i + 1,
                                        "request_count",
                                        (unsigned long long)counts[i]);

        if (!entry) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, entry);
    }
    free(counts);
    if (d && set_item(d, "threads", list) < 0) {
        Py_CLEAR(d);
    }
    return d;
}

static PyObject *api_server_metrics(PyObject *self, PyObject *unused)
{
    PyObject *pg = PyDict_GetItemString(PyModule_GetDict(self),
                                        "process_group");

    return tether_metrics_server_metrics(pg && PyUnicode_Check(pg)
                                         ? PyUnicode_AsUTF8(pg) : "");
}

/* _log(levelno, message): one error log line per message line, at the
 * Apache level of the Python level. */
static PyObject *api_log(PyObject *self, PyObject *args)
{
    int levelno, level;
    const char *msg;
    Py_ssize_t len;
    request_rec *r = current ? current->r : tether_log_current();

    if (!PyArg_ParseTuple(args, "is#:_log", &levelno, &msg, &len)) {
        return NULL;
    }
    level = levelno >= 50 ? APLOG_CRIT : levelno >= 40 ? APLOG_ERR
            : levelno >= 30 ? APLOG_WARNING : levelno >= 20 ? APLOG_INFO
            : levelno >= 10 ? APLOG_DEBUG : APLOG_TRACE1;
    Py_BEGIN_ALLOW_THREADS
    while (len >= 0) {
        const char *nl = memchr(msg, '\n', (size_t)len);
        int n = nl ? (int)(nl - msg) : (int)len;

        if (r) {
            ap_log_rerror(APLOG_MARK, level, 0, r, "%.*s", n, msg);
        }
        else {
            ap_log_error(APLOG_MARK, level, 0, ap_server_conf, "%.*s", n,
                         msg);
        }
        if (!nl) {
            break;
        }
        msg = nl + 1;
        len -= n + 1;
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyMethodDef api_methods[] = {
    {"request_data", api_request_data, METH_NOARGS,
     "request_data() -> the current request's scratchpad dict."},
    {"subscribe_events", api_subscribe_events, METH_O,
     "subscribe_events(callback): callback(name, **event) for every event."},
    {"subscribe_shutdown", api_subscribe_shutdown, METH_O,
     "subscribe_shutdown(callback): callback(name, **event) at "
     "process_stopping."},
    {"start_recording_metrics", api_start_recording, METH_NOARGS,
     "Starts the accounting request_metrics()/process_metrics() report."},
    {"request_metrics", api_request_metrics, METH_NOARGS,
     "Metrics of the interval since the previous call (None unless "
     "recording)."},
    {"process_metrics", api_process_metrics, METH_NOARGS,
     "Process totals and current state (None unless recording)."},
    {"server_metrics", api_server_metrics, METH_NOARGS,
     "Tether's table of processes (None unless WSGIServerMetrics On, or "
     "server-metrics=On for a daemon group)."},
    {"_log", api_log, METH_VARARGS,
     "_log(levelno, message): writes to Apache's error log."},
    {NULL, NULL, 0, NULL}
};

/* Defined in Python: a logging.Handler needs a Python class.  logging is
 * imported on first use of ApacheHandler, not in every interpreter. */
static const char api_python[] =
    "def __getattr__(name):\n"
    "    if name != 'ApacheHandler':\n"
    "        raise AttributeError(f'module {__name__!r} has no attribute '\n"
    "                             f'{name!r}')\n"
    "    import logging\n"
    "\n"
    "    class ApacheHandler(logging.Handler):\n"
    "        \"\"\"Writes records to Apache's error log at the matching\n"
    "        level: CRITICAL crit, ERROR error, WARNING warn, INFO info,\n"
    "        DEBUG debug, lower trace1; LogLevel tether:LEVEL filters.\"\"\"\n"
    "\n"
    "        def emit(self, record):\n"
    "            try:\n"
    "                _log(record.levelno, self.format(record))\n"
    "            except Exception:\n"
    "                self.handleError(record)\n"
    "\n"
    "    ApacheHandler.__module__ = __name__\n"
    "    globals()['ApacheHandler'] = ApacheHandler\n"
    "    return ApacheHandler\n";

static struct PyModuleDef api_def = {
    PyModuleDef_HEAD_INIT, "_tether",
    "Tether's in-process API (also importable as mod_wsgi).", -1,
    api_methods
};

static PyObject *version_of(const char *s)
{
    int a = 0, b = 0, c = 0;

    sscanf(s, "%d.%d.%d", &a, &b, &c);
    return Py_BuildValue("(iii)", a, b, c);
}

/* Fills a module's dict: the shared objects come from `from`. */
static int fill_module(PyObject *mod, PyObject *from, const char *version,
                       const char *process_group,
                       const char *application_group)
{
    PyObject *d = PyModule_GetDict(mod);
    tether_daemon_group_t *g = *process_group
                               ? tether_config_daemon(process_group) : NULL;
    int processes = 1, threads = 1;
    PyObject *res;

    if (g) {
        processes = g->processes;
        threads = g->threads;
    }
    else {
        if (ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &processes) != APR_SUCCESS
            || processes < 1) {
            processes = 1;
        }
        if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS
            || threads < 1) {
            threads = 1;
        }
    }
    if (set_item(d, "version", version_of(version)) < 0
        || set_item(d, "process_group", PyUnicode_FromString(process_group))
           < 0
        || set_item(d, "application_group",
                    PyUnicode_FromString(application_group)) < 0
        || set_item(d, "maximum_processes", PyLong_FromLong(processes)) < 0
        || set_item(d, "threads_per_process", PyLong_FromLong(threads)) < 0) {
        return -1;
    }
    if (from) {
        static const char *const shared[] = {
            "event_callbacks", "shutdown_callbacks", "active_requests",
            "request_data", "subscribe_events", "subscribe_shutdown",
            "start_recording_metrics", "request_metrics", "process_metrics",
            "server_metrics", "_log", "__getattr__", NULL
        };
        int i;

        for (i = 0; shared[i]; i++) {
            PyObject *v = PyDict_GetItemString(PyModule_GetDict(from),
                                               shared[i]);

            if (v && PyDict_SetItemString(d, shared[i], v) < 0) {
                return -1;
            }
        }
        return 0;
    }
    if (set_item(d, "__all__", Py_BuildValue(
                        "[sssssssssssssss]", "version", "process_group",
                        "application_group", "maximum_processes",
                        "threads_per_process", "event_callbacks",
                        "active_requests", "request_data",
                        "subscribe_events", "subscribe_shutdown",
                        "start_recording_metrics", "request_metrics",
                        "process_metrics", "server_metrics",
                        "ApacheHandler")) < 0
        || set_item(d, "event_callbacks", PyList_New(0)) < 0
        || set_item(d, "shutdown_callbacks", PyList_New(0)) < 0
        || set_item(d, "active_requests", PyDict_New()) < 0
        || PyDict_SetItemString(d, "__builtins__", PyEval_GetBuiltins())
           < 0) {
        return -1;
    }
    res = PyRun_String(api_python, Py_file_input, d, d);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* Whether a "tether" package is importable in this interpreter. */
static int package_importable(void)
{
    PyObject *util = PyImport_ImportModule("importlib.util");
    PyObject *spec = util ? PyObject_CallMethod(util, "find_spec", "s",
                                                "tether") : NULL;
    int found = spec && spec != Py_None;

    if (!spec) {
        PyErr_Clear();
    }
    Py_XDECREF(spec);
    Py_XDECREF(util);
    return found;
}

int tether_api_install(const char *process_group,
                       const char *application_group)
{
    PyObject *mod = NULL, *alias = NULL, *modules = PyImport_GetModuleDict();
    PyObject *state = PyInterpreterState_GetDict(PyInterpreterState_Get());
    int rc = -1;

    if (!process_start) {
        process_start = apr_time_now();
    }
    if (!state || !(mod = PyModule_Create(&api_def))
        || fill_module(mod, NULL, TETHER_VERSION, process_group,
                       application_group) < 0
        || !(alias = PyModule_New("mod_wsgi"))
        || fill_module(alias, mod, TETHER_MODWSGI_VERSION, process_group,
                       application_group) < 0
        || PyDict_SetItemString(state, STATE_KEY, mod) < 0
        || PyDict_SetItemString(modules, "_tether", mod) < 0
        || PyDict_SetItemString(modules, "mod_wsgi", alias) < 0) {
        goto cleanup;
    }
    if (!PyDict_GetItemString(modules, "tether") && !package_importable()
        && PyDict_SetItemString(modules, "tether", mod) < 0) {
        goto cleanup;
    }
    rc = 0;
cleanup:
    Py_XDECREF(alias);
    Py_XDECREF(mod);
    return rc;
}

/* ---- the request hooks ------------------------------------------------- */

static apr_time_t environ_time(const tether_request_t *req, const char *key)
{
    const char *v = req->environ ? apr_table_get(req->environ, key) : NULL;

    return v ? (apr_time_t)apr_atoi64(v) : 0;
}

/* The fields request_started and request_finished share. */
static PyObject *request_event(tether_api_request_t *ar, PyObject *data)
{
    return Py_BuildValue("{s:O,s:i,s:O,s:i,s:d,s:d,s:d,s:d}",
                         "request_id", ar->request_id,
                         "thread_id", thread_number,
                         "request_data", data,
                         "server_pid", (int)getpid(),
                         "request_start", seconds(ar->request_start),
                         "queue_start", seconds(ar->queue_start),
                         "daemon_start", seconds(ar->daemon_start),
                         "application_start",
                         seconds(ar->application_start));
}

void tether_api_request_begin(tether_api_request_t *ar, request_rec *r,
                              const tether_request_t *req, PyObject *environ,
                              PyObject **app)
{
    PyObject *mod = api_module();
    PyObject *callbacks = module_list(mod, "event_callbacks");
    int daemon = req->process_group && *req->process_group;
    const char *id;

    memset(ar, 0, sizeof(*ar));
    ar->r = r;
    ar->req = req;
    ar->application_start = apr_time_now();
    ar->request_start = environ_time(req, "tether.request_start");
    if (!ar->request_start) {
        ar->request_start = r->request_time;
    }
    if (daemon) {
        ar->queue_start = environ_time(req, "mod_wsgi.queue_start");
        ar->daemon_start = r->request_time;
    }
    if (!thread_number) {
        thread_number = __atomic_add_fetch(&threads_seen, 1,
                                           __ATOMIC_RELAXED);
    }
    current = ar;
    __atomic_add_fetch(&active_requests, 1, __ATOMIC_RELAXED);
    tether_metrics_request_begin();

    /* Acquire: thread_slots is set before recording goes to 1. */
    if (__atomic_load_n(&acc.recording, __ATOMIC_ACQUIRE)) {
        ar->timed = 1;
        if (thread_number <= nthread_slots) {
            __atomic_store_n(&thread_slots[thread_number - 1].current_start,
                             ar->application_start, __ATOMIC_RELAXED);
        }
    }
    ar->events = callbacks && PyList_GET_SIZE(callbacks) > 0;
    ar->timed = ar->timed || ar->events;
    if (ar->timed) {
        thread_cpu(&ar->cpu_user, &ar->cpu_system);
    }
    if (!ar->events) {
        return;
    }
    id = req->environ ? apr_table_get(req->environ, "tether.request_id")
                      : NULL;
    ar->request_id = PyUnicode_FromString(id ? id : "");
    if (ar->request_id && scratchpad(ar)) {
        PyObject *event = request_event(ar, ar->request_data);
        PyObject *active = PyDict_GetItemString(PyModule_GetDict(mod),
                                                "active_requests");

        if (event && active && PyDict_Check(active)) {
            PyObject *info = PyDict_Copy(event);

            if (!info || PyDict_SetItem(active, ar->request_id, info) < 0) {
                PyErr_Clear();
            }
            Py_XDECREF(info);
        }
        if (event
            && set_item(event, "request_environ", Py_NewRef(environ)) == 0
            && set_item(event, "application_object", Py_NewRef(*app)) == 0
            && set_item(event, "daemon_connects", PyLong_FromLong(1)) == 0
            && set_item(event, "daemon_restarts", PyLong_FromLong(0)) == 0) {
            PyObject *chosen;

            dispatch(callbacks, "request_started", event);
            chosen = PyDict_GetItemString(event, "application_object");
            if (chosen && chosen != *app) {
                Py_INCREF(chosen);
                Py_SETREF(*app, chosen);
            }
        }
        Py_XDECREF(event);
    }
    if (PyErr_Occurred()) {
        log_failure("preparing the request_started event");
    }
}

void tether_api_response_started(PyObject *status, PyObject *headers,
                                 PyObject *exc_info)
{
    tether_api_request_t *ar = current;
    PyObject *event;

    if (!ar || !ar->events) {
        return;
    }
    event = Py_BuildValue("{s:O,s:O,s:O,s:O,s:O}",
                          "request_id", ar->request_id,
                          "request_data", scratchpad(ar),
                          "response_status", status,
                          "response_headers", headers,
                          "exception_info", exc_info ? exc_info : Py_None);
    if (event) {
        dispatch(module_list(api_module(), "event_callbacks"),
                 "response_started", event);
        Py_DECREF(event);
    }
    else {
        log_failure("preparing the response_started event");
    }
}

void tether_api_request_exception(void)
{
    tether_api_request_t *ar = current;
    tether_saved_error_t saved;
    PyObject *type, *value, *tb, *event;

    if (!ar || !ar->events || !PyErr_Occurred()) {
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    saved.exc = PyErr_GetRaisedException();
    value = saved.exc;
    type = (PyObject *)Py_TYPE(value);
    tb = PyException_GetTraceback(value);
#else
    PyErr_Fetch(&saved.type, &saved.value, &saved.tb);
    PyErr_NormalizeException(&saved.type, &saved.value, &saved.tb);
    if (saved.tb && saved.value) {
        PyException_SetTraceback(saved.value, saved.tb);
    }
    type = saved.type;
    value = saved.value ? saved.value : Py_None;
    tb = saved.tb ? Py_NewRef(saved.tb) : NULL;
#endif
    event = Py_BuildValue("{s:O,s:O,s:(OOO)}",
                          "request_id", ar->request_id,
                          "request_data", scratchpad(ar),
                          "exception_info", type, value,
                          tb ? tb : Py_None);
    Py_XDECREF(tb);
    if (event) {
        dispatch(module_list(api_module(), "event_callbacks"),
                 "request_exception", event);
        Py_DECREF(event);
    }
    else {
        PyErr_Clear();
    }
    tether_error_restore(&saved);
}

/* Adds one finished request to the window; acc_lock held. */
static void account(const tether_api_request_t *ar, int status,
                    const tether_api_io_t *io, apr_time_t now,
                    const tether_metrics_sample_t *sample, double cpu)
{
    apr_time_t from = ar->application_start > acc.window_start
                      ? ar->application_start : acc.window_start;
    double busy = now > from ? seconds(now - from) : 0;
    int cls = status / 100;

    acc.count++;
    acc.status[(cls >= 1 && cls <= 5) ? cls - 1 : 4]++;
    acc.busy += busy;
    observe(&acc.phase[PH_SERVER], sample->latency);
    observe(&acc.phase[PH_REQUEST], sample->latency);
    observe(&acc.phase[PH_APPLICATION], sample->application);
    if (sample->queue >= 0) {
        observe(&acc.phase[PH_QUEUE], sample->queue);
    }
    if (ar->daemon_start) {
        observe(&acc.phase[PH_DAEMON], now - ar->daemon_start);
    }
    observe(&acc.phase[PH_INPUT], io->input_time);
    observe(&acc.phase[PH_OUTPUT], io->output_time);
    observe(&acc.phase[PH_GIL], io->gil_wait_time);
    if (io->gil_waits) {
        if (acc.gil_waits == 0 || io->gil_wait_min < acc.gil_min) {
            acc.gil_min = io->gil_wait_min;
        }
        if (io->gil_wait_max > acc.gil_max) {
            acc.gil_max = io->gil_wait_max;
        }
        acc.gil_waits += io->gil_waits;
    }
    acc.input_bytes += io->input_length > 0 ? io->input_length : 0;
    acc.input_reads += io->input_reads;
    acc.output_bytes += io->output_length > 0 ? io->output_length : 0;
    acc.output_writes += io->output_writes;
    if (thread_number >= 1 && thread_number <= nthread_slots) {
        thread_acc_t *slot = &thread_slots[thread_number - 1];

        slot->completed++;
        slot->total++;
        slot->busy += busy;
        slot->cpu += cpu;
        if (seconds(sample->application) > slot->max_duration) {
            slot->max_duration = seconds(sample->application);
        }
        __atomic_store_n(&slot->current_start, 0, __ATOMIC_RELAXED);
    }
}

/* request_finished's fields beyond those request_started has. */
static int finished_fields(PyObject *event, const tether_api_io_t *io,
                           apr_time_t now, apr_interval_time_t app_time,
                           int status, apr_interval_time_t user,
                           apr_interval_time_t sys)
{
    return set_item(event, "application_finish",
                    PyFloat_FromDouble(seconds(now))) < 0
           || set_item(event, "application_time",
                       PyFloat_FromDouble(seconds(app_time))) < 0
           || set_item(event, "input_reads",
                       PyLong_FromUnsignedLongLong(io->input_reads)) < 0
           || set_item(event, "input_length",
                       PyLong_FromLongLong(io->input_length)) < 0
           || set_item(event, "input_time",
                       PyFloat_FromDouble(seconds(io->input_time))) < 0
           || set_item(event, "output_writes",
                       PyLong_FromUnsignedLongLong(io->output_writes)) < 0
           || set_item(event, "output_length",
                       PyLong_FromLongLong(io->output_length)) < 0
           || set_item(event, "output_time",
                       PyFloat_FromDouble(seconds(io->output_time))) < 0
           || set_item(event, "status", PyLong_FromLong(status)) < 0
           || set_item(event, "cpu_user_time",
                       PyFloat_FromDouble(seconds(user))) < 0
           || set_item(event, "cpu_system_time",
                       PyFloat_FromDouble(seconds(sys))) < 0
           || set_item(event, "cpu_time",
                       PyFloat_FromDouble(seconds(user + sys))) < 0
           || set_item(event, "gil_wait_time",
                       PyFloat_FromDouble(seconds(io->gil_wait_time))) < 0
           || set_item(event, "gil_wait_count",
                       PyLong_FromUnsignedLongLong(io->gil_waits)) < 0
           ? -1 : 0;
}

void tether_api_request_end(tether_api_request_t *ar, int status,
                            const tether_api_io_t *io)
{
    apr_time_t now = apr_time_now();
    apr_interval_time_t app_time = now - ar->application_start;
    apr_interval_time_t user = 0, sys = 0;
    tether_metrics_sample_t sample;

    sample.status = status;
    sample.latency = now - ar->request_start;
    sample.queue = ar->queue_start && ar->daemon_start
                   ? ar->daemon_start - ar->queue_start : -1;
    sample.application = app_time;
    tether_metrics_request_end(&sample);
    __atomic_sub_fetch(&active_requests, 1, __ATOMIC_RELAXED);
    if (ar->timed) {
        thread_cpu(&user, &sys);
        user -= ar->cpu_user;
        sys -= ar->cpu_system;
    }

    /* Racy read on purpose: recording only ever goes from 0 to 1. */
    if (__atomic_load_n(&acc.recording, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&acc_lock);
        account(ar, status, io, now, &sample, seconds(user + sys));
        pthread_mutex_unlock(&acc_lock);
    }

    if (ar->events) {
        PyObject *event = request_event(ar, scratchpad(ar));
        PyObject *mod = api_module();
        PyObject *active = mod ? PyDict_GetItemString(PyModule_GetDict(mod),
                                                      "active_requests")
                               : NULL;

        if (event && finished_fields(event, io, now, app_time, status,
                                     user, sys) == 0) {
            dispatch(module_list(mod, "event_callbacks"), "request_finished",
                     event);
        }
        else {
            log_failure("preparing the request_finished event");
        }
        Py_XDECREF(event);
        if (active && PyDict_Check(active) && ar->request_id
            && PyDict_DelItem(active, ar->request_id) < 0) {
            PyErr_Clear();
        }
    }
    current = NULL;
    Py_CLEAR(ar->request_data);
    Py_CLEAR(ar->request_id);
}

/* ---- process_stopping ---------------------------------------------------- */

void tether_api_set_stop_reason(const char *why)
{
    stop_reason = why;
}

void tether_api_process_stopping(void)
{
    PyObject *mod = api_module();
    PyObject *event;

    if (!mod) {
        return;
    }
    event = Py_BuildValue("{s:s}", "shutdown_reason", stop_reason);
    if (!event) {
        log_failure("preparing the process_stopping event");
        return;
    }
    dispatch(module_list(mod, "event_callbacks"), "process_stopping", event);
    dispatch(module_list(mod, "shutdown_callbacks"), "process_stopping",
             event);
    Py_DECREF(event);
}
