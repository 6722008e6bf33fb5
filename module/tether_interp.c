/*
 * Python in the Apache child processes: start-up with the isolated PyConfig
 * API (never in the root parent), one sub-interpreter per application
 * group created on first use, a thread state per thread and interpreter,
 * WSGI script loading and reloading, WSGIImportScript preloading and the
 * WSGIRestrict* guards.
 */
#include "tether_private.h"
#include "tether_metrics.h"

#include "ap_mpm.h"
#include "apr_thread_proc.h"

static apr_status_t stop_python(void *data);

struct tether_interp {
    const char *name;               /* "" for the main interpreter */
    PyInterpreterState *istate;
    apr_threadkey_t *tstate_key;    /* this thread's PyThreadState */
    apr_thread_mutex_t *load_lock;  /* serializes script (re)loading */
    PyObject *scripts;              /* filename -> (module, mtime) */
};

static apr_pool_t *interp_pool;
static apr_thread_mutex_t *registry_lock;
static apr_hash_t *interps;         /* name -> tether_interp_t */
static tether_interp_t *main_interp;
static int python_state;            /* 0 not started, 1 ok, -1 failed */
static const char *python_failure;
static server_rec *main_server;
static const char *process_group = "";     /* "" in Apache's children */
static apr_array_header_t *python_path;    /* site dirs for every interp */

const char *tether_interp_name(const tether_interp_t *interp)
{
    return interp->name;
}

/* ------------------------------------------------------------------------
 * Thread states
 */

/* This thread's state for `interp`, created on first use. */
static PyThreadState *thread_state(tether_interp_t *interp)
{
    PyThreadState *ts = NULL;

    apr_threadkey_private_get((void **)&ts, interp->tstate_key);
    if (!ts) {
        /* A thread's first state decides what PyGILState_Ensure() gives
         * C extensions: make it the main interpreter's. */
        if (interp != main_interp) {
            thread_state(main_interp);
        }
        ts = PyThreadState_New(interp->istate);
        apr_threadkey_private_set(ts, interp->tstate_key);
    }
    return ts;
}

/* ------------------------------------------------------------------------
 * Guards installed in every interpreter
 */

/* signal.signal() while WSGIRestrictSignal is On: warn and ignore. */
static PyObject *restricted_signal(PyObject *self, PyObject *args)
{
    int signum;
    PyObject *handler;
    PyObject *mod, *prev;
    request_rec *r = tether_log_current();

    if (!PyArg_ParseTuple(args, "iO:signal", &signum, &handler)) {
        return NULL;
    }
    if (r) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      TETHER_LOGNO(0210) "Callback registration for signal "
                      "%d ignored (WSGIRestrictSignal On).", signum);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, main_server,
                     TETHER_LOGNO(0210) "Callback registration for signal "
                     "%d ignored (WSGIRestrictSignal On).", signum);
    }
    mod = PyImport_ImportModule("signal");
    if (!mod) {
        return NULL;
    }
    prev = PyObject_CallMethod(mod, "getsignal", "i", signum);
    Py_DECREF(mod);
    return prev;
}

static PyMethodDef restricted_signal_def = {
    "signal", restricted_signal, METH_VARARGS,
    "Ignored while WSGIRestrictSignal is On (logs a warning)."
};

/* sys.stdin / sys.stdout replacement that refuses every use. */
typedef struct {
    PyObject_HEAD
    const char *what;
} tether_restricted_obj;

static PyObject *restricted_getattr(tether_restricted_obj *self,
                                    PyObject *name)
{
    const char *n = PyUnicode_AsUTF8(name);

    if (n && (!strcmp(n, "closed") || !strcmp(n, "encoding")
              || !strcmp(n, "name"))) {
        if (!strcmp(n, "closed")) {
            Py_RETURN_FALSE;
        }
        return PyUnicode_FromString(!strcmp(n, "encoding") ? "utf-8"
                                                            : self->what);
    }
    PyErr_Format(PyExc_OSError, "%s access is restricted by Tether; set "
                 "%s Off to allow it", self->what,
                 !strcmp(self->what, "sys.stdin") ? "WSGIRestrictStdin"
                                                  : "WSGIRestrictStdout");
    return NULL;
}

static PyTypeObject tether_restricted_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tether.Restricted",
    .tp_basicsize = sizeof(tether_restricted_obj),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_getattro = (getattrofunc)restricted_getattr,
    .tp_doc = "A standard stream an application may not use.",
};

