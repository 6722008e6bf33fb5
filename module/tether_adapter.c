/*
 * The WSGI (PEP 3333) side of a request: builds the environ from the
 * request_rec, hands the application start_response() and write() (and
 * wsgi.input, from tether_input.c), and streams what it returns down
 * Apache's output filters.  Nothing of the body is held whole: each item
 * is passed on, with the GIL released, as the application yields it.
 */
#include "tether_adapter.h"
#include "tether_metrics.h"

#include "ap_mpm.h"
#include "util_script.h"
#include "apr_buckets.h"
#include "apr_portable.h"
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 102)
#include "http_ssl.h"
#else
#include "apr_optional.h"
APR_DECLARE_OPTIONAL_FN(int, ssl_is_https, (conn_rec *));
#endif

#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_BLKSIZE 8192

/* Output this small may go down the filters with the GIL held, where the
 * filters cannot block (req->small_pass_keeps_gil). */
#define SMALL_PASS (8 * 1024)

#define OUT_OK 0
#define OUT_STOP 1      /* stop sending: client gone or body complete */
#define OUT_ERROR -1    /* a Python exception is set */

typedef struct {
    const char *name;
    const char *value;
} header_t;

typedef struct {
    PyObject_HEAD
    PyObject *filelike;
    Py_ssize_t blksize;
} filewrapper_t;

static PyTypeObject start_response_type;
static PyTypeObject write_type;
static PyTypeObject filewrapper_type;

/* ---- small helpers ---------------------------------------------------- */

static PyObject *reqobj_new(PyTypeObject *type, adapter_t *ad)
{
    reqobj_t *o = PyObject_New(reqobj_t, type);

    if (o) {
        o->ad = ad;
    }
    return (PyObject *)o;
}

static void reqobj_dealloc(PyObject *self)
{
    Py_TYPE(self)->tp_free(self);
}

adapter_t *tether_reqobj_adapter(PyObject *self, PyObject *exc,
                                 const char *what)
{
    adapter_t *ad = ((reqobj_t *)self)->ad;

    if (!ad) {
        PyErr_Format(exc, "%s used after the request finished", what);
        return NULL;
    }
    if (ad->busy) {
        PyErr_Format(PyExc_RuntimeError, "%s called while another thread "
                     "is using the request", what);
        return NULL;
    }
    return ad;
}

/*
 * Copies a str made only of latin-1 code points into p.  NULL (without an
 * exception) when it holds a wider character.
 */
static char *latin1_dup(apr_pool_t *p, PyObject *s, apr_size_t *len)
{
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0) {
        PyErr_Clear();
        return NULL;
    }
#endif
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
        return NULL;
    }
    *len = (apr_size_t)PyUnicode_GET_LENGTH(s);
    return apr_pstrmemdup(p, (const char *)PyUnicode_1BYTE_DATA(s), *len);
}

/* RFC 9110 tchar */
static int is_tchar(unsigned char ch)
{
    return apr_isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Field value: VCHAR, obs-text, SP and HTAB; no CR, LF or other CTL. */
static int field_value_ok(const char *s, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* 1*DIGIT with optional surrounding whitespace; -1 when invalid. */
static apr_off_t parse_length(const char *s)
{
    apr_off_t n = 0;
    int digits = 0;

    while (*s == ' ' || *s == '\t') {
        s++;
    }
    for (; apr_isdigit(*s); s++, digits++) {
        if (n > (APR_INT64_MAX - 9) / 10) {
            return -1;
        }
        n = n * 10 + (*s - '0');
    }
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return (digits && !*s) ? n : -1;
}

static PyObject *version_tuple(const char *s)
{
    long part[3] = {0, 0, 0};
    int i;

    for (i = 0; i < 3 && apr_isdigit(*s); i++) {
        char *end;

        part[i] = strtol(s, &end, 10);
        s = end;
        if (*s != '.') {
            break;
        }
        s++;
    }
    return Py_BuildValue("(lll)", part[0], part[1], part[2]);
}

/* ---- the response: headers ------------------------------------------- */

/* Validates start_response's arguments and stores them in ad. */
static int response_parse(adapter_t *ad, PyObject *status,
                          PyObject *headers)
{
    apr_pool_t *p = ad->r->pool;
    apr_array_header_t *list;
    apr_off_t clen = -1;
    apr_size_t slen, len;
    Py_ssize_t i, n;
    const char *line;
    int code;

    if (!PyUnicode_Check(status)) {
        PyErr_Format(PyExc_TypeError, "status must be a str, not %.200s",
                     Py_TYPE(status)->tp_name);
        return -1;
    }
    line = latin1_dup(p, status, &slen);
    if (!line || slen < 3 || !apr_isdigit(line[0]) || !apr_isdigit(line[1])
        || !apr_isdigit(line[2]) || line[0] == '0'
        || (slen > 3 && line[3] != ' ') || !field_value_ok(line, slen)) {
        PyErr_Format(PyExc_ValueError, "invalid status %R: expected three "
                     "digits, a space and a reason phrase, e.g. '200 OK'",
                     status);
        return -1;
    }
    code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');

    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError, "response headers must be a list, "
                     "not %.200s", Py_TYPE(headers)->tp_name);
        return -1;
    }
    n = PyList_GET_SIZE(headers);
    list = apr_array_make(p, n > 0 ? (int)n : 1, sizeof(header_t));
    for (i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *item = PyList_GET_ITEM(headers, i);
        PyObject *name, *value;
        header_t *h;
        apr_size_t vlen, k;

        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_Format(PyExc_TypeError, "response header %zd must be a "
                         "(name, value) tuple, not %.200s", i,
                         Py_TYPE(item)->tp_name);
            return -1;
        }
        name = PyTuple_GET_ITEM(item, 0);
        value = PyTuple_GET_ITEM(item, 1);
        if (!PyUnicode_Check(name) || !PyUnicode_Check(value)) {
            PyErr_Format(PyExc_TypeError, "response header name and value "
                         "must be str, not %.200s and %.200s",
                         Py_TYPE(name)->tp_name, Py_TYPE(value)->tp_name);
            return -1;
        }
        h = apr_array_push(list);
        h->name = latin1_dup(p, name, &len);
        for (k = 0; h->name && k < len; k++) {
            if (!is_tchar((unsigned char)h->name[k])) {
                h->name = NULL;
            }
        }
        if (!h->name || len == 0) {
            PyErr_Format(PyExc_ValueError, "invalid response header name "
                         "%R: must be an HTTP token", name);
            return -1;
        }
        h->value = latin1_dup(p, value, &vlen);
        if (!h->value) {
            PyErr_Format(PyExc_ValueError, "value of response header %R "
                         "is not latin-1 encodable", name);
            return -1;
        }
        if (!field_value_ok(h->value, vlen)) {
            PyErr_Format(PyExc_ValueError, "value of response header %R "
                         "contains a control character (CR, LF, NUL ...)",
                         name);
            return -1;
        }
        if (!strcasecmp(h->name, "Content-Length")) {
            apr_off_t v = parse_length(h->value);

            if (v < 0 || (clen >= 0 && v != clen)) {
                PyErr_Format(PyExc_ValueError, "invalid Content-Length "
                             "%R", value);
                return -1;
            }
            clen = v;
        }
    }

    ad->status = code;
    ad->status_line = slen > 3 ? line : NULL;
    ad->headers = list;
    ad->content_length = clen;
    return 0;
}

