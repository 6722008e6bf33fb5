/*
 * Daemon mode, parent side: the Apache parent creates one listening Unix
 * socket per WSGIDaemonProcess group, forks the group's daemon processes,
 * sets each one up (file descriptors, process title, limits, identity) and
 * supervises them.  What runs inside a daemon is tether_dserver_main().
 * The model is httpd's mod_cgid.
 *
 * Generations.  post_config of the real start and of every restart (never
 * the first of the two start-up passes, which runs before Apache detaches)
 * creates the sockets <prefix>.<parent pid>.<generation>.<index>.sock and
 * forks the daemons, each registered as an APR "other child" so that the
 * MPM reports its death to slot_maint().  pconf is cleared at each restart
 * and destroyed at stop; generation_cleanup(), registered in pre_config so
 * that it runs after the cleanups of every registration, ends the
 * generation:
 *   graceful restart  SIGUSR1 to the daemons, which finish what they do and
 *                     exit.  They are handed to the next generation on a
 *                     list kept in retained data: it reaps them, removes
 *                     their socket file once the last is gone and sends
 *                     SIGTERM/SIGKILL to any that overstays (monitor hook).
 *   restart, stop     SIGTERM, wait shutdown-timeout, SIGKILL, reap, remove
 *                     the socket files.
 *   graceful stop     the same with SIGUSR1 and eviction-timeout first.
 * Which one it is comes from mod_unixd's MPM retained data, the flags the
 * MPMs' own signal handlers set (is_ungraceful, was_graceful); the main
 * state (AP_SQ_MS_EXITING or not) tells a stop from a restart.  The MPM
 * also calls the other-child callbacks with APR_OC_REASON_RESTART while it
 * reclaims its children at stop and at a hard restart: the daemons get
 * SIGTERM then already, so that they stop alongside Apache's children.
 *
 * Nothing of ours that holds a function pointer outlives pconf: the module
 * is unloaded and mapped again at each restart, so the retained data holds
 * plain data only and the next generation registers it again.
 *
 * Respawning.  A daemon that exits with status 0 (it recycled itself) or
 * that lived longer than its start-up window (10 seconds, or startup-timeout
 * if longer) is replaced at once.  One that died sooner is replaced with a
 * back-off of 1, 2, 4 ... 60 seconds, so that a broken application does not
 * fork-storm.  The parent has no timer of its own, so the replacement is
 * forked at once and it is the new process that sleeps the back-off before
 * it starts Python (SIGTERM/SIGUSR1 end it while it waits).  A fork that
 * failed is retried from the monitor hook (every ten seconds or so).
 *
 * The MPM hands the callback only the exit code or the signal number, not
 * which of the two it was; a status from 1 to 64 is reported as both.
 * Daemons therefore exit 0 when they stop or recycle, 78 when their set-up
 * here failed, and never 15: the MPMs take exit status 15 of any child
 * (APEXIT_CHILDFATAL) as a fatal error and shut Apache down.
 */
#include "tether_private.h"
#include "tether_conn.h"

#include "apr_shm.h"

#include "ap_listen.h"
#include "mpm_common.h"
#include "unixd.h"
#include "apr_portable.h"
#include "apr_signal.h"
#include "apr_thread_proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <locale.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <syslog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* A daemon that dies sooner than this after it started is replaced with
 * back-off (startup-timeout, when longer, replaces it). */
#define QUICK_DEATH apr_time_from_sec(10)
#define BACKOFF_FIRST 1
#define BACKOFF_MAX 60

/* Exit status of a daemon whose set-up failed before Python started
 * (EX_CONFIG of sysexits.h). */
#define SETUP_FAILED 78

/* Extra time a draining daemon gets past eviction-timeout before SIGTERM. */
#define DRAIN_MARGIN apr_time_from_sec(1)

/* Extra time a daemon exiting on purpose gets past its shutdown-timeout
 * (its own watchdog kills it at shutdown-timeout) before the parent does. */
#define EXIT_MARGIN apr_time_from_sec(2)

#define RETAINED_KEY "tether_daemon_retained"

typedef struct group_rt group_rt_t;

/* One daemon process of the current generation. */
typedef struct {
    group_rt_t *grp;
    int slot;                       /* 0 .. processes-1 */
    apr_proc_t proc;                /* pid 0: none running */
    apr_pool_t *pool;               /* holds the other-child registration */
    int signalled;                  /* SIGTERM sent while Apache stops */
    apr_time_t started;             /* when it was due to start serving */
    int backoff;                    /* seconds of the last back-off, 0 */
    int killed;                     /* SIGKILL sent: overstayed its exit */
} slot_t;

/* A WSGIDaemonProcess group as the parent runs it. */
struct group_rt {
    tether_daemon_group_t *g;
    server_rec *s;                  /* where its daemons log */
    int listen_fd;
    int socket_made;                /* g->socket_path is ours to remove */
    int switch_user;                /* Apache is root: become uid/gid */
    uid_t uid;
    gid_t gid;
    const char *user_name;          /* for initgroups(), NULL: none */
    const char *user_home;          /* the user's home directory, NULL */
    apr_interval_time_t quick;      /* start-up window of the back-off */
    slot_t *slots;
};

/*
 * A daemon of an earlier generation that was told to finish (graceful
 * restart).  Plain data in malloc'd memory: it outlives pconf and the
 * mapping of this module.
 */
typedef struct drain {
    struct drain *next;
    apr_proc_t proc;
    int dead;
    int term_sent;
    apr_time_t term_at;             /* SIGTERM if still there */
    apr_time_t kill_at;             /* SIGKILL if still there */
    char *group;
    char *socket_path;
} drain_t;

/* Kept across restarts in the process pool (ap_retained_data). */
typedef struct {
    pid_t parent;                   /* the Apache parent */
    int generation;                 /* of the sockets; 1 at the start */
    drain_t *draining;
} retained_t;

static retained_t *retained;
static ap_unixd_mpm_retained_data *mpm_retained;

/* The current generation (pconf memory). */
static group_rt_t *groups;
static int ngroups;
static int generation_over;

/*
 * Shared by the parent, the daemons and Apache's children of one
 * generation (anonymous shared memory, inherited through fork).  A daemon
 * marks itself ready once it serves, and marks when it exits on purpose;
 * the parent records each death.  So the parent backs off only for daemons
 * that die before they are ready, and tells a kill from an exit status
 * (the MPM hands it one number for both); and an Apache child whose daemon
 * vanished can say how.
 */
#define DEATHS 64

