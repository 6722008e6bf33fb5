/*
 * Configuration of mod_tether: the records, their create/merge functions,
 * the directive table (mod_wsgi's directives, same syntax, contexts and
 * defaults) and the configuration checks that run with `apachectl -t`.
 *
 * Every setter returns NULL or a message, allocated from cmd->pool, that
 * names the directive and the offending value.
 */
#include "tether_private.h"
#include "tether_metrics.h"

#include "ap_mpm.h"
#include "apr_file_info.h"
#include "unixd.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/un.h>

/* The process-wide settings; reset at the start of every config pass. */
static tether_global_conf_t *global_conf;

/* WSGIDaemonProcess groups by name (tether_daemon_group_t *). */
static apr_hash_t *daemon_names;

/* A literal group named by WSGIProcessGroup, checked in check_config. */
typedef struct {
    const char *name;
    server_rec *server;
    const char *directive;
    const char *what;               /* e.g. "WSGIProcessGroup" */
} group_ref_t;

static apr_array_header_t *group_refs;

/*
 * Set while the main configuration is read, so that directives read from
 * .htaccess files at request time are not recorded in process-wide lists.
 */
static int reading_config;

tether_global_conf_t *tether_config_global(void)
{
    return global_conf;
}

static tether_global_conf_t *global_conf_create(apr_pool_t *p)
{
    tether_global_conf_t *g = apr_pcalloc(p, sizeof(*g));

    g->python_path = apr_array_make(p, 2, sizeof(const char *));
    g->python_optimize = TETHER_UNSET;
    g->python_warnings = apr_array_make(p, 2, sizeof(const char *));
    g->destroy_interpreter = 1;
    g->dont_write_bytecode = 0;
    g->restrict_embedded = 0;
    g->restrict_stdin = 1;
    g->restrict_stdout = 0;
    g->restrict_signal = 1;
    g->imports = apr_array_make(p, 2, sizeof(tether_import_t));
    g->daemons = apr_array_make(p, 2, sizeof(tether_daemon_group_t *));
    g->socket_prefix = NULL;
    g->socket_rotation = 1;
    daemon_names = apr_hash_make(p);
    group_refs = apr_array_make(p, 2, sizeof(group_ref_t));
    return g;
}

static int tether_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                             apr_pool_t *ptemp)
{
    global_conf = global_conf_create(pconf);
    reading_config = 1;
    return OK;
}

tether_daemon_group_t *tether_config_daemon(const char *name)
{
    if (!daemon_names || !name) {
        return NULL;
    }
    return apr_hash_get(daemon_names, name, APR_HASH_KEY_STRING);
}