/* Puts the application's status and headers on r, just before sending. */
static void response_commit(adapter_t *ad)
{
    request_rec *r = ad->r;
    const header_t *h = (const header_t *)ad->headers->elts;
    int i;

    r->status = ad->status;
    r->status_line = ad->status_line;
    for (i = 0; i < ad->headers->nelts; i++) {
        if (!strcasecmp(h[i].name, "Content-Type")) {
            ap_set_content_type(r, h[i].value);
        }
        else if (strcasecmp(h[i].name, "Content-Length")) {
            apr_table_addn(r->headers_out, h[i].name, h[i].value);
        }
    }
    if (ad->content_length >= 0) {
        ap_set_content_length(r, ad->content_length);
    }
    ad->committed = 1;
}

/* Whether this response carries a body that Content-Length describes. */
static int response_has_body(const adapter_t *ad)
{
    return !ad->r->header_only && ad->status >= 200 && ad->status != 204
           && ad->status != 304;
}

static int response_short(const adapter_t *ad)
{
    return ad->content_length >= 0 && ad->sent < ad->content_length
           && response_has_body(ad);
}

static PyObject *reraise(PyObject *exc_info)
{
    PyObject *type, *value, *tb;

    if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3
        || !PyExceptionClass_Check(PyTuple_GET_ITEM(exc_info, 0))) {
        PyErr_SetString(PyExc_TypeError, "exc_info must be a (type, value, "
                        "traceback) tuple as returned by sys.exc_info()");
        return NULL;
    }
    type = PyTuple_GET_ITEM(exc_info, 0);
    value = PyTuple_GET_ITEM(exc_info, 1);
    tb = PyTuple_GET_ITEM(exc_info, 2);
#if PY_VERSION_HEX >= 0x030C0000
    if (!PyExceptionInstance_Check(value)) {
        /* An unnormalized (type, None, tb): let Python build the value. */
        PyErr_SetObject(type, value);
        return NULL;
    }
    if (tb != Py_None) {
        PyException_SetTraceback(value, tb);
    }
    PyErr_SetRaisedException(Py_NewRef(value));
#else
    PyErr_Restore(Py_NewRef(type), Py_NewRef(value),
                  tb == Py_None ? NULL : Py_NewRef(tb));
#endif
    return NULL;
}

static PyObject *start_response_call(PyObject *self, PyObject *args,
                                     PyObject *kwds)
{
    static char *kwlist[] = {"status", "response_headers", "exc_info", NULL};
    PyObject *status, *headers, *exc_info = Py_None;
    adapter_t *ad;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:start_response",
                                     kwlist, &status, &headers, &exc_info)) {
        return NULL;
    }
    ad = tether_reqobj_adapter(self, PyExc_RuntimeError, "start_response()");
    if (!ad) {
        return NULL;
    }
    if (exc_info != Py_None) {
        if (ad->committed) {
            return reraise(exc_info);
        }
    }
    else if (ad->started) {
        PyErr_SetString(PyExc_RuntimeError, "start_response() called again "
                        "without exc_info");
        return NULL;
    }
    if (response_parse(ad, status, headers) < 0) {
        return NULL;
    }
    ad->started = 1;
    tether_api_response_started(status, headers,
                                exc_info != Py_None ? exc_info : NULL);
    return Py_NewRef(ad->write);
}

/* ---- the response: body ----------------------------------------------- */

/*
 * Passes ad->bb down the output filters with the GIL released; when the
 * request is timed, adds the time to output_time and the wait for the GIL
 * after it to the GIL waits.
 */
static apr_status_t output_pass(adapter_t *ad)
{
    request_rec *r = ad->r;
    apr_interval_time_t t0 = 0, t1 = 0;
    apr_status_t rv;
    apr_off_t len = -1;

    /*
     * A small brigade that cannot block (daemon mode: it only fills the
     * connection's send queue) goes without handing the GIL over, which
     * would cost a thread switch per request.
     */
    if (ad->req->small_pass_keeps_gil
        && apr_brigade_length(ad->bb, 0, &len) == APR_SUCCESS
        && len >= 0 && len <= SMALL_PASS) {
        if (ad->timed) {
            t0 = tether_clock_us();
        }
        rv = ap_pass_brigade(r->output_filters, ad->bb);
        apr_brigade_cleanup(ad->bb);
        if (ad->timed) {
            ad->io.output_time += tether_clock_us() - t0;
        }
    }
    else {
        ad->busy = 1;
        Py_BEGIN_ALLOW_THREADS
        if (ad->timed) {
            t0 = tether_clock_us();
        }
        rv = ap_pass_brigade(r->output_filters, ad->bb);
        apr_brigade_cleanup(ad->bb);
        if (ad->timed) {
            t1 = tether_clock_us();
        }
        Py_END_ALLOW_THREADS
        if (ad->timed) {
            ad->io.output_time += t1 - t0;
            tether_io_gil_wait(&ad->io, tether_clock_us() - t1);
        }
        ad->busy = 0;
    }

    if (rv == APR_SUCCESS && !r->connection->aborted) {
        return APR_SUCCESS;
    }
    if (!ad->client_gone) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, TETHER_LOGNO(0403)
                      "client connection lost while sending the response "
                      "of %s (%" APR_OFF_T_FMT " body bytes passed on)",
                      ad->what, ad->sent);
    }
    ad->client_gone = 1;
    return rv != APR_SUCCESS ? rv : APR_ECONNABORTED;
}