typedef struct {
    volatile pid_t ready;           /* pid of the daemon that is serving */
    volatile pid_t exiting;         /* pid of a daemon exiting on purpose */
    volatile apr_time_t exit_by;    /* when it must be gone (see below) */
    volatile int conns;             /* its open connections from Apache */
} shm_slot_t;

typedef struct {
    volatile pid_t pid;
    volatile int status;            /* the MPM's number */
    volatile int signalled;         /* 1: it was a signal */
} shm_death_t;

typedef struct {
    volatile unsigned int next_death;
    shm_death_t deaths[DEATHS];
    shm_slot_t slots[1];            /* one per daemon process, all groups */
} shm_table_t;

static shm_table_t *table;
static int *slot_base;              /* by group index: first slot's index */

static shm_slot_t *table_slot(int group_index, int slot)
{
    return table ? &table->slots[slot_base[group_index] + slot] : NULL;
}

void tether_daemon_mark_ready(tether_daemon_group_t *g, int slot)
{
    shm_slot_t *ts = table_slot(g->index, slot);

    if (ts) {
        ts->conns = 0;
        ts->ready = getpid();
    }
}

/*
 * A daemon that exits on purpose has shutdown-timeout for its exit
 * functions; it kills itself after that (tether_dserver.c).  Should even
 * that fail, the parent kills it a little later (daemon_monitor).
 */
apr_interval_time_t tether_daemon_exit_allowance(
    const tether_daemon_group_t *g)
{
    return g->shutdown_timeout > 0 ? g->shutdown_timeout
                                   : apr_time_from_sec(5);
}

void tether_daemon_mark_exiting(tether_daemon_group_t *g, int slot)
{
    shm_slot_t *ts = table_slot(g->index, slot);

    if (ts) {
        ts->exit_by = apr_time_now() + tether_daemon_exit_allowance(g)
                      + EXIT_MARGIN;
        __sync_synchronize();
        ts->exiting = getpid();
    }
}

void tether_daemon_set_conns(tether_daemon_group_t *g, int slot, int conns)
{
    shm_slot_t *ts = table_slot(g->index, slot);

    if (ts) {
        ts->conns = conns;
    }
}

int tether_daemon_fewest_conns(tether_daemon_group_t *g, int slot)
{
    int i, fewest = -1;

    for (i = 0; table && i < g->processes; i++) {
        shm_slot_t *ts = table_slot(g->index, i);

        if (i != slot && ts->ready && ts->ready != ts->exiting
            && (fewest < 0 || ts->conns < fewest)) {
            fewest = ts->conns;
        }
    }
    return fewest;
}

int tether_daemon_death(pid_t pid, int *status, int *signalled)
{
    unsigned int i;

    if (!table) {
        return 0;
    }
    for (i = 0; i < DEATHS; i++) {
        shm_death_t *d = &table->deaths[i];

        if (d->pid == pid) {
            __sync_synchronize();
            *status = d->status;
            *signalled = d->signalled;
            return 1;
        }
    }
    return 0;
}

static void record_death(pid_t pid, int status, int signalled)
{
    shm_death_t *d;

    if (!table) {
        return;
    }
    d = &table->deaths[table->next_death++ % DEATHS];
    d->pid = 0;
    __sync_synchronize();
    d->status = status;
    d->signalled = signalled;
    __sync_synchronize();
    d->pid = pid;
}

static apr_status_t make_table(apr_pool_t *pconf, apr_array_header_t *daemons)
{
    apr_shm_t *shm;
    apr_status_t rv;
    int i, total = 0;

    slot_base = apr_pcalloc(pconf, sizeof(int) * daemons->nelts);
    for (i = 0; i < daemons->nelts; i++) {
        slot_base[i] = total;
        total += APR_ARRAY_IDX(daemons, i, tether_daemon_group_t *)->processes;
    }
    rv = apr_shm_create(&shm, sizeof(shm_table_t)
                              + sizeof(shm_slot_t) * total, NULL, pconf);
    if (rv != APR_SUCCESS) {
        table = NULL;
        return rv;
    }
    table = apr_shm_baseaddr_get(shm);
    memset(table, 0, apr_shm_size_get(shm));
    return APR_SUCCESS;
}

static void daemon_child(slot_t *sl, int delay) __attribute__((noreturn));

static int in_parent(void)
{
    return retained && retained->parent == getpid();
}

static int mpm_stopping(void)
{
    int state;

    return ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS
           && state == AP_MPMQ_STOPPING;
}

/*
 * Whether the restart or stop under way is a graceful one.  The MPM's pconf
 * cleanup (registered after ours, so run before it) moves the pending flags
 * to was_graceful; before that, is_ungraceful tells.
 */
static int stop_is_graceful(void)
{
    if (!mpm_retained) {
        return 0;
    }
    if (mpm_retained->shutdown_pending || mpm_retained->restart_pending) {
        return !mpm_retained->is_ungraceful;
    }
    return mpm_retained->was_graceful;
}

/* What a status from the MPM means, for log lines. */
static const char *describe_status(apr_pool_t *p, int status)
{
    if (status < 0) {
        return "its exit status is unknown";
    }
    if (status == 0) {
        return "exit status 0";
    }
    if (status == SETUP_FAILED) {
        return "exit status 78: its set-up failed, see the message above";
    }
    if (status < 65) {
        return apr_psprintf(p, "signal %d (%s), or exit status %d", status,
                            apr_signal_description_get(status), status);
    }
    return apr_psprintf(p, "exit status %d", status);
}

/* ------------------------------------------------------------------------
 * The listening sockets
 */

static apr_status_t socket_error(server_rec *s, tether_daemon_group_t *g,
                                 const char *path, const char *step)
{
    apr_status_t rv = errno;

    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, rv, s,
                 TETHER_LOGNO(0551) "Could not create the listening socket "
                 "'%s' of WSGIDaemonProcess group '%s' (%s): %s failed; "
                 "check that the directory exists and that WSGISocketPrefix "
                 "names a place the Apache parent can write", path, g->name,
                 g->directive, step);
    return rv;
}

/* WSGISocketPrefix, or "wsgi" in Apache's runtime directory; NULL when
 * that has no valid path. */
static const char *socket_prefix(apr_pool_t *p)
{
    tether_global_conf_t *conf = tether_config_global();

    return conf->socket_prefix ? conf->socket_prefix
                               : ap_runtime_dir_relative(p, "wsgi");
}

