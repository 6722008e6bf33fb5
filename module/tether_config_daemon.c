/*
 * WSGIDaemonProcess: the name of a daemon process group and its options,
 * each checked and converted as it is read (mod_wsgi's option names and
 * defaults).  The group joins the process-wide list through
 * tether_config_add_daemon(); the checks that need the whole
 * configuration (users, sockets) run in tether_config.c.
 */
#include "tether_private.h"


#include <grp.h>
#include <limits.h>
#include <pwd.h>

/* Largest header-buffer-size: a response head travels in one frame. */
#define TETHER_MAX_HEADER_BUFFER (16 * 1024 * 1024)

/* Largest memory limit: 256 TiB, or what an apr_size_t holds. */
#define TETHER_MAX_MEMORY (sizeof(apr_size_t) > 4 ? APR_INT64_C(1) << 48 \
                                                  : APR_INT64_C(0xffffffff))

/*
 * How a numeric option is read.  DOPT_INT, DOPT_SECONDS_INT and
 * DOPT_BYTES_INT land in an int, DOPT_SECONDS in an apr_interval_time_t
 * (the value is whole seconds), DOPT_BYTES in an apr_size_t.  With `zero`
 * set, 0 is accepted below `min` and means what `zero` says.
 */
typedef enum {
    DOPT_INT,
    DOPT_SECONDS_INT,
    DOPT_SECONDS,
    DOPT_BYTES_INT,
    DOPT_BYTES,
    DOPT_MILLISECONDS_IGNORED
} dopt_kind_t;

typedef struct {
    const char *name;
    dopt_kind_t kind;
    apr_size_t offset;
    apr_int64_t min;
    apr_int64_t max;
    const char *zero;
} dopt_number_t;

#define DOFF(field) APR_OFFSETOF(tether_daemon_group_t, field)
#define SECONDS(name, field) \
    { name, DOPT_SECONDS, DOFF(field), 0, INT_MAX, NULL }

static const dopt_number_t daemon_numbers[] = {
    { "processes", DOPT_INT, DOFF(processes), 1, 10000, NULL },
    { "threads", DOPT_INT, DOFF(threads), 0, 10000, NULL },
    { "maximum-requests", DOPT_INT, DOFF(maximum_requests), 0, INT_MAX,
      NULL },
    { "cpu-time-limit", DOPT_SECONDS_INT, DOFF(cpu_time_limit), 0, INT_MAX,
      NULL },
    { "cpu-priority", DOPT_INT, DOFF(cpu_priority), -20, 20, NULL },
    { "listen-backlog", DOPT_INT, DOFF(listen_backlog), 0, 65535, NULL },
    SECONDS("restart-interval", restart_interval),
    SECONDS("inactivity-timeout", inactivity_timeout),
    SECONDS("request-timeout", request_timeout),
    SECONDS("deadlock-timeout", deadlock_timeout),
    SECONDS("startup-timeout", startup_timeout),
    SECONDS("graceful-timeout", graceful_timeout),
    SECONDS("eviction-timeout", eviction_timeout),
    SECONDS("shutdown-timeout", shutdown_timeout),
    SECONDS("connect-timeout", connect_timeout),
    SECONDS("socket-timeout", socket_timeout),
    SECONDS("queue-timeout", queue_timeout),
    SECONDS("response-socket-timeout", response_socket_timeout),
    { "send-buffer-size", DOPT_BYTES_INT, DOFF(send_buffer_size), 512,
      INT_MAX, "the system's default" },
    { "receive-buffer-size", DOPT_BYTES_INT, DOFF(receive_buffer_size), 512,
      INT_MAX, "the system's default" },
    { "header-buffer-size", DOPT_BYTES_INT, DOFF(header_buffer_size), 8192,
      TETHER_MAX_HEADER_BUFFER, "the default, 32768" },
    { "response-buffer-size", DOPT_BYTES_INT, DOFF(response_buffer_size),
      65536, INT_MAX, "the default, 65536" },
    /* A limit below 1 MiB is a unit mistake: it is bytes, not KiB or MiB. */
    { "memory-limit", DOPT_BYTES, DOFF(memory_limit), 1048576,
      TETHER_MAX_MEMORY, "no limit" },
    { "virtual-memory-limit", DOPT_BYTES, DOFF(virtual_memory_limit),
      1048576, TETHER_MAX_MEMORY, "no limit" },
    { "stack-size", DOPT_BYTES, DOFF(stack_size), 65536,
      APR_INT64_C(1) << 30, "the system's default" },
    /* mod_wsgi 6 tunes its own response flushing with this; Tether's
     * framed transport flushes what the application yields, so the value
     * is checked and has no effect. */
    { "response-flush-delay", DOPT_MILLISECONDS_IGNORED, 0, 0, INT_MAX,
      NULL },
    { NULL }
};

