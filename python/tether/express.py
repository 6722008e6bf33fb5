"""Turn tether-express options into a server root: httpd.conf, apachectl,
and the few files around them.

build() is pure (no files written, no Apache run): it takes the parsed
options, the Apache installation and the account Apache's children run as,
and returns a ServerSetup holding every file's text.  write() puts it on
disk.  Both are what the unit tests exercise.
"""

import keyword
import math
import os
import re
import shlex
import sys
import sysconfig

from . import __version__
from .access import Need, python_needs
from .apache import mpm_module
from .render import Blocks, apache_escape, render_template, tidy

# Operating modes.  Daemon mode (WSGIDaemonProcess) comes next: it adds a
# block to blocks.conf.in and an entry here, and becomes the default.
MODES = ("embedded",)
DEFAULT_MODE = "embedded"

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
    """The MPM directives' values for --processes/--threads/--max-clients.

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
        return {"MPM": mpm, "START": start, "MAX_CLIENTS": most,
                "MAX_SPARE": max(most, start + 1),
                "PROCESSES": processes, "THREADS": threads}
    most = max_clients or processes * threads
    server_limit = max(1, math.ceil(most / threads))
    most = server_limit * threads
    start = min(processes, server_limit)
    return {"MPM": mpm, "PROCESSES": start, "THREADS": threads,
            "SERVER_LIMIT": server_limit, "MAX_CLIENTS": most,
            "MIN_SPARE": threads, "MAX_SPARE": max(most, 2 * threads)}


def capacity_text(sizing):
    """E.g. '5 (1 process x 5 threads, event MPM)'."""
    def plural(n, word):
        return "%d %s" % (n, word if n == 1 else word + (
            "es" if word.endswith("s") else "s"))
    if sizing["MPM"] == "prefork":
        return "%d (%s x 1 thread, prefork MPM; at most %d)" % (
            sizing["START"], plural(sizing["START"], "process"),
            sizing["MAX_CLIENTS"])
    start = sizing["PROCESSES"] * sizing["THREADS"]
    text = "%d (%s x %s, %s MPM" % (
        start, plural(sizing["PROCESSES"], "process"),
        plural(sizing["THREADS"], "thread"), sizing["MPM"])
    if sizing["MAX_CLIENTS"] != start:
        text += "; at most %d" % sizing["MAX_CLIENTS"]
    return text + ")"


class ServerSetup:
    """Everything setup-server writes, and what the summary reports."""

    def __init__(self):
        self.server_root = None
        self.files = {}         # absolute path -> (text, mode)
        self.dirs = []          # directories to create
        self.needs = []         # access.Need: what Apache's children read
        self.soft_needs = []    # the same, but only worth a warning
        self.summary = []       # (label, value)
        self.httpd = None
        self.conf = None
        self.working_directory = None
        self.error_log = None
        self.warnings = []


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


def build(args, apache, account, module_path, account_note=None,
          command_line=None):
    """Compute the server root for parsed options `args`.

    `apache` is an apache.Apache, `account` the access.Account Apache's
    children run as (with `account_note` saying why, for the summary),
    `module_path` the mod_tether.so to load.  Raises SetupError or
    ApacheError with a message for the user.
    """
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
    mode = DEFAULT_MODE

    # --- logs ------------------------------------------------------------
    log_dir = args.log_directory
    to_terminal = args.log_to_terminal and not log_dir
    log_dir = os.path.abspath(log_dir or os.path.join(server_root, "logs"))
    if not to_terminal:
        setup.dirs.append(log_dir)
    error_log = "/dev/stderr" if to_terminal else os.path.join(
        log_dir, "error_log")
    setup.error_log = None if to_terminal else error_log
    access_log = None
    if args.access_log:
        access_log = "/dev/stdout" if to_terminal else os.path.join(
            log_dir, "access_log")
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
    loads = apache.load_lines(wanted, why)
    loads.append(("tether_module", module_path))
    load_modules = "\n".join(
        blocks.render("load_module", NAME=name, PATH=apache_escape(path))
        for name, path in loads)

    sizing = mpm_sizing(mpm, processes, threads, args.max_clients)
    mpm_block = blocks.render(
        "mpm_prefork" if mpm == "prefork" else "mpm_threaded", **sizing)

    if args.keep_alive_timeout > 0:
        keep_alive = blocks.render("keep_alive_on",
                                   SECONDS=args.keep_alive_timeout)
    else:
        keep_alive = blocks.render("keep_alive_off")

    reloading = args.reload_on_changes and not args.disable_reloading
    application = blocks.render(
        "app_" + mode,
        MOUNT_POINT=apache_escape(mount_point),
        SCRIPT=apache_escape(script),
        SCRIPT_DIR=apache_escape(os.path.dirname(script)),
        SCRIPT_FILE=apache_escape(os.path.basename(script)),
        APPLICATION_GROUP=apache_escape(args.application_group),
        CALLABLE_OBJECT=callable_object,
        MAP_HEAD_TO_GET=args.map_head_to_get.capitalize(),
        SCRIPT_RELOADING="On" if reloading else "Off",
        CHUNKED_REQUEST="On" if args.chunked_request else "Off")

    static_files = ""
    if args.document_root:
        exclude = "\n".join(
            blocks.render("static_exclude", URL=apache_escape(url),
                          URL_REGEX=apache_escape(re.escape(url)))
            for url, _ in aliases)
        static_files = blocks.render(
            "static_files", EXCLUDE=exclude,
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
        MPM=mpm_block,
        KEEP_ALIVE=keep_alive,
        LIMIT_REQUEST_BODY=args.limit_request_body,
        MIME_TYPES=apache_escape(apache.mime_types),
        ERROR_LOG=apache_escape(error_log),
        LOG_LEVEL=args.log_level,
        ACCESS_LOG=blocks.render("access_log", PATH=apache_escape(access_log))
        if access_log else "",
        DOCUMENT_ROOT=apache_escape(document_root),
        PYTHON_HOME=apache_escape(python_home()),
        PYTHON_PATH=blocks.render("python_path",
                                  PATH=apache_escape(":".join(python_path))),
        ENVIRONMENT="\n".join(environment),
        MODE=mode,
        APPLICATION=application,
        STATIC_FILES=static_files,
        URL_ALIASES="\n\n".join(url_aliases),
        INCLUDE_FILES="\n".join(includes))
    setup.files[conf] = (tidy(httpd_conf), 0o644)

    apachectl = render_template(
        "apachectl.in",
        VERSION=__version__,
        COMMAND_LINE=command_line,
        SERVER_ROOT_SH=shlex.quote(server_root),
        HTTPD_SH=shlex.quote(apache.httpd),
        CONF_SH=shlex.quote(conf),
        WORKING_DIRECTORY_SH=shlex.quote(working_directory))
    setup.files[os.path.join(server_root, "apachectl")] = (apachectl, 0o755)

    # --- what Apache's children must be able to read -----------------------
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
        needs.append(working)
    else:
        # Defaulted to where tether-express runs (often a home directory):
        # the application may never use it, so only warn.
        setup.soft_needs.append(working)
    for entry in python_path[1:]:
        needs.append(Need(entry, "the --python-path entry", optional=True))
    needs.append(Need(document_root, "the document root"))
    for url, target in aliases:
        needs.append(Need(target, "the --url-alias %s target" % url,
                          optional=True))
    setup.needs = needs

    # --- the summary -------------------------------------------------------
    app_text = {
        "default": "tether's default page (no script given)",
        "script": "%s (callable %s)" % (script, callable_object),
        "module": "module %s (callable %s), via %s" % (
            args.entry_point or args.script, callable_object, script),
    }[app_type]
    summary = [
        ("Server URL", _url(args.host, port, mount_point if
                            mount_point.endswith("/") else mount_point + "/")),
        ("Server Root", server_root),
        ("Server Conf", conf),
        ("Control Script", os.path.join(server_root, "apachectl")),
        ("Application", app_text),
        ("Operating Mode", mode),
        ("Request Capacity", capacity_text(sizing)),
        ("Error Log", "terminal (%s)" % args.log_level if to_terminal
         else "%s (%s)" % (error_log, args.log_level)),
    ]
    if access_log:
        summary.append(("Access Log", "terminal" if to_terminal
                        else access_log))
    if args.document_root:
        summary.append(("Document Root", document_root))
    summary.append(("Run As", "%s:%s" % (account.apache_user,
                                         account.apache_group)
                    + (" (%s)" % account_note if account_note else "")))
    summary.append(("Python Home", python_home()))
    setup.summary = summary
    return setup


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
