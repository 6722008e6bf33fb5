"""The servers under test, each started for one workload and stopped after.

Every Apache (Tether, mod_wsgi, the static file) runs an httpd.conf rendered
from benchmarks/templates/httpd.conf.in; only the module block (LoadModule +
WSGIPythonHome) and the site block differ, and the site blocks of Tether and
mod_wsgi are the same file.  gunicorn runs the same application file with
the same processes x threads and keep-alive timeout.

Capacity, for P processes x T threads (the --processes/--threads options)
and A Apache threads per child (--apache-threads, by default the largest
concurrency of the run):
- every Apache (embedded, daemon, static) runs the event MPM with P children
  of A threads, so that each child can hold every connection of the run: the
  event MPM closes idle keep-alive connections whenever all the threads of a
  child are busy, which wrk counts as read errors;
- embedded: the same threads run Python, so P*A requests run Python at once;
- daemon: a daemon group of P processes x T threads; Apache's children only
  relay;
- static: Apache serves the file itself;
- gunicorn: --workers P --worker-class gthread --threads T (its event loop
  holds idle keep-alive connections without a thread).
"""

import http.client
import os
import subprocess
import time

from .util import (BenchError, accepting, clean_env, free_port, pid_alive,
                   process_tree, render, run, stop_tree)

START_DEADLINE = 60.0
READY_DEADLINE = 60.0


class ServerKind:
    """One column of the table: what runs and how it is labelled."""

    def __init__(self, name, label, module, mode):
        self.name = name          # "tether-daemon"
        self.label = label        # "Tether daemon"
        self.module = module      # "tether", "mod_wsgi" or None
        self.mode = mode          # "embedded", "daemon", "static", "gthread"


SERVER_KINDS = [
    ServerKind("tether-embedded", "Tether embedded", "tether", "embedded"),
    ServerKind("tether-daemon", "Tether daemon", "tether", "daemon"),
    ServerKind("modwsgi-embedded", "mod_wsgi embedded", "mod_wsgi",
               "embedded"),
    ServerKind("modwsgi-daemon", "mod_wsgi daemon", "mod_wsgi", "daemon"),
    ServerKind("gunicorn", "gunicorn gthread", None, "gthread"),
    ServerKind("static", "Apache static file", None, "static"),
]
KINDS_BY_NAME = {kind.name: kind for kind in SERVER_KINDS}