int tether_config_daemon_visible(const tether_daemon_group_t *g,
                                 const server_rec *s)
{
    const char *mine = g->server->server_hostname;

    if (!g->server->is_virtual || g->server == s) {
        return 1;
    }
    return s && s->server_hostname && mine
           && !strcasecmp(s->server_hostname, mine);
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
    conf->error_override = TETHER_UNSET;
    conf->ignore_activity = TETHER_UNSET;
    conf->enable_sendfile = TETHER_UNSET;
    conf->pass_apache_request = TETHER_UNSET;
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
    MERGE_PTR(restrict_process);
    MERGE_PTR(trusted_proxy_headers);
    MERGE_PTR(trusted_proxies);
    MERGE_PTR(access_script);
    MERGE_PTR(auth_user_script);
    MERGE_PTR(auth_group_script);
    MERGE_PTR(dispatch_script);
    MERGE_INT(error_override);
    MERGE_INT(ignore_activity);
    MERGE_INT(enable_sendfile);
    MERGE_INT(pass_apache_request);
    if (base->handler_scripts && add->handler_scripts) {
        conf->handler_scripts = apr_hash_overlay(p, add->handler_scripts,
                                                 base->handler_scripts);
    }
    else {
        MERGE_PTR(handler_scripts);
    }
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
 * Splits the next "name=value" option off *args and sets *key (NULL at the
 * end of the line) and *value.  As with mod_wsgi, the value may be quoted
 * (display-name='(wsgi: site)'), with \' or \" and \\ escaped inside; an
 * option quoted as a whole is read as Apache reads any argument.  `who`
 * starts the messages.
 */
static const char *next_option(cmd_parms *cmd, const char *who,
                               const char **args, const char **key,
                               const char **value)
{
    const char *s = *args;
    const char *k;

    *key = NULL;
    while (apr_isspace(*s)) {
        s++;
    }
    if (!*s) {
        *args = s;
        return NULL;
    }
    if (*s == '"' || *s == '\'') {
        const char *word = ap_getword_conf(cmd->pool, &s);
        const char *eq = strchr(word, '=');

        *args = s;
        if (!eq || eq == word) {
            return apr_psprintf(cmd->pool, "%s: '%s' is not an option of "
                                "the form name=value", who, word);
        }
        *key = apr_pstrmemdup(cmd->pool, word, eq - word);
        *value = eq + 1;
        return NULL;
    }

    k = s;
    while (*s && !apr_isspace(*s) && *s != '=') {
        s++;
    }
    if (*s != '=' || s == k) {
        while (*s && !apr_isspace(*s)) {
            s++;
        }
        return apr_psprintf(cmd->pool, "%s: '%s' is not an option of the "
                            "form name=value", who,
                            apr_pstrmemdup(cmd->pool, k, s - k));
    }
    *key = apr_pstrmemdup(cmd->pool, k, s - k);
    s++;
    if (*s == '"' || *s == '\'') {
        char quote = *s++;
        char *out = apr_palloc(cmd->pool, strlen(s) + 1);
        char *o = out;

        while (*s && *s != quote) {
            if (*s == '\\' && (s[1] == quote || s[1] == '\\')) {
                s++;
            }
            *o++ = *s++;
        }
        if (!*s) {
            return apr_psprintf(cmd->pool, "%s: the value of option '%s' "
                                "has no closing %c", who, *key, quote);
        }
        s++;
        if (*s && !apr_isspace(*s)) {
            return apr_psprintf(cmd->pool, "%s: option '%s' has text after "
                                "the closing %c of its value", who, *key,
                                quote);
        }
        *o = '\0';
        *value = out;
    }
    else {
        const char *v = s;

        while (*s && !apr_isspace(*s)) {
            s++;
        }
        *value = apr_pstrmemdup(cmd->pool, v, s - v);
    }
    *args = s;
    return NULL;
}

/*
 * Parses the "key=value" options that follow the script of
 * WSGIScriptAlias(Match) and WSGIImportScript, or the group name of
 * WSGIDaemonProcess, into `opts`.  `allowed` lists the keys the directive
 * takes; `allow_empty` lets a value be empty.  `who` starts the messages.
 */
static const char *parse_options(cmd_parms *cmd, const char *who,
                                 const char *args,
                                 const char *const *allowed,
                                 int allow_empty, apr_table_t *opts)
{
    for (;;) {
        const char *key, *value = NULL, *err;
        int i;

        if ((err = next_option(cmd, who, &args, &key, &value)) != NULL) {
            return err;
        }
        if (!key) {
            break;
        }
        for (i = 0; allowed[i]; i++) {
            if (!strcmp(allowed[i], key)) {
                break;
            }
        }
        if (!allowed[i]) {
            return apr_psprintf(cmd->pool, "%s: unknown option '%s'", who,
                                key);
        }
        if (!*value && !allow_empty) {
            return apr_psprintf(cmd->pool, "%s: option '%s' needs a value",
                                who, key);
        }
        if (apr_table_get(opts, key)) {
            return apr_psprintf(cmd->pool, "%s: option '%s' given twice",
                                who, key);
        }
        apr_table_setn(opts, key, value);
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
    if ((err = parse_options(cmd, name, args, alias_options, 0, opts))
            != NULL) {
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
    alias->server = cmd->server;

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
        imp->directive = alias->directive;
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
    /* A literal name must be a WSGIDaemonProcess group: checked once the
     * whole configuration is read (not in .htaccess files). */
    if (value[0] != '%' && reading_config) {
        group_ref_t *ref = apr_array_push(group_refs);

        ref->name = value;
        ref->server = cmd->server;
        ref->directive = where(cmd);
        ref->what = "WSGIProcessGroup";
    }
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

/*
 * Checks that `value` is the prefix of a virtual environment or of a Python
 * installation of the version Tether was built for.  `what` starts the
 * message ("WSGIPythonHome:", "WSGIDaemonProcess site: python-home").
 */
const char *tether_config_check_python_home(cmd_parms *cmd,
                                            const char *what,
                                            const char *value)
{
    apr_finfo_t finfo;

    if (apr_stat(&finfo, value, APR_FINFO_TYPE, cmd->temp_pool)
            != APR_SUCCESS || finfo.filetype != APR_DIR) {
        return apr_psprintf(cmd->pool,
                            "%s '%s' is not a directory; give the prefix "
                            "of a Python installation or virtual "
                            "environment (its sys.prefix)", what, value);
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
                            "%s '%s' is neither a virtual environment (no "
                            "pyvenv.cfg) nor a Python %d.%d installation "
                            "(no lib/python%d.%d); Tether was built for "
                            "Python %d.%d", what, value,
                            PY_MAJOR_VERSION, PY_MINOR_VERSION,
                            PY_MAJOR_VERSION, PY_MINOR_VERSION,
                            PY_MAJOR_VERSION, PY_MINOR_VERSION);
    }
    return NULL;
}

static const char *set_python_home(cmd_parms *cmd, void *mconfig,
                                   const char *value)
{
    const char *err = global_only(cmd);

    if (err) {
        return err;
    }
    err = tether_config_check_python_home(
        cmd, apr_pstrcat(cmd->pool, cmd->cmd->name, ":", NULL), value);
    if (err) {
        return err;
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

/* The actions of a -W option; Python takes any prefix of one. */
static const char *const warning_actions[] = {
    "default", "error", "ignore", "always", "all", "module", "once", NULL
};

/*
 * Checks a warnings filter as Python's -W option takes it,
 * action:message:category:module:lineno, every field optional: what can be
 * checked before Python runs (the action, the number of fields, the line
 * number).  The category is looked up by Python, which ignores a filter
 * naming none it knows, with a warning on stderr (Apache's error log).
 */
static const char *check_warning_spec(apr_pool_t *p, const char *spec)
{
    const char *end = strchr(spec, ':'), *field;
    apr_size_t len = end ? (apr_size_t)(end - spec) : strlen(spec);
    int fields = 1, i;

    for (field = spec; (field = strchr(field, ':')) != NULL; field++) {
        fields++;
    }
    if (fields > 5) {
        return apr_psprintf(p, "'%s' has %d fields; a warnings filter has at "
                            "most five, action:message:category:module:"
                            "lineno", spec, fields);
    }
    if (len) {
        for (i = 0; warning_actions[i]; i++) {
            if (!strncmp(spec, warning_actions[i], len)) {
                break;
            }
        }
        if (!warning_actions[i]) {
            return apr_psprintf(p, "'%s' does not start with a warnings "
                                "action: default, error, ignore, always, "
                                "module or once", spec);
        }
    }
    if (fields == 5) {
        const char *lineno = strrchr(spec, ':') + 1;
        const char *c;

        for (c = lineno; apr_isdigit(*c); c++) {
        }
        if (*c || c - lineno > 9) {
            return apr_psprintf(p, "'%s': line number '%s' is not a whole "
                                "number", spec, lineno);
        }
    }
    return NULL;
}

static const char *set_python_warnings(cmd_parms *cmd, void *mconfig,
                                       const char *value)
{
    const char *err = global_only(cmd);

    if (err) {
        return err;
    }
    if ((err = check_warning_spec(cmd->pool, value)) != NULL) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", err, NULL);
    }
    *(const char **)apr_array_push(global_conf->python_warnings) = value;
    return NULL;
}

static const char *set_python_eggs(cmd_parms *cmd, void *mconfig,
                                   const char *value)
{
    const char *err = global_only(cmd);

    if (err) {
        return err;
    }
    if (value[0] != '/') {
        return apr_psprintf(cmd->pool, "%s: '%s' must be the absolute path "
                            "of a directory", cmd->cmd->name, value);
    }
    global_conf->python_eggs = value;
    return NULL;
}

const char *tether_config_switch_interval(apr_pool_t *p, const char *who,
                                          const char *value, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(value, &end);
    /* Python's own bounds: above 0, and at most what its int of
     * microseconds holds (its setswitchinterval refuses more). */
    if (!*value || *end || errno || !(v > 0) || v * 1e6 > 2147483647.0
        || v * 1e6 < 1.0) {
        return apr_psprintf(p, "%s '%s' must be a number of seconds above "
                            "0, such as 0.005 (Python's default)", who,
                            value);
    }
    *out = v;
    return NULL;
}

static const char *set_switch_interval(cmd_parms *cmd, void *mconfig,
                                       const char *value)
{
    const char *err = global_only(cmd);

    if (err) {
        return err;
    }
    return tether_config_switch_interval(cmd->pool, apr_pstrcat(
        cmd->pool, cmd->cmd->name, ":", NULL), value,
        &global_conf->switch_interval);
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
    if ((err = parse_options(cmd, name, args, import_options, 0, opts))
            != NULL) {
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
    imp->directive = where(cmd);
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

/* ------------------------------------------------------------------------
 * Daemon mode: WSGIDaemonProcess, WSGISocketPrefix, WSGIRestrictProcess
 */

static const char *set_socket_prefix(cmd_parms *cmd, void *mconfig,
                                     const char *value)
{
    const char *err = global_only(cmd);
    const char *path;

    if (err) {
        return err;
    }
    if (!*value) {
        return apr_psprintf(cmd->pool, "%s: the prefix is empty; give a "
                            "directory and a file name prefix, such as "
                            "run/wsgi", cmd->cmd->name);
    }
    /* Relative to ServerRoot, as with mod_wsgi. */
    path = ap_server_root_relative(cmd->pool, value);
    if (!path) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a valid path",
                            cmd->cmd->name, value);
    }
    global_conf->socket_prefix = path;
    global_conf->socket_prefix_where = where(cmd);
    return NULL;
}

static const char *set_restrict_process(cmd_parms *cmd, void *mconfig,
                                        const char *args)
{
    tether_dir_conf_t *conf = mconfig;
    apr_array_header_t *names = apr_array_make(cmd->pool, 4,
                                               sizeof(const char *));

    while (*args) {
        const char *w = ap_getword_conf(cmd->pool, &args);

        if (!*w) {
            break;
        }
        *(const char **)apr_array_push(names) = w;
    }
    if (!names->nelts) {
        return apr_psprintf(cmd->pool, "%s needs the names of one or more "
                            "WSGIDaemonProcess groups (%s)", cmd->cmd->name,
                            where(cmd));
    }
    conf->restrict_process = names;
    return NULL;
}

/* WSGITrustedProxyHeaders: one header name per call (ITERATE). */
static const char *set_trusted_proxy_headers(cmd_parms *cmd, void *mconfig,
                                             const char *value)
{
    tether_dir_conf_t *conf = mconfig;
    const char *name = tether_proxy_header_name(value);

    if (!name) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a proxy header "
                            "Tether knows; use X-Forwarded-For, "
                            "X-Client-IP, X-Real-IP, X-Forwarded-Host, "
                            "X-Host, X-Forwarded-Server, X-Forwarded-Port, "
                            "X-Forwarded-Proto, X-Forwarded-Scheme, "
                            "X-Scheme, X-Forwarded-HTTPS, X-Forwarded-SSL, "
                            "X-Script-Name or X-Forwarded-Script-Name (%s)",
                            cmd->cmd->name, value, where(cmd));
    }
    if (!conf->trusted_proxy_headers) {
        conf->trusted_proxy_headers = apr_array_make(cmd->pool, 4,
                                                     sizeof(const char *));
    }
    *(const char **)apr_array_push(conf->trusted_proxy_headers) = name;
    return NULL;
}

/* WSGITrustedProxies: one address or CIDR network per call (ITERATE). */
static const char *set_trusted_proxies(cmd_parms *cmd, void *mconfig,
                                       const char *value)
{
    tether_dir_conf_t *conf = mconfig;
    char *ip = apr_pstrdup(cmd->pool, value);
    char *mask = strchr(ip, '/');
    apr_ipsubnet_t *subnet;
    apr_status_t rv;

    if (mask) {
        *mask++ = '\0';
    }
    /* Literal addresses only: apr_ipsubnet_create never looks names up. */
    rv = apr_ipsubnet_create(&subnet, ip, mask, cmd->pool);
    if (rv != APR_SUCCESS || (mask && !*mask)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not %s (%s)",
                            cmd->cmd->name, value,
                            rv == APR_EBADMASK || (mask && !*mask)
                                ? "an IP network with a valid prefix "
                                  "length, such as 10.0.0.0/8 or "
                                  "fd00::/8"
                                : "an IP address or network, such as "
                                  "10.0.0.5 or 192.168.0.0/16",
                            where(cmd));
    }
    if (!conf->trusted_proxies) {
        conf->trusted_proxies = apr_array_make(cmd->pool, 4,
                                               sizeof(apr_ipsubnet_t *));
    }
    *(apr_ipsubnet_t **)apr_array_push(conf->trusted_proxies) = subnet;
    return NULL;
}

/*
 * Directives of mod_wsgi that Tether does not implement: refused with a
 * message that says why (cmd->info), rather than Apache's "Invalid
 * command".
 */
static const char *set_not_supported(cmd_parms *cmd, void *mconfig,
                                     const char *args)
{
    return apr_psprintf(cmd->pool,
                        "%s is a mod_wsgi directive that Tether does not "
                        "support (%s): %s; see \"mod_wsgi's directives in "
                        "Tether\" in docs/directives.md", cmd->cmd->name,
                        where(cmd), (const char *)cmd->info);
}

/* ------------------------------------------------------------------------
 * Helpers for the setters of other files
 */

const char *tether_config_where(cmd_parms *cmd)
{
    return where(cmd);
}

const char *tether_config_options(cmd_parms *cmd, const char *who,
                                  const char *args,
                                  const char *const *allowed,
                                  int allow_empty, apr_table_t *opts)
{
    return parse_options(cmd, who, args, allowed, allow_empty, opts);
}

void tether_config_add_daemon(tether_daemon_group_t *g)
{
    g->index = global_conf->daemons->nelts;
    *(tether_daemon_group_t **)apr_array_push(global_conf->daemons) = g;
    apr_hash_set(daemon_names, g->name, APR_HASH_KEY_STRING, g);
}

const char *tether_config_check_group(cmd_parms *cmd, const char *who,
                                      const char *value, int process)
{
    return process ? check_process_group(cmd, who, value)
                   : check_app_group(cmd, who, value);
}

const char *tether_config_onoff(cmd_parms *cmd, const char *who,
                                const char *value, int *out)
{
    return parse_onoff(cmd, who, value, out);
}

void tether_config_group_ref(cmd_parms *cmd, const char *directive,
                             const char *name)
{
    group_ref_t *ref;

    if (!reading_config || !name || name[0] == '%') {
        return;
    }
    ref = apr_array_push(group_refs);
    ref->name = name;
    ref->server = cmd->server;
    ref->directive = where(cmd);
    ref->what = directive;
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
#define NOT_SUPPORTED(name, why) \
    AP_INIT_RAW_ARGS(name, set_not_supported, why, OR_ALL | RSRC_CONF, \
                     "not supported by Tether: " why)

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
    /* mod_wsgi allows it in .htaccess under AllowOverride FileInfo;
     * AuthConfig, where it belongs, is accepted too. */
    DIR_FLAG("WSGIPassAuthorization", pass_authorization,
             RSRC_CONF | ACCESS_CONF | OR_AUTHCFG | OR_FILEINFO,
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
    AP_INIT_TAKE1("WSGIPythonWarnings", set_python_warnings, NULL,
                  RSRC_CONF, "action:message:category:module:lineno: a "
                  "warnings filter, as Python's -W option"),
    AP_INIT_TAKE1("WSGIPythonEggs", set_python_eggs, NULL, RSRC_CONF,
                  "directory: PYTHON_EGG_CACHE of embedded mode"),
    AP_INIT_TAKE1("WSGISwitchInterval", set_switch_interval, NULL,
                  RSRC_CONF, "seconds: sys.setswitchinterval() of embedded "
                  "mode"),
    GLOBAL_FLAG("WSGIDestroyInterpreter", destroy_interpreter,
                "On|Off: run the interpreters' atexit functions when a "
                "process exits"),
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
    AP_INIT_RAW_ARGS("WSGIDaemonProcess", tether_config_daemon_process, NULL,
                     RSRC_CONF, "name [option=value ...]: a group of "
                     "daemon processes"),
    AP_INIT_TAKE1("WSGISocketPrefix", set_socket_prefix, NULL, RSRC_CONF,
                  "directory and file name prefix of the daemon sockets"),
    GLOBAL_FLAG("WSGISocketRotation", socket_rotation,
                "On|Off: new daemon socket names on each graceful restart"),
    /* tether_metrics.c */
    AP_INIT_TAKE1("TetherMetricsURL", tether_metrics_set_url, NULL,
                  RSRC_CONF, "URL-path: serve Tether's Prometheus metrics "
                  "there"),
    AP_INIT_FLAG("WSGIServerMetrics", tether_metrics_set_server_metrics,
                 NULL, RSRC_CONF, "On|Off: let embedded mode's "
                 "server_metrics() report Tether's process table"),
    AP_INIT_RAW_ARGS("WSGIRestrictProcess", set_restrict_process, NULL,
                     RSRC_CONF | ACCESS_CONF,
                     "group ...: the daemon groups that may be selected"),
    AP_INIT_ITERATE("WSGITrustedProxyHeaders", set_trusted_proxy_headers,
                    NULL, RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                    "header ...: the proxy headers trusted from the "
                    "WSGITrustedProxies"),
    AP_INIT_ITERATE("WSGITrustedProxies", set_trusted_proxies, NULL,
                    RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                    "address|network ...: the trusted front-end proxies"),
    /* tether_dispatch.c (scripts of tether_auth.c too) */
    AP_INIT_RAW_ARGS("WSGIAccessScript", tether_dispatch_set_script,
                     (void *)TETHER_SCRIPT_ACCESS, ACCESS_CONF | OR_AUTHCFG,
                     "script [application-group=name]: allow_access()"),
    AP_INIT_RAW_ARGS("WSGIAuthUserScript", tether_dispatch_set_script,
                     (void *)TETHER_SCRIPT_AUTH_USER,
                     ACCESS_CONF | OR_AUTHCFG,
                     "script [application-group=name]: check_password() "
                     "and get_realm_hash() of auth provider 'wsgi'"),
    AP_INIT_RAW_ARGS("WSGIAuthGroupScript", tether_dispatch_set_script,
                     (void *)TETHER_SCRIPT_AUTH_GROUP,
                     ACCESS_CONF | OR_AUTHCFG,
                     "script [application-group=name]: groups_for_user() "
                     "for Require wsgi-group"),
    AP_INIT_RAW_ARGS("WSGIDispatchScript", tether_dispatch_set_script,
                     (void *)TETHER_SCRIPT_DISPATCH,
                     RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                     "script [application-group=name]: process_group(), "
                     "application_group(), callable_object() per request"),
    AP_INIT_RAW_ARGS("WSGIHandlerScript", tether_dispatch_set_handler,
                     NULL, RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                     "name script [process-group=name] "
                     "[application-group=name] [pass-authorization=On|Off]"),
    DIR_FLAG("WSGIIgnoreActivity", ignore_activity,
             RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
             "On|Off: the requests do not count as activity for "
             "inactivity-timeout"),
    DIR_FLAG("WSGIErrorOverride", error_override,
             RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
             "On|Off: daemon mode error responses replaced by Apache's "
             "ErrorDocument"),
    DIR_FLAG("WSGIEnableSendfile", enable_sendfile,
             RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
             "On|Off: send wsgi.file_wrapper files with sendfile()"),
    DIR_FLAG("WSGIPassApacheRequest", pass_apache_request,
             RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
             "On|Off: put the request_rec in environ as the PyCapsule "
             "apache.request_rec (embedded mode)"),
    NOT_SUPPORTED("WSGIAcceptMutex",
                  "Tether's daemon processes need no accept mutex (their "
                  "threads take turns on the socket); remove it"),
    NOT_SUPPORTED("WSGICaseSensitivity",
                  "only matters on case-insensitive file systems (Windows, "
                  "macOS), where Tether is not supported"),
    NOT_SUPPORTED("WSGINewGroup",
                  "an undocumented mod_wsgi directive"),
    NOT_SUPPORTED("WSGIFreeThreading",
                  "not yet; free-threaded Python builds are not supported"),
    NOT_SUPPORTED("WSGIPerInterpreterGIL",
                  "not yet; sub-interpreters share the process's GIL"),
    NOT_SUPPORTED("<WSGIInterpreterOptions",
                  "not yet; per-interpreter settings are process-wide in "
                  "Tether"),
    NOT_SUPPORTED("WSGITelemetryService",
                  "mod_wsgi's telemetry datagram protocol is not "
                  "implemented"),
    NOT_SUPPORTED("WSGITelemetryOptions",
                  "mod_wsgi's telemetry datagram protocol is not "
                  "implemented"),
    NOT_SUPPORTED("WSGISlowRequests",
                  "it feeds mod_wsgi's telemetry service, which is not "
                  "implemented"),
    { NULL }
};

/* ------------------------------------------------------------------------
 * Checks after the whole configuration was read (they run with -t too)
 */

/*
 * What is wrong with naming daemon group `name` from server `from`, or
 * NULL.  References from the main server reach every virtual host, so
 * only those made inside a <VirtualHost> are held to the group's
 * ServerName.
 */
static const char *group_problem(apr_pool_t *p, const char *name,
                                 server_rec *from)
{
    tether_daemon_group_t *g = tether_config_daemon(name);

    if (!g) {
        return "names no WSGIDaemonProcess group; define the group with "
               "WSGIDaemonProcess (names are case-sensitive), or remove the "
               "option to run the application in Apache's own processes";
    }
    if (from->is_virtual && !tether_config_daemon_visible(g, from)) {
        return apr_psprintf(p, "names the WSGIDaemonProcess group of "
                            "another virtual host (%s, ServerName %s); a "
                            "group serves the virtual hosts with its "
                            "ServerName, or all of them when it is defined "
                            "outside <VirtualHost>", g->directive,
                            g->server->server_hostname
                            ? g->server->server_hostname : "unset");
    }
    return NULL;
}

/* Whether `group` is a literal name (not %{GLOBAL} or %{ENV:...}). */
static int literal_group(const char *group)
{
    return group && *group && group[0] != '%';
}

/*
 * Completes each daemon group with the defaults that depend on the rest of
 * the configuration (User, Group, Timeout).  Returns an error message or
 * NULL.
 */
static const char *complete_daemons(apr_pool_t *p)
{
    int i;

    for (i = 0; i < global_conf->daemons->nelts; i++) {
        tether_daemon_group_t *g = APR_ARRAY_IDX(global_conf->daemons, i,
                                                 tether_daemon_group_t *);

        if (!g->user) {
            g->uid = ap_unixd_config.user_id;
            if (!g->group) {
                g->gid = ap_unixd_config.group_id;
            }
        }
        if (!g->socket_user) {
            g->socket_uid = ap_unixd_config.user_id;
        }
        if (g->uid == 0) {
            return apr_psprintf(p, "%s: WSGIDaemonProcess %s would run as "
                                "root (Apache's User is root); daemon "
                                "processes never run as root: give user=",
                                g->directive, g->name);
        }
        if (!g->socket_timeout) {
            g->socket_timeout = g->server->timeout;
        }
        if (!g->response_socket_timeout) {
            g->response_socket_timeout = g->socket_timeout;
        }
        if (!g->eviction_timeout) {
            g->eviction_timeout = g->graceful_timeout;
        }
    }
    if (global_conf->daemons->nelts) {
        /* <prefix>.<pid>.<generation or u<uid>>.<index>.sock */
        const char *prefix = global_conf->socket_prefix
                             ? global_conf->socket_prefix
                             : ap_runtime_dir_relative(p, "wsgi");
        apr_size_t room = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
        apr_size_t suffix = 1 + 10 + 1 + 11 + 1 + 10 + 5;

        if (prefix && strlen(prefix) + suffix > room) {
            /* Name the line that set it, as every other config error does
             * (the default comes from DefaultRuntimeDir). */
            const char *at = global_conf->socket_prefix_where
                ? apr_psprintf(p, " (WSGISocketPrefix at %s)",
                               global_conf->socket_prefix_where)
                : " (the default is in DefaultRuntimeDir)";

            return apr_psprintf(p, "the daemon sockets' path prefix '%s' is "
                                "too long: with the %" APR_SIZE_T_FMT
                                " characters Tether adds, a Unix socket path "
                                "must stay within %" APR_SIZE_T_FMT "; set a "
                                "shorter WSGISocketPrefix%s", prefix, suffix,
                                room, at);
        }
    }
    return NULL;
}

static int tether_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                               apr_pool_t *ptemp, server_rec *s)
{
    server_rec *vs;
    const char *err;
    int failed = 0;
    int i;

    reading_config = 0;
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

            /* A virtual host's list also holds the main server's. */
            if (a->server != vs || !literal_group(a->process_group)) {
                continue;
            }
            if ((err = group_problem(ptemp, a->process_group, vs)) != NULL) {
                ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                             TETHER_LOGNO(0002) "%s: process-group '%s' %s",
                             a->directive, a->process_group, err);
                failed = 1;
            }
        }
    }
    for (i = 0; i < group_refs->nelts; i++) {
        group_ref_t *ref = &APR_ARRAY_IDX(group_refs, i, group_ref_t);

        if ((err = group_problem(ptemp, ref->name, ref->server)) != NULL) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                         TETHER_LOGNO(0002) "%s: %s '%s' %s",
                         ref->directive, ref->what, ref->name, err);
            failed = 1;
        }
    }
    for (i = 0; i < global_conf->imports->nelts; i++) {
        tether_import_t *imp = &APR_ARRAY_IDX(global_conf->imports, i,
                                              tether_import_t);

        if (!literal_group(imp->process_group)) {
            continue;
        }
        if ((err = group_problem(ptemp, imp->process_group, imp->server))
                != NULL) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                         TETHER_LOGNO(0003) "%s: WSGIImportScript %s: "
                         "process-group '%s' %s", imp->directive,
                         imp->script, imp->process_group, err);
            failed = 1;
        }
    }
    if ((err = complete_daemons(ptemp)) != NULL) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                     TETHER_LOGNO(0004) "%s", err);
        failed = 1;
    }
    return failed ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