static PyObject *restricted_new(const char *what)
{
    tether_restricted_obj *o = PyObject_New(tether_restricted_obj,
                                            &tether_restricted_type);

    if (o) {
        o->what = what;
    }
    return (PyObject *)o;
}

static int set_sys(const char *name, PyObject *value)
{
    int rc;

    if (!value) {
        return -1;
    }
    rc = PySys_SetObject(name, value);
    Py_DECREF(value);
    return rc;
}

/*
 * Sets up a fresh interpreter (main or sub): standard streams to the error
 * log, the restrictions, sys.argv and WSGIPythonPath.  GIL held.
 */
static int setup_interpreter(tether_interp_t *interp)
{
    tether_global_conf_t *g = tether_config_global();
    PyObject *argv;
    int i;

    if (set_sys("stderr", tether_log_new(NULL, main_server, APLOG_ERR,
                                         "<stderr>")) < 0) {
        return -1;
    }
    if (set_sys("stdout", g->restrict_stdout
                          ? restricted_new("sys.stdout")
                          : tether_log_new(NULL, main_server, APLOG_ERR,
                                           "<stdout>")) < 0) {
        return -1;
    }
    if (g->restrict_stdin
        && set_sys("stdin", restricted_new("sys.stdin")) < 0) {
        return -1;
    }
    argv = Py_BuildValue("[s]", "mod_wsgi");
    if (set_sys("argv", argv) < 0) {
        return -1;
    }
    /* The in-process API: _tether, mod_wsgi (tether_api.c). */
    if (tether_api_install(process_group, interp->name) < 0) {
        return -1;
    }
    if (g->restrict_signal) {
        PyObject *mod = PyImport_ImportModule("signal");
        PyObject *fn;
        int rc;

        if (!mod) {
            return -1;
        }
        fn = PyCFunction_New(&restricted_signal_def, NULL);
        rc = fn ? PyObject_SetAttrString(mod, "signal", fn) : -1;
        Py_XDECREF(fn);
        Py_DECREF(mod);
        if (rc < 0) {
            return -1;
        }
    }
    if (python_path && python_path->nelts) {
        PyObject *site = PyImport_ImportModule("site");

        if (!site) {
            return -1;
        }
        for (i = 0; i < python_path->nelts; i++) {
            const char *dir = APR_ARRAY_IDX(python_path, i, const char *);
            PyObject *res = PyObject_CallMethod(site, "addsitedir", "s",
                                                dir);

            if (!res) {
                Py_DECREF(site);
                return -1;
            }
            Py_DECREF(res);
        }
        Py_DECREF(site);
    }
    interp->scripts = PyDict_New();
    return interp->scripts ? 0 : -1;
}

static tether_interp_t *interp_record(const char *name)
{
    tether_interp_t *interp = apr_pcalloc(interp_pool, sizeof(*interp));

    interp->name = apr_pstrdup(interp_pool, name);
    apr_threadkey_private_create(&interp->tstate_key, NULL, interp_pool);
    apr_thread_mutex_create(&interp->load_lock, APR_THREAD_MUTEX_DEFAULT,
                            interp_pool);
    return interp;
}

/* ------------------------------------------------------------------------
 * Start-up in each child
 */

static const char *status_text(apr_pool_t *p, PyStatus status)
{
    return apr_psprintf(p, "%s%s%s", status.func ? status.func : "",
                        status.func ? ": " : "",
                        status.err_msg ? status.err_msg : "unknown error");
}

/* Points PyConfig at WSGIPythonHome: a venv through its bin/python, any
 * other prefix as PYTHONHOME. */
static PyStatus config_home(PyConfig *config, const char *home,
                            apr_pool_t *p)
{
    apr_finfo_t finfo;
    const char *cfg = apr_pstrcat(p, home, "/pyvenv.cfg", NULL);

    if (apr_stat(&finfo, cfg, APR_FINFO_TYPE, p) == APR_SUCCESS) {
        const char *exe = apr_psprintf(p, "%s/bin/python%d.%d", home,
                                       PY_MAJOR_VERSION, PY_MINOR_VERSION);

        if (apr_stat(&finfo, exe, APR_FINFO_TYPE, p) != APR_SUCCESS) {
            exe = apr_pstrcat(p, home, "/bin/python3", NULL);
        }
        return PyConfig_SetBytesString(config, &config->executable, exe);
    }
    return PyConfig_SetBytesString(config, &config->home, home);
}