class Server:
    """Common to both kinds of server: a directory, a port, a process tree."""

    def __init__(self, kind, tools, workdir, tag, processes):
        self.kind = kind
        self.processes = processes
        self.tools = tools
        self.workdir = workdir
        self.root = os.path.join(workdir, "srv", tag)
        for sub in ("", "conf", "logs", "run"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
            os.chmod(os.path.join(self.root, sub), 0o755)
        self.apps = os.path.join(workdir, "apps")
        self.htdocs = os.path.join(workdir, "htdocs")
        self.error_log_path = os.path.join(self.root, "logs", "error_log")
        self.port = None
        self.pid = None

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def expected_processes(self):
        """The main process, P workers, and P daemon processes in daemon
        mode."""
        return 1 + self.processes * (2 if self.kind.mode == "daemon" else 1)

    def pids(self):
        """The server's processes now: the main pid and its descendants."""
        return process_tree(self.pid)

    def error_log(self):
        try:
            with open(self.error_log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _wait_accepting(self, alive):
        end = time.monotonic() + START_DEADLINE
        while time.monotonic() < end:
            if not alive():
                break
            if accepting(self.port):
                return
            time.sleep(0.05)
        raise BenchError("%s did not start accepting on port %d within %.0fs"
                         "\n--- error_log:\n%s"
                         % (self.kind.label, self.port, START_DEADLINE,
                            self.error_log()[-4000:]))


class ApacheServer(Server):
    """Apache httpd from the shared template, on a free port."""

    def __init__(self, kind, tools, workdir, tag, workload, processes,
                 threads, apache_threads):
        super().__init__(kind, tools, workdir, tag, processes)
        self.workload = workload
        self.threads = threads
        self.apache_threads = apache_threads
        self.conf_path = os.path.join(self.root, "conf", "httpd.conf")
        self.pid_path = os.path.join(self.root, "run", "httpd.pid")
        with open(os.path.join(self.root, "conf", "mime.types"), "w") as f:
            f.write("text/plain txt\napplication/octet-stream bin\n")

    def render_config(self):
        apache = self.tools.apache
        processes, threads = self.processes, self.threads
        mpm_threads = self.apache_threads
        if self.kind.mode == "daemon":
            note = ("daemon group %d x %d; Apache relays with %d x %d threads"
                    % (processes, threads, processes, mpm_threads))
        else:
            note = "%d processes x %d threads" % (processes, mpm_threads)
        modules = [apache.module_line(m) for m in
                   ("mpm_event", "unixd", "authz_core", "mime")]
        if self.tools.apache_user:
            identity = "User %s\nGroup %s" % self.tools.apache_user
        else:
            identity = "# not root: the children run as the invoking user"
        common = {"ROOT": self.root, "APPS": self.apps,
                  "PROCESSES": processes, "THREADS": threads,
                  "CALLABLE": self.workload.callable}
        if self.kind.module == "tether":
            env = self.tools.tether
            module = render("module.conf.in", {
                "MODULE_NAME": "tether_module",
                "MODULE_PATH": env.module_path, "PYTHON_HOME": env.prefix})
        elif self.kind.module == "mod_wsgi":
            env = self.tools.modwsgi
            module = render("module.conf.in", {
                "MODULE_NAME": "wsgi_module",
                "MODULE_PATH": env.module_path, "PYTHON_HOME": env.prefix})
        else:
            module = "# none: Apache serves the file itself"
        site = render("site-%s.conf.in" % self.kind.mode, common)
        return render("httpd.conf.in", {
            "ROOT": self.root,
            "PORT": self.port,
            "BASE_MODULES": "\n".join(line for line in modules if line),
            "IDENTITY": identity,
            "CAPACITY_NOTE": note,
            "MPM_PROCESSES": processes,
            "MPM_THREADS": mpm_threads,
            "MPM_MAX_SPARE": processes * mpm_threads + mpm_threads,
            "MPM_WORKERS": processes * mpm_threads,
            "HTDOCS": self.htdocs,
            "APPS": self.apps,
            "MODULE": module,
            "SITE": site,
        })

    def _httpd(self, *args):
        return run([self.tools.apache.binary, "-d", self.root,
                    "-f", self.conf_path] + list(args),
                   check=False, timeout=START_DEADLINE, env=clean_env(),
                   cwd=self.root)

    def _read_pid(self):
        try:
            with open(self.pid_path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def start(self):
        for attempt in range(3):
            self.port = free_port()
            with open(self.conf_path, "w") as f:
                f.write(self.render_config())
            result = self._httpd("-k", "start")
            if result.returncode != 0:
                raise BenchError("%s: httpd -k start failed (exit %d):\n%s%s"
                                 "\n--- error_log:\n%s"
                                 % (self.kind.label, result.returncode,
                                    result.stdout, result.stderr,
                                    self.error_log()[-4000:]))
            end = time.monotonic() + START_DEADLINE
            while self._read_pid() is None and time.monotonic() < end:
                time.sleep(0.05)
            self.pid = self._read_pid()
            try:
                self._wait_accepting(lambda: pid_alive(self.pid or 0))
                return
            except BenchError:
                self.stop()
                if ("Address already in use" in self.error_log()
                        and attempt < 2):
                    continue
                raise

    def stop(self):
        pid = self.pid or self._read_pid()
        self.pid = None
        if pid is None:
            return
        tree = process_tree(pid)
        killed = stop_tree(pid, tree)
        if killed:
            raise BenchError("%s did not stop within 30s: killed %s"
                             % (self.kind.label, killed))


class GunicornServer(Server):
    """gunicorn's gthread worker from the mod_wsgi venv, in the foreground
    of a process of ours."""

    def __init__(self, kind, tools, workdir, tag, workload, processes,
                 threads):
        super().__init__(kind, tools, workdir, tag, processes)
        self.workload = workload
        self.threads = threads
        self.popen = None

    def command(self):
        cmd = [self.tools.modwsgi.python, "-m", "gunicorn",
               "--workers", str(self.processes),
               "--worker-class", "gthread",
               "--threads", str(self.threads),
               "--keep-alive", "5",
               "--backlog", "511",
               "--timeout", "60",
               "--graceful-timeout", "5",
               "--bind", "127.0.0.1:%d" % self.port,
               "--chdir", self.apps,
               "--log-level", "warning",
               "--error-logfile", self.error_log_path,
               "--pid", os.path.join(self.root, "run", "gunicorn.pid")]
        if self.tools.apache_user:
            cmd += ["--user", self.tools.apache_user[0],
                    "--group", self.tools.apache_user[1]]
        return cmd + ["bench_app:%s" % self.workload.callable]

    def start(self):
        self.port = free_port()
        with open(os.path.join(self.root, "logs", "stdout"), "wb") as out:
            self.popen = subprocess.Popen(
                self.command(), cwd=self.apps, env=clean_env(),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.pid = self.popen.pid
        try:
            self._wait_accepting(lambda: self.popen.poll() is None)
        except BenchError:
            self.stop()
            raise

    def error_log(self):
        text = super().error_log()
        try:
            with open(os.path.join(self.root, "logs", "stdout"), "rb") as f:
                text += f.read().decode("utf-8", "replace")
        except OSError:
            pass
        return text

    def stop(self):
        if self.popen is None:
            return
        tree = process_tree(self.pid)
        killed = stop_tree(self.pid, tree or [self.pid])
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.popen = None
        self.pid = None
        if killed:
            raise BenchError("gunicorn did not stop within 30s: killed %s"
                             % killed)


def make_server(kind, tools, workdir, tag, workload, processes, threads,
                apache_threads):
    if kind.mode == "gthread":
        return GunicornServer(kind, tools, workdir, tag, workload, processes,
                              threads)
    return ApacheServer(kind, tools, workdir, tag, workload, processes,
                        threads, apache_threads)


# --- readiness ---------------------------------------------------------------

def check_ready(server, workload):
    """Sends the workload's request until it gets the expected response.

    Daemon processes may still be starting when Apache accepts: a 503 or a
    refused connection is retried until READY_DEADLINE.  Anything else
    unexpected (a wrong status or a body of the wrong size) is a BenchError,
    so a misconfigured server never gets measured."""
    end = time.monotonic() + READY_DEADLINE
    last = None
    path = workload.path_for(server.kind)
    while time.monotonic() < end:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            body = workload.request_body()
            conn.request(workload.method, path, body=body,
                         headers={"Content-Type": "application/octet-stream"}
                         if body else {})
            resp = conn.getresponse()
            data = resp.read()
        except OSError as exc:
            last = "%s: %s" % (type(exc).__name__, exc)
            time.sleep(0.2)
            continue
        finally:
            conn.close()
        if resp.status == 503:
            last = "503"
            time.sleep(0.2)
            continue
        if resp.status != 200 or len(data) != workload.expect_bytes:
            raise BenchError(
                "%s answered %s %s with %d %s and %d bytes (expected 200 "
                "and %d bytes)\n--- error_log:\n%s"
                % (server.kind.label, workload.method, path, resp.status,
                   resp.reason, len(data), workload.expect_bytes,
                   server.error_log()[-4000:]))
        break
    else:
        raise BenchError("%s never answered %s %s within %.0fs (last: %s)"
                         "\n--- error_log:\n%s"
                         % (server.kind.label, workload.method, path,
                            READY_DEADLINE, last, server.error_log()[-4000:]))
    # Every worker (and daemon process) up before the load, so that none
    # is still importing while it is measured.
    want = server.expected_processes()
    while time.monotonic() < end:
        if len(server.pids()) >= want:
            return
        time.sleep(0.1)
    raise BenchError("%s has %d processes, expected %d, %.0fs after it "
                     "started\n--- error_log:\n%s"
                     % (server.kind.label, len(server.pids()), want,
                        READY_DEADLINE, server.error_log()[-4000:]))
