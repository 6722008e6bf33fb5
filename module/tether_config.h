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
} tether_alias_t;

/* One WSGIImportScript. */
typedef struct {
    const char *script;
    const char *process_group;
    const char *application_group;
    server_rec *server;
} tether_import_t;

/*
 * One WSGIDaemonProcess group.  Times are apr_interval_time_t (microseconds)
 * and 0 means "not set / disabled" unless noted; sizes are bytes.
 */
typedef struct {
    const char *name;
    server_rec *server;             /* the (virtual) server it was defined in */
    const char *directive;          /* config file and line, for messages */
    int index;                      /* position in the global list */
    int processes;                  /* 1 */
    int multiprocess;               /* processes= given explicitly */
    int threads;                    /* 15 */
    const char *user;               /* NULL: Apache's User */
    const char *group;              /* NULL: Apache's Group, or user's */
    uid_t uid;                      /* resolved at config time */
    gid_t gid;
    const char *supplementary_groups; /* comma separated, NULL */
    int umask;                      /* -1: inherit */
    const char *home;               /* NULL: the user's home dir */
    const char *display_name;       /* NULL: keep the process name */
    const char *lang;
    const char *locale;
    const char *python_home;
    apr_array_header_t *python_path;    /* const char * */
    const char *python_eggs;
    int maximum_requests;           /* 0: never */
    apr_interval_time_t restart_interval;
    int cpu_time_limit;             /* seconds, 0 none */
    apr_interval_time_t inactivity_timeout;
    apr_interval_time_t request_timeout;
    apr_interval_time_t deadlock_timeout;   /* 300s */
    apr_interval_time_t startup_timeout;
    apr_interval_time_t graceful_timeout;   /* 15s */
    apr_interval_time_t eviction_timeout;
    apr_interval_time_t shutdown_timeout;   /* 5s */
    apr_interval_time_t connect_timeout;    /* 15s */
    apr_interval_time_t socket_timeout;     /* 0: Apache's Timeout */
    apr_interval_time_t queue_timeout;
    apr_interval_time_t response_socket_timeout;
    int listen_backlog;             /* 100 */
    int send_buffer_size;           /* 0: system default */
    int receive_buffer_size;
    int header_buffer_size;         /* 32768 */
    int response_buffer_size;       /* 0: default */
    const char *socket_user;        /* NULL: Apache's User */
    const char *script_user;
    const char *script_group;
    int cpu_priority;               /* 0 */
    apr_size_t memory_limit;        /* 0: none */
    apr_size_t virtual_memory_limit;
    apr_size_t stack_size;
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
    int dont_write_bytecode;
    int restrict_embedded;
    int restrict_stdin;
    int restrict_stdout;
    int restrict_signal;
    apr_array_header_t *imports;        /* tether_import_t */
    apr_array_header_t *daemons;        /* tether_daemon_group_t * */
    const char *socket_prefix;          /* WSGISocketPrefix, NULL: default */
    int socket_rotation;                /* WSGISocketRotation, 1 */
} tether_global_conf_t;

/* The daemon group called `name`, or NULL. */
tether_daemon_group_t *tether_config_daemon(const char *name);

/* Per directory (also server and virtual host defaults). */
typedef struct {
    const char *process_group;
    const char *application_group;
    const char *callable_object;
    int pass_authorization;
    int script_reloading;
    int chunked_request;
    int map_head_to_get;
    apr_array_header_t *restrict_process;   /* WSGIRestrictProcess names */
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

#endif /* TETHER_CONFIG_H */
