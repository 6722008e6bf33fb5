"""Start and stop a real Apache httpd loading mod_tether, for integration tests.

Nothing here mocks Apache: every server is the system's httpd binary run from
a generated configuration on a free loopback port.  The layout of one server:

    /tmp/tether-it-XXXX/        0755, removed at teardown (kept on failure)
        conf/httpd.conf
        apps/                   a copy of tests/apps
        scratch/                writable by the Apache children (side channels)
        logs/error_log, logs/access_log
        run/httpd.pid

A server runs its WSGI applications in embedded mode (inside the Apache
children) or, with ``wsgi_mode="daemon"``, in one daemon process group named
DAEMON_GROUP that every WSGIScriptAlias of the config is sent to.

The module under test is ``tether.module_location()`` of the installed
package; the Python home given to Apache is ``sys.prefix`` of the interpreter
running pytest.  ``TETHER_TEST_MODULE=/path/to/mod_wsgi.so`` runs the same
suite against mod_wsgi instead (a reference run: tests of Tether-only
features skip themselves).

``TETHER_TEST_SANITIZE=1`` runs every Apache (and every tether-express) with
the AddressSanitizer and UBSan runtimes preloaded, for a module built with
``TETHER_SANITIZE=ON`` (see .ci/sanitize): sanitizer reports are written
into the server's ``sanitizer/`` directory, and any report fails the test
that was running (conftest.py) or the stop of the server.
"""

import concurrent.futures
import contextlib
import errno
import grp
import http.client
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
APPS_SOURCE = os.path.join(os.path.dirname(HERE), "apps")

# How long a server may take to start or stop, and how long a test waits for
# something it expects to show up (a log line, a marker file).  Generous on
# purpose: they bound a hang, they do not measure speed.
START_DEADLINE = 30.0
STOP_DEADLINE = 30.0
WAIT_DEADLINE = 30.0
IO_TIMEOUT = 60.0

# The daemon process group of a server started with wsgi_mode="daemon".
DAEMON_GROUP = "tether-test"
WSGI_MODES = ("embedded", "daemon")


class ServerVariant(NamedTuple):
    """Where a test module's applications run: the MPM and the WSGI mode."""

    mpm: str
    wsgi_mode: str

    @property
    def daemon(self):
        return self.wsgi_mode == "daemon"

    @property
    def name(self):
        """For server names: "event", "prefork", "event-daemon"."""
        return self.mpm + ("-daemon" if self.daemon else "")


# Who the children run as when the tests run as root (the first that exists).
APACHE_USERS = ("www-data", "apache", "daemon")

BINARY_CANDIDATES = (
    "/usr/sbin/apache2",
    "/usr/sbin/httpd",
    "/usr/local/apache2/bin/httpd",
    "/opt/homebrew/bin/httpd",
)
# Used only when the tether package cannot be imported: find_modules_dir
# searches tether.apache.MODULES_DIRS, the list tether-express uses.
MODULES_DIR_CANDIDATES = (
    "/usr/lib/apache2/modules",       # Debian, Ubuntu
    "/usr/lib64/httpd/modules",       # RHEL, Fedora
    "/usr/lib/httpd/modules",         # RHEL 32-bit, Arch
    "/usr/libexec/apache2",           # SUSE, macOS
    "/usr/local/apache2/modules",     # source install
    "/opt/homebrew/lib/httpd/modules",
)
# Loaded when present and not compiled in; the MPM is added per server.
BASE_MODULES = (
    "unixd", "log_config", "authn_core", "authz_core", "mime", "alias",
    "dir", "env",
)


# The servers running now, for the conftest hook that shows their error_log
# when a test fails.
LIVE_SERVERS = []


class HarnessError(Exception):
    """The harness could not do what a test asked (start, stop, wait)."""


# --- discovery ---------------------------------------------------------------

class ApacheInstall:
    """Where the httpd binary and its shared modules live."""

    def __init__(self, binary, modules_dir, builtins, version):
        self.binary = binary
        self.modules_dir = modules_dir
        self.builtins = builtins        # {"core", "so", "log_config", ...}
        self.version = version

    def module_line(self, name):
        """The LoadModule line for mod_<name>, or "" when compiled in."""
        if name in self.builtins:
            return ""
        path = os.path.join(self.modules_dir, "mod_%s.so" % name)
        if not os.path.exists(path):
            return ""
        return "LoadModule %s_module %s" % (name, path)

    def has_module(self, name):
        return name in self.builtins or os.path.exists(
            os.path.join(self.modules_dir, "mod_%s.so" % name))


