/*
 * tether._wire: the daemon-mode wire codec (tether_wire.c) as a Python
 * extension module, so the unit tests can drive it without Apache.  Not
 * part of mod_tether.  Malformed input raises ValueError carrying
 * tether_wire_strerror()'s text; a number out of range for its field
 * raises ValueError too.  Stateless, so it supports sub-interpreters and
 * (3.13+) free-threaded builds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "tether_wire.h"

/* Converts an int in [0, max] for argument `what`; -1 with ValueError. */
static int wire_uint(PyObject *o, unsigned long long max, const char *what,
                     unsigned long long *out)
{
    unsigned long long v;

    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s",
                     what, Py_TYPE(o)->tp_name);
        return -1;
    }
    v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        /* Negative or above 2**64 - 1: out of range like any other. */
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s must be in 0..%llu", what,
                         max);
        }
        return -1;
    }
    if (v > max) {
        PyErr_Format(PyExc_ValueError, "%s must be in 0..%llu", what, max);
        return -1;
    }
    *out = v;
    return 0;
}

static PyObject *wire_error(int rc)
{
    PyErr_SetString(PyExc_ValueError, tether_wire_strerror(rc));
    return NULL;
}

/* cap=None or an int >= 0: the buffer size handed to an encoder. */
static int wire_cap(PyObject *o, Py_ssize_t dflt, Py_ssize_t *cap)
{
    unsigned long long v;

    if (o == NULL || o == Py_None) {
        *cap = dflt;
        return 0;
    }
    if (wire_uint(o, (unsigned long long)PY_SSIZE_T_MAX, "cap", &v) < 0) {
        return -1;
    }
    *cap = (Py_ssize_t)v;
    return 0;
}

/* --- header ------------------------------------------------------------ */

static PyObject *wire_encode_header(PyObject *self, PyObject *args)
{
    PyObject *to, *fo, *lo;
    unsigned long long type, flags, length;
    unsigned char out[TETHER_WIRE_HEADER_SIZE];

    (void)self;
    if (!PyArg_ParseTuple(args, "OOO:encode_header", &to, &fo, &lo)
        || wire_uint(to, 0xff, "type", &type) < 0
        || wire_uint(fo, 0xff, "flags", &flags) < 0
        || wire_uint(lo, 0xffffffffULL, "length", &length) < 0) {
        return NULL;
    }
    tether_wire_header_encode(out, (uint8_t)type, (uint8_t)flags,
                              (uint32_t)length);
    return PyBytes_FromStringAndSize((const char *)out, sizeof(out));
}

static PyObject *wire_decode_header(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    tether_wire_header_t h;
    int rc;

    (void)self;
    if (!PyArg_ParseTuple(args, "y*:decode_header", &buf)) {
        return NULL;
    }
    if (buf.len != TETHER_WIRE_HEADER_SIZE) {
        PyErr_Format(PyExc_ValueError, "%s: a header is %d bytes, not %zd",
                     tether_wire_strerror(TETHER_WIRE_ETRUNCATED),
                     TETHER_WIRE_HEADER_SIZE, buf.len);
        PyBuffer_Release(&buf);
        return NULL;
    }
    rc = tether_wire_header_decode(buf.buf, &h);
    PyBuffer_Release(&buf);
    if (rc != TETHER_WIRE_OK) {
        return wire_error(rc);
    }
    return Py_BuildValue("(iik)", (int)h.type, (int)h.flags,
                         (unsigned long)h.length);
}

/* --- pair lists ---------------------------------------------------------- */

/*
 * Fills a PyMem array from a sequence of (bytes, bytes) tuples; the
 * pointers borrow from *seq, which the caller releases after the array.
 */