/* The pid of a socket file name "<base>.<pid>.<rest>.sock", else 0. */
static pid_t stale_socket_pid(const char *name, const char *base)
{
    size_t blen = strlen(base), len = strlen(name);
    const char *digits = name + blen + 1;
    char *end;
    long pid;

    if (len <= blen + 6 || strncmp(name, base, blen) || name[blen] != '.'
        || strcmp(name + len - 5, ".sock") || !apr_isdigit(*digits)) {
        return 0;
    }
    errno = 0;
    pid = strtol(digits, &end, 10);
    if (errno || *end != '.' || pid <= 0 || (pid_t)pid != pid) {
        return 0;
    }
    return (pid_t)pid;
}

/* True when nobody listens on the Unix socket at `path` (ECONNREFUSED). */
static int socket_refused(const char *path)
{
    int fd;
    apr_status_t rv = tether_conn_connect(path, &fd);

    if (rv == APR_SUCCESS) {
        close(fd);
    }
    return APR_STATUS_IS_ECONNREFUSED(rv);
}

/*
 * Socket files that an Apache killed outright (SIGKILL, a crash) left with
 * our prefix: removed at the first generation of a parent, when the pid in
 * their name runs no more (kill() says ESRCH: a live process, anyone's,
 * keeps its files), they are sockets and nobody listens on them (a process
 * of another pid namespace sharing the directory keeps its own).  Errors
 * only skip a file.
 */
static void sweep_stale_sockets(apr_pool_t *p, server_rec *s,
                                const char *prefix)
{
    char *dir = apr_pstrdup(p, prefix), *slash = strrchr(dir, '/');
    const char *base;
    apr_dir_t *d;
    apr_finfo_t fi;
    int removed = 0;

    if (!slash || !slash[1]) {
        return;
    }
    base = slash + 1;
    *slash = '\0';
    if (apr_dir_open(&d, *dir ? dir : "/", p) != APR_SUCCESS) {
        return;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
        pid_t pid = stale_socket_pid(fi.name, base);
        const char *path;
        struct stat st;

        if (pid == 0 || pid == getpid() || kill(pid, 0) == 0
            || errno != ESRCH) {
            continue;
        }
        path = apr_pstrcat(p, dir, "/", fi.name, NULL);
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)
            && socket_refused(path) && unlink(path) == 0) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, TETHER_LOGNO(0569)
                         "Removed the socket file '%s' of pid %"
                         APR_PID_T_FMT ", which no longer runs", path, pid);
            removed++;
        }
    }
    apr_dir_close(d);
    if (removed) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, TETHER_LOGNO(0569)
                     "Removed %d socket file(s) of daemon groups from '%s' "
                     "left by Apache processes that no longer run", removed,
                     *dir ? dir : "/");
    }
}

/* Creates and binds the group's socket; fills gr->listen_fd and
 * g->socket_path (from pconf: Apache's children read it). */
static apr_status_t make_socket(apr_pool_t *pconf, server_rec *s,
                                group_rt_t *gr, int index)
{
    tether_global_conf_t *conf = tether_config_global();
    tether_daemon_group_t *g = gr->g;
    struct sockaddr_un sa;
    const char *prefix, *path;
    mode_t old_mask;
    int fd, rc;

    prefix = socket_prefix(pconf);
    if (!prefix) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                     TETHER_LOGNO(0550) "No valid path for the sockets of "
                     "the daemon process groups; set WSGISocketPrefix");
        return APR_EINVAL;
    }
    if (conf->socket_rotation) {
        path = apr_psprintf(pconf, "%s.%" APR_PID_T_FMT ".%d.%d.sock",
                            prefix, retained->parent, retained->generation,
                            index);
    }
    else {
        /* WSGISocketRotation Off: the same path across restarts. */
        path = apr_psprintf(pconf, "%s.%" APR_PID_T_FMT ".u%ld.%d.sock",
                            prefix, retained->parent, (long)gr->uid, index);
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                     TETHER_LOGNO(0550) "The socket path '%s' of "
                     "WSGIDaemonProcess group '%s' is %" APR_SIZE_T_FMT
                     " characters long; a Unix socket path may have at most "
                     "%" APR_SIZE_T_FMT ": set a shorter WSGISocketPrefix",
                     path, g->name, strlen(path), sizeof(sa.sun_path) - 1);
        return APR_ENAMETOOLONG;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return socket_error(s, g, path, "socket()");
    }
    gr->listen_fd = fd;
    if (unlink(path) < 0 && errno != ENOENT) {
        return socket_error(s, g, path, "removing the stale file");
    }
    old_mask = umask(0077);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old_mask);
    if (rc < 0) {
        return socket_error(s, g, path, "bind()");
    }
    g->socket_path = path;
    gr->socket_made = 1;
    if (listen(fd, g->listen_backlog) < 0) {
        return socket_error(s, g, path, "listen()");
    }
    /* The socket belongs to the user Apache's children run as (or
     * socket-user=), who connect to it; nobody else may. */
    if (geteuid() == 0) {
        uid_t owner = g->socket_uid;
        gid_t group = g->socket_user ? (gid_t)-1
                                     : ap_unixd_config.group_id;

        if (chown(path, owner, group) < 0) {
            return socket_error(s, g, path, "chown()");
        }
    }
    if (chmod(path, 0600) < 0) {
        return socket_error(s, g, path, "chmod()");
    }
    return APR_SUCCESS;
}