def find_modules_dir():
    """Apache's modules directory (one holding mod_authz_core.so), found as
    tether-express finds it, without apxs: tether.apache.find_modules_dir
    over its list of the usual layouts.  The harness's own copy of that
    list serves when the tether package cannot be imported (find_module
    then says so)."""
    try:
        from tether.apache import MODULES_DIRS, find_modules_dir as find
    except ImportError:
        MODULES_DIRS, find = MODULES_DIR_CANDIDATES, None
    usable = [d for d in MODULES_DIRS
              if os.path.exists(os.path.join(d, "mod_authz_core.so"))]
    if find is not None:
        return find(candidates=usable)
    return usable[0] if usable else None


def find_apache():
    """Returns an ApacheInstall, or a string saying why there is none."""
    binary = os.environ.get("TETHER_TEST_HTTPD")
    if binary and not os.access(binary, os.X_OK):
        return "TETHER_TEST_HTTPD=%s is not an executable" % binary
    if not binary:
        candidates = list(BINARY_CANDIDATES)
        for name in ("apache2", "httpd"):
            found = shutil.which(name)
            if found:
                candidates.append(found)
        binary = next((c for c in candidates if os.access(c, os.X_OK)), None)
    if not binary:
        return "no Apache httpd binary (looked for apache2 and httpd)"
    try:
        listed = subprocess.run([binary, "-l"], capture_output=True, text=True,
                                timeout=30, check=False)
        version = subprocess.run([binary, "-v"], capture_output=True,
                                 text=True, timeout=30, check=False).stdout
    except OSError as exc:
        return "%s cannot run: %s" % (binary, exc)
    builtins = set(re.findall(r"^\s*mod_(\w+)\.c$", listed.stdout, re.M))
    builtins.update(re.findall(r"^\s*(\w+)\.c$", listed.stdout, re.M))
    if "Apache/2.4" not in version:
        return "%s is not Apache httpd 2.4: %r" % (binary, version.strip())
    modules_dir = os.environ.get("TETHER_TEST_HTTPD_MODULES")
    if not modules_dir:
        modules_dir = find_modules_dir()
    if not modules_dir:
        return "no Apache modules directory holding mod_authz_core.so"
    install = ApacheInstall(binary, modules_dir, builtins, version.strip())
    mpms = [m for m in ("event", "prefork") if install.has_module("mpm_" + m)]
    if not mpms:
        return "Apache at %s has neither mpm_event nor mpm_prefork" % binary
    return install


CI_TRUE = ("true", "1", "yes")


def on_ci(environ=None):
    """True in a CI run: $CI is "true" (as GitHub Actions, GitLab CI and
    most others set it), "1" or "yes", in any case."""
    environ = os.environ if environ is None else environ
    return environ.get("CI", "").strip().lower() in CI_TRUE


def missing_prerequisite(reason, environ=None):
    """What the integration tests do when Apache (or a part of it the
    tests need) is missing, `reason` saying what: ("fail", message) in a
    CI run, so that CI cannot pass by skipping them, else ("skip",
    message)."""
    environ = os.environ if environ is None else environ
    message = "integration tests need Apache httpd 2.4: %s" % reason
    if on_ci(environ):
        return ("fail", "%s (CI=%s: a CI run must not skip the integration "
                "tests; install Apache, e.g. with `.ci/bootstrap test`)"
                % (message, environ["CI"]))
    return ("skip", message)


class ModuleUnderTest:
    """The module Apache loads: mod_tether, or mod_wsgi for a reference run."""

    def __init__(self, path, name, reference):
        self.path = path
        self.name = name                # the LoadModule name
        self.reference = reference      # True when this is not Tether


def find_module():
    """A ModuleUnderTest, or raises HarnessError saying what is amiss."""
    path = os.environ.get("TETHER_TEST_MODULE")
    if path:
        reference = "mod_wsgi" in os.path.basename(path)
        name = "wsgi_module" if reference else "tether_module"
        if not os.path.exists(path):
            raise HarnessError("TETHER_TEST_MODULE=%s does not exist" % path)
        return ModuleUnderTest(os.path.abspath(path), name, reference)
    try:
        import tether
    except ImportError as exc:
        raise HarnessError(
            "the tether package is not installed in %s (%s); run the suite "
            "with `.ci/bootstrap test`" % (sys.prefix, exc))
    path = tether.module_location()
    if not os.path.exists(path):
        raise HarnessError(
            "%s does not exist: the installed tether package has no built "
            "module; run the suite with `.ci/bootstrap test`" % path)
    return ModuleUnderTest(path, "tether_module", False)


# --- who the Apache children run as ------------------------------------------

def running_as_root():
    return os.geteuid() == 0


def apache_identity():
    """(uid, gid, user, group) of the children: www-data as root, else us."""
    if running_as_root():
        for user in APACHE_USERS:
            try:
                pw = pwd.getpwnam(user)
                break
            except KeyError:
                continue
        else:
            raise HarnessError("running as root but there is no user for the "
                               "Apache children (tried %s)"
                               % ", ".join(APACHE_USERS))
        return (pw.pw_uid, pw.pw_gid, user,
                grp.getgrgid(pw.pw_gid).gr_name)
    return (os.getuid(), os.getgid(), None, None)


