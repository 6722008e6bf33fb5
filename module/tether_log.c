/*
 * Python output into Apache's error log: the file-like object behind
 * wsgi.errors, sys.stdout and sys.stderr, and the logging of Python
 * exceptions with their traceback.
 */
#include "tether_private.h"

/* The request this thread serves, so sys.stderr lines carry its tag. */
static __thread request_rec *current_request;

void tether_log_set_current(request_rec *r)
{
    current_request = r;
}

request_rec *tether_log_current(void)
{
    return current_request;
}

/* Longest partial line kept before it is logged anyway. */
#define LOG_LINE_MAX 8192

typedef struct {
    PyObject_HEAD
    request_rec *r;         /* wsgi.errors: its request; NULL otherwise */
    server_rec *s;
    int level;
    int closed;
    PyObject *name;
    char *pending;          /* partial line, malloc'd */
    apr_size_t pending_len;
} tether_log_obj;

/*
 * Writes complete lines to the log with the GIL released.  `data` must stay
 * valid meanwhile (the caller holds the object that owns it).
 */
static void log_lines(tether_log_obj *self, const char *data,
                      apr_size_t len)
{
    request_rec *r = self->r ? self->r : current_request;
    server_rec *s = self->s;
    int level = self->level;

    Py_BEGIN_ALLOW_THREADS
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        apr_size_t n = nl ? (apr_size_t)(nl - data) : len;

        if (r) {
            ap_log_rerror(APLOG_MARK, level, 0, r, "%.*s", (int)n, data);
        }
        else {
            ap_log_error(APLOG_MARK, level, 0, s, "%.*s", (int)n, data);
        }
        if (!nl) {
            break;
        }
        data += n + 1;
        len -= n + 1;
    }
    Py_END_ALLOW_THREADS
}

static void flush_pending(tether_log_obj *self)
{
    if (self->pending_len) {
        char *p = self->pending;
        apr_size_t n = self->pending_len;

        self->pending = NULL;
        self->pending_len = 0;
        log_lines(self, p, n);
        free(p);
    }
}

static int append_pending(tether_log_obj *self, const char *data,
                          apr_size_t len)
{
    char *p = realloc(self->pending, self->pending_len + len);

    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(p + self->pending_len, data, len);
    self->pending = p;
    self->pending_len += len;
    return 0;
}

static PyObject *log_write(tether_log_obj *self, PyObject *arg)
{
    const char *data;
    Py_ssize_t len;
    const char *last_nl;

    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed log");
        return NULL;
    }
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be str, not %s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    data = PyUnicode_AsUTF8AndSize(arg, &len);
    if (!data) {
        return NULL;
    }
    last_nl = len ? memrchr(data, '\n', len) : NULL;
    if (!last_nl) {
        if (append_pending(self, data, len) < 0) {
            return NULL;
        }
        if (self->pending_len > LOG_LINE_MAX) {
            flush_pending(self);
        }
    }
    else {
        apr_size_t head = last_nl - data;
        apr_size_t tail = len - head - 1;

        if (self->pending_len) {
            if (append_pending(self, data, head) < 0) {
                return NULL;
            }
            flush_pending(self);
        }
        else {
            log_lines(self, data, head);
        }
        if (tail && append_pending(self, last_nl + 1, tail) < 0) {
            return NULL;
        }
    }
    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(arg));
}