static const char *const daemon_options[] = {
    "processes", "threads", "maximum-requests", "cpu-time-limit",
    "cpu-priority", "listen-backlog", "restart-interval",
    "inactivity-timeout", "request-timeout", "deadlock-timeout",
    "startup-timeout", "graceful-timeout", "eviction-timeout",
    "shutdown-timeout", "connect-timeout", "socket-timeout", "queue-timeout",
    "response-socket-timeout", "send-buffer-size", "receive-buffer-size",
    "header-buffer-size", "response-buffer-size", "memory-limit",
    "virtual-memory-limit", "stack-size", "response-flush-delay",
    "user", "group", "supplementary-groups", "umask", "home",
    "display-name", "lang", "locale", "python-home", "python-path",
    "python-eggs", "socket-user", "script-user", "script-group",
    "server-metrics", "interrupt-timeout", "switch-interval",
    /* refused with a message of their own */
    "chroot", "newrelic-config-file",
    "newrelic-environment",
    NULL
};

/*
 * Reads a whole number, with a '-' sign allowed.  Values too large for
 * any option come back as APR_INT64_MAX, so that the range check refuses
 * them.  Returns 0 when `v` is not a number.
 */
static int parse_whole(const char *v, apr_int64_t *out)
{
    const char *c = v;
    apr_int64_t n = 0;
    int negative = 0;

    if (*c == '-') {
        negative = 1;
        c++;
    }
    if (!*c) {
        return 0;
    }
    for (; *c; c++) {
        if (!apr_isdigit(*c)) {
            return 0;
        }
        if (n < APR_INT64_C(100000000000000000)) {
            n = n * 10 + (*c - '0');
        }
        else {
            n = APR_INT64_MAX;
        }
    }
    *out = negative && n != APR_INT64_MAX ? -n : n;
    return 1;
}

static const char *set_daemon_number(cmd_parms *cmd, const char *who,
                                     tether_daemon_group_t *g,
                                     const dopt_number_t *o,
                                     const char *value)
{
    apr_int64_t n;
    char *field = (char *)g + o->offset;
    int ok = parse_whole(value, &n)
             && ((n >= o->min && n <= o->max) || (o->zero && n == 0));

    if (!ok) {
        const char *unit = "";

        switch (o->kind) {
        case DOPT_SECONDS_INT:
        case DOPT_SECONDS:
            unit = " of seconds";
            break;
        case DOPT_BYTES_INT:
        case DOPT_BYTES:
            unit = " of bytes";
            break;
        case DOPT_MILLISECONDS_IGNORED:
            unit = " of milliseconds";
            break;
        case DOPT_INT:
            break;
        }
        if (o->zero) {
            return apr_psprintf(cmd->pool, "%s: %s '%s' must be 0 (%s) or "
                                "a whole number%s from %" APR_INT64_T_FMT
                                " to %" APR_INT64_T_FMT, who, o->name,
                                value, o->zero, unit, o->min, o->max);
        }
        return apr_psprintf(cmd->pool, "%s: %s '%s' must be a whole "
                            "number%s from %" APR_INT64_T_FMT " to %"
                            APR_INT64_T_FMT, who, o->name, value, unit,
                            o->min, o->max);
    }
    switch (o->kind) {
    case DOPT_INT:
    case DOPT_SECONDS_INT:
    case DOPT_BYTES_INT:
        *(int *)field = (int)n;
        break;
    case DOPT_SECONDS:
        *(apr_interval_time_t *)field = apr_time_from_sec(n);
        break;
    case DOPT_BYTES:
        *(apr_size_t *)field = (apr_size_t)n;
        break;
    case DOPT_MILLISECONDS_IGNORED:
        break;
    }
    return NULL;
}

