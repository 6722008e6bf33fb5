/*
 * Scripts that Apache's children run around a request: the directives that
 * name them (WSGIAccessScript, WSGIAuthUserScript, WSGIAuthGroupScript,
 * WSGIDispatchScript, WSGIHandlerScript), the calls into them (a cut-down
 * WSGI environ, the interpreter of their application group), the
 * per-request routing of WSGIDispatchScript, and WSGIErrorOverride.
 *
 * Hook scripts always run in Apache's children, never in a daemon process,
 * as with mod_wsgi.  tether_auth.c holds the access and auth hooks.
 */
#include "tether_private.h"

#include "apr_file_info.h"

static const char *const script_options[] = {
    "application-group", NULL
};

static const char *const handler_options[] = {
    "process-group", "application-group", "pass-authorization", NULL
};

/* In a .htaccess file (where NOT_IN_HTACCESS would refuse). */
static int in_htaccess(cmd_parms *cmd)
{
    return ap_check_cmd_context(cmd, NOT_IN_HTACCESS) != NULL;
}

/*
 * The script file `path` of directive `who` made absolute (ServerRoot
 * relative), checked to be a readable regular file.
 */
static const char *script_path(cmd_parms *cmd, const char *who,
                               const char *path, const char **out)
{
    apr_finfo_t finfo;
    apr_status_t rv;
    char buf[120];

    *out = ap_server_root_relative(cmd->pool, path);
    if (!*out) {
        return apr_psprintf(cmd->pool, "%s: invalid script path '%s'", who,
                            path);
    }
    rv = apr_stat(&finfo, *out, APR_FINFO_TYPE, cmd->temp_pool);
    if (rv != APR_SUCCESS || finfo.filetype != APR_REG) {
        return apr_psprintf(cmd->pool, "%s: the script '%s' does not exist "
                            "or is not a file (%s)", who, *out,
                            rv != APR_SUCCESS
                            ? apr_strerror(rv, buf, sizeof(buf))
                            : "not a regular file");
    }
    return NULL;
}

/*
 * The script file and the options `allowed` after it (into `opts`), with
 * application-group= checked and set in s.
 */
static const char *parse_script(cmd_parms *cmd, const char *who,
                                const char *path, const char *args,
                                const char *const *allowed,
                                apr_table_t *opts, tether_script_t *s)
{
    const char *err, *v;

    if ((err = tether_config_options(cmd, who, args, allowed, 0, opts))
            != NULL
        || (err = script_path(cmd, who, path, &s->script)) != NULL) {
        return err;
    }
    if ((v = apr_table_get(opts, "application-group")) != NULL) {
        if ((err = tether_config_check_group(cmd, who, v, 0)) != NULL) {
            return err;
        }
        s->application_group = v;
    }
    s->pass_authorization = TETHER_UNSET;
    s->in_htaccess = in_htaccess(cmd);
    s->directive = tether_config_where(cmd);
    return NULL;
}

const char *tether_dispatch_set_script(cmd_parms *cmd, void *mconfig,
                                       const char *args)
{
    tether_dir_conf_t *conf = mconfig;
    const char *who = cmd->cmd->name;
    int kind = (int)(apr_uintptr_t)cmd->info;
    apr_table_t *opts = apr_table_make(cmd->temp_pool, 2);
    tether_script_t *s = apr_pcalloc(cmd->pool, sizeof(*s));
    const char *word, *err;

    word = ap_getword_conf(cmd->pool, &args);
    if (!*word) {
        return apr_psprintf(cmd->pool, "%s needs a script file (%s)", who,
                            tether_config_where(cmd));
    }
    if ((err = parse_script(cmd, who, word, args, script_options, opts, s))
            != NULL) {
        return err;
    }
    switch (kind) {
    case TETHER_SCRIPT_ACCESS:
        conf->access_script = s;
        break;
    case TETHER_SCRIPT_AUTH_USER:
        conf->auth_user_script = s;
        break;
    case TETHER_SCRIPT_AUTH_GROUP:
        conf->auth_group_script = s;
        break;
    default:
        conf->dispatch_script = s;
        break;
    }
    return NULL;
}

