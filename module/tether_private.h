/*
 * Declarations shared by the files of mod_tether.  Every .c file includes
 * this header first so that per-module LogLevel (LogLevel tether:debug)
 * works everywhere.
 */
#ifndef TETHER_PRIVATE_H
#define TETHER_PRIVATE_H

/* Python.h must come first: it sets feature macros the C library honours. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"
#include "http_main.h"
#include "ap_mpm.h"
#include "apr_lib.h"
#include "apr_strings.h"
#include "apr_thread_mutex.h"
#include "apr_hash.h"

/* mod_tether.c gets this from AP_DECLARE_MODULE. */
#if defined(APLOG_USE_MODULE) && !defined(TETHER_MODULE_FILE)
APLOG_USE_MODULE(tether);
#endif

extern module AP_MODULE_DECLARE_DATA tether_module;

#ifndef TETHER_VERSION
#define TETHER_VERSION "0.0.0"
#endif

/*
 * Every log message carries a tag of our own, "TETHERnnnn: ".  Ranges:
 * 0001-0099 config, 0100-0199 handler, 0200-0299 interpreters,
 * 0300-0399 logging, 0400-0499 WSGI adapter, 0500-0699 daemon mode,
 * 0700-0719 trusted proxies, 0800-0849 metrics and the in-process API.
 * module/LOGTAGS.md lists them.
 */
#define TETHER_LOGNO(n) "TETHER" #n ": "

#define TETHER_UNSET -1

/* The handler names that select us (SetHandler / AddHandler). */
#define TETHER_HANDLER "wsgi-script"
#define TETHER_HANDLER_MIME "application/x-httpd-wsgi"

/* WSGIMapHEADToGET */
#define TETHER_HEAD_OFF 0
#define TETHER_HEAD_ON 1
#define TETHER_HEAD_AUTO 2

#include "tether_config.h"

/*
 * What the handler resolved for one request, handed to the adapter.  All
 * strings live in r->pool.  An empty process_group means embedded mode; an
 * empty application_group means the main interpreter (%{GLOBAL}).
 */
typedef struct {
    const char *script_name;        /* SCRIPT_NAME: the matched alias mount */
    const char *path_info;          /* PATH_INFO: the rest of the path */
    const char *script_file;        /* the WSGI script (r->filename) */
    const char *process_group;
    const char *application_group;
    const char *callable_object;
    int pass_authorization;         /* 0/1 */
    int script_reloading;           /* 0/1 */
    int map_head_to_get;            /* TETHER_HEAD_* */
    apr_table_t *environ;           /* the environ's string entries */
    int multithread;                /* wsgi.multithread */
    int multiprocess;               /* wsgi.multiprocess */
    int small_pass_keeps_gil;       /* output filters never block on
                                     * small brigades (daemon side) */
    int pass_apache_request;        /* WSGIPassApacheRequest (embedded) */
    apr_size_t input_step;          /* body bytes wsgi.input asks of the
                                     * input filters per call, at most;
                                     * 0: one of Apache's socket buckets */
} tether_request_t;

/* Body bytes a daemon's wsgi.input asks Apache's side for per BODY_WANT,
 * at most: as much as an application's read(65536), in one round trip. */
#define TETHER_INPUT_FRAME (64 * 1024)

/*
 * Keeps the pending Python exception aside while other Python calls run
 * (PyErr_Fetch/Restore were deprecated in 3.12).
 */
typedef struct {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc;
#else
    PyObject *type, *value, *tb;
#endif
} tether_saved_error_t;

static inline void tether_error_save(tether_saved_error_t *saved)
{
#if PY_VERSION_HEX >= 0x030C0000
    saved->exc = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&saved->type, &saved->value, &saved->tb);
#endif
}

static inline void tether_error_restore(tether_saved_error_t *saved)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(saved->exc);
#else
    PyErr_Restore(saved->type, saved->value, saved->tb);
#endif
}

/* ---- tether_malloc.c ------------------------------------------------- */
/* In an Apache child or a daemon: pins glibc's mmap threshold, unless the
 * administrator set malloc's parameters. */
void tether_malloc_tune(void);

/* ---- tether_config.c ------------------------------------------------- */
void tether_config_register_hooks(apr_pool_t *p);

/* ---- tether_daemon.c (parent side: spawn and supervise) -------------- */
void tether_daemon_register_hooks(apr_pool_t *p);
/* In a daemon: it serves now (a later death is no start-up failure). */
void tether_daemon_mark_ready(tether_daemon_group_t *g, int slot);
/* In a daemon: it is about to exit on purpose (recycle, stop, failure). */
void tether_daemon_mark_exiting(tether_daemon_group_t *g, int slot);
/* How long a daemon exiting on purpose has for Python's exit functions
 * (shutdown-timeout; 5 s when it is 0). */
apr_interval_time_t tether_daemon_exit_allowance(
    const tether_daemon_group_t *g);