/* user=, socket-user=, script-user=: a name or #uid of an existing user. */
static const char *resolve_user(cmd_parms *cmd, const char *who,
                                const char *opt, const char *value,
                                struct passwd **pw_out)
{
    struct passwd *pw = NULL;

    if (value[0] == '#') {
        apr_int64_t n;

        if (!parse_whole(value + 1, &n) || n < 0 || n > UINT_MAX - 1) {
            return apr_psprintf(cmd->pool, "%s: %s '%s' is neither a user "
                                "name nor #uid", who, opt, value);
        }
        pw = getpwuid((uid_t)n);
    }
    else if (*value) {
        pw = getpwnam(value);
    }
    if (!pw) {
        return apr_psprintf(cmd->pool, "%s: %s '%s' names no user of this "
                            "system", who, opt, value);
    }
    *pw_out = pw;
    return NULL;
}

/* group=, script-group=, supplementary-groups=: a name or #gid. */
static const char *resolve_group(cmd_parms *cmd, const char *who,
                                 const char *opt, const char *value,
                                 gid_t *gid)
{
    struct group *gr = NULL;

    if (value[0] == '#') {
        apr_int64_t n;

        if (!parse_whole(value + 1, &n) || n < 0 || n > UINT_MAX - 1) {
            return apr_psprintf(cmd->pool, "%s: %s '%s' is neither a group "
                                "name nor #gid", who, opt, value);
        }
        gr = getgrgid((gid_t)n);
    }
    else if (*value) {
        gr = getgrnam(value);
    }
    if (!gr) {
        return apr_psprintf(cmd->pool, "%s: %s '%s' names no group of this "
                            "system", who, opt, value);
    }
    *gid = gr->gr_gid;
    return NULL;
}

