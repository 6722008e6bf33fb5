"""Daemon mode, recycling under load (issue #3): a daemon process that
recycles by restart-interval, cpu-time-limit, memory-limit or a graceful
stop (SIGUSR1, eviction) drains before it goes, and not one request fails:
new requests go to the other process, or, in a group of one process, wait
for the replacement.  A request that outlives graceful-timeout in a
recycling process is cut off, and the replacement serves on; a process that
inactivity-timeout recycled leaves no request unserved.

(maximum-requests under load: test_daemon_mode.py, TestUnderLoad.)"""

import concurrent.futures
import os
import re
import signal
import threading
import time

import pytest

import harness

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self"),
    reason="the daemon process tests read /proc (Linux)")

D = "@APPS@/daemon"
APP = D + "/recycle_load.wsgi"

# What recycle_load.wsgi answers on every path but /pid.
PIECE = bytes(range(256)) * 32
BODY = PIECE * 4

# Client threads, and how long each load runs: long enough for several
# recycles on a loaded two-core machine.
WORKERS = 4
SECONDS = 8


def _pid_of(server, path):
    resp = server.get(path)
    return int(resp.body) if resp.status == 200 else None


def _wait_group(server, group, processes):
    return harness.wait_for(
        lambda: (lambda pids: pids if len(pids) == processes else None)(
            server.daemon_pids(group)),
        what="%d daemon process(es) of group %s" % (processes, group))


class Served:
    """check= for harness.load: a good answer is a 200 with all of BODY;
    remembers which processes gave them."""

    def __init__(self):
        self.pids = set()
        self.lock = threading.Lock()

    def __call__(self, resp):
        if resp.status != 200 or resp.body != BODY:
            return "%d %s, %d bytes, X-Pid %s" % (
                resp.status, resp.reason, len(resp.body),
                resp.header("X-Pid"))
        with self.lock:
            self.pids.add(int(resp.header("X-Pid")))
        return None


# --- recycling under load ----------------------------------------------------

# option of the groups, load path, the reason a recycling process logs.
KINDS = {
    # Counted from each process's start: every 2 s, all of a group's
    # processes at about the same time.
    "restart-interval": ("restart-interval=2", "/ok",
                         "restart-interval reached"),
    # 25 ms of CPU a request: a process burns its 2 s in well under the
    # load's time.
    "cpu-time-limit": ("cpu-time-limit=2", "/burn?25",
                       "cpu-time-limit reached"),
    # 4 MB kept a request: some 30 requests to pass the limit.
    "memory-limit": ("memory-limit=150000000", "/grow?4000000",
                     "memory-limit exceeded"),
    # SIGUSR1, as an eviction sends it: the test signals every process.
    "sigusr1": ("", "/ok", "graceful stop requested"),
}


def _load_config(option):
    return "\n".join(
        "WSGIDaemonProcess rl%d processes=%d threads=4 display-name=%%{GROUP} "
        "%s graceful-timeout=15\n"
        "WSGIScriptAlias /p%d %s process-group=rl%d "
        "application-group=%%{GLOBAL}" % (n, n, option, n, APP, n)
        for n in (1, 2)) + "\n"


@pytest.fixture(scope="module", params=sorted(KINDS))
def kind_server(request, httpd_env, tether_only):
    kind = request.param
    with httpd_env.server(_load_config(KINDS[kind][0]),
                          name="recycle-" + kind) as srv:
        yield kind, srv


def _signal_during(server, group, times, sent):
    """At each of `times` (seconds from now), SIGUSR1 to every process of
    `group`; the pids signalled go to `sent`."""
    start = time.monotonic()
    for at in times:
        time.sleep(max(0.0, start + at - time.monotonic()))
        for pid in server.daemon_pids(group):
            if pid not in sent:
                try:
                    os.kill(pid, signal.SIGUSR1)
                except ProcessLookupError:
                    continue
                sent.add(pid)


