/*
 * Shared by tether_adapter.c and tether_input.c only: the state of one WSGI
 * request, and the layout of the objects that point at it.
 *
 * The adapter_t lives on the C stack of tether_adapter_run().  The objects
 * given to the application (wsgi.input, start_response, write) are cut
 * loose from it before that returns, so one the application keeps raises
 * an exception instead of touching a finished request.  While a thread
 * runs inside Apache with the GIL released, `busy` keeps other Python
 * threads off the request: APR pools and brigades are not thread safe.
 */
#ifndef TETHER_ADAPTER_H
#define TETHER_ADAPTER_H

#include "tether_metrics.h"

#include <time.h>

typedef struct {
    request_rec *r;
    const tether_request_t *req;
    const char *what;               /* names the application in logs */
    int busy;                       /* GIL released inside Apache */
    int timed;                      /* measure I/O and GIL wait times */
    tether_api_io_t io;             /* what request_finished reports */

    /* wsgi.input (tether_input.c) */
    apr_bucket_brigade *in_bb;      /* read from the filters, not taken */
    char *in_buf;                   /* look-ahead for readline() */
    apr_size_t in_pos;
    apr_size_t in_len;
    apr_off_t in_remaining;         /* body bytes left; -1 if unknown */
    apr_off_t in_fetched;           /* body bytes read from Apache */
    apr_status_t in_error;
    int in_http_error;
    int in_eof;

    /* the response (tether_adapter.c) */
    apr_bucket_brigade *bb;
    int started;                    /* start_response() accepted */
    int status;
    const char *status_line;
    apr_array_header_t *headers;    /* name/value pairs, r->pool */
    apr_off_t content_length;       /* -1 when the app gave none */
    apr_off_t sent;                 /* body bytes passed on */
    int committed;                  /* status and headers put on r */
    int eos_sent;
    int truncated;                  /* Content-Length reached */
    int client_gone;
    int output_closed;              /* Apache already answered */

    PyObject *input;
    PyObject *start;
    PyObject *write;
    PyObject *errors;
} adapter_t;

/* wsgi.input, start_response and write() share this layout. */
typedef struct {
    PyObject_HEAD
    adapter_t *ad;                  /* NULL once the request is over */
} reqobj_t;

/* A monotonic clock in microseconds, for the I/O and GIL wait times. */
static APR_INLINE apr_interval_time_t tether_clock_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_interval_time_t)ts.tv_sec * APR_USEC_PER_SEC
           + ts.tv_nsec / 1000;
}

/* Records one re-acquisition of the GIL that took `waited` usec. */
static APR_INLINE void tether_io_gil_wait(tether_api_io_t *io,
                                          apr_interval_time_t waited)
{
    if (waited < 0) {
        waited = 0;
    }
    if (io->gil_waits == 0 || waited < io->gil_wait_min) {
        io->gil_wait_min = waited;
    }
    if (waited > io->gil_wait_max) {
        io->gil_wait_max = waited;
    }
    io->gil_waits++;
    io->gil_wait_time += waited;
}

/* ---- tether_adapter.c ------------------------------------------------ */
/*
 * The live request behind a reqobj_t, or NULL with `exc` (or RuntimeError
 * when another thread is inside Apache for it) set.
 */
adapter_t *tether_reqobj_adapter(PyObject *self, PyObject *exc,
                                 const char *what);

/* ---- tether_input.c -------------------------------------------------- */
extern PyTypeObject tether_input_type;
/* Prepares ad's wsgi.input state; r->pool allocations only. */
void tether_input_open(adapter_t *ad);
/* Body bytes the application has read (fetched minus the look-ahead). */
apr_off_t tether_input_consumed(const adapter_t *ad);

#endif /* TETHER_ADAPTER_H */
