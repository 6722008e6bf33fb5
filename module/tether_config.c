/*
 * Configuration of mod_tether: the records, their create/merge functions,
 * the directive table (mod_wsgi's directives, same syntax, contexts and
 * defaults) and the configuration checks that run with `apachectl -t`.
 *
 * Every setter returns NULL or a message, allocated from cmd->pool, that
 * names the directive and the offending value.
 */
#include "tether_private.h"

#include "ap_mpm.h"
#include "apr_file_info.h"

/* The process-wide settings; reset at the start of every config pass. */
static tether_global_conf_t *global_conf;

tether_global_conf_t *tether_config_global(void)
{
    return global_conf;
}

static tether_global_conf_t *global_conf_create(apr_pool_t *p)
{
    tether_global_conf_t *g = apr_pcalloc(p, sizeof(*g));

    g->python_path = apr_array_make(p, 2, sizeof(const char *));
    g->python_optimize = TETHER_UNSET;
    g->dont_write_bytecode = 0;
    g->restrict_embedded = 0;
    g->restrict_stdin = 1;
    g->restrict_stdout = 0;
    g->restrict_signal = 1;
    g->imports = apr_array_make(p, 2, sizeof(tether_import_t));
    return g;
}

static int tether_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                             apr_pool_t *ptemp)
{
    global_conf = global_conf_create(pconf);
    return OK;
}

/* ------------------------------------------------------------------------
 * Records
 */

void *tether_config_create_server(apr_pool_t *p, server_rec *s)
{
    tether_server_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    conf->aliases = apr_array_make(p, 2, sizeof(tether_alias_t));
    /* Directives can be read before pre_config on the first pass. */
    if (!global_conf) {
        global_conf = global_conf_create(p);
    }
    return conf;
}

void *tether_config_merge_server(apr_pool_t *p, void *basev, void *addv)
{
    tether_server_conf_t *base = basev;
    tether_server_conf_t *add = addv;
    tether_server_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    /* A virtual host's own aliases are tried before the main server's. */
    conf->aliases = apr_array_append(p, add->aliases, base->aliases);
    return conf;
}

void *tether_config_create_dir(apr_pool_t *p, char *dir)
{
    tether_dir_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    conf->pass_authorization = TETHER_UNSET;
    conf->script_reloading = TETHER_UNSET;
    conf->chunked_request = TETHER_UNSET;
    conf->map_head_to_get = TETHER_UNSET;
    return conf;
}

#define MERGE_PTR(f) conf->f = add->f ? add->f : base->f
#define MERGE_INT(f) conf->f = add->f != TETHER_UNSET ? add->f : base->f

void *tether_config_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    tether_dir_conf_t *base = basev;
    tether_dir_conf_t *add = addv;
    tether_dir_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    MERGE_PTR(process_group);
    MERGE_PTR(application_group);
    MERGE_PTR(callable_object);
    MERGE_INT(pass_authorization);
    MERGE_INT(script_reloading);
    MERGE_INT(chunked_request);
    MERGE_INT(map_head_to_get);
    return conf;
}

tether_server_conf_t *tether_config_server(server_rec *s)
{
    return ap_get_module_config(s->module_config, &tether_module);
}

tether_dir_conf_t *tether_config_dir(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &tether_module);
}

/* ------------------------------------------------------------------------
 * Value checks shared by the setters
 */

static const char *where(cmd_parms *cmd)
{
    if (cmd->directive && cmd->directive->filename) {
        return apr_psprintf(cmd->pool, "%s:%d", cmd->directive->filename,
                            cmd->directive->line_num);
    }
    return "(command line)";
}

/*
 * Checks a group name for WSGIApplicationGroup or application-group=:
 * a literal, or one of the %{...} expansions mod_wsgi knows.
 */