@pytest.mark.parametrize("processes", [1, 2])
def test_daemon_recycle_under_load_fails_no_request(kind_server, processes):
    kind, server = kind_server
    _, path, reason = KINDS[kind]
    group = "rl%d" % processes
    url = "/p%d%s" % (processes, path)
    # The group serves, and its processes are all there.
    harness.wait_for(lambda: server.get("/p%d/ok" % processes).status == 200,
                     what="group %s" % group)
    before = set(_wait_group(server, group, processes))
    mark = server.log_mark()
    served = Served()
    signalled = set()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        signaller = None
        if kind == "sigusr1":
            # Once the load runs, and again for the replacements.
            signaller = pool.submit(_signal_during, server, group,
                                    (1.5, 4.5), signalled)
        outcomes = harness.load(server, url, SECONDS, WORKERS, check=served)
        if signaller:
            signaller.result(timeout=30)
    failures = [o for o in outcomes if o != 200]
    assert not failures, "%d of %d requests failed, first ones: %r" % (
        len(failures), len(outcomes), failures[:5])
    assert len(outcomes) >= 20, outcomes

    # A recycle happened during the load: a process that served some of
    # it left for `reason`, and a process started after the load began
    # served some of it too.
    log = server.error_log(mark)
    exited = {int(pid) for pid in re.findall(
        r"TETHER0606: daemon process (\d+) of group '%s' exits \(%s"
        % (group, re.escape(reason)), log)}
    assert exited & served.pids, (
        "no process that served the load recycled for %s during it: "
        "served by %s, exits logged: %s\n%s"
        % (reason, sorted(served.pids), sorted(exited), log[-3000:]))
    assert served.pids - before, (
        "no replacement served any of the load: served by %s, before %s"
        % (sorted(served.pids), sorted(before)))
    if kind == "sigusr1":
        assert exited >= signalled & served.pids
    # Each recycle was an orderly exit (status 0, replaced at once), and no
    # request was cut off.
    assert "in-flight requests cut off" not in log
    assert not re.search(r"TETHER0555: .*'%s'" % group, log), log
    assert not re.search(r"TETHER05(0[2-9]|1\d): ", log), log
    # The group is whole again, and serves.
    _wait_group(server, group, processes)
    assert served(server.get(url)) is None


# --- graceful-timeout expiry -------------------------------------------------

GRACEFUL = 2

CUT_CONFIG = f"""
WSGIDaemonProcess cut processes=1 threads=2 display-name=%{{GROUP}} graceful-timeout={GRACEFUL} shutdown-timeout=2
WSGIScriptAlias /cut {APP} process-group=cut application-group=%{{GLOBAL}}
"""

# How long the long request would run: far longer than graceful-timeout.
LONG = 30


@pytest.fixture(scope="module")
def cut_server(httpd_env, tether_only):
    with httpd_env.server(CUT_CONFIG, name="recycle-cut") as srv:
        yield srv


def _cut_exit_line(pid):
    # The line names the timeout that ran out: SIGUSR1's eviction-timeout,
    # which is graceful-timeout's value when not given.
    return (r"TETHER0606: daemon process %d of group 'cut' exits \(graceful "
            r"stop requested; \d+ requests served, in-flight requests cut "
            r"off after eviction-timeout=%ds\)" % (pid, GRACEFUL))


