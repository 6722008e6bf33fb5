#!/usr/bin/env python3
"""Soak test: many mixed requests through embedded and daemon mode, with
the memory of every Apache process sampled, to show that nothing leaks.

    python3 benchmarks/soak.py --venv /opt/tether/venv          # 200,000 each
    python3 benchmarks/soak.py --venv /opt/tether/venv --requests 20000

Starts two Apaches loading Tether from the venv (built from this checkout),
one running the application in its children (embedded mode) and one in a
daemon group of two processes, each from a configuration rendered from
soak/httpd.conf.in into a fresh directory under /tmp.  Then sends the same
mix of requests to both at once (GET of 11 bytes and of 100 KB, a 64 KB
POST read fully by the app, a wsgi.file_wrapper response, a streamed
generator, HEAD, 404 from the app and from Apache, 500 from an exception and
from a script that never loads), each over keep-alive connections from a
client process of its own, and checks every status.

Every second it samples the RSS of each server's processes (Apache's parent
and children, daemons included).  The process set is fixed (no process is
started or recycled under load), so the growth is the RSS summed over a
server's processes at the end against the same sum once the warm-up (a
burst over 64 connections, so that every worker thread serves, then the
first 10% of that server's requests) is over.  Apache runs with glibc's
default malloc settings (see --malloc-arena-max and SOAK.md).  The soak
fails (exit 1) when
a growth reaches --max-growth (5%), a request got a wrong answer, a process
was replaced, or a process crashed.  Results: see SOAK.md.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOAK_DIR = os.path.join(HERE, "soak")
TEMPLATE = os.path.join(SOAK_DIR, "httpd.conf.in")
MODES = ("embedded", "daemon")
DAEMON_LINES = ("WSGIDaemonProcess soak processes=2 threads=16 "
                "display-name=%{GROUP}\nWSGIProcessGroup soak")
BASE_MODULES = ("mpm_event", "unixd", "authz_core", "alias", "dir")
MODULES_DIRS = ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules",
                "/usr/lib/httpd/modules", "/usr/libexec/apache2",
                "/usr/local/apache2/modules")
HTTPD_CANDIDATES = ("/usr/sbin/apache2", "/usr/sbin/httpd",
                    "/usr/local/apache2/bin/httpd")
UPLOAD = b"u" * (64 * 1024)
FILE_SIZE = 256 * 1024
# One round of the mix: (method, path, body, expected status, expected
# body length or None).  Small GETs weigh most, as on a real site.
MIX = (
    ("GET", "/app/small", None, 200, 11),
    ("GET", "/app/big", None, 200, 100 * 1024),
    ("GET", "/app/small", None, 200, 11),
    ("POST", "/app/upload", UPLOAD, 200, len(str(len(UPLOAD)))),
    ("GET", "/app/file", None, 200, FILE_SIZE),
    ("GET", "/app/small", None, 200, 11),
    ("GET", "/app/stream", None, 200, 16 * 1010),
    ("HEAD", "/app/small", None, 200, 0),
    ("GET", "/app/missing", None, 404, None),
    ("GET", "/nothing-here", None, 404, None),
    ("GET", "/app/raise", None, 500, None),
    ("GET", "/broken", None, 500, None),
)
CRASH = re.compile(r"AH0005[12]: child pid \d+ exit signal .*|"
                   r"TETHER0555: .* signal (4|6|7|8|11) .*")


class SoakError(Exception):
    pass


def say(text):
    sys.stderr.write("soak: %s\n" % text)
    sys.stderr.flush()


# --- servers ---------------------------------------------------------------

def find_httpd(given):
    if given:
        return given
    for name in ("apache2", "httpd"):
        found = shutil.which(name)
        if found:
            return found
    for path in HTTPD_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    raise SoakError("no Apache httpd binary; give --httpd")


def find_modules_dir(given):
    """--modules-dir, else the first of the distributions' usual places
    that has mod_alias.so (as tether-express finds it: without apxs, which
    only apache2-dev installs)."""
    if given:
        return given
    for path in MODULES_DIRS:
        if os.path.isfile(os.path.join(path, "mod_alias.so")):
            return path
    raise SoakError("no Apache modules directory; give --modules-dir")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_of(parent):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            found.append(int(entry))
    return sorted(found)


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0", 1)[0].decode("latin-1")
    except OSError:
        return None


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Server:
    """One Apache in a directory of its own under /tmp."""

    def __init__(self, mode, args, module_path):
        self.mode = mode
        self.args = args
        self.root = tempfile.mkdtemp(prefix="tether-soak-%s-" % mode,
                                     dir="/tmp")
        os.chmod(self.root, 0o755)
        for sub in ("logs", "run", "htdocs", "app"):
            os.mkdir(os.path.join(self.root, sub), 0o755)
        for name in ("soak_app.wsgi", "broken.wsgi"):
            dest = os.path.join(self.root, "app", name)
            shutil.copy(os.path.join(SOAK_DIR, name), dest)
            os.chmod(dest, 0o644)
        payload = os.path.join(self.root, "app", "payload.bin")
        with open(payload, "wb") as f:
            f.write(os.urandom(FILE_SIZE))
        os.chmod(payload, 0o644)
        self.port = free_port()
        self.pid = None
        self.conf = os.path.join(self.root, "httpd.conf")
        self.pid_path = os.path.join(self.root, "run", "httpd.pid")
        self.error_log = os.path.join(self.root, "logs", "error_log")
        self.write_config(module_path)

    def write_config(self, module_path):
        modules = []
        for name in BASE_MODULES:
            path = os.path.join(self.args.modules_dir, "mod_%s.so" % name)
            if os.path.exists(path):
                modules.append("LoadModule %s_module %s" % (name, path))
        if os.geteuid() == 0:
            user = self.args.user
            group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
            identity = "User %s\nGroup %s" % (user, group)
        else:
            identity = "# not root: the children run as the invoking user"
        with open(TEMPLATE) as f:
            text = f.read()
        values = {
            "@ROOT@": self.root, "@PORT@": str(self.port),
            "@MODE@": self.mode, "@MODULES@": "\n".join(modules),
            "@IDENTITY@": identity, "@MODULE_PATH@": module_path,
            "@PYTHON_HOME@": self.args.venv,
            "@DAEMON@": DAEMON_LINES if self.mode == "daemon"
            else "# embedded mode: the application runs in the children",
        }
        for key, value in values.items():
            text = text.replace(key, value)
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PYTHON")}
        env.setdefault("LANG", "C.UTF-8")
        if self.args.malloc_arena_max:
            env["MALLOC_ARENA_MAX"] = str(self.args.malloc_arena_max)
        result = subprocess.run([self.args.httpd, "-d", self.root, "-f",
                                 self.conf, "-k", "start"], env=env,
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SoakError("%s: httpd -k start failed: %s%s"
                            % (self.mode, result.stdout, result.stderr))
        want = 3 if self.mode == "embedded" else 5   # + daemons
        end = time.monotonic() + 30
        while time.monotonic() < end:
            pid = self.read_pid()
            if pid and len(children_of(pid)) >= want - 1:
                self.pid = pid
                break
            time.sleep(0.1)
        else:
            self.pid = self.read_pid()
            raise SoakError("%s: Apache did not start its %d processes:\n%s"
                            % (self.mode, want, self.log_tail()))
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                  timeout=10)
                conn.request("GET", "/app/small")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SoakError("%s: Apache does not answer:\n%s"
                        % (self.mode, self.log_tail()))

    def read_pid(self):
        try:
            with open(self.pid_path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def pids(self):
        return [self.pid] + children_of(self.pid) if self.pid else []

    def stop(self):
        """SIGTERM to the parent by its pid file; waits for every process."""
        pid = self.pid or self.read_pid()
        if not pid:
            return
        procs = [pid] + children_of(pid)
        self.pid = None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        end = time.monotonic() + 30
        while time.monotonic() < end and any(alive(p) for p in procs):
            time.sleep(0.1)
        left = [p for p in procs if alive(p)]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if left:
            raise SoakError("%s: pids %s did not stop (killed)"
                            % (self.mode, left))

    def log_text(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, lines=30):
        return "\n".join(self.log_text().splitlines()[-lines:])


# --- clients -----------------------------------------------------------------

def client_thread(port, count, offset, mix, per_connection, done, errors,
                  lock):
    """Sends `count` requests of `mix` (starting at `offset`) on keep-alive
    connections of at most `per_connection` requests (0: no limit),
    counting them in done[0] and wrong answers in errors."""
    conn = None
    for i in range(count):
        method, path, body, status, length = mix[(offset + i) % len(mix)]
        if per_connection and conn is not None and i % per_connection == 0:
            conn.close()
            conn = None
        for attempt in range(2):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port,
                                                      timeout=60)
                headers = {"Content-Type": "application/octet-stream"} \
                    if body else {}
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    conn.close()
                    conn = None
                break
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                conn = None
                if attempt == 1:
                    resp, data = None, repr(exc)
        wrong = resp is None or resp.status != status or \
            (length is not None and len(data) != length)
        with lock:
            done[0] += 1
            if wrong:
                errors.append("%s %s: %s %r" % (
                    method, path, resp.status if resp else "no response",
                    data[:120]))
    if conn is not None:
        conn.close()


def client_process(port, total, threads, mix, per_connection, progress,
                   error_queue):
    """A process sending `total` requests of `mix` over `threads`
    connections at a time; publishes its progress in `progress`."""
    done, errors, lock = [0], [], threading.Lock()
    share = [total // threads + (1 if t < total % threads else 0)
             for t in range(threads)]
    workers = [threading.Thread(target=client_thread,
                                args=(port, share[t], t * 7, mix,
                                      per_connection, done, errors, lock),
                                daemon=True)
               for t in range(threads)]
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        time.sleep(0.2)
        progress.value = done[0]
    progress.value = done[0]
    error_queue.put(errors[:50] + (["... %d more" % (len(errors) - 50)]
                                   if len(errors) > 50 else []))
    error_queue.put(len(errors))


# --- the soak --------------------------------------------------------------

def median_sum(samples):
    return statistics.median(sum(s.values()) for s in samples)


def run(args):
    out = subprocess.run([os.path.join(args.venv, "bin", "python"), "-c",
                          "import tether; print(tether.module_location())"],
                         capture_output=True, text=True, check=False)
    module_path = out.stdout.strip()
    if out.returncode != 0 or not os.path.isfile(module_path):
        raise SoakError("no Tether in %s: %s" % (args.venv, out.stderr))
    say("module %s" % module_path)
    servers = {mode: Server(mode, args, module_path) for mode in args.modes}
    results = {}
    try:
        for server in servers.values():
            server.start()
            say("%s mode: Apache pid %d on port %d, processes %s"
                % (server.mode, server.pid, server.port, server.pids()))
        pid_sets = {m: s.pids() for m, s in servers.items()}
        progress = {m: multiprocessing.Value("q", 0) for m in servers}
        queues = {m: multiprocessing.Queue() for m in servers}
        clients = {m: multiprocessing.Process(
            target=client_process,
            args=(s.port, args.requests, args.threads, args.mix,
                  args.per_connection, progress[m], queues[m]), daemon=True)
            for m, s in servers.items()}
        if args.warmup_burst:
            # Every worker thread serves at once, so that each gets what it
            # keeps for good (its malloc arena, Python thread state) before
            # the baseline.
            say("warm-up burst: %d requests over %d connections per mode"
                % (args.warmup_burst, args.burst_connections))
            burst_queues = {m: multiprocessing.Queue() for m in servers}
            bursts = [multiprocessing.Process(
                target=client_process,
                args=(s.port, args.warmup_burst, args.burst_connections,
                      args.mix, 0, multiprocessing.Value("q", 0),
                      burst_queues[m]), daemon=True)
                for m, s in servers.items()]
            for b in bursts:
                b.start()
            for b in bursts:
                b.join(args.max_seconds)
            for m in servers:
                burst_errors = burst_queues[m].get(timeout=30)
                if burst_queues[m].get(timeout=30):
                    raise SoakError("%s: wrong answers in the warm-up burst: "
                                    "%s" % (m, burst_errors[:5]))
        # samples[mode] = [(requests done, {pid: rss kB})], one a second.
        samples = {m: [] for m in servers}
        started = time.monotonic()
        for c in clients.values():
            c.start()
        last_say = started
        while any(c.is_alive() for c in clients.values()):
            if time.monotonic() - started > args.max_seconds:
                for c in clients.values():
                    c.terminate()
                raise SoakError("the soak took more than %ds"
                                % args.max_seconds)
            for m, s in servers.items():
                rss = {p: rss_kb(p) for p in pid_sets[m]}
                samples[m].append((progress[m].value,
                                   {p: v for p, v in rss.items()
                                    if v is not None}))
            if time.monotonic() - last_say >= 15:
                last_say = time.monotonic()
                say(", ".join("%s %d/%d requests, RSS %d MB" % (
                    m, progress[m].value, args.requests,
                    sum(samples[m][-1][1].values()) // 1024)
                    for m in servers))
            time.sleep(1)
        elapsed = time.monotonic() - started
        for m, s in servers.items():
            errors = queues[m].get(timeout=30)
            n_errors = queues[m].get(timeout=30)
            clients[m].join(30)
            warm = [rss for done, rss in samples[m]
                    if done >= args.requests * args.warmup]
            if len(warm) < 6:
                raise SoakError("%s: only %d samples after warm-up; send "
                                "more requests" % (m, len(warm)))
            # Medians of the first and last 5 samples after warm-up, so one
            # sample caught mid-response does not decide.
            base = median_sum(warm[:5])
            final = median_sum(warm[-5:])
            now = s.pids()
            per_process = {}
            for pid in pid_sets[m]:
                first = statistics.median(x.get(pid, 0) for x in warm[:5])
                last = statistics.median(x.get(pid, 0) for x in warm[-5:])
                per_process[pid] = (first, last)
            # The summed RSS at each tenth of the requests: a leak climbs
            # steadily, a cache or an arena levels off.
            curve = []
            for tenth in range(1, 11):
                near = [rss for done, rss in samples[m]
                        if done >= args.requests * tenth / 10.0][:3]
                if near:
                    curve.append(int(median_sum(near)))
            roles = {str(p): ("daemon" if (proc_cmdline(p) or "")
                              .startswith("(wsgi:") else
                              "parent" if p == s.pid else "child")
                     for p in pid_sets[m]}
            log = s.log_text()
            crashes = [c.group(0) for c in CRASH.finditer(log)]
            results[m] = {
                "requests": progress[m].value,
                "wrong_answers": n_errors,
                "wrong_examples": errors[:10],
                "processes_before": pid_sets[m],
                "processes_after": now,
                "rss_after_warmup_kb": base,
                "rss_end_kb": final,
                "growth_percent": round(100.0 * (final - base) / base, 2),
                "per_process_kb": {str(p): v for p, v
                                   in per_process.items()},
                "roles": roles,
                "curve_kb": curve,
                "crashes": crashes[:5],
                "samples": len(samples[m]),
            }
        results["elapsed_seconds"] = round(elapsed, 1)
    finally:
        for server in servers.values():
            try:
                server.stop()
            except SoakError as exc:
                say(str(exc))
    failed = []
    for m in servers:
        r = results[m]
        if r["growth_percent"] >= args.max_growth:
            failed.append("%s: RSS grew %.2f%%" % (m, r["growth_percent"]))
        if r["wrong_answers"]:
            failed.append("%s: %d wrong answers, e.g. %s"
                          % (m, r["wrong_answers"], r["wrong_examples"][:3]))
        if sorted(r["processes_before"]) != sorted(r["processes_after"]):
            failed.append("%s: processes changed from %s to %s" % (
                m, r["processes_before"], r["processes_after"]))
        if r["crashes"]:
            failed.append("%s: crashes: %s" % (m, r["crashes"]))
        if r["requests"] != args.requests:
            failed.append("%s: sent %d of %d requests"
                          % (m, r["requests"], args.requests))
    for server in servers.values():
        if failed or args.keep:
            say("kept %s" % server.root)
        else:
            shutil.rmtree(server.root, ignore_errors=True)
    return results, failed


def report(results, args):
    lines = ["| mode | requests | wrong | RSS after warm-up | RSS at end "
             "| growth |", "|---|---:|---:|---:|---:|---:|"]
    for m in args.modes:
        r = results[m]
        lines.append("| %s | %d | %d | %.1f MB | %.1f MB | %+.2f%% |" % (
            m, r["requests"], r["wrong_answers"],
            r["rss_after_warmup_kb"] / 1024, r["rss_end_kb"] / 1024,
            r["growth_percent"]))
    lines.append("")
    lines.append("%d requests per mode, both modes at once, in %.0f s; "
                 "%d client threads per mode; %s requests per connection; "
                 "warm-up %d%%; limit %.0f%%; MALLOC_ARENA_MAX=%s."
                 % (args.requests, results["elapsed_seconds"], args.threads,
                    args.per_connection or "unlimited", args.warmup * 100,
                    args.max_growth, args.malloc_arena_max or "(default)"))
    lines.append("")
    for m in args.modes:
        r = results[m]
        per = ", ".join("%s %s %d->%d kB" % (r["roles"][p], p, a, b)
                        for p, (a, b) in r["per_process_kb"].items())
        lines.append("- %s processes: %s" % (m, per))
        lines.append("- %s RSS at each tenth of the requests (MB): %s" % (
            m, " ".join("%.1f" % (kb / 1024) for kb in r["curve_kb"])))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Soak Tether's embedded and daemon modes with mixed "
                    "requests and report the RSS growth after warm-up.")
    parser.add_argument("--venv", default=sys.prefix,
                        help="virtualenv holding the tether package whose "
                             "module Apache loads, also the Python home; "
                             "it must be readable by Apache's user "
                             "(default: this Python's, %(default)s)")
    parser.add_argument("--requests", type=int, default=200000,
                        help="requests per mode (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=6,
                        help="client connections per mode "
                             "(default: %(default)s)")
    parser.add_argument("--per-connection", type=int, default=0,
                        help="requests per keep-alive connection before the "
                             "client opens a new one; 0: one connection "
                             "per thread for the whole soak "
                             "(default: %(default)s)")
    parser.add_argument("--kinds", nargs="+", default=None,
                        metavar="PATH",
                        help="send only the requests of these paths of the "
                             "mix (e.g. /app/small /broken; default: all)")
    parser.add_argument("--warmup-burst", type=int, default=20000,
                        help="requests sent before the soak over "
                             "--burst-connections connections at once, so "
                             "that every worker thread has served "
                             "(default: %(default)s; 0: none)")
    parser.add_argument("--burst-connections", type=int, default=64,
                        help="connections of the warm-up burst, more than "
                             "the threads of a server (default: "
                             "%(default)s)")
    parser.add_argument("--warmup", type=float, default=0.10,
                        help="share of the requests before the baseline "
                             "sample (default: %(default)s)")
    parser.add_argument("--max-growth", type=float, default=5.0,
                        help="RSS growth, in percent, that fails the soak "
                             "(default: %(default)s)")
    parser.add_argument("--max-seconds", type=int, default=1800,
                        help="give up after this long (default: "
                             "%(default)s)")
    parser.add_argument("--modes", nargs="+", choices=MODES,
                        default=list(MODES),
                        help="which modes to soak (default: both)")
    parser.add_argument("--malloc-arena-max", type=int, default=0,
                        help="MALLOC_ARENA_MAX for Apache: 0 keeps glibc's "
                             "default, where each thread gets an arena of "
                             "its own (up to 8 per core) the first time it "
                             "allocates, which the warm-up burst has every "
                             "thread do before the baseline; 1 leaves a "
                             "leak the only possible cause of growth "
                             "(default: %(default)s)")
    parser.add_argument("--httpd", default=None,
                        help="the Apache binary (default: apache2 or httpd "
                             "on PATH)")
    parser.add_argument("--modules-dir", default=None,
                        help="Apache's modules directory (default: the "
                             "first of the usual places with mod_alias.so)")
    parser.add_argument("--user", default="www-data",
                        help="the User of Apache's children when run as "
                             "root (default: %(default)s)")
    parser.add_argument("--json", default=None,
                        help="also write the results as JSON to this file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the server directories under /tmp")
    args = parser.parse_args(argv)
    args.venv = os.path.abspath(args.venv)
    args.mix = [k for k in MIX if not args.kinds or k[1] in args.kinds]
    if not args.mix:
        parser.error("--kinds: none of %s is in the mix (%s)" % (
            args.kinds, " ".join(sorted({k[1] for k in MIX}))))
    try:
        args.httpd = find_httpd(args.httpd)
        args.modules_dir = find_modules_dir(args.modules_dir)
        results, failed = run(args)
    except SoakError as exc:
        say("error: %s" % exc)
        return 2
    print(report(results, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if failed:
        say("FAILED: " + "; ".join(failed))
        return 1
    say("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
