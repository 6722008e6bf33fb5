"""Turn tether-express options into a server root: httpd.conf, apachectl,
and the few files around them.

build() is pure (no files written, no Apache run): it takes the parsed
options, the Apache installation and the account Apache's children run as,
and returns a ServerSetup holding every file's text.  write() puts it on
disk.  Both are what the unit tests exercise.
"""

import ipaddress
import keyword
import math
import os
import re
import shlex
import sys
import sysconfig

from . import __version__
from .access import Need, python_needs
from .apache import MODULES as APACHE_MODULES, mpm_module
from .render import (Blocks, apache_escape, option_escape, render_template,
                     tidy)

# Operating modes, each with an app_<mode> block in blocks.conf.in.  As with
# mod_wsgi-express, the application runs in daemon processes unless
# --embedded-mode puts it into Apache's own children.
MODES = ("daemon", "embedded")
DEFAULT_MODE = "daemon"

# The numeric daemon process options (argparse dest, as in --request-timeout)
# with mod_wsgi-express's defaults.  Each fills the placeholder of its name
# in upper case in blocks.conf.in's daemon_group block.
DAEMON_DEFAULTS = {
    "request_timeout": 60,
    "startup_timeout": 15,
    "queue_timeout": 45,
    "socket_timeout": 60,
    "connect_timeout": 15,
    "response_socket_timeout": 0,
    "deadlock_timeout": 60,
    "inactivity_timeout": 0,
    "maximum_requests": 0,
    "restart_interval": 0,
    "cpu_time_limit": 0,
    "memory_limit": 0,
    "graceful_timeout": 15,
    "eviction_timeout": 0,
    "shutdown_timeout": 5,
    "daemon_backlog": 100,
    "send_buffer_size": 0,
    "receive_buffer_size": 0,
    "header_buffer_size": 0,
    "response_buffer_size": 0,
}
# What mod_tether accepts besides 0 where that is narrower than 1 to
# INT_MAX: (smallest, largest, what 0 means).
INT_MAX = 2147483647
MEMORY_LIMIT_MIN = 1048576
MEMORY_LIMIT_MAX = 1 << 48
DAEMON_RANGES = {
    "daemon_backlog": (1, 65535, None),
    "send_buffer_size": (512, INT_MAX, "the system's default"),
    "receive_buffer_size": (512, INT_MAX, "the system's default"),
    "header_buffer_size": (8192, 16 * 1024 * 1024, "the default, 32768"),
    "response_buffer_size": (65536, INT_MAX, "the default, 65536"),
    # Bytes of resident memory; below 1 MiB mod_tether takes it for a unit
    # mistake (KiB or MiB meant) and refuses it.  The ceiling is mod_tether's
    # (256 TiB on a 64-bit system).
    "memory_limit": (MEMORY_LIMIT_MIN, MEMORY_LIMIT_MAX, "no limit"),
}
MAX_DAEMON_PROCESSES = 10000     # mod_tether's limits for processes=
MAX_DAEMON_THREADS = 10000       # and threads=
# mod_tether names each daemon socket <WSGISocketPrefix>.<pid>.<generation>.
# <group>.sock, adding at most 39 characters; a Unix socket path holds 107.
MAX_SOCKET_PREFIX = 107 - 39

LOG_LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info",
              "debug") + tuple("trace%d" % i for i in range(1, 9))
MAX_LIMIT_REQUEST_BODY = 2147483647     # Apache's own ceiling (2 GiB)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$", re.ASCII)

DEFAULT_APP = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "default_app.py")


class SetupError(Exception):
    """An option value that cannot work; the message says which."""


def default_server_root(host, port, uid=None, tmpdir=None):
    """/tmp/tether-localhost:8000:<uid>, like mod_wsgi-express's
    /tmp/mod_wsgi-localhost:8000:<uid> ($TMPDIR replaces /tmp)."""
    if uid is None:
        uid = os.geteuid()
    if tmpdir is None:
        tmpdir = os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(tmpdir, "tether-%s:%s:%s" % (host or "localhost",
                                                     port, uid))


def python_home():
    """The sys.prefix of this interpreter: WSGIPythonHome in httpd.conf."""
    return sys.prefix


def needs_python_home():
    """Whether a system Apache must be told WSGIPythonHome: when this
    Python is a virtual environment or lives elsewhere than where its
    build expects (so embedding would not find it by itself)."""
    built_for = sysconfig.get_config_var("prefix") or sys.base_prefix
    return (sys.prefix != sys.base_prefix or
            os.path.realpath(sys.prefix) != os.path.realpath(built_for))


def module_config_lines(module_path, with_python_home=None):
    """The lines module-config and install-module print."""
    blocks = Blocks("module-config.conf.in")
    text = blocks.render("load_module",
                         TETHER_MODULE=apache_escape(module_path)) + "\n"
    if with_python_home is None:
        with_python_home = needs_python_home()
    if with_python_home:
        text += blocks.render("python_home",
                              PYTHON_HOME=apache_escape(python_home())) + "\n"
    return text


def _url(host, port, path="/"):
    if not host or host in ("0.0.0.0", "::", "*"):
        host = "localhost"
    elif ":" in host:
        host = "[%s]" % host
    return "http://%s:%d%s" % (host, port, path)


def _listen(host, port):
    if not host or host == "*":
        return str(port)
    if ":" in host:
        return "[%s]:%d" % (host, port)
    return "%s:%d" % (host, port)


def _comment(command):
    """A command line made safe for a one-line comment."""
    return command.replace("\r", "\\r").replace("\n", "\\n")


def mpm_sizing(mpm, processes, threads, max_clients=None):
    """The MPM directives' values in embedded mode, where Apache's children
    run the application: {START, SERVER_LIMIT, THREADS (per child),
    MAX_CLIENTS, MIN_SPARE, MAX_SPARE} and MPM.

    Threaded MPMs (event, worker) run `processes` children of `threads`
    threads; --max-clients (default processes x threads) is MaxRequestWorkers,
    rounded up to whole processes, and Apache may start up to that many
    processes.  prefork serves one request per process, so it runs
    processes x threads children, growing to --max-clients.
    """
    if mpm == "prefork":
        children = processes * threads
        most = max_clients or children
        start = min(children, most)
        return {"MPM": mpm, "START": start, "SERVER_LIMIT": most,
                "THREADS": 1, "MAX_CLIENTS": most, "MIN_SPARE": start,
                "MAX_SPARE": max(most, start + 1)}
    most = max_clients or processes * threads
    server_limit = max(1, math.ceil(most / threads))
    most = server_limit * threads
    start = min(processes, server_limit)
    return {"MPM": mpm, "START": start, "SERVER_LIMIT": server_limit,
            "THREADS": threads, "MAX_CLIENTS": most, "MIN_SPARE": threads,
            "MAX_SPARE": max(most, 2 * threads)}