static const char *check_app_group(cmd_parms *cmd, const char *name,
                                   const char *value)
{
    if (value[0] != '%') {
        return NULL;
    }
    if (!strcmp(value, "%{GLOBAL}") || !strcmp(value, "%{RESOURCE}")
        || !strcmp(value, "%{SERVER}") || !strcmp(value, "%{HOST}")) {
        return NULL;
    }
    if (!strncmp(value, "%{ENV:", 6) && value[strlen(value) - 1] == '}'
        && strlen(value) > 7) {
        return NULL;
    }
    return apr_psprintf(cmd->pool,
                        "%s: unknown expansion '%s'; use a plain name, "
                        "%%{GLOBAL}, %%{RESOURCE}, %%{SERVER}, %%{HOST} or "
                        "%%{ENV:variable}", name, value);
}

static const char *check_process_group(cmd_parms *cmd, const char *name,
                                       const char *value)
{
    if (value[0] != '%') {
        return NULL;
    }
    if (!strcmp(value, "%{GLOBAL}")) {
        return NULL;
    }
    if (!strncmp(value, "%{ENV:", 6) && value[strlen(value) - 1] == '}'
        && strlen(value) > 7) {
        return NULL;
    }
    return apr_psprintf(cmd->pool,
                        "%s: unknown expansion '%s'; use the name of a "
                        "WSGIDaemonProcess group, %%{GLOBAL} or "
                        "%%{ENV:variable}", name, value);
}

static const char *check_callable(cmd_parms *cmd, const char *name,
                                  const char *value)
{
    const char *c = value;

    if (!*c || !(apr_isalpha(*c) || *c == '_')) {
        goto bad;
    }
    for (; *c; c++) {
        if (!(apr_isalnum(*c) || *c == '_')) {
            goto bad;
        }
    }
    return NULL;
bad:
    return apr_psprintf(cmd->pool, "%s: '%s' is not a Python identifier",
                        name, value);
}

