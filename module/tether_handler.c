/*
 * Request side of mod_tether: maps URLs to WSGI scripts (WSGIScriptAlias,
 * WSGIScriptAliasMatch), resolves the groups and options for a request,
 * and runs the application through the adapter.
 */
#include "tether_private.h"

#include "apr_lib.h"

/* What translate_name found, kept for the handler. */
typedef struct {
    const tether_alias_t *alias;
} tether_match_t;

/*
 * Length of the prefix of `uri` that the alias `loc` matches, or -1.  Runs
 * of slashes in the URI match one slash of the alias, as with mod_alias;
 * the match must end at a slash or at the end of the URI.
 */
static apr_ssize_t prefix_match(const char *uri, const char *loc)
{
    const char *u = uri;
    const char *l = loc;

    while (*l) {
        if (*l == '/') {
            if (*u != '/') {
                return -1;
            }
            while (*l == '/') {
                l++;
            }
            while (*u == '/') {
                u++;
            }
            continue;
        }
        if (*u++ != *l++) {
            return -1;
        }
    }
    /* "/app" must not match "/apple"; an alias ending in '/' already
     * consumed the slash. */
    if (l > loc && l[-1] != '/' && *u && *u != '/') {
        return -1;
    }
    /* Give back the slash that an alias ending in '/' consumed, so that
     * the rest of the URI starts with one. */
    while (u > uri && u[-1] == '/') {
        u--;
    }
    return u - uri;
}

static int tether_translate_name(request_rec *r)
{
    tether_server_conf_t *conf = tether_config_server(r->server);
    int i;

    if (!r->uri || r->uri[0] != '/') {
        return DECLINED;
    }
    for (i = 0; i < conf->aliases->nelts; i++) {
        const tether_alias_t *a = &APR_ARRAY_IDX(conf->aliases, i,
                                                 tether_alias_t);
        const char *target = a->target;
        apr_size_t len;
        tether_match_t *m;
        char *base;

        if (a->regexp) {
            ap_regmatch_t regm[AP_MAX_REG_MATCH];

            if (ap_regexec(a->regexp, r->uri, AP_MAX_REG_MATCH, regm, 0)) {
                continue;
            }
            target = ap_pregsub(r->pool, a->target, r->uri,
                                AP_MAX_REG_MATCH, regm);
            if (!target) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              TETHER_LOGNO(0101) "%s: substituting into "
                              "'%s' failed for '%s'", a->directive,
                              a->target, r->uri);
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            len = regm[0].rm_eo;
        }
        else {
            apr_ssize_t n = prefix_match(r->uri, a->location);

            if (n < 0) {
                continue;
            }
            len = n;
        }

        /* The script path plus the rest of the URI; the directory walk
         * then splits off PATH_INFO at the script file. */
        base = apr_pstrdup(r->pool, target);
        {
            apr_size_t bl = strlen(base);

            while (bl > 1 && base[bl - 1] == '/') {
                base[--bl] = '\0';
            }
        }
        r->filename = apr_pstrcat(r->pool, base, r->uri + len, NULL);
        r->handler = TETHER_HANDLER;
        apr_table_setn(r->notes, "alias-forced-type", r->handler);
        m = apr_pcalloc(r->pool, sizeof(*m));
        m->alias = a;
        ap_set_module_config(r->request_config, &tether_module, m);
        return OK;
    }
    return DECLINED;
}

/* ------------------------------------------------------------------------
 * Resolving the groups of a request
 */

/* "host" or "host:port" when the port is not the scheme's default. */
static const char *host_with_port(request_rec *r, const char *host)
{
    apr_port_t port = ap_get_server_port(r);

    if (port == 80 || port == 443) {
        return host;
    }
    return apr_psprintf(r->pool, "%s:%u", host, port);
}

static const char *env_lookup(request_rec *r, const char *spec)
{
    /* spec is "%{ENV:name}" */
    apr_size_t n = strlen(spec);
    const char *name = apr_pstrmemdup(r->pool, spec + 6, n - 7);
    const char *v = apr_table_get(r->subprocess_env, name);

    if (!v) {
        v = apr_table_get(r->notes, name);
    }
    if (!v) {
        v = getenv(name);
    }
    return v ? v : "";
}