def _can_access(path, uid, gids, want):
    """Whether uid (with gids) may `want` ("r"/"x"/"rx") path, by mode bits."""
    st = os.stat(path)
    if st.st_uid == uid:
        shift = 6
    elif st.st_gid in gids:
        shift = 3
    else:
        shift = 0
    bits = (st.st_mode >> shift) & 0o7
    need = (4 if "r" in want else 0) | (1 if "x" in want else 0)
    return bits & need == need


def unreadable_for(paths, uid, gids):
    """The first of `paths` (or of their parents) uid cannot read, or None."""
    for path in paths:
        path = os.path.realpath(path)
        parts = path.split(os.sep)
        for i in range(2, len(parts)):
            parent = os.sep.join(parts[:i])
            if not _can_access(parent, uid, gids, "x"):
                return parent
        want = "rx" if os.path.isdir(path) else "r"
        if not _can_access(path, uid, gids, want):
            return path
    return None


def python_paths_apache_reads(module_path):
    """What the children must read: the venv, the stdlib, the module."""
    stdlib = os.path.dirname(os.__file__)
    return [sys.prefix, stdlib, os.path.dirname(stdlib), module_path]


# --- sanitizers --------------------------------------------------------------

# Options of the sanitizer runtimes when TETHER_TEST_SANITIZE=1.
#  detect_leaks=0: Apache allocates its configuration and pools once and
#    leaves them to the exit of each process, and an embedded Python is
#    never finalised in a child that exits (as in mod_wsgi): LeakSanitizer
#    would report those on every exit, burying the errors that matter.  It
#    also needs to stop every thread with ptrace, which children that have
#    changed uid cannot do.
#  halt_on_error, abort_on_error: the first report kills the process with
#    SIGABRT, which the crash check of conftest.py also sees.
#  quarantine_size_mb=4: freed memory is held back (to catch use after
#    free) up to this much per process, not the default 256 MB, so that the
#    tests of bounded memory measure Tether rather than the quarantine.
#  The UBSan runtime dies on its first report too, with a stack trace.
SANITIZE_QUARANTINE_MB = 4
SANITIZE_ASAN_OPTIONS = ("detect_leaks=0:halt_on_error=1:abort_on_error=1:"
                         "quarantine_size_mb=%d" % SANITIZE_QUARANTINE_MB)
SANITIZE_UBSAN_OPTIONS = "print_stacktrace=1:halt_on_error=1"
SANITIZER_DIR = "sanitizer"
SANITIZER_REPORT = re.compile(r"^(asan|ubsan)\.\d+$")


def sanitize_enabled():
    """True when TETHER_TEST_SANITIZE asks for the sanitizer runtimes."""
    return os.environ.get("TETHER_TEST_SANITIZE", "") not in ("", "0")


def sanitizer_runtimes():
    """The paths of gcc's libasan and libubsan, to preload into httpd.

    Apache is not built with ASan, so the runtime must come first in the
    process: LD_PRELOAD.  Raises HarnessError when gcc has none."""
    cc = os.environ.get("CC") or "gcc"
    found = []
    for lib in ("libasan.so", "libubsan.so"):
        try:
            path = subprocess.run([cc, "-print-file-name=" + lib],
                                  capture_output=True, text=True, timeout=30,
                                  check=False).stdout.strip()
        except OSError as exc:
            raise HarnessError("TETHER_TEST_SANITIZE: cannot run %s: %s"
                               % (cc, exc))
        if not os.path.isabs(path) or not os.path.exists(path):
            raise HarnessError("TETHER_TEST_SANITIZE: %s has no %s"
                               % (cc, lib))
        found.append(os.path.realpath(path))
    return found


def make_sanitizer_dir(parent):
    """<parent>/sanitizer, writable by any user (the children, daemons
    running as other users); returns its path."""
    path = os.path.join(parent, SANITIZER_DIR)
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o1777)
    return path


def sanitizer_dir_of(parent):
    """Where the sanitizer reports of processes started for `parent` go
    (created under TETHER_TEST_SANITIZE only)."""
    if sanitize_enabled():
        return make_sanitizer_dir(parent)
    return os.path.join(parent, SANITIZER_DIR)