static const char *parse_onoff(cmd_parms *cmd, const char *name,
                               const char *value, int *out)
{
    if (!strcasecmp(value, "on")) {
        *out = 1;
    }
    else if (!strcasecmp(value, "off")) {
        *out = 0;
    }
    else {
        return apr_psprintf(cmd->pool, "%s: '%s' is not On or Off", name,
                            value);
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * WSGIScriptAlias, WSGIScriptAliasMatch
 */

/*
 * Parses the "key=value" options that follow the script of
 * WSGIScriptAlias(Match) and WSGIImportScript.  `allowed` lists the keys
 * the directive takes.
 */
static const char *parse_options(cmd_parms *cmd, const char *args,
                                 const char *const *allowed,
                                 apr_table_t *opts)
{
    const char *name = cmd->cmd->name;

    while (*args) {
        const char *word = ap_getword_conf(cmd->pool, &args);
        const char *eq;
        const char *key;
        int i;

        if (!*word) {
            break;
        }
        eq = strchr(word, '=');
        if (!eq || eq == word) {
            return apr_psprintf(cmd->pool,
                                "%s: '%s' is not an option of the form "
                                "name=value", name, word);
        }
        key = apr_pstrmemdup(cmd->pool, word, eq - word);
        for (i = 0; allowed[i]; i++) {
            if (!strcmp(allowed[i], key)) {
                break;
            }
        }
        if (!allowed[i]) {
            return apr_psprintf(cmd->pool, "%s: unknown option '%s'", name,
                                key);
        }
        if (!eq[1]) {
            return apr_psprintf(cmd->pool, "%s: option '%s' needs a value",
                                name, key);
        }
        if (apr_table_get(opts, key)) {
            return apr_psprintf(cmd->pool, "%s: option '%s' given twice",
                                name, key);
        }
        apr_table_setn(opts, key, eq + 1);
    }
    return NULL;
}

static const char *const alias_options[] = {
    "process-group", "application-group", "callable-object",
    "pass-authorization", NULL
};

static const char *set_script_alias(cmd_parms *cmd, void *mconfig,
                                    const char *args)
{
    const char *name = cmd->cmd->name;
    int is_match = cmd->info != NULL;
    tether_server_conf_t *sconf = tether_config_server(cmd->server);
    tether_alias_t *alias;
    apr_table_t *opts = apr_table_make(cmd->temp_pool, 4);
    const char *location, *target, *err, *v;

    if ((err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE)) != NULL) {
        return err;
    }
    location = ap_getword_conf(cmd->pool, &args);
    target = ap_getword_conf(cmd->pool, &args);
    if (!*location || !*target) {
        return apr_psprintf(cmd->pool,
                            "%s needs a URL %s and a script file or "
                            "directory (%s)", name,
                            is_match ? "pattern" : "path", where(cmd));
    }
    if ((err = parse_options(cmd, args, alias_options, opts)) != NULL) {
        return err;
    }

    alias = apr_array_push(sconf->aliases);
    memset(alias, 0, sizeof(*alias));
    alias->location = location;
    alias->target = ap_server_root_relative(cmd->pool, target);
    if (!alias->target) {
        return apr_psprintf(cmd->pool, "%s: invalid script path '%s'", name,
                            target);
    }
    alias->pass_authorization = TETHER_UNSET;
    alias->directive = where(cmd);

    if (is_match) {
        alias->regexp = ap_pregcomp(cmd->pool, location, AP_REG_EXTENDED);
        if (!alias->regexp) {
            return apr_psprintf(cmd->pool,
                                "%s: '%s' is not a valid regular expression",
                                name, location);
        }
    }
    else {
        apr_finfo_t finfo;
        apr_status_t rv;

        if (location[0] != '/') {
            return apr_psprintf(cmd->pool,
                                "%s: URL path '%s' must start with '/'",
                                name, location);
        }
        rv = apr_stat(&finfo, alias->target, APR_FINFO_TYPE,
                      cmd->temp_pool);
        if (rv != APR_SUCCESS) {
            return apr_psprintf(cmd->pool,
                                "%s: the WSGI script '%s' does not exist or "
                                "cannot be read (%s); check the path",
                                name, alias->target,
                                apr_strerror(rv, apr_pcalloc(cmd->temp_pool,
                                                             120), 120));
        }
    }

    if ((v = apr_table_get(opts, "process-group")) != NULL) {
        if ((err = check_process_group(cmd, name, v)) != NULL) {
            return err;
        }
        alias->process_group = v;
    }
    if ((v = apr_table_get(opts, "application-group")) != NULL) {
        if ((err = check_app_group(cmd, name, v)) != NULL) {
            return err;
        }
        alias->application_group = v;
    }
    if ((v = apr_table_get(opts, "callable-object")) != NULL) {
        if ((err = check_callable(cmd, name, v)) != NULL) {
            return err;
        }
        alias->callable_object = v;
    }
    if ((v = apr_table_get(opts, "pass-authorization")) != NULL) {
        if ((err = parse_onoff(cmd, "pass-authorization", v,
                               &alias->pass_authorization)) != NULL) {
            return apr_pstrcat(cmd->pool, name, ": ", err, NULL);
        }
    }

    /* Naming both groups preloads the script at process start. */
    if (alias->process_group && alias->application_group && !is_match
        && strncmp(alias->process_group, "%{ENV:", 6)
        && (alias->application_group[0] != '%'
            || !strcmp(alias->application_group, "%{GLOBAL}"))) {
        tether_import_t *imp = apr_array_push(global_conf->imports);

        imp->script = alias->target;
        imp->process_group = alias->process_group;
        imp->application_group = alias->application_group;
        imp->server = cmd->server;
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * Per-directory directives
 */

static const char *set_application_group(cmd_parms *cmd, void *mconfig,
                                         const char *value)
{
    tether_dir_conf_t *conf = mconfig;
    const char *err = check_app_group(cmd, cmd->cmd->name, value);

    if (err) {
        return err;
    }
    conf->application_group = value;
    return NULL;
}

static const char *set_process_group(cmd_parms *cmd, void *mconfig,
                                     const char *value)
{
    tether_dir_conf_t *conf = mconfig;
    const char *err = check_process_group(cmd, cmd->cmd->name, value);

    if (err) {
        return err;
    }
    conf->process_group = value;
    return NULL;
}

static const char *set_callable_object(cmd_parms *cmd, void *mconfig,
                                       const char *value)
{
    tether_dir_conf_t *conf = mconfig;
    const char *err = check_callable(cmd, cmd->cmd->name, value);

    if (err) {
        return err;
    }
    conf->callable_object = value;
    return NULL;
}

/* On/Off directives that land in an int of the directory record. */
static const char *set_dir_flag(cmd_parms *cmd, void *mconfig,
                                const char *value)
{
    int offset = (int)(apr_uintptr_t)cmd->info;
    int *field = (int *)((char *)mconfig + offset);

    return parse_onoff(cmd, cmd->cmd->name, value, field);
}

static const char *set_map_head_to_get(cmd_parms *cmd, void *mconfig,
                                       const char *value)
{
    tether_dir_conf_t *conf = mconfig;

    if (!strcasecmp(value, "auto")) {
        conf->map_head_to_get = TETHER_HEAD_AUTO;
        return NULL;
    }
    if (!strcasecmp(value, "on")) {
        conf->map_head_to_get = TETHER_HEAD_ON;
        return NULL;
    }
    if (!strcasecmp(value, "off")) {
        conf->map_head_to_get = TETHER_HEAD_OFF;
        return NULL;
    }
    return apr_psprintf(cmd->pool, "%s: '%s' is not On, Off or Auto",
                        cmd->cmd->name, value);
}

/* ------------------------------------------------------------------------
 * Process-wide directives (main server only)
 */

static const char *global_only(cmd_parms *cmd)
{
    return ap_check_cmd_context(cmd, GLOBAL_ONLY);
}

static const char *set_python_home(cmd_parms *cmd, void *mconfig,
                                   const char *value)
{
    const char *err = global_only(cmd);
    apr_finfo_t finfo;

    if (err) {
        return err;
    }
    if (apr_stat(&finfo, value, APR_FINFO_TYPE, cmd->temp_pool)
            != APR_SUCCESS || finfo.filetype != APR_DIR) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a directory; give the prefix "
                            "of a Python installation or virtual "
                            "environment (its sys.prefix)",
                            cmd->cmd->name, value);
    }
    /* A venv has pyvenv.cfg; an installation has lib/pythonX.Y. */
    if (apr_stat(&finfo, apr_pstrcat(cmd->temp_pool, value, "/pyvenv.cfg",
                                     NULL), APR_FINFO_TYPE, cmd->temp_pool)
            != APR_SUCCESS
        && apr_stat(&finfo, apr_psprintf(cmd->temp_pool, "%s/lib/python%d.%d",
                                         value, PY_MAJOR_VERSION,
                                         PY_MINOR_VERSION),
                    APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is neither a virtual environment (no "
                            "pyvenv.cfg) nor a Python %d.%d installation "
                            "(no lib/python%d.%d); Tether was built for "
                            "Python %d.%d", cmd->cmd->name, value,
                            PY_MAJOR_VERSION, PY_MINOR_VERSION,
                            PY_MAJOR_VERSION, PY_MINOR_VERSION,
                            PY_MAJOR_VERSION, PY_MINOR_VERSION);
    }
    global_conf->python_home = value;
    return NULL;
}

static const char *set_python_path(cmd_parms *cmd, void *mconfig,
                                   const char *value)
{
    const char *err = global_only(cmd);
    char *list, *dir, *state;

    if (err) {
        return err;
    }
    list = apr_pstrdup(cmd->pool, value);
    for (dir = apr_strtok(list, ":", &state); dir;
         dir = apr_strtok(NULL, ":", &state)) {
        *(const char **)apr_array_push(global_conf->python_path) = dir;
    }
    return NULL;
}

static const char *set_python_optimize(cmd_parms *cmd, void *mconfig,
                                       const char *value)
{
    const char *err = global_only(cmd);

    if (err) {
        return err;
    }
    if (strlen(value) != 1 || value[0] < '0' || value[0] > '2') {
        return apr_psprintf(cmd->pool, "%s: '%s' is not 0, 1 or 2",
                            cmd->cmd->name, value);
    }
    global_conf->python_optimize = value[0] - '0';
    return NULL;
}

static const char *set_python_hash_seed(cmd_parms *cmd, void *mconfig,
                                        const char *value)
{
    const char *err = global_only(cmd);
    const char *c;
    apr_int64_t seed;

    if (err) {
        return err;
    }
    if (!strcmp(value, "random")) {
        global_conf->python_hash_seed = value;
        return NULL;
    }
    for (c = value; *c; c++) {
        if (!apr_isdigit(*c)) {
            break;
        }
    }
    seed = apr_atoi64(value);
    if (*c || !*value || strlen(value) > 10 || seed > 4294967295LL) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not 'random' or a number from 0 "
                            "to 4294967295", cmd->cmd->name, value);
    }
    global_conf->python_hash_seed = value;
    return NULL;
}

