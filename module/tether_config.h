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
} tether_global_conf_t;

/* Per directory (also server and virtual host defaults). */
typedef struct {
    const char *process_group;
    const char *application_group;
    const char *callable_object;
    int pass_authorization;
    int script_reloading;
    int chunked_request;
    int map_head_to_get;
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