/* In a daemon: publishes how many connections from Apache it holds. */
void tether_daemon_set_conns(tether_daemon_group_t *g, int slot, int conns);
/* The fewest connections a serving sibling of `slot` holds; -1: none. */
int tether_daemon_fewest_conns(tether_daemon_group_t *g, int slot);
/*
 * In an Apache child: how daemon `pid` of this generation died, once the
 * parent has noticed.  Returns 1 with *status (a signal number when
 * *signalled, else an exit status), or 0 when not (yet) known.
 */
int tether_daemon_death(pid_t pid, int *status, int *signalled);

/* ---- tether_dserver.c (inside a daemon process) ---------------------- */
/*
 * Runs a daemon process of group `g` after privileges were dropped: starts
 * Python, serves connections accepted on `listen_fd` and exits the process
 * when told to stop or recycle.  Never returns.
 */
void tether_dserver_main(server_rec *s, tether_daemon_group_t *g,
                         int listen_fd, int slot) __attribute__((noreturn));

/* ---- tether_client.c (Apache side of daemon mode) --------------------- */
void tether_client_register_hooks(apr_pool_t *p);
/*
 * Runs the request in daemon group g: forwards it and relays the response.
 * The handler has resolved req (with req->environ) and set up the body.
 * Returns OK or an HTTP status for Apache's error page.
 */
int tether_client_run(request_rec *r, tether_request_t *req,
                      tether_daemon_group_t *g);

/* ---- tether_handler.c ------------------------------------------------ */
void tether_handler_register_hooks(apr_pool_t *p);

/* ---- tether_interp.c ------------------------------------------------- */
typedef struct tether_interp tether_interp_t;

void tether_interp_register_hooks(apr_pool_t *p);
/*
 * Starts Python in this process: an Apache child (group "") or a daemon
 * process of `group`.  `home` and `path` override WSGIPythonHome and
 * WSGIPythonPath when not NULL; `switch_interval` (seconds) is set with
 * sys.setswitchinterval() when above 0.  Returns 0, or -1 after logging
 * the cause (requests then fail with 500).  Returns without holding the
 * GIL.
 */
int tether_interp_start(apr_pool_t *p, server_rec *s, const char *group,
                        const char *home, apr_array_header_t *path,
                        double switch_interval);
/* Runs every interpreter's atexit functions (at process exit), unless
 * WSGIDestroyInterpreter Off. */
void tether_interp_stop(void);
/* Loads the WSGIImportScript files of this process's group. */
void tether_interp_preload(server_rec *s);
/*
 * Finds or creates the interpreter named `group` ("" = main) in this process
 * and makes this thread hold its GIL.  Returns NULL (after logging why) when
 * Python could not be started.
 */
tether_interp_t *tether_interp_acquire(const char *group, request_rec *r,
                                       server_rec *s);
/* Gives the GIL back; the thread state is kept for the next request. */
void tether_interp_release(tether_interp_t *interp);
/*
 * Returns a new reference to the module executed from `filename` in this
 * interpreter, (re)loading it when `reload` is set and the file changed.
 * NULL with the Python error logged on failure.  GIL held.
 */
PyObject *tether_interp_load_script(tether_interp_t *interp,
                                    const char *filename, int reload,
                                    request_rec *r, server_rec *s);
/*
 * The WSGI callable `callable` of the script, loaded as by
 * tether_interp_load_script(): a new reference, or NULL after logging why
 * (the script failed, or has no such callable).  GIL held.
 */
PyObject *tether_interp_load_app(tether_interp_t *interp,
                                 const char *filename, const char *callable,
                                 int reload, request_rec *r, server_rec *s);
const char *tether_interp_name(const tether_interp_t *interp);

/* ---- tether_log.c ---------------------------------------------------- */
/* Ready the log object type; once, with the main interpreter's GIL. */
int tether_log_init(void);
/*
 * A file-like object whose lines go to Apache's error log at `level`
 * (APLOG_ERR, APLOG_INFO, ...).  With r set (wsgi.errors) every line is
 * tagged with that request; with r NULL (sys.stdout/sys.stderr) a line is
 * tagged with the request this thread is serving, if any, else logged
 * against s.  New reference, NULL with a Python error set.
 */
PyObject *tether_log_new(request_rec *r, server_rec *s, int level,
                         const char *name);
/* Marks the request this thread is serving (NULL when done). */
void tether_log_set_current(request_rec *r);
request_rec *tether_log_current(void);
/*
 * Logs the pending Python exception (message line plus the traceback, one
 * log line each) and clears it.  `what` says what failed, e.g. "loading
 * script '/x/app.wsgi'".  GIL held.
 */
void tether_log_python_error(request_rec *r, server_rec *s, const char *what);
/* Flushes a log object's partial line; used at request end. */
void tether_log_close(PyObject *log);

/* ---- tether_adapter.c ------------------------------------------------ */
/* Ready the WSGI types; once, with the main interpreter's GIL. */
int tether_adapter_init(void);
/*
 * The string entries of the environ of r (the CGI variables and the
 * tether.* / mod_wsgi.* strings), in r->pool.  Needs no GIL: the Apache
 * side builds it for both modes, so that embedded and daemon mode give an
 * application the same environ.
 */