/* On/Off directives that land in an int of the global record. */
static const char *set_global_flag(cmd_parms *cmd, void *mconfig,
                                   const char *value)
{
    int offset = (int)(apr_uintptr_t)cmd->info;
    const char *err = global_only(cmd);

    if (err) {
        return err;
    }
    return parse_onoff(cmd, cmd->cmd->name, value,
                       (int *)((char *)global_conf + offset));
}

static const char *const import_options[] = {
    "process-group", "application-group", NULL
};

static const char *set_import_script(cmd_parms *cmd, void *mconfig,
                                     const char *args)
{
    const char *name = cmd->cmd->name;
    apr_table_t *opts = apr_table_make(cmd->temp_pool, 2);
    tether_import_t *imp;
    const char *script, *err, *v;
    apr_finfo_t finfo;

    if ((err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE)) != NULL) {
        return err;
    }
    script = ap_getword_conf(cmd->pool, &args);
    if (!*script) {
        return apr_psprintf(cmd->pool, "%s needs a script file (%s)", name,
                            where(cmd));
    }
    if ((err = parse_options(cmd, args, import_options, opts)) != NULL) {
        return err;
    }
    script = ap_server_root_relative(cmd->pool, script);
    if (!script || apr_stat(&finfo, script, APR_FINFO_TYPE, cmd->temp_pool)
            != APR_SUCCESS || finfo.filetype != APR_REG) {
        return apr_psprintf(cmd->pool,
                            "%s: the script '%s' does not exist or is not a "
                            "file", name, script ? script : "");
    }
    imp = apr_array_push(global_conf->imports);
    imp->script = script;
    imp->process_group = "%{GLOBAL}";
    imp->application_group = "%{GLOBAL}";
    imp->server = cmd->server;
    if ((v = apr_table_get(opts, "process-group")) != NULL) {
        if ((err = check_process_group(cmd, name, v)) != NULL) {
            return err;
        }
        if (!strncmp(v, "%{ENV:", 6)) {
            return apr_psprintf(cmd->pool, "%s: process-group '%s' cannot "
                                "depend on a request", name, v);
        }
        imp->process_group = v;
    }
    if ((v = apr_table_get(opts, "application-group")) != NULL) {
        if ((err = check_app_group(cmd, name, v)) != NULL) {
            return err;
        }
        if (v[0] == '%' && strcmp(v, "%{GLOBAL}")) {
            return apr_psprintf(cmd->pool, "%s: application-group '%s' "
                                "cannot depend on a request; use a name "
                                "or %%{GLOBAL}", name, v);
        }
        imp->application_group = v;
    }
    return NULL;
}