def sanitizer_env(report_dir):
    """The environment variables that preload the sanitizer runtimes and
    send their reports to report_dir/asan.<pid> and ubsan.<pid>; {} when
    TETHER_TEST_SANITIZE is not set."""
    if not sanitize_enabled():
        return {}
    preload = sanitizer_runtimes()
    if os.environ.get("LD_PRELOAD"):
        preload.append(os.environ["LD_PRELOAD"])
    return {
        "LD_PRELOAD": " ".join(preload),
        "ASAN_OPTIONS": "%s:log_path=%s" % (
            SANITIZE_ASAN_OPTIONS, os.path.join(report_dir, "asan")),
        "UBSAN_OPTIONS": "%s:log_path=%s" % (
            SANITIZE_UBSAN_OPTIONS, os.path.join(report_dir, "ubsan")),
    }


def sanitizer_reports(report_dir):
    """{file name: text} of the sanitizer reports in report_dir."""
    reports = {}
    try:
        names = os.listdir(report_dir)
    except OSError:
        return reports
    for name in sorted(names):
        if SANITIZER_REPORT.match(name):
            try:
                with open(os.path.join(report_dir, name), "rb") as f:
                    reports[name] = f.read(65536).decode("utf-8", "replace")
            except OSError:
                pass
    return reports


def format_sanitizer_reports(reports, where):
    return "sanitizer report(s) in %s:\n%s" % (where, "\n".join(
        "--- %s\n%s" % (name, text) for name, text in reports.items()))


# --- small utilities ---------------------------------------------------------

_PORTS_GIVEN = set()


def _ephemeral_low():
    """The first port of the kernel's ephemeral (outgoing) range."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port):
    """True if port can be bound on every address Apache listens on."""
    for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((addr, port))
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno in (
                    errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                continue
            return False
    return True


def free_port():
    """A TCP port that nothing listens on right now.

    It is taken below the ephemeral range, so that the outgoing
    connections of a busy test (thousands of clients) cannot take it
    between this call and Apache's bind, and never the same twice in one
    run."""
    high = min(_ephemeral_low(), 65536)
    low = max(1024, high - 20000)
    for _ in range(200):
        port = random.randrange(low, high)
        if port not in _PORTS_GIVEN and _bindable(port):
            _PORTS_GIVEN.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def child_pids(parent):
    """The pids whose parent is `parent` (Linux /proc), else []."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def proc_cmdline(pid):
    """The command line of pid as bytes (NULs kept), or None if it is gone."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return None


def proc_status_kb(pid, field):
    """A kB field of /proc/<pid>/status ("VmRSS", "VmHWM"), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                name, _, value = line.partition(":")
                if name == field:
                    return int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return None


def proc_io(pid):
    """/proc/<pid>/io as a dict of ints ("wchar", "rchar", ...).

    Raises OSError when it cannot be read (another user's process, or a
    process that is not dumpable)."""
    with open("/proc/%d/io" % pid) as f:
        return {name.strip(): int(value)
                for name, _, value in (line.partition(":") for line in f)}


def wait_for(predicate, deadline=WAIT_DEADLINE, interval=0.02, what=None):
    """Polls predicate() until it returns a true value; returns that value.

    Raises HarnessError naming `what` when the deadline passes."""
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise HarnessError("gave up after %.0fs waiting for %s"
                               % (deadline, what or predicate))
        time.sleep(interval)


def let_children_settle():
    """Call before a stop whose exit code a test checks.  httpd 2.4.71's
    event MPM can crash in a child's main thread (SIGSEGV in
    apr_os_sock_get on a listener) when SIGTERM comes within milliseconds
    of the child's start, before any exit code runs: about 1 stop in 70
    here, none in 160 after this pause."""
    time.sleep(1)


# --- HTTP helpers ------------------------------------------------------------

def load(server, path, seconds, workers=8, check=None):
    """GETs `path` from `workers` threads, each request on a connection of
    its own, for `seconds`; returns one outcome per request: its status, or
    what went wrong with it (the repr of the exception it raised, or what
    check(response) said: check returns None for a good response)."""
    end = time.monotonic() + seconds

    def run():
        out = []
        while time.monotonic() < end:
            try:
                resp = server.get(path)
            except (OSError, http.client.HTTPException) as exc:
                out.append(repr(exc))
                continue
            bad = check(resp) if check else None
            out.append(resp.status if bad is None else bad)
        return out

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(run) for _ in range(workers)]
        return [s for f in futures for s in f.result()]


