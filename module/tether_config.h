/* Configuration records of mod_tether and the directive table. */
#ifndef TETHER_CONFIG_H
#define TETHER_CONFIG_H

#include "httpd.h"
#include "http_config.h"
#include "ap_regex.h"

/* One WSGIScriptAlias or WSGIScriptAliasMatch. */
typedef struct {
    const char *location;           /* URL prefix, or the regex source */
    const char *target;             /* script file or directory ($N ok) */
    ap_regex_t *regexp;             /* set for WSGIScriptAliasMatch */
    const char *process_group;      /* NULL: not given as an option */
    const char *application_group;
    const char *callable_object;
    int pass_authorization;         /* TETHER_UNSET when not given */
    const char *directive;          /* config file and line, for messages */
    server_rec *server;             /* the (virtual) server it appears in */
} tether_alias_t;

/* One WSGIImportScript. */
typedef struct {
    const char *script;
    const char *process_group;
    const char *application_group;
    server_rec *server;
    const char *directive;          /* config file and line, for messages */
} tether_import_t;

/*
 * One WSGIDaemonProcess group, complete after the configuration checks
 * (check_config): every field holds the value to use, defaults applied.
 * Times are apr_interval_time_t (microseconds; the directive takes whole
 * seconds) and 0 means "disabled" unless noted; sizes are bytes.
 */
typedef struct {
    const char *name;
    server_rec *server;             /* the (virtual) server it was defined in */
    const char *directive;          /* config file and line, for messages */
    int index;                      /* position in the global list */
    int processes;                  /* 1 */
    int multiprocess;               /* processes= given explicitly */
    int threads;                    /* 15; 0 = mod_wsgi's "managed process"
                                     * mode (no request threads) */
    /* Identity.  Only applied when Apache was started as root; uid/gid are
     * never 0 for uid (refused at config time).  user/group are the
     * option values as given (NULL: not given); uid/gid always hold the
     * ids to switch to: user= (name or #uid), else Apache's User; group=,
     * else user='s primary group when user= was given, else Apache's
     * Group. */
    const char *user;
    const char *group;
    uid_t uid;
    gid_t gid;
    const char *supplementary_groups; /* as given (comma separated), NULL */
    apr_array_header_t *supplementary_gids; /* gid_t, resolved; NULL: none */
    int umask;                      /* -1: inherit */
    const char *home;               /* absolute; NULL: the home directory of
                                     * user= if given, else Apache's cwd */
    const char *display_name;       /* NULL: keep the process name; %{GROUP}
                                     * is already expanded to (wsgi:NAME) */
    const char *lang;               /* LANG, NULL */
    const char *locale;             /* LC_ALL, NULL */
    const char *python_home;        /* NULL: WSGIPythonHome's */
    apr_array_header_t *python_path;    /* const char *, possibly empty */
    const char *python_eggs;        /* PYTHON_EGG_CACHE, NULL */
    double switch_interval;         /* seconds, 0: Python's default */
    int maximum_requests;           /* 0: never */
    apr_interval_time_t restart_interval;
    int cpu_time_limit;             /* seconds, 0 none */
    apr_interval_time_t inactivity_timeout;
    apr_interval_time_t request_timeout;
    apr_interval_time_t deadlock_timeout;   /* 300s */
    apr_interval_time_t startup_timeout;
    apr_interval_time_t graceful_timeout;   /* 15s */
    apr_interval_time_t eviction_timeout;   /* 0 given/unset: graceful's */
    apr_interval_time_t shutdown_timeout;   /* 5s */
    apr_interval_time_t connect_timeout;    /* 15s */
    apr_interval_time_t socket_timeout;     /* 0 given/unset: the Timeout of
                                             * the group's server */
    apr_interval_time_t queue_timeout;
    apr_interval_time_t response_socket_timeout; /* 0: socket_timeout */
    int listen_backlog;             /* 100 */
    int send_buffer_size;           /* 0: system default, else >= 512 */
    int receive_buffer_size;        /* 0: system default, else >= 512 */
    int header_buffer_size;         /* 32768 (0 given: default) */
    int response_buffer_size;       /* 65536 (0 given: default) */
    const char *socket_user;        /* as given, NULL */
    uid_t socket_uid;               /* socket-user=, else Apache's User */
    const char *script_user;        /* as given, NULL: no check */
    uid_t script_uid;
    const char *script_group;       /* as given, NULL: no check */
    gid_t script_gid;
    int cpu_priority;               /* 0; -20..20 */
    apr_size_t memory_limit;        /* 0: none */
    apr_size_t virtual_memory_limit;
    apr_size_t stack_size;          /* 0: the system's default */
    int server_metrics;             /* 0/1 */
    const char *socket_path;        /* set when the socket is created */
} tether_daemon_group_t;

/* Per server (main server and each virtual host). */
typedef struct {
    apr_array_header_t *aliases;    /* tether_alias_t, in config order */
} tether_server_conf_t;

/* Process-wide settings: only valid in the main server's config. */
typedef struct {
    const char *python_home;
    apr_array_header_t *python_path;    /* const char *, site dirs */
    int python_optimize;                /* TETHER_UNSET, 0, 1, 2 */
    const char *python_hash_seed;       /* NULL, "random" or a number */
    apr_array_header_t *python_warnings; /* const char *, -W specs */
    const char *python_eggs;            /* embedded PYTHON_EGG_CACHE, NULL */
    double switch_interval;             /* embedded; seconds, 0: default */
    int destroy_interpreter;            /* 1: run atexit functions at exit */
    int dont_write_bytecode;
    int restrict_embedded;
    int restrict_stdin;
    int restrict_stdout;
    int restrict_signal;
    apr_array_header_t *imports;        /* tether_import_t */
    apr_array_header_t *daemons;        /* tether_daemon_group_t * */
    const char *socket_prefix;          /* WSGISocketPrefix made absolute
                                         * (ServerRoot-relative); NULL:
                                         * <DefaultRuntimeDir>/wsgi */
    const char *socket_prefix_where;    /* "file:line" of WSGISocketPrefix */
    int socket_rotation;                /* WSGISocketRotation, 1 */
} tether_global_conf_t;

