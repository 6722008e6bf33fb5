/*
 * mod_tether: runs WSGI applications inside Apache httpd.
 *
 * This file holds only the module record and the hook registration; each
 * concern registers its own hooks from its own file.
 */
#define TETHER_MODULE_FILE
#include "tether_private.h"
#include "tether_metrics.h"

static void tether_register_hooks(apr_pool_t *p)
{
    tether_config_register_hooks(p);
    tether_interp_register_hooks(p);
    tether_handler_register_hooks(p);
    tether_dispatch_register_hooks(p);
    tether_auth_register_hooks(p);
    tether_client_register_hooks(p);
    tether_daemon_register_hooks(p);
    tether_metrics_register_hooks(p);
}

__attribute__((visibility("default")))
AP_DECLARE_MODULE(tether) = {
    STANDARD20_MODULE_STUFF,
    tether_config_create_dir,
    tether_config_merge_dir,
    tether_config_create_server,
    tether_config_merge_server,
    tether_config_commands,
    tether_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_NONE
#endif
};