class Response:
    """A complete response read by http.client."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value), in order
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    def header_names(self):
        return [key.lower() for key, _ in self.headers]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %d %s %r>" % (self.status, self.reason,
                                         self.body[:200])


class RawResponse:
    """A response as bytes off a socket, split but not interpreted."""

    def __init__(self, data):
        self.data = data
        head, sep, self.body = data.partition(b"\r\n\r\n")
        self.complete_head = bool(sep)
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        parts = self.status_line.split(" ", 2)
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() \
            else None
        self.headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.append((name.strip(), value.strip()))

    def header(self, name, default=None):
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    def header_names(self):
        return [key.lower() for key, _ in self.headers]

    def __repr__(self):
        return "<RawResponse %r>" % self.data[:300]


def decode_chunked(body):
    """Decodes a chunked body: (data, complete).

    `complete` is True only when the terminating zero-size chunk was seen;
    a malformed or truncated body returns what could be decoded and False."""
    data = bytearray()
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            return bytes(data), False
        size_text = body[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return bytes(data), False
        if size == 0:
            return bytes(data), True
        start = eol + 2
        chunk = body[start:start + size]
        data += chunk
        if len(chunk) < size or body[start + size:start + size + 2] != b"\r\n":
            return bytes(data), False
        pos = start + size + 2


def encode_chunked(pieces):
    """The chunked transfer coding of the byte strings in `pieces`."""
    out = bytearray()
    for piece in pieces:
        if piece:
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out)


# --- the server --------------------------------------------------------------

MPM_SETTINGS = {
    # Small pools: two cores, a few seconds to start, nothing idle to spare.
    "event": """\
<IfModule mpm_event_module>
    StartServers 1
    ServerLimit 4
    ThreadsPerChild 10
    ThreadLimit 10
    MinSpareThreads 5
    MaxSpareThreads 30
    MaxRequestWorkers 40
    MaxConnectionsPerChild 0
</IfModule>""",
    "prefork": """\
<IfModule mpm_prefork_module>
    StartServers 2
    MinSpareServers 1
    MaxSpareServers 4
    ServerLimit 8
    MaxRequestWorkers 8
    MaxConnectionsPerChild 0
</IfModule>""",
}

CONFIG_TEMPLATE = """\
# Generated by tests/integration/harness.py for one test server.
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{root}/run/httpd.pid"
Mutex file:{root}/run default
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
ServerAdmin nobody@localhost
{modules}
{identity}
{mpm_settings}
Timeout 30
KeepAlive On
KeepAliveTimeout 5
MaxKeepAliveRequests 1000
HostnameLookups Off
ErrorLog "{root}/logs/error_log"
LogLevel {log_level}
LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" tether_test
CustomLog "{root}/logs/access_log" tether_test
<IfModule mime_module>
    TypesConfig "{root}/conf/mime.types"
</IfModule>
DocumentRoot "{root}/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{root}/htdocs">
    Require all granted
</Directory>
<Directory "{root}/apps">
    Require all granted
</Directory>

{module_line}
WSGIPythonHome "{python_home}"
{daemon_config}