/* Resolves who the group's daemons run as and makes its socket. */
static apr_status_t prepare_group(apr_pool_t *pconf, server_rec *s,
                                  group_rt_t *gr, tether_daemon_group_t *g,
                                  int index)
{
    struct passwd *pw;
    apr_status_t rv;
    int j;

    gr->g = g;
    gr->s = g->server ? g->server : s;
    gr->listen_fd = -1;
    gr->quick = g->startup_timeout > QUICK_DEATH ? g->startup_timeout
                                                  : QUICK_DEATH;
    gr->switch_user = geteuid() == 0;
    if (gr->switch_user) {
        gr->uid = g->uid;
        gr->gid = g->gid;
        if (gr->uid == 0 || gr->uid == (uid_t)-1) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                         TETHER_LOGNO(0558) "WSGIDaemonProcess group '%s' "
                         "(%s) would run as %s; daemon processes never run "
                         "as root: give user= or Apache's User",
                         g->name, g->directive,
                         gr->uid == 0 ? "root" : "an unknown user");
            return APR_EINVAL;
        }
    }
    else {
        /* Without root nobody can change identity: the daemons run as the
         * user Apache runs as, as with mod_wsgi. */
        gr->uid = geteuid();
        gr->gid = getegid();
        if ((g->user && g->uid != gr->uid)
            || (g->group && g->gid != gr->gid)) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, s,
                         TETHER_LOGNO(0561) "WSGIDaemonProcess group '%s' "
                         "(%s): user=/group= ignored, Apache was not started "
                         "as root; the daemon processes run as uid %ld",
                         g->name, g->directive, (long)gr->uid);
        }
    }
    pw = getpwuid(gr->uid);
    if (pw) {
        gr->user_name = apr_pstrdup(pconf, pw->pw_name);
        gr->user_home = apr_pstrdup(pconf, pw->pw_dir);
    }

    if ((rv = make_socket(pconf, s, gr, index)) != APR_SUCCESS) {
        return rv;
    }

    gr->slots = apr_pcalloc(pconf, g->processes * sizeof(slot_t));
    for (j = 0; j < g->processes; j++) {
        gr->slots[j].grp = gr;
        gr->slots[j].slot = j;
        apr_pool_create(&gr->slots[j].pool, pconf);
        apr_pool_tag(gr->slots[j].pool, "tether_daemon_slot");
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------
 * Spawning and supervision (in the parent)
 */

static void slot_maint(int reason, void *data, int status);

static apr_status_t spawn(slot_t *sl, int delay)
{
    group_rt_t *gr = sl->grp;
    apr_status_t rv;

    rv = apr_proc_fork(&sl->proc, sl->pool);
    if (rv == APR_INCHILD) {
        daemon_child(sl, delay);
    }
    if (rv != APR_INPARENT) {
        sl->proc.pid = 0;
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, ap_server_conf,
                     TETHER_LOGNO(0552) "Could not fork daemon process %d of "
                     "group '%s'; trying again shortly", sl->slot,
                     gr->g->name);
        return rv;
    }
    sl->started = apr_time_now() + apr_time_from_sec(delay);
    sl->signalled = 0;
    sl->killed = 0;
    apr_pool_clear(sl->pool);
    apr_proc_other_child_register(&sl->proc, slot_maint, sl, NULL, sl->pool);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                 TETHER_LOGNO(0553) "Started daemon process %d of group "
                 "'%s' (pid %" APR_PID_T_FMT ", socket %s)%s", sl->slot,
                 gr->g->name, sl->proc.pid, gr->g->socket_path,
                 delay ? apr_psprintf(sl->pool, "; it waits %d s before "
                                      "it starts", delay) : "");
    return APR_SUCCESS;
}

/* A daemon of the current generation is gone: replace it. */
static void daemon_died(slot_t *sl, pid_t pid, int status)
{
    group_rt_t *gr = sl->grp;
    apr_interval_time_t lived = apr_time_now() - sl->started;
    apr_pool_t *p = sl->pool;
    int delay = 0;

    if (generation_over || mpm_stopping()) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ap_server_conf,
                     TETHER_LOGNO(0556) "Daemon process %d of group '%s' "
                     "(pid %" APR_PID_T_FMT ") exited while Apache stops "
                     "(status %d)", sl->slot, gr->g->name, pid, status);
        return;
    }
    {
        shm_slot_t *ts = table_slot(gr->g->index, sl->slot);
        int on_purpose = ts && ts->exiting == pid;
        int was_ready = ts && ts->ready == pid;

        /* Not on purpose, the MPM's number can only be a signal. */
        record_death(pid, status, !on_purpose && status > 0 && status < 65);
        if (was_ready) {
            /* It served: a crash now is no start-up failure. */
            lived = gr->quick;
        }
    }
    if (status == 0 || lived >= gr->quick) {
        sl->backoff = 0;
    }
    else {
        sl->backoff = sl->backoff ? sl->backoff * 2 : BACKOFF_FIRST;
        if (sl->backoff > BACKOFF_MAX) {
            sl->backoff = BACKOFF_MAX;
        }
        delay = sl->backoff;
    }
    if (status == 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     TETHER_LOGNO(0554) "Daemon process %d of group '%s' "
                     "(pid %" APR_PID_T_FMT ") exited (status 0); starting "
                     "a new one", sl->slot, gr->g->name, pid);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                     TETHER_LOGNO(0555) "Daemon process %d of group '%s' "
                     "(pid %" APR_PID_T_FMT ") died %s: %s; %s", sl->slot,
                     gr->g->name, pid,
                     lived > 0 ? apr_psprintf(p, "%" APR_TIME_T_FMT " s "
                                              "after it started",
                                              apr_time_sec(lived))
                               : "while it waited to start",
                     describe_status(p, status),
                     delay ? apr_psprintf(p, "restarting it in %d s "
                                          "(back-off: it died within %"
                                          APR_TIME_T_FMT " s of starting)",
                                          delay, apr_time_sec(gr->quick))
                           : "restarting it");
    }
    spawn(sl, delay);
}

static void slot_maint(int reason, void *data, int status)
{
    slot_t *sl = data;
    pid_t pid = sl->proc.pid;

    switch (reason) {
    case APR_OC_REASON_DEATH:
    case APR_OC_REASON_LOST:
        apr_proc_other_child_unregister(sl);
        sl->proc.pid = 0;
        if (in_parent()) {
            daemon_died(sl, pid, reason == APR_OC_REASON_LOST ? -1 : status);
        }
        break;
    case APR_OC_REASON_RESTART:
        /* The MPM reclaims its children: Apache stops or restarts hard. */
        if (pid > 0 && !sl->signalled && in_parent()) {
            kill(pid, SIGTERM);
            sl->signalled = 1;
        }
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------------
 * Daemons of earlier generations (graceful restart)
 */

static int path_in_use(const char *path)
{
    drain_t *d;
    int i;

    for (d = retained->draining; d; d = d->next) {
        if (!d->dead && !strcmp(d->socket_path, path)) {
            return 1;
        }
    }
    for (i = 0; i < ngroups; i++) {
        if (groups[i].g->socket_path
            && !strcmp(groups[i].g->socket_path, path)) {
            return 1;
        }
    }
    return 0;
}

static void free_drain(drain_t *d)
{
    free(d->group);
    free(d->socket_path);
    free(d);
}

/* Forgets the exited ones, removing socket files nobody listens on. */
static void drain_sweep(void)
{
    drain_t **link = &retained->draining;

    while (*link) {
        drain_t *d = *link;

        if (!d->dead) {
            link = &d->next;
            continue;
        }
        *link = d->next;
        if (!path_in_use(d->socket_path) && unlink(d->socket_path) == 0) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ap_server_conf,
                         TETHER_LOGNO(0565) "Removed the socket '%s' of an "
                         "earlier generation of group '%s'", d->socket_path,
                         d->group);
        }
        free_drain(d);
    }
}