static const char *expand_app_group(request_rec *r, const char *spec,
                                    const char *script_name)
{
    if (!spec || !strcmp(spec, "%{RESOURCE}")) {
        return apr_pstrcat(r->pool,
                           host_with_port(r, r->server->server_hostname),
                           "|", script_name, NULL);
    }
    if (!strcmp(spec, "%{GLOBAL}")) {
        return "";
    }
    if (!strcmp(spec, "%{SERVER}")) {
        return host_with_port(r, r->server->server_hostname);
    }
    if (!strcmp(spec, "%{HOST}")) {
        return host_with_port(r, r->hostname ? r->hostname
                                             : r->server->server_hostname);
    }
    if (!strncmp(spec, "%{ENV:", 6)) {
        return env_lookup(r, spec);
    }
    return spec;
}

static const char *expand_process_group(request_rec *r, const char *spec)
{
    if (!spec || !strcmp(spec, "%{GLOBAL}")) {
        return "";
    }
    if (!strncmp(spec, "%{ENV:", 6)) {
        return env_lookup(r, spec);
    }
    return spec;
}

/*
 * SCRIPT_NAME is the URI less PATH_INFO.  r->uri may still hold runs of
 * slashes (MergeSlashes Off): they collapse here as they do in PATH_INFO.
 */
static const char *script_name_of(request_rec *r, const char *path_info)
{
    apr_size_t ulen = strlen(r->uri);
    apr_size_t plen = strlen(path_info);
    char *sn;

    if (plen <= ulen && !strcmp(r->uri + ulen - plen, path_info)) {
        sn = apr_pstrmemdup(r->pool, r->uri, ulen - plen);
    }
    else {
        sn = apr_pstrdup(r->pool, r->uri);
    }
    ap_no2slash(sn);
    while (*sn && sn[strlen(sn) - 1] == '/') {
        sn[strlen(sn) - 1] = '\0';
    }
    return sn;
}

static void resolve_request(request_rec *r, const tether_match_t *m,
                            tether_request_t *req)
{
    tether_dir_conf_t *dconf = tether_config_dir(r);
    const tether_alias_t *a = m ? m->alias : NULL;
    const char *pg, *ag, *co;
    int pa;

    req->script_file = r->filename;
    req->path_info = r->path_info ? r->path_info : "";
    req->script_name = script_name_of(r, req->path_info);

    pg = a && a->process_group ? a->process_group : dconf->process_group;
    ag = a && a->application_group ? a->application_group
                                   : dconf->application_group;
    co = a && a->callable_object ? a->callable_object
                                 : dconf->callable_object;
    pa = a && a->pass_authorization != TETHER_UNSET
         ? a->pass_authorization : dconf->pass_authorization;

    req->process_group = expand_process_group(r, pg);
    req->application_group = expand_app_group(r, ag, req->script_name);
    req->callable_object = co ? co : "application";
    req->pass_authorization = pa == 1;
    req->script_reloading = dconf->script_reloading != 0;
    req->map_head_to_get = dconf->map_head_to_get == TETHER_UNSET
                           ? TETHER_HEAD_AUTO : dconf->map_head_to_get;
}

/* The group expansions, for the WSGIDispatchScript results. */
const char *tether_handler_app_group(request_rec *r, const char *spec,
                                     const char *script_name)
{
    return expand_app_group(r, spec, script_name);
}

const char *tether_handler_process_group(request_rec *r, const char *spec)
{
    return expand_process_group(r, spec);
}

/*
 * WSGIHandlerScript: its script and handle_request() serve the request;
 * its options, when given, come before the directory's settings.
 */
static void handler_script_apply(request_rec *r, const tether_script_t *hs,
                                 tether_request_t *req)
{
    req->script_file = hs->script;
    req->callable_object = "handle_request";
    if (hs->process_group) {
        req->process_group = expand_process_group(r, hs->process_group);
    }
    if (hs->application_group) {
        req->application_group = expand_app_group(r, hs->application_group,
                                                  req->script_name);
    }
    if (hs->pass_authorization != TETHER_UNSET) {
        req->pass_authorization = hs->pass_authorization;
    }
}