static tether_wire_pair_t *wire_pairs_from(PyObject *obj, PyObject **seq,
                                           size_t *n)
{
    tether_wire_pair_t *pairs;
    Py_ssize_t i, count;

    *seq = PySequence_Fast(obj, "pairs must be a sequence of (key, value)");
    if (*seq == NULL) {
        return NULL;
    }
    count = PySequence_Fast_GET_SIZE(*seq);
    pairs = PyMem_New(tether_wire_pair_t, count > 0 ? (size_t)count : 1);
    if (pairs == NULL) {
        Py_CLEAR(*seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(*seq, i);
        PyObject *k, *v;

        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2
            || !PyBytes_Check(PyTuple_GET_ITEM(item, 0))
            || !PyBytes_Check(PyTuple_GET_ITEM(item, 1))) {
            PyErr_Format(PyExc_TypeError, "pair %zd is not a (bytes, bytes) "
                         "tuple", i);
            goto fail;
        }
        k = PyTuple_GET_ITEM(item, 0);
        v = PyTuple_GET_ITEM(item, 1);
        if ((unsigned long long)PyBytes_GET_SIZE(k) > 0xffffffffULL
            || (unsigned long long)PyBytes_GET_SIZE(v) > 0xffffffffULL) {
            PyErr_Format(PyExc_ValueError, "pair %zd: a key or value over "
                         "4 GiB cannot be encoded", i);
            goto fail;
        }
        pairs[i].key = PyBytes_AS_STRING(k);
        pairs[i].key_len = (uint32_t)PyBytes_GET_SIZE(k);
        pairs[i].value = PyBytes_AS_STRING(v);
        pairs[i].value_len = (uint32_t)PyBytes_GET_SIZE(v);
    }
    *n = (size_t)count;
    return pairs;

fail:
    PyMem_Free(pairs);
    Py_CLEAR(*seq);
    return NULL;
}

static PyObject *wire_pairs_size(PyObject *self, PyObject *obj)
{
    PyObject *seq;
    tether_wire_pair_t *pairs;
    size_t n, size;

    (void)self;
    pairs = wire_pairs_from(obj, &seq, &n);
    if (pairs == NULL) {
        return NULL;
    }
    size = tether_wire_pairs_size(pairs, n);
    PyMem_Free(pairs);
    Py_DECREF(seq);
    return PyLong_FromSize_t(size);
}

static PyObject *wire_encode_pairs(PyObject *self, PyObject *args,
                                   PyObject *kwargs)
{
    static char *kwlist[] = {"pairs", "cap", NULL};
    PyObject *obj, *capo = Py_None, *seq, *res = NULL;
    tether_wire_pair_t *pairs;
    unsigned char *out = NULL;
    Py_ssize_t cap;
    size_t n, size, written;

    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:encode_pairs",
                                     kwlist, &obj, &capo)) {
        return NULL;
    }
    pairs = wire_pairs_from(obj, &seq, &n);
    if (pairs == NULL) {
        return NULL;
    }
    size = tether_wire_pairs_size(pairs, n);
    if (wire_cap(capo, (Py_ssize_t)size, &cap) < 0) {
        goto done;
    }
    out = PyMem_Malloc(cap > 0 ? (size_t)cap : 1);
    if (out == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    written = tether_wire_pairs_encode(out, (size_t)cap, pairs, n);
    if (written == 0) {
        if (size == 0) {
            PyErr_Format(PyExc_ValueError, "pair list cannot be encoded: "
                         "over %u pairs or %u bytes", TETHER_WIRE_MAX_PAIRS,
                         TETHER_WIRE_MAX_PAYLOAD);
        }
        else {
            PyErr_Format(PyExc_ValueError, "pair list needs %zu bytes, "
                         "cap is %zd", size, cap);
        }
        goto done;
    }
    if (written != size) {
        PyErr_Format(PyExc_SystemError, "encoder wrote %zu bytes, expected "
                     "%zu", written, size);
        goto done;
    }
    res = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)written);

done:
    PyMem_Free(out);
    PyMem_Free(pairs);
    Py_DECREF(seq);
    return res;
}

