"""tether-express end to end: the real command line driving a real Apache.

Every server here is `tether-express start-server` (or the apachectl that
`setup-server` writes) run as a subprocess, in a directory of its own made
with mkdtemp under /tmp and opened to mode 0755, so that Apache's children
(www-data when the suite runs as root) can read the application copied
into it.  Each server is stopped by pid and checked to be gone.

The applications live in tests/apps/express/.  By default start-server runs
them in daemon processes (children of Apache's parent, titled
"(wsgi:HOST:PORT:UID)"); --embedded-mode runs them in Apache's children.
"""

import concurrent.futures
import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

import harness

APPS_SOURCE = os.path.join(harness.APPS_SOURCE, "express")
APP = "express_app.wsgi"
MODULE_APP = "express_module_app"

# Who start-server picks for the children when it runs as root without
# --user: the first of these that exists (tether.access.WEB_USERS).
WEB_USERS = ("www-data", "apache", "nobody")

# How long one tether-express command that starts no server may take.
COMMAND_DEADLINE = 120

GRACEFUL_LINE = re.compile(
    r"AH00493|AH00171|Graceful restart requested|Doing graceful restart")
RESUMING = re.compile(r"resuming normal operations")


@pytest.fixture(scope="module", autouse=True)
def _tether_express_available(tether_only):
    """httpd_env (via tether_only) skips without Apache and checks that
    Apache's user can read this Python; this skips a mod_wsgi reference
    run, since tether-express always loads mod_tether."""


# --- helpers ----------------------------------------------------------------

def express_argv(*args):
    """The command line running this venv's tether-express with `args`."""
    script = os.path.join(os.path.dirname(sys.executable), "tether-express")
    if os.access(script, os.X_OK):
        return [script] + [str(a) for a in args]
    return [sys.executable, "-m", "tether.cli"] + [str(a) for a in args]


def clean_env(sanitizer_dir=None):
    """Our environment without PYTHON* variables (as the harness does);
    with `sanitizer_dir`, also what TETHER_TEST_SANITIZE asks for (the
    sanitizer runtimes preloaded, reports into sanitizer_dir)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON")}
    env.setdefault("LANG", "C.UTF-8")
    if sanitizer_dir is not None:
        env.update(harness.sanitizer_env(sanitizer_dir))
    return env


def assert_no_sanitizer_reports(sanitizer_dir):
    reports = harness.sanitizer_reports(sanitizer_dir)
    assert not reports, harness.format_sanitizer_reports(reports,
                                                         sanitizer_dir)


def run_express(*args, cwd=None):
    """Runs a tether-express command that starts no server."""
    return subprocess.run(express_argv(*args), capture_output=True, text=True,
                          cwd=cwd or tempfile.gettempdir(), env=clean_env(),
                          stdin=subprocess.DEVNULL, timeout=COMMAND_DEADLINE,
                          check=False)


def make_workdir(name):
    """A fresh 0755 directory under /tmp holding a copy of the apps."""
    work = tempfile.mkdtemp(prefix="tether-express-%s-" % name, dir="/tmp")
    os.chmod(work, 0o755)
    apps = os.path.join(work, "apps")
    shutil.copytree(APPS_SOURCE, apps,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for dirpath, _, filenames in os.walk(apps):
        os.chmod(dirpath, 0o755)
        for filename in filenames:
            os.chmod(os.path.join(dirpath, filename), 0o644)
    return work


def write_file(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def parse_summary(text):
    """The `Label : value` lines start-server prints, as a dict."""
    summary = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Z][A-Za-z ]*?)\s+: (.*)$", line)
        if match:
            summary[match.group(1)] = match.group(2)
    return summary


def cmdline_text(pid):
    """The command line of pid as `ps -o args` shows it, or None."""
    raw = harness.proc_cmdline(pid)
    if raw is None:
        return None
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8",
                                                         "replace")


def processes_titled(title):
    """Pids (anywhere on the system) whose command line is `title`."""
    return [int(entry) for entry in os.listdir("/proc")
            if entry.isdigit() and cmdline_text(int(entry)) == title
            and harness.pid_alive(int(entry))]


def processes_naming(text):
    """Pids whose command line contains `text` (e.g. a config's path)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8",
                                                               "replace")
        except OSError:
            continue
        if text in cmdline and harness.pid_alive(int(entry)):
            found.append(int(entry))
    return found


def uids_of(pid):
    """The real, effective, saved and filesystem uids of pid, or None once
    it has exited."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    return [int(u) for u in line.split()[1:]]
    except FileNotFoundError:
        return None
    raise AssertionError("/proc/%d/status has no Uid line" % pid)


def children_uids(parent):
    """{child pid: its uids} for Apache's children now (waiting for one)."""
    def scan():
        found = {c: uids_of(c) for c in harness.child_pids(parent)}
        return {c: u for c, u in found.items() if u is not None}
    return harness.wait_for(scan, what="children of Apache pid %d" % parent)