/*
 * Directives of mod_wsgi that Tether does not implement yet: refused with a
 * message that says so, rather than Apache's "Invalid command".
 */
static const char *set_not_supported(cmd_parms *cmd, void *mconfig,
                                     const char *args)
{
    return apr_psprintf(cmd->pool,
                        "%s is a mod_wsgi directive that Tether does not "
                        "support yet (%s); see \"Migrating from mod_wsgi\" "
                        "in Tether's README", cmd->cmd->name, where(cmd));
}

/* Directives accepted for compatibility that need no action here. */
static const char *set_accepted(cmd_parms *cmd, void *mconfig,
                                const char *args)
{
    return NULL;
}

#define DIR_FLAG(name, field, ctx, help) \
    AP_INIT_TAKE1(name, set_dir_flag, \
                  (void *)APR_OFFSETOF(tether_dir_conf_t, field), ctx, help)
#define GLOBAL_FLAG(name, field, help) \
    AP_INIT_TAKE1(name, set_global_flag, \
                  (void *)APR_OFFSETOF(tether_global_conf_t, field), \
                  RSRC_CONF, help)
#define NOT_SUPPORTED(name) \
    AP_INIT_RAW_ARGS(name, set_not_supported, NULL, OR_ALL | RSRC_CONF, \
                     "not supported by Tether yet")

