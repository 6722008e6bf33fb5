/*
 * wsgi.input: the request body, read from Apache's input filters as the
 * application asks for it (Content-Length and de-chunked bodies alike).
 * Reads run with the GIL released.  Only readline() looks ahead, into a
 * buffer of INPUT_BUFSIZE bytes; read() copies straight into the bytes
 * object it returns, so memory follows what the application asks for.
 */
#include "tether_adapter.h"

/* Look-ahead kept for readline(); reads at least this big bypass it. */
#define INPUT_BUFSIZE 8192
/* Body bytes asked of Apache's input filters per call, at most, unless
 * the request says otherwise: one socket bucket.  What one call returns
 * sits in buckets of the connection's allocator, which keeps them once
 * freed for as long as the connection lives: 32 KiB per call left some
 * 40 KiB with every keep-alive connection. */
#define INPUT_READ_STEP APR_BUCKET_BUFF_SIZE
/* First allocation of a read() whose length is not known in advance. */
#define INPUT_CHUNK 65536

/*
 * Reads up to `want` body bytes into dst; runs without the GIL.  *got is 0
 * only at the end of the body (ad->in_eof set).  With `fill`, goes on
 * until `want` bytes or the end (read(size) waits for them anyway, and
 * Apache hands over at most 8000 bytes per call: one GIL release for all
 * of them); else returns what the first call gave.  An error after some
 * data returns the data; the error is for the next call.
 */
static apr_status_t input_fetch_nogil(adapter_t *ad, char *dst,
                                      apr_size_t want, int fill,
                                      apr_size_t *got)
{
    request_rec *r = ad->r;
    apr_bucket_brigade *bb = ad->in_bb;
    apr_status_t rv;

    *got = 0;
    while ((*got == 0 || (fill && *got < want)) && !ad->in_eof) {
        if (APR_BRIGADE_EMPTY(bb)) {
            apr_size_t step = want - *got;
            apr_size_t most = ad->req->input_step ? ad->req->input_step
                                                  : INPUT_READ_STEP;

            if (step > most) {
                step = most;
            }
            rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                                APR_BLOCK_READ, (apr_off_t)step);
            if (rv != APR_SUCCESS) {
                apr_brigade_cleanup(bb);
                return rv;
            }
            if (APR_BRIGADE_EMPTY(bb)) {
                return APR_INCOMPLETE;
            }
        }
        while (!APR_BRIGADE_EMPTY(bb) && *got < want) {
            apr_bucket *e = APR_BRIGADE_FIRST(bb);
            const char *data;
            apr_size_t len;

            if (APR_BUCKET_IS_EOS(e)) {
                ad->in_eof = 1;
                apr_brigade_cleanup(bb);
                break;
            }
            if (AP_BUCKET_IS_ERROR(e)) {
                ad->in_http_error = ((ap_bucket_error *)e->data)->status;
                apr_brigade_cleanup(bb);
                return APR_EGENERAL;
            }
            if (APR_BUCKET_IS_METADATA(e)) {
                apr_bucket_delete(e);
                continue;
            }
            rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                apr_brigade_cleanup(bb);
                return rv;
            }
            if (len > want - *got) {
                /* Keep the rest, valid past the next filter call. */
                len = want - *got;
                apr_bucket_split(e, len);
                apr_bucket_setaside(APR_BUCKET_NEXT(e), r->pool);
            }
            memcpy(dst + *got, data, len);
            *got += len;
            apr_bucket_delete(e);
        }
    }
    return APR_SUCCESS;
}

static Py_ssize_t input_raise(adapter_t *ad)
{
    apr_status_t rv = ad->in_error;
    char buf[128];

    if (rv == AP_FILTER_ERROR) {
        PyErr_Format(PyExc_OSError, "request body rejected by Apache "
                     "(HTTP status %d was sent to the client)",
                     ad->r->status);
    }
    else if (ad->in_http_error) {
        PyErr_Format(PyExc_OSError, "error reading the request body "
                     "(HTTP status %d)", ad->in_http_error);
    }
    else if (APR_STATUS_IS_TIMEUP(rv)) {
        PyErr_SetString(PyExc_TimeoutError,
                        "timed out reading the request body");
    }
    else if (APR_STATUS_IS_EOF(rv) || APR_STATUS_IS_INCOMPLETE(rv)) {
        PyErr_SetString(PyExc_OSError, "client closed the connection "
                        "before sending the whole request body");
    }
    else {
        PyErr_Format(PyExc_OSError, "error reading the request body: %s",
                     apr_strerror(rv, buf, sizeof(buf)));
    }
    return -1;
}