/* The daemon group called `name`, or NULL. */
tether_daemon_group_t *tether_config_daemon(const char *name);
/*
 * Whether requests of server `s` may use group `g`: a group defined outside
 * every <VirtualHost> serves all of them; one defined in a virtual host
 * serves the virtual hosts with the same ServerName (mod_wsgi's rule).
 */
int tether_config_daemon_visible(const tether_daemon_group_t *g,
                                 const server_rec *s);

/*
 * A script named by WSGIAccessScript, WSGIAuthUserScript,
 * WSGIAuthGroupScript, WSGIDispatchScript or WSGIHandlerScript.
 */
typedef struct {
    const char *name;               /* the handler name (WSGIHandlerScript) */
    const char *script;             /* absolute path */
    const char *process_group;      /* NULL: not given */
    const char *application_group;  /* NULL: not given */
    int pass_authorization;         /* TETHER_UNSET when not given */
    int in_htaccess;                /* set in a .htaccess file */
    const char *directive;          /* config file and line, for messages */
} tether_script_t;

/* Per directory (also server and virtual host defaults). */
typedef struct {
    const char *process_group;
    const char *application_group;
    const char *callable_object;
    int pass_authorization;
    int script_reloading;
    int chunked_request;
    int map_head_to_get;
    apr_array_header_t *restrict_process;   /* WSGIRestrictProcess names,
                                             * const char *; NULL: any */
    apr_array_header_t *trusted_proxy_headers;  /* WSGITrustedProxyHeaders,
                                                 * const char * (canonical
                                                 * names); NULL: unset */
    apr_array_header_t *trusted_proxies;    /* WSGITrustedProxies,
                                             * apr_ipsubnet_t *; NULL:
                                             * unset (every peer trusted) */
    const tether_script_t *access_script;       /* WSGIAccessScript */
    const tether_script_t *auth_user_script;    /* WSGIAuthUserScript */
    const tether_script_t *auth_group_script;   /* WSGIAuthGroupScript */
    const tether_script_t *dispatch_script;     /* WSGIDispatchScript */
    apr_hash_t *handler_scripts;    /* WSGIHandlerScript: name ->
                                     * tether_script_t *; NULL: none */
    int error_override;             /* WSGIErrorOverride, TETHER_UNSET */
    int enable_sendfile;            /* WSGIEnableSendfile, TETHER_UNSET */
    int pass_apache_request;        /* WSGIPassApacheRequest, TETHER_UNSET */
    int ignore_activity;            /* WSGIIgnoreActivity, TETHER_UNSET */
} tether_dir_conf_t;

/* The process-wide settings (one instance, set at config time). */
tether_global_conf_t *tether_config_global(void);

tether_server_conf_t *tether_config_server(server_rec *s);
tether_dir_conf_t *tether_config_dir(request_rec *r);

void *tether_config_create_server(apr_pool_t *p, server_rec *s);
void *tether_config_merge_server(apr_pool_t *p, void *base, void *add);
void *tether_config_create_dir(apr_pool_t *p, char *dir);
void *tether_config_merge_dir(apr_pool_t *p, void *base, void *add);

extern const command_rec tether_config_commands[];

/*
 * Helpers for the setters of other files (tether_auth.c,
 * tether_dispatch.c, tether_config_daemon.c), the same ones this file's
 * setters use.
 */
/* "file:line" of the directive being read. */
const char *tether_config_where(cmd_parms *cmd);
/* Parses "key=value" options (keys from `allowed`) into `opts`; an empty
 * value only with `allow_empty`. */
const char *tether_config_options(cmd_parms *cmd, const char *who,
                                  const char *args,
                                  const char *const *allowed,
                                  int allow_empty, apr_table_t *opts);
/* Checks that `value` is a usable Python home (a venv's prefix). */
const char *tether_config_check_python_home(cmd_parms *cmd,
                                            const char *what,
                                            const char *value);
/*
 * Reads a switch interval in seconds (WSGISwitchInterval, switch-interval=
 * of WSGIDaemonProcess) into *out; an error naming `who` and the value
 * when it is not a number of seconds above 0 that Python accepts.
 */
const char *tether_config_switch_interval(apr_pool_t *p, const char *who,
                                          const char *value, double *out);
/* Adds a new daemon group to the process-wide list and the name index. */
void tether_config_add_daemon(tether_daemon_group_t *g);
/* WSGIDaemonProcess (tether_config_daemon.c). */
const char *tether_config_daemon_process(cmd_parms *cmd, void *mconfig,
                                         const char *args);
/* Checks an application-group= (process == 0) or process-group= value. */
const char *tether_config_check_group(cmd_parms *cmd, const char *who,
                                      const char *value, int process);
/* Parses On/Off into *out. */
const char *tether_config_onoff(cmd_parms *cmd, const char *who,
                                const char *value, int *out);
/*
 * Records that `directive` names daemon group `name` (a literal), checked
 * once the whole configuration is read.
 */
void tether_config_group_ref(cmd_parms *cmd, const char *directive,
                             const char *name);

#endif /* TETHER_CONFIG_H */