static void drain_maint(int reason, void *data, int status)
{
    drain_t *d = data;

    switch (reason) {
    case APR_OC_REASON_DEATH:
    case APR_OC_REASON_LOST:
        apr_proc_other_child_unregister(d);
        d->dead = 1;
        if (in_parent()) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                         TETHER_LOGNO(0564) "Daemon process of group '%s' "
                         "from before the restart (pid %" APR_PID_T_FMT ") "
                         "has finished", d->group, d->proc.pid);
            drain_sweep();
        }
        break;
    case APR_OC_REASON_RESTART:
        if (!d->term_sent && in_parent()) {
            kill(d->proc.pid, SIGTERM);
            d->term_sent = 1;
        }
        break;
    default:
        break;
    }
}

/* Tells the current daemons to finish and keeps them for the next
 * generation to reap. */
static void hand_over(void)
{
    apr_time_t now = apr_time_now();
    int i, j, told = 0;

    for (i = 0; i < ngroups; i++) {
        group_rt_t *gr = &groups[i];
        tether_daemon_group_t *g = gr->g;
        int kept = 0;

        for (j = 0; j < g->processes; j++) {
            slot_t *sl = &gr->slots[j];
            drain_t *d;

            if (sl->proc.pid <= 0) {
                continue;
            }
            kill(sl->proc.pid, SIGUSR1);
            told++;
            d = calloc(1, sizeof(*d));
            if (d) {
                d->group = strdup(g->name);
                d->socket_path = strdup(g->socket_path);
            }
            if (!d || !d->group || !d->socket_path) {
                /* Out of memory: it is still told to go; PDEATHSIG
                 * covers it should the parent go first. */
                if (d) {
                    free_drain(d);
                }
                continue;
            }
            d->proc = sl->proc;
            d->term_at = now + g->eviction_timeout + DRAIN_MARGIN;
            d->kill_at = d->term_at + g->shutdown_timeout;
            d->next = retained->draining;
            retained->draining = d;
            sl->proc.pid = 0;
            kept = 1;
        }
        if (!kept && gr->socket_made) {
            unlink(g->socket_path);
        }
    }
    if (told) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     TETHER_LOGNO(0562) "Graceful restart: %d daemon "
                     "process(es) of generation %d told to finish their "
                     "requests and exit (SIGUSR1)", told,
                     retained->generation);
    }
}

/* Registers the daemons of earlier generations with this pconf. */
static void adopt_draining(apr_pool_t *pconf)
{
    drain_t *d;

    for (d = retained->draining; d; d = d->next) {
        if (!d->dead) {
            apr_proc_other_child_register(&d->proc, drain_maint, d, NULL,
                                          pconf);
        }
    }
}

/* ------------------------------------------------------------------------
 * Stopping everything (stop, hard restart, failed start)
 */

typedef struct {
    pid_t pid;
    apr_time_t kill_at;
    const char *group;
} victim_t;

static void stop_all(int graceful)
{
    victim_t *victims;
    apr_time_t now = apr_time_now();
    drain_t *d, *next;
    int i, j, n = 0, left;

    for (i = 0; i < ngroups; i++) {
        n += groups[i].slots ? groups[i].g->processes : 0;
    }
    for (d = retained->draining; d; d = d->next) {
        n++;
    }
    victims = calloc(n ? n : 1, sizeof(*victims));
    n = 0;
    for (i = 0; i < ngroups; i++) {
        tether_daemon_group_t *g = groups[i].g;

        for (j = 0; groups[i].slots && j < g->processes; j++) {
            slot_t *sl = &groups[i].slots[j];

            if (sl->proc.pid <= 0) {
                continue;
            }
            kill(sl->proc.pid, graceful ? SIGUSR1 : SIGTERM);
            if (victims) {
                victims[n].pid = sl->proc.pid;
                victims[n].group = g->name;
                victims[n].kill_at = now + g->shutdown_timeout
                                     + (graceful ? g->eviction_timeout : 0);
                n++;
            }
            sl->proc.pid = 0;
        }
    }
    for (d = retained->draining; d; d = d->next) {
        if (d->dead) {
            continue;
        }
        /* Already told to finish: a stop makes it hurry. */
        if (!graceful) {
            kill(d->proc.pid, SIGTERM);
        }
        if (victims) {
            victims[n].pid = d->proc.pid;
            victims[n].group = d->group;
            victims[n].kill_at = d->kill_at < now ? now : d->kill_at;
            n++;
        }
    }

    do {
        left = 0;
        now = apr_time_now();
        for (i = 0; i < n; i++) {
            victim_t *v = &victims[i];
            int st;
            pid_t r;

            if (!v->pid) {
                continue;
            }
            r = waitpid(v->pid, &st, WNOHANG);
            if (r == 0 && now >= v->kill_at) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                             TETHER_LOGNO(0563) "Daemon process of group "
                             "'%s' (pid %" APR_PID_T_FMT ") did not exit "
                             "within shutdown-timeout; sending SIGKILL",
                             v->group, v->pid);
                kill(v->pid, SIGKILL);
                while ((r = waitpid(v->pid, &st, 0)) < 0 && errno == EINTR) {
                }
            }
            if (r != 0) {
                v->pid = 0;         /* reaped, or not ours any more */
            }
            else {
                left++;
            }
        }
        if (left) {
            apr_sleep(apr_time_from_msec(20));
        }
    } while (left);
    free(victims);

    for (i = 0; i < ngroups; i++) {
        if (groups[i].socket_made) {
            unlink(groups[i].g->socket_path);
            groups[i].socket_made = 0;
        }
    }
    for (d = retained->draining; d; d = next) {
        next = d->next;
        unlink(d->socket_path);
        free_drain(d);
    }
    retained->draining = NULL;
}