/* With LogLevel tether:debug, how each daemon group was read. */
static int tether_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *s)
{
    int i;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG
        || !APLOG_IS_LEVEL(s, APLOG_DEBUG)) {
        return OK;
    }
    for (i = 0; i < global_conf->daemons->nelts; i++) {
        tether_daemon_group_t *g = APR_ARRAY_IDX(global_conf->daemons, i,
                                                 tether_daemon_group_t *);

        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     TETHER_LOGNO(0005) "%s: daemon group '%s' (index %d): "
                     "processes=%d%s threads=%d uid=%ld gid=%ld umask=%s "
                     "home=%s display-name=%s python-home=%s "
                     "python-path=%d dirs maximum-requests=%d "
                     "socket-timeout=%" APR_TIME_T_FMT "s "
                     "graceful-timeout=%" APR_TIME_T_FMT "s "
                     "listen-backlog=%d header-buffer-size=%d",
                     g->directive, g->name, g->index, g->processes,
                     g->multiprocess ? " (multiprocess)" : "", g->threads,
                     (long)g->uid, (long)g->gid,
                     g->umask < 0 ? "inherit"
                                  : apr_psprintf(ptemp, "%04o", g->umask),
                     g->home ? g->home : "-",
                     g->display_name ? g->display_name : "-",
                     g->python_home ? g->python_home : "-",
                     g->python_path->nelts, g->maximum_requests,
                     apr_time_sec(g->socket_timeout),
                     apr_time_sec(g->graceful_timeout), g->listen_backlog,
                     g->header_buffer_size);
    }
    return OK;
}

void tether_config_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(tether_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(tether_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(tether_post_config, NULL, NULL, APR_HOOK_MIDDLE);
}