/*
 * The locale as a normal `python3` sets it up (the isolated pre-config
 * would leave LC_CTYPE at "C" whatever LANG, LC_ALL and LC_CTYPE say):
 * LC_CTYPE from the environment, so that a daemon's lang=/locale= and
 * Apache's own LANG reach Python's encodings; and in the C or POSIX
 * locale, PEP 538's coercion to C.UTF-8 and PEP 540's UTF-8 mode, so that
 * UTF-8 file names work under an init system's default locale.
 * PYTHONUTF8 and PYTHONCOERCECLOCALE stay ignored, as PYTHON* are.
 */
static PyStatus preinit_locale(void)
{
    PyPreConfig pre;

    PyPreConfig_InitIsolatedConfig(&pre);
    pre.configure_locale = 1;
    pre.coerce_c_locale = -1;
    pre.coerce_c_locale_warn = 0;
    pre.utf8_mode = -1;
    return Py_PreInitialize(&pre);
}

/* WSGIPythonWarnings, in order: as -W options, the last one given wins
 * where two filters match. */
static PyStatus config_warnings(PyConfig *config,
                                const apr_array_header_t *specs)
{
    PyStatus status = PyStatus_Ok();
    int i;

    for (i = 0; i < specs->nelts && !PyStatus_Exception(status); i++) {
        wchar_t *w = Py_DecodeLocale(APR_ARRAY_IDX(specs, i, const char *),
                                     NULL);

        if (!w) {
            return PyStatus_Error("WSGIPythonWarnings: a filter could not "
                                  "be decoded");
        }
        status = PyWideStringList_Append(&config->warnoptions, w);
        PyMem_RawFree(w);
    }
    return status;
}

/* WSGISwitchInterval, switch-interval=: called with the GIL. */
static void set_switch_interval(server_rec *s, double seconds)
{
    PyObject *sys = PyImport_ImportModule("sys");
    PyObject *res = sys ? PyObject_CallMethod(sys, "setswitchinterval", "d",
                                              seconds)
                        : NULL;

    if (!res) {
        tether_log_python_error(NULL, s, "setting the switch interval");
    }
    else {
        char text[32];

        /* libc's %g: APR's drops the 0 before the point. */
        snprintf(text, sizeof(text), "%g", seconds);
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     TETHER_LOGNO(0208) "Python's switch interval in "
                     "process %" APR_PID_T_FMT " is %s seconds",
                     getpid(), text);
    }
    Py_XDECREF(res);
    Py_XDECREF(sys);
}

static const char *start_python(apr_pool_t *p, const char *python_home)
{
    tether_global_conf_t *g = tether_config_global();
    PyConfig config;
    PyStatus status;
    const char *failure = NULL;

    status = preinit_locale();
    if (PyStatus_Exception(status)) {
        return status_text(p, status);
    }
    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    config.write_bytecode = !g->dont_write_bytecode;
    if (g->python_optimize != TETHER_UNSET) {
        config.optimization_level = g->python_optimize;
    }
    if (g->python_hash_seed && strcmp(g->python_hash_seed, "random")) {
        config.use_hash_seed = 1;
        config.hash_seed = (unsigned long)apr_atoi64(g->python_hash_seed);
    }
    status = PyConfig_SetBytesString(&config, &config.program_name,
                                     "mod_wsgi");
    if (!PyStatus_Exception(status)) {
        status = config_warnings(&config, g->python_warnings);
    }
    if (!PyStatus_Exception(status) && python_home) {
        status = config_home(&config, python_home, p);
    }
    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(&config);
    }
    if (PyStatus_Exception(status)) {
        failure = status_text(p, status);
    }
    PyConfig_Clear(&config);
    return failure;
}

void tether_interp_stop(void)
{
    stop_python(NULL);
}