/*
 * Reads from Apache with the GIL released: >0 bytes, 0 at EOF, -1 error
 * (`fill` as for input_fetch_nogil).  Counts the read and, when the
 * request is timed, the time it took and the wait for the GIL after it.
 */
static Py_ssize_t input_fetch(adapter_t *ad, char *dst, apr_size_t want,
                              int fill)
{
    apr_interval_time_t t0 = 0, t1 = 0;
    apr_status_t rv;
    apr_size_t got = 0;

    if (ad->in_error) {
        return input_raise(ad);
    }
    if (ad->in_eof || want == 0) {
        return 0;
    }
    ad->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    if (ad->timed) {
        t0 = tether_clock_us();
    }
    rv = input_fetch_nogil(ad, dst, want, fill, &got);
    if (ad->timed) {
        t1 = tether_clock_us();
    }
    Py_END_ALLOW_THREADS
    if (ad->timed) {
        ad->io.input_time += t1 - t0;
        tether_io_gil_wait(&ad->io, tether_clock_us() - t1);
    }
    ad->busy = 0;
    ad->io.input_reads++;
    ad->in_fetched += (apr_off_t)got;

    if (got > 0 && ad->in_remaining > 0) {
        ad->in_remaining -= (apr_off_t)got;
        if (ad->in_remaining < 0) {
            ad->in_remaining = 0;
        }
    }
    if (rv == APR_SUCCESS) {
        return (Py_ssize_t)got;
    }
    ad->in_error = rv;
    /* Do not let Apache try to drain a body that just failed. */
    ad->r->connection->keepalive = AP_CONN_CLOSE;
    if (rv == AP_FILTER_ERROR) {
        ad->output_closed = 1;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, ad->r, TETHER_LOGNO(0404)
                  "reading the request body for %s failed", ad->what);
    return got > 0 ? (Py_ssize_t)got : input_raise(ad);
}

/* Refills the look-ahead (allocated on first use: most requests never
 * read a line, and every byte of a request pool stays with the connection
 * for its life).  As input_fetch, 0 at the end of the body. */
static Py_ssize_t input_refill(adapter_t *ad)
{
    Py_ssize_t n;

    if (!ad->in_buf) {
        ad->in_buf = apr_palloc(ad->r->pool, INPUT_BUFSIZE);
    }
    n = input_fetch(ad, ad->in_buf, INPUT_BUFSIZE, 0);
    if (n > 0) {
        ad->in_pos = 0;
        ad->in_len = (apr_size_t)n;
    }
    return n;
}

/* Takes up to `want` bytes from the look-ahead or from Apache. */
static Py_ssize_t input_take(adapter_t *ad, char *dst, apr_size_t want)
{
    Py_ssize_t n;

    if (ad->in_pos == ad->in_len) {
        if (want >= INPUT_BUFSIZE) {
            return input_fetch(ad, dst, want, 1);
        }
        n = input_refill(ad);
        if (n <= 0) {
            return n;
        }
    }
    if (want > ad->in_len - ad->in_pos) {
        want = ad->in_len - ad->in_pos;
    }
    memcpy(dst, ad->in_buf + ad->in_pos, want);
    ad->in_pos += want;
    return (Py_ssize_t)want;
}

/* Body bytes still to come when that is known (Content-Length), else -1. */
static apr_off_t input_known(const adapter_t *ad)
{
    if (ad->in_remaining < 0) {
        return -1;
    }
    return ad->in_remaining + (apr_off_t)(ad->in_len - ad->in_pos);
}