static PyObject *log_writelines(tether_log_obj *self, PyObject *seq)
{
    PyObject *it = PyObject_GetIter(seq);
    PyObject *item;

    if (!it) {
        return NULL;
    }
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *res = log_write(self, item);

        Py_DECREF(item);
        if (!res) {
            Py_DECREF(it);
            return NULL;
        }
        Py_DECREF(res);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *log_flush(tether_log_obj *self, PyObject *unused)
{
    flush_pending(self);
    Py_RETURN_NONE;
}

static PyObject *log_close_method(tether_log_obj *self, PyObject *unused)
{
    /* Like mod_wsgi, the shared streams cannot be closed by an app. */
    flush_pending(self);
    Py_RETURN_NONE;
}

static PyObject *log_false(tether_log_obj *self, PyObject *unused)
{
    Py_RETURN_FALSE;
}

static PyObject *log_true(tether_log_obj *self, PyObject *unused)
{
    Py_RETURN_TRUE;
}

static PyObject *log_get_closed(tether_log_obj *self, void *unused)
{
    return PyBool_FromLong(self->closed);
}

static PyObject *log_get_name(tether_log_obj *self, void *unused)
{
    Py_INCREF(self->name);
    return self->name;
}

static PyObject *log_get_encoding(tether_log_obj *self, void *unused)
{
    return PyUnicode_FromString("utf-8");
}

static PyObject *log_get_errors(tether_log_obj *self, void *unused)
{
    return PyUnicode_FromString("backslashreplace");
}

static void log_dealloc(tether_log_obj *self)
{
    free(self->pending);
    Py_XDECREF(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef log_methods[] = {
    {"write", (PyCFunction)log_write, METH_O, "Log the text, line by line."},
    {"writelines", (PyCFunction)log_writelines, METH_O, "Log each string."},
    {"flush", (PyCFunction)log_flush, METH_NOARGS, "Log a partial line."},
    {"close", (PyCFunction)log_close_method, METH_NOARGS, "Flush."},
    {"isatty", (PyCFunction)log_false, METH_NOARGS, "False."},
    {"readable", (PyCFunction)log_false, METH_NOARGS, "False."},
    {"seekable", (PyCFunction)log_false, METH_NOARGS, "False."},
    {"writable", (PyCFunction)log_true, METH_NOARGS, "True."},
    {NULL}
};

static PyGetSetDef log_getset[] = {
    {"closed", (getter)log_get_closed, NULL, NULL, NULL},
    {"name", (getter)log_get_name, NULL, NULL, NULL},
    {"encoding", (getter)log_get_encoding, NULL, NULL, NULL},
    {"errors", (getter)log_get_errors, NULL, NULL, NULL},
    {NULL}
};

static PyTypeObject tether_log_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tether.Log",
    .tp_basicsize = sizeof(tether_log_obj),
    .tp_dealloc = (destructor)log_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A text stream whose lines go to Apache's error log.",
    .tp_methods = log_methods,
    .tp_getset = log_getset,
};

int tether_log_init(void)
{
    return PyType_Ready(&tether_log_type);
}

PyObject *tether_log_new(request_rec *r, server_rec *s, int level,
                         const char *name)
{
    tether_log_obj *self = PyObject_New(tether_log_obj, &tether_log_type);

    if (!self) {
        return NULL;
    }
    self->r = r;
    self->s = s;
    self->level = level;
    self->closed = 0;
    self->pending = NULL;
    self->pending_len = 0;
    self->name = PyUnicode_FromString(name);
    if (!self->name) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

void tether_log_close(PyObject *log)
{
    tether_log_obj *self = (tether_log_obj *)log;

    if (!log || Py_TYPE(log) != &tether_log_type) {
        return;
    }
    flush_pending(self);
    /* The request is over: an app that kept the object logs against the
     * server from now on, never against a freed request. */
    if (self->r) {
        self->s = self->r->server;
        self->r = NULL;
    }
}

/* ------------------------------------------------------------------------
 * Python exceptions
 */

static void log_text(request_rec *r, server_rec *s, const char *text)
{
    const char *line = text;

    while (*line) {
        const char *nl = strchr(line, '\n');
        int n = nl ? (int)(nl - line) : (int)strlen(line);

        if (r) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          TETHER_LOGNO(0302) "%.*s", n, line);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         TETHER_LOGNO(0302) "%.*s", n, line);
        }
        if (!nl) {
            break;
        }
        line = nl + 1;
    }
}

/* The traceback as one string, or NULL (error cleared). */
static PyObject *format_exception(PyObject *type, PyObject *value,
                                  PyObject *tb)
{
    PyObject *mod = PyImport_ImportModule("traceback");
    PyObject *lines = NULL;
    PyObject *sep = NULL;
    PyObject *text = NULL;

    if (!mod) {
        goto cleanup;
    }
    lines = PyObject_CallMethod(mod, "format_exception", "OOO", type,
                                value ? value : Py_None, tb ? tb : Py_None);
    if (!lines) {
        goto cleanup;
    }
    sep = PyUnicode_FromString("");
    if (sep) {
        text = PyUnicode_Join(sep, lines);
    }
cleanup:
    Py_XDECREF(mod);
    Py_XDECREF(lines);
    Py_XDECREF(sep);
    if (!text) {
        PyErr_Clear();
    }
    return text;
}

void tether_log_python_error(request_rec *r, server_rec *s, const char *what)
{
    PyObject *type, *value, *tb;
    PyObject *text;
    const char *utf8;

    if (!s) {
        s = r ? r->server : ap_server_conf;
    }
#if PY_VERSION_HEX >= 0x030C0000
    value = PyErr_GetRaisedException();
    if (!value) {
        return;
    }
    type = Py_NewRef((PyObject *)Py_TYPE(value));
    tb = PyException_GetTraceback(value);
#else
    PyErr_Fetch(&type, &value, &tb);
    if (!type) {
        return;
    }
    PyErr_NormalizeException(&type, &value, &tb);
#endif
    if (r) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0301) "Exception while %s.", what);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     TETHER_LOGNO(0301) "Exception while %s.", what);
    }
    text = format_exception(type, value, tb);
    utf8 = text ? PyUnicode_AsUTF8(text) : NULL;
    if (utf8) {
        log_text(r, s, utf8);
    }
    else {
        PyObject *repr;

        PyErr_Clear();
        repr = value ? PyObject_Repr(value) : NULL;
        utf8 = repr ? PyUnicode_AsUTF8(repr) : NULL;
        log_text(r, s, utf8 ? utf8 : "(the exception could not be shown)");
        Py_XDECREF(repr);
        PyErr_Clear();
    }
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}