static int output_stopped(const adapter_t *ad)
{
    return ad->client_gone || ad->output_closed || ad->eos_sent;
}

/* Clips len to what Content-Length still allows; logs the excess once. */
static apr_size_t output_clip(adapter_t *ad, apr_size_t len)
{
    if (ad->content_length < 0
        || (apr_off_t)len <= ad->content_length - ad->sent) {
        return len;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, ad->r, TETHER_LOGNO(0401)
                  "%s returned more data than its Content-Length of %"
                  APR_OFF_T_FMT "; the rest was dropped", ad->what,
                  ad->content_length);
    ad->truncated = 1;
    return (apr_size_t)(ad->content_length - ad->sent);
}

/*
 * Sends data (which the caller keeps alive) right away, the status and
 * headers first if still pending.
 */
static int output_data(adapter_t *ad, const char *data, apr_size_t len,
                       int flush)
{
    apr_bucket_alloc_t *ba = ad->r->connection->bucket_alloc;

    if (len == 0) {
        return OUT_OK;
    }
    if (!ad->started) {
        PyErr_SetString(PyExc_RuntimeError, "response data sent before "
                        "start_response() was called");
        return OUT_ERROR;
    }
    if (output_stopped(ad) || ad->truncated) {
        return OUT_STOP;
    }
    len = output_clip(ad, len);
    if (!ad->committed) {
        response_commit(ad);
    }
    if (len > 0) {
        APR_BRIGADE_INSERT_TAIL(ad->bb,
                                apr_bucket_transient_create(data, len, ba));
        ad->io.output_writes++;
    }
    if (flush) {
        APR_BRIGADE_INSERT_TAIL(ad->bb, apr_bucket_flush_create(ba));
    }
    ad->sent += (apr_off_t)len;
    if (output_pass(ad) != APR_SUCCESS || ad->truncated) {
        return OUT_STOP;
    }
    return OUT_OK;
}

/*
 * Ends a response whose body went out in part: the client must be able to
 * tell it is incomplete, so the chunked encoding is left unterminated and
 * the connection is closed.
 */
static void output_abort(adapter_t *ad)
{
    request_rec *r = ad->r;
    conn_rec *c = r->connection;

    if (output_stopped(ad)) {
        return;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, TETHER_LOGNO(0405)
                  "response of %s aborted after %" APR_OFF_T_FMT
                  " body bytes; closing the connection", ad->what, ad->sent);
    c->keepalive = AP_CONN_CLOSE;
    APR_BRIGADE_INSERT_TAIL(ad->bb, ap_bucket_error_create(HTTP_BAD_GATEWAY,
                            NULL, r->pool, c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(ad->bb, apr_bucket_eos_create(c->bucket_alloc));
    ad->eos_sent = 1;
    output_pass(ad);
}

static void log_short(adapter_t *ad)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, ad->r, TETHER_LOGNO(0402)
                  "%s returned %" APR_OFF_T_FMT " bytes, less than its "
                  "Content-Length of %" APR_OFF_T_FMT, ad->what, ad->sent,
                  ad->content_length);
}

/*
 * Completes a response after the application succeeded.  Returns OK, or
 * HTTP_INTERNAL_SERVER_ERROR when nothing was sent and Apache should answer.
 */
static int output_finish(adapter_t *ad)
{
    apr_bucket_alloc_t *ba = ad->r->connection->bucket_alloc;

    if (output_stopped(ad)) {
        return OK;
    }
    if (response_short(ad)) {
        log_short(ad);
        if (!ad->committed) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        output_abort(ad);
        return OK;
    }
    if (!ad->committed) {
        response_commit(ad);
    }
    APR_BRIGADE_INSERT_TAIL(ad->bb, apr_bucket_eos_create(ba));
    ad->eos_sent = 1;
    output_pass(ad);
    return OK;
}

static int type_error_not_bytes(PyObject *item)
{
    PyErr_Format(PyExc_TypeError, "sequence of byte string values expected, "
                 "value of type %.200s found", Py_TYPE(item)->tp_name);
    return -1;
}

/*
 * A list or tuple is all there already: send it in one pass with EOS and
 * no flush, so Apache can still compute Content-Length.  The tuple keeps
 * every item alive while the GIL is released.
 */
static int output_sequence(adapter_t *ad, PyObject *seq)
{
    apr_bucket_alloc_t *ba = ad->r->connection->bucket_alloc;
    Py_ssize_t i, n = PyTuple_GET_SIZE(seq);
    apr_off_t total = 0;
    int is_short;

    for (i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(seq, i);

        if (!PyBytes_Check(item)) {
            return type_error_not_bytes(item);
        }
        total += PyBytes_GET_SIZE(item);
    }
    /* No start_response, or an empty body: output_finish() decides. */
    if (!ad->started || total == 0 || output_stopped(ad) || ad->truncated) {
        return 0;
    }
    if (!ad->committed) {
        response_commit(ad);
    }
    for (i = 0; i < n && !ad->truncated; i++) {
        PyObject *item = PyTuple_GET_ITEM(seq, i);
        apr_size_t len = output_clip(ad, PyBytes_GET_SIZE(item));

        if (len > 0) {
            APR_BRIGADE_INSERT_TAIL(ad->bb, apr_bucket_transient_create(
                                    PyBytes_AS_STRING(item), len, ba));
            ad->sent += (apr_off_t)len;
        }
    }
    if (!APR_BRIGADE_EMPTY(ad->bb)) {
        ad->io.output_writes++;
    }
    is_short = response_short(ad);
    if (!is_short) {
        APR_BRIGADE_INSERT_TAIL(ad->bb, apr_bucket_eos_create(ba));
        ad->eos_sent = 1;
    }
    if (output_pass(ad) == APR_SUCCESS && is_short) {
        log_short(ad);
        output_abort(ad);
    }
    return 0;
}