const char *tether_dispatch_set_handler(cmd_parms *cmd, void *mconfig,
                                        const char *args)
{
    tether_dir_conf_t *conf = mconfig;
    const char *who = cmd->cmd->name;
    apr_table_t *opts = apr_table_make(cmd->temp_pool, 4);
    tether_script_t *s = apr_pcalloc(cmd->pool, sizeof(*s));
    const char *script, *err, *v;
    char *key;

    s->name = ap_getword_conf(cmd->pool, &args);
    script = ap_getword_conf(cmd->pool, &args);
    if (!*s->name || !*script) {
        return apr_psprintf(cmd->pool, "%s needs a handler name and a "
                            "script file (%s)", who,
                            tether_config_where(cmd));
    }
    if (!strcasecmp(s->name, TETHER_HANDLER)
        || !strcasecmp(s->name, TETHER_HANDLER_MIME)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is the handler of WSGI "
                            "scripts themselves; choose another name", who,
                            s->name);
    }
    if ((err = parse_script(cmd, who, script, args, handler_options, opts,
                            s)) != NULL) {
        return err;
    }
    if ((v = apr_table_get(opts, "process-group")) != NULL) {
        if ((err = tether_config_check_group(cmd, who, v, 1)) != NULL) {
            return err;
        }
        s->process_group = v;
        tether_config_group_ref(cmd, apr_pstrcat(cmd->pool, who, " ",
                                                 s->name, " process-group",
                                                 NULL), v);
    }
    if ((v = apr_table_get(opts, "pass-authorization")) != NULL
        && (err = tether_config_onoff(cmd, apr_pstrcat(cmd->pool, who,
                                                       ": pass-"
                                                       "authorization",
                                                       NULL),
                                      v, &s->pass_authorization)) != NULL) {
        return err;
    }
    if (!conf->handler_scripts) {
        conf->handler_scripts = apr_hash_make(cmd->pool);
    }
    /* Handler names are matched without regard to case, as Apache's. */
    key = apr_pstrdup(cmd->pool, s->name);
    ap_str_tolower(key);
    apr_hash_set(conf->handler_scripts, key, APR_HASH_KEY_STRING, s);
    return NULL;
}

const tether_script_t *tether_dispatch_handler_script(request_rec *r)
{
    tether_dir_conf_t *dconf = tether_config_dir(r);
    char *name;

    if (!r->handler || !dconf->handler_scripts) {
        return NULL;
    }
    name = apr_pstrdup(r->pool, r->handler);
    ap_str_tolower(name);
    return apr_hash_get(dconf->handler_scripts, name, APR_HASH_KEY_STRING);
}

/* ------------------------------------------------------------------------
 * Calling a hook script
 */

int tether_script_open(request_rec *r, const tether_script_t *s,
                       const char *group, const char *func,
                       const tether_request_t *req,
                       tether_script_call_t *call)
{
    tether_dir_conf_t *dconf = tether_config_dir(r);
    tether_request_t auth_req;
    PyObject *module;

    memset(call, 0, sizeof(*call));
    call->what = apr_psprintf(r->pool, "%s() of the script '%s' (%s)", func,
                              s->script, s->directive);
    if (!req) {
        /* The auth hooks: no SCRIPT_NAME split yet, no Authorization. */
        memset(&auth_req, 0, sizeof(auth_req));
        auth_req.script_name = "";
        auth_req.path_info = r->uri ? r->uri : "";
        auth_req.script_file = s->script;
        auth_req.process_group = "";
        auth_req.application_group = group;
        auth_req.callable_object = func;
        auth_req.map_head_to_get = TETHER_HEAD_OFF;
        auth_req.environ = tether_environ_strings(r, &auth_req);
        req = &auth_req;
    }

    call->interp = tether_interp_acquire(group, r, r->server);
    if (!call->interp) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    tether_log_set_current(r);
    module = tether_interp_load_script(call->interp, s->script,
                                       dconf->script_reloading != 0, r,
                                       r->server);
    if (!module) {
        tether_script_close(call);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    call->script = s;
    call->module = module;
    call->func = PyObject_GetAttrString(module, func);
    if (!call->func) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            tether_log_python_error(r, r->server,
                                    apr_pstrcat(r->pool, "looking up ",
                                                call->what, NULL));
            tether_script_close(call);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        PyErr_Clear();
    }
    call->errors = tether_log_new(r, r->server, APLOG_ERR, "wsgi.errors");
    if (!call->errors
        || !(call->environ = tether_adapter_environ(req, call->errors))) {
        tether_log_python_error(r, r->server,
                                apr_pstrcat(r->pool, "preparing to call ",
                                            call->what, NULL));
        tether_script_close(call);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

void tether_script_close(tether_script_call_t *call)
{
    if (!call->interp) {
        return;
    }
    if (call->errors) {
        tether_log_close(call->errors);
    }
    Py_CLEAR(call->errors);
    Py_CLEAR(call->environ);
    Py_CLEAR(call->func);
    Py_CLEAR(call->module);
    tether_log_set_current(NULL);
    tether_interp_release(call->interp);
    call->interp = NULL;
}

/* ------------------------------------------------------------------------
 * WSGIDispatchScript
 */

/*
 * Calls `name`(environ) of the open dispatch script, if it has one.
 * Returns OK with *out set (NULL when absent or None), or
 * HTTP_INTERNAL_SERVER_ERROR after logging why.
 */
static int dispatch_call(request_rec *r, tether_script_call_t *call,
                         const char *name, const char **out)
{
    const char *what = apr_psprintf(r->pool, "%s() of WSGIDispatchScript "
                                    "'%s'", name, call->script->script);
    PyObject *func, *res;
    int status = OK;

    *out = NULL;
    if (!(func = PyObject_GetAttrString(call->module, name))) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            return OK;
        }
        tether_log_python_error(r, r->server,
                                apr_pstrcat(r->pool, "looking up ", what,
                                            NULL));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    res = PyObject_CallFunctionObjArgs(func, call->environ, NULL);
    Py_DECREF(func);
    if (!res) {
        tether_log_python_error(r, r->server,
                                apr_pstrcat(r->pool, "calling ", what,
                                            NULL));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (PyUnicode_Check(res)) {
        const char *v = PyUnicode_AsUTF8(res);

        if (v) {
            *out = apr_pstrdup(r->pool, v);
        }
        else {
            tether_log_python_error(r, r->server,
                                    apr_pstrcat(r->pool, "reading the "
                                                "result of ", what, NULL));
            status = HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    else if (res != Py_None) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0160) "%s returned %s; it must return a "
                      "string or None", what, Py_TYPE(res)->tp_name);
        status = HTTP_INTERNAL_SERVER_ERROR;
    }
    Py_DECREF(res);
    return status;
}

int tether_dispatch_run(request_rec *r, tether_request_t *req,
                        int fixed_callable)
{
    static const char *const funcs[] = {
        "process_group", "application_group", "callable_object"
    };
    tether_dir_conf_t *dconf = tether_config_dir(r);
    const tether_script_t *s = dconf->dispatch_script;
    const char *group, *result[3] = { NULL, NULL, NULL };
    tether_script_call_t call;
    int i, status;

    if (!s) {
        return OK;
    }
    group = s->application_group
            ? tether_handler_app_group(r, s->application_group,
                                       req->script_name)
            : req->application_group;
    /* The environ the application would see, as routed so far. */
    req->environ = tether_environ_strings(r, req);
    if ((status = tether_script_open(r, s, group, funcs[0], req, &call))
            != OK) {
        return status;
    }
    for (i = 0; i < (fixed_callable ? 2 : 3) && status == OK; i++) {
        status = dispatch_call(r, &call, funcs[i], &result[i]);
    }
    tether_script_close(&call);
    if (status != OK) {
        return status;
    }
    if (result[0]) {
        req->process_group = tether_handler_process_group(r, result[0]);
    }
    if (result[1]) {
        req->application_group = tether_handler_app_group(r, result[1],
                                                          req->script_name);
    }
    if (result[2]) {
        req->callable_object = result[2];
    }
    if (result[0] || result[1] || result[2]) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      TETHER_LOGNO(0161) "WSGIDispatchScript %s chose "
                      "process group '%s', application group '%s', "
                      "callable '%s'", s->script, req->process_group,
                      req->application_group, req->callable_object);
    }
    return OK;
}