/* pconf cleanup: the end of a generation (see the top of the file). */
static apr_status_t generation_cleanup(void *unused)
{
    int exiting, graceful, i;

    if (!in_parent()) {
        return APR_SUCCESS;
    }
    generation_over = 1;
    exiting = ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_EXITING;
    graceful = stop_is_graceful();
    for (i = 0; i < ngroups; i++) {
        if (groups[i].listen_fd >= 0) {
            close(groups[i].listen_fd);
            groups[i].listen_fd = -1;
        }
    }
    if (graceful && !exiting) {
        hand_over();
    }
    else {
        stop_all(graceful);
    }
    groups = NULL;
    ngroups = 0;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------
 * Inside a new daemon process, before tether_dserver_main()
 */

static tether_daemon_group_t *setup_group;
static int setup_slot;

static void __attribute__((noreturn)) setup_failed(void)
{
    if (setup_group) {
        tether_daemon_mark_exiting(setup_group, setup_slot);
    }
    _exit(SETUP_FAILED);
}

/* Apache's handlers and mask are the parent's business. */
static void reset_signals(void)
{
    struct sigaction sa;
    sigset_t none;
    int sig;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_DFL;
    for (sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            sigaction(sig, &sa, NULL);  /* fails for glibc's own: fine */
        }
    }
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * Closes every descriptor inherited from the parent except stdio, the
 * error logs and the group's listening socket: Apache's listeners, the
 * other groups' sockets, the pipes of death, access logs, piped loggers.
 */
static void close_inherited_fds(int listen_fd)
{
    server_rec *vs;
    unsigned char *keep;
    int *open_fds = NULL;
    int nopen = 0, cap = 0, maxfd = 2, i, fd;
    DIR *dir;

    ap_close_listeners();
    closelog();

    dir = opendir("/proc/self/fd");
    if (dir) {
        struct dirent *de;
        int dfd = dirfd(dir);

        while ((de = readdir(dir)) != NULL) {
            if (!apr_isdigit(de->d_name[0])) {
                continue;
            }
            fd = atoi(de->d_name);
            if (fd == dfd) {
                continue;
            }
            if (nopen == cap) {
                int *grown = realloc(open_fds, (cap ? cap * 2 : 64)
                                               * sizeof(int));

                if (!grown) {
                    break;
                }
                open_fds = grown;
                cap = cap ? cap * 2 : 64;
            }
            open_fds[nopen++] = fd;
            if (fd > maxfd) {
                maxfd = fd;
            }
        }
        closedir(dir);
    }
    else {
        long max = sysconf(_SC_OPEN_MAX);

        maxfd = max > 0 && max < 65536 ? (int)max - 1 : 65535;
    }

    keep = calloc(maxfd + 1, 1);
    if (!keep) {
        free(open_fds);
        return;
    }
    keep[0] = keep[1] = keep[2] = 1;
    if (listen_fd <= maxfd) {
        keep[listen_fd] = 1;
    }
    for (vs = ap_server_conf; vs; vs = vs->next) {
        apr_os_file_t os_fd;

        if (vs->error_log && apr_os_file_get(&os_fd, vs->error_log)
                             == APR_SUCCESS && os_fd >= 0 && os_fd <= maxfd) {
            keep[os_fd] = 1;
        }
    }
    if (open_fds) {
        for (i = 0; i < nopen; i++) {
            if (!keep[open_fds[i]]) {
                close(open_fds[i]);
            }
        }
    }
    else {
        for (fd = 3; fd <= maxfd; fd++) {
            if (!keep[fd]) {
                close(fd);
            }
        }
    }
    free(keep);
    free(open_fds);

    fd = open("/dev/null", O_RDONLY);
    if (fd > 0) {
        dup2(fd, 0);
        close(fd);
    }
}

/* The start and end of the argv strings and of the environment strings
 * (Linux: /proc/self/stat fields 48 to 51). */
static int arg_area(uintptr_t area[4])
{
    char buf[4096], *c, *end;
    ssize_t n;
    int fd, field;

    fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    c = strrchr(buf, ')');
    if (!c) {
        return 0;
    }
    c++;
    /* After the ')' of field 2 comes field 3. */
    for (field = 3; field < 48; field++) {
        while (*c == ' ') {
            c++;
        }
        while (*c && *c != ' ') {
            c++;
        }
        if (!*c) {
            return 0;
        }
    }
    for (field = 0; field < 4; field++) {
        area[field] = (uintptr_t)strtoull(c, &end, 10);
        if (end == c) {
            return 0;
        }
        c = end;
    }
    return area[0] && area[1] > area[0];
}

/* Copies what points into the argv strings before they are overwritten. */
static void keep_argv(process_rec *process)
{
    const char **argv = malloc((process->argc + 1) * sizeof(char *));
    char *name;
    int i;

    if (argv) {
        for (i = 0; i < process->argc; i++) {
            argv[i] = strdup(process->argv[i] ? process->argv[i] : "");
        }
        argv[process->argc] = NULL;
        process->argv = argv;
    }
    if (process->short_name && (name = strdup(process->short_name))) {
        process->short_name = name;
        ap_server_argv0 = name;
    }
#ifdef __GLIBC__
    if ((name = strdup(program_invocation_name)) != NULL) {
        char *slash = strrchr(name, '/');

        program_invocation_name = name;
        program_invocation_short_name = slash ? slash + 1 : name;
    }
#endif
}

/* display-name: what `ps` shows (the argv strings) and the comm name. */
static void set_title(process_rec *process, const char *title)
{
    extern char **environ;
    uintptr_t area[4];
    char *start, *end;
    size_t len = strlen(title), room;

#ifdef PR_SET_NAME
    prctl(PR_SET_NAME, (unsigned long)title, 0, 0, 0);
#endif
    if (arg_area(area) && (uintptr_t)process->argv[0] == area[0]) {
        start = (char *)area[0];
        end = (char *)area[1];
        /* A title longer than the arguments may go on over the
         * environment strings that follow them, once those are moved. */
        if (len + 1 > (size_t)(end - start) && area[2] == area[1]
            && area[3] > area[2]) {
            int i, moved = 1;

            for (i = 0; environ[i]; i++) {
                uintptr_t at = (uintptr_t)environ[i];

                if (at >= area[2] && at < area[3]) {
                    char *copy = strdup(environ[i]);

                    if (!copy) {
                        moved = 0;
                        break;
                    }
                    environ[i] = copy;
                }
            }
            if (moved) {
                end = (char *)area[3];
            }
        }
    }
    else {
        start = (char *)process->argv[0];
        end = start + strlen(start) + 1;
    }
    keep_argv(process);
    room = (size_t)(end - start) - 1;
    if (len > room) {
        len = room;
    }
    memcpy(start, title, len);
    memset(start + len, 0, (size_t)(end - start) - len);
}

static void set_limit(server_rec *s, tether_daemon_group_t *g, int resource,
                      const char *option, apr_size_t value)
{
    struct rlimit rl;

    rl.rlim_cur = rl.rlim_max = (rlim_t)value;
    if (setrlimit(resource, &rl) < 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s,
                     TETHER_LOGNO(0560) "Daemon process of group '%s' (pid %"
                     APR_PID_T_FMT "): could not apply %s=%" APR_SIZE_T_FMT
                     "; it runs without it", g->name, getpid(), option,
                     value);
    }
}