static int output_iterate(adapter_t *ad, PyObject *result)
{
    PyObject *it, *item;
    int rc = 0;

    if (!(it = PyObject_GetIter(result))) {
        return -1;
    }
    while ((item = PyIter_Next(it)) != NULL) {
        int out;

        if (!PyBytes_Check(item)) {
            type_error_not_bytes(item);
            Py_DECREF(item);
            rc = -1;
            break;
        }
        out = output_data(ad, PyBytes_AS_STRING(item),
                          (apr_size_t)PyBytes_GET_SIZE(item), 1);
        Py_DECREF(item);
        if (out != OUT_OK) {
            rc = out == OUT_ERROR ? -1 : 0;
            break;
        }
    }
    if (!item && PyErr_Occurred()) {
        rc = -1;
    }
    Py_DECREF(it);
    return rc;
}

static apr_status_t close_fd(void *data)
{
    close(*(int *)data);
    return APR_SUCCESS;
}

/*
 * A wsgi.file_wrapper around a regular file goes out as a file bucket, so
 * Apache can sendfile() it.  Returns 1 when sent, 0 to iterate instead.
 */
static int output_file(adapter_t *ad, filewrapper_t *fw)
{
    request_rec *r = ad->r;
    apr_bucket_alloc_t *ba = r->connection->bucket_alloc;
    core_dir_config *dconf = ap_get_core_module_config(r->per_dir_config);
    apr_int32_t flags = APR_FOPEN_READ;
    apr_off_t offset, len;
    apr_file_t *file;
    apr_bucket *e;
    PyObject *res;
    struct stat st;
    int fd, *dupfd, is_short;

    if (!ad->started || !fw->filelike || output_stopped(ad)
        || ad->truncated) {
        return 0;
    }
    if (!(res = PyObject_CallMethod(fw->filelike, "fileno", NULL))) {
        PyErr_Clear();
        return 0;
    }
    fd = (int)PyLong_AsLong(res);
    Py_DECREF(res);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        PyErr_Clear();
        return 0;
    }
    if (!(res = PyObject_CallMethod(fw->filelike, "tell", NULL))) {
        PyErr_Clear();
        return 0;
    }
    offset = (apr_off_t)PyLong_AsLongLong(res);
    Py_DECREF(res);
    if (offset < 0) {
        PyErr_Clear();
        return 0;
    }
    len = st.st_size > offset ? st.st_size - offset : 0;
    if (ad->content_length >= 0 && len > ad->content_length - ad->sent) {
        len = ad->content_length - ad->sent;
    }
    if (len == 0) {
        return 0;
    }

    dupfd = apr_palloc(r->pool, sizeof(*dupfd));
    *dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (*dupfd < 0) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, errno, r, TETHER_LOGNO(0406)
                      "cannot duplicate the file descriptor of the "
                      "wsgi.file_wrapper; iterating it instead");
        return 0;
    }
    apr_pool_cleanup_register(r->pool, dupfd, close_fd,
                              apr_pool_cleanup_null);
    if (tether_dispatch_sendfile(r, 0)) {
        flags |= APR_FOPEN_SENDFILE_ENABLED;
    }
    apr_os_file_put(&file, dupfd, flags, r->pool);

    if (!ad->committed) {
        response_commit(ad);
    }
    apr_brigade_insert_file(ad->bb, file, offset, len, r->pool);
    if (dconf->enable_mmap == ENABLE_MMAP_OFF) {
        for (e = APR_BRIGADE_FIRST(ad->bb); e != APR_BRIGADE_SENTINEL(ad->bb);
             e = APR_BUCKET_NEXT(e)) {
            if (APR_BUCKET_IS_FILE(e)) {
                apr_bucket_file_enable_mmap(e, 0);
            }
        }
    }
    ad->sent += len;
    ad->io.output_writes++;
    is_short = response_short(ad);
    if (!is_short) {
        APR_BRIGADE_INSERT_TAIL(ad->bb, apr_bucket_eos_create(ba));
        ad->eos_sent = 1;
    }
    if (output_pass(ad) == APR_SUCCESS && is_short) {
        log_short(ad);
        output_abort(ad);
    }
    return 1;
}

/* Sends what the application returned; -1 with a Python error set. */
static int output_result(adapter_t *ad, PyObject *result)
{
    PyObject *seq;
    int rc;

    if (Py_IS_TYPE(result, &filewrapper_type)) {
        if (output_file(ad, (filewrapper_t *)result)) {
            return 0;
        }
        if (PyErr_Occurred()) {
            return -1;
        }
    }
    else if (PyTuple_CheckExact(result)) {
        return output_sequence(ad, result);
    }
    else if (PyList_CheckExact(result)) {
        if (!(seq = PyList_AsTuple(result))) {
            return -1;
        }
        rc = output_sequence(ad, seq);
        Py_DECREF(seq);
        return rc;
    }
    return output_iterate(ad, result);
}

/* Calls result.close() if it has one; -1 with a Python error set. */
static int result_close(PyObject *result)
{
    PyObject *close, *res;

    if (PyList_CheckExact(result) || PyTuple_CheckExact(result)
        || PyBytes_CheckExact(result)) {
        return 0;
    }
    if (!(close = PyObject_GetAttrString(result, "close"))) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    res = PyObject_CallNoArgs(close);
    Py_DECREF(close);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* ---- write() ------------------------------------------------------------ */

static PyObject *write_call(PyObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *data;
    adapter_t *ad;
    int out;

    if (kwds && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "write() takes no keyword "
                        "arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O:write", &data)) {
        return NULL;
    }
    ad = tether_reqobj_adapter(self, PyExc_RuntimeError, "write()");
    if (!ad) {
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be a byte "
                     "string, not %.200s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (ad->eos_sent && !ad->client_gone) {
        PyErr_SetString(PyExc_RuntimeError, "write() called after the "
                        "response was completed");
        return NULL;
    }
    /* args holds data across the GIL release inside output_data(). */
    out = output_data(ad, PyBytes_AS_STRING(data),
                      (apr_size_t)PyBytes_GET_SIZE(data), 1);
    if (out == OUT_ERROR) {
        return NULL;
    }
    if (ad->client_gone) {
        PyErr_SetString(PyExc_OSError, "failed to write response data: "
                        "the client connection was closed");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- wsgi.file_wrapper -------------------------------------------------- */

static int filewrapper_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"filelike", "blksize", NULL};
    filewrapper_t *fw = (filewrapper_t *)self;
    PyObject *filelike;
    Py_ssize_t blksize = FILE_BLKSIZE;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|n:file_wrapper", kwlist,
                                     &filelike, &blksize)) {
        return -1;
    }
    if (blksize <= 0) {
        PyErr_SetString(PyExc_ValueError, "blksize must be positive");
        return -1;
    }
    Py_XSETREF(fw->filelike, Py_NewRef(filelike));
    fw->blksize = blksize;
    return 0;
}