/* The options that are not numbers. */
static const char *set_daemon_option(cmd_parms *cmd, const char *who,
                                     tether_daemon_group_t *g,
                                     const char *key, const char *value)
{
    const char *err;

    if (!strcmp(key, "user")) {
        struct passwd *pw;

        if ((err = resolve_user(cmd, who, key, value, &pw)) != NULL) {
            return err;
        }
        if (pw->pw_uid == 0) {
            return apr_psprintf(cmd->pool, "%s: user '%s' is uid 0: daemon "
                                "processes never run as root", who, value);
        }
        g->user = value;
        g->uid = pw->pw_uid;
        if (!g->group) {
            g->gid = pw->pw_gid;
        }
    }
    else if (!strcmp(key, "group")) {
        if ((err = resolve_group(cmd, who, key, value, &g->gid)) != NULL) {
            return err;
        }
        g->group = value;
    }
    else if (!strcmp(key, "supplementary-groups")) {
        char *list = apr_pstrdup(cmd->temp_pool, value);
        char *name, *state;

        g->supplementary_gids = apr_array_make(cmd->pool, 4, sizeof(gid_t));
        for (name = apr_strtok(list, ",", &state); name;
             name = apr_strtok(NULL, ",", &state)) {
            gid_t *gid = apr_array_push(g->supplementary_gids);

            if ((err = resolve_group(cmd, who, key, name, gid)) != NULL) {
                return err;
            }
        }
        if (!g->supplementary_gids->nelts || strstr(value, ",,")
            || value[0] == ',' || value[strlen(value) - 1] == ',') {
            return apr_psprintf(cmd->pool, "%s: supplementary-groups '%s' "
                                "must be group names separated by commas",
                                who, value);
        }
        g->supplementary_groups = value;
    }
    else if (!strcmp(key, "socket-user")) {
        struct passwd *pw;

        if ((err = resolve_user(cmd, who, key, value, &pw)) != NULL) {
            return err;
        }
        g->socket_user = value;
        g->socket_uid = pw->pw_uid;
    }
    else if (!strcmp(key, "script-user")) {
        struct passwd *pw;

        if ((err = resolve_user(cmd, who, key, value, &pw)) != NULL) {
            return err;
        }
        g->script_user = value;
        g->script_uid = pw->pw_uid;
    }
    else if (!strcmp(key, "script-group")) {
        if ((err = resolve_group(cmd, who, key, value, &g->script_gid))
                != NULL) {
            return err;
        }
        g->script_group = value;
    }
    else if (!strcmp(key, "umask")) {
        apr_size_t n = strlen(value);
        int mask = 0;
        apr_size_t i;

        for (i = 0; i < n && value[i] >= '0' && value[i] <= '7'; i++) {
            mask = mask * 8 + (value[i] - '0');
        }
        if (!n || i != n || n > 4 || mask > 0777) {
            return apr_psprintf(cmd->pool, "%s: umask '%s' must be an octal "
                                "number from 0000 to 0777", who, value);
        }
        g->umask = mask;
    }
    else if (!strcmp(key, "home")) {
        if (value[0] != '/') {
            return apr_psprintf(cmd->pool, "%s: home '%s' must be the "
                                "absolute path of a directory", who, value);
        }
        g->home = value;
    }
    else if (!strcmp(key, "display-name")) {
        if (!strcmp(value, "%{GROUP}")) {
            g->display_name = apr_psprintf(cmd->pool, "(wsgi:%s)", g->name);
        }
        else {
            g->display_name = *value ? value : NULL;
        }
    }
    else if (!strcmp(key, "lang")) {
        g->lang = *value ? value : NULL;
    }
    else if (!strcmp(key, "locale")) {
        g->locale = *value ? value : NULL;
    }
    else if (!strcmp(key, "python-eggs")) {
        g->python_eggs = *value ? value : NULL;
    }
    else if (!strcmp(key, "switch-interval")) {
        return tether_config_switch_interval(
            cmd->pool, apr_pstrcat(cmd->pool, who, ": switch-interval", NULL),
            value, &g->switch_interval);
    }
    else if (!strcmp(key, "python-home")) {
        if (*value) {
            err = tether_config_check_python_home(cmd, apr_pstrcat(cmd->pool, who,
                                                     ": python-home", NULL),
                                    value);
            if (err) {
                return err;
            }
            g->python_home = value;
        }
    }
    else if (!strcmp(key, "python-path")) {
        char *list = apr_pstrdup(cmd->pool, value);
        char *dir, *state;

        for (dir = apr_strtok(list, ":", &state); dir;
             dir = apr_strtok(NULL, ":", &state)) {
            *(const char **)apr_array_push(g->python_path) = dir;
        }
    }
    else if (!strcmp(key, "server-metrics")) {
        if (!strcasecmp(value, "on")) {
            g->server_metrics = 1;
        }
        else if (!strcasecmp(value, "off")) {
            g->server_metrics = 0;
        }
        else {
            return apr_psprintf(cmd->pool, "%s: server-metrics '%s' is not "
                                "On or Off", who, value);
        }
    }
    else if (!strcmp(key, "interrupt-timeout")) {
        /* 0 is mod_wsgi's default: no interruption before the restart. */
        if (strcmp(value, "0")) {
            return apr_psprintf(cmd->pool, "%s: interrupt-timeout '%s' is "
                                "not supported by Tether yet; only 0 (the "
                                "default: a request-timeout restarts the "
                                "process) is accepted", who, value);
        }
    }
    else if (!strcmp(key, "chroot")) {
        return apr_psprintf(cmd->pool, "%s: option 'chroot' is not "
                            "supported by Tether (mod_wsgi deprecated it); "
                            "isolate the application with a container or "
                            "its own user= instead", who);
    }
    else {
        return apr_psprintf(cmd->pool, "%s: option '%s' is not supported by "
                            "Tether; remove it", who, key);
    }
    return NULL;
}

