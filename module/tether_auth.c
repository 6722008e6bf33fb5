/*
 * Access and auth hooks written in Python, as mod_wsgi has them:
 *
 *   WSGIAccessScript     allow_access(environ, host), an access_checker
 *   WSGIAuthUserScript   the authn provider "wsgi" (AuthBasicProvider,
 *                        AuthDigestProvider, <AuthnProviderAlias>):
 *                        check_password(environ, user, password) and
 *                        get_realm_hash(environ, user, realm)
 *   WSGIAuthGroupScript  the authz provider "wsgi-group" (Require
 *                        wsgi-group name...): groups_for_user(environ, user)
 *
 * The scripts run in the Apache child, in the interpreter of their
 * application-group= (the main interpreter by default), never in a daemon
 * process.  An exception, or a result of the wrong type, fails the request
 * with 500 and logs the traceback.
 */
#include "tether_private.h"

#include "mod_auth.h"

/* The interpreter a hook script runs in: application-group=, else main. */
static const char *script_group(request_rec *r, const tether_script_t *s)
{
    if (!s->application_group) {
        return "";
    }
    return tether_handler_app_group(r, s->application_group, r->uri);
}

/* Logs that `what` returned a value of the wrong type. */
static void bad_result(request_rec *r, const char *what, PyObject *res,
                       const char *wanted)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  TETHER_LOGNO(0170) "%s returned %s; it must return %s",
                  what, Py_TYPE(res)->tp_name, wanted);
}

/*
 * Opens `func` of script `s` for r: returns OK with the call ready, or
 * HTTP_INTERNAL_SERVER_ERROR when the script cannot be loaded or has no
 * such function (logged).
 */
static int open_hook(request_rec *r, const tether_script_t *s,
                     const char *func, tether_script_call_t *call)
{
    int status = tether_script_open(r, s, script_group(r, s), func, NULL,
                                    call);

    if (status != OK) {
        return status;
    }
    if (!call->func) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0171) "The script '%s' (%s) defines no "
                      "%s()", s->script, s->directive, func);
        tether_script_close(call);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* Logs the pending Python exception of calling `what`. */
static void call_failed(request_rec *r, const char *what)
{
    tether_log_python_error(r, r->server,
                            apr_pstrcat(r->pool, "calling ", what, NULL));
}

/* ------------------------------------------------------------------------
 * WSGIAccessScript
 */

static int access_checker(request_rec *r)
{
    const tether_script_t *s = tether_config_dir(r)->access_script;
    tether_script_call_t call;
    const char *host;
    PyObject *res;
    int status;

    if (!s) {
        return DECLINED;
    }
    if ((status = open_hook(r, s, "allow_access", &call)) != OK) {
        return status;
    }
    /* The client's host name when HostnameLookups found one, else its
     * address. */
    host = ap_get_useragent_host(r, REMOTE_NAME, NULL);
    res = PyObject_CallFunction(call.func, "Os", call.environ,
                                host ? host : "");
    if (!res) {
        call_failed(r, call.what);
        status = HTTP_INTERNAL_SERVER_ERROR;
    }
    else if (res == Py_True) {
        status = OK;
    }
    else if (res == Py_False) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0172) "Client denied by WSGIAccessScript "
                      "'%s': allow_access() returned False for host '%s'",
                      s->script, host ? host : "");
        status = HTTP_FORBIDDEN;
    }
    else if (res == Py_None) {
        status = DECLINED;          /* no opinion: others decide */
    }
    else {
        bad_result(r, call.what, res, "True, False or None");
        status = HTTP_INTERNAL_SERVER_ERROR;
    }
    Py_XDECREF(res);
    tether_script_close(&call);
    return status;
}

/* ------------------------------------------------------------------------
 * The "wsgi" authn provider
 */

/*
 * Calls `func`(environ, a, b) of the WSGIAuthUserScript of r.  Returns
 * AUTH_GRANTED for True, AUTH_DENIED for False, AUTH_USER_NOT_FOUND for
 * None, AUTH_USER_FOUND for a string (in *str, r->pool), or
 * AUTH_GENERAL_ERROR after logging why (`wanted` says what it must return).
 */
static authn_status authn_call(request_rec *r, const char *func,
                               const char *a, const char *b,
                               const char *wanted, const char **str)
{
    const tether_script_t *s = tether_config_dir(r)->auth_user_script;
    tether_script_call_t call;
    authn_status result = AUTH_GENERAL_ERROR;
    PyObject *res;

    if (!s) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0173) "The auth provider 'wsgi' is used "
                      "for %s but no WSGIAuthUserScript is set there",
                      r->uri);
        return AUTH_GENERAL_ERROR;
    }
    if (open_hook(r, s, func, &call) != OK) {
        return AUTH_GENERAL_ERROR;
    }
    res = PyObject_CallFunction(call.func, "Oss", call.environ, a, b);
    if (!res) {
        call_failed(r, call.what);
    }
    else if (res == Py_True || res == Py_False || res == Py_None) {
        result = res == Py_True ? AUTH_GRANTED
                 : res == Py_False ? AUTH_DENIED : AUTH_USER_NOT_FOUND;
    }
    else if (PyUnicode_Check(res) && PyUnicode_GET_LENGTH(res) > 0) {
        if ((*str = PyUnicode_AsUTF8(res)) != NULL) {
            *str = apr_pstrdup(r->pool, *str);
            result = AUTH_USER_FOUND;
        }
        else {
            call_failed(r, call.what);
        }
    }
    else {
        bad_result(r, call.what, res, wanted);
    }
    Py_XDECREF(res);
    tether_script_close(&call);
    return result;
}