static int filewrapper_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((filewrapper_t *)self)->filelike);
    return 0;
}

static int filewrapper_clear(PyObject *self)
{
    Py_CLEAR(((filewrapper_t *)self)->filelike);
    return 0;
}

static void filewrapper_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    filewrapper_clear(self);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *filewrapper_iternext(PyObject *self)
{
    filewrapper_t *fw = (filewrapper_t *)self;
    PyObject *data;

    if (!fw->filelike) {
        return NULL;
    }
    data = PyObject_CallMethod(fw->filelike, "read", "n", fw->blksize);
    if (data && ((PyBytes_Check(data) && PyBytes_GET_SIZE(data) == 0)
                 || (PyUnicode_Check(data)
                     && PyUnicode_GET_LENGTH(data) == 0))) {
        Py_CLEAR(data);
    }
    return data;
}

static PyObject *filewrapper_close(PyObject *self, PyObject *unused)
{
    filewrapper_t *fw = (filewrapper_t *)self;
    PyObject *close, *res;

    if (!fw->filelike) {
        Py_RETURN_NONE;
    }
    if (!(close = PyObject_GetAttrString(fw->filelike, "close"))) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return NULL;
        }
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    res = PyObject_CallNoArgs(close);
    Py_DECREF(close);
    return res;
}

static PyObject *filewrapper_get_filelike(PyObject *self, void *closure)
{
    PyObject *f = ((filewrapper_t *)self)->filelike;

    return Py_NewRef(f ? f : Py_None);
}

static PyObject *filewrapper_get_blksize(PyObject *self, void *closure)
{
    return PyLong_FromSsize_t(((filewrapper_t *)self)->blksize);
}

static PyMethodDef filewrapper_methods[] = {
    {"close", filewrapper_close, METH_NOARGS, "Closes the file-like."},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef filewrapper_getset[] = {
    {"filelike", filewrapper_get_filelike, NULL, "the wrapped file", NULL},
    {"blksize", filewrapper_get_blksize, NULL, "bytes per block", NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

/* ---- the types ---------------------------------------------------------- */

static PyTypeObject start_response_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tether.StartResponse",
    .tp_basicsize = sizeof(reqobj_t),
    .tp_dealloc = reqobj_dealloc,
    .tp_call = start_response_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "start_response(status, response_headers, exc_info=None)",
};

static PyTypeObject write_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tether.Write",
    .tp_basicsize = sizeof(reqobj_t),
    .tp_dealloc = reqobj_dealloc,
    .tp_call = write_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "write(data): sends data to the client at once.",
};

static PyTypeObject filewrapper_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tether.FileWrapper",
    .tp_basicsize = sizeof(filewrapper_t),
    .tp_dealloc = filewrapper_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
                | Py_TPFLAGS_BASETYPE,
    .tp_doc = "wsgi.file_wrapper(filelike, blksize=8192)",
    .tp_traverse = filewrapper_traverse,
    .tp_clear = filewrapper_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = filewrapper_iternext,
    .tp_methods = filewrapper_methods,
    .tp_getset = filewrapper_getset,
    .tp_init = filewrapper_init,
    .tp_new = PyType_GenericNew,
};

int tether_adapter_init(void)
{
    if (PyType_Ready(&tether_input_type) < 0
        || PyType_Ready(&start_response_type) < 0
        || PyType_Ready(&write_type) < 0
        || PyType_Ready(&filewrapper_type) < 0) {
        return -1;
    }
    return 0;
}

/* ---- the environ -------------------------------------------------------- */

static int env_set_obj(PyObject *env, const char *key, PyObject *v)
{
    int rc;

    if (!v) {
        return -1;
    }
    rc = PyDict_SetItemString(env, key, v);
    Py_DECREF(v);
    return rc;
}

/*
 * What the environ of every request of an interpreter shares, kept in its
 * state dict: the constant entries, and the key strings already made.
 * Keys repeat from request to request (CGI names, the usual headers), so
 * each is decoded once and then only looked up: a string per key and its
 * hash less per request.  A slot that keeps missing is taken over, so
 * header names a client makes up cannot stop the usual ones from being
 * kept, and at most KEY_SLOTS keys of at most KEY_MAX bytes are kept.
 * Each slot also keeps the last value its key had (of at most VALUE_MAX
 * bytes): most values (SERVER_SOFTWARE, SCRIPT_FILENAME, the usual
 * headers...) repeat too, and an equal one is shared, not made again.
 */
#define KEY_SLOTS 256           /* a power of two */
#define KEY_PROBES 4
#define KEY_MAX 64              /* longer keys are made each time */
#define VALUE_MAX 128           /* longer values are never kept */

typedef struct {
    apr_uint32_t hash;
    apr_size_t len;
    PyObject *key;
    PyObject *value;            /* the key's last value, or NULL */
} key_slot_t;

typedef struct {
    long flags;                 /* multithread | multiprocess << 1 */
    PyObject *base;             /* the constant entries */
    key_slot_t slots[KEY_SLOTS];
} environ_cache_t;

#define ENVIRON_CACHE "tether.environ_cache"

static void environ_cache_free(PyObject *capsule)
{
    environ_cache_t *ec = PyCapsule_GetPointer(capsule, ENVIRON_CACHE);
    int i;

    if (!ec) {
        PyErr_Clear();
        return;
    }
    Py_XDECREF(ec->base);
    for (i = 0; i < KEY_SLOTS; i++) {
        Py_XDECREF(ec->slots[i].key);
        Py_XDECREF(ec->slots[i].value);
    }
    free(ec);
}