static PyObject *wire_decode_pairs(PyObject *self, PyObject *args,
                                   PyObject *kwargs)
{
    static char *kwlist[] = {"data", "max", NULL};
    PyObject *maxo = NULL, *list = NULL;
    Py_buffer buf;
    tether_wire_pair_t *pairs = NULL;
    unsigned long long max = TETHER_WIRE_MAX_PAIRS;
    size_t i, n = 0;
    int rc;

    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|O:decode_pairs",
                                     kwlist, &buf, &maxo)) {
        return NULL;
    }
    if (maxo != NULL
        && wire_uint(maxo, (unsigned long long)PY_SSIZE_T_MAX, "max",
                     &max) < 0) {
        goto done;
    }
    /* The codec never accepts more than TETHER_WIRE_MAX_PAIRS anyway. */
    if (max > TETHER_WIRE_MAX_PAIRS) {
        max = TETHER_WIRE_MAX_PAIRS;
    }
    pairs = PyMem_New(tether_wire_pair_t, max > 0 ? (size_t)max : 1);
    if (pairs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    rc = tether_wire_pairs_decode(buf.buf, (size_t)buf.len, pairs,
                                  (size_t)max, &n);
    if (rc != TETHER_WIRE_OK) {
        wire_error(rc);
        goto done;
    }
    list = PyList_New((Py_ssize_t)n);
    if (list == NULL) {
        goto done;
    }
    for (i = 0; i < n; i++) {
        PyObject *t = Py_BuildValue("(y#y#)", pairs[i].key,
                                    (Py_ssize_t)pairs[i].key_len,
                                    pairs[i].value,
                                    (Py_ssize_t)pairs[i].value_len);
        if (t == NULL) {
            Py_CLEAR(list);
            goto done;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }

done:
    PyMem_Free(pairs);
    PyBuffer_Release(&buf);
    return list;
}

static PyObject *wire_count_pairs(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    size_t n = 0;
    int rc;

    (void)self;
    if (!PyArg_ParseTuple(args, "y*:count_pairs", &buf)) {
        return NULL;
    }
    rc = tether_wire_pairs_decode(buf.buf, (size_t)buf.len, NULL, 0, &n);
    PyBuffer_Release(&buf);
    if (rc != TETHER_WIRE_OK) {
        return wire_error(rc);
    }
    return PyLong_FromSize_t(n);
}

/* --- fixed payloads ---------------------------------------------------- */

/* The payloads that are one u32: HELLO and BODY_WANT. */
static PyObject *u32_encode(PyObject *obj, const char *what,
                            void (*encode)(unsigned char *, uint32_t))
{
    unsigned long long value;
    unsigned char out[4];

    if (wire_uint(obj, 0xffffffffULL, what, &value) < 0) {
        return NULL;
    }
    encode(out, (uint32_t)value);
    return PyBytes_FromStringAndSize((const char *)out, sizeof(out));
}

static PyObject *u32_decode(PyObject *args, const char *format,
                            int (*decode)(const unsigned char *, size_t,
                                          uint32_t *))
{
    Py_buffer buf;
    uint32_t value = 0;
    int rc;

    if (!PyArg_ParseTuple(args, format, &buf)) {
        return NULL;
    }
    rc = decode(buf.buf, (size_t)buf.len, &value);
    PyBuffer_Release(&buf);
    if (rc != TETHER_WIRE_OK) {
        return wire_error(rc);
    }
    return PyLong_FromUnsignedLong(value);
}

static PyObject *wire_encode_body_want(PyObject *self, PyObject *obj)
{
    (void)self;
    return u32_encode(obj, "want", tether_wire_body_want_encode);
}

static PyObject *wire_decode_body_want(PyObject *self, PyObject *args)
{
    (void)self;
    return u32_decode(args, "y*:decode_body_want",
                      tether_wire_body_want_decode);
}

static PyObject *wire_encode_hello(PyObject *self, PyObject *obj)
{
    (void)self;
    return u32_encode(obj, "pid", tether_wire_hello_encode);
}

static PyObject *wire_decode_hello(PyObject *self, PyObject *args)
{
    (void)self;
    return u32_decode(args, "y*:decode_hello", tether_wire_hello_decode);
}

static PyObject *wire_encode_req_abort(PyObject *self, PyObject *args)
{
    PyObject *ro, *do_;
    unsigned long long reason, detail;
    unsigned char out[TETHER_WIRE_REQ_ABORT_SIZE];

    (void)self;
    if (!PyArg_ParseTuple(args, "OO:encode_req_abort", &ro, &do_)
        || wire_uint(ro, 0xffffffffULL, "reason", &reason) < 0
        || wire_uint(do_, 0xffffffffULL, "detail", &detail) < 0) {
        return NULL;
    }
    tether_wire_req_abort_encode(out, (uint32_t)reason, (uint32_t)detail);
    return PyBytes_FromStringAndSize((const char *)out, sizeof(out));
}

static PyObject *wire_decode_req_abort(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    uint32_t reason = 0, detail = 0;
    int rc;

    (void)self;
    if (!PyArg_ParseTuple(args, "y*:decode_req_abort", &buf)) {
        return NULL;
    }
    rc = tether_wire_req_abort_decode(buf.buf, (size_t)buf.len, &reason,
                                      &detail);
    PyBuffer_Release(&buf);
    if (rc != TETHER_WIRE_OK) {
        return wire_error(rc);
    }
    return Py_BuildValue("(kk)", (unsigned long)reason,
                         (unsigned long)detail);
}

static PyObject *wire_encode_resp_file(PyObject *self, PyObject *args)
{
    PyObject *oo, *lo;
    unsigned long long offset, length;
    unsigned char out[TETHER_WIRE_RESP_FILE_SIZE];

    (void)self;
    if (!PyArg_ParseTuple(args, "OO:encode_resp_file", &oo, &lo)
        || wire_uint(oo, UINT64_MAX, "offset", &offset) < 0
        || wire_uint(lo, UINT64_MAX, "length", &length) < 0) {
        return NULL;
    }
    tether_wire_resp_file_encode(out, (uint64_t)offset, (uint64_t)length);
    return PyBytes_FromStringAndSize((const char *)out, sizeof(out));
}

static PyObject *wire_decode_resp_file(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    uint64_t offset = 0, length = 0;
    int rc;

    (void)self;
    if (!PyArg_ParseTuple(args, "y*:decode_resp_file", &buf)) {
        return NULL;
    }
    rc = tether_wire_resp_file_decode(buf.buf, (size_t)buf.len, &offset,
                                      &length);
    PyBuffer_Release(&buf);
    if (rc != TETHER_WIRE_OK) {
        return wire_error(rc);
    }
    return Py_BuildValue("(KK)", (unsigned long long)offset,
                         (unsigned long long)length);
}

static PyObject *wire_encode_resp_error(PyObject *self, PyObject *args,
                                        PyObject *kwargs)
{
    static char *kwlist[] = {"status", "message", "cap", NULL};
    PyObject *so, *capo = Py_None, *res = NULL;
    Py_buffer msg;
    unsigned long long status;
    unsigned char *out = NULL;
    Py_ssize_t cap;
    size_t written;

    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oy*|O:encode_resp_error",
                                     kwlist, &so, &msg, &capo)) {
        return NULL;
    }
    if (wire_uint(so, 0xffff, "status", &status) < 0
        || wire_cap(capo, TETHER_WIRE_RESP_ERROR_MIN + msg.len, &cap) < 0) {
        goto done;
    }
    out = PyMem_Malloc(cap > 0 ? (size_t)cap : 1);
    if (out == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    written = tether_wire_resp_error_encode(out, (size_t)cap,
                                            (uint16_t)status, msg.buf,
                                            (size_t)msg.len);
    if (written == 0) {
        PyErr_Format(PyExc_ValueError, "error payload of %zd bytes does not "
                     "fit in %zd bytes or over %u bytes",
                     TETHER_WIRE_RESP_ERROR_MIN + msg.len, cap,
                     TETHER_WIRE_MAX_PAYLOAD);
        goto done;
    }
    res = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)written);