# --- per-test configuration --------------------------------------------------
{config}
"""


class ApacheServer:
    """One Apache httpd: its directory, config, process and error log.

    Configs are snippets appended to the base config; in them @APPS@,
    @SCRATCH@ and @ROOT@ stand for this server's directories."""

    def __init__(self, install, module, *, config="", mpm="event",
                 log_level="info", name="httpd", mpm_settings=None,
                 wsgi_mode="embedded", daemon_processes=2,
                 daemon_threads=10, env=None):
        if wsgi_mode not in WSGI_MODES:
            raise HarnessError("wsgi_mode %r is not one of %s"
                               % (wsgi_mode, ", ".join(WSGI_MODES)))
        self.install = install
        self.wsgi_mode = wsgi_mode
        self.daemon_processes = daemon_processes
        self.daemon_threads = daemon_threads
        self.mpm_settings = mpm_settings
        self.module = module
        self.name = name
        self.mpm = mpm
        self.log_level = log_level
        self.config = config
        # Added to httpd's environment after PYTHON* is stripped from it.
        self.extra_env = dict(env or {})
        self.port = None
        self.pid = None
        self.saw_failure = False
        self.uid, self.gid, self.user, self.group = apache_identity()
        self.root = tempfile.mkdtemp(prefix="tether-it-%s-" % name, dir="/tmp")
        os.chmod(self.root, 0o755)
        for sub in ("conf", "logs", "run", "htdocs"):
            os.mkdir(os.path.join(self.root, sub), 0o755)
        self.apps = os.path.join(self.root, "apps")
        shutil.copytree(APPS_SOURCE, self.apps,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for dirpath, dirnames, filenames in os.walk(self.apps):
            os.chmod(dirpath, 0o755)
            for filename in filenames:
                os.chmod(os.path.join(dirpath, filename), 0o644)
        self.sanitizer_dir = sanitizer_dir_of(self.root)
        self.sanitizer_seen = set()
        self.scratch = os.path.join(self.root, "scratch")
        os.mkdir(self.scratch, 0o755)
        if running_as_root():
            os.chown(self.scratch, self.uid, self.gid)
        self.conf_path = os.path.join(self.root, "conf", "httpd.conf")
        with open(os.path.join(self.root, "conf", "mime.types"), "w") as f:
            f.write("text/plain txt\napplication/json json\n")
        self.error_log_path = os.path.join(self.root, "logs", "error_log")
        self.access_log_path = os.path.join(self.root, "logs", "access_log")
        self.pid_path = os.path.join(self.root, "run", "httpd.pid")

    # -- config ---------------------------------------------------------------

    @property
    def daemon(self):
        """True when the applications run in the daemon group."""
        return self.wsgi_mode == "daemon"

    @property
    def multithreaded(self):
        """What wsgi.multithread must be."""
        if self.daemon:
            return self.daemon_threads > 1
        return self.mpm != "prefork"

    @property
    def multiprocess(self):
        """What wsgi.multiprocess must be: True in the daemon group (as in
        mod_wsgi, whenever its processes= option is given, as it is here)
        and, embedded, under the harness's MPM settings (several children)."""
        return True

    @property
    def process_group(self):
        """What mod_wsgi.process_group must be."""
        return DAEMON_GROUP if self.daemon else ""

    @property
    def client_tag(self):
        """A regex for the client label of a log line an app wrote.

        Apache writes "[client ip:port]" in a process with a scoreboard
        handle (an Apache child) and "[remote ip:port]" elsewhere (a
        daemon process): both name the client's address."""
        label = "remote" if self.daemon else "client"
        return r"\[%s 127\.0\.0\.1:\d+\]" % label

    def client_tag_for_port(self, port):
        """client_tag for one client port."""
        return self.client_tag.replace(r"\d+", str(port))

    def daemon_config(self):
        """The lines that send every application to the daemon group."""
        if not self.daemon:
            return "# embedded mode: the applications run in the children"
        return ("WSGIDaemonProcess %s processes=%d threads=%d "
                "display-name=%%{GROUP}\nWSGIProcessGroup %s"
                % (DAEMON_GROUP, self.daemon_processes, self.daemon_threads,
                   DAEMON_GROUP))

    def expand(self, text):
        return (text.replace("@APPS@", self.apps)
                .replace("@SCRATCH@", self.scratch)
                .replace("@ROOT@", self.root))

    def render_config(self):
        modules = [self.install.module_line("mpm_" + self.mpm)]
        modules += [self.install.module_line(m) for m in BASE_MODULES]
        if self.user:
            identity = "User %s\nGroup %s" % (self.user, self.group)
        else:
            identity = "# not root: the children run as the invoking user"
        return CONFIG_TEMPLATE.format(
            root=self.root,
            port=self.port,
            modules="\n".join(line for line in modules if line),
            identity=identity,
            mpm_settings=self.mpm_settings or MPM_SETTINGS[self.mpm],
            log_level=self.log_level,
            module_line="LoadModule %s %s" % (self.module.name,
                                              self.module.path),
            python_home=sys.prefix,
            daemon_config=self.daemon_config(),
            config=self.expand(self.config),
        )

    def write_config(self):
        with open(self.conf_path, "w") as f:
            f.write(self.render_config())

    def configtest(self, config=None):
        """Runs `httpd -t` on this server's config (or on `config` instead).

        Returns (exit status, stdout and stderr joined); does not start or
        change the running server."""
        if config is not None:
            saved, self.config = self.config, config
        try:
            if self.port is None:
                self.port = free_port()
            conf_path = self.conf_path
            self.conf_path = os.path.join(self.root, "conf", "configtest.conf")
            try:
                self.write_config()
                result = self._httpd("-t")
            finally:
                self.conf_path = conf_path
        finally:
            if config is not None:
                self.config = saved
        return result.returncode, result.stdout + result.stderr

    # -- process --------------------------------------------------------------

    def process_env(self):
        """The environment httpd runs with: ours without PYTHON*, plus
        `extra_env` (the `env` argument), plus the sanitizer runtimes under
        TETHER_TEST_SANITIZE."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PYTHON")}
        env.setdefault("LANG", "C.UTF-8")
        env.update(self.extra_env)
        env.update(sanitizer_env(self.sanitizer_dir))
        return env

    def _httpd(self, *args):
        env = self.process_env()
        return subprocess.run(
            [self.install.binary, "-d", self.root, "-f", self.conf_path]
            + list(args),
            capture_output=True, text=True, timeout=START_DEADLINE, env=env,
            cwd=self.root, check=False)

    def read_pid(self):
        try:
            with open(self.pid_path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _accepting(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def start(self):
        """Starts httpd and waits until it accepts connections."""
        if self.pid is not None:
            raise HarnessError("%s is already running (pid %d)"
                               % (self.name, self.pid))
        for attempt in range(3):
            self.port = free_port()
            self.write_config()
            mark = self.log_mark()
            result = self._httpd("-k", "start")
            if result.returncode != 0:
                if ("Address already in use" in result.stdout + result.stderr
                        and attempt < 2):
                    continue
                raise HarnessError(
                    "httpd -k start failed (exit %d):\n%s%s\n--- error_log:\n%s"
                    % (result.returncode, result.stdout, result.stderr,
                       self.error_log(since=mark)))
            try:
                self._wait_started(mark)
                return self
            except HarnessError:
                # Whatever did start must not outlive the failure.
                with contextlib.suppress(HarnessError):
                    self.stop()
                log = self.error_log(since=mark)
                if "Address already in use" in log and attempt < 2:
                    continue
                self.saw_failure = True
                raise

    def _wait_started(self, mark):
        end = time.monotonic() + START_DEADLINE
        while time.monotonic() < end:
            pid = self.read_pid()
            if pid and not pid_alive(pid):
                break
            if pid and self._accepting():
                self.pid = pid
                LIVE_SERVERS.append(self)
                if self.daemon:
                    self._wait_daemons(mark, end)
                return
            time.sleep(0.02)
        raise HarnessError(
            "httpd did not start accepting on port %d within %.0fs "
            "(pid file: %s)\n--- error_log:\n%s"
            % (self.port, START_DEADLINE, self.read_pid(),
               self.error_log(since=mark)))

    def _wait_daemons(self, mark, end):
        """Waits until the daemon group has all its processes."""
        while time.monotonic() < end:
            if len(self.daemon_pids()) >= self.daemon_processes:
                return
            time.sleep(0.02)
        raise HarnessError(
            "the %d process(es) of daemon group %s did not appear within "
            "%.0fs (have %s)\n--- error_log:\n%s"
            % (self.daemon_processes, DAEMON_GROUP, START_DEADLINE,
               self.daemon_pids(), self.error_log(since=mark)))

    def children(self):
        return child_pids(self.pid) if self.pid else []

    def daemon_pids(self, group=DAEMON_GROUP):
        """The pids of the daemon processes of `group`, by the title that
        display-name=%{GROUP} gives them: "(wsgi:<group>)", which mod_wsgi
        cuts to the length of the command's first argument."""
        title = b"(wsgi:%s)" % group.encode()
        found = []
        for pid in self.children():
            first = (proc_cmdline(pid) or b"").split(b"\0", 1)[0]
            if first.startswith(b"(wsgi:") and title.startswith(first):
                found.append(pid)
        return sorted(found)

    def worker_pids(self):
        """The Apache children that serve HTTP: not daemon processes."""
        return sorted(pid for pid in self.children()
                      if not (proc_cmdline(pid) or b"(wsgi:")
                      .startswith(b"(wsgi:"))

    def stop(self):
        """SIGTERM to the parent; waits for it and its children to be gone.

        Raises HarnessError if anything is still alive at the deadline (after
        killing it, so nothing is left behind)."""
        pid = self.pid or self.read_pid()
        if pid is None:
            return
        procs = [pid] + child_pids(pid)
        self.pid = None
        if self in LIVE_SERVERS:
            LIVE_SERVERS.remove(self)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        end = time.monotonic() + STOP_DEADLINE
        while time.monotonic() < end:
            if not any(pid_alive(p) for p in procs):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.pid_path)
                self.check_sanitizer_reports()
                return
            time.sleep(0.02)
        left = [p for p in procs if pid_alive(p)]
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        raise HarnessError("httpd %s did not stop within %.0fs: pids %s were "
                           "still alive (killed)" % (self.name, STOP_DEADLINE,
                                                      left))

    def new_sanitizer_reports(self):
        """{name: text} of the sanitizer reports not returned before."""
        reports = {name: text for name, text
                   in sanitizer_reports(self.sanitizer_dir).items()
                   if name not in self.sanitizer_seen}
        self.sanitizer_seen.update(reports)
        return reports

    def check_sanitizer_reports(self):
        """Raises HarnessError with any new sanitizer report (keeping the
        server directory)."""
        reports = self.new_sanitizer_reports()
        if reports:
            self.saw_failure = True
            raise HarnessError(format_sanitizer_reports(
                reports, "%s (%s)" % (self.name, self.sanitizer_dir)))

    def restart(self, config=None, *, mpm=None, log_level=None):
        """Stops, optionally installs a new config, and starts again."""
        self.stop()
        if config is not None:
            self.config = config
        if mpm is not None:
            self.mpm = mpm
        if log_level is not None:
            self.log_level = log_level
        return self.start()

    def graceful(self, config=None):
        """A graceful restart (SIGUSR1), optionally with a new config.

        Returns once the parent has logged that it resumed operations."""
        if config is not None:
            self.config = config
            self.write_config()
        pattern = re.compile(r"resuming normal operations")
        before = len(pattern.findall(self.error_log()))
        result = self._httpd("-k", "graceful")
        if result.returncode != 0:
            raise HarnessError("httpd -k graceful failed (exit %d):\n%s%s"
                               % (result.returncode, result.stdout,
                                  result.stderr))
        wait_for(lambda: len(pattern.findall(self.error_log())) > before,
                 deadline=START_DEADLINE, what="the graceful restart")
        self.pid = self.read_pid()
        return self

    def cleanup(self):
        """Removes the server directory, unless a test failed while it ran."""
        if self.saw_failure or os.environ.get("TETHER_TEST_KEEP"):
            sys.stderr.write("\nkept %s for inspection\n" % self.root)
            return
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.saw_failure = True
        try:
            self.stop()
        except HarnessError:
            self.saw_failure = True
            raise
        finally:
            self.cleanup()

    # -- error log ------------------------------------------------------------

    def log_mark(self):
        """A position in the error log; pass it as `since` to read past it."""
        try:
            return os.path.getsize(self.error_log_path)
        except OSError:
            return 0

    def error_log(self, since=0):
        """The error log text (from `since`, a log_mark())."""
        try:
            with open(self.error_log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_for_log(self, pattern, since=0, deadline=WAIT_DEADLINE):
        """Polls the log (from `since`) until regex `pattern` matches
        (re.MULTILINE: ^ and $ match at each line).

        Returns the match; raises HarnessError (with the log) if it never
        does."""
        regex = re.compile(pattern, re.MULTILINE)
        try:
            return wait_for(lambda: regex.search(self.error_log(since)),
                            deadline=deadline, what="error_log /%s/" % pattern)
        except HarnessError as exc:
            raise HarnessError("%s\n--- error_log since mark:\n%s"
                               % (exc, self.error_log(since))) from None

    def access_mark(self):
        """A position in the access log, for wait_for_access(since=)."""
        try:
            return os.path.getsize(self.access_log_path)
        except OSError:
            return 0

    def access_log(self, since=0):
        """The access log text ("%h %l %u %t \"%r\" %>s %b %D" lines) from
        `since` (an access_mark())."""
        try:
            with open(self.access_log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_for_access(self, request_line, since=0, deadline=WAIT_DEADLINE):
        """Waits for the access log line of `request_line` ("GET /x
        HTTP/1.1") past `since`; returns its final status as an int."""
        regex = re.compile(r'"%s" (\d{3}) ' % re.escape(request_line))
        found = wait_for(lambda: regex.search(self.access_log(since)),
                         deadline=deadline,
                         what="the access log line of %s" % request_line)
        return int(found.group(1))

    # -- side channels ------------------------------------------------------

    def scratch_path(self, name):
        """A fresh path in the scratch directory (which the apps can write)."""
        self._scratch_count = getattr(self, "_scratch_count", 0) + 1
        return os.path.join(self.scratch, "%s-%d" % (name, self._scratch_count))

    def wait_for_json(self, path, deadline=WAIT_DEADLINE):
        """Waits until an app has written the JSON file `path`; returns it."""
        wait_for(lambda: os.path.exists(path), deadline=deadline,
                 what="the app to write %s" % path)
        with open(path) as f:
            return json.load(f)

    # -- clients --------------------------------------------------------------

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def http(self, timeout=IO_TIMEOUT):
        """An http.client connection to this server (caller closes it)."""
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        """One request on a fresh connection; returns a complete Response."""
        conn = self.http()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, resp.reason, resp.getheaders(), data)
        finally:
            conn.close()

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post(self, path, body, headers=None):
        return self.request("POST", path, body=body, headers=headers)

    def connect(self, timeout=IO_TIMEOUT):
        """A raw TCP socket to the server (caller closes it)."""
        return socket.create_connection(("127.0.0.1", self.port),
                                        timeout=timeout)

    def raw(self, data, timeout=IO_TIMEOUT):
        """Sends raw bytes and reads until the server closes: RawResponse."""
        with self.connect(timeout) as sock:
            sock.sendall(data)
            return RawResponse(read_until_close(sock))

    def raw_request(self, method, path, headers=(), body=b"",
                    version="HTTP/1.1"):
        """Builds and sends a request with Connection: close; RawResponse."""
        lines = ["%s %s %s" % (method, path, version),
                 "Host: 127.0.0.1:%d" % self.port, "Connection: close"]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return self.raw(head + body)


def read_until_close(sock, limit=None):
    """Reads from sock until EOF (or `limit` bytes); returns the bytes."""
    chunks = []
    total = 0
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
        total += len(data)
        if limit is not None and total >= limit:
            break
    return b"".join(chunks)


def read_head(sock):
    """Reads a response head (through the blank line) from a raw socket.

    Returns (RawResponse of the head, bytes of body already read)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise HarnessError("connection closed before the response head "
                               "ended: %r" % buf)
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return RawResponse(head + b"\r\n\r\n"), rest