/*
 * The slot hash of a key: eight bytes per step, not one (a request has
 * some 70 keys, and a byte-at-a-time hash was a tenth of the cost of
 * building the environ in daemon mode).
 */
static apr_uint32_t key_hash(const char *s, apr_size_t len)
{
    apr_uint64_t h = 0x9e3779b97f4a7c15ull ^ len, w;

    for (; len >= 8; s += 8, len -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    if (len) {
        for (w = 0; len; len--) {
            w = (w << 8) | (unsigned char)*s++;
        }
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return (apr_uint32_t)(h ^ (h >> 29));
}

/*
 * A new reference to the key string for s[0..len) in *key (NULL after an
 * error); returns its slot, or NULL when the key is too long to keep.
 */
static key_slot_t *environ_key(environ_cache_t *ec, const char *s,
                               apr_size_t len, PyObject **key)
{
    apr_uint32_t h;
    key_slot_t *slot;
    apr_size_t i;

    if (len > KEY_MAX) {
        *key = PyUnicode_DecodeLatin1(s, (Py_ssize_t)len, NULL);
        return NULL;
    }
    h = key_hash(s, len);
    for (i = 0; i < KEY_PROBES; i++) {
        slot = &ec->slots[(h + i) & (KEY_SLOTS - 1)];
        if (!slot->key) {
            break;
        }
        if (slot->hash == h && slot->len == len
            && !memcmp(PyUnicode_DATA(slot->key), s, len)) {
            Py_INCREF(slot->key);
            *key = slot->key;
            return slot;
        }
    }
    /* Latin-1 makes a one-byte string whose data are these bytes. */
    if (!(*key = PyUnicode_DecodeLatin1(s, (Py_ssize_t)len, NULL))) {
        return NULL;
    }
    if (i == KEY_PROBES) {
        slot = &ec->slots[h & (KEY_SLOTS - 1)];
    }
    Py_XSETREF(slot->key, *key);
    Py_INCREF(*key);
    Py_CLEAR(slot->value);
    slot->hash = h;
    slot->len = len;
    return slot;
}

/* A new reference to the value s[0..len) of the key in `slot` (NULL: not
 * kept): the slot's last value when equal, else a new string. */
static PyObject *environ_value(key_slot_t *slot, const char *s,
                               apr_size_t len)
{
    PyObject *v = slot ? slot->value : NULL;

    if (v && (apr_size_t)PyUnicode_GET_LENGTH(v) == len
        && !memcmp(PyUnicode_DATA(v), s, len)) {
        Py_INCREF(v);
        return v;
    }
    v = PyUnicode_DecodeLatin1(s, (Py_ssize_t)len, NULL);
    if (v && slot && len <= VALUE_MAX) {
        Py_INCREF(v);
        Py_XSETREF(slot->value, v);
    }
    return v;
}

/* The names apps read as "tether.NAME" and as mod_wsgi's "mod_wsgi.NAME";
 * the Apache side gives only the first, the second shares its value. */
#define BOTH_NAME(name) \
    { name, sizeof(name) - 1, "mod_wsgi." name, sizeof("mod_wsgi." name) - 1 }

static const struct {
    const char *name;           /* after "tether." */
    apr_size_t len;
    const char *alias;          /* the mod_wsgi key */
    apr_size_t alias_len;
} both_names[] = {
    BOTH_NAME("process_group"), BOTH_NAME("application_group"),
    BOTH_NAME("callable_object"), BOTH_NAME("script_name"),
    BOTH_NAME("path_info"), BOTH_NAME("script_reloading"),
    BOTH_NAME("request_id"), BOTH_NAME("request_start"),
    BOTH_NAME("script_start"),
};
#define BOTH_NAMES (sizeof(both_names) / sizeof(both_names[0]))

static int env_set_key(PyObject *env, environ_cache_t *ec, const char *key,
                       apr_size_t len, PyObject *v)
{
    PyObject *k;
    int rc;

    environ_key(ec, key, len, &k);
    rc = k ? PyDict_SetItem(env, k, v) : -1;
    Py_XDECREF(k);
    return rc;
}

static int env_copy_table(PyObject *env, environ_cache_t *ec, apr_table_t *t)
{
    const apr_array_header_t *arr = apr_table_elts(t);
    const apr_table_entry_t *elts = (const apr_table_entry_t *)arr->elts;
    int i;

    for (i = 0; i < arr->nelts; i++) {
        const char *key = elts[i].key;
        apr_size_t klen;
        key_slot_t *slot;
        PyObject *k, *v = NULL;
        apr_size_t j;
        int rc = -1;

        if (!key || !elts[i].val) {
            continue;
        }
        klen = strlen(key);
        slot = environ_key(ec, key, klen, &k);
        if (k && (v = environ_value(slot, elts[i].val,
                                    strlen(elts[i].val))) != NULL) {
            rc = PyDict_SetItem(env, k, v);
        }
        Py_XDECREF(k);
        if (rc == 0 && klen > 7 && !memcmp(key, "tether.", 7)) {
            for (j = 0; j < BOTH_NAMES; j++) {
                if (both_names[j].len == klen - 7
                    && !memcmp(key + 7, both_names[j].name, klen - 7)) {
                    rc = env_set_key(env, ec, both_names[j].alias,
                                     both_names[j].alias_len, v);
                    break;
                }
            }
        }
        Py_XDECREF(v);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

static int connection_is_https(conn_rec *c)
{
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 102)
    return ap_ssl_conn_is_ssl(c);
#else
    APR_OPTIONAL_FN_TYPE(ssl_is_https) *fn;

    fn = APR_RETRIEVE_OPTIONAL_FN(ssl_is_https);
    return fn && fn(c);
#endif
}

/*
 * WSGIMapHEADToGET: Auto maps a HEAD when a content filter (mod_deflate,
 * mod_cache...) may need the whole body to get the headers right.
 */
static int head_maps_to_get(request_rec *r, const tether_request_t *req)
{
    ap_filter_t *f;

    if (!r->header_only || strcmp(r->method, "HEAD")) {
        return 0;
    }
    switch (req->map_head_to_get) {
    case TETHER_HEAD_OFF:
        return 0;
    case TETHER_HEAD_ON:
        return 1;
    default:
        for (f = r->output_filters; f; f = f->next) {
            if (f->frec->ftype < AP_FTYPE_PROTOCOL) {
                return 1;
            }
        }
        return 0;
    }
}

static const char *request_id(request_rec *r)
{
    const char *id = NULL;

    if (!r->log_id) {
        ap_run_generate_log_id(r->connection, r, &id);
        if (id) {
            r->log_id = id;
        }
    }
    return r->log_id ? r->log_id : "";
}

/* Sets "tether.NAME"; the environ dict gets "mod_wsgi.NAME" too (see
 * both_names), the names apps look for. */
#define TABLE_SET_BOTH(t, name, value) \
    apr_table_setn((t), "tether." name, (value))

apr_table_t *tether_environ_strings(request_rec *r,
                                    const tether_request_t *req)
{
    conn_rec *c = r->connection;
    const tether_script_t *hs;
    apr_table_t *t;
    const char *v;
    char *path_info;
    int https;

    /*
     * With r->path_info set, ap_add_cgi_vars() runs a sub-request to find
     * PATH_TRANSLATED: a whole URI walk per request, which also logs an
     * access denial whenever DocumentRoot is not readable (mod_wsgi issue
     * 833).  Hide it and give the usual value, DocumentRoot + PATH_INFO.
     */
    path_info = r->path_info;
    r->path_info = NULL;
    ap_add_common_vars(r);
    ap_add_cgi_vars(r);
    r->path_info = path_info;
    t = apr_table_copy(r->pool, r->subprocess_env);
    if (req->path_info && *req->path_info) {
        apr_table_setn(t, "PATH_TRANSLATED",
                       apr_pstrcat(r->pool, ap_document_root(r),
                                   req->path_info, NULL));
    }
    /* mod_wsgi's HTTPS=1 for TLS connections; "on" may come from SetEnv. */
    if ((https = connection_is_https(c))) {
        apr_table_setn(t, "HTTPS", "1");
    }
    else if ((v = apr_table_get(t, "HTTPS"))) {
        https = !strcasecmp(v, "on") || !strcmp(v, "1");
    }
    https = https || !strcmp(ap_http_scheme(r), "https");

    apr_table_setn(t, "SCRIPT_NAME", req->script_name ? req->script_name
                                                      : "");
    apr_table_setn(t, "PATH_INFO", req->path_info ? req->path_info : "");
    if (req->pass_authorization
        && (v = apr_table_get(r->headers_in, "Authorization"))) {
        apr_table_setn(t, "HTTP_AUTHORIZATION", v);
    }
    if (head_maps_to_get(r, req)) {
        apr_table_setn(t, "REQUEST_METHOD", "GET");
    }
    apr_table_setn(t, "wsgi.url_scheme", https ? "https" : "http");

    TABLE_SET_BOTH(t, "process_group",
                   req->process_group ? req->process_group : "");
    TABLE_SET_BOTH(t, "application_group",
                   req->application_group ? req->application_group : "");
    TABLE_SET_BOTH(t, "callable_object",
                   req->callable_object ? req->callable_object
                                        : "application");
    TABLE_SET_BOTH(t, "script_name",
                   req->script_name ? req->script_name : "");
    TABLE_SET_BOTH(t, "path_info", req->path_info ? req->path_info : "");
    TABLE_SET_BOTH(t, "script_reloading", req->script_reloading ? "1" : "0");
    TABLE_SET_BOTH(t, "request_id", request_id(r));
    TABLE_SET_BOTH(t, "request_start",
                   apr_psprintf(r->pool, "%" APR_TIME_T_FMT,
                                r->request_time));
    TABLE_SET_BOTH(t, "script_start",
                   apr_psprintf(r->pool, "%" APR_TIME_T_FMT,
                                apr_time_now()));
    apr_table_setn(t, "tether.script_file",
                   req->script_file ? req->script_file : "");
    apr_table_setn(t, "mod_wsgi.request_handler",
                   r->handler ? r->handler : TETHER_HANDLER);
    hs = tether_dispatch_handler_script(r);
    apr_table_setn(t, "mod_wsgi.handler_script", hs ? hs->script : "");
    apr_table_setn(t, "mod_wsgi.listener_host",
                   c->local_addr->hostname ? c->local_addr->hostname : "");
    apr_table_setn(t, "mod_wsgi.listener_port",
                   apr_psprintf(r->pool, "%u", c->local_addr->port));
    tether_proxy_apply(r, t);
    return t;
}

/* The constant entries of the environ, built once per interpreter. */
static PyObject *environ_base_new(const tether_request_t *req)
{
    PyObject *base = PyDict_New();
    int rc;

    if (!base) {
        return NULL;
    }
    rc = env_set_obj(base, "wsgi.version", Py_BuildValue("(ii)", 1, 0));
    rc |= PyDict_SetItemString(base, "wsgi.input_terminated", Py_True);
    rc |= PyDict_SetItemString(base, "wsgi.multithread",
                               req->multithread ? Py_True : Py_False);
    rc |= PyDict_SetItemString(base, "wsgi.multiprocess",
                               req->multiprocess ? Py_True : Py_False);
    rc |= PyDict_SetItemString(base, "wsgi.run_once", Py_False);
    rc |= PyDict_SetItemString(base, "wsgi.file_wrapper",
                               (PyObject *)&filewrapper_type);
    rc |= env_set_obj(base, "tether.version", version_tuple(TETHER_VERSION));
    rc |= env_set_obj(base, "mod_wsgi.version",
                      version_tuple(TETHER_MODWSGI_VERSION));
    if (rc) {
        Py_DECREF(base);
        return NULL;
    }
    return base;
}

/* This interpreter's environ cache, made on first use. */
static environ_cache_t *environ_cache(const tether_request_t *req)
{
    PyObject *state = PyInterpreterState_GetDict(PyInterpreterState_Get());
    long flags = (req->multithread ? 1 : 0) | (req->multiprocess ? 2 : 0);
    environ_cache_t *ec;
    PyObject *capsule;

    if (!state) {
        return NULL;
    }
    capsule = PyDict_GetItemString(state, ENVIRON_CACHE);
    if (capsule) {
        ec = PyCapsule_GetPointer(capsule, ENVIRON_CACHE);
    }
    else {
        if (!(ec = calloc(1, sizeof(*ec)))) {
            PyErr_NoMemory();
            return NULL;
        }
        ec->flags = -1;
        if (!(capsule = PyCapsule_New(ec, ENVIRON_CACHE,
                                      environ_cache_free))) {
            free(ec);
            return NULL;
        }
        if (PyDict_SetItemString(state, ENVIRON_CACHE, capsule) < 0) {
            Py_DECREF(capsule);
            return NULL;
        }
        Py_DECREF(capsule);
    }
    if (ec && ec->flags != flags) {
        PyObject *base = environ_base_new(req);

        if (!base) {
            return NULL;
        }
        Py_XSETREF(ec->base, base);
        ec->flags = flags;
    }
    return ec;
}

/*
 * The environ dict: the constant entries, the strings the Apache side
 * built (req->environ), and this request's wsgi.input and wsgi.errors.
 */
static PyObject *environ_build(adapter_t *ad)
{
    PyObject *env = tether_adapter_environ(ad->req, ad->errors);

    if (!env || PyDict_SetItemString(env, "wsgi.input", ad->input) < 0) {
        Py_XDECREF(env);
        return NULL;
    }
    /* WSGIPassApacheRequest On (embedded mode only): the request_rec for
     * C extensions written against Apache's API, as mod_wsgi passes it. */
    if (ad->req->pass_apache_request
        && env_set_obj(env, "apache.request_rec",
                       PyCapsule_New(ad->r, "apache.request_rec",
                                     NULL)) < 0) {
        Py_DECREF(env);
        return NULL;
    }
    return env;
}

PyObject *tether_adapter_environ(const tether_request_t *req,
                                 PyObject *errors)
{
    environ_cache_t *ec = environ_cache(req);
    PyObject *env = ec ? PyDict_Copy(ec->base) : NULL;

    if (!env || env_copy_table(env, ec, req->environ) < 0
        || PyDict_SetItemString(env, "wsgi.errors", errors) < 0) {
        Py_XDECREF(env);
        return NULL;
    }
    return env;
}

/* ---- one request -------------------------------------------------------- */

static int adapter_open(adapter_t *ad, request_rec *r,
                        const tether_request_t *req)
{
    apr_bucket_alloc_t *ba = r->connection->bucket_alloc;

    memset(ad, 0, sizeof(*ad));
    ad->r = r;
    ad->req = req;
    ad->what = apr_psprintf(r->pool, "WSGI application '%s'",
                            req->script_file ? req->script_file : r->uri);
    tether_input_open(ad);
    ad->bb = apr_brigade_create(r->pool, ba);
    ad->content_length = -1;

    ad->input = reqobj_new(&tether_input_type, ad);
    ad->start = reqobj_new(&start_response_type, ad);
    ad->write = reqobj_new(&write_type, ad);
    ad->errors = tether_log_new(r, r->server, APLOG_ERR, "wsgi.errors");
    return (ad->input && ad->start && ad->write && ad->errors) ? 0 : -1;
}

/* Cuts the objects the application may keep loose from the request. */
static void adapter_close(adapter_t *ad)
{
    PyObject **objs[3] = {&ad->input, &ad->start, &ad->write};
    int i;

    for (i = 0; i < 3; i++) {
        if (*objs[i]) {
            ((reqobj_t *)*objs[i])->ad = NULL;
            Py_CLEAR(*objs[i]);
        }
    }
    if (ad->errors) {
        tether_log_close(ad->errors);
        Py_CLEAR(ad->errors);
    }
}

static void log_error(adapter_t *ad, const char *doing)
{
    tether_log_python_error(ad->r, ad->r->server,
                            apr_psprintf(ad->r->pool, "%s %s", doing,
                                         ad->what));
}

int tether_adapter_run(request_rec *r, const tether_request_t *req,
                       PyObject *app)
{
    PyObject *environ = NULL, *result = NULL;
    int failed = 0, rc = OK, began = 0;
    tether_api_request_t ar;
    adapter_t ad;

    if (adapter_open(&ad, r, req) < 0
        || !(environ = environ_build(&ad))) {
        log_error(&ad, "preparing the request for");
        rc = HTTP_INTERNAL_SERVER_ERROR;
        goto cleanup;
    }

    /* request_started may hand back another application object. */
    Py_INCREF(app);
    tether_api_request_begin(&ar, r, req, environ, &app);
    ad.timed = ar.timed;
    began = 1;
    result = PyObject_CallFunctionObjArgs(app, environ, ad.start, NULL);
    if (!result) {
        tether_api_request_exception();
        log_error(&ad, "calling");
        failed = 1;
    }
    else if (output_result(&ad, result) < 0) {
        tether_api_request_exception();
        log_error(&ad, "sending the response of");
        failed = 1;
    }
    if (result && result_close(result) < 0) {
        tether_api_request_exception();
        log_error(&ad, "closing the response of");
        failed = failed || !ad.committed;
    }
    if (!failed && !ad.started && !ad.output_closed) {
        PyErr_SetString(PyExc_RuntimeError, "the application returned "
                        "without calling start_response()");
        log_error(&ad, "completing the response of");
        failed = 1;
    }

    if (ad.output_closed) {
        rc = OK;
    }
    else if (failed && !ad.committed) {
        rc = HTTP_INTERNAL_SERVER_ERROR;
    }
    else if (failed) {
        output_abort(&ad);
    }
    else {
        rc = output_finish(&ad);
    }

cleanup:
    adapter_close(&ad);
    Py_XDECREF(result);
    if (began) {
        ad.io.input_length = tether_input_consumed(&ad);
        ad.io.output_length = ad.sent;
        /* The status the client got: 500 when Apache makes the page. */
        tether_api_request_end(&ar, rc != OK ? rc
                                    : ad.started ? ad.status : 0, &ad.io);
        Py_DECREF(app);
    }
    Py_XDECREF(environ);
    return rc;
}