/* umask and cpu-priority: before the identity switch (a negative priority
 * needs root).  Logged and skipped when they cannot be applied. */
static void apply_priority(server_rec *s, tether_daemon_group_t *g)
{
    if (g->umask >= 0) {
        umask((mode_t)g->umask);
    }
    if (g->cpu_priority && setpriority(PRIO_PROCESS, 0, g->cpu_priority) < 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s,
                     TETHER_LOGNO(0560) "Daemon process of group '%s' (pid %"
                     APR_PID_T_FMT "): could not apply cpu-priority=%d; it "
                     "runs without it", g->name, getpid(), g->cpu_priority);
    }
}

/* memory-limit and virtual-memory-limit: after the identity switch, whose
 * name service lookups need memory of their own. */
/*
 * virtual-memory-limit is a hard cap.  memory-limit is not an rlimit: the
 * daemon watches its resident size and recycles gracefully past it, so
 * the request that grew it still completes.
 */
static void apply_limits(server_rec *s, tether_daemon_group_t *g)
{
    if (g->virtual_memory_limit) {
        set_limit(s, g, RLIMIT_AS, "virtual-memory-limit",
                  g->virtual_memory_limit);
    }
}

static void __attribute__((noreturn)) identity_failed(server_rec *s,
                                                      group_rt_t *gr,
                                                      const char *step)
{
    ap_log_error(APLOG_MARK, APLOG_CRIT, errno, s,
                 TETHER_LOGNO(0557) "Daemon process of group '%s' (pid %"
                 APR_PID_T_FMT ") could not switch to uid %ld, gid %ld: %s "
                 "failed; it exits", gr->g->name, getpid(), (long)gr->uid,
                 (long)gr->gid, step);
    setup_failed();
}

/* Becomes the group's user (Apache started as root); exits on failure. */
static void switch_identity(server_rec *s, group_rt_t *gr)
{
    tether_daemon_group_t *g = gr->g;

    if (gr->uid == 0) {
        errno = 0;
        identity_failed(s, gr, "the check that it is not root");
    }
    if (setgid(gr->gid) < 0) {
        identity_failed(s, gr, "setgid()");
    }
    if (g->supplementary_gids && g->supplementary_gids->nelts) {
        int n = g->supplementary_gids->nelts;
        gid_t *list = malloc((n + 1) * sizeof(gid_t));

        if (!list) {
            identity_failed(s, gr, "malloc()");
        }
        list[0] = gr->gid;
        memcpy(list + 1, g->supplementary_gids->elts, n * sizeof(gid_t));
        if (setgroups(n + 1, list) < 0) {
            identity_failed(s, gr, "setgroups() (supplementary-groups=)");
        }
        free(list);
    }
    else if (gr->user_name) {
        if (initgroups(gr->user_name, gr->gid) < 0) {
            identity_failed(s, gr, "initgroups()");
        }
    }
    else if (setgroups(1, &gr->gid) < 0) {
        identity_failed(s, gr, "setgroups()");
    }
    if (setuid(gr->uid) < 0) {
        identity_failed(s, gr, "setuid()");
    }
    /* setuid() as root sets the real, effective and saved ids at once;
     * check that it did, and the group ids too. */
    if (getuid() != gr->uid || geteuid() != gr->uid
        || getgid() != gr->gid || getegid() != gr->gid) {
        errno = 0;
        identity_failed(s, gr, "the check of the ids after the switch");
    }
}

/* home=, else the home directory of user=; LANG, LC_ALL, HOME. */
static void set_environment(server_rec *s, group_rt_t *gr)
{
    tether_daemon_group_t *g = gr->g;

    if (g->home) {
        if (chdir(g->home) < 0) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, errno, s,
                         TETHER_LOGNO(0559) "Daemon process of group '%s' "
                         "(pid %" APR_PID_T_FMT ") could not change to its "
                         "home directory '%s' (home=); it exits", g->name,
                         getpid(), g->home);
            setup_failed();
        }
    }
    else if (g->user && gr->user_home && chdir(gr->user_home) < 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s,
                     TETHER_LOGNO(0559) "Daemon process of group '%s' (pid %"
                     APR_PID_T_FMT ") could not change to the home "
                     "directory '%s' of user '%s'; it stays in '/'",
                     g->name, getpid(), gr->user_home, g->user);
        if (chdir("/") < 0) {
            setup_failed();
        }
    }
    if (gr->switch_user && gr->user_name) {
        setenv("USER", gr->user_name, 1);
        setenv("LOGNAME", gr->user_name, 1);
        if (gr->user_home) {
            setenv("HOME", gr->user_home, 1);
        }
    }
    if (g->lang) {
        setenv("LANG", g->lang, 1);
    }
    if (g->locale) {
        setenv("LC_ALL", g->locale, 1);
        if (!setlocale(LC_ALL, g->locale)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         TETHER_LOGNO(0560) "Daemon process of group '%s' "
                         "(pid %" APR_PID_T_FMT "): locale '%s' (locale=) is "
                         "not available on this system", g->name, getpid(),
                         g->locale);
        }
    }
    if (g->python_eggs) {
        setenv("PYTHON_EGG_CACHE", g->python_eggs, 1);
    }
}

/* Dies with the parent (Linux): set again after an identity switch, which
 * clears it. */
static void watch_parent(pid_t parent)
{
#ifdef PR_SET_PDEATHSIG
    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
#endif
    if (getppid() != parent) {
        _exit(0);
    }
}