const command_rec tether_config_commands[] = {
    AP_INIT_RAW_ARGS("WSGIScriptAlias", set_script_alias, NULL, RSRC_CONF,
                     "URL-path file-path|directory-path [options]"),
    AP_INIT_RAW_ARGS("WSGIScriptAliasMatch", set_script_alias, "match",
                     RSRC_CONF, "regex file-path|directory-path [options]"),
    AP_INIT_TAKE1("WSGIApplicationGroup", set_application_group, NULL,
                  RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                  "name|%{GLOBAL}|%{RESOURCE}|%{SERVER}|%{HOST}|"
                  "%{ENV:variable}"),
    AP_INIT_TAKE1("WSGIProcessGroup", set_process_group, NULL,
                  RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                  "name|%{GLOBAL}|%{ENV:variable}"),
    AP_INIT_TAKE1("WSGICallableObject", set_callable_object, NULL,
                  RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                  "name of the WSGI callable in the script (application)"),
    DIR_FLAG("WSGIPassAuthorization", pass_authorization,
             RSRC_CONF | ACCESS_CONF | OR_AUTHCFG,
             "On|Off: pass the Authorization header to the application"),
    DIR_FLAG("WSGIScriptReloading", script_reloading,
             RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
             "On|Off: reload a script whose file changed"),
    DIR_FLAG("WSGIChunkedRequest", chunked_request,
             RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
             "On|Off: accept chunked request bodies"),
    AP_INIT_TAKE1("WSGIMapHEADToGET", set_map_head_to_get, NULL,
                  RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                  "On|Off|Auto: show HEAD requests as GET"),
    AP_INIT_TAKE1("WSGIPythonHome", set_python_home, NULL, RSRC_CONF,
                  "prefix of the Python installation or virtualenv"),
    AP_INIT_TAKE1("WSGIPythonPath", set_python_path, NULL, RSRC_CONF,
                  "directories to add to sys.path, ':' separated"),
    AP_INIT_TAKE1("WSGIPythonOptimize", set_python_optimize, NULL, RSRC_CONF,
                  "0, 1 or 2: Python's optimization level"),
    AP_INIT_TAKE1("WSGIPythonHashSeed", set_python_hash_seed, NULL,
                  RSRC_CONF, "random or a number: Python's hash seed"),
    GLOBAL_FLAG("WSGIDontWriteBytecode", dont_write_bytecode,
                "On|Off: do not write .pyc files"),
    GLOBAL_FLAG("WSGIRestrictEmbedded", restrict_embedded,
                "On|Off: refuse to run applications in embedded mode"),
    GLOBAL_FLAG("WSGIRestrictStdin", restrict_stdin,
                "On|Off: make reading sys.stdin an error"),
    GLOBAL_FLAG("WSGIRestrictStdout", restrict_stdout,
                "On|Off: make writing sys.stdout an error"),
    GLOBAL_FLAG("WSGIRestrictSignal", restrict_signal,
                "On|Off: ignore signal handlers registered by apps"),
    AP_INIT_RAW_ARGS("WSGIImportScript", set_import_script, NULL, RSRC_CONF,
                     "script [process-group=name] [application-group=name]"),
    /* Accepted for compatibility: Python always starts lazily in each
     * child, and these only tuned mod_wsgi internals. */
    AP_INIT_RAW_ARGS("WSGILazyInitialization", set_accepted, NULL,
                     RSRC_CONF, "accepted for compatibility; no effect"),
    AP_INIT_RAW_ARGS("WSGIVerboseDebugging", set_accepted, NULL, RSRC_CONF,
                     "accepted for compatibility; no effect"),
    NOT_SUPPORTED("WSGIDaemonProcess"),
    NOT_SUPPORTED("WSGISocketPrefix"),
    NOT_SUPPORTED("WSGISocketRotation"),
    NOT_SUPPORTED("WSGIAcceptMutex"),
    NOT_SUPPORTED("WSGIRestrictProcess"),
    NOT_SUPPORTED("WSGIAccessScript"),
    NOT_SUPPORTED("WSGIAuthUserScript"),
    NOT_SUPPORTED("WSGIAuthGroupScript"),
    NOT_SUPPORTED("WSGIHandlerScript"),
    NOT_SUPPORTED("WSGIDispatchScript"),
    NOT_SUPPORTED("WSGIErrorOverride"),
    NOT_SUPPORTED("WSGIEnableSendfile"),
    NOT_SUPPORTED("WSGIPassApacheRequest"),
    NOT_SUPPORTED("WSGITrustedProxyHeaders"),
    NOT_SUPPORTED("WSGITrustedProxies"),
    NOT_SUPPORTED("WSGIPythonEggs"),
    NOT_SUPPORTED("WSGIPythonWarnings"),
    NOT_SUPPORTED("WSGICaseSensitivity"),
    NOT_SUPPORTED("WSGIDestroyInterpreter"),
    NOT_SUPPORTED("WSGIIgnoreActivity"),
    NOT_SUPPORTED("WSGIServerMetrics"),
    NOT_SUPPORTED("WSGINewGroup"),
    { NULL }
};