static PyObject *bytes_finish(PyObject *res, Py_ssize_t got)
{
    if (!res || got == 0) {
        Py_XDECREF(res);
        return PyBytes_FromStringAndSize("", 0);
    }
    if (got != PyBytes_GET_SIZE(res) && _PyBytes_Resize(&res, got) < 0) {
        return NULL;
    }
    return res;
}

/* Reads `size` bytes, fewer only at the end of the body; all if size<0. */
static PyObject *input_read_size(adapter_t *ad, Py_ssize_t size)
{
    Py_ssize_t want = size < 0 ? PY_SSIZE_T_MAX : size;
    Py_ssize_t cap = want, got = 0, n;
    apr_off_t known = input_known(ad);
    PyObject *res;

    if (known >= 0 && known < (apr_off_t)cap) {
        cap = (Py_ssize_t)known;
    }
    else if (known < 0 && cap > INPUT_CHUNK) {
        cap = INPUT_CHUNK;
    }
    if (cap == 0) {
        return PyBytes_FromStringAndSize("", 0);
    }
    if (!(res = PyBytes_FromStringAndSize(NULL, cap))) {
        return NULL;
    }
    while (got < want) {
        if (got == cap) {
            if (input_known(ad) == 0 || ad->in_eof) {
                break;
            }
            cap = cap < want / 2 ? cap * 2 : want;
            if (_PyBytes_Resize(&res, cap) < 0) {
                return NULL;
            }
        }
        n = input_take(ad, PyBytes_AS_STRING(res) + got,
                       (apr_size_t)(cap - got));
        if (n < 0) {
            Py_DECREF(res);
            return NULL;
        }
        if (n == 0) {
            break;
        }
        got += n;
    }
    return bytes_finish(res, got);
}

static int bytes_append(PyObject **res, Py_ssize_t got, const char *data,
                        Py_ssize_t len)
{
    Py_ssize_t cap = *res ? PyBytes_GET_SIZE(*res) : 0;

    if (got + len > cap) {
        cap = cap * 2 > got + len ? cap * 2 : got + len;
        if (cap < 256) {
            cap = 256;
        }
        if (!*res) {
            *res = PyBytes_FromStringAndSize(NULL, cap);
            if (!*res) {
                return -1;
            }
        }
        else if (_PyBytes_Resize(res, cap) < 0) {
            return -1;
        }
    }
    memcpy(PyBytes_AS_STRING(*res) + got, data, len);
    return 0;
}

/* One line, newline included; at most `limit` bytes when limit >= 0. */
static PyObject *input_readline_size(adapter_t *ad, Py_ssize_t limit)
{
    PyObject *res = NULL;
    Py_ssize_t got = 0, n;

    while (limit < 0 || got < limit) {
        const char *start, *nl;
        apr_size_t avail, take;

        if (ad->in_pos == ad->in_len) {
            n = input_refill(ad);
            if (n < 0) {
                Py_XDECREF(res);
                return NULL;
            }
            if (n == 0) {
                break;
            }
        }
        start = ad->in_buf + ad->in_pos;
        avail = ad->in_len - ad->in_pos;
        if (limit >= 0 && avail > (apr_size_t)(limit - got)) {
            avail = (apr_size_t)(limit - got);
        }
        nl = memchr(start, '\n', avail);
        take = nl ? (apr_size_t)(nl - start) + 1 : avail;
        if (bytes_append(&res, got, start, (Py_ssize_t)take) < 0) {
            Py_XDECREF(res);
            return NULL;
        }
        got += (Py_ssize_t)take;
        ad->in_pos += take;
        if (nl) {
            break;
        }
    }
    return bytes_finish(res, got);
}

static adapter_t *input_adapter(PyObject *self)
{
    return tether_reqobj_adapter(self, PyExc_ValueError, "wsgi.input");
}

/* Argument converter: an int, or None for "no limit" (-1). */
static int size_converter(PyObject *o, void *p)
{
    Py_ssize_t *size = p;

    if (o == Py_None) {
        *size = -1;
        return 1;
    }
    if (!PyIndex_Check(o)) {
        PyErr_Format(PyExc_TypeError, "argument should be integer or "
                     "None, not '%.200s'", Py_TYPE(o)->tp_name);
        return 0;
    }
    *size = PyNumber_AsSsize_t(o, PyExc_OverflowError);
    return !(*size == -1 && PyErr_Occurred());
}