def daemon_clients(processes, threads):
    """Apache's MaxRequestWorkers in daemon mode without --max-clients:
    1.5 x the daemons' capacity + 10, at least 20 (mod_wsgi-express's)."""
    return max(20, 3 * processes * threads // 2 + 10)


def daemon_mpm_sizing(mpm, processes, threads, max_clients=None):
    """The MPM directives' values in daemon mode (keys as mpm_sizing's).

    Apache's children only pass requests on to the daemon processes (and
    serve static files), so they are sized for more requests at once than
    the daemons run: those waiting for a daemon thread, and idle keep-alive
    connections.  MaxRequestWorkers is --max-clients, by default
    daemon_clients(); threaded MPMs split it into children of 10 to 25
    threads (about four children), start one child per ten and add more
    as needed; prefork starts one process in twenty.
    """
    most = max_clients or daemon_clients(processes, threads)
    if mpm == "prefork":
        start = max(1, most // 20)
        return {"MPM": mpm, "START": start, "SERVER_LIMIT": most,
                "THREADS": 1, "MAX_CLIENTS": most, "MIN_SPARE": start,
                "MAX_SPARE": max(start + 1, most // 10)}
    per_child = min(most, max(10, min(25, math.ceil(most / 4))))
    server_limit = math.ceil(most / per_child)
    start = max(1, server_limit // 10)
    return {"MPM": mpm, "START": start, "SERVER_LIMIT": server_limit,
            "THREADS": per_child, "MAX_CLIENTS": server_limit * per_child,
            "MIN_SPARE": per_child * start,
            "MAX_SPARE": per_child * max(start + 1,
                                         math.ceil(server_limit / 2))}


def _plural(n, word):
    return "%d %s" % (n, word if n == 1 else word + (
        "es" if word.endswith("s") else "s"))


def capacity_text(sizing):
    """Embedded mode: e.g. '5 (1 process x 5 threads, event MPM)'."""
    if sizing["MPM"] == "prefork":
        return "%d (%s x 1 thread, prefork MPM; at most %d)" % (
            sizing["START"], _plural(sizing["START"], "process"),
            sizing["MAX_CLIENTS"])
    start = sizing["START"] * sizing["THREADS"]
    text = "%d (%s x %s, %s MPM" % (
        start, _plural(sizing["START"], "process"),
        _plural(sizing["THREADS"], "thread"), sizing["MPM"])
    if sizing["MAX_CLIENTS"] != start:
        text += "; at most %d" % sizing["MAX_CLIENTS"]
    return text + ")"


def daemon_capacity_text(processes, threads):
    """Daemon mode: e.g. '5 (1 process x 5 threads)'."""
    return "%d (%s x %s)" % (processes * threads,
                             _plural(processes, "process"),
                             _plural(threads, "thread"))


def server_capacity_text(sizing):
    """Apache's side in daemon mode: e.g. '20 (event MPM: up to 2
    processes x 10 threads)'."""
    if sizing["MPM"] == "prefork":
        return "%d (prefork MPM: up to %s)" % (
            sizing["MAX_CLIENTS"], _plural(sizing["SERVER_LIMIT"], "process"))
    return "%d (%s MPM: up to %s x %s)" % (
        sizing["MAX_CLIENTS"], sizing["MPM"],
        _plural(sizing["SERVER_LIMIT"], "process"),
        _plural(sizing["THREADS"], "thread"))


def default_process_group(host, port):
    """mod_wsgi-express's group name: the listening host and port."""
    return "%s:%d" % (host or "localhost", port)


def display_name(group, explicit_group, uid=None):
    """The daemons' process title: (wsgi:GROUP), and for the default group
    also the user, as in (wsgi:localhost:8000:1000), so that the servers
    of two users on one port are told apart (mod_wsgi-express's)."""
    if explicit_group:
        return "(wsgi:%s)" % group
    if uid is None:
        uid = os.geteuid()
    return "(wsgi:%s:%d)" % (group, uid)


class ServerSetup:
    """Everything setup-server writes, and what the summary reports."""

    def __init__(self):
        self.server_root = None
        self.files = {}         # absolute path -> (text, mode)
        self.dirs = []          # directories to create
        self.owned_dirs = {}    # directory -> (uid, gid) it is given to
                                # when made by root (--python-eggs)
        self.needs = []         # access.Need: what Apache's children read
        self.soft_needs = []    # the same, but only worth a warning
        self.summary = []       # (label, value)
        self.httpd = None
        self.conf = None
        self.working_directory = None
        self.error_log = None
        self.warnings = []
        self.mode = None
        self.process_group = None   # daemon mode: the group's name
        self.display_name = None    # ... and its processes' title
        self.process_name = None    # --process-name: Apache's parent's
        self.socket_dir = None      # daemon mode: where the sockets go
        self.daemon_home = None     # ... and where the daemons start
        self.httpd_args = []        # more httpd arguments (--startup-log)
        self.environment = {}       # Apache's environment (--locale)
        self.envvars_script = None  # sourced before Apache starts


def _positive(name, value, minimum=1):
    if value < minimum:
        raise SetupError("%s must be at least %d, not %d"
                         % (name, minimum, value))
    return value


def _directory(option, path, must_exist=True):
    path = os.path.abspath(path)
    if must_exist and not os.path.isdir(path):
        raise SetupError("%s %s is not a directory" % (option, path))
    return path


def resolve_application(args, server_root):
    """(script path, app type, callable, shim text or None) for the entry
    point: a script file, a module (imported through a generated shim in
    the server root), or tether's default page when none is given."""
    entry = args.entry_point or args.script
    callable_object = args.callable_object
    if not callable_object.isidentifier() or keyword.iskeyword(
            callable_object):
        raise SetupError("--callable-object %r is not a Python name"
                         % callable_object)
    if entry is None:
        return DEFAULT_APP, "default", "application", None
    if args.application_type == "module":
        if not _MODULE_NAME.match(entry) or any(
                keyword.iskeyword(p) for p in entry.split(".")):
            raise SetupError("%r is not a Python module name "
                             "(--application-type module)" % entry)
        shim = render_template("module-app.wsgi.in", MODULE=entry,
                               CALLABLE_OBJECT=callable_object)
        return (os.path.join(server_root, "module-app.wsgi"), "module",
                callable_object, shim)
    script = os.path.abspath(entry)
    if not os.path.isfile(script):
        raise SetupError("the WSGI script %s does not exist" % script)
    return script, "script", callable_object, None


def _option(dest):
    return "--" + dest.replace("_", "-")


def daemon_settings(args):
    """The numeric daemon process options of `args`, checked against what
    mod_tether accepts: {dest: value}."""
    values = {}
    for dest in DAEMON_DEFAULTS:
        value = getattr(args, dest)
        low, high, zero = DAEMON_RANGES.get(dest, (1, INT_MAX, None))
        if value < 0 or value > high:
            raise SetupError("%s must be from 0 to %d, not %d"
                             % (_option(dest), high, value))
        if 0 < value < low:
            raise SetupError("%s must be 0 (%s) or from %d to %d, not %d"
                             % (_option(dest), zero, low, high, value))
        values[dest] = value
    return values


def daemon_only_options(args):
    """The daemon process options `args` sets, which --embedded-mode
    ignores."""
    given = [_option(dest) for dest, default in DAEMON_DEFAULTS.items()
             if getattr(args, dest) != default]
    return given + [option for option, value in (
        ("--process-group", args.process_group),
        ("--socket-prefix", args.socket_prefix)) if value]


def _daemon_group(args, setup, blocks, port, daemon, python_path,
                  working_directory_unreadable, restrict_embedded=True,
                  extra_options=""):
    """The daemon_group block (WSGIDaemonProcess and friends); records the
    group, its title, socket directory and home in `setup`."""
    group = args.process_group or default_process_group(args.host, port)
    if group.startswith("%"):
        raise SetupError("--process-group %s cannot start with %%: names "
                         "such as %%{GLOBAL} mean something else" % group)
    if not group.strip():
        raise SetupError("--process-group must not be empty")
    setup.process_group = group
    setup.display_name = display_name(group, bool(args.process_group))
    if args.socket_prefix:
        socket_dir = os.path.abspath(args.socket_prefix)
        if os.path.lexists(socket_dir) and not os.path.isdir(socket_dir):
            raise SetupError("--socket-prefix %s is not a directory"
                             % socket_dir)
    else:
        socket_dir = setup.server_root
    setup.socket_dir = socket_dir
    if socket_dir not in setup.dirs:
        setup.dirs.append(socket_dir)
    socket_prefix = os.path.join(socket_dir, "wsgi")
    if len(socket_prefix) > MAX_SOCKET_PREFIX:
        raise SetupError(
            "the daemon sockets' path %s.* is too long for a Unix socket (at "
            "most %d characters before the '.'); pass --socket-prefix with a "
            "shorter directory" % (socket_prefix, MAX_SOCKET_PREFIX))
    # The daemons start in the working directory (mod_wsgi-express's
    # home=), or in the server root when their account cannot enter it.
    setup.daemon_home = setup.server_root if working_directory_unreadable \
        else setup.working_directory
    processes = args.processes
    return blocks.render(
        "daemon_group",
        RESTRICT_EMBEDDED="On" if restrict_embedded else "Off",
        DAEMON_OPTIONS=extra_options,
        GROUP=apache_escape(group),
        DISPLAY_NAME=option_escape(setup.display_name),
        SOCKET_PREFIX=apache_escape(socket_prefix),
        HOME=option_escape(setup.daemon_home),
        THREADS=args.threads,
        # mod_wsgi sets wsgi.multiprocess when processes= is given.
        PROCESSES_OPTION=blocks.render("daemon_processes",
                                       PROCESSES=processes)
        if processes > 1 else "",
        # Like mod_wsgi-express, no memory-limit= unless one is asked for.
        MEMORY_LIMIT_OPTION=blocks.render("daemon_memory_limit",
                                          MEMORY_LIMIT=daemon["memory_limit"])
        if daemon["memory_limit"] else "",
        PYTHON_HOME=option_escape(python_home()),
        PYTHON_PATH=option_escape(":".join(python_path)),
        **{dest.upper(): value for dest, value in daemon.items()})


_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
HEALTH_APP = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "health.py")


class _Extras:
    """What the HTTPS, HTTP/2, proxy, health and reload options add to
    httpd.conf: text per placeholder, modules (name -> the option needing
    it), summary lines and files Apache must read."""

    def __init__(self):
        self.text = {"HTTPS": "", "HTTPS_ONLY": "", "PROTOCOLS": "",
                     "TRUSTED_PROXIES": "", "HEALTH_CHECK": "",
                     "RELOAD_MONITOR": "", "OBSERVABILITY": "",
                     "ERROR_LOG_FORMAT": ""}
        self.modules = {}
        self.summary = []
        self.needs = []


def _ssl_files(args):
    """(certificate, key) from --ssl-certificate-file/-key-file or the
    --ssl-certificate NAME of NAME.crt and NAME.key; each must exist."""
    certificate = args.ssl_certificate_file
    key = args.ssl_certificate_key_file
    if args.ssl_certificate:
        certificate = certificate or args.ssl_certificate + ".crt"
        key = key or args.ssl_certificate + ".key"
    if not certificate or not key:
        raise SetupError("--https-port needs a certificate and its key: "
                         "--ssl-certificate-file and "
                         "--ssl-certificate-key-file, or --ssl-certificate")
    paths = []
    for option, path in (("--ssl-certificate-file", certificate),
                         ("--ssl-certificate-key-file", key)):
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise SetupError("%s %s does not exist" % (option, path))
        paths.append(path)
    return tuple(paths)


def _https(args, extras, blocks, setup, port, host_name, rewrite):
    """--https-port and the SSL options: the https block (a VirtualHost on
    its own Listen) and --https-only's redirect."""
    ssl_options = [option for option, value in (
        ("--ssl-certificate-file", args.ssl_certificate_file),
        ("--ssl-certificate-key-file", args.ssl_certificate_key_file),
        ("--ssl-certificate", args.ssl_certificate),
        ("--ssl-certificate-chain-file", args.ssl_certificate_chain_file),
        ("--ssl-ca-certificate-file", args.ssl_ca_certificate_file),
        ("--ssl-verify-client", args.ssl_verify_client),
        ("--ssl-environment", args.ssl_environment),
        ("--https-only", args.https_only),
        ("--hsts-policy", args.hsts_policy)) if value]
    if args.https_port is None:
        if ssl_options:
            raise SetupError("%s needs --https-port" % ssl_options[0])
        return
    https_port = _positive("--https-port", args.https_port)
    if https_port > 65535:
        raise SetupError("--https-port %d is not a TCP port" % https_port)
    if https_port == port:
        raise SetupError("--https-port must differ from --port (%d)" % port)
    certificate, key = _ssl_files(args)
    options = []
    for path, option, block in (
            (args.ssl_certificate_chain_file, "--ssl-certificate-chain-file",
             "ssl_chain"),
            (args.ssl_ca_certificate_file, "--ssl-ca-certificate-file",
             "ssl_ca")):
        if path:
            path = os.path.abspath(path)
            if not os.path.isfile(path):
                raise SetupError("%s %s does not exist" % (option, path))
            options.append(blocks.render(block, PATH=apache_escape(path)))
    if args.ssl_verify_client:
        if not args.ssl_ca_certificate_file:
            raise SetupError("--ssl-verify-client needs "
                             "--ssl-ca-certificate-file")
        for url in args.ssl_verify_client:
            if not url.startswith("/"):
                raise SetupError("--ssl-verify-client %s must start with /"
                                 % url)
            options.append(blocks.render("ssl_verify_location",
                                         URL=apache_escape(url)))
    elif args.ssl_ca_certificate_file:
        options.append(blocks.render("ssl_verify_site"))
    if args.ssl_environment:
        options.append(blocks.render("ssl_environment"))
    if args.hsts_policy:
        if args.https_only:
            options.append(blocks.render(
                "hsts", POLICY=apache_escape(args.hsts_policy)))
            extras.modules["headers_module"] = "--hsts-policy"
        else:
            setup.warnings.append("--hsts-policy only applies with "
                                  "--https-only: no header is sent")
    if rewrite:
        options.append(blocks.render("rewrite_inherit"))
    default_host = ""
    server_name = "%s:%d" % (host_name, https_port)
    if args.server_name:
        # As on the plain HTTP port: other host names are refused.
        from .express_site import other_names_access
        require, access = other_names_access(args, extras)
        default_host = blocks.render(
            "https_default_host", HTTPS_PORT=https_port,
            CERTIFICATE=apache_escape(certificate), KEY=apache_escape(key),
            DEFAULT_REQUIRE=require, DEFAULT_ACCESS=access) + "\n"
        server_name = args.server_name
        if args.server_alias:
            options.insert(0, blocks.render(
                "server_alias", NAMES=" ".join(args.server_alias)))
    extras.text["HTTPS"] = blocks.render(
        "https", LISTEN=_listen(args.host, https_port),
        HTTPS_PORT=https_port, SERVER_ROOT=apache_escape(setup.server_root),
        SERVER_NAME=server_name, DEFAULT_HOST=default_host,
        CERTIFICATE=apache_escape(certificate), KEY=apache_escape(key),
        OPTIONS="\n".join(options))
    extras.modules["ssl_module"] = "--https-port"
    extras.modules["socache_shmcb_module"] = "--https-port"
    if args.https_only:
        extras.text["HTTPS_ONLY"] = blocks.render(
            "https_only", HTTPS_PORT=https_port, HOST=host_name)
        extras.modules["rewrite_module"] = "--https-only"
    extras.summary.append(("HTTPS URL", _url(args.host, https_port)
                           .replace("http:", "https:", 1)
                           + (" (plain HTTP redirected here)"
                              if args.https_only else "")))
    extras.summary.append(("Certificate", "%s, key %s" % (certificate, key)))


def _front_end(args, extras, blocks):
    """--trust-proxy-header, --trust-proxy and --http2."""
    headers = args.trust_proxy_header or []
    for header in headers:
        if not _HEADER_NAME.match(header):
            raise SetupError("--trust-proxy-header %r is not a header name"
                             % header)
    proxies = []
    for proxy in args.trust_proxy or []:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise SetupError("--trust-proxy %r is not an IP address or "
                             "network (such as 10.0.0.0/8)" % proxy)
        proxies.append(proxy)
    if proxies and not headers:
        raise SetupError("--trust-proxy needs --trust-proxy-header: it says "
                         "whom the headers are believed from")
    text = []
    if headers:
        text.append(blocks.render("trusted_proxy_headers",
                                  HEADERS=" ".join(headers)))
        extras.summary.append((
            "Trusted Proxies", "%s from %s" % (
                ", ".join(headers), ", ".join(proxies) or "any peer")))
    if proxies:
        text.append(blocks.render("trusted_proxies",
                                  PROXIES=" ".join(proxies)))
    extras.text["TRUSTED_PROXIES"] = "\n\n".join(text)


def _http2(args, extras, blocks, setup, apache, mpm):
    if not args.http2:
        return
    module = APACHE_MODULES["http2_module"]
    if not apache.has_module(module):
        setup.warnings.append("--http2: this Apache has no mod_http2 (%s); "
                              "serving HTTP/1.1 only" % module.filename)
        return
    if mpm == "prefork":
        setup.warnings.append("--http2: mod_http2 does not serve HTTP/2 "
                              "under the prefork MPM; clients get HTTP/1.1")
    extras.modules["http2_module"] = "--http2"
    extras.text["PROTOCOLS"] = blocks.render("http2")
    extras.summary.append(("Protocols", "h2 (HTTPS), h2c (plain HTTP), "
                           "http/1.1"))


def _health(args, extras, blocks, setup):
    url = args.health_url
    if url is None:
        return
    if not url.startswith("/") or url == "/":
        raise SetupError("--health-url %s must be a path below /, such as "
                         "/-/health" % url)
    url = url.rstrip("/")
    options = ' application-group="%{GLOBAL}"'
    if setup.process_group:
        options = ' process-group="%s"%s' % (
            option_escape(setup.process_group), options)
    extras.text["HEALTH_CHECK"] = blocks.render(
        "health_check", URL=apache_escape(url),
        SCRIPT=apache_escape(HEALTH_APP), OPTIONS=options,
        SCRIPT_DIR=apache_escape(os.path.dirname(HEALTH_APP)),
        SCRIPT_FILE=apache_escape(os.path.basename(HEALTH_APP)))
    extras.needs.append(Need(HEALTH_APP, "tether's health script",
                             python=True))
    extras.summary.append(("Health URL", url))


def log_pipe(kind, path):
    """The piped logger (ErrorLog/CustomLog "|...") that writes JSON lines
    of `kind` ("error" or "access") to path ("-": Apache's stderr/stdout)."""
    return "|%s -m tether.logpipe %s %s" % (
        shlex.quote(sys.executable), kind, shlex.quote(path))


def _observability(args, extras, blocks):
    """--metrics-url, --server-status and --log-format json."""
    text = []
    url = getattr(args, "metrics_url", None)
    if url is not None:
        if not url.startswith("/") or url == "/" or '"' in url:
            raise SetupError("--metrics-url %s must be a path below /, such "
                             "as /metrics" % url)
        url = url.rstrip("/")
        text.append(blocks.render("metrics_url", URL=apache_escape(url)))
        extras.summary.append(("Metrics URL", url))
    if getattr(args, "server_status", False):
        text.append(blocks.render("server_status"))
        extras.modules["status_module"] = "--server-status"
        extras.summary.append(("Server status", "/server-status"))
    if getattr(args, "log_format", "text") == "json":
        extras.text["ERROR_LOG_FORMAT"] = blocks.render("error_log_json")
    extras.text["OBSERVABILITY"] = "\n".join(text)


def _reload_monitor(args, extras, blocks, setup, script, command_line):
    """--reload-on-changes in daemon mode: the monitor script, run in each
    daemon process in the application's interpreter."""
    path = os.path.join(setup.server_root, "reload-monitor.py")
    setup.files[path] = (render_template(
        "reload-monitor.py.in", VERSION=__version__,
        COMMAND_LINE=command_line, INTERVAL="1.0",
        SKIP=repr(script)), 0o644)
    extras.text["RELOAD_MONITOR"] = blocks.render(
        "reload_monitor", SCRIPT=apache_escape(path),
        GROUP_OPTION=option_escape(setup.process_group),
        APPLICATION_GROUP_OPTION=option_escape(args.application_group))
    extras.needs.append(Need(path, "the --reload-on-changes monitor script"))
    extras.summary.append(("Reloading", "daemon processes restart when "
                           "the application's Python source changes"))


def build(args, apache, account, module_path, account_note=None,
          command_line=None, working_directory_unreadable=False):
    """Compute the server root for parsed options `args`.

    `apache` is an apache.Apache, `account` the access.Account Apache's
    children (and the daemon processes) run as (with `account_note` saying
    why, for the summary), `module_path` the mod_tether.so to load.  With
    `working_directory_unreadable` (a defaulted working directory that
    account cannot enter), the daemon processes start in the server root
    instead.  Raises SetupError or ApacheError with a message for the user.
    """
    from . import express_site as site
    setup = ServerSetup()
    blocks = Blocks("blocks.conf.in")
    if command_line is None:
        command_line = shlex.join(["tether-express"] + sys.argv[1:])
    command_line = _comment(command_line)

    port = _positive("--port", args.port)
    if port > 65535:
        raise SetupError("--port %d is not a TCP port" % port)
    processes = _positive("--processes", args.processes)
    threads = _positive("--threads", args.threads)
    if args.max_clients is not None:
        _positive("--max-clients", args.max_clients)
    _positive("--server-backlog", args.server_backlog)
    mode = "embedded" if args.embedded_mode else DEFAULT_MODE
    setup.mode = mode
    if args.process_name is not None:
        if not args.process_name.strip() or "\0" in args.process_name:
            raise SetupError("--process-name %r cannot name a process"
                             % args.process_name)
        setup.process_name = args.process_name
    daemon = daemon_settings(args)
    if mode == "embedded":
        for option in daemon_only_options(args):
            setup.warnings.append("%s only applies to daemon mode: it has "
                                  "no effect with --embedded-mode" % option)
    else:
        for option, value, most in (
                ("--processes", processes, MAX_DAEMON_PROCESSES),
                ("--threads", threads, MAX_DAEMON_THREADS)):
            if value > most:
                raise SetupError("%s is at most %d in daemon mode, not %d"
                                 % (option, most, value))
    _positive("--limit-request-body", args.limit_request_body, 0)
    if args.limit_request_body > MAX_LIMIT_REQUEST_BODY:
        raise SetupError("--limit-request-body is at most %d"
                         % MAX_LIMIT_REQUEST_BODY)
    _positive("--keep-alive-timeout", args.keep_alive_timeout, 0)
    mount_point = args.mount_point
    if not mount_point.startswith("/"):
        raise SetupError("--mount-point %s must start with /" % mount_point)
    if mount_point != "/":
        mount_point = mount_point.rstrip("/")

    server_root = os.path.abspath(
        args.server_root or default_server_root(args.host, port))
    setup.server_root = server_root
    setup.dirs.append(server_root)
    conf = os.path.join(server_root, "httpd.conf")
    setup.conf = conf
    setup.httpd = apache.httpd
    working_directory = _directory(
        "--working-directory", args.working_directory or os.getcwd())
    setup.working_directory = working_directory

    # --- the application -----------------------------------------------
    script, app_type, callable_object, shim = resolve_application(
        args, server_root)
    if shim is not None:
        setup.files[script] = (shim, 0o644)

    # --- logs ------------------------------------------------------------
    log_dir = args.log_directory
    to_terminal = args.log_to_terminal and not log_dir
    log_dir = os.path.abspath(log_dir or os.path.join(server_root, "logs"))
    if not to_terminal:
        setup.dirs.append(log_dir)
    error_name, access_name = site.log_names(args)
    error_log = "/dev/stderr" if to_terminal else os.path.join(
        log_dir, error_name)
    setup.error_log = None if to_terminal else error_log
    access_log = None
    if args.access_log:
        access_log = "/dev/stdout" if to_terminal else os.path.join(
            log_dir, access_name)
    json_logs = getattr(args, "log_format", "text") == "json"
    if json_logs:
        error_log = log_pipe("error", "-" if to_terminal else error_log)
        if access_log:
            access_log = log_pipe("access",
                                  "-" if to_terminal else access_log)
    rotate = site.rotating(args, setup, to_terminal, json_logs)
    if rotate is not None:
        setup.error_log = None      # its name changes with each file
        error_log = rotate(error_log)
        if access_log:
            access_log = rotate(access_log)
    startup_log = site.startup_log(args, setup, log_dir, to_terminal)
    if startup_log:
        setup.httpd_args = ["-E", startup_log]
    setup.environment = site.environment(args)
    setup.envvars_script = site.envvars_script(args)
    if mode == "embedded":
        for option in site.given_worker_fractions(args):
            setup.warnings.append("%s only applies to daemon mode: it has "
                                  "no effect with --embedded-mode" % option)
    pid_file = os.path.abspath(args.pid_file or os.path.join(
        server_root, "httpd.pid"))

    # --- document root and aliases --------------------------------------
    if args.document_root:
        document_root = _directory("--document-root", args.document_root)
    else:
        document_root = os.path.join(server_root, "htdocs")
        setup.dirs.append(document_root)
    aliases = []
    for url, target in args.url_alias or []:
        if not url.startswith("/"):
            raise SetupError("--url-alias %s must start with /" % url)
        aliases.append((url.rstrip("/") or "/", os.path.abspath(target)))

    # --- Python path and environment ------------------------------------
    python_path = []
    for entry in [working_directory] + list(args.python_path or []):
        entry = os.path.abspath(entry)
        if ":" in entry:
            raise SetupError("%s (working directory or --python-path) holds "
                             "a ':', which WSGIPythonPath uses to separate "
                             "entries" % entry)
        if entry not in python_path:
            python_path.append(entry)
    environment = []
    for name, value in args.setenv or []:
        if not _ENV_NAME.match(name):
            raise SetupError("--setenv %r is not a variable name" % name)
        environment.append(blocks.render(
            "setenv", NAME=name, VALUE=apache_escape(value)))
    for name in args.passenv or []:
        if not _ENV_NAME.match(name):
            raise SetupError("--passenv %r is not a variable name" % name)
        environment.append(blocks.render("passenv", NAME=name))

    # --- modules ------------------------------------------------------------
    mpm = apache.choose_mpm(args.server_mpm)
    wanted = [mpm_module(mpm).name, "unixd_module", "authz_core_module",
              "mime_module"]
    why = {}
    if aliases:
        wanted.append("alias_module")
        why["alias_module"] = "--url-alias"
    if environment:
        wanted.append("env_module")
        why["env_module"] = "--setenv/--passenv"
    if access_log:
        wanted.append("log_config_module")
        why["log_config_module"] = "--access-log"
    if args.document_root:
        wanted.append("rewrite_module")
        why["rewrite_module"] = "--document-root"
    extras = _Extras()
    _https(args, extras, blocks, setup, port,
           args.server_name or _host_name(args.host),
           bool(args.document_root))
    _front_end(args, extras, blocks)
    _http2(args, extras, blocks, setup, apache, mpm)
    _observability(args, extras, blocks)
    if mode == "daemon":
        handler_options = ' process-group="%s" application-group="%s"' % (
            option_escape(args.process_group or
                          default_process_group(args.host, port)),
            option_escape(args.application_group))
    else:
        handler_options = ' application-group="%s"' % option_escape(
            args.application_group)
    site_options = site.site_options(
        args, extras, blocks, setup, mode=mode, mpm=mpm, port=port,
        host_name=_host_name(args.host),
        document_root=document_root,
        rewrite=bool(args.document_root or args.https_only),
        handler_options=handler_options)
    if args.python_eggs:
        # Made at start, and given to the account that unpacks into it.
        setup.owned_dirs[os.path.abspath(args.python_eggs)] = (account.uid,
                                                               account.gid)
    for name, option in extras.modules.items():
        if name not in wanted:
            wanted.append(name)
            why[name] = option
    loads = apache.load_lines(wanted, why)
    loads.append(("tether_module", module_path))
    load_modules = "\n".join(
        blocks.render("load_module", NAME=name, PATH=apache_escape(path))
        for name, path in loads)

    if mode == "daemon":
        sizing = daemon_mpm_sizing(mpm, processes, threads, args.max_clients)
        site.spare_workers(args, sizing)
        note = blocks.render("mpm_note_daemon", DAEMON_CAPACITY=processes *
                             threads, **sizing)
    elif mpm == "prefork":
        sizing = mpm_sizing(mpm, processes, threads, args.max_clients)
        note = blocks.render("mpm_note_embedded_prefork",
                             PROCESSES=processes, APP_THREADS=threads,
                             **sizing)
    else:
        sizing = mpm_sizing(mpm, processes, threads, args.max_clients)
        note = blocks.render("mpm_note_embedded_threaded", **sizing)
    mpm_block = note + "\n" + blocks.render(
        "mpm_prefork" if mpm == "prefork" else "mpm_threaded", **sizing)

    if args.keep_alive_timeout > 0:
        keep_alive = blocks.render("keep_alive_on",
                                   SECONDS=args.keep_alive_timeout)
    else:
        keep_alive = blocks.render("keep_alive_off")

    # Embedded mode reloads a changed script only when asked; daemon mode
    # unless told not to, as mod_wsgi-express does.  --reload-on-changes
    # also restarts the daemons when any module the application imported
    # changes (tether.reloader, below).
    if mode == "daemon":
        reloading = not args.disable_reloading
    else:
        reloading = args.reload_on_changes and not args.disable_reloading
    if mode == "daemon":
        # Python is set up on the group; Apache's children start none.
        daemon_group = _daemon_group(
            args, setup, blocks, port, daemon, python_path,
            working_directory_unreadable,
            restrict_embedded=not site_options.python_in_children,
            extra_options=site_options.daemon_options)
        python_path_block = ""
        if site_options.python_in_children:
            # The hook scripts run in Apache's children.
            python_path_block = blocks.render(
                "python_path", PATH=apache_escape(":".join(python_path)))
    else:
        daemon_group = ""
        python_path_block = blocks.render(
            "python_path", PATH=apache_escape(":".join(python_path)))
    application = blocks.render(
        "app_" + mode,
        GROUP=apache_escape(setup.process_group or ""),
        GROUP_OPTION=option_escape(setup.process_group or ""),
        APPLICATION_GROUP_OPTION=option_escape(args.application_group),
        MOUNT_POINT=apache_escape(mount_point),
        SCRIPT=apache_escape(script),
        SCRIPT_DIR=apache_escape(os.path.dirname(script)),
        SCRIPT_FILE=apache_escape(os.path.basename(script)),
        APPLICATION_GROUP=apache_escape(args.application_group),
        CALLABLE_OBJECT=callable_object,
        MAP_HEAD_TO_GET=args.map_head_to_get.capitalize(),
        SCRIPT_RELOADING="On" if reloading else "Off",
        CHUNKED_REQUEST="On" if args.chunked_request else "Off")

    _health(args, extras, blocks, setup)
    if args.reload_on_changes and not args.disable_reloading:
        if mode == "daemon":
            _reload_monitor(args, extras, blocks, setup, script,
                            command_line)
        else:
            setup.warnings.append(
                "--reload-on-changes with --embedded-mode reloads only the "
                "WSGI script: restarting on changes to the modules it "
                "imports needs daemon mode")

    static_files = ""
    if args.document_root:
        exclude = "\n".join(
            blocks.render("static_exclude", URL=apache_escape(url),
                          URL_REGEX=apache_escape(re.escape(url)))
            for url, _ in aliases)
        static_files = blocks.render(
            "static_files", EXCLUDE=exclude,
            DIRECTORY_RULES=site_options.directory_rules,
            DOCUMENT_ROOT=apache_escape(_rewrite_escape(document_root)))

    url_aliases = []
    for url, target in aliases:
        if os.path.isfile(target):
            url_aliases.append(blocks.render(
                "url_alias_file", URL=apache_escape(url),
                PATH=apache_escape(target),
                DIR=apache_escape(os.path.dirname(target)),
                FILE=apache_escape(os.path.basename(target))))
        else:
            # Like mod_wsgi-express: a target that does not exist yet is
            # taken to be a directory.
            url_aliases.append(blocks.render(
                "url_alias_dir", URL=apache_escape(url),
                PATH=apache_escape(target)))

    includes = []
    for path in args.include_file or []:
        path = os.path.abspath(path)
        if not os.path.exists(path):
            setup.warnings.append("--include-file %s does not exist (yet); "
                                  "Apache skips it until it does" % path)
        includes.append(blocks.render("include_file",
                                      PATH=apache_escape(path)))

    server_name = args.host if args.host and args.host not in (
        "0.0.0.0", "::", "*") else "localhost"
    if ":" in server_name:
        server_name = "[%s]" % server_name
    server_name = args.server_name or server_name

    access_format, access_nickname = site.access_log_format(
        args, blocks, setup, access_log)
    httpd_conf = render_template(
        "httpd.conf.in",
        VERSION=__version__,
        COMMAND_LINE=command_line,
        HTTPD=apache.httpd,
        SERVER_ROOT=apache_escape(server_root),
        PID_FILE=apache_escape(pid_file),
        SERVER_NAME="%s:%d" % (server_name, port),
        LOAD_MODULES=load_modules,
        RUN_AS=blocks.render("run_as", USER=account.apache_user,
                             GROUP=account.apache_group),
        LISTEN=_listen(args.host, port),
        SERVER_BACKLOG=args.server_backlog,
        MPM=mpm_block,
        KEEP_ALIVE=keep_alive,
        LIMIT_REQUEST_BODY=args.limit_request_body,
        MIME_TYPES=apache_escape(apache.mime_types),
        ERROR_LOG=apache_escape(error_log),
        LOG_LEVEL=args.log_level,
        ACCESS_LOG=blocks.render(
            "access_log_json" if json_logs else "access_log",
            PATH=apache_escape(access_log), CUSTOM_FORMAT=access_format,
            NICKNAME=access_nickname)
        if access_log else "",
        DOCUMENT_ROOT=apache_escape(document_root),
        PYTHON_HOME=apache_escape(python_home()),
        PYTHON_PATH=python_path_block,
        ENVIRONMENT="\n".join(environment),
        MODE=mode,
        DAEMON_GROUP=daemon_group,
        APPLICATION=application,
        STATIC_FILES=static_files,
        URL_ALIASES="\n\n".join(url_aliases),
        INCLUDE_FILES="\n".join(includes),
        **extras.text)
    setup.files[conf] = (tidy(httpd_conf), 0o644)

    apachectl = render_template(
        "apachectl.in",
        SHELL=site.shell(args),
        ENVVARS_SH=". %s" % shlex.quote(setup.envvars_script)
        if setup.envvars_script else "",
        VERSION=__version__,
        COMMAND_LINE=command_line,
        SERVER_ROOT_SH=shlex.quote(server_root),
        HTTPD_SH=shlex.quote(apache.httpd),
        CONF_SH=shlex.quote(conf),
        ENVIRONMENT_SH="\n".join(
            "%s=%s; export %s" % (name, shlex.quote(value), name)
            for name, value in sorted(setup.environment.items())),
        HTTPD_ARGS_SH="".join(" " + shlex.quote(a)
                              for a in setup.httpd_args),
        WORKING_DIRECTORY_SH=shlex.quote(working_directory))
    setup.files[os.path.join(server_root, "apachectl")] = (apachectl, 0o755)

    # --- what Apache's children and the daemons must be able to read -------
    # Both run as the same account (the daemons take Apache's User and
    # Group), so one list serves both.
    needs = python_needs()
    needs.append(Need(os.path.dirname(module_path),
                      "mod_tether.so's directory", python=True))
    needs.append(Need(module_path, "mod_tether.so", python=True))
    needs.append(Need(os.path.dirname(script),
                      "the WSGI script's directory"))
    if shim is None:
        needs.append(Need(script, "the WSGI script"))
    working = Need(working_directory, "the working directory")
    if args.working_directory:
        # The daemon processes start in it (home=): it must be readable.
        needs.append(working)
    elif not working_directory_unreadable:
        # Defaulted to where tether-express runs (often a home directory):
        # the application may never use it, so only warn (and in daemon
        # mode, start the daemons in the server root instead).
        setup.soft_needs.append(working)
    if mode == "daemon":
        # Apache's children connect to the sockets in it.
        needs.append(Need(setup.socket_dir, "the daemon socket directory"))
    for entry in python_path[1:]:
        needs.append(Need(entry, "the --python-path entry", optional=True))
    needs.append(Need(document_root, "the document root"))
    for url, target in aliases:
        needs.append(Need(target, "the --url-alias %s target" % url,
                          optional=True))
    needs.extend(extras.needs)
    setup.needs = needs

    # --- the summary -------------------------------------------------------
    app_text = {
        "default": "tether's default page (no script given)",
        "script": "%s (callable %s)" % (script, callable_object),
        "module": "module %s (callable %s), via %s" % (
            args.entry_point or args.script, callable_object, script),
    }[app_type]
    summary = [
        ("Server URL", _url(args.server_name or args.host, port,
                            mount_point if
                            mount_point.endswith("/") else mount_point + "/")),
        ("Server Root", server_root),
        ("Server Conf", conf),
        ("Control Script", os.path.join(server_root, "apachectl")),
        ("Application", app_text),
        ("Operating Mode", mode),
    ]
    if mode == "daemon":
        summary += _daemon_summary(setup, processes, threads, daemon, sizing,
                                   args.server_backlog)
    else:
        summary += [("Request Capacity", capacity_text(sizing)),
                    ("Server Backlog", "%d (connections)"
                     % args.server_backlog)]
    if setup.process_name:
        summary.append(("Process Name", setup.process_name))
    summary.append(("Error Log", "terminal (%s)" % args.log_level
                    if to_terminal else "%s (%s)" % (
                        os.path.join(log_dir, error_name) + (
                            ".* (rotated)" if rotate else ""),
                        args.log_level)))
    if access_log:
        summary.append(("Access Log", "terminal" if to_terminal
                        else os.path.join(log_dir, access_name) + (
                            ".* (rotated)" if rotate else "")))
    if startup_log:
        summary.append(("Startup Log", startup_log))
    if args.document_root:
        summary.append(("Document Root", document_root))
    summary += extras.summary
    summary.append(("Run As", "%s:%s" % (account.apache_user,
                                         account.apache_group)
                    + (" (%s)" % account_note if account_note else "")))
    summary.append(("Python Home", python_home()))
    setup.summary = summary
    return setup


def _seconds(value):
    return "%d (seconds)" % value if value else "off"


def _daemon_summary(setup, processes, threads, daemon, sizing, backlog):
    """The summary lines of daemon mode, as mod_wsgi-express prints them,
    plus the other timeouts and the limits that recycle processes."""
    lines = [
        ("Process Group", "%s, processes shown as %s"
         % (setup.process_group, setup.display_name)),
        ("Request Capacity", daemon_capacity_text(processes, threads)),
        ("Request Timeout", _seconds(daemon["request_timeout"])),
        ("Startup Timeout", _seconds(daemon["startup_timeout"])),
        ("Queue Backlog", "%d (connections)" % daemon["daemon_backlog"]),
        ("Queue Timeout", _seconds(daemon["queue_timeout"])),
        ("Socket Timeout", _seconds(daemon["socket_timeout"])),
        ("Connect Timeout", _seconds(daemon["connect_timeout"])),
    ]
    for dest, label in (("maximum_requests", "Maximum Requests"),
                        ("inactivity_timeout", "Inactivity Timeout"),
                        ("restart_interval", "Restart Interval"),
                        ("cpu_time_limit", "CPU Time Limit"),
                        ("memory_limit", "Memory Limit")):
        value = daemon[dest]
        if not value:
            continue
        if dest == "maximum_requests":
            lines.append((label, str(value)))
        elif dest == "memory_limit":
            lines.append((label, "%d (bytes)" % value))
        else:
            lines.append((label, _seconds(value)))
    lines += [
        ("Server Capacity", server_capacity_text(sizing)),
        ("Server Backlog", "%d (connections)" % backlog),
        ("Daemon Sockets", os.path.join(setup.socket_dir, "wsgi") + ".*"),
    ]
    return lines


def _host_name(host):
    """The host part of ServerName: --host, or localhost for any
    address."""
    if not host or host in ("0.0.0.0", "::", "*"):
        return "localhost"
    return "[%s]" % host if ":" in host else host


def _rewrite_escape(path):
    """Escape what mod_rewrite would expand ($N, %N, %{...}) in a path."""
    return re.sub(r"([$%])", r"\\\1", path)


def write(setup, euid=None):
    """Create the server root and write every file of `setup` into it.

    An existing server root is reused only when it is a real directory of
    the same owner (a name under /tmp could have been made by someone else).
    """
    if euid is None:
        euid = os.geteuid()
    root = setup.server_root
    if os.path.lexists(root):
        st = os.lstat(root)
        if not os.path.isdir(root) or os.path.islink(root):
            raise SetupError("the server root %s exists and is not a "
                             "directory (or is a symbolic link)" % root)
        if st.st_uid != euid:
            raise SetupError("the server root %s belongs to another user; "
                             "remove it or pass --server-root" % root)
    for path in setup.dirs:
        os.makedirs(path, exist_ok=True)
        if path == root or path.startswith(root + os.sep):
            os.chmod(path, 0o755)
    for path, (uid, gid) in setup.owned_dirs.items():
        if os.path.isdir(path):
            continue
        os.makedirs(path)
        if euid == 0:
            os.chown(path, uid, gid)
    for path, (text, mode) in setup.files.items():
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)


def summary_text(setup):
    width = max(len(label) for label, _ in setup.summary)
    return "".join("%-*s : %s\n" % (width, label, value)
                   for label, value in setup.summary)