static apr_status_t stop_python(void *data)
{
    apr_hash_index_t *hi;

    if (python_state != 1) {
        return APR_SUCCESS;
    }
    /* Run each interpreter's atexit functions (unless WSGIDestroyInterpreter
     * Off); Py_Finalize is skipped on purpose, as app threads may still
     * hold the interpreter.  Shutdown subscribers are told either way. */
    for (hi = apr_hash_first(NULL, interps); hi; hi = apr_hash_next(hi)) {
        tether_interp_t *interp = apr_hash_this_val(hi);
        PyObject *mod, *res;

        PyEval_RestoreThread(thread_state(interp));
        tether_api_process_stopping();
        if (!tether_config_global()->destroy_interpreter) {
            PyEval_SaveThread();
            continue;
        }
        mod = PyImport_ImportModule("atexit");
        res = mod ? PyObject_CallMethod(mod, "_run_exitfuncs", NULL) : NULL;
        if (!res) {
            tether_log_python_error(NULL, main_server,
                                    "running atexit functions");
        }
        Py_XDECREF(res);
        Py_XDECREF(mod);
        PyEval_SaveThread();
    }
    python_state = 0;
    return APR_SUCCESS;
}

void tether_interp_preload(server_rec *s)
{
    tether_global_conf_t *g = tether_config_global();
    int i;

    for (i = 0; i < g->imports->nelts; i++) {
        tether_import_t *imp = &APR_ARRAY_IDX(g->imports, i,
                                              tether_import_t);
        const char *group = strcmp(imp->application_group, "%{GLOBAL}")
                            ? imp->application_group : "";
        tether_interp_t *interp;
        PyObject *mod;

        const char *pg = strcmp(imp->process_group, "%{GLOBAL}")
                         ? imp->process_group : "";

        if (strcmp(pg, process_group)) {
            continue;       /* another process group's */
        }
        interp = tether_interp_acquire(group, NULL, imp->server);
        if (!interp) {
            return;
        }
        mod = tether_interp_load_script(interp, imp->script, 0, NULL,
                                        imp->server);
        Py_XDECREF(mod);
        tether_interp_release(interp);
    }
}

int tether_interp_start(apr_pool_t *pchild, server_rec *s,
                        const char *group, const char *home,
                        apr_array_header_t *path, double switch_interval)
{
    tether_global_conf_t *g = tether_config_global();
    const char *failure;
    PyThreadState *ts;

    main_server = s;
    interp_pool = pchild;
    process_group = group;
    python_path = path ? path : g->python_path;
    interps = apr_hash_make(pchild);
    apr_thread_mutex_create(&registry_lock, APR_THREAD_MUTEX_DEFAULT,
                            pchild);

    failure = start_python(pchild, home ? home : g->python_home);
    if (failure) {
        python_state = -1;
        python_failure = failure;
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     TETHER_LOGNO(0201) "Python could not start in process "
                     "%" APR_PID_T_FMT ": %s. Requests to WSGI applications "
                     "will fail with 500 until this is fixed; check "
                     "WSGIPythonHome (it must be the sys.prefix of a Python "
                     "%d.%d installation or venv that the Apache user can "
                     "read).", getpid(), failure, PY_MAJOR_VERSION,
                     PY_MINOR_VERSION);
        return -1;
    }

    if (tether_log_init() < 0 || tether_adapter_init() < 0
        || PyType_Ready(&tether_restricted_type) < 0) {
        tether_log_python_error(NULL, s, "setting up Tether's Python types");
        python_state = -1;
        python_failure = "Tether's Python types could not be set up";
        PyEval_SaveThread();
        return -1;
    }

    if (switch_interval > 0) {
        set_switch_interval(s, switch_interval);
    }
    main_interp = interp_record("");
    main_interp->istate = PyInterpreterState_Main();
    ts = PyThreadState_Get();
    apr_threadkey_private_set(ts, main_interp->tstate_key);
    if (setup_interpreter(main_interp) < 0) {
        tether_log_python_error(NULL, s, "setting up the main interpreter");
    }
    apr_hash_set(interps, main_interp->name, APR_HASH_KEY_STRING,
                 main_interp);
    PyEval_SaveThread();
    python_state = 1;
    apr_pool_cleanup_register(pchild, NULL, stop_python,
                              apr_pool_cleanup_null);
    return 0;
}

static void tether_child_init(apr_pool_t *pchild, server_rec *s)
{
    tether_global_conf_t *g = tether_config_global();

    /* With every application in daemon processes, Apache's children
     * need no Python at all. */
    if (g->restrict_embedded) {
        return;
    }
    /* The daemons have python-eggs= of their group instead. */
    if (g->python_eggs) {
        setenv("PYTHON_EGG_CACHE", g->python_eggs, 1);
    }
    if (tether_interp_start(pchild, s, "", NULL, NULL,
                            g->switch_interval) == 0) {
        tether_interp_preload(s);
    }
}