static PyObject *input_read(PyObject *self, PyObject *args)
{
    Py_ssize_t size = -1;
    adapter_t *ad;

    if (!PyArg_ParseTuple(args, "|O&:read", size_converter, &size)) {
        return NULL;
    }
    if (!(ad = input_adapter(self))) {
        return NULL;
    }
    return input_read_size(ad, size);
}

static PyObject *input_readline(PyObject *self, PyObject *args)
{
    Py_ssize_t size = -1;
    adapter_t *ad;

    if (!PyArg_ParseTuple(args, "|O&:readline", size_converter, &size)) {
        return NULL;
    }
    if (!(ad = input_adapter(self))) {
        return NULL;
    }
    return input_readline_size(ad, size);
}

static PyObject *input_readlines(PyObject *self, PyObject *args)
{
    Py_ssize_t hint = -1, total = 0;
    PyObject *lines, *line;
    adapter_t *ad;

    if (!PyArg_ParseTuple(args, "|O&:readlines", size_converter, &hint)) {
        return NULL;
    }
    if (!(ad = input_adapter(self))) {
        return NULL;
    }
    if (!(lines = PyList_New(0))) {
        return NULL;
    }
    for (;;) {
        if (!(line = input_readline_size(ad, -1))) {
            Py_DECREF(lines);
            return NULL;
        }
        if (PyBytes_GET_SIZE(line) == 0) {
            Py_DECREF(line);
            break;
        }
        total += PyBytes_GET_SIZE(line);
        if (PyList_Append(lines, line) < 0) {
            Py_DECREF(line);
            Py_DECREF(lines);
            return NULL;
        }
        Py_DECREF(line);
        if (hint > 0 && total >= hint) {
            break;
        }
    }
    return lines;
}

static PyObject *input_iternext(PyObject *self)
{
    adapter_t *ad;
    PyObject *line;

    if (!(ad = input_adapter(self))) {
        return NULL;
    }
    line = input_readline_size(ad, -1);
    if (line && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return NULL;
    }
    return line;
}

static PyObject *input_close(PyObject *self, PyObject *unused)
{
    Py_RETURN_NONE;
}

static void input_dealloc(PyObject *self)
{
    Py_TYPE(self)->tp_free(self);
}

static PyMethodDef input_methods[] = {
    {"read", input_read, METH_VARARGS,
     "read(size=-1) -> bytes: size bytes, fewer only at end of body"},
    {"readline", input_readline, METH_VARARGS,
     "readline(size=-1) -> bytes: one line, newline included"},
    {"readlines", input_readlines, METH_VARARGS,
     "readlines(hint=-1) -> list of lines"},
    {"close", input_close, METH_NOARGS, "Does nothing."},
    {NULL, NULL, 0, NULL}
};

PyTypeObject tether_input_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tether.Input",
    .tp_basicsize = sizeof(reqobj_t),
    .tp_dealloc = input_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "wsgi.input: the request body, read as it arrives.",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = input_iternext,
    .tp_methods = input_methods,
};

/* The body length the headers announce: -1 when chunked or unknown. */
static apr_off_t input_length(request_rec *r)
{
    const char *v = apr_table_get(r->headers_in, "Content-Length");
    apr_off_t n;
    char *end;

    if (r->read_chunked || apr_table_get(r->headers_in, "Transfer-Encoding")) {
        return -1;
    }
    if (!v) {
        return 0;
    }
    if (apr_strtoff(&n, v, &end, 10) != APR_SUCCESS || *end || n < 0) {
        return -1;
    }
    return n;
}

apr_off_t tether_input_consumed(const adapter_t *ad)
{
    return ad->in_fetched - (apr_off_t)(ad->in_len - ad->in_pos);
}

void tether_input_open(adapter_t *ad)
{
    request_rec *r = ad->r;

    ad->in_bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    ad->in_remaining = input_length(r);
}