def accepting(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def http_get(port, path):
    """(status, body bytes) of GET http://127.0.0.1:port/path."""
    url = "http://127.0.0.1:%d%s" % (port, path)
    try:
        with urllib.request.urlopen(url, timeout=harness.IO_TIMEOUT) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(port, path="/"):
    status, body = http_get(port, path)
    assert status == 200, (status, body[:500])
    return json.loads(body)


def wait_gone(pids, what):
    harness.wait_for(lambda: not [p for p in pids if harness.pid_alive(p)],
                     deadline=harness.STOP_DEADLINE, what=what)


# --- one start-server run ----------------------------------------------------

class ExpressServer:
    """`tether-express start-server` as a child of the test, in a 0755
    directory under /tmp: WORK/apps (the apps), WORK/server-root, and
    WORK/stdout, WORK/stderr (what tether-express printed).

    It takes part in the harness's LIVE_SERVERS, so a failing test shows
    its error log and a crashed Apache child fails the test."""

    def __init__(self, name, env=None):
        self.name = name
        self.env = dict(env or {})      # added to tether-express's env
        self.work = make_workdir(name)
        self.apps = os.path.join(self.work, "apps")
        self.root = os.path.join(self.work, "server-root")
        self.pid_path = os.path.join(self.root, "httpd.pid")
        self.conf_path = os.path.join(self.root, "httpd.conf")
        self.stdout_path = os.path.join(self.work, "stdout")
        self.stderr_path = os.path.join(self.work, "stderr")
        self.error_log_path = os.path.join(self.root, "logs", "error_log")
        self.port = None
        self.proc = None
        self.httpd_pid = None
        self.saw_failure = False
        self.sanitizer_dir = harness.sanitizer_dir_of(self.work)
        self.sanitizer_seen = set()

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    # -- process --------------------------------------------------------------

    def start(self, *args):
        """Runs start-server with `args` (+ --port, --server-root) and waits
        until Apache accepts connections."""
        for attempt in range(3):
            self.port = harness.free_port()
            argv = express_argv("start-server", *args, "--host", "127.0.0.1",
                                "--port", self.port,
                                "--server-root", self.root)
            env = clean_env(self.sanitizer_dir)
            env.update(self.env)
            with open(self.stdout_path, "w") as out, \
                    open(self.stderr_path, "w") as err:
                self.proc = subprocess.Popen(
                    argv, cwd=self.work, env=env,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            try:
                harness.wait_for(self._started_or_exited,
                                 deadline=harness.START_DEADLINE,
                                 what="tether-express to start Apache")
            except harness.HarnessError:
                self.stop_quietly()
                raise
            if self.proc.poll() is None:
                self.httpd_pid = self.read_pid()
                assert self.httpd_pid in harness.child_pids(self.proc.pid), \
                    "Apache (pid %d) is not tether-express's child" \
                    % self.httpd_pid
                harness.LIVE_SERVERS.append(self)
                return self
            output = self.output()
            if "Address already in use" in output + self.error_log() \
                    and attempt < 2:
                continue
            raise harness.HarnessError(
                "tether-express start-server exited with %d before Apache "
                "accepted connections:\n%s\n--- error_log:\n%s"
                % (self.proc.returncode, output, self.error_log()))

    def _started_or_exited(self):
        if self.proc.poll() is not None:
            return True
        return self.read_pid() is not None and accepting(self.port)

    def read_pid(self):
        try:
            with open(self.pid_path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def apache_pids(self):
        """Apache's parent and its children (daemons included) now."""
        return [self.httpd_pid] + harness.child_pids(self.httpd_pid)

    @property
    def display_name(self):
        """The daemon processes' title, as the summary names it."""
        match = re.search(r"processes shown as (\(wsgi:.*\))$",
                          self.summary().get("Process Group", ""))
        assert match, self.stdout()
        return match.group(1)

    def daemon_pids(self):
        """Apache's children that are daemon processes of the group."""
        title = self.display_name
        return [p for p in harness.child_pids(self.httpd_pid)
                if cmdline_text(p) == title]

    def wait_daemons(self, count, exclude=()):
        """Waits until `count` daemon processes (none of `exclude`) run;
        returns their pids."""
        def ready():
            pids = [p for p in self.daemon_pids() if p not in exclude]
            return pids if len(pids) == count else None
        return harness.wait_for(ready, what="%d daemon process(es) of %s"
                                % (count, self.name))

    def worker_pids(self):
        """Apache's children that serve HTTP (not the daemons)."""
        daemons = set(self.daemon_pids())
        return [p for p in harness.child_pids(self.httpd_pid)
                if p not in daemons]

    def signal_and_wait(self, signum):
        """Sends signum to tether-express; returns its exit status once it,
        Apache and all of Apache's children are gone."""
        procs = self.apache_pids()
        if self in harness.LIVE_SERVERS:
            harness.LIVE_SERVERS.remove(self)
        self.proc.send_signal(signum)
        try:
            status = self.proc.wait(timeout=harness.STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            self.stop_quietly()
            raise harness.HarnessError(
                "tether-express did not exit within %.0fs of signal %d"
                % (harness.STOP_DEADLINE, signum))
        wait_gone(procs, "Apache's processes %s to exit" % procs)
        return status

    def stop_quietly(self):
        """Stops whatever is left (tether-express, then Apache by its pid
        file), for teardown after a failure.  Returns the pids that had to
        be killed."""
        if self in harness.LIVE_SERVERS:
            harness.LIVE_SERVERS.remove(self)
        pid = self.httpd_pid or self.read_pid()
        procs = [pid] + harness.child_pids(pid) if pid else []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=harness.STOP_DEADLINE)
        if pid and harness.pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(harness.HarnessError):
            wait_gone(procs, "Apache to stop")
        left = [p for p in procs if harness.pid_alive(p)]
        if self.proc is not None and self.proc.poll() is None:
            left.append(self.proc.pid)
            self.proc.kill()
            self.proc.wait()
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        return left

    def new_sanitizer_reports(self):
        """{name: text} of the sanitizer reports not returned before."""
        reports = {name: text for name, text
                   in harness.sanitizer_reports(self.sanitizer_dir).items()
                   if name not in self.sanitizer_seen}
        self.sanitizer_seen.update(reports)
        return reports

    def close(self):
        """Teardown: stops what still runs, asserts it is gone and wrote no
        sanitizer report, cleans up."""
        left = self.stop_quietly()
        reports = self.new_sanitizer_reports()
        if left or reports:
            self.saw_failure = True
        assert not reports, harness.format_sanitizer_reports(
            reports, "%s (%s)" % (self.name, self.sanitizer_dir))
        if self.saw_failure or os.environ.get("TETHER_TEST_KEEP"):
            sys.stderr.write("\nkept %s for inspection\n" % self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        assert not left, "tether-express %s left pids %s running (killed)" \
            % (self.name, left)

    # -- output and logs ------------------------------------------------------

    def stdout(self):
        with open(self.stdout_path, errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def output(self):
        return "--- stdout:\n%s--- stderr:\n%s" % (self.stdout(),
                                                    self.stderr())

    def summary(self):
        return parse_summary(self.stdout())

    def _log_path(self):
        # --log-to-terminal: the error log is tether-express's stderr.
        if os.path.exists(self.error_log_path):
            return self.error_log_path
        return self.stderr_path

    def log_mark(self):
        try:
            return os.path.getsize(self._log_path())
        except OSError:
            return 0

    def error_log(self, since=0):
        try:
            with open(self._log_path(), "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_for_log(self, regex, since=0, count=1):
        """Waits until `regex` matched `count` times in the log since
        `since`; returns the log text from there."""
        harness.wait_for(
            lambda: len(regex.findall(self.error_log(since))) >= count,
            deadline=harness.WAIT_DEADLINE,
            what="/%s/ in %s" % (regex.pattern, self._log_path()))
        return self.error_log(since)

    def get(self, path="/"):
        return get_json(self.port, path)


@contextlib.contextmanager
def express_server(name, *args, make_files=None, env=None):
    """An ExpressServer started with `args`, closed (and checked) after.

    `make_files(server)` runs before the start, to add files to the work
    directory; it returns extra arguments (e.g. paths it made).  `env`
    adds variables to tether-express's environment."""
    server = ExpressServer(name, env=env)
    try:
        extra = make_files(server) if make_files else ()
        resolved = [a(server) if callable(a) else a for a in args]
        server.start(*resolved, *extra)
        yield server
    except BaseException:
        server.saw_failure = True
        raise
    finally:
        server.close()


def web_user():
    for name in WEB_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("none of %s exists" % ", ".join(WEB_USERS))


needs_root = pytest.mark.skipif(
    not harness.running_as_root(),
    reason="only root can make Apache's children switch users")
needs_non_root = pytest.mark.skipif(
    harness.running_as_root(),
    reason="as root the children run as the web user (tested apart)")


# --- start-server: the default run, signals ----------------------------------

@pytest.fixture(scope="module")
def basic():
    with express_server("basic", lambda s: os.path.join(s.apps, APP)) as srv:
        yield srv


class TestStartServer:
    """One start-server run with defaults (daemon mode, error log in the
    server root): serving from a daemon process, the summary, who the
    children and daemons run as, a graceful restart on SIGHUP that replaces
    the daemons, and the stop on SIGTERM that ends them too (last)."""

    def test_express_start_server_serves_the_app(self, basic):
        answer = basic.get("/some/path")
        assert answer["app"] == "express_app"
        assert answer["callable"] == "application"
        assert answer["path_info"] == "/some/path"

    def test_express_default_runs_app_in_a_daemon_process(self, basic):
        answer = basic.get("/")
        title = "(wsgi:127.0.0.1:%d:%d)" % (basic.port, os.geteuid())
        assert basic.display_name == title
        # The pid that answered is titled as the group's daemons are, is a
        # child of Apache's parent, and is not one of Apache's workers.
        assert cmdline_text(answer["pid"]) == title
        assert answer["pid"] in basic.wait_daemons(1)
        assert answer["pid"] in harness.child_pids(basic.httpd_pid)
        workers = basic.worker_pids()
        assert workers and answer["pid"] not in workers
        for worker in workers:
            assert basic.conf_path in cmdline_text(worker)
        assert answer["process_group"] == "127.0.0.1:%d" % basic.port
        assert answer["multithread"] is True     # 5 threads
        assert answer["multiprocess"] is False   # 1 process
        # Every request goes to the same daemon process.
        assert {basic.get("/")["pid"] for _ in range(5)} == {answer["pid"]}

    def test_express_start_server_summary_names_url_root_mode_capacity_log(
            self, basic, httpd_env):
        summary = basic.summary()
        assert summary["Server URL"] == "http://127.0.0.1:%d/" % basic.port
        assert summary["Server Root"] == basic.root
        assert summary["Server Conf"] == basic.conf_path
        assert summary["Operating Mode"] == "daemon"
        assert summary["Error Log"] == "%s (warn)" % basic.error_log_path
        assert os.path.isfile(basic.error_log_path)
        assert summary["Application"] == "%s (callable application)" \
            % os.path.join(basic.apps, APP)
        assert summary["Python Home"] == sys.prefix
        assert summary["Request Capacity"] == "5 (1 process x 5 threads)"
        assert summary["Request Timeout"] == "60 (seconds)"
        assert summary["Startup Timeout"] == "15 (seconds)"
        assert summary["Queue Backlog"] == "100 (connections)"
        assert summary["Queue Timeout"] == "45 (seconds)"
        assert summary["Socket Timeout"] == "60 (seconds)"
        assert summary["Connect Timeout"] == "15 (seconds)"
        assert summary["Server Backlog"] == "500 (connections)"
        assert summary["Daemon Sockets"] == os.path.join(basic.root,
                                                         "wsgi.*")
        if httpd_env.has_mpm("event"):
            assert summary["Server Capacity"] == \
                "20 (event MPM: up to 2 processes x 10 threads)"
        else:
            assert summary["Server Capacity"].startswith("20 (")
        # The group's socket is in the server root.
        assert glob.glob(os.path.join(basic.root, "wsgi.*.sock"))

    @needs_root
    def test_express_start_server_as_root_runs_children_as_web_user(
            self, basic):
        user = web_user()
        daemons = basic.wait_daemons(1)
        children = children_uids(basic.httpd_pid)
        assert set(daemons) < set(children)
        for child, uids in children.items():
            assert uids == [user.pw_uid] * 4, child
        assert uids_of(basic.httpd_pid)[0] == 0
        assert basic.get()["uid"] == user.pw_uid
        run_as = basic.summary()["Run As"]
        assert run_as.startswith("%s:" % user.pw_name)
        assert "started as root without --user" in run_as

    @needs_non_root
    def test_express_start_server_as_user_runs_children_as_that_user(
            self, basic):
        for child, uids in children_uids(basic.httpd_pid).items():
            assert uids[1] == os.geteuid(), child
        assert basic.get()["uid"] == os.geteuid()
        assert basic.summary()["Run As"].startswith(
            "%s:" % pwd.getpwuid(os.geteuid()).pw_name)

    def test_express_sighup_is_graceful_restart_keeping_parent(self, basic):
        mark = basic.log_mark()
        before = basic.get()
        old_daemons = basic.wait_daemons(1)
        assert before["pid"] in old_daemons
        basic.proc.send_signal(signal.SIGHUP)
        log = basic.wait_for_log(RESUMING, since=mark)
        assert GRACEFUL_LINE.search(log), log
        assert "caught SIGTERM" not in log
        assert basic.proc.poll() is None, "tether-express exited on SIGHUP"
        assert basic.read_pid() == basic.httpd_pid
        assert harness.pid_alive(basic.httpd_pid)
        # New daemons replace the old ones, which finish and exit.
        new_daemons = basic.wait_daemons(1, exclude=old_daemons)
        wait_gone(old_daemons, "the daemons of before the restart to exit")
        after = basic.get()
        assert after["app"] == "express_app"
        assert after["pid"] in new_daemons
        assert after["pid"] in harness.child_pids(basic.httpd_pid)
        assert before["app"] == after["app"]

    def test_express_sigterm_stops_apache_and_removes_pid_file(self, basic):
        assert basic.get()["app"] == "express_app"
        conf = basic.conf_path
        title = basic.display_name
        daemons = basic.wait_daemons(1)
        status = basic.signal_and_wait(signal.SIGTERM)
        assert status == 0, basic.output()
        assert not harness.pid_alive(basic.httpd_pid)
        assert not os.path.exists(basic.pid_path)
        assert processes_naming(conf) == []
        # The daemons stopped with Apache: nothing has their title.
        assert not any(harness.pid_alive(p) for p in daemons)
        assert processes_titled(title) == []
        assert not accepting(basic.port)
        assert "caught SIGTERM, shutting down" in basic.error_log()
        assert not glob.glob(os.path.join(basic.root, "wsgi.*.sock"))


def test_express_log_to_terminal_and_sigint_stop():
    """--log-to-terminal: Apache's error log is tether-express's stderr
    (no error_log file); SIGINT (Ctrl-C) stops everything, status 0."""
    with express_server("terminal", lambda s: os.path.join(s.apps, APP),
                        "--log-to-terminal", "--log-level", "info") as srv:
        assert srv.get()["app"] == "express_app"
        assert srv.summary()["Error Log"] == "terminal (info)"
        assert not os.path.exists(srv.error_log_path)
        assert not os.path.exists(os.path.join(srv.root, "logs"))
        stderr = srv.stderr()
        assert RESUMING.search(stderr), stderr
        assert "[pid %d" % srv.httpd_pid in stderr
        conf = srv.conf_path
        status = srv.signal_and_wait(signal.SIGINT)
        assert status == 0, srv.output()
        assert not os.path.exists(srv.pid_path)
        assert processes_naming(conf) == []
        assert "caught SIGTERM, shutting down" in srv.stderr()
        assert "Traceback" not in srv.stderr()


@pytest.mark.skipif(
    not harness.running_as_root(),
    reason="a 0700 directory is unreadable to Apache only when its children "
           "run as another user, which takes root")
def test_express_as_root_refuses_app_in_private_directory():
    """An app in a 0700 directory, which the web user cannot read: a clear
    refusal naming the directory and what to do, and no Apache."""
    user = web_user()
    server = ExpressServer("private")
    try:
        private = server.path("private")
        os.mkdir(private, 0o700)
        os.chmod(private, 0o700)
        script = shutil.copy(os.path.join(server.apps, APP), private)
        port = harness.free_port()
        result = run_express("start-server", script, "--host", "127.0.0.1",
                             "--port", port, "--server-root", server.root,
                             cwd=server.work)
        assert result.returncode != 0, result.stdout + result.stderr
        err = result.stderr
        assert err.startswith("tether-express: error: "), err
        assert private in err
        assert user.pw_name in err
        assert "chmod" in err and "--user" in err
        assert "Traceback" not in err
        assert "Server URL" not in result.stdout
        assert not accepting(port)
        assert not os.path.exists(server.pid_path)
        assert processes_naming(server.conf_path) == []
    finally:
        server.close()


# --- setup-server and its apachectl ------------------------------------------

def test_express_setup_server_writes_root_and_apachectl_runs_it(httpd_env):
    work = make_workdir("setup")
    root = os.path.join(work, "server-root")
    conf = os.path.join(root, "httpd.conf")
    pid_path = os.path.join(root, "httpd.pid")
    apachectl = os.path.join(root, "apachectl")
    sanitizer_dir = harness.sanitizer_dir_of(work)
    pids = []
    ok = False
    try:
        port = harness.free_port()
        result = run_express("setup-server", os.path.join(work, "apps", APP),
                             "--host", "127.0.0.1", "--port", port,
                             "--server-root", root, cwd=work)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Start it with: %s start" % apachectl in result.stdout
        assert os.path.isfile(conf)
        assert os.access(apachectl, os.X_OK)
        assert os.path.isdir(os.path.join(root, "logs"))
        assert not os.path.exists(pid_path), "setup-server started Apache"

        test = subprocess.run([httpd_env.install.binary, "-t", "-f", conf],
                              capture_output=True, text=True,
                              env=clean_env(sanitizer_dir),
                              timeout=harness.START_DEADLINE, check=False)
        assert test.returncode == 0, test.stdout + test.stderr
        assert "Syntax OK" in test.stderr + test.stdout

        start = subprocess.run([apachectl, "start"], capture_output=True,
                               text=True, env=clean_env(sanitizer_dir),
                               cwd=work,
                               timeout=harness.START_DEADLINE, check=False)
        assert start.returncode == 0, start.stdout + start.stderr
        harness.wait_for(lambda: os.path.exists(pid_path) and accepting(port),
                         deadline=harness.START_DEADLINE,
                         what="apachectl start to serve on %d" % port)
        with open(pid_path) as f:
            httpd_pid = int(f.read())
        pids = [httpd_pid] + harness.child_pids(httpd_pid)
        answer = get_json(port, "/")
        assert answer["app"] == "express_app"
        assert answer["pid"] in harness.child_pids(httpd_pid)

        stop = subprocess.run([apachectl, "stop"], capture_output=True,
                              text=True, env=clean_env(sanitizer_dir),
                              cwd=work,
                              timeout=harness.STOP_DEADLINE, check=False)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        wait_gone(pids, "apachectl stop to stop Apache")
        harness.wait_for(lambda: not os.path.exists(pid_path),
                         what="Apache to remove its pid file")
        assert processes_naming(conf) == []
        assert not accepting(port)
        assert_no_sanitizer_reports(sanitizer_dir)
        ok = True
    finally:
        for pid in pids:
            if harness.pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(harness.HarnessError):
            wait_gone(pids, "Apache to stop after the test")
        left = [p for p in pids if harness.pid_alive(p)]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if ok and not left:
            shutil.rmtree(work, ignore_errors=True)
        assert not left, "Apache pids %s outlived the test (killed)" % left


# --- options that matter end to end ------------------------------------------

def _options_files(server):
    """A static directory for --url-alias and a document root."""
    write_file(server.path("static", "note.txt"), "served by --url-alias\n")
    write_file(server.path("docroot", "robots.txt"),
               "served from --document-root\n")
    for d in ("static", "docroot"):
        os.chmod(server.path(d), 0o755)
    return ()


@pytest.fixture(scope="module")
def options():
    with express_server(
            "options", lambda s: os.path.join(s.apps, APP),
            "--callable-object", "handler",
            "--setenv", "TETHER_GREETING", "hello from --setenv",
            "--url-alias", "/static", lambda s: s.path("static"),
            "--document-root", lambda s: s.path("docroot"),
            "--reload-on-changes",
            make_files=_options_files) as srv:
        yield srv


class TestServerOptions:
    """One server with --callable-object, --setenv, --url-alias,
    --document-root and --reload-on-changes."""

    def test_express_callable_object_names_the_callable(self, options):
        assert options.get("/")["callable"] == "handler"
        assert "(callable handler)" in options.summary()["Application"]

    def test_express_setenv_reaches_the_environ(self, options):
        assert options.get("/")["greeting"] == "hello from --setenv"

    def test_express_url_alias_serves_static_file(self, options):
        status, body = http_get(options.port, "/static/note.txt")
        assert (status, body) == (200, b"served by --url-alias\n")
        status, _ = http_get(options.port, "/static/absent.txt")
        assert status == 404

    def test_express_document_root_serves_files_and_app_the_rest(
            self, options):
        status, body = http_get(options.port, "/robots.txt")
        assert (status, body) == (200, b"served from --document-root\n")
        answer = options.get("/not-a-file.txt")
        assert answer["app"] == "express_app"
        assert answer["path_info"] == "/not-a-file.txt"
        assert options.summary()["Document Root"] == options.path("docroot")

    def test_express_reload_on_changes_picks_up_edited_script(self, options):
        script = os.path.join(options.apps, APP)
        assert options.get("/")["version"] == 1
        with open(script) as f:
            text = f.read()
        assert "\nVERSION = 1\n" in text
        old = os.stat(script).st_mtime
        write_file(script, text.replace("\nVERSION = 1\n", "\nVERSION = 2\n"))
        # A different modification time even on a coarse-grained clock.
        os.utime(script, (old + 10, old + 10))
        assert options.get("/")["version"] == 2
        assert options.get("/")["callable"] == "handler"


@pytest.fixture(scope="module")
def prefork(httpd_env):
    return httpd_env.has_mpm("prefork")


@pytest.fixture(scope="module")
def modapp(prefork):
    mpm = ["--server-mpm", "prefork"] if prefork else []
    with express_server(
            "module", "--application-type", "module",
            "--entry-point", MODULE_APP,
            "--python-path", lambda s: os.path.join(s.apps, "modules"),
            "--embedded-mode", "--processes", "2", "--threads", "2",
            *mpm) as srv:
        yield srv


class TestModuleApplicationProcesses:
    """--application-type module with --python-path, and --embedded-mode
    --processes 2 --threads 2 under the prefork MPM (4 single-threaded
    children)."""

    def test_express_module_entry_point_imported_from_python_path(
            self, modapp):
        answer = modapp.get("/")
        assert answer["app"] == MODULE_APP
        assert answer["module_file"].startswith(
            os.path.join(modapp.apps, "modules") + os.sep)
        assert modapp.summary()["Application"].startswith(
            "module %s (callable application)" % MODULE_APP)
        assert os.path.isfile(os.path.join(modapp.root, "module-app.wsgi"))

    def test_express_prefork_processes_threads_give_four_children(
            self, modapp, prefork):
        if not prefork:
            pytest.skip("this Apache has no mpm_prefork")
        children = harness.wait_for(
            lambda: (lambda c: c if len(c) == 4 else None)(
                harness.child_pids(modapp.httpd_pid)),
            what="4 prefork children")
        assert len(children) == 4
        answers = [modapp.get("/") for _ in range(4)]
        for answer in answers:
            assert answer["multithread"] is False
            assert answer["multiprocess"] is True
            assert answer["pid"] in children
        assert modapp.summary()["Request Capacity"] == \
            "4 (4 processes x 1 thread, prefork MPM; at most 4)"


# --- daemon mode and --embedded-mode -----------------------------------------

def test_express_embedded_mode_runs_app_in_apache_children():
    with express_server("embedded", lambda s: os.path.join(s.apps, APP),
                        "--embedded-mode") as srv:
        answer = srv.get("/")
        assert answer["app"] == "express_app"
        assert answer["pid"] in harness.child_pids(srv.httpd_pid)
        assert srv.conf_path in cmdline_text(answer["pid"])
        assert answer["process_group"] == ""
        assert not [p for p in harness.child_pids(srv.httpd_pid)
                    if "(wsgi:" in (cmdline_text(p) or "")]
        summary = srv.summary()
        assert summary["Operating Mode"] == "embedded"
        assert "Process Group" not in summary
        assert not glob.glob(os.path.join(srv.root, "wsgi.*"))


@pytest.fixture(scope="module")
def pool():
    with express_server("pool", lambda s: os.path.join(s.apps, APP),
                        "--processes", "2", "--threads", "3",
                        "--process-name", "tether-express-pool-test") as srv:
        yield srv


class TestDaemonProcessesAndThreads:
    """--processes 2 --threads 3 --process-name: two daemon processes of
    three threads each, and Apache's parent under the given name."""

    def test_express_processes_threads_start_two_multithreaded_daemons(
            self, pool):
        daemons = pool.wait_daemons(2)
        with concurrent.futures.ThreadPoolExecutor(6) as executor:
            answers = list(executor.map(lambda _: pool.get("/sleep/0.3"),
                                        range(12)))
        for answer in answers:
            assert answer["pid"] in daemons
            assert answer["multithread"] is True
            assert answer["multiprocess"] is True
        assert sorted(pool.daemon_pids()) == sorted(daemons)
        assert pool.summary()["Request Capacity"] == \
            "6 (2 processes x 3 threads)"

    def test_express_process_name_names_apache_parent(self, pool):
        raw = harness.proc_cmdline(pool.httpd_pid)
        assert raw.startswith(b"tether-express-pool-test\0-f\0%s\0"
                              % pool.conf_path.encode()), raw
        assert pool.summary()["Process Name"] == "tether-express-pool-test"
        # Its children (the workers) inherit the name; the daemons do not.
        for worker in pool.worker_pids():
            assert cmdline_text(worker).startswith(
                "tether-express-pool-test -f ")
        for daemon in pool.daemon_pids():
            assert cmdline_text(daemon) == pool.display_name


def test_express_maximum_requests_recycles_daemon_without_failures():
    with express_server("recycle", lambda s: os.path.join(s.apps, APP),
                        "--maximum-requests", "3") as srv:
        first = srv.wait_daemons(1)
        statuses, pids = [], []
        with concurrent.futures.ThreadPoolExecutor(3) as executor:
            for status, body in executor.map(
                    lambda _: http_get(srv.port, "/"), range(15)):
                statuses.append(status)
                if status == 200:
                    pids.append(json.loads(body)["pid"])
        assert statuses == [200] * 15, statuses
        # 15 requests, a new process after each 3: several pids.
        assert len(set(pids)) >= 3, pids
        assert first[0] in pids
        assert srv.summary()["Maximum Requests"] == "3"
        # The group is whole again: one daemon, not the first.
        assert srv.wait_daemons(1, exclude=first)


def test_express_request_timeout_answers_504_and_recovers():
    with express_server("timeout", lambda s: os.path.join(s.apps, APP),
                        "--request-timeout", "2") as srv:
        first = srv.get("/")["pid"]
        started = time.monotonic()
        status, _ = http_get(srv.port, "/sleep/20")
        took = time.monotonic() - started
        assert status == 504
        assert took < 15, took
        srv.wait_for_log(re.compile(r"request-timeout"))
        # The stuck process is recycled; a new one serves.
        def from_a_new_process():
            status, body = http_get(srv.port, "/")
            answer = json.loads(body) if status == 200 else {}
            return answer if answer.get("pid", first) != first else None
        answer = harness.wait_for(from_a_new_process,
                                  what="a new daemon process to serve")
        assert answer["app"] == "express_app"
        assert srv.summary()["Request Timeout"] == "2 (seconds)"


# --- module-config and install-module into a harness config ------------------

LOAD_LINE = re.compile(r'^LoadModule tether_module "([^"]+)"$', re.M)
HOME_LINE = re.compile(r'^WSGIPythonHome "([^"]+)"$', re.M)

APP_CONFIG = """
WSGIScriptAlias /express @APPS@/express/express_app.wsgi
"""


class PastedLoadServer(harness.ApacheServer):
    """The harness's server, but mod_tether is loaded by pasted text (what
    module-config or install-module printed) instead of the harness's own
    LoadModule and WSGIPythonHome lines."""

    load_text = ""

    def render_config(self):
        text = super().render_config()
        own = ["LoadModule %s %s" % (self.module.name, self.module.path),
               'WSGIPythonHome "%s"' % sys.prefix]
        for line in own:
            assert text.count(line + "\n") == 1, \
                "the harness config has no line %r to replace" % line
        text = text.replace(own[1] + "\n", "")
        return text.replace(own[0] + "\n", self.load_text)


@pytest.fixture
def pasted_server(httpd_env):
    srv = PastedLoadServer(httpd_env.install, httpd_env.module,
                           config=APP_CONFIG, name="module-config")
    yield srv
    srv.stop()
    srv.cleanup()


def test_express_module_config_loads_module_into_apache(pasted_server):
    import tether

    result = run_express("module-config")
    assert result.returncode == 0, result.stderr
    paths = LOAD_LINE.findall(result.stdout)
    assert len(paths) == 1, result.stdout
    assert os.path.isfile(paths[0])
    assert os.path.samefile(paths[0], tether.module_location())
    homes = HOME_LINE.findall(result.stdout)
    if sys.prefix != sys.base_prefix:         # a venv: Apache must be told
        assert homes == [sys.prefix], result.stdout

    pasted_server.load_text = result.stdout
    status, output = pasted_server.configtest()
    assert status == 0, output
    with pasted_server:
        response = pasted_server.get("/express/x")
        assert response.status == 200, response
        assert response.json()["path_info"] == "/x"
        pid = pasted_server.pid
        with open(pasted_server.conf_path) as f:
            assert result.stdout in f.read()
    assert not harness.pid_alive(pid)


def test_express_install_module_copies_and_prints_working_config(
        pasted_server):
    import tether

    target = tempfile.mkdtemp(prefix="tether-express-modules-", dir="/tmp")
    try:
        os.chmod(target, 0o755)
        result = run_express("install-module", "--modules-directory", target)
        assert result.returncode == 0, result.stderr
        paths = LOAD_LINE.findall(result.stdout)
        assert len(paths) == 1, result.stdout
        installed = paths[0]
        assert os.path.dirname(installed) == target
        assert re.fullmatch(r"mod_tether-py\d+\.so",
                            os.path.basename(installed))
        assert os.listdir(target) == [os.path.basename(installed)]
        with open(installed, "rb") as a, \
                open(tether.module_location(), "rb") as b:
            assert a.read() == b.read()
        assert os.stat(installed).st_mode & 0o777 == 0o644

        pasted_server.load_text = result.stdout
        status, output = pasted_server.configtest()
        assert status == 0, output
        assert "Syntax OK" in output
    finally:
        shutil.rmtree(target, ignore_errors=True)


# --- errors the user sees ----------------------------------------------------

@pytest.mark.parametrize("command", ["start-server", "setup-server"])
def test_express_unsupported_mod_wsgi_option_is_refused_by_name(command):
    work = make_workdir("unsupported")
    try:
        result = run_express(command, os.path.join(work, "apps", APP),
                             "--interrupt-timeout", "10",
                             "--server-root", os.path.join(work, "root"),
                             cwd=work)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "--interrupt-timeout" in result.stderr
        assert "does not support" in result.stderr
        assert "Traceback" not in result.stderr
        assert not os.path.exists(os.path.join(work, "root"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_express_missing_apache_names_the_package():
    work = make_workdir("no-apache")
    try:
        result = run_express("start-server", os.path.join(work, "apps", APP),
                             "--httpd-executable", "/nonexistent/httpd",
                             "--server-root", os.path.join(work, "root"),
                             cwd=work)
        assert result.returncode == 1, result.stdout + result.stderr
        err = result.stderr
        assert err.startswith("tether-express: error: "), err
        assert err.count("\n") == 1, err        # one line
        assert "/nonexistent/httpd" in err
        assert re.search(r"\b(apache2|httpd|apache) package\b", err), err
        # One sentence: a single full stop, at the end.
        assert err.rstrip().endswith(".") and err.count(".") == 1, err
        assert "Traceback" not in err
    finally:
        shutil.rmtree(work, ignore_errors=True)