done:
    PyMem_Free(out);
    PyBuffer_Release(&msg);
    return res;
}

static PyObject *wire_decode_resp_error(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    uint16_t status = 0;
    const char *msg = NULL;
    size_t msg_len = 0;
    PyObject *res;
    int rc;

    (void)self;
    if (!PyArg_ParseTuple(args, "y*:decode_resp_error", &buf)) {
        return NULL;
    }
    rc = tether_wire_resp_error_decode(buf.buf, (size_t)buf.len, &status,
                                       &msg, &msg_len);
    if (rc != TETHER_WIRE_OK) {
        PyBuffer_Release(&buf);
        return wire_error(rc);
    }
    res = Py_BuildValue("(iy#)", (int)status, msg, (Py_ssize_t)msg_len);
    PyBuffer_Release(&buf);
    return res;
}

static PyObject *wire_strerror(PyObject *self, PyObject *obj)
{
    int overflow;
    long rc = PyLong_AsLongAndOverflow(obj, &overflow);

    (void)self;
    if (rc == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (overflow || rc < -1000 || rc > 1000) {
        rc = -1000;
    }
    return PyUnicode_FromString(tether_wire_strerror((int)rc));
}

/* --- module -------------------------------------------------------------- */

static PyMethodDef wire_methods[] = {
    {"encode_header", wire_encode_header, METH_VARARGS,
     "encode_header(type, flags, length) -> 8 bytes (no checks)"},
    {"decode_header", wire_decode_header, METH_VARARGS,
     "decode_header(data) -> (type, flags, length); ValueError if bad"},
    {"pairs_size", wire_pairs_size, METH_O,
     "pairs_size(pairs) -> bytes needed, 0 if the list cannot be sent"},
    {"encode_pairs", (PyCFunction)(void (*)(void))wire_encode_pairs,
     METH_VARARGS | METH_KEYWORDS,
     "encode_pairs(pairs, cap=None) -> bytes from [(key, value), ...]"},
    {"decode_pairs", (PyCFunction)(void (*)(void))wire_decode_pairs,
     METH_VARARGS | METH_KEYWORDS,
     "decode_pairs(data, max=MAX_PAIRS) -> [(key, value), ...]"},
    {"count_pairs", wire_count_pairs, METH_VARARGS,
     "count_pairs(data) -> number of pairs, validating only"},
    {"encode_hello", wire_encode_hello, METH_O,
     "encode_hello(pid) -> 4 bytes"},
    {"decode_hello", wire_decode_hello, METH_VARARGS,
     "decode_hello(data) -> pid"},
    {"encode_body_want", wire_encode_body_want, METH_O,
     "encode_body_want(n) -> 4 bytes"},
    {"decode_body_want", wire_decode_body_want, METH_VARARGS,
     "decode_body_want(data) -> n"},
    {"encode_req_abort", wire_encode_req_abort, METH_VARARGS,
     "encode_req_abort(reason, detail) -> 8 bytes"},
    {"decode_req_abort", wire_decode_req_abort, METH_VARARGS,
     "decode_req_abort(data) -> (reason, detail)"},
    {"encode_resp_file", wire_encode_resp_file, METH_VARARGS,
     "encode_resp_file(offset, length) -> 16 bytes"},
    {"decode_resp_file", wire_decode_resp_file, METH_VARARGS,
     "decode_resp_file(data) -> (offset, length)"},
    {"encode_resp_error", (PyCFunction)(void (*)(void))wire_encode_resp_error,
     METH_VARARGS | METH_KEYWORDS,
     "encode_resp_error(status, message, cap=None) -> bytes"},
    {"decode_resp_error", wire_decode_resp_error, METH_VARARGS,
     "decode_resp_error(data) -> (status, message)"},
    {"strerror", wire_strerror, METH_O,
     "strerror(code) -> the codec's text for an error code"},
    {NULL, NULL, 0, NULL}
};

static int wire_exec(PyObject *m)
{
    static const struct {
        const char *name;
        long value;
    } consts[] = {
        {"HEADER_SIZE", TETHER_WIRE_HEADER_SIZE},
        {"MAX_PAYLOAD", TETHER_WIRE_MAX_PAYLOAD},
        {"MAX_PAIRS", TETHER_WIRE_MAX_PAIRS},
        {"HELLO_SIZE", TETHER_WIRE_HELLO_SIZE},
        {"BODY_WANT_SIZE", TETHER_WIRE_BODY_WANT_SIZE},
        {"REQ_ABORT_SIZE", TETHER_WIRE_REQ_ABORT_SIZE},
        {"ABORT_CLOSED", TETHER_WIRE_ABORT_CLOSED},
        {"ABORT_TIMEOUT", TETHER_WIRE_ABORT_TIMEOUT},
        {"ABORT_REJECTED", TETHER_WIRE_ABORT_REJECTED},
        {"ABORT_ERROR", TETHER_WIRE_ABORT_ERROR},
        {"RESP_FILE_SIZE", TETHER_WIRE_RESP_FILE_SIZE},
        {"RESP_ERROR_MIN", TETHER_WIRE_RESP_ERROR_MIN},
        {"REQ_HEAD", TETHER_WIRE_REQ_HEAD},
        {"REQ_BODY", TETHER_WIRE_REQ_BODY},
        {"REQ_END", TETHER_WIRE_REQ_END},
        {"REQ_ABORT", TETHER_WIRE_REQ_ABORT},
        {"HELLO", TETHER_WIRE_HELLO},
        {"BODY_WANT", TETHER_WIRE_BODY_WANT},
        {"RESP_HEAD", TETHER_WIRE_RESP_HEAD},
        {"RESP_BODY", TETHER_WIRE_RESP_BODY},
        {"RESP_FILE", TETHER_WIRE_RESP_FILE},
        {"RESP_END", TETHER_WIRE_RESP_END},
        {"RESP_ABORT", TETHER_WIRE_RESP_ABORT},
        {"RESP_ERROR", TETHER_WIRE_RESP_ERROR},
        {"GOODBYE", TETHER_WIRE_GOODBYE},
        {"FLAG_CLOSE", TETHER_WIRE_FLAG_CLOSE},
        {"OK", TETHER_WIRE_OK},
        {"ETRUNCATED", TETHER_WIRE_ETRUNCATED},
        {"ETYPE", TETHER_WIRE_ETYPE},
        {"EFLAGS", TETHER_WIRE_EFLAGS},
        {"ERESERVED", TETHER_WIRE_ERESERVED},
        {"ELENGTH", TETHER_WIRE_ELENGTH},
        {"ECOUNT", TETHER_WIRE_ECOUNT},
        {"ETRAILING", TETHER_WIRE_ETRAILING},
        {"EVALUE", TETHER_WIRE_EVALUE},
    };
    size_t i;

    for (i = 0; i < sizeof(consts) / sizeof(consts[0]); i++) {
        if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0) {
            return -1;
        }
    }
    return 0;
}

static PyModuleDef_Slot wire_slots[] = {
    {Py_mod_exec, (void *)wire_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL}
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT,
    "tether._wire",
    "Tether's daemon-mode wire codec, for tests.",
    0,
    wire_methods,
    wire_slots,
    NULL,
    NULL,
    NULL
};

PyMODINIT_FUNC PyInit__wire(void)
{
    return PyModuleDef_Init(&wire_module);
}