/* check_password(): True, False, None or the user name to use instead. */
static authn_status check_password(request_rec *r, const char *user,
                                   const char *password)
{
    const char *name = NULL;
    authn_status result = authn_call(r, "check_password", user, password,
                                     "True, False, None or a non-empty "
                                     "user name", &name);

    if (result == AUTH_USER_FOUND) {
        /* Granted, under the name the script gives (REMOTE_USER, the
         * access log and later group checks see it). */
        r->user = (char *)name;
        result = AUTH_GRANTED;
    }
    return result;
}

/* get_realm_hash(): the hex MD5 of "user:realm:password", or None. */
static authn_status get_realm_hash(request_rec *r, const char *user,
                                   const char *realm, char **rethash)
{
    static const char wanted[] = "None or the hex MD5 of "
                                 "'user:realm:password'";
    const char *hash = NULL;
    authn_status result = authn_call(r, "get_realm_hash", user, realm,
                                     wanted, &hash);

    if (result == AUTH_GRANTED || result == AUTH_DENIED) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0170) "get_realm_hash() of the "
                      "WSGIAuthUserScript returned a bool; it must return "
                      "%s", wanted);
        return AUTH_GENERAL_ERROR;
    }
    if (result == AUTH_USER_FOUND) {
        *rethash = (char *)hash;
    }
    return result;
}

static const authn_provider wsgi_authn_provider = {
    &check_password,
    &get_realm_hash,
};

/* ------------------------------------------------------------------------
 * The "wsgi-group" authz provider
 */

/* True when `name` is one of the words of the Require line. */
static int required(request_rec *r, const char *line, const char *name)
{
    const char *w;

    while (*line) {
        w = ap_getword_conf(r->pool, &line);
        if (*w && !strcmp(w, name)) {
            return 1;
        }
    }
    return 0;
}

static authz_status check_groups(request_rec *r, const char *require_line,
                                 const void *parsed)
{
    const tether_script_t *s = tether_config_dir(r)->auth_group_script;
    tether_script_call_t call;
    authz_status result = AUTHZ_GENERAL_ERROR;
    PyObject *res, *it = NULL, *item;

    if (!r->user) {
        return AUTHZ_DENIED_NO_USER;
    }
    if (!s) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0174) "'Require wsgi-group' is used for "
                      "%s but no WSGIAuthGroupScript is set there", r->uri);
        return AUTHZ_GENERAL_ERROR;
    }
    if (open_hook(r, s, "groups_for_user", &call) != OK) {
        return AUTHZ_GENERAL_ERROR;
    }
    res = PyObject_CallFunction(call.func, "Os", call.environ, r->user);
    if (!res || !(it = PyObject_GetIter(res))) {
        call_failed(r, call.what);
        goto cleanup;
    }
    result = AUTHZ_DENIED;
    while ((item = PyIter_Next(it)) != NULL) {
        const char *group = PyUnicode_Check(item) ? PyUnicode_AsUTF8(item)
                                                  : NULL;

        if (!group) {
            if (!PyErr_Occurred()) {
                bad_result(r, call.what, item, "a list of strings");
            }
            Py_DECREF(item);
            result = AUTHZ_GENERAL_ERROR;
            break;
        }
        if (required(r, require_line, group)) {
            result = AUTHZ_GRANTED;
            Py_DECREF(item);
            break;
        }
        Py_DECREF(item);
    }
    if (PyErr_Occurred()) {
        call_failed(r, call.what);
        result = AUTHZ_GENERAL_ERROR;
    }
    if (result == AUTHZ_DENIED) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      TETHER_LOGNO(0175) "User '%s' is in none of the "
                      "groups 'Require wsgi-group %s' needs (%s)", r->user,
                      require_line, s->script);
    }

cleanup:
    Py_XDECREF(it);
    Py_XDECREF(res);
    tether_script_close(&call);
    return result;
}

static const char *parse_groups(cmd_parms *cmd, const char *require_line,
                                const void **parsed)
{
    const char *line = require_line;

    if (!*ap_getword_conf(cmd->temp_pool, &line)) {
        return "Require wsgi-group needs one or more group names";
    }
    return NULL;
}

static const authz_provider wsgi_authz_provider = {
    &check_groups,
    &parse_groups,
};

void tether_auth_register_hooks(apr_pool_t *p)
{
    ap_hook_check_access(access_checker, NULL, NULL, APR_HOOK_MIDDLE,
                         AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHN_PROVIDER_GROUP, "wsgi",
                              AUTHN_PROVIDER_VERSION, &wsgi_authn_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "wsgi-group",
                              AUTHZ_PROVIDER_VERSION, &wsgi_authz_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
}