/* ------------------------------------------------------------------------
 * Interpreters by application group
 */

/* Creates the sub-interpreter `name`; called with registry_lock held and
 * no GIL. */
static tether_interp_t *create_interp(const char *name, server_rec *s)
{
    tether_interp_t *interp = interp_record(name);
    PyThreadState *ts;

    PyEval_RestoreThread(thread_state(main_interp));
    ts = Py_NewInterpreter();
    if (!ts) {
        PyThreadState_Swap(thread_state(main_interp));
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     TETHER_LOGNO(0202) "Creating the Python sub-interpreter "
                     "for application group '%s' failed", name);
        PyEval_SaveThread();
        return NULL;
    }
    interp->istate = PyThreadState_GetInterpreter(ts);
    apr_threadkey_private_set(ts, interp->tstate_key);
    if (setup_interpreter(interp) < 0) {
        tether_log_python_error(NULL, s,
                                apr_psprintf(interp_pool, "setting up "
                                             "application group '%s'",
                                             name));
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 TETHER_LOGNO(0203) "Created Python interpreter for "
                 "application group '%s' in process %" APR_PID_T_FMT,
                 name, getpid());
    PyEval_SaveThread();
    return interp;
}

tether_interp_t *tether_interp_acquire(const char *group, request_rec *r,
                                       server_rec *s)
{
    tether_interp_t *interp;

    if (python_state != 1) {
        if (r && python_state == 0) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          TETHER_LOGNO(0207) "Python is not started in "
                          "Apache's children (WSGIRestrictEmbedded On)");
        }
        else if (r) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          TETHER_LOGNO(0204) "Python is not available in "
                          "this process (%s); see the start-up error "
                          "above", python_failure ? python_failure
                                                  : "not started");
        }
        return NULL;
    }
    apr_thread_mutex_lock(registry_lock);
    interp = apr_hash_get(interps, group, APR_HASH_KEY_STRING);
    if (!interp) {
        interp = create_interp(group, s);
        if (interp) {
            apr_hash_set(interps, interp->name, APR_HASH_KEY_STRING, interp);
        }
    }
    apr_thread_mutex_unlock(registry_lock);
    if (!interp) {
        return NULL;
    }
    PyEval_RestoreThread(thread_state(interp));
    return interp;
}

void tether_interp_release(tether_interp_t *interp)
{
    PyEval_SaveThread();
}

/* ------------------------------------------------------------------------
 * WSGI scripts
 */

/* "_tether_" and a hash of the path: one module name per script file. */
static const char *module_name(apr_pool_t *p, const char *filename)
{
    apr_uint64_t h = APR_UINT64_C(14695981039346656037);
    const unsigned char *c;

    for (c = (const unsigned char *)filename; *c; c++) {
        h = (h ^ *c) * APR_UINT64_C(1099511628211);
    }
    return apr_psprintf(p, "_tether_%016" APR_UINT64_T_HEX_FMT, h);
}

/* Reads, compiles and executes the script as a new module.  GIL held. */
static PyObject *exec_script(const char *filename, const char *modname,
                             apr_pool_t *p)
{
    PyObject *io = NULL, *source = NULL, *code = NULL;
    PyObject *module = NULL, *modules, *dict, *res = NULL;

    /* io.open_code honours audit hooks; the compile step reads the
     * coding cookie from the bytes. */
    io = PyImport_ImportModule("io");
    if (io) {
        PyObject *f = PyObject_CallMethod(io, "open_code", "s", filename);

        if (f) {
            source = PyObject_CallMethod(f, "read", NULL);
            res = PyObject_CallMethod(f, "close", NULL);
            Py_XDECREF(res);
            res = NULL;
            Py_DECREF(f);
        }
    }
    if (!source) {
        goto cleanup;
    }
    code = Py_CompileStringExFlags(PyBytes_AsString(source), filename,
                                   Py_file_input, NULL, -1);
    if (!code) {
        goto cleanup;
    }
    module = PyModule_New(modname);
    if (!module) {
        goto cleanup;
    }
    dict = PyModule_GetDict(module);
    {
        PyObject *fname = PyUnicode_DecodeFSDefault(filename);

        if (!fname || PyDict_SetItemString(dict, "__file__", fname) < 0) {
            Py_XDECREF(fname);
            goto fail;
        }
        Py_DECREF(fname);
    }
    if (PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins())
            < 0) {
        goto fail;
    }
    modules = PyImport_GetModuleDict();
    if (PyDict_SetItemString(modules, modname, module) < 0) {
        goto fail;
    }
    res = PyEval_EvalCode(code, dict, dict);
    if (!res) {
        tether_saved_error_t saved;

        tether_error_save(&saved);
        if (PyDict_DelItemString(modules, modname) < 0) {
            PyErr_Clear();
        }
        tether_error_restore(&saved);
        goto fail;
    }
    goto cleanup;