static void daemon_child(slot_t *sl, int delay)
{
    group_rt_t *gr = sl->grp;
    tether_daemon_group_t *g = gr->g;
    server_rec *s = gr->s;
    pid_t parent = retained->parent;

    setup_group = g;
    setup_slot = sl->slot;
    reset_signals();
    /* Only the parent signals daemons, with the meanings of the design:
     * not Apache's killpg() of its own children. */
    setpgid(0, 0);
    watch_parent(parent);
    close_inherited_fds(gr->listen_fd);
    if (g->display_name) {
        set_title(s->process, g->display_name);
    }
    /* The back-off comes first, so that a set-up that fails below fails
     * at its pace too.  SIGTERM and SIGUSR1 end the wait. */
    if (delay > 0) {
        struct timespec ts;

        ts.tv_sec = delay;
        ts.tv_nsec = 0;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
        watch_parent(parent);
    }
    apply_priority(s, g);
    if (gr->switch_user) {
        switch_identity(s, gr);
    }
    apply_limits(s, g);
    if (getuid() == 0 || geteuid() == 0) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     TETHER_LOGNO(0558) "Daemon process of group '%s' (pid %"
                     APR_PID_T_FMT ") would run as root; it exits", g->name,
                     getpid());
        setup_failed();
    }
    /* Whatever the path here, root must be out of reach for good:
     * setuid(0) succeeds for a process whose saved uid is still 0, or
     * that kept CAP_SETUID (file or ambient capabilities). */
    if (setuid(0) == 0 || seteuid(0) == 0) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     TETHER_LOGNO(0567) "Daemon process of group '%s' (pid %"
                     APR_PID_T_FMT ") could become root again (setuid(0) "
                     "succeeded after the switch to uid %ld); it exits",
                     g->name, getpid(), (long)gr->uid);
        setup_failed();
    }
    watch_parent(parent);
    set_environment(s, gr);
    tether_dserver_main(s, g, gr->listen_fd, sl->slot);
}

/* ------------------------------------------------------------------------
 * Hooks
 */

static int daemon_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                             apr_pool_t *ptemp)
{
    retained = ap_retained_data_get(RETAINED_KEY);
    if (!retained) {
        retained = ap_retained_data_create(RETAINED_KEY, sizeof(*retained));
    }
    mpm_retained = ap_unixd_mpm_get_retained_data();
    groups = NULL;
    ngroups = 0;
    generation_over = 0;
    apr_pool_cleanup_register(pconf, NULL, generation_cleanup,
                              apr_pool_cleanup_null);
    return OK;
}

static int daemon_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *s)
{
    tether_global_conf_t *conf = tether_config_global();
    apr_array_header_t *daemons = conf ? conf->daemons : NULL;
    group_rt_t *made;
    const char *prefix;
    apr_status_t rv;
    int i, j, n;

    /* The first pass runs before Apache detaches: nothing forked then
     * would be the real parent's child. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG
        || ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_NORMAL) {
        return OK;
    }
    retained->parent = getpid();
    adopt_draining(pconf);
    if (!daemons || !daemons->nelts) {
        return OK;
    }
    retained->generation++;
    if (retained->generation == 1 && (prefix = socket_prefix(ptemp))) {
        sweep_stale_sockets(ptemp, s, prefix);
    }

    /* Every socket first: a configuration that cannot work starts no
     * daemon at all. */
    n = daemons->nelts;
    made = apr_pcalloc(pconf, n * sizeof(*made));
    groups = made;
    for (i = 0; i < n; i++) {
        made[i].listen_fd = -1;
    }
    for (i = 0; i < n; i++) {
        ngroups = i + 1;
        if (prepare_group(pconf, s, &made[i],
                          APR_ARRAY_IDX(daemons, i, tether_daemon_group_t *),
                          i) != APR_SUCCESS) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if ((rv = make_table(pconf, daemons)) != APR_SUCCESS) {
        /* Not fatal: only log lines and back-off lose precision. */
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     TETHER_LOGNO(0566) "No shared memory for the daemon "
                     "table; daemon deaths will be reported less exactly");
    }
    for (i = 0; i < n; i++) {
        for (j = 0; j < made[i].g->processes; j++) {
            if (spawn(&made[i].slots[j], 0) != APR_SUCCESS) {
                return HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }
    return OK;
}

/* Apache's children only connect to the sockets: they need the paths, not
 * the listening descriptors. */
static void daemon_child_init(apr_pool_t *p, server_rec *s)
{
    int i;

    if (in_parent()) {
        return;                     /* -X: the "child" is the parent */
    }
    for (i = 0; i < ngroups; i++) {
        if (groups[i].listen_fd >= 0) {
            close(groups[i].listen_fd);
            groups[i].listen_fd = -1;
        }
    }
}

/* A daemon that exits on purpose but is still there well after its
 * shutdown-timeout (its own watchdog failed): the slot is needed. */
static void kill_overstayed(group_rt_t *gr, slot_t *sl, apr_time_t now)
{
    shm_slot_t *ts = table_slot(gr->g->index, sl->slot);

    if (!ts || sl->killed || ts->exiting != sl->proc.pid) {
        return;
    }
    __sync_synchronize();
    if (now < ts->exit_by) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                 TETHER_LOGNO(0568) "Daemon process %d of group '%s' (pid %"
                 APR_PID_T_FMT ", socket %s) is still exiting after "
                 "shutdown-timeout=%" APR_TIME_T_FMT "s; sending SIGKILL",
                 sl->slot, gr->g->name, sl->proc.pid, gr->g->socket_path,
                 apr_time_sec(gr->g->shutdown_timeout));
    kill(sl->proc.pid, SIGKILL);
    sl->killed = 1;
}

/* About every ten seconds in the parent: retry failed forks, kill daemons
 * that overstay their exit, and make daemons of earlier generations that
 * overstay go. */
static int daemon_monitor(apr_pool_t *p, server_rec *s)
{
    apr_time_t now;
    drain_t *d;
    int i, j;

    if (!in_parent()) {
        return DECLINED;
    }
    now = apr_time_now();
    if (!generation_over && !mpm_stopping()) {
        for (i = 0; i < ngroups; i++) {
            for (j = 0; j < groups[i].g->processes; j++) {
                slot_t *sl = &groups[i].slots[j];

                if (sl->proc.pid <= 0) {
                    spawn(sl, sl->backoff);
                }
                else {
                    kill_overstayed(&groups[i], sl, now);
                }
            }
        }
    }
    for (d = retained->draining; d; d = d->next) {
        if (d->dead) {
            continue;
        }
        if (now >= d->kill_at) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         TETHER_LOGNO(0563) "Daemon process of group '%s' "
                         "from before the restart (pid %" APR_PID_T_FMT ") "
                         "did not finish within eviction-timeout and "
                         "shutdown-timeout; sending SIGKILL", d->group,
                         d->proc.pid);
            kill(d->proc.pid, SIGKILL);
            d->kill_at = APR_INT64_MAX;
        }
        else if (!d->term_sent && now >= d->term_at) {
            kill(d->proc.pid, SIGTERM);
            d->term_sent = 1;
        }
    }
    return DECLINED;
}

void tether_daemon_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(daemon_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* After the configuration checks have completed the groups. */
    ap_hook_post_config(daemon_post_config, NULL, NULL, APR_HOOK_LAST);
    ap_hook_child_init(daemon_child_init, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_monitor(daemon_monitor, NULL, NULL, APR_HOOK_MIDDLE);
}