const char *tether_config_daemon_process(cmd_parms *cmd, void *mconfig,
                                         const char *args)
{
    const char *name = cmd->cmd->name;
    apr_table_t *opts = apr_table_make(cmd->temp_pool, 16);
    const apr_array_header_t *elts;
    const apr_table_entry_t *e;
    tether_daemon_group_t *g, *other;
    const char *group, *who, *err, *v;
    int i;

    if ((err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE)) != NULL) {
        return err;
    }
    group = ap_getword_conf(cmd->pool, &args);
    if (!*group) {
        return apr_psprintf(cmd->pool, "%s needs the name of the daemon "
                            "process group (%s)", name, tether_config_where(cmd));
    }
    if (strchr(group, '=')) {
        return apr_psprintf(cmd->pool, "%s: the first argument must be the "
                            "name of the group, not an option like '%s'",
                            name, group);
    }
    if (group[0] == '%') {
        return apr_psprintf(cmd->pool, "%s: '%s' cannot be the name of a "
                            "group: names starting with %% are expansions "
                            "such as %%{GLOBAL}", name, group);
    }
    other = tether_config_daemon(group);
    if (other) {
        return apr_psprintf(cmd->pool, "%s: group '%s' is already defined at "
                            "%s; names of daemon process groups must be "
                            "unique in the whole server, across virtual "
                            "hosts", name, group, other->directive);
    }
    who = apr_pstrcat(cmd->pool, name, " ", group, NULL);
    if ((err = tether_config_options(cmd, who, args, daemon_options, 1, opts))
            != NULL) {
        return err;
    }

    g = apr_pcalloc(cmd->pool, sizeof(*g));
    g->name = group;
    g->server = cmd->server;
    g->directive = tether_config_where(cmd);
    g->processes = 1;
    g->threads = 15;
    g->uid = (uid_t)-1;             /* resolved in check_config */
    g->gid = (gid_t)-1;
    g->socket_uid = (uid_t)-1;
    g->umask = -1;
    g->python_path = apr_array_make(cmd->pool, 2, sizeof(const char *));
    g->deadlock_timeout = apr_time_from_sec(300);
    g->graceful_timeout = apr_time_from_sec(15);
    g->shutdown_timeout = apr_time_from_sec(5);
    g->connect_timeout = apr_time_from_sec(15);
    g->listen_backlog = 100;
    g->header_buffer_size = 32768;
    g->response_buffer_size = 65536;

    /* group= first, so that user= knows whether to take the user's
     * primary group. */
    if ((v = apr_table_get(opts, "group")) != NULL
        && (err = set_daemon_option(cmd, who, g, "group", v)) != NULL) {
        return err;
    }
    elts = apr_table_elts(opts);
    e = (const apr_table_entry_t *)elts->elts;
    for (i = 0; i < elts->nelts; i++) {
        const dopt_number_t *o;

        if (!strcmp(e[i].key, "group")) {
            continue;
        }
        for (o = daemon_numbers; o->name; o++) {
            if (!strcmp(o->name, e[i].key)) {
                break;
            }
        }
        err = o->name ? set_daemon_number(cmd, who, g, o, e[i].val)
                      : set_daemon_option(cmd, who, g, e[i].key, e[i].val);
        if (err) {
            return err;
        }
    }
    if (g->script_user && g->script_group) {
        return apr_psprintf(cmd->pool, "%s: give script-user or "
                            "script-group, not both", who);
    }
    g->multiprocess = apr_table_get(opts, "processes") != NULL;
    if (!g->header_buffer_size) {
        g->header_buffer_size = 32768;
    }
    if (!g->response_buffer_size) {
        g->response_buffer_size = 65536;
    }

    tether_config_add_daemon(g);
    return NULL;
}