fail:
    Py_CLEAR(module);
cleanup:
    Py_XDECREF(res);
    Py_XDECREF(code);
    Py_XDECREF(source);
    Py_XDECREF(io);
    return module;
}

PyObject *tether_interp_load_script(tether_interp_t *interp,
                                    const char *filename, int reload,
                                    request_rec *r, server_rec *s)
{
    apr_pool_t *p = r ? r->pool : interp_pool;
    apr_time_t mtime = 0;
    PyObject *key = NULL, *entry, *module = NULL, *tuple;
    const char *modname;

    if (r && r->filename && !strcmp(r->filename, filename)
        && r->finfo.filetype == APR_REG) {
        mtime = r->finfo.mtime;
    }
    else {
        apr_finfo_t finfo;

        if (apr_stat(&finfo, filename, APR_FINFO_MTIME, p) == APR_SUCCESS) {
            mtime = finfo.mtime;
        }
    }

    key = PyUnicode_DecodeFSDefault(filename);
    if (!key) {
        goto fail;
    }
    /* Fast path: loaded and unchanged. */
    entry = PyDict_GetItemWithError(interp->scripts, key);
    if (entry && (!reload || PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 1))
                             == (long long)mtime)) {
        module = PyTuple_GET_ITEM(entry, 0);
        Py_INCREF(module);
        Py_DECREF(key);
        return module;
    }
    if (PyErr_Occurred()) {
        goto fail;
    }

    /* Load under the interpreter's lock, waiting for it without the GIL
     * so that a thread loading (and perhaps importing) can go on. */
    Py_BEGIN_ALLOW_THREADS
    apr_thread_mutex_lock(interp->load_lock);
    Py_END_ALLOW_THREADS

    entry = PyDict_GetItemWithError(interp->scripts, key);
    if (entry && (!reload || PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 1))
                             == (long long)mtime)) {
        module = PyTuple_GET_ITEM(entry, 0);
        Py_INCREF(module);
    }
    else if (!PyErr_Occurred()) {
        if (entry) {
            if (r) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                              TETHER_LOGNO(0205) "Reloading WSGI script "
                              "'%s' (changed)", filename);
            }
        }
        modname = module_name(p, filename);
        module = exec_script(filename, modname, p);
        if (module) {
            tuple = Py_BuildValue("(OL)", module, (long long)mtime);
            if (!tuple || PyDict_SetItem(interp->scripts, key, tuple) < 0) {
                Py_CLEAR(module);
            }
            Py_XDECREF(tuple);
            if (module) {
                ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                             TETHER_LOGNO(0206) "Loaded WSGI script '%s' "
                             "into application group '%s' of process %"
                             APR_PID_T_FMT, filename, interp->name,
                             getpid());
            }
        }
    }
    apr_thread_mutex_unlock(interp->load_lock);
    if (module) {
        Py_DECREF(key);
        return module;
    }

fail:
    Py_XDECREF(key);
    tether_log_python_error(r, s, apr_psprintf(p, "loading WSGI script "
                                               "'%s'", filename));
    return NULL;
}

void tether_interp_register_hooks(apr_pool_t *p)
{
    ap_hook_child_init(tether_child_init, NULL, NULL, APR_HOOK_MIDDLE);
}

PyObject *tether_interp_load_app(tether_interp_t *interp,
                                 const char *filename, const char *callable,
                                 int reload, request_rec *r, server_rec *s)
{
    PyObject *module = tether_interp_load_script(interp, filename, reload,
                                                 r, s);
    PyObject *app;

    if (!module) {
        return NULL;
    }
    app = PyObject_GetAttrString(module, callable);
    Py_DECREF(module);
    if (!app) {
        PyErr_Clear();
        if (r) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          TETHER_LOGNO(0107) "WSGI script '%s' does not "
                          "contain a WSGI application called '%s'; define "
                          "it or set WSGICallableObject", filename, callable);
        }
    }
    return app;
}