/*
 * WSGIEnableSendfile if set, else Apache's EnableSendfile if set.  With
 * neither, embedded mode follows Apache's default (Off), while a file a
 * daemon passes goes with sendfile: mapping it instead would count every
 * concurrent response's file pages in the child's resident size.
 */
int tether_dispatch_sendfile(request_rec *r, int daemon)
{
    int mine = tether_config_dir(r)->enable_sendfile;
    core_dir_config *core = ap_get_core_module_config(r->per_dir_config);

    if (mine != TETHER_UNSET) {
        return mine;
    }
    if (core->enable_sendfile != ENABLE_SENDFILE_UNSET) {
        return core->enable_sendfile == ENABLE_SENDFILE_ON;
    }
    return daemon;
}

/* ------------------------------------------------------------------------
 * WSGIErrorOverride
 */

static ap_filter_rec_t *error_override_filter;

/*
 * Sits above everything else of a daemon mode response: when the status
 * the daemon sent is an error, the response is replaced by Apache's own
 * error response (ErrorDocument) and the daemon's body is dropped.
 */
static apr_status_t error_override_out(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    int *state = f->ctx;
    int status;

    if (*state == 1) {
        apr_brigade_cleanup(bb);        /* the daemon's error page */
        return APR_SUCCESS;
    }
    if (*state == 0 && !ap_is_HTTP_ERROR(r->status)) {
        ap_remove_output_filter(f);
        return ap_pass_brigade(f->next, bb);
    }
    *state = 1;
    status = r->status;
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  TETHER_LOGNO(0162) "WSGIErrorOverride: the application's "
                  "%d response is replaced by Apache's", status);
    apr_brigade_cleanup(bb);
    /* Else ap_die() takes the status for an error in the error page and
     * skips the ErrorDocument. */
    r->status = HTTP_OK;
    r->status_line = NULL;
    apr_table_clear(r->headers_out);
    ap_set_content_length(r, 0);
    APR_BRIGADE_INSERT_TAIL(bb, ap_bucket_error_create(status, NULL, r->pool,
                                                       f->c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(f->c->bucket_alloc));
    /* The header filter answers an error bucket with ap_die(); whatever
     * it returns, the daemon's response is still read to its end. */
    ap_pass_brigade(f->next, bb);
    apr_brigade_cleanup(bb);
    return APR_SUCCESS;
}

void tether_dispatch_error_override(request_rec *r)
{
    int *state = apr_pcalloc(r->pool, sizeof(*state));

    ap_add_output_filter_handle(error_override_filter, state, r,
                                r->connection);
}

void tether_dispatch_register_hooks(apr_pool_t *p)
{
    error_override_filter = ap_register_output_filter(
        "TETHER_ERROR_OVERRIDE", error_override_out, NULL,
        AP_FTYPE_RESOURCE);
}