/* ------------------------------------------------------------------------
 * Checks after the whole configuration was read (they run with -t too)
 */

/* A literal daemon group name that no WSGIDaemonProcess defines. */
static const char *undefined_group(const char *group)
{
    if (!group || !*group || group[0] == '%') {
        return NULL;
    }
    /* Daemon mode is not implemented yet: every literal name is unknown. */
    return group;
}

static int tether_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                               apr_pool_t *ptemp, server_rec *s)
{
    server_rec *vs;
    int i;

    if (ap_find_linked_module("mod_wsgi.c")) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                     TETHER_LOGNO(0001) "mod_tether and mod_wsgi are both "
                     "loaded; they provide the same WSGI* directives and "
                     "cannot run in one Apache. Remove the LoadModule "
                     "wsgi_module line (on Debian/Ubuntu: a2dismod wsgi).");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (vs = s; vs; vs = vs->next) {
        tether_server_conf_t *conf = tether_config_server(vs);

        for (i = 0; i < conf->aliases->nelts; i++) {
            tether_alias_t *a = &APR_ARRAY_IDX(conf->aliases, i,
                                               tether_alias_t);
            const char *g = undefined_group(a->process_group);

            if (g) {
                ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                             TETHER_LOGNO(0002) "%s: process-group '%s' "
                             "names no WSGIDaemonProcess group (daemon mode "
                             "is not available in this version of Tether); "
                             "remove the option to run in embedded mode",
                             a->directive, g);
                return HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }
    for (i = 0; i < global_conf->imports->nelts; i++) {
        tether_import_t *imp = &APR_ARRAY_IDX(global_conf->imports, i,
                                              tether_import_t);
        const char *pg = strcmp(imp->process_group, "%{GLOBAL}")
                         ? imp->process_group : NULL;
        const char *g = undefined_group(pg);

        if (g) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                         TETHER_LOGNO(0003) "WSGIImportScript %s: "
                         "process-group '%s' names no WSGIDaemonProcess "
                         "group", imp->script, g);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

void tether_config_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(tether_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(tether_check_config, NULL, NULL, APR_HOOK_MIDDLE);
}