apr_table_t *tether_environ_strings(request_rec *r,
                                    const tether_request_t *req);
/*
 * Runs one WSGI request with the GIL of the application's interpreter held
 * by this thread.  `app` is the WSGI callable.  The handler has already
 * called ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK).  Returns OK
 * when a response was produced (even an aborted one), or HTTP_* when
 * nothing was sent and Apache should produce the error page.
 */
int tether_adapter_run(request_rec *r, const tether_request_t *req,
                       PyObject *app);

/* ---- tether_proxy.c -------------------------------------------------- */
/*
 * WSGITrustedProxyHeaders / WSGITrustedProxies: rewrites the environ
 * strings `env` of r (REMOTE_ADDR, HTTP_HOST, SERVER_NAME, SERVER_PORT,
 * SCRIPT_NAME, HTTPS, wsgi.url_scheme) from the trusted proxy headers of a
 * trusted peer, and removes the proxy headers a peer may not send.
 */
void tether_proxy_apply(request_rec *r, apr_table_t *env);
/* The spelling of a proxy header Tether knows (any case), or NULL. */
const char *tether_proxy_header_name(const char *name);

/* ---- tether_dispatch.c ---------------------------------------------- */
/* What a script directive is for: cmd->info of tether_dispatch_set_script. */
#define TETHER_SCRIPT_ACCESS 1
#define TETHER_SCRIPT_AUTH_USER 2
#define TETHER_SCRIPT_AUTH_GROUP 3
#define TETHER_SCRIPT_DISPATCH 4

void tether_dispatch_register_hooks(apr_pool_t *p);
/* WSGIAccessScript, WSGIAuthUserScript, WSGIAuthGroupScript and
 * WSGIDispatchScript: "script [application-group=name]". */
const char *tether_dispatch_set_script(cmd_parms *cmd, void *mconfig,
                                       const char *args);
/* WSGIHandlerScript name script [options]. */
const char *tether_dispatch_set_handler(cmd_parms *cmd, void *mconfig,
                                        const char *args);
/* The WSGIHandlerScript r->handler names, or NULL. */
const tether_script_t *tether_dispatch_handler_script(request_rec *r);
/*
 * Runs the WSGIDispatchScript of r, if any, in this Apache child and
 * applies what its process_group(), application_group() and
 * callable_object() return to req (callable_object() not when
 * `fixed_callable`).  Returns OK or HTTP_INTERNAL_SERVER_ERROR (logged).
 */
int tether_dispatch_run(request_rec *r, tether_request_t *req,
                        int fixed_callable);
/* Whether a file may go out with sendfile(): WSGIEnableSendfile, else
 * Apache's EnableSendfile, else only for a file a daemon passed. */
int tether_dispatch_sendfile(request_rec *r, int daemon);
/* WSGIErrorOverride On: a daemon's error response (status >= 400) is
 * replaced by Apache's own (ErrorDocument).  Adds the filter that does it. */
void tether_dispatch_error_override(request_rec *r);

/*
 * A hook script's function, ready to call: this thread holds the GIL of
 * the script's interpreter; environ is a cut-down WSGI environ with
 * wsgi.errors.  tether_script_close() gives everything back.
 */
typedef struct {
    tether_interp_t *interp;
    const tether_script_t *script;
    PyObject *module;               /* the loaded script */
    PyObject *environ;
    PyObject *errors;
    PyObject *func;                 /* NULL: the script has no such
                                     * function */
    const char *what;               /* "allow_access() of WSGIAccessScript
                                     * '/x.wsgi'", for messages */
} tether_script_call_t;

/*
 * Loads `s` into application group `group` ("" = main interpreter) of this
 * Apache child and looks up `func`.  `req` gives the environ (NULL: one for
 * the auth hooks).  Returns OK, or HTTP_INTERNAL_SERVER_ERROR after logging
 * why (then nothing is held).
 */
int tether_script_open(request_rec *r, const tether_script_t *s,
                       const char *group, const char *func,
                       const tether_request_t *req,
                       tether_script_call_t *call);
void tether_script_close(tether_script_call_t *call);

/* ---- tether_auth.c ---------------------------------------------------- */
/* WSGIAccessScript, the "wsgi" authn and "wsgi-group" authz providers. */
void tether_auth_register_hooks(apr_pool_t *p);

/* ---- tether_handler.c (group expansion, shared) ----------------------- */
const char *tether_handler_app_group(request_rec *r, const char *spec,
                                     const char *script_name);
const char *tether_handler_process_group(request_rec *r, const char *spec);

/* ---- tether_adapter.c (hook scripts) ---------------------------------- */
/*
 * The environ of a hook script: the constant entries, req->environ and
 * `errors` as wsgi.errors (no wsgi.input).  New reference.  GIL held.
 */
PyObject *tether_adapter_environ(const tether_request_t *req,
                                 PyObject *errors);

#endif /* TETHER_PRIVATE_H */