/* ------------------------------------------------------------------------
 * The handler
 */

/* True when WSGIRestrictProcess allows the request's daemon group. */
static int process_allowed(tether_dir_conf_t *dconf, const char *group)
{
    int i;

    if (!dconf->restrict_process) {
        return 1;
    }
    for (i = 0; i < dconf->restrict_process->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(dconf->restrict_process, i, const char *),
                    group)) {
            return 1;
        }
    }
    return 0;
}

/*
 * script-user=/script-group= of the daemon group: the WSGI script must be
 * owned by that user (group), or the request is refused (403) before any
 * connection to the daemons.  Checked in the Apache child, on the
 * r->finfo the directory walk already has.
 */
static int script_owner_allowed(request_rec *r, const tether_request_t *req,
                                tether_daemon_group_t *dg)
{
    /* A WSGIHandlerScript's own file, else the one the walk found. */
    const char *path = req->script_file;
    apr_finfo_t fi = r->finfo;
    const char *name;

    if (!dg->script_user && !dg->script_group) {
        return 1;
    }
    if (strcmp(path, r->filename)) {
        fi.valid = 0;
    }
    if ((fi.valid & APR_FINFO_OWNER) != APR_FINFO_OWNER
        && apr_stat(&fi, path, APR_FINFO_OWNER, r->pool) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0150) "Cannot tell who owns WSGI script "
                      "%s; daemon group '%s' only runs scripts owned by %s "
                      "'%s'", path, dg->name,
                      dg->script_user ? "user" : "group",
                      dg->script_user ? dg->script_user : dg->script_group);
        return 0;
    }
    if (dg->script_user && fi.user != dg->script_uid) {
        if (apr_uid_name_get((char **)&name, fi.user, r->pool)
            != APR_SUCCESS) {
            name = "?";
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0150) "WSGI script %s is owned by user "
                      "'%s' (uid %ld); daemon group '%s' only runs scripts "
                      "owned by user '%s' (uid %ld, script-user=)",
                      path, name, (long)fi.user, dg->name,
                      dg->script_user, (long)dg->script_uid);
        return 0;
    }
    if (dg->script_group && fi.group != dg->script_gid) {
        if (apr_gid_name_get((char **)&name, fi.group, r->pool)
            != APR_SUCCESS) {
            name = "?";
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0150) "WSGI script %s is owned by group "
                      "'%s' (gid %ld); daemon group '%s' only runs scripts "
                      "owned by group '%s' (gid %ld, script-group=)",
                      path, name, (long)fi.group, dg->name,
                      dg->script_group, (long)dg->script_gid);
        return 0;
    }
    return 1;
}

/* Daemon mode: the request goes to the daemon processes of its group. */
static int run_in_daemon(request_rec *r, tether_request_t *req,
                         tether_dir_conf_t *dconf)
{
    tether_daemon_group_t *dg = tether_config_daemon(req->process_group);
    int status;

    if (!dg || !tether_config_daemon_visible(dg, r->server)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0105) "No WSGIDaemonProcess group called "
                      "'%s' is configured for this virtual host: %s",
                      req->process_group, r->filename);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!process_allowed(dconf, req->process_group)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0108) "Daemon group '%s' is not allowed "
                      "here by WSGIRestrictProcess: %s", req->process_group,
                      r->filename);
        return HTTP_FORBIDDEN;
    }
    if (!script_owner_allowed(r, req, dg)) {
        return HTTP_FORBIDDEN;
    }
    status = ap_setup_client_block(r, dconf->chunked_request == 1
                                      ? REQUEST_CHUNKED_DECHUNK
                                      : REQUEST_CHUNKED_ERROR);
    if (status != OK) {
        return status;
    }
    req->environ = tether_environ_strings(r, req);
    return tether_client_run(r, req, dg);
}