def _start_long(server, path, mark_file):
    """Sends `path` on a raw connection in a thread; returns the future of
    its RawResponse once the application runs it (wrote `mark_file`)."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(server.raw_request, "GET", path)
    pool.shutdown(wait=False)
    harness.wait_for(lambda: os.path.exists(mark_file) or future.done(),
                     what="the long request to reach the application")
    assert not future.done(), future.result()
    with open(mark_file) as f:
        return future, int(f.read())


def test_daemon_graceful_timeout_cuts_off_request_before_headers(cut_server):
    """The application has not answered yet when graceful-timeout ends:
    the process exits under it and Apache answers 502, naming the
    process."""
    server = cut_server
    harness.wait_for(lambda: _pid_of(server, "/cut/pid"), what="group cut")
    mark = server.log_mark()
    mark_file = server.scratch_path("slow")
    future, pid = _start_long(server, "/cut/slow?%d&%s" % (LONG, mark_file),
                              mark_file)
    signalled = time.monotonic()
    os.kill(pid, signal.SIGUSR1)
    resp = future.result(timeout=LONG + 30)
    elapsed = time.monotonic() - signalled
    assert resp.status == 502, resp.data[:500]
    # Cut off by graceful-timeout, not let finish.
    assert GRACEFUL - 0.5 <= elapsed < LONG, elapsed
    server.wait_for_log(_cut_exit_line(pid), since=mark)
    server.wait_for_log(
        r"TETHER0509: Daemon process of group 'cut' \(socket \S+\.sock, "
        r"pid %d\) .*before sending response headers" % pid, since=mark)
    # The application ran once: Apache did not send the request on to the
    # replacement (which would have run it again, for LONG seconds).
    with open(mark_file) as f:
        assert int(f.read()) == pid
    # The replacement serves.
    new = harness.wait_for(
        lambda: (lambda p: p if p and p != pid else None)(
            _pid_of(server, "/cut/pid")), what="the replacement")
    assert not harness.pid_alive(pid)
    resp = server.get("/cut/ok")
    assert resp.status == 200 and resp.body == BODY
    assert int(resp.header("X-Pid")) == new


def test_daemon_graceful_timeout_cuts_off_streaming_response(cut_server):
    """The response has begun when graceful-timeout ends: the client gets
    a truncated body (fewer bytes than its Content-Length), never a
    complete-looking one."""
    server = cut_server
    harness.wait_for(lambda: _pid_of(server, "/cut/pid"), what="group cut")
    mark = server.log_mark()
    mark_file = server.scratch_path("stream")
    future, pid = _start_long(
        server, "/cut/slowstream?%d&%s" % (LONG, mark_file), mark_file)
    signalled = time.monotonic()
    os.kill(pid, signal.SIGUSR1)
    resp = future.result(timeout=LONG + 30)
    elapsed = time.monotonic() - signalled
    assert resp.status == 200
    length = int(resp.header("Content-Length"))
    assert length == len(PIECE) * (1 + 4 * LONG)
    assert len(resp.body) < length
    assert GRACEFUL - 0.5 <= elapsed < LONG, elapsed
    server.wait_for_log(_cut_exit_line(pid), since=mark)
    server.wait_for_log(
        r"TETHER0507: daemon group 'cut' \(socket \S+\.sock, pid %d\) "
        r"failed in the middle of the response" % pid, since=mark)
    new = harness.wait_for(
        lambda: (lambda p: p if p and p != pid else None)(
            _pid_of(server, "/cut/pid")), what="the replacement")
    resp = server.get("/cut/ok")
    assert resp.status == 200 and resp.body == BODY
    assert int(resp.header("X-Pid")) == new


# --- inactivity-timeout, then a request --------------------------------------

INACTIVITY = 2

IDLE_CONFIG = f"""
WSGIDaemonProcess idle1 processes=1 threads=2 display-name=%{{GROUP}} inactivity-timeout={INACTIVITY}
WSGIDaemonProcess idle2 processes=2 threads=2 display-name=%{{GROUP}} inactivity-timeout={INACTIVITY}
WSGIScriptAlias /idle1 {APP} process-group=idle1 application-group=%{{GLOBAL}}
WSGIScriptAlias /idle2 {APP} process-group=idle2 application-group=%{{GLOBAL}}
"""


@pytest.fixture(scope="module")
def idle_server(httpd_env, tether_only):
    with httpd_env.server(IDLE_CONFIG, name="recycle-idle") as srv:
        yield srv


@pytest.mark.parametrize("processes", [1, 2])
def test_daemon_inactivity_recycle_then_requests_all_served(idle_server,
                                                            processes):
    """Apache's children keep their connections to the idle process: after
    it recycled, the next requests (several at once) on those connections
    are served, by the replacement, none fails."""
    server = idle_server
    group = "idle%d" % processes
    # Requests from several threads, so that Apache's children hold
    # connections to the processes.
    served = Served()
    outcomes = harness.load(server, "/%s/ok" % group, 1, WORKERS,
                            check=served)
    assert set(outcomes) == {200}, [o for o in outcomes if o != 200][:5]
    first = set(served.pids)
    mark = server.log_mark()
    for pid in first:
        server.wait_for_log(
            r"TETHER0606: daemon process %d of group '%s' exits "
            r"\(inactivity-timeout reached" % (pid, group), since=mark,
            deadline=harness.WAIT_DEADLINE + INACTIVITY)
    # Right away: the replacement may still be starting.
    after = Served()
    outcomes = harness.load(server, "/%s/ok" % group, 1, WORKERS,
                            check=after)
    assert set(outcomes) == {200}, [o for o in outcomes if o != 200][:5]
    assert not after.pids & first
    log = server.error_log(mark)
    assert not re.search(r"TETHER05(0[2-9]|1\d): ", log), log
    assert not re.search(r"TETHER0555: .*'%s'" % group, log), log