/* wsgi.multithread and wsgi.multiprocess of Apache's own children. */
static void embedded_capacity(tether_request_t *req)
{
    int threads = 1, daemons = 1;

    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS) {
        threads = 1;
    }
    if (ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons) != APR_SUCCESS
        || ap_exists_config_define("ONE_PROCESS")) {
        daemons = 1;
    }
    req->multithread = threads > 1;
    req->multiprocess = daemons > 1;
}

static int tether_handler(request_rec *r)
{
    tether_global_conf_t *g = tether_config_global();
    tether_dir_conf_t *dconf;
    tether_match_t *m;
    tether_request_t req;
    const tether_script_t *hs;
    tether_interp_t *interp;
    PyObject *app = NULL;
    int status;

    hs = tether_dispatch_handler_script(r);
    if (!hs && (!r->handler || (strcmp(r->handler, TETHER_HANDLER)
                                && strcmp(r->handler, TETHER_HANDLER_MIME)))) {
        return DECLINED;
    }
    m = ap_get_module_config(r->request_config, &tether_module);

    if (hs) {
        /* WSGIHandlerScript: the script is the handler's, r->filename is
         * only the resource it is asked for (it need not exist).  One
         * set in a .htaccess file needs ExecCGI, as SetHandler does. */
        if (hs->in_htaccess && !(ap_allow_options(r) & OPT_EXECCGI)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          TETHER_LOGNO(0104) "Options ExecCGI is off in "
                          "this directory: WSGIHandlerScript %s %s",
                          hs->name, hs->script);
            return HTTP_FORBIDDEN;
        }
    }
    else if (r->finfo.filetype == APR_NOFILE) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0102) "WSGI script not found or unable "
                      "to stat: %s", r->filename);
        return HTTP_NOT_FOUND;
    }
    else if (r->finfo.filetype == APR_DIR) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0103) "Attempt to invoke directory as "
                      "WSGI application: %s", r->filename);
        return HTTP_FORBIDDEN;
    }
    /* SetHandler/AddHandler need ExecCGI, as with mod_wsgi; an alias
     * implies it. */
    else if (!m && !(ap_allow_options(r) & OPT_EXECCGI)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0104) "Options ExecCGI is off in this "
                      "directory: %s", r->filename);
        return HTTP_FORBIDDEN;
    }

    resolve_request(r, m, &req);
    if (hs) {
        handler_script_apply(r, hs, &req);
    }
    if ((status = tether_dispatch_run(r, &req, hs != NULL)) != OK) {
        return status;
    }

    dconf = tether_config_dir(r);
    if (*req.process_group) {
        if (dconf->error_override == 1) {
            tether_dispatch_error_override(r);
        }
        return run_in_daemon(r, &req, dconf);
    }
    if (g->restrict_embedded) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      TETHER_LOGNO(0106) "Embedded mode is disabled by "
                      "WSGIRestrictEmbedded On; cannot run %s",
                      r->filename);
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    status = ap_setup_client_block(r, dconf->chunked_request == 1
                                      ? REQUEST_CHUNKED_DECHUNK
                                      : REQUEST_CHUNKED_ERROR);
    if (status != OK) {
        return status;
    }

    req.environ = tether_environ_strings(r, &req);
    req.pass_apache_request = dconf->pass_apache_request == 1;
    embedded_capacity(&req);

    interp = tether_interp_acquire(req.application_group, r, r->server);
    if (!interp) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    tether_log_set_current(r);

    app = tether_interp_load_app(interp, req.script_file,
                                 req.callable_object, req.script_reloading,
                                 r, r->server);
    if (!app) {
        status = HTTP_INTERNAL_SERVER_ERROR;
        goto cleanup;
    }
    status = tether_adapter_run(r, &req, app);

cleanup:
    Py_XDECREF(app);
    tether_log_set_current(NULL);
    tether_interp_release(interp);
    return status;
}

void tether_handler_register_hooks(apr_pool_t *p)
{
    static const char *const after[] = { "mod_alias.c", NULL };
    static const char *const before[] = { "mod_userdir.c",
                                          "mod_vhost_alias.c", NULL };

    ap_hook_translate_name(tether_translate_name, after, before,
                           APR_HOOK_MIDDLE);
    ap_hook_handler(tether_handler, NULL, NULL, APR_HOOK_MIDDLE);
}
